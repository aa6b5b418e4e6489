//! Setting the daemon up: the system-wide policy (`~` is every user's home), the guard's own
//! files in both their spellings, the state directory's modes, and on macOS [`serve`], which
//! starts the runtime, the [`DaemonCore`](super::DaemonCore) and the Endpoint Security clients.
//!
//! Everything but [`serve`] is plain path and file work that compiles and is tested everywhere.

use std::path::{Path, PathBuf};

use crate::paths::Locations;
use crate::policy::{LoadContext, Platform};

/// Where macOS keeps user homes.
pub const USERS_DIR: &str = "/Users";
/// The daemon's log directory (launchd's stdout/stderr and the denial log).
pub const LOG_DIR: &str = "/var/log/agent-guard";
/// The LaunchDaemon plist that starts the daemon.
pub const LAUNCH_DAEMON_PLIST: &str = "/Library/LaunchDaemons/com.agent-guard.daemon.plist";
/// Where the nix-darwin module installs the signed app bundle.
pub const APP_SUPPORT_DIR: &str = "/Library/Application Support/agent-guard";

/// The home directories under `users_dir` (`/Users` on macOS): every directory except `Shared`
/// and dot-directories, sorted. Symlinks are not followed: a link in `/Users` is not a home.
pub fn user_homes(users_dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(users_dir) else {
        return Vec::new();
    };
    let mut homes: Vec<PathBuf> = entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter(|e| {
            let name = e.file_name();
            let name = name.to_string_lossy();
            !name.starts_with('.') && name != "Shared"
        })
        .map(|e| e.path())
        .collect();
    homes.sort();
    homes
}

/// A path and, for the directories macOS firmlinks under `/private` (`/etc`, `/var`, `/tmp`),
/// its `/private` spelling: ES reports the real path (`/private/etc/agent-guard/policy.json`),
/// and the policy's guard paths are taken literally, so both must be guarded.
fn with_private_alias(path: &Path) -> Vec<PathBuf> {
    let mut out = vec![path.to_path_buf()];
    for top in ["/etc", "/var", "/tmp"] {
        if let Ok(rest) = path.strip_prefix(top) {
            out.push(Path::new("/private").join(&top[1..]).join(rest));
        }
    }
    out
}

/// How the daemon loads the policy: macOS path rules, `~` = each of `homes`, the guard's own
/// files read-only to agents, and the override requests spool writable by them.
pub fn daemon_context(
    homes: Vec<PathBuf>,
    locations: &Locations,
    policy_file: Option<&Path>,
    binary: Option<&Path>,
) -> LoadContext {
    let mut guard: Vec<PathBuf> = vec![
        PathBuf::from(crate::paths::SYSTEM_POLICY_DIR),
        locations.state_dir.clone(),
        PathBuf::from(LOG_DIR),
        PathBuf::from(LAUNCH_DAEMON_PLIST),
        PathBuf::from(APP_SUPPORT_DIR),
        PathBuf::from("/usr/local/bin/agent-guard"),
    ];
    guard.extend(locations.guarded_files());
    guard.extend(policy_file.map(Path::to_path_buf));
    guard.extend(binary.map(Path::to_path_buf));
    let mut guard_paths: Vec<PathBuf> = guard.iter().flat_map(|p| with_private_alias(p)).collect();
    guard_paths.sort();
    guard_paths.dedup();
    LoadContext {
        platform: Platform::MacOs,
        homes,
        guard_paths,
        agent_writable: with_private_alias(&locations.requests_dir),
        unreadable: with_private_alias(&locations.store),
        resolve_symlinks: true,
    }
}

/// Create the daemon's state directory and the override requests spool with the modes that let
/// every user's agent file a request and nobody tamper with another's:
/// - the state directory `0711`: others may pass through it to the spool, not list it (its
///   files are reached by name: the audit store and grants are created `0644`);
/// - the spool `1777` (sticky, like `/tmp`): others may create files in it and list it, but not
///   rename, delete or (files are `0644`) rewrite anyone else's. Not `1733` (write-only): `override
///   request` lists the spool for its per-agent rate limit, and would fail for every user. The
///   cost is that users can read each other's pending requests (a path and a reason).
///
/// Existing directories get these modes too (an old `0700` install would lock users out).
#[cfg(unix)]
pub fn prepare_state_dirs(locations: &Locations) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    for (dir, mode) in [
        (&locations.state_dir, 0o711),
        (&locations.requests_dir, 0o1777),
    ] {
        std::fs::create_dir_all(dir)?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode))?;
    }
    Ok(())
}

