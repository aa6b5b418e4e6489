//! The Linux [`ProcessSource`]: process facts from `/proc`.
//!
//! `/proc/PID/stat` gives the identity (pid, start time), the parent and the comm;
//! `/proc/PID/exe` the real executable; `/proc/PID/cmdline` the arguments. The parsers
//! ([`parse_stat`], [`parse_cmdline`], [`split_deleted`], [`parse_status_tgid`], in `parse`) are
//! pure and compile on every unix; [`ProcFs`] only reads files under a root directory (`/proc`
//! unless a test points it at a crafted tree); `task_dir` reads one task cheaply for the
//! supervisor's records.
//!
//! Reading a process is not atomic: it can exit, and its pid be reused, between two reads. The
//! stat is therefore read again after the other files; a different start time means the
//! process we began reading is gone ([`LineageError::Vanished`]). This must never panic on
//! anything the kernel (or a crafted tree) hands it.

mod parse;
mod task_dir;

use std::io;
use std::path::PathBuf;

pub use parse::{parse_cmdline, parse_stat, parse_status_tgid, split_deleted, Stat, StatError};
#[cfg(all(test, target_os = "linux"))]
pub(crate) use task_dir::tests::ParkedThread;
#[cfg(target_os = "linux")]
pub use task_dir::{facts_with_tgid, quick_facts, TaskDir};
pub use task_dir::{read_small, tgid_of, QuickFacts};

use crate::lineage::{LineageError, ProcessInfo, ProcessKey, ProcessSource};

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

#[cfg(test)]
mod tests {
    use super::parse::tests::stat_line;
    use super::*;

    /// A crafted procfs tree with one process.
    fn crafted(pid: i32, stat: &str, exe: Option<&str>, cmdline: &[u8]) -> tempfile::TempDir {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join(pid.to_string());
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(dir.join("stat"), stat).unwrap();
        std::fs::write(dir.join("cmdline"), cmdline).unwrap();
        if let Some(exe) = exe {
            std::os::unix::fs::symlink(exe, dir.join("exe")).unwrap();
        }
        root
    }

    #[test]
    fn crafted_tree_deleted_exe_and_odd_comm() {
        let line = stat_line(4242, "cl) aude\n", 'S', 1, 1, 77);
        let root = crafted(
            4242,
            &line,
            Some("/opt/claude (deleted)"),
            b"claude\x00--yes\x00",
        );
        let info = ProcFs::with_root(root.path()).info(4242).unwrap();
        assert_eq!(
            info.key,
            ProcessKey {
                pid: 4242,
                start: 77
            }
        );
        assert_eq!(info.exe, Some(PathBuf::from("/opt/claude")));
        assert!(info.exe_deleted);
        assert_eq!(info.argv, ["claude", "--yes"]);
        assert_eq!(info.comm, "cl) aude\n");
        assert_eq!(info.ppid, 1);
    }

    #[test]
    fn crafted_tree_errors() {
        let root = crafted(5, "5 (x) S", None, b"");
        let procfs = ProcFs::with_root(root.path());
        let error = procfs.info(5).unwrap_err();
        assert!(matches!(error, LineageError::Malformed { .. }), "{error}");
        assert!(error.to_string().contains("5/stat"), "{error}");
        assert!(matches!(
            procfs.info(6),
            Err(LineageError::Vanished { pid: 6 })
        ));
        assert!(matches!(
            procfs.key(0),
            Err(LineageError::InvalidPid { pid: 0 })
        ));
        // A stat whose pid field is not the directory's pid is not that process.
        let root = crafted(7, &stat_line(8, "x", 'S', 1, 1, 1), None, b"");
        let error = ProcFs::with_root(root.path()).info(7).unwrap_err();
        assert!(
            error.to_string().contains("field 1 (pid) is 8: expected 7"),
            "{error}"
        );
    }

    #[cfg(target_os = "linux")]
    mod real {
        use super::*;
        use std::process::Command;
        use std::time::{Duration, Instant};

