//! Overrides: an agent asks, a human decides, the engine honours the grant until it expires.
//!
//! The pieces, and who may touch them (Linux `run` layout; the macOS daemon uses the same files
//! under `/var/db/agent-guard`):
//! - `<state dir>/requests/ID.json`: pending [`Request`]s. The *agent* writes these (the one
//!   place in the state dir it may write), so everything read from there is untrusted: it is
//!   re-validated against the current policy when a human approves it, size-limited, never
//!   followed through a symlink, and its text is shown with control characters escaped.
//! - `<state dir>/grants.json`: the approved grants ([`GrantFile`]), replaced atomically (temp
//!   file + fsync + rename). Only a human's process may write it: the supervisor's guard-files
//!   rule denies agents every write in the state dir but `requests/`, so an agent running
//!   `override approve` fails with EPERM. The `AGENT_GUARD_AGENT` check in the CLI
//!   ([`refuse_if_agent`]) is a courtesy that gives a clear message early; the kernel-level rule
//!   is the enforcement.
//! - `<state dir>/overrides.jsonl`: the audit trail of every request, approval, denial,
//!   revocation and expiry ([`record_override_event`]).
//! - [`LiveGrants`]: what a running supervisor or daemon hands the engine, reloaded within
//!   milliseconds of a change to `grants.json` (file watching, not polling). Expiry needs no
//!   reload: the engine compares each grant's `expires_at` with `now`.
//!
//! This module must never decide an operation (that is [`crate::engine::decide()`]) and must never
//! trust the content of the requests spool.

mod events;
pub(crate) mod files;
mod filing;
mod listing;
mod live;
mod rate;
mod request;
mod spool;
mod status;
mod store;

use std::path::PathBuf;

pub use crate::audit::OverrideEventKind;
use crate::vocab::IoError;
pub use events::{read_recent_events, record_override_event, OverrideEvent};
pub use filing::{
    file_request, parse_ops, parse_ttl, request_from, resolve_path, validate, Refusal,
    RequestInput, RequestSpec, Validated,
};
pub use listing::{approve_command, describe_scope, write_request, Described, Listing};
pub use live::{watch_grants, GrantWatcher, LiveGrants};
pub use rate::{RateLimit, RateLimited};
pub use request::{rate_key, Request, Requester};
pub use spool::load_pending;
pub use status::{request_state, RequestState};
pub use store::{GrantFile, GrantStore, StoredGrant};

/// Set by the supervisor in the environment of every process of the agent's tree. Its value
/// names the agent (e.g. `claude:4242`); it keys the request rate limit.
pub const AGENT_ENV: &str = "AGENT_GUARD_AGENT";

/// Lifetime of a grant when neither the request nor the approval names one.
pub const DEFAULT_TTL_SECS: u64 = 600;

