//! One notification in, one answer out: decode the syscall, resolve its paths, ask the judge,
//! then either let the kernel run it, refuse it, or run it here on the checked path.
//!
//! unlink, rmdir, rename, link and truncate are *emulated*: after the judge allows them, the
//! supervisor performs them itself on the path it resolved and checked, and returns the result.
//! Letting the kernel run them instead (`CONTINUE`) would make it re-read the path from the
//! task's memory, which a second thread can have rewritten since (time of check, time of use).
//! This module must never answer `CONTINUE` for those calls while it can emulate them, and never
//! act on a notification whose id is no longer valid.

use std::collections::HashMap;
use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::engine::{Action, Actor, Event, OpenFlags};

use super::notify::{Listener, Notification, Response};
use super::resolve::{self, Asker, Base};
use super::task;
use super::Judge;

/// `RESOLVE_*` flags of openat2 (linux/openat2.h).
const RESOLVE_NO_SYMLINKS: u64 = 0x04;
const RESOLVE_BENEATH: u64 = 0x08;
const RESOLVE_IN_ROOT: u64 = 0x10;

/// Open flags the supervisor passes on when it opens for a task. `open()` ignores unknown bits,
/// `openat2()` refuses them, so the task's flags are masked to these.
const PASSED_OPEN_FLAGS: i32 = libc::O_ACCMODE
    | libc::O_CREAT
    | libc::O_EXCL
    | libc::O_TRUNC
    | libc::O_APPEND
    | libc::O_NONBLOCK
    | libc::O_DSYNC
    | libc::O_SYNC
    | libc::O_DIRECT
    | libc::O_DIRECTORY
    | libc::O_NOFOLLOW
    | libc::O_NOATIME
    | libc::O_PATH
    | libc::O_TMPFILE
    | libc::O_LARGEFILE
    | libc::O_ASYNC;

/// Files of the secret zones, by (device, inode), so that a hard link elsewhere to a secret file
/// is recognised as the secret itself.
#[derive(Default)]
pub struct SecretInodes {
    by_inode: HashMap<(u64, u64), PathBuf>,
    /// A secret file that has another name (a hard link) somewhere.
    hard_linked: Option<PathBuf>,
}

/// How many files of the secret zones are indexed at most (a zone is a few credential files;
/// the bound keeps a mistaken zone like `~` from stalling the start).
const SECRET_INDEX_LIMIT: usize = 100_000;

impl SecretInodes {
    /// Index every regular file under the roots (symlinks not followed).
    pub fn index(roots: &[PathBuf]) -> SecretInodes {
        let mut by_inode = HashMap::new();
        let mut hard_linked = None;
        // A root may itself be a symlink (`~/.ssh` kept elsewhere): index what it points to.
        let mut stack: Vec<PathBuf> = roots
            .iter()
            .map(|r| std::fs::canonicalize(r).unwrap_or_else(|_| r.clone()))
            .collect();
        while let Some(path) = stack.pop() {
            if by_inode.len() >= SECRET_INDEX_LIMIT {
                break;
            }
            let Ok(meta) = std::fs::symlink_metadata(&path) else {
                continue;
            };
            if meta.is_dir() {
                if let Ok(entries) = std::fs::read_dir(&path) {
                    stack.extend(entries.flatten().map(|e| e.path()));
                }
            } else if meta.is_file() {
                if meta.nlink() > 1 && hard_linked.is_none() {
                    hard_linked = Some(path.clone());
                }
                by_inode.insert((meta.dev(), meta.ino()), path);
            }
        }
        SecretInodes {
            by_inode,
            hard_linked,
        }
    }

    /// A secret file with another hard link, if any.
    pub fn hard_linked(&self) -> Option<&Path> {
        self.hard_linked.as_deref()
    }

    /// The secret file that `path` (already resolved) is another name for, if any.
    fn alias_of(&self, path: &Path) -> Option<&PathBuf> {
        if self.by_inode.is_empty() {
            return None;
        }
        let meta = std::fs::metadata(path).ok()?;
        if !meta.is_file() || meta.nlink() < 2 {
            return None;
        }
        self.by_inode
            .get(&(meta.dev(), meta.ino()))
            .filter(|secret| secret.as_path() != path)
    }
}

/// The umask of recently seen threads. Reading it (/proc/TID/status) is the costliest step of a
/// supervised create, so it is kept for `UMASK_TTL`, and the whole cache is dropped whenever a
/// supervised task calls umask() (the filter notifies it). The umask only decides the mode of the
/// agent's own new files (which it may chmod anyway): it is not a security boundary, so a thread
/// racing its own umask() against its creates only gets the mode it raced for.
#[derive(Default)]
pub struct UmaskCache {
    entries: std::sync::Mutex<HashMap<i32, (libc::mode_t, std::time::Instant)>>,
}

/// Long enough to serve a burst of creates (tar, git), far too short for a tid to be reused.
const UMASK_TTL: std::time::Duration = std::time::Duration::from_secs(2);

impl UmaskCache {
    fn get(&self, tid: i32) -> libc::mode_t {
        let now = std::time::Instant::now();
        if let Ok(entries) = self.entries.lock() {
            if let Some((mask, at)) = entries.get(&tid) {
                if now.duration_since(*at) < UMASK_TTL {
                    return *mask;
                }
            }
        }
        // Without the task's umask, the common default rather than files more open than asked.
        let mask = task::umask(tid).unwrap_or(0o022);
        if let Ok(mut entries) = self.entries.lock() {
            if entries.len() > 4096 {
                entries.retain(|_, (_, at)| now.duration_since(*at) < UMASK_TTL);
            }
            entries.insert(tid, (mask, now));
        }
        mask
    }

    fn forget_all(&self) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.clear();
        }
    }
}

