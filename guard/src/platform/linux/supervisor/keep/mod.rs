//! Carrying out a keep verdict (docs/snapshots.md): the supervisor keeps what a call destroys in
//! the session's store directory, then performs the call, in one emulation.
//!
//! How, by what the engine asked and what is there:
//! - a name that goes away (unlink) is *moved* into the store: `renameat2(RENAME_NOREPLACE)`
//!   instead of `unlinkat`, no copy, and the task sees the unlink's success;
//! - a name that is replaced (a rename over it) or left (a file renamed within its zone, unless
//!   the session made the name itself) is *hard-linked* into the store first, so the rename stays
//!   one atomic call;
//! - content that changes in place or leaves the zone (truncate, `O_TRUNC`, a first write-open,
//!   a rename or link out) is *cloned* (`FICLONE`, btrfs and xfs) or *copied* up to the policy's
//!   copy limit;
//! - a file with other hard links, or on another file system than the store, is copied too: the
//!   other names would let the agent change what was kept;
//! - a removed directory is recorded (its mode); a directory tree moved out is copied whole up to
//!   the tree limit.
//!
//! The store operations run with the supervisor's rights, and only after the call itself was
//! shown to be within the task's: the file opened as the task asked, or the store operation is
//! the task's own call with another destination (a move into the store needs exactly the rights
//! an unlink needs). The task never sees the store: its entries are not reachable from the
//! agent's view (`secret_view`), and the engine refuses every path into it.
//!
//! When something cannot be kept, nothing is done: what was stored for the call is removed and
//! the outcome says why (the handler answers EPERM with the reason). This must never perform a
//! destructive call whose keep failed.

mod files;
mod open;
mod ways;

use files::{
    copy_tree, file_key, is_dir, is_regular, is_symlink, kind_of, mtime_ns, path_of, recorded,
};

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, OnceLock};

use super::emulate::{open_dir_nofollow, parent_and_name, Emulation, Emulator};
use crate::engine::{EntryKind, Keep, KeepFailure, KeepOutcome, KeepWhat, KeptEntry, KeptHow};
use crate::platform::linux::sys::copy::{copy_bytes, ficlone, fstat, fstatat, openat_mode};
use crate::platform::linux::sys::fs;
use crate::platform::linux::sys::notify::Response;
use crate::snapshots::session::{ContentKept, FileKey};
use crate::snapshots::tree::tree_bytes;
use crate::snapshots::Session;

/// The supervisor's side of one session's store.
pub struct Keeper {
    pub session: Arc<Session>,
    /// The session's directory, opened once (it never moves: agents may not touch the store),
    /// and its device.
    dir: OnceLock<(OwnedFd, u64)>,
    /// Whether `FICLONE` works on the store's file system: 0 unknown, 1 yes, 2 no.
    reflink: AtomicU8,
}

/// A kept entry made for the call so far, removed again if the call does not happen.
struct Made {
    entry: KeptEntry,
    name: Option<String>,
    reserved: u64,
}

impl Keeper {
    pub fn new(session: Arc<Session>) -> Keeper {
        Keeper {
            session,
            dir: OnceLock::new(),
            reflink: AtomicU8::new(0),
        }
    }

    /// The session's directory, made on first use.
    fn store(&self) -> Result<(BorrowedFd<'_>, u64), KeepFailure> {
        if self.dir.get().is_none() {
            let io = |e: io::Error| KeepFailure::Io(format!("{}: {e}", self.session.dir.display()));
            let dir = self.session.ensure_dir().map_err(io)?;
            let fd = open_dir_nofollow(dir).map_err(io)?;
            let dev = fstat(fd.as_fd()).map_err(io)?.st_dev;
            let _ = self.dir.set((fd, dev));
        }
        let (fd, dev) = self.dir.get().expect("set above");
        Ok((fd.as_fd(), *dev))
    }

    /// Keep what `keeps` ask for and perform `emulation`: the answer, and one outcome per keep.
    pub fn run(
        &self,
        emulator: &Emulator<'_>,
        emulation: Emulation,
        keeps: &[&Keep],
    ) -> (Option<Response>, Vec<KeepOutcome>) {
        match emulation {
            Emulation::Unlink {
                parent,
                name,
                flags,
            } => self.unlink(&parent, &name, flags, keeps),
            Emulation::Open {
                path,
                flags,
                mode,
                umask_of,
            } => self.open(emulator, path, flags, mode, umask_of, keeps),
            Emulation::Truncate { path, length } => self.truncate(&path, length, keeps),
            other => self.before(emulator, other, keeps),
        }
    }

