use super::*;
use crate::audit::KeptRecord;
use crate::vocab::{OpKind, RuleId};
use std::os::unix::fs::OpenOptionsExt;

struct Kept {
    root: tempfile::TempDir,
    store: PathBuf,
    zone: PathBuf,
    rows: Vec<StoredKept>,
}

impl Kept {
    fn new() -> Kept {
        let root = tempfile::tempdir().unwrap();
        let store = root.path().join("store");
        let zone = root.path().join("zone");
        fs::create_dir_all(store.join("s1")).unwrap();
        fs::create_dir_all(&zone).unwrap();
        Kept {
            root,
            store,
            zone,
            rows: Vec::new(),
        }
    }

    /// Keep `content` for `rel` as the session `s1` would have, at `time_ms`.
    fn file(&mut self, rel: &str, content: &[u8], time_ms: i64, end: Option<EndState>) {
        let seq = self.rows.len() as u64 + 1;
        let name = format!("s1/{seq:06}-x");
        fs::write(self.store.join(&name), content).unwrap();
        let sha = sha256_of(&self.store.join(&name)).unwrap();
        self.push(
            rel,
            seq,
            time_ms,
            KeptHow::Moved,
            EntryKind::File,
            Some(name),
            Some(sha),
            end,
            0o100640,
        );
    }

    fn dir(&mut self, rel: &str, time_ms: i64) {
        let seq = self.rows.len() as u64 + 1;
        let end = Some(EndState::Absent);
        self.push(
            rel,
            seq,
            time_ms,
            KeptHow::Recorded,
            EntryKind::Dir,
            None,
            None,
            end,
            0o40750,
        );
    }

    #[allow(clippy::too_many_arguments)]
    fn push(
        &mut self,
        rel: &str,
        seq: u64,
        time_ms: i64,
        how: KeptHow,
        kind: EntryKind,
        store_name: Option<String>,
        sha256: Option<String>,
        end: Option<EndState>,
        mode: u32,
    ) {
        self.rows.push(StoredKept {
            id: seq as i64,
            time: String::new(),
            record: KeptRecord {
                time_ms,
                session: "s1".into(),
                seq,
                agent: "claude".into(),
                agent_pid: 1,
                pid: 2,
                exe: "/usr/bin/rm".into(),
                op: OpKind::Unlink,
                rule: RuleId::ProtectedDelete,
                path: self.zone.join(rel).display().to_string(),
                dest: None,
                kind,
                how,
                store_name,
                size: 0,
                mode,
                mtime_ns: 1_000_000_000,
                sha256,
                end_state: end.map(EndState::to_text),
                new_in_session: false,
            },
        });
    }
}

#[test]
fn a_removed_tree_comes_back_directories_first_with_modes() {
    let mut k = Kept::new();
    k.file("a/b/f", b"deep", 1, Some(EndState::Absent));
    k.dir("a/b", 2);
    k.file("a/g", b"top", 3, Some(EndState::Absent));
    k.dir("a", 4);
    let results = restore(&k.store, &k.rows, false);
    assert!(
        results
            .iter()
            .all(|r| matches!(r, Restored::InPlace { .. })),
        "{results:#?}"
    );
    assert_eq!(fs::read(k.zone.join("a/b/f")).unwrap(), b"deep");
    assert_eq!(fs::read(k.zone.join("a/g")).unwrap(), b"top");
    let mode = |p: &str| fs::metadata(k.zone.join(p)).unwrap().permissions().mode() & 0o7777;
    assert_eq!((mode("a"), mode("a/b"), mode("a/g")), (0o750, 0o750, 0o640));
    let mtime = fs::metadata(k.zone.join("a/g"))
        .unwrap()
        .modified()
        .unwrap();
    assert_eq!(mtime, UNIX_EPOCH + Duration::from_secs(1));
}

#[test]
fn the_oldest_state_wins_and_a_later_human_edit_is_left_alone() {
    let mut k = Kept::new();
    let f = k.zone.join("f");
    fs::write(&f, b"the agent's version").unwrap();
    let left = EndState::of(&f);
    k.file("f", b"original", 1, Some(left));
    k.file("f", b"the agent's first edit", 2, Some(left));
    let results = restore(&k.store, &k.rows, false);
    assert!(
        matches!(&results[..], [Restored::InPlace { id: 1, .. }]),
        "{results:#?}"
    );
    assert_eq!(fs::read(&f).unwrap(), b"original");
    // A human edits it afterwards: the kept version goes beside it.
    std::thread::sleep(Duration::from_millis(10));
    fs::write(&f, b"the human's edit").unwrap();
    let results = restore(&k.store, &k.rows, false);
    let Restored::Beside { to, .. } = &results[0] else {
        panic!("{results:#?}");
    };
    assert_eq!(to, &k.zone.join("f.agent-guard-restored"));
    assert_eq!(fs::read(&f).unwrap(), b"the human's edit");
    assert_eq!(fs::read(to).unwrap(), b"original");
}

