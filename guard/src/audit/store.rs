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

use std::fmt;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TryRecvError, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use rusqlite::types::ToSql;
use rusqlite::{params, Connection, OpenFlags, Row};
use serde::{Deserialize, Serialize};

use super::schema::{self, SchemaError, LATEST_VERSION};
use crate::vocab::time::{rfc3339_from_millis, unix_millis};
use crate::vocab::{
    printable, Action, AgentInfo, Decision, Event, Mode, OpKind, OpSet, RuleId, UnknownName,
    Verdict,
};

/// One agent-attributed decision.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DecisionRecord {
    /// Milliseconds since the Unix epoch.
    pub time_ms: i64,
    /// The agent the actor is attributed to.
    pub agent: String,
    pub agent_pid: i32,
    pub pid: i32,
    /// The second half of the process key: start time on Linux, pidversion on macOS.
    pub start_key: u64,
    pub exe: String,
    pub op: OpKind,
    pub path: String,
    pub dest: Option<String>,
    pub zone: Option<String>,
    pub rule: Option<RuleId>,
    pub verdict: Decision,
    pub mode: Mode,
    /// A hash of the normalized policy that decided.
    pub policy_version: String,
}

impl DecisionRecord {
    /// The record of one decision. For a deny or audit verdict the paths, zone and rule come
    /// from the denial (which names the side of a rename that made it deny); for an allow, from
    /// the event.
    pub fn new(
        event: &Event,
        agent: &AgentInfo,
        start_key: u64,
        verdict: &Verdict,
        mode: Mode,
        policy_version: &str,
        now: SystemTime,
    ) -> DecisionRecord {
        let lossy = |p: &Path| p.to_string_lossy().into_owned();
        let (op, path, dest, zone, rule) = match verdict.denial() {
            Some(d) => (
                d.op,
                lossy(&d.path),
                d.dest.as_deref().map(lossy),
                d.zone.as_deref().map(lossy),
                Some(d.rule.clone()),
            ),
            None => {
                let path = match &event.action {
                    Action::Signal { target_pid, .. } => format!("pid:{target_pid}"),
                    action => action.path().map(lossy).unwrap_or_default(),
                };
                (
                    event.action.kind(),
                    path,
                    event.action.dest().map(lossy),
                    None,
                    None,
                )
            }
        };
        DecisionRecord {
            time_ms: unix_millis(now),
            agent: agent.name.clone(),
            agent_pid: agent.pid,
            pid: event.actor.pid,
            start_key,
            exe: lossy(&event.actor.exe),
            op,
            path,
            dest,
            zone,
            rule,
            verdict: verdict.decision(),
            mode,
            policy_version: policy_version.to_string(),
        }
    }
}

/// What happened to an override.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OverrideEventKind {
    Request,
    Approve,
    Deny,
    Revoke,
    Expire,
}

impl OverrideEventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            OverrideEventKind::Request => "request",
            OverrideEventKind::Approve => "approve",
            OverrideEventKind::Deny => "deny",
            OverrideEventKind::Revoke => "revoke",
            OverrideEventKind::Expire => "expire",
        }
    }
}

impl FromStr for OverrideEventKind {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [
            OverrideEventKind::Request,
            OverrideEventKind::Approve,
            OverrideEventKind::Deny,
            OverrideEventKind::Revoke,
            OverrideEventKind::Expire,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
        .ok_or_else(|| UnknownName {
            what: "override event",
            value: s.to_string(),
            expected: "request, approve, deny, revoke or expire",
        })
    }
}

/// One step in an override's life.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OverrideEvent {
    pub time_ms: i64,
    pub kind: OverrideEventKind,
    pub override_id: String,
    pub path: String,
    /// Stored as the names separated by commas (`unlink,rename`).
    pub ops: OpSet,
    /// Who acted: the requesting agent, the approving user, `agent-guard` for expiry.
    pub who: String,
    pub ttl_secs: Option<u64>,
}

impl OverrideEvent {
    pub fn new(
        kind: OverrideEventKind,
        override_id: &str,
        path: &Path,
        ops: OpSet,
        who: &str,
        ttl: Option<Duration>,
        now: SystemTime,
    ) -> OverrideEvent {
        OverrideEvent {
            time_ms: unix_millis(now),
            kind,
            override_id: override_id.to_string(),
            path: path.to_string_lossy().into_owned(),
            ops,
            who: who.to_string(),
            ttl_secs: ttl.map(|t| t.as_secs()),
        }
    }
}

/// How long the audit trail is kept. `None` means no limit of that kind. (No serde here: the
/// policy file spells these its own way and converts.)
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Retention {
    /// Delete records older than this.
    pub max_age: Option<Duration>,
    /// Delete the oldest decisions while the database's used pages exceed this many bytes. The
    /// freed pages are reused, so the file stops growing at about this size; it is not shrunk.
    /// The WAL file (checkpointed every 16 MB) comes on top.
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
    #[error("cannot create the directory of the audit database {path}: {source}")]
    CreateDir { path: PathBuf, source: io::Error },
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
    #[error("enforcing retention on the audit database {path}: {message}")]
    Retention { path: PathBuf, message: String },
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
    /// Records dropped because the queue was full.
    pub dropped_queue_full: u64,
    /// Records dropped because their batch failed every attempt (busy, full disk, I/O error).
    pub dropped_write_failed: u64,
    /// Batch attempts that failed and were retried.
    pub retries: u64,
    pub batches: u64,
    /// Rows deleted by retention.
    pub retention_deleted: u64,
    pub last_error: Option<String>,
}

impl AuditStoreStats {
    pub fn dropped(&self) -> u64 {
        self.dropped_queue_full + self.dropped_write_failed
    }
}

