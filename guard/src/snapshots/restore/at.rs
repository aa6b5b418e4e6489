//! Where a restore writes: every directory reached from `/` one component at a time without
//! following a symlink, and every name made, replaced or removed relative to a directory opened
//! that way.
//!
//! A restore runs with the human's rights, after the agent; a path of the zone that the agent
//! turned into a symlink (`proj/x -> ~/.ssh`) must not carry the restore's writes, which put
//! back bytes and names of the agent's choosing, out of the zone. This must never open, make,
//! rename or change the mode of anything through a symlink.

use std::ffi::OsStr;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Component, Path};

use rustix::fs::{AtFlags, Mode, OFlags, CWD};

use crate::audit::EndState;

const DIR: OFlags = OFlags::DIRECTORY
    .union(OFlags::NOFOLLOW)
    .union(OFlags::RDONLY)
    .union(OFlags::CLOEXEC);

/// Why a directory could not be reached without a symlink, in the words of a restore's result.
pub fn not_followed(dir: &Path, e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(libc::ELOOP) | Some(libc::ENOTDIR) => format!(
            "{} is no longer a directory (a symlink or a file is in its path now); nothing is written through it",
            dir.display()
        ),
        _ => format!("cannot open {}: {e}", dir.display()),
    }
}

/// The absolute directory `dir`, opened from `/` component by component, never following a
/// symlink; a missing component is made (0755) when `make`.
pub fn open_dir(dir: &Path, make: bool) -> io::Result<OwnedFd> {
    let mut fd = rustix::fs::openat(CWD, "/", DIR, Mode::empty())?;
    for component in dir.components() {
        let name = match component {
            Component::RootDir => continue,
            Component::Normal(name) => name,
            // Kept paths are absolute and clean; anything else is not walked.
            _ => return Err(io::Error::from_raw_os_error(libc::EINVAL)),
        };
        let next = match rustix::fs::openat(&fd, name, DIR, Mode::empty()) {
            Err(rustix::io::Errno::NOENT) if make => {
                match rustix::fs::mkdirat(&fd, name, Mode::from_raw_mode(0o755)) {
                    Ok(()) | Err(rustix::io::Errno::EXIST) => {}
                    Err(e) => return Err(e.into()),
                }
                rustix::fs::openat(&fd, name, DIR, Mode::empty())?
            }
            other => other?,
        };
        fd = next;
    }
    Ok(fd)
}

/// What `name` in `dir` is now (not followed).
// The `stat` fields' types differ by platform and backend (`st_mtime_nsec` is unsigned on
// Linux's raw backend, a `long` on macOS): the casts are needed somewhere.
#[allow(clippy::unnecessary_cast)]
pub fn state(dir: BorrowedFd<'_>, name: &OsStr) -> EndState {
    match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Err(_) => EndState::Absent,
        Ok(st) => EndState::Present {
            ino: st.st_ino as u64,
            size: st.st_size as u64,
            mtime_ns: st.st_mtime as i64 * 1_000_000_000 + st.st_mtime_nsec as i64,
            ctime_ns: st.st_ctime as i64 * 1_000_000_000 + st.st_ctime_nsec as i64,
        },
    }
}

/// A new file `name` in `dir`, for writing (0600 until its mode is set).
pub fn create_file(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<File> {
    let flags = OFlags::CREATE | OFlags::EXCL | OFlags::WRONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let fd = rustix::fs::openat(dir, name, flags, Mode::from_raw_mode(0o600))?;
    Ok(File::from(fd))
}

pub fn symlink(target: &Path, dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<()> {
    Ok(rustix::fs::symlinkat(target, dir, name)?)
}

pub fn rename(dir: BorrowedFd<'_>, from: &OsStr, to: &OsStr) -> io::Result<()> {
    Ok(rustix::fs::renameat(dir, from, dir, to)?)
}

/// The permission bits of `mode` (`mode_t` is 16 bits on macOS).
fn permissions(mode: u32) -> Mode {
    Mode::from_raw_mode((mode & 0o7777) as rustix::fs::RawMode)
}

/// Set the mode of the directory `dir` (reached without a symlink).
pub fn set_dir_mode(dir: &Path, mode: u32) -> io::Result<()> {
    let fd = open_dir(dir, false)?;
    Ok(rustix::fs::fchmod(&fd, permissions(mode))?)
}

/// Copy the kept tree `from` (in the store) to the new directory `name` in `dir`: directories,
/// files and symlinks, with their modes (directories' last, so a read-only one is filled first).
pub fn copy_tree(from: &Path, dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    rustix::fs::mkdirat(dir, name, Mode::from_raw_mode(0o700))?;
    let top = rustix::fs::openat(dir, name, DIR, Mode::empty())?;
    let top_mode = std::fs::symlink_metadata(from)?.permissions().mode();
    let mut modes: Vec<(OwnedFd, u32)> = vec![(top.try_clone()?, top_mode)];
    let mut stack = vec![(from.to_path_buf(), top)];
    while let Some((src, dst)) = stack.pop() {
        for e in std::fs::read_dir(&src)? {
            let e = e?;
            let meta = e.path().symlink_metadata()?;
            let out = e.file_name();
            if meta.is_dir() {
                rustix::fs::mkdirat(&dst, &out, Mode::from_raw_mode(0o700))?;
                let sub = rustix::fs::openat(&dst, &out, DIR, Mode::empty())?;
                modes.push((sub.try_clone()?, meta.permissions().mode()));
                stack.push((e.path(), sub));
            } else if meta.file_type().is_symlink() {
                symlink(&std::fs::read_link(e.path())?, dst.as_fd(), &out)?;
            } else if meta.is_file() {
                let mut to = create_file(dst.as_fd(), &out)?;
                io::copy(&mut File::open(e.path())?, &mut to)?;
                to.set_permissions(std::fs::Permissions::from_mode(meta.permissions().mode()))?;
            }
        }
    }
    // Deepest first, the top last: a read-only directory is filled before it is closed.
    for (fd, mode) in modes.into_iter().rev() {
        rustix::fs::fchmod(&fd, permissions(mode))?;
    }
    Ok(())
}

/// Remove `name` in `dir`, a file or a whole tree (what a failed restore left at its temporary
/// name), never following a symlink.
pub fn remove(dir: BorrowedFd<'_>, name: &OsStr) {
    if rustix::fs::unlinkat(dir, name, AtFlags::empty()).is_ok() {
        return;
    }
    let Ok(sub) = rustix::fs::openat(dir, name, DIR, Mode::empty()) else {
        return;
    };
    // The tree is ours (just made, 0700 until the end); make it writable to empty it.
    let _ = rustix::fs::fchmod(&sub, Mode::from_raw_mode(0o700));
    if let Ok(entries) = rustix::fs::Dir::read_from(&sub) {
        let names: Vec<std::ffi::OsString> = entries
            .flatten()
            .map(|e| {
                use std::os::unix::ffi::OsStrExt;
                OsStr::from_bytes(e.file_name().to_bytes()).to_os_string()
            })
            .filter(|n| n != "." && n != "..")
            .collect();
        for entry in names {
            remove(sub.as_fd(), &entry);
        }
    }
    let _ = rustix::fs::unlinkat(dir, name, AtFlags::REMOVEDIR);
}
