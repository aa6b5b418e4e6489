//! The audit database's schema and its migrations, versioned with `PRAGMA user_version`.
//!
//! `MIGRATIONS[i]` takes a database from version `i` to `i + 1`; each runs in its own
//! transaction together with the version bump, so a crash mid-migration leaves the previous
//! version intact. A released migration must never be edited: add a new one.

use rusqlite::Connection;

/// Version 1: decisions and override events, indexed by time only.
pub const V1: &str = "
CREATE TABLE decisions (
    id          INTEGER PRIMARY KEY,
    time_ms     INTEGER NOT NULL,
    agent       TEXT    NOT NULL,
    agent_pid   INTEGER NOT NULL,
    pid         INTEGER NOT NULL,
    start_key   INTEGER NOT NULL,
    exe         TEXT    NOT NULL,
    op          TEXT    NOT NULL,
    path        TEXT    NOT NULL,
    dest        TEXT,
    zone        TEXT,
    rule        TEXT,
    verdict     TEXT    NOT NULL CHECK (verdict IN ('allow', 'deny', 'audit'))
);
CREATE INDEX decisions_time ON decisions (time_ms);
CREATE TABLE overrides (
    id          INTEGER PRIMARY KEY,
    time_ms     INTEGER NOT NULL,
    event       TEXT    NOT NULL
                CHECK (event IN ('request', 'approve', 'deny', 'revoke', 'expire')),
    override_id TEXT    NOT NULL,
    path        TEXT    NOT NULL,
    ops         TEXT    NOT NULL,
    who         TEXT    NOT NULL,
    ttl_secs    INTEGER
);
CREATE INDEX overrides_time ON overrides (time_ms);
";

/// Version 2: the enforcement mode and policy version of each decision (rows from version 1 were
/// all enforce-mode, policy unknown), and one index per query filter. Each filter index ends
/// with `time_ms` so that "newest N matching" is a backwards index scan, not a sort.
///
/// The verdict indexes are partial, one per non-allow verdict (SQLite uses a partial index only
/// when the query repeats its WHERE term exactly): allows are most rows, "newest allowed" is
/// found at once by walking the time index, and not indexing allows saves an index insert per
/// allow.
///
/// The path index leads with the day (`time_ms / 86400000`): an index on the path alone takes
/// each insert at a random place in the whole index, so every batch dirtied (and wrote to the
/// WAL) thousands of pages and inserts ran 3-4 times slower. Led by the day, inserts land in
/// today's small slice; a path query walks the days newest first (see `AuditReader::query`).
pub const V2: &str = "
ALTER TABLE decisions ADD COLUMN mode TEXT NOT NULL DEFAULT 'enforce'
    CHECK (mode IN ('enforce', 'audit'));
ALTER TABLE decisions ADD COLUMN policy_version TEXT NOT NULL DEFAULT '';
CREATE INDEX decisions_agent_time   ON decisions (agent, time_ms);
CREATE INDEX decisions_op_time      ON decisions (op, time_ms);
CREATE INDEX decisions_deny_time    ON decisions (time_ms) WHERE verdict = 'deny';
CREATE INDEX decisions_audit_time   ON decisions (time_ms) WHERE verdict = 'audit';
CREATE INDEX decisions_day_path     ON decisions (time_ms / 86400000, path, time_ms);
";

/// Version 3: the record survives an attack on it (issue 16, item 9).
/// - `argv`: an exec's arguments as a JSON array; `count`: how many decisions a row stands for
///   (a summary of repeated denials, `audit::aggregate`).
/// - `hash`: a hash chain. Every row's hash is SHA-256 over the previous row's hash in its chain
///   and the row's own values (id included), so `agent-guard audit verify` finds a row removed
///   from the middle or altered. Three chains: the decisions that retention keeps until their
///   age (deny and audit), the allowed decisions (the first to go when the trail is over its
///   size), and the override events. Retention only ever removes the oldest rows of a chain;
///   `chain_heads` keeps each chain's newest row (`head_*`) and the last row removed from its
///   start (`anchor_*`), so a verification knows where the chain must begin and end. Rows from
///   before version 3 have no hash and are reported as not covered.
pub const V3: &str = "
ALTER TABLE decisions ADD COLUMN argv TEXT;
ALTER TABLE decisions ADD COLUMN count INTEGER NOT NULL DEFAULT 1;
ALTER TABLE decisions ADD COLUMN hash BLOB;
ALTER TABLE overrides ADD COLUMN hash BLOB;
CREATE TABLE chain_heads (
    chain       TEXT    PRIMARY KEY,
    head_id     INTEGER NOT NULL DEFAULT 0,
    head_hash   BLOB,
    anchor_id   INTEGER NOT NULL DEFAULT 0,
    anchor_hash BLOB
);
";

