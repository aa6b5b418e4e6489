//! What /proc says about a supervised task: its cwd, its fds and what a pidfd of its refers to,
//! its umask, its controlling terminal and its credentials. The parsers of those files are pure
//! and tested apart from the reads.
//!
//! It must never read a process-wide entry where a thread has its own (`cwd` is per thread once
//! CLONE_FS is unshared): every read names the thread that made the call.

use std::io;
use std::os::unix::ffi::OsStringExt;
use std::path::PathBuf;

use crate::platform::linux::procfs;
use crate::platform::linux::sys::creds::Credentials;

/// The target of a /proc symlink (cwd, fd/N, exe), as bytes.
fn proc_link(path: &str) -> io::Result<Vec<u8>> {
    std::fs::read_link(path).map(|p| p.into_os_string().into_vec())
}

/// The thread's current directory.
pub fn cwd(tid: i32) -> io::Result<Vec<u8>> {
    proc_link(&format!("/proc/{tid}/cwd"))
}

/// What the task's fd `fd` points at; `EBADF` when it is not open.
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

/// The flags of the task's fd `fd` (/proc/TID/fdinfo/FD, `flags:` in octal).
pub fn fd_flags(tid: i32, fd: i32) -> io::Result<i32> {
    let text = std::fs::read_to_string(format!("/proc/{tid}/fdinfo/{fd}"))?;
    text.lines()
        .find_map(|l| l.strip_prefix("flags:"))
        .and_then(|f| i32::from_str_radix(f.trim(), 8).ok())
        .ok_or_else(|| io::Error::from_raw_os_error(libc::EBADF))
}

/// The task's umask (/proc/TID/status, `Umask:` in octal).
pub fn umask(tid: i32) -> Option<libc::mode_t> {
    let text = procfs::read_small(&format!("/proc/{tid}/status")).ok()?;
    parse_umask(&String::from_utf8_lossy(&text))
}

fn parse_umask(status: &str) -> Option<libc::mode_t> {
    let value = status.lines().find_map(|l| l.strip_prefix("Umask:"))?;
    libc::mode_t::from_str_radix(value.trim(), 8).ok()
}

/// The device node of the task's controlling terminal, from `tty_nr` in /proc/TID/stat.
pub fn controlling_tty(tid: i32) -> Option<PathBuf> {
    let stat = std::fs::read_to_string(format!("/proc/{tid}/stat")).ok()?;
    tty_of_stat(&stat)
}

fn tty_of_stat(stat: &str) -> Option<PathBuf> {
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let rest = stat.get(stat.rfind(')')? + 2..)?;
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

/// The task's credentials as the kernel checks them on files (/proc/TID/status).
pub fn credentials(tid: i32) -> Option<Credentials> {
    let text = procfs::read_small(&format!("/proc/{tid}/status")).ok()?;
    Credentials::from_status(&String::from_utf8_lossy(&text))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::linux::sys;

    #[test]
    fn the_terminal_is_decoded_from_tty_nr() {
        // pts/3 is major 136, minor 3; the comm may hold spaces and parentheses.
        let stat = |tty_nr: u32| format!("42 (a) b) S 1 42 42 {tty_nr} 42 4194560 0");
        assert_eq!(
            tty_of_stat(&stat((136 << 8) | 3)),
            Some("/dev/pts/3".into())
        );
        // pts/300: minor 300 - 256 in the next major.
        assert_eq!(
            tty_of_stat(&stat((137 << 8) | 44)),
            Some("/dev/pts/300".into())
        );
        assert_eq!(tty_of_stat(&stat((4 << 8) | 2)), Some("/dev/tty2".into()));
        assert_eq!(tty_of_stat(&stat((4 << 8) | 65)), Some("/dev/ttyS1".into()));
        assert_eq!(tty_of_stat(&stat(0)), None);
        assert_eq!(tty_of_stat("garbage"), None);
        assert_eq!(tty_of_stat("1 (x)"), None);
    }

    #[test]
    fn umask_is_read_in_octal() {
        assert_eq!(
            parse_umask("Name:\tx\nUmask:\t0027\nState:\tR\n"),
            Some(0o027)
        );
        assert_eq!(parse_umask("Name:\tx\n"), None);
        let mine = umask(sys::process::tid()).unwrap();
        let set = sys::fs::umask(mine);
        assert_eq!(set, mine);
    }

    #[test]
    fn cwd_and_fds_of_a_live_thread() {
        let me = sys::process::tid();
        let here = std::env::current_dir().unwrap();
        assert_eq!(cwd(me).unwrap(), here.as_os_str().as_encoded_bytes());
        let e = fd_target(me, 999_999).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EBADF));
        let child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let pidfd = sys::pidfd::open(child.id() as i32).unwrap();
        let fd = std::os::fd::AsRawFd::as_raw_fd(&pidfd);
        assert_eq!(pidfd_target(me, fd), Some(child.id() as i32));
        let mut child = child;
        child.kill().unwrap();
        child.wait().unwrap();
        assert_eq!(
            credentials(me).map(|c| (c.fsuid, c.fsgid)),
            Some(sys::process::effective_ids())
        );
    }
}
