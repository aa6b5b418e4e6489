//! The macOS keeper (`platform/macos/keep.rs`) on its own, with real files in a temp dir and the
//! [`FakeCloner`] (a real copy that can fail as `clonefile(2)` fails): what lands in the store,
//! what is refused and why, first writes once per session, and that nothing stays in the store
//! for a message that was not allowed.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use crate::platform::macos::fake::FakeCloner;
use crate::platform::macos::keep::{FileId, Keeping, MacKeeper, KEEP_MARGIN};
use crate::policy::{BrakeLimits, SnapshotPolicy};
use crate::snapshots::{Session, SessionId, StoreBudget};
use crate::vocab::{
    Action, Actor, EntryKind, Event, Keep, KeepFailure, KeepItem, KeepOutcome, KeepWhat, KeptEntry,
    KeptHow, OpenFlags, RuleId,
};

struct Rig {
    dir: tempfile::TempDir,
    zone: PathBuf,
    store: PathBuf,
}

fn rig() -> Rig {
    let dir = tempfile::tempdir().unwrap();
    let zone = dir.path().join("zone");
    std::fs::create_dir(&zone).unwrap();
    let store = dir.path().join("store");
    Rig { dir, zone, store }
}

impl Rig {
    fn session(&self, tag: &str, store_bytes: u64) -> Arc<Session> {
        let limits = SnapshotPolicy {
            max_age: 3600,
            max_bytes: store_bytes,
            max_copy_bytes: 1000,
            max_tree_bytes: 1000,
            brake: BrakeLimits {
                files: 100,
                bytes: 1 << 30,
                window_secs: 60,
            },
        };
        Arc::new(Session::new(
            SessionId::new(SystemTime::now(), tag),
            &self.store,
            Arc::new(StoreBudget::new(store_bytes)),
            limits,
        ))
    }

    fn file(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let path = self.zone.join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    }

    /// The files of the store, as (entry name, bytes).
    fn stored(&self) -> Vec<(String, Vec<u8>)> {
        let mut out = Vec::new();
        for session in std::fs::read_dir(&self.store)
            .into_iter()
            .flatten()
            .flatten()
        {
            for e in std::fs::read_dir(session.path()).unwrap().flatten() {
                let bytes = std::fs::read(e.path()).unwrap_or_default();
                out.push((e.file_name().to_string_lossy().into_owned(), bytes));
            }
        }
        out.sort();
        out
    }
}

fn keep_of(action: Action, rule: RuleId, what: KeepWhat, zone: &Path) -> (Event, Keep) {
    let path = action.path().unwrap().to_path_buf();
    (
        Event {
            actor: Actor::default(),
            action,
        },
        Keep {
            items: vec![KeepItem { path, what }],
            zone: zone.to_path_buf(),
            rule,
        },
    )
}

fn unlink(path: &Path, zone: &Path) -> (Event, Keep) {
    let action = Action::Unlink {
        path: path.to_path_buf(),
    };
    keep_of(action, RuleId::ProtectedDelete, KeepWhat::Entry, zone)
}

fn write_open(path: &Path, zone: &Path) -> (Event, Keep) {
    let action = Action::Open {
        path: path.to_path_buf(),
        flags: OpenFlags {
            write: true,
            truncate: false,
            create: false,
        },
    };
    keep_of(
        action,
        RuleId::ProtectedFirstWrite,
        KeepWhat::FirstWrite,
        zone,
    )
}

fn later() -> Instant {
    Instant::now() + Duration::from_secs(30)
}

fn entries(keeping: &Keeping) -> Vec<KeptEntry> {
    keeping
        .kept
        .iter()
        .flat_map(|k| match &k.outcome {
            KeepOutcome::Kept(e) => e.clone(),
            KeepOutcome::Failed { .. } => Vec::new(),
        })
        .collect()
}

fn failure(keeping: &Keeping) -> Option<&KeepFailure> {
    keeping.kept.iter().find_map(|k| match &k.outcome {
        KeepOutcome::Failed { failure, .. } => Some(failure),
        KeepOutcome::Kept(_) => None,
    })
}

