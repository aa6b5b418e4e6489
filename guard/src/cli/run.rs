//! `agent-guard run -- CMD`: supervise CMD and every process it starts as an AI agent (Linux).
//! The work is [`crate::runtime::linux::supervise`].

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
    /// The command to supervise, after `--`.
    #[arg(last = true, required = true, value_name = "CMD")]
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

#[cfg(not(target_os = "linux"))]
pub fn run(_args: &RunArgs) -> anyhow::Result<i32> {
    eprintln!("agent-guard run: the seccomp supervisor is Linux-only; on macOS install the daemon (see the README)");
    Ok(2)
}
