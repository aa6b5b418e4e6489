//! What the supervisor reads of a supervised task from outside: strings and structs from its
//! memory, its cwd and fds, its thread group and process group, its umask, terminal and
//! credentials. All of it goes through [`TaskReader`], so that planning is tested against
//! `fake::FakeTasks` without seccomp or a second process; [`LiveTasks`] is the real one
//! (process_vm_readv and /proc).
//!
//! Everything here reads; nothing may write to a task. Values read from a task's memory are
//! untrusted and may change the moment after they were read (a second thread can rewrite them),
//! which is why the supervisor acts on its own copy (see `emulate`) and never reads twice.

#[cfg(test)]
pub mod fake;
mod memory;
mod proc;

use std::ffi::OsString;
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStringExt;
use std::path::PathBuf;

use super::call::UserPtr;
use super::tree;
use crate::platform::linux::sys;

/// Reads of supervised tasks (youki's `Syscall` trait is the model: one seam, a real
/// implementation and a test double). `tid` is the notifying thread's id.
pub trait TaskReader: Send + Sync {
    /// A path argument: a NUL-terminated string of at most `PATH_MAX` bytes with the NUL.
    /// `EFAULT` for a null or unmapped pointer, `ENAMETOOLONG` for a longer string.
    fn read_path(&self, tid: i32, addr: UserPtr) -> io::Result<Vec<u8>>;

    /// Exactly `buf.len()` bytes at `addr` (`EFAULT` when fewer can be read, or for null).
    fn read_exact(&self, tid: i32, addr: UserPtr, buf: &mut [u8]) -> io::Result<()>;

    /// An exec's argv (a NULL-terminated array of strings), bounded; see `memory::read_argv`.
    fn read_argv(&self, tid: i32, addr: UserPtr) -> io::Result<Vec<String>>;

    /// The entries of an exec's environment array (`NAME=VALUE`) that `wanted` keeps, read
    /// whole; `E2BIG` for an array longer than the bound (see `memory::read_env`).
    fn read_env(
        &self,
        tid: i32,
        addr: UserPtr,
        wanted: &dyn Fn(&[u8]) -> bool,
    ) -> io::Result<Vec<String>>;

    /// The thread's current directory, as the kernel names it (`/proc/TID/cwd`).
    fn cwd(&self, tid: i32) -> io::Result<Vec<u8>>;

    /// What the task's fd `fd` points at (`/proc/TID/fd/FD`): a path for files and directories,
    /// `pipe:[N]` and the like otherwise. `EBADF` when the fd is not open.
    fn fd_target(&self, tid: i32, fd: i32) -> io::Result<Vec<u8>>;

    /// The process (thread group) `tid` belongs to; `None` when no such task exists.
    fn tgid(&self, tid: i32) -> Option<i32>;

    /// The process group of process `pid` (-1 when there is none).
    fn pgid(&self, pid: i32) -> i32;

    /// Our own copy of the task's fd `fd` (pidfd_getfd), and the pid it refers to when it is a
    /// pidfd. What is checked and what is used are then one and the same file.
    fn copy_fd(&self, tid: i32, fd: i32) -> io::Result<(OwnedFd, Option<i32>)>;

    /// The task's fd flags of `fd` (`O_CLOEXEC` and the file's status flags: /proc/TID/fdinfo).
    fn fd_flags(&self, tid: i32, fd: i32) -> io::Result<i32>;

    /// The task's umask.
    fn umask(&self, tid: i32) -> Option<libc::mode_t>;

    /// The device node of the task's controlling terminal.
    fn controlling_tty(&self, tid: i32) -> Option<PathBuf>;

    /// What the kernel checks when the task acts on files: its fs ids, groups and effective
    /// capabilities. `None` when they cannot be read (the task is gone).
    fn credentials(&self, tid: i32) -> Option<sys::creds::Credentials>;

    /// Whether process or thread `pid` is in the agent's tree: it descends from the supervisor
    /// (see `tree`). What cannot be followed up to the supervisor is outside.
    fn in_tree(&self, pid: i32) -> bool;
}

/// The running system's tasks.
#[derive(Clone, Copy, Debug, Default)]
pub struct LiveTasks;

impl TaskReader for LiveTasks {
    fn read_path(&self, tid: i32, addr: UserPtr) -> io::Result<Vec<u8>> {
        memory::read_path(tid, addr.0)
    }

    fn read_exact(&self, tid: i32, addr: UserPtr, buf: &mut [u8]) -> io::Result<()> {
        memory::read_exact(tid, addr.0, buf)
    }

    fn read_argv(&self, tid: i32, addr: UserPtr) -> io::Result<Vec<String>> {
        memory::read_argv(tid, addr.0)
    }

    fn read_env(
        &self,
        tid: i32,
        addr: UserPtr,
        wanted: &dyn Fn(&[u8]) -> bool,
    ) -> io::Result<Vec<String>> {
        memory::read_env(tid, addr.0, wanted)
    }

    fn cwd(&self, tid: i32) -> io::Result<Vec<u8>> {
        proc::cwd(tid)
    }

    fn fd_target(&self, tid: i32, fd: i32) -> io::Result<Vec<u8>> {
        proc::fd_target(tid, fd)
    }

    fn tgid(&self, tid: i32) -> Option<i32> {
        crate::platform::linux::procfs::tgid_of(tid)
    }

    fn pgid(&self, pid: i32) -> i32 {
        sys::process::pgid(pid)
    }

    fn copy_fd(&self, tid: i32, fd: i32) -> io::Result<(OwnedFd, Option<i32>)> {
        let tgid = self.tgid(tid).unwrap_or(tid);
        let task = sys::pidfd::open(tgid)?;
        let copy = sys::pidfd::get_fd(task.as_fd(), fd)?;
        let target = proc::pidfd_target(sys::process::pid(), copy.as_raw_fd());
        Ok((copy, target))
    }

    fn fd_flags(&self, tid: i32, fd: i32) -> io::Result<i32> {
        proc::fd_flags(tid, fd)
    }

    fn umask(&self, tid: i32) -> Option<libc::mode_t> {
        proc::umask(tid)
    }

    fn controlling_tty(&self, tid: i32) -> Option<PathBuf> {
        proc::controlling_tty(tid)
    }

    fn credentials(&self, tid: i32) -> Option<sys::creds::Credentials> {
        proc::credentials(tid)
    }

    fn in_tree(&self, pid: i32) -> bool {
        tree::membership_of(pid) == tree::Membership::Inside
    }
}

/// Bytes to an owned path.
pub fn bytes_to_path(bytes: Vec<u8>) -> PathBuf {
    PathBuf::from(OsString::from_vec(bytes))
}
