//! Tests of the SQLite audit store against real database files, grouped by subject in the files
//! beside this one; here are the helpers.

mod chain;
mod export;
mod query;
mod retention;
mod schema;
mod write;

use std::path::Path;
use std::time::{Duration, SystemTime};

use rusqlite::Connection;

use super::export::export_sql;
use super::query::{decision_from_row, path_day_sql, query_sql, Filters, DECISION_COLUMNS};
use super::schema::{migrate_to, user_version, LATEST_VERSION, V1};
use super::*;
use crate::vocab::time::unix_millis;
use crate::vocab::{Action, AgentInfo, Decision, Event, Mode, OpKind, RuleId, Verdict};
use std::collections::HashSet;
use std::time::UNIX_EPOCH;

const DAY_MS: i64 = 86_400_000;

fn now_ms() -> i64 {
    unix_millis(SystemTime::now())
}

fn decision(i: usize, time_ms: i64) -> DecisionRecord {
    let agents = ["claude", "codex", "cursor"];
    let ops = [OpKind::Unlink, OpKind::Open, OpKind::Rename, OpKind::Exec];
    let verdict = match i % 10 {
        0 => Decision::Deny,
        1 => Decision::Audit,
        _ => Decision::Allow,
    };
    let roots = ["/a/proj", "/a/project2", "/a/proj.bak", "/b"];
    DecisionRecord {
        time_ms,
        agent: agents[i % 3].into(),
        agent_pid: 100 + (i % 3) as i32,
        pid: 1000 + i as i32,
        start_key: 5_000_000 + i as u64,
        exe: "/usr/bin/rm".into(),
        op: ops[i % 4],
        path: format!("{}/f{i}", roots[(i / 4) % 4]),
        dest: (ops[i % 4] == OpKind::Rename).then(|| format!("/tmp/f{i}")),
        zone: (verdict != Decision::Allow).then(|| roots[(i / 4) % 4].to_string()),
        rule: (verdict != Decision::Allow).then_some(RuleId::ProtectedDelete),
        verdict,
        mode: if verdict == Decision::Audit {
            Mode::Audit
        } else {
            Mode::Enforce
        },
        policy_version: "sha256:abc".into(),
        argv: None,
        count: 1,
    }
}

/// [`decision`] as an allowed one.
fn allowed(i: usize, time_ms: i64) -> DecisionRecord {
    DecisionRecord {
        verdict: Decision::Allow,
        mode: Mode::Enforce,
        zone: None,
        rule: None,
        ..decision(i, time_ms)
    }
}

fn store(path: &Path) -> AuditStore {
    AuditStore::open(path, AuditStoreConfig::default()).unwrap()
}

fn count(path: &Path, table: &str) -> i64 {
    let conn = Connection::open(path).unwrap();
    conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
        .unwrap()
}
