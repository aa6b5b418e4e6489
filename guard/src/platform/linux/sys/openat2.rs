//! openat2(2) (Linux 5.6): `struct open_how` and the `RESOLVE_*` flags of linux/openat2.h, as
//! types. libc declares `open_how` non-exhaustive (it cannot be built), so it is declared here.
//!
//! This must never widen what the caller asked: the flags go to the kernel as given.

use std::ffi::CStr;
use std::io;
use std::ops::BitOr;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

/// How openat2 resolves the path (`RESOLVE_*`, linux/openat2.h).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(transparent)]
pub struct Resolve(u64);

impl Resolve {
    /// No flag: resolve as open(2) does.
    pub const NONE: Resolve = Resolve(0);
    /// Fail (ELOOP) on any symlink, not only the last one.
    pub const NO_SYMLINKS: Resolve = Resolve(libc::RESOLVE_NO_SYMLINKS);
    /// Fail (EXDEV) when the path leaves the directory it starts from.
    pub const BENEATH: Resolve = Resolve(libc::RESOLVE_BENEATH);
    /// Treat the starting directory as the root (`/` and `..` stay beneath it).
    pub const IN_ROOT: Resolve = Resolve(libc::RESOLVE_IN_ROOT);

    /// The flags as the task passed them.
    pub const fn from_bits(bits: u64) -> Resolve {
        Resolve(bits)
    }

    /// Whether every flag of `other` is set.
    pub const fn contains(self, other: Resolve) -> bool {
        self.0 & other.0 == other.0
    }
}

impl BitOr for Resolve {
    type Output = Resolve;
    fn bitor(self, other: Resolve) -> Resolve {
        Resolve(self.0 | other.0)
    }
}

/// `struct open_how` (linux/openat2.h) in its first version (`OPEN_HOW_SIZE_VER0`, 24 bytes),
/// the one the supervisor reads from a task and passes to the kernel.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct OpenHow {
    /// `O_*` flags.
    pub flags: u64,
    /// The mode of a created file (0 unless `O_CREAT` or `O_TMPFILE`).
    pub mode: u64,
    pub resolve: Resolve,
}

impl OpenHow {
    /// Its size in a task's memory.
    pub const SIZE: usize = std::mem::size_of::<OpenHow>();

    /// From the bytes of a task's `open_how` (native byte order).
    pub fn from_bytes(bytes: &[u8; OpenHow::SIZE]) -> OpenHow {
        let word = |i: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&bytes[i * 8..i * 8 + 8]);
            u64::from_ne_bytes(b)
        };
        OpenHow {
            flags: word(0),
            mode: word(1),
            resolve: Resolve::from_bits(word(2)),
        }
    }
}

/// openat2(AT_FDCWD, path, how): a new fd, close-on-exec only if `how` says so. ENOSYS before
/// Linux 5.6.
pub fn openat2(path: &CStr, how: &OpenHow) -> io::Result<OwnedFd> {
    openat2_raw(libc::AT_FDCWD, path, how)
}

/// openat2(dir, path, how): `path` relative to the directory `dir`.
pub fn openat2_in(dir: BorrowedFd<'_>, path: &CStr, how: &OpenHow) -> io::Result<OwnedFd> {
    openat2_raw(dir.as_raw_fd(), path, how)
}

fn openat2_raw(dir: RawFd, path: &CStr, how: &OpenHow) -> io::Result<OwnedFd> {
    // SAFETY: path is a valid C string and how a valid open_how of the size passed; dir is
    // AT_FDCWD or a borrowed open fd.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            dir,
            path.as_ptr(),
            how as *const OpenHow,
            OpenHow::SIZE,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel returned a new fd, owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_how_has_the_kernel_layout() {
        assert_eq!(OpenHow::SIZE, 24);
        let mut bytes = [0u8; 24];
        bytes[..8].copy_from_slice(&(libc::O_CREAT as u64).to_ne_bytes());
        bytes[8..16].copy_from_slice(&0o640u64.to_ne_bytes());
        bytes[16..].copy_from_slice(&(libc::RESOLVE_BENEATH | libc::RESOLVE_IN_ROOT).to_ne_bytes());
        let how = OpenHow::from_bytes(&bytes);
        assert_eq!((how.flags, how.mode), (libc::O_CREAT as u64, 0o640));
        assert!(how.resolve.contains(Resolve::BENEATH));
        assert!(how.resolve.contains(Resolve::IN_ROOT));
        assert!(!how.resolve.contains(Resolve::NO_SYMLINKS));
    }

    #[test]
    fn no_symlinks_refuses_a_symlinked_directory() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("real")).unwrap();
        std::os::unix::fs::symlink(dir.path().join("real"), dir.path().join("link")).unwrap();
        let how = OpenHow {
            flags: (libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC) as u64,
            mode: 0,
            resolve: Resolve::NO_SYMLINKS,
        };
        let c =
            |p: &std::path::Path| std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap();
        let canon = std::fs::canonicalize(dir.path()).unwrap();
        assert!(openat2(&c(&canon.join("real")), &how).is_ok());
        let e = openat2(&c(&canon.join("link")), &how).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ELOOP));
    }
}
