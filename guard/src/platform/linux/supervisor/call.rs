//! The decoder: a notified syscall's number and raw arguments, `(nr, args)`, into a typed
//! [`Call`]. The legacy x86_64 calls (`open`, `unlink`, `rename`, ...) decode to the same
//! variant as their `*at` form, with `AT_FDCWD` as the directory, so that every later step sees
//! one shape per operation.
//!
//! This is pure: it must never read the task's memory, /proc or the file system (a pointer stays
//! a [`UserPtr`] until the plan reads it through a `TaskReader`), and never decide anything.

/// An address in the calling task's memory, as passed in a syscall argument.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UserPtr(pub u64);

impl UserPtr {
    pub fn is_null(self) -> bool {
        self.0 == 0
    }
}

/// Where a relative path starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Base {
    /// The task's current directory (`AT_FDCWD`).
    Cwd,
    /// A directory fd of the task.
    Fd(i32),
}

impl Base {
    /// From a syscall's dirfd argument (an int in a 64-bit register).
    pub fn from_arg(arg: u64) -> Base {
        let fd = arg as i32;
        if fd == libc::AT_FDCWD {
            Base::Cwd
        } else {
            Base::Fd(fd)
        }
    }

    /// The fd number the task passed (`AT_FDCWD` for the cwd), for calls that use the fd
    /// itself rather than a path from it (`AT_EMPTY_PATH`).
    pub fn raw_fd(self) -> i32 {
        match self {
            Base::Cwd => libc::AT_FDCWD,
            Base::Fd(fd) => fd,
        }
    }
}

/// A supervised syscall, its arguments typed. Paths are still pointers into the task.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Call {
    /// open, creat, openat.
    Open {
        dir: Base,
        path: UserPtr,
        flags: i32,
        mode: u32,
    },
    /// openat2: flags, mode and resolve flags are in the task's `open_how` at `how`.
    Openat2 {
        dir: Base,
        path: UserPtr,
        how: UserPtr,
    },
    /// unlink, rmdir, unlinkat (`remove_dir`: rmdir, or `AT_REMOVEDIR`).
    Unlink {
        dir: Base,
        path: UserPtr,
        remove_dir: bool,
    },
    /// mkdir, mkdirat.
    Mkdir {
        dir: Base,
        path: UserPtr,
        mode: u32,
    },
    /// mknod, mknodat.
    Mknod {
        dir: Base,
        path: UserPtr,
        mode: u32,
        dev: u64,
    },
    /// symlink, symlinkat: a link at `link` whose text is `target`.
    Symlink {
        target: UserPtr,
        dir: Base,
        link: UserPtr,
    },
    /// rename, renameat, renameat2 (`RENAME_*` flags).
    Rename {
        from_dir: Base,
        from: UserPtr,
        to_dir: Base,
        to: UserPtr,
        flags: u32,
    },
    /// link, linkat (`AT_SYMLINK_FOLLOW`, `AT_EMPTY_PATH`).
    Link {
        from_dir: Base,
        from: UserPtr,
        to_dir: Base,
        to: UserPtr,
        flags: i32,
    },
    /// execve, execveat (`AT_EMPTY_PATH`, `AT_SYMLINK_NOFOLLOW`).
    Exec {
        dir: Base,
        path: UserPtr,
        argv: UserPtr,
        /// The environment array (read only when a rule needs it: see `plan::exec`).
        envp: UserPtr,
        flags: i32,
    },
    /// truncate (ftruncate acts on an open fd and is not supervised).
    Truncate {
        path: UserPtr,
        length: i64,
    },
    /// kill: `pid` > 0 a process, 0 the caller's group, -1 everything, < -1 a group.
    Kill {
        pid: i32,
        sig: i32,
    },
    Tkill {
        tid: i32,
        sig: i32,
    },
    Tgkill {
        tgid: i32,
        tid: i32,
        sig: i32,
    },
    Ptrace {
        request: u32,
        pid: i32,
    },
    /// process_vm_readv, process_vm_writev.
    ProcessVm {
        pid: i32,
    },
    PidfdOpen {
        pid: i32,
    },
    /// clone or unshare asking for new namespaces (the filter notifies only those).
    Namespace {
        flags: u64,
    },
    /// bind, connect: the task's socket `fd` and its address (`len` bytes at `addr`).
    Bind {
        fd: i32,
        addr: UserPtr,
        len: u32,
    },
    Connect {
        fd: i32,
        addr: UserPtr,
        len: u32,
    },
    /// pidfd_getfd: `pidfd` is the task's pidfd of the process whose fd `fd` it takes.
    PidfdGetfd {
        pidfd: i32,
        fd: i32,
        flags: u32,
    },
    PidfdSendSignal {
        pidfd: i32,
        sig: i32,
        info: UserPtr,
        flags: u32,
    },
    /// landlock_restrict_self: the task would sandbox itself (refused: see the filter).
    LandlockRestrictSelf,
    /// umask: notified only so that the supervisor's cache of umasks stays fresh.
    Umask,
    /// Any other number: nothing to judge (the filter does not notify it).
    Other(i64),
}

