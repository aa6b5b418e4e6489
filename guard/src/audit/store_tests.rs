//! Tests of the SQLite audit store against real database files.

use super::*;
use crate::audit::schema::{migrate_to, user_version, V1};
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

#[test]
fn migrates_an_empty_database_to_the_latest_version() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state/audit.db");
    let s = store(&path);
    s.flush().unwrap();
    let conn = Connection::open(&path).unwrap();
    assert_eq!(user_version(&conn).unwrap(), LATEST_VERSION);
    let journal: String = conn
        .pragma_query_value(None, "journal_mode", |r| r.get(0))
        .unwrap();
    assert_eq!(journal, "wal");
    let indexes: HashSet<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'index'")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    for index in [
        "decisions_time",
        "decisions_agent_time",
        "decisions_op_time",
        "decisions_deny_time",
        "decisions_audit_time",
        "decisions_day_path",
        "overrides_time",
    ] {
        assert!(indexes.contains(index), "{index} missing: {indexes:?}");
    }
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
}

#[test]
fn migrates_a_version_1_database_keeping_its_rows() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.db");
    {
        let mut conn = Connection::open(&path).unwrap();
        assert_eq!(migrate_to(&mut conn, 1).unwrap(), 0);
        assert_eq!(user_version(&conn).unwrap(), 1);
        // The v1 schema text is frozen: this is what old databases hold.
        assert!(V1.contains("CREATE TABLE decisions"));
        conn.execute(
            "INSERT INTO decisions (time_ms, agent, agent_pid, pid, start_key, exe, op, path, \
             dest, zone, rule, verdict) VALUES (1000, 'claude', 1, 2, 3, '/bin/rm', 'unlink', \
             '/a/proj/x', NULL, '/a/proj', 'protected_delete', 'deny')",
            [],
        )
        .unwrap();
        conn.execute(
            "INSERT INTO overrides (time_ms, event, override_id, path, ops, who, ttl_secs) \
             VALUES (2000, 'request', 'o1', '/a/proj/x', 'unlink', 'claude', 600)",
            [],
        )
        .unwrap();
    }
    // A v1 database cannot be read before it is migrated.
    let err = AuditReader::open(&path).err().unwrap();
    assert!(
        matches!(err, AuditStoreError::OldSchema { found: 1, .. }),
        "{err}"
    );

    let s = store(&path);
    s.record_decision(decision(0, 3000));
    s.flush().unwrap();
    let reader = AuditReader::open(&path).unwrap();
    let rows = reader.query(&AuditQuery::default()).unwrap();
    assert_eq!(rows.len(), 2);
    let old = rows.iter().find(|r| r.record.time_ms == 1000).unwrap();
    assert_eq!(old.record.mode, Mode::Enforce);
    assert_eq!(old.record.policy_version, "");
    assert_eq!(old.record.path, "/a/proj/x");
    assert_eq!(old.record.verdict, Decision::Deny);
    let overrides = reader.overrides(&AuditQuery::default()).unwrap();
    assert_eq!(overrides.len(), 1);
    assert_eq!(overrides[0].event.ttl_secs, Some(600));
}

#[test]
fn refuses_a_database_from_a_newer_version() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.db");
    Connection::open(&path)
        .unwrap()
        .pragma_update(None, "user_version", 99)
        .unwrap();
    let err = AuditStore::open(&path, AuditStoreConfig::default())
        .err()
        .unwrap();
    let text = err.to_string();
    assert!(text.contains("version 99"), "{text}");
    assert!(text.contains(&path.display().to_string()), "{text}");
}

#[test]
fn refuses_a_symlink_at_the_database_path() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("elsewhere.db");
    let path = dir.path().join("audit.db");
    std::os::unix::fs::symlink(&target, &path).unwrap();
    let err = AuditStore::open(&path, AuditStoreConfig::default())
        .err()
        .unwrap();
    assert!(err.to_string().contains("audit.db"), "{err}");
    assert!(!target.exists());
}

