//! `denials.jsonl`: the agent's channel. A background writer appends one [`DenialRecord`] per
//! line; readers list and follow the records across rotated files.
//!
//! What this module guarantees, and why:
//! - [`DenialLog::log`] never blocks the caller (a sensor waiting to answer the kernel): records
//!   go through a bounded queue and, when it is full, are dropped and counted ([`DenialLog::dropped`]).
//! - Each line is written with one `write(2)` on a descriptor opened with `O_APPEND`, so lines
//!   from several supervisors sharing one log (Linux `agent-guard run` in two terminals) never
//!   interleave inside a line.
//! - The live file is opened with `O_NOFOLLOW` (a symlink planted at the log path is refused, so
//!   the writer cannot be turned into an append-anywhere primitive), `O_NONBLOCK` (a FIFO planted
//!   there cannot hang the writer; it is then refused as not a regular file) and `O_CLOEXEC`
//!   (std's default: agents spawned by the supervisor do not inherit it). A file with more than
//!   one hard link is refused too. The *directory* is trusted: it belongs to agent-guard and the
//!   engine's guard-self rule denies agents any change to it.
//! - Rotation renames the full file aside (`denials.jsonl.1`, `.2`, ... keeping `keep` files) and
//!   opens a new live file; it never truncates, so a reader that has not yet read a record finds
//!   it in the rotated file.
//! - A write error (ENOSPC, EIO) is counted ([`DenialLogStats::write_errors`]) and the line stays
//!   queued in the writer and is retried, up to [`MAX_PENDING_LINES`]; beyond that new lines are
//!   dropped and counted. Nothing is lost silently.
//!
//! - Several writers on one file (two `agent-guard run` supervisors sharing a state dir): each
//!   takes the file's size from `fstat` before a line and reopens when the inode at the path is
//!   no longer its own, so after one of them rotates the others follow; rotations are serialized
//!   by an exclusive lock file, so two writers never shift `.1 .. .N` over each other (tested:
//!   without it half the records were lost). Lines a writer appends while another rotates land
//!   whole in `.1`.
//!
//! fsync policy: the writer calls `fsync` on the old file before each rotation and on the live
//! file at shutdown (drop), never per line. Per-line fsync would cost milliseconds per denial
//! on a laptop SSD, and during a burst (an agent running `rm -rf` over a protected tree) it would
//! fill the queue and drop records; the records live in the page cache, which only a kernel
//! crash or power loss discards, and a denial's effect (the file still exists) does not depend
//! on its record surviving such a crash.
//!
//! This module must never block a decision, never truncate a log file, and never follow a
//! symlink at the log path.

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::ops::ControlFlow;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::record::DenialRecord;

/// Lines kept in the writer while the file cannot be written (full disk). About 5 MB at a
/// typical 500-byte record; beyond it records are dropped and counted.
pub const MAX_PENDING_LINES: usize = 10_000;

/// How often the writer retries pending lines after a write error.
const RETRY_INTERVAL: Duration = Duration::from_millis(500);

/// Called with each log file the writer creates (at open and after each rotation) before its
/// first line. The macOS daemon, running as root, uses it to `fchown` the file to the console
/// user so that the user's agents can read their denials.
pub type OnCreateHook = Arc<dyn Fn(&File, &Path) -> io::Result<()> + Send + Sync>;

/// Size limits and queue of a [`DenialLog`].
#[derive(Clone)]
pub struct DenialLogConfig {
    /// Rotate when a line would make the live file larger than this. A single line larger than
    /// the limit is still written whole (into a fresh file).
    pub max_bytes: u64,
    /// Rotated files kept (`denials.jsonl.1` .. `.keep`); at least 1.
    pub keep: usize,
    /// Records the queue holds before [`DenialLog::log`] starts dropping.
    pub queue_capacity: usize,
    pub on_create: Option<OnCreateHook>,
}

impl Default for DenialLogConfig {
    fn default() -> Self {
        DenialLogConfig {
            max_bytes: 8 * 1024 * 1024,
            keep: 5,
            queue_capacity: 4096,
            on_create: None,
        }
    }
}

impl std::fmt::Debug for DenialLogConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DenialLogConfig")
            .field("max_bytes", &self.max_bytes)
            .field("keep", &self.keep)
            .field("queue_capacity", &self.queue_capacity)
            .field("on_create", &self.on_create.as_ref().map(|_| "<hook>"))
            .finish()
    }
}

/// Errors of the denial log, each naming the file involved.
#[derive(Debug, thiserror::Error)]
pub enum DenialLogError {
    #[error("cannot create the denial log directory {path}: {source}")]
    CreateDir { path: PathBuf, source: io::Error },
    #[error(
        "refusing to open the denial log {path}: it is a symbolic link (opened with O_NOFOLLOW)"
    )]
    Symlink { path: PathBuf },
    #[error("refusing to open the denial log {path}: expected a regular file with one link, found {found}")]
    NotRegular { path: PathBuf, found: String },
    #[error("cannot open the denial log {path}: {source}")]
    Open { path: PathBuf, source: io::Error },
    #[error("cannot read the denial log {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("invalid denial log configuration: {field} must be {expected}")]
    Config {
        field: &'static str,
        expected: &'static str,
    },
    #[error("cannot start the denial log writer thread: {0}")]
    Spawn(io::Error),
}

/// Counters of a [`DenialLog`], for `agent-guard status`.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct DenialLogStats {
    /// Records written whole to a file.
    pub written: u64,
    /// Records dropped: queue full, too many pending after write errors, or unwritable at
    /// shutdown.
    pub dropped: u64,
    /// Failed writes, opens and rotations (each retried).
    pub write_errors: u64,
    pub rotations: u64,
    pub last_error: Option<String>,
}

