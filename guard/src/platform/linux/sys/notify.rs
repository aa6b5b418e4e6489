//! The seccomp user-notification listener: receive a notification, check it is still live,
//! answer it, install an fd in the notifying task. Thin wrappers over the
//! `SECCOMP_IOCTL_NOTIF_*` ioctls (linux/seccomp.h, seccomp_unotify(2)).
//!
//! No decisions here: this must never answer a notification on its own (what to answer is the
//! handler's), nor retry anything but what the kernel documents as retryable.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

/// `SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP` (6.6+): wake the supervisor on the notifying task's CPU
/// and switch to it synchronously, which roughly halves the round trip.
const SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP: u64 = 1;

/// One received notification: which task, which syscall, its raw arguments.
#[derive(Clone, Copy, Debug)]
pub struct Notification {
    pub id: u64,
    /// The calling thread's id (tid) in the supervisor's pid namespace.
    pub tid: i32,
    pub nr: i64,
    pub args: [u64; 6],
}

/// The answer to one notification.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Response {
    /// Let the kernel run the syscall as the task asked (it re-reads its arguments).
    Continue,
    /// The syscall returns -1 with this errno, without running.
    Error(i32),
    /// The syscall returns this value: the supervisor performed it itself.
    Value(i64),
}

impl Response {
    /// The syscall fails as `error` says (`EIO` for an error that carries no errno).
    pub fn failed(error: &io::Error) -> Response {
        Response::Error(error.raw_os_error().unwrap_or(libc::EIO))
    }

    /// The answer for a call performed here: its value (0), or its errno.
    pub fn of(result: io::Result<()>) -> Response {
        match result {
            Ok(()) => Response::Value(0),
            Err(e) => Response::failed(&e),
        }
    }
}

/// The listener fd returned by `seccomp(SECCOMP_FILTER_FLAG_NEW_LISTENER)`.
pub struct Listener {
    fd: OwnedFd,
}

impl Listener {
    pub fn new(fd: OwnedFd) -> Listener {
        Listener { fd }
    }

    pub fn raw(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Ask for synchronous wake-ups. `Ok(false)` when the kernel predates the flag.
    pub fn set_sync_wakeup(&self) -> io::Result<bool> {
        let flags: u64 = SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP;
        // SAFETY: SET_FLAGS takes the flags by value in the ioctl argument; nothing is dereferenced.
        let rc = unsafe { libc::ioctl(self.raw(), libc::SECCOMP_IOCTL_NOTIF_SET_FLAGS, flags) };
        if rc == 0 {
            return Ok(true);
        }
        let err = io::Error::last_os_error();
        match err.raw_os_error() {
            Some(libc::EINVAL) | Some(libc::ENOTTY) => Ok(false),
            _ => Err(err),
        }
    }

    /// Block until a notification arrives. `EINTR` and `ENOENT` (the task went away between
    /// the wake-up and the read) come back as errors for the caller to retry.
    pub fn recv(&self) -> io::Result<Notification> {
        // SAFETY: seccomp_notif is plain data; the kernel requires it zeroed.
        let mut req: libc::seccomp_notif = unsafe { std::mem::zeroed() };
        // SAFETY: req is a valid, writable seccomp_notif.
        let rc = unsafe { libc::ioctl(self.raw(), libc::SECCOMP_IOCTL_NOTIF_RECV, &mut req) };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        let mut args = [0u64; 6];
        args.copy_from_slice(&req.data.args);
        Ok(Notification {
            id: req.id,
            tid: req.pid as i32,
            nr: req.data.nr as i64,
            args,
        })
    }

    /// The next notification, retrying what `recv` reports as retryable; `None` once no task is
    /// left to notify (see `hung_up`) or the listener fails: the worker then stops.
    pub fn next(&self) -> Option<Notification> {
        loop {
            match self.recv() {
                Ok(n) => return Some(n),
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) && self.hung_up() => return None,
                Err(e) if matches!(e.raw_os_error(), Some(libc::EINTR) | Some(libc::ENOENT)) => {}
                Err(_) => return None,
            }
        }
    }

