//! The policy a user's command applies: which file (the command line's, `$AGENT_GUARD_POLICY`,
//! `/etc/agent-guard/policy.json`, or the embedded default), loaded for this user's home with
//! agent-guard's own files guarded.
//!
//! Reads the process environment and the policy file; decides nothing.

use std::path::{Path, PathBuf};

use super::{discover, embedded_default, load_file, LoadContext, Policy, PolicyError};
use crate::paths::{absolute, Locations, SYSTEM_POLICY_DIR};

/// The policy a command applies, and where it came from.
pub struct LoadedPolicy {
    pub policy: Policy,
    /// The file, or `None` for the embedded default.
    pub file: Option<PathBuf>,
    pub ctx: LoadContext,
}

/// This user's home directory (`$HOME`), which `~` in the policy means.
pub fn home(env: &dyn Fn(&str) -> Option<String>) -> Result<PathBuf, PolicyError> {
    env("HOME")
        .filter(|h| h.starts_with('/'))
        .map(PathBuf::from)
        .ok_or(PolicyError::NoHome)
}

/// The load context for this user: their home, and agent-guard's own files as guarded paths.
pub fn user_context(
    policy_file: Option<&Path>,
    locations: &Locations,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<LoadContext, PolicyError> {
    let mut ctx = LoadContext::for_home(home(env)?);
    ctx.guard_paths = locations.guarded_files();
    ctx.agent_writable = locations.agent_writable();
    ctx.unreadable = locations.unreadable();
    if let Some(file) = policy_file {
        ctx.guard_paths.push(absolute(file));
    }
    ctx.guard_paths.push(PathBuf::from(SYSTEM_POLICY_DIR));
    if let Some(dir) = crate::paths::user_policy_dir(env) {
        ctx.guard_paths.push(dir);
    }
    if let Ok(exe) = std::env::current_exe() {
        ctx.guard_paths.push(exe);
    }
    Ok(ctx)
}

/// Load the policy named on the command line, else `$AGENT_GUARD_POLICY`, else
/// `/etc/agent-guard/policy.json`, else the embedded default.
pub fn load_for_user(
    explicit: Option<&Path>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<LoadedPolicy, PolicyError> {
    let locations = Locations::for_user(env);
    let file = explicit.map(Path::to_path_buf).or_else(|| discover(env));
    let ctx = user_context(file.as_deref(), &locations, env)?;
    let policy = match &file {
        Some(f) => load_file(f, &ctx)?,
        None => embedded_default(&ctx),
    };
    Ok(LoadedPolicy { policy, file, ctx })
}
