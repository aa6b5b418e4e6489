//! `agent-guard install AGENT` and `agent-guard uninstall AGENT`: agent-guard's hook, MCP server
//! and instructions merged into (or taken out of) the agent's own settings files, with a diff of
//! each file changed and a backup beside it. Running it twice changes nothing the second time.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

use crate::feedback::AgentKind;
use crate::install::{apply, plan, unified_diff, Direction, InstallError};
use crate::overrides::now_unix;
use crate::paths::process_env;

#[derive(Args, Debug)]
pub struct InstallArgs {
    /// The agent whose settings to change.
    #[arg(value_enum)]
    pub agent: AgentKind,
    /// Show what would change (a diff per file) and write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Leave the shell start-up file alone (no `alias claude='agent-guard run -- claude'`).
    #[arg(long)]
    pub no_alias: bool,
}

pub fn run(args: &InstallArgs, direction: Direction) -> anyhow::Result<i32> {
    let home = process_env("HOME")
        .filter(|h| h.starts_with('/'))
        .map(PathBuf::from)
        .context("no home directory: $HOME must be an absolute path")?;
    let shell = (!args.no_alias).then(|| process_env("SHELL")).flatten();
    let plan_now = || {
        plan(
            args.agent,
            direction,
            &home,
            shell.as_deref(),
            cfg!(target_os = "linux"),
        )
    };
    let mut plan = plan_now()?;
    let mut backups = Vec::new();
    if !args.dry_run {
        // A running agent may rewrite its settings between our read and our write: then its
        // text stays, and the merge is planned again from it.
        let mut attempts = 0;
        loop {
            match apply(&plan, now_unix()) {
                Ok(made) => {
                    backups = made;
                    break;
                }
                Err(InstallError::ChangedMeanwhile { .. }) if attempts < 3 => {
                    attempts += 1;
                    std::thread::sleep(std::time::Duration::from_millis(100));
                    plan = plan_now()?;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
    let verb = match direction {
        Direction::Install => "install",
        Direction::Uninstall => "uninstall",
    };
    if plan.changes.is_empty() {
        println!(
            "agent-guard {verb} {}: nothing to change (already {}).",
            args.agent.name(),
            if direction == Direction::Install {
                "installed"
            } else {
                "taken out"
            }
        );
    }
    for change in &plan.changes {
        let name = change.path.display().to_string();
        println!("{}: {}", name, change.what);
        print!(
            "{}",
            unified_diff(&name, change.before.as_deref(), change.after.as_deref())
        );
        println!();
    }
    if args.dry_run {
        if !plan.changes.is_empty() {
            println!(
                "Dry run: nothing was written. Run it without --dry-run to make these changes."
            );
        }
    } else {
        for backup in &backups {
            println!("backup: {}", backup.display());
        }
        if !plan.changes.is_empty() {
            println!(
                "agent-guard {verb} {}: {} file(s) changed.",
                args.agent.name(),
                plan.changes.len()
            );
        }
    }
    for note in &plan.notes {
        println!("note: {note}");
    }
    Ok(0)
}