#[derive(Default)]
struct Counters {
    decisions_written: AtomicU64,
    overrides_written: AtomicU64,
    dropped_queue_full: AtomicU64,
    dropped_write_failed: AtomicU64,
    retries: AtomicU64,
    batches: AtomicU64,
    retention_deleted: AtomicU64,
    last_error: Mutex<Option<String>>,
}

impl Counters {
    fn error(&self, what: String) {
        tracing::warn!("audit store: {what}");
        if let Ok(mut last) = self.last_error.lock() {
            *last = Some(what);
        }
    }
}

enum Message {
    Decision(Box<DecisionRecord>),
    Override(Box<OverrideEvent>),
    Flush(mpsc::Sender<()>),
    SetRetention(Retention),
    EnforceRetention(mpsc::Sender<Result<u64, String>>),
}

/// The writer of the audit database. Dropping it commits what is queued and joins its thread.
pub struct AuditStore {
    path: PathBuf,
    sender: Option<SyncSender<Message>>,
    counters: Arc<Counters>,
    thread: Option<JoinHandle<()>>,
}

const INSERT_DECISION: &str = "INSERT INTO decisions (time_ms, agent, agent_pid, pid, start_key, \
     exe, op, path, dest, zone, rule, verdict, mode, policy_version) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)";
