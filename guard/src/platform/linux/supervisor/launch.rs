//! Process plumbing of `run`: fork the supervisor, fork CMD under the filter, pass the listener
//! fd back over a socketpair, forward signals, report CMD's status to the caller.
//!
//! Code that runs in a freshly forked child before `execve` must not allocate or take locks
//! (the caller may be multi-threaded): everything it needs is prepared before the fork.

use std::ffi::{CString, OsString};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Arc;

use super::filter::{self, FilterOptions};
use super::handler::{Handler, SecretInodes};
use super::late_roots;
use super::message;
use super::notify::{Listener, Response};
use super::secret_fs::SecretFs;
use super::secret_view::{self, ChildPlan, SecretPlan, MAX_HIDDEN_ROOTS};
use super::{Judge, SupervisorConfig, SupervisorError};

/// Messages from the supervisor to the caller: a tag and a payload.
const MSG_CMD_PID: u8 = b'P';
const MSG_STATUS: u8 = b'S';
const MSG_SETUP_FAILED: u8 = b'E';
/// From CMD's child to the supervisor: the listener fd follows, or setup failed (errno).
const MSG_LISTENER: u8 = b'L';

/// Setup stages, reported with the errno when the child cannot install the filter.
const STAGES: [&str; 4] = [
    "prctl(PR_SET_NO_NEW_PRIVS)",
    "seccomp(SECCOMP_SET_MODE_FILTER, NEW_LISTENER)",
    "sending the listener fd",
    "forking the command",
];

/// CMD's pid in the caller, for the signal handler.
static CMD_PID: AtomicI32 = AtomicI32::new(0);
const FORWARDED: [i32; 4] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGQUIT];

fn setup_err(what: &'static str) -> SupervisorError {
    SupervisorError::Setup {
        what,
        source: io::Error::last_os_error(),
    }
}

fn cstr(s: &std::ffi::OsStr) -> Result<CString, SupervisorError> {
    CString::new(s.as_bytes()).map_err(|_| SupervisorError::NulByte(s.to_os_string()))
}

/// The program to exec: a path as given, or the first executable of that name in PATH.
fn find_program(name: &std::ffi::OsStr) -> Result<CString, SupervisorError> {
    if name.as_bytes().contains(&b'/') {
        return cstr(name);
    }
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into());
    for dir in std::env::split_paths(&path) {
        let candidate = dir.join(name);
        let c = cstr(candidate.as_os_str())?;
        // SAFETY: c is a valid C string.
        if candidate.is_file() && unsafe { libc::access(c.as_ptr(), libc::X_OK) } == 0 {
            return Ok(c);
        }
    }
    Err(SupervisorError::CommandNotFound(name.to_os_string()))
}

/// Everything the child needs, prepared before the fork.
struct ExecPlan {
    program: CString,
    _argv: Vec<CString>,
    _envp: Vec<CString>,
    argv_ptrs: Vec<*const libc::c_char>,
    envp_ptrs: Vec<*const libc::c_char>,
    filter: Vec<libc::sock_filter>,
    /// Hide the secret zones (`secret_view`); `filter` then leaves reads alone, and
    /// `supervising_reads` is installed instead if the view cannot be made.
    hide: Option<ChildPlan>,
    supervising_reads: Vec<libc::sock_filter>,
}