/// What to do with a notification once decoded.
enum Plan {
    /// Judge, then let the kernel run the call (it re-reads its arguments: see module docs).
    Check(Vec<Action>),
    /// Judge, then perform the call here on the checked paths.
    Emulate(Vec<Action>, Emulation),
    /// A signal or ptrace aimed at the supervisor: record it, refuse it.
    Guard(i32),
    /// Answer without asking the judge.
    Answer(Response),
}

/// A destructive call redone by the supervisor. Parents are absolute, resolved directories.
enum Emulation {
    Unlink {
        parent: PathBuf,
        name: CString,
        flags: i32,
    },
    Rename {
        from_parent: PathBuf,
        from_name: CString,
        to_parent: PathBuf,
        to_name: CString,
        flags: u32,
    },
    Link {
        /// Parent and name, or a whole path followed as a magic link (`AT_EMPTY_PATH`).
        from_parent: Option<PathBuf>,
        from_name: CString,
        to_parent: PathBuf,
        to_name: CString,
        flags: i32,
    },
    Truncate {
        path: PathBuf,
        length: i64,
    },
    /// An open, performed here and the fd installed in the task (`SECCOMP_IOCTL_NOTIF_ADDFD`).
    Open {
        path: PathBuf,
        /// The task's open flags.
        flags: i32,
        mode: u32,
        /// For a creating open: the task whose umask applies.
        umask_of: Option<i32>,
    },
    Mkdir {
        parent: PathBuf,
        name: CString,
        mode: u32,
        tid: i32,
    },
    Mknod {
        parent: PathBuf,
        name: CString,
        mode: u32,
        dev: u64,
        tid: i32,
    },
    Symlink {
        target: CString,
        parent: PathBuf,
        name: CString,
    },
    PidfdSignal {
        fd: OwnedFd,
        sig: i32,
        info: Option<[u8; 128]>,
        flags: u32,
    },
}

/// The per-supervisor state every worker shares.
pub struct Handler {
    pub judge: Arc<dyn Judge>,
    pub secrets: SecretInodes,
    /// Pids of the guard's own processes (the supervisor and the launcher that waits for CMD).
    pub guard_pids: Vec<i32>,
    /// The launcher's process group (signals to the whole group would reach it).
    pub guard_pgid: i32,
    /// The supervisor runs as root: its effective (uid, gid), which a task must have for the
    /// supervisor to act for it (an unprivileged supervisor's tasks cannot have other
    /// credentials, so there is nothing to check).
    pub check_creds: Option<(u32, u32)>,
    pub umasks: UmaskCache,
    /// Held (shared) by a worker from installing a writable fd in a task until it has closed its
    /// own copy; an exec is answered only once none is held (see `install_fd`).
    pub installing_writable: Arc<std::sync::RwLock<()>>,
}

fn errno_of(e: &io::Error) -> i32 {
    e.raw_os_error().unwrap_or(libc::EIO)
}

