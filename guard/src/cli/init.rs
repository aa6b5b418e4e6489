//! `agent-guard init`: writes a commented starter policy for this user
//! (`~/.config/agent-guard/policy.json`, found by every command after `$AGENT_GUARD_POLICY`),
//! naming the agents and toolchains found on `PATH`, and says what to do next.

use anyhow::Context;
use clap::Args;

use crate::install::{detect, starter_policy};
use crate::overrides::now_unix;
use crate::paths::{process_env, user_policy_dir};
use crate::policy::normalize::parse;
use crate::policy::user::user_context;
use crate::policy::{from_json, DEFAULT_POLICY_JSON};

#[derive(Args, Debug)]
pub struct InitArgs {
    /// Replace an existing policy file (the old one is kept as a backup beside it).
    #[arg(long)]
    pub force: bool,
    /// Print the policy that would be written, and write nothing.
    #[arg(long)]
    pub dry_run: bool,
}

pub fn run(args: &InitArgs) -> anyhow::Result<i32> {
    let dir = user_policy_dir(&process_env)
        .context("no home directory: $HOME must be an absolute path")?;
    let file = dir.join("policy.json");
    let detected = detect(&process_env("PATH").unwrap_or_default());
    let user = process_env("USER")
        .or_else(|| process_env("LOGNAME"))
        .unwrap_or_else(|| "this user".into());
    let default_patterns = parse(
        DEFAULT_POLICY_JSON,
        std::path::Path::new("<embedded default>"),
    )?
    .ai_agent_patterns
    .unwrap_or_default();
    let text = starter_policy(&detected, &default_patterns, &user, now_unix());
    // The text must be a policy this version accepts, before it is anywhere a command reads it.
    let ctx = user_context(
        Some(&file),
        &crate::paths::Locations::for_user(&process_env),
        &process_env,
    )?;
    from_json(&text, &file, &ctx).context("the starter policy does not load (a bug)")?;
    if args.dry_run {
        print!("{text}");
        eprintln!("agent-guard init: dry run, {} not written", file.display());
        return Ok(0);
    }
    if file.exists() && !args.force {
        anyhow::bail!(
            "{} exists already; `agent-guard init --force` replaces it (keeping a backup)",
            file.display()
        );
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
    if file.exists() {
        let backup = crate::install::back_up(&file, now_unix())?;
        println!("backup: {}", backup.display());
    }
    // Through a new file renamed over it: a policy is never seen half-written by the watch.
    crate::install::new_beside(&file, &text, Some(0o644))?
        .persist(&file)
        .map_err(|e| crate::vocab::IoError::at(&file, "write")(e.error))?;
    println!("wrote {}", file.display());
    let names = |items: &[(String, std::path::PathBuf)]| {
        items
            .iter()
            .map(|(n, _)| n.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    if detected.agents.is_empty() {
        println!("agents found on PATH: none (the default patterns cover claude, codex, gemini, cursor-agent, aider, opencode, goose, copilot)");
    } else {
        println!("agents found on PATH: {}", names(&detected.agents));
    }
    println!("toolchains found on PATH: {}", names(&detected.toolchains));
    println!("\nNext:");
    for (cmd, _) in &detected.agents {
        let agent = match cmd.as_str() {
            "claude" => Some("claude-code"),
            "codex" => Some("codex"),
            "gemini" => Some("gemini-cli"),
            "cursor-agent" => Some("cursor"),
            _ => None,
        };
        if let Some(agent) = agent {
            println!(
                "  agent-guard install {agent}     # the hook and instructions in its settings"
            );
        }
    }
    println!("  agent-guard policy check            # what the policy protects");
    if cfg!(target_os = "linux") {
        println!("  agent-guard run -- claude           # run an agent under the guard");
    }
    println!(
        "  agent-guard override watch          # the agents' requests as they come, y to approve"
    );
    Ok(0)
}
