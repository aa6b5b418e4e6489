//! The emulation: a call the judge allowed, performed by the supervisor itself on the path it
//! resolved and checked, and answered with the result (`Response::Value` or the errno).
//!
//! Letting the kernel run those calls instead (`CONTINUE`) would make it read the path again
//! from the task's memory, which a second thread can have rewritten since (time of check, time
//! of use). Every path here is an absolute, resolved directory plus one name: the directory is
//! opened without following any symlink ([`in_dir`]), so a component swapped for a symlink after
//! the check makes the call fail (ELOOP) instead of landing elsewhere.
//!
//! This must never act on a path other than the one judged, never follow a symlink the check
//! did not see, and never act for a notification that is no longer pending (the handler checks
//! `id_valid` first).

mod fd;
mod umask;

use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

pub use fd::Delivery;
pub use umask::{unshare_fs_for_this_thread, TaskUmask};

use crate::platform::linux::sys::fs;
use crate::platform::linux::sys::notify::Response;
use crate::platform::linux::sys::openat2::{openat2, OpenHow, Resolve};
use crate::platform::linux::sys::pidfd::{self, SIGINFO_SIZE};

/// A call redone by the supervisor. Parents are absolute, resolved directories.
#[derive(Debug)]
pub enum Emulation {
    Unlink {
        parent: PathBuf,
        name: CString,
        /// 0 or `AT_REMOVEDIR`.
        flags: i32,
    },
    Rename {
        from_parent: PathBuf,
        from_name: CString,
        to_parent: PathBuf,
        to_name: CString,
        flags: u32,
    },
    Link {
        /// Parent and name, or a whole path followed as a magic link (`AT_EMPTY_PATH`).
        from_parent: Option<PathBuf>,
        from_name: CString,
        to_parent: PathBuf,
        to_name: CString,
        flags: i32,
    },
    Truncate {
        path: PathBuf,
        length: i64,
    },
    /// An open, performed here and the fd installed in the task (`SECCOMP_IOCTL_NOTIF_ADDFD`).
    Open {
        path: PathBuf,
        /// The task's open flags.
        flags: i32,
        mode: u32,
        /// For a creating open: the task whose umask applies.
        umask_of: Option<i32>,
    },
    Mkdir {
        parent: PathBuf,
        name: CString,
        mode: u32,
        tid: i32,
    },
    Mknod {
        parent: PathBuf,
        name: CString,
        mode: u32,
        dev: u64,
        tid: i32,
    },
    Symlink {
        target: CString,
        parent: PathBuf,
        name: CString,
    },
    PidfdSignal {
        /// Our copy of the task's pidfd: the file that was checked is the one used.
        fd: OwnedFd,
        sig: i32,
        info: Option<[u8; SIGINFO_SIZE]>,
        flags: u32,
    },
}

/// What an emulation needs of the supervisor: where an fd goes, where umasks come from.
pub struct Emulator<'a> {
    pub deliver: Delivery<'a>,
    pub umask: TaskUmask<'a>,
}

