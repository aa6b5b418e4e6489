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
use super::notify::{Listener, Response};
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
}

impl ExecPlan {
    fn new(cmd: &[OsString], supervise_reads: bool) -> Result<ExecPlan, SupervisorError> {
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
        Ok(ExecPlan {
            program,
            _argv: argv,
            _envp: envp,
            argv_ptrs,
            envp_ptrs,
            filter: filter::program(FilterOptions { supervise_reads }),
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
    let plan = ExecPlan::new(cmd, config.supervise_reads)?;
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
            supervisor_main(&plan, judge, config, status_wr, launcher_pid, launcher_pgid)
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

/// The supervisor process: fork CMD, receive its listener, serve, reap, report.
fn supervisor_main(
    plan: &ExecPlan,
    judge: Arc<dyn Judge>,
    config: &SupervisorConfig,
    status: OwnedFd,
    launcher_pid: i32,
    launcher_pgid: i32,
) {
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
    // SAFETY: no preconditions.
    let cmd_pid = unsafe { libc::fork() };
    if cmd_pid < 0 {
        fail(3, io::Error::last_os_error().raw_os_error().unwrap_or(0));
    }
    if cmd_pid == 0 {
        // SAFETY: in the forked child, before exec.
        unsafe { child_exec(plan, pair[1], pair[0]) };
    }
    // SAFETY: closing our copy of the child's end; leaving the terminal's session so that its
    // signals and the agent's process-group signals do not reach the supervisor.
    unsafe {
        libc::close(pair[1]);
        libc::setsid();
        for sig in FORWARDED {
            libc::signal(sig, libc::SIG_DFL);
        }
    }
    // SAFETY: pair[0] is ours.
    let sock = unsafe { OwnedFd::from_raw_fd(pair[0]) };
    let listener = match recv_listener(sock.as_raw_fd()) {
        Ok(fd) => Listener::new(fd),
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
    let secrets = SecretInodes::index(&judge.secret_paths());
    // SAFETY: no preconditions.
    let (me, euid) = unsafe { (libc::getpid(), libc::geteuid()) };
    let handler = Arc::new(Handler {
        judge,
        secrets,
        guard_pids: vec![me, launcher_pid],
        guard_pgid: launcher_pgid,
        check_creds: euid == 0,
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
    reap_until_empty(cmd_pid, status);
    // Nothing supervised is left: let the judge write out what it queued before `_exit`.
    handler.judge.stop_in_supervisor();
}

/// Receive the listener fd (or the child's setup failure) from the CMD child.
fn recv_listener(sock: RawFd) -> Result<OwnedFd, (i64, i32)> {
    let mut data = [0u8; 9];
    let mut iov = libc::iovec {
        iov_base: data.as_mut_ptr().cast(),
        iov_len: data.len(),
    };
    // Room for one SCM_RIGHTS fd, aligned for cmsghdr.
    let mut cmsg_buf = [0u64; 8];
    // SAFETY: msghdr is plain data.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cmsg_buf.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&cmsg_buf);
    let n = loop {
        // SAFETY: msg points at valid buffers.
        let n = unsafe { libc::recvmsg(sock, &mut msg, libc::MSG_CMSG_CLOEXEC) };
        if n < 0 && io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
            continue;
        }
        break n;
    };
    if n <= 0 {
        return Err((3, libc::ECHILD));
    }
    if data[0] != MSG_LISTENER {
        let mut payload = [0u8; 8];
        payload.copy_from_slice(&data[1..]);
        let detail = i64::from_ne_bytes(payload);
        return Err((detail >> 32, detail as i32));
    }
    // SAFETY: walking the control messages the kernel filled in.
    unsafe {
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        if cmsg.is_null()
            || (*cmsg).cmsg_level != libc::SOL_SOCKET
            || (*cmsg).cmsg_type != libc::SCM_RIGHTS
        {
            return Err((2, libc::EBADMSG));
        }
        let fd = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast::<RawFd>());
        Ok(OwnedFd::from_raw_fd(fd))
    }
}

/// In the forked CMD child: no allocation, no locks. Installs the filter, sends the listener,
/// execs. Never returns.
///
/// # Safety
/// Must only be called in a child just forked, with `plan` prepared before the fork.
unsafe fn child_exec(plan: &ExecPlan, sock: RawFd, other: RawFd) -> ! {
    libc::close(other);
    let report = |stage: i64, errno: i32| {
        let mut buf = [0u8; 9];
        buf[0] = MSG_SETUP_FAILED;
        buf[1..].copy_from_slice(&((stage << 32) | i64::from(errno)).to_ne_bytes());
        libc::send(sock, buf.as_ptr().cast(), buf.len(), 0);
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
    if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
        report(0, errno());
    }
    let prog = libc::sock_fprog {
        len: plan.filter.len() as u16,
        filter: plan.filter.as_ptr() as *mut libc::sock_filter,
    };
    let install = |flags: libc::c_ulong| {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            flags,
            &prog as *const libc::sock_fprog,
        )
    };
    let mut fd = install(
        libc::SECCOMP_FILTER_FLAG_NEW_LISTENER | libc::SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV,
    );
    if fd < 0 && errno() == libc::EINVAL {
        // Before 5.19: no killable wait; a signal may then restart a notified call.
        fd = install(libc::SECCOMP_FILTER_FLAG_NEW_LISTENER);
    }
    if fd < 0 {
        report(1, errno());
    }
    let fd = fd as RawFd;
    let mut data = [0u8; 9];
    data[0] = MSG_LISTENER;
    let mut iov = libc::iovec {
        iov_base: data.as_mut_ptr().cast(),
        iov_len: data.len(),
    };
    let mut cmsg_buf = [0u64; 8];
    let mut msg: libc::msghdr = std::mem::zeroed();
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cmsg_buf.as_mut_ptr().cast();
    msg.msg_controllen = libc::CMSG_SPACE(std::mem::size_of::<RawFd>() as u32) as usize;
    let cmsg = libc::CMSG_FIRSTHDR(&msg);
    (*cmsg).cmsg_level = libc::SOL_SOCKET;
    (*cmsg).cmsg_type = libc::SCM_RIGHTS;
    (*cmsg).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<RawFd>() as u32) as usize;
    std::ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast::<RawFd>(), fd);
    if libc::sendmsg(sock, &msg, 0) < 0 {
        report(2, errno());
    }
    libc::close(fd);
    libc::close(sock);
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
    loop {
        let n = match listener.recv() {
            Ok(n) => n,
            Err(e) if matches!(e.raw_os_error(), Some(libc::EINTR) | Some(libc::ENOENT)) => {
                continue
            }
            Err(_) => return,
        };
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
fn reap_until_empty(cmd_pid: i32, status_fd: RawFd) {
    let mut reported = false;
    loop {
        let mut wstatus = 0;
        // SAFETY: wstatus is valid.
        let pid = unsafe { libc::waitpid(-1, &mut wstatus, 0) };
        if pid < 0 {
            match io::Error::last_os_error().raw_os_error() {
                Some(libc::EINTR) => continue,
                _ => break,
            }
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
