//! Planning the calls that destroy what a name holds: unlink, rmdir, unlinkat, and truncate.
//! Each is judged on the resolved path and then performed here on that path (see `emulate`),
//! never left to the kernel, which would read the path again.
//!
//! A removal of what is not there, or of a directory that is not empty, is answered with the
//! kernel's own errno before anything is judged (`rm -f missing.o` must succeed under the
//! guard as without it): the engine judges only what exists. Not inside a secret zone or the
//! guard's hidden store, where the errno would tell the agent what it may not see.
//!
//! It must never resolve the final component of a removal (unlink removes a symlink, not what it
//! points to), and must answer `.` and `..` as the kernel does without judging them.

use std::io;
use std::path::Path;

use super::planner::{is_dot_or_dotdot, Plan, Planner};
use crate::engine::Action;
use crate::platform::linux::supervisor::call::{Base, UserPtr};
use crate::platform::linux::supervisor::emulate::{parent_and_name, Emulation};
use crate::platform::linux::supervisor::resolve;
use crate::platform::linux::sys::notify::Response;

/// unlink, rmdir, unlinkat.
pub fn unlink(p: &Planner<'_>, dir: Base, path: UserPtr, remove_dir: bool) -> io::Result<Plan> {
    let raw = p.read_path(path)?;
    let (last, trailing) = resolve::last_component(&raw);
    if is_dot_or_dotdot(last) {
        // What the kernel answers, before it looks at anything.
        let errno = match (remove_dir, last) {
            (false, _) => libc::EISDIR,
            (true, b".") => libc::EINVAL,
            (true, _) => libc::ENOTEMPTY,
        };
        return Ok(Plan::Answer(Response::Error(errno)));
    }
    let path = p.resolve(dir, &raw, false)?;
    if let Some(errno) = kernel_answer(p, &path, remove_dir, trailing) {
        return Ok(Plan::Answer(Response::Error(errno)));
    }
    let (parent, name) = parent_and_name(&path, trailing)?;
    let action = if remove_dir {
        Action::Rmdir { path }
    } else {
        Action::Unlink { path }
    };
    Ok(Plan::Emulate(
        vec![action],
        Emulation::Unlink {
            parent,
            name,
            flags: if remove_dir { libc::AT_REMOVEDIR } else { 0 },
        },
    ))
}

/// The errno the kernel would answer a removal of `path` without looking at its rights: not
/// there, not a directory (rmdir, or a trailing slash), a directory (unlink), a directory with
/// entries (rmdir). `None`: it is there to be judged.
fn kernel_answer(p: &Planner<'_>, path: &Path, remove_dir: bool, trailing: bool) -> Option<i32> {
    if p.secrets.covers(path) {
        return None;
    }
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) => return e.raw_os_error(),
    };
    match (remove_dir || trailing, meta.is_dir()) {
        (true, false) => Some(libc::ENOTDIR),
        (false, true) => Some(libc::EISDIR),
        (true, true) if remove_dir => {
            let mut entries = std::fs::read_dir(path).ok()?;
            entries.next().is_some().then_some(libc::ENOTEMPTY)
        }
        _ => None,
    }
}

/// truncate(path, length): the final symlink is followed, as the kernel does.
pub fn truncate(p: &Planner<'_>, path: UserPtr, length: i64) -> io::Result<Plan> {
    let raw = p.read_path(path)?;
    let path = p.resolve(Base::Cwd, &raw, true)?;
    let action = Action::Truncate { path: path.clone() };
    if path.starts_with("/proc") {
        // A magic link cannot be reopened without following symlinks.
        return Ok(Plan::Check(vec![action]));
    }
    Ok(Plan::Emulate(
        vec![action],
        Emulation::Truncate { path, length },
    ))
}
