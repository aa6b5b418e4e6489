//! `agent-guard completions SHELL` and `agent-guard man DIR`: shell completions and man pages
//! generated from the clap definitions, so they never drift from the commands. Packages run
//! them at build time (`scripts/package-deb`).

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, CommandFactory};
use clap_complete::Shell;

#[derive(Args, Debug)]
pub struct CompletionsArgs {
    /// The shell to print the completion script for.
    #[arg(value_enum)]
    pub shell: Shell,
}

#[derive(Args, Debug)]
pub struct ManArgs {
    /// The directory to write the pages into (agent-guard.1, agent-guard-install.1, ...);
    /// created if missing.
    pub dir: PathBuf,
}

pub fn completions(args: &CompletionsArgs) -> anyhow::Result<i32> {
    let mut cmd = super::Cli::command();
    clap_complete::generate(args.shell, &mut cmd, "agent-guard", &mut std::io::stdout());
    Ok(0)
}

pub fn man(args: &ManArgs) -> anyhow::Result<i32> {
    std::fs::create_dir_all(&args.dir).with_context(|| format!("create {}", args.dir.display()))?;
    let cmd = super::Cli::command();
    clap_mangen::generate_to(cmd, &args.dir)
        .with_context(|| format!("write the man pages into {}", args.dir.display()))?;
    let pages = std::fs::read_dir(&args.dir)
        .with_context(|| format!("list {}", args.dir.display()))?
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".1"))
        .count();
    eprintln!("agent-guard: {pages} man pages in {}", args.dir.display());
    Ok(0)
}