#[derive(Default)]
struct Counters {
    written: AtomicU64,
    dropped: AtomicU64,
    write_errors: AtomicU64,
    rotations: AtomicU64,
    last_error: Mutex<Option<String>>,
}

impl Counters {
    fn error(&self, what: String) {
        self.write_errors.fetch_add(1, Ordering::Relaxed);
        tracing::warn!("denial log: {what}");
        if let Ok(mut last) = self.last_error.lock() {
            *last = Some(what);
        }
    }
}

enum Message {
    Record(Box<DenialRecord>),
    Flush(mpsc::Sender<()>),
}

/// The writer side of `denials.jsonl`. Dropping it drains the queue, fsyncs and joins the
/// writer thread.
pub struct DenialLog {
    path: PathBuf,
    sender: Option<SyncSender<Message>>,
    counters: Arc<Counters>,
    thread: Option<JoinHandle<()>>,
}

impl DenialLog {
    /// Open (creating it and its directory, 0755, if missing) the log at `path` and start the
    /// writer thread. Opening is synchronous so that a refused path (symlink, FIFO) is reported
    /// here, naming the path.
    pub fn open(path: &Path, config: DenialLogConfig) -> Result<DenialLog, DenialLogError> {
        if config.keep == 0 {
            return Err(DenialLogError::Config {
                field: "keep",
                expected: "at least 1 (rotation renames the live file to .1)",
            });
        }
        if config.queue_capacity == 0 {
            return Err(DenialLogError::Config {
                field: "queue_capacity",
                expected: "at least 1",
            });
        }
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o755)
                .create(dir)
                .map_err(|source| DenialLogError::CreateDir {
                    path: dir.to_path_buf(),
                    source,
                })?;
        }
        let counters = Arc::new(Counters::default());
        let (file, size) = open_live(path, config.on_create.as_ref())?;
        let (sender, receiver) = mpsc::sync_channel(config.queue_capacity);
        let writer = Writer {
            path: path.to_path_buf(),
            max_bytes: config.max_bytes,
            keep: config.keep,
            on_create: config.on_create,
            file: Some(file),
            size,
            pending: VecDeque::new(),
            counters: counters.clone(),
        };
        let thread = std::thread::Builder::new()
            .name("denial-log".into())
            .spawn(move || writer.run(receiver))
            .map_err(DenialLogError::Spawn)?;
        Ok(DenialLog {
            path: path.to_path_buf(),
            sender: Some(sender),
            counters,
            thread: Some(thread),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Queue a record. Never blocks: when the queue is full the record is dropped and counted.
    pub fn log(&self, record: DenialRecord) {
        let Some(sender) = &self.sender else { return };
        match sender.try_send(Message::Record(Box::new(record))) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.counters.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Records dropped so far.
    pub fn dropped(&self) -> u64 {
        self.counters.dropped.load(Ordering::Relaxed)
    }

    pub fn stats(&self) -> DenialLogStats {
        DenialLogStats {
            written: self.counters.written.load(Ordering::Relaxed),
            dropped: self.counters.dropped.load(Ordering::Relaxed),
            write_errors: self.counters.write_errors.load(Ordering::Relaxed),
            rotations: self.counters.rotations.load(Ordering::Relaxed),
            last_error: self.counters.last_error.lock().ok().and_then(|l| l.clone()),
        }
    }

    /// Wait until every record queued before this call has been written (or counted as
    /// failed). Blocks; for tests and shutdown, never on a decision path.
    pub fn flush(&self) {
        let Some(sender) = &self.sender else { return };
        let (ack, done) = mpsc::channel();
        if sender.send(Message::Flush(ack)).is_ok() {
            let _ = done.recv();
        }
    }
}

impl Drop for DenialLog {
    fn drop(&mut self) {
        // Closing the channel lets the writer drain what is queued, fsync and exit.
        self.sender.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

struct Writer {
    path: PathBuf,
    max_bytes: u64,
    keep: usize,
    on_create: Option<OnCreateHook>,
    /// `None` after a failed reopen; retried with the next line.
    file: Option<File>,
    size: u64,
    /// Lines not yet (fully) written; the front one may be the remainder of a short write.
    pending: VecDeque<Vec<u8>>,
    counters: Arc<Counters>,
}

impl Writer {
    fn run(mut self, receiver: Receiver<Message>) {
        loop {
            let message = if self.pending.is_empty() {
                receiver.recv().map_err(|_| RecvTimeoutError::Disconnected)
            } else {
                receiver.recv_timeout(RETRY_INTERVAL)
            };
            match message {
                Ok(Message::Record(record)) => {
                    self.enqueue(&record);
                    self.write_pending();
                }
                Ok(Message::Flush(ack)) => {
                    self.write_pending();
                    let _ = ack.send(());
                }
                Err(RecvTimeoutError::Timeout) => self.write_pending(),
                Err(RecvTimeoutError::Disconnected) => break,
            }
        }
        self.write_pending();
        if !self.pending.is_empty() {
            let lost = self.pending.len() as u64;
            self.counters.dropped.fetch_add(lost, Ordering::Relaxed);
            self.counters.error(format!(
                "{lost} records unwritten at shutdown to {}",
                self.path.display()
            ));
        }
        if let Some(file) = &self.file {
            if let Err(e) = file.sync_all() {
                self.counters
                    .error(format!("fsync of {} at shutdown: {e}", self.path.display()));
            }
        }
    }

    fn enqueue(&mut self, record: &DenialRecord) {
        if self.pending.len() >= MAX_PENDING_LINES {
            self.counters.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        match serde_json::to_vec(record) {
            Ok(mut line) => {
                line.push(b'\n');
                self.pending.push_back(line);
            }
            Err(e) => {
                self.counters.dropped.fetch_add(1, Ordering::Relaxed);
                self.counters
                    .error(format!("cannot serialize record {}: {e}", record.id));
            }
        }
    }

    fn write_pending(&mut self) {
        while let Some(line_len) = self.pending.front().map(Vec::len) {
            if let Err(e) = self.prepare_for(line_len as u64) {
                self.counters.error(e);
                return;
            }
            let Some(file) = self.file.as_mut() else {
                return;
            };
            let line = self.pending.front_mut().expect("front exists");
            // One write per line: with O_APPEND the kernel places the whole buffer at the end
            // of the file atomically with respect to other appenders.
            match file.write(line) {
                Ok(n) if n == line.len() => {
                    self.size += n as u64;
                    self.pending.pop_front();
                    self.counters.written.fetch_add(1, Ordering::Relaxed);
                }
                Ok(n) => {
                    // A short write (disk filling up): keep the remainder so the line is
                    // completed, not duplicated, when space returns.
                    self.size += n as u64;
                    line.drain(..n);
                    self.counters.error(format!(
                        "short write to {} ({n} of {} bytes)",
                        self.path.display(),
                        n + line.len()
                    ));
                    return;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    self.counters
                        .error(format!("write to {}: {e}", self.path.display()));
                    return;
                }
            }
        }
    }

    /// Make sure a live file is open, still the one at the path, and has room for `len` more
    /// bytes, rotating when it has not.
    fn prepare_for(&mut self, len: u64) -> Result<(), String> {
        let at_path = match fs::symlink_metadata(&self.path) {
            Ok(m) => Some((m.dev(), m.ino())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(format!("stat {}: {e}", self.path.display())),
        };
        let ours = match &self.file {
            Some(f) => {
                let m = f
                    .metadata()
                    .map_err(|e| format!("fstat {}: {e}", self.path.display()))?;
                // Another process appending to the same file moves its end; take the kernel's
                // size, not our count.
                self.size = m.len();
                Some((m.dev(), m.ino()))
            }
            None => None,
        };
        if ours.is_none() || ours != at_path {
            // First line after an error, or another supervisor rotated (or removed) the file:
            // write to whatever is at the path now.
            self.reopen()?;
        }
        if self.size > 0 && self.size + len > self.max_bytes {
            if let Err(e) = self.rotate() {
                // Better an oversized file than a stalled log: keep appending and retry the
                // rotation with the next line.
                self.counters.error(e);
                if self.file.is_none() {
                    return Err(format!("no live file at {}", self.path.display()));
                }
            }
        }
        Ok(())
    }

    fn reopen(&mut self) -> Result<(), String> {
        self.file = None;
        let (file, size) =
            open_live(&self.path, self.on_create.as_ref()).map_err(|e| e.to_string())?;
        self.file = Some(file);
        self.size = size;
        Ok(())
    }

    fn rotate(&mut self) -> Result<(), String> {
        let Some(file) = &self.file else {
            return self.reopen();
        };
        // The rotated file will not be written again by us: make it durable once, now.
        if let Err(e) = file.sync_all() {
            self.counters.error(format!(
                "fsync of {} before rotation: {e}",
                self.path.display()
            ));
        }
        let ours = identity(file).ok();
        // One rotation at a time among all writers of this log: without it two writers
        // shifting `.1 .. .N` at once rename over each other's files and lose them.
        let lock = match RotationLock::acquire(&self.path)? {
            Some(lock) => lock,
            // Another writer is rotating: keep appending to our file (it becomes `.1`, whole
            // lines and all) and follow it to the new live file at the next line.
            None => return Ok(()),
        };
        let at_path = fs::symlink_metadata(&self.path)
            .ok()
            .map(|m| (m.dev(), m.ino()));
        if ours.is_none() || ours != at_path {
            // Rotated by another writer since our last line: follow it.
            drop(lock);
            return self.reopen();
        }
        // Shift only the files that exist (.1 .. .top-1): with a large `keep` this costs one
        // stat per kept file instead of `keep` failed renames.
        let mut top = 1;
        while top < self.keep && fs::symlink_metadata(rotated_path(&self.path, top)).is_ok() {
            top += 1;
        }
        for n in (1..top).rev() {
            let from = rotated_path(&self.path, n);
            match fs::rename(&from, rotated_path(&self.path, n + 1)) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(format!("rotate {}: {e}", from.display())),
            }
        }
        fs::rename(&self.path, rotated_path(&self.path, 1))
            .map_err(|e| format!("rotate {}: {e}", self.path.display()))?;
        drop(lock);
        self.counters.rotations.fetch_add(1, Ordering::Relaxed);
        self.reopen()
    }
}

/// `denials.jsonl.lock`, created exclusively (`O_CREAT|O_EXCL`, which never follows a symlink)
/// by the writer that rotates and removed when it is done. A lock left by a writer that died
/// mid-rotation is taken over after [`STALE_ROTATION_LOCK`]. A plain file rather than `flock`,
/// which std offers only beyond this crate's minimum Rust version and which would otherwise be
/// a syscall outside `platform/`.
struct RotationLock {
    path: PathBuf,
}

/// A rotation takes milliseconds; a lock this old belongs to a writer that died.
const STALE_ROTATION_LOCK: Duration = Duration::from_secs(10);

impl RotationLock {
    fn acquire(log: &Path) -> Result<Option<RotationLock>, String> {
        let mut name = log.as_os_str().to_os_string();
        name.push(".lock");
        let path = PathBuf::from(name);
        for _ in 0..2 {
            match OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o644)
                .open(&path)
            {
                Ok(_) => return Ok(Some(RotationLock { path })),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    let stale = fs::symlink_metadata(&path)
                        .and_then(|m| m.modified())
                        .ok()
                        .and_then(|t| t.elapsed().ok())
                        .is_some_and(|age| age > STALE_ROTATION_LOCK);
                    if !stale {
                        return Ok(None);
                    }
                    let _ = fs::remove_file(&path);
                }
                Err(e) => return Err(format!("rotation lock {}: {e}", path.display())),
            }
        }
        Ok(None)
    }
}

impl Drop for RotationLock {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

/// `denials.jsonl.N`.
pub fn rotated_path(path: &Path, n: usize) -> PathBuf {
    let mut name = path.as_os_str().to_os_string();
    name.push(format!(".{n}"));
    PathBuf::from(name)
}

/// Open (or create, mode 0644) the live file for appending, refusing anything but a regular file
/// with one link. Returns the file and its current size.
fn open_live(path: &Path, on_create: Option<&OnCreateHook>) -> Result<(File, u64), DenialLogError> {
    let open = |create_new: bool| {
        let mut options = OpenOptions::new();
        options
            .append(true)
            .mode(0o644)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK);
        if create_new {
            options.create_new(true);
        }
        options.open(path)
    };
    let (file, created) = match open(true) {
        Ok(file) => (file, true),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            (open(false).map_err(|e| open_error(path, e))?, false)
        }
        Err(e) => return Err(open_error(path, e)),
    };
    let meta = file.metadata().map_err(|source| DenialLogError::Open {
        path: path.to_path_buf(),
        source,
    })?;
    if !meta.file_type().is_file() || meta.nlink() != 1 {
        let found = if meta.file_type().is_file() {
            format!("{} hard links", meta.nlink())
        } else {
            format!("{:?}", meta.file_type())
        };
        return Err(DenialLogError::NotRegular {
            path: path.to_path_buf(),
            found,
        });
    }
    if created {
        // The umask may have removed read bits; the user whose agent was denied must read it.
        file.set_permissions(fs::Permissions::from_mode(0o644))
            .map_err(|source| DenialLogError::Open {
                path: path.to_path_buf(),
                source,
            })?;
        if let Some(hook) = on_create {
            hook(&file, path).map_err(|source| DenialLogError::Open {
                path: path.to_path_buf(),
                source,
            })?;
        }
    }
    Ok((file, meta.len()))
}

fn open_error(path: &Path, e: io::Error) -> DenialLogError {
    match e.raw_os_error() {
        Some(libc::ELOOP) => DenialLogError::Symlink {
            path: path.to_path_buf(),
        },
        Some(libc::ENXIO) => DenialLogError::NotRegular {
            path: path.to_path_buf(),
            found: "a FIFO with no reader".into(),
        },
        _ => DenialLogError::Open {
            path: path.to_path_buf(),
            source: e,
        },
    }
}

/// Records read back from the log, and how many lines were not records.
#[derive(Debug, Default)]
pub struct ReadOutcome {
    /// In time order (oldest first).
    pub records: Vec<DenialRecord>,
    /// Lines that are not a JSON denial record (skipped).
    pub malformed: u64,
}

/// The log's files, oldest first: `path.N` .. `path.1`, then `path` itself when present. Finds
/// every numbered file, not only `keep` of them, so nothing a larger `keep` left is missed.
pub fn log_files(path: &Path) -> Result<Vec<PathBuf>, DenialLogError> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let Some(base) = path.file_name().map(|n| n.to_string_lossy().into_owned()) else {
        return Ok(Vec::new());
    };
    let mut numbered: Vec<(u64, PathBuf)> = Vec::new();
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(DenialLogError::Read {
                path: dir.to_path_buf(),
                source,
            })
        }
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let Some(suffix) = name
            .strip_prefix(base.as_str())
            .and_then(|s| s.strip_prefix('.'))
        else {
            continue;
        };
        if let Ok(n) = suffix.parse::<u64>() {
            numbered.push((n, entry.path()));
        }
    }
    numbered.sort_by_key(|(n, _)| std::cmp::Reverse(*n));
    let mut files: Vec<PathBuf> = numbered.into_iter().map(|(_, p)| p).collect();
    if fs::symlink_metadata(path).is_ok() {
        files.push(path.to_path_buf());
    }
    Ok(files)
}

