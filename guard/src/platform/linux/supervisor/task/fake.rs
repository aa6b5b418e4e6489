//! A test double of [`TaskReader`]: tasks whose memory, cwd, fds, ids and terminal are what the
//! test put there, so that decoding and planning are tested without seccomp or a second process
//! (youki's `TestHelperSyscall` is the model). The file system stays the real one: tests make
//! their files in a temporary directory.
//!
//! Test-only; it must never be built into the supervisor.

use std::collections::HashMap;
use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use super::TaskReader;
use crate::platform::linux::supervisor::call::UserPtr;

fn err(errno: i32) -> io::Error {
    io::Error::from_raw_os_error(errno)
}

/// Tasks as a test describes them. Memory is shared by all tids (a test has one task at a time).
#[derive(Default)]
pub struct FakeTasks {
    memory: HashMap<u64, Vec<u8>>,
    argvs: HashMap<u64, Vec<String>>,
    next_addr: u64,
    cwds: HashMap<i32, PathBuf>,
    fds: HashMap<(i32, i32), Vec<u8>>,
    tgids: HashMap<i32, i32>,
    pgids: HashMap<i32, i32>,
    pidfds: HashMap<(i32, i32), i32>,
    ttys: HashMap<i32, PathBuf>,
    umasks: HashMap<i32, libc::mode_t>,
    outside: std::collections::HashSet<i32>,
}

impl FakeTasks {
    pub fn new() -> FakeTasks {
        FakeTasks {
            next_addr: 0x1000,
            ..FakeTasks::default()
        }
    }

    /// Put `bytes` in the task's memory; their address.
    pub fn put(&mut self, bytes: &[u8]) -> UserPtr {
        let addr = self.next_addr;
        self.next_addr += 0x1000;
        self.memory.insert(addr, bytes.to_vec());
        UserPtr(addr)
    }

    /// Put a C string (a NUL is added).
    pub fn put_str(&mut self, text: impl AsRef<[u8]>) -> UserPtr {
        let mut bytes = text.as_ref().to_vec();
        bytes.push(0);
        self.put(&bytes)
    }

    /// Put an argv array.
    pub fn put_argv(&mut self, argv: &[&str]) -> UserPtr {
        let addr = self.put(&[]);
        self.argvs
            .insert(addr.0, argv.iter().map(|a| a.to_string()).collect());
        addr
    }

    pub fn cwd_of(&mut self, tid: i32, dir: &Path) -> &mut FakeTasks {
        self.cwds.insert(tid, dir.to_path_buf());
        self
    }

    pub fn fd_of(&mut self, tid: i32, fd: i32, target: impl AsRef<[u8]>) -> &mut FakeTasks {
        self.fds.insert((tid, fd), target.as_ref().to_vec());
        self
    }

    /// `tid` is a thread of process `tgid`.
    pub fn thread_of(&mut self, tid: i32, tgid: i32) -> &mut FakeTasks {
        self.tgids.insert(tid, tgid);
        self
    }

    pub fn pgid_of(&mut self, pid: i32, pgid: i32) -> &mut FakeTasks {
        self.pgids.insert(pid, pgid);
        self
    }

    /// The task's fd `fd` is a pidfd of `target`.
    pub fn pidfd_of(&mut self, tid: i32, fd: i32, target: i32) -> &mut FakeTasks {
        self.pidfds.insert((tid, fd), target);
        self
    }

    pub fn tty_of(&mut self, tid: i32, tty: &str) -> &mut FakeTasks {
        self.ttys.insert(tid, PathBuf::from(tty));
        self
    }

    pub fn umask_of(&mut self, tid: i32, mask: libc::mode_t) -> &mut FakeTasks {
        self.umasks.insert(tid, mask);
        self
    }

    /// `pid` is not in the agent's tree (every other pid is).
    pub fn outside_tree(&mut self, pid: i32) -> &mut FakeTasks {
        self.outside.insert(pid);
        self
    }

