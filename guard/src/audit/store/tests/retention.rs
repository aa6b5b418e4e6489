//! Retention by age and by size.

use super::*;

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
    }
    for i in 0..50 {
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
    // Each chain is its own deletion, and a tick may come before the override row is written,
    // so wait for both tables (a loaded CI machine saw the decisions done and not the override).
    let deadline = Instant::now() + Duration::from_secs(10);
    while (count(&path, "decisions") != 50 || count(&path, "overrides") != 0)
        && Instant::now() < deadline
    {
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
        s.record_decision(allowed(i, now - 100_000 + i as i64));
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
            s.record_decision(allowed(i, now + round * 20_000 + i as i64));
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