fn cstring(bytes: &[u8]) -> io::Result<CString> {
    CString::new(bytes).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

/// Split a resolved path into its parent and the name to act on, keeping a trailing slash the
/// task wrote (it makes the kernel insist on a directory).
fn parent_and_name(path: &Path, trailing_slash: bool) -> io::Result<(PathBuf, CString)> {
    let parent = path.parent().unwrap_or(Path::new("/")).to_path_buf();
    let mut name = path
        .file_name()
        .map(|n| n.as_bytes().to_vec())
        .unwrap_or_else(|| b".".to_vec());
    if trailing_slash {
        name.push(b'/');
    }
    Ok((parent, cstring(&name)?))
}

fn syscall_result(rc: libc::c_long) -> Response {
    if rc < 0 {
        Response::Error(
            io::Error::last_os_error()
                .raw_os_error()
                .unwrap_or(libc::EIO),
        )
    } else {
        Response::Value(rc)
    }
}

/// Open a resolved directory without following any symlink in it: a symlink that appears after
/// the check (a swapped path component) makes this fail with ELOOP instead of redirecting.
fn open_dir_nofollow(dir: &Path) -> io::Result<OwnedFd> {
    let c = cstring(dir.as_os_str().as_bytes())?;
    // struct open_how { u64 flags; u64 mode; u64 resolve; } (libc's is non-exhaustive).
    let how: [u64; 3] = [
        (libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC) as u64,
        0,
        RESOLVE_NO_SYMLINKS,
    ];
    // SAFETY: c and how are valid for the call.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            libc::AT_FDCWD,
            c.as_ptr(),
            how.as_ptr(),
            std::mem::size_of_val(&how),
        )
    };
    if fd >= 0 {
        // SAFETY: the kernel returned a new fd we own.
        return Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) });
    }
    let err = io::Error::last_os_error();
    if err.raw_os_error() != Some(libc::ENOSYS) {
        return Err(err);
    }
    // Before 5.6: only the last component is protected from a swap.
    // SAFETY: c is a valid C string.
    let fd = unsafe {
        libc::open(
            c.as_ptr(),
            libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC | libc::O_NOFOLLOW,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: as above.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Whether nothing exists at `path` (ENOENT, following symlinks), in one stat.
fn missing(path: &[u8]) -> bool {
    let Ok(c) = cstring(path) else {
        return false;
    };
    // SAFETY: c is a valid C string and st a buffer of the right type.
    let rc = unsafe {
        let mut st: libc::stat = std::mem::zeroed();
        libc::stat(c.as_ptr(), &mut st)
    };
    rc != 0 && io::Error::last_os_error().raw_os_error() == Some(libc::ENOENT)
}

fn is_dot_or_dotdot(name: &[u8]) -> bool {
    name == b"." || name == b".."
}

impl Handler {
    /// Handle one notification. `None` means no answer is due (the task is gone).
    pub fn handle(&self, listener: &Listener, n: &Notification) -> Option<Response> {
        let plan = match self.plan(n) {
            Ok(plan) => plan,
            Err(e) => Plan::Answer(Response::Error(errno_of(&e))),
        };
        let response = match plan {
            Plan::Answer(r) => r,
            Plan::Guard(target) => {
                let event = Event {
                    actor: actor(n.tid),
                    action: Action::Signal {
                        target_pid: target,
                        target_is_guard: true,
                    },
                };
                // The record is the judge's business; the refusal is not negotiable: an audit-
                // mode verdict must not let the agent switch the enforcement off.
                let _ = self.judge.judge(n.tid, &event);
                Response::Error(libc::EPERM)
            }
            Plan::Check(actions) => {
                let execs = actions.iter().any(|a| matches!(a, Action::Exec { .. }));
                if !self.allowed(n.tid, actions) {
                    Response::Error(libc::EPERM)
                } else {
                    if execs {
                        // The file may be one the task just wrote through an fd we installed:
                        // our copy must be closed before the kernel checks that nothing has
                        // it open for writing (ETXTBSY). See `install_fd`.
                        drop(self.installing_writable.write());
                    }
                    Response::Continue
                }
            }
            Plan::Emulate(actions, emulation) => {
                if !self.allowed(n.tid, actions) {
                    Response::Error(libc::EPERM)
                } else if !listener.id_valid(n.id) {
                    return None;
                } else if self.check_creds.is_some_and(|ids| !has_ids(n.tid, ids)) {
                    // Acting for a task with other credentials would lend it ours.
                    Response::Continue
                } else {
                    // None: nothing to answer (the task is gone, or a FIFO open answers later).
                    emulate(
                        emulation,
                        listener,
                        n.id,
                        &self.umasks,
                        &self.installing_writable,
                    )?
                }
            }
        };
        // No last ID_VALID check: an answer to a notification whose task died meanwhile is
        // refused by the kernel (ENOENT), and nothing was done for it (emulation checks first).
        Some(response)
    }

    fn allowed(&self, tid: i32, actions: Vec<Action>) -> bool {
        actions.into_iter().all(|action| {
            let event = Event {
                actor: actor(tid),
                action,
            };
            self.judge.judge(tid, &event).allows()
        })
    }

    fn is_guard(&self, pid: i32) -> bool {
        task::tgid_of(pid).is_some_and(|tgid| self.guard_pids.contains(&tgid))
    }

    // libc's syscall numbers are lower-case constants used as patterns.
    #[allow(non_upper_case_globals)]
    fn plan(&self, n: &Notification) -> io::Result<Plan> {
        use libc::*;
        let a = n.args;
        let asker = Asker { tid: n.tid };
        let path_arg = |addr: u64| task::read_path(n.tid, addr);
        let nofollow = |base: Base, raw: &[u8]| resolve::resolve(asker, base, raw, false, false);
        let nr = n.nr;

        #[cfg(target_arch = "x86_64")]
        let legacy = match nr {
            SYS_open => Some((AT_FDCWD as u64, a[0], a[1] as i32, SYS_openat)),
            SYS_creat => Some((
                AT_FDCWD as u64,
                a[0],
                O_CREAT | O_WRONLY | O_TRUNC,
                SYS_openat,
            )),
            SYS_unlink => Some((AT_FDCWD as u64, a[0], 0, SYS_unlinkat)),
            SYS_rmdir => Some((AT_FDCWD as u64, a[0], AT_REMOVEDIR, SYS_unlinkat)),
            SYS_mkdir => Some((AT_FDCWD as u64, a[0], 0, SYS_mkdirat)),
            SYS_mknod => Some((AT_FDCWD as u64, a[0], 0, SYS_mknodat)),
            _ => None,
        };
        #[cfg(not(target_arch = "x86_64"))]
        let legacy: Option<(u64, u64, i32, i64)> = None;

        // Normalise the single-path calls to their *at form: (dirfd, path, flags, at-syscall).
        let (dirfd, path_addr, flags, at_nr) = match legacy {
            Some(l) => l,
            None => match nr {
                SYS_openat => (a[0], a[1], a[2] as i32, SYS_openat),
                SYS_unlinkat => (a[0], a[1], a[2] as i32, SYS_unlinkat),
                SYS_mkdirat => (a[0], a[1], 0, SYS_mkdirat),
                SYS_mknodat => (a[0], a[1], 0, SYS_mknodat),
                _ => (0, 0, 0, nr),
            },
        };

        match at_nr {
            SYS_openat | SYS_openat2 => {
                let (dirfd, path_addr, flags, mode, resolve_flags) = if at_nr == SYS_openat2 {
                    let how: [u8; 24] = task::read_bytes(n.tid, a[2])?;
                    let word = |i: usize| {
                        let mut b = [0u8; 8];
                        b.copy_from_slice(&how[i * 8..i * 8 + 8]);
                        u64::from_ne_bytes(b)
                    };
                    (a[0], a[1], word(0) as i32, word(1) as u32, word(2))
                } else {
                    let mode = match nr {
                        #[cfg(target_arch = "x86_64")]
                        SYS_open => a[2],
                        #[cfg(target_arch = "x86_64")]
                        SYS_creat => a[1],
                        _ => a[3],
                    };
                    (dirfd, path_addr, flags, mode as u32, 0)
                };
                let raw = path_arg(path_addr)?;
                let creates_exclusively = flags & O_CREAT != 0 && flags & O_EXCL != 0;
                let follow_final = flags & O_NOFOLLOW == 0 && !creates_exclusively;
                let base = Base::from_arg(dirfd);
                let path = resolve::resolve(
                    asker,
                    base,
                    &raw,
                    follow_final,
                    resolve_flags & self::RESOLVE_IN_ROOT != 0,
                )?;
                if resolve_flags & self::RESOLVE_BENEATH != 0 {
                    let dir = resolve::base_dir(asker, base)?;
                    if !path.starts_with(&dir) {
                        return Err(io::Error::from_raw_os_error(EXDEV));
                    }
                }
                let open_flags = OpenFlags {
                    write: flags & O_ACCMODE != O_RDONLY,
                    truncate: flags & O_TRUNC != 0,
                    create: flags & O_CREAT != 0 || flags & O_TMPFILE == O_TMPFILE,
                };
                if self.touches_guard_proc(&path) && !is_public_proc_read(&path, &open_flags) {
                    return Ok(Plan::Guard(self.guard_pids[0]));
                }
                let mut actions = vec![Action::Open {
                    path: path.clone(),
                    flags: open_flags,
                }];
                if let Some(secret) = self.secrets.alias_of(&path) {
                    actions.push(Action::Open {
                        path: secret.clone(),
                        flags: open_flags,
                    });
                }
                if path == Path::new("/dev/tty") {
                    // The supervisor has no controlling terminal: /dev/tty means the task's.
                    let Some(tty) = task::controlling_tty(n.tid) else {
                        return Ok(Plan::Answer(Response::Error(ENXIO)));
                    };
                    return Ok(Plan::Emulate(
                        actions,
                        Emulation::Open {
                            path: tty,
                            flags,
                            mode: 0,
                            umask_of: None,
                        },
                    ));
                }
                if flags & O_PATH != 0 {
                    // NOTIF_ADDFD cannot install an O_PATH file (the kernel's fget() skips them).
                    // An O_PATH fd reads and writes nothing; reopening it through /proc/self/fd
                    // is an open of its own, judged by path again.
                    return Ok(Plan::Check(actions));
                }
                let creates = flags & O_CREAT != 0 || flags & O_TMPFILE == O_TMPFILE;
                Ok(Plan::Emulate(
                    actions,
                    Emulation::Open {
                        path,
                        flags,
                        mode,
                        umask_of: creates.then_some(n.tid),
                    },
                ))
            }
            SYS_unlinkat => {
                let raw = path_arg(path_addr)?;
                let (last, trailing) = resolve::last_component(&raw);
                let rmdir = flags & AT_REMOVEDIR != 0;
                if is_dot_or_dotdot(last) {
                    let errno = match (rmdir, last) {
                        (false, _) => EISDIR,
                        (true, b".") => EINVAL,
                        (true, _) => ENOTEMPTY,
                    };
                    return Ok(Plan::Answer(Response::Error(errno)));
                }
                let path = nofollow(Base::from_arg(dirfd), &raw)?;
                let (parent, name) = parent_and_name(&path, trailing)?;
                let action = if rmdir {
                    Action::Rmdir { path }
                } else {
                    Action::Unlink { path }
                };
                Ok(Plan::Emulate(
                    vec![action],
                    Emulation::Unlink {
                        parent,
                        name,
                        flags: flags & AT_REMOVEDIR,
                    },
                ))
            }
            SYS_mknodat => {
                let raw = path_arg(path_addr)?;
                let path = nofollow(Base::from_arg(dirfd), &raw)?;
                let (parent, name) = parent_and_name(&path, false)?;
                let (mode, dev) = match nr {
                    #[cfg(target_arch = "x86_64")]
                    SYS_mknod => (a[1], a[2]),
                    _ => (a[2], a[3]),
                };
                Ok(Plan::Emulate(
                    vec![Action::Create { path }],
                    Emulation::Mknod {
                        parent,
                        name,
                        mode: mode as u32,
                        dev,
                        tid: n.tid,
                    },
                ))
            }
            SYS_mkdirat => {
                let raw = path_arg(path_addr)?;
                let (_, trailing) = resolve::last_component(&raw);
                let path = nofollow(Base::from_arg(dirfd), &raw)?;
                let (parent, name) = parent_and_name(&path, trailing)?;
                let mode = match nr {
                    #[cfg(target_arch = "x86_64")]
                    SYS_mkdir => a[1],
                    _ => a[2],
                } as u32;
                Ok(Plan::Emulate(
                    vec![Action::Create { path }],
                    Emulation::Mkdir {
                        parent,
                        name,
                        mode,
                        tid: n.tid,
                    },
                ))
            }
            _ => self.plan_other(n, asker),
        }
    }

    #[allow(non_upper_case_globals)]
    fn plan_other(&self, n: &Notification, asker: Asker) -> io::Result<Plan> {
        use libc::*;
        let a = n.args;
        let path_arg = |addr: u64| task::read_path(n.tid, addr);
        let resolve_at = |base: Base, raw: &[u8], follow: bool| {
            resolve::resolve(asker, base, raw, follow, false)
        };
        let cwd = AT_FDCWD as u64;

        // (old dirfd, old path, new dirfd, new path, flags) of the two-path calls.
        let two_paths = match n.nr {
            #[cfg(target_arch = "x86_64")]
            SYS_rename => Some((cwd, a[0], cwd, a[1], 0u64)),
            SYS_renameat => Some((a[0], a[1], a[2], a[3], 0)),
            SYS_renameat2 => Some((a[0], a[1], a[2], a[3], a[4])),
            _ => None,
        };
        if let Some((od, op, nd, np, flags)) = two_paths {
            let old_raw = path_arg(op)?;
            let new_raw = path_arg(np)?;
            let (old_last, old_trailing) = resolve::last_component(&old_raw);
            let (new_last, new_trailing) = resolve::last_component(&new_raw);
            if is_dot_or_dotdot(old_last) || is_dot_or_dotdot(new_last) {
                return Ok(Plan::Answer(Response::Error(EBUSY)));
            }
            let from = resolve_at(Base::from_arg(od), &old_raw, false)?;
            let to = resolve_at(Base::from_arg(nd), &new_raw, false)?;
            let source_is_dir = std::fs::symlink_metadata(&from)
                .map(|m| m.is_dir())
                .unwrap_or(false);
            let dest = std::fs::symlink_metadata(&to).ok();
            let mut actions = vec![Action::Rename {
                from: from.clone(),
                to: to.clone(),
                dest_exists: dest.is_some(),
                source_is_dir,
            }];
            if flags as u32 & RENAME_EXCHANGE != 0 {
                // An exchange is two moves: the destination's entry moves to the source too.
                actions.push(Action::Rename {
                    from: to.clone(),
                    to: from.clone(),
                    dest_exists: true,
                    source_is_dir: dest.is_some_and(|m| m.is_dir()),
                });
            }
            let (from_parent, from_name) = parent_and_name(&from, old_trailing)?;
            let (to_parent, to_name) = parent_and_name(&to, new_trailing)?;
            return Ok(Plan::Emulate(
                actions,
                Emulation::Rename {
                    from_parent,
                    from_name,
                    to_parent,
                    to_name,
                    flags: flags as u32,
                },
            ));
        }

        let link = match n.nr {
            #[cfg(target_arch = "x86_64")]
            SYS_link => Some((cwd, a[0], cwd, a[1], 0i32)),
            SYS_linkat => Some((a[0], a[1], a[2], a[3], a[4] as i32)),
            _ => None,
        };
        if let Some((od, op, nd, np, flags)) = link {
            let old_raw = path_arg(op)?;
            let new_raw = path_arg(np)?;
            let (new_last, new_trailing) = resolve::last_component(&new_raw);
            if is_dot_or_dotdot(new_last) {
                return Ok(Plan::Answer(Response::Error(EEXIST)));
            }
            let to = resolve_at(Base::from_arg(nd), &new_raw, false)?;
            let (to_parent, to_name) = parent_and_name(&to, new_trailing)?;
            let (from, from_parent, from_name, link_flags) =
                if old_raw.is_empty() && flags & AT_EMPTY_PATH != 0 {
                    let fd = od as i32;
                    let target = task::bytes_to_path(task::fd_target(n.tid, fd)?);
                    let magic = format!("/proc/{}/fd/{fd}", n.tid);
                    (target, None, cstring(magic.as_bytes())?, AT_SYMLINK_FOLLOW)
                } else {
                    let follow = flags & AT_SYMLINK_FOLLOW != 0;
                    let from = resolve_at(Base::from_arg(od), &old_raw, follow)?;
                    let (p, name) = parent_and_name(&from, false)?;
                    (from, Some(p), name, 0)
                };
            let mut actions = vec![Action::Link {
                from: from.clone(),
                to,
            }];
            if let Some(secret) = self.secrets.alias_of(&from) {
                actions.push(Action::Open {
                    path: secret.clone(),
                    flags: OpenFlags::READ,
                });
            }
            return Ok(Plan::Emulate(
                actions,
                Emulation::Link {
                    from_parent,
                    from_name,
                    to_parent,
                    to_name,
                    flags: link_flags,
                },
            ));
        }

        match n.nr {
            SYS_execve | SYS_execveat => {
                let (dirfd, path_addr, argv_addr, flags) = if n.nr == SYS_execve {
                    (cwd, a[0], a[1], 0)
                } else {
                    (a[0], a[1], a[2], a[4] as i32)
                };
                let raw = path_arg(path_addr)?;
                // A shell or execvp tries each PATH directory in turn (two in three execs of a
                // build): what does not exist cannot start, and the kernel says so itself. This
                // adds no race beyond the documented exec race (the program can be swapped after
                // we judge it either way), and saves reading argv, the facts and the record.
                // An absolute path outside /proc (whose `self` means the task) names the same
                // file for the task as for us: one stat answers before any resolving.
                let absolute = raw.first() == Some(&b'/') && !raw.starts_with(b"/proc");
                if absolute && missing(&raw) {
                    return Ok(Plan::Answer(Response::Continue));
                }
                let path = if raw.is_empty() && flags & AT_EMPTY_PATH != 0 {
                    task::bytes_to_path(task::fd_target(n.tid, dirfd as i32)?)
                } else {
                    resolve_at(
                        Base::from_arg(dirfd),
                        &raw,
                        flags & AT_SYMLINK_NOFOLLOW == 0,
                    )?
                };
                if !absolute && missing(path.as_os_str().as_bytes()) {
                    return Ok(Plan::Answer(Response::Continue));
                }
                let argv = task::read_argv(n.tid, argv_addr)?;
                Ok(Plan::Check(vec![Action::Exec { path, argv }]))
            }
            SYS_truncate => {
                let raw = path_arg(a[0])?;
                let path = resolve_at(Base::Cwd, &raw, true)?;
                let action = Action::Truncate { path: path.clone() };
                if path.starts_with("/proc") {
                    // A magic link cannot be reopened without following symlinks.
                    return Ok(Plan::Check(vec![action]));
                }
                Ok(Plan::Emulate(
                    vec![action],
                    Emulation::Truncate {
                        path,
                        length: a[1] as i64,
                    },
                ))
            }
            SYS_symlinkat => {
                let (target_addr, dirfd, link_addr) = (a[0], a[1], a[2]);
                self.plan_symlink(n, asker, target_addr, Base::from_arg(dirfd), link_addr)
            }
            #[cfg(target_arch = "x86_64")]
            SYS_symlink => self.plan_symlink(n, asker, a[0], Base::Cwd, a[1]),
            SYS_kill => {
                let (pid, sig) = (a[0] as i32, a[1] as i32);
                let stops_or_kills = sig == SIGKILL || sig == SIGSTOP;
                // SAFETY: getpgid has no memory preconditions.
                let caller_pgid = unsafe { libc::getpgid(n.tid) };
                let guard = sig != 0
                    && match pid {
                        p if p > 0 => self.is_guard(p),
                        0 => stops_or_kills && caller_pgid == self.guard_pgid,
                        -1 => true,
                        p => stops_or_kills && p.checked_neg() == Some(self.guard_pgid),
                    };
                Ok(self.signal_plan(guard, pid))
            }
            SYS_tkill => {
                let guard = a[1] as i32 != 0 && self.is_guard(a[0] as i32);
                Ok(self.signal_plan(guard, a[0] as i32))
            }
            SYS_tgkill => {
                let (tgid, tid) = (a[0] as i32, a[1] as i32);
                let guard =
                    a[2] as i32 != 0 && (self.guard_pids.contains(&tgid) || self.is_guard(tid));
                Ok(self.signal_plan(guard, tgid))
            }
            SYS_ptrace => {
                let guard = a[0] as u32 != PTRACE_TRACEME && self.is_guard(a[1] as i32);
                Ok(self.signal_plan(guard, a[1] as i32))
            }
            SYS_process_vm_writev | SYS_pidfd_open => {
                let guard = self.is_guard(a[0] as i32);
                Ok(self.signal_plan(guard, a[0] as i32))
            }
            SYS_pidfd_getfd => {
                let target = task::pidfd_target(n.tid, a[0] as i32);
                let guard = target.is_some_and(|p| self.is_guard(p));
                Ok(self.signal_plan(guard, target.unwrap_or(0)))
            }
            SYS_pidfd_send_signal => self.plan_pidfd_signal(n),
            SYS_umask => {
                self.umasks.forget_all();
                Ok(Plan::Answer(Response::Continue))
            }
            _ => Ok(Plan::Answer(Response::Continue)),
        }
    }

    /// symlink(target, link): the new link is what is created; its target text is stored as read.
    fn plan_symlink(
        &self,
        n: &Notification,
        asker: Asker,
        target_addr: u64,
        base: Base,
        link_addr: u64,
    ) -> io::Result<Plan> {
        let target = task::read_path(n.tid, target_addr)?;
        let raw = task::read_path(n.tid, link_addr)?;
        let (_, trailing) = resolve::last_component(&raw);
        let path = resolve::resolve(asker, base, &raw, false, false)?;
        let (parent, name) = parent_and_name(&path, trailing)?;
        Ok(Plan::Emulate(
            vec![Action::Create { path }],
            Emulation::Symlink {
                target: cstring(&target)?,
                parent,
                name,
            },
        ))
    }

    fn signal_plan(&self, guard: bool, target: i32) -> Plan {
        if guard {
            Plan::Guard(target)
        } else {
            Plan::Answer(Response::Continue)
        }
    }

    /// pidfd_send_signal is emulated: the fd number is checked and used in one step on our own
    /// copy of the file, so a second thread cannot dup2 a supervisor pidfd into that slot between
    /// the check and the kernel's use.
    fn plan_pidfd_signal(&self, n: &Notification) -> io::Result<Plan> {
        let a = n.args;
        let tgid = task::tgid_of(n.tid).unwrap_or(n.tid);
        // SAFETY: plain syscalls on integers.
        let task_pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, tgid, 0) };
        if task_pidfd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: new fd owned here.
        let task_pidfd = unsafe { OwnedFd::from_raw_fd(task_pidfd as i32) };
        // SAFETY: plain syscall on integers.
        let copy = unsafe {
            libc::syscall(
                libc::SYS_pidfd_getfd,
                task_pidfd.as_raw_fd(),
                a[0] as i32,
                0,
            )
        };
        if copy < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: new fd owned here.
        let fd = unsafe { OwnedFd::from_raw_fd(copy as i32) };
        // SAFETY: getpid has no preconditions.
        let me = unsafe { libc::getpid() };
        let target = task::pidfd_target(me, fd.as_raw_fd());
        if a[1] as i32 != 0 && target.is_some_and(|p| self.is_guard(p)) {
            return Ok(Plan::Guard(target.unwrap_or(0)));
        }
        let info = if a[2] != 0 {
            Some(task::read_bytes::<128>(n.tid, a[2])?)
        } else {
            None
        };
        Ok(Plan::Emulate(
            Vec::new(),
            Emulation::PidfdSignal {
                fd,
                sig: a[1] as i32,
                info,
                flags: a[3] as u32,
            },
        ))
    }

    /// A path into the supervisor's own /proc entry (its memory, its fds).
    fn touches_guard_proc(&self, path: &Path) -> bool {
        let mut comps = path.components().skip(1);
        if comps.next().map(|c| c.as_os_str()) != Some("proc".as_ref()) {
            return false;
        }
        let Some(pid) = comps
            .next()
            .and_then(|c| c.as_os_str().to_str())
            .and_then(|s| s.parse::<i32>().ok())
        else {
            return false;
        };
        self.is_guard(pid)
    }
}

