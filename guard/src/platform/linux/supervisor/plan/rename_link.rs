//! Planning the two-name calls: rename, renameat, renameat2 and link, linkat. A rename is
//! judged as a move of the source to the destination (with what the destination holds), an
//! exchange as two moves; a link as a new name for the source, and as a read of the secret file
//! the source is another name of. Both are performed here on the resolved names.
//!
//! It must never judge a name other than the one acted on: `AT_EMPTY_PATH` links the file the
//! fd holds, which is judged by the path that fd points at.

use std::io;
use std::path::Path;

use super::planner::{is_dot_or_dotdot, Plan, Planner};
use crate::engine::{Action, NodeKind, OpenFlags};
use crate::platform::linux::supervisor::call::{Base, UserPtr};
use crate::platform::linux::supervisor::emulate::{parent_and_name, Emulation};
use crate::platform::linux::supervisor::resolve;
use crate::platform::linux::supervisor::task;
use crate::platform::linux::sys::notify::Response;

/// rename, renameat, renameat2 (`RENAME_NOREPLACE`, `RENAME_EXCHANGE`, ...).
pub fn rename(
    p: &Planner<'_>,
    (from_dir, from): (Base, UserPtr),
    (to_dir, to): (Base, UserPtr),
    flags: u32,
) -> io::Result<Plan> {
    let old_raw = p.read_path(from)?;
    let new_raw = p.read_path(to)?;
    let (old_last, old_trailing) = resolve::last_component(&old_raw);
    let (new_last, new_trailing) = resolve::last_component(&new_raw);
    if is_dot_or_dotdot(old_last) || is_dot_or_dotdot(new_last) {
        return Ok(Plan::Answer(Response::Error(libc::EBUSY)));
    }
    let from = p.resolve(from_dir, &old_raw, false)?;
    let to = p.resolve(to_dir, &new_raw, false)?;
    let source = std::fs::symlink_metadata(&from);
    if let Err(e) = &source {
        // A source that is not there: the kernel's answer, before judging (not in a secret zone
        // or the hidden store, where it would tell what `stat` does not).
        if !p.secrets.covers(&from) {
            return Ok(Plan::Answer(Response::Error(
                e.raw_os_error().unwrap_or(libc::ENOENT),
            )));
        }
    }
    let source_is_dir = source.map(|m| m.is_dir()).unwrap_or(false);
    let dest = std::fs::symlink_metadata(&to).ok();
    let mut actions = vec![Action::Rename {
        from: from.clone(),
        to: to.clone(),
        dest_exists: dest.is_some(),
        source_is_dir,
    }];
    if source_is_dir {
        actions.extend(moved_tree_creates(p, &from, &to));
    }
    actions.extend(config_commands_added(&from, &to));
    if flags & libc::RENAME_EXCHANGE != 0 {
        actions.extend(config_commands_added(&to, &from));
        // An exchange is two moves: the destination's entry moves to the source too.
        let dest_is_dir = dest.as_ref().is_some_and(|m| m.is_dir());
        actions.push(Action::Rename {
            from: to.clone(),
            to: from.clone(),
            dest_exists: true,
            source_is_dir: dest_is_dir,
        });
        if dest_is_dir {
            actions.extend(moved_tree_creates(p, &to, &from));
        }
    }
    let (from_parent, from_name) = parent_and_name(&from, old_trailing)?;
    let (to_parent, to_name) = parent_and_name(&to, new_trailing)?;
    // Judged as a move onto nothing: performed so that it cannot replace what appears there
    // meanwhile (a second thread's rename), which was neither judged nor kept.
    let noreplace_added =
        dest.is_none() && flags & (libc::RENAME_EXCHANGE | libc::RENAME_NOREPLACE) == 0;
    Ok(Plan::Emulate(
        actions,
        Emulation::Rename {
            from_parent,
            from_name,
            to_parent,
            to_name,
            flags: if noreplace_added {
                flags | libc::RENAME_NOREPLACE
            } else {
                flags
            },
            noreplace_added,
        },
    ))
}

