//! Carrying out a keep verdict (docs/snapshots.md): the supervisor keeps what a call destroys in
//! the session's store directory, then performs the call, in one emulation.
//!
//! How, by what the engine asked and what is there:
//! - a name that goes away (unlink) is *moved* into the store: `renameat2(RENAME_NOREPLACE)`
//!   instead of `unlinkat`, no copy, and the task sees the unlink's success;
//! - a name that is replaced (a rename over it) is *hard-linked* into the store first, so the
//!   replace stays one atomic rename;
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

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
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
use crate::snapshots::Session;

/// Entries a directory tree moved out of its zone may hold and still be copied.
const TREE_ENTRIES_LIMIT: usize = 100_000;

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
                _ => self.keep_tree(path, &st).map(Some).map_err(Refused::Keep),
            };
        }
        match what {
            // An exchange moves the kept inode to the other name: only a copy stays as it was.
            KeepWhat::Entry if !exchange => self
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

    /// Keep a name that goes away: moved (an unlink) or hard-linked (a rename over it) into the
    /// store when it is the file's only name and on the store's file system; copied otherwise.
    fn keep_entry(
        &self,
        dir: BorrowedFd<'_>,
        name: &CStr,
        path: &Path,
        st: &libc::stat,
        how: Move,
    ) -> Result<Made, Refused> {
        let (store, store_dev) = self.store().map_err(Refused::Keep)?;
        let shared = is_regular(st) && st.st_nlink > 1;
        if shared || st.st_dev != store_dev {
            let file = if is_regular(st) {
                Some(
                    fs::openat(
                        dir,
                        name,
                        libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC,
                    )
                    .map_err(|e| Refused::Keep(KeepFailure::Io(format!("cannot read it: {e}"))))?,
                )
            } else {
                None
            };
            let source = match &file {
                Some(f) => Source::File(f.as_fd()),
                None if is_symlink(st) => Source::Symlink(dir, name),
                None => Source::Special,
            };
            return match self.keep_content(source, st, path) {
                Ok(made) => Ok(made),
                // One name of several goes: the content stays under the others.
                Err(KeepFailure::TooLarge { .. }) if shared => {
                    let (seq, _, _) = self.session.next_entry(path);
                    let mut entry = recorded(path.to_path_buf(), st, seq);
                    entry.how = KeptHow::NotKept;
                    entry.kind = kind_of(st);
                    Ok(Made {
                        entry,
                        name: None,
                        reserved: 0,
                    })
                }
                Err(failure) => Err(Refused::Keep(failure)),
            };
        }
        let size = if is_regular(st) { st.st_size as u64 } else { 0 };
        self.session.budget.reserve(size).map_err(Refused::Keep)?;
        let (seq, entry_name, relative) = self.session.next_entry(path);
        let c_name = fs::c_path(entry_name.as_bytes()).map_err(Refused::Errno)?;
        let done = match how {
            Move::Rename => fs::renameat2(dir, name, store, &c_name, libc::RENAME_NOREPLACE),
            Move::Link => fs::linkat(Some(dir), name, store, &c_name, 0),
        };
        if let Err(e) = done {
            self.session.budget.release(size);
            return Err(Refused::Errno(e));
        }
        Ok(Made {
            entry: KeptEntry {
                path: path.to_path_buf(),
                how: match how {
                    Move::Rename => KeptHow::Moved,
                    Move::Link => KeptHow::Linked,
                },
                kind: kind_of(st),
                seq,
                store_name: Some(relative),
                size,
                mode: st.st_mode,
                mtime_ns: mtime_ns(st),
            },
            name: Some(entry_name),
            reserved: size,
        })
    }

    /// Keep a file's bytes: a clone where the file system has it, else a copy up to the limit;
    /// a symlink's text; a special file's name and mode.
    fn keep_content(
        &self,
        source: Source<'_>,
        st: &libc::stat,
        path: &Path,
    ) -> Result<Made, KeepFailure> {
        let (store, store_dev) = self.store()?;
        let (seq, entry_name, relative) = self.session.next_entry(path);
        let c_name =
            fs::c_path(entry_name.as_bytes()).map_err(|e| KeepFailure::Io(e.to_string()))?;
        let io = |e: io::Error| KeepFailure::Io(e.to_string());
        let entry = |how, size| KeptEntry {
            path: path.to_path_buf(),
            how,
            kind: kind_of(st),
            seq,
            store_name: Some(relative.clone()),
            size,
            mode: st.st_mode,
            mtime_ns: mtime_ns(st),
        };
        let file = match source {
            Source::Special => {
                return Ok(Made {
                    entry: recorded(path.to_path_buf(), st, seq),
                    name: None,
                    reserved: 0,
                })
            }
            Source::Symlink(dir, name) => {
                let mut text = vec![0u8; libc::PATH_MAX as usize];
                let n = fs::readlinkat(dir, name, &mut text).map_err(io)?;
                let target = fs::c_path(&text[..n]).map_err(io)?;
                fs::symlinkat(&target, store, &c_name).map_err(io)?;
                return Ok(Made {
                    entry: entry(KeptHow::Copied, 0),
                    name: Some(entry_name),
                    reserved: 0,
                });
            }
            Source::File(file) => file,
        };
        let size = st.st_size as u64;
        let dst = openat_mode(
            store,
            &c_name,
            libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_CLOEXEC,
            0o600,
        )
        .map_err(io)?;
        let remove = || {
            let _ = fs::unlinkat(store, &c_name, 0);
        };
        if let Err(full) = self.session.budget.reserve(size) {
            remove();
            return Err(full);
        }
        let made = |how| Made {
            entry: entry(how, size),
            name: Some(entry_name.clone()),
            reserved: size,
        };
        if st.st_dev == store_dev && self.reflink.load(Ordering::Relaxed) != 2 {
            match ficlone(dst.as_fd(), file) {
                Ok(()) => {
                    self.reflink.store(1, Ordering::Relaxed);
                    return Ok(made(KeptHow::Reflinked));
                }
                Err(e)
                    if matches!(
                        e.raw_os_error(),
                        Some(libc::EOPNOTSUPP | libc::EINVAL | libc::EXDEV | libc::ENOTTY)
                    ) =>
                {
                    self.reflink.store(2, Ordering::Relaxed);
                }
                Err(_) => {}
            }
        }
        let limit = self.session.limits().max_copy_bytes;
        if size > limit {
            self.session.budget.release(size);
            remove();
            return Err(KeepFailure::TooLarge { size, limit });
        }
        match copy_bytes(file, dst.as_fd(), size) {
            Ok(_) => Ok(made(KeptHow::Copied)),
            Err(e) => {
                self.session.budget.release(size);
                remove();
                Err(io(e))
            }
        }
    }

    /// Copy a directory tree that leaves its zone, when it fits the tree limit.
    fn keep_tree(&self, path: &Path, st: &libc::stat) -> Result<Made, KeepFailure> {
        let limit = self.session.limits().max_tree_bytes;
        let too_large = || KeepFailure::TreeTooLarge { limit };
        let io = |e: io::Error| KeepFailure::Io(e.to_string());
        // Measured first, so that nothing is copied of a tree that does not fit.
        let mut bytes = 0u64;
        let mut entries = 0usize;
        let mut stack = vec![path.to_path_buf()];
        while let Some(dir) = stack.pop() {
            for e in std::fs::read_dir(&dir).map_err(io)? {
                let e = e.map_err(io)?;
                let meta = e.path().symlink_metadata().map_err(io)?;
                entries += 1;
                if meta.is_dir() {
                    stack.push(e.path());
                } else if meta.is_file() {
                    bytes += meta.len();
                }
                if bytes > limit || entries > TREE_ENTRIES_LIMIT {
                    return Err(too_large());
                }
            }
        }
        self.store()?;
        self.session.budget.reserve(bytes)?;
        let (seq, entry_name, relative) = self.session.next_entry(path);
        let target = self.session.dir.join(&entry_name);
        if let Err(e) = copy_tree(path, &target) {
            self.session.budget.release(bytes);
            let _ = crate::snapshots::purge::remove_session_entry(&self.session.dir, &entry_name);
            return Err(io(e));
        }
        Ok(Made {
            entry: KeptEntry {
                path: path.to_path_buf(),
                how: KeptHow::Copied,
                kind: EntryKind::Dir,
                seq,
                store_name: Some(relative),
                size: bytes,
                mode: st.st_mode,
                mtime_ns: mtime_ns(st),
            },
            name: Some(entry_name),
            reserved: bytes,
        })
    }

    /// truncate(2): opened for writing as the task would (its rights), the bytes it cuts kept,
    /// then truncated.
    fn truncate(
        &self,
        path: &Path,
        length: i64,
        keeps: &[&Keep],
    ) -> (Option<Response>, Vec<KeepOutcome>) {
        let nothing = || vec![KeepOutcome::Kept(Vec::new()); keeps.len()];
        let opened = parent_and_name(path, false).and_then(|(parent, name)| {
            let dir = open_dir_nofollow(&parent)?;
            fs::openat(
                dir.as_fd(),
                &name,
                libc::O_WRONLY
                    | libc::O_CLOEXEC
                    | libc::O_NOFOLLOW
                    | libc::O_NONBLOCK
                    | libc::O_NOCTTY,
            )
        });
        let file = match opened {
            Ok(f) => f,
            Err(e) => return (Some(Response::failed(&e)), nothing()),
        };
        let mut kept = Vec::new();
        match self.keep_open_file(file.as_fd(), path, KeepWhat::Content, length) {
            Ok(Some(made)) => kept.push(made.entry),
            Ok(None) => {}
            Err(failure) => return self.failed(keeps, path.to_path_buf(), failure),
        }
        let response = Response::of(fs::ftruncate(file.as_fd(), length));
        (Some(response), outcome_for(keeps, kept))
    }

    /// The content of a file the task has opened (through our fd), for a truncation to
    /// `length` (`Content`) or a first write-open (`FirstWrite`). `None`: nothing to keep (not a
    /// regular file, nothing cut off, already kept in this session).
    fn keep_open_file(
        &self,
        file: BorrowedFd<'_>,
        path: &Path,
        what: KeepWhat,
        length: i64,
    ) -> Result<Option<Made>, KeepFailure> {
        let io = |e: io::Error| KeepFailure::Io(e.to_string());
        let st = fstat(file).map_err(io)?;
        if !is_regular(&st) || (what == KeepWhat::Content && length >= st.st_size) {
            return Ok(None);
        }
        // The session's first state of the file is what a restore puts back: once it is in the
        // store, later changes by the session need no copy. Noted only once kept (or, for an
        // edit, found too large), so that a refused truncation stays refused next time.
        let key = file_key(file, &st);
        match (self.session.content_of(key), what) {
            (Some(ContentKept::Kept), _) | (Some(ContentKept::NotKept), KeepWhat::FirstWrite) => {
                return Ok(None)
            }
            _ => {}
        }
        // Our fd may be write-only: read through a second open of the same file.
        let magic = format!("/proc/self/fd/{}", file.as_raw_fd());
        let reader = std::fs::File::open(&magic);
        let result = match &reader {
            Ok(r) => self.keep_content(Source::File(r.as_fd()), &st, path),
            Err(e) => Err(KeepFailure::Io(format!("cannot read it: {e}"))),
        };
        match (result, what) {
            (Ok(made), _) => {
                self.session.note_content(key, ContentKept::Kept);
                Ok(Some(made))
            }
            // An edit of a file too large to copy goes ahead, recorded as not kept.
            (Err(KeepFailure::TooLarge { .. } | KeepFailure::Io(_)), KeepWhat::FirstWrite) => {
                self.session.note_content(key, ContentKept::NotKept);
                let (seq, _, _) = self.session.next_entry(path);
                let mut entry = recorded(path.to_path_buf(), &st, seq);
                entry.how = KeptHow::NotKept;
                entry.kind = EntryKind::File;
                entry.size = st.st_size as u64;
                Ok(Some(Made {
                    entry,
                    name: None,
                    reserved: 0,
                }))
            }
            (Err(failure), _) => Err(failure),
        }
    }

    /// A writing or truncating open of an existing file: opened as the task asked (its rights),
    /// what it would destroy kept, then truncated if asked, and installed in the task.
    fn open(
        &self,
        emulator: &Emulator<'_>,
        path: PathBuf,
        flags: i32,
        mode: u32,
        umask_of: Option<i32>,
        keeps: &[&Keep],
    ) -> (Option<Response>, Vec<KeepOutcome>) {
        let nothing = || vec![KeepOutcome::Kept(Vec::new()); keeps.len()];
        let plain = |emulator: &Emulator<'_>, path| {
            emulator.run(Emulation::Open {
                path,
                flags,
                mode,
                umask_of,
            })
        };
        let creates_new = flags & libc::O_CREAT != 0 && flags & libc::O_EXCL != 0;
        let is_fifo = std::fs::symlink_metadata(&path).is_ok_and(|m| {
            use std::os::unix::fs::FileTypeExt;
            m.file_type().is_fifo()
        });
        if creates_new || is_fifo {
            // Nothing there to destroy (or a FIFO, which the open emulation waits on).
            return (plain(emulator, path), nothing());
        }
        let what = keeps
            .iter()
            .flat_map(|k| &k.items)
            .map(|i| i.what)
            .find(|w| *w == KeepWhat::Content)
            .unwrap_or(KeepWhat::FirstWrite);
        let probe_flags = flags & !(libc::O_TRUNC | libc::O_CREAT);
        let file = match emulator.open_for_task(&path, probe_flags) {
            Ok(f) => f,
            // Not there: the open creates it; nothing to keep.
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) && flags & libc::O_CREAT != 0 => {
                return (plain(emulator, path), nothing())
            }
            Err(e) => return (Some(Response::failed(&e)), nothing()),
        };
        let mut kept = Vec::new();
        match self.keep_open_file(file.as_fd(), &path, what, 0) {
            Ok(Some(made)) => kept.push(made.entry),
            Ok(None) => {}
            Err(failure) => return self.failed(keeps, path, failure),
        }
        if flags & libc::O_TRUNC == 0 {
            return (emulator.install(file, flags), outcome_for(keeps, kept));
        }
        let writable = flags & libc::O_ACCMODE != libc::O_RDONLY;
        let truncated = if writable && fstat(file.as_fd()).is_ok_and(|st| is_regular(&st)) {
            fs::ftruncate(file.as_fd(), 0).map(|()| file)
        } else {
            // A read-only open that truncates, or a device: as the task asked, again.
            drop(file);
            emulator.open_for_task(&path, flags & !libc::O_CREAT)
        };
        match truncated {
            Ok(file) => (emulator.install(file, flags), outcome_for(keeps, kept)),
            Err(e) => (Some(Response::failed(&e)), outcome_for(keeps, kept)),
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

fn path_of(parent: &Path, name: &CStr) -> PathBuf {
    let bytes = name.to_bytes();
    let bytes = bytes.strip_suffix(b"/").unwrap_or(bytes);
    parent.join(std::ffi::OsStr::from_bytes(bytes))
}

fn recorded(path: PathBuf, st: &libc::stat, seq: u64) -> KeptEntry {
    KeptEntry {
        path,
        how: KeptHow::Recorded,
        kind: kind_of(st),
        seq,
        store_name: None,
        size: 0,
        mode: st.st_mode,
        mtime_ns: mtime_ns(st),
    }
}

fn kind_of(st: &libc::stat) -> EntryKind {
    match st.st_mode & libc::S_IFMT {
        libc::S_IFREG => EntryKind::File,
        libc::S_IFDIR => EntryKind::Dir,
        libc::S_IFLNK => EntryKind::Symlink,
        _ => EntryKind::Other,
    }
}

fn is_dir(st: &libc::stat) -> bool {
    st.st_mode & libc::S_IFMT == libc::S_IFDIR
}

fn is_regular(st: &libc::stat) -> bool {
    st.st_mode & libc::S_IFMT == libc::S_IFREG
}

fn is_symlink(st: &libc::stat) -> bool {
    st.st_mode & libc::S_IFMT == libc::S_IFLNK
}

fn mtime_ns(st: &libc::stat) -> i64 {
    st.st_mtime * 1_000_000_000 + st.st_mtime_nsec
}

/// The file behind `file` as "kept already" knows it: device, inode, birth time.
fn file_key(file: BorrowedFd<'_>, st: &libc::stat) -> FileKey {
    // Without a birth time (a second fd failed, or the file system has none): device and inode.
    let birth_ns = file
        .try_clone_to_owned()
        .ok()
        .map(std::fs::File::from)
        .and_then(|f| f.metadata().ok())
        .and_then(|m| m.created().ok())
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos() as i128);
    FileKey {
        dev: st.st_dev,
        ino: st.st_ino,
        birth_ns,
    }
}

/// Copy a directory tree (symlinks as symlinks, special files left out), directories made
/// writable while filled and given their modes at the end.
fn copy_tree(from: &Path, to: &Path) -> io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new().mode(0o700).create(to)?;
    let mut modes = vec![(to.to_path_buf(), std::fs::symlink_metadata(from)?.mode())];
    let mut stack = vec![(from.to_path_buf(), to.to_path_buf())];
    while let Some((src, dst)) = stack.pop() {
        for e in std::fs::read_dir(&src)? {
            let e = e?;
            let meta = e.path().symlink_metadata()?;
            let out = dst.join(e.file_name());
            if meta.is_dir() {
                std::fs::DirBuilder::new().mode(0o700).create(&out)?;
                modes.push((out.clone(), meta.mode()));
                stack.push((e.path(), out));
            } else if meta.file_type().is_symlink() {
                std::os::unix::fs::symlink(std::fs::read_link(e.path())?, &out)?;
            } else if meta.is_file() {
                std::fs::copy(e.path(), &out)?;
            }
        }
    }
    for (dir, mode) in modes.into_iter().rev() {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode & 0o7777))?;
    }
    Ok(())
}
