//! The schema: migrations from an empty database and from version 1, and the databases the
//! store refuses (a newer version, a symlink).

use super::*;

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
    // Rows from before the hash chain are reported as not covered, not as a break; the new
    // row starts the chain.
    let reports = reader.verify().unwrap();
    assert!(reports.iter().all(|r| r.breaks.is_empty()), "{reports:#?}");
    let legacy: u64 = reports.iter().map(|r| r.legacy_rows).sum();
    let chained: u64 = reports.iter().map(|r| r.rows).sum();
    assert_eq!((legacy, chained), (2, 1), "{reports:#?}");
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

#[test]
fn version_5_marks_kept_rows_made_in_the_session_and_old_rows_are_not() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.db");
    {
        let mut conn = Connection::open(&path).unwrap();
        assert_eq!(migrate_to(&mut conn, 4).unwrap(), 0);
        conn.execute(
            "INSERT INTO kept (time_ms, session, seq, agent, agent_pid, pid, exe, op, rule, path, \
             kind, how, store_name, size, mode, mtime_ns) VALUES (1000, 's', 1, 'claude', 1, 2, \
             '/bin/rm', 'unlink', 'protected_delete', '/a/proj/x', 'file', 'moved', 's/000001-x', \
             3, 33188, 0)",
            [],
        )
        .unwrap();
    }
    let s = store(&path);
    let mut made = KeptRecord {
        seq: 2,
        path: "/a/proj/tmp.o".into(),
        store_name: Some("s/000002-tmp.o".into()),
        new_in_session: true,
        ..AuditReader::open(&path)
            .unwrap()
            .kept(&KeptQuery::default())
            .unwrap()[0]
            .record
            .clone()
    };
    made.time_ms = 2000;
    s.record_kept(made);
    s.flush().unwrap();
    let rows = AuditReader::open(&path)
        .unwrap()
        .kept(&KeptQuery::default())
        .unwrap();
    let marks: Vec<(&str, bool)> = rows
        .iter()
        .map(|r| (r.record.path.as_str(), r.record.new_in_session))
        .collect();
    assert_eq!(marks, vec![("/a/proj/x", false), ("/a/proj/tmp.o", true)]);
    // The JSON `undo list` prints names it.
    let json = serde_json::to_value(&rows[1]).unwrap();
    assert_eq!(json["new_in_session"], true, "{json:#}");
}