/// Read every record of the log at `path` (rotated files included) written at or after `since`.
pub fn read_denials(path: &Path, since: Option<SystemTime>) -> Result<ReadOutcome, DenialLogError> {
    read_files(&log_files(path)?, since, None)
}

fn read_files(
    files: &[PathBuf],
    since: Option<SystemTime>,
    skip: Option<(u64, u64)>,
) -> Result<ReadOutcome, DenialLogError> {
    let mut outcome = ReadOutcome::default();
    for file in files {
        if skip.is_some() {
            let id = fs::symlink_metadata(file).ok().map(|m| (m.dev(), m.ino()));
            if id == skip {
                continue;
            }
        }
        read_file_into(file, &mut outcome)?;
    }
    // A file caught between its two names during a rotation is read twice.
    let mut ids = std::collections::HashSet::new();
    outcome
        .records
        .retain(|r| r.id.is_empty() || ids.insert(r.id.clone()));
    retain_since(&mut outcome.records, since);
    // Stable: records of the same millisecond keep their file order.
    outcome.records.sort_by_key(DenialRecord::unix_millis);
    Ok(outcome)
}

/// The rotated files newer than the file `old` (oldest first), excluding `live`. When `old` is
/// no longer among them (rotated past `keep`), every rotated file is newer.
fn rotated_since(path: &Path, old: Option<(u64, u64)>, live: Option<(u64, u64)>) -> Vec<PathBuf> {
    let mut newer = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for n in 1.. {
        let candidate = rotated_path(path, n);
        let Ok(meta) = fs::symlink_metadata(&candidate) else {
            break;
        };
        let id = Some((meta.dev(), meta.ino()));
        if id == old {
            break;
        }
        // `seen`: a file caught between its two names during a rotation.
        if id != live && seen.insert(id) {
            newer.push(candidate);
        }
    }
    newer.reverse();
    newer
}

