//! The policy: what agents may do where.
//!
//! A policy file ([`file::PolicyFile`], JSON) is validated and normalized once at load into a
//! [`Policy`]: zone paths absolute, clean, symlinks of zone roots resolved, `~` expanded, globs
//! compiled, exec rules indexed by program. The engine only ever sees a [`Policy`], so no path
//! work or parsing happens on the hot path. [`watch`] reloads the file when it changes and keeps
//! the last good policy when the new one is invalid.
//!
//! Loading reads the file system (the policy file, symlinks of zone roots); deciding never does.

pub mod file;
pub mod normalize;
pub mod user;
pub mod watch;
pub mod zones;

use std::path::{Path, PathBuf};

use globset::{GlobMatcher, GlobSet};

use crate::vocab::{Actor, Grant, IoError};
pub use file::{FailMode, Mode, PolicyFile};
pub use normalize::{LoadContext, Platform};
pub use user::{load_for_user, LoadedPolicy};
pub use zones::{Zone, ZoneHits, ZoneIndex, ZoneKind};

/// The embedded default policy (`agent-guard policy default`).
pub const DEFAULT_POLICY_JSON: &str = include_str!("default.json");

/// A policy error: which file, which key path, what was expected.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// The file cannot be read: `FILE: cannot read: ERROR`.
    #[error(transparent)]
    Read(#[from] IoError),
    #[error("{file}: {path}: {message}")]
    Syntax {
        file: PathBuf,
        path: String,
        message: String,
    },
    #[error("{file}: {path}: {message}")]
    Invalid {
        file: PathBuf,
        path: String,
        message: String,
    },
    #[error(
        "$HOME is not set to an absolute path: agent-guard needs it to expand ~ in the policy"
    )]
    NoHome,
}

/// A normalized, validated policy, ready for the engine.
#[derive(Clone, Debug)]
pub struct Policy {
    pub mode: Mode,
    pub fail_mode: FailMode,
    pub agent_patterns: Vec<String>,
    /// Every zone (protected, readonly, secret, and the guard's own files), indexed for lookup.
    pub zones: ZoneIndex,
    /// `temporary_overrides`, as grants with ids `policy:N`.
    pub overrides: Vec<Grant>,
    pub trusted_tools: Vec<TrustedTool>,
    pub exec_rules: ExecRules,
    /// Longest lifetime of an approved override, in seconds.
    pub max_override_ttl: u64,
    /// Audit trail retention: age in seconds and size in bytes.
    pub retention_max_age: Option<u64>,
    pub retention_max_bytes: Option<u64>,
    /// The file as normalized, for `policy show` and the policy version hash.
    pub normalized: PolicyFile,
    /// A short hash of the normalized policy (the `policy_version` of audit records).
    pub version: String,
    /// Where the policy came from (a file path, or `<embedded default>`).
    pub source: String,
    /// Warnings found while loading (e.g. a trusted tool matched by name only).
    pub warnings: Vec<String>,
}

impl Policy {
    /// Whether zone matching ignores case (macOS: APFS is case-insensitive by default).
    pub fn case_insensitive(&self) -> bool {
        self.zones.case_insensitive()
    }
}

/// A tool exempt from the protected-zone rules inside its scope.
#[derive(Clone, Debug)]
pub struct TrustedTool {
    pub name: String,
    /// Real executable paths that are this tool: literal paths (one hash probe) and patterns.
    /// Both empty and no `signing_id`: match on the executable's basename (codex-es-guard's
    /// meaning, warned about at load).
    pub exe: std::collections::HashSet<PathBuf>,
    pub exe_patterns: Option<GlobSet>,
    pub signing_id: Option<String>,
    pub team_id: Option<String>,
    /// Where the tool is exempt; `None` = everywhere in protected zones.
    pub scope: Option<GlobSet>,
}

impl TrustedTool {
    /// Whether `actor` is this tool, judged by its real executable or signing identity, never by
    /// argv[0] or comm (a copy of `rm` named `git` is not git).
    pub fn identifies(&self, actor: &Actor) -> bool {
        if let Some(signing_id) = &self.signing_id {
            if actor.signing_id.as_deref() == Some(signing_id.as_str())
                && self
                    .team_id
                    .as_ref()
                    .is_none_or(|t| actor.team_id.as_ref() == Some(t))
            {
                return true;
            }
        }
        if !self.exe.is_empty() || self.exe_patterns.is_some() {
            return self.exe.contains(&actor.exe)
                || self
                    .exe_patterns
                    .as_ref()
                    .is_some_and(|p| p.is_match(&actor.exe));
        }
        self.signing_id.is_none()
            && actor
                .exe
                .file_name()
                .is_some_and(|n| n == self.name.as_str())
    }

    /// Whether `path` is inside the tool's scope.
    pub fn covers(&self, path: &Path) -> bool {
        self.scope.as_ref().is_none_or(|s| s.is_match(path))
    }
}

