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

/// At most this many threads are mapped to their process.
const THREAD_CAPACITY: usize = 4096;

#[derive(Default)]
pub struct RecentFacts {
    entries: Mutex<Entries>,
}

#[derive(Default)]
struct Entries {
    /// Processes, by their leader's tid.
    leaders: HashMap<i32, Entry>,
    /// Other threads, to their process's leader: trusted only while that leader's entry is
    /// alive and the thread is still one of its process (`task/TID`), so a tid reused by
    /// another process is never taken for this one. (Without it, every call of a thread other
    /// than the leader read its facts and `status` again: a 64-thread program paid that on
    /// every call.)
    threads: HashMap<i32, i32>,
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

impl Entries {
    /// The remembered facts of leader `leader`, read again after an exec; `None` when it is
    /// not remembered or its process is gone.
    fn leader(&mut self, leader: i32) -> Option<QuickFacts> {
        let entry = self.leaders.get_mut(&leader).filter(|e| e.dir.is_alive())?;
        if entry.exec_since {
            entry.facts.exe = entry.dir.exe();
            entry.facts.comm = entry.dir.comm();
            entry.exec_since = false;
        }
        Some(QuickFacts {
            tgid: Some(leader),
            ..entry.facts.clone()
        })
    }

    /// The remembered facts of thread `tid`'s process, when `tid` is mapped to a leader that is
    /// remembered and still has it.
    fn thread(&mut self, tid: i32) -> Option<QuickFacts> {
        let leader = *self.threads.get(&tid)?;
        let has_it = self
            .leaders
            .get(&leader)
            .is_some_and(|e| e.dir.has_thread(tid));
        if !has_it {
            self.threads.remove(&tid);
            return None;
        }
        self.leader(leader)
    }

    fn remember(&mut self, tid: i32, entry: Entry) {
        if self.leaders.len() >= CAPACITY {
            self.leaders.retain(|_, e| e.dir.is_alive());
            if self.leaders.len() >= CAPACITY {
                self.leaders.clear();
            }
            let leaders = &self.leaders;
            self.threads.retain(|_, l| leaders.contains_key(l));
        }
        self.leaders.insert(tid, entry);
    }

    fn map_thread(&mut self, tid: i32, leader: i32) {
        if self.threads.len() >= THREAD_CAPACITY {
            self.threads.clear();
        }
        self.threads.insert(tid, leader);
    }
}

impl RecentFacts {
    /// The facts of task `tid`'s process, from memory when they were read from this same
    /// process; `tgid` is always set. For a thread other than the leader, the facts are its
    /// process's (the leader's `comm` and start time), read once for all its threads.
    pub fn get(&self, tid: i32) -> QuickFacts {
        if let Ok(mut entries) = self.entries.lock() {
            if let Some(facts) = entries.leader(tid).or_else(|| entries.thread(tid)) {
                return facts;
            }
        }
        let Ok(dir) = TaskDir::open(tid) else {
            return QuickFacts::default();
        };
        let facts = dir.facts();
        // Processes are remembered by their leader's tid, so that `exec_allowed` finds the
        // entry an exec changes (a thread that execs takes the leader's pid). A task alone in
        // its process is the leader; in a process with threads, pidfd_open tells (it refuses
        // others).
        if facts.threads == 1 || is_leader(tid) {
            if dir.is_alive() {
                if let Ok(mut entries) = self.entries.lock() {
                    let entry = Entry {
                        dir,
                        facts: facts.clone(),
                        exec_since: false,
                    };
                    entries.remember(tid, entry);
                }
            }
            return QuickFacts {
                tgid: Some(tid),
                ..facts
            };
        }
        // Another thread: its process is remembered (once) under the leader.
        let Some(leader) = procfs::tgid_of(tid).filter(|&l| l != tid) else {
            return facts;
        };
        let process = self.get(leader);
        if let Ok(mut entries) = self.entries.lock() {
            if entries
                .leaders
                .get(&leader)
                .is_some_and(|e| e.dir.has_thread(tid))
            {
                entries.map_thread(tid, leader);
                return process;
            }
        }
        QuickFacts {
            tgid: Some(leader),
            ..facts
        }
    }

    /// Task `tid` is about to exec: its process's `exe` and `comm` are about to change.
    /// Only leaders have entries; a thread other than the leader takes the leader's pid when it
    /// execs, so for a thread without an entry the leader is forgotten.
    pub fn exec_allowed(&self, tid: i32) {
        if let Ok(mut entries) = self.entries.lock() {
            if let Some(entry) = entries.leaders.get_mut(&tid) {
                entry.exec_since = true;
                return;
            }
        }
        let leader = procfs::tgid_of(tid).unwrap_or(tid);
        if leader == tid {
            return;
        }
        if let Ok(mut entries) = self.entries.lock() {
            entries.leaders.remove(&leader);
            entries.threads.remove(&tid);
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.lock().map(|e| e.leaders.len()).unwrap_or(0)
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
    fn remembers_a_process_by_its_leader_and_maps_its_other_threads() {
        let recent = RecentFacts::default();
        let me = std::process::id() as i32;
        let thread = procfs::ParkedThread::start();
        // A thread's call remembers its process under the leader, and maps the thread to it:
        // the facts are the process's, its pid the thread group's.
        let first = recent.get(thread.tid);
        assert!(!first.exe.as_os_str().is_empty(), "{first:?}");
        assert_eq!(first.tgid, Some(me));
        assert_eq!(recent.len(), 1);
        let leader = recent.get(me);
        assert_eq!(leader, first);
        assert_eq!(recent.get(thread.tid), first);
        let tid = thread.tid;
        drop(thread);
        // The thread is gone: its tid is no longer taken for one of this process (it could be
        // another process's by now), its facts are read afresh (here: nothing to read).
        let after = recent.get(tid);
        assert_eq!(after.tgid, None, "{after:?}");
        assert_eq!(after.exe, std::path::PathBuf::new(), "{after:?}");
    }

    #[test]
    fn a_thread_that_execs_makes_its_process_read_again() {
        let recent = RecentFacts::default();
        let me = std::process::id() as i32;
        let thread = procfs::ParkedThread::start();
        let before = recent.get(thread.tid);
        assert_eq!(before.tgid, Some(me));
        // The exec of another thread than the leader forgets the process (it takes the
        // leader's pid and its new program).
        recent.exec_allowed(thread.tid);
        assert_eq!(recent.len(), 0);
        assert_eq!(recent.get(thread.tid).tgid, Some(me));
        assert_eq!(recent.len(), 1);
    }
}
