//! The supervisor process, forked by `run`'s caller: it forks CMD (see `child`), receives its
//! listener and FUSE fds, serves the notifications on worker threads and the secret zones' FUSE
//! connections on theirs, reaps every process it adopted, and reports CMD's status to the caller
//! as soon as CMD exits. It ends when nothing supervised is left.
//!
//! It must never let a supervised call wait for ever (a worker that panics answers EPERM; no
//! worker at all kills the tree), and never exit while a supervised process remains.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Arc;

use super::child::{self, ExecPlan, SetupStage};
use super::config::SupervisorConfig;
use super::emulate::unshare_fs_for_this_thread;
use super::handler::Handler;
use super::judge::Judge;
use super::late_roots;
use super::plan::GuardProcesses;
use super::secret_fs::SecretFs;
use super::secret_inodes::SecretInodes;
use super::secret_view::SecretPlan;
use crate::platform::linux::sys::ipc::{self, Tag};
use crate::platform::linux::sys::notify::{Listener, Response};
use crate::platform::linux::sys::process;

/// The signals the caller forwards to CMD; the supervisor leaves them at their defaults.
pub const FORWARDED: [i32; 4] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGQUIT];

/// What the caller found before forking the supervisor.
pub struct Started {
    pub launcher_pid: i32,
    pub launcher_pgid: i32,
    pub secrets: SecretInodes,
    /// The secret roots the child was asked to cover (`present` in the order of the FUSE fds it
    /// sends).
    pub hidden: SecretPlan,
}

/// The supervisor process: fork CMD, receive its listener, serve, reap, report on `status` (the
/// caller's pipe).
pub fn main(
    plan: &ExecPlan,
    judge: Arc<dyn Judge>,
    config: &SupervisorConfig,
    status: OwnedFd,
    started: Started,
) {
    let Started {
        launcher_pid,
        launcher_pgid,
        secrets,
        hidden,
    } = started;
    let status = status.as_raw_fd();
    let fail = |stage: i64, errno: i32| {
        ipc::write_to_pipe(status, Tag::SetupFailed, (stage << 32) | i64::from(errno));
        // SAFETY: exiting the forked supervisor.
        unsafe { libc::_exit(1) };
    };
    // SAFETY: prctl with integer arguments.
    unsafe {
        // Orphaned descendants are reparented here and reaped; the loop below ends when none is
        // left, which is when nothing supervised remains.
        libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
        // Non-dumpable: other processes of the same user cannot ptrace us, read or write our
        // memory, or take our fds (the listener) with pidfd_getfd.
        libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0);
    }
    let socketpair = || {
        let mut pair = [0; 2];
        // SAFETY: pair is valid for two ints.
        if unsafe {
            libc::socketpair(
                libc::AF_UNIX,
                libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
                0,
                pair.as_mut_ptr(),
            )
        } != 0
        {
            fail(
                SetupStage::Fork as i64,
                io::Error::last_os_error().raw_os_error().unwrap_or(0),
            );
        }
        pair
    };
    let pair = socketpair();
    // To the helper that covers secret roots made later, when some are missing now.
    let helper_pair = if hidden.pending.is_empty() {
        [-1, -1]
    } else {
        socketpair()
    };
    // SAFETY: no preconditions.
    let cmd_pid = unsafe { libc::fork() };
    if cmd_pid < 0 {
        fail(
            SetupStage::Fork as i64,
            io::Error::last_os_error().raw_os_error().unwrap_or(0),
        );
    }
    if cmd_pid == 0 {
        // SAFETY: in the forked child, before exec, with the plan prepared before the fork.
        unsafe { child::exec(plan, pair[1], pair[0], helper_pair) };
    }
    // SAFETY: closing our copy of the child's end; leaving the terminal's session so that its
    // signals and the agent's process-group signals do not reach the supervisor.
    unsafe {
        libc::close(pair[1]);
        if helper_pair[1] >= 0 {
            libc::close(helper_pair[1]);
        }
        libc::setsid();
        for sig in FORWARDED {
            libc::signal(sig, libc::SIG_DFL);
        }
    }
    // SAFETY: pair[0] is ours.
    let sock = unsafe { OwnedFd::from_raw_fd(pair[0]) };
    let (listener, view) = match recv_listener(sock.as_raw_fd()) {
        Ok((fd, view)) => (Listener::new(fd), view),
        Err((stage, errno)) => {
            // SAFETY: reap the failed child.
            unsafe { libc::waitpid(cmd_pid, std::ptr::null_mut(), 0) };
            fail(stage, errno);
            return;
        }
    };
    drop(sock);
    ipc::write_to_pipe(status, Tag::CmdPid, i64::from(cmd_pid));
    if config.sync_wakeup {
        let _ = listener.set_sync_wakeup();
    }
    judge.start_in_supervisor();
    let wanted_view = !hidden.is_empty();
    if wanted_view && !view.hidden {
        tracing::debug!("the agent's mount namespace could not be made; supervising every open");
    }
    for (i, (fd, root)) in view.fuse.into_iter().zip(hidden.present).enumerate() {
        SecretFs::new(root.real, root.shown, Arc::clone(&judge)).serve(fd, i);
    }
    let (euid, _) = process::effective_ids();
    let mut guard_pids = vec![process::pid(), launcher_pid];
    let mut helper = None;
    if helper_pair[0] >= 0 {
        // SAFETY: ours.
        let sock = unsafe { OwnedFd::from_raw_fd(helper_pair[0]) };
        if view.hidden {
            helper = late_roots::helper_pid(&sock);
            guard_pids.extend(helper);
            let (pending, judge) = (hidden.pending, Arc::clone(&judge));
            let _ = std::thread::Builder::new()
                .name("late-secret-roots".into())
                .stack_size(256 * 1024)
                .spawn(move || late_roots::serve(sock, pending, judge));
        }
    }
    let keeper = judge.session().map(super::keep::Keeper::new);
    let handler = Arc::new(Handler {
        keeper,
        judge,
        secrets,
        guard: GuardProcesses {
            pids: guard_pids,
            pgid: launcher_pgid,
        },
        acts_as_task: euid == 0,
        umasks: Default::default(),
        installing_writable: Default::default(),
        tasks: Default::default(),
        names: Default::default(),
    });
    let listener = Arc::new(listener);
    for i in 0..config.workers.max(1) {
        let (handler, listener) = (Arc::clone(&handler), Arc::clone(&listener));
        // An explicit stack size: the default reads RUST_MIN_STACK from the environment, whose
        // lock a thread of the caller may have held when we were forked.
        let spawned = std::thread::Builder::new()
            .name(format!("seccomp-worker-{i}"))
            .stack_size(256 * 1024)
            .spawn(move || serve(&listener, &handler));
        if spawned.is_err() && i == 0 {
            // No worker: every supervised call would hang. Kill the tree instead.
            // SAFETY: plain kill.
            unsafe { libc::kill(cmd_pid, libc::SIGKILL) };
        }
    }
    let unreported = reap_until_empty(cmd_pid, status, helper, handler.judge.as_ref());
    // Nothing supervised is left: let the judge write out what it queued before `_exit`.
    handler.judge.stop_in_supervisor();
    // When CMD was the last of the tree, `run` returns only now: what the session recorded at
    // its end (the state it left at every kept path) is there for the very next command.
    if let Some(code) = unreported {
        ipc::write_to_pipe(status, Tag::Status, i64::from(code));
    }
}