/// What went wrong with an override operation. Each variant names the file, id or argument.
#[derive(Debug, thiserror::Error)]
pub enum OverrideError {
    #[error(transparent)]
    Io(#[from] IoError),
    #[error("{path}: expected a directory (a symlink or file is never used in its place)")]
    NotADirectory { path: PathBuf },
    #[error("{path}: expected a regular file")]
    NotAFile { path: PathBuf },
    #[error("{path}: larger than {limit} bytes; not an agent-guard file")]
    TooLarge { path: PathBuf, limit: u64 },
    #[error("{path}: {message}")]
    Malformed { path: PathBuf, message: String },
    #[error("override request refused: {0}")]
    Refused(#[from] Refusal),
    #[error("override request refused: {0}")]
    RateLimited(#[from] RateLimited),
    #[error("no pending override request {id:?} (see `agent-guard override list`)")]
    NoSuchRequest { id: String },
    #[error("no active grant {id:?} (see `agent-guard override list`)")]
    NoSuchGrant { id: String },
    #[error("override request {id} cannot be decided: {why}; ask the agent to file a new request")]
    Tampered { id: String, why: String },
    #[error("override request {id} is held back by the rate limit ({why}); decide the earlier requests first")]
    HeldBack { id: String, why: String },
    #[error("{id:?} is not an override id: expected r- and hex digits, like r-1a2b3c4d")]
    BadId { id: String },
    #[error("no denial {id:?} in {file}")]
    NoSuchDenial { id: String, file: PathBuf },
    #[error("--denial: {0}")]
    DenialLog(#[source] crate::audit::DenialLogError),
    #[error("override request: expected a PATH, or --denial ID to take it from a denial record")]
    NoPath,
    #[error("agent-guard override {command} must be run by a human, not by an agent: {detail}")]
    NotHuman {
        command: &'static str,
        detail: String,
    },
}

/// Create the state dir and the two directories an agent writes in (`requests/` and
/// `hook-cursors/`). The supervisor runs this as the user before the agent starts, because
/// creating them is a write in the guarded state dir that the agent itself may not make.
pub fn prepare_state_dir(locations: &crate::paths::Locations) -> Result<(), OverrideError> {
    files::ensure_dir(&locations.state_dir)?;
    files::ensure_dir(&locations.requests_dir)?;
    files::ensure_dir(&locations.hook_cursors)
}

/// Refuse early when this process says it belongs to an agent's tree (`AGENT_GUARD_AGENT`).
///
/// A courtesy, not the enforcement: an agent can unset the variable, and then its write of
/// `grants.json` is what fails (the guard-files rule), which [`GrantStore`] reports the same way.
pub fn refuse_if_agent(
    command: &'static str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(), OverrideError> {
    match env(AGENT_ENV).filter(|v| !v.is_empty()) {
        Some(agent) => Err(OverrideError::NotHuman {
            command,
            detail: format!(
                "this process runs under agent-guard as agent {agent:?} ({AGENT_ENV} is set); ask the user to run it in their own terminal"
            ),
        }),
        None => Ok(()),
    }
}

/// An id as accepted from a command line or a file name: `r-` and 1 to 32 lowercase hex digits,
/// the form `override request` gives them. It can never name a path outside the spool, and a
/// human's command touches only spool files named like that: should the spool directory ever be
/// swapped for a symlink between a check and a use, what it could reach elsewhere is limited to
/// files named `r-<hex>.json` (not `package.json`).
pub fn check_id(id: &str) -> Result<(), OverrideError> {
    let ok = id.strip_prefix("r-").is_some_and(|hex| {
        (1..=32).contains(&hex.len())
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    });
    if ok {
        Ok(())
    } else {
        Err(OverrideError::BadId { id: id.to_string() })
    }
}

/// Unix seconds now.
pub fn now_unix() -> u64 {
    crate::vocab::time::unix_secs(std::time::SystemTime::now())
}

/// A duration for humans: `9m 58s`, `1h 02m`, `45s`.
pub fn human_duration(secs: u64) -> String {
    match secs {
        s if s >= 3600 && s % 3600 == 0 => format!("{}h", s / 3600),
        s if s >= 3600 => format!("{}h {:02}m", s / 3600, (s % 3600) / 60),
        s if s >= 60 && s % 60 == 0 => format!("{}m", s / 60),
        s if s >= 60 => format!("{}m {:02}s", s / 60, s % 60),
        s => format!("{s}s"),
    }
}

/// The real uid of this process (recorded with every decision).
pub fn current_uid() -> u32 {
    // SAFETY: getuid has no preconditions and cannot fail.
    unsafe { libc::getuid() }
}

/// The human at this process, for the audit trail of their decisions: their user name (from
/// /etc/passwd, else `$USER`) and uid, and where they are: the terminal on standard input, or
/// the ssh connection (`$SSH_CONNECTION`). The uid is the kernel's; the rest is what the
/// session says, to tell people and places apart.
pub fn approver(uid: u32, env: &dyn Fn(&str) -> Option<String>) -> String {
    let name = std::fs::read_to_string("/etc/passwd")
        .ok()
        .and_then(|passwd| {
            passwd.lines().find_map(|line| {
                let mut fields = line.split(':');
                let name = fields.next()?;
                let id: u32 = fields.nth(1)?.parse().ok()?;
                (id == uid).then(|| name.to_string())
            })
        })
        .or_else(|| env("USER"))
        .unwrap_or_else(|| "?".into());
    let mut who = format!("{} (uid {uid})", crate::vocab::printable(&name));
    let tty = std::fs::read_link("/proc/self/fd/0")
        .ok()
        .filter(|p| p.starts_with("/dev/pts") || p.starts_with("/dev/tty"));
    if let Some(tty) = tty {
        who.push_str(&format!(" on {}", tty.display()));
    }
    if let Some(ssh) = env("SSH_CONNECTION") {
        let mut parts = ssh.split_whitespace();
        if let (Some(ip), Some(port)) = (parts.next(), parts.next()) {
            who.push_str(&format!(
                " over ssh from {} port {}",
                crate::vocab::printable(ip),
                crate::vocab::printable(port)
            ));
        }
    }
    who
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_approver_is_named_with_uid_and_ssh_connection() {
        let env = |k: &str| match k {
            "SSH_CONNECTION" => Some("10.0.0.5 51234 10.0.0.1 22".to_string()),
            "USER" => Some("nobody-here".to_string()),
            _ => None,
        };
        let who = approver(0, &env);
        assert!(who.starts_with("root (uid 0)"), "{who}");
        assert!(who.ends_with(" over ssh from 10.0.0.5 port 51234"), "{who}");
        let unknown = approver(4_000_000_000, &env);
        assert!(
            unknown.starts_with("nobody-here (uid 4000000000)"),
            "{unknown}"
        );
    }

    #[test]
    fn ids_never_name_a_path() {
        let longest = format!("r-{}", "f".repeat(32));
        for good in ["r-1a2b3c4d", "r-0", longest.as_str()] {
            assert!(check_id(good).is_ok(), "{good}");
        }
        let too_long = format!("r-{}", "f".repeat(33));
        for bad in [
            "",
            "r-",
            "../grants",
            "r/1",
            "r-1.json",
            ".r",
            "r 1",
            "package",
            "R-0",
            "r-xyz",
            "r-ABC",
            too_long.as_str(),
        ] {
            assert!(check_id(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn durations_read_naturally() {
        assert_eq!(human_duration(600), "10m");
        assert_eq!(human_duration(598), "9m 58s");
        assert_eq!(human_duration(3600), "1h");
        assert_eq!(human_duration(3720), "1h 02m");
        assert_eq!(human_duration(5), "5s");
    }

    #[test]
    fn the_agent_variable_refuses_human_commands() {
        let agent = |k: &str| (k == AGENT_ENV).then(|| "claude:1".to_string());
        let err = refuse_if_agent("approve", &agent).unwrap_err().to_string();
        assert!(
            err.starts_with("agent-guard override approve must be run by a human, not by an agent"),
            "{err}"
        );
        assert!(refuse_if_agent("approve", &|_| None).is_ok());
        assert!(refuse_if_agent("approve", &|_| Some(String::new())).is_ok());
    }
}
