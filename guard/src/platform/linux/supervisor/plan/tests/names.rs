//! Planning the calls on names: unlink and rmdir, rename, link, mkdir, mknod, symlink, truncate.

use super::*;

#[test]
fn removing_dot_or_dotdot_is_answered_as_the_kernel_does() {
    let mut s = Scene::new();
    for (path, remove_dir, errno) in [
        (".", false, libc::EISDIR),
        ("a/..", false, libc::EISDIR),
        (".", true, libc::EINVAL),
        ("sub/.", true, libc::EINVAL),
        ("..", true, libc::ENOTEMPTY),
    ] {
        let path_ptr = s.tasks.put_str(path);
        let plan = s
            .plan(Call::Unlink {
                dir: Base::Cwd,
                path: path_ptr,
                remove_dir,
            })
            .unwrap();
        assert_eq!(
            answer_of(plan),
            Response::Error(errno),
            "{path} rmdir={remove_dir}"
        );
    }
}

#[test]
fn removing_what_is_not_there_gets_the_kernels_answer_before_any_judgment() {
    let mut s = Scene::new();
    s.file("file");
    std::fs::create_dir_all(s.root.join("full/sub")).unwrap();
    std::fs::create_dir(s.root.join("empty")).unwrap();
    // The answer, whether planning gives it or fails with it (a missing parent).
    let remove = |s: &mut Scene, path: &str, remove_dir: bool| {
        let path = s.tasks.put_str(path);
        s.plan(Call::Unlink {
            dir: Base::Cwd,
            path,
            remove_dir,
        })
        .unwrap_or_else(|e| Plan::Answer(Response::failed(&e)))
    };
    for (path, remove_dir, errno) in [
        ("missing.o", false, libc::ENOENT),
        ("missing/x", false, libc::ENOENT),
        ("file/x", false, libc::ENOTDIR),
        ("missing", true, libc::ENOENT),
        ("full", true, libc::ENOTEMPTY),
        ("file", true, libc::ENOTDIR),
        ("full", false, libc::EISDIR),
    ] {
        let plan = remove(&mut s, path, remove_dir);
        assert_eq!(
            answer_of(plan),
            Response::Error(errno),
            "{path} rmdir={remove_dir}"
        );
    }
    // What is there is judged: a file, an empty directory.
    assert!(matches!(remove(&mut s, "file", false), Plan::Emulate(..)));
    assert!(matches!(remove(&mut s, "empty", true), Plan::Emulate(..)));
    // A rename of nothing.
    let (from, to) = (s.tasks.put_str("missing"), s.tasks.put_str("elsewhere"));
    let rename = Call::Rename {
        from_dir: Base::Cwd,
        from,
        to_dir: Base::Cwd,
        to,
        flags: 0,
    };
    assert_eq!(
        answer_of(s.plan(rename).unwrap()),
        Response::Error(libc::ENOENT)
    );
}

#[test]
fn in_a_secret_zone_a_removal_is_judged_whether_or_not_its_target_is_there() {
    // The errno would say what is in the zone, which the agent may not list.
    let mut s = Scene::new();
    let zone = s.root.join("zone");
    std::fs::create_dir_all(zone.join("full/sub")).unwrap();
    s.secrets = SecretInodes::index(std::slice::from_ref(&zone), &[]);
    for (path, remove_dir) in [("zone/missing", false), ("zone/full", true)] {
        let path = s.tasks.put_str(path);
        let plan = s
            .plan(Call::Unlink {
                dir: Base::Cwd,
                path,
                remove_dir,
            })
            .unwrap();
        assert!(matches!(plan, Plan::Emulate(..)), "{plan:?}");
    }
}

#[test]
fn unlink_is_judged_and_performed_on_the_resolved_name_without_following_it() {
    let mut s = Scene::new();
    let target = s.file("target");
    std::os::unix::fs::symlink(&target, s.root.join("link")).unwrap();
    let path = s.tasks.put_str("./link");
    let (actions, emulation) = emulated(s.plan_raw(libc::SYS_unlinkat, [CWD, path.0, 0, 0, 0, 0]));
    assert_eq!(
        actions,
        [Action::Unlink {
            path: s.root.join("link")
        }]
    );
    let Emulation::Unlink {
        parent,
        name,
        flags,
    } = emulation
    else {
        panic!("{emulation:?}")
    };
    assert_eq!((parent, name, flags), (s.root.clone(), c("link"), 0));
    // rmdir keeps a trailing slash, which makes the kernel insist on a directory.
    std::fs::create_dir(s.root.join("dir")).unwrap();
    let path = s.tasks.put_str("dir/");
    let rmdir = libc::AT_REMOVEDIR as u64;
    let (actions, emulation) =
        emulated(s.plan_raw(libc::SYS_unlinkat, [CWD, path.0, rmdir, 0, 0, 0]));
    assert_eq!(
        actions,
        [Action::Rmdir {
            path: s.root.join("dir")
        }]
    );
    assert!(
        matches!(&emulation, Emulation::Unlink { name, flags: libc::AT_REMOVEDIR, .. } if *name == c("dir/")),
        "{emulation:?}"
    );
}

