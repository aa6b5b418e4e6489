//! The CMD child: forked by the supervisor, it makes the secret view (a mount namespace where
//! the secret zones are covered, see `secret_view`), enters the Landlock domain, installs the
//! seccomp filter, sends the listener fd back to the supervisor and execs CMD.
//!
//! Everything the child does after the fork is prepared before it ([`ExecPlan`]): the caller may
//! be multi-threaded, so code here must never allocate or take a lock, and it holds raw fds
//! because it must hand them over before exec. A failure is reported to the supervisor with
//! its [`SetupStage`] and errno; the child never runs CMD unsupervised.

use std::ffi::{CStr, CString, OsStr, OsString};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, IntoRawFd, RawFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};

use super::config::SupervisorError;
use super::filter::{self, FilterOptions};
use super::late_roots;
use super::secret_view::{ChildPlan, SecretPlan, MAX_HIDDEN_ROOTS};
use crate::platform::linux::sys::ipc::{self, Tag};
use crate::platform::linux::sys::landlock::{self, AbiVersion, AccessFs};
use crate::platform::linux::sys::{fs, fuse, seccomp};

/// The setup steps that can fail, reported as `stage << 32 | errno` (`Tag::SetupFailed`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(i64)]
pub enum SetupStage {
    NoNewPrivs = 0,
    Seccomp = 1,
    SendListener = 2,
    Fork = 3,
}

impl SetupStage {
    /// The failed step, as `SupervisorError::Setup` names it.
    pub fn describe(code: i64) -> &'static str {
        match code {
            0 => "prctl(PR_SET_NO_NEW_PRIVS)",
            1 => "seccomp(SECCOMP_SET_MODE_FILTER, NEW_LISTENER)",
            2 => "sending the listener fd",
            3 => "forking the command",
            _ => "setup",
        }
    }

    /// The payload of a `SetupFailed` message.
    pub fn with_errno(self, errno: i32) -> i64 {
        ((self as i64) << 32) | i64::from(errno)
    }
}

fn cstr(s: &OsStr) -> Result<CString, SupervisorError> {
    CString::new(s.as_bytes()).map_err(|_| SupervisorError::NulByte(s.to_os_string()))
}

