//! Planning the calls that reach another process: kill, tkill, tgkill, pidfd_send_signal,
//! ptrace, process_vm_readv/writev, pidfd_open, pidfd_getfd. Aimed at one of the guard's own
//! processes (by pid, by process group, or by `-1`), they are refused and recorded; ptrace,
//! process memory and pidfd_getfd aimed at any other process outside the agent's tree are
//! refused too (`outside_process`); the rest run as asked. pidfd_send_signal and pidfd_getfd are
//! performed here on our own copy of the pidfd, so a second thread cannot swap another pidfd into
//! that slot between the check and the use.
//!
//! It must never let a signal reach the guard (a supervisor that can be stopped is no guard),
//! and never judge a signal aimed elsewhere: those are not the judge's business.

use std::io;

use super::planner::{Plan, Planner};
use crate::engine::Action;
use crate::platform::linux::supervisor::call::UserPtr;
use crate::platform::linux::supervisor::emulate::Emulation;
use crate::platform::linux::sys::notify::Response;
use crate::platform::linux::sys::pidfd::SIGINFO_SIZE;

fn guarded_if(guard: bool, target: i32) -> Plan {
    if guard {
        Plan::Guard(target)
    } else {
        Plan::Answer(Response::Continue)
    }
}

/// kill(pid, sig): `pid` > 0 a process, 0 the caller's group, -1 every process it may signal,
/// < -1 the group -pid. Signal 0 only probes. A signal to the launcher's process group is
/// refused when it is SIGKILL or SIGSTOP (see docs/linux.md).
pub fn kill(p: &Planner<'_>, pid: i32, sig: i32) -> Plan {
    let stops_or_kills = sig == libc::SIGKILL || sig == libc::SIGSTOP;
    let guard = sig != 0
        && match pid {
            target if target > 0 => p.is_guard(target),
            0 => stops_or_kills && p.tasks.pgid(p.tid) == p.guard.pgid,
            -1 => true,
            group => stops_or_kills && group.checked_neg() == Some(p.guard.pgid),
        };
    guarded_if(guard, pid)
}

pub fn tkill(p: &Planner<'_>, tid: i32, sig: i32) -> Plan {
    guarded_if(sig != 0 && p.is_guard(tid), tid)
}

pub fn tgkill(p: &Planner<'_>, tgid: i32, tid: i32, sig: i32) -> Plan {
    let guard = sig != 0 && (p.guard.pids.contains(&tgid) || p.is_guard(tid));
    guarded_if(guard, tgid)
}

/// ptrace, process_vm_readv/writev and pidfd_getfd reach into their target (its registers, its
/// memory, its fds): the guard's processes are the guard's business, any other process outside
/// the agent's tree is refused (where the kernel would allow it: the same user without Yama, or
/// root), and the tree's own run as asked.
fn reach(p: &Planner<'_>, pid: i32) -> Plan {
    if p.is_guard(pid) {
        Plan::Guard(pid)
    } else if pid > 0 && !p.is_own(pid) && !p.tasks.in_tree(pid) {
        Plan::Refuse(Action::Trace {
            target_pid: pid,
            path: None,
        })
    } else {
        Plan::Answer(Response::Continue)
    }
}

/// ptrace: any request but `PTRACE_TRACEME` names a target.
pub fn ptrace(p: &Planner<'_>, request: u32, pid: i32) -> Plan {
    if request == libc::PTRACE_TRACEME {
        return Plan::Answer(Response::Continue);
    }
    reach(p, pid)
}

/// process_vm_readv and process_vm_writev name their target by pid.
pub fn process_vm(p: &Planner<'_>, pid: i32) -> Plan {
    reach(p, pid)
}

/// pidfd_open names its target by pid; a pidfd only signals and waits, which `kill` may too.
pub fn pidfd_open(p: &Planner<'_>, pid: i32) -> Plan {
    guarded_if(p.is_guard(pid), pid)
}

/// pidfd_getfd: the target is the process the task's pidfd refers to. Performed here on our own
/// copy of that pidfd, so that a second thread cannot swap in a pidfd of another process after
/// the check; the fd taken is installed in the task.
pub fn pidfd_getfd(p: &Planner<'_>, pidfd: i32, fd: i32, flags: u32) -> io::Result<Plan> {
    let (copy, target) = p.tasks.copy_fd(p.tid, pidfd)?;
    let Some(target) = target else {
        // Not a pidfd: the kernel's answer.
        return Ok(Plan::Answer(Response::Error(libc::EBADF)));
    };
    match reach(p, target) {
        Plan::Answer(Response::Continue) => Ok(Plan::Emulate(
            Vec::new(),
            Emulation::PidfdGetfd {
                pidfd: copy,
                fd,
                flags,
            },
        )),
        refused => Ok(refused),
    }
}

/// pidfd_send_signal: checked and performed on our own copy of the task's fd.
pub fn pidfd_send_signal(
    p: &Planner<'_>,
    pidfd: i32,
    sig: i32,
    info: UserPtr,
    flags: u32,
) -> io::Result<Plan> {
    let (fd, target) = p.tasks.copy_fd(p.tid, pidfd)?;
    if sig != 0 && target.is_some_and(|t| p.is_guard(t)) {
        return Ok(Plan::Guard(target.unwrap_or(0)));
    }
    let info = if info.is_null() {
        None
    } else {
        let mut bytes = [0u8; SIGINFO_SIZE];
        p.tasks.read_exact(p.tid, info, &mut bytes)?;
        Some(bytes)
    };
    Ok(Plan::Emulate(
        Vec::new(),
        Emulation::PidfdSignal {
            fd,
            sig,
            info,
            flags,
        },
    ))
}