/// Every filter, alone and combined, against the same filter computed in Rust.
#[test]
fn queries_match_an_in_memory_oracle() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.db");
    let s = store(&path);
    let base = 1_700_000_000_000i64;
    // Ten minutes apart: about two weeks, so that path queries cross day buckets.
    const STEP: i64 = 600_000;
    let all: Vec<DecisionRecord> = (0..2000)
        .map(|i| decision(i, base + i as i64 * STEP))
        .collect();
    for d in &all {
        s.record_decision(d.clone());
    }
    s.flush().unwrap();
    assert_eq!(s.stats().decisions_written, 2000);
    let reader = AuditReader::open(&path).unwrap();

    let queries = vec![
        AuditQuery::default(),
        AuditQuery {
            agent: Some("codex".into()),
            ..Default::default()
        },
        AuditQuery {
            op: Some(OpKind::Rename),
            ..Default::default()
        },
        AuditQuery {
            verdict: Some(Decision::Deny),
            limit: Some(1000),
            ..Default::default()
        },
        AuditQuery {
            path_prefix: Some("/a/proj/".into()),
            limit: Some(5000),
            ..Default::default()
        },
        AuditQuery {
            since_ms: Some(base + 1000 * STEP),
            until_ms: Some(base + 1100 * STEP),
            ..Default::default()
        },
        AuditQuery {
            path_prefix: Some("/a/proj".into()),
            since_ms: Some(base + 300 * STEP + 1),
            until_ms: Some(base + 1700 * STEP),
            limit: Some(150),
            ..Default::default()
        },
        AuditQuery {
            path_prefix: Some("/a/project2/f21".into()),
            ..Default::default()
        },
        AuditQuery {
            path_prefix: Some("/a/proj".into()),
            limit: Some(0),
            ..Default::default()
        },
        AuditQuery {
            agent: Some("claude".into()),
            verdict: Some(Decision::Audit),
            path_prefix: Some("/b".into()),
            since_ms: Some(base + 100 * STEP),
            limit: Some(7),
            ..Default::default()
        },
        AuditQuery {
            agent: Some("nobody".into()),
            ..Default::default()
        },
    ];
    for q in queries {
        let got: Vec<DecisionRecord> = reader
            .query(&q)
            .unwrap()
            .into_iter()
            .map(|r| r.record)
            .collect();
        let prefix = q.path_prefix.as_deref().map(|p| p.trim_end_matches('/'));
        let mut expected: Vec<DecisionRecord> = all
            .iter()
            .filter(|d| q.agent.as_deref().is_none_or(|a| d.agent == a))
            .filter(|d| q.op.is_none_or(|o| d.op == o))
            .filter(|d| q.verdict.is_none_or(|v| d.verdict == v))
            .filter(|d| prefix.is_none_or(|p| d.path == p || d.path.starts_with(&format!("{p}/"))))
            .filter(|d| q.since_ms.is_none_or(|t| d.time_ms >= t))
            .filter(|d| q.until_ms.is_none_or(|t| d.time_ms < t))
            .cloned()
            .collect();
        expected.reverse();
        expected.truncate(q.limit.unwrap_or(100));
        assert_eq!(got, expected, "query {q:?}");
    }
    // The component boundary: /a/proj does not cover /a/project2 or /a/proj.bak.
    let under_proj = reader
        .query(&AuditQuery {
            path_prefix: Some("/a/proj".into()),
            limit: Some(5000),
            ..Default::default()
        })
        .unwrap();
    assert!(!under_proj.is_empty());
    assert!(under_proj
        .iter()
        .all(|r| r.record.path.starts_with("/a/proj/")));
}