const INSERT_OVERRIDE: &str = "INSERT INTO overrides (time_ms, event, override_id, path, ops, \
     who, ttl_secs) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";

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
                .map_err(|source| AuditStoreError::CreateDir {
                    path: dir.to_path_buf(),
                    source,
                })?;
        }
        let conn = open_for_writing(path)?;
        let counters = Arc::new(Counters::default());
        let (sender, receiver) = mpsc::sync_channel(config.queue_capacity);
        let writer = StoreWriter {
            conn,
            path: path.to_path_buf(),
            batch_max: config.batch_max,
            attempts: config.attempts,
            retention: config.retention,
            retention_interval: config.retention_interval,
            counters: counters.clone(),
        };
        let thread = std::thread::Builder::new()
            .name("audit-store".into())
            .spawn(move || writer.run(receiver))
            .map_err(AuditStoreError::Spawn)?;
        Ok(AuditStore {
            path: path.to_path_buf(),
            sender: Some(sender),
            counters,
            thread: Some(thread),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Queue a decision. Never blocks; when the queue is full the record is dropped and counted.
    pub fn record_decision(&self, record: DecisionRecord) {
        if self.try_record_decision(record).is_err() {
            self.counters
                .dropped_queue_full
                .fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Queue a decision, or hand it back when the queue is full (not counted as dropped: the
    /// caller decides). For producers that can wait, like the benchmark and importers.
    pub fn try_record_decision(&self, record: DecisionRecord) -> Result<(), Box<DecisionRecord>> {
        let Some(sender) = &self.sender else {
            return Err(Box::new(record));
        };
        match sender.try_send(Message::Decision(Box::new(record))) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(Message::Decision(r)))
            | Err(TrySendError::Disconnected(Message::Decision(r))) => Err(r),
            Err(_) => unreachable!("a decision message comes back as itself"),
        }
    }

    /// Queue an override event. Never blocks; counted when dropped.
    pub fn record_override(&self, event: OverrideEvent) {
        let sent = self
            .sender
            .as_ref()
            .map(|s| s.try_send(Message::Override(Box::new(event))).is_ok())
            .unwrap_or(false);
        if !sent {
            self.counters
                .dropped_queue_full
                .fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn stats(&self) -> AuditStoreStats {
        let c = &self.counters;
        AuditStoreStats {
            decisions_written: c.decisions_written.load(Ordering::Relaxed),
            overrides_written: c.overrides_written.load(Ordering::Relaxed),
            dropped_queue_full: c.dropped_queue_full.load(Ordering::Relaxed),
            dropped_write_failed: c.dropped_write_failed.load(Ordering::Relaxed),
            retries: c.retries.load(Ordering::Relaxed),
            batches: c.batches.load(Ordering::Relaxed),
            retention_deleted: c.retention_deleted.load(Ordering::Relaxed),
            last_error: c.last_error.lock().ok().and_then(|l| l.clone()),
        }
    }

    /// Wait until everything queued before this call is committed (or counted as failed).
    /// Blocks: for tests, shutdown and the CLI, never for a decision.
    pub fn flush(&self) -> Result<(), AuditStoreError> {
        let sender = self.sender.as_ref().ok_or(AuditStoreError::WriterGone)?;
        let (ack, done) = mpsc::channel();
        sender
            .send(Message::Flush(ack))
            .map_err(|_| AuditStoreError::WriterGone)?;
        done.recv().map_err(|_| AuditStoreError::WriterGone)
    }

    /// Change the retention (policy reload); applied at the next retention run.
    pub fn set_retention(&self, retention: Retention) -> Result<(), AuditStoreError> {
        let sender = self.sender.as_ref().ok_or(AuditStoreError::WriterGone)?;
        sender
            .send(Message::SetRetention(retention))
            .map_err(|_| AuditStoreError::WriterGone)
    }

    /// Run retention now (after committing what is queued) and return the rows it deleted.
    pub fn enforce_retention(&self) -> Result<u64, AuditStoreError> {
        let sender = self.sender.as_ref().ok_or(AuditStoreError::WriterGone)?;
        let (ack, done) = mpsc::channel();
        sender
            .send(Message::EnforceRetention(ack))
            .map_err(|_| AuditStoreError::WriterGone)?;
        let result = done.recv().map_err(|_| AuditStoreError::WriterGone)?;
        result.map_err(|message| AuditStoreError::Retention {
            path: self.path.clone(),
            message,
        })
    }
}

impl Drop for AuditStore {
    fn drop(&mut self) {
        self.sender.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn open_for_writing(path: &Path) -> Result<Connection, AuditStoreError> {
    let open_err = |source| AuditStoreError::Open {
        path: path.to_path_buf(),
        source,
    };
    let mut conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NOFOLLOW
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(open_err)?;
    {
        use std::os::unix::fs::PermissionsExt;
        // Created by SQLite with the umask's mode; the trail is for its owner only.
        let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
    }
    conn.busy_timeout(Duration::from_millis(500))
        .map_err(open_err)?;
    // auto_vacuum must be set before the first table (schema::migrate does it), and before
    // WAL mode is entered on a new file.
    schema::migrate(&mut conn).map_err(|source| AuditStoreError::Schema {
        path: path.to_path_buf(),
        source,
    })?;
    conn.pragma_update(None, "journal_mode", "WAL")
        .map_err(open_err)?;
    // NORMAL in WAL mode: a commit is durable once the WAL is synced at checkpoint; a power
    // loss can lose the last transactions but never corrupts the database or splits a row.
    conn.pragma_update(None, "synchronous", "NORMAL")
        .map_err(open_err)?;
    // 32 MB of page cache: the filter indexes of a million rows stay mostly in memory, which is
    // what keeps inserts into the path index (random positions) fast.
    conn.pragma_update(None, "cache_size", -32_768i64)
        .map_err(open_err)?;
    // Checkpoint every 16 MB of WAL rather than 4 MB: fewer fsyncs under a burst.
    conn.pragma_update(None, "wal_autocheckpoint", 4000i64)
        .map_err(open_err)?;
    conn.pragma_update(None, "journal_size_limit", 16 * 1024 * 1024i64)
        .map_err(open_err)?;
    conn.pragma_update(None, "foreign_keys", "OFF")
        .map_err(open_err)?;
    Ok(conn)
}

struct StoreWriter {
    conn: Connection,
    path: PathBuf,
    batch_max: usize,
    attempts: u32,
    retention: Retention,
    retention_interval: Duration,
    counters: Arc<Counters>,
}

#[derive(Default)]
struct Batch {
    decisions: Vec<DecisionRecord>,
    overrides: Vec<OverrideEvent>,
    flushes: Vec<mpsc::Sender<()>>,
    retention_requests: Vec<mpsc::Sender<Result<u64, String>>>,
}

impl Batch {
    fn records(&self) -> usize {
        self.decisions.len() + self.overrides.len()
    }
    fn add(&mut self, message: Message, retention: &mut Retention) {
        match message {
            Message::Decision(d) => self.decisions.push(*d),
            Message::Override(o) => self.overrides.push(*o),
            Message::Flush(ack) => self.flushes.push(ack),
            Message::SetRetention(r) => *retention = r,
            Message::EnforceRetention(ack) => self.retention_requests.push(ack),
        }
    }
}

/// How long the writer waits for more records before committing a batch.
const LINGER: Duration = Duration::from_millis(100);
/// How often a lingering writer looks for more: the bound on how late a flush is answered.
const LINGER_STEP: Duration = Duration::from_millis(5);

impl StoreWriter {
    fn run(mut self, receiver: Receiver<Message>) {
        let mut next_retention = Instant::now();
        let mut open = true;
        while open {
            let mut batch = Batch::default();
            let wait = next_retention.saturating_duration_since(Instant::now());
            match receiver.recv_timeout(wait) {
                Ok(message) => batch.add(message, &mut self.retention),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => open = false,
            }
            // Gather more, up to one batch, for at most LINGER: a supervised agent produces a
            // steady trickle of decisions, and a transaction for each one cost more CPU than
            // the decisions themselves (7% of a build's samples). Meanwhile the writer sleeps
            // and drains rather than waiting on the channel: a waiting receiver makes every
            // send a futex wake and a context switch on the path of the supervised call (6% of
            // a write-open loop's samples). A flush or a retention request ends the wait at the
            // next step.
            let linger_end = Instant::now() + LINGER;
            let gathering = |batch: &Batch| {
                batch.records() > 0
                    && batch.records() < self.batch_max
                    && batch.flushes.is_empty()
                    && batch.retention_requests.is_empty()
            };
            while open && gathering(&batch) {
                match receiver.try_recv() {
                    Ok(message) => {
                        batch.add(message, &mut self.retention);
                        continue;
                    }
                    Err(TryRecvError::Disconnected) => open = false,
                    Err(TryRecvError::Empty) => {
                        let left = linger_end.saturating_duration_since(Instant::now());
                        if left.is_zero() {
                            break;
                        }
                        std::thread::sleep(left.min(LINGER_STEP));
                    }
                }
            }
            self.commit(&batch);
            for ack in batch.flushes {
                let _ = ack.send(());
            }
            let due = Instant::now() >= next_retention;
            if due || !batch.retention_requests.is_empty() {
                let result = self.enforce_retention(unix_millis(SystemTime::now()));
                if let Err(e) = &result {
                    self.counters.error(format!("retention: {e}"));
                }
                for ack in batch.retention_requests {
                    let _ = ack.send(result.clone());
                }
                next_retention = Instant::now() + self.retention_interval;
            }
        }
        // Leave a small WAL and fresh planner statistics behind.
        let _ = self.conn.execute_batch("PRAGMA optimize;");
        let _ = self
            .conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
    }

    fn commit(&mut self, batch: &Batch) {
        let n = batch.records() as u64;
        if n == 0 {
            return;
        }
        for attempt in 1..=self.attempts {
            match self.try_commit(batch) {
                Ok(()) => {
                    let c = &self.counters;
                    c.batches.fetch_add(1, Ordering::Relaxed);
                    c.decisions_written
                        .fetch_add(batch.decisions.len() as u64, Ordering::Relaxed);
                    c.overrides_written
                        .fetch_add(batch.overrides.len() as u64, Ordering::Relaxed);
                    return;
                }
                Err(e) => {
                    self.counters.error(format!(
                        "committing {n} records to {} (attempt {attempt} of {}): {e}",
                        self.path.display(),
                        self.attempts
                    ));
                    if attempt < self.attempts {
                        self.counters.retries.fetch_add(1, Ordering::Relaxed);
                        std::thread::sleep(Duration::from_millis(50 << attempt.min(5)));
                    }
                }
            }
        }
        self.counters
            .dropped_write_failed
            .fetch_add(n, Ordering::Relaxed);
    }

    /// One transaction for the whole batch: all its rows are committed, or none.
    fn try_commit(&mut self, batch: &Batch) -> rusqlite::Result<()> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        {
            let mut insert = tx.prepare_cached(INSERT_DECISION)?;
            for d in &batch.decisions {
                insert.execute(params![
                    d.time_ms,
                    d.agent,
                    d.agent_pid,
                    d.pid,
                    d.start_key as i64,
                    d.exe,
                    d.op.as_str(),
                    d.path,
                    d.dest,
                    d.zone,
                    d.rule.as_ref().map(RuleId::as_str),
                    d.verdict.as_str(),
                    d.mode.as_str(),
                    d.policy_version,
                ])?;
            }
            let mut insert = tx.prepare_cached(INSERT_OVERRIDE)?;
            for o in &batch.overrides {
                insert.execute(params![
                    o.time_ms,
                    o.kind.as_str(),
                    o.override_id,
                    o.path,
                    o.ops.to_string(),
                    o.who,
                    o.ttl_secs.map(|t| t as i64),
                ])?;
            }
        }
        tx.commit()
    }

    fn enforce_retention(&mut self, now_ms: i64) -> Result<u64, String> {
        let mut deleted = 0u64;
        if let Some(max_age) = self.retention.max_age {
            let cutoff = now_ms.saturating_sub(max_age.as_millis() as i64);
            // In chunks, so that a first run over a large backlog does not hold the write lock
            // (and the queue) for long.
            for table in ["decisions", "overrides"] {
                loop {
                    let n = self
                        .conn
                        .execute(
                            &format!(
                                "DELETE FROM {table} WHERE id IN \
                                 (SELECT id FROM {table} WHERE time_ms < ?1 LIMIT 20000)"
                            ),
                            [cutoff],
                        )
                        .map_err(|e| e.to_string())?;
                    deleted += n as u64;
                    if n < 20_000 {
                        break;
                    }
                }
            }
        }
        if let Some(max_bytes) = self.retention.max_bytes {
            // Bounded: each round deletes at least 1% of the rows.
            for _ in 0..200 {
                let used = self.used_bytes().map_err(|e| e.to_string())?;
                if used <= max_bytes {
                    break;
                }
                let rows = self.decision_id_span().map_err(|e| e.to_string())?;
                if rows == 0 {
                    break;
                }
                // Delete the excess fraction of the rows, plus 1% so that a round rarely falls
                // short, at most 50 000 per transaction.
                let excess = (used - max_bytes) as f64 / used as f64;
                let n = ((rows as f64 * excess).ceil() as u64 + rows / 100 + 1).min(50_000);
                let n = self
                    .conn
                    .execute(
                        "DELETE FROM decisions WHERE id IN \
                         (SELECT id FROM decisions ORDER BY time_ms, id LIMIT ?1)",
                        [n as i64],
                    )
                    .map_err(|e| e.to_string())?;
                deleted += n as u64;
            }
        }
        // Freed pages stay in the file and are reused by the next inserts, so the file stops
        // growing at about `max_bytes`; it is not shrunk. (Incremental auto-vacuum would shrink
        // it, but its pointer-map upkeep cost a third of the insert throughput.)
        self.counters
            .retention_deleted
            .fetch_add(deleted, Ordering::Relaxed);
        Ok(deleted)
    }

    /// Bytes in pages that hold data (file pages minus free pages).
    fn used_bytes(&self) -> rusqlite::Result<u64> {
        let pragma = |name: &str| -> rusqlite::Result<i64> {
            self.conn.pragma_query_value(None, name, |r| r.get(0))
        };
        let pages = pragma("page_count")? - pragma("freelist_count")?;
        Ok((pages.max(0) * pragma("page_size")?) as u64)
    }

    /// An estimate of the decision rows (ids are assigned in order and retention deletes the
    /// oldest, so the id span is close to the count) without a full count.
    fn decision_id_span(&self) -> rusqlite::Result<u64> {
        self.conn.query_row(
            "SELECT coalesce(max(id) - min(id) + 1, 0) FROM decisions",
            [],
            |r| Ok(r.get::<_, i64>(0)? as u64),
        )
    }
}

/// Filters of `agent-guard audit query` and `export`. Every filter set must match.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuditQuery {
    pub agent: Option<String>,
    pub op: Option<OpKind>,
    pub verdict: Option<Decision>,
    /// The path or anything under it, on component boundaries (`/a/proj` matches `/a/proj` and
    /// `/a/proj/x`, not `/a/project2`).
    pub path_prefix: Option<String>,
    /// Inclusive, milliseconds since the epoch.
    pub since_ms: Option<i64>,
    /// Exclusive, milliseconds since the epoch.
    pub until_ms: Option<i64>,
    pub limit: Option<usize>,
}

impl AuditQuery {
    /// Whether a filter that only decisions have (agent, op, verdict) is set.
    fn decisions_only(&self) -> bool {
        self.agent.is_some() || self.op.is_some() || self.verdict.is_some()
    }
}

/// A decision read back, with its id in the database.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct StoredDecision {
    pub event_id: i64,
    /// RFC 3339, UTC, milliseconds.
    pub time: String,
    #[serde(flatten)]
    pub record: DecisionRecord,
}

/// An override event read back.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct StoredOverride {
    pub event_id: i64,
    pub time: String,
    #[serde(flatten)]
    pub event: OverrideEvent,
}

impl StoredDecision {
    /// The decision as one line of `audit query` output: its JSON, or a line for a human with
    /// control characters escaped (agents choose file names).
    pub fn write_line(&self, out: &mut dyn Write, json: bool) -> io::Result<()> {
        if json {
            serde_json::to_writer(&mut *out, self)?;
            return writeln!(out);
        }
        let r = &self.record;
        writeln!(
            out,
            "{} {} {} {}{} agent={}({}) pid={} exe={}{}{}",
            self.time,
            r.verdict.as_str().to_ascii_uppercase(),
            r.op,
            printable(&r.path),
            r.dest
                .as_deref()
                .map(|x| format!(" -> {}", printable(x)))
                .unwrap_or_default(),
            printable(&r.agent),
            r.agent_pid,
            r.pid,
            printable(&r.exe),
            r.rule
                .as_ref()
                .map(|x| format!(" rule={}", printable(x.as_str())))
                .unwrap_or_default(),
            r.zone
                .as_deref()
                .map(|x| format!(" zone={}", printable(x)))
                .unwrap_or_default(),
        )
    }
}

impl StoredOverride {
    /// The override event as one line of `audit query --overrides` output.
    pub fn write_line(&self, out: &mut dyn Write, json: bool) -> io::Result<()> {
        if json {
            serde_json::to_writer(&mut *out, self)?;
            return writeln!(out);
        }
        let e = &self.event;
        writeln!(
            out,
            "{} {} {} {} ops={} by {}{}",
            self.time,
            e.kind.as_str().to_ascii_uppercase(),
            printable(&e.override_id),
            printable(&e.path),
            e.ops,
            printable(&e.who),
            e.ttl_secs.map(|t| format!(" ttl={t}s")).unwrap_or_default()
        )
    }
}

/// `agent-guard audit export --format`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExportFormat {
    Jsonl,
    Csv,
}

impl FromStr for ExportFormat {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "jsonl" => Ok(ExportFormat::Jsonl),
            "csv" => Ok(ExportFormat::Csv),
            _ => Err(UnknownName {
                what: "export format",
                value: s.to_string(),
                expected: "jsonl or csv",
            }),
        }
    }
}

