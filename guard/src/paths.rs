//! Where agent-guard keeps its files (docs/design.md, "Where things live").
//!
//! Only computes locations from the environment it is given (and [`absolute`] from the current
//! directory); it creates nothing.

use std::path::{Path, PathBuf};

/// The system-wide policy file, third in the search order after `$AGENT_GUARD_POLICY` and the
/// user's own.
pub const SYSTEM_POLICY: &str = "/etc/agent-guard/policy.json";
/// The directory of the system-wide policy: guarded as a whole, so it cannot be replaced.
pub const SYSTEM_POLICY_DIR: &str = "/etc/agent-guard";

/// The directory of this user's policy, `policy.json` (written by `agent-guard init`; second in
/// the search order): `$XDG_CONFIG_HOME/agent-guard`, else `~/.config/agent-guard`. Guarded as a whole whether or not the file exists, so
/// an agent can neither change it nor create one where the next command would find it.
pub fn user_policy_dir(env: &dyn Fn(&str) -> Option<String>) -> Option<PathBuf> {
    let absolute_var = |key: &str| env(key).filter(|v| v.starts_with('/'));
    let config = absolute_var("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| absolute_var("HOME").map(|h| Path::new(&h).join(".config")))?;
    Some(config.join("agent-guard"))
}

/// Environment variable that names the policy file.
pub const POLICY_ENV: &str = "AGENT_GUARD_POLICY";
/// Environment variable that overrides the state directory everywhere (tests use it).
pub const STATE_DIR_ENV: &str = "AGENT_GUARD_STATE_DIR";

/// The directories and files of one agent-guard installation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Locations {
    pub state_dir: PathBuf,
    pub denials: PathBuf,
    pub requests_dir: PathBuf,
    pub grants: PathBuf,
    pub audit_db: PathBuf,
    /// Per-session cursors of `hook claude-code` (the hook runs inside the agent's tree, so
    /// agents may write here).
    pub hook_cursors: PathBuf,
    /// The snapshot store: what agents destroyed in zones that keep, one directory per agent
    /// session. Agents may not read it (docs/snapshots.md).
    pub store: PathBuf,
}

impl Locations {
    /// The locations under one state directory (Linux `run`, tests).
    pub fn in_state_dir(state_dir: &Path) -> Locations {
        Locations {
            state_dir: state_dir.to_path_buf(),
            denials: state_dir.join("denials.jsonl"),
            requests_dir: state_dir.join("requests"),
            grants: state_dir.join("grants.json"),
            audit_db: state_dir.join("audit.db"),
            hook_cursors: state_dir.join("hook-cursors"),
            store: state_dir.join("store"),
        }
    }

    /// The macOS daemon's layout: root-owned state, user-readable denial log.
    pub fn macos_daemon() -> Locations {
        let state = Path::new("/var/db/agent-guard");
        Locations {
            denials: PathBuf::from("/var/log/agent-guard/denials.jsonl"),
            ..Locations::in_state_dir(state)
        }
    }

    /// The user's locations from the environment: `$AGENT_GUARD_STATE_DIR`, else
    /// `$XDG_STATE_HOME/agent-guard`, else `~/.local/state/agent-guard`. On macOS, where the
    /// guard is the system daemon, the daemon's files (see [`Locations::for_user_on_macos`]).
    pub fn for_user(env: &dyn Fn(&str) -> Option<String>) -> Locations {
        if cfg!(target_os = "macos") {
            Locations::for_user_on_macos(env)
        } else {
            Locations::per_user(env)
        }
    }

    /// The locations under the user's own state directory (Linux `run`).
    pub fn per_user(env: &dyn Fn(&str) -> Option<String>) -> Locations {
        Locations::in_state_dir(&user_state_dir(env))
    }

    /// What a user's commands use on macOS: the daemon's denial log, requests spool, grants and
    /// audit store (`denials`, `hook`, `override request` must meet the daemon there), except
    /// the hook's cursors, which are the user's own. `$AGENT_GUARD_STATE_DIR` still wins.
    pub fn for_user_on_macos(env: &dyn Fn(&str) -> Option<String>) -> Locations {
        if env(STATE_DIR_ENV).is_some_and(|v| !v.is_empty()) {
            return Locations::per_user(env);
        }
        Locations {
            hook_cursors: user_state_dir(env).join("hook-cursors"),
            ..Locations::macos_daemon()
        }
    }

    /// The files an agent may read but never modify (the engine's own-files rule).
    pub fn guarded_files(&self) -> Vec<PathBuf> {
        vec![self.state_dir.clone(), self.denials.clone()]
    }

    /// The places inside the guarded files that the agent's own processes must write: the
    /// override requests spool and the hook's cursors.
    pub fn agent_writable(&self) -> Vec<PathBuf> {
        vec![self.requests_dir.clone(), self.hook_cursors.clone()]
    }

    /// The guarded files agents may not even read: the snapshot store.
    pub fn unreadable(&self) -> Vec<PathBuf> {
        vec![self.store.clone()]
    }
}

fn user_state_dir(env: &dyn Fn(&str) -> Option<String>) -> PathBuf {
    let non_empty = |key: &str| env(key).filter(|v| !v.is_empty());
    if let Some(dir) = non_empty(STATE_DIR_ENV) {
        return PathBuf::from(dir);
    }
    if let Some(xdg) = non_empty("XDG_STATE_HOME") {
        return Path::new(&xdg).join("agent-guard");
    }
    let home = non_empty("HOME").unwrap_or_else(|| "/".to_string());
    Path::new(&home).join(".local/state/agent-guard")
}

/// A path from the command line made absolute against the current directory and cleaned.
pub fn absolute(path: &Path) -> PathBuf {
    let joined = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()
            .unwrap_or_else(|_| PathBuf::from("/"))
            .join(path)
    };
    crate::vocab::path::clean(&joined)
}

/// Read the process environment; the one place `Locations::for_user` is fed from.
pub fn process_env(key: &str) -> Option<String> {
    std::env::var(key).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |k| {
            pairs
                .iter()
                .find(|(key, _)| *key == k)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn macos_users_meet_the_daemon_in_its_files() {
        let l = Locations::for_user_on_macos(&env_of(&[("HOME", "/Users/a")]));
        assert_eq!(
            l.requests_dir,
            PathBuf::from("/var/db/agent-guard/requests")
        );
        assert_eq!(
            l.denials,
            PathBuf::from("/var/log/agent-guard/denials.jsonl")
        );
        assert_eq!(l.grants, PathBuf::from("/var/db/agent-guard/grants.json"));
        assert_eq!(
            l.hook_cursors,
            PathBuf::from("/Users/a/.local/state/agent-guard/hook-cursors")
        );
        let l = Locations::for_user_on_macos(&env_of(&[
            ("AGENT_GUARD_STATE_DIR", "/s"),
            ("HOME", "/Users/a"),
        ]));
        assert_eq!(l, Locations::in_state_dir(Path::new("/s")));
    }

    #[test]
    fn state_dir_order() {
        let l = Locations::per_user(&env_of(&[("AGENT_GUARD_STATE_DIR", "/s"), ("HOME", "/h")]));
        assert_eq!(l.denials, PathBuf::from("/s/denials.jsonl"));
        let l = Locations::per_user(&env_of(&[("XDG_STATE_HOME", "/x"), ("HOME", "/h")]));
        assert_eq!(l.state_dir, PathBuf::from("/x/agent-guard"));
        let l = Locations::per_user(&env_of(&[("HOME", "/h")]));
        assert_eq!(
            l.grants,
            PathBuf::from("/h/.local/state/agent-guard/grants.json")
        );
    }
}
