//! The calls that keep a file's bytes (docs/snapshots.md): `fstatat` to see what is there,
//! `FICLONE` for a copy-on-write clone where the file system has it (btrfs, xfs), and
//! `copy_file_range` for an in-kernel copy where it does not. Each is the syscall and its
//! errno; choosing between them is the caller's (`supervisor::keep`).
//!
//! This must never follow a symlink the caller did not ask for: `fstatat` is always given its
//! flags.

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use super::zero_or_errno;

/// fstatat(2) of `name` in `dir` with `flags` (`AT_SYMLINK_NOFOLLOW`, `AT_EMPTY_PATH`).
pub fn fstatat(dir: BorrowedFd<'_>, name: &CStr, flags: i32) -> io::Result<libc::stat> {
    // SAFETY: a valid fd and C string; st is a plain struct the kernel fills.
    unsafe {
        let mut st: libc::stat = std::mem::zeroed();
        zero_or_errno(libc::fstatat(dir.as_raw_fd(), name.as_ptr(), &mut st, flags).into())?;
        Ok(st)
    }
}

/// fstat(2).
pub fn fstat(file: BorrowedFd<'_>) -> io::Result<libc::stat> {
    fstatat(file, c"", libc::AT_EMPTY_PATH)
}

/// openat(2) of `name` in `dir`, with a mode for what it creates.
pub fn openat_mode(
    dir: BorrowedFd<'_>,
    name: &CStr,
    flags: i32,
    mode: libc::mode_t,
) -> io::Result<OwnedFd> {
    // SAFETY: a valid fd and C string.
    let fd = unsafe { libc::openat(dir.as_raw_fd(), name.as_ptr(), flags, mode) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel returned a new fd, owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `ioctl(dst, FICLONE, src)`: make `dst` share `src`'s blocks (copy on write). Fails with
/// `EOPNOTSUPP`, `EINVAL` or `EXDEV` where the file system cannot.
pub fn ficlone(dst: BorrowedFd<'_>, src: BorrowedFd<'_>) -> io::Result<()> {
    // _IOW(0x94, 9, int): not in every libc.
    const FICLONE: libc::c_ulong = 0x4004_9409;
    // SAFETY: two valid fds; FICLONE takes the source fd as its argument.
    zero_or_errno(unsafe { libc::ioctl(dst.as_raw_fd(), FICLONE as _, src.as_raw_fd()) }.into())
}

/// Copy `len` bytes from the start of `src` to the start of `dst` with copy_file_range(2),
/// falling back to read and write where the kernel refuses it (other file systems before 5.3,
/// some special files). Returns the bytes copied (fewer when `src` was shorter).
pub fn copy_bytes(src: BorrowedFd<'_>, dst: BorrowedFd<'_>, len: u64) -> io::Result<u64> {
    let mut done: u64 = 0;
    let (mut off_in, mut off_out): (libc::loff_t, libc::loff_t) = (0, 0);
    while done < len {
        let chunk = (len - done).min(1 << 30) as usize;
        // SAFETY: valid fds and offsets the kernel updates.
        let n = unsafe {
            libc::copy_file_range(
                src.as_raw_fd(),
                &mut off_in,
                dst.as_raw_fd(),
                &mut off_out,
                chunk,
                0,
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            return match e.raw_os_error() {
                Some(libc::EXDEV | libc::EINVAL | libc::ENOSYS | libc::EOPNOTSUPP) => {
                    read_write(src, dst, done, len)
                }
                _ => Err(e),
            };
        }
        if n == 0 {
            break;
        }
        done += n as u64;
    }
    Ok(done)
}

/// The fallback of [`copy_bytes`] from offset `from`: pread and pwrite through a buffer.
fn read_write(src: BorrowedFd<'_>, dst: BorrowedFd<'_>, from: u64, len: u64) -> io::Result<u64> {
    let mut buf = vec![0u8; 128 * 1024];
    let mut done = from;
    while done < len {
        let want = buf.len().min((len - done) as usize);
        // SAFETY: a valid fd and a buffer of at least `want` bytes.
        let n = unsafe {
            libc::pread(
                src.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                want,
                done as libc::off_t,
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        if n == 0 {
            break;
        }
        let mut written = 0;
        while written < n as usize {
            // SAFETY: a valid fd and the filled part of the buffer.
            let w = unsafe {
                libc::pwrite(
                    dst.as_raw_fd(),
                    buf[written..].as_ptr().cast(),
                    n as usize - written,
                    (done + written as u64) as libc::off_t,
                )
            };
            if w < 0 {
                return Err(io::Error::last_os_error());
            }
            written += w as usize;
        }
        done += n as u64;
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn copies_bytes_and_stats_without_following() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        std::fs::write(&src, vec![7u8; 300_000]).unwrap();
        std::os::unix::fs::symlink("src", dir.path().join("link")).unwrap();
        let d = std::fs::File::open(dir.path()).unwrap();
        let st = fstatat(d.as_fd(), c"link", libc::AT_SYMLINK_NOFOLLOW).unwrap();
        assert_eq!(st.st_mode & libc::S_IFMT, libc::S_IFLNK);
        let from = std::fs::File::open(&src).unwrap();
        let to = openat_mode(
            d.as_fd(),
            c"dst",
            libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_CLOEXEC,
            0o600,
        )
        .unwrap();
        assert_eq!(
            copy_bytes(from.as_fd(), to.as_fd(), 300_000).unwrap(),
            300_000
        );
        assert_eq!(fstat(to.as_fd()).unwrap().st_size, 300_000);
        assert_eq!(
            std::fs::read(dir.path().join("dst")).unwrap(),
            vec![7u8; 300_000]
        );
        // The fallback alone gives the same bytes.
        let to2 = openat_mode(
            d.as_fd(),
            c"dst2",
            libc::O_WRONLY | libc::O_CREAT | libc::O_CLOEXEC,
            0o600,
        )
        .unwrap();
        assert_eq!(
            read_write(from.as_fd(), to2.as_fd(), 0, 300_000).unwrap(),
            300_000
        );
        assert_eq!(
            std::fs::read(dir.path().join("dst2")).unwrap(),
            vec![7u8; 300_000]
        );
    }
}
