//! `agent-guard daemon`: the macOS Endpoint Security client, run as root by launchd.
//!
//! This file only wires things together: the system-wide policy (`~` = every user's home), the
//! runtime in the daemon's locations, [`crate::daemon::DaemonCore`] as the ES handler, policy
//! reloads to the file client's muting, and the ES clients themselves
//! (`platform::macos::run_daemon`). On other systems it says what to use instead.

use std::path::PathBuf;

use clap::Args;

#[derive(Args, Debug)]
pub struct DaemonArgs {
    /// The policy file (default: /etc/agent-guard/policy.json; while it does not exist, the
    /// embedded default, and the file is picked up when it appears).
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,
}

#[cfg(not(target_os = "macos"))]
pub fn run(_args: &DaemonArgs) -> anyhow::Result<i32> {
    eprintln!(
        "agent-guard daemon is the macOS Endpoint Security client; on Linux use `agent-guard run -- CMD`"
    );
    Ok(2)
}

#[cfg(target_os = "macos")]
pub fn run(args: &DaemonArgs) -> anyhow::Result<i32> {
    use std::path::Path;
    use std::sync::atomic::Ordering;
    use std::sync::Arc;
    use std::time::Duration;

    use crate::daemon::{
        daemon_context, prepare_state_dirs, user_homes, DaemonCore, LOG_DIR, USERS_DIR,
    };
    use crate::paths::{Locations, SYSTEM_POLICY, SYSTEM_POLICY_DIR};
    use crate::platform::macos::{self, sys::LiveInspector};
    use crate::runtime::{Runtime, RuntimeConfig};

    init_logging();
    let locations = Locations::macos_daemon();
    let homes = user_homes(Path::new(USERS_DIR));
    if homes.is_empty() {
        eprintln!("agent-guard daemon: no user home under {USERS_DIR}: there is nothing to protect `~` in; create a user, then restart the daemon");
        return Ok(78);
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
    let explicit = args.policy.as_deref().map(crate::cli::absolute);
    let policy_file = explicit
        .clone()
        .unwrap_or_else(|| PathBuf::from(SYSTEM_POLICY));
    let binary = std::env::current_exe().ok();
    let ctx = daemon_context(homes, &locations, Some(&policy_file), binary.as_deref());
    let policy = if policy_file.exists() || explicit.is_some() {
        match crate::policy::load_file(&policy_file, &ctx) {
            Ok(policy) => policy,
            Err(e) if explicit.is_some() => {
                eprintln!("agent-guard daemon: {e}");
                return Ok(2);
            }
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
    };
    let runtime = match Runtime::new(policy, config) {
        Ok(r) => Arc::new(r),
        Err(e) => {
            eprintln!("agent-guard daemon: {e}");
            return Ok(78);
        }
    };
    let core = match DaemonCore::new(runtime.clone(), Arc::new(LiveInspector)) {
        Ok(core) => Arc::new(core),
        Err(e) => {
            eprintln!("agent-guard daemon: {e}");
            return Ok(78);
        }
    };
    let (control, commands) = macos::daemon_control();
    {
        let control = control.clone();
        runtime.on_policy_reload(move || {
            control.refresh_muting();
        });
    }
    runtime.start_background();
    // Fail-mode answers, for `status` (the status file is written once a second anyway).
    {
        let runtime = Arc::downgrade(&runtime);
        let control = control.clone();
        std::thread::Builder::new()
            .name("agent-guard-deadlines".into())
            .spawn(move || loop {
                let Some(runtime) = runtime.upgrade() else {
                    return;
                };
                let c = control.deadline_counters();
                let misses = c.arrived_late + c.budget_exceeded + c.unreadable;
                runtime
                    .counters
                    .deadline_misses
                    .store(misses, Ordering::Relaxed);
                drop(runtime);
                std::thread::sleep(Duration::from_secs(1));
            })
            .ok();
    }
    let result = macos::run_daemon(core, commands);
    runtime.flush();
    runtime.remove_status();
    match result {
        Ok(()) => Ok(0),
        Err(e) => {
            eprintln!("agent-guard daemon: {e}");
            Ok(e.exit_code())
        }
    }
}

/// Log lines to stderr (launchd appends them to /var/log/agent-guard/daemon.log); the level
/// from `$AGENT_GUARD_LOG` (`debug`, `info`, ...), `info` by default.
#[cfg(target_os = "macos")]
fn init_logging() {
    use tracing_subscriber::EnvFilter;
    let filter =
        EnvFilter::try_from_env("AGENT_GUARD_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(false)
        .with_writer(std::io::stderr)
        .try_init();
}

#[cfg(all(test, not(target_os = "macos")))]
mod tests {
    use super::*;

    #[test]
    fn elsewhere_it_points_to_run_and_fails() {
        let code = run(&DaemonArgs { policy: None }).unwrap();
        assert_eq!(code, 2);
    }
}
