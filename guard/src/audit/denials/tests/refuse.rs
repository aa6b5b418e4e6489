//! What is refused at the log path: a symlink (at open and planted later), a FIFO, a hard
//! link.

use super::*;

#[test]
fn symlink_at_the_log_path_is_refused_and_named() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("victim");
    fs::write(&target, "precious\n").unwrap();
    let path = dir.path().join("denials.jsonl");
    symlink(&target, &path).unwrap();
    let err = DenialLog::open(&path, DenialLogConfig::default())
        .err()
        .expect("a symlink must be refused");
    assert!(matches!(err, DenialLogError::Symlink { .. }), "{err:?}");
    assert!(
        err.to_string().contains(&path.display().to_string()),
        "{err}"
    );
    assert_eq!(fs::read_to_string(&target).unwrap(), "precious\n");
}

#[test]
fn symlink_planted_after_open_is_refused_at_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("victim");
    fs::write(&target, "precious\n").unwrap();
    let path = dir.path().join("denials.jsonl");
    let log = DenialLog::open(&path, config(1 << 20, 3, 16)).unwrap();
    log.log(record(0, 0));
    log.flush();
    // Swap the live file for a symlink, as an agent with write access to the directory would.
    fs::remove_file(&path).unwrap();
    symlink(&target, &path).unwrap();
    log.log(record(0, 1));
    log.flush();
    assert_eq!(fs::read_to_string(&target).unwrap(), "precious\n");
    let stats = log.stats();
    assert!(stats.write_errors > 0, "{stats:?}");
    assert!(
        stats
            .last_error
            .as_deref()
            .unwrap()
            .contains("symbolic link"),
        "{stats:?}"
    );
    assert_eq!(stats.written, 1);
}

#[test]
fn fifo_and_hard_link_at_the_log_path_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo.jsonl");
    let status = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(status.success());
    // Without O_NONBLOCK this open would hang forever waiting for a reader.
    let err = DenialLog::open(&fifo, DenialLogConfig::default())
        .err()
        .unwrap();
    assert!(matches!(err, DenialLogError::NotRegular { .. }), "{err:?}");

    let other = dir.path().join("someone-elses-file");
    fs::write(&other, "x\n").unwrap();
    let linked = dir.path().join("linked.jsonl");
    fs::hard_link(&other, &linked).unwrap();
    let err = DenialLog::open(&linked, DenialLogConfig::default())
        .err()
        .unwrap();
    assert!(err.to_string().contains("2 hard links"), "{err}");
    assert_eq!(fs::read_to_string(&other).unwrap(), "x\n");
}