/// The query plans use an index for each filter, and exports never sort (constant memory).
#[test]
fn query_plans_use_indexes_and_exports_do_not_sort() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.db");
    drop(store(&path));
    let conn = Connection::open(&path).unwrap();
    let plan = |sql: &str, filters: &Filters| -> String {
        let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
        let rows = stmt
            .query_map(filters.param_refs().as_slice(), |r| r.get::<_, String>(3))
            .unwrap();
        rows.collect::<Result<Vec<_>, _>>().unwrap().join("\n")
    };
    let filters = [
        (
            "agent",
            AuditQuery {
                agent: Some("claude".into()),
                ..Default::default()
            },
        ),
        (
            "op",
            AuditQuery {
                op: Some(OpKind::Unlink),
                ..Default::default()
            },
        ),
        (
            "verdict",
            AuditQuery {
                verdict: Some(Decision::Deny),
                ..Default::default()
            },
        ),
        (
            "verdict allow",
            AuditQuery {
                verdict: Some(Decision::Allow),
                ..Default::default()
            },
        ),
        (
            "path",
            AuditQuery {
                path_prefix: Some("/a/proj".into()),
                ..Default::default()
            },
        ),
        (
            "since",
            AuditQuery {
                since_ms: Some(5),
                ..Default::default()
            },
        ),
        ("none", AuditQuery::default()),
    ];
    for (name, q) in &filters {
        let (sql, f) = if q.path_prefix.is_some() {
            let (sql, mut f, _) = path_day_sql(q);
            f.params.push(Box::new(20_000i64));
            f.params.push(Box::new(100i64));
            (sql, f)
        } else {
            query_sql(q)
        };
        let p = plan(&sql, &f);
        if q.path_prefix.is_some() {
            assert!(p.contains("decisions_day_path"), "{name}: {p}");
        }
        if q.verdict == Some(Decision::Deny) {
            assert!(p.contains("decisions_deny_time"), "{name}: {p}");
        }
        // The inner selection must search an index, never scan the table.
        assert!(p.contains("INDEX"), "{name}: {p}");
        assert!(
            !p.contains("SCAN decisions\n") && !p.ends_with("SCAN decisions"),
            "{name}: {p}"
        );
        let ((d_sql, d_f), (o_sql, o_f)) = export_sql(q);
        for p in [plan(&d_sql, &d_f), plan(&o_sql, &o_f)] {
            assert!(!p.contains("TEMP B-TREE"), "export {name} sorts: {p}");
        }
    }
}

#[test]
fn exports_jsonl_in_the_audit_schema_and_csv_with_escaping() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.db");
    let s = store(&path);
    let mut tricky = decision(0, 1000);
    tricky.path = "/a/proj/has,comma \"quote\"\nnewline".into();
    s.record_decision(tricky.clone());
    s.record_override(OverrideEvent {
        time_ms: 1500,
        kind: OverrideEventKind::Approve,
        override_id: "o-7".into(),
        path: "/a/proj".into(),
        ops: "unlink,rename".parse().unwrap(),
        who: "=HYPERLINK(\"http://evil\")".into(),
        ttl_secs: Some(600),
    });
    s.record_decision(decision(1, 2000));
    s.flush().unwrap();
    let reader = AuditReader::open(&path).unwrap();

    let mut out = Vec::new();
    let n = reader
        .export(&AuditQuery::default(), ExportFormat::Jsonl, &mut out)
        .unwrap();
    assert_eq!(n, 3);
    let lines: Vec<serde_json::Value> = String::from_utf8(out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3);
    for line in &lines {
        for key in [
            "timestamp",
            "event_id",
            "actor",
            "action",
            "decision",
            "policy_id",
            "context",
        ] {
            assert!(line.get(key).is_some(), "{key} missing in {line}");
        }
    }
    assert_eq!(lines[0]["timestamp"], "1970-01-01T00:00:01.000Z");
    assert_eq!(lines[0]["action"]["path"], tricky.path.as_str());
    assert_eq!(lines[0]["decision"], "DENY");
    assert_eq!(lines[0]["actor"]["id"], "claude");
    assert_eq!(lines[0]["policy_id"], "sha256:abc");
    assert_eq!(lines[1]["action"]["type"], "override_approve");
    assert_eq!(lines[2]["decision"], "AUDIT");

    // A decision-only filter leaves override events out.
    let mut out = Vec::new();
    let n = reader
        .export(
            &AuditQuery {
                agent: Some("claude".into()),
                ..Default::default()
            },
            ExportFormat::Jsonl,
            &mut out,
        )
        .unwrap();
    assert_eq!(n, 1);

    let mut out = Vec::new();
    reader
        .export(&AuditQuery::default(), ExportFormat::Csv, &mut out)
        .unwrap();
    let text = String::from_utf8(out).unwrap();
    assert!(text.starts_with(CSV_HEADER), "{text}");
    assert!(
        text.contains("\"/a/proj/has,comma \"\"quote\"\"\nnewline\""),
        "{text}"
    );
    // The formula an agent-controlled field could carry is neutralized.
    assert!(
        text.contains("\"'=HYPERLINK(\"\"http://evil\"\")\""),
        "{text}"
    );
    assert!(!text.contains(",=HYPERLINK"), "{text}");
}