impl fmt::Display for ExportFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ExportFormat::Jsonl => "jsonl",
            ExportFormat::Csv => "csv",
        })
    }
}

const DECISION_COLUMNS: &str = "id, time_ms, agent, agent_pid, pid, start_key, exe, op, path, \
     dest, zone, rule, verdict, mode, policy_version";
const OVERRIDE_COLUMNS: &str = "id, time_ms, event, override_id, path, ops, who, ttl_secs";

/// Read-only access to the audit database for the CLI.
pub struct AuditReader {
    conn: Connection,
    path: PathBuf,
}

/// WHERE clauses and their parameters, built from an [`AuditQuery`]; values are always bound.
struct Filters {
    clauses: Vec<String>,
    params: Vec<Box<dyn ToSql>>,
}

impl Filters {
    /// `indexed: false` prefixes columns with `+`, which stops SQLite from using their indexes:
    /// exports then walk the time index in order and never sort (constant memory).
    fn new(q: &AuditQuery, decisions: bool, indexed: bool) -> Filters {
        let col = |c: &str| {
            if indexed {
                c.to_string()
            } else {
                format!("+{c}")
            }
        };
        let mut f = Filters {
            clauses: Vec::new(),
            params: Vec::new(),
        };
        if decisions {
            if let Some(agent) = &q.agent {
                f.push(format!("{} = ?", col("agent")), agent.clone());
            }
            if let Some(op) = q.op {
                f.push(format!("{} = ?", col("op")), op.as_str().to_string());
            }
            if let Some(v) = q.verdict {
                // A literal, not a parameter: the verdict indexes are partial (`schema::V2`) and
                // SQLite uses one only when the query has its exact WHERE term. The value is one
                // of three fixed strings, never user text.
                f.clauses
                    .push(format!("{} = '{}'", col("verdict"), v.as_str()));
            }
        }
        if let Some(prefix) = &q.path_prefix {
            let prefix = prefix.trim_end_matches('/');
            if !prefix.is_empty() {
                // An index range covering `prefix` and everything after it up to `prefix0`
                // ('0' follows '/'), then an exact component-boundary check on what it finds.
                f.push(format!("{} >= ?", col("path")), prefix.to_string());
                f.push(format!("{} < ?", col("path")), format!("{prefix}0"));
                f.clauses.push(format!(
                    "(path = ?{n} OR substr(path, length(?{n}) + 1, 1) = '/')",
                    n = f.params.len() + 1
                ));
                f.params.push(Box::new(prefix.to_string()));
            }
        }
        if let Some(since) = q.since_ms {
            f.push("time_ms >= ?".into(), since);
        }
        if let Some(until) = q.until_ms {
            f.push("time_ms < ?".into(), until);
        }
        f
    }

