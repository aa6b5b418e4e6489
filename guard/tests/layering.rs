//! The layering of the crate's top-level modules, stated here and checked against the source.
//!
//! ripgrep keeps its layers apart with separate crates, so Cargo refuses an import that goes the
//! wrong way. agent-guard is one crate; this test plays Cargo's part. It reads every file under
//! `guard/src`, finds each path into another top-level module (`crate::policy::...`,
//! `use crate::{audit, paths}`, `super::super::engine`), and fails on any that [`LAYERS`] does
//! not allow. Comments and string literals are skipped, so prose may name any module.
//!
//! The allowed imports form a DAG (checked too): a module may use only modules listed before it.
//! What each layer is for, and why it sits where it does, is in docs/design.md ("Layers").

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// In [`LAYERS`]: the module may import every module listed before it.
const ANY_BELOW: &[&str] = &["*"];

/// Every top-level module of `guard/src`, bottom first, with the modules it may import.
const LAYERS: &[(&str, &[&str])] = &[
    // The shared words: events, verdicts, grants, paths, records' names. Imports nothing.
    ("vocab", &[]),
    // git's command line and config files, read as git reads them. Imports nothing.
    ("git", &[]),
    // Durations as users type them; where the guard keeps its files.
    ("duration", &[]),
    ("paths", &["vocab"]),
    // The policy file and what it normalizes into.
    ("policy", &["vocab", "git", "duration", "paths"]),
    // The pure decision: vocabulary in, vocabulary out, by the policy.
    ("engine", &["vocab", "git", "policy"]),
    // Who is an agent: knows processes, not files or policies.
    ("lineage", &["vocab"]),
    // What is remembered: the denial log and the SQLite trail.
    ("audit", &["vocab"]),
    // Requests and grants: validated against the policy, recorded in the trail.
    (
        "overrides",
        &["vocab", "duration", "paths", "policy", "audit"],
    ),
    // The agent's side of the loop: reads denials, points at overrides.
    (
        "feedback",
        &["vocab", "paths", "lineage", "audit", "overrides"],
    ),
    // The agents' own settings files: agent-guard's hook, MCP server and instructions merged
    // in and taken out; the starter policy.
    ("install", &["vocab", "feedback"]),
    // The snapshot store's neutral side: sessions, the store's size, list, restore, purge.
    (
        "snapshots",
        &["vocab", "duration", "paths", "policy", "engine", "audit"],
    ),
    // Every kernel boundary. Names the vocabulary through the engine's re-exports too.
    (
        "platform",
        &["vocab", "git", "paths", "engine", "lineage", "snapshots"],
    ),
    // A sensor's glue: the runtime, the Linux tree, the macOS daemon core.
    (
        "mcp",
        &[
            "vocab",
            "duration",
            "paths",
            "policy",
            "engine",
            "lineage",
            "audit",
            "overrides",
            "feedback",
            "platform",
        ],
    ),
    ("runtime", ANY_BELOW),
    // Argument parsing and one call per subcommand.
    ("cli", ANY_BELOW),
];

/// One import that the layering does not allow.
#[derive(Debug, PartialEq, Eq)]
struct Violation {
    file: String,
    line: usize,
    from: String,
    to: String,
}

