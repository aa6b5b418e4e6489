//! File-system syscalls on names relative to a directory fd (the `*at` family), and the calling
//! thread's file-system attributes (umask, a private `fs_struct`). Each is the syscall and its
//! errno, nothing more: which directory and which flags are the caller's to choose.
//!
//! This must never resolve a path itself or retry a failed call.

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use super::zero_or_errno;

/// A path or name as the kernel takes it; `EINVAL` for one with a NUL inside (the kernel could
/// not have been given it).
pub fn c_path(bytes: &[u8]) -> io::Result<CString> {
    CString::new(bytes).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

fn owned(fd: libc::c_int) -> io::Result<OwnedFd> {
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel returned a new fd, owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// open(2) of an absolute path (or one relative to the cwd).
pub fn open(path: &CStr, flags: i32) -> io::Result<OwnedFd> {
    // SAFETY: path is a valid C string.
    owned(unsafe { libc::open(path.as_ptr(), flags) })
}

/// openat(2) of `name` in `dir`, without a mode (nothing is created).
pub fn openat(dir: BorrowedFd<'_>, name: &CStr, flags: i32) -> io::Result<OwnedFd> {
    // SAFETY: a valid fd and C string.
    owned(unsafe { libc::openat(dir.as_raw_fd(), name.as_ptr(), flags) })
}

/// readlinkat(2) into `buf`: how many bytes were written (the text is not NUL-terminated).
pub fn readlinkat(dir: BorrowedFd<'_>, name: &CStr, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: a valid fd, C string, and buffer of the given length.
    let n = unsafe {
        libc::readlinkat(
            dir.as_raw_fd(),
            name.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(n as usize)
}

pub fn mkdirat(dir: BorrowedFd<'_>, name: &CStr, mode: u32) -> io::Result<()> {
    // SAFETY: a valid fd and C string.
    zero_or_errno(unsafe { libc::mkdirat(dir.as_raw_fd(), name.as_ptr(), mode) }.into())
}

pub fn mknodat(dir: BorrowedFd<'_>, name: &CStr, mode: u32, dev: u64) -> io::Result<()> {
    // SAFETY: a valid fd and C string.
    zero_or_errno(unsafe { libc::mknodat(dir.as_raw_fd(), name.as_ptr(), mode, dev) }.into())
}

/// symlinkat(2): a link named `name` in `dir` whose text is `target`.
pub fn symlinkat(target: &CStr, dir: BorrowedFd<'_>, name: &CStr) -> io::Result<()> {
    // SAFETY: a valid fd and C strings.
    zero_or_errno(
        unsafe { libc::symlinkat(target.as_ptr(), dir.as_raw_fd(), name.as_ptr()) }.into(),
    )
}

/// unlinkat(2); `flags` is 0 or `AT_REMOVEDIR`.
pub fn unlinkat(dir: BorrowedFd<'_>, name: &CStr, flags: i32) -> io::Result<()> {
    // SAFETY: a valid fd and C string.
    zero_or_errno(unsafe { libc::unlinkat(dir.as_raw_fd(), name.as_ptr(), flags) }.into())
}

/// renameat2(2); `flags` are `RENAME_*`.
pub fn renameat2(
    from_dir: BorrowedFd<'_>,
    from: &CStr,
    to_dir: BorrowedFd<'_>,
    to: &CStr,
    flags: u32,
) -> io::Result<()> {
    // SAFETY: valid fds and C strings.
    zero_or_errno(unsafe {
        libc::syscall(
            libc::SYS_renameat2,
            from_dir.as_raw_fd(),
            from.as_ptr(),
            to_dir.as_raw_fd(),
            to.as_ptr(),
            flags,
        )
    })
}

/// linkat(2); `from_dir` `None` is `AT_FDCWD` (for a whole path, e.g. a /proc magic link
/// followed with `AT_SYMLINK_FOLLOW`).
pub fn linkat(
    from_dir: Option<BorrowedFd<'_>>,
    from: &CStr,
    to_dir: BorrowedFd<'_>,
    to: &CStr,
    flags: i32,
) -> io::Result<()> {
    let from_fd = from_dir.map_or(libc::AT_FDCWD, |d| d.as_raw_fd());
    // SAFETY: valid fds and C strings.
    zero_or_errno(
        unsafe {
            libc::linkat(
                from_fd,
                from.as_ptr(),
                to_dir.as_raw_fd(),
                to.as_ptr(),
                flags,
            )
        }
        .into(),
    )
}

/// The file type bits (`st_mode & S_IFMT`) of an open file.
pub fn file_type(file: BorrowedFd<'_>) -> io::Result<libc::mode_t> {
    type_and_device(file).map(|(kind, _)| kind)
}

/// The file type bits and the device of the file system (`st_dev`) of an open file (`O_PATH`
/// will do). Async-signal-safe.
pub fn type_and_device(file: BorrowedFd<'_>) -> io::Result<(libc::mode_t, u64)> {
    // SAFETY: zeroed stat is a valid out-buffer; the fd is borrowed and open.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    if unsafe { libc::fstat(file.as_raw_fd(), &mut st) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((st.st_mode & libc::S_IFMT, st.st_dev))
}

/// Call `each` with the name of every entry of the directory `dir` (opened for reading), `.`
/// and `..` left out. Async-signal-safe: getdents64 into a buffer on the stack.
pub fn each_entry(dir: BorrowedFd<'_>, mut each: impl FnMut(&CStr)) -> io::Result<()> {
    let mut buf = [0u8; 4096];
    loop {
        // SAFETY: a buffer of the given length, written by the kernel.
        let n = unsafe {
            libc::syscall(
                libc::SYS_getdents64,
                dir.as_raw_fd(),
                buf.as_mut_ptr(),
                buf.len(),
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        if n == 0 {
            return Ok(());
        }
        let mut at = 0usize;
        // struct linux_dirent64: u64 ino, i64 off, u16 reclen, u8 type, NUL-terminated name.
        while at + 19 < n as usize {
            let reclen = usize::from(u16::from_ne_bytes([buf[at + 16], buf[at + 17]]));
            if reclen == 0 || at + reclen > n as usize {
                return Err(io::Error::from_raw_os_error(libc::EIO));
            }
            if let Ok(name) = CStr::from_bytes_until_nul(&buf[at + 19..at + reclen]) {
                if name != c"." && name != c".." {
                    each(name);
                }
            }
            at += reclen;
        }
    }
}

/// pread(2): up to `buf.len()` bytes at `offset`; how many were read.
pub fn pread(file: BorrowedFd<'_>, buf: &mut [u8], offset: i64) -> io::Result<usize> {
    // SAFETY: a valid fd and a buffer of the given length.
    let n = unsafe { libc::pread(file.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), offset) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(n as usize)
}

pub fn ftruncate(file: BorrowedFd<'_>, length: i64) -> io::Result<()> {
    // SAFETY: a valid fd.
    zero_or_errno(unsafe { libc::ftruncate(file.as_raw_fd(), length) }.into())
}

/// umask(2): set the calling thread's umask (its own once [`unshare_fs`] succeeded, else the
/// whole process's); the previous one.
pub fn umask(mask: libc::mode_t) -> libc::mode_t {
    // SAFETY: umask has no memory preconditions and cannot fail.
    unsafe { libc::umask(mask) }
}

/// unshare(CLONE_FS): give the calling thread its own cwd, root and umask.
pub fn unshare_fs() -> io::Result<()> {
    // SAFETY: unshare has no memory preconditions; CLONE_FS affects the calling thread only.
    zero_or_errno(unsafe { libc::unshare(libc::CLONE_FS) }.into())
}