#[test]
fn a_deleted_file_is_cloned_into_the_session_with_its_bytes_and_counted() {
    let r = rig();
    let file = r.file("main.rs", b"fn main() {}\n");
    let cloner = Arc::new(FakeCloner::default());
    let keeper = MacKeeper::new(cloner.clone());
    let session = r.session("100.1000", 1 << 20);
    let keeping = keeper.keep(session.clone(), vec![unlink(&file, &r.zone)], &[], later());
    assert!(keeping.allows());
    let kept = entries(&keeping);
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert_eq!(kept[0].path, file);
    assert_eq!(
        (kept[0].how, kept[0].kind),
        (KeptHow::Copied, EntryKind::File)
    );
    assert_eq!(kept[0].size, 13);
    let store_name = kept[0].store_name.clone().unwrap();
    assert!(store_name.ends_with("/000001-main.rs"), "{store_name}");
    assert_eq!(
        std::fs::read(r.store.join(&store_name)).unwrap(),
        b"fn main() {}\n"
    );
    assert_eq!(session.budget.used(), 13);
    assert_eq!(cloner.cloned(), vec![file.clone()]);
    // The file itself is untouched: the kernel deletes it once the daemon allows.
    assert!(file.exists());
}

#[test]
fn a_symlink_is_kept_as_itself_and_a_removed_directory_is_recorded() {
    let r = rig();
    let link = r.zone.join("link");
    std::os::unix::fs::symlink("/etc/hosts", &link).unwrap();
    let sub = r.zone.join("empty");
    std::fs::create_dir(&sub).unwrap();
    let keeper = MacKeeper::new(Arc::new(FakeCloner::default()));
    let rmdir = keep_of(
        Action::Rmdir { path: sub.clone() },
        RuleId::ProtectedDelete,
        KeepWhat::Dir,
        &r.zone,
    );
    let keeping = keeper.keep(
        r.session("1.1", 1 << 20),
        vec![unlink(&link, &r.zone), rmdir],
        &[],
        later(),
    );
    assert!(keeping.allows());
    let kept = entries(&keeping);
    assert_eq!(kept[0].kind, EntryKind::Symlink);
    let stored = r.store.join(kept[0].store_name.as_ref().unwrap());
    assert_eq!(std::fs::read_link(stored).unwrap(), Path::new("/etc/hosts"));
    assert_eq!(
        (kept[1].kind, kept[1].how),
        (EntryKind::Dir, KeptHow::Recorded)
    );
    assert_eq!(kept[1].store_name, None);
}

#[test]
fn a_file_already_gone_keeps_nothing_and_is_allowed() {
    let r = rig();
    let keeper = MacKeeper::new(Arc::new(FakeCloner::default()));
    let gone = r.zone.join("gone.o");
    let keeping = keeper.keep(
        r.session("1.1", 1 << 20),
        vec![unlink(&gone, &r.zone)],
        &[],
        later(),
    );
    assert!(keeping.allows());
    assert!(entries(&keeping).is_empty());
    assert!(r.stored().is_empty());
}

#[test]
fn a_clone_that_fails_refuses_with_the_volume_named_and_leaves_nothing() {
    let r = rig();
    let file = r.file("a.txt", b"abc");
    for (errno, words) in [
        (libc::EXDEV, "another volume than the snapshot store"),
        (libc::ENOTSUP, "cannot clone files (not APFS)"),
    ] {
        let cloner = FakeCloner {
            errno: Some(errno),
            ..FakeCloner::default()
        };
        let keeper = MacKeeper::new(Arc::new(cloner));
        let session = r.session("1.1", 1 << 20);
        let keeping = keeper.keep(session.clone(), vec![unlink(&file, &r.zone)], &[], later());
        assert!(!keeping.allows());
        let why = failure(&keeping).unwrap().to_string();
        assert!(why.contains(words), "{why}");
        assert_eq!(session.budget.used(), 0, "the reservation is given back");
    }
    assert!(r.stored().is_empty(), "{:?}", r.stored());
}