    fn push<T: ToSql + 'static>(&mut self, clause: String, value: T) {
        // Numbered placeholders, so that clauses may refer back to a parameter.
        let n = self.params.len() + 1;
        self.clauses.push(clause.replacen('?', &format!("?{n}"), 1));
        self.params.push(Box::new(value));
    }

    fn where_sql(&self) -> String {
        if self.clauses.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", self.clauses.join(" AND "))
        }
    }

    fn param_refs(&self) -> Vec<&dyn ToSql> {
        self.params.iter().map(|p| p.as_ref()).collect()
    }
}

/// The newest `limit` matching decisions: ids first, from an index alone, then whole rows for
/// those ids only.
fn query_sql(q: &AuditQuery) -> (String, Filters) {
    let filters = Filters::new(q, true, true);
    let limit = q.limit.unwrap_or(100) as i64;
    let sql = format!(
        "SELECT {DECISION_COLUMNS} FROM decisions WHERE id IN \
         (SELECT id FROM decisions {} ORDER BY time_ms DESC, id DESC LIMIT {limit}) \
         ORDER BY time_ms DESC, id DESC",
        filters.where_sql()
    );
    (sql, filters)
}

/// The day buckets of the path index (`schema::V2`); the expression must stay identical to the
/// index's for SQLite to use it.
const DAY_MS: i64 = 86_400_000;

