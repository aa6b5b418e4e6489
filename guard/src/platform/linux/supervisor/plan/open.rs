//! Planning open, creat, openat and openat2: resolve the path as the kernel would (openat2's
//! `RESOLVE_BENEATH` and `RESOLVE_IN_ROOT` included), judge an open of it, and of the secret file
//! it is a hard link to; then open it here and install the fd, so the task gets the very file
//! that was judged.
//!
//! It must never let an open of another process's /proc entry through (the supervisor's own: its
//! memory, its fds, the listener among them; or any outside the agent's tree) beyond what `ps`
//! reads of any process (see `proc`).

use std::io;
use std::path::Path;

use super::planner::{Plan, Planner};
use super::proc;
use crate::engine::{Action, OpenFlags};
use crate::platform::linux::supervisor::call::{Base, UserPtr};
use crate::platform::linux::supervisor::emulate::Emulation;
use crate::platform::linux::supervisor::resolve;
use crate::platform::linux::sys::notify::Response;
use crate::platform::linux::sys::openat2::{OpenHow, Resolve};

/// open, creat, openat (the flags and mode are in the registers).
pub fn open(p: &Planner<'_>, dir: Base, path: UserPtr, flags: i32, mode: u32) -> io::Result<Plan> {
    plan(p, dir, path, flags, mode, Resolve::NONE)
}

/// openat2: the flags, mode and resolve flags are read from the task's `open_how`.
pub fn openat2(p: &Planner<'_>, dir: Base, path: UserPtr, how: UserPtr) -> io::Result<Plan> {
    let mut bytes = [0u8; OpenHow::SIZE];
    p.tasks.read_exact(p.tid, how, &mut bytes)?;
    let how = OpenHow::from_bytes(&bytes);
    plan(p, dir, path, how.flags as i32, how.mode as u32, how.resolve)
}

fn plan(
    p: &Planner<'_>,
    dir: Base,
    path: UserPtr,
    flags: i32,
    mode: u32,
    resolve_flags: Resolve,
) -> io::Result<Plan> {
    use libc::*;
    let raw = p.read_path(path)?;
    let creates_exclusively = flags & O_CREAT != 0 && flags & O_EXCL != 0;
    let follow_final = flags & O_NOFOLLOW == 0 && !creates_exclusively;
    let path = resolve::resolve(
        p.asker(),
        dir,
        &raw,
        follow_final,
        resolve_flags.contains(Resolve::IN_ROOT),
    )?;
    if resolve_flags.contains(Resolve::BENEATH) {
        let base = resolve::base_dir(p.asker(), dir)?;
        if !path.starts_with(&base) {
            return Err(io::Error::from_raw_os_error(EXDEV));
        }
    }
    let creates = flags & O_CREAT != 0 || flags & O_TMPFILE == O_TMPFILE;
    let open_flags = OpenFlags {
        write: flags & O_ACCMODE != O_RDONLY,
        truncate: flags & O_TRUNC != 0,
        create: creates,
    };
    if let Some(refused) = proc::check(p, &path, open_flags.modifies()) {
        return Ok(refused);
    }
    if flags & O_PATH == 0 && is_block_device(&path) {
        // A disk read or written directly goes around every file and zone (a root agent read a
        // secret and unlinked a file with debugfs). The emulated open checks the file it got
        // as well (see `emulate::fd`), so a node swapped in after this look gains nothing.
        return Ok(Plan::Refuse(Action::Device { path, make: false }));
    }
    let mut actions = vec![Action::Open {
        path: path.clone(),
        flags: open_flags,
    }];
    if let Some(secret) = p.secrets.alias_of(&path) {
        actions.push(Action::Open {
            path: secret.clone(),
            flags: open_flags,
        });
    }
    if path == Path::new("/dev/tty") {
        // The supervisor has no controlling terminal: /dev/tty means the task's.
        let Some(tty) = p.tasks.controlling_tty(p.tid) else {
            return Ok(Plan::Answer(Response::Error(ENXIO)));
        };
        return Ok(Plan::Emulate(
            actions,
            Emulation::Open {
                path: tty,
                flags,
                mode: 0,
                umask_of: None,
            },
        ));
    }
    if flags & O_PATH != 0 {
        // NOTIF_ADDFD cannot install an O_PATH file (the kernel's fget() skips them). An O_PATH
        // fd reads and writes nothing; reopening it through /proc/self/fd is an open of its
        // own, judged by path again.
        return Ok(Plan::Check(actions));
    }
    Ok(Plan::Emulate(
        actions,
        Emulation::Open {
            path,
            flags,
            mode,
            umask_of: creates.then_some(p.tid),
        },
    ))
}

/// Whether `path` (resolved) is a block device now.
fn is_block_device(path: &Path) -> bool {
    use std::os::unix::fs::FileTypeExt;
    std::fs::metadata(path).is_ok_and(|m| m.file_type().is_block_device())
}
