//! Keeping on macOS (docs/snapshots.md, "macOS"): before the daemon answers allow to an agent's
//! destructive AUTH message in a zone that keeps, what the operation destroys is cloned into the
//! session's store directory.
//!
//! The daemon cannot perform the operation for the process (the kernel does, once allowed), so
//! nothing is moved: every kept file is a *clone* of the file as it is while the kernel holds the
//! operation. On APFS `clonefile(2)` takes constant time and no space until the files diverge,
//! which is what lets it fit inside Endpoint Security's answer deadline. The clone call is the
//! only kernel work here and sits behind [`Cloner`]: `sys::Clonefile` on macOS, [`CopyCloner`]
//! (a byte copy, bounded by the policy's copy limit as on Linux) where tests run.
//!
//! What is kept, by what the engine asked ([`KeepWhat`]) and what is there:
//! - a regular file or a symlink whose name goes away or whose content changes: cloned;
//! - a removed (empty) directory: recorded (its mode), as on Linux;
//! - a FIFO, socket or device: recorded;
//! - a first write-open: cloned once per session and file (device, inode, birth time); a file
//!   that cannot be cloned is edited anyway and recorded as not kept (an edit, not a destruction);
//! - a file renamed within its zone ([`KeepWhat::Renamed`]): nothing (see [`MacKeeper::keep`]'s
//!   item step: the daemon cannot tell a name the session made);
//! - a directory tree moved out of its zone: cloned whole (`clonefile(2)` clones a directory
//!   recursively) when it fits the policy's tree limit (`max_tree_copy_mb`, as on Linux, and
//!   [`TREE_ENTRIES_LIMIT`](crate::snapshots::tree::TREE_ENTRIES_LIMIT) entries), measured first; refused when it does not.
//!
//! No clone is started with less than [`KEEP_MARGIN`] left before the message's budget: the
//! operation is refused instead. A clone whose message was answered by the deadline timer meanwhile
//! (a deny) is removed again by `MacKeeper::undo`. This must never let an operation be allowed
//! whose keep failed.

use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Instant, UNIX_EPOCH};

use crate::snapshots::session::{ContentKept, FileKey};
use crate::snapshots::tree::tree_bytes;
use crate::snapshots::Session;
use crate::vocab::{
    EntryKind, Event, Keep, KeepFailure, KeepOutcome, KeepWhat, KeptEntry, KeptHow, RuleId,
};

/// A file as the kernel identified it in the message (the message's `stat` of it): what the
/// operation will act on once allowed, whatever the path names by then.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileId {
    pub dev: u64,
    pub ino: u64,
}

impl FileId {
    pub fn of(meta: &std::fs::Metadata) -> FileId {
        FileId {
            dev: meta.dev(),
            ino: meta.ino(),
        }
    }
}

/// The existing files an AUTH message names, by path, each as the kernel identified it.
pub type MessageFiles = Vec<(PathBuf, FileId)>;

/// Time a clone and the answer after it may take at most: with less left before the budget, the
/// operation is refused rather than kept late.
pub const KEEP_MARGIN: std::time::Duration = std::time::Duration::from_millis(5);

/// The one kernel call of keeping on macOS: a copy of `source` (not followed if a symlink; a
/// directory with everything under it) made at `target`, which must not exist.
pub trait Cloner: Send + Sync {
    /// How its entries are kept: [`KeptHow::Reflinked`] for a copy-on-write clone (no size
    /// limit), [`KeptHow::Copied`] for a byte copy (the policy's copy limit applies).
    fn way(&self) -> KeptHow;
    /// With `expect`, the source must be that file: a regular file is opened and cloned from
    /// what was opened, anything else checked first; another file there is [`changed`].
    fn clone_file(&self, source: &Path, target: &Path, expect: Option<FileId>) -> io::Result<()>;
}

/// The error of a clone whose source is no longer the file the kernel named (ESTALE).
pub fn changed() -> io::Error {
    io::Error::from_raw_os_error(libc::ESTALE)
}

/// `source` opened for reading, not followed if a symlink, and checked to be `expect` (when
/// given) on the open file: what is then cloned or copied from it is that file.
pub fn open_checked(source: &Path, expect: Option<FileId>) -> io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(source)?;
    let opened = FileId::of(&file.metadata()?);
    if expect.is_some_and(|id| id != opened) {
        return Err(changed());
    }
    Ok(file)
}

/// Why a keep is refused when the name no longer holds the file the kernel will act on: a
/// second thread moved it away, or another file in, after the kernel looked it up.
const CHANGED: &str = "the file at that path was replaced while it was being kept, so what the operation destroys could not be kept; run it again";

