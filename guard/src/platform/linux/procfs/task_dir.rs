//! One task's /proc files, read cheaply: the facts a sensor records for each decision
//! ([`QuickFacts`]), read through an open `/proc/TID` directory ([`TaskDir`]) in as few syscalls
//! as procfs allows.
//!
//! A [`TaskDir`] must never read a task other than the one it was opened for: once that task is
//! reaped, reads through it fail, even when its pid has been reused.

use std::io;
use std::path::PathBuf;
#[cfg(target_os = "linux")]
use std::{
    ffi::{CStr, CString, OsString},
    os::fd::{AsFd, OwnedFd},
    os::unix::ffi::OsStringExt,
};

use super::parse::parse_status_tgid;
#[cfg(target_os = "linux")]
use super::parse::{parse_cmdline, parse_stat, split_deleted};
#[cfg(target_os = "linux")]
use crate::platform::linux::sys::{fs, pidfd};

/// What a sensor needs of the acting task for one decision, read cheaply: the real executable
/// (trusted tools are identified by it), the kernel's name for it, and its start time (the
/// second half of its key). Fields that cannot be read stay empty: a task that exits while
/// being judged still gets a verdict.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct QuickFacts {
    pub exe: PathBuf,
    pub comm: String,
    pub start: u64,
    pub ppid: Option<i32>,
    /// The process a thread belongs to (`Tgid:`), when read.
    pub tgid: Option<i32>,
    /// How many threads its process has (0 when unread): a task alone in its process is the
    /// process's leader.
    pub threads: i64,
}

/// Read a small procfs file in three syscalls: open, one read, close. (`fs::read` first asks
/// statx for a size, which procfs reports as 0, then reads twice more to find the end; on the
/// supervisor's hot path those calls were a third of the cost of knowing who acted.)
/// A procfs seq_file hands over everything that fits in one read, so a read that does not fill
/// the buffer is the end; a longer file is read on until a read returns nothing.
pub fn read_small(path: &str) -> io::Result<Vec<u8>> {
    read_to_end(std::fs::File::open(path)?)
}

fn read_to_end(mut file: std::fs::File) -> io::Result<Vec<u8>> {
    use std::io::Read;
    let mut out = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = file.read(&mut chunk)?;
        out.extend_from_slice(&chunk[..n]);
        if n < chunk.len() {
            return Ok(out);
        }
    }
}

/// An open `/proc/TID` directory: one task's files read without walking `/proc/TID` again for
/// each. (For a task first seen, procfs builds each entry on its first lookup, directory and
/// files alike; the supervisor reads a few files of every process the agent forks.) A file
/// opened through the handle after the task is gone fails: it never reads a task that took the
/// pid since, so the files read through one handle are all of the same task.
#[cfg(target_os = "linux")]
pub struct TaskDir(OwnedFd);

#[cfg(target_os = "linux")]
impl TaskDir {
    pub fn open(tid: i32) -> io::Result<TaskDir> {
        let path = CString::new(format!("/proc/{tid}")).map_err(|_| io::ErrorKind::InvalidInput)?;
        fs::open(&path, libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC).map(TaskDir)
    }

    /// A small file of the task (see [`read_small`]).
    pub fn read(&self, name: &CStr) -> io::Result<Vec<u8>> {
        let file = fs::openat(self.0.as_fd(), name, libc::O_RDONLY | libc::O_CLOEXEC)?;
        read_to_end(std::fs::File::from(file))
    }

    /// The real executable, empty when it cannot be read.
    pub fn exe(&self) -> PathBuf {
        let mut buf = vec![0u8; libc::PATH_MAX as usize];
        let n = fs::readlinkat(self.0.as_fd(), c"exe", &mut buf).unwrap_or(0);
        if n == 0 || n >= buf.len() {
            return PathBuf::new();
        }
        buf.truncate(n);
        split_deleted(PathBuf::from(OsString::from_vec(buf))).0
    }

    /// The kernel's name of the task (`comm`, a cheaper read than the whole stat line).
    pub fn comm(&self) -> String {
        self.read(c"comm")
            .map(|bytes| {
                let line = bytes.strip_suffix(b"\n").unwrap_or(&bytes);
                String::from_utf8_lossy(line).into_owned()
            })
            .unwrap_or_default()
    }

    /// The task's arguments after `argv[0]` (`cmdline`), empty when they cannot be read.
    pub fn args(&self) -> Vec<String> {
        let mut argv = self
            .read(c"cmdline")
            .map(|bytes| parse_cmdline(&bytes))
            .unwrap_or_default();
        if !argv.is_empty() {
            argv.remove(0);
        }
        argv
    }

