//! The emulations against real files: each performs the call in the checked directory, and a
//! directory or final name swapped for a symlink after the check makes it fail instead of acting
//! elsewhere.

use std::ffi::CString;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use super::{unshare_fs_for_this_thread, Delivery, Emulation, Emulator, TaskUmask};
use crate::platform::linux::supervisor::task::fake::FakeTasks;
use crate::platform::linux::supervisor::umask_cache::UmaskCache;
use crate::platform::linux::sys::notify::{Listener, Response};

const TID: i32 = 77;

/// Runs path emulations (which never use the listener: a stand-in fd is enough).
struct Bench {
    _dir: tempfile::TempDir,
    root: PathBuf,
    listener: Listener,
    installing: Arc<RwLock<()>>,
    umasks: UmaskCache,
    tasks: FakeTasks,
}

impl Bench {
    fn new() -> Bench {
        let dir = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(dir.path()).unwrap();
        let stand_in = std::fs::File::open("/dev/null").unwrap();
        let mut tasks = FakeTasks::new();
        tasks.umask_of(TID, 0o027);
        Bench {
            _dir: dir,
            root,
            listener: Listener::new(stand_in.into()),
            installing: Arc::default(),
            umasks: UmaskCache::default(),
            tasks,
        }
    }

    fn run(&self, emulation: Emulation) -> Response {
        let emulator = Emulator {
            deliver: Delivery {
                listener: &self.listener,
                id: 0,
                installing_writable: &self.installing,
            },
            umask: TaskUmask {
                cache: &self.umasks,
                tasks: &self.tasks,
            },
        };
        emulator.run(emulation).unwrap()
    }
}

fn c(s: &str) -> CString {
    CString::new(s).unwrap()
}

fn unlink(parent: &Path, name: &str) -> Emulation {
    Emulation::Unlink {
        parent: parent.to_path_buf(),
        name: c(name),
        flags: 0,
    }
}

#[test]
fn unlink_acts_in_the_checked_directory_and_not_through_a_swapped_one() {
    let b = Bench::new();
    let checked = b.root.join("checked");
    std::fs::create_dir(&checked).unwrap();
    std::fs::write(checked.join("f"), b"x").unwrap();
    assert_eq!(b.run(unlink(&checked, "f")), Response::Value(0));
    assert!(!checked.join("f").exists());
    assert_eq!(b.run(unlink(&checked, "f")), Response::Error(libc::ENOENT));
    // The checked directory is swapped for a symlink to another one after the check.
    let elsewhere = b.root.join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    std::fs::write(elsewhere.join("f"), b"keep").unwrap();
    std::fs::remove_dir(&checked).unwrap();
    symlink(&elsewhere, &checked).unwrap();
    assert_eq!(b.run(unlink(&checked, "f")), Response::Error(libc::ELOOP));
    assert!(elsewhere.join("f").exists());
}

#[test]
fn a_rename_exchange_exchanges_and_a_link_through_a_magic_link_links_the_held_file() {
    let b = Bench::new();
    std::fs::write(b.root.join("a"), b"A").unwrap();
    std::fs::write(b.root.join("b"), b"B").unwrap();
    let exchange = Emulation::Rename {
        from_parent: b.root.clone(),
        from_name: c("a"),
        to_parent: b.root.clone(),
        to_name: c("b"),
        flags: libc::RENAME_EXCHANGE,
        noreplace_added: false,
    };
    assert_eq!(b.run(exchange), Response::Value(0));
    assert_eq!(std::fs::read(b.root.join("a")).unwrap(), b"B");
    // The held file is linked even after its name moved away.
    let held = std::fs::File::open(b.root.join("a")).unwrap();
    std::fs::rename(b.root.join("a"), b.root.join("moved")).unwrap();
    let link = Emulation::LinkObject {
        object: held.into(),
        task: crate::platform::linux::sys::process::tid(),
        to_parent: b.root.clone(),
        to_name: c("again"),
    };
    assert_eq!(b.run(link), Response::Value(0));
    assert_eq!(std::fs::read(b.root.join("again")).unwrap(), b"B");
}

#[test]
fn truncate_refuses_a_final_name_swapped_for_a_symlink() {
    let b = Bench::new();
    let f = b.root.join("f");
    std::fs::write(&f, b"0123456789").unwrap();
    let truncate = |path: &Path| Emulation::Truncate {
        path: path.to_path_buf(),
        length: 4,
    };
    assert_eq!(b.run(truncate(&f)), Response::Value(0));
    assert_eq!(std::fs::read(&f).unwrap(), b"0123");
    let swapped = b.root.join("swapped");
    symlink(&f, &swapped).unwrap();
    assert_eq!(b.run(truncate(&swapped)), Response::Error(libc::ELOOP));
}

#[test]
fn new_directories_get_the_tasks_umask_and_symlinks_their_text() {
    let b = Bench::new();
    // As a worker does at start: this test thread gets its own umask.
    unshare_fs_for_this_thread();
    let mkdir = Emulation::Mkdir {
        parent: b.root.clone(),
        name: c("d"),
        mode: 0o777,
        tid: TID,
    };
    assert_eq!(b.run(mkdir), Response::Value(0));
    let mode = std::fs::metadata(b.root.join("d"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o750, "{mode:o}");
    let link = Emulation::Symlink {
        target: c("../no/such/place"),
        parent: b.root.clone(),
        name: c("l"),
    };
    assert_eq!(b.run(link), Response::Value(0));
    assert_eq!(
        std::fs::read_link(b.root.join("l")).unwrap(),
        Path::new("../no/such/place")
    );
}