    /// unlink and rmdir: the entry moved into the store (or recorded, for a directory).
    fn unlink(
        &self,
        parent: &Path,
        name: &CStr,
        flags: i32,
        keeps: &[&Keep],
    ) -> (Option<Response>, Vec<KeepOutcome>) {
        let nothing = || vec![KeepOutcome::Kept(Vec::new()); keeps.len()];
        let path = path_of(parent, name);
        let dir = match open_dir_nofollow(parent) {
            Ok(d) => d,
            Err(e) => return (Some(Response::failed(&e)), nothing()),
        };
        let st = match fstatat(dir.as_fd(), name, libc::AT_SYMLINK_NOFOLLOW) {
            Ok(st) => st,
            Err(e) => return (Some(Response::failed(&e)), nothing()),
        };
        if flags & libc::AT_REMOVEDIR != 0 || is_dir(&st) {
            // Nothing to store: the kernel refuses to unlink a directory, and rmdir removes only
            // an empty one, whose name and mode are recorded.
            return match fs::unlinkat(dir.as_fd(), name, flags) {
                Err(e) => (Some(Response::failed(&e)), nothing()),
                Ok(()) => {
                    let (seq, _, _) = self.session.next_entry(&path);
                    let entry = recorded(path, &st, seq);
                    (Some(Response::Value(0)), outcome_for(keeps, vec![entry]))
                }
            };
        }
        let made = match self.keep_entry(dir.as_fd(), name, &path, &st, Move::Rename) {
            Ok(made) => made,
            Err(Refused::Errno(e)) => return (Some(Response::failed(&e)), nothing()),
            Err(Refused::Keep(failure)) => return self.failed(keeps, path, failure),
        };
        if made.entry.how != KeptHow::Moved {
            // Copied (another name, another file system): now the unlink itself.
            if let Err(e) = fs::unlinkat(dir.as_fd(), name, 0) {
                self.undo(vec![made]);
                return (Some(Response::failed(&e)), nothing());
            }
        }
        (
            Some(Response::Value(0)),
            outcome_for(keeps, vec![made.entry]),
        )
    }

    /// Rename and link: keep first, then perform the call; on its failure, unkeep.
    fn before(
        &self,
        emulator: &Emulator<'_>,
        emulation: Emulation,
        keeps: &[&Keep],
    ) -> (Option<Response>, Vec<KeepOutcome>) {
        let exchange = matches!(&emulation, Emulation::Rename { flags, .. }
            if flags & libc::RENAME_EXCHANGE != 0);
        let mut per_keep: Vec<Vec<Made>> = Vec::new();
        for keep in keeps {
            let mut made = Vec::new();
            for item in &keep.items {
                match self.keep_item(&emulation, &item.path, item.what, exchange) {
                    Ok(Some(m)) => made.push(m),
                    Ok(None) => {}
                    Err(refused) => {
                        self.undo(made);
                        per_keep.into_iter().for_each(|m| self.undo(m));
                        return match refused {
                            Refused::Errno(e) => (
                                Some(Response::failed(&e)),
                                vec![KeepOutcome::Kept(Vec::new()); keeps.len()],
                            ),
                            Refused::Keep(failure) => {
                                self.failed(keeps, item.path.clone(), failure)
                            }
                        };
                    }
                }
            }
            per_keep.push(made);
        }
        let response = emulator.run(emulation);
        let performed = matches!(response, Some(Response::Value(_)));
        if !performed {
            per_keep.into_iter().for_each(|m| self.undo(m));
            return (response, vec![KeepOutcome::Kept(Vec::new()); keeps.len()]);
        }
        let outcomes = per_keep
            .into_iter()
            .map(|made| KeepOutcome::Kept(made.into_iter().map(|m| m.entry).collect()))
            .collect();
        (response, outcomes)
    }

