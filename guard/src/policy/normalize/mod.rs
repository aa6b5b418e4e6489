//! From a [`PolicyFile`] to a [`Policy`]: defaults filled in, paths expanded and resolved, globs
//! compiled, everything validated with errors that name the key path.
//!
//! This is the only place policy paths are touched: `~` and `$HOME` expanded (to every user's
//! home for the macOS daemon), relative paths rejected, `.`/`..`/trailing slashes removed,
//! symlinked zone roots resolved (both the literal and the resolved root are zones, so the link
//! itself cannot be renamed away either), and on macOS `/tmp`, `/var`, `/etc` mapped to
//! `/private/...` and matching made case-insensitive.

mod keys;
mod paths;
mod tools;

use std::path::{Path, PathBuf};

use super::file::{BrakeEntry, PolicyFile, SnapshotsEntry};
use super::zones::{ZoneIndex, ZoneKind};
use super::{CommandServers, ExecRules, Policy, PolicyError, DEFAULT_POLICY_JSON};
use crate::vocab::path::clean;
pub use paths::resolve_existing_prefix;
use paths::Normalizer;

/// Which platform's path rules apply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Platform {
    Linux,
    MacOs,
}

impl Platform {
    pub fn current() -> Platform {
        if cfg!(target_os = "macos") {
            Platform::MacOs
        } else {
            Platform::Linux
        }
    }
}

/// What loading needs to know about the machine.
#[derive(Clone, Debug)]
pub struct LoadContext {
    pub platform: Platform,
    /// What `~` and `$HOME` mean: one home for `run`, every user's home for the macOS daemon.
    pub homes: Vec<PathBuf>,
    /// agent-guard's own files (policy file, state dir, logs, binary): read-only to agents.
    pub guard_paths: Vec<PathBuf>,
    /// Paths inside the guard's own files that agents may write: the override requests spool.
    pub agent_writable: Vec<PathBuf>,
    /// Paths inside the guard's own files that agents may not even read: the snapshot store.
    pub unreadable: Vec<PathBuf>,
    /// Resolve symlinked zone roots on this machine's file system (off for pure tests).
    pub resolve_symlinks: bool,
}

impl LoadContext {
    /// For one user on this machine.
    pub fn for_home(home: PathBuf) -> LoadContext {
        LoadContext {
            platform: Platform::current(),
            homes: vec![home],
            guard_paths: Vec::new(),
            agent_writable: Vec::new(),
            unreadable: Vec::new(),
            resolve_symlinks: true,
        }
    }
}

const DEFAULT_MAX_OVERRIDE_TTL: u64 = 3600;

/// Programs that run arbitrary code given on their command line: never trusted by default.
const INTERPRETERS: &[&str] = &[
    "node", "nodejs", "python", "python3", "bun", "deno", "perl", "ruby", "sh", "bash", "zsh",
    "php", "lua",
];

/// Parse a policy from JSON text. `file` names it in errors. Whole lines whose first
/// non-blank characters are `//` are comments (as `agent-guard init` writes them): they read as
/// blank lines, so errors keep their line numbers. A JSON string cannot span lines, so such a
/// line is never inside one.
pub fn parse(text: &str, file: &Path) -> Result<PolicyFile, PolicyError> {
    let text = without_comment_lines(text);
    let de = &mut serde_json::Deserializer::from_str(&text);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let message = if inner.is_eof() {
            format!(
                "the file ends early (line {}): expected complete JSON",
                inner.line()
            )
        } else {
            inner.to_string()
        };
        PolicyError::Syntax {
            file: file.to_path_buf(),
            path: display_key(&path),
            message,
        }
    })
}

fn display_key(path: &str) -> String {
    if path.is_empty() || path == "." || path == "?" {
        "(top level)".to_string()
    } else {
        path.to_string()
    }
}

/// The embedded default, parsed once. It is part of the binary and checked by tests.
pub fn default_file() -> &'static PolicyFile {
    static DEFAULT: std::sync::LazyLock<PolicyFile> = std::sync::LazyLock::new(|| {
        parse(DEFAULT_POLICY_JSON, Path::new("<embedded default>"))
            .expect("the embedded default policy is valid JSON of the policy schema")
    });
    &DEFAULT
}

/// Fill in every key absent from `file` with the default's value.
pub fn with_defaults(file: PolicyFile) -> PolicyFile {
    let d = default_file().clone();
    PolicyFile {
        mode: file.mode.or(d.mode),
        fail_mode: file.fail_mode.or(d.fail_mode),
        ai_agent_patterns: file.ai_agent_patterns.or(d.ai_agent_patterns),
        protected_zones: file.protected_zones.or(d.protected_zones),
        readonly_zones: file.readonly_zones.or(d.readonly_zones),
        secret_zones: file.secret_zones.or(d.secret_zones),
        temporary_overrides: file.temporary_overrides.or(d.temporary_overrides),
        trusted_tools: file.trusted_tools.or(d.trusted_tools),
        exec_rules: file.exec_rules.or(d.exec_rules),
        command_servers: file.command_servers.or(d.command_servers),
        command_dirs: file.command_dirs.or(d.command_dirs),
        max_override_ttl: file.max_override_ttl.or(d.max_override_ttl),
        audit_retention: file.audit_retention.or(d.audit_retention),
        snapshots: Some(snapshots_with_defaults(file.snapshots, d.snapshots)),
    }
}