/// Append the records of one file to `outcome`, in file order. A file that vanished (rotated
/// past `keep`) contributes nothing.
fn read_file_into(file: &Path, outcome: &mut ReadOutcome) -> Result<(), DenialLogError> {
    let handle = match open_for_reading(file) {
        Ok(h) => h,
        Err(DenialLogError::Read { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
            return Ok(())
        }
        Err(e) => return Err(e),
    };
    for line in BufReader::new(handle).split(b'\n') {
        let line = line.map_err(|source| DenialLogError::Read {
            path: file.to_path_buf(),
            source,
        })?;
        push_line(&line, outcome);
    }
    Ok(())
}

fn push_line(line: &[u8], outcome: &mut ReadOutcome) {
    if line.iter().all(u8::is_ascii_whitespace) {
        return;
    }
    match serde_json::from_slice::<DenialRecord>(line) {
        Ok(record) => outcome.records.push(record),
        Err(_) => outcome.malformed += 1,
    }
}

fn retain_since(records: &mut Vec<DenialRecord>, since: Option<SystemTime>) {
    if let Some(since) = since {
        let since_ms = since
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO)
            .as_millis() as i128;
        records.retain(|r| r.unix_millis() >= since_ms);
    }
}

fn open_for_reading(path: &Path) -> Result<File, DenialLogError> {
    OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .map_err(|source| match source.raw_os_error() {
            Some(libc::ELOOP) => DenialLogError::Symlink {
                path: path.to_path_buf(),
            },
            _ => DenialLogError::Read {
                path: path.to_path_buf(),
                source,
            },
        })
}

