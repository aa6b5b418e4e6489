//! The hash chains (schema version 3): intact after writes and retention, broken by a row
//! removed from the middle or the end, or altered, whichever chain it is in.

use super::*;

fn verify(path: &Path) -> Vec<ChainReport> {
    AuditReader::open(path).unwrap().verify().unwrap()
}

fn breaks(reports: &[ChainReport]) -> Vec<String> {
    reports.iter().flat_map(|r| r.breaks.clone()).collect()
}

fn override_event(n: usize, time_ms: i64) -> OverrideEvent {
    OverrideEvent {
        time_ms,
        kind: OverrideEventKind::Request,
        override_id: format!("r-{n:x}"),
        path: format!("/a/proj/f{n}"),
        ops: "unlink".parse().unwrap(),
        who: "claude".into(),
        ttl_secs: Some(600),
    }
}

/// A trail of 300 decisions (deny, audit, allow) and 10 override events.
fn written(path: &Path, now: i64) -> AuditStore {
    let s = store(path);
    for i in 0..300 {
        s.record_decision(decision(i, now - 300 + i as i64));
        if i % 30 == 0 {
            s.record_override(override_event(i, now - 300 + i as i64));
        }
    }
    s.flush().unwrap();
    s
}

fn sql(path: &Path, statement: &str) -> usize {
    Connection::open(path)
        .unwrap()
        .execute(statement, [])
        .unwrap()
}

#[test]
fn an_untouched_trail_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.db");
    let _s = written(&path, now_ms());
    let reports = verify(&path);
    assert_eq!(breaks(&reports), Vec::<String>::new());
    let rows: u64 = reports.iter().map(|r| r.rows).sum();
    assert_eq!(rows, 310);
    let mut text = Vec::new();
    assert!(write_verify_report(&reports, false, &mut text).unwrap());
    assert!(String::from_utf8(text).unwrap().contains("intact"));
}

#[test]
fn a_row_removed_from_the_middle_of_each_chain_is_found() {
    for (statement, chain) in [
        // Row 101 is a deny (i % 10 == 0 above is i = 100, id 101).
        ("DELETE FROM decisions WHERE id = 101", "deny, audit"),
        ("DELETE FROM decisions WHERE id = 150", "allow"),
        ("DELETE FROM overrides WHERE id = 4", "override"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.db");
        drop(written(&path, now_ms()));
        assert_eq!(sql(&path, statement), 1, "{statement}");
        let reports = verify(&path);
        let broken: Vec<&ChainReport> = reports.iter().filter(|r| !r.breaks.is_empty()).collect();
        assert_eq!(broken.len(), 1, "{statement}: {reports:#?}");
        assert!(broken[0].chain.contains(chain), "{statement}: {reports:#?}");
        assert!(
            broken[0].breaks[0].contains("removed"),
            "{statement}: {reports:#?}"
        );
        let mut text = Vec::new();
        assert!(!write_verify_report(&reports, false, &mut text).unwrap());
    }
}

#[test]
fn an_altered_row_and_a_removed_last_row_are_found() {
    for statement in [
        "UPDATE decisions SET path = '/elsewhere' WHERE id = 41",
        "UPDATE decisions SET verdict = 'allow' WHERE id = 41",
        "UPDATE overrides SET who = 'alice' WHERE id = 2",
        "DELETE FROM decisions WHERE id = (SELECT max(id) FROM decisions)",
        "DELETE FROM overrides WHERE id = (SELECT max(id) FROM overrides)",
        "DELETE FROM decisions WHERE id = 1",
    ] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.db");
        drop(written(&path, now_ms()));
        assert_eq!(sql(&path, statement), 1, "{statement}");
        assert!(
            !breaks(&verify(&path)).is_empty(),
            "{statement} went unnoticed"
        );
    }
}

#[test]
fn retention_by_age_and_size_keeps_the_chains_whole() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.db");
    let now = now_ms();
    let s = store(&path);
    for i in 0..3000 {
        s.record_decision(decision(i, now - 5 * DAY_MS + i as i64));
        if i % 100 == 0 {
            s.record_override(override_event(i, now - 5 * DAY_MS + i as i64));
        }
    }
    for i in 0..3000 {
        s.record_decision(decision(i, now - 1000 + i as i64 / 10));
    }
    s.flush().unwrap();
    s.set_retention(Retention {
        max_age: Some(Duration::from_secs(2 * 86_400)),
        max_bytes: None,
    })
    .unwrap();
    assert_eq!(s.enforce_retention().unwrap(), 3000 + 30);
    assert_eq!(breaks(&verify(&path)), Vec::<String>::new());
    s.set_retention(Retention {
        max_age: None,
        max_bytes: Some(64 * 1024),
    })
    .unwrap();
    assert!(s.enforce_retention().unwrap() > 0);
    assert_eq!(breaks(&verify(&path)), Vec::<String>::new());
    // The removal of a row right after the anchor is still found.
    drop(s);
    sql(
        &path,
        "DELETE FROM decisions WHERE id = (SELECT min(id) FROM decisions WHERE verdict = 'deny')",
    );
    assert!(!breaks(&verify(&path)).is_empty());
}

