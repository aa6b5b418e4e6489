//! Reading back: order, `since`, malformed lines, following new records.

use super::*;

#[test]
fn reader_orders_by_time_filters_since_and_counts_malformed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("denials.jsonl");
    let mut old = record(3, 0);
    old.time = "2020-01-01T00:00:00.000Z".into();
    old.ts = 1_577_836_800;
    let mut newer = record(3, 1);
    newer.time = "2030-01-01T00:00:00.000Z".into();
    newer.ts = 1_893_456_000;
    let mut middle = record(3, 2);
    middle.time = "2025-01-01T00:00:00.000Z".into();
    middle.ts = 1_735_689_600;
    let line = |r: &DenialRecord| serde_json::to_string(r).unwrap() + "\n";
    fs::write(rotated_path(&path, 2), line(&old)).unwrap();
    fs::write(
        rotated_path(&path, 1),
        format!("{}not json\n{{\"half\": \n", line(&newer)),
    )
    .unwrap();
    fs::write(&path, line(&middle)).unwrap();
    let all = read_denials(&path, None).unwrap();
    let paths: Vec<&str> = all.records.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(paths, ["/w/3/0", "/w/3/2", "/w/3/1"]);
    assert_eq!(all.malformed, 2);
    let since = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let recent = read_denials(&path, Some(since)).unwrap();
    let paths: Vec<&str> = recent.records.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(paths, ["/w/3/2", "/w/3/1"]);
}

#[test]
fn follow_reports_existing_then_new_records() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("denials.jsonl");
    let log = Arc::new(DenialLog::open(&path, config(700, 50, 100)).unwrap());
    for n in 0..5 {
        log.log(record(4, n));
    }
    log.flush();
    let writer_log = log.clone();
    let writer = std::thread::spawn(move || {
        for n in 5..10 {
            writer_log.log(record(4, n));
            writer_log.flush();
        }
    });
    let mut got = Vec::new();
    follow(&path, None, Duration::from_millis(5), |r| {
        got.push(r.path.clone());
        if got.len() == 10 {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    })
    .unwrap();
    writer.join().unwrap();
    let expected: Vec<String> = (0..10).map(|n| format!("/w/4/{n}")).collect();
    assert_eq!(got, expected);
}