#[test]
fn no_clone_starts_near_the_deadline() {
    let r = rig();
    let file = r.file("a.txt", b"abc");
    let cloner = Arc::new(FakeCloner::default());
    let keeper = MacKeeper::new(cloner.clone());
    let soon = Instant::now() + KEEP_MARGIN / 2;
    let keeping = keeper.keep(
        r.session("1.1", 1 << 20),
        vec![unlink(&file, &r.zone)],
        &[],
        soon,
    );
    assert!(!keeping.allows());
    let why = failure(&keeping).unwrap().to_string();
    assert!(why.contains("deadline"), "{why}");
    assert!(cloner.cloned().is_empty());
}

#[test]
fn a_full_store_and_the_copy_limit_refuse_but_a_clone_has_no_copy_limit() {
    let r = rig();
    let big = r.file("big.bin", &[7u8; 2000]);
    // A byte copy is bounded by max_copy_bytes (1000 here), as on Linux.
    let keeper = MacKeeper::new(Arc::new(FakeCloner::default()));
    let keeping = keeper.keep(
        r.session("1.1", 1 << 20),
        vec![unlink(&big, &r.zone)],
        &[],
        later(),
    );
    assert!(matches!(
        failure(&keeping),
        Some(KeepFailure::TooLarge {
            size: 2000,
            limit: 1000
        })
    ));
    // clonefile copies nothing: no copy limit, only the store's size.
    let cloning = MacKeeper::new(Arc::new(FakeCloner {
        reflinks: true,
        ..FakeCloner::default()
    }));
    let keeping = cloning.keep(
        r.session("2.2", 1 << 20),
        vec![unlink(&big, &r.zone)],
        &[],
        later(),
    );
    assert!(keeping.allows());
    assert_eq!(entries(&keeping)[0].how, KeptHow::Reflinked);
    let keeping = cloning.keep(
        r.session("3.3", 1500),
        vec![unlink(&big, &r.zone)],
        &[],
        later(),
    );
    assert!(matches!(
        failure(&keeping),
        Some(KeepFailure::StoreFull { limit: 1500, .. })
    ));
}

#[test]
fn a_first_write_is_kept_once_per_session_and_file() {
    let r = rig();
    let file = r.file("notes.md", b"version 1");
    let cloner = Arc::new(FakeCloner::default());
    let keeper = MacKeeper::new(cloner.clone());
    let session = r.session("100.1000", 1 << 20);
    let first = keeper.keep(
        session.clone(),
        vec![write_open(&file, &r.zone)],
        &[],
        later(),
    );
    assert_eq!(entries(&first).len(), 1);
    std::fs::write(&file, b"version 2").unwrap();
    // The same session writing again: its own edit, nothing more to keep.
    let again = keeper.keep(
        session.clone(),
        vec![write_open(&file, &r.zone)],
        &[],
        later(),
    );
    assert!(again.allows());
    assert!(entries(&again).is_empty());
    // A truncation in the same session: the session's first state is kept already.
    let truncate = keep_of(
        Action::Truncate { path: file.clone() },
        RuleId::ProtectedTruncate,
        KeepWhat::Content,
        &r.zone,
    );
    assert!(entries(&keeper.keep(session.clone(), vec![truncate], &[], later())).is_empty());
    // Moving it out of the zone is kept again (and counted by the brake): it leaves.
    let action = Action::Rename {
        from: file.clone(),
        to: r.dir.path().join("notes.md"),
        dest_exists: false,
        source_is_dir: false,
    };
    let out = keep_of(action, RuleId::ProtectedMoveOut, KeepWhat::Content, &r.zone);
    assert_eq!(
        entries(&keeper.keep(session, vec![out], &[], later())).len(),
        1
    );
    // Another session (another agent root) keeps the file as it found it.
    let other = keeper.keep(
        r.session("200.2000", 1 << 20),
        vec![write_open(&file, &r.zone)],
        &[],
        later(),
    );
    assert_eq!(entries(&other).len(), 1);
    let bytes: Vec<Vec<u8>> = r.stored().into_iter().map(|(_, b)| b).collect();
    assert_eq!(
        bytes,
        vec![
            b"version 1".to_vec(),
            b"version 2".to_vec(),
            b"version 2".to_vec()
        ]
    );
    assert_eq!(cloner.cloned().len(), 3);
}

