//! Writing the audit trail: the [`Sink`] that commits each batch from the queued writer in one
//! transaction (all its rows or none), retrying a failing batch before counting it as dropped.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime};

use rusqlite::{params, Connection, OpenFlags};

use super::records::{DecisionRecord, KeptRecord, KeptUpdate, OverrideEvent};
use super::schema;
use super::{AuditStoreError, Retention};
use crate::audit::queue::{Counters, Sink};
use crate::vocab::time::unix_millis;
use crate::vocab::RuleId;

const INSERT_DECISION: &str = "INSERT INTO decisions (time_ms, agent, agent_pid, pid, start_key, \
     exe, op, path, dest, zone, rule, verdict, mode, policy_version) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)";
const INSERT_KEPT: &str = "INSERT OR REPLACE INTO kept (time_ms, session, seq, agent, \
     agent_pid, pid, exe, op, rule, path, dest, kind, how, store_name, size, mode, mtime_ns, \
     sha256, end_state) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, \
     ?16, ?17, ?18, ?19)";
const INSERT_OVERRIDE: &str = "INSERT INTO overrides (time_ms, event, override_id, path, ops, \
     who, ttl_secs) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";

/// What the queue carries to the store.
pub(super) enum StoreRecord {
    Decision(Box<DecisionRecord>),
    Override(Box<OverrideEvent>),
    Kept(Box<KeptRecord>),
    KeptUpdate(Box<KeptUpdate>),
}

/// Requests to the writer thread other than records.
pub(super) enum StoreControl {
    /// A reloaded policy's retention, applied at the next retention run.
    SetRetention(Retention),
    /// Run retention now and answer with the rows it deleted.
    EnforceRetention(mpsc::Sender<rusqlite::Result<u64>>),
    /// The store's entries of these sessions were purged: forget their rows.
    ForgetSessions(Vec<String>),
}

/// The store's own counters, beside the writer's.
#[derive(Default)]
pub(super) struct StoreStats {
    pub decisions_written: AtomicU64,
    pub overrides_written: AtomicU64,
    pub kept_written: AtomicU64,
    pub retries: AtomicU64,
    pub batches: AtomicU64,
    pub retention_deleted: AtomicU64,
}

fn add(counter: &AtomicU64, n: u64) {
    Counters::<StoreStats>::add(counter, n);
}

/// The writer thread's connection and what it needs to commit and enforce retention.
pub(super) struct StoreSink {
    pub conn: Connection,
    pub path: PathBuf,
    pub attempts: u32,
    pub retention: Retention,
    pub retention_interval: Duration,
    pub next_retention: Instant,
}

/// One batch, split by table.
struct Batch {
    decisions: Vec<DecisionRecord>,
    overrides: Vec<OverrideEvent>,
    kept: Vec<KeptRecord>,
    updates: Vec<KeptUpdate>,
}

impl Sink for StoreSink {
    type Record = StoreRecord;
    type Control = StoreControl;
    type Stats = StoreStats;

    fn write(&mut self, records: Vec<StoreRecord>, counters: &Counters<StoreStats>) {
        let mut batch = Batch {
            decisions: Vec::with_capacity(records.len()),
            overrides: Vec::new(),
            kept: Vec::new(),
            updates: Vec::new(),
        };
        for record in records {
            match record {
                StoreRecord::Decision(d) => batch.decisions.push(*d),
                StoreRecord::Override(o) => batch.overrides.push(*o),
                StoreRecord::Kept(k) => batch.kept.push(*k),
                StoreRecord::KeptUpdate(u) => batch.updates.push(*u),
            }
        }
        self.commit(&batch, counters);
    }

    fn control(&mut self, control: StoreControl, counters: &Counters<StoreStats>) {
        match control {
            StoreControl::SetRetention(retention) => self.retention = retention,
            StoreControl::EnforceRetention(ack) => {
                let _ = ack.send(self.run_retention(counters));
            }
            StoreControl::ForgetSessions(sessions) => {
                for session in sessions {
                    if let Err(e) = self
                        .conn
                        .execute("DELETE FROM kept WHERE session = ?1", [&session])
                    {
                        counters.error(format!("forgetting the purged session {session}: {e}"));
                    }
                }
            }
        }
    }

