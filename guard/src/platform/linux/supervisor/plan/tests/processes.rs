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
