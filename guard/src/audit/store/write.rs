//! Writing the audit trail: the [`Sink`] that commits each batch from the queued writer in one
//! transaction (all its rows or none), retrying a failing batch before counting it as dropped.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime};

use rusqlite::types::Value;
use rusqlite::{params, params_from_iter, Connection, OpenFlags};

use super::chain::{self, Chain};
use super::records::{DecisionRecord, KeptRecord, KeptUpdate, OverrideEvent};
use super::schema;
use super::{AuditStoreError, Retention};
use crate::audit::queue::{Counters, Sink};
use crate::vocab::time::unix_millis;
use crate::vocab::RuleId;

const INSERT_DECISION: &str = "INSERT INTO decisions (id, time_ms, agent, agent_pid, pid, \
     start_key, exe, op, path, dest, zone, rule, verdict, mode, policy_version, argv, count, hash) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)";
const INSERT_KEPT: &str = "INSERT OR REPLACE INTO kept (time_ms, session, seq, agent, \
     agent_pid, pid, exe, op, rule, path, dest, kind, how, store_name, size, mode, mtime_ns, \
     sha256, end_state, new_in_session) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, \
     ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20)";
const INSERT_OVERRIDE: &str = "INSERT INTO overrides (id, time_ms, event, override_id, path, ops, \
     who, ttl_secs, hash) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)";

/// A decision's values in [`Chain::columns`] order, `id` first: what is inserted and hashed.
pub(super) fn decision_values(id: i64, d: &DecisionRecord) -> Vec<Value> {
    let text = |s: &str| Value::Text(s.to_string());
    let opt = |s: Option<&str>| s.map_or(Value::Null, |s| Value::Text(s.to_string()));
    vec![
        Value::Integer(id),
        Value::Integer(d.time_ms),
        text(&d.agent),
        Value::Integer(i64::from(d.agent_pid)),
        Value::Integer(i64::from(d.pid)),
        Value::Integer(d.start_key as i64),
        text(&d.exe),
        text(d.op.as_str()),
        text(&d.path),
        opt(d.dest.as_deref()),
        opt(d.zone.as_deref()),
        opt(d.rule.as_ref().map(RuleId::as_str)),
        text(d.verdict.as_str()),
        text(d.mode.as_str()),
        text(&d.policy_version),
        d.argv
            .as_ref()
            .and_then(|a| serde_json::to_string(a).ok())
            .map_or(Value::Null, Value::Text),
        Value::Integer(d.count as i64),
    ]
}

/// An override event's values in [`Chain::columns`] order.
pub(super) fn override_values(id: i64, o: &OverrideEvent) -> Vec<Value> {
    vec![
        Value::Integer(id),
        Value::Integer(o.time_ms),
        Value::Text(o.kind.as_str().to_string()),
        Value::Text(o.override_id.clone()),
        Value::Text(o.path.clone()),
        Value::Text(o.ops.to_string()),
        Value::Text(o.who.clone()),
        o.ttl_secs.map_or(Value::Null, |t| Value::Integer(t as i64)),
    ]
}

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
    /// Allowed decisions not stored because the trail was over its size with only records
    /// younger than their age left (see `retention`).
    pub allowed_dropped_full: AtomicU64,
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
    /// Set by retention when deleting every allowed decision did not bring the trail under its
    /// size: new allowed decisions are then dropped (and counted) so that denials, audits and
    /// override events, never deleted before their age, keep their room.
    pub full: bool,
}

/// One batch, split by table.
struct Batch {
    decisions: Vec<DecisionRecord>,
    overrides: Vec<OverrideEvent>,
    kept: Vec<KeptRecord>,
    updates: Vec<KeptUpdate>,
}