/// A read-only open of what `ps`, `top` or a parent walk read of any process (`stat`, `status`,
/// `cmdline`, `comm`, ...): harmless for the supervisor, and refusing it would break those
/// tools and log a denial for each look. Its memory, file descriptors (the listener is one),
/// mappings and anything under `task/` stay refused.
fn is_public_proc_read(path: &Path, flags: &OpenFlags) -> bool {
    // `environ` holds the user's environment, which the agent inherited anyway; `ps` reads it.
    const PUBLIC: &[&str] = &[
        "stat",
        "status",
        "cmdline",
        "comm",
        "statm",
        "wchan",
        "cgroup",
        "loginuid",
        "sessionid",
        "oom_score",
        "environ",
        "ctty",
        "limits",
        "io",
    ];
    if flags.modifies() {
        return false;
    }
    let mut comps = path.components().skip(3);
    match (comps.next(), comps.next()) {
        (Some(entry), None) => entry
            .as_os_str()
            .to_str()
            .is_some_and(|e| PUBLIC.contains(&e)),
        // The directory itself (listing it, or opening it to read entries relative to it).
        (None, _) => true,
        _ => false,
    }
}

fn actor(tid: i32) -> Actor {
    Actor {
        pid: tid,
        ..Actor::default()
    }
}

