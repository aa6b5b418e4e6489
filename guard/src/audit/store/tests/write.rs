//! Writing: the record of an engine decision, a locked database and a full queue counted,
//! a killed writer that leaves no partial row.

use super::*;
use crate::audit::store::write::fold_hash;

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

fn kept_row(session: &str, seq: u64) -> KeptRecord {
    KeptRecord {
        time_ms: 1000 + seq as i64,
        session: session.into(),
        seq,
        agent: "claude".into(),
        agent_pid: 5,
        pid: 77,
        exe: "/usr/bin/rm".into(),
        op: OpKind::Unlink,
        rule: RuleId::ProtectedDelete,
        path: format!("/a/proj/{session}-{seq}"),
        dest: None,
        kind: crate::vocab::EntryKind::File,
        how: crate::vocab::KeptHow::Moved,
        store_name: Some(format!("{session}/{seq:06}-x")),
        size: 3,
        mode: 0o100644,
        mtime_ns: 1,
        sha256: None,
        end_state: None,
        new_in_session: false,
    }
}

fn hash_update(session: &str, seq: u64, sha256: &str) -> KeptUpdate {
    KeptUpdate::Hash {
        session: session.into(),
        seq,
        sha256: sha256.into(),
    }
}

/// A hash that comes in the batch of its row goes into that row, not into another session's
/// row with the same number; any other update is left to run after the rows.
#[test]
fn a_hash_in_its_rows_batch_is_folded_into_the_row() {
    let mut kept = vec![kept_row("s1", 1), kept_row("s2", 2)];
    let at = std::collections::HashMap::from([(1, 0), (2, 1)]);
    assert_eq!(fold_hash(&mut kept, &at, hash_update("s1", 1, "aa")), None);
    assert_eq!(kept[0].sha256.as_deref(), Some("aa"));
    let elsewhere = hash_update("s1", 2, "bb");
    assert_eq!(
        fold_hash(&mut kept, &at, elsewhere.clone()),
        Some(elsewhere)
    );
    assert_eq!(kept[1].sha256, None);
    let end = KeptUpdate::EndState {
        session: "s1".into(),
        path: "/a/proj/s1-1".into(),
        state: EndState::Absent,
    };
    assert_eq!(fold_hash(&mut kept, &at, end.clone()), Some(end));
}

/// Hashes reach their rows whether they come in the rows' batch or a later one, and for rows
/// of two sessions with the same entry numbers.
#[test]
fn hashes_reach_their_rows_in_any_batch() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.db");
    let s = store(&path);
    s.record_kept(kept_row("s1", 1));
    s.record_kept(kept_row("s2", 1));
    s.update_kept(hash_update("s2", 1, "b1"));
    s.update_kept(hash_update("s1", 1, "a1"));
    s.record_kept(kept_row("s1", 2));
    s.flush().unwrap();
    s.update_kept(hash_update("s1", 2, "a2"));
    s.flush().unwrap();
    let rows = AuditReader::open(&path)
        .unwrap()
        .kept(&KeptQuery::default())
        .unwrap();
    let got: Vec<(String, u64, Option<String>)> = rows
        .into_iter()
        .map(|r| (r.record.session, r.record.seq, r.record.sha256))
        .collect();
    let want = [("s1", 1, "a1"), ("s2", 1, "b1"), ("s1", 2, "a2")]
        .map(|(s, n, h)| (s.to_string(), n, Some(h.to_string())));
    assert_eq!(got, want);
    assert_eq!(s.stats().kept_written, 3);
}