/// Decode one notified syscall.
// libc's syscall numbers are lower-case constants used as patterns.
#[allow(non_upper_case_globals)]
pub fn decode(nr: i64, a: [u64; 6]) -> Call {
    use libc::*;
    let ptr = UserPtr;
    match nr {
        #[cfg(target_arch = "x86_64")]
        SYS_open => Call::Open {
            dir: Base::Cwd,
            path: ptr(a[0]),
            flags: a[1] as i32,
            mode: a[2] as u32,
        },
        #[cfg(target_arch = "x86_64")]
        SYS_creat => Call::Open {
            dir: Base::Cwd,
            path: ptr(a[0]),
            flags: O_CREAT | O_WRONLY | O_TRUNC,
            mode: a[1] as u32,
        },
        SYS_openat => Call::Open {
            dir: Base::from_arg(a[0]),
            path: ptr(a[1]),
            flags: a[2] as i32,
            mode: a[3] as u32,
        },
        SYS_openat2 => Call::Openat2 {
            dir: Base::from_arg(a[0]),
            path: ptr(a[1]),
            how: ptr(a[2]),
        },
        #[cfg(target_arch = "x86_64")]
        SYS_unlink => Call::Unlink {
            dir: Base::Cwd,
            path: ptr(a[0]),
            remove_dir: false,
        },
        #[cfg(target_arch = "x86_64")]
        SYS_rmdir => Call::Unlink {
            dir: Base::Cwd,
            path: ptr(a[0]),
            remove_dir: true,
        },
        SYS_unlinkat => Call::Unlink {
            dir: Base::from_arg(a[0]),
            path: ptr(a[1]),
            remove_dir: a[2] as i32 & AT_REMOVEDIR != 0,
        },
        #[cfg(target_arch = "x86_64")]
        SYS_mkdir => Call::Mkdir {
            dir: Base::Cwd,
            path: ptr(a[0]),
            mode: a[1] as u32,
        },
        SYS_mkdirat => Call::Mkdir {
            dir: Base::from_arg(a[0]),
            path: ptr(a[1]),
            mode: a[2] as u32,
        },
        #[cfg(target_arch = "x86_64")]
        SYS_mknod => Call::Mknod {
            dir: Base::Cwd,
            path: ptr(a[0]),
            mode: a[1] as u32,
            dev: a[2],
        },
        SYS_mknodat => Call::Mknod {
            dir: Base::from_arg(a[0]),
            path: ptr(a[1]),
            mode: a[2] as u32,
            dev: a[3],
        },
        #[cfg(target_arch = "x86_64")]
        SYS_symlink => Call::Symlink {
            target: ptr(a[0]),
            dir: Base::Cwd,
            link: ptr(a[1]),
        },
        SYS_symlinkat => Call::Symlink {
            target: ptr(a[0]),
            dir: Base::from_arg(a[1]),
            link: ptr(a[2]),
        },
        #[cfg(target_arch = "x86_64")]
        SYS_rename => Call::Rename {
            from_dir: Base::Cwd,
            from: ptr(a[0]),
            to_dir: Base::Cwd,
            to: ptr(a[1]),
            flags: 0,
        },
        SYS_renameat | SYS_renameat2 => Call::Rename {
            from_dir: Base::from_arg(a[0]),
            from: ptr(a[1]),
            to_dir: Base::from_arg(a[2]),
            to: ptr(a[3]),
            flags: if nr == SYS_renameat2 { a[4] as u32 } else { 0 },
        },
        #[cfg(target_arch = "x86_64")]
        SYS_link => Call::Link {
            from_dir: Base::Cwd,
            from: ptr(a[0]),
            to_dir: Base::Cwd,
            to: ptr(a[1]),
            flags: 0,
        },
        SYS_linkat => Call::Link {
            from_dir: Base::from_arg(a[0]),
            from: ptr(a[1]),
            to_dir: Base::from_arg(a[2]),
            to: ptr(a[3]),
            flags: a[4] as i32,
        },
        SYS_execve => Call::Exec {
            dir: Base::Cwd,
            path: ptr(a[0]),
            argv: ptr(a[1]),
            envp: ptr(a[2]),
            flags: 0,
        },
        SYS_execveat => Call::Exec {
            dir: Base::from_arg(a[0]),
            path: ptr(a[1]),
            argv: ptr(a[2]),
            envp: ptr(a[3]),
            flags: a[4] as i32,
        },
        SYS_truncate => Call::Truncate {
            path: ptr(a[0]),
            length: a[1] as i64,
        },
        SYS_kill => Call::Kill {
            pid: a[0] as i32,
            sig: a[1] as i32,
        },
        SYS_tkill => Call::Tkill {
            tid: a[0] as i32,
            sig: a[1] as i32,
        },
        SYS_tgkill => Call::Tgkill {
            tgid: a[0] as i32,
            tid: a[1] as i32,
            sig: a[2] as i32,
        },
        SYS_ptrace => Call::Ptrace {
            request: a[0] as u32,
            pid: a[1] as i32,
        },
        SYS_process_vm_readv | SYS_process_vm_writev => Call::ProcessVm { pid: a[0] as i32 },
        SYS_pidfd_open => Call::PidfdOpen { pid: a[0] as i32 },
        SYS_clone | SYS_unshare => Call::Namespace { flags: a[0] },
        SYS_bind => Call::Bind {
            fd: a[0] as i32,
            addr: ptr(a[1]),
            len: a[2] as u32,
        },
        SYS_connect => Call::Connect {
            fd: a[0] as i32,
            addr: ptr(a[1]),
            len: a[2] as u32,
        },
        SYS_pidfd_getfd => Call::PidfdGetfd {
            pidfd: a[0] as i32,
            fd: a[1] as i32,
            flags: a[2] as u32,
        },
        SYS_pidfd_send_signal => Call::PidfdSendSignal {
            pidfd: a[0] as i32,
            sig: a[1] as i32,
            info: ptr(a[2]),
            flags: a[3] as u32,
        },
        SYS_landlock_restrict_self => Call::LandlockRestrictSelf,
        SYS_umask => Call::Umask,
        other => Call::Other(other),
    }
}

#[cfg(test)]
mod tests;
