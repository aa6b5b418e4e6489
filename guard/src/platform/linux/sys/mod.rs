//! The kernel ABI that the Linux code uses, in one place: the structs and constants of the uapi
//! headers that libc leaves out or declares non-exhaustive (openat2's `open_how` and `RESOLVE_*`,
//! Landlock, the seccomp filter's return values and `seccomp_data` layout, the FUSE mount
//! options), the message format between the supervisor and the processes it forks, and thin safe
//! wrappers that turn raw syscalls into `io::Result`s over owned and borrowed fds.
//!
//! Everything else in `platform::linux` calls these instead of `libc` directly, so its unsafe
//! code is here and in the process plumbing, which forks, execs, handles signals and passes raw
//! fds between fork and exec (`supervisor::{launch, supervisor_process, child, late_roots,
//! bench_support}`); decoding, planning, resolving and emulating hold none.
//! Nothing here decides anything: it must never choose a flag, a path or an answer for its
//! caller, and never swallow an errno (each failure is the `io::Error` the kernel gave). The
//! functions documented as async-signal-safe must never allocate or lock: they run in forked
//! children before exec.

pub mod creds;
pub mod fs;
pub mod fuse;
pub mod ipc;
pub mod landlock;
pub mod notify;
pub mod openat2;
pub mod pidfd;
pub mod process;
pub mod process_vm;
pub mod seccomp;
pub mod socket;

use std::io;

/// The result of a syscall that returns 0 or -1 with errno: `Ok` or the errno as an error.
/// Async-signal-safe (an `io::Error` from an errno does not allocate).
fn zero_or_errno(rc: libc::c_long) -> io::Result<()> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}
