//! Policy parsing and validation: the documented examples parse, codex-es-guard's file parses
//! and keeps its meaning, and each bad input gets its own error naming the key path.

use std::path::{Path, PathBuf};

use agent_guard::policy::{self, LoadContext, Platform, ZoneKind};

fn ctx() -> LoadContext {
    LoadContext {
        platform: Platform::Linux,
        homes: vec![PathBuf::from("/home/u")],
        guard_paths: vec![],
        agent_writable: vec![],
        unreadable: vec![],
        resolve_symlinks: false,
    }
}

fn load(json: &str) -> Result<policy::Policy, String> {
    policy::from_json(json, Path::new("p.json"), &ctx()).map_err(|e| e.to_string())
}

/// The fenced blocks of a Markdown file whose info string starts with `json` and which
/// `wanted` accepts.
fn json_blocks(markdown: &str, wanted: impl Fn(&str) -> bool) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in markdown.lines() {
        match &mut current {
            None if line.trim_start().starts_with("```")
                && wanted(line.trim_start().trim_start_matches('`')) =>
            {
                current = Some(String::new())
            }
            Some(block) if line.trim_start().starts_with("```") => {
                blocks.push(std::mem::take(block));
                current = None;
            }
            Some(block) => {
                block.push_str(line);
                block.push('\n');
            }
            None => {}
        }
    }
    blocks
}

#[test]
fn readme_policy_examples_parse() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).unwrap();
    let blocks = json_blocks(&readme, |info| info.starts_with("json policy"));
    assert!(
        blocks.len() >= 3,
        "the README should carry policy examples marked ```json policy"
    );
    for block in blocks {
        if let Err(e) = load(&block) {
            panic!("README example does not load: {e}\n{block}");
        }
    }
}

#[test]
fn design_policy_example_parses() {
    let design = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/design.md");
    let text = std::fs::read_to_string(design).expect("docs/design.md is in the repository");
    let blocks = json_blocks(&text, |info| info.trim() == "json");
    let policies: Vec<_> = blocks
        .iter()
        .filter(|b| b.contains("protected_zones"))
        .collect();
    assert!(!policies.is_empty(), "docs/design.md has a policy example");
    for block in policies {
        load(block)
            .unwrap_or_else(|e| panic!("docs/design.md example does not load: {e}\n{block}"));
    }
}

#[test]
fn codex_es_guard_file_parses_and_keeps_defaults() {
    let codex = r#"{
      "protected_zones": ["/Users/you/important-project", "/Users/you/another-project"],
      "temporary_overrides": ["/Users/you/important-project/tmp-can-delete"],
      "trusted_tools": ["git", "cargo", "npm", "node", "python3"],
      "ai_agent_patterns": ["codex", "claude", "claude-code"]
    }"#;
    let p = load(codex).unwrap();
    assert_eq!(p.zones.of_kind(ZoneKind::Protected).count(), 2);
    // Its zones keep what agents destroy (the default's behaviour) rather than refuse it.
    assert!(p
        .zones
        .of_kind(ZoneKind::Protected)
        .all(|z| z.on_destroy == agent_guard::policy::OnDestroy::Keep));
    assert_eq!(p.overrides.len(), 1);
    // Absent keys come from the default: secrets and exec rules.
    assert!(p
        .zones
        .of_kind(ZoneKind::Secret)
        .any(|z| z.root == Path::new("/home/u/.ssh")));
    assert!(!p.exec_rules.is_empty());
    // Interpreters named explicitly are honoured (codex-es-guard's meaning) but warned about.
    assert!(
        p.warnings
            .iter()
            .any(|w| w.contains("\"node\" is an interpreter")),
        "{:?}",
        p.warnings
    );
    // Known names get the default's identity: git is identified by its executable.
    let git = p.trusted_tools.iter().find(|t| t.name == "git").unwrap();
    assert!(!git.exe.is_empty());
}