    /// [`QuickFacts`] of the task.
    pub fn facts(&self) -> QuickFacts {
        let exe = self.exe();
        let stat = self
            .read(c"stat")
            .ok()
            .and_then(|bytes| parse_stat(&String::from_utf8_lossy(&bytes)).ok());
        let ppid = stat.as_ref().map(|s| s.ppid);
        let threads = stat.as_ref().map_or(0, |s| s.num_threads);
        let (comm, start) = stat.map(|s| (s.comm, s.start_time)).unwrap_or_default();
        QuickFacts {
            exe,
            comm,
            start,
            ppid,
            tgid: None,
            threads,
        }
    }

    /// Whether thread `tid` belongs to this task's process now (`task/TID` exists; a lookup,
    /// nothing formatted).
    pub fn has_thread(&self, tid: i32) -> bool {
        CString::new(format!("task/{tid}")).is_ok_and(|name| {
            fs::openat(
                self.0.as_fd(),
                &name,
                libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
            )
            .is_ok()
        })
    }

    /// Whether the task has not been reaped: the kernel takes a `/proc/PID` directory fd as a
    /// pidfd, and signal 0 only checks existence. (A zombie counts: it makes no more calls.)
    pub fn is_alive(&self) -> bool {
        pidfd::send_signal(self.0.as_fd(), 0, None, 0).is_ok()
    }
}

/// [`QuickFacts`] of task `tid` (a thread id works: `exe`, `comm` and `stat` exist per thread).
#[cfg(target_os = "linux")]
pub fn quick_facts(tid: i32) -> QuickFacts {
    TaskDir::open(tid)
        .map(|dir| dir.facts())
        .unwrap_or_default()
}

/// The process a thread belongs to (`Tgid:` of `/proc/TID/status`), or None when no such
/// thread exists.
pub fn tgid_of(tid: i32) -> Option<i32> {
    read_small(&format!("/proc/{tid}/status"))
        .ok()
        .and_then(|s| parse_status_tgid(&String::from_utf8_lossy(&s)))
}

/// [`QuickFacts`] plus the process a thread belongs to (one more read, of `status`).
#[cfg(target_os = "linux")]
pub fn facts_with_tgid(tid: i32) -> QuickFacts {
    QuickFacts {
        tgid: tgid_of(tid),
        ..quick_facts(tid)
    }
}

#[cfg(all(test, target_os = "linux"))]
pub(crate) mod tests {
    use super::*;
    use std::process::{Command, Stdio};

    #[test]
    fn reads_a_live_process_and_nothing_once_it_is_reaped() {
        let mut child = Command::new("sleep")
            .arg("30")
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let dir = TaskDir::open(child.id() as i32).unwrap();
        let facts = dir.facts();
        assert!(facts.exe.ends_with("sleep"), "{facts:?}");
        assert_eq!(facts.comm, "sleep");
        assert_eq!(dir.comm(), "sleep");
        assert_eq!(facts.ppid, Some(std::process::id() as i32));
        assert!(facts.start > 0);
        assert_eq!(facts.threads, 1);
        assert!(dir.is_alive());

        child.kill().unwrap();
        child.wait().unwrap();
        // The handle still names the reaped process: nothing is read, whoever has the pid now.
        assert!(!dir.is_alive());
        assert_eq!(dir.facts(), QuickFacts::default());
        assert_eq!(dir.comm(), "");
    }

    /// A thread of the test process that waits until dropped: a task that is not a leader.
    pub(crate) struct ParkedThread {
        pub tid: i32,
        done: Option<std::sync::mpsc::Sender<()>>,
        handle: Option<std::thread::JoinHandle<()>>,
    }

    impl ParkedThread {
        pub(crate) fn start() -> ParkedThread {
            let (tx, rx) = std::sync::mpsc::channel();
            let (done, parked) = std::sync::mpsc::channel::<()>();
            let handle = std::thread::spawn(move || {
                tx.send(crate::platform::linux::sys::process::tid())
                    .unwrap();
                let _ = parked.recv();
            });
            ParkedThread {
                tid: rx.recv().unwrap(),
                done: Some(done),
                handle: Some(handle),
            }
        }
    }

    impl Drop for ParkedThread {
        fn drop(&mut self) {
            drop(self.done.take());
            if let Some(handle) = self.handle.take() {
                let _ = handle.join();
            }
        }
    }

    #[test]
    fn a_thread_is_alive_until_it_ends() {
        let thread = ParkedThread::start();
        let dir = TaskDir::open(thread.tid).unwrap();
        // A thread has files of its own; its process has more than one thread.
        let facts = dir.facts();
        assert_eq!(facts.ppid, Some(std::os::unix::process::parent_id() as i32));
        assert!(facts.threads > 1, "{facts:?}");
        assert!(dir.is_alive());
        drop(thread);
        assert!(!dir.is_alive());
    }
}