fn identity(file: &File) -> io::Result<(u64, u64)> {
    let m = file.metadata()?;
    Ok((m.dev(), m.ino()))
}

/// Reads new records as they are appended to the live file, `tail -f` style, across rotations:
/// when the file at the path is no longer the one it reads, it finishes the old one and moves to
/// the new one from its start.
///
/// It polls ([`DenialFollower::poll`]) rather than waiting on file notifications: a poll is two
/// `stat`s, the latency of a short sleep (see [`follow`]) is invisible to a human or an agent
/// reading denials, and it behaves the same on Linux, on macOS and on file systems where
/// inotify/FSEvents miss changes (NFS home directories, another process's rename).
pub struct DenialFollower {
    path: PathBuf,
    file: Option<File>,
    id: Option<(u64, u64)>,
    offset: u64,
    partial: Vec<u8>,
    malformed: u64,
}

impl DenialFollower {
    /// Start at the beginning of the current live file (which need not exist yet).
    pub fn new(path: &Path) -> DenialFollower {
        let mut follower = DenialFollower {
            path: path.to_path_buf(),
            file: None,
            id: None,
            offset: 0,
            partial: Vec::new(),
            malformed: 0,
        };
        let _ = follower.open_current();
        follower
    }

    /// Lines skipped as not being records.
    pub fn malformed(&self) -> u64 {
        self.malformed
    }

