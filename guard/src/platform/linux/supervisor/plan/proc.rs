//! The `/proc` rule every open planned for a task passes: another process's `/proc/PID` entry
//! is opened only as far as `ps` reads it (see `proc_rules`), unless that process is in the
//! agent's own tree. An entry of one of the guard's processes is the guard's business (a
//! `guard_self` record); of any other process outside the tree, an `outside_process` refusal,
//! but for a read of its `environ`, which answers EACCES unrecorded, as the kernel would.
//!
//! It must never open what the task could not: the supervisor, an ancestor of every process of
//! the user, may read and write their memory, fds and roots.

use std::path::Path;

use super::planner::{Plan, Planner};
use crate::engine::Action;
use crate::platform::linux::supervisor::proc_rules;
use crate::platform::linux::sys::notify::Response;

/// `None`: the open may be planned as any other. Otherwise the plan that refuses it.
pub fn check(p: &Planner<'_>, path: &Path, modifies: bool) -> Option<Plan> {
    let (pid, rest) = proc_rules::split(path)?;
    if p.is_guard(pid) {
        return (!proc_rules::is_public_read(&rest, modifies, true))
            .then(|| Plan::Guard(p.guard.supervisor()));
    }
    if proc_rules::is_public_read(&rest, modifies, false) || p.is_own(pid) || p.tasks.in_tree(pid) {
        return None;
    }
    // `ps` (procps-ng 4) reads every process's environ and is used to EACCES for those of other
    // users; the kernel answers the same when the agent's namespace hides the zones. Refused as
    // quietly here: a record per process for every `ps` would bury the denials that matter.
    if !modifies && rest == [std::ffi::OsStr::new("environ")] {
        return Some(Plan::Answer(Response::Error(libc::EACCES)));
    }
    Some(Plan::Refuse(Action::Trace {
        target_pid: pid,
        path: Some(path.to_path_buf()),
    }))
}