/// With a path filter: the ids of the newest matching decisions of one day (`?{n}` the day,
/// `?{n+1}` how many are still wanted), through the day-led path index. `INDEXED BY`: with
/// statistics SQLite tends to walk the time index backwards instead (it satisfies the ORDER BY),
/// which is 100 times slower for a selective path.
fn path_day_sql(q: &AuditQuery) -> (String, Filters, usize) {
    let filters = Filters::new(q, true, true);
    let n = filters.params.len() + 1;
    let sql = format!(
        "SELECT id FROM decisions INDEXED BY decisions_day_path {} AND time_ms / 86400000 = ?{n} \
         ORDER BY time_ms DESC, id DESC LIMIT ?{}",
        filters.where_sql(),
        n + 1
    );
    (sql, filters, n)
}

/// Decisions and override events in time order, walking the time indexes (no sort).
fn export_sql(q: &AuditQuery) -> ((String, Filters), (String, Filters)) {
    let limit = q.limit.map(|l| l as i64).unwrap_or(-1);
    let d_filters = Filters::new(q, true, false);
    let d_sql = format!(
        "SELECT {DECISION_COLUMNS} FROM decisions {} ORDER BY time_ms, id LIMIT {limit}",
        d_filters.where_sql()
    );
    let o_filters = Filters::new(q, false, false);
    let o_sql = format!(
        "SELECT {OVERRIDE_COLUMNS} FROM overrides {} ORDER BY time_ms, id LIMIT {limit}",
        o_filters.where_sql()
    );
    ((d_sql, d_filters), (o_sql, o_filters))
}