/// Largest repository config read for the check below; a larger one is refused unread.
const CONFIG_LIMIT: u64 = 1 << 20;

/// A rename over a repository's config (git's config.lock, or anything else put there) whose new
/// content adds a key that makes git run a command: the write of the config it amounts to, which
/// the judge refuses for agents (see `engine::decide`, rule 6). Content that cannot be read as
/// git reads it counts as adding one. Only git may write in `.git` (the default policy), and the
/// git process that renames is inside this call, so the bytes read are the bytes renamed.
fn config_commands_added(from: &Path, to: &Path) -> Option<Action> {
    if !crate::git::config::is_repository_config(to) {
        return None;
    }
    let read = |path: &Path| -> io::Result<Vec<u8>> {
        use std::io::Read;
        use std::os::unix::fs::OpenOptionsExt;
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(path)?;
        if !file.metadata()?.is_file() {
            return Err(io::Error::from_raw_os_error(libc::EINVAL));
        }
        let mut bytes = Vec::new();
        file.take(CONFIG_LIMIT + 1).read_to_end(&mut bytes)?;
        if bytes.len() as u64 > CONFIG_LIMIT {
            return Err(io::Error::from_raw_os_error(libc::EFBIG));
        }
        Ok(bytes)
    };
    let old = match read(to) {
        Ok(bytes) => bytes,
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Vec::new(),
        Err(_) => return Some(config_write(to)),
    };
    let adds = match read(from) {
        Ok(new) => {
            !matches!(crate::git::config::commands_added(&old, &new), Ok(added) if added.is_empty())
        }
        Err(_) => true,
    };
    adds.then(|| config_write(to))
}

fn config_write(path: &Path) -> Action {
    Action::Open {
        path: path.to_path_buf(),
        flags: OpenFlags {
            write: true,
            truncate: true,
            create: true,
        },
    }
}

/// Most entries of one moved tree looked at: more means one create that stands for the rest.
const MOVED_TREE_LIMIT: usize = 512;

/// The creates a directory moved from `from` to `to` makes without a call of its own, where the
/// judge asks to look (see `Judge::moved_tree_probes`): each entry found under `from/PROBE`
/// becomes a create of `to/PROBE/...`. Symlinks are not followed. Past the limit one create of
/// `to/PROBE/...` stands for the rest, which the judge sees as covered too.
fn moved_tree_creates(p: &Planner<'_>, from: &Path, to: &Path) -> Vec<Action> {
    let mut creates = Vec::new();
    for probe in (p.moved_tree_probes)(to) {
        let mut stack = vec![probe];
        while let Some(rel) = stack.pop() {
            let Ok(meta) = std::fs::symlink_metadata(from.join(&rel)) else {
                continue;
            };
            if creates.len() >= MOVED_TREE_LIMIT {
                creates.push(Action::Create {
                    path: to.join(&rel).join("..."),
                    kind: NodeKind::File,
                });
                return creates;
            }
            // A repository's config that moves with its repository brings no new key: it was
            // written through the checked rename (or by the human), wherever it lies.
            let moved_config = crate::git::config::is_repository_config(&to.join(&rel));
            if !rel.as_os_str().is_empty() && !moved_config {
                let kind = if meta.is_dir() {
                    NodeKind::Directory
                } else if meta.is_symlink() {
                    NodeKind::Symlink
                } else {
                    NodeKind::File
                };
                creates.push(Action::Create {
                    path: to.join(&rel),
                    kind,
                });
            }
            if meta.is_dir() {
                if let Ok(entries) = std::fs::read_dir(from.join(&rel)) {
                    stack.extend(entries.flatten().map(|e| rel.join(e.file_name())));
                }
            }
        }
    }
    creates
}

