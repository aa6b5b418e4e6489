//! The seccomp filter ABI (linux/seccomp.h, linux/filter.h, linux/audit.h): the actions a filter
//! returns, the layout of the `struct seccomp_data` it inspects, the classic BPF opcodes the
//! supervisor's program uses, and installing a program with a notification listener.
//!
//! Which syscalls get which action is `supervisor::filter`'s business; this must never choose.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd};

use libc::sock_filter;

/// `SECCOMP_RET_*`: what the filter answers for a syscall.
pub const RET_KILL_PROCESS: u32 = libc::SECCOMP_RET_KILL_PROCESS;
/// Fail with the errno in the low 16 bits.
pub const RET_ERRNO: u32 = libc::SECCOMP_RET_ERRNO;
pub const RET_USER_NOTIF: u32 = libc::SECCOMP_RET_USER_NOTIF;
pub const RET_ALLOW: u32 = libc::SECCOMP_RET_ALLOW;

/// `__X32_SYSCALL_BIT`: x32 syscalls share the x86_64 audit arch, so the number must be checked.
pub const X32_SYSCALL_BIT: u32 = 0x4000_0000;

/// `AUDIT_ARCH_*` of the architecture this is built for.
#[cfg(target_arch = "x86_64")]
pub const AUDIT_ARCH_NATIVE: u32 = 0xc000_003e; // AUDIT_ARCH_X86_64
#[cfg(target_arch = "aarch64")]
pub const AUDIT_ARCH_NATIVE: u32 = 0xc000_00b7; // AUDIT_ARCH_AARCH64

/// `struct seccomp_data` offsets: the syscall number and the audit arch.
pub const OFF_NR: u32 = 0;
pub const OFF_ARCH: u32 = 4;
/// The offset of the low 32 bits of `args[i]` (little endian).
pub const fn off_arg_lo(i: u32) -> u32 {
    16 + 8 * i
}

/// Classic BPF opcodes, as the supervisor's program combines them.
pub const BPF_LD_W_ABS: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
pub const BPF_JEQ_K: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
pub const BPF_JGE_K: u16 = (libc::BPF_JMP | libc::BPF_JGE | libc::BPF_K) as u16;
pub const BPF_JSET_K: u16 = (libc::BPF_JMP | libc::BPF_JSET | libc::BPF_K) as u16;
pub const BPF_RET_K: u16 = (libc::BPF_RET | libc::BPF_K) as u16;

/// `SECCOMP_FILTER_FLAG_NEW_LISTENER`, as the low word of seccomp(2)'s flags argument.
pub const FILTER_FLAG_NEW_LISTENER: u32 = libc::SECCOMP_FILTER_FLAG_NEW_LISTENER as u32;

/// Install `prog` on the calling thread with a listener for its notifications (killable waits
/// where the kernel has them, 5.19+), and return the listener. `PR_SET_NO_NEW_PRIVS` must be set
/// first. Async-signal-safe: a child calls it between fork and exec.
pub fn install(prog: &[sock_filter]) -> io::Result<OwnedFd> {
    let fprog = libc::sock_fprog {
        len: prog.len() as u16,
        filter: prog.as_ptr() as *mut sock_filter,
    };
    let install = |flags: libc::c_ulong| {
        // SAFETY: fprog points at prog, which outlives the call; the kernel only reads it.
        unsafe {
            libc::syscall(
                libc::SYS_seccomp,
                libc::SECCOMP_SET_MODE_FILTER,
                flags,
                &fprog as *const libc::sock_fprog,
            )
        }
    };
    let mut fd = install(
        libc::SECCOMP_FILTER_FLAG_NEW_LISTENER | libc::SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV,
    );
    if fd < 0 && io::Error::last_os_error().raw_os_error() == Some(libc::EINVAL) {
        // Before 5.19: no killable wait; a signal may then restart a notified call.
        fd = install(libc::SECCOMP_FILTER_FLAG_NEW_LISTENER);
    }
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel returned a new fd, owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}