impl Emulator<'_> {
    /// Perform the call and answer it. `None`: nothing to answer (the task is gone, or a FIFO
    /// open answers later from a thread of its own).
    pub fn run(&self, emulation: Emulation) -> Option<Response> {
        let result = match emulation {
            Emulation::Open {
                path,
                flags,
                mode,
                umask_of,
            } => {
                return fd::open_and_install(&self.deliver, self.umask, path, flags, mode, umask_of)
            }
            Emulation::Mkdir {
                parent,
                name,
                mode,
                tid,
            } => in_dir(&parent, |dir| {
                self.umask
                    .around(Some(tid), || fs::mkdirat(dir, &name, mode & 0o7777))
            }),
            Emulation::Mknod {
                parent,
                name,
                mode,
                dev,
                tid,
            } => in_dir(&parent, |dir| {
                self.umask
                    .around(Some(tid), || fs::mknodat(dir, &name, mode, dev))
            }),
            Emulation::Symlink {
                target,
                parent,
                name,
            } => in_dir(&parent, |dir| fs::symlinkat(&target, dir, &name)),
            Emulation::Unlink {
                parent,
                name,
                flags,
            } => in_dir(&parent, |dir| fs::unlinkat(dir, &name, flags)),
            Emulation::Rename {
                from_parent,
                from_name,
                to_parent,
                to_name,
                flags,
            } => in_dir(&from_parent, |from| {
                in_dir(&to_parent, |to| {
                    fs::renameat2(from, &from_name, to, &to_name, flags)
                })
            }),
            Emulation::Link {
                from_parent,
                from_name,
                to_parent,
                to_name,
                flags,
            } => match from_parent {
                Some(from_parent) => in_dir(&from_parent, |from| {
                    in_dir(&to_parent, |to| {
                        fs::linkat(Some(from), &from_name, to, &to_name, flags)
                    })
                }),
                None => in_dir(&to_parent, |to| {
                    fs::linkat(None, &from_name, to, &to_name, flags)
                }),
            },
            Emulation::Truncate { path, length } => truncate(&path, length),
            Emulation::PidfdSignal {
                fd,
                sig,
                info,
                flags,
            } => pidfd::send_signal(fd.as_fd(), sig, info.as_ref(), flags),
        };
        Some(Response::of(result))
    }
}

impl Emulator<'_> {
    /// Open `path` for the task with `flags` (no create), as an emulated open does, without
    /// installing it (the keep step opens first, keeps, then installs: `supervisor::keep`).
    pub fn open_for_task(&self, path: &Path, flags: i32) -> io::Result<OwnedFd> {
        fd::open_for_task(path, flags, 0)
    }

    /// Install `file` in the task as the answer to an open with `flags`.
    pub fn install(&self, file: OwnedFd, flags: i32) -> Option<Response> {
        fd::install_fd(&self.deliver, file, flags)
    }
}

/// Split a resolved path into its parent and the name to act on, keeping a trailing slash the
/// task wrote (it makes the kernel insist on a directory).
pub fn parent_and_name(path: &Path, trailing_slash: bool) -> io::Result<(PathBuf, CString)> {
    let parent = path.parent().unwrap_or(Path::new("/")).to_path_buf();
    let mut name = path
        .file_name()
        .map(|n| n.as_bytes().to_vec())
        .unwrap_or_else(|| b".".to_vec());
    if trailing_slash {
        name.push(b'/');
    }
    Ok((parent, fs::c_path(&name)?))
}

/// Run an `*at` call in the resolved directory `parent`, opened without following any symlink:
/// the one step every path emulation shares.
fn in_dir<T>(parent: &Path, call: impl FnOnce(BorrowedFd<'_>) -> io::Result<T>) -> io::Result<T> {
    let dir = open_dir_nofollow(parent)?;
    call(dir.as_fd())
}

/// Open a resolved directory without following any symlink in it: a symlink that appears after
/// the check (a swapped path component) makes this fail with ELOOP instead of redirecting.
pub(super) fn open_dir_nofollow(dir: &Path) -> io::Result<OwnedFd> {
    let c = fs::c_path(dir.as_os_str().as_bytes())?;
    let how = OpenHow {
        flags: (libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC) as u64,
        mode: 0,
        resolve: Resolve::NO_SYMLINKS,
    };
    match openat2(&c, &how) {
        Err(e) if e.raw_os_error() == Some(libc::ENOSYS) => {
            // Before 5.6: only the last component is protected from a swap.
            fs::open(
                &c,
                libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC | libc::O_NOFOLLOW,
            )
        }
        opened => opened,
    }
}

/// truncate(2) on the checked path: the file is opened in its parent without following a
/// symlink (the final one was resolved already; one there now is a swap after the check).
fn truncate(path: &Path, length: i64) -> io::Result<()> {
    let (parent, name) = parent_and_name(path, false)?;
    in_dir(&parent, |dir| {
        let file = fs::openat(
            dir,
            &name,
            libc::O_WRONLY | libc::O_CLOEXEC | libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY,
        )?;
        fs::ftruncate(file.as_fd(), length)
    })
}

#[cfg(test)]
mod tests;