impl ExecPlan {
    fn new(
        cmd: &[OsString],
        supervise_reads: bool,
        hidden: &SecretPlan,
    ) -> Result<ExecPlan, SupervisorError> {
        let program = find_program(&cmd[0])?;
        let argv = cmd.iter().map(|a| cstr(a)).collect::<Result<Vec<_>, _>>()?;
        let envp = std::env::vars_os()
            .map(|(k, v)| {
                let mut kv = k.into_vec();
                kv.push(b'=');
                kv.extend(v.into_vec());
                CString::new(kv)
                    .map_err(|e| SupervisorError::NulByte(OsString::from_vec(e.into_vec())))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut argv_ptrs: Vec<_> = argv.iter().map(|a| a.as_ptr()).collect();
        argv_ptrs.push(std::ptr::null());
        let mut envp_ptrs: Vec<_> = envp.iter().map(|a| a.as_ptr()).collect();
        envp_ptrs.push(std::ptr::null());
        let hide = if supervise_reads && (!hidden.present.is_empty() || !hidden.pending.is_empty())
        {
            ChildPlan::new(&hidden.present, &hidden.pending)
        } else {
            None
        };
        Ok(ExecPlan {
            program,
            _argv: argv,
            _envp: envp,
            argv_ptrs,
            envp_ptrs,
            filter: filter::program(FilterOptions {
                supervise_reads: supervise_reads && hide.is_none(),
            }),
            hide,
            supervising_reads: filter::program(FilterOptions {
                supervise_reads: true,
            }),
        })
    }
}

extern "C" fn forward_signal(sig: libc::c_int, info: *mut libc::siginfo_t, _: *mut libc::c_void) {
    // A signal the kernel generated for the terminal's foreground group (Ctrl-C, hangup) has
    // reached CMD already: forwarding it would deliver it twice.
    // SAFETY: the kernel passes a valid siginfo to an SA_SIGINFO handler.
    let code = unsafe { (*info).si_code };
    if code == libc::SI_KERNEL {
        return;
    }
    let pid = CMD_PID.load(Ordering::Relaxed);
    if pid > 0 {
        // SAFETY: kill is async-signal-safe.
        unsafe { libc::kill(pid, sig) };
    }
}

/// The caller's signal handlers while CMD runs; restored on drop.
struct Forwarding {
    saved: Vec<(i32, libc::sigaction)>,
}

impl Forwarding {
    fn install() -> Forwarding {
        let mut saved = Vec::new();
        for sig in FORWARDED {
            // SAFETY: sigaction structs are plain data; the handler is async-signal-safe.
            unsafe {
                let mut action: libc::sigaction = std::mem::zeroed();
                let handler: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
                    forward_signal;
                action.sa_sigaction = handler as usize;
                action.sa_flags = libc::SA_SIGINFO | libc::SA_RESTART;
                libc::sigemptyset(&mut action.sa_mask);
                let mut old: libc::sigaction = std::mem::zeroed();
                if libc::sigaction(sig, &action, &mut old) == 0 {
                    saved.push((sig, old));
                }
            }
        }
        Forwarding { saved }
    }
}

impl Drop for Forwarding {
    fn drop(&mut self) {
        for (sig, old) in &self.saved {
            // SAFETY: restoring an action the kernel gave us.
            unsafe { libc::sigaction(*sig, old, std::ptr::null_mut()) };
        }
        CMD_PID.store(0, Ordering::Relaxed);
    }
}

fn write_msg(fd: RawFd, tag: u8, payload: i64) {
    let mut buf = [0u8; 9];
    buf[0] = tag;
    buf[1..].copy_from_slice(&payload.to_ne_bytes());
    // SAFETY: buf is valid for 9 bytes. A short write on a pipe of 9 bytes cannot happen.
    unsafe { libc::write(fd, buf.as_ptr().cast(), buf.len()) };
}

fn read_msg(fd: RawFd) -> Option<(u8, i64)> {
    let mut buf = [0u8; 9];
    let mut got = 0;
    while got < buf.len() {
        // SAFETY: the slice is valid for the remaining bytes.
        let n = unsafe { libc::read(fd, buf[got..].as_mut_ptr().cast(), buf.len() - got) };
        if n < 0 && io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
            continue;
        }
        if n <= 0 {
            return None;
        }
        got += n as usize;
    }
    let mut payload = [0u8; 8];
    payload.copy_from_slice(&buf[1..]);
    Some((buf[0], i64::from_ne_bytes(payload)))
}

pub fn run(
    cmd: &[OsString],
    judge: Arc<dyn Judge>,
    config: &SupervisorConfig,
) -> Result<i32, SupervisorError> {
    if cmd.is_empty() {
        return Err(SupervisorError::EmptyCommand);
    }
    // Indexed here, before the fork, because whether the secret zones can be hidden depends on
    // what the walk finds (a hard-linked secret file).
    let secret_roots = judge.secret_paths();
    let secrets = SecretInodes::index(&secret_roots);
    let hidden = if config.supervise_reads {
        match secret_view::plan(&secret_roots, &secrets) {
            Ok(hidden) => {
                tracing::debug!(
                    "secret zones hidden in the agent's mount namespace; reads left to the kernel"
                );
                hidden
            }
            Err(why) => {
                tracing::debug!("supervising every open: {why}");
                SecretPlan::default()
            }
        }
    } else {
        SecretPlan::default()
    };
    let plan = ExecPlan::new(cmd, config.supervise_reads, &hidden)?;
    let mut fds = [0; 2];
    // SAFETY: fds is valid for two ints.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(setup_err("pipe2"));
    }
    // SAFETY: fresh fds owned here.
    let (status_rd, status_wr) =
        unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    // SAFETY: getpid/getpgid have no preconditions.
    let (launcher_pid, launcher_pgid) = unsafe { (libc::getpid(), libc::getpgid(0)) };
    let forwarding = Forwarding::install();

