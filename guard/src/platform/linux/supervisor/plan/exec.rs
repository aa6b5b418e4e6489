//! Planning execve and execveat: judge the program (resolved as the kernel resolves it) with its
//! arguments, then let the kernel run the exec. An exec cannot be performed for another process,
//! so the program can be swapped between the check and the exec (the documented exec race; see
//! docs/linux.md); a program that does not exist is left to the kernel to refuse.
//!
//! It must never skip the judgment of a program that exists.

use std::io;
use std::os::unix::ffi::OsStrExt;

use super::planner::{Plan, Planner};
use crate::engine::Action;
use crate::platform::linux::supervisor::call::{Base, UserPtr};
use crate::platform::linux::supervisor::task;
use crate::platform::linux::sys::fs;
use crate::platform::linux::sys::notify::Response;

pub fn exec(
    p: &Planner<'_>,
    dir: Base,
    path: UserPtr,
    argv: UserPtr,
    flags: i32,
) -> io::Result<Plan> {
    let raw = p.read_path(path)?;
    // A shell or execvp tries each PATH directory in turn (two in three execs of a build): what
    // does not exist cannot start, and the kernel says so itself. This adds no race beyond the
    // documented exec race (the program can be swapped after we judge it either way), and saves
    // reading argv, the facts and the record. An absolute path outside /proc (whose `self` means
    // the task) names the same file for the task as for us: one stat answers before any
    // resolving.
    let absolute = raw.first() == Some(&b'/') && !raw.starts_with(b"/proc");
    if absolute && missing(&raw) {
        return Ok(Plan::Answer(Response::Continue));
    }
    let path = if raw.is_empty() && flags & libc::AT_EMPTY_PATH != 0 {
        task::bytes_to_path(p.tasks.fd_target(p.tid, dir.raw_fd())?)
    } else {
        p.resolve(dir, &raw, flags & libc::AT_SYMLINK_NOFOLLOW == 0)?
    };
    if !absolute && missing(path.as_os_str().as_bytes()) {
        return Ok(Plan::Answer(Response::Continue));
    }
    let argv = p.tasks.read_argv(p.tid, argv)?;
    Ok(Plan::Check(vec![Action::Exec {
        path,
        argv,
        env: Vec::new(),
    }]))
}

/// Whether nothing exists at `path` (ENOENT, following symlinks), in one stat.
fn missing(path: &[u8]) -> bool {
    let Ok(c) = fs::c_path(path) else {
        return false;
    };
    fs::stat(&c).is_err_and(|e| e.raw_os_error() == Some(libc::ENOENT))
}
