//! Planning the calls that destroy what a name holds: unlink, rmdir, unlinkat, and truncate.
//! Each is judged on the resolved path and then performed here on that path (see `emulate`),
//! never left to the kernel, which would read the path again.
//!
//! It must never resolve the final component of a removal (unlink removes a symlink, not what it
//! points to), and must answer `.` and `..` as the kernel does without judging them.

use std::io;

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
