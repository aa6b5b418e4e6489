//! The floor of `agent-guard run`'s cost, for benchmarks: CMD under the very filter `run` installs
//! (same syscalls notified, same listener flags, synchronous wake-ups, two workers), served by
//! threads that answer every notification with CONTINUE at once: no path read, no judgment, no
//! record, no emulation. **It enforces nothing**, and nothing in agent-guard itself calls it:
//! `examples/notify_floor.rs` wraps it for `bench/workload.sh`, which times it next to `run` so
//! that the share of the overhead that is the kernel's round trip itself is measured in the same
//! run as the rest.

use std::ffi::{CString, OsString};
use std::io;
use std::os::fd::{AsFd, IntoRawFd};
use std::os::unix::ffi::OsStrExt;
use std::sync::Arc;

use super::filter::{program, FilterOptions};
use crate::platform::linux::sys::notify::{Listener, Response};
use crate::platform::linux::sys::{pidfd, seccomp};

/// Run `cmd` under the filter, answer every notification with CONTINUE, and return its exit
/// status (128+signal when a signal ended it).
pub fn run_answering_everything(cmd: &[OsString]) -> io::Result<i32> {
    if cmd.is_empty() {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }

    // Everything the child needs is built before fork: it may only make raw syscalls after.
    let argv: Vec<CString> = cmd
        .iter()
        .map(|a| CString::new(a.as_bytes()).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL)))
        .collect::<io::Result<_>>()?;
    let mut argv_ptrs: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    argv_ptrs.push(std::ptr::null());
    let prog = program(FilterOptions {
        supervise_reads: false,
    });
    let (mut up, mut down) = ([0; 2], [0; 2]);
    // SAFETY: plain pipe creation into valid arrays.
    if unsafe {
        libc::pipe2(up.as_mut_ptr(), libc::O_CLOEXEC) != 0
            || libc::pipe2(down.as_mut_ptr(), libc::O_CLOEXEC) != 0
    } {
        return Err(io::Error::last_os_error());
    }

    // SAFETY: the child makes only async-signal-safe calls on data prepared above.
    let child = unsafe { libc::fork() };
    if child < 0 {
        return Err(io::Error::last_os_error());
    }
    if child == 0 {
        // SAFETY: prctl with integers.
        unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) };
        // The parent copies the listener (pidfd_getfd) before we exec: it is close-on-exec.
        let fd: i32 = seccomp::install(&prog).map_or(-1, |fd| fd.into_raw_fd());
        // SAFETY: raw syscalls on valid buffers; the child ends in execvp or _exit.
        unsafe {
            libc::write(up[1], (&fd as *const i32).cast(), 4);
            let mut go = 0u8;
            libc::read(down[0], (&mut go as *mut u8).cast(), 1);
            libc::execvp(argv_ptrs[0], argv_ptrs.as_ptr());
            libc::_exit(127);
        }
    }
    // Our copies of the child's ends: a child that dies early then reads as end of file.
    // SAFETY: closing fds made above.
    unsafe {
        libc::close(up[1]);
        libc::close(down[0]);
    }
    let take_listener = || -> io::Result<Listener> {
        let mut child_fd = -1i32;
        // SAFETY: reads 4 bytes into an i32.
        let n = unsafe { libc::read(up[0], (&mut child_fd as *mut i32).cast(), 4) };
        if n != 4 || child_fd < 0 {
            return Err(io::Error::other("the child could not install the filter"));
        }
        let child_pidfd = pidfd::open(child)?;
        let listener = Listener::new(pidfd::get_fd(child_pidfd.as_fd(), child_fd)?);
        listener.set_sync_wakeup()?;
        Ok(listener)
    };
    let listener = match take_listener() {
        Ok(listener) => Arc::new(listener),
        Err(e) => {
            // SAFETY: ending and reaping our own child, closing our pipe ends.
            unsafe {
                libc::kill(child, libc::SIGKILL);
                libc::waitpid(child, std::ptr::null_mut(), 0);
                libc::close(up[0]);
                libc::close(down[1]);
            }
            return Err(e);
        }
    };
    for _ in 0..2 {
        let listener = listener.clone();
        std::thread::spawn(move || {
            while let Some(n) = listener.next() {
                let _ = listener.send(n.id, Response::Continue);
            }
        });
    }
    // SAFETY: writes one byte from a valid buffer.
    unsafe { libc::write(down[1], [1u8].as_ptr().cast(), 1) };
    let mut status = 0;
    // SAFETY: waits for our own child into a valid int.
    unsafe { libc::waitpid(child, &mut status, 0) };
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        128 + libc::WTERMSIG(status)
    };
    // SAFETY: closing the pipes' ends made above.
    unsafe {
        libc::close(up[0]);
        libc::close(down[1]);
    }
    Ok(code)
}