#[test]
fn retention_by_age_runs_in_the_background() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.db");
    let s = AuditStore::open(
        &path,
        AuditStoreConfig {
            retention: Retention {
                max_age: Some(Duration::from_secs(86_400)),
                max_bytes: None,
            },
            retention_interval: Duration::from_millis(20),
            ..Default::default()
        },
    )
    .unwrap();
    let now = now_ms();
    for i in 0..50 {
        s.record_decision(decision(i, now - 3 * DAY_MS));
        s.record_decision(decision(i + 50, now));
    }
    s.record_override(OverrideEvent {
        time_ms: now - 2 * DAY_MS,
        kind: OverrideEventKind::Expire,
        override_id: "old".into(),
        path: "/x".into(),
        ops: "unlink".parse().unwrap(),
        who: "agent-guard".into(),
        ttl_secs: None,
    });
    s.flush().unwrap();
    // Nobody calls enforce_retention: the writer's own schedule must delete the old rows.
    let deadline = Instant::now() + Duration::from_secs(5);
    while count(&path, "decisions") != 50 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(count(&path, "decisions"), 50);
    assert_eq!(count(&path, "overrides"), 0);
    let reader = AuditReader::open(&path).unwrap();
    let rows = reader
        .query(&AuditQuery {
            limit: Some(1000),
            ..Default::default()
        })
        .unwrap();
    assert!(rows.iter().all(|r| r.record.time_ms == now));
    assert!(s.stats().retention_deleted >= 51);
}

#[test]
fn retention_by_size_keeps_the_newest_rows_under_the_limit_and_the_file_stops_growing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.db");
    let s = store(&path);
    let now = now_ms();
    for i in 0..20_000 {
        s.record_decision(decision(i, now - 100_000 + i as i64));
    }
    s.flush().unwrap();
    let max_bytes = 512 * 1024;
    s.set_retention(Retention {
        max_age: None,
        max_bytes: Some(max_bytes),
    })
    .unwrap();
    let deleted = s.enforce_retention().unwrap();
    assert!(deleted > 0);
    let conn = Connection::open(&path).unwrap();
    let pragma = |name: &str| -> i64 { conn.pragma_query_value(None, name, |r| r.get(0)).unwrap() };
    let used = (pragma("page_count") - pragma("freelist_count")) * pragma("page_size");
    assert!(used as u64 <= max_bytes, "used {used} > {max_bytes}");
    // What is left is the newest rows, without a gap.
    let left = count(&path, "decisions");
    assert_eq!(left as u64 + deleted, 20_000);
    let (min, max): (i64, i64) = conn
        .query_row(
            "SELECT min(time_ms), max(time_ms) FROM decisions",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(max, now - 100_000 + 19_999);
    assert_eq!(max - min + 1, left);

    // Keep writing, five times the limit per round, with retention on: freed pages are reused
    // and the file settles at the limit plus one round's burst instead of growing.
    let first = pragma("page_count");
    let mut pages = Vec::new();
    for round in 0..10 {
        for i in 0..20_000 {
            s.record_decision(decision(i, now + round * 20_000 + i as i64));
        }
        s.flush().unwrap();
        s.enforce_retention().unwrap();
        pages.push(pragma("page_count"));
    }
    let used = (pragma("page_count") - pragma("freelist_count")) * pragma("page_size");
    assert!(used as u64 <= max_bytes, "used {used} > {max_bytes}");
    assert!(
        pages.iter().all(|p| *p <= first + first / 4),
        "from {first} pages: {pages:?}"
    );
    assert!(
        pages[9] <= pages[3] + pages[3] / 50,
        "still growing: {pages:?}"
    );
}

