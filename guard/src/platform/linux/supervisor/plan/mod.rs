//! Planning: a decoded [`Call`] into a [`Plan`]: the actions to judge and what to do once they
//! are allowed (let the kernel run the call, perform it here, or answer at once). One file per
//! family of calls; what they share is in [`planner`].
//!
//! Planning reads the task (through the `TaskReader`) and the file system, and must never change
//! either: the judge decides, the emulation acts.

mod create;
mod exec;
mod open;
mod planner;
mod proc;
mod remove;
mod rename_link;
mod signal;
mod socket;

use std::io;

pub use planner::{GuardProcesses, Plan, Planner};

use super::call::Call;
use crate::engine::Action;
use crate::platform::linux::sys::notify::Response;

/// The plan for one call.
pub fn plan(p: &Planner<'_>, call: Call) -> io::Result<Plan> {
    match call {
        Call::Open {
            dir,
            path,
            flags,
            mode,
        } => open::open(p, dir, path, flags, mode),
        Call::Openat2 { dir, path, how } => open::openat2(p, dir, path, how),
        Call::Unlink {
            dir,
            path,
            remove_dir,
        } => remove::unlink(p, dir, path, remove_dir),
        Call::Truncate { path, length } => remove::truncate(p, path, length),
        Call::Mkdir { dir, path, mode } => create::mkdir(p, dir, path, mode),
        Call::Mknod {
            dir,
            path,
            mode,
            dev,
        } => create::mknod(p, dir, path, mode, dev),
        Call::Symlink { target, dir, link } => create::symlink(p, target, dir, link),
        Call::Rename {
            from_dir,
            from,
            to_dir,
            to,
            flags,
        } => rename_link::rename(p, (from_dir, from), (to_dir, to), flags),
        Call::Link {
            from_dir,
            from,
            to_dir,
            to,
            flags,
        } => rename_link::link(p, (from_dir, from), (to_dir, to), flags),
        Call::Exec {
            dir,
            path,
            argv,
            envp,
            flags,
        } => exec::exec(p, dir, path, argv, envp, flags),
        Call::Kill { pid, sig } => Ok(signal::kill(p, pid, sig)),
        Call::Tkill { tid, sig } => Ok(signal::tkill(p, tid, sig)),
        Call::Tgkill { tgid, tid, sig } => Ok(signal::tgkill(p, tgid, tid, sig)),
        Call::Ptrace { request, pid } => Ok(signal::ptrace(p, request, pid)),
        Call::ProcessVm { pid } => Ok(signal::process_vm(p, pid)),
        Call::PidfdOpen { pid } => Ok(signal::pidfd_open(p, pid)),
        Call::Namespace { flags } => Ok(Plan::Refuse(Action::Namespace {
            what: namespaces(flags),
        })),
        Call::LandlockRestrictSelf => Ok(Plan::Refuse(Action::Namespace {
            what: "landlock".into(),
        })),
        Call::Bind { fd, addr, len } => socket::bind(p, fd, addr, len),
        Call::Connect { fd, addr, len } => socket::connect(p, fd, addr, len),
        Call::PidfdGetfd { pidfd, fd, flags } => signal::pidfd_getfd(p, pidfd, fd, flags),
        Call::PidfdSendSignal {
            pidfd,
            sig,
            info,
            flags,
        } => signal::pidfd_send_signal(p, pidfd, sig, info, flags),
        // umask is notified only for the handler's cache of umasks; the rest is not supervised.
        Call::Umask | Call::Other(_) => Ok(Plan::Answer(Response::Continue)),
    }
}

/// The namespaces `flags` ask for, as a record names them (`user,mount,pid`).
fn namespaces(flags: u64) -> String {
    [
        (libc::CLONE_NEWUSER, "user"),
        (libc::CLONE_NEWNS, "mount"),
        (libc::CLONE_NEWPID, "pid"),
        (libc::CLONE_NEWNET, "net"),
        (libc::CLONE_NEWIPC, "ipc"),
        (libc::CLONE_NEWUTS, "uts"),
        (libc::CLONE_NEWCGROUP, "cgroup"),
    ]
    .iter()
    .filter(|(bit, _)| flags & *bit as u64 != 0)
    .map(|(_, name)| *name)
    .collect::<Vec<_>>()
    .join(",")
}

#[cfg(test)]
mod tests;
