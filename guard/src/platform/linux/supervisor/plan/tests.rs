//! Planning against a fake task (`FakeTasks`) and real files in a temporary directory: what each
//! family of calls is judged as, and what is performed, without seccomp.

use std::ffi::CString;
use std::path::{Path, PathBuf};

use super::{plan, GuardProcesses, Plan, Planner};
use crate::engine::{Action, OpenFlags};
use crate::platform::linux::supervisor::call::{decode, Base, Call, UserPtr};
use crate::platform::linux::supervisor::emulate::Emulation;
use crate::platform::linux::supervisor::secret_inodes::SecretInodes;
use crate::platform::linux::supervisor::task::fake::FakeTasks;
use crate::platform::linux::sys;
use crate::platform::linux::sys::notify::Response;

const TID: i32 = 4242;
const SUPERVISOR: i32 = 100;
const LAUNCHER: i32 = 99;
const LAUNCHER_PGID: i32 = 99;

/// A directory of real files, and a task whose cwd it is.
struct Scene {
    _dir: tempfile::TempDir,
    root: PathBuf,
    tasks: FakeTasks,
    secrets: SecretInodes,
    guard: GuardProcesses,
}

impl Scene {
    fn new() -> Scene {
        let dir = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(dir.path()).unwrap();
        let mut tasks = FakeTasks::new();
        tasks
            .cwd_of(TID, &root)
            .thread_of(TID, TID)
            .thread_of(SUPERVISOR, SUPERVISOR)
            .thread_of(SUPERVISOR + 1, SUPERVISOR)
            .thread_of(LAUNCHER, LAUNCHER);
        Scene {
            tasks,
            _dir: dir,
            root,
            secrets: SecretInodes::default(),
            guard: GuardProcesses {
                pids: vec![SUPERVISOR, LAUNCHER],
                pgid: LAUNCHER_PGID,
            },
        }
    }

    fn file(&self, name: &str) -> PathBuf {
        let path = self.root.join(name);
        std::fs::write(&path, b"x").unwrap();
        path
    }

    fn plan(&self, call: Call) -> std::io::Result<Plan> {
        let planner = Planner {
            tid: TID,
            tasks: &self.tasks,
            secrets: &self.secrets,
            guard: &self.guard,
        };
        plan(&planner, call)
    }

    /// Plan the raw syscall `nr` with `args`, as a notification carries it.
    fn plan_raw(&self, nr: i64, args: [u64; 6]) -> Plan {
        self.plan(decode(nr, args)).unwrap()
    }
}

const CWD: u64 = libc::AT_FDCWD as u64;

fn errno_of(result: std::io::Result<Plan>) -> i32 {
    result.unwrap_err().raw_os_error().unwrap()
}

fn answer_of(plan: Plan) -> Response {
    match plan {
        Plan::Answer(r) => r,
        other => panic!("expected an answer, got {other:?}"),
    }
}

fn emulated(plan: Plan) -> (Vec<Action>, Emulation) {
    match plan {
        Plan::Emulate(actions, emulation) => (actions, emulation),
        other => panic!("expected an emulation, got {other:?}"),
    }
}

