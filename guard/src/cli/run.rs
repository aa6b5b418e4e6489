//! `agent-guard run [OPTIONS] [--] CMD [ARGS...]`: supervise CMD and every process it starts as
//! an AI agent (Linux). The work is [`crate::runtime::linux::supervise`]. `--` is needed only
//! when CMD itself starts with `-`: everything from CMD on is CMD's.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::Args;

#[derive(Args, Debug)]
pub struct RunArgs {
    /// The policy file (default: $AGENT_GUARD_POLICY, /etc/agent-guard/policy.json, the
    /// embedded default).
    #[arg(long)]
    pub policy: Option<PathBuf>,
    /// The agent's name in records and messages (default: the basename of CMD).
    #[arg(long)]
    pub agent: Option<String>,
    /// Log what would be denied, deny nothing.
    #[arg(long)]
    pub audit: bool,
    /// The command to supervise and its arguments (after `--` when CMD starts with `-`); every
    /// argument from CMD on is CMD's, not agent-guard's.
    #[arg(trailing_var_arg = true, required = true, value_name = "CMD")]
    pub cmd: Vec<OsString>,
}

#[cfg(target_os = "linux")]
pub fn run(args: &RunArgs) -> anyhow::Result<i32> {
    use crate::runtime::linux::{supervise, RunError, RunOptions};

    // Quiet unless asked: the agent's terminal is the user's. `AGENT_GUARD_LOG=debug` says, among
    // other things, whether the secret zones are hidden or every open is supervised, and why.
    if let Ok(filter) = tracing_subscriber::EnvFilter::try_from_env("AGENT_GUARD_LOG") {
        // Colour only for a terminal: a log redirected to a file has no escape codes.
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .try_init();
    }
    if let Err(e) = runnable(&args.cmd[0]) {
        eprintln!(
            "agent-guard run: cannot run {}: {e}",
            args.cmd[0].to_string_lossy()
        );
        // The shell's codes: 127 not found, 126 found but not executable.
        return Ok(if e.kind() == std::io::ErrorKind::NotFound {
            127
        } else {
            126
        });
    }
    let options = RunOptions {
        policy: args.policy.clone(),
        agent: args.agent.clone(),
        audit: args.audit,
    };
    match supervise(&args.cmd, &options) {
        Ok(status) => Ok(status),
        Err(e @ RunError::Policy(_)) => {
            let code = e.exit_code();
            eprintln!("agent-guard run: {:#}", anyhow::Error::new(e));
            Ok(code)
        }
        Err(e) => {
            eprintln!("agent-guard run: {e}");
            Ok(e.exit_code())
        }
    }
}

/// Whether CMD given as a path can be executed, so that a typo is named with its errno here
/// rather than by the forked child (which may not allocate to say which command failed).
/// A bare name is looked up in PATH by the supervisor, which names it when it is not found.
#[cfg(target_os = "linux")]
fn runnable(program: &std::ffi::OsStr) -> std::io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    if !program.as_bytes().contains(&b'/') {
        return Ok(());
    }
    if std::fs::metadata(program)?.is_dir() {
        return Err(std::io::Error::from_raw_os_error(libc::EACCES));
    }
    let c = std::ffi::CString::new(program.as_bytes())
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
    // SAFETY: a valid C string; access only reads it.
    if unsafe { libc::access(c.as_ptr(), libc::X_OK) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(not(target_os = "linux"))]
pub fn run(_args: &RunArgs) -> anyhow::Result<i32> {
    eprintln!("agent-guard run: the seccomp supervisor is Linux-only; on macOS install the daemon (see the README)");
    Ok(2)
}
