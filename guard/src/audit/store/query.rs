//! Reading the audit trail: [`AuditReader`] opens the database read-only for `agent-guard audit
//! query`; WAL lets it read while the writer writes. Queries select matching ids through an
//! index first and fetch whole rows only for the `limit` newest. Every value is a bound
//! parameter, never SQL built from user input.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::types::ToSql;
use rusqlite::{Connection, OpenFlags, Row};
use serde::Serialize;

use super::records::{DecisionRecord, OverrideEvent};
use super::schema::{self, SchemaError, LATEST_VERSION};
use super::AuditStoreError;
use crate::vocab::time::rfc3339_from_millis;
use crate::vocab::{printable, Decision, OpKind, RuleId, UnknownName};

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
    pub(super) fn decisions_only(&self) -> bool {
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

pub(super) const DECISION_COLUMNS: &str =
    "id, time_ms, agent, agent_pid, pid, start_key, exe, op, path, \
     dest, zone, rule, verdict, mode, policy_version, argv, count";
pub(super) const OVERRIDE_COLUMNS: &str =
    "id, time_ms, event, override_id, path, ops, who, ttl_secs";

/// Read-only access to the audit database for the CLI.
pub struct AuditReader {
    pub(super) conn: Connection,
    path: PathBuf,
}

/// WHERE clauses and their parameters, built from an [`AuditQuery`]; values are always bound.
pub(super) struct Filters {
    clauses: Vec<String>,
    pub(super) params: Vec<Box<dyn ToSql>>,
}

impl Filters {
    /// `indexed: false` prefixes columns with `+`, which stops SQLite from using their indexes:
    /// exports then walk the time index in order and never sort (constant memory).
    pub(super) fn new(q: &AuditQuery, decisions: bool, indexed: bool) -> Filters {
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

    pub(super) fn where_sql(&self) -> String {
        if self.clauses.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", self.clauses.join(" AND "))
        }
    }

    pub(super) fn param_refs(&self) -> Vec<&dyn ToSql> {
        self.params.iter().map(|p| p.as_ref()).collect()
    }
}

/// The newest `limit` matching decisions: ids first, from an index alone, then whole rows for
/// those ids only.
pub(super) fn query_sql(q: &AuditQuery) -> (String, Filters) {
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
pub(super) fn path_day_sql(q: &AuditQuery) -> (String, Filters, usize) {
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

    pub(super) fn query_err(&self) -> impl Fn(rusqlite::Error) -> AuditStoreError + '_ {
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
}

pub(super) fn bad_column(idx: usize, error: UnknownName) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(idx, rusqlite::types::Type::Text, Box::new(error))
}

pub(super) fn decision_from_row(row: &Row<'_>) -> rusqlite::Result<StoredDecision> {
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
            argv: row
                .get::<_, Option<String>>(15)?
                .and_then(|a| serde_json::from_str(&a).ok()),
            count: row.get::<_, i64>(16)?.max(0) as u64,
        },
    })
}

pub(super) fn override_from_row(row: &Row<'_>) -> rusqlite::Result<StoredOverride> {
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

impl AuditReader {
    /// Walk every hash chain of the trail (`agent-guard audit verify`).
    pub fn verify(&self) -> Result<Vec<super::chain::ChainReport>, AuditStoreError> {
        super::chain::Chain::ALL
            .into_iter()
            .map(|c| super::chain::verify_chain(&self.conn, c).map_err(self.query_err()))
            .collect()
    }
}
