//! Reading a supervised task: strings from its memory, its cwd and fds, its thread group.
//!
//! Everything here reads; nothing writes to the task. Values read from a task's memory are
//! untrusted and may change the moment after they were read (a second thread can rewrite them),
//! which is why the supervisor acts on its own copy (see `handler`), never re-reads.

use std::ffi::OsString;
use std::io;
use std::os::unix::ffi::OsStringExt;
use std::path::PathBuf;

pub use crate::platform::linux::procfs::tgid_of;

/// Longest path the kernel accepts, NUL included.
pub const PATH_MAX: usize = libc::PATH_MAX as usize;
/// Bounds on an exec's argv as read for the judge (the kernel's own limits are larger; the judge
/// only matches the first few arguments).
const ARGV_MAX_ARGS: usize = 256;
const ARGV_MAX_ARG_LEN: usize = 4096;

const PAGE: usize = 4096;

/// Read up to `buf.len()` bytes at `addr` of task `tid`. Returns how many were read (short at an
/// unmapped page).
fn read_mem(tid: i32, addr: u64, buf: &mut [u8]) -> io::Result<usize> {
    let local = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    let remote = libc::iovec {
        iov_base: addr as *mut libc::c_void,
        iov_len: buf.len(),
    };
    // SAFETY: local points at buf for buf.len() bytes; remote is only read by the kernel.
    let n = unsafe { libc::process_vm_readv(tid, &local, 1, &remote, 1, 0) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(n as usize)
}

/// Read a NUL-terminated string of at most `max` bytes (NUL excluded) from the task. A string
/// with no NUL within `max` bytes is `ENAMETOOLONG`, as the kernel would say; a null pointer is
/// `EFAULT`.
pub fn read_cstr(tid: i32, addr: u64, max: usize) -> io::Result<Vec<u8>> {
    if addr == 0 {
        return Err(io::Error::from_raw_os_error(libc::EFAULT));
    }
    let mut out = Vec::with_capacity(128);
    let mut cursor = addr;
    // Read page by page: a string that ends just before an unmapped page is still readable.
    while out.len() <= max {
        let room = PAGE - (cursor as usize % PAGE);
        let want = room.min(max + 1 - out.len());
        let mut chunk = [0u8; PAGE];
        let n = read_mem(tid, cursor, &mut chunk[..want])?;
        if n == 0 {
            return Err(io::Error::from_raw_os_error(libc::EFAULT));
        }
        if let Some(end) = chunk[..n].iter().position(|&b| b == 0) {
            out.extend_from_slice(&chunk[..end]);
            return Ok(out);
        }
        out.extend_from_slice(&chunk[..n]);
        cursor += n as u64;
    }
    Err(io::Error::from_raw_os_error(libc::ENAMETOOLONG))
}

/// Read a path argument (bounded by PATH_MAX).
pub fn read_path(tid: i32, addr: u64) -> io::Result<Vec<u8>> {
    read_cstr(tid, addr, PATH_MAX - 1)
}

/// Read a NULL-terminated array of string pointers (argv), bounded.
pub fn read_argv(tid: i32, addr: u64) -> io::Result<Vec<String>> {
    let mut argv = Vec::new();
    if addr == 0 {
        return Ok(argv);
    }
    for i in 0..ARGV_MAX_ARGS {
        let mut ptr = [0u8; 8];
        if read_mem(tid, addr + 8 * i as u64, &mut ptr)? != 8 {
            return Err(io::Error::from_raw_os_error(libc::EFAULT));
        }
        let p = u64::from_ne_bytes(ptr);
        if p == 0 {
            break;
        }
        let arg = read_cstr(tid, p, ARGV_MAX_ARG_LEN).or_else(|e| {
            // A longer argument is cut, not refused: the judge matches prefixes of argv.
            if e.raw_os_error() == Some(libc::ENAMETOOLONG) {
                Ok(Vec::new())
            } else {
                Err(e)
            }
        })?;
        argv.push(String::from_utf8_lossy(&arg).into_owned());
    }
    Ok(argv)
}

/// Read a plain struct of `N` bytes (e.g. `open_how`).
pub fn read_bytes<const N: usize>(tid: i32, addr: u64) -> io::Result<[u8; N]> {
    let mut buf = [0u8; N];
    if addr == 0 || read_mem(tid, addr, &mut buf)? != N {
        return Err(io::Error::from_raw_os_error(libc::EFAULT));
    }
    Ok(buf)
}

/// The target of a /proc symlink (cwd, fd/N, exe), as bytes.
pub fn proc_link(path: &str) -> io::Result<Vec<u8>> {
    std::fs::read_link(path).map(|p| p.into_os_string().into_vec())
}

/// The task's current directory. Threads may have their own (CLONE_FS unshared), so this reads
/// the thread's entry, not the process's.
pub fn cwd(tid: i32) -> io::Result<Vec<u8>> {
    proc_link(&format!("/proc/{tid}/cwd"))
}

/// What the task's fd `fd` points at (a path for files and directories).
pub fn fd_target(tid: i32, fd: i32) -> io::Result<Vec<u8>> {
    proc_link(&format!("/proc/{tid}/fd/{fd}")).map_err(|e| {
        if e.raw_os_error() == Some(libc::ENOENT) {
            io::Error::from_raw_os_error(libc::EBADF)
        } else {
            e
        }
    })
}

/// The pid a pidfd of the task refers to (from /proc/TID/fdinfo/FD, `Pid:`), or for a
/// /proc/PID directory fd, that PID. None when the fd is neither.
pub fn pidfd_target(tid: i32, fd: i32) -> Option<i32> {
    if let Ok(text) = std::fs::read_to_string(format!("/proc/{tid}/fdinfo/{fd}")) {
        if let Some(pid) = text.lines().find_map(|l| l.strip_prefix("Pid:")) {
            return pid.trim().parse().ok();
        }
    }
    let target = fd_target(tid, fd).ok()?;
    let rest = target.strip_prefix(b"/proc/")?;
    std::str::from_utf8(rest).ok()?.parse().ok()
}

/// The task's umask (/proc/TID/status, `Umask:` in octal).
pub fn umask(tid: i32) -> Option<libc::mode_t> {
    let text = std::fs::read_to_string(format!("/proc/{tid}/status")).ok()?;
    let value = text.lines().find_map(|l| l.strip_prefix("Umask:"))?;
    libc::mode_t::from_str_radix(value.trim(), 8).ok()
}

/// The device node of the task's controlling terminal, from `tty_nr` in /proc/TID/stat.
pub fn controlling_tty(tid: i32) -> Option<PathBuf> {
    let stat = std::fs::read_to_string(format!("/proc/{tid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    // state ppid pgrp session tty_nr
    let tty_nr: u32 = rest.split_whitespace().nth(4)?.parse().ok()?;
    if tty_nr == 0 {
        return None;
    }
    let major = (tty_nr >> 8) & 0xfff;
    let minor = (tty_nr & 0xff) | ((tty_nr >> 12) & 0xfff00);
    match major {
        136..=143 => Some(PathBuf::from(format!(
            "/dev/pts/{}",
            (major - 136) * 256 + minor
        ))),
        4 if minor < 64 => Some(PathBuf::from(format!("/dev/tty{minor}"))),
        4 => Some(PathBuf::from(format!("/dev/ttyS{}", minor - 64))),
        _ => None,
    }
}

/// Bytes to an owned path.
pub fn bytes_to_path(bytes: Vec<u8>) -> PathBuf {
    PathBuf::from(OsString::from_vec(bytes))
}
