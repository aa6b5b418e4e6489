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
//!
//! One notification, file by file: `call` decodes it, `plan` turns it into actions for the
//! [`Judge`] and an emulation, `emulate` performs it, `handler` ties them together; `task` and
//! `resolve` read the task and its paths; the kernel ABI is in `platform::linux::sys`. The
//! processes: `launch` (caller), `supervisor_process`, `child` (CMD), `late_roots` (helper).
//! Modules import only downwards (no circle: `scripts/module-graph platform::linux`); this
//! file only declares, re-exports and hands `run` on.

/// Not an API: the benchmark's floor (enforces nothing; see the module).
#[doc(hidden)]
pub mod bench_support;
mod call;
mod child;
mod config;
mod emulate;
mod filter;
mod handler;
mod judge;
mod keep;
mod late_roots;
mod launch;
mod new_names;
mod plan;
mod proc_rules;
mod refusal;
mod resolve;
mod secret_fs;
mod secret_inodes;
mod secret_view;
mod supervisor_process;
mod task;
mod tree;
mod umask_cache;

use std::ffi::OsString;
use std::sync::Arc;

pub use config::{SupervisorConfig, SupervisorError};
pub use judge::Judge;

/// Fork the supervisor, which forks CMD with the filter installed, and wait for CMD.
///
/// Returns CMD's exit status (128+signal when a signal killed it) as soon as CMD exits; the
/// supervisor process keeps serving CMD's remaining descendants in the background and exits
/// after the last one. SIGINT, SIGTERM, SIGHUP and SIGQUIT sent to the caller by another process
/// are forwarded to CMD (the terminal's own Ctrl-C already reaches CMD, which shares the
/// caller's process group, and is not sent twice).
pub fn run(
    cmd: &[OsString],
    judge: Arc<dyn Judge>,
    config: &SupervisorConfig,
) -> Result<i32, SupervisorError> {
    launch::run(cmd, judge, config)
}
