//! The SQLite audit trail: every agent-attributed decision and every override event, for query
//! and export by the user and security teams (issue 6).
//!
//! Writing: [`AuditStore`] owns one connection on its own thread, fed by a bounded queue.
//! Records are inserted in batches, one transaction per batch (WAL, `synchronous=NORMAL`): a
//! crash loses at most the last batches not yet checkpointed to the WAL, and never leaves a
//! partial row, because SQLite commits a transaction entirely or not at all. A full queue, and a
//! batch that still fails after retries (`SQLITE_BUSY`, `SQLITE_FULL`, I/O errors), are counted
//! in [`AuditStoreStats`] for `agent-guard status`. Retention ([`Retention`]) runs on the same
//! thread, in the background.
//!
//! Reading: [`AuditReader`] opens the database read-only for `agent-guard audit query|export`;
//! WAL lets it read while the writer writes. Queries select matching ids through an index first
//! and fetch whole rows only for the `limit` newest; exports stream row by row.
//!
//! This module must never block a decision (only [`AuditStore::record_decision`] and
//! [`AuditStore::record_override`] are meant for the hot path, and they never block) and never
//! build SQL from user input (every value is a bound parameter).

pub mod chain;
mod export;
mod kept;
mod query;
mod records;
mod retention;
pub mod schema;
mod write;

use std::io;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde::Serialize;

pub use chain::{write_verify_report, ChainReport};
pub use export::{decision_export_json, override_export_json, ExportFormat, CSV_HEADER};
pub use kept::{KeptQuery, StoredKept};
pub use query::{AuditQuery, AuditReader, StoredDecision, StoredOverride};
pub use records::{
    DecisionRecord, EndState, KeptRecord, KeptUpdate, OverrideEvent, OverrideEventKind,
};

use super::queue::{Counters, QueuedWriter, WriterConfig};
use crate::vocab::IoError;
use schema::SchemaError;
use write::{open_for_writing, StoreControl, StoreRecord, StoreSink, StoreStats};

/// How long the audit trail is kept. `None` means no limit of that kind. (No serde here: the
/// policy file spells these its own way and converts.)
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Retention {
    /// Delete records older than this.
    pub max_age: Option<Duration>,
    /// Delete the oldest *allowed* decisions while the database's used pages exceed this many
    /// bytes. Denials, audits and override events are never deleted to make room (only by
    /// age): when the allowed decisions are gone and the trail is still over the size, new
    /// allowed decisions are dropped and counted instead. The freed pages are reused, so the
    /// file stops growing at about this size; it is not shrunk. The WAL file (checkpointed
    /// every 16 MB) comes on top.
    pub max_bytes: Option<u64>,
}

/// Queue, batching and retention of an [`AuditStore`].
#[derive(Clone, Debug)]
pub struct AuditStoreConfig {
    /// Records the queue holds before the hot path starts dropping (and counting).
    pub queue_capacity: usize,
    /// Records per transaction at most.
    pub batch_max: usize,
    pub retention: Retention,
    /// How often retention runs.
    pub retention_interval: Duration,
    /// Attempts per batch when the database is busy or failing, before its records are dropped
    /// and counted.
    pub attempts: u32,
}

impl Default for AuditStoreConfig {
    fn default() -> Self {
        AuditStoreConfig {
            queue_capacity: 65_536,
            // Large batches share the cost of rewriting the same index tail pages to the WAL.
            batch_max: 32_768,
            retention: Retention::default(),
            retention_interval: Duration::from_secs(60),
            attempts: 3,
        }
    }
}

/// Errors of the audit store, each naming the database file.
#[derive(Debug, thiserror::Error)]
pub enum AuditStoreError {
    /// Creating the database's directory.
    #[error(transparent)]
    Io(#[from] IoError),
    #[error("cannot open the audit database {path}: {source}")]
    Open {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("no audit database at {path} (it is created when the supervisor or daemon first records a decision)")]
    Missing { path: PathBuf },
    #[error("audit database {path}: {source}")]
    Schema { path: PathBuf, source: SchemaError },
    #[error("the audit database {path} has schema version {found}; this agent-guard reads version {expected} (open it once with the current supervisor or daemon to migrate it)")]
    OldSchema {
        path: PathBuf,
        found: u32,
        expected: u32,
    },
    #[error("querying the audit database {path}: {source}")]
    Query {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("enforcing retention on the audit database {path}: {source}")]
    Retention {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("writing the audit export: {0}")]
    Output(io::Error),
    #[error("invalid audit store configuration: {field} must be {expected}")]
    Config {
        field: &'static str,
        expected: &'static str,
    },
    #[error("cannot start the audit writer thread: {0}")]
    Spawn(io::Error),
    #[error("the audit writer thread has stopped")]
    WriterGone,
}

/// Counters of an [`AuditStore`], for `agent-guard status`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct AuditStoreStats {
    pub decisions_written: u64,
    pub overrides_written: u64,
    /// Rows of kept snapshots.
    pub kept_written: u64,
    /// Records dropped because the queue was full.
    pub dropped_queue_full: u64,
    /// Records dropped because their batch failed every attempt (busy, full disk, I/O error).
    pub dropped_write_failed: u64,
    /// Batch attempts that failed and were retried.
    pub retries: u64,
    pub batches: u64,
    /// Rows deleted by retention.
    pub retention_deleted: u64,
    /// Allowed decisions not stored because the trail was full of records younger than their
    /// age (denials, audits, override events), which retention never deletes to make room.
    pub allowed_dropped_full: u64,
    pub last_error: Option<String>,
}

impl AuditStoreStats {
    pub fn dropped(&self) -> u64 {
        self.dropped_queue_full + self.dropped_write_failed
    }
}