    fn bytes(&self, addr: UserPtr) -> io::Result<&[u8]> {
        self.memory
            .get(&addr.0)
            .map(Vec::as_slice)
            .ok_or_else(|| err(libc::EFAULT))
    }
}

impl TaskReader for FakeTasks {
    fn read_path(&self, _tid: i32, addr: UserPtr) -> io::Result<Vec<u8>> {
        let bytes = self.bytes(addr)?;
        let end = bytes
            .iter()
            .position(|&b| b == 0)
            .ok_or_else(|| err(libc::EFAULT))?;
        if end >= libc::PATH_MAX as usize {
            return Err(err(libc::ENAMETOOLONG));
        }
        Ok(bytes[..end].to_vec())
    }

    fn read_exact(&self, _tid: i32, addr: UserPtr, buf: &mut [u8]) -> io::Result<()> {
        let bytes = self.bytes(addr)?;
        let want = bytes.get(..buf.len()).ok_or_else(|| err(libc::EFAULT))?;
        buf.copy_from_slice(want);
        Ok(())
    }

    fn read_argv(&self, _tid: i32, addr: UserPtr) -> io::Result<Vec<String>> {
        if addr.is_null() {
            return Ok(Vec::new());
        }
        self.argvs
            .get(&addr.0)
            .cloned()
            .ok_or_else(|| err(libc::EFAULT))
    }

    /// Environment arrays are stored as argvs are.
    fn read_env(
        &self,
        tid: i32,
        addr: UserPtr,
        wanted: &dyn Fn(&[u8]) -> bool,
    ) -> io::Result<Vec<String>> {
        let all = self.read_argv(tid, addr)?;
        Ok(all.into_iter().filter(|e| wanted(e.as_bytes())).collect())
    }

    fn cwd(&self, tid: i32) -> io::Result<Vec<u8>> {
        self.cwds
            .get(&tid)
            .map(|p| p.as_os_str().as_encoded_bytes().to_vec())
            .ok_or_else(|| err(libc::ENOENT))
    }

    fn fd_target(&self, tid: i32, fd: i32) -> io::Result<Vec<u8>> {
        self.fds
            .get(&(tid, fd))
            .cloned()
            .ok_or_else(|| err(libc::EBADF))
    }

    fn tgid(&self, tid: i32) -> Option<i32> {
        self.tgids.get(&tid).copied()
    }

    fn pgid(&self, pid: i32) -> i32 {
        self.pgids.get(&pid).copied().unwrap_or(-1)
    }

    fn copy_fd(&self, tid: i32, fd: i32) -> io::Result<(OwnedFd, Option<i32>)> {
        if !self.pidfds.contains_key(&(tid, fd)) && !self.fds.contains_key(&(tid, fd)) {
            return Err(err(libc::EBADF));
        }
        // A file fd is the file it names, when that exists; otherwise any open file stands for
        // the copy (for a pidfd, what matters is the pid it is said to refer to).
        let named = self.fds.get(&(tid, fd)).and_then(|target| {
            std::fs::File::open(
                <std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(target),
            )
            .ok()
        });
        let copy = match named {
            Some(file) => file,
            None => std::fs::File::open("/dev/null")?,
        };
        Ok((copy.into(), self.pidfds.get(&(tid, fd)).copied()))
    }

    fn fd_flags(&self, _tid: i32, _fd: i32) -> io::Result<i32> {
        Ok(0)
    }

    fn umask(&self, tid: i32) -> Option<libc::mode_t> {
        self.umasks.get(&tid).copied()
    }

    fn controlling_tty(&self, tid: i32) -> Option<PathBuf> {
        self.ttys.get(&tid).cloned()
    }

    /// Credentials are the handler's check, not planning's: a fake task has none.
    fn credentials(&self, _tid: i32) -> Option<crate::platform::linux::sys::creds::Credentials> {
        None
    }

    fn in_tree(&self, pid: i32) -> bool {
        !self.outside.contains(&pid)
    }
}