/// The attack on the trail: a marker denial, then far more records than the size
/// allows. Allowed rows go first; the denials and audits, younger than their age, all stay;
/// new allowed rows are then dropped and counted; the chains hold throughout.
#[test]
fn a_flood_never_pushes_a_denial_out_before_its_age() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.db");
    let now = now_ms();
    let s = store(&path);
    let mut marker = decision(0, now - 10_000);
    marker.path = "/a/proj/MARKER".into();
    s.record_decision(marker);
    for i in 0..40_000 {
        s.record_decision(allowed(i, now - 9_000 + i as i64 / 10));
    }
    s.flush().unwrap();
    let max_bytes = 1024 * 1024;
    s.set_retention(Retention {
        max_age: Some(Duration::from_secs(30 * 86_400)),
        max_bytes: Some(max_bytes),
    })
    .unwrap();
    assert!(s.enforce_retention().unwrap() > 0, "allowed rows deleted");
    let has_marker = |path: &Path| {
        Connection::open(path)
            .unwrap()
            .query_row(
                "SELECT count(*) FROM decisions WHERE path = '/a/proj/MARKER'",
                [],
                |r| r.get::<_, i64>(0),
            )
            .unwrap()
            == 1
    };
    assert!(has_marker(&path));
    // Now a flood of denials, several times the size: none of them is deleted, nor the marker.
    let mut denials = 1;
    for i in 0..20_000 {
        let mut d = decision(i * 10, now - 5_000 + i as i64 / 10);
        d.verdict = Decision::Deny;
        s.record_decision(d);
        denials += 1;
        if i % 1000 == 0 {
            s.flush().unwrap();
            s.enforce_retention().unwrap();
        }
    }
    s.flush().unwrap();
    s.enforce_retention().unwrap();
    assert!(has_marker(&path));
    let kept: i64 = Connection::open(&path)
        .unwrap()
        .query_row(
            "SELECT count(*) FROM decisions WHERE verdict = 'deny'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(kept, denials);
    // Full of denials: the next allowed rows are not stored, and say so.
    for i in 0..500 {
        s.record_decision(allowed(i, now));
    }
    s.flush().unwrap();
    assert_eq!(s.stats().allowed_dropped_full, 500);
    assert_eq!(breaks(&verify(&path)), Vec::<String>::new());
}

/// The second attack: two million denials and the retention tick. Folded by the
/// aggregator as the runtime folds them, written through the real store whose retention runs
/// by itself every 20 ms under a size limit: the marker denial and every denied call's count
/// survive, and the chains hold.
#[test]
fn two_million_denials_and_the_retention_tick_keep_the_marker() {
    use crate::audit::record::sample_record;
    use crate::audit::DenialAggregator;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.db");
    let now = now_ms();
    let s = AuditStore::open(
        &path,
        AuditStoreConfig {
            retention: Retention {
                max_age: Some(Duration::from_secs(30 * 86_400)),
                max_bytes: Some(256 * 1024),
            },
            retention_interval: Duration::from_millis(20),
            ..Default::default()
        },
    )
    .unwrap();
    let mut marker = decision(0, now - 60_000);
    marker.path = "/a/proj/MARKER".into();
    s.record_decision(marker);
    for i in 0..5_000 {
        s.record_decision(allowed(i, now - 50_000 + i as i64));
    }
    let mut agg = DenialAggregator::new();
    let row = decision(0, now);
    const N: i64 = 2_000_000;
    // Two million denials in 8 seconds, over 500 directories.
    for i in 0..N {
        let t = now + i * 8_000 / N;
        let path = format!("/a/proj/d{}/f{i}", i % 500);
        let mut d = sample_record(&path);
        d.agent_pid = 100;
        let mut r = row.clone();
        r.time_ms = t;
        r.path = path;
        if let Some((_, Some(r))) = agg.offer(d, Some(r), t) {
            s.record_decision(r);
        }
        if i % 100_000 == 0 {
            for summary in agg.due(t) {
                s.record_decision(summary.decision.unwrap());
            }
        }
    }
    for summary in agg.drain() {
        s.record_decision(summary.decision.unwrap());
    }
    s.flush().unwrap();
    std::thread::sleep(Duration::from_millis(100));
    s.flush().unwrap();
    assert!(
        s.stats().retention_deleted > 0,
        "the tick ran: {:?}",
        s.stats()
    );
    let conn = Connection::open(&path).unwrap();
    let marker: i64 = conn
        .query_row(
            "SELECT count(*) FROM decisions WHERE path = '/a/proj/MARKER'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(marker, 1, "the marker denial was removed");
    let (rows, calls): (i64, i64) = conn
        .query_row(
            "SELECT count(*), sum(count) FROM decisions WHERE agent_pid = 100 AND path != '/a/proj/MARKER'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(calls, N, "every denied call is counted");
    assert!(rows < 5_000, "{rows} rows for one session's flood");
    assert_eq!(breaks(&verify(&path)), Vec::<String>::new());
}