        #[test]
        fn stat_of_this_process() {
            let text = std::fs::read_to_string("/proc/self/stat").unwrap();
            let stat = parse_stat(&text).unwrap();
            assert_eq!(stat.pid, std::process::id() as i32);
            assert_eq!(stat.ppid, std::os::unix::process::parent_id() as i32);
            // The process is named by its main thread, which the test harness keeps waiting;
            // this thread is the one running.
            let thread = parse_stat(&std::fs::read_to_string("/proc/thread-self/stat").unwrap());
            assert_eq!(thread.unwrap().state, 'R');
            let comm = std::fs::read_to_string("/proc/self/comm").unwrap();
            assert_eq!(stat.comm, comm.trim_end_matches('\n'));
            // The test binary's comm has no spaces, so a naive split agrees on field 22.
            let naive: Vec<&str> = text.split_whitespace().collect();
            assert_eq!(stat.start_time.to_string(), naive[21]);
            assert!(stat.num_threads >= 1);
        }

        #[test]
        fn cmdline_of_this_process() {
            let own = parse_cmdline(&std::fs::read("/proc/self/cmdline").unwrap());
            assert_eq!(own, std::env::args().collect::<Vec<_>>());
        }

        #[test]
        fn this_process() {
            let procfs = ProcFs::new();
            let pid = std::process::id() as i32;
            let info = procfs.info(pid).unwrap();
            assert_eq!(info.key.pid, pid);
            assert_eq!(info.exe, Some(std::env::current_exe().unwrap()));
            assert!(!info.exe_deleted);
            assert_eq!(info.argv, std::env::args().collect::<Vec<_>>());
            assert_eq!(procfs.key(pid).unwrap(), info.key);
            assert_eq!(info.ppid, std::os::unix::process::parent_id() as i32);
        }

        #[test]
        fn a_thread_id_is_read_as_its_process() {
            let procfs = ProcFs::new();
            let pid = std::process::id() as i32;
            let (tid, key, info) = std::thread::spawn(move || {
                let tid = crate::platform::linux::sys::process::tid();
                let procfs = ProcFs::new();
                (tid, procfs.key(tid).unwrap(), procfs.info(tid).unwrap())
            })
            .join()
            .unwrap();
            assert_ne!(tid, pid);
            let own = procfs.info(pid).unwrap();
            assert_eq!(key, own.key);
            assert_eq!(info.key, own.key);
            assert_eq!(info.ppid, own.ppid);
        }

        #[test]
        fn zombie_then_vanished() {
            let mut child = Command::new("true").spawn().unwrap();
            let pid = child.id() as i32;
            let procfs = ProcFs::new();
            // Not reaped yet: once it exits it is a zombie.
            let deadline = Instant::now() + Duration::from_secs(5);
            let stat = loop {
                let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
                let stat = parse_stat(&text).unwrap();
                if stat.state == 'Z' {
                    break stat;
                }
                assert!(Instant::now() < deadline, "child never became a zombie");
                std::thread::sleep(Duration::from_millis(10));
            };
            assert_eq!(stat.comm, "true");
            let info = procfs.info(pid).unwrap();
            assert_eq!(info.exe, None);
            assert!(info.argv.is_empty());
            assert_eq!(info.comm, "true");
            assert_eq!(info.key.start, stat.start_time);
            child.wait().unwrap();
            assert!(matches!(
                procfs.info(pid),
                Err(LineageError::Vanished { .. })
            ));
            assert!(matches!(
                procfs.key(pid),
                Err(LineageError::Vanished { .. })
            ));
        }

        #[test]
        fn deleted_executable_of_a_real_process() {
            let dir = tempfile::tempdir().unwrap();
            let copy = dir.path().join("sleep-copy");
            std::fs::copy("/bin/sleep", &copy).unwrap();
            let mut child = Command::new(&copy).arg("30").spawn().unwrap();
            std::fs::remove_file(&copy).unwrap();
            let info = ProcFs::new().info(child.id() as i32);
            child.kill().unwrap();
            child.wait().unwrap();
            let info = info.unwrap();
            assert_eq!(info.exe.as_deref(), Some(copy.as_path()));
            assert!(info.exe_deleted);
        }
    }
}
