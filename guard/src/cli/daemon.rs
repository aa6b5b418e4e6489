//! `agent-guard daemon`: the macOS Endpoint Security client, run as root by launchd. The work is
//! [`crate::runtime::macos::setup::serve`]; on other systems it says what to use instead.

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
    // Before any thread exists, so that every thread inherits the mask and only the daemon's
    // signal thread takes SIGTERM/SIGINT/SIGHUP (sigwait): a stop from launchd then unsubscribes,
    // answers what waits and flushes the logs instead of killing the process mid-write.
    if !crate::platform::macos::sys::block_stop_signals() {
        eprintln!("agent-guard daemon: could not block the stop signals");
        return Ok(70);
    }
    init_logging();
    let under_launchd = std::os::unix::process::parent_id() == 1;
    match crate::runtime::macos::setup::serve(args.policy.as_deref()) {
        Ok(stopped) => Ok(stopped.exit_code()),
        Err(e) => {
            eprintln!("agent-guard daemon: {e}");
            Ok(e.exit_code_under(under_launchd))
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
