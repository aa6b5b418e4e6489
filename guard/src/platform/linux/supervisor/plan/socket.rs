//! Planning bind and connect of local (`AF_UNIX`) sockets.
//!
//! bind of a path makes a file: judged as a create of the resolved path, and performed on our
//! pidfd_getfd copy of the task's socket in the parent opened without following symlinks.
//! connect reaches a server, which may be outside the agent's tree and run commands for it
//! (tmux, screen, dockerd, systemd, D-Bus) or hold the user's keys (ssh-agent, gpg-agent): a
//! socket of our own is connected to the address (with the task's credentials), the process
//! listening at the other end is learnt with `SO_PEERCRED`, judged, and only then our connected
//! socket is installed at the task's fd number. The address is read once; what is judged is
//! who really answered. Sockets of other domains are the kernel's (an `AF_INET` socket cannot
//! reach a local address).
//!
//! It must never let the kernel read a local address again after the check (every `AF_UNIX`
//! bind and connect is performed here), and never connect with more than the task's
//! credentials.

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use super::planner::{Plan, Planner};
use crate::engine::{Action, NodeKind};
use crate::platform::linux::supervisor::call::{Base, UserPtr};
use crate::platform::linux::supervisor::emulate::{open_dir_nofollow, parent_and_name, Emulation};
use crate::platform::linux::sys::creds;
use crate::platform::linux::sys::notify::Response;
use crate::platform::linux::sys::socket::{self, UnixName, SOCKADDR_UN_LEN};

/// The task's socket `fd` when it is a local one (our copy); `None` for any other file, which
/// the kernel handles (and answers ENOTSOCK or EBADF for).
fn local_socket(p: &Planner<'_>, fd: i32) -> Option<OwnedFd> {
    let (copy, _) = p.tasks.copy_fd(p.tid, fd).ok()?;
    (socket::domain(copy.as_fd()).ok()? == libc::AF_UNIX).then_some(copy)
}

/// The address, read once.
fn read_name(p: &Planner<'_>, addr: UserPtr, len: u32) -> io::Result<UnixName> {
    let len = len as usize;
    if len > SOCKADDR_UN_LEN {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    let mut bytes = vec![0u8; len];
    p.tasks.read_exact(p.tid, addr, &mut bytes)?;
    UnixName::parse(&bytes)
}

pub fn bind(p: &Planner<'_>, fd: i32, addr: UserPtr, len: u32) -> io::Result<Plan> {
    let Some(socket) = local_socket(p, fd) else {
        return Ok(Plan::Answer(Response::Continue));
    };
    let name = read_name(p, addr, len)?;
    let UnixName::Path(raw) = &name else {
        // No file: an abstract name or autobind, bound here as read.
        return Ok(Plan::Emulate(
            Vec::new(),
            Emulation::Bind {
                socket,
                parent: None,
                name,
                tid: p.tid,
            },
        ));
    };
    let path = p.resolve(Base::Cwd, raw, false)?;
    let (parent, last) = parent_and_name(&path, false)?;
    Ok(Plan::Emulate(
        vec![Action::Create {
            path,
            kind: NodeKind::Special,
        }],
        Emulation::Bind {
            socket,
            parent: Some(parent),
            name: UnixName::Path(last.to_bytes().to_vec()),
            tid: p.tid,
        },
    ))
}

pub fn connect(p: &Planner<'_>, fd: i32, addr: UserPtr, len: u32) -> io::Result<Plan> {
    let Some(task_socket) = local_socket(p, fd) else {
        return Ok(Plan::Answer(Response::Continue));
    };
    if !same_network_namespace(p.tid) {
        // Abstract names live in the network namespace: ours would be the wrong ones.
        return Ok(Plan::Answer(Response::Error(libc::EPERM)));
    }
    let name = read_name(p, addr, len)?;
    let (shown, target) = match &name {
        UnixName::Unnamed => return Ok(Plan::Answer(Response::Error(libc::EINVAL))),
        UnixName::Abstract(bytes) => {
            let mut shown = b"@".to_vec();
            shown.extend_from_slice(bytes);
            (PathBuf::from(std::ffi::OsStr::from_bytes(&shown)), None)
        }
        UnixName::Path(raw) => {
            let path = p.resolve(Base::Cwd, raw, true)?;
            (path.clone(), Some(path))
        }
    };
    let kind = socket::kind(task_socket.as_fd())?;
    let nonblocking = socket::is_nonblocking(task_socket.as_fd())?;
    let ours = socket::new_unix(kind, nonblocking)?;
    let connected = as_task(p, || match &target {
        None => socket::connect(ours.as_fd(), &name),
        Some(path) => {
            let (parent, last) = parent_and_name(path, false)?;
            let dir = open_dir_nofollow(&parent)?;
            socket::connect(ours.as_fd(), &socket::in_dir(dir.as_fd(), last.to_bytes()))
        }
    })?;
    if let Err(e) = connected {
        // Nobody listens (or the task may not reach it): the kernel's answer, nothing reached.
        return Ok(Plan::Answer(Response::failed(&e)));
    }
    let server = socket::peer_pid(ours.as_fd())?
        .filter(|&pid| !p.tasks.in_tree(pid))
        .map(server_program);
    let cloexec = p.tasks.fd_flags(p.tid, fd)? & libc::O_CLOEXEC != 0;
    Ok(Plan::Emulate(
        vec![Action::Connect {
            path: shown,
            server,
        }],
        Emulation::InstallSocket {
            socket: ours,
            fd,
            cloexec,
        },
    ))
}

/// The program of the listening process `pid`: its executable, or when that cannot be read
/// (ssh-agent and gpg-agent make themselves non-dumpable, which hides it from other users) its
/// command name, which /proc shows everyone.
fn server_program(pid: i32) -> PathBuf {
    if let Ok(exe) = std::fs::read_link(format!("/proc/{pid}/exe")) {
        return exe;
    }
    match std::fs::read_to_string(format!("/proc/{pid}/comm")) {
        Ok(comm) => PathBuf::from(comm.trim_end()),
        Err(_) => PathBuf::from(format!("pid:{pid}")),
    }
}

/// Run `f` with the task's credentials when the supervisor acts as the task (root); fails
/// closed (EPERM) when they cannot be taken.
fn as_task<T>(p: &Planner<'_>, f: impl FnOnce() -> T) -> io::Result<T> {
    if !p.acts_as_task {
        return Ok(f());
    }
    let creds = p
        .tasks
        .credentials(p.tid)
        .ok_or_else(|| io::Error::from_raw_os_error(libc::EPERM))?;
    creds::as_task(&creds, f).map_err(|_| io::Error::from_raw_os_error(libc::EPERM))
}

/// Whether the task is in the supervisor's network namespace.
fn same_network_namespace(tid: i32) -> bool {
    use std::os::unix::fs::MetadataExt;
    let ns = |path: String| std::fs::metadata(path).map(|m| (m.dev(), m.ino()));
    match (
        ns(format!("/proc/{tid}/ns/net")),
        ns("/proc/self/ns/net".into()),
    ) {
        (Ok(theirs), Ok(ours)) => theirs == ours,
        _ => false,
    }
}