#[test]
fn a_rename_exchange_plans_two_renames() {
    let mut s = Scene::new();
    let a = s.file("a");
    let b = s.root.join("b");
    std::fs::create_dir(&b).unwrap();
    let (from, to) = (s.tasks.put_str("a"), s.tasks.put_str("b"));
    let exchange = Call::Rename {
        from_dir: Base::Cwd,
        from,
        to_dir: Base::Cwd,
        to,
        flags: libc::RENAME_EXCHANGE,
    };
    let (actions, emulation) = emulated(s.plan(exchange).unwrap());
    assert_eq!(
        actions,
        [
            Action::Rename {
                from: a.clone(),
                to: b.clone(),
                dest_exists: true,
                source_is_dir: false
            },
            Action::Rename {
                from: b.clone(),
                to: a.clone(),
                dest_exists: true,
                source_is_dir: true
            }
        ]
    );
    assert!(matches!(
        emulation,
        Emulation::Rename {
            flags: libc::RENAME_EXCHANGE,
            ..
        }
    ));
    // A plain rename onto nothing is one move.
    let to_new = s.tasks.put_str("new");
    let plain = Call::Rename {
        from_dir: Base::Cwd,
        from,
        to_dir: Base::Cwd,
        to: to_new,
        flags: 0,
    };
    let (actions, emulation) = emulated(s.plan(plain).unwrap());
    assert_eq!(
        actions,
        [Action::Rename {
            from: a,
            to: s.root.join("new"),
            dest_exists: false,
            source_is_dir: false
        }]
    );
    // ... and is performed so that it cannot replace a file put there after the judgement.
    assert!(matches!(
        emulation,
        Emulation::Rename {
            flags: libc::RENAME_NOREPLACE,
            noreplace_added: true,
            ..
        }
    ));
    // Renaming `..` is refused before anything is looked at.
    let dotdot = s.tasks.put_str("x/..");
    let onto_dotdot = Call::Rename {
        from_dir: Base::Cwd,
        from,
        to_dir: Base::Cwd,
        to: dotdot,
        flags: 0,
    };
    assert_eq!(
        answer_of(s.plan(onto_dotdot).unwrap()),
        Response::Error(libc::EBUSY)
    );
}

#[test]
fn an_empty_path_link_is_judged_through_the_fd_target_and_made_through_the_fd() {
    let mut s = Scene::new();
    let held = s.file("held");
    s.tasks.fd_of(TID, 7, held.as_os_str().as_encoded_bytes());
    let (empty, to) = (s.tasks.put_str(""), s.tasks.put_str("copy"));
    let call = decode(
        libc::SYS_linkat,
        [7, empty.0, CWD, to.0, libc::AT_EMPTY_PATH as u64, 0],
    );
    let (actions, emulation) = emulated(s.plan(call).unwrap());
    assert_eq!(
        actions,
        [Action::Link {
            from: held.clone(),
            to: s.root.join("copy")
        }]
    );
    let Emulation::LinkObject {
        object,
        task,
        to_parent,
        to_name,
    } = emulation
    else {
        panic!("{emulation:?}")
    };
    // Our copy of the task's fd is linked: the file judged, whatever the slot holds later.
    use std::os::unix::fs::MetadataExt;
    let copy = std::fs::File::from(object).metadata().unwrap();
    assert_eq!(copy.ino(), std::fs::metadata(&held).unwrap().ino());
    assert_eq!(task, TID);
    assert_eq!((to_parent, to_name), (s.root.clone(), c("copy")));
    // An fd the task does not hold is EBADF, as the kernel says.
    let call = decode(
        libc::SYS_linkat,
        [8, empty.0, CWD, to.0, libc::AT_EMPTY_PATH as u64, 0],
    );
    assert_eq!(errno_of(s.plan(call)), libc::EBADF);
}