/// Exec rules indexed by program basename, so an exec looks at only its program's rules.
#[derive(Clone, Debug, Default)]
pub struct ExecRules {
    by_program: std::collections::HashMap<String, Vec<ExecRule>>,
}

/// One exec rule, compiled.
#[derive(Clone, Debug)]
pub struct ExecRule {
    pub program: String,
    /// Index in the policy's `exec_rules` list (for the rule id in records).
    pub index: usize,
    pub args: Vec<GlobMatcher>,
    pub unless: Vec<GlobMatcher>,
    /// Trusted tools whose own subcommands may run the command (see [`RunBy`]).
    pub unless_run_by: Vec<RunBy>,
    pub reason: String,
    /// The rule as written, for messages: `git clean -f*`.
    pub display: String,
}

/// A trusted tool running one of its subcommands (`git stash`): what it execs for its own
/// operation is not the agent's command. `tool` names an entry of `trusted_tools`, so the tool is
/// known by its real executable, never by a name the agent could give a copy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunBy {
    pub tool: String,
    pub subcommand: String,
}

impl RunBy {
    /// Whether `actor` (the process that execs) is this tool running this subcommand.
    pub fn matches(&self, actor: &Actor, tools: &[TrustedTool]) -> bool {
        subcommand_of(&actor.args) == Some(self.subcommand.as_str())
            && tools
                .iter()
                .any(|t| t.name == self.tool && t.identifies(actor))
    }
}

/// The subcommand of a git-style command line: the first argument that is not an option, after
/// only `-C DIR` and `-c KEY=VALUE`. Any other option before it gives `None`: an option that takes
/// the next argument as its value would otherwise pass that value off as the subcommand.
fn subcommand_of(args: &[String]) -> Option<&str> {
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "-C" | "-c" => {
                args.next()?;
            }
            a if a.starts_with('-') => return None,
            a => return Some(a),
        }
    }
    None
}

impl ExecRules {
    pub fn new(rules: Vec<ExecRule>) -> ExecRules {
        let mut by_program: std::collections::HashMap<String, Vec<ExecRule>> = Default::default();
        for rule in rules {
            by_program
                .entry(rule.program.clone())
                .or_default()
                .push(rule);
        }
        ExecRules { by_program }
    }

    pub fn len(&self) -> usize {
        self.by_program.values().map(Vec::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.by_program.is_empty()
    }

    /// The first rule that matches an exec of `program` (the basename of the executable or of
    /// argv[0]) with `args` (argv without argv[0]) and that `applies` (to the process that execs).
    pub fn find(
        &self,
        programs: &[&str],
        args: &[String],
        applies: impl Fn(&ExecRule) -> bool,
    ) -> Option<&ExecRule> {
        let mut seen: Option<&str> = None;
        for program in programs {
            if seen == Some(*program) {
                continue;
            }
            seen = Some(program);
            let Some(rules) = self.by_program.get(*program) else {
                continue;
            };
            if let Some(rule) = rules.iter().find(|r| r.matches(args) && applies(r)) {
                return Some(rule);
            }
        }
        None
    }
}

impl ExecRule {
    /// `args` patterns match an ordered subsequence of the arguments; no `unless` pattern
    /// matches any argument.
    pub fn matches(&self, args: &[String]) -> bool {
        if args
            .iter()
            .any(|a| self.unless.iter().any(|u| u.is_match(a)))
        {
            return false;
        }
        let mut remaining = args.iter();
        self.args
            .iter()
            .all(|pattern| remaining.any(|a| pattern.is_match(a)))
    }
}

/// Parse and normalize a policy from JSON text; `source` names it in errors.
pub fn from_json(text: &str, source: &Path, ctx: &LoadContext) -> Result<Policy, PolicyError> {
    normalize::normalize(normalize::parse(text, source)?, source, ctx)
}

/// Read, parse and normalize a policy file.
pub fn load_file(file: &Path, ctx: &LoadContext) -> Result<Policy, PolicyError> {
    let text = std::fs::read_to_string(file).map_err(IoError::at(file, "read"))?;
    from_json(&text, file, ctx)
}

/// The embedded default, normalized for `ctx`.
pub fn embedded_default(ctx: &LoadContext) -> Policy {
    from_json(DEFAULT_POLICY_JSON, Path::new("<embedded default>"), ctx)
        .expect("the embedded default policy normalizes on every platform")
}

/// Which policy file applies when none is given on the command line: `$AGENT_GUARD_POLICY`,
/// then the user's `~/.config/agent-guard/policy.json` (`agent-guard init` writes it), then
/// `/etc/agent-guard/policy.json`, the first that exists; else `None` (the embedded default).
pub fn discover(env: &dyn Fn(&str) -> Option<String>) -> Option<PathBuf> {
    if let Some(p) = env(crate::paths::POLICY_ENV).filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p));
    }
    if let Some(dir) = crate::paths::user_policy_dir(env) {
        let user = dir.join("policy.json");
        if user.exists() {
            return Some(user);
        }
    }
    let system = Path::new(crate::paths::SYSTEM_POLICY);
    system.exists().then(|| system.to_path_buf())
}