/// How long the writer waits for more records before committing a batch.
const LINGER: Duration = Duration::from_millis(100);

/// The writer of the audit database. Dropping it commits what is queued and joins its thread.
pub struct AuditStore {
    path: PathBuf,
    writer: QueuedWriter<StoreSink>,
}

impl AuditStore {
    /// Open (creating and migrating it when needed) the database at `path` and start the writer
    /// thread. The directory is created 0700 when missing: the trail records what every agent
    /// touched and is for the user (or root) only.
    pub fn open(path: &Path, config: AuditStoreConfig) -> Result<AuditStore, AuditStoreError> {
        if config.queue_capacity == 0 || config.batch_max == 0 || config.attempts == 0 {
            return Err(AuditStoreError::Config {
                field: "queue_capacity, batch_max and attempts",
                expected: "at least 1",
            });
        }
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            use std::os::unix::fs::DirBuilderExt;
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(IoError::at(
                    dir,
                    "create the directory of the audit database",
                ))?;
        }
        let sink = StoreSink {
            conn: open_for_writing(path)?,
            path: path.to_path_buf(),
            attempts: config.attempts,
            retention: config.retention,
            retention_interval: config.retention_interval,
            next_retention: Instant::now(),
            full: false,
        };
        let queue = WriterConfig {
            name: "audit store",
            capacity: config.queue_capacity,
            batch_max: config.batch_max,
            linger: LINGER,
        };
        let writer = QueuedWriter::spawn(queue, sink).map_err(AuditStoreError::Spawn)?;
        Ok(AuditStore {
            path: path.to_path_buf(),
            writer,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Queue a decision. Never blocks; when the queue is full the record is dropped and counted.
    pub fn record_decision(&self, record: DecisionRecord) {
        self.writer.send(StoreRecord::Decision(Box::new(record)));
    }

    /// Queue a decision, or hand it back when the queue is full (not counted as dropped: the
    /// caller decides). For producers that can wait, like the benchmark and importers.
    pub fn try_record_decision(&self, record: DecisionRecord) -> Result<(), Box<DecisionRecord>> {
        self.writer
            .try_send(StoreRecord::Decision(Box::new(record)))
            .map_err(|back| match back {
                StoreRecord::Decision(record) => record,
                _ => unreachable!("a decision comes back as itself"),
            })
    }

    /// Queue an override event. Never blocks; counted when dropped.
    pub fn record_override(&self, event: OverrideEvent) {
        self.writer.send(StoreRecord::Override(Box::new(event)));
    }

    /// Queue the row of a kept snapshot. Never blocks; counted when dropped (the store's file
    /// is still listed by `undo list`, by its name).
    pub fn record_kept(&self, record: KeptRecord) {
        self.writer.send(StoreRecord::Kept(Box::new(record)));
    }

    /// Queue a later fact about kept rows (a hash, a session's end state).
    pub fn update_kept(&self, update: KeptUpdate) {
        self.writer.send(StoreRecord::KeptUpdate(Box::new(update)));
    }

    /// Forget the rows of sessions whose entries were purged from the store.
    pub fn forget_sessions(&self, sessions: Vec<String>) -> Result<(), AuditStoreError> {
        self.writer
            .control(StoreControl::ForgetSessions(sessions))
            .map_err(|_| AuditStoreError::WriterGone)
    }

    pub fn stats(&self) -> AuditStoreStats {
        let c = self.writer.counters();
        let load = Counters::<StoreStats>::load;
        AuditStoreStats {
            decisions_written: load(&c.extra.decisions_written),
            overrides_written: load(&c.extra.overrides_written),
            kept_written: load(&c.extra.kept_written),
            dropped_queue_full: load(&c.dropped_queue_full),
            dropped_write_failed: load(&c.dropped_write_failed),
            retries: load(&c.extra.retries),
            batches: load(&c.extra.batches),
            retention_deleted: load(&c.extra.retention_deleted),
            allowed_dropped_full: load(&c.extra.allowed_dropped_full),
            last_error: c.last_error(),
        }
    }

    /// Wait until everything queued before this call is committed (or counted as failed).
    /// Blocks: for tests, shutdown and the CLI, never for a decision.
    pub fn flush(&self) -> Result<(), AuditStoreError> {
        self.writer.flush().map_err(|_| AuditStoreError::WriterGone)
    }

    /// Change the retention (policy reload); applied at the next retention run.
    pub fn set_retention(&self, retention: Retention) -> Result<(), AuditStoreError> {
        self.writer
            .control(StoreControl::SetRetention(retention))
            .map_err(|_| AuditStoreError::WriterGone)
    }

    /// Run retention now (after committing what is queued) and return the rows it deleted.
    pub fn enforce_retention(&self) -> Result<u64, AuditStoreError> {
        let (ack, done) = mpsc::channel();
        self.writer
            .control(StoreControl::EnforceRetention(ack))
            .map_err(|_| AuditStoreError::WriterGone)?;
        let result = done.recv().map_err(|_| AuditStoreError::WriterGone)?;
        result.map_err(|source| AuditStoreError::Retention {
            path: self.path.clone(),
            source,
        })
    }
}

/// Forget the kept rows of `sessions` (purged from the store by a human's command), writing the
/// database directly: the running writers' queues are theirs; SQLite's lock keeps them apart.
pub fn forget_kept_sessions(path: &Path, sessions: &[String]) -> Result<u64, AuditStoreError> {
    let conn = open_for_writing(path)?;
    let mut deleted = 0;
    for session in sessions {
        deleted += conn
            .execute("DELETE FROM kept WHERE session = ?1", [session])
            .map_err(|source| AuditStoreError::Query {
                path: path.to_path_buf(),
                source,
            })? as u64;
    }
    Ok(deleted)
}

#[cfg(test)]
mod tests;