/// The snapshot keys key by key: one the file leaves out takes the default's value (a file that
/// sets only `max_age` keeps the default limits).
fn snapshots_with_defaults(
    file: Option<SnapshotsEntry>,
    default: Option<SnapshotsEntry>,
) -> SnapshotsEntry {
    let (f, d) = (file.unwrap_or_default(), default.unwrap_or_default());
    let (fb, db) = (f.brake.unwrap_or_default(), d.brake.unwrap_or_default());
    SnapshotsEntry {
        max_age: f.max_age.or(d.max_age),
        max_size_mb: f.max_size_mb.or(d.max_size_mb),
        max_copy_mb: f.max_copy_mb.or(d.max_copy_mb),
        max_tree_copy_mb: f.max_tree_copy_mb.or(d.max_tree_copy_mb),
        brake: Some(BrakeEntry {
            files: fb.files.or(db.files),
            mb: fb.mb.or(db.mb),
            window: fb.window.or(db.window),
        }),
    }
}

/// Validate and normalize a parsed file. `source` names it in errors.
pub fn normalize(
    file: PolicyFile,
    source: &Path,
    ctx: &LoadContext,
) -> Result<Policy, PolicyError> {
    let n = Normalizer { source, ctx };
    // The default's exec rules name git in `unless_run_by`; a file that keeps them but trusts
    // other tools is not wrong, git just cannot vouch there.
    let own_exec_rules = file.exec_rules.is_some();
    let file = with_defaults(file);
    let mut warnings = Vec::new();

    let agent_patterns = n.agent_patterns(&file)?;
    let mut zones = Vec::new();
    n.guard_zones(&mut zones)?;
    let protected = n.protected_zones(&file, &mut zones)?;
    let (readonly, readonly_patterns) = n.readonly_zones(&file, &mut zones)?;
    let secret = n.plain_zones(
        &file.secret_zones,
        "secret_zones",
        ZoneKind::Secret,
        &mut zones,
    )?;
    let zones = ZoneIndex::new(zones, ctx.platform == Platform::MacOs);
    let (overrides, normalized_overrides) = n.temporary_overrides(&file, &zones)?;
    let (trusted_tools, normalized_tools) = n.trusted_tools(&file, &mut warnings)?;
    let exec_rules = n.exec_rules(&file, &trusted_tools, own_exec_rules)?;
    let command_servers =
        CommandServers::parse(file.command_servers.as_deref().unwrap_or_default())
            .map_err(|(i, message)| n.invalid(format!("command_servers[{i}]"), message))?;
    let command_dirs = n.command_dirs(&file)?;
    let max_override_ttl = n.max_override_ttl(&file)?;
    let (retention_max_age, retention_max_bytes) = n.audit_retention(&file)?;
    let snapshots = n.snapshots(&file)?;

    let normalized = PolicyFile {
        protected_zones: Some(protected),
        readonly_zones: Some(readonly),
        secret_zones: Some(secret),
        temporary_overrides: Some(normalized_overrides),
        trusted_tools: Some(normalized_tools),
        ..file
    };
    let version = version_of(&normalized);
    Ok(Policy {
        mode: normalized.mode.unwrap_or_default(),
        fail_mode: normalized.fail_mode.unwrap_or_default(),
        agent_patterns,
        zones,
        readonly_patterns,
        overrides,
        trusted_tools,
        exec_rules: ExecRules::new(exec_rules),
        command_servers,
        command_dirs,
        max_override_ttl,
        retention_max_age,
        retention_max_bytes,
        snapshots,
        normalized,
        version,
        source: source.display().to_string(),
        warnings,
    })
}

/// Why an override path is refused: `/`, a home directory, or a zone root or an ancestor of one.
pub fn override_too_broad(path: &Path, zones: &ZoneIndex, homes: &[PathBuf]) -> Option<String> {
    if path == Path::new("/") {
        return Some("an override may not cover / as a whole".to_string());
    }
    if homes.iter().any(|h| clean(h) == path) {
        return Some(format!(
            "an override may not cover the home directory {} as a whole",
            path.display()
        ));
    }
    for kind in [
        ZoneKind::Protected,
        ZoneKind::Readonly,
        ZoneKind::Secret,
        ZoneKind::Guard,
    ] {
        if let Some(zone) = zones.root_at_or_below(path, kind) {
            return Some(format!(
                "an override may not cover the root of the {} zone {} as a whole; name a path inside it",
                kind.as_str(),
                zone.root.display()
            ));
        }
    }
    None
}

/// `text` with every whole-line `//` comment made a blank line.
fn without_comment_lines(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.lines().any(|l| l.trim_start().starts_with("//")) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        if line.trim_start().starts_with("//") {
            out.push_str(if line.ends_with('\n') { "\n" } else { "" });
        } else {
            out.push_str(line);
        }
    }
    std::borrow::Cow::Owned(out)
}

/// A duration in whole seconds (`90s`, `10m`, `2h`, `30d`), as the policy writes them.
pub fn parse_duration(s: &str) -> Option<u64> {
    crate::duration::parse_duration(s).ok().map(|d| d.as_secs())
}

fn parse_rfc3339(s: &str) -> Option<u64> {
    let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()?;
    u64::try_from(t.unix_timestamp()).ok()
}

/// FNV-1a over the normalized JSON: stable across builds and platforms, unlike std's hasher.
fn version_of(file: &PolicyFile) -> String {
    let json = serde_json::to_vec(file).unwrap_or_default();
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in json {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{hash:016x}")
}
