//! Reading back what zones kept: the rows `agent-guard undo list`, `restore` and `purge` work
//! from.

use rusqlite::types::ToSql;
use rusqlite::Row;
use serde::Serialize;

use super::query::{bad_column, AuditReader};
use super::records::KeptRecord;
use super::AuditStoreError;
use crate::vocab::time::rfc3339_from_millis;
use crate::vocab::RuleId;

/// Filters of `agent-guard undo list` and `restore`: every filter set must match.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeptQuery {
    /// Only these rows (`undo restore ID...`).
    pub ids: Vec<i64>,
    pub session: Option<String>,
    /// Inclusive, milliseconds since the epoch.
    pub since_ms: Option<i64>,
    /// The path or anything under it, on component boundaries.
    pub path_prefix: Option<String>,
}

/// A kept snapshot's row read back.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct StoredKept {
    /// The id `undo restore` takes.
    pub id: i64,
    pub time: String,
    #[serde(flatten)]
    pub record: KeptRecord,
}

const KEPT_COLUMNS: &str = "id, time_ms, session, seq, agent, agent_pid, pid, exe, op, rule, \
     path, dest, kind, how, store_name, size, mode, mtime_ns, sha256, end_state, new_in_session";

impl AuditReader {
    /// The kept snapshots matching `q`, oldest first.
    pub fn kept(&self, q: &KeptQuery) -> Result<Vec<StoredKept>, AuditStoreError> {
        let mut clauses: Vec<String> = Vec::new();
        let mut params: Vec<Box<dyn ToSql>> = Vec::new();
        // Each clause names its one parameter `?` as often as it needs it.
        let mut bind = |clause: &str, value: Box<dyn ToSql>| {
            params.push(value);
            clauses.push(clause.replace('?', &format!("?{}", params.len())));
        };
        if !q.ids.is_empty() {
            let ids = serde_json::to_string(&q.ids).expect("a list of integers serializes");
            bind("id IN (SELECT value FROM json_each(?))", Box::new(ids));
        }
        if let Some(session) = &q.session {
            bind("session = ?", Box::new(session.clone()));
        }
        if let Some(since) = q.since_ms {
            bind("time_ms >= ?", Box::new(since));
        }
        if let Some(prefix) = q.path_prefix.as_deref().map(|p| p.trim_end_matches('/')) {
            if !prefix.is_empty() {
                bind(
                    "(path = ? OR substr(path, 1, length(?) + 1) = ? || '/')",
                    Box::new(prefix.to_string()),
                );
            }
        }
        let where_sql = if clauses.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", clauses.join(" AND "))
        };
        let sql = format!("SELECT {KEPT_COLUMNS} FROM kept {where_sql} ORDER BY time_ms, id");
        let mut stmt = self.conn.prepare(&sql).map_err(self.query_err())?;
        let refs: Vec<&dyn ToSql> = params.iter().map(|p| p.as_ref()).collect();
        let rows = stmt
            .query_map(refs.as_slice(), kept_from_row)
            .map_err(self.query_err())?;
        rows.collect::<Result<Vec<_>, _>>()
            .map_err(self.query_err())
    }
}

fn kept_from_row(row: &Row<'_>) -> rusqlite::Result<StoredKept> {
    let time_ms: i64 = row.get(1)?;
    let text = |i: usize| -> rusqlite::Result<String> { row.get(i) };
    Ok(StoredKept {
        id: row.get(0)?,
        time: rfc3339_from_millis(time_ms),
        record: KeptRecord {
            time_ms,
            session: row.get(2)?,
            seq: row.get::<_, i64>(3)? as u64,
            agent: row.get(4)?,
            agent_pid: row.get(5)?,
            pid: row.get(6)?,
            exe: row.get(7)?,
            op: text(8)?.parse().map_err(|e| bad_column(8, e))?,
            rule: RuleId::from_name(&text(9)?),
            path: row.get(10)?,
            dest: row.get(11)?,
            kind: text(12)?.parse().map_err(|e| bad_column(12, e))?,
            how: text(13)?.parse().map_err(|e| bad_column(13, e))?,
            store_name: row.get(14)?,
            size: row.get::<_, i64>(15)? as u64,
            mode: row.get(16)?,
            mtime_ns: row.get(17)?,
            sha256: row.get(18)?,
            end_state: row.get(19)?,
            new_in_session: row.get(20)?,
        },
    })
}