/// Why the daemon stopped, or could not start.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("no user home under {USERS_DIR}: there is nothing to protect `~` in; create a user, then restart the daemon")]
    NoHomes,
    /// The policy named on the command line is invalid (the system-wide one falls back to the
    /// embedded default instead: protecting beats not starting).
    #[error(transparent)]
    Policy(#[from] crate::policy::PolicyError),
    /// Approved overrides exist but cannot be read.
    #[error(transparent)]
    Grants(#[from] crate::overrides::OverrideError),
    #[error(transparent)]
    Patterns(#[from] crate::lineage::PatternError),
    #[error(transparent)]
    Start(#[from] crate::platform::macos::StartError),
}

impl DaemonError {
    /// The process exit status, under launchd (`under_launchd`: parent pid 1) or from a terminal.
    ///
    /// launchd's `KeepAlive = { SuccessfulExit = false; }` restarts the daemon after a non-zero
    /// exit (every `ThrottleInterval`, 30 s) and never after exit 0. The start errors only an
    /// action on the daemon itself can fix (its signature, Full Disk Access, root, macOS) exit 0
    /// under launchd ([`StartError::exit_code_under`]): that action restarts it anyway. The
    /// errors here keep their non-zero status under launchd too, because they mend without
    /// anyone touching the daemon: a user account appears under /Users, the policy's agent
    /// patterns or the overrides file are fixed, a full disk is emptied. A guard that comes back
    /// by itself is worth a line in daemon.log every 30 s until then.
    /// (sysexits.h: 78 configuration; 2 a bad `--policy` on the command line.)
    ///
    /// [`StartError::exit_code_under`]: crate::platform::macos::StartError::exit_code_under
    pub fn exit_code_under(&self, under_launchd: bool) -> i32 {
        match self {
            DaemonError::Policy(_) => 2,
            DaemonError::NoHomes | DaemonError::Grants(_) | DaemonError::Patterns(_) => 78,
            DaemonError::Start(e) => e.exit_code_under(under_launchd),
        }
    }
}

/// Run the daemon until it is stopped: the policy (`policy`, else the system-wide file, else the
/// embedded default until that file appears), the runtime in the daemon's locations, the
/// [`DaemonCore`](super::DaemonCore) as the ES handler, policy reloads to the file client's
/// muting, and the ES clients themselves (`platform::macos::run_daemon`).
#[cfg(target_os = "macos")]
pub fn serve(policy: Option<&Path>) -> Result<crate::platform::macos::Stopped, DaemonError> {
    use std::sync::atomic::Ordering;
    use std::sync::Arc;
    use std::time::Duration;

    use super::DaemonCore;
    use crate::paths::{absolute, SYSTEM_POLICY, SYSTEM_POLICY_DIR};
    use crate::platform::macos::{self, sys::LiveInspector};
    use crate::runtime::{Runtime, RuntimeConfig};

    let locations = Locations::macos_daemon();
    let homes = user_homes(Path::new(USERS_DIR));
    if homes.is_empty() {
        return Err(DaemonError::NoHomes);
    }
    // The directories launchd's plist and the runtime write into; root-owned, readable by all
    // (the denial log is for users to read, and the policy is public).
    for dir in [SYSTEM_POLICY_DIR, LOG_DIR] {
        if let Err(e) = std::fs::create_dir_all(dir) {
            tracing::warn!("cannot create {dir}: {e}");
        }
    }
    if let Err(e) = prepare_state_dirs(&locations) {
        tracing::error!(
            "cannot prepare {} (override requests will not reach the daemon): {e}",
            locations.requests_dir.display()
        );
    }
    let explicit = policy.map(absolute);
    let policy_file = explicit
        .clone()
        .unwrap_or_else(|| PathBuf::from(SYSTEM_POLICY));
    let binary = std::env::current_exe().ok();
    let ctx = daemon_context(homes, &locations, Some(&policy_file), binary.as_deref());
    let policy = if policy_file.exists() || explicit.is_some() {
        match crate::policy::load_file(&policy_file, &ctx) {
            Ok(policy) => policy,
            Err(e) if explicit.is_some() => return Err(e.into()),
            // Under launchd: protecting by the default beats not starting; the watcher takes
            // the fixed file when it is written.
            Err(e) => {
                tracing::error!(
                    "{e}; running with the embedded default policy until the file is fixed"
                );
                crate::policy::embedded_default(&ctx)
            }
        }
    } else {
        tracing::warn!(
            "{} does not exist; running with the embedded default policy until it does",
            policy_file.display()
        );
        crate::policy::embedded_default(&ctx)
    };
    for warning in &policy.warnings {
        tracing::warn!("policy: {warning}");
    }
    let config = RuntimeConfig {
        policy_file: Some(policy_file),
        ctx,
        locations,
        force_audit: false,
        // Clones before answering (docs/snapshots.md, "macOS").
        keeps: true,
    };
    let runtime = Arc::new(Runtime::new(policy, config)?);
    let core = Arc::new(DaemonCore::new(
        runtime.clone(),
        Arc::new(LiveInspector),
        Arc::new(macos::sys::Clonefile),
    )?);
    let (control, commands) = macos::daemon_control();
    {
        let control = control.clone();
        runtime.on_policy_reload(move || {
            control.refresh_muting();
        });
    }
    runtime.start_background();
    // The sensor's counters, for `status` (the status file is written once a second anyway).
    {
        let runtime = Arc::downgrade(&runtime);
        let control = control.clone();
        std::thread::Builder::new()
            .name("agent-guard-counters".into())
            .spawn(move || loop {
                let Some(runtime) = runtime.upgrade() else {
                    return;
                };
                let c = control.counters();
                let counters = &runtime.counters;
                counters
                    .deadline_misses
                    .store(c.misses(), Ordering::Relaxed);
                counters
                    .dropped_events
                    .store(c.dropped_events, Ordering::Relaxed);
                drop(runtime);
                std::thread::sleep(Duration::from_secs(1));
            })
            .ok();
    }
    let result = macos::run_daemon(core, commands);
    runtime.flush();
    runtime.remove_status();
    Ok(result?)
}