/// What the CMD child made of the secret view: whether the zones are hidden (else its filter
/// supervises reads), and the FUSE fds of the roots it mounted, in plan order.
struct View {
    hidden: bool,
    fuse: Vec<OwnedFd>,
}

/// Receive the listener fd and the view (or the child's setup failure) from the CMD child.
fn recv_listener(sock: RawFd) -> Result<(OwnedFd, View), (i64, i32)> {
    let Some(ipc::Message { tag, payload, fds }) = ipc::recv(sock) else {
        return Err((SetupStage::Fork as i64, libc::ECHILD));
    };
    if tag != Tag::Listener {
        return Err((payload >> 32, payload as i32));
    }
    let mut fds = fds.into_iter();
    let Some(listener) = fds.next() else {
        return Err((SetupStage::SendListener as i64, libc::EBADMSG));
    };
    Ok((
        listener,
        View {
            hidden: payload & 1 != 0,
            fuse: fds.collect(),
        },
    ))
}

/// One worker: receive, handle, answer, forever (the process exits when nothing is left).
fn serve(listener: &Listener, handler: &Handler) {
    // A private umask and cwd for this thread, so that creating a file for a task can apply the
    // task's umask without touching the rest of the process (the judge's own files).
    unshare_fs_for_this_thread();
    while let Some(n) = listener.next() {
        let response = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            handler.handle(listener, &n)
        }))
        // A bug in a judgment must not leave the task hanging, nor let the call through.
        .unwrap_or(Some(Response::Error(libc::EPERM)));
        if let Some(response) = response {
            let _ = listener.send(n.id, response);
        }
    }
}

/// Reap every child (CMD and the orphans we adopt) until none is left; report CMD's status to
/// the caller as soon as CMD exits while others of its tree live on. CMD's status when it was
/// not reported (CMD was the last, or was never seen), for the caller to report after the stop.
fn reap_until_empty(
    cmd_pid: i32,
    status_fd: RawFd,
    mut helper: Option<i32>,
    judge: &dyn Judge,
) -> Option<i32> {
    let mut reported = false;
    let mut last_status = None;
    loop {
        // The helper only serves the agent's tree: once it is all that is left, end it.
        if let Some(h) = helper {
            if late_roots::only_children_are(&[h]) {
                // SAFETY: plain kill of our own child.
                unsafe { libc::kill(h, libc::SIGKILL) };
                helper = None;
            }
        }
        let mut wstatus = 0;
        // SAFETY: wstatus is valid.
        let pid = unsafe { libc::waitpid(-1, &mut wstatus, 0) };
        if pid < 0 {
            match io::Error::last_os_error().raw_os_error() {
                Some(libc::EINTR) => continue,
                _ => break,
            }
        }
        if Some(pid) == helper {
            helper = None;
        }
        if pid == cmd_pid {
            let code = if libc::WIFEXITED(wstatus) {
                libc::WEXITSTATUS(wstatus)
            } else if libc::WIFSIGNALED(wstatus) {
                128 + libc::WTERMSIG(wstatus)
            } else {
                1
            };
            if late_roots::only_children_are(helper.as_slice()) {
                // The tree ended with CMD: the status waits for the session's end.
                last_status = Some(code);
                continue;
            }
            judge.flush_records();
            ipc::write_to_pipe(status_fd, Tag::Status, i64::from(code));
            reported = true;
        }
    }
    if reported {
        None
    } else {
        Some(last_status.unwrap_or(1))
    }
}
