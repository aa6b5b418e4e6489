//! What several subcommands share: finding and loading the policy for this user.

use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::paths::{process_env, Locations};
use crate::policy::{self, LoadContext, Policy};

/// The policy a command applies, and where it came from.
pub struct LoadedPolicy {
    pub policy: Policy,
    /// The file, or `None` for the embedded default.
    pub file: Option<PathBuf>,
    pub ctx: LoadContext,
}

/// This user's home directory (`$HOME`).
pub fn home() -> anyhow::Result<PathBuf> {
    process_env("HOME")
        .filter(|h| h.starts_with('/'))
        .map(PathBuf::from)
        .context(
            "$HOME is not set to an absolute path: agent-guard needs it to expand ~ in the policy",
        )
}

/// The load context for this user: their home, and agent-guard's own files as guarded paths.
pub fn user_context(
    policy_file: Option<&Path>,
    locations: &Locations,
) -> anyhow::Result<LoadContext> {
    let mut ctx = LoadContext::for_home(home()?);
    ctx.guard_paths = locations.guarded_files();
    ctx.agent_writable = locations.agent_writable();
    if let Some(file) = policy_file {
        ctx.guard_paths.push(crate::cli::absolute(file));
    }
    ctx.guard_paths
        .push(PathBuf::from(crate::paths::SYSTEM_POLICY_DIR));
    if let Ok(exe) = std::env::current_exe() {
        ctx.guard_paths.push(exe);
    }
    Ok(ctx)
}

/// Load the policy named on the command line, else `$AGENT_GUARD_POLICY`, else
/// `/etc/agent-guard/policy.json`, else the embedded default.
pub fn load_policy(explicit: Option<&Path>) -> anyhow::Result<LoadedPolicy> {
    let locations = Locations::for_user(&process_env);
    let file = explicit
        .map(Path::to_path_buf)
        .or_else(|| policy::discover(&process_env));
    let ctx = user_context(file.as_deref(), &locations)?;
    let policy = match &file {
        Some(f) => policy::load_file(f, &ctx)?,
        None => policy::embedded_default(&ctx),
    };
    Ok(LoadedPolicy { policy, file, ctx })
}