#[test]
fn explicit_empty_list_means_none() {
    let p = load(r#"{"secret_zones": [], "exec_rules": []}"#).unwrap();
    assert_eq!(p.zones.of_kind(ZoneKind::Secret).count(), 0);
    assert!(p.exec_rules.is_empty());
}

#[test]
fn default_policy_is_useful() {
    let p = policy::embedded_default(&ctx());
    let secret: Vec<_> = p
        .zones
        .of_kind(ZoneKind::Secret)
        .map(|z| z.root.clone())
        .collect();
    for s in [
        ".ssh",
        ".aws",
        ".gnupg",
        ".config/gh",
        ".netrc",
        ".docker/config.json",
        ".kube",
    ] {
        assert!(
            secret.contains(&Path::new("/home/u").join(s)),
            "{s} is secret by default"
        );
    }
    let home = p
        .zones
        .containing(Path::new("/home/u/src/x"), ZoneKind::Protected)
        .unwrap();
    assert!(home.excepts(Path::new("/home/u/.cache/pip/x")));
    assert!(home.excepts(Path::new("/home/u/src/app/target/debug/app")));
    assert!(home.excepts(Path::new("/home/u/src/app/target")));
    assert!(home.excepts(Path::new("/home/u/.claude/todos/x.json")));
    // cargo's cache tracker is SQLite with a rollback journal it deletes after every write: a
    // denied delete made every `cargo build` print "disk I/O error" and left a hot journal.
    assert!(home.excepts(Path::new("/home/u/.cargo/.global-cache-journal")));
    assert!(!home.excepts(Path::new("/home/u/.cargo/bin/cargo-foo")));
    assert!(!home.excepts(Path::new("/home/u/.cargo/config.toml")));
    assert!(!home.excepts(Path::new("/home/u/src/app/src/main.rs")));
    for name in ["node", "python3", "python", "perl", "bun", "deno"] {
        assert!(
            !p.trusted_tools.iter().any(|t| t.name == name),
            "{name} must not be trusted by default"
        );
    }
}

#[test]
fn zone_paths_are_normalized() {
    let p =
        load(r#"{"protected_zones": ["/a/./b/../proj/", "$HOME/src", "${HOME}/x//y/"]}"#).unwrap();
    let roots: Vec<_> = p
        .zones
        .of_kind(ZoneKind::Protected)
        .map(|z| z.root.clone())
        .collect();
    assert_eq!(
        roots,
        [
            PathBuf::from("/a/proj"),
            "/home/u/src".into(),
            "/home/u/x/y".into()
        ]
    );
}

#[test]
fn symlinked_zone_root_is_resolved() {
    let dir = tempfile::tempdir().unwrap();
    let real = dir.path().join("real");
    std::fs::create_dir(&real).unwrap();
    let link = dir.path().join("link");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let mut c = ctx();
    c.resolve_symlinks = true;
    let json = format!(r#"{{"protected_zones": ["{}"]}}"#, link.display());
    let p = policy::from_json(&json, Path::new("p.json"), &c).unwrap();
    let real = std::fs::canonicalize(&real).unwrap();
    assert!(p
        .zones
        .containing(&real.join("f"), ZoneKind::Protected)
        .is_some());
    assert!(p
        .zones
        .containing(&link.join("f"), ZoneKind::Protected)
        .is_some());
}

#[test]
fn a_zone_root_linked_to_what_does_not_exist_yet_also_guards_the_target() {
    // `~/.aws` -> a directory made later: once it exists, paths through the link resolve to it.
    let dir = tempfile::tempdir().unwrap();
    let base = std::fs::canonicalize(dir.path()).unwrap();
    let target = base.join("later/aws");
    let link = base.join("link");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let mut c = ctx();
    c.resolve_symlinks = true;
    let json = format!(r#"{{"secret_zones": ["{}"]}}"#, link.display());
    let p = policy::from_json(&json, Path::new("p.json"), &c).unwrap();
    assert!(p
        .zones
        .containing(&target.join("credentials"), ZoneKind::Secret)
        .is_some());
    assert!(p
        .zones
        .containing(&link.join("credentials"), ZoneKind::Secret)
        .is_some());
}

#[test]
fn each_bad_input_has_its_error() {
    let cases = [
        (
            r#"{"protected_zone": []}"#,
            "protected_zone",
            "unknown field `protected_zone`",
        ),
        (
            r#"{"protected_zones": ["src"]}"#,
            "protected_zones[0]",
            "is relative",
        ),
        (
            r#"{"protected_zones": [""]}"#,
            "protected_zones[0]",
            "empty string",
        ),
        (
            r#"{"protected_zones": [{"path": "/x", "exept": []}]}"#,
            "protected_zones[0].exept",
            "unknown field `exept`",
        ),
        (
            r#"{"protected_zones": [{"path": "/x", "except": ["/x/[bad"]}]}"#,
            "protected_zones[0].except",
            "not a valid glob",
        ),
        (
            r#"{"protected_zones": [3]}"#,
            "protected_zones[0]",
            "a string or an object",
        ),
        (
            r#"{"mode": "enforced"}"#,
            "mode",
            "unknown variant `enforced`",
        ),
        (
            r#"{"secret_zones": "~/.ssh"}"#,
            "secret_zones",
            "expected a sequence",
        ),
        (
            r#"{"temporary_overrides": [{"path": "/x/y", "ops": ["delete"]}]}"#,
            "temporary_overrides[0].ops[0]",
            "unknown variant `delete`",
        ),
        (
            r#"{"temporary_overrides": [{"path": "/x/y", "ops": []}]}"#,
            "temporary_overrides[0].ops",
            "at least one",
        ),
        (
            r#"{"temporary_overrides": [{"path": "/x/y", "expires_at": "tomorrow"}]}"#,
            "temporary_overrides[0].expires_at",
            "not a time",
        ),
        (
            r#"{"temporary_overrides": ["/"]}"#,
            "temporary_overrides[0]",
            "may not cover /",
        ),
        (
            r#"{"trusted_tools": [{"name": "x", "exe": ["bin/x"]}]}"#,
            "trusted_tools[0].exe[0]",
            "relative",
        ),
        (
            r#"{"trusted_tools": [{"name": ""}]}"#,
            "trusted_tools[0].name",
            "non-empty",
        ),
        (
            r#"{"exec_rules": [{"program": "/usr/bin/git", "reason": "x"}]}"#,
            "exec_rules[0].program",
            "basename",
        ),
        (
            r#"{"exec_rules": [{"program": "git", "reason": " "}]}"#,
            "exec_rules[0].reason",
            "one sentence",
        ),
        (
            r#"{"exec_rules": [{"program": "git"}]}"#,
            "exec_rules[0]",
            "missing field `reason`",
        ),
        (
            r#"{"ai_agent_patterns": [""]}"#,
            "ai_agent_patterns[0]",
            "non-empty",
        ),
        (
            r#"{"max_override_ttl": "forever"}"#,
            "max_override_ttl",
            "not a duration",
        ),
        (r#"{"protected_zones": ["/x"]"#, "(top level)", "ends early"),
    ];
    for (json, key, message) in cases {
        let err = load(json).expect_err(json);
        assert!(err.starts_with("p.json: "), "the file is named: {err}");
        assert!(
            err.contains(&format!(": {key}: ")),
            "{json}: key {key} not named in: {err}"
        );
        assert!(
            err.contains(message),
            "{json}: expected {message:?} in: {err}"
        );
    }
}
