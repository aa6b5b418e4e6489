//! Planning opens (openat2's resolve flags, /dev/tty, O_PATH, the guard's /proc entry) and execs.

use std::path::Path;

use super::*;

/// An `open_how` in the task's memory.
fn put_open_how(tasks: &mut FakeTasks, flags: i32, resolve: u64) -> UserPtr {
    let mut bytes = Vec::new();
    bytes.extend_from_slice(&(flags as u64).to_ne_bytes());
    bytes.extend_from_slice(&0o600u64.to_ne_bytes());
    bytes.extend_from_slice(&resolve.to_ne_bytes());
    tasks.put(&bytes)
}

#[test]
fn openat2_beneath_refuses_an_escape_with_exdev_and_in_root_stays_inside() {
    let mut s = Scene::new();
    let sub = s.root.join("sub");
    std::fs::create_dir_all(sub.join("etc")).unwrap();
    s.tasks.fd_of(TID, 5, sub.as_os_str().as_encoded_bytes());
    let beneath = put_open_how(
        &mut s.tasks,
        libc::O_WRONLY | libc::O_CREAT,
        libc::RESOLVE_BENEATH,
    );
    let escape = s.tasks.put_str("../outside");
    let call = decode(libc::SYS_openat2, [5, escape.0, beneath.0, 24, 0, 0]);
    assert_eq!(errno_of(s.plan(call)), libc::EXDEV);
    let inside = s.tasks.put_str("etc/../f");
    let call = decode(libc::SYS_openat2, [5, inside.0, beneath.0, 24, 0, 0]);
    let (actions, emulation) = emulated(s.plan(call).unwrap());
    assert!(
        matches!(&actions[0], Action::Open { path, flags } if *path == sub.join("f") && flags.create)
    );
    assert!(matches!(
        emulation,
        Emulation::Open {
            mode: 0o600,
            umask_of: Some(TID),
            ..
        }
    ));
    // In root: `/etc/passwd` and `..` stay beneath the dirfd.
    let in_root = put_open_how(&mut s.tasks, libc::O_RDONLY, libc::RESOLVE_IN_ROOT);
    let absolute = s.tasks.put_str("/../etc/passwd");
    let call = decode(libc::SYS_openat2, [5, absolute.0, in_root.0, 24, 0, 0]);
    let (actions, _) = emulated(s.plan(call).unwrap());
    assert_eq!(
        actions,
        [Action::Open {
            path: sub.join("etc/passwd"),
            flags: OpenFlags::READ
        }]
    );
    // An open_how the task cannot show us is EFAULT.
    let call = decode(libc::SYS_openat2, [5, absolute.0, 0xdead_0000, 24, 0, 0]);
    assert_eq!(errno_of(s.plan(call)), libc::EFAULT);
}