impl AuditReader {
    /// Open an existing audit database read-only.
    pub fn open(path: &Path) -> Result<AuditReader, AuditStoreError> {
        if std::fs::symlink_metadata(path).is_err() {
            return Err(AuditStoreError::Missing {
                path: path.to_path_buf(),
            });
        }
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY
                | OpenFlags::SQLITE_OPEN_NOFOLLOW
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|source| AuditStoreError::Open {
            path: path.to_path_buf(),
            source,
        })?;
        conn.busy_timeout(Duration::from_secs(2))
            .map_err(|source| AuditStoreError::Open {
                path: path.to_path_buf(),
                source,
            })?;
        let found = schema::user_version(&conn).map_err(|source| AuditStoreError::Schema {
            path: path.to_path_buf(),
            source,
        })?;
        if found != LATEST_VERSION {
            if found > LATEST_VERSION {
                return Err(AuditStoreError::Schema {
                    path: path.to_path_buf(),
                    source: SchemaError::TooNew {
                        found,
                        supported: LATEST_VERSION,
                    },
                });
            }
            return Err(AuditStoreError::OldSchema {
                path: path.to_path_buf(),
                found,
                expected: LATEST_VERSION,
            });
        }
        Ok(AuditReader {
            conn,
            path: path.to_path_buf(),
        })
    }

    fn query_err(&self) -> impl Fn(rusqlite::Error) -> AuditStoreError + '_ {
        move |source| AuditStoreError::Query {
            path: self.path.clone(),
            source,
        }
    }

    /// The newest decisions matching `q` (newest first), at most `q.limit` (default 100).
    pub fn query(&self, q: &AuditQuery) -> Result<Vec<StoredDecision>, AuditStoreError> {
        let has_path = q
            .path_prefix
            .as_deref()
            .is_some_and(|p| !p.trim_end_matches('/').is_empty());
        if has_path {
            return self.query_by_path(q);
        }
        let (sql, filters) = query_sql(q);
        let mut stmt = self.conn.prepare_cached(&sql).map_err(self.query_err())?;
        let rows = stmt
            .query_map(filters.param_refs().as_slice(), decision_from_row)
            .map_err(self.query_err())?;
        rows.collect::<Result<Vec<_>, _>>()
            .map_err(self.query_err())
    }

    /// A query with a path filter: day by day, newest first, until `limit` ids are found, then
    /// whole rows for those ids. Costs one index probe per day that holds no match (about
    /// 10-20 µs each), so a path that matches nothing in a year of retained records costs a few
    /// milliseconds.
    fn query_by_path(&self, q: &AuditQuery) -> Result<Vec<StoredDecision>, AuditStoreError> {
        let limit = q.limit.unwrap_or(100);
        let (first, last): (Option<i64>, Option<i64>) = self
            .conn
            // Two subqueries: SQLite answers a lone min() or max() from the index, but scans
            // the whole table for both in one SELECT.
            .query_row(
                "SELECT (SELECT min(time_ms) FROM decisions), (SELECT max(time_ms) FROM decisions)",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .map_err(self.query_err())?;
        let (Some(first), Some(last)) = (first, last) else {
            return Ok(Vec::new());
        };
        let lo = q.since_ms.map_or(first, |s| s.max(first));
        let hi = q.until_ms.map_or(last, |u| u.saturating_sub(1).min(last));
        let mut ids: Vec<i64> = Vec::new();
        if lo <= hi && limit > 0 {
            let (sql, filters, _) = path_day_sql(q);
            let mut stmt = self.conn.prepare_cached(&sql).map_err(self.query_err())?;
            // `/` truncates like SQLite's integer division.
            for day in (lo / DAY_MS..=hi / DAY_MS).rev() {
                let wanted = (limit - ids.len()) as i64;
                let mut params = filters.param_refs();
                params.push(&day);
                params.push(&wanted);
                let found = stmt
                    .query_map(params.as_slice(), |r| r.get::<_, i64>(0))
                    .map_err(self.query_err())?;
                for id in found {
                    ids.push(id.map_err(self.query_err())?);
                }
                if ids.len() >= limit {
                    break;
                }
            }
        }
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let id_list = serde_json::to_string(&ids).expect("a list of integers serializes");
        let mut stmt = self
            .conn
            .prepare_cached(&format!(
                "SELECT {DECISION_COLUMNS} FROM decisions \
                 WHERE id IN (SELECT value FROM json_each(?1)) ORDER BY time_ms DESC, id DESC"
            ))
            .map_err(self.query_err())?;
        let rows = stmt
            .query_map([id_list], decision_from_row)
            .map_err(self.query_err())?;
        rows.collect::<Result<Vec<_>, _>>()
            .map_err(self.query_err())
    }

    /// The newest override events (newest first), filtered by path and time.
    pub fn overrides(&self, q: &AuditQuery) -> Result<Vec<StoredOverride>, AuditStoreError> {
        let filters = Filters::new(q, false, true);
        let limit = q.limit.unwrap_or(100) as i64;
        let sql = format!(
            "SELECT {OVERRIDE_COLUMNS} FROM overrides {} ORDER BY time_ms DESC, id DESC LIMIT {limit}",
            filters.where_sql()
        );
        let mut stmt = self.conn.prepare(&sql).map_err(self.query_err())?;
        let rows = stmt
            .query_map(filters.param_refs().as_slice(), override_from_row)
            .map_err(self.query_err())?;
        rows.collect::<Result<Vec<_>, _>>()
            .map_err(self.query_err())
    }

    /// Write every decision and override event matching `q`, oldest first, to `out`, one row at
    /// a time (memory does not grow with the database). Override events are included unless a
    /// decision-only filter (agent, op, verdict) is set. Returns the number of records written.
    pub fn export(
        &self,
        q: &AuditQuery,
        format: ExportFormat,
        out: &mut dyn Write,
    ) -> Result<u64, AuditStoreError> {
        let ((d_sql, d_filters), (o_sql, o_filters)) = export_sql(q);
        let mut d_stmt = self.conn.prepare(&d_sql).map_err(self.query_err())?;
        let mut o_stmt = self.conn.prepare(&o_sql).map_err(self.query_err())?;
        let mut decisions = d_stmt
            .query_map(d_filters.param_refs().as_slice(), decision_from_row)
            .map_err(self.query_err())?
            .peekable();
        let with_overrides = !q.decisions_only();
        let mut overrides = o_stmt
            .query_map(o_filters.param_refs().as_slice(), override_from_row)
            .map_err(self.query_err())?
            .filter(|_| with_overrides)
            .peekable();
        if format == ExportFormat::Csv {
            writeln!(out, "{}", CSV_HEADER).map_err(AuditStoreError::Output)?;
        }
        let mut written = 0u64;
        // Merge the two time-ordered streams.
        loop {
            if q.limit.is_some_and(|l| written >= l as u64) {
                break;
            }
            let take_decision = match (decisions.peek(), overrides.peek()) {
                (None, None) => break,
                (Some(_), None) => true,
                (None, Some(_)) => false,
                (Some(Ok(d)), Some(Ok(o))) => d.record.time_ms <= o.event.time_ms,
                (Some(Err(_)), _) => true,
                (_, Some(Err(_))) => false,
            };
            if take_decision {
                let d = decisions
                    .next()
                    .expect("peeked")
                    .map_err(self.query_err())?;
                write_decision(&d, format, out)?;
            } else {
                let o = overrides
                    .next()
                    .expect("peeked")
                    .map_err(self.query_err())?;
                write_override(&o, format, out)?;
            }
            written += 1;
        }
        out.flush().map_err(AuditStoreError::Output)?;
        Ok(written)
    }
}

fn bad_column(idx: usize, error: UnknownName) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(idx, rusqlite::types::Type::Text, Box::new(error))
}

fn decision_from_row(row: &Row<'_>) -> rusqlite::Result<StoredDecision> {
    let time_ms: i64 = row.get(1)?;
    let op: String = row.get(7)?;
    let rule: Option<String> = row.get(11)?;
    let verdict: String = row.get(12)?;
    let mode: String = row.get(13)?;
    Ok(StoredDecision {
        event_id: row.get(0)?,
        time: rfc3339_from_millis(time_ms),
        record: DecisionRecord {
            time_ms,
            agent: row.get(2)?,
            agent_pid: row.get(3)?,
            pid: row.get(4)?,
            start_key: row.get::<_, i64>(5)? as u64,
            exe: row.get(6)?,
            op: op.parse().map_err(|e| bad_column(7, e))?,
            path: row.get(8)?,
            dest: row.get(9)?,
            zone: row.get(10)?,
            rule: rule.as_deref().map(RuleId::from_name),
            verdict: verdict.parse().map_err(|e| bad_column(12, e))?,
            mode: mode.parse().map_err(|e| bad_column(13, e))?,
            policy_version: row.get(14)?,
        },
    })
}

fn override_from_row(row: &Row<'_>) -> rusqlite::Result<StoredOverride> {
    let time_ms: i64 = row.get(1)?;
    let kind: String = row.get(2)?;
    Ok(StoredOverride {
        event_id: row.get(0)?,
        time: rfc3339_from_millis(time_ms),
        event: OverrideEvent {
            time_ms,
            kind: kind.parse().map_err(|e| bad_column(2, e))?,
            override_id: row.get(3)?,
            path: row.get(4)?,
            ops: {
                let ops: String = row.get(5)?;
                ops.parse().map_err(|e| bad_column(5, e))?
            },
            who: row.get(6)?,
            ttl_secs: row.get::<_, Option<i64>>(7)?.map(|t| t as u64),
        },
    })
}