#[test]
fn a_first_write_that_cannot_be_cloned_is_an_edit_recorded_as_not_kept() {
    let r = rig();
    let file = r.file("db.sqlite", b"rows");
    let keeper = MacKeeper::new(Arc::new(FakeCloner {
        errno: Some(libc::EXDEV),
        ..FakeCloner::default()
    }));
    let session = r.session("1.1", 1 << 20);
    let keeping = keeper.keep(
        session.clone(),
        vec![write_open(&file, &r.zone)],
        &[],
        later(),
    );
    assert!(keeping.allows());
    let kept = entries(&keeping);
    assert_eq!((kept[0].how, kept[0].size), (KeptHow::NotKept, 4));
    // Noted: the next write-open is an edit too, but a truncation must still keep or refuse.
    assert!(entries(&keeper.keep(
        session.clone(),
        vec![write_open(&file, &r.zone)],
        &[],
        later()
    ))
    .is_empty());
    let truncate = keep_of(
        Action::Truncate { path: file.clone() },
        RuleId::ProtectedTruncate,
        KeepWhat::Content,
        &r.zone,
    );
    assert!(!keeper.keep(session, vec![truncate], &[], later()).allows());
}

#[test]
fn a_directory_moved_out_is_cloned_whole_within_the_tree_limit() {
    let r = rig();
    let tree = r.zone.join("tree");
    std::fs::create_dir_all(tree.join("sub")).unwrap();
    std::fs::write(tree.join("a.txt"), b"aaa").unwrap();
    std::fs::write(tree.join("sub/b.txt"), b"bbbb").unwrap();
    std::os::unix::fs::symlink("a.txt", tree.join("link")).unwrap();
    let keeper = MacKeeper::new(Arc::new(FakeCloner::default()));
    let moved = |tree: &Path| {
        let action = Action::Rename {
            from: tree.to_path_buf(),
            to: r.dir.path().join("elsewhere"),
            dest_exists: false,
            source_is_dir: true,
        };
        keep_of(action, RuleId::ProtectedMoveOut, KeepWhat::Tree, &r.zone)
    };
    let session = r.session("1.1", 1 << 20);
    let keeping = keeper.keep(session.clone(), vec![moved(&tree)], &[], later());
    assert!(keeping.allows());
    let kept = entries(&keeping);
    assert_eq!((kept[0].kind, kept[0].size), (EntryKind::Dir, 7));
    let stored = r.store.join(kept[0].store_name.as_ref().unwrap());
    assert_eq!(std::fs::read(stored.join("sub/b.txt")).unwrap(), b"bbbb");
    assert_eq!(
        std::fs::read_link(stored.join("link")).unwrap(),
        Path::new("a.txt")
    );
    assert_eq!(session.budget.used(), 7);
    // Over the tree limit (1000 bytes here): refused, measured before anything is cloned.
    std::fs::write(tree.join("sub/big"), [0u8; 1200]).unwrap();
    let keeping = keeper.keep(r.session("2.2", 1 << 20), vec![moved(&tree)], &[], later());
    assert!(matches!(
        failure(&keeping),
        Some(KeepFailure::TreeTooLarge { limit: 1000 })
    ));
    assert_eq!(r.stored().len(), 1, "only the first session's tree");
}

#[test]
fn a_later_failure_removes_what_was_kept_for_the_same_message() {
    let r = rig();
    let a = r.file("a", b"aaa");
    let big = r.file("big", &[1u8; 5000]);
    let keeper = MacKeeper::new(Arc::new(FakeCloner::default()));
    let session = r.session("1.1", 1 << 20);
    let keeping = keeper.keep(
        session.clone(),
        vec![unlink(&a, &r.zone), unlink(&big, &r.zone)],
        &[],
        later(),
    );
    assert!(!keeping.allows());
    assert!(r.stored().is_empty(), "{:?}", r.stored());
    assert_eq!(session.budget.used(), 0);
}