/// Version 4: snapshots (issue 14). The verdicts `keep` and `would_keep` (a CHECK constraint
/// cannot be altered in place, so `decisions` is rebuilt, as SQLite's documentation describes,
/// with its rows, ids, hashes and indexes: the hash chains of version 3 still verify), and
/// `kept`: one row per path an agent's operation destroyed and a sensor kept in the snapshot store, with its content hash (filled in after the fact, off the
/// decision path) and the state the session left the path in (filled in when it ends), which
/// `agent-guard undo` compares with what is there now.
pub const V4: &str = "
CREATE TABLE decisions_v4 (
    id             INTEGER PRIMARY KEY,
    time_ms        INTEGER NOT NULL,
    agent          TEXT    NOT NULL,
    agent_pid      INTEGER NOT NULL,
    pid            INTEGER NOT NULL,
    start_key      INTEGER NOT NULL,
    exe            TEXT    NOT NULL,
    op             TEXT    NOT NULL,
    path           TEXT    NOT NULL,
    dest           TEXT,
    zone           TEXT,
    rule           TEXT,
    verdict        TEXT    NOT NULL
                   CHECK (verdict IN ('allow', 'deny', 'audit', 'keep', 'would_keep')),
    mode           TEXT    NOT NULL DEFAULT 'enforce' CHECK (mode IN ('enforce', 'audit')),
    policy_version TEXT    NOT NULL DEFAULT '',
    argv           TEXT,
    count          INTEGER NOT NULL DEFAULT 1,
    hash           BLOB
);
INSERT INTO decisions_v4 (id, time_ms, agent, agent_pid, pid, start_key, exe, op, path, dest,
        zone, rule, verdict, mode, policy_version, argv, count, hash)
    SELECT id, time_ms, agent, agent_pid, pid, start_key, exe, op, path, dest, zone, rule,
        verdict, mode, policy_version, argv, count, hash FROM decisions;
DROP TABLE decisions;
ALTER TABLE decisions_v4 RENAME TO decisions;
CREATE INDEX decisions_time         ON decisions (time_ms);
CREATE INDEX decisions_agent_time   ON decisions (agent, time_ms);
CREATE INDEX decisions_op_time      ON decisions (op, time_ms);
CREATE INDEX decisions_deny_time    ON decisions (time_ms) WHERE verdict = 'deny';
CREATE INDEX decisions_audit_time   ON decisions (time_ms) WHERE verdict = 'audit';
CREATE INDEX decisions_day_path     ON decisions (time_ms / 86400000, path, time_ms);
CREATE TABLE kept (
    id          INTEGER PRIMARY KEY,
    time_ms     INTEGER NOT NULL,
    session     TEXT    NOT NULL,
    seq         INTEGER NOT NULL,
    agent       TEXT    NOT NULL,
    agent_pid   INTEGER NOT NULL,
    pid         INTEGER NOT NULL,
    exe         TEXT    NOT NULL,
    op          TEXT    NOT NULL,
    rule        TEXT    NOT NULL,
    path        TEXT    NOT NULL,
    dest        TEXT,
    kind        TEXT    NOT NULL CHECK (kind IN ('file', 'dir', 'symlink', 'other')),
    how         TEXT    NOT NULL
                CHECK (how IN ('moved', 'linked', 'reflinked', 'copied', 'recorded', 'not_kept')),
    store_name  TEXT,
    size        INTEGER NOT NULL,
    mode        INTEGER NOT NULL,
    mtime_ns    INTEGER NOT NULL,
    sha256      TEXT,
    end_state   TEXT,
    UNIQUE (session, seq)
);
CREATE INDEX kept_time ON kept (time_ms);
CREATE INDEX kept_path ON kept (path, time_ms);
";

/// Version 5: whether a kept entry's path was one the agent session had made itself (issue
/// 14's first known limit): a bulk `undo restore` leaves such entries out unless asked. Rows
/// from version 4 were kept before the sensors noted it: not new, so they restore as before.
pub const V5: &str = "
ALTER TABLE kept ADD COLUMN new_in_session INTEGER NOT NULL DEFAULT 0
    CHECK (new_in_session IN (0, 1));
";

pub const MIGRATIONS: &[&str] = &[V1, V2, V3, V4, V5];

/// The schema version this build writes and reads.
pub const LATEST_VERSION: u32 = MIGRATIONS.len() as u32;

/// A database this build cannot use.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    #[error("the audit database has schema version {found}, newer than the {supported} this agent-guard knows; upgrade agent-guard")]
    TooNew { found: u32, supported: u32 },
    #[error("migrating the audit database from version {from}: {source}")]
    Migration { from: u32, source: rusqlite::Error },
    #[error("reading the audit database's schema version: {0}")]
    Version(rusqlite::Error),
}

pub fn user_version(conn: &Connection) -> Result<u32, SchemaError> {
    conn.pragma_query_value(None, "user_version", |row| row.get::<_, i64>(0))
        .map(|v| v as u32)
        .map_err(SchemaError::Version)
}

/// Bring the database up to [`LATEST_VERSION`], returning the version it had.
pub fn migrate(conn: &mut Connection) -> Result<u32, SchemaError> {
    migrate_to(conn, LATEST_VERSION)
}

/// Bring the database up to `target` (tests build old versions with it).
pub fn migrate_to(conn: &mut Connection, target: u32) -> Result<u32, SchemaError> {
    let found = user_version(conn)?;
    if found > LATEST_VERSION {
        return Err(SchemaError::TooNew {
            found,
            supported: LATEST_VERSION,
        });
    }
    for from in found..target.min(LATEST_VERSION) {
        let step = |conn: &mut Connection| -> rusqlite::Result<()> {
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            // Another process may have migrated while we waited for the write lock.
            let now: i64 = tx.pragma_query_value(None, "user_version", |r| r.get(0))?;
            if now as u32 == from {
                tx.execute_batch(MIGRATIONS[from as usize])?;
                tx.pragma_update(None, "user_version", from as i64 + 1)?;
            }
            tx.commit()
        };
        step(conn).map_err(|source| SchemaError::Migration { from, source })?;
    }
    Ok(found)
}