/// A byte copy: the portable [`Cloner`] the daemon's logic is tested with on Linux. A symlink
/// is copied as a symlink, a directory tree whole (special files left out, as `clonefile`
/// does); targets are created exclusively (files 0600), never followed.
#[derive(Clone, Copy, Debug, Default)]
pub struct CopyCloner;

impl Cloner for CopyCloner {
    fn way(&self) -> KeptHow {
        KeptHow::Copied
    }

    fn clone_file(&self, source: &Path, target: &Path, expect: Option<FileId>) -> io::Result<()> {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        let meta = std::fs::symlink_metadata(source)?;
        if expect.is_some_and(|id| id != FileId::of(&meta)) {
            return Err(changed());
        }
        if meta.file_type().is_symlink() {
            return std::os::unix::fs::symlink(std::fs::read_link(source)?, target);
        }
        if meta.is_dir() {
            std::fs::create_dir(target)?;
            for e in std::fs::read_dir(source)? {
                let e = e?;
                let kind = e.file_type()?;
                if kind.is_dir() || kind.is_file() || kind.is_symlink() {
                    self.clone_file(&e.path(), &target.join(e.file_name()), None)?;
                }
            }
            return std::fs::set_permissions(
                target,
                std::fs::Permissions::from_mode(meta.mode() & 0o7777),
            );
        }
        let mut from = open_checked(source, expect)?;
        let mut to = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(target)?;
        let copied = io::copy(&mut from, &mut to);
        if copied.is_err() {
            let _ = std::fs::remove_file(target);
        }
        copied.map(|_| ())
    }
}

/// One kept entry made for a message so far, removed again if the message is not allowed.
#[derive(Debug)]
pub struct Made {
    pub entry: KeptEntry,
    /// Its name in the session's directory (`None`: nothing stored, only recorded).
    name: Option<String>,
    reserved: u64,
}

/// What was done for one keep of a message.
#[derive(Debug)]
pub struct KeptFor {
    pub event: Event,
    pub keep: Keep,
    pub outcome: KeepOutcome,
    made: Vec<Made>,
}

/// The keeps of one AUTH message, carried out (or refused) before its answer.
#[derive(Debug)]
pub struct Keeping {
    pub session: Arc<Session>,
    pub kept: Vec<KeptFor>,
}

impl Keeping {
    /// Whether every keep was carried out: the message may be allowed.
    pub fn allows(&self) -> bool {
        self.kept
            .iter()
            .all(|k| matches!(k.outcome, KeepOutcome::Kept(_)))
    }
}

/// The daemon's side of the store: clones into a session's directory.
pub struct MacKeeper {
    cloner: Arc<dyn Cloner>,
}

impl MacKeeper {
    pub fn new(cloner: Arc<dyn Cloner>) -> MacKeeper {
        MacKeeper { cloner }
    }

    /// Keep everything `keeps` ask for, in `session`, each clone started only with
    /// [`KEEP_MARGIN`] left before `deadline`. At the first failure, what was kept for the
    /// message is removed again and that keep's outcome says why; the others are then left
    /// unkept (the message is refused).
    ///
    /// `files` are the message's files as the kernel identified them: a path that holds
    /// another file by now (or none) is not kept, and the message is refused.
    pub fn keep(
        &self,
        session: Arc<Session>,
        keeps: Vec<(Event, Keep)>,
        files: &[(PathBuf, FileId)],
        deadline: Instant,
    ) -> Keeping {
        let mut kept: Vec<KeptFor> = Vec::with_capacity(keeps.len());
        for (event, keep) in keeps {
            let mut made = Vec::new();
            let mut failed = None;
            // A truncation changes the file in place, as an edit does: kept once per session.
            // A move or link out is kept every time (and counted by the brake).
            let edit = keep.rule == RuleId::ProtectedTruncate;
            for item in &keep.items {
                let edit = edit || item.what == KeepWhat::FirstWrite;
                let expect = files
                    .iter()
                    .find(|(path, _)| *path == item.path)
                    .map(|(_, id)| *id);
                match self.keep_item(&session, &item.path, item.what, edit, expect, deadline) {
                    Ok(Some(m)) => made.push(m),
                    Ok(None) => {}
                    Err(failure) => {
                        failed = Some((item.path.clone(), failure));
                        break;
                    }
                }
            }
            if let Some((path, failure)) = failed {
                self.undo(&session, made);
                for earlier in &mut kept {
                    self.undo(&session, std::mem::take(&mut earlier.made));
                    earlier.outcome = KeepOutcome::Kept(Vec::new());
                }
                kept.push(KeptFor {
                    event,
                    keep,
                    outcome: KeepOutcome::Failed { path, failure },
                    made: Vec::new(),
                });
                return Keeping { session, kept };
            }
            let entries = made.iter().map(|m| m.entry.clone()).collect();
            kept.push(KeptFor {
                event,
                keep,
                outcome: KeepOutcome::Kept(entries),
                made,
            });
        }
        Keeping { session, kept }
    }