/// The program to exec: a path as given, or the first executable of that name in PATH.
fn find_program(name: &OsStr) -> Result<CString, SupervisorError> {
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
pub struct ExecPlan {
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
    pub fn new(
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

/// In the forked CMD child: no allocation, no locks. Installs the filter, sends the listener,
/// execs. Never returns.
///
/// # Safety
/// Must only be called in a child just forked, with `plan` prepared before the fork; `sock`,
/// `other` and the open ends of `helper_pair` are the child's copies of the supervisor's
/// socketpairs.
pub unsafe fn exec(plan: &ExecPlan, sock: RawFd, other: RawFd, helper_pair: [RawFd; 2]) -> ! {
    let report = |stage: SetupStage, errno: i32| -> ! {
        // SAFETY: no fds attached; sock is ours.
        unsafe { ipc::send(sock, Tag::SetupFailed, stage.with_errno(errno), &[]) };
        // SAFETY: leaving the child without running anything of the parent's.
        unsafe { libc::_exit(127) }
    };
    let errno = || std::io::Error::last_os_error().raw_os_error().unwrap_or(0);
    // SAFETY: closing the supervisor's ends, which the child does not use; resetting the
    // signal mask and SIGPIPE (the caller's handlers and mask are not CMD's: an ignored SIGPIPE,
    // Rust's default, would survive exec); prctl with integers. If the supervisor dies before we
    // exec, do not run unsupervised (PDEATHSIG). The supervisor made itself non-dumpable before
    // forking us; until exec resets it, that would keep an unprivileged supervisor from reading
    // our memory for the exec notification (DUMPABLE).
    unsafe {
        libc::close(other);
        if helper_pair[0] >= 0 {
            libc::close(helper_pair[0]);
        }
        let mut empty: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut empty);
        libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0);
        libc::prctl(libc::PR_SET_DUMPABLE, 1, 0, 0, 0);
    }
    // The secret view, when planned. Any failure leaves it half made at worst (some roots
    // covered), and the filter that supervises every open is installed instead.
    let mut fuse_fds = [-1 as RawFd; MAX_HIDDEN_ROOTS];
    let mut mounted = 0;
    let mut hidden = match &plan.hide {
        // SAFETY: in the forked child, before exec.
        Some(hide) => unsafe { make_view(hide, &mut fuse_fds, &mut mounted) },
        None => false,
    };
    if let (true, Some(hide)) = (hidden, &plan.hide) {
        if !hide.pending.is_empty() {
            // SAFETY: in the forked child, in its final namespaces, before the filter.
            hidden = unsafe { late_roots::spawn(&hide.pending, helper_pair[1]) };
        }
    }
    if helper_pair[1] >= 0 {
        // The agent must hold no way to talk to the supervisor.
        // SAFETY: closing our end of the helper's socketpair, which the helper now holds.
        unsafe { libc::close(helper_pair[1]) };
    }
    // SAFETY: prctl with integers.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
        report(SetupStage::NoNewPrivs, errno());
    }
    if hidden {
        hidden = enter_landlock_domain();
    }
    let filter = if plan.hide.is_some() && !hidden {
        &plan.supervising_reads
    } else {
        &plan.filter
    };
    let fd = match seccomp::install(filter) {
        Ok(fd) => fd.into_raw_fd(),
        Err(e) => report(SetupStage::Seccomp, e.raw_os_error().unwrap_or(0)),
    };
    // The listener, then the FUSE fds of the mounted roots.
    let mut all = [-1 as RawFd; ipc::MAX_FDS];
    all[0] = fd;
    all[1..=mounted].copy_from_slice(&fuse_fds[..mounted]);
    // SAFETY: every fd in all[..=mounted] is open: the listener and the mounted FUSE fds.
    if !unsafe { ipc::send(sock, Tag::Listener, i64::from(hidden), &all[..=mounted]) } {
        report(SetupStage::SendListener, errno());
    }
    // SAFETY: closing our copies, now the supervisor's.
    unsafe {
        for fd in &all[..=mounted] {
            libc::close(*fd);
        }
        libc::close(sock);
    }
    // A cwd inside a secret zone would still be the directory under our mount. Only now: the
    // walk waits for the supervisor, which serves the mounts once it has their fds.
    if let (true, Some(hide)) = (hidden, &plan.hide) {
        if let Some(cwd) = &hide.cwd {
            // SAFETY: a valid C string prepared before the fork.
            unsafe { libc::chdir(cwd.as_ptr()) };
        }
    }
    // SAFETY: prctl with integers; execve with argv and envp arrays prepared before the fork,
    // NULL-terminated; write of a static message; _exit.
    unsafe {
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
}

/// In the CMD child: a mount namespace (in a user namespace unless root) in which every planned
/// secret root is covered by a FUSE mount whose fd the supervisor will serve. Whether it is
/// complete; the fds of the roots mounted so far are in `fuse_fds[..*mounted]` either way.
///
/// # Safety
/// Only in the forked CMD child, before exec: no allocation.
unsafe fn make_view(hide: &ChildPlan, fuse_fds: &mut [RawFd], mounted: &mut usize) -> bool {
    if hide.user_namespace {
        // SAFETY: unshare has no memory preconditions.
        if unsafe { libc::unshare(libc::CLONE_NEWUSER | libc::CLONE_NEWNS) } != 0 {
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
    // SAFETY: unshare has no memory preconditions.
    } else if unsafe { libc::unshare(libc::CLONE_NEWNS) } != 0 {
        return false;
    }
    // Our mounts must not propagate to the human's namespace; theirs still reach the agent.
    // SAFETY: a valid C string; null source, type and data are allowed for a propagation change.
    let slave = unsafe {
        libc::mount(
            std::ptr::null(),
            c"/".as_ptr(),
            std::ptr::null(),
            libc::MS_REC | libc::MS_SLAVE,
            std::ptr::null(),
        )
    };
    if slave != 0 {
        return false;
    }
    for (target, options) in &hide.mounts {
        let Some(fd) = fuse::mount(target, options) else {
            return false;
        };
        fuse_fds[*mounted] = fd.into_raw_fd();
        *mounted += 1;
    }
    true
}

/// Write `bytes` to a /proc file in one write. Async-signal-safe: used in the forked child.
fn write_file(path: &CStr, bytes: &[u8]) -> bool {
    let Ok(file) = fs::open(path, libc::O_WRONLY | libc::O_CLOEXEC) else {
        return false;
    };
    // SAFETY: a valid fd and a buffer of the given length.
    let n = unsafe { libc::write(file.as_raw_fd(), bytes.as_ptr().cast(), bytes.len()) };
    n == bytes.len() as isize
}

/// Put the calling process in a Landlock domain that restricts nothing but block devices (made,
/// or opened for reading: read-only opens are not the supervisor's to see in this mode, and a
/// disk read directly goes around every zone). What matters most is the domain: Landlock lets a process in it ptrace (and so open
/// `/proc/PID/root`, `cwd`, `fd/*`, `mem`) only processes in the same domain or below, so the
/// agent cannot look at the file system through the human's processes, outside our mounts.
///
/// A domain that does not handle `REFER` (ABI 2+) refuses every link or rename into another
/// directory with EXDEV. The supervisor performs those calls itself, outside the domain, but the
/// ones it lets through (a task whose credentials differ from a root supervisor's) would fail; so
/// `REFER` is handled and granted beneath `/`, which leaves every move possible. (Under ABI 1,
/// Linux 5.13 to 5.18, a domain always refuses them; only those let-through calls are affected.)
///
/// Async-signal-safe: used in the forked child after `PR_SET_NO_NEW_PRIVS`, in its final mount
/// namespace (the rule holds for what is beneath that namespace's `/`).
fn enter_landlock_domain() -> bool {
    let refer = if AbiVersion::current() >= AbiVersion::V2 {
        AccessFs::REFER
    } else {
        AccessFs::EMPTY
    };
    let handled = AccessFs::MAKE_BLOCK | AccessFs::READ_FILE | refer;
    let Ok(ruleset) = landlock::create_ruleset(handled) else {
        return false;
    };
    if grant_reads_but_block_devices(ruleset.as_fd()).is_err() {
        return false;
    }
    if !refer.is_empty() {
        let granted = fs::open(c"/", libc::O_PATH | libc::O_CLOEXEC)
            .and_then(|root| landlock::add_path_beneath_rule(ruleset.as_fd(), refer, root.as_fd()));
        if granted.is_err() {
            return false;
        }
    }
    landlock::restrict_self(ruleset.as_fd()).is_ok()
}

/// How deep below /dev the grant looks for block devices (/dev/mapper, /dev/bus/usb/001).
const DEV_DEPTH: u32 = 4;

/// Grant `READ_FILE` beneath every entry of `/` but `/dev`, and in /dev on every file that is
/// not a block device (directories of other file systems there, such as /dev/pts and /dev/shm,
/// whole). A block device renamed later keeps its inode, which no rule names; one made later is
/// refused (mknod is the supervisor's, and the domain handles `MAKE_BLOCK`). Symlinks get no
/// rule: an open through one is checked on where it leads. A file or top-level directory made
/// in /dev or `/` after the start cannot be read by the agent (a known limit).
///
/// Async-signal-safe: no allocation (directory listings in stack buffers).
fn grant_reads_but_block_devices(ruleset: BorrowedFd<'_>) -> std::io::Result<()> {
    let root = fs::open(c"/", libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC)?;
    let mut failed = None;
    fs::each_entry(root.as_fd(), |name| {
        let done = if name == c"dev" {
            grant_reads_in_dev(ruleset, root.as_fd(), name, None, DEV_DEPTH)
        } else {
            grant_reads_on(ruleset, root.as_fd(), name)
        };
        if let Err(e) = done {
            failed.get_or_insert(e);
        }
    })?;
    failed.map_or(Ok(()), Err)
}

/// `READ_FILE` on `parent/name` (beneath it for a directory), unless it is a symlink or a
/// block device.
fn grant_reads_on(
    ruleset: BorrowedFd<'_>,
    parent: BorrowedFd<'_>,
    name: &CStr,
) -> std::io::Result<()> {
    let Ok(file) = fs::openat(
        parent,
        name,
        libc::O_PATH | libc::O_NOFOLLOW | libc::O_CLOEXEC,
    ) else {
        return Ok(()); // gone meanwhile: nothing to grant
    };
    match fs::type_and_device(file.as_fd())?.0 {
        libc::S_IFLNK | libc::S_IFBLK => Ok(()),
        _ => landlock::add_path_beneath_rule(ruleset, AccessFs::READ_FILE, file.as_fd()),
    }
}

/// The grant in the device file system (`dev` in `parent`; `devtmpfs` its device, learnt at
/// /dev itself): its directories are looked into, the rest granted as in `grant_reads_on`.
fn grant_reads_in_dev(
    ruleset: BorrowedFd<'_>,
    parent: BorrowedFd<'_>,
    name: &CStr,
    devtmpfs: Option<u64>,
    depth: u32,
) -> std::io::Result<()> {
    let flags = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC;
    let Ok(dir) = fs::openat(parent, name, flags) else {
        // Not a directory (or gone): a file of /dev, granted unless a block device.
        return grant_reads_on(ruleset, parent, name);
    };
    let (_, device) = fs::type_and_device(dir.as_fd())?;
    if devtmpfs.is_some_and(|d| d != device) {
        // Another file system mounted in /dev (pts, shm, mqueue): no block devices in it.
        return landlock::add_path_beneath_rule(ruleset, AccessFs::READ_FILE, dir.as_fd());
    }
    if depth == 0 {
        return Ok(()); // deeper than any real /dev: left unreadable
    }
    let mut failed = None;
    fs::each_entry(dir.as_fd(), |entry| {
        if let Err(e) = grant_reads_in_dev(ruleset, dir.as_fd(), entry, Some(device), depth - 1) {
            failed.get_or_insert(e);
        }
    })?;
    failed.map_or(Ok(()), Err)
}