/// Whether the task's effective ids are `(uid, gid)`. The owner of /proc/TID is the task's
/// effective uid and gid while it is dumpable, and one stat is cheaper than parsing
/// /proc/TID/status on every call.
fn has_ids(tid: i32, (uid, gid): (u32, u32)) -> bool {
    std::fs::metadata(format!("/proc/{tid}"))
        .is_ok_and(|meta| meta.uid() == uid && meta.gid() == gid)
}

/// Open `path` as the task asked, refusing any symlink on the way (there is none in a resolved
/// path unless one was swapped in after the check). /proc paths keep their magic links, which
/// the supervisor follows to the task's own objects.
fn open_for_task(path: &Path, flags: i32, mode: u32) -> io::Result<OwnedFd> {
    let c = cstring(path.as_os_str().as_bytes())?;
    // O_NOCTTY: the supervisor is a session leader without a terminal; opening one must not
    // make it ours.
    let ours = (flags & PASSED_OPEN_FLAGS & !libc::O_PATH) | libc::O_CLOEXEC | libc::O_NOCTTY;
    let creates = flags & libc::O_CREAT != 0 || flags & libc::O_TMPFILE == libc::O_TMPFILE;
    let mode = if creates { u64::from(mode & 0o7777) } else { 0 };
    let resolve = if path.starts_with("/proc") {
        0
    } else {
        RESOLVE_NO_SYMLINKS
    };
    let how: [u64; 3] = [ours as u64, mode, resolve];
    // SAFETY: c and how are valid for the call.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            libc::AT_FDCWD,
            c.as_ptr(),
            how.as_ptr(),
            std::mem::size_of_val(&how),
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a new fd owned here.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// Install `fd` in the task and answer with its number there, in one step
/// (`SECCOMP_ADDFD_FLAG_SEND`). The task runs on before our copy is closed; for a writable file
/// that copy would make an exec of the file fail with ETXTBSY (`cp /bin/rm ./x && ./x`), so it
/// is installed and closed under `installing_writable`, which an exec waits for. (Installing
/// first and answering after the close costs two more task switches per write-open.)
fn install_fd(
    listener: &Listener,
    id: u64,
    fd: OwnedFd,
    open_flags: i32,
    installing_writable: &std::sync::RwLock<()>,
) -> Option<Response> {
    let cloexec = open_flags & libc::O_CLOEXEC != 0;
    let writable = open_flags & libc::O_ACCMODE != libc::O_RDONLY;
    let guard = writable.then(|| installing_writable.read());
    let installed = listener.add_fd(id, fd.as_raw_fd(), cloexec, true);
    drop(fd);
    drop(guard);
    match installed {
        Ok(_) => None,
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => None,
        Err(e) => Some(Response::Error(errno_of(&e))),
    }
}

thread_local! {
    /// Whether this thread has its own fs attributes (umask), set by `launch::serve`.
    pub static PRIVATE_FS: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// umask(2) for this thread only: workers unshare their fs attributes at start (see `launch`),
/// so the task's umask can be applied to what they create for it.
fn with_task_umask<T>(umasks: &UmaskCache, tid: Option<i32>, f: impl FnOnce() -> T) -> T {
    if !PRIVATE_FS.with(|p| p.get()) {
        // Changing the umask would change it for every thread of the process.
        return f();
    }
    let Some(tid) = tid else {
        return f();
    };
    let mask = umasks.get(tid);
    // SAFETY: umask has no memory preconditions; it affects this thread's fs_struct only.
    let old = unsafe { libc::umask(mask) };
    let out = f();
    // SAFETY: as above.
    unsafe { libc::umask(old) };
    out
}

fn emulate(
    emulation: Emulation,
    listener: &Listener,
    id: u64,
    umasks: &UmaskCache,
    installing_writable: &Arc<std::sync::RwLock<()>>,
) -> Option<Response> {
    match emulation {
        Emulation::Open {
            path,
            flags,
            mode,
            umask_of,
        } => {
            let is_fifo = std::fs::metadata(&path)
                .map(|m| std::os::unix::fs::FileTypeExt::is_fifo(&m.file_type()))
                .unwrap_or(false);
            if is_fifo && flags & libc::O_NONBLOCK == 0 && flags & libc::O_PATH == 0 {
                // Opening a FIFO waits for the other end, which may be another supervised
                // process: wait on a thread of its own so the workers keep serving.
                let listener = listener.try_clone().ok()?;
                let installing_writable = Arc::clone(installing_writable);
                let spawned = std::thread::Builder::new()
                    .stack_size(64 * 1024)
                    .spawn(move || {
                        let response = match open_for_task(&path, flags, mode) {
                            Ok(fd) => install_fd(&listener, id, fd, flags, &installing_writable),
                            Err(e) => Some(Response::Error(errno_of(&e))),
                        };
                        if let Some(r) = response {
                            let _ = listener.send(id, r);
                        }
                    });
                return match spawned {
                    Ok(_) => None,
                    Err(_) => Some(Response::Error(libc::EAGAIN)),
                };
            }
            let may_exist = flags & libc::O_CREAT != 0
                && flags & libc::O_EXCL == 0
                && flags & libc::O_TMPFILE != libc::O_TMPFILE;
            if may_exist {
                // Most creating opens (`> file`) find the file there: no umask is needed then,
                // and reading it (/proc/TID/status) is the costliest step of a supervised open.
                match open_for_task(&path, flags & !libc::O_CREAT, 0) {
                    Ok(fd) => return install_fd(listener, id, fd, flags, installing_writable),
                    Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
                    Err(e) => return Some(Response::Error(errno_of(&e))),
                }
            }
            match with_task_umask(umasks, umask_of, || open_for_task(&path, flags, mode)) {
                Ok(fd) => install_fd(listener, id, fd, flags, installing_writable),
                Err(e) => Some(Response::Error(errno_of(&e))),
            }
        }
        other => Some(emulate_path_op(other, umasks)),
    }
}

fn emulate_path_op(emulation: Emulation, umasks: &UmaskCache) -> Response {
    match emulation {
        Emulation::Open { .. } => Response::Error(libc::EINVAL),
        Emulation::Mkdir {
            parent,
            name,
            mode,
            tid,
        } => match open_dir_nofollow(&parent) {
            Ok(dir) => with_task_umask(umasks, Some(tid), || {
                // SAFETY: valid fd and C string.
                syscall_result(unsafe {
                    libc::mkdirat(dir.as_raw_fd(), name.as_ptr(), mode & 0o7777) as libc::c_long
                })
            }),
            Err(e) => Response::Error(errno_of(&e)),
        },
        Emulation::Mknod {
            parent,
            name,
            mode,
            dev,
            tid,
        } => match open_dir_nofollow(&parent) {
            Ok(dir) => with_task_umask(umasks, Some(tid), || {
                // SAFETY: valid fd and C string.
                syscall_result(unsafe {
                    libc::mknodat(dir.as_raw_fd(), name.as_ptr(), mode, dev) as libc::c_long
                })
            }),
            Err(e) => Response::Error(errno_of(&e)),
        },
        Emulation::Symlink {
            target,
            parent,
            name,
        } => match open_dir_nofollow(&parent) {
            // SAFETY: valid fd and C strings.
            Ok(dir) => syscall_result(unsafe {
                libc::symlinkat(target.as_ptr(), dir.as_raw_fd(), name.as_ptr()) as libc::c_long
            }),
            Err(e) => Response::Error(errno_of(&e)),
        },
        Emulation::Unlink {
            parent,
            name,
            flags,
        } => match open_dir_nofollow(&parent) {
            // SAFETY: valid fd and C string.
            Ok(dir) => syscall_result(unsafe {
                libc::unlinkat(dir.as_raw_fd(), name.as_ptr(), flags) as libc::c_long
            }),
            Err(e) => Response::Error(errno_of(&e)),
        },
        Emulation::Rename {
            from_parent,
            from_name,
            to_parent,
            to_name,
            flags,
        } => {
            let dirs = open_dir_nofollow(&from_parent).and_then(|f| {
                let t = open_dir_nofollow(&to_parent)?;
                Ok((f, t))
            });
            match dirs {
                // SAFETY: valid fds and C strings.
                Ok((f, t)) => syscall_result(unsafe {
                    libc::syscall(
                        libc::SYS_renameat2,
                        f.as_raw_fd(),
                        from_name.as_ptr(),
                        t.as_raw_fd(),
                        to_name.as_ptr(),
                        flags,
                    )
                }),
                Err(e) => Response::Error(errno_of(&e)),
            }
        }
        Emulation::Link {
            from_parent,
            from_name,
            to_parent,
            to_name,
            flags,
        } => {
            let from_dir = match from_parent {
                Some(p) => open_dir_nofollow(&p).map(Some),
                None => Ok(None),
            };
            match (from_dir, open_dir_nofollow(&to_parent)) {
                (Ok(f), Ok(t)) => {
                    let from_fd = f.as_ref().map_or(libc::AT_FDCWD, |f| f.as_raw_fd());
                    // SAFETY: valid fds and C strings.
                    syscall_result(unsafe {
                        libc::linkat(
                            from_fd,
                            from_name.as_ptr(),
                            t.as_raw_fd(),
                            to_name.as_ptr(),
                            flags,
                        ) as libc::c_long
                    })
                }
                (Err(e), _) | (_, Err(e)) => Response::Error(errno_of(&e)),
            }
        }
        Emulation::Truncate { path, length } => {
            let (parent, name) = match parent_and_name(&path, false) {
                Ok(x) => x,
                Err(e) => return Response::Error(errno_of(&e)),
            };
            let dir = match open_dir_nofollow(&parent) {
                Ok(d) => d,
                Err(e) => return Response::Error(errno_of(&e)),
            };
            // SAFETY: valid fd and C string. O_NOFOLLOW: the final symlink was already resolved;
            // a symlink there now is a swap after the check.
            let fd = unsafe {
                libc::openat(
                    dir.as_raw_fd(),
                    name.as_ptr(),
                    libc::O_WRONLY
                        | libc::O_CLOEXEC
                        | libc::O_NOFOLLOW
                        | libc::O_NONBLOCK
                        | libc::O_NOCTTY,
                )
            };
            if fd < 0 {
                return syscall_result(-1);
            }
            // SAFETY: new fd owned here.
            let file = unsafe { OwnedFd::from_raw_fd(fd) };
            // SAFETY: valid fd.
            syscall_result(unsafe { libc::ftruncate(file.as_raw_fd(), length) as libc::c_long })
        }
        Emulation::PidfdSignal {
            fd,
            sig,
            info,
            flags,
        } => {
            let info_ptr = info
                .as_ref()
                .map_or(std::ptr::null(), |b| b.as_ptr().cast::<libc::c_void>());
            // SAFETY: valid fd; info_ptr is null or points at 128 readable bytes.
            syscall_result(unsafe {
                libc::syscall(
                    libc::SYS_pidfd_send_signal,
                    fd.as_raw_fd(),
                    sig,
                    info_ptr,
                    flags,
                )
            })
        }
    }
}
