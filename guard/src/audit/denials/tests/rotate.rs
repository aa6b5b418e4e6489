//! Rotation: the lock between writers, what is kept, a reader across rotations.

use super::*;

#[test]
fn rotation_waits_for_a_live_lock_and_takes_over_a_stale_one() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("denials.jsonl");
    let lock = dir.path().join("denials.jsonl.lock");
    let log = DenialLog::open(&path, config(1, 5, 100)).unwrap();
    // Another writer is rotating: this one keeps appending to the live file.
    let held = File::create(&lock).unwrap();
    for n in 0..3 {
        log.log(record(7, n));
    }
    log.flush();
    assert!(!rotated_path(&path, 1).exists());
    assert_eq!(fs::read_to_string(&path).unwrap().lines().count(), 3);
    // That writer died holding it: after STALE_ROTATION_LOCK the lock is taken over.
    held.set_modified(SystemTime::now() - STALE_ROTATION_LOCK * 2)
        .unwrap();
    log.log(record(7, 3));
    log.flush();
    assert!(rotated_path(&path, 1).exists());
    assert_eq!(log.stats().rotations, 1);
    assert!(!lock.exists());
    assert_eq!(all_lines(&path).len(), 4);
}

#[test]
fn rotation_keeps_n_files_and_the_newest_records() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("denials.jsonl");
    let one_line = serde_json::to_vec(&record(0, 0)).unwrap().len() as u64 + 1;
    // About three records per file.
    let log = DenialLog::open(&path, config(one_line * 3 + 10, 3, 1000)).unwrap();
    let mut follower = DenialFollower::new(&path);
    for n in 0..100 {
        log.log(record(0, n));
    }
    log.flush();
    assert!(path.exists());
    for n in 1..=3 {
        assert!(rotated_path(&path, n).exists(), ".{n} missing");
    }
    assert!(
        !rotated_path(&path, 4).exists(),
        "kept more than 3 rotated files"
    );

    // What is kept is exactly the newest records, without a gap.
    let read = read_denials(&path, None).unwrap();
    let ns: Vec<usize> = read
        .records
        .iter()
        .map(|r| r.path.rsplit('/').next().unwrap().parse().unwrap())
        .collect();
    assert!(!ns.is_empty());
    let first = ns[0];
    assert_eq!(ns, (first..100).collect::<Vec<_>>());
    assert!(ns.len() >= 9, "4 files of ~3 records: {ns:?}");

    // A reader that had the live file open before the rotations loses nothing of it: the
    // first file's records are still reachable through its descriptor (although the file
    // was rotated past `keep` and unlinked), then it reads every kept file.
    let followed = follower.poll().unwrap();
    let followed_ns: Vec<usize> = followed
        .iter()
        .map(|r| r.path.rsplit('/').next().unwrap().parse().unwrap())
        .collect();
    let mut expected = vec![0, 1, 2];
    expected.extend(&ns);
    assert_eq!(followed_ns, expected);
}

#[test]
fn follower_sees_every_record_when_polled_across_rotations() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("denials.jsonl");
    let one_line = serde_json::to_vec(&record(0, 0)).unwrap().len() as u64 + 1;
    let log = DenialLog::open(&path, config(one_line * 4, 2, 1000)).unwrap();
    let mut follower = DenialFollower::new(&path);
    let mut got = Vec::new();
    // Poll after every record: at most one rotation between polls, so nothing is rotated
    // out of reach (keep=2) and the follower must see all of them exactly once.
    for n in 0..50 {
        log.log(record(1, n));
        log.flush();
        got.extend(follower.poll().unwrap());
    }
    let ns: Vec<String> = got.iter().map(|r| r.path.clone()).collect();
    let expected: Vec<String> = (0..50).map(|n| format!("/w/1/{n}")).collect();
    assert_eq!(ns, expected);
    assert_eq!(follower.malformed(), 0);
    assert!(log.stats().rotations >= 10);
}
