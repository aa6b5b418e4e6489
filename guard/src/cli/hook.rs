//! `agent-guard hook claude-code`: the feedback shim Claude Code runs after each tool call.
//!
//! Reads the hook JSON on stdin and prints the hook answer that explains this agent's recent
//! denials, or nothing at all (exit 0) when there were none. A malformed input is reported on
//! stderr with exit 1, which Claude Code treats as a non-blocking hook error.

use std::io::{Read, Write};

use anyhow::Context;
use clap::Subcommand;

use crate::feedback::{agent_pid_from_env, run_hook, HookContext};
use crate::paths::{process_env, Locations};

/// Largest hook input read (a Write tool call carries the whole file content).
const MAX_INPUT: u64 = 64 << 20;

#[derive(Subcommand, Debug)]
pub enum HookCommand {
    /// Claude Code PostToolUse / PostToolUseFailure hook (stdin: the hook JSON).
    ClaudeCode,
}

pub fn run(cmd: HookCommand) -> anyhow::Result<i32> {
    match cmd {
        HookCommand::ClaudeCode => {
            let mut input = Vec::new();
            std::io::stdin()
                .take(MAX_INPUT)
                .read_to_end(&mut input)
                .context("read the hook input from stdin")?;
            let locations = Locations::for_user(&process_env);
            let agent = process_env(crate::overrides::AGENT_ENV).filter(|a| !a.is_empty());
            let agent_pid = agent.as_deref().and_then(agent_pid_from_env);
            let processes = crate::platform::ancestry_source();
            let now = std::time::SystemTime::now();
            let ctx = HookContext {
                now: crate::vocab::time::unix_secs(now),
                now_ms: crate::vocab::time::unix_millis(now),
                agent,
                agent_pid,
                processes: processes.as_deref(),
                self_pid: i32::try_from(std::process::id()).unwrap_or(0),
            };
            match run_hook(&input, &locations, &ctx) {
                Ok(Some(answer)) => {
                    let mut out = std::io::stdout().lock();
                    serde_json::to_writer(&mut out, &answer)?;
                    writeln!(out)?;
                    Ok(0)
                }
                Ok(None) => Ok(0),
                Err(e) => {
                    eprintln!("agent-guard hook claude-code: {e}");
                    Ok(1)
                }
            }
        }
    }
}