#[test]
fn unkeep_removes_the_clones_of_a_message_the_timer_refused() {
    let r = rig();
    let a = r.file("a", b"aaa");
    let keeper = MacKeeper::new(Arc::new(FakeCloner::default()));
    let session = r.session("1.1", 1 << 20);
    let mut keeping = keeper.keep(session.clone(), vec![unlink(&a, &r.zone)], &[], later());
    assert_eq!(r.stored().len(), 1);
    keeper.unkeep(&mut keeping);
    assert!(r.stored().is_empty());
    assert_eq!(session.budget.used(), 0);
    let why = failure(&keeping).unwrap().to_string();
    assert!(why.contains("deadline"), "{why}");
}

/// The file the kernel named in the message (its `stat` there) is what must be kept: a second
/// thread that moves it away, or another file in, after the kernel looked it up would otherwise
/// have the other file kept and the named one destroyed unkept.
#[test]
fn a_path_that_no_longer_holds_the_file_the_kernel_named_is_refused() {
    let r = rig();
    let keeper = MacKeeper::new(Arc::new(FakeCloner::default()));
    let file = r.file("named.rs", b"the named file");
    let named = FileId::of(&std::fs::symlink_metadata(&file).unwrap());
    // The named file is moved away and another put at its path.
    std::fs::rename(&file, r.zone.join("away.rs")).unwrap();
    r.file("named.rs", b"another file");
    let files = [(file.clone(), named)];
    for keep in [unlink(&file, &r.zone), write_open(&file, &r.zone)] {
        let session = r.session("1.1", 1 << 20);
        let keeping = keeper.keep(session.clone(), vec![keep], &files, later());
        assert!(!keeping.allows());
        let why = failure(&keeping).unwrap().to_string();
        assert!(why.contains("replaced while it was being kept"), "{why}");
        assert_eq!(session.budget.used(), 0);
    }
    // Moved away and nothing in its place: the kernel still holds it.
    std::fs::remove_file(&file).unwrap();
    let keeping = keeper.keep(
        r.session("2.2", 1 << 20),
        vec![unlink(&file, &r.zone)],
        &files,
        later(),
    );
    assert!(!keeping.allows());
    assert!(r.stored().is_empty(), "{:?}", r.stored());
    // The file the kernel named, still there: kept.
    let file = r.file("same.rs", b"same");
    let same = [(file.clone(), FileId::of(&std::fs::metadata(&file).unwrap()))];
    let keeping = keeper.keep(
        r.session("3.3", 1 << 20),
        vec![unlink(&file, &r.zone)],
        &same,
        later(),
    );
    assert!(keeping.allows());
    assert_eq!(
        r.stored(),
        vec![("000001-same.rs".to_string(), b"same".to_vec())]
    );
}

/// The same swap between the keeper's look and its clone: the clone is of the file looked at,
/// or nothing.
#[test]
fn a_file_swapped_in_just_before_the_clone_is_not_kept_in_its_place() {
    let r = rig();
    let file = r.file("named.rs", b"the named file");
    let zone = r.zone.clone();
    let cloner = FakeCloner {
        before: Some(Box::new(move |source: &Path| {
            std::fs::rename(source, zone.join("away.rs")).unwrap();
            std::fs::write(source, b"another file").unwrap();
        })),
        ..FakeCloner::default()
    };
    let keeper = MacKeeper::new(Arc::new(cloner));
    let session = r.session("1.1", 1 << 20);
    let keeping = keeper.keep(session.clone(), vec![unlink(&file, &r.zone)], &[], later());
    assert!(!keeping.allows());
    let why = failure(&keeping).unwrap().to_string();
    assert!(why.contains("replaced while it was being kept"), "{why}");
    assert!(r.stored().is_empty(), "{:?}", r.stored());
    assert_eq!(session.budget.used(), 0);
}
