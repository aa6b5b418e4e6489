//! How `run` is asked to supervise ([`SupervisorConfig`]) and why it could not
//! ([`SupervisorError`]).
//!
//! Plain data: nothing here may read the environment or the system (the CLI does, and says so).

use std::ffi::OsString;

/// How the supervisor runs.
#[derive(Clone, Debug)]
pub struct SupervisorConfig {
    /// Ask for `SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP` (Linux 6.6+); ignored where unsupported.
    pub sync_wakeup: bool,
    /// The policy has secret zones, so reads must be covered: by hiding the zones behind the
    /// supervisor's FUSE mounts where `secret_view` can vouch for it, else by notifying every
    /// read-only open (one round trip each; see the README's numbers).
    pub supervise_reads: bool,
    /// Threads receiving notifications. More than one keeps a slow judgment from stalling the
    /// other processes' calls.
    pub workers: usize,
}

impl Default for SupervisorConfig {
    fn default() -> Self {
        SupervisorConfig {
            sync_wakeup: true,
            supervise_reads: false,
            workers: 2,
        }
    }
}

/// Why `run` could not start or follow CMD.
#[derive(Debug, thiserror::Error)]
pub enum SupervisorError {
    #[error("no command given: expected `run -- CMD [ARGS...]`")]
    EmptyCommand,
    #[error("command {0:?} not found in PATH")]
    CommandNotFound(OsString),
    #[error("argument or environment entry {0:?} contains a NUL byte")]
    NulByte(OsString),
    #[error("{what} failed: {source}")]
    Setup {
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("the supervisor process ended before reporting the command's exit status")]
    SupervisorLost,
}
