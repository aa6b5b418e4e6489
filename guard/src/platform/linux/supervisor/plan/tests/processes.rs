//! Planning the calls that reach another process: signals, ptrace, pidfds.

use super::*;

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
fn tracing_a_process_outside_the_tree_is_refused_and_inside_it_runs() {
    let mut s = Scene::new();
    s.tasks
        .thread_of(555, 555)
        .thread_of(777, 777)
        .outside_tree(777)
        .pidfd_of(TID, 4, 555)
        .pidfd_of(TID, 5, 777);
    for nr in [
        libc::SYS_process_vm_readv,
        libc::SYS_process_vm_writev,
        libc::SYS_ptrace,
    ] {
        let args = |pid: u64| {
            if nr == libc::SYS_ptrace {
                [libc::PTRACE_ATTACH as u64, pid, 0, 0, 0, 0]
            } else {
                [pid, 0, 0, 0, 0, 0]
            }
        };
        assert!(
            matches!(
                s.plan_raw(nr, args(777)),
                Plan::Refuse(Action::Trace {
                    target_pid: 777,
                    path: None
                })
            ),
            "syscall {nr}"
        );
        assert!(
            matches!(s.plan_raw(nr, args(555)), Plan::Answer(Response::Continue)),
            "syscall {nr}"
        );
    }
    // pidfd_getfd through a pidfd of a process outside: refused; inside: taken on our copy.
    let getfd = |fd: u64| s.plan(decode(libc::SYS_pidfd_getfd, [fd, 3, 0, 0, 0, 0]));
    assert!(matches!(
        getfd(5).unwrap(),
        Plan::Refuse(Action::Trace {
            target_pid: 777,
            ..
        })
    ));
    let (actions, emulation) = emulated(getfd(4).unwrap());
    assert!(actions.is_empty());
    assert!(matches!(emulation, Emulation::PidfdGetfd { fd: 3, .. }));
    // No such fd: the kernel's EBADF; an fd that is not a pidfd, likewise.
    assert_eq!(errno_of(getfd(9)), libc::EBADF);
    s.tasks.fd_of(TID, 6, "/tmp");
    let not_pidfd = s.plan(decode(libc::SYS_pidfd_getfd, [6, 3, 0, 0, 0, 0]));
    assert_eq!(answer_of(not_pidfd.unwrap()), Response::Error(libc::EBADF));
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