#[test]
fn a_link_to_a_secret_file_is_also_judged_as_reading_the_secret() {
    let mut s = Scene::new();
    let zone = s.root.join("zone");
    std::fs::create_dir(&zone).unwrap();
    let key = zone.join("key");
    std::fs::write(&key, b"k").unwrap();
    std::fs::hard_link(&key, s.root.join("alias")).unwrap();
    s.secrets = SecretInodes::index(std::slice::from_ref(&zone), &[]);
    let (from, to) = (s.tasks.put_str("alias"), s.tasks.put_str("again"));
    let (actions, _) = emulated(s.plan_raw(libc::SYS_linkat, [CWD, from.0, CWD, to.0, 0, 0]));
    assert_eq!(
        actions[1],
        Action::Open {
            path: key.clone(),
            flags: OpenFlags::READ
        }
    );
    // And opening the other name is opening the secret.
    let flags = libc::O_RDONLY as u64;
    let (actions, _) = emulated(s.plan_raw(libc::SYS_openat, [CWD, from.0, flags, 0, 0, 0]));
    assert_eq!(actions.len(), 2);
    assert!(matches!(&actions[1], Action::Open { path, .. } if *path == key));
}

#[test]
fn creating_calls_judge_the_new_name_and_keep_what_the_task_wrote() {
    let mut s = Scene::new();
    let dir = s.tasks.put_str("made/");
    let (actions, emulation) =
        emulated(s.plan_raw(libc::SYS_mkdirat, [CWD, dir.0, 0o750, 0, 0, 0]));
    assert_eq!(
        actions,
        [Action::Create {
            path: s.root.join("made"),
            kind: NodeKind::Directory,
        }]
    );
    assert!(
        matches!(&emulation, Emulation::Mkdir { name, mode: 0o750, tid: TID, .. } if *name == c("made/")),
        "{emulation:?}"
    );
    let (target, link) = (s.tasks.put_str("../../etc/shadow"), s.tasks.put_str("ln"));
    let (actions, emulation) =
        emulated(s.plan_raw(libc::SYS_symlinkat, [target.0, CWD, link.0, 0, 0, 0]));
    assert_eq!(
        actions,
        [Action::Create {
            path: s.root.join("ln"),
            kind: NodeKind::Symlink,
        }]
    );
    assert!(
        matches!(&emulation, Emulation::Symlink { target, name, .. } if *target == c("../../etc/shadow") && *name == c("ln")),
        "{emulation:?}"
    );
    let node = s.tasks.put_str("fifo");
    let fifo = (libc::S_IFIFO | 0o600) as u64;
    let (_, emulation) = emulated(s.plan_raw(libc::SYS_mknodat, [CWD, node.0, fifo, 0, 0, 0]));
    assert!(matches!(emulation, Emulation::Mknod { dev: 0, .. }));
}

#[test]
fn truncate_follows_the_final_symlink_and_proc_paths_are_left_to_the_kernel() {
    let mut s = Scene::new();
    let f = s.file("f");
    std::os::unix::fs::symlink(&f, s.root.join("l")).unwrap();
    let l = s.tasks.put_str("l");
    let (actions, emulation) = emulated(s.plan_raw(libc::SYS_truncate, [l.0, 3, 0, 0, 0, 0]));
    assert_eq!(actions, [Action::Truncate { path: f.clone() }]);
    assert!(matches!(emulation, Emulation::Truncate { length: 3, .. }));
    let proc_path = s.tasks.put_str("/proc/sys/kernel/hostname");
    let planned = s.plan_raw(libc::SYS_truncate, [proc_path.0, 0, 0, 0, 0, 0]);
    assert!(matches!(planned, Plan::Check(_)), "{planned:?}");
}

#[test]
fn an_unreadable_path_is_efault_and_umask_and_other_calls_run() {
    let s = Scene::new();
    let call = decode(libc::SYS_unlinkat, [CWD, 0xdead_0000, 0, 0, 0, 0]);
    assert_eq!(errno_of(s.plan(call)), libc::EFAULT);
    assert!(matches!(
        s.plan(Call::Umask).unwrap(),
        Plan::Answer(Response::Continue)
    ));
    assert!(matches!(
        s.plan(Call::Other(libc::SYS_getpid)).unwrap(),
        Plan::Answer(Response::Continue)
    ));
}