    /// Remove what was kept for a message that was not allowed after all (the deadline timer
    /// answered first): every outcome becomes a refusal by the deadline.
    pub fn unkeep(&self, keeping: &mut Keeping) {
        for k in &mut keeping.kept {
            self.undo(&keeping.session, std::mem::take(&mut k.made));
            if let KeepOutcome::Kept(_) = k.outcome {
                let path = k
                    .keep
                    .items
                    .first()
                    .map(|i| i.path.clone())
                    .unwrap_or_default();
                k.outcome = KeepOutcome::Failed {
                    path,
                    failure: KeepFailure::Unsupported(
                        "the kernel's deadline came before the snapshot was made",
                    ),
                };
            }
        }
    }

    /// Keep one path. `edit`: its content changes in place (a first write, a truncation), so
    /// once the session has kept it nothing more is kept. `None`: nothing there to keep (gone
    /// already, an edit of a file the session has kept, not a file whose content a write
    /// changes).
    fn keep_item(
        &self,
        session: &Session,
        path: &Path,
        what: KeepWhat,
        edit: bool,
        expect: Option<FileId>,
        deadline: Instant,
    ) -> Result<Option<Made>, KeepFailure> {
        if what == KeepWhat::Renamed {
            // The daemon does not note the names an agent session makes, so it cannot tell an
            // editor's temporary file renamed over its file from the user's own file: a rename
            // within the zone stays unkept here (docs/snapshots.md, Known limits).
            return Ok(None);
        }
        let meta = match std::fs::symlink_metadata(path) {
            Ok(m) => m,
            // The kernel holds a file the path no longer names: it would act on it unkept.
            Err(e) if e.kind() == io::ErrorKind::NotFound && expect.is_some() => {
                return Err(KeepFailure::Unsupported(CHANGED))
            }
            // Gone already: the kernel will say so to the process.
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(KeepFailure::Io(format!("cannot read it: {e}"))),
        };
        if expect.is_some_and(|id| id != FileId::of(&meta)) {
            return Err(KeepFailure::Unsupported(CHANGED));
        }
        let file_type = meta.file_type();
        if file_type.is_dir() {
            return match what {
                // rmdir, or an empty directory renamed over: its name and mode are recorded.
                KeepWhat::Entry | KeepWhat::Dir => Ok(Some(recorded(session, path, &meta))),
                KeepWhat::FirstWrite | KeepWhat::Renamed => Ok(None),
                KeepWhat::Content | KeepWhat::Tree => {
                    let bytes =
                        tree_bytes(path, session.limits().max_tree_bytes, || near(deadline))?;
                    self.clone_into(session, path, &meta, bytes, deadline)
                        .map(Some)
                }
            };
        }
        if !file_type.is_file() && !file_type.is_symlink() {
            return Ok(match what {
                KeepWhat::FirstWrite => None,
                _ => Some(recorded(session, path, &meta)),
            });
        }
        if file_type.is_symlink() && what == KeepWhat::FirstWrite {
            return Ok(None);
        }
        let key = file_key(&meta);
        let content = matches!(what, KeepWhat::Content | KeepWhat::FirstWrite);
        if edit && file_type.is_file() {
            // The session's first state of the file is what a restore puts back.
            match (session.content_of(key), what) {
                (Some(ContentKept::Kept), _)
                | (Some(ContentKept::NotKept), KeepWhat::FirstWrite) => return Ok(None),
                _ => {}
            }
        }
        let size = if file_type.is_file() { meta.len() } else { 0 };
        match (self.clone_into(session, path, &meta, size, deadline), what) {
            (Ok(made), _) => {
                if content && file_type.is_file() {
                    session.note_content(key, ContentKept::Kept);
                }
                Ok(Some(made))
            }
            // An edit of a file that cannot be cloned goes ahead, recorded as not kept (as on
            // Linux): the deadline, though, is no reason to let it through unrecorded.
            (Err(KeepFailure::TooLarge { .. } | KeepFailure::Io(_)), KeepWhat::FirstWrite) => {
                session.note_content(key, ContentKept::NotKept);
                let mut entry = recorded(session, path, &meta).entry;
                entry.how = KeptHow::NotKept;
                entry.size = meta.len();
                Ok(Some(Made {
                    entry,
                    name: None,
                    reserved: 0,
                }))
            }
            (Err(failure), _) => Err(failure),
        }
    }