    /// Keep one item of a rename or link.
    fn keep_item(
        &self,
        emulation: &Emulation,
        path: &Path,
        what: KeepWhat,
        exchange: bool,
    ) -> Result<Option<Made>, Refused> {
        // A name the session made itself (an editor's temporary file) holds nothing of the
        // human's; an exchange keeps both sides' content already.
        if what == KeepWhat::Renamed && (exchange || self.session.new_names.is_new(path)) {
            return Ok(None);
        }
        // The item's directory and name as the call names them (a rename's either side).
        let (parent, name): (PathBuf, std::ffi::CString) = match emulation {
            Emulation::Rename {
                from_parent,
                from_name,
                to_parent,
                to_name,
                ..
            } => {
                if path_of(from_parent, from_name) == path {
                    (from_parent.clone(), from_name.clone())
                } else if path_of(to_parent, to_name) == path {
                    (to_parent.clone(), to_name.clone())
                } else {
                    let (p, n) = parent_and_name(path, false).map_err(Refused::Errno)?;
                    (p, n)
                }
            }
            Emulation::LinkObject { object, .. } => {
                // AT_EMPTY_PATH: the object the task's fd held when judged (our copy of it).
                let st = fstat(object.as_fd()).map_err(Refused::Errno)?;
                return self
                    .keep_content(Source::File(object.as_fd()), &st, path)
                    .map(Some)
                    .map_err(Refused::Keep);
            }
            _ => parent_and_name(path, false).map_err(Refused::Errno)?,
        };
        let dir = open_dir_nofollow(&parent).map_err(Refused::Errno)?;
        let st = match fstatat(dir.as_fd(), &name, libc::AT_SYMLINK_NOFOLLOW) {
            Ok(st) => st,
            // Gone already: nothing to keep, and the call will say so.
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(None),
            Err(e) => return Err(Refused::Errno(e)),
        };
        if is_dir(&st) {
            return match what {
                // A directory replaced by a rename is empty: record it.
                KeepWhat::Entry | KeepWhat::Dir => {
                    let (seq, _, _) = self.session.next_entry(path);
                    Ok(Some(Made {
                        entry: recorded(path.to_path_buf(), &st, seq),
                        name: None,
                        reserved: 0,
                    }))
                }
                // A directory keeps its contents' names below it.
                KeepWhat::Renamed => Ok(None),
                _ => self.keep_tree(path, &st).map(Some).map_err(Refused::Keep),
            };
        }
        match what {
            // An exchange moves the kept inode to the other name: only a copy stays as it was.
            KeepWhat::Entry | KeepWhat::Renamed if !exchange => self
                .keep_entry(dir.as_fd(), &name, path, &st, Move::Link)
                .map(Some),
            _ => {
                let source = if is_symlink(&st) {
                    Source::Symlink(dir.as_fd(), &name)
                } else if is_regular(&st) {
                    let file = fs::openat(
                        dir.as_fd(),
                        &name,
                        libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC,
                    )
                    .map_err(|e| Refused::Keep(KeepFailure::Io(format!("cannot read it: {e}"))))?;
                    return self
                        .keep_content(Source::File(file.as_fd()), &st, path)
                        .map(Some)
                        .map_err(Refused::Keep);
                } else {
                    Source::Special
                };
                self.keep_content(source, &st, path)
                    .map(Some)
                    .map_err(Refused::Keep)
            }
        }
    }

    /// Refused: every keep's outcome, the failing one with why.
    fn failed(
        &self,
        keeps: &[&Keep],
        path: PathBuf,
        failure: KeepFailure,
    ) -> (Option<Response>, Vec<KeepOutcome>) {
        let mut outcomes = vec![KeepOutcome::Kept(Vec::new()); keeps.len()];
        if let Some(first) = outcomes.first_mut() {
            *first = KeepOutcome::Failed { path, failure };
        }
        (Some(Response::Error(libc::EPERM)), outcomes)
    }

    /// Remove what was stored for a call that did not happen.
    fn undo(&self, made: Vec<Made>) {
        for m in made {
            self.session.budget.release(m.reserved);
            if let (KeptHow::Linked, Some(name)) = (m.entry.how, &m.name) {
                if let Ok(st) = std::fs::symlink_metadata(self.session.dir.join(name)) {
                    self.session.note_store_link(st.dev(), st.ino(), false);
                }
            }
            if let Some(name) = m.name {
                let _ = crate::snapshots::purge::remove_session_entry(&self.session.dir, &name);
            }
        }
    }
}

/// How a name is kept without a copy.
#[derive(Clone, Copy)]
enum Move {
    /// The call is an unlink: the entry itself moves into the store.
    Rename,
    /// The call replaces the name: a second name in the store first.
    Link,
}

/// Where bytes are kept from.
enum Source<'a> {
    File(BorrowedFd<'a>),
    Symlink(BorrowedFd<'a>, &'a CStr),
    /// A FIFO, socket or device: nothing to copy.
    Special,
}

/// Why an item could not be kept: the call's own error (it would have failed anyway), or a
/// failure to keep (the call is refused).
enum Refused {
    Errno(io::Error),
    Keep(KeepFailure),
}

/// The same entries for every keep (the calls with one keep), or spread by path.
fn outcome_for(keeps: &[&Keep], entries: Vec<KeptEntry>) -> Vec<KeepOutcome> {
    let mut outcomes: Vec<Vec<KeptEntry>> = vec![Vec::new(); keeps.len()];
    for entry in entries {
        let owner = keeps
            .iter()
            .position(|k| k.items.iter().any(|i| i.path == entry.path))
            .unwrap_or(0);
        if let Some(slot) = outcomes.get_mut(owner) {
            slot.push(entry);
        }
    }
    outcomes.into_iter().map(KeepOutcome::Kept).collect()
}
