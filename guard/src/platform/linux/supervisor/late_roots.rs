//! Secret zone roots that do not exist when `run` starts (the default policy names ten; few
//! machines have them all). The agent cannot create one (creating is a supervised call that the
//! judge denies), but the human can, while the agent runs: `gh auth login` in another terminal
//! makes `~/.config/gh`. A helper process, made in the agent's namespaces before the filter is
//! installed and never part of the agent's tree, watches the nearest existing ancestor of each
//! missing root with inotify and covers the root with a FUSE mount the moment it appears,
//! passing the FUSE fd to the supervisor, which serves it like the others.
//!
//! What is left open, and why: the few hundred microseconds between the root's creation and our
//! mount. An agent that opens the new directory in that window keeps a handle under the mount.
//! Closing it would need the supervisor to judge every read (the fall-back this module exists
//! to avoid); the window needs the human to create credentials while the agent polls for them.
//!
//! The helper holds capabilities in the agent's user namespace (it mounts). It must never run
//! agent code, never take input from the agent, and it is outside the agent's Landlock domain
//! (no ptrace, no /proc access to it) and among the pids the filter protects from signals.

use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::judge::Judge;
use super::secret_fs::SecretFs;
use crate::platform::linux::sys::fuse;
use crate::platform::linux::sys::ipc::{self, Tag};
use crate::platform::linux::sys::process;

/// Whether the supervisor can tell when the helper is its last child (it reads
/// `/proc/self/task/*/children`, `CONFIG_PROC_CHILDREN`). Without that, the helper would keep the
/// supervisor alive for ever, and missing roots fall back to supervised reads.
pub fn supported() -> bool {
    Path::new("/proc/thread-self/children").exists()
}

/// In the CMD child, after the namespaces are made and before the filter: start the helper as a
/// grandchild whose parent exits at once, so that it is adopted by the supervisor (the subreaper)
/// and is no child of the agent. Returns once the intermediate child is reaped.
///
/// # Safety
/// Only in the forked CMD child. The helper allocates: the child was forked from the
/// single-threaded supervisor, so no lock can be held by a thread that does not exist.
pub unsafe fn spawn(pending: &[PathBuf], sock: RawFd) -> bool {
    // SAFETY: fork in the single-threaded CMD child; the intermediate child only forks the
    // helper and exits, the helper never returns.
    let middle = unsafe { libc::fork() };
    if middle < 0 {
        return false;
    }
    if middle == 0 {
        // SAFETY: as above.
        if unsafe { libc::fork() } == 0 {
            helper_main(pending, sock);
        }
        // SAFETY: leaving the intermediate child without running anything of its parent's.
        unsafe { libc::_exit(0) };
    }
    let mut status = 0;
    // SAFETY: reaping our own child into a valid int.
    unsafe { libc::waitpid(middle, &mut status, 0) };
    libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0
}

