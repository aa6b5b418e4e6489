//! `agent-guard instructions [--agent AGENT] [--text]`: the hook settings and the instructions
//! paragraph that teach an agent the loop. Stdout is one JSON object (for scripts and agents);
//! `--text` prints the same for reading. `agent-guard install AGENT` merges them for you.

use clap::Args;

use crate::feedback::{instructions, AgentKind};

#[derive(Args, Debug)]
pub struct InstructionsArgs {
    /// Which agent the instructions are for.
    #[arg(long, value_enum, default_value = "claude-code")]
    pub agent: AgentKind,
    /// Print them for reading (the settings snippet, then the paragraph) instead of JSON.
    #[arg(long)]
    pub text: bool,
}

pub fn run(args: &InstructionsArgs) -> anyhow::Result<i32> {
    let v = instructions(args.agent);
    if args.text && v["settings"].as_object().is_some_and(|o| o.is_empty()) {
        println!(
            "# Paste into {}:\n",
            v["settings_file"].as_str().unwrap_or_default()
        );
        print!("{}", v["instructions"].as_str().unwrap_or_default());
    } else if args.text {
        println!(
            "# Merge into {} (`agent-guard install {}` does it for you):\n\n{}\n",
            v["settings_file"].as_str().unwrap_or_default(),
            args.agent.name(),
            serde_json::to_string_pretty(&v["settings"])?
        );
        if let Some(file) = v["instructions_file"].as_str() {
            println!("# Add to {file}:\n");
        }
        print!("{}", v["instructions"].as_str().unwrap_or_default());
    } else {
        println!("{}", serde_json::to_string_pretty(&v)?);
        eprintln!(
            "agent-guard: `agent-guard install {}` merges these into the agent's files; --text prints them for reading",
            args.agent.name()
        );
    }
    Ok(0)
}