    // SAFETY: the child only runs `supervisor_main`, which never returns.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(setup_err("fork"));
    }
    if pid == 0 {
        drop(status_rd);
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let started = Started {
                launcher_pid,
                launcher_pgid,
                secrets,
                hidden,
            };
            supervisor_main(&plan, judge, config, status_wr, started)
        }));
        // SAFETY: leave the forked copy of the caller without running its destructors.
        unsafe { libc::_exit(if outcome.is_ok() { 0 } else { 101 }) };
    }
    drop(status_wr);
    loop {
        match read_msg(status_rd.as_raw_fd()) {
            Some((MSG_CMD_PID, p)) => CMD_PID.store(p as i32, Ordering::Relaxed),
            Some((MSG_STATUS, code)) => {
                drop(forwarding);
                return Ok(code as i32);
            }
            Some((MSG_SETUP_FAILED, detail)) => {
                let stage = STAGES
                    .get((detail >> 32) as usize)
                    .copied()
                    .unwrap_or("setup");
                // SAFETY: reap the supervisor, which exits right after reporting.
                unsafe { libc::waitpid(pid, std::ptr::null_mut(), 0) };
                return Err(SupervisorError::Setup {
                    what: stage,
                    source: io::Error::from_raw_os_error(detail as i32),
                });
            }
            _ => return Err(SupervisorError::SupervisorLost),
        }
    }
}

/// What the caller found before forking the supervisor.
struct Started {
    launcher_pid: i32,
    launcher_pgid: i32,
    secrets: SecretInodes,
    /// The secret roots the child was asked to cover (`present` in the order of the FUSE fds it
    /// sends).
    hidden: SecretPlan,
}

