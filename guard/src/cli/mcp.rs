//! `agent-guard mcp [--policy FILE]`: the Model Context Protocol server over stdio that an agent
//! starts as one of its MCP servers (tools why_denied, request_override, override_status,
//! explain_path; see [`crate::mcp`]). Stdout carries the protocol only; diagnostics go to stderr.
//! Exit 0 when the client closes the session, 1 when the session fails.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

use crate::mcp::{serve_stdio, ToolContext};
use crate::overrides::AGENT_ENV;
use crate::paths::{process_env, Locations};

#[derive(Args, Debug)]
pub struct McpArgs {
    /// The policy file explain_path and request_override check against (default:
    /// $AGENT_GUARD_POLICY, ~/.config/agent-guard/policy.json, /etc/agent-guard/policy.json, the
    /// embedded default).
    #[arg(long)]
    pub policy: Option<PathBuf>,
}

pub fn run(args: &McpArgs) -> anyhow::Result<i32> {
    let ctx = ToolContext {
        locations: Locations::for_user(&process_env),
        policy: args.policy.clone(),
        agent: process_env(AGENT_ENV).filter(|a| !a.is_empty()),
        cwd: std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/")),
        self_pid: i32::try_from(std::process::id()).unwrap_or(0),
    };
    serve_stdio(ctx).context("agent-guard mcp")?;
    Ok(0)
}
