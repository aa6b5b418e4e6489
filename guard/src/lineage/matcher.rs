//! Who is an agent, by name: [`AgentMatcher`] compares a process's names with the policy's
//! `ai_agent_patterns`.
//!
//! The names of a process (in the order they are tried, see [`MatchField`]):
//! 1. `exe`: the basename of the real executable;
//! 2. `argv0`: the basename of argv\[0\] as the process shows it now (Node's `process.title`);
//! 3. `comm`: the kernel's short name (Linux truncates it to 15 bytes);
//! 4. `script`: when the process is an interpreter (node, nodejs, python, python3, python3.X,
//!    bun, deno), the basename of its script: the first argument after argv\[0\] that is not an
//!    option (`-x`, `--flag`). For bun and deno a leading `run` subcommand is skipped.
//!
//! A pattern matches a name when, ignoring case,
//! - the name equals the pattern (`claude` ~ `claude`), or
//! - the name starts with the pattern followed by a character that is not a letter or digit
//!   (`claude` ~ `claude-code`, `codex` ~ `codex.js`, but `claude` !~ `claudette`), or
//! - the pattern contains `*` and matches the whole name as a glob (`*-agent` ~ `my-agent`).
//!
//! The comm is at most 15 bytes on Linux, so a comm of exactly 15 bytes also matches a longer
//! pattern that it is a prefix of (`claude-agent-gu` ~ `claude-agent-guard`).
//!
//! Matching by name is the weak signal: anything can be renamed. It is only how an agent is
//! recognized in the first place; what keeps its descendants attributed is lineage
//! ([`super::LineageTable`]), which no rename undoes. The matcher never reads the system.

use serde::Serialize;

use super::process::ProcessInfo;

/// Linux's `TASK_COMM_LEN` minus the terminating NUL.
const COMM_MAX_BYTES: usize = 15;

/// Interpreters whose script, not the interpreter itself, says what program runs.
const INTERPRETERS: &[&str] = &["node", "nodejs", "python", "python3", "bun", "deno"];

/// Which name of a process a pattern matched.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MatchField {
    Exe,
    Argv0,
    Comm,
    Script,
}

impl MatchField {
    pub fn as_str(self) -> &'static str {
        match self {
            MatchField::Exe => "exe",
            MatchField::Argv0 => "argv0",
            MatchField::Comm => "comm",
            MatchField::Script => "script",
        }
    }
}

/// One successful match: which pattern, on which field, against which name.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AgentMatch {
    pub pattern: String,
    pub field: MatchField,
    pub name: String,
}

/// An agent pattern that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum PatternError {
    #[error("ai_agent_patterns: empty pattern: expected a program name such as \"claude\"")]
    Empty,
    #[error("ai_agent_patterns: invalid glob {pattern:?}: {reason}")]
    BadGlob { pattern: String, reason: String },
}

struct Pattern {
    original: String,
    lowercase: String,
    glob: Option<globset::GlobMatcher>,
}

/// The policy's agent patterns, compiled once.
pub struct AgentMatcher {
    patterns: Vec<Pattern>,
}

impl std::fmt::Debug for AgentMatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.patterns.iter().map(|p| &p.original))
            .finish()
    }
}

