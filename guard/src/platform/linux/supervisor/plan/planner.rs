//! The planner's vocabulary: the [`Plan`] a decoded call becomes, and the [`Planner`], which
//! holds what planning may read (the task through its `TaskReader`, the secret-file index, the
//! guard's own processes) and the steps every family shares (read a path, resolve it).
//!
//! Planning must never change anything: it reads the task and the file system, and says what
//! to judge and what to do; the handler asks the judge and the emulation acts.

use std::io;
use std::path::{Path, PathBuf};

use crate::engine::Action;
use crate::platform::linux::supervisor::call::{Base, UserPtr};
use crate::platform::linux::supervisor::emulate::Emulation;
use crate::platform::linux::supervisor::resolve::{self, Asker};
use crate::platform::linux::supervisor::secret_inodes::SecretInodes;
use crate::platform::linux::supervisor::task::TaskReader;
use crate::platform::linux::sys::notify::Response;

/// What to do with a notification once decoded.
#[derive(Debug)]
pub enum Plan {
    /// Judge, then let the kernel run the call (it reads its arguments again: only for calls
    /// whose second reading cannot change what was judged, or that cannot be emulated).
    Check(Vec<Action>),
    /// Judge, then perform the call here on the checked paths.
    Emulate(Vec<Action>, Emulation),
    /// A signal, ptrace or /proc access aimed at the guard's own process (this pid): record it,
    /// refuse it.
    Guard(i32),
    /// A call that would lend the supervisor's power beyond the task's own (see `refusal`):
    /// record this action through the judge, refuse the call whatever the verdict.
    Refuse(Action),
    /// Answer without asking the judge.
    Answer(Response),
}

/// agent-guard's own processes, which no supervised call may signal, trace or look into.
#[derive(Clone, Debug)]
pub struct GuardProcesses {
    /// The supervisor first, then the launcher that waits for CMD, then the late-roots helper.
    pub pids: Vec<i32>,
    /// The launcher's process group (signals to the whole group would reach it).
    pub pgid: i32,
}

impl GuardProcesses {
    /// The supervisor's pid, named in the records of refused accesses to its /proc entry.
    pub fn supervisor(&self) -> i32 {
        self.pids[0]
    }
}

/// What planning one call may read.
pub struct Planner<'a> {
    /// The calling thread.
    pub tid: i32,
    pub tasks: &'a dyn TaskReader,
    pub secrets: &'a SecretInodes,
    pub guard: &'a GuardProcesses,
    /// The judge's [`moved_tree_probes`](crate::platform::linux::supervisor::Judge::moved_tree_probes).
    pub moved_tree_probes: &'a dyn Fn(&Path) -> Vec<PathBuf>,
    /// The judge's [`needs_exec_env`](crate::platform::linux::supervisor::Judge::needs_exec_env).
    pub needs_exec_env: &'a dyn Fn(&crate::engine::Action) -> bool,
    /// The supervisor is root: what planning does for the task (a connect) is done with the
    /// task's credentials (see `sys::creds`).
    pub acts_as_task: bool,
}

impl<'a> Planner<'a> {
    pub fn asker(&self) -> Asker<'a> {
        Asker {
            tid: self.tid,
            tasks: self.tasks,
        }
    }

    /// A path argument of the call.
    pub fn read_path(&self, addr: UserPtr) -> io::Result<Vec<u8>> {
        self.tasks.read_path(self.tid, addr)
    }

    /// [`Planner::resolve`], and the last /proc magic link followed (see
    /// [`resolve::resolve_traced`]).
    pub fn resolve_traced(
        &self,
        base: Base,
        raw: &[u8],
        follow_final: bool,
    ) -> io::Result<(PathBuf, Option<PathBuf>)> {
        resolve::resolve_traced(self.asker(), base, raw, follow_final, false)
    }

    /// Resolve a path argument from `base` as the kernel would for this call.
    pub fn resolve(&self, base: Base, raw: &[u8], follow_final: bool) -> io::Result<PathBuf> {
        resolve::resolve(self.asker(), base, raw, follow_final, false)
    }

    /// Whether `pid` is the calling thread or its own process: in the tree without looking.
    pub fn is_own(&self, pid: i32) -> bool {
        pid == self.tid || self.tasks.tgid(self.tid) == Some(pid)
    }

    /// Whether `pid` (a process or a thread) belongs to one of the guard's processes.
    pub fn is_guard(&self, pid: i32) -> bool {
        self.tasks
            .tgid(pid)
            .is_some_and(|tgid| self.guard.pids.contains(&tgid))
    }
}

/// `.` and `..`, which no call may remove, rename or link over.
pub fn is_dot_or_dotdot(name: &[u8]) -> bool {
    name == b"." || name == b".."
}
