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

mod follow;
mod read;
mod rotate;
mod write;

use std::fs::{self, File};
use std::io;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

pub use follow::{follow, DenialFollower};
pub use read::{log_files, read_denials, ReadOutcome};
pub use rotate::rotated_path;

use super::queue::{Counters, QueuedWriter, WriterConfig};
use super::record::DenialRecord;
use crate::vocab::IoError;
use write::{open_live, LineSink, LogStats};

/// Lines kept in the writer while the file cannot be written (full disk). About 5 MB at a
/// typical 500-byte record; beyond it records are dropped and counted.
pub const MAX_PENDING_LINES: usize = 10_000;

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
    #[error(
        "refusing to open the denial log {path}: it is a symbolic link (opened with O_NOFOLLOW)"
    )]
    Symlink { path: PathBuf },
    #[error("refusing to open the denial log {path}: expected a regular file with one link, found {found}")]
    NotRegular { path: PathBuf, found: String },
    /// Creating the directory, opening, reading: the path and what was being done.
    #[error(transparent)]
    Io(#[from] IoError),
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

/// The writer side of `denials.jsonl`. Dropping it drains the queue, fsyncs and joins the
/// writer thread.
pub struct DenialLog {
    path: PathBuf,
    writer: QueuedWriter<LineSink>,
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
                .map_err(IoError::at(dir, "create the denial log directory"))?;
        }
        let (file, size) = open_live(path, config.on_create.as_ref())?;
        let sink = LineSink {
            path: path.to_path_buf(),
            max_bytes: config.max_bytes,
            keep: config.keep,
            on_create: config.on_create,
            file: Some(file),
            size,
            pending: Default::default(),
            retry_at: None,
        };
        let queue = WriterConfig {
            name: "denial log",
            capacity: config.queue_capacity,
            batch_max: 1024,
            // Written at once: the hook waits for the record of a denial the agent just saw.
            linger: Duration::ZERO,
        };
        let writer = QueuedWriter::spawn(queue, sink).map_err(DenialLogError::Spawn)?;
        Ok(DenialLog {
            path: path.to_path_buf(),
            writer,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Queue a record. Never blocks: when the queue is full the record is dropped and counted.
    pub fn log(&self, record: DenialRecord) {
        self.writer.send(Box::new(record));
    }

    /// Records dropped so far.
    pub fn dropped(&self) -> u64 {
        let c = self.writer.counters();
        Counters::<LogStats>::load(&c.dropped_queue_full)
            + Counters::<LogStats>::load(&c.dropped_write_failed)
    }

    pub fn stats(&self) -> DenialLogStats {
        let c = self.writer.counters();
        DenialLogStats {
            written: Counters::<LogStats>::load(&c.written),
            dropped: self.dropped(),
            write_errors: Counters::<LogStats>::load(&c.write_errors),
            rotations: Counters::<LogStats>::load(&c.extra.rotations),
            last_error: c.last_error(),
        }
    }

    /// Wait until every record queued before this call has been written (or counted as
    /// failed). Blocks; for tests and shutdown, never on a decision path.
    pub fn flush(&self) {
        let _ = self.writer.flush();
    }
}

/// A log file's identity (device, inode): a rotation gives the live name a new one.
fn identity(file: &File) -> io::Result<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let m = file.metadata()?;
    Ok((m.dev(), m.ino()))
}

#[cfg(test)]
mod tests;
