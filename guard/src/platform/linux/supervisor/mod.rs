//! The Linux sensor: `agent-guard run -- CMD` puts CMD and every process it starts under a
//! seccomp user-notification filter and answers each notified syscall with the judge's verdict.
//!
//! Processes (see [`run`]):
//! ```text
//!  caller (agent-guard run)          waits for CMD's status, forwards signals, returns it
//!    └─ supervisor (forked)          child subreaper; holds the listener; serves until the
//!         │                          last supervised process has exited, then exits
//!         ├─ CMD (filter installed)  in its own mount namespace when secret zones are hidden
//!         │    └─ ... every descendant inherits the filter
//!         └─ late-roots helper       only when a secret root is missing (see `late_roots`)
//! ```
//! The supervisor is a separate process so that the caller can return CMD's status (the user's
//! prompt comes back) while descendants that outlive CMD (a double-forked job, a dev server) stay
//! supervised; and it is CMD's *ancestor* so that it may read their memory under Yama's
//! `ptrace_scope=1` and adopt their orphans as subreaper.
//!
//! This module must never let a supervised process act on a path the judge did not see: paths
//! are read once, resolved once, and destructive calls are performed on that resolved path
//! (see `handler`). It never needs privileges: everything works as an ordinary user with
//! `no_new_privs`.

/// Not an API: the benchmark's floor (enforces nothing; see the module).
#[doc(hidden)]
pub mod bench_support;
mod filter;
mod handler;
mod late_roots;
mod launch;
mod message;
mod notify;
mod resolve;
mod secret_fs;
mod secret_view;
mod task;

use std::ffi::OsString;
use std::path::PathBuf;

use crate::engine::{Event, Verdict};

/// The decision side the supervisor asks for each supervised call.
pub trait Judge: Send + Sync {
    /// Decide one supervised call. `pid` is the calling task's id (the tid from the
    /// notification). `event.actor` carries only the pid; the judge reads the rest.
    fn judge(&self, pid: i32, event: &Event) -> Verdict;

    /// The roots of the secret zones. Their regular files are indexed by inode at start so that
    /// a hard link to a secret file elsewhere is judged as the secret file itself.
    fn secret_paths(&self) -> Vec<PathBuf> {
        Vec::new()
    }

    /// Called once inside the supervisor process, after it was forked from the caller and before
    /// it serves. Threads of the caller do not exist there (fork copies only the calling
    /// thread): start here whatever the judge needs in the background (policy file watcher,
    /// audit writer). The judge lives in this process for as long as anything is supervised.
    fn start_in_supervisor(&self) {}

    /// Called once in the supervisor process after the last supervised process has exited,
    /// just before it exits (with `_exit`, so no destructor runs): flush what was queued.
    fn stop_in_supervisor(&self) {}
}

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

/// Fork the supervisor, which forks CMD with the filter installed, and wait for CMD.
///
/// Returns CMD's exit status (128+signal when a signal killed it) as soon as CMD exits; the
/// supervisor process keeps serving CMD's remaining descendants in the background and exits
/// after the last one. SIGINT, SIGTERM, SIGHUP and SIGQUIT sent to the caller by another process
/// are forwarded to CMD (the terminal's own Ctrl-C already reaches CMD, which shares the
/// caller's process group, and is not sent twice).
pub fn run(
    cmd: &[OsString],
    judge: std::sync::Arc<dyn Judge>,
    config: &SupervisorConfig,
) -> Result<i32, SupervisorError> {
    launch::run(cmd, judge, config)
}