/// A database locked by someone else: the batch is retried, then dropped and counted; a full
/// queue is counted too; every record is accounted for.
#[test]
fn locked_database_and_full_queue_are_counted_not_silent() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.db");
    let s = AuditStore::open(
        &path,
        AuditStoreConfig {
            queue_capacity: 4,
            attempts: 2,
            ..Default::default()
        },
    )
    .unwrap();
    s.flush().unwrap();
    let locker = Connection::open(&path).unwrap();
    locker.execute_batch("BEGIN EXCLUSIVE").unwrap();
    const SENT: u64 = 1000;
    for i in 0..SENT as usize {
        s.record_decision(decision(i, 1000 + i as i64));
    }
    // Queue of 4 and a writer stuck on the lock for over a second: most of these are dropped.
    let stats = s.stats();
    assert!(stats.dropped_queue_full > 0, "{stats:?}");
    // Let the writer fail its current batch, then release the lock.
    let deadline = Instant::now() + Duration::from_secs(10);
    while s.stats().dropped_write_failed == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    locker.execute_batch("ROLLBACK").unwrap();
    s.flush().unwrap();
    let stats = s.stats();
    assert!(stats.dropped_write_failed > 0, "{stats:?}");
    assert!(stats.retries > 0, "{stats:?}");
    assert!(
        stats.last_error.as_deref().unwrap().contains("locked"),
        "{stats:?}"
    );
    assert_eq!(
        stats.decisions_written + stats.dropped_queue_full + stats.dropped_write_failed,
        SENT,
        "{stats:?}"
    );
    assert_eq!(count(&path, "decisions") as u64, stats.decisions_written);
}

#[test]
fn decision_record_from_engine_types() {
    use crate::vocab::{Actor, Denial};
    use std::path::PathBuf;
    let event = Event {
        actor: Actor {
            pid: 77,
            exe: PathBuf::from("/bin/mv"),
            ..Actor::default()
        },
        action: Action::Rename {
            from: PathBuf::from("/a/proj/x"),
            to: PathBuf::from("/tmp/x"),
            dest_exists: false,
            source_is_dir: false,
        },
    };
    let agent = AgentInfo {
        name: "claude".into(),
        pid: 5,
    };
    let now = UNIX_EPOCH + Duration::from_millis(1234);
    let allow = DecisionRecord::new(
        &event,
        &agent,
        99,
        &Verdict::Allow,
        Mode::Enforce,
        "v1",
        now,
    );
    assert_eq!(allow.op, OpKind::Rename);
    assert_eq!(allow.path, "/a/proj/x");
    assert_eq!(allow.dest.as_deref(), Some("/tmp/x"));
    assert_eq!(allow.rule, None);
    assert_eq!(allow.time_ms, 1234);
    assert_eq!(allow.start_key, 99);
    let denial = Denial {
        rule: RuleId::ProtectedMoveOut,
        op: OpKind::Rename,
        path: PathBuf::from("/a/proj/x"),
        dest: Some(PathBuf::from("/tmp/x")),
        zone: Some(PathBuf::from("/a/proj")),
        reason: "r".into(),
        hint: "h".into(),
    };
    let audit = DecisionRecord::new(
        &event,
        &agent,
        99,
        &Verdict::Audit(denial),
        Mode::Audit,
        "v1",
        now,
    );
    assert_eq!(audit.verdict, Decision::Audit);
    assert_eq!(
        audit.rule.as_ref().map(RuleId::as_str),
        Some("protected_move_out")
    );
    assert_eq!(audit.zone.as_deref(), Some("/a/proj"));
}