/// link, linkat (`AT_SYMLINK_FOLLOW`; `AT_EMPTY_PATH` with an empty source path links the file
/// the source fd holds).
pub fn link(
    p: &Planner<'_>,
    (from_dir, from): (Base, UserPtr),
    (to_dir, to): (Base, UserPtr),
    flags: i32,
) -> io::Result<Plan> {
    let old_raw = p.read_path(from)?;
    let new_raw = p.read_path(to)?;
    let (new_last, new_trailing) = resolve::last_component(&new_raw);
    if is_dot_or_dotdot(new_last) {
        return Ok(Plan::Answer(Response::Error(libc::EEXIST)));
    }
    let to = p.resolve(to_dir, &new_raw, false)?;
    let (to_parent, to_name) = parent_and_name(&to, new_trailing)?;
    if old_raw.is_empty() && flags & libc::AT_EMPTY_PATH != 0 {
        return link_fd(p, from_dir.raw_fd(), to, to_parent, to_name);
    }
    let follow = flags & libc::AT_SYMLINK_FOLLOW != 0;
    let (from, magic) = p.resolve_traced(from_dir, &old_raw, follow)?;
    if let Some(fd) = magic.and_then(|link| own_fd_link(p, &link, &old_raw)) {
        // `/proc/self/fd/N` followed (open(2)'s way to name an O_TMPFILE): the fd's object,
        // as for AT_EMPTY_PATH; its name may be no path at all (`/tmp/#12 (deleted)`).
        return link_fd(p, fd, to, to_parent, to_name);
    }
    let (from_parent, from_name) = parent_and_name(&from, false)?;
    let mut actions = vec![Action::Link {
        from: from.clone(),
        to,
    }];
    actions.extend(secret_alias(p, &from));
    Ok(Plan::Emulate(
        actions,
        Emulation::Link {
            from_parent,
            from_name,
            to_parent,
            to_name,
            flags: 0,
        },
    ))
}

/// A new name for a secret file (a hard link to it) is a read of the secret: judged as one.
fn secret_alias(p: &Planner<'_>, from: &Path) -> Option<Action> {
    p.secrets.alias_of(from).map(|secret| Action::Open {
        path: secret.clone(),
        flags: OpenFlags::READ,
    })
}

/// The kernel's name of a file we hold (`/proc/self/fd/N`).
fn fd_name(file: &std::os::fd::OwnedFd) -> io::Result<Vec<u8>> {
    use std::os::fd::AsRawFd;
    use std::os::unix::ffi::OsStringExt;
    std::fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd()))
        .map(|p| p.into_os_string().into_vec())
}

/// Link the object in the task's fd `fd`: taken once, judged by its name, linked itself.
fn link_fd(
    p: &Planner<'_>,
    fd: i32,
    to: std::path::PathBuf,
    to_parent: std::path::PathBuf,
    to_name: std::ffi::CString,
) -> io::Result<Plan> {
    let (object, _) = p.tasks.copy_fd(p.tid, fd)?;
    let from = task::bytes_to_path(fd_name(&object)?);
    let mut actions = vec![Action::Link {
        from: from.clone(),
        to,
    }];
    actions.extend(secret_alias(p, &from));
    Ok(Plan::Emulate(
        actions,
        Emulation::LinkObject {
            object,
            task: p.tid,
            to_parent,
            to_name,
        },
    ))
}

/// The fd number when `link`, the last magic link a resolution of `raw` followed, is the
/// calling task's own `/proc/PID/fd/N` (or `task/TID/fd/N`) and the path ended there.
fn own_fd_link(p: &Planner<'_>, link: &Path, raw: &[u8]) -> Option<i32> {
    let parts: Vec<&str> = link.iter().filter_map(|c| c.to_str()).collect();
    let (pid, fd) = match parts.as_slice() {
        ["/", "proc", pid, "fd", fd] | ["/", "proc", _, "task", pid, "fd", fd] => (*pid, *fd),
        _ => return None,
    };
    let pid: i32 = pid.parse().ok()?;
    let own = pid == p.tid || Some(pid) == p.tasks.tgid(p.tid);
    let (last, trailing) = resolve::last_component(raw);
    (own && !trailing && last == fd.as_bytes())
        .then(|| fd.parse().ok())
        .flatten()
}
