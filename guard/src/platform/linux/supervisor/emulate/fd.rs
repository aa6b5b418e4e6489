//! The open emulation: open the checked path here, as the task asked, and install the new fd in
//! the task (`SECCOMP_IOCTL_NOTIF_ADDFD`), answering with its number there.
//!
//! This must never open through a symlink the check did not see (outside /proc, whose magic
//! links are the task's own objects), never hand the task more access than its flags asked, and
//! never block a worker on an open that waits for another process (a FIFO).

use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use super::umask::TaskUmask;
use crate::platform::linux::sys::fs;
use crate::platform::linux::sys::notify::{Listener, Response};
use crate::platform::linux::sys::openat2::{openat2, OpenHow, Resolve};

/// Open flags the supervisor passes on when it opens for a task. `open()` ignores unknown bits,
/// `openat2()` refuses them, so the task's flags are masked to these.
const PASSED_OPEN_FLAGS: i32 = libc::O_ACCMODE
    | libc::O_CREAT
    | libc::O_EXCL
    | libc::O_TRUNC
    | libc::O_APPEND
    | libc::O_NONBLOCK
    | libc::O_DSYNC
    | libc::O_SYNC
    | libc::O_DIRECT
    | libc::O_DIRECTORY
    | libc::O_NOFOLLOW
    | libc::O_NOATIME
    | libc::O_PATH
    | libc::O_TMPFILE
    | libc::O_LARGEFILE
    | libc::O_ASYNC;

/// The notification an fd is installed for.
pub struct Delivery<'a> {
    pub listener: &'a Listener,
    pub id: u64,
    /// Held (shared) from installing a writable fd in a task until our copy is closed; an exec
    /// is answered only once none is held (see [`install`]).
    pub installing_writable: &'a Arc<RwLock<()>>,
}

/// Open `path` for the task with its `flags` and `mode` (its umask applied when it creates),
/// install the fd and answer. `None`: answered already, or later from a thread of its own.
pub fn open_and_install(
    to: &Delivery<'_>,
    umask: TaskUmask<'_>,
    path: PathBuf,
    flags: i32,
    mode: u32,
    umask_of: Option<i32>,
) -> Option<Response> {
    let is_fifo = std::fs::metadata(&path)
        .map(|m| m.file_type().is_fifo())
        .unwrap_or(false);
    if is_fifo && flags & libc::O_NONBLOCK == 0 && flags & libc::O_PATH == 0 {
        // Opening a FIFO waits for the other end, which may be another supervised process: wait
        // on a thread of its own so the workers keep serving.
        let listener = to.listener.try_clone().ok()?;
        let installing_writable = Arc::clone(to.installing_writable);
        let id = to.id;
        let spawned = std::thread::Builder::new()
            .stack_size(64 * 1024)
            .spawn(move || {
                let to = Delivery {
                    listener: &listener,
                    id,
                    installing_writable: &installing_writable,
                };
                let response = match open_for_task(&path, flags, mode) {
                    Ok(fd) => install_fd(&to, fd, flags),
                    Err(e) => Some(Response::failed(&e)),
                };
                if let Some(r) = response {
                    let _ = listener.send(id, r);
                }
            });
        return match spawned {
            Ok(_) => None,
            Err(_) => Some(Response::Error(libc::EAGAIN)),
        };
    }
    let may_exist = flags & libc::O_CREAT != 0
        && flags & libc::O_EXCL == 0
        && flags & libc::O_TMPFILE != libc::O_TMPFILE;
    if may_exist {
        // Most creating opens (`> file`) find the file there: no umask is needed then, and
        // reading it (/proc/TID/status) is the costliest step of a supervised open.
        match open_for_task(&path, flags & !libc::O_CREAT, 0) {
            Ok(fd) => return install_fd(to, fd, flags),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
            Err(e) => return Some(Response::failed(&e)),
        }
    }
    match umask.around(umask_of, || open_for_task(&path, flags, mode)) {
        Ok(fd) => install_fd(to, fd, flags),
        Err(e) => Some(Response::failed(&e)),
    }
}

/// Open `path` as the task asked, refusing any symlink on the way (there is none in a resolved
/// path unless one was swapped in after the check). /proc paths keep their magic links, which
/// the supervisor follows to the task's own objects.
pub(super) fn open_for_task(path: &Path, flags: i32, mode: u32) -> io::Result<OwnedFd> {
    let c = fs::c_path(path.as_os_str().as_bytes())?;
    // O_NOCTTY: the supervisor is a session leader without a terminal; opening one must not
    // make it ours.
    let ours = (flags & PASSED_OPEN_FLAGS & !libc::O_PATH) | libc::O_CLOEXEC | libc::O_NOCTTY;
    let creates = flags & libc::O_CREAT != 0 || flags & libc::O_TMPFILE == libc::O_TMPFILE;
    let how = OpenHow {
        flags: ours as u64,
        mode: if creates { u64::from(mode & 0o7777) } else { 0 },
        resolve: if path.starts_with("/proc") {
            Resolve::NONE
        } else {
            Resolve::NO_SYMLINKS
        },
    };
    let fd = openat2(&c, &how)?;
    // The plan refused block devices by path; this is the file really opened (a node renamed
    // into place since is refused here, without a record: only a race gets here).
    if fs::file_type(fd.as_fd())? == libc::S_IFBLK {
        return Err(io::Error::from_raw_os_error(libc::EPERM));
    }
    Ok(fd)
}

/// Install `fd` in the task without answering: the answer is its number there. For a call whose
/// outcome must be recorded before the task runs on (a kept open: the session's end, which
/// the task's exit may bring at once, must find the record made).
pub fn install_fd_unanswered(to: &Delivery<'_>, fd: OwnedFd, open_flags: i32) -> Response {
    let cloexec = open_flags & libc::O_CLOEXEC != 0;
    // Our copy is closed before the answer, so an exec of the file cannot meet it (ETXTBSY).
    let installed = to.listener.add_fd(to.id, fd.as_raw_fd(), cloexec, false);
    drop(fd);
    match installed {
        Ok(number) => Response::Value(number.into()),
        Err(e) => Response::failed(&e),
    }
}

/// Install `fd` in the task and answer with its number there, in one step
/// (`SECCOMP_ADDFD_FLAG_SEND`). The task runs on before our copy is closed; for a writable file
/// that copy would make an exec of the file fail with ETXTBSY (`cp /bin/rm ./x && ./x`), so it
/// is installed and closed under `installing_writable`, which an exec waits for. (Installing
/// first and answering after the close costs two more task switches per write-open.)
pub fn install_fd(to: &Delivery<'_>, fd: OwnedFd, open_flags: i32) -> Option<Response> {
    let cloexec = open_flags & libc::O_CLOEXEC != 0;
    let writable = open_flags & libc::O_ACCMODE != libc::O_RDONLY;
    let guard = writable.then(|| to.installing_writable.read());
    let installed = to.listener.add_fd(to.id, fd.as_raw_fd(), cloexec, true);
    drop(fd);
    drop(guard);
    match installed {
        Ok(_) => None,
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => None,
        Err(e) => Some(Response::failed(&e)),
    }
}