/// The supervisor process: fork CMD, receive its listener, serve, reap, report.
fn supervisor_main(
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
        write_msg(status, MSG_SETUP_FAILED, (stage << 32) | i64::from(errno));
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
            fail(3, io::Error::last_os_error().raw_os_error().unwrap_or(0));
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
        fail(3, io::Error::last_os_error().raw_os_error().unwrap_or(0));
    }
    if cmd_pid == 0 {
        // SAFETY: in the forked child, before exec.
        unsafe { child_exec(plan, pair[1], pair[0], helper_pair) };
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
    write_msg(status, MSG_CMD_PID, i64::from(cmd_pid));
    if config.sync_wakeup {
        let _ = listener.set_sync_wakeup();
    }
    judge.start_in_supervisor();
    let wanted_view = !hidden.present.is_empty() || !hidden.pending.is_empty();
    if wanted_view && !view.hidden {
        tracing::debug!("the agent's mount namespace could not be made; supervising every open");
    }
    for (i, (fd, root)) in view.fuse.into_iter().zip(hidden.present).enumerate() {
        serve_secret_fs(
            SecretFs::new(root.real, root.shown, Arc::clone(&judge)),
            fd,
            i,
        );
    }
    // SAFETY: no preconditions.
    let (me, euid) = unsafe { (libc::getpid(), libc::geteuid()) };
    let mut guard_pids = vec![me, launcher_pid];
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
    let handler = Arc::new(Handler {
        judge,
        secrets,
        guard_pids,
        guard_pgid: launcher_pgid,
        // SAFETY: getegid has no preconditions.
        check_creds: (euid == 0).then(|| (euid, unsafe { libc::getegid() })),
        umasks: Default::default(),
        installing_writable: Default::default(),
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
    reap_until_empty(cmd_pid, status, helper);
    // Nothing supervised is left: let the judge write out what it queued before `_exit`.
    handler.judge.stop_in_supervisor();
}

/// Serve one secret root's FUSE connection on a thread of its own. It ends when the last process
/// of the namespace is gone (the kernel aborts the connection); should it end early, opens under
/// the root fail: closed.
pub(super) fn serve_secret_fs(fs: SecretFs, fd: OwnedFd, index: usize) {
    let spawned = std::thread::Builder::new()
        .name(format!("secret-fs-{index}"))
        .stack_size(256 * 1024)
        .spawn(move || {
            match fuser::Session::from_fd(fs, fd, fuser::SessionACL::Owner, Default::default()) {
                Ok(session) => {
                    let _ = session.run();
                }
                Err(e) => tracing::warn!("secret zone file system: {e}"),
            }
        });
    if spawned.is_err() {
        // The fd was dropped with the closure: the kernel aborts the connection and opens under
        // that root fail.
        tracing::warn!("no thread for a secret zone file system: its files cannot be opened");
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
    let Some(message::Message { tag, payload, fds }) = message::recv(sock) else {
        return Err((3, libc::ECHILD));
    };
    if tag != MSG_LISTENER {
        return Err((payload >> 32, payload as i32));
    }
    let mut fds = fds.into_iter();
    let Some(listener) = fds.next() else {
        return Err((2, libc::EBADMSG));
    };
    Ok((
        listener,
        View {
            hidden: payload & 1 != 0,
            fuse: fds.collect(),
        },
    ))
}

/// In the forked CMD child: no allocation, no locks. Installs the filter, sends the listener,
/// execs. Never returns.
///
/// # Safety
/// Must only be called in a child just forked, with `plan` prepared before the fork.
unsafe fn child_exec(plan: &ExecPlan, sock: RawFd, other: RawFd, helper_pair: [RawFd; 2]) -> ! {
    libc::close(other);
    if helper_pair[0] >= 0 {
        libc::close(helper_pair[0]);
    }
    let report = |stage: i64, errno: i32| {
        message::send(
            sock,
            MSG_SETUP_FAILED,
            (stage << 32) | i64::from(errno),
            &[],
        );
        libc::_exit(127);
    };
    let errno = || *libc::__errno_location();
    // The caller's handlers and mask are not CMD's: an ignored SIGPIPE (Rust's default) would
    // survive exec.
    let mut empty: libc::sigset_t = std::mem::zeroed();
    libc::sigemptyset(&mut empty);
    libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
    libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    // If the supervisor dies before we exec, do not run unsupervised.
    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0);
    // The supervisor made itself non-dumpable before forking us; until exec resets it, that
    // would keep an unprivileged supervisor from reading our memory for the exec notification.
    libc::prctl(libc::PR_SET_DUMPABLE, 1, 0, 0, 0);
    // The secret view, when planned. Any failure leaves it half made at worst (some roots
    // covered), and the filter that supervises every open is installed instead.
    let mut fuse_fds = [-1 as RawFd; MAX_HIDDEN_ROOTS];
    let mut mounted = 0;
    let mut hidden = match &plan.hide {
        Some(hide) => make_view(hide, &mut fuse_fds, &mut mounted),
        None => false,
    };
    if let (true, Some(hide)) = (hidden, &plan.hide) {
        if !hide.pending.is_empty() {
            hidden = late_roots::spawn(&hide.pending, helper_pair[1]);
        }
    }
    if helper_pair[1] >= 0 {
        // The agent must hold no way to talk to the supervisor.
        libc::close(helper_pair[1]);
    }
    if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
        report(0, errno());
    }
    if hidden {
        hidden = enter_landlock_domain();
    }
    let filter = if plan.hide.is_some() && !hidden {
        &plan.supervising_reads
    } else {
        &plan.filter
    };
    let fd = filter::install(filter);
    if fd < 0 {
        report(1, errno());
    }
    // The listener, then the FUSE fds of the mounted roots.
    let mut all = [-1 as RawFd; message::MAX_FDS];
    all[0] = fd;
    all[1..=mounted].copy_from_slice(&fuse_fds[..mounted]);
    if !message::send(sock, MSG_LISTENER, i64::from(hidden), &all[..=mounted]) {
        report(2, errno());
    }
    for fd in &all[..=mounted] {
        libc::close(*fd);
    }
    libc::close(sock);
    // A cwd inside a secret zone would still be the directory under our mount. Only now: the
    // walk waits for the supervisor, which serves the mounts once it has their fds.
    if let (true, Some(hide)) = (hidden, &plan.hide) {
        if let Some(cwd) = &hide.cwd {
            libc::chdir(cwd.as_ptr());
        }
    }
    libc::prctl(libc::PR_SET_PDEATHSIG, 0, 0, 0, 0);
    libc::execve(
        plan.program.as_ptr(),
        plan.argv_ptrs.as_ptr(),
        plan.envp_ptrs.as_ptr(),
    );
    let code = if errno() == libc::ENOENT { 127 } else { 126 };
    let msg = b"agent-guard: cannot execute the command\n";
    libc::write(2, msg.as_ptr().cast(), msg.len());
    libc::_exit(code);
}

/// In the CMD child: a mount namespace (in a user namespace unless root) in which every planned
/// secret root is covered by a FUSE mount whose fd the supervisor will serve. Whether it is
/// complete; the fds of the roots mounted so far are in `fuse_fds[..*mounted]` either way.
///
/// # Safety
/// Only in the forked CMD child, before exec: no allocation.
unsafe fn make_view(hide: &ChildPlan, fuse_fds: &mut [RawFd], mounted: &mut usize) -> bool {
    if hide.user_namespace {
        if libc::unshare(libc::CLONE_NEWUSER | libc::CLONE_NEWNS) != 0 {
            return false;
        }
        // Map our own ids only, as an unprivileged process may: the agent keeps its uid, and
        // after exec it holds no capability in the new namespace.
        if !write_file(c"/proc/self/setgroups", b"deny")
            || !write_file(c"/proc/self/uid_map", hide.uid_map.as_bytes())
            || !write_file(c"/proc/self/gid_map", hide.gid_map.as_bytes())
        {
            return false;
        }
    } else if libc::unshare(libc::CLONE_NEWNS) != 0 {
        return false;
    }
    // Our mounts must not propagate to the human's namespace; theirs still reach the agent.
    if libc::mount(
        std::ptr::null(),
        c"/".as_ptr(),
        std::ptr::null(),
        libc::MS_REC | libc::MS_SLAVE,
        std::ptr::null(),
    ) != 0
    {
        return false;
    }
    for (target, options) in &hide.mounts {
        let Some(fd) = secret_view::mount_fuse(target, options) else {
            return false;
        };
        fuse_fds[*mounted] = fd;
        *mounted += 1;
    }
    true
}

/// Write `bytes` to a /proc file in one write.
///
/// # Safety
/// Async-signal-safe: used in the forked child.
unsafe fn write_file(path: &std::ffi::CStr, bytes: &[u8]) -> bool {
    let fd = libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
    if fd < 0 {
        return false;
    }
    let n = libc::write(fd, bytes.as_ptr().cast(), bytes.len());
    libc::close(fd);
    n == bytes.len() as isize
}

/// Put the calling process in a Landlock domain that restricts nothing but block-device
/// creation. What matters is the domain: Landlock lets a process in it ptrace (and so open
/// `/proc/PID/root`, `cwd`, `fd/*`, `mem`) only processes in the same domain or below, so the
/// agent cannot look at the file system through the human's processes, outside our mounts.
///
/// A domain that does not handle `REFER` (ABI 2+) refuses every link or rename into another
/// directory with EXDEV. The supervisor performs those calls itself, outside the domain, but the
/// ones it lets through (a task whose credentials differ from a root supervisor's) would fail; so
/// `REFER` is handled and granted beneath `/`, which leaves every move possible. (Under ABI 1,
/// Linux 5.13 to 5.18, a domain always refuses them; only those let-through calls are affected.)
///
/// # Safety
/// Async-signal-safe: used in the forked child after `PR_SET_NO_NEW_PRIVS`, in its final mount
/// namespace (the rule holds for what is beneath that namespace's `/`).
unsafe fn enter_landlock_domain() -> bool {
    const LANDLOCK_ACCESS_FS_MAKE_BLOCK: u64 = 1 << 11;
    const LANDLOCK_ACCESS_FS_REFER: u64 = 1 << 13;
    const LANDLOCK_RULE_PATH_BENEATH: libc::c_int = 1;
    #[repr(C, packed)]
    struct PathBeneath {
        allowed_access: u64,
        parent_fd: i32,
    }
    let refer = if super::secret_view::landlock_abi() >= 2 {
        LANDLOCK_ACCESS_FS_REFER
    } else {
        0
    };
    // The ABI 1 layout (handled_access_fs only), which every Landlock kernel accepts.
    let handled: u64 = LANDLOCK_ACCESS_FS_MAKE_BLOCK | refer;
    let ruleset = libc::syscall(
        libc::SYS_landlock_create_ruleset,
        &handled as *const u64,
        std::mem::size_of::<u64>(),
        0u32,
    );
    if ruleset < 0 {
        return false;
    }
    let ruleset = ruleset as RawFd;
    let mut done = true;
    if refer != 0 {
        let root = libc::open(c"/".as_ptr(), libc::O_PATH | libc::O_CLOEXEC);
        let rule = PathBeneath {
            allowed_access: refer,
            parent_fd: root,
        };
        done = root >= 0
            && libc::syscall(
                libc::SYS_landlock_add_rule,
                ruleset,
                LANDLOCK_RULE_PATH_BENEATH,
                &rule as *const PathBeneath,
                0u32,
            ) == 0;
        if root >= 0 {
            libc::close(root);
        }
    }
    done = done && libc::syscall(libc::SYS_landlock_restrict_self, ruleset, 0u32) == 0;
    libc::close(ruleset);
    done
}

/// One worker: receive, handle, answer, forever (the process exits when nothing is left).
fn serve(listener: &Listener, handler: &Handler) {
    // A private umask and cwd for this thread, so that creating a file for a task can apply the
    // task's umask without touching the rest of the process (the judge's own files).
    // SAFETY: unshare(CLONE_FS) affects only the calling thread; umask has no preconditions.
    unsafe {
        if libc::unshare(libc::CLONE_FS) == 0 {
            libc::umask(0);
            super::handler::PRIVATE_FS.with(|p| p.set(true));
        }
    }
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
/// the caller as soon as CMD exits.
fn reap_until_empty(cmd_pid: i32, status_fd: RawFd, mut helper: Option<i32>) {
    let mut reported = false;
    loop {
        // The helper only serves the agent's tree: once it is all that is left, end it.
        if let Some(h) = helper {
            if late_roots::only_child_is(h) {
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
            write_msg(status_fd, MSG_STATUS, i64::from(code));
            reported = true;
        }
    }
    if !reported {
        write_msg(status_fd, MSG_STATUS, 1);
    }
}