/// The helper: cover each missing root as it appears; exit when none is missing or the supervisor
/// is gone.
fn helper_main(pending: &[PathBuf], sock: RawFd) -> ! {
    // No PR_SET_PDEATHSIG: it would fire when the intermediate parent exits. The helper ends
    // instead when the supervisor's end of the socket closes (below), or is killed by it.
    // SAFETY: prctl with integers; the fds closed are copies this process does not use (the
    // caller's terminal, a pipe a shell waits on for EOF), all but the socket.
    unsafe {
        libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0);
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
        for std_fd in 0..3 {
            if null >= 0 && null != std_fd && std_fd != sock {
                libc::dup2(null, std_fd);
            }
        }
        if sock > 3 {
            libc::syscall(libc::SYS_close_range, 3u32, (sock - 1) as u32, 0u32);
        }
        libc::syscall(libc::SYS_close_range, (sock + 1) as u32, u32::MAX, 0u32);
        ipc::send(sock, Tag::HelperPid, i64::from(libc::getpid()), &[]);
    }
    let (uid, gid) = process::effective_ids();
    let mut pending: Vec<(usize, &Path)> =
        pending.iter().map(|p| p.as_path()).enumerate().collect();
    // SAFETY: a new inotify fd, owned here.
    let inotify = unsafe { libc::inotify_init1(libc::IN_CLOEXEC) };
    if inotify < 0 {
        // SAFETY: exiting the helper.
        unsafe { libc::_exit(1) };
    }
    while !pending.is_empty() {
        // Watch first, then look: a root made between the two is seen by the look.
        let mut watches = Vec::new();
        for (_, root) in &pending {
            if let Some(ancestor) = root.ancestors().skip(1).find(|a| a.exists()) {
                if let Ok(c) = CString::new(ancestor.as_os_str().as_bytes()) {
                    // SAFETY: valid C string.
                    let wd = unsafe {
                        libc::inotify_add_watch(
                            inotify,
                            c.as_ptr(),
                            libc::IN_CREATE | libc::IN_MOVED_TO,
                        )
                    };
                    watches.push(wd);
                }
            }
        }
        pending.retain(|(index, root)| match cover(root, uid, gid) {
            Some(fd) => {
                // SAFETY: fd is open (we own it).
                let sent =
                    unsafe { ipc::send(sock, Tag::Mounted, *index as i64, &[fd.as_raw_fd()]) };
                if !sent {
                    // The supervisor is gone: nothing will serve the mount; exit.
                    // SAFETY: exiting the helper.
                    unsafe { libc::_exit(0) };
                }
                false
            }
            None => true,
        });
        if pending.is_empty() {
            break;
        }
        let mut fds = [
            libc::pollfd {
                fd: inotify,
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: sock,
                events: 0,
                revents: 0,
            },
        ];
        let mut buf = [0u8; 4096];
        // SAFETY: valid buffers; blocks until something is created under a watched directory or
        // the supervisor is gone.
        unsafe {
            libc::poll(fds.as_mut_ptr(), 2, -1);
            if fds[1].revents & (libc::POLLHUP | libc::POLLERR) != 0 {
                libc::_exit(0);
            }
            if fds[0].revents & libc::POLLIN != 0 {
                libc::read(inotify, buf.as_mut_ptr().cast(), buf.len());
            }
            for wd in watches {
                libc::inotify_rm_watch(inotify, wd);
            }
        }
    }
    // SAFETY: exiting the helper.
    unsafe { libc::_exit(0) }
}

/// Mount our FUSE file system over `root` if it exists now; its fd.
fn cover(root: &Path, uid: u32, gid: u32) -> Option<OwnedFd> {
    let real = std::fs::canonicalize(root).ok()?;
    let meta = std::fs::metadata(&real).ok()?;
    let target = CString::new(real.as_os_str().as_bytes()).ok()?;
    let options = fuse::options(meta.is_dir(), uid, gid);
    fuse::mount(&target, &options)
}

/// In the supervisor: the helper's pid (its first message), read before the handler is built so
/// that the filter's signal rule protects it.
pub fn helper_pid(sock: &OwnedFd) -> Option<i32> {
    match ipc::recv(sock.as_raw_fd()) {
        Some(m) if m.tag == Tag::HelperPid => Some(m.payload as i32),
        _ => None,
    }
}

/// In the supervisor: serve each root the helper covers, for as long as it sends them.
pub fn serve(sock: OwnedFd, pending: Vec<PathBuf>, judge: Arc<dyn Judge>) {
    while let Some(m) = ipc::recv(sock.as_raw_fd()) {
        let (Tag::Mounted, Some(fd), Some(shown)) = (
            m.tag,
            m.fds.into_iter().next(),
            pending.get(m.payload as usize),
        ) else {
            continue;
        };
        let index = m.payload;
        let Ok(real) = std::fs::canonicalize(shown) else {
            // Gone again already: dropping the fd aborts the mount's connection (opens fail).
            continue;
        };
        SecretFs::new(real, shown.clone(), Arc::clone(&judge)).serve(fd, index as usize);
    }
}

/// Whether `expected` (the helper, or nothing) are the only children the supervisor has left
/// (every thread's children: an orphan is adopted by whichever thread the kernel picks). A
/// thread that ends while it is read (the workers end once nothing is supervised) has no
/// children left to count; any other failure to read counts as "others are left", which keeps
/// the helper running and lets `run` return without waiting for the session's end.
pub fn only_children_are(expected: &[i32]) -> bool {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return false;
    };
    let mut children = Vec::new();
    for task in tasks.flatten() {
        let text = match std::fs::read_to_string(task.path().join("children")) {
            Ok(text) => text,
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT) | Some(libc::ESRCH)) => {
                continue
            }
            Err(_) => return false,
        };
        children.extend(
            text.split_whitespace()
                .filter_map(|p| p.parse::<i32>().ok()),
        );
    }
    children == expected
}