    /// Whether no task uses the filter any more: every supervised process has exited, and none
    /// can come (only a supervised process can start another). RECV then fails at once with
    /// `ENOENT` instead of blocking, so a worker must stop rather than retry.
    pub fn hung_up(&self) -> bool {
        let mut pfd = libc::pollfd {
            fd: self.raw(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd; a zero timeout never blocks.
        let n = unsafe { libc::poll(&mut pfd, 1, 0) };
        n == 1 && pfd.revents & libc::POLLHUP != 0
    }

    /// Whether the notification is still pending: the task has not died (and its pid has not been
    /// reused) since it was received. Check after reading the task's memory, before acting.
    pub fn id_valid(&self, id: u64) -> bool {
        let mut id = id;
        // SAFETY: the ioctl reads one u64.
        unsafe { libc::ioctl(self.raw(), libc::SECCOMP_IOCTL_NOTIF_ID_VALID, &mut id) == 0 }
    }

    /// Answer a notification. `ENOENT` (the task was interrupted or died) is not an error.
    pub fn send(&self, id: u64, response: Response) -> io::Result<()> {
        let mut resp = libc::seccomp_notif_resp {
            id,
            val: 0,
            error: 0,
            flags: 0,
        };
        match response {
            Response::Continue => resp.flags = libc::SECCOMP_USER_NOTIF_FLAG_CONTINUE as u32,
            Response::Error(errno) => resp.error = -errno,
            Response::Value(v) => resp.val = v,
        }
        // SAFETY: resp is a valid seccomp_notif_resp.
        let rc = unsafe { libc::ioctl(self.raw(), libc::SECCOMP_IOCTL_NOTIF_SEND, &mut resp) };
        if rc == 0 {
            return Ok(());
        }
        let err = io::Error::last_os_error();
        if err.raw_os_error() == Some(libc::ENOENT) {
            return Ok(());
        }
        Err(err)
    }

    /// Install `fd` in the notifying task at the fd number `target` (replacing what is there,
    /// as dup2 does: `SECCOMP_ADDFD_FLAG_SETFD`), without answering.
    pub fn add_fd_at(&self, id: u64, fd: RawFd, target: i32, cloexec: bool) -> io::Result<()> {
        let mut addfd = libc::seccomp_notif_addfd {
            id,
            flags: libc::SECCOMP_ADDFD_FLAG_SETFD as u32,
            srcfd: fd as u32,
            newfd: target as u32,
            newfd_flags: if cloexec { libc::O_CLOEXEC as u32 } else { 0 },
        };
        // SAFETY: addfd is a valid seccomp_notif_addfd.
        let rc = unsafe { libc::ioctl(self.raw(), libc::SECCOMP_IOCTL_NOTIF_ADDFD, &mut addfd) };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Another handle on the same listener (for a thread that answers later).
    pub fn try_clone(&self) -> io::Result<Listener> {
        Ok(Listener {
            fd: self.fd.try_clone()?,
        })
    }

    /// Install `fd` in the notifying task and return its number there. With `answer`, the
    /// notification is answered with that number in the same step (`SECCOMP_ADDFD_FLAG_SEND`)
    /// and the task runs on while the caller still holds its own copy; without, the task stays
    /// blocked until [`Listener::send`].
    pub fn add_fd(&self, id: u64, fd: RawFd, cloexec: bool, answer: bool) -> io::Result<i32> {
        let mut addfd = libc::seccomp_notif_addfd {
            id,
            flags: if answer {
                libc::SECCOMP_ADDFD_FLAG_SEND as u32
            } else {
                0
            },
            srcfd: fd as u32,
            newfd: 0,
            newfd_flags: if cloexec { libc::O_CLOEXEC as u32 } else { 0 },
        };
        // SAFETY: addfd is a valid seccomp_notif_addfd.
        let rc = unsafe { libc::ioctl(self.raw(), libc::SECCOMP_IOCTL_NOTIF_ADDFD, &mut addfd) };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(rc)
    }
}