    fn open_current(&mut self) -> Result<bool, DenialLogError> {
        match open_for_reading(&self.path) {
            Ok(file) => {
                self.id = identity(&file).ok();
                self.file = Some(file);
                self.offset = 0;
                self.partial.clear();
                Ok(true)
            }
            Err(DenialLogError::Read { source, .. })
                if source.kind() == io::ErrorKind::NotFound =>
            {
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    /// The records appended since the last poll (complete lines only), in file order. Never
    /// blocks. After a rotation it finishes the old file, reads the files rotated since (newest
    /// last) and continues with the new live file from its start.
    pub fn poll(&mut self) -> Result<Vec<DenialRecord>, DenialLogError> {
        let mut outcome = ReadOutcome::default();
        if self.file.is_none() && !self.open_current()? {
            return Ok(Vec::new());
        }
        self.read_available(&mut outcome)?;
        let at_path = fs::symlink_metadata(&self.path)
            .ok()
            .map(|m| (m.dev(), m.ino()));
        if at_path.is_some() && at_path != self.id {
            // Rotated: the old file is complete (the writer no longer appends to it once it
            // has renamed it), so a trailing fragment is a damaged line.
            if !self.partial.is_empty() {
                self.malformed += 1;
                self.partial.clear();
            }
            let old = self.id;
            // Hold the new live file before looking at the rotated ones, so that a rotation in
            // between cannot hide a file from us.
            self.file = None;
            if self.open_current()? {
                for file in rotated_since(&self.path, old, self.id) {
                    read_file_into(&file, &mut outcome)?;
                }
                self.read_available(&mut outcome)?;
            }
        }
        self.malformed += outcome.malformed;
        Ok(outcome.records)
    }

    fn read_available(&mut self, outcome: &mut ReadOutcome) -> Result<(), DenialLogError> {
        let Some(file) = self.file.as_mut() else {
            return Ok(());
        };
        let read_err = |source| DenialLogError::Read {
            path: self.path.clone(),
            source,
        };
        let len = file.metadata().map_err(read_err)?.len();
        if len < self.offset {
            // Truncated by someone else (agent-guard never truncates): start over.
            self.offset = 0;
            self.partial.clear();
        }
        file.seek(SeekFrom::Start(self.offset)).map_err(read_err)?;
        let mut buf = Vec::new();
        file.read_to_end(&mut buf).map_err(read_err)?;
        self.offset += buf.len() as u64;
        self.partial.extend_from_slice(&buf);
        if let Some(last_newline) = self.partial.iter().rposition(|b| *b == b'\n') {
            let rest = self.partial.split_off(last_newline + 1);
            for line in self.partial.split(|b| *b == b'\n') {
                push_line(line, outcome);
            }
            self.partial = rest;
        }
        Ok(())
    }
}

/// Records already in the log at or after `since`, then every new one as it is appended, until
/// `on_record` breaks. Sleeps `interval` between polls.
pub fn follow(
    path: &Path,
    since: Option<SystemTime>,
    interval: Duration,
    mut on_record: impl FnMut(&DenialRecord) -> ControlFlow<()>,
) -> Result<(), DenialLogError> {
    // Open the live file first, then read the rotated ones except the one we hold: a rotation in
    // between then neither loses nor repeats records.
    let mut follower = DenialFollower::new(path);
    let rotated: Vec<PathBuf> = log_files(path)?
        .into_iter()
        .filter(|p| p.as_path() != path)
        .collect();
    let mut initial = read_files(&rotated, None, follower.id)?.records;
    initial.extend(follower.poll()?);
    retain_since(&mut initial, since);
    initial.sort_by_key(DenialRecord::unix_millis);
    for record in &initial {
        if on_record(record).is_break() {
            return Ok(());
        }
    }
    loop {
        std::thread::sleep(interval);
        let mut new = follower.poll()?;
        retain_since(&mut new, since);
        for record in &new {
            if on_record(record).is_break() {
                return Ok(());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vocab::{Decision, OpKind, RuleId};
    use std::collections::HashSet;
    use std::os::unix::fs::symlink;
    use std::sync::atomic::AtomicUsize;

    static SEQ: AtomicUsize = AtomicUsize::new(0);

    /// A record whose path says who logged it (`/w/<thread>/<n>`); padded to a realistic size.
    fn record(thread: usize, n: usize) -> DenialRecord {
        let seq = SEQ.fetch_add(1, Ordering::Relaxed);
        let ms = 1_700_000_000_000u64 + seq as u64;
        DenialRecord {
            id: format!("{ms}-test-{seq}"),
            ts: ms / 1000,
            time: crate::vocab::time::rfc3339_from_millis(ms as i64),
            op: OpKind::Unlink,
            path: format!("/w/{thread}/{n}"),
            dest: None,
            zone: Some("/w".into()),
            process: "rm".into(),
            ancestor: "claude".into(),
            pid: 1000 + thread as i32,
            exe: "/usr/bin/rm".into(),
            agent_pid: 999,
            rule: RuleId::ProtectedDelete,
            decision: Decision::Deny,
            reason: "Deleting files in /w is blocked for AI agents; leave the file in place or \
                     ask the user for an override."
                .into(),
            hint: format!("agent-guard override request --op unlink --path /w/{thread}/{n}"),
        }
    }

    fn config(max_bytes: u64, keep: usize, queue_capacity: usize) -> DenialLogConfig {
        DenialLogConfig {
            max_bytes,
            keep,
            queue_capacity,
            on_create: None,
        }
    }

    /// Every line of every log file, checking that each ends with a newline.
    fn all_lines(path: &Path) -> Vec<String> {
        let mut lines = Vec::new();
        for file in log_files(path).unwrap() {
            let text = fs::read_to_string(&file).unwrap();
            if text.is_empty() {
                continue;
            }
            assert!(
                text.ends_with('\n'),
                "{} ends inside a line",
                file.display()
            );
            lines.extend(text.lines().map(str::to_string));
        }
        lines
    }

    #[test]
    fn hundred_thousand_denials_from_eight_threads_survive_rotation_whole() {
        const THREADS: usize = 8;
        const PER_THREAD: usize = 12_500;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log/denials.jsonl");
        // 256 KiB files for ~50 MB of records: about 200 rotations, all kept.
        let log = Arc::new(
            DenialLog::open(&path, config(256 * 1024, 100_000, THREADS * PER_THREAD)).unwrap(),
        );
        let threads: Vec<_> = (0..THREADS)
            .map(|t| {
                let log = log.clone();
                std::thread::spawn(move || {
                    for n in 0..PER_THREAD {
                        log.log(record(t, n));
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        log.flush();
        assert_eq!(log.dropped(), 0);
        let stats = log.stats();
        assert_eq!(stats.written, (THREADS * PER_THREAD) as u64);
        assert!(stats.rotations > 50, "expected many rotations: {stats:?}");
        assert_eq!(stats.write_errors, 0, "{stats:?}");

        let lines = all_lines(&path);
        assert_eq!(lines.len(), THREADS * PER_THREAD);
        let mut ids = HashSet::new();
        let mut seen = HashSet::new();
        for line in &lines {
            let rec: DenialRecord = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("malformed line {line:?}: {e}"));
            assert!(ids.insert(rec.id.clone()), "duplicate id {}", rec.id);
            assert!(seen.insert(rec.path.clone()));
        }
        for t in 0..THREADS {
            for n in 0..PER_THREAD {
                assert!(seen.contains(&format!("/w/{t}/{n}")), "lost /w/{t}/{n}");
            }
        }
        for file in log_files(&path).unwrap() {
            let len = fs::metadata(&file).unwrap().len();
            assert!(len <= 256 * 1024, "{} is {len} bytes", file.display());
        }
        let read = read_denials(&path, None).unwrap();
        assert_eq!(read.records.len(), THREADS * PER_THREAD);
        assert_eq!(read.malformed, 0);
    }

    /// Two writers (two supervisors sharing a state dir) on one file, both rotating it: no line
    /// lost, split or duplicated.
    #[test]
    fn two_writers_sharing_one_log_lose_and_split_nothing() {
        const THREADS_PER_LOG: usize = 4;
        const PER_THREAD: usize = 5_000;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("denials.jsonl");
        let logs: Vec<Arc<DenialLog>> = (0..2)
            .map(|_| Arc::new(DenialLog::open(&path, config(32 * 1024, 100_000, 100_000)).unwrap()))
            .collect();
        let threads: Vec<_> = (0..2 * THREADS_PER_LOG)
            .map(|t| {
                let log = logs[t % 2].clone();
                std::thread::spawn(move || {
                    for n in 0..PER_THREAD {
                        log.log(record(100 + t, n));
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        for log in &logs {
            log.flush();
            assert_eq!(log.dropped(), 0);
        }
        let lines = all_lines(&path);
        let mut seen = HashSet::new();
        for line in &lines {
            let rec: DenialRecord = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("malformed line {line:?}: {e}"));
            assert!(seen.insert(rec.path.clone()), "duplicate {}", rec.path);
        }
        assert_eq!(lines.len(), 2 * THREADS_PER_LOG * PER_THREAD);
        assert!(logs.iter().all(|l| l.stats().rotations > 0));
        assert!(!dir.path().join("denials.jsonl.lock").exists());
    }

    #[test]
    fn rotation_waits_for_a_live_lock_and_takes_over_a_stale_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("denials.jsonl");
        let lock = dir.path().join("denials.jsonl.lock");
        let log = DenialLog::open(&path, config(1, 5, 100)).unwrap();
        // Another writer is rotating: this one keeps appending to the live file.
        let held = File::create(&lock).unwrap();
        for n in 0..3 {
            log.log(record(7, n));
        }
        log.flush();
        assert!(!rotated_path(&path, 1).exists());
        assert_eq!(fs::read_to_string(&path).unwrap().lines().count(), 3);
        // That writer died holding it: after STALE_ROTATION_LOCK the lock is taken over.
        held.set_modified(SystemTime::now() - STALE_ROTATION_LOCK * 2)
            .unwrap();
        log.log(record(7, 3));
        log.flush();
        assert!(rotated_path(&path, 1).exists());
        assert_eq!(log.stats().rotations, 1);
        assert!(!lock.exists());
        assert_eq!(all_lines(&path).len(), 4);
    }

    #[test]
    fn symlink_at_the_log_path_is_refused_and_named() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("victim");
        fs::write(&target, "precious\n").unwrap();
        let path = dir.path().join("denials.jsonl");
        symlink(&target, &path).unwrap();
        let err = DenialLog::open(&path, DenialLogConfig::default())
            .err()
            .expect("a symlink must be refused");
        assert!(matches!(err, DenialLogError::Symlink { .. }), "{err:?}");
        assert!(
            err.to_string().contains(&path.display().to_string()),
            "{err}"
        );
        assert_eq!(fs::read_to_string(&target).unwrap(), "precious\n");
    }

    #[test]
    fn symlink_planted_after_open_is_refused_at_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("victim");
        fs::write(&target, "precious\n").unwrap();
        let path = dir.path().join("denials.jsonl");
        let log = DenialLog::open(&path, config(1 << 20, 3, 16)).unwrap();
        log.log(record(0, 0));
        log.flush();
        // Swap the live file for a symlink, as an agent with write access to the directory would.
        fs::remove_file(&path).unwrap();
        symlink(&target, &path).unwrap();
        log.log(record(0, 1));
        log.flush();
        assert_eq!(fs::read_to_string(&target).unwrap(), "precious\n");
        let stats = log.stats();
        assert!(stats.write_errors > 0, "{stats:?}");
        assert!(
            stats
                .last_error
                .as_deref()
                .unwrap()
                .contains("symbolic link"),
            "{stats:?}"
        );
        assert_eq!(stats.written, 1);
    }

    #[test]
    fn fifo_and_hard_link_at_the_log_path_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo.jsonl");
        let status = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(status.success());
        // Without O_NONBLOCK this open would hang forever waiting for a reader.
        let err = DenialLog::open(&fifo, DenialLogConfig::default())
            .err()
            .unwrap();
        assert!(matches!(err, DenialLogError::NotRegular { .. }), "{err:?}");

        let other = dir.path().join("someone-elses-file");
        fs::write(&other, "x\n").unwrap();
        let linked = dir.path().join("linked.jsonl");
        fs::hard_link(&other, &linked).unwrap();
        let err = DenialLog::open(&linked, DenialLogConfig::default())
            .err()
            .unwrap();
        assert!(err.to_string().contains("2 hard links"), "{err}");
        assert_eq!(fs::read_to_string(&other).unwrap(), "x\n");
    }

    #[test]
    fn new_files_are_0644_and_directory_0755() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a/b/denials.jsonl");
        let log = DenialLog::open(&path, config(600, 2, 16)).unwrap();
        for n in 0..5 {
            log.log(record(0, n));
        }
        log.flush();
        drop(log);
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o644);
        assert_eq!(mode(&rotated_path(&path, 1)), 0o644);
        assert_eq!(mode(&dir.path().join("a/b")), 0o755);
    }

    #[test]
    fn rotation_keeps_n_files_and_the_newest_records() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("denials.jsonl");
        let one_line = serde_json::to_vec(&record(0, 0)).unwrap().len() as u64 + 1;
        // About three records per file.
        let log = DenialLog::open(&path, config(one_line * 3 + 10, 3, 1000)).unwrap();
        let mut follower = DenialFollower::new(&path);
        for n in 0..100 {
            log.log(record(0, n));
        }
        log.flush();
        assert!(path.exists());
        for n in 1..=3 {
            assert!(rotated_path(&path, n).exists(), ".{n} missing");
        }
        assert!(
            !rotated_path(&path, 4).exists(),
            "kept more than 3 rotated files"
        );

        // What is kept is exactly the newest records, without a gap.
        let read = read_denials(&path, None).unwrap();
        let ns: Vec<usize> = read
            .records
            .iter()
            .map(|r| r.path.rsplit('/').next().unwrap().parse().unwrap())
            .collect();
        assert!(!ns.is_empty());
        let first = ns[0];
        assert_eq!(ns, (first..100).collect::<Vec<_>>());
        assert!(ns.len() >= 9, "4 files of ~3 records: {ns:?}");

        // A reader that had the live file open before the rotations loses nothing of it: the
        // first file's records are still reachable through its descriptor (although the file
        // was rotated past `keep` and unlinked), then it reads every kept file.
        let followed = follower.poll().unwrap();
        let followed_ns: Vec<usize> = followed
            .iter()
            .map(|r| r.path.rsplit('/').next().unwrap().parse().unwrap())
            .collect();
        let mut expected = vec![0, 1, 2];
        expected.extend(&ns);
        assert_eq!(followed_ns, expected);
    }

    #[test]
    fn follower_sees_every_record_when_polled_across_rotations() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("denials.jsonl");
        let one_line = serde_json::to_vec(&record(0, 0)).unwrap().len() as u64 + 1;
        let log = DenialLog::open(&path, config(one_line * 4, 2, 1000)).unwrap();
        let mut follower = DenialFollower::new(&path);
        let mut got = Vec::new();
        // Poll after every record: at most one rotation between polls, so nothing is rotated
        // out of reach (keep=2) and the follower must see all of them exactly once.
        for n in 0..50 {
            log.log(record(1, n));
            log.flush();
            got.extend(follower.poll().unwrap());
        }
        let ns: Vec<String> = got.iter().map(|r| r.path.clone()).collect();
        let expected: Vec<String> = (0..50).map(|n| format!("/w/1/{n}")).collect();
        assert_eq!(ns, expected);
        assert_eq!(follower.malformed(), 0);
        assert!(log.stats().rotations >= 10);
    }

    #[test]
    fn full_queue_drops_and_counts_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("denials.jsonl");
        let (entered_tx, entered_rx) = mpsc::channel::<()>();
        let (release_tx, release_rx) = mpsc::channel::<()>();
        let calls = Arc::new(AtomicUsize::new(0));
        let hook_calls = calls.clone();
        let release_rx = Mutex::new(release_rx);
        // The hook runs on each created file; the second call (after the first rotation) blocks
        // the writer until the test releases it.
        let hook: OnCreateHook = Arc::new(move |_file, _path| {
            if hook_calls.fetch_add(1, Ordering::SeqCst) == 1 {
                entered_tx.send(()).unwrap();
                release_rx.lock().unwrap().recv().unwrap();
            }
            Ok(())
        });
        const CAPACITY: usize = 4;
        let log = DenialLog::open(
            &path,
            DenialLogConfig {
                max_bytes: 1,
                keep: 10,
                queue_capacity: CAPACITY,
                on_create: Some(hook),
            },
        )
        .unwrap();
        log.log(record(2, 0)); // written into the first file
        log.log(record(2, 1)); // forces a rotation: the writer blocks in the hook
        entered_rx.recv().unwrap();
        // The writer holds record 1; the queue is empty and takes exactly CAPACITY more.
        for n in 2..2 + CAPACITY + 7 {
            log.log(record(2, n));
        }
        assert_eq!(log.dropped(), 7);
        release_tx.send(()).unwrap();
        log.flush();
        let lines = all_lines(&path);
        assert_eq!(lines.len(), 2 + CAPACITY);
        assert_eq!(log.stats().written, (2 + CAPACITY) as u64);
    }

    #[test]
    fn reader_orders_by_time_filters_since_and_counts_malformed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("denials.jsonl");
        let mut old = record(3, 0);
        old.time = "2020-01-01T00:00:00.000Z".into();
        old.ts = 1_577_836_800;
        let mut newer = record(3, 1);
        newer.time = "2030-01-01T00:00:00.000Z".into();
        newer.ts = 1_893_456_000;
        let mut middle = record(3, 2);
        middle.time = "2025-01-01T00:00:00.000Z".into();
        middle.ts = 1_735_689_600;
        let line = |r: &DenialRecord| serde_json::to_string(r).unwrap() + "\n";
        fs::write(rotated_path(&path, 2), line(&old)).unwrap();
        fs::write(
            rotated_path(&path, 1),
            format!("{}not json\n{{\"half\": \n", line(&newer)),
        )
        .unwrap();
        fs::write(&path, line(&middle)).unwrap();
        let all = read_denials(&path, None).unwrap();
        let paths: Vec<&str> = all.records.iter().map(|r| r.path.as_str()).collect();
        assert_eq!(paths, ["/w/3/0", "/w/3/2", "/w/3/1"]);
        assert_eq!(all.malformed, 2);
        let since = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let recent = read_denials(&path, Some(since)).unwrap();
        let paths: Vec<&str> = recent.records.iter().map(|r| r.path.as_str()).collect();
        assert_eq!(paths, ["/w/3/2", "/w/3/1"]);
    }

    #[test]
    fn follow_reports_existing_then_new_records() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("denials.jsonl");
        let log = Arc::new(DenialLog::open(&path, config(700, 50, 100)).unwrap());
        for n in 0..5 {
            log.log(record(4, n));
        }
        log.flush();
        let writer_log = log.clone();
        let writer = std::thread::spawn(move || {
            for n in 5..10 {
                writer_log.log(record(4, n));
                writer_log.flush();
            }
        });
        let mut got = Vec::new();
        follow(&path, None, Duration::from_millis(5), |r| {
            got.push(r.path.clone());
            if got.len() == 10 {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        })
        .unwrap();
        writer.join().unwrap();
        let expected: Vec<String> = (0..10).map(|n| format!("/w/4/{n}")).collect();
        assert_eq!(got, expected);
    }

    #[test]
    fn keep_zero_is_a_config_error() {
        let dir = tempfile::tempdir().unwrap();
        let err = DenialLog::open(&dir.path().join("d"), config(10, 0, 1))
            .err()
            .unwrap();
        assert!(err.to_string().contains("keep"), "{err}");
    }
}
