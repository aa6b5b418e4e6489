//! Writing: the record of an engine decision, a locked database and a full queue counted,
//! a killed writer that leaves no partial row.

use super::*;

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
            "audit::store::tests::write::killed_writer_leaves_no_partial_row",
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