/// The JSONL export line of a decision, in the audit schema of the reference design
/// (timestamp, event_id, actor, action, decision, policy_id, context).
pub fn decision_export_json(d: &StoredDecision) -> serde_json::Value {
    let r = &d.record;
    serde_json::json!({
        "timestamp": d.time,
        "event_id": format!("decision-{}", d.event_id),
        "actor": {
            "type": "agent",
            "id": r.agent,
            "agent_pid": r.agent_pid,
            "pid": r.pid,
            "process_key": format!("{}:{}", r.pid, r.start_key),
            "exe": r.exe,
        },
        "action": {
            "type": r.op.as_str(),
            "path": r.path,
            "dest": r.dest,
        },
        "decision": r.verdict.as_str().to_ascii_uppercase(),
        "policy_id": r.policy_version,
        "context": {
            "zone": r.zone,
            "rule": r.rule,
            "mode": r.mode.as_str(),
        },
    })
}

/// The JSONL export line of an override event, in the same schema.
pub fn override_export_json(o: &StoredOverride) -> serde_json::Value {
    let e = &o.event;
    let actor_type = match e.kind {
        OverrideEventKind::Request => "agent",
        OverrideEventKind::Expire => "system",
        _ => "user",
    };
    serde_json::json!({
        "timestamp": o.time,
        "event_id": format!("override-{}", o.event_id),
        "actor": { "type": actor_type, "id": e.who },
        "action": {
            "type": format!("override_{}", e.kind.as_str()),
            "path": e.path,
            "ops": e.ops,
            "override_id": e.override_id,
            "ttl_secs": e.ttl_secs,
        },
        "decision": e.kind.as_str().to_ascii_uppercase(),
        "policy_id": null,
        "context": {},
    })
}

/// Columns of the CSV export: one layout for both kinds of record (`kind` says which).
pub const CSV_HEADER: &str = "kind,event_id,timestamp,agent,agent_pid,pid,start_key,exe,op,\
path,dest,zone,rule,verdict,mode,policy_version,override_event,override_id,ops,who,ttl_secs";

fn write_decision(
    d: &StoredDecision,
    format: ExportFormat,
    out: &mut dyn Write,
) -> Result<(), AuditStoreError> {
    let r = &d.record;
    match format {
        ExportFormat::Jsonl => {
            serde_json::to_writer(&mut *out, &decision_export_json(d))
                .map_err(|e| AuditStoreError::Output(e.into()))?;
            out.write_all(b"\n").map_err(AuditStoreError::Output)
        }
        ExportFormat::Csv => {
            let fields: [&str; 21] = [
                "decision",
                &d.event_id.to_string(),
                &d.time,
                &r.agent,
                &r.agent_pid.to_string(),
                &r.pid.to_string(),
                &r.start_key.to_string(),
                &r.exe,
                r.op.as_str(),
                &r.path,
                r.dest.as_deref().unwrap_or(""),
                r.zone.as_deref().unwrap_or(""),
                r.rule.as_ref().map_or("", RuleId::as_str),
                r.verdict.as_str(),
                r.mode.as_str(),
                &r.policy_version,
                "",
                "",
                "",
                "",
                "",
            ];
            write_csv_row(&fields, out)
        }
    }
}

fn write_override(
    o: &StoredOverride,
    format: ExportFormat,
    out: &mut dyn Write,
) -> Result<(), AuditStoreError> {
    let e = &o.event;
    match format {
        ExportFormat::Jsonl => {
            serde_json::to_writer(&mut *out, &override_export_json(o))
                .map_err(|e| AuditStoreError::Output(e.into()))?;
            out.write_all(b"\n").map_err(AuditStoreError::Output)
        }
        ExportFormat::Csv => {
            let ttl = e.ttl_secs.map(|t| t.to_string()).unwrap_or_default();
            let ops = e.ops.to_string();
            let fields: [&str; 21] = [
                "override",
                &o.event_id.to_string(),
                &o.time,
                "",
                "",
                "",
                "",
                "",
                "",
                &e.path,
                "",
                "",
                "",
                "",
                "",
                "",
                e.kind.as_str(),
                &e.override_id,
                &ops,
                &e.who,
                &ttl,
            ];
            write_csv_row(&fields, out)
        }
    }
}

/// One RFC 4180 row. A field is quoted when it holds a comma, quote, CR or LF. A field that a
/// spreadsheet would read as a formula (starting with `=`, `+`, `-`, `@`, tab or CR: an agent
/// chooses file names and could plant `=HYPERLINK(...)`) is prefixed with `'`, as OWASP
/// recommends; absolute paths and numbers never start with those characters, so real values are
/// unchanged. Hand-written rather than the `csv` crate: these ten lines are the whole need.
fn write_csv_row(fields: &[&str], out: &mut dyn Write) -> Result<(), AuditStoreError> {
    let mut line = String::new();
    for (i, field) in fields.iter().enumerate() {
        if i > 0 {
            line.push(',');
        }
        let guarded;
        let field = if field.starts_with(['=', '+', '-', '@', '\t', '\r']) {
            guarded = format!("'{field}");
            guarded.as_str()
        } else {
            field
        };
        if field.contains([',', '"', '\r', '\n']) {
            line.push('"');
            line.push_str(&field.replace('"', "\"\""));
            line.push('"');
        } else {
            line.push_str(field);
        }
    }
    line.push('\n');
    out.write_all(line.as_bytes())
        .map_err(AuditStoreError::Output)
}

#[cfg(test)]
#[path = "store_tests.rs"]
mod tests;
