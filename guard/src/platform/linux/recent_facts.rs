//! Facts of recently seen processes, so that the record of an *allowed* supervised call does not
//! cost two `/proc` reads (they were a quarter of the supervisor's time on a write-open).
//!
//! An entry is trusted only while the process it was read from is alive: it holds that process's
//! `/proc/PID` directory, which the kernel also takes as a pidfd: a signal 0 through it fails once
//! its process is gone, even when the pid has been reused since, and a file opened through it
//! never belongs to a newcomer. An exec changes `exe` and `comm` but not the pid or the start
//! time: the supervisor marks the caller's entry when it allows one
//! ([`RecentFacts::exec_allowed`]), and only those two are read again at its next call. (Most
//! supervised processes are a fork that execs at once and makes a call or two: the exec's record
//! reads the facts, the first call after it reads only the exe link and the comm, through the
//! directory already open.)
//!
//! This must never feed a decision. Between an exec being judged and being performed, another
//! thread of the same process may still put the old facts back; a record can then name the
//! previous program, a verdict must not. Decisions read `/proc` afresh (see `runtime::linux`).

use std::collections::HashMap;
use std::sync::Mutex;

use super::procfs::{self, QuickFacts, TaskDir};
use super::sys;

/// At most this many processes are remembered (each holds a directory fd of the supervisor's).
const CAPACITY: usize = 256;

#[derive(Default)]
pub struct RecentFacts {
    entries: Mutex<HashMap<i32, Entry>>,
}

struct Entry {
    dir: TaskDir,
    facts: QuickFacts,
    /// The process was allowed an exec since `exe` and `comm` were read.
    exec_since: bool,
}

/// Whether `tid` is its process's leader: pidfd_open refuses any other thread.
fn is_leader(tid: i32) -> bool {
    // The pidfd is closed at once.
    sys::pidfd::open(tid).is_ok()
}

impl RecentFacts {
    /// The facts of task `tid`, from memory when they were read from this same process.
    pub fn get(&self, tid: i32) -> QuickFacts {
        if let Ok(mut entries) = self.entries.lock() {
            if let Some(entry) = entries.get_mut(&tid).filter(|e| e.dir.is_alive()) {
                if entry.exec_since {
                    entry.facts.exe = entry.dir.exe();
                    entry.facts.comm = entry.dir.comm();
                    entry.exec_since = false;
                }
                return entry.facts.clone();
            }
        }
        let Ok(dir) = TaskDir::open(tid) else {
            return QuickFacts::default();
        };
        let facts = dir.facts();
        // Only processes are remembered, by their leader's tid, so that `exec_allowed` finds the
        // entry an exec changes (a thread that execs takes the leader's pid). A task alone in its
        // process is the leader; in a process with threads, pidfd_open tells (it refuses others).
        if dir.is_alive() && (facts.threads == 1 || is_leader(tid)) {
            if let Ok(mut entries) = self.entries.lock() {
                if entries.len() >= CAPACITY {
                    entries.retain(|_, e| e.dir.is_alive());
                    if entries.len() >= CAPACITY {
                        entries.clear();
                    }
                }
                let entry = Entry {
                    dir,
                    facts: facts.clone(),
                    exec_since: false,
                };
                entries.insert(tid, entry);
            }
        }
        facts
    }

    /// Task `tid` is about to exec: its process's `exe` and `comm` are about to change.
    /// Only leaders have entries; a thread other than the leader takes the leader's pid when it
    /// execs, so for a thread without an entry the leader is forgotten.
    pub fn exec_allowed(&self, tid: i32) {
        if let Ok(mut entries) = self.entries.lock() {
            if let Some(entry) = entries.get_mut(&tid) {
                entry.exec_since = true;
                return;
            }
        }
        let leader = procfs::tgid_of(tid).unwrap_or(tid);
        if leader == tid {
            return;
        }
        if let Ok(mut entries) = self.entries.lock() {
            entries.remove(&leader);
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.lock().map(|e| e.len()).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::{Command, Stdio};

    #[test]
    fn remembers_a_live_process_and_not_a_dead_one() {
        let recent = RecentFacts::default();
        let mut child = Command::new("sleep")
            .arg("30")
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let pid = child.id() as i32;
        let first = recent.get(pid);
        assert!(first.exe.ends_with("sleep"), "{first:?}");
        assert_eq!(recent.len(), 1);
        assert_eq!(recent.get(pid), first);

        child.kill().unwrap();
        child.wait().unwrap();
        // The pid is gone (and could be anyone's now): the entry is not trusted.
        let after = recent.get(pid);
        assert_eq!(after.exe, std::path::PathBuf::new(), "{after:?}");
    }

    #[test]
    fn an_exec_rereads_exe_and_comm() {
        let recent = RecentFacts::default();
        // sh execs sleep after reading a line: the same pid before and after the exec.
        let mut child = Command::new("sh")
            .args(["-c", "read x; exec sleep 30"])
            .stdin(Stdio::piped())
            .spawn()
            .unwrap();
        let pid = child.id() as i32;
        let before = recent.get(pid);
        assert!(!before.exe.ends_with("sleep"), "{before:?}");
        use std::io::Write;
        child.stdin.take().unwrap().write_all(b"go\n").unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !procfs::quick_facts(pid).exe.ends_with("sleep") {
            assert!(
                std::time::Instant::now() < deadline,
                "sh never exec'd sleep"
            );
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        // Alive, same pid: still remembered as before (which is why the exec must be told).
        assert_eq!(recent.get(pid), before);
        recent.exec_allowed(pid);
        let after = recent.get(pid);
        assert!(after.exe.ends_with("sleep"), "{after:?}");
        assert_eq!(after.comm, "sleep");
        // The process is the same: its start time was kept, not read again.
        assert_eq!(after.start, before.start);
        assert_eq!(recent.len(), 1);
        child.kill().unwrap();
        child.wait().unwrap();
    }

    #[test]
    fn remembers_a_process_by_its_leader_and_not_its_other_threads() {
        let recent = RecentFacts::default();
        let thread = procfs::ParkedThread::start();
        // The thread's facts are read, not kept; the leader of the same (threaded) process is.
        assert!(!recent.get(thread.tid).exe.as_os_str().is_empty());
        assert_eq!(recent.len(), 0);
        assert!(!recent
            .get(std::process::id() as i32)
            .exe
            .as_os_str()
            .is_empty());
        assert_eq!(recent.len(), 1);
    }
}
