//! Landlock (Linux 5.13+): the ABI version, the file-system access rights agent-guard names, and
//! the three syscalls (create a ruleset, add a path-beneath rule, restrict the calling thread),
//! as linux/landlock.h declares them. libc declares none of it.
//!
//! Every function here is async-signal-safe (no allocation, no lock): a domain is entered in the
//! forked CMD child. Which rights to handle is the caller's choice; this must never add one.

use std::io;
use std::ops::BitOr;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use super::zero_or_errno;

/// `LANDLOCK_CREATE_RULESET_VERSION`: ask for the ABI version instead of creating a ruleset.
const CREATE_RULESET_VERSION: u32 = 1 << 0;
/// `LANDLOCK_RULE_PATH_BENEATH`.
const RULE_PATH_BENEATH: libc::c_int = 1;

/// The Landlock ABI version of the running kernel (`landlock_create_ruleset` with
/// `LANDLOCK_CREATE_RULESET_VERSION`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct AbiVersion(u32);

impl AbiVersion {
    /// Linux 5.13: file-system rights, a domain per process tree.
    pub const V1: AbiVersion = AbiVersion(1);
    /// Linux 5.19: `REFER` (links and renames into another directory).
    pub const V2: AbiVersion = AbiVersion(2);

    /// The running kernel's version.
    pub fn current() -> AbiVersion {
        // SAFETY: the version query takes no attribute pointer.
        let abi = unsafe {
            libc::syscall(
                libc::SYS_landlock_create_ruleset,
                std::ptr::null::<u8>(),
                0usize,
                CREATE_RULESET_VERSION,
            )
        };
        AbiVersion(u32::try_from(abi).unwrap_or(0))
    }

    /// Whether the kernel has Landlock at all.
    pub fn is_supported(self) -> bool {
        self >= AbiVersion::V1
    }
}

/// File-system access rights (`LANDLOCK_ACCESS_FS_*`), those agent-guard uses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(transparent)]
pub struct AccessFs(u64);

impl AccessFs {
    pub const EMPTY: AccessFs = AccessFs(0);
    /// `LANDLOCK_ACCESS_FS_READ_FILE` (ABI 1): open a file for reading.
    pub const READ_FILE: AccessFs = AccessFs(1 << 2);
    /// `LANDLOCK_ACCESS_FS_MAKE_BLOCK` (ABI 1): create a block device.
    pub const MAKE_BLOCK: AccessFs = AccessFs(1 << 11);
    /// `LANDLOCK_ACCESS_FS_REFER` (ABI 2): link or rename a file from or to another directory.
    pub const REFER: AccessFs = AccessFs(1 << 13);

    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }
}

impl BitOr for AccessFs {
    type Output = AccessFs;
    fn bitor(self, other: AccessFs) -> AccessFs {
        AccessFs(self.0 | other.0)
    }
}

/// `struct landlock_path_beneath_attr` (packed, as the kernel declares it).
#[repr(C, packed)]
struct PathBeneathAttr {
    allowed_access: u64,
    parent_fd: i32,
}

/// landlock_create_ruleset(2) handling `handled` rights, with the ABI 1 attribute layout
/// (`handled_access_fs` only), which every Landlock kernel accepts.
pub fn create_ruleset(handled: AccessFs) -> io::Result<OwnedFd> {
    let attr: u64 = handled.0;
    // SAFETY: attr is a valid u64, the size passed.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            &attr as *const u64,
            std::mem::size_of::<u64>(),
            0u32,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel returned a new fd, owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// landlock_add_rule(2): grant `allowed` beneath the directory `parent`, or on the file
/// `parent` (then only file rights, such as `READ_FILE`).
pub fn add_path_beneath_rule(
    ruleset: BorrowedFd<'_>,
    allowed: AccessFs,
    parent: BorrowedFd<'_>,
) -> io::Result<()> {
    let rule = PathBeneathAttr {
        allowed_access: allowed.0,
        parent_fd: parent.as_raw_fd(),
    };
    // SAFETY: rule is a valid landlock_path_beneath_attr for the call.
    zero_or_errno(unsafe {
        libc::syscall(
            libc::SYS_landlock_add_rule,
            ruleset.as_raw_fd(),
            RULE_PATH_BENEATH,
            &rule as *const PathBeneathAttr,
            0u32,
        )
    })
}

/// landlock_restrict_self(2): put the calling thread (and what it forks or execs) in the
/// ruleset's domain. Needs `PR_SET_NO_NEW_PRIVS` first (unless privileged).
pub fn restrict_self(ruleset: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: a plain syscall on an fd.
    zero_or_errno(unsafe {
        libc::syscall(libc::SYS_landlock_restrict_self, ruleset.as_raw_fd(), 0u32)
    })
}