    fn next_tick(&self) -> Option<Duration> {
        Some(
            self.next_retention
                .saturating_duration_since(Instant::now()),
        )
    }

    fn tick(&mut self, counters: &Counters<StoreStats>) {
        if Instant::now() >= self.next_retention {
            let _ = self.run_retention(counters);
        }
    }

    fn close(&mut self, _: &Counters<StoreStats>) {
        // Leave a small WAL and fresh planner statistics behind.
        let _ = self.conn.execute_batch("PRAGMA optimize;");
        let _ = self
            .conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
    }
}

impl StoreSink {
    /// Retention now: count what it deleted, report a failure, and schedule the next run.
    fn run_retention(&mut self, counters: &Counters<StoreStats>) -> rusqlite::Result<u64> {
        let result = self.enforce_retention(unix_millis(SystemTime::now()));
        match &result {
            Ok(deleted) => add(&counters.extra.retention_deleted, *deleted),
            Err(e) => counters.error(format!("retention: {e}")),
        }
        self.next_retention = Instant::now() + self.retention_interval;
        result
    }

    fn commit(&mut self, batch: &Batch, counters: &Counters<StoreStats>) {
        let n = (batch.decisions.len()
            + batch.overrides.len()
            + batch.kept.len()
            + batch.updates.len()) as u64;
        if n == 0 {
            return;
        }
        for attempt in 1..=self.attempts {
            match self.try_commit(batch) {
                Ok(()) => {
                    let c = &counters.extra;
                    add(&c.batches, 1);
                    add(&c.decisions_written, batch.decisions.len() as u64);
                    add(&c.overrides_written, batch.overrides.len() as u64);
                    add(&c.kept_written, batch.kept.len() as u64);
                    add(&counters.written, n);
                    return;
                }
                Err(e) => {
                    counters.error(format!(
                        "committing {n} records to {} (attempt {attempt} of {}): {e}",
                        self.path.display(),
                        self.attempts
                    ));
                    if attempt < self.attempts {
                        add(&counters.extra.retries, 1);
                        std::thread::sleep(Duration::from_millis(50 << attempt.min(5)));
                    }
                }
            }
        }
        add(&counters.dropped_write_failed, n);
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
            let mut insert = tx.prepare_cached(INSERT_KEPT)?;
            for k in &batch.kept {
                insert.execute(params![
                    k.time_ms,
                    k.session,
                    k.seq as i64,
                    k.agent,
                    k.agent_pid,
                    k.pid,
                    k.exe,
                    k.op.as_str(),
                    k.rule.as_str(),
                    k.path,
                    k.dest,
                    k.kind.as_str(),
                    k.how.as_str(),
                    k.store_name,
                    k.size as i64,
                    k.mode,
                    k.mtime_ns,
                    k.sha256,
                    k.end_state,
                ])?;
            }
            // Updates come after the rows they update (the queue keeps their order).
            for u in &batch.updates {
                match u {
                    KeptUpdate::Hash {
                        session,
                        seq,
                        sha256,
                    } => tx
                        .prepare_cached(
                            "UPDATE kept SET sha256 = ?3 WHERE session = ?1 AND seq = ?2",
                        )?
                        .execute(params![session, *seq as i64, sha256])?,
                    KeptUpdate::EndState {
                        session,
                        path,
                        state,
                    } => tx
                        .prepare_cached(
                            "UPDATE kept SET end_state = ?3 WHERE session = ?1 AND path = ?2",
                        )?
                        .execute(params![session, path, state.to_text()])?,
                };
            }
        }
        tx.commit()
    }
}

pub(super) fn open_for_writing(path: &Path) -> Result<Connection, AuditStoreError> {
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
