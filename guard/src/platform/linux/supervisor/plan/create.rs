//! Planning the calls that make a new name: mkdir, mknod and symlink (and their `*at` forms).
//! The new name is what is judged (`Action::Create`); the call is performed here, in the
//! resolved parent, with the task's umask.
//!
//! It must never resolve the new name's final component (it does not exist yet, or the call
//! fails with EEXIST on it, symlink or not).

use std::io;

use super::planner::{Plan, Planner};
use crate::engine::{Action, NodeKind};
use crate::platform::linux::supervisor::call::{Base, UserPtr};
use crate::platform::linux::supervisor::emulate::{parent_and_name, Emulation};
use crate::platform::linux::supervisor::resolve;
use crate::platform::linux::sys::fs;

/// mkdir, mkdirat. A trailing slash is kept (`mkdir a/` is valid).
pub fn mkdir(p: &Planner<'_>, dir: Base, path: UserPtr, mode: u32) -> io::Result<Plan> {
    let raw = p.read_path(path)?;
    let (_, trailing) = resolve::last_component(&raw);
    let path = p.resolve(dir, &raw, false)?;
    let (parent, name) = parent_and_name(&path, trailing)?;
    Ok(Plan::Emulate(
        vec![Action::Create {
            path,
            kind: NodeKind::Directory,
        }],
        Emulation::Mkdir {
            parent,
            name,
            mode,
            tid: p.tid,
        },
    ))
}

/// mknod, mknodat.
pub fn mknod(p: &Planner<'_>, dir: Base, path: UserPtr, mode: u32, dev: u64) -> io::Result<Plan> {
    let raw = p.read_path(path)?;
    let path = p.resolve(dir, &raw, false)?;
    let (parent, name) = parent_and_name(&path, false)?;
    let kind = match mode & libc::S_IFMT {
        // A device node reaches hardware below every file system (a disk read or written
        // around every zone): refused whatever the verdict, with a record.
        libc::S_IFCHR | libc::S_IFBLK => {
            return Ok(Plan::Refuse(Action::Device { path, make: true }))
        }
        libc::S_IFIFO | libc::S_IFSOCK => NodeKind::Special,
        _ => NodeKind::File,
    };
    Ok(Plan::Emulate(
        vec![Action::Create { path, kind }],
        Emulation::Mknod {
            parent,
            name,
            mode,
            dev,
            tid: p.tid,
        },
    ))
}

/// symlink(target, link): the new link is what is created; its target text is stored as read.
pub fn symlink(p: &Planner<'_>, target: UserPtr, dir: Base, link: UserPtr) -> io::Result<Plan> {
    let target = p.read_path(target)?;
    let raw = p.read_path(link)?;
    let (_, trailing) = resolve::last_component(&raw);
    let path = p.resolve(dir, &raw, false)?;
    let (parent, name) = parent_and_name(&path, trailing)?;
    Ok(Plan::Emulate(
        vec![Action::Create {
            path,
            kind: NodeKind::Symlink,
        }],
        Emulation::Symlink {
            target: fs::c_path(&target)?,
            parent,
            name,
        },
    ))
}