#[test]
fn a_kept_copy_that_does_not_match_its_hash_is_not_restored() {
    let mut k = Kept::new();
    k.file("f", b"original", 1, Some(EndState::Absent));
    let name = k.rows[0].record.store_name.clone().unwrap();
    fs::OpenOptions::new()
        .append(true)
        .custom_flags(0)
        .open(k.store.join(name))
        .unwrap()
        .write_all(b" and more")
        .unwrap();
    let results = restore(&k.store, &k.rows, false);
    assert!(results[0].failed(), "{results:#?}");
    assert!(!k.zone.join("f").exists());
    assert_eq!(
        fs::read_dir(&k.zone).unwrap().count(),
        0,
        "no temporary file left"
    );
    let _ = &k.root;
}

#[test]
fn a_dry_run_changes_nothing() {
    let mut k = Kept::new();
    k.file("f", b"original", 1, Some(EndState::Absent));
    let results = restore(&k.store, &k.rows, true);
    assert!(matches!(&results[..], [Restored::InPlace { .. }]));
    assert!(!k.zone.join("f").exists());
}

#[test]
fn a_bulk_restore_leaves_out_what_the_session_made_itself() {
    let mut k = Kept::new();
    // f was there before; the session deleted it, made a new f and deleted that too, and made
    // and deleted tmp.o.
    k.file("f", b"the human's", 1, Some(EndState::Absent));
    k.file("f", b"the agent's", 2, Some(EndState::Absent));
    k.file("tmp.o", b"object", 3, Some(EndState::Absent));
    k.rows[1].record.new_in_session = true;
    k.rows[2].record.new_in_session = true;
    let (restore_these, left_out) = leave_out_new(k.rows.clone());
    assert_eq!(
        left_out.iter().map(|r| r.id).collect::<Vec<_>>(),
        vec![2, 3]
    );
    let results = restore(&k.store, &restore_these, false);
    assert_eq!(results.len(), 1, "{results:#?}");
    assert_eq!(fs::read(k.zone.join("f")).unwrap(), b"the human's");
    assert!(!k.zone.join("tmp.o").exists());
    // Asked for, they come back too (per path the oldest still wins).
    fs::remove_file(k.zone.join("f")).unwrap();
    restore(&k.store, &k.rows, false);
    assert_eq!(fs::read(k.zone.join("f")).unwrap(), b"the human's");
    assert_eq!(fs::read(k.zone.join("tmp.o")).unwrap(), b"object");
}

/// The agent deletes `x/authorized_keys` (kept), then turns `x` into a symlink to a directory
/// outside the zone. The human's restore, which writes with the human's rights, must not put
/// the file (the agent's bytes, under the agent's name) there, nor make or chmod a directory
/// through the link.
#[test]
fn nothing_is_written_through_a_directory_turned_into_a_symlink() {
    let mut k = Kept::new();
    let outside = k.root.path().join("home-ssh");
    fs::create_dir(&outside).unwrap();
    fs::set_permissions(&outside, fs::Permissions::from_mode(0o700)).unwrap();
    k.file(
        "x/authorized_keys",
        b"ssh-ed25519 AAAA agent",
        1,
        Some(EndState::Absent),
    );
    k.dir("x/sub", 2);
    k.file("y/deeper/f", b"deep", 3, Some(EndState::Absent));
    std::os::unix::fs::symlink(&outside, k.zone.join("x")).unwrap();
    fs::create_dir(k.zone.join("y")).unwrap();
    std::os::unix::fs::symlink(&outside, k.zone.join("y/deeper")).unwrap();
    let results = restore(&k.store, &k.rows, false);
    assert_eq!(results.len(), 3, "{results:#?}");
    for r in &results {
        match r {
            Restored::Failed { why, .. } => {
                assert!(why.contains("no longer a directory"), "{why}")
            }
            other => panic!("restored through a symlink: {other:#?}"),
        }
    }
    let left: Vec<_> = fs::read_dir(&outside).unwrap().flatten().collect();
    assert!(left.is_empty(), "{left:?}");
    let mode = fs::metadata(&outside).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode, 0o700);
}

#[test]
fn the_hash_is_sha256_in_lower_case_hex_whatever_the_buffer() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("abc");
    fs::write(&file, b"abc").unwrap();
    let abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
    assert_eq!(sha256_of(&file).unwrap(), abc);
    // A buffer smaller than the file, reused: the same hash.
    let mut small = [0u8; 2];
    assert_eq!(sha256_with(&file, &mut small).unwrap(), abc);
    assert_eq!(sha256_with(&file, &mut small).unwrap(), abc);
    fs::write(&file, b"").unwrap();
    let empty = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    assert_eq!(sha256_with(&file, &mut small).unwrap(), empty);
}
