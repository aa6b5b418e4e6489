//! `agent-guard instructions [--agent claude-code|codex]`: what to paste into the agent's
//! settings and CLAUDE.md / AGENTS.md so it learns the closed loop.

use clap::Args;

use crate::feedback::{instructions, AgentKind};

#[derive(Args, Debug)]
pub struct InstructionsArgs {
    /// Which agent the instructions are for.
    #[arg(long, value_enum, default_value = "claude-code")]
    pub agent: AgentKind,
}

pub fn run(args: &InstructionsArgs) -> anyhow::Result<i32> {
    print!("{}", instructions(args.agent));
    Ok(0)
}
