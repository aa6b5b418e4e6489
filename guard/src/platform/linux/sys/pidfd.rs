//! Process file descriptors (Linux 5.3+): open one for a process, copy an fd out of it, signal
//! through it. A pidfd names one process for its whole life: once it is reaped, calls through
//! the pidfd fail (ESRCH) even when its pid has been reused.
//!
//! This must never turn a pid into a pidfd behind its caller's back (the caller decides which
//! process is meant, and when).

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use super::zero_or_errno;

/// The size of `siginfo_t`, which pidfd_send_signal reads when given one.
pub const SIGINFO_SIZE: usize = 128;

fn owned(fd: libc::c_long) -> io::Result<OwnedFd> {
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel returned a new fd, owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// pidfd_open(2): a pidfd for process `pid` (a thread group leader; EINVAL for another thread).
pub fn open(pid: i32) -> io::Result<OwnedFd> {
    // SAFETY: a plain syscall on integers.
    owned(unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) })
}

/// pidfd_getfd(2): our own copy of the process's fd `fd` (it needs ptrace access to it).
pub fn get_fd(pidfd: BorrowedFd<'_>, fd: i32) -> io::Result<OwnedFd> {
    // SAFETY: a plain syscall on integers.
    owned(unsafe { libc::syscall(libc::SYS_pidfd_getfd, pidfd.as_raw_fd(), fd, 0) })
}

/// pidfd_send_signal(2) through `pidfd` (a pidfd, or a `/proc/PID` directory fd, which the kernel
/// also takes). Signal 0 only checks that the process exists and may be signalled.
pub fn send_signal(
    pidfd: BorrowedFd<'_>,
    sig: i32,
    info: Option<&[u8; SIGINFO_SIZE]>,
    flags: u32,
) -> io::Result<()> {
    let info_ptr = info.map_or(std::ptr::null(), |b| b.as_ptr().cast::<libc::c_void>());
    // SAFETY: a valid fd; info_ptr is null or points at SIGINFO_SIZE readable bytes.
    zero_or_errno(unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            sig,
            info_ptr,
            flags,
        )
    })
}