fn c(s: &str) -> CString {
    CString::new(s).unwrap()
}

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
    let (actions, _) = emulated(s.plan(plain).unwrap());
    assert_eq!(
        actions,
        [Action::Rename {
            from: a,
            to: s.root.join("new"),
            dest_exists: false,
            source_is_dir: false
        }]
    );
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
            from: held,
            to: s.root.join("copy")
        }]
    );
    let Emulation::Link {
        from_parent,
        from_name,
        to_parent,
        to_name,
        flags,
    } = emulation
    else {
        panic!("{emulation:?}")
    };
    // The task's fd itself is followed: the file it holds, whatever its name is now.
    assert_eq!(from_parent, None);
    assert_eq!(from_name, c(&format!("/proc/{TID}/fd/7")));
    assert_eq!((to_parent, to_name), (s.root.clone(), c("copy")));
    assert_eq!(flags, libc::AT_SYMLINK_FOLLOW);
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
    s.secrets = SecretInodes::index(std::slice::from_ref(&zone));
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
fn signals_to_the_guard_are_guarded_and_others_run() {
    let mut s = Scene::new();
    s.tasks.pgid_of(TID, LAUNCHER_PGID).thread_of(555, 555);
    let kill =
        |pid: i32, sig: i32| s.plan_raw(libc::SYS_kill, [pid as u64, sig as u64, 0, 0, 0, 0]);
    assert!(matches!(
        kill(SUPERVISOR, libc::SIGTERM),
        Plan::Guard(SUPERVISOR)
    ));
    assert!(matches!(
        kill(SUPERVISOR + 1, libc::SIGKILL),
        Plan::Guard(_)
    ));
    assert!(matches!(kill(-1, libc::SIGTERM), Plan::Guard(-1)));
    // Signal 0 only probes.
    assert!(matches!(kill(-1, 0), Plan::Answer(Response::Continue)));
    assert!(matches!(
        kill(555, libc::SIGKILL),
        Plan::Answer(Response::Continue)
    ));
    // The caller's group is the launcher's: stopping or killing it would reach the launcher.
    assert!(matches!(kill(0, libc::SIGKILL), Plan::Guard(0)));
    assert!(matches!(
        kill(0, libc::SIGINT),
        Plan::Answer(Response::Continue)
    ));
    assert!(matches!(
        kill(-LAUNCHER_PGID, libc::SIGSTOP),
        Plan::Guard(_)
    ));
    assert!(matches!(
        kill(-LAUNCHER_PGID, libc::SIGTERM),
        Plan::Answer(Response::Continue)
    ));
    let tgkill = s.plan_raw(
        libc::SYS_tgkill,
        [LAUNCHER as u64, 1, libc::SIGKILL as u64, 0, 0, 0],
    );
    assert!(matches!(tgkill, Plan::Guard(LAUNCHER)));
    let traceme = s.plan_raw(
        libc::SYS_ptrace,
        [libc::PTRACE_TRACEME as u64, SUPERVISOR as u64, 0, 0, 0, 0],
    );
    assert!(matches!(traceme, Plan::Answer(Response::Continue)));
    let attach = s.plan_raw(
        libc::SYS_ptrace,
        [libc::PTRACE_ATTACH as u64, SUPERVISOR as u64, 0, 0, 0, 0],
    );
    assert!(matches!(attach, Plan::Guard(SUPERVISOR)));
    let vm = s.plan_raw(
        libc::SYS_process_vm_writev,
        [LAUNCHER as u64, 0, 0, 0, 0, 0],
    );
    assert!(matches!(vm, Plan::Guard(LAUNCHER)));
}

#[test]
fn a_pidfd_signal_is_checked_and_sent_on_our_own_copy() {
    let mut s = Scene::new();
    s.tasks
        .pidfd_of(TID, 4, SUPERVISOR)
        .pidfd_of(TID, 5, 555)
        .thread_of(555, 555);
    let send = |fd: u64, sig: i32| {
        s.plan(decode(
            libc::SYS_pidfd_send_signal,
            [fd, sig as u64, 0, 0, 0, 0],
        ))
    };
    assert!(matches!(
        send(4, libc::SIGKILL).unwrap(),
        Plan::Guard(SUPERVISOR)
    ));
    assert!(matches!(
        send(5, libc::SIGKILL).unwrap(),
        Plan::Emulate(ref actions, Emulation::PidfdSignal { sig: libc::SIGKILL, info: None, .. }) if actions.is_empty()
    ));
    // Probing the supervisor is not signalling it.
    assert!(matches!(send(4, 0).unwrap(), Plan::Emulate(..)));
    assert_eq!(errno_of(send(6, libc::SIGKILL)), libc::EBADF);
    let getfd = s.plan_raw(libc::SYS_pidfd_getfd, [4, 3, 0, 0, 0, 0]);
    assert!(matches!(getfd, Plan::Guard(SUPERVISOR)));
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
                argv: vec!["tool".into(), "--flag".into()]
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

#[test]
fn creating_calls_judge_the_new_name_and_keep_what_the_task_wrote() {
    let mut s = Scene::new();
    let dir = s.tasks.put_str("made/");
    let (actions, emulation) =
        emulated(s.plan_raw(libc::SYS_mkdirat, [CWD, dir.0, 0o750, 0, 0, 0]));
    assert_eq!(
        actions,
        [Action::Create {
            path: s.root.join("made")
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
            path: s.root.join("ln")
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