impl AgentMatcher {
    pub fn new(patterns: &[String]) -> Result<AgentMatcher, PatternError> {
        let patterns = patterns
            .iter()
            .map(|original| {
                if original.trim().is_empty() {
                    return Err(PatternError::Empty);
                }
                let glob = if original.contains('*') {
                    let glob = globset::GlobBuilder::new(original)
                        .case_insensitive(true)
                        .build()
                        .map_err(|e| PatternError::BadGlob {
                            pattern: original.clone(),
                            reason: e.kind().to_string(),
                        })?;
                    Some(glob.compile_matcher())
                } else {
                    None
                };
                Ok(Pattern {
                    original: original.clone(),
                    lowercase: original.to_lowercase(),
                    glob,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(AgentMatcher { patterns })
    }

    /// The pattern that makes `info` an agent by its own names, if any.
    pub fn matches(&self, info: &ProcessInfo) -> Option<String> {
        self.find(info).map(|m| m.pattern)
    }

    /// Like [`AgentMatcher::matches`], and also says on which name (for `explain`).
    pub fn find(&self, info: &ProcessInfo) -> Option<AgentMatch> {
        let names = names_of(info);
        for (field, name) in &names {
            let lowercase = name.to_lowercase();
            for pattern in &self.patterns {
                if pattern.matches(&lowercase, *field == MatchField::Comm) {
                    return Some(AgentMatch {
                        pattern: pattern.original.clone(),
                        field: *field,
                        name: name.clone(),
                    });
                }
            }
        }
        None
    }

    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    pub fn patterns(&self) -> impl Iterator<Item = &str> {
        self.patterns.iter().map(|p| p.original.as_str())
    }
}

impl Pattern {
    /// `name` is already lowercase.
    fn matches(&self, name: &str, is_comm: bool) -> bool {
        if let Some(glob) = &self.glob {
            return glob.is_match(name);
        }
        let pattern = self.lowercase.as_str();
        if let Some(rest) = name.strip_prefix(pattern) {
            match rest.chars().next() {
                None => return true,
                Some(c) if !c.is_alphanumeric() => return true,
                Some(_) => {}
            }
        }
        // A truncated comm is a prefix of the real name.
        is_comm
            && name.len() == COMM_MAX_BYTES
            && pattern.len() > COMM_MAX_BYTES
            && pattern.as_bytes().starts_with(name.as_bytes())
    }
}

/// The names of `info` in the order they are tried, without empty ones.
fn names_of(info: &ProcessInfo) -> Vec<(MatchField, String)> {
    let exe = info.exe_name();
    let argv0 = info.argv0().map(basename);
    let mut names = Vec::with_capacity(4);
    if let Some(exe) = &exe {
        names.push((MatchField::Exe, exe.clone()));
    }
    if let Some(argv0) = &argv0 {
        names.push((MatchField::Argv0, argv0.to_string()));
    }
    names.push((MatchField::Comm, info.comm.clone()));
    let interpreter = [exe.as_deref(), argv0]
        .into_iter()
        .flatten()
        .find(|name| is_interpreter(name));
    if let Some(interpreter) = interpreter {
        if let Some(script) = script_of(interpreter, &info.argv) {
            names.push((MatchField::Script, basename(script).to_string()));
        }
    }
    names.retain(|(_, name)| !name.is_empty());
    names
}

/// The last `/`-separated component (the whole string when it has no `/`).
fn basename(path: &str) -> &str {
    let trimmed = path.trim_end_matches('/');
    match trimmed.rsplit_once('/') {
        Some((_, last)) => last,
        None => trimmed,
    }
}

fn is_interpreter(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    if INTERPRETERS.contains(&name.as_str()) {
        return true;
    }
    // python3.11, python3.12, ...
    name.strip_prefix("python3.")
        .is_some_and(|minor| !minor.is_empty() && minor.bytes().all(|b| b.is_ascii_digit()))
}

/// The script an interpreter runs: the first non-option argument after `argv[0]`. Options that
/// take a separate value (`node -r mod script`) are not understood; the value is taken for the
/// script, which at worst misses a match (lineage still covers the children).
fn script_of<'a>(interpreter: &str, argv: &'a [String]) -> Option<&'a str> {
    let skips_run = matches!(interpreter.to_ascii_lowercase().as_str(), "bun" | "deno");
    let mut operands = argv
        .iter()
        .skip(1)
        .map(String::as_str)
        .filter(|arg| !arg.is_empty() && !arg.starts_with('-'));
    let first = operands.next()?;
    if skips_run && first == "run" {
        return operands.next();
    }
    Some(first)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lineage::ProcessKey;
    use std::path::PathBuf;

    fn matcher(patterns: &[&str]) -> AgentMatcher {
        let patterns: Vec<String> = patterns.iter().map(|p| p.to_string()).collect();
        AgentMatcher::new(&patterns).unwrap()
    }

    fn process(exe: Option<&str>, argv: &[&str], comm: &str) -> ProcessInfo {
        ProcessInfo {
            key: ProcessKey { pid: 42, start: 7 },
            ppid: 1,
            exe: exe.map(PathBuf::from),
            exe_deleted: false,
            argv: argv.iter().map(|a| a.to_string()).collect(),
            comm: comm.to_string(),
        }
    }

    fn found(m: &AgentMatcher, info: &ProcessInfo) -> Option<(String, MatchField, String)> {
        m.find(info).map(|m| (m.pattern, m.field, m.name))
    }

    #[test]
    fn name_rule_equal_prefix_with_separator_and_case() {
        let m = matcher(&["claude", "codex"]);
        let by_exe = |exe: &str| m.matches(&process(Some(exe), &[], "x"));
        assert_eq!(by_exe("/usr/bin/claude").as_deref(), Some("claude"));
        assert_eq!(by_exe("/opt/claude-code").as_deref(), Some("claude"));
        assert_eq!(by_exe("/opt/codex.js").as_deref(), Some("codex"));
        assert_eq!(
            by_exe("/opt/codex-x86_64-unknown-linux-musl").as_deref(),
            Some("codex")
        );
        assert_eq!(by_exe("/opt/CLAUDE").as_deref(), Some("claude"));
        assert_eq!(by_exe("/opt/claudette"), None);
        assert_eq!(by_exe("/opt/claude2"), None);
        assert_eq!(by_exe("/opt/my-claude"), None);
        assert_eq!(by_exe("/usr/bin/bash"), None);
    }

    #[test]
    fn glob_patterns_match_whole_name_case_insensitively() {
        let m = matcher(&["*-agent"]);
        assert_eq!(
            m.matches(&process(Some("/bin/My-Agent"), &[], "x"))
                .as_deref(),
            Some("*-agent")
        );
        assert_eq!(m.matches(&process(Some("/bin/agent"), &[], "x")), None);
        assert!(matches!(
            AgentMatcher::new(&["[*".to_string()]),
            Err(PatternError::BadGlob { .. })
        ));
        assert!(matches!(
            AgentMatcher::new(&[" ".to_string()]),
            Err(PatternError::Empty)
        ));
    }

    #[test]
    fn fields_are_tried_in_order_and_reported() {
        let m = matcher(&["claude"]);
        // argv0 renamed (exec -a, process.title); exe and comm say sleep.
        let info = process(Some("/usr/bin/sleep"), &["/x/claude", "30"], "sleep");
        assert_eq!(
            found(&m, &info),
            Some(("claude".into(), MatchField::Argv0, "claude".into()))
        );
        // comm renamed by PR_SET_NAME.
        let info = process(Some("/usr/bin/sleep"), &["sleep"], "claude");
        assert_eq!(found(&m, &info).map(|f| f.1), Some(MatchField::Comm));
        // exe wins over the others.
        let info = process(Some("/opt/claude"), &["claude"], "claude");
        assert_eq!(found(&m, &info).map(|f| f.1), Some(MatchField::Exe));
    }

    #[test]
    fn interpreter_scripts_are_matched() {
        let m = matcher(&["claude", "codex"]);
        let cases: &[(&str, &[&str], Option<&str>)] = &[
            (
                "/usr/bin/node",
                &["node", "/usr/local/bin/claude"],
                Some("claude"),
            ),
            (
                "/usr/bin/node",
                &["node", "--inspect", "/x/codex.js", "a"],
                Some("codex"),
            ),
            (
                "/usr/bin/python3.12",
                &["python3", "-u", "claude.py"],
                Some("claude"),
            ),
            (
                "/usr/bin/python3.12",
                &["/usr/bin/python3.12", "claude_cli"],
                Some("claude"),
            ),
            ("/usr/bin/bun", &["bun", "run", "claude.ts"], Some("claude")),
            (
                "/usr/bin/deno",
                &["deno", "run", "-A", "codex.ts"],
                Some("codex"),
            ),
            // only the script, never a later argument
            ("/usr/bin/node", &["node", "server.js", "claude"], None),
            // not an interpreter: its first argument is data, not a program
            ("/usr/bin/cat", &["cat", "claude.txt"], None),
            ("/usr/bin/python3.x", &["python3.x", "claude.py"], None),
        ];
        for (exe, argv, want) in cases {
            let got = m.find(&process(Some(exe), argv, "node"));
            assert_eq!(
                got.as_ref().map(|g| g.pattern.as_str()),
                *want,
                "{exe} {argv:?}"
            );
            if want.is_some() {
                assert_eq!(got.unwrap().field, MatchField::Script, "{exe} {argv:?}");
            }
        }
    }

    #[test]
    fn truncated_comm_matches_a_long_pattern() {
        let m = matcher(&["claude-agent-guard-test"]);
        let info = process(Some("/usr/bin/sleep"), &["sleep"], "claude-agent-gu");
        assert_eq!(found(&m, &info).map(|f| f.1), Some(MatchField::Comm));
        // Only the comm is truncated; an argv0 or exe that short is a different name.
        let info = process(Some("/opt/claude-agent-gu"), &["claude-agent-gu"], "x");
        assert_eq!(m.matches(&info), None);
        // A 14-byte comm is complete, not a truncation.
        let info = process(None, &[], "claude-agent-g");
        assert_eq!(m.matches(&info), None);
    }

    #[test]
    fn empty_process_matches_nothing() {
        let m = matcher(&["claude"]);
        assert_eq!(m.matches(&process(None, &[], "")), None);
        assert!(matcher(&[]).is_empty());
        assert_eq!(
            matcher(&[]).matches(&process(Some("/x/claude"), &[], "")),
            None
        );
    }
}