    /// Clone a file, symlink or directory tree (`size` bytes) into the session's directory, its
    /// bytes reserved in the budget.
    fn clone_into(
        &self,
        session: &Session,
        path: &Path,
        meta: &std::fs::Metadata,
        size: u64,
        deadline: Instant,
    ) -> Result<Made, KeepFailure> {
        near(deadline)?;
        let way = self.cloner.way();
        if way == KeptHow::Copied && meta.is_file() {
            let limit = session.limits().max_copy_bytes;
            if size > limit {
                return Err(KeepFailure::TooLarge { size, limit });
            }
        }
        let dir = session
            .ensure_dir()
            .map_err(|e| KeepFailure::Io(format!("{}: {e}", session.dir.display())))?
            .to_path_buf();
        session.budget.reserve(size)?;
        let (seq, name, relative) = session.next_entry(path);
        // The file looked at (and checked against the message) is the one cloned.
        let looked_at = Some(FileId::of(meta));
        if let Err(e) = self.cloner.clone_file(path, &dir.join(&name), looked_at) {
            session.budget.release(size);
            return Err(clone_failure(&e));
        }
        let mut entry = recorded_entry(path, meta, seq);
        entry.how = if meta.file_type().is_symlink() {
            KeptHow::Copied
        } else {
            way
        };
        entry.store_name = Some(relative);
        entry.size = size;
        Ok(Made {
            entry,
            name: Some(name),
            reserved: size,
        })
    }

    /// Remove what was stored for a message that was not allowed.
    fn undo(&self, session: &Session, made: Vec<Made>) {
        for m in made {
            session.budget.release(m.reserved);
            if let Some(name) = m.name {
                let _ = crate::snapshots::purge::remove_session_entry(&session.dir, &name);
            }
        }
    }
}

/// Refused when less than [`KEEP_MARGIN`] is left before `deadline`.
fn near(deadline: Instant) -> Result<(), KeepFailure> {
    if Instant::now() + KEEP_MARGIN >= deadline {
        return Err(KeepFailure::Unsupported(
            "too little of the kernel's deadline was left to keep it first",
        ));
    }
    Ok(())
}

/// Why a clone failed, in the words a denial's reason uses.
fn clone_failure(e: &io::Error) -> KeepFailure {
    let why = match e.raw_os_error() {
        // Not an I/O failure: an edit must not go ahead unkept on another file than the one
        // the kernel named.
        Some(libc::ESTALE) => return KeepFailure::Unsupported(CHANGED),
        Some(libc::EXDEV) => {
            "the file is on another volume than the snapshot store, and clones stay within a volume"
                .to_string()
        }
        Some(libc::ENOTSUP) => "its volume cannot clone files (not APFS)".to_string(),
        _ => format!("cannot clone it: {e}"),
    };
    KeepFailure::Io(why)
}

fn recorded(session: &Session, path: &Path, meta: &std::fs::Metadata) -> Made {
    let (seq, _, _) = session.next_entry(path);
    Made {
        entry: recorded_entry(path, meta, seq),
        name: None,
        reserved: 0,
    }
}

fn recorded_entry(path: &Path, meta: &std::fs::Metadata, seq: u64) -> KeptEntry {
    let file_type = meta.file_type();
    KeptEntry {
        path: PathBuf::from(path),
        how: KeptHow::Recorded,
        kind: if file_type.is_dir() {
            EntryKind::Dir
        } else if file_type.is_file() {
            EntryKind::File
        } else if file_type.is_symlink() {
            EntryKind::Symlink
        } else {
            EntryKind::Other
        },
        seq,
        store_name: None,
        size: 0,
        mode: meta.mode(),
        mtime_ns: meta.mtime() * 1_000_000_000 + meta.mtime_nsec(),
    }
}

/// The file as "kept already in this session" knows it: device, inode, birth time (APFS has
/// one, so a reused inode number is a new file).
fn file_key(meta: &std::fs::Metadata) -> FileKey {
    let birth_ns = meta
        .created()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos() as i128);
    FileKey {
        dev: meta.dev(),
        ino: meta.ino(),
        birth_ns,
    }
}

// Tested with real files in `runtime/macos/tests/keeper.rs` (a session's limits come from the
// policy, which this layer may not name).