#[test]
fn no_module_imports_one_above_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    assert!(
        files.len() > 50,
        "found only {} files in {}",
        files.len(),
        src.display()
    );
    let mut violations = Vec::new();
    let mut seen_modules = BTreeSet::new();
    for file in &files {
        let rel = file.strip_prefix(&src).unwrap();
        let Some(module_path) = module_path(rel) else {
            continue; // lib.rs and main.rs: the crate root and the binary
        };
        seen_modules.insert(module_path[0].clone());
        let text = std::fs::read_to_string(file).unwrap();
        violations.extend(check(&rel.display().to_string(), &module_path, &text));
    }
    let listed: BTreeSet<String> = LAYERS.iter().map(|(m, _)| m.to_string()).collect();
    let unlisted: Vec<_> = seen_modules.difference(&listed).collect();
    assert!(
        unlisted.is_empty(),
        "top-level modules missing from LAYERS (give each its place): {unlisted:?}"
    );
    assert!(
        violations.is_empty(),
        "imports against the layering (see LAYERS in this file and docs/design.md):\n{}",
        violations
            .iter()
            .map(|v| format!("  {}:{}: {} uses {}", v.file, v.line, v.from, v.to))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[test]
fn the_layers_form_a_dag_listed_bottom_first() {
    let mut below = BTreeSet::new();
    for (module, allowed) in LAYERS {
        for dep in allowed.iter().filter(|d| **d != "*") {
            assert!(
                below.contains(dep),
                "{module} may use {dep}, which is not listed below it: the layers would have a cycle"
            );
        }
        assert!(below.insert(*module), "{module} is listed twice");
    }
}

/// The checker itself must catch what it is for: each way of naming another module.
#[test]
fn the_checker_sees_every_form_of_import_and_ignores_prose() {
    let engine = vec!["engine".to_string(), "decide".to_string()];
    let bad = r##"
        use crate::cli::Cli;
        use crate::{vocab::Event, audit::{DenialLog, record}};
        fn f() { crate::runtime::Runtime::new(); }
        fn g() -> super::super::overrides::Grant { todo!() }
        "##;
    let found: Vec<String> = check("engine/decide.rs", &engine, bad)
        .into_iter()
        .map(|v| v.to)
        .collect();
    assert_eq!(found, ["cli", "audit", "runtime", "overrides"]);

    let harmless = r##"
        //! Unlike crate::cli, this never prints.
        /* crate::audit would be wrong here */
        use crate::policy::Policy;
        use super::reason;
        const S: &str = "crate::runtime";
        const R: &str = r#"crate::feedback "quoted""#;
        const C: char = '"'; fn h<'a>(x: &'a str) -> &'a str { x }
        use crate::vocab::Verdict;
        "##;
    assert_eq!(check("engine/decide.rs", &engine, harmless), []);
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The module path of a file below `src`: `audit/store/query.rs` → audit, store, query;
/// `audit/mod.rs` → audit. `None` for the crate root and the binary.
fn module_path(rel: &Path) -> Option<Vec<String>> {
    let mut parts: Vec<String> = rel
        .with_extension("")
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    match parts.as_slice() {
        [only] if only == "lib" || only == "main" => None,
        [] => None,
        _ => Some(parts),
    }
}

/// The imports of `text` (a file of module `module_path`) that LAYERS does not allow.
fn check(file: &str, module_path: &[String], text: &str) -> Vec<Violation> {
    let own = module_path[0].as_str();
    let layers: BTreeMap<&str, &[&str]> = LAYERS.iter().copied().collect();
    let allowed: Vec<&str> = match layers.get(own).copied() {
        Some(list) if list == ANY_BELOW => LAYERS
            .iter()
            .map(|(m, _)| *m)
            .take_while(|m| *m != own)
            .collect(),
        Some(list) => list.to_vec(),
        None => Vec::new(),
    };
    let code = code_only(text);
    let mut out = Vec::new();
    for (offset, target) in top_level_references(&code, module_path.len()) {
        if target != own && !allowed.contains(&target.as_str()) && layers.contains_key(&*target) {
            out.push(Violation {
                file: file.to_string(),
                line: code[..offset].matches('\n').count() + 1,
                from: own.to_string(),
                to: target,
            });
        }
    }
    out
}

/// `text` with comments and the contents of string and char literals blanked out (newlines
/// kept, so line numbers stay right).
fn code_only(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let blank = |c: char| if c == '\n' { '\n' } else { ' ' };
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                out.push(' ');
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < chars.len() {
                if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                    depth += 1;
                    out.push_str("  ");
                    i += 2;
                } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    out.push_str("  ");
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    out.push(blank(chars[i]));
                    i += 1;
                }
            }
        } else if c == 'r' && (next == Some('"') || next == Some('#')) && !ident_before(&chars, i) {
            // A raw string: r"...", r#"..."#, ...
            let mut hashes = 0;
            let mut j = i + 1;
            while chars.get(j) == Some(&'#') {
                hashes += 1;
                j += 1;
            }
            if chars.get(j) != Some(&'"') {
                out.push(c);
                i += 1;
                continue;
            }
            out.extend(std::iter::repeat_n(' ', j + 1 - i));
            i = j + 1;
            while i < chars.len() {
                let closes =
                    chars[i] == '"' && (0..hashes).all(|k| chars.get(i + 1 + k) == Some(&'#'));
                if closes {
                    out.extend(std::iter::repeat_n(' ', 1 + hashes));
                    i += 1 + hashes;
                    break;
                }
                out.push(blank(chars[i]));
                i += 1;
            }
        } else if c == '"' {
            out.push(' ');
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                if chars[i] == '\\' {
                    out.push(' ');
                    i += 1;
                }
                if i < chars.len() {
                    out.push(blank(chars[i]));
                    i += 1;
                }
            }
            out.push(' ');
            i += 1;
        } else if c == '\'' {
            // A char literal ('x', '\n', '\u{1b}') or a lifetime ('a).
            if next == Some('\\') {
                let mut j = i + 2;
                while j < chars.len() && chars[j] != '\'' {
                    j += 1;
                }
                out.extend(std::iter::repeat_n(' ', j + 1 - i));
                i = j + 1;
            } else if chars.get(i + 2) == Some(&'\'') {
                out.push_str("   ");
                i += 3;
            } else {
                out.push(c);
                i += 1;
            }
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

fn ident_before(chars: &[char], i: usize) -> bool {
    i > 0 && (chars[i - 1].is_alphanumeric() || chars[i - 1] == '_')
}

/// Every top-level module that `code` names, with its offset: after `crate::`, inside a
/// `crate::{...}` group (its first-level names), and after enough `super::` to climb out of a
/// module `depth` levels deep.
fn top_level_references(code: &str, depth: usize) -> Vec<(usize, String)> {
    let bytes = code.as_bytes();
    let mut out = Vec::new();
    let is_ident = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let skip_ws = |mut j: usize| {
        while j < bytes.len() && bytes[j].is_ascii_whitespace() {
            j += 1;
        }
        j
    };
    let ident_at = |j: usize| {
        let end = (j..bytes.len())
            .find(|&k| !is_ident(bytes[k]))
            .unwrap_or(bytes.len());
        (&code[j..end], end)
    };
    let mut i = 0;
    while i < bytes.len() {
        if is_ident(bytes[i]) && (i == 0 || !is_ident(bytes[i - 1])) {
            let (word, end) = ident_at(i);
            // Count a `super::super::...` chain: it reaches the crate root after `depth` steps.
            let mut supers = 0;
            let mut j = i;
            let mut root_at = None;
            if word == "crate" {
                root_at = Some(end);
            } else if word == "super" {
                let mut k = i;
                loop {
                    let (w, e) = ident_at(k);
                    if w != "super" {
                        break;
                    }
                    supers += 1;
                    j = e;
                    let after = skip_ws(e);
                    if code[after..].starts_with("::") {
                        k = skip_ws(after + 2);
                    } else {
                        break;
                    }
                }
                if supers >= depth {
                    root_at = Some(j);
                }
            }
            if let Some(at) = root_at {
                let after = skip_ws(at);
                if code[after..].starts_with("::") {
                    let next = skip_ws(after + 2);
                    if bytes.get(next) == Some(&b'{') {
                        out.extend(group_heads(code, next + 1));
                    } else {
                        let (name, _) = ident_at(next);
                        if !name.is_empty() {
                            out.push((next, name.to_string()));
                        }
                    }
                }
            }
            i = end.max(i + 1);
        } else {
            i += 1;
        }
    }
    out
}

/// The first name of each item of a `{a::b, c, d::{e}}` group starting after its `{`.
fn group_heads(code: &str, start: usize) -> Vec<(usize, String)> {
    let bytes = code.as_bytes();
    let mut out = Vec::new();
    let mut depth = 1;
    let mut expect_head = true;
    let mut i = start;
    while i < bytes.len() && depth > 0 {
        let b = bytes[i];
        match b {
            b'{' => depth += 1,
            b'}' => depth -= 1,
            b',' if depth == 1 => expect_head = true,
            _ if expect_head && (b.is_ascii_alphanumeric() || b == b'_') => {
                let end = (i..bytes.len())
                    .find(|&k| !(bytes[k].is_ascii_alphanumeric() || bytes[k] == b'_'))
                    .unwrap_or(bytes.len());
                out.push((i, code[i..end].to_string()));
                expect_head = false;
                i = end;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    out
}
