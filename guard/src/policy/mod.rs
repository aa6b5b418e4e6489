//! The policy: what agents may do where.
//!
//! A policy file ([`file::PolicyFile`], JSON) is validated and normalized once at load into a
//! [`Policy`]: zone paths absolute, clean, symlinks of zone roots resolved, `~` expanded, globs
//! compiled, exec rules indexed by program. The engine only ever sees a [`Policy`], so no path
//! work or parsing happens on the hot path. [`watch`] reloads the file when it changes and keeps
//! the last good policy when the new one is invalid.
//!
//! Loading reads the file system (the policy file, symlinks of zone roots); deciding never does.

pub mod commands;
pub mod exec_rules;
pub mod file;
pub mod normalize;
pub mod servers;
pub mod user;
pub mod watch;
pub mod zones;

use std::path::{Path, PathBuf};

use globset::GlobSet;

use crate::vocab::{Actor, Grant, IoError};
pub use commands::CommandDirs;
pub use exec_rules::{ExecCall, ExecRule, ExecRules, RunBy};
pub use file::{FailMode, Mode, OnDestroy, PolicyFile};
pub use normalize::{LoadContext, Platform};
pub use servers::CommandServers;
pub use user::{load_for_user, LoadedPolicy};
pub use zones::{PatternZone, PatternZones, Zone, ZoneHits, ZoneIndex, ZoneKind};

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
    /// Read-only zones named by globs (`**/.git/hooks/**`).
    pub readonly_patterns: PatternZones,
    /// `temporary_overrides`, as grants with ids `policy:N`.
    pub overrides: Vec<Grant>,
    pub trusted_tools: Vec<TrustedTool>,
    pub exec_rules: ExecRules,
    /// Servers outside an agent's tree it may not connect to (`command_servers`).
    pub command_servers: CommandServers,
    /// The user's command directories, where an agent may not shadow a system command.
    pub command_dirs: CommandDirs,
    /// Longest lifetime of an approved override, in seconds.
    pub max_override_ttl: u64,
    /// Audit trail retention: age in seconds and size in bytes.
    pub retention_max_age: Option<u64>,
    pub retention_max_bytes: Option<u64>,
    /// The snapshot store's limits and the brake.
    pub snapshots: SnapshotPolicy,
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

    /// Whether some protected zone keeps what agents destroy (so a sensor needs its store).
    pub fn keeps(&self) -> bool {
        self.zones
            .of_kind(ZoneKind::Protected)
            .any(|z| z.on_destroy == OnDestroy::Keep)
    }
}

/// The snapshot store's limits, normalized (`snapshots` in the file).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SnapshotPolicy {
    /// Kept entries older than this many seconds are purged.
    pub max_age: u64,
    /// The store's size limit in bytes.
    pub max_bytes: u64,
    /// The largest file kept by copy.
    pub max_copy_bytes: u64,
    /// The largest directory tree copied when moved out of its zone.
    pub max_tree_bytes: u64,
    pub brake: BrakeLimits,
}

/// The brake on mass destruction: at most `files` files or `bytes` bytes deleted or moved out of
/// the zones by one agent session within `window_secs`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BrakeLimits {
    pub files: u64,
    pub bytes: u64,
    pub window_secs: u64,
}

/// The prefix of Apple's own code-signing identifiers.
pub const APPLE_SIGNING_PREFIX: &str = "com.apple.";

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
    /// `argv[0]` or comm (a copy of `rm` named `git` is not git).
    ///
    /// A signing identifier counts as Santa counts it: an Apple one (`com.apple.*`) alone (the
    /// sensor reports one only for Apple's platform binaries), any other only with the team
    /// that signed it, since any developer may sign code with any identifier.
    pub fn identifies(&self, actor: &Actor) -> bool {
        if let Some(signing_id) = &self.signing_id {
            let team_ok = match &self.team_id {
                Some(team) => actor.team_id.as_ref() == Some(team),
                None => signing_id.starts_with(APPLE_SIGNING_PREFIX),
            };
            if team_ok && actor.signing_id.as_deref() == Some(signing_id.as_str()) {
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
