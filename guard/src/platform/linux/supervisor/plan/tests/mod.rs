//! Planning against a fake task (`FakeTasks`) and real files in a temporary directory: what each
//! family of calls is judged as, and what is performed, without seccomp. This file holds the
//! scene every test builds on; one file of tests per family.

mod names;
mod open;
mod processes;

use std::ffi::CString;
use std::path::PathBuf;

use super::{plan, GuardProcesses, Plan, Planner};
use crate::engine::{Action, NodeKind, OpenFlags};
use crate::platform::linux::supervisor::call::{decode, Base, Call, UserPtr};
use crate::platform::linux::supervisor::emulate::Emulation;
use crate::platform::linux::supervisor::secret_inodes::SecretInodes;
use crate::platform::linux::supervisor::task::fake::FakeTasks;
use crate::platform::linux::sys;
use crate::platform::linux::sys::notify::Response;

pub(super) const TID: i32 = 4242;
pub(super) const SUPERVISOR: i32 = 100;
pub(super) const LAUNCHER: i32 = 99;
pub(super) const LAUNCHER_PGID: i32 = 99;

/// A directory of real files, and a task whose cwd it is.
pub(super) struct Scene {
    _dir: tempfile::TempDir,
    pub root: PathBuf,
    pub tasks: FakeTasks,
    pub secrets: SecretInodes,
    pub guard: GuardProcesses,
    /// What the judge asks to look at in a directory moved anywhere.
    pub probes: Vec<PathBuf>,
}

impl Scene {
    pub fn new() -> Scene {
        let dir = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(dir.path()).unwrap();
        let mut tasks = FakeTasks::new();
        tasks
            .cwd_of(TID, &root)
            .thread_of(TID, TID)
            .thread_of(SUPERVISOR, SUPERVISOR)
            .thread_of(SUPERVISOR + 1, SUPERVISOR)
            .thread_of(LAUNCHER, LAUNCHER);
        Scene {
            tasks,
            _dir: dir,
            root,
            secrets: SecretInodes::default(),
            guard: GuardProcesses {
                pids: vec![SUPERVISOR, LAUNCHER],
                pgid: LAUNCHER_PGID,
            },
            probes: Vec::new(),
        }
    }

    pub fn file(&self, name: &str) -> PathBuf {
        let path = self.root.join(name);
        std::fs::write(&path, b"x").unwrap();
        path
    }

    pub fn plan(&self, call: Call) -> std::io::Result<Plan> {
        let planner = Planner {
            tid: TID,
            tasks: &self.tasks,
            secrets: &self.secrets,
            guard: &self.guard,
            moved_tree_probes: &|_| self.probes.clone(),
            acts_as_task: false,
            needs_exec_env: &|action| matches!(action, crate::engine::Action::Exec { argv, .. } if argv.first().is_some_and(|a| a.ends_with("git"))),
        };
        plan(&planner, call)
    }

    /// Plan the raw syscall `nr` with `args`, as a notification carries it.
    pub fn plan_raw(&self, nr: i64, args: [u64; 6]) -> Plan {
        self.plan(decode(nr, args)).unwrap()
    }
}

pub(super) const CWD: u64 = libc::AT_FDCWD as u64;

pub(super) fn errno_of(result: std::io::Result<Plan>) -> i32 {
    result.unwrap_err().raw_os_error().unwrap()
}

pub(super) fn answer_of(plan: Plan) -> Response {
    match plan {
        Plan::Answer(r) => r,
        other => panic!("expected an answer, got {other:?}"),
    }
}

pub(super) fn emulated(plan: Plan) -> (Vec<Action>, Emulation) {
    match plan {
        Plan::Emulate(actions, emulation) => (actions, emulation),
        other => panic!("expected an emulation, got {other:?}"),
    }
}

pub(super) fn c(s: &str) -> CString {
    CString::new(s).unwrap()
}
