//! Exporting the audit trail: every matching decision and override event, oldest first, merged
//! in time order and streamed row by row (memory does not grow with the database), as JSONL in
//! the reference audit schema or as CSV.

use std::fmt;
use std::io::Write;
use std::str::FromStr;

use super::query::{
    decision_from_row, override_from_row, AuditQuery, AuditReader, Filters, StoredDecision,
    StoredOverride, DECISION_COLUMNS, OVERRIDE_COLUMNS,
};
use super::records::OverrideEventKind;
use super::AuditStoreError;
use crate::vocab::{RuleId, UnknownName};

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

/// Decisions and override events in time order, walking the time indexes (no sort).
pub(super) fn export_sql(q: &AuditQuery) -> ((String, Filters), (String, Filters)) {
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

/// The JSONL export line of a decision, in the audit schema of the reference design
/// (timestamp, event_id, actor, action, decision, policy_id, context).
pub fn decision_export_json(d: &StoredDecision) -> serde_json::Value {
    let r = &d.record;
    let mut line = serde_json::json!({
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
    });
    if let Some(argv) = &r.argv {
        line["action"]["argv"] = serde_json::json!(argv);
    }
    if r.count != 1 {
        line["context"]["count"] = serde_json::json!(r.count);
    }
    line
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
        ExportFormat::Jsonl => write_json_line(&decision_export_json(d), out),
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
        ExportFormat::Jsonl => write_json_line(&override_export_json(o), out),
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

fn write_json_line(value: &serde_json::Value, out: &mut dyn Write) -> Result<(), AuditStoreError> {
    serde_json::to_writer(&mut *out, value).map_err(|e| AuditStoreError::Output(e.into()))?;
    out.write_all(b"\n").map_err(AuditStoreError::Output)
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
