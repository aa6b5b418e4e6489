//! The Linux [`ProcessSource`]: process facts from `/proc`.
//!
//! `/proc/PID/stat` gives the identity (pid, start time), the parent and the comm;
//! `/proc/PID/exe` the real executable; `/proc/PID/cmdline` the arguments. The parsers
//! ([`parse_stat`], [`parse_cmdline`], [`split_deleted`], [`parse_status_tgid`]) are pure and
//! compile on every unix, so they are tested (and fuzzed) anywhere; [`ProcFs`] only reads files
//! under a root directory (`/proc` unless a test points it at a crafted tree).
//!
//! Reading a process is not atomic: it can exit, and its pid be reused, between two reads. The
//! stat is therefore read again after the other files; a different start time means the
//! process we began reading is gone ([`LineageError::Vanished`]). This must never panic on
//! anything the kernel (or a crafted tree) hands it.

use std::ffi::OsString;
use std::io;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::PathBuf;

use crate::lineage::{LineageError, ProcessInfo, ProcessKey, ProcessSource};

/// The fields of `/proc/PID/stat` that lineage uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stat {
    /// Field 1.
    pub pid: i32,
    /// Field 2, without its parentheses (lossy UTF-8; may hold spaces, `)` and newlines).
    pub comm: String,
    /// Field 3: R, S, D, Z (zombie), T, t, X, I, ...
    pub state: char,
    /// Field 4.
    pub ppid: i32,
    /// Field 20.
    pub num_threads: i64,
    /// Field 22: clock ticks after boot at which the process started.
    pub start_time: u64,
}

/// A `/proc/PID/stat` line that is not what the kernel writes.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StatError {
    #[error("no \"(comm)\" field: expected \"PID (COMM) STATE PPID ...\"")]
    NoComm,
    #[error("field {field} ({name}) is missing: expected at least 22 fields")]
    Missing { field: usize, name: &'static str },
    #[error("field {field} ({name}) is {value:?}: expected {expected}")]
    Invalid {
        field: usize,
        name: &'static str,
        value: String,
        expected: &'static str,
    },
}

/// Parse one `/proc/PID/stat` line.
///
/// The comm (field 2) is written raw between parentheses and may itself contain `)`, spaces or
/// newlines, so it ends at the *last* `)` of the line: no field after it can contain one.
pub fn parse_stat(line: &str) -> Result<Stat, StatError> {
    let open = line.find('(').ok_or(StatError::NoComm)?;
    let close = line.rfind(')').ok_or(StatError::NoComm)?;
    if close < open {
        return Err(StatError::NoComm);
    }
    let pid = number(1, "pid", line[..open].trim(), "a process id")?;
    let comm = line[open + 1..close].to_string();
    // Fields 3.. are plain numbers and letters separated by single spaces.
    let rest: Vec<&str> = line[close + 1..].split_ascii_whitespace().collect();
    let field = |n: usize, name: &'static str| -> Result<&str, StatError> {
        rest.get(n - 3)
            .copied()
            .ok_or(StatError::Missing { field: n, name })
    };
    let state_text = field(3, "state")?;
    let mut chars = state_text.chars();
    let state = match (chars.next(), chars.next()) {
        (Some(c), None) if c.is_ascii_alphabetic() => c,
        _ => {
            return Err(StatError::Invalid {
                field: 3,
                name: "state",
                value: state_text.to_string(),
                expected: "one letter",
            })
        }
    };
    Ok(Stat {
        pid,
        comm,
        state,
        ppid: number(4, "ppid", field(4, "ppid")?, "a process id")?,
        num_threads: number(20, "num_threads", field(20, "num_threads")?, "a count")?,
        start_time: number(22, "starttime", field(22, "starttime")?, "clock ticks")?,
    })
}

fn number<T: std::str::FromStr>(
    field: usize,
    name: &'static str,
    text: &str,
    expected: &'static str,
) -> Result<T, StatError> {
    text.parse().map_err(|_| StatError::Invalid {
        field,
        name,
        value: text.to_string(),
        expected,
    })
}

/// Split `/proc/PID/cmdline` into arguments (lossy UTF-8).
///
/// Arguments are NUL-terminated; the final terminator ends the list rather than starting an
/// empty argument. A process that rewrote its arguments (setproctitle) may leave no terminator,
/// or NUL padding: what is there is returned as is, empty strings included. Zombies and kernel
/// threads have an empty cmdline, hence no arguments.
pub fn parse_cmdline(bytes: &[u8]) -> Vec<String> {
    let bytes = bytes.strip_suffix(b"\0").unwrap_or(bytes);
    if bytes.is_empty() {
        return Vec::new();
    }
    bytes
        .split(|&b| b == 0)
        .map(|arg| String::from_utf8_lossy(arg).into_owned())
        .collect()
}

/// The kernel appends this to `/proc/PID/exe` when the executable was unlinked after exec.
const DELETED_SUFFIX: &[u8] = b" (deleted)";

