//! What lineage knows about one process, and the trait a platform implements to tell it.
//!
//! This file is pure data: it never reads the system. [`ProcessSource`] is the only way lineage
//! learns about live processes; Linux implements it with `/proc`
//! (`platform::linux::procfs::ProcFs`), macOS with libproc/sysctl.

use std::path::{Path, PathBuf};

use serde::Serialize;

/// The identity of a process: its pid plus the time it started.
///
/// A pid alone is not an identity: pids are reused, and a guard that keyed on pid would hand an
/// agent's taint (or a human's innocence) to whatever process gets the number next. `start` is
/// the start time in clock ticks since boot on Linux (field 22 of `/proc/PID/stat`) and in
/// microseconds since the epoch on macOS (ES's `start_time`, the fork time, which an exec does
/// not change); only equality matters, never its unit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct ProcessKey {
    pub pid: i32,
    pub start: u64,
}

/// A snapshot of one process, as a [`ProcessSource`] read it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ProcessInfo {
    pub key: ProcessKey,
    pub ppid: i32,
    /// The real executable. `None` when the kernel will not say: a zombie, a kernel thread, or a
    /// process we may not inspect.
    pub exe: Option<PathBuf>,
    /// The executable was deleted (or replaced) after the process started; `exe` is the path it
    /// had, with the kernel's ` (deleted)` marker removed.
    pub exe_deleted: bool,
    /// The arguments as the process shows them now (lossy UTF-8). Empty for zombies and kernel
    /// threads. A process may rewrite these (Node's `process.title`), so they are evidence about
    /// the present, not about what was exec'd.
    pub argv: Vec<String>,
    /// The kernel's short name (Linux: at most 15 bytes, set at exec or by `PR_SET_NAME`).
    pub comm: String,
}

impl ProcessInfo {
    pub fn argv0(&self) -> Option<&str> {
        self.argv.first().map(String::as_str)
    }

    /// The last component of the executable path, if the executable is known.
    pub fn exe_name(&self) -> Option<String> {
        self.exe
            .as_deref()
            .and_then(Path::file_name)
            .map(|name| name.to_string_lossy().into_owned())
    }
}

/// Why a [`ProcessSource`] could not describe a process.
#[derive(Debug, thiserror::Error)]
pub enum LineageError {
    /// The pid names no process (it exited, was reaped, or never existed), or the process that
    /// had it exited while we were reading it.
    #[error("process {pid} does not exist (it exited or never existed)")]
    Vanished { pid: i32 },
    /// The pid is not a valid process id at all.
    #[error("invalid pid {pid}: expected a positive process id")]
    InvalidPid { pid: i32 },
    /// A file that describes the process could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A file that describes the process did not have the expected format.
    #[error("malformed {path}: {reason}")]
    Malformed { path: PathBuf, reason: String },
    /// This OS has no process source (yet).
    #[error("no process source on this operating system")]
    Unsupported,
}

/// Where lineage reads live process facts from. Implemented per platform; tests use fakes.
pub trait ProcessSource {
    /// Describe the process `pid` as it is now.
    ///
    /// `pid` may be a thread id (a seccomp notification names the calling thread): an
    /// implementation answers for the process (thread group) that the thread belongs to, so a
    /// worker thread cannot act under an identity of its own.
    fn info(&self, pid: i32) -> Result<ProcessInfo, LineageError>;

    /// Only the identity of `pid` (same thread rule as [`ProcessSource::info`]). Sources that can
    /// get it more cheaply than a full [`ProcessSource::info`] override this; it is what a
    /// lookup in the lineage table needs.
    fn key(&self, pid: i32) -> Result<ProcessKey, LineageError> {
        self.info(pid).map(|info| info.key)
    }
}
