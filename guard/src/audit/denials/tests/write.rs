//! Writing: many threads and two writers on one file, the bounded queue, modes, config.

use super::*;

#[test]
fn hundred_thousand_denials_from_eight_threads_survive_rotation_whole() {
    const THREADS: usize = 8;
    const PER_THREAD: usize = 12_500;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log/denials.jsonl");
    // 256 KiB files for ~50 MB of records: about 200 rotations, all kept.
    let log = Arc::new(
        DenialLog::open(&path, config(256 * 1024, 100_000, THREADS * PER_THREAD)).unwrap(),
    );
    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            let log = log.clone();
            std::thread::spawn(move || {
                for n in 0..PER_THREAD {
                    log.log(record(t, n));
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    log.flush();
    assert_eq!(log.dropped(), 0);
    let stats = log.stats();
    assert_eq!(stats.written, (THREADS * PER_THREAD) as u64);
    assert!(stats.rotations > 50, "expected many rotations: {stats:?}");
    assert_eq!(stats.write_errors, 0, "{stats:?}");

    let lines = all_lines(&path);
    assert_eq!(lines.len(), THREADS * PER_THREAD);
    let mut ids = HashSet::new();
    let mut seen = HashSet::new();
    for line in &lines {
        let rec: DenialRecord =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("malformed line {line:?}: {e}"));
        assert!(ids.insert(rec.id.clone()), "duplicate id {}", rec.id);
        assert!(seen.insert(rec.path.clone()));
    }
    for t in 0..THREADS {
        for n in 0..PER_THREAD {
            assert!(seen.contains(&format!("/w/{t}/{n}")), "lost /w/{t}/{n}");
        }
    }
    for file in log_files(&path).unwrap() {
        let len = fs::metadata(&file).unwrap().len();
        assert!(len <= 256 * 1024, "{} is {len} bytes", file.display());
    }
    let read = read_denials(&path, None).unwrap();
    assert_eq!(read.records.len(), THREADS * PER_THREAD);
    assert_eq!(read.malformed, 0);
}

/// Two writers (two supervisors sharing a state dir) on one file, both rotating it: no line
/// lost, split or duplicated.
#[test]
fn two_writers_sharing_one_log_lose_and_split_nothing() {
    const THREADS_PER_LOG: usize = 4;
    const PER_THREAD: usize = 5_000;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("denials.jsonl");
    let logs: Vec<Arc<DenialLog>> = (0..2)
        .map(|_| Arc::new(DenialLog::open(&path, config(32 * 1024, 100_000, 100_000)).unwrap()))
        .collect();
    let threads: Vec<_> = (0..2 * THREADS_PER_LOG)
        .map(|t| {
            let log = logs[t % 2].clone();
            std::thread::spawn(move || {
                for n in 0..PER_THREAD {
                    log.log(record(100 + t, n));
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    for log in &logs {
        log.flush();
        assert_eq!(log.dropped(), 0);
    }
    let lines = all_lines(&path);
    let mut seen = HashSet::new();
    for line in &lines {
        let rec: DenialRecord =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("malformed line {line:?}: {e}"));
        assert!(seen.insert(rec.path.clone()), "duplicate {}", rec.path);
    }
    assert_eq!(lines.len(), 2 * THREADS_PER_LOG * PER_THREAD);
    assert!(logs.iter().all(|l| l.stats().rotations > 0));
    assert!(!dir.path().join("denials.jsonl.lock").exists());
}

#[test]
fn full_queue_drops_and_counts_without_blocking() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("denials.jsonl");
    let (entered_tx, entered_rx) = mpsc::channel::<()>();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let calls = Arc::new(AtomicUsize::new(0));
    let hook_calls = calls.clone();
    let release_rx = Mutex::new(release_rx);
    // The hook runs on each created file; the second call (after the first rotation) blocks
    // the writer until the test releases it.
    let hook: OnCreateHook = Arc::new(move |_file, _path| {
        if hook_calls.fetch_add(1, Ordering::SeqCst) == 1 {
            entered_tx.send(()).unwrap();
            release_rx.lock().unwrap().recv().unwrap();
        }
        Ok(())
    });
    const CAPACITY: usize = 4;
    let log = DenialLog::open(
        &path,
        DenialLogConfig {
            max_bytes: 1,
            keep: 10,
            queue_capacity: CAPACITY,
            on_create: Some(hook),
        },
    )
    .unwrap();
    log.log(record(2, 0)); // written into the first file
    log.log(record(2, 1)); // forces a rotation: the writer blocks in the hook
    entered_rx.recv().unwrap();
    // The writer holds record 1; the queue is empty and takes exactly CAPACITY more.
    for n in 2..2 + CAPACITY + 7 {
        log.log(record(2, n));
    }
    assert_eq!(log.dropped(), 7);
    release_tx.send(()).unwrap();
    log.flush();
    let lines = all_lines(&path);
    assert_eq!(lines.len(), 2 + CAPACITY);
    assert_eq!(log.stats().written, (2 + CAPACITY) as u64);
}

#[test]
fn new_files_are_0644_and_directory_0755() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a/b/denials.jsonl");
    let log = DenialLog::open(&path, config(600, 2, 16)).unwrap();
    for n in 0..5 {
        log.log(record(0, n));
    }
    log.flush();
    drop(log);
    let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&path), 0o644);
    assert_eq!(mode(&rotated_path(&path, 1)), 0o644);
    assert_eq!(mode(&dir.path().join("a/b")), 0o755);
}

#[test]
fn keep_zero_is_a_config_error() {
    let dir = tempfile::tempdir().unwrap();
    let err = DenialLog::open(&dir.path().join("d"), config(10, 0, 1))
        .err()
        .unwrap();
    assert!(err.to_string().contains("keep"), "{err}");
}