/// Split the kernel's ` (deleted)` marker off an `/proc/PID/exe` link target.
///
/// Returns the path the executable had and whether it was deleted. A file whose real name ends
/// in ` (deleted)` reads the same; the kernel gives no way to tell them apart.
pub fn split_deleted(target: PathBuf) -> (PathBuf, bool) {
    let bytes = target.as_os_str().as_bytes();
    match bytes.strip_suffix(DELETED_SUFFIX) {
        Some(path) if !path.is_empty() => (PathBuf::from(OsString::from_vec(path.to_vec())), true),
        _ => (target, false),
    }
}

/// The `Tgid:` (thread group, i.e. process id) line of `/proc/PID/status`.
pub fn parse_status_tgid(status: &str) -> Option<i32> {
    status
        .lines()
        .find_map(|line| line.strip_prefix("Tgid:"))
        .and_then(|value| value.trim().parse().ok())
}

/// Process facts from a procfs mount.
#[derive(Clone, Debug)]
pub struct ProcFs {
    root: PathBuf,
}

impl Default for ProcFs {
    fn default() -> Self {
        ProcFs::new()
    }
}

impl ProcFs {
    /// The system's `/proc`.
    pub fn new() -> ProcFs {
        ProcFs::with_root("/proc")
    }

    /// A procfs-shaped tree under `root` (`root/PID/stat`, `root/PID/exe`, ...).
    pub fn with_root(root: impl Into<PathBuf>) -> ProcFs {
        ProcFs { root: root.into() }
    }

    fn path(&self, pid: i32, file: &str) -> PathBuf {
        self.root.join(pid.to_string()).join(file)
    }

    fn stat(&self, pid: i32) -> Result<Stat, LineageError> {
        let path = self.path(pid, "stat");
        let bytes = std::fs::read(&path).map_err(|e| read_error(pid, path.clone(), e))?;
        let stat =
            parse_stat(&String::from_utf8_lossy(&bytes)).map_err(|e| LineageError::Malformed {
                path: path.clone(),
                reason: e.to_string(),
            })?;
        if stat.pid != pid {
            return Err(LineageError::Malformed {
                path,
                reason: format!("field 1 (pid) is {}: expected {pid}", stat.pid),
            });
        }
        Ok(stat)
    }

    /// The stat of the process `pid` belongs to: `pid` itself, or its thread group leader when
    /// `pid` is a thread id.
    fn process_stat(&self, pid: i32) -> Result<Stat, LineageError> {
        if pid <= 0 {
            return Err(LineageError::InvalidPid { pid });
        }
        let stat = self.stat(pid)?;
        // A single-threaded process is its own leader; only threads cost the extra read.
        if stat.num_threads <= 1 {
            return Ok(stat);
        }
        let path = self.path(pid, "status");
        let status = std::fs::read(&path).map_err(|e| read_error(pid, path.clone(), e))?;
        let tgid = parse_status_tgid(&String::from_utf8_lossy(&status)).ok_or_else(|| {
            LineageError::Malformed {
                path,
                reason: "no \"Tgid:\" line with a process id".to_string(),
            }
        })?;
        if tgid == pid {
            Ok(stat)
        } else {
            self.stat(tgid)
        }
    }
}

impl ProcessSource for ProcFs {
    fn info(&self, pid: i32) -> Result<ProcessInfo, LineageError> {
        let before = self.process_stat(pid)?;
        let pid = before.pid;
        // Unreadable for zombies, kernel threads and (without privilege) other users' processes.
        let (exe, exe_deleted) = match std::fs::read_link(self.path(pid, "exe")) {
            Ok(target) => {
                let (exe, deleted) = split_deleted(target);
                (Some(exe), deleted)
            }
            Err(_) => (None, false),
        };
        let argv = std::fs::read(self.path(pid, "cmdline"))
            .map(|bytes| parse_cmdline(&bytes))
            .unwrap_or_default();
        let after = self.stat(pid)?;
        if after.start_time != before.start_time {
            return Err(LineageError::Vanished { pid });
        }
        Ok(ProcessInfo {
            key: ProcessKey {
                pid,
                start: after.start_time,
            },
            // The later read: a reparenting in between is the newer truth.
            ppid: after.ppid,
            exe,
            exe_deleted,
            argv,
            comm: after.comm,
        })
    }

    fn key(&self, pid: i32) -> Result<ProcessKey, LineageError> {
        let stat = self.process_stat(pid)?;
        Ok(ProcessKey {
            pid: stat.pid,
            start: stat.start_time,
        })
    }
}

/// ENOENT (no such pid) and ESRCH (the process died while its file was open) both mean gone.
fn read_error(pid: i32, path: PathBuf, error: io::Error) -> LineageError {
    if error.kind() == io::ErrorKind::NotFound || error.raw_os_error() == Some(libc::ESRCH) {
        LineageError::Vanished { pid }
    } else {
        LineageError::Io {
            path,
            source: error,
        }
    }
}