/// A hash computed while its row still waits in the same batch goes into the row (one insert
/// rather than an insert and an update); any other update is handed back, to run after the
/// rows in order.
pub(super) fn fold_hash(
    kept: &mut [KeptRecord],
    kept_at: &HashMap<u64, usize>,
    update: KeptUpdate,
) -> Option<KeptUpdate> {
    match update {
        KeptUpdate::Hash {
            session,
            seq,
            sha256,
        } => {
            // Entry numbers are per session: a row of another session with the same number is
            // left alone (the update then runs as an UPDATE).
            let row = kept_at
                .get(&seq)
                .and_then(|&i| kept.get_mut(i))
                .filter(|row| row.session == session);
            match row {
                Some(row) => {
                    row.sha256 = Some(sha256);
                    None
                }
                None => Some(KeptUpdate::Hash {
                    session,
                    seq,
                    sha256,
                }),
            }
        }
        other => Some(other),
    }
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
        // The kept rows of this batch by entry number, for the hashes that come with them.
        let mut kept_at: HashMap<u64, usize> = HashMap::new();
        for record in records {
            match record {
                StoreRecord::Decision(d) => batch.decisions.push(*d),
                StoreRecord::Override(o) => batch.overrides.push(*o),
                StoreRecord::Kept(k) => {
                    kept_at.insert(k.seq, batch.kept.len());
                    batch.kept.push(*k);
                }
                StoreRecord::KeptUpdate(u) => {
                    if let Some(u) = fold_hash(&mut batch.kept, &kept_at, *u) {
                        batch.updates.push(u);
                    }
                }
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
                Ok((decisions, overrides)) => {
                    let c = &counters.extra;
                    add(&c.batches, 1);
                    add(&c.decisions_written, decisions);
                    add(&c.overrides_written, overrides);
                    let offered = (batch.decisions.len() + batch.overrides.len()) as u64;
                    add(&c.allowed_dropped_full, offered - decisions - overrides);
                    add(&c.kept_written, batch.kept.len() as u64);
                    let kept = (batch.kept.len() + batch.updates.len()) as u64;
                    add(&counters.written, decisions + overrides + kept);
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

    /// One transaction for the whole batch: all its rows are committed, or none. Each row gets
    /// the next id and its link in its chain; the chains' heads are read and written inside the
    /// transaction (under SQLite's write lock), so two supervisors sharing one trail extend the
    /// same chains rather than forking them. Returns the rows inserted (allowed decisions are
    /// left out while the trail is `full`).
    fn try_commit(&mut self, batch: &Batch) -> rusqlite::Result<(u64, u64)> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let mut heads = [
            chain::load_head(&tx, Chain::Kept)?,
            chain::load_head(&tx, Chain::Allowed)?,
            chain::load_head(&tx, Chain::Overrides)?,
        ];
        let (mut decisions, mut overrides) = (0u64, 0u64);
        {
            let next = |table: &str| -> rusqlite::Result<i64> {
                tx.query_row(
                    &format!("SELECT coalesce(max(id), 0) + 1 FROM {table}"),
                    [],
                    |r| r.get(0),
                )
            };
            let mut id = next("decisions")?;
            let mut insert = tx.prepare_cached(INSERT_DECISION)?;
            for d in &batch.decisions {
                let allowed = d.verdict == crate::vocab::Decision::Allow;
                if allowed && self.full {
                    continue;
                }
                let head = &mut heads[usize::from(allowed)];
                let mut values = decision_values(id, d);
                let hash = chain::row_hash(head.head_hash.as_deref(), &values);
                values.push(Value::Blob(hash.clone()));
                insert.execute(params_from_iter(values))?;
                head.head_id = id;
                head.head_hash = Some(hash);
                id += 1;
                decisions += 1;
            }
            let mut insert = tx.prepare_cached(INSERT_OVERRIDE)?;
            for (id, o) in (next("overrides")?..).zip(&batch.overrides) {
                let head = &mut heads[2];
                let mut values = override_values(id, o);
                let hash = chain::row_hash(head.head_hash.as_deref(), &values);
                values.push(Value::Blob(hash.clone()));
                insert.execute(params_from_iter(values))?;
                head.head_id = id;
                head.head_hash = Some(hash);
                overrides += 1;
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
                    k.new_in_session,
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
        for (chain, head) in Chain::ALL.into_iter().zip(&heads) {
            chain::save_head(&tx, chain, head)?;
        }
        tx.commit()?;
        Ok((decisions, overrides))
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
