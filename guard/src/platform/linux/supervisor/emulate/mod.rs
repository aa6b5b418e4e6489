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

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

pub use fd::Delivery;
pub use umask::{unshare_fs_for_this_thread, TaskUmask};

use crate::platform::linux::sys::notify::Response;
use crate::platform::linux::sys::openat2::{openat2, openat2_in, OpenHow, Resolve};
use crate::platform::linux::sys::pidfd::{self, SIGINFO_SIZE};
use crate::platform::linux::sys::{fs, socket};

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
        /// `RENAME_NOREPLACE` is in `flags` because the destination was not there when the
        /// rename was judged, not because the task asked for it (see the handler).
        noreplace_added: bool,
    },
    Link {
        from_parent: PathBuf,
        from_name: CString,
        to_parent: PathBuf,
        to_name: CString,
        flags: i32,
    },
    /// `linkat(fd, "", new, AT_EMPTY_PATH)`: our pidfd_getfd copy of the task's fd is linked
    /// (the object judged: a second thread's dup2 into the task's slot changes nothing), into
    /// the parent opened through the task's root, on the task's own mount of it (in hidden mode
    /// a file the task opened itself is on a mount of the agent's namespace, and a link across
    /// mounts is EXDEV), or else through ours (a file the supervisor opened for the task).
    LinkObject {
        object: OwnedFd,
        task: i32,
        to_parent: PathBuf,
        to_name: CString,
    },
    Truncate {
        path: PathBuf,
        length: i64,
    },
    /// bind of our copy of the task's local socket: a path name in `parent` (opened without
    /// following symlinks, the task's umask applied), or an abstract name or autobind as is.
    Bind {
        socket: OwnedFd,
        parent: Option<PathBuf>,
        name: socket::UnixName,
        tid: i32,
    },
    /// A socket we connected for the task, installed at its fd number `fd` (replacing its
    /// unconnected one), answered 0.
    InstallSocket {
        socket: OwnedFd,
        fd: i32,
        cloexec: bool,
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
    /// pidfd_getfd on our copy of the task's pidfd, the fd taken installed in the task.
    PidfdGetfd {
        pidfd: OwnedFd,
        fd: i32,
        flags: u32,
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
                noreplace_added,
            } => in_dir(&from_parent, |from| {
                in_dir(&to_parent, |to| {
                    match fs::renameat2(from, &from_name, to, &to_name, flags) {
                        // A file system without RENAME_NOREPLACE (some FUSE and network ones):
                        // the call as the task made it.
                        Err(e) if noreplace_added && e.raw_os_error() == Some(libc::EINVAL) => {
                            let asked = flags & !libc::RENAME_NOREPLACE;
                            fs::renameat2(from, &from_name, to, &to_name, asked)
                        }
                        done => done,
                    }
                })
            }),
            Emulation::Link {
                from_parent,
                from_name,
                to_parent,
                to_name,
                flags,
            } => in_dir(&from_parent, |from| {
                in_dir(&to_parent, |to| {
                    fs::linkat(Some(from), &from_name, to, &to_name, flags)
                })
            }),
            Emulation::LinkObject {
                object,
                task,
                to_parent,
                to_name,
            } => link_object(&object, task, &to_parent, &to_name),
            Emulation::Truncate { path, length } => truncate(&path, length),
            Emulation::Bind {
                socket,
                parent,
                name,
                tid,
            } => match (parent, &name) {
                (Some(parent), socket::UnixName::Path(last)) => in_dir(&parent, |dir| {
                    self.umask.around(Some(tid), || {
                        socket::bind(socket.as_fd(), &socket::in_dir(dir, last))
                    })
                }),
                _ => socket::bind(socket.as_fd(), &name),
            },
            Emulation::InstallSocket {
                socket,
                fd,
                cloexec,
            } => {
                use std::os::fd::AsRawFd;
                let deliver = &self.deliver;
                return match deliver
                    .listener
                    .add_fd_at(deliver.id, socket.as_raw_fd(), fd, cloexec)
                {
                    Ok(()) => Some(Response::Value(0)),
                    Err(e) if e.raw_os_error() == Some(libc::ENOENT) => None,
                    Err(e) => Some(Response::failed(&e)),
                };
            }
            Emulation::PidfdGetfd { pidfd, fd, flags } => {
                if flags != 0 {
                    // No flag is defined: the kernel's answer.
                    return Some(Response::Error(libc::EINVAL));
                }
                return match pidfd::get_fd(pidfd.as_fd(), fd) {
                    // pidfd_getfd's fd is always close-on-exec.
                    Ok(taken) => fd::install_fd(&self.deliver, taken, libc::O_CLOEXEC),
                    Err(e) => Some(Response::failed(&e)),
                };
            }
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

    /// Install `file` in the task and leave the answer (its number there) to the caller.
    pub fn install_unanswered(&self, file: OwnedFd, flags: i32) -> Response {
        fd::install_fd_unanswered(&self.deliver, file, flags)
    }
}

/// The path named by a resolved parent and a last component (a trailing slash dropped): the
/// inverse of [`parent_and_name`].
pub fn path_of(parent: &Path, name: &CStr) -> PathBuf {
    let bytes = name.to_bytes();
    let bytes = bytes.strip_suffix(b"/").unwrap_or(bytes);
    parent.join(std::ffi::OsStr::from_bytes(bytes))
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
pub fn open_dir_nofollow(dir: &Path) -> io::Result<OwnedFd> {
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

/// Link the open file `object` as `to_parent/to_name`, the parent reached from `task`'s root
/// without following any symlink below it.
fn link_object(object: &OwnedFd, task: i32, to_parent: &Path, to_name: &CStr) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let root = fs::open(
        &fs::c_path(format!("/proc/{task}/root").as_bytes())?,
        libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
    )?;
    let below = to_parent.strip_prefix("/").unwrap_or(to_parent);
    let below = if below.as_os_str().is_empty() {
        Path::new(".")
    } else {
        below
    };
    let how = OpenHow {
        flags: (libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC) as u64,
        mode: 0,
        resolve: Resolve::NO_SYMLINKS,
    };
    let parent = openat2_in(
        root.as_fd(),
        &fs::c_path(below.as_os_str().as_bytes())?,
        &how,
    )?;
    // Our own fd table: nothing of the task's can change what this names.
    let ours = fs::c_path(format!("/proc/self/fd/{}", object.as_raw_fd()).as_bytes())?;
    match fs::linkat(
        None,
        &ours,
        parent.as_fd(),
        to_name,
        libc::AT_SYMLINK_FOLLOW,
    ) {
        Err(e) if e.raw_os_error() == Some(libc::EXDEV) => in_dir(to_parent, |dir| {
            fs::linkat(None, &ours, dir, to_name, libc::AT_SYMLINK_FOLLOW)
        }),
        done => done,
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