#[test]
fn dev_tty_is_the_tasks_terminal_and_o_path_is_left_to_the_kernel() {
    let mut s = Scene::new();
    let tty = s.tasks.put_str("/dev/tty");
    let rw = libc::O_RDWR as u64;
    let call = decode(libc::SYS_openat, [CWD, tty.0, rw, 0, 0, 0]);
    assert_eq!(
        answer_of(s.plan(call).unwrap()),
        Response::Error(libc::ENXIO)
    );
    s.tasks.tty_of(TID, "/dev/pts/3");
    let (_, emulation) = emulated(s.plan(call).unwrap());
    assert!(
        matches!(&emulation, Emulation::Open { path, umask_of: None, .. } if path == Path::new("/dev/pts/3")),
        "{emulation:?}"
    );
    let f = s.file("f");
    let name = s.tasks.put_str("f");
    let o_path = (libc::O_PATH | libc::O_WRONLY) as u64;
    match s.plan_raw(libc::SYS_openat, [CWD, name.0, o_path, 0, 0, 0]) {
        Plan::Check(actions) => {
            assert!(matches!(&actions[0], Action::Open { path, .. } if *path == f))
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_supervisors_proc_entry_is_guarded_beyond_what_ps_reads() {
    // Paths under /proc are resolved for real: this test process plays the supervisor.
    let mut s = Scene::new();
    let (me, thread) = (std::process::id() as i32, sys::process::tid());
    s.guard.pids[0] = me;
    s.tasks.thread_of(me, me).thread_of(thread, me);
    let ro = libc::O_RDONLY as u64;
    let mem = s.tasks.put_str(format!("/proc/{me}/mem"));
    let planned = s.plan_raw(libc::SYS_openat, [CWD, mem.0, ro, 0, 0, 0]);
    assert!(
        matches!(planned, Plan::Guard(pid) if pid == me),
        "{planned:?}"
    );
    // A thread of the supervisor is the supervisor.
    let fdinfo = s.tasks.put_str(format!("/proc/{thread}/fdinfo/0"));
    let planned = s.plan_raw(libc::SYS_openat, [CWD, fdinfo.0, ro, 0, 0, 0]);
    assert!(
        matches!(planned, Plan::Guard(pid) if pid == me),
        "{planned:?}"
    );
    let stat = s.tasks.put_str(format!("/proc/{me}/stat"));
    assert!(matches!(
        s.plan_raw(libc::SYS_openat, [CWD, stat.0, ro, 0, 0, 0]),
        Plan::Emulate(..)
    ));
    // Writing it is not reading it.
    let wr = libc::O_WRONLY as u64;
    let planned = s.plan_raw(libc::SYS_openat, [CWD, stat.0, wr, 0, 0, 0]);
    assert!(
        matches!(planned, Plan::Guard(pid) if pid == me),
        "{planned:?}"
    );
    // Another process's /proc entry is not the guard's business.
    let other = s.tasks.put_str("/proc/1/stat");
    assert!(matches!(
        s.plan_raw(libc::SYS_openat, [CWD, other.0, wr, 0, 0, 0]),
        Plan::Emulate(..)
    ));
}

#[test]
fn a_process_outside_the_tree_is_read_as_ps_reads_it_and_no_further() {
    // Pid 1 is outside the agent's tree (and exists, so that /proc/1 resolves for real).
    let mut s = Scene::new();
    s.tasks.outside_tree(1);
    let (ro, wr) = (libc::O_RDONLY as u64, libc::O_RDWR as u64);
    let open = |s: &mut Scene, path: &str, flags: u64| {
        let ptr = s.tasks.put_str(path);
        s.plan(decode(libc::SYS_openat, [CWD, ptr.0, flags, 0, 0, 0]))
    };
    assert!(matches!(
        open(&mut s, "/proc/1/stat", ro),
        Ok(Plan::Emulate(..))
    ));
    for (path, flags) in [
        ("/proc/1/stat", wr),
        ("/proc/1/mem", wr),
        ("/proc/1/mem", ro),
        ("/proc/1/environ", wr),
        ("/proc/1/maps", ro | libc::O_CREAT as u64),
        ("/proc/1/task/1/mem", ro),
    ] {
        let planned = open(&mut s, path, flags).unwrap();
        assert!(
            matches!(&planned, Plan::Refuse(Action::Trace { target_pid: 1, path: Some(p) }) if p == std::path::Path::new(path)),
            "{path}: {planned:?}"
        );
    }
    // Its environment, which `ps` reads of every process: refused as the kernel refuses it to
    // another user, without a record.
    assert!(matches!(
        open(&mut s, "/proc/1/environ", ro),
        Ok(Plan::Answer(Response::Error(libc::EACCES)))
    ));
    // Following its root or cwd leads around the agent's mounts: refused during resolution.
    for path in ["/proc/1/root/etc/hostname", "/proc/1/cwd"] {
        let e = open(&mut s, path, ro).unwrap_err();
        assert!(
            matches!(
                crate::platform::linux::supervisor::refusal::refusal_of(&e),
                Some(Action::Trace { target_pid: 1, .. })
            ),
            "{path}: {e:?}"
        );
    }
    // The task's own entry is its own business.
    let me = std::process::id() as i32;
    s.tasks.thread_of(TID, me).outside_tree(me);
    assert!(matches!(
        open(&mut s, &format!("/proc/{me}/environ"), ro),
        Ok(Plan::Emulate(..))
    ));
}

#[test]
fn an_exec_of_nothing_is_left_to_the_kernel_and_of_something_is_judged_with_its_argv() {
    let mut s = Scene::new();
    let missing = s
        .tasks
        .put_str(s.root.join("nope").as_os_str().as_encoded_bytes());
    let argv = s.tasks.put_argv(&["tool", "--flag"]);
    assert!(matches!(
        s.plan_raw(libc::SYS_execve, [missing.0, argv.0, 0, 0, 0, 0]),
        Plan::Answer(Response::Continue)
    ));
    let tool = s.file("tool");
    std::os::unix::fs::symlink(&tool, s.root.join("via")).unwrap();
    let relative = s.tasks.put_str("via");
    match s.plan_raw(libc::SYS_execve, [relative.0, argv.0, 0, 0, 0, 0]) {
        Plan::Check(actions) => assert_eq!(
            actions,
            [Action::Exec {
                path: tool.clone(),
                argv: vec!["tool".into(), "--flag".into()],
                env: Vec::new(),
            }]
        ),
        other => panic!("{other:?}"),
    }
    // execveat(fd, "", AT_EMPTY_PATH) runs the file the fd holds.
    s.tasks.fd_of(TID, 9, tool.as_os_str().as_encoded_bytes());
    let empty = s.tasks.put_str("");
    let at_empty = libc::AT_EMPTY_PATH as u64;
    match s.plan_raw(libc::SYS_execveat, [9, empty.0, argv.0, 0, at_empty, 0]) {
        Plan::Check(actions) => {
            assert!(matches!(&actions[0], Action::Exec { path, .. } if *path == tool))
        }
        other => panic!("{other:?}"),
    }
}