/// A writer killed with SIGKILL in the middle of its batches leaves a consistent database: the
/// integrity check passes and every row is whole. The test re-runs itself as the child.
#[test]
fn killed_writer_leaves_no_partial_row() {
    const CHILD_ENV: &str = "AGENT_GUARD_TEST_AUDIT_CRASH_DB";
    if let Some(db) = std::env::var_os(CHILD_ENV) {
        // Child: write forever until killed.
        let s = store(Path::new(&db));
        for i in 0.. {
            let mut d = decision(i, 1_000_000 + i as i64);
            d.path = format!("/crash/{}", d.pid);
            d.exe = format!("/exe/{}", d.start_key);
            s.record_decision(d);
            if i % 5000 == 0 {
                let _ = s.flush();
            }
        }
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.db");
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "audit::store::tests::killed_writer_leaves_no_partial_row",
            "--nocapture",
        ])
        .env(CHILD_ENV, &path)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Wait until it has committed a good number of batches, then kill it mid-stream.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let rows = AuditReader::open(&path)
            .ok()
            .and_then(|_| Connection::open(&path).ok())
            .and_then(|c| {
                c.query_row("SELECT count(*) FROM decisions", [], |r| r.get::<_, i64>(0))
                    .ok()
            })
            .unwrap_or(0);
        if rows > 20_000 {
            break;
        }
        assert!(Instant::now() < deadline, "child wrote only {rows} rows");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();

    let conn = Connection::open(&path).unwrap();
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
    let mut stmt = conn
        .prepare(&format!("SELECT {DECISION_COLUMNS} FROM decisions"))
        .unwrap();
    let rows = stmt.query_map([], decision_from_row).unwrap();
    let mut n = 0;
    for row in rows {
        let d = row.expect("every row parses whole").record;
        assert_eq!(d.path, format!("/crash/{}", d.pid));
        assert_eq!(d.exe, format!("/exe/{}", d.start_key));
        assert_eq!(d.policy_version, "sha256:abc");
        n += 1;
    }
    assert!(n > 20_000);
}

/// Characters that mean something to SQL or to LIKE patterns are plain data in a path filter.
#[test]
fn path_filter_treats_sql_and_pattern_characters_as_data() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.db");
    let s = store(&path);
    let paths = [
        "/a/100%/x",
        "/a/100x/y",
        "/a/b_c/x",
        "/a/bxc/y",
        "/a/it's/x",
        "/a/it's'); DROP TABLE decisions;--/x",
    ];
    for (i, p) in paths.iter().enumerate() {
        let mut d = decision(i, 1000 + i as i64);
        d.path = p.to_string();
        s.record_decision(d);
    }
    s.flush().unwrap();
    let reader = AuditReader::open(&path).unwrap();
    let under = |prefix: &str| -> Vec<String> {
        let mut found: Vec<String> = reader
            .query(&AuditQuery {
                path_prefix: Some(prefix.into()),
                ..Default::default()
            })
            .unwrap()
            .into_iter()
            .map(|r| r.record.path)
            .collect();
        found.sort();
        found
    };
    assert_eq!(under("/a/100%"), ["/a/100%/x"]);
    assert_eq!(under("/a/b_c"), ["/a/b_c/x"]);
    assert_eq!(under("/a/it's"), ["/a/it's/x"]);
    assert_eq!(
        under("/a/it's'); DROP TABLE decisions;--"),
        ["/a/it's'); DROP TABLE decisions;--/x"]
    );
    assert_eq!(count(&path, "decisions"), 6);
}
