//! Local (`AF_UNIX`) sockets as the supervisor handles them for a task: what a socket is
//! (domain, type), its address as the task wrote it, bind and connect on our copy or a new one,
//! and who listens at the other end (`SO_PEERCRED`).
//!
//! It must never read an address twice from the task (the caller reads it once and passes the
//! bytes), and never follow a name that could be swapped: paths are bound and connected as
//! `/proc/self/fd/DIR/NAME`, DIR a directory the caller opened without following symlinks.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use super::zero_or_errno;

/// `offsetof(struct sockaddr_un, sun_path)`.
const SUN_PATH_OFFSET: usize = 2;
/// `sizeof(sun_path)`.
const SUN_PATH_LEN: usize = 108;
/// The longest address the kernel takes (`sizeof(struct sockaddr_un)`).
pub const SOCKADDR_UN_LEN: usize = SUN_PATH_OFFSET + SUN_PATH_LEN;

/// A local socket's address, as `bind` and `connect` read it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UnixName {
    /// No name (`addrlen` is just the family): autobind on bind.
    Unnamed,
    /// In the abstract namespace (leading NUL; the bytes after it, NULs and all).
    Abstract(Vec<u8>),
    /// A path in the file system (up to the first NUL).
    Path(Vec<u8>),
}

impl UnixName {
    /// From the `addrlen` bytes a task passed; `EINVAL` where the kernel says so (too short,
    /// another family, too long).
    pub fn parse(bytes: &[u8]) -> io::Result<UnixName> {
        let einval = || io::Error::from_raw_os_error(libc::EINVAL);
        if bytes.len() < SUN_PATH_OFFSET || bytes.len() > SOCKADDR_UN_LEN {
            return Err(einval());
        }
        let family = u16::from_ne_bytes([bytes[0], bytes[1]]);
        if i32::from(family) != libc::AF_UNIX {
            return Err(einval());
        }
        let path = &bytes[SUN_PATH_OFFSET..];
        Ok(match path.first() {
            None => UnixName::Unnamed,
            Some(0) => UnixName::Abstract(path[1..].to_vec()),
            Some(_) => {
                let end = path.iter().position(|&b| b == 0).unwrap_or(path.len());
                UnixName::Path(path[..end].to_vec())
            }
        })
    }
}

/// A `sockaddr_un` for `name` and its length. `ENAMETOOLONG` when it does not fit.
fn sockaddr(name: &UnixName) -> io::Result<(libc::sockaddr_un, libc::socklen_t)> {
    // SAFETY: sockaddr_un is plain data; all zeroes is a valid value.
    let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    let (bytes, lead): (&[u8], usize) = match name {
        UnixName::Unnamed => (&[], 0),
        UnixName::Abstract(b) => (b, 1),
        UnixName::Path(b) => (b, 0),
    };
    if lead + bytes.len() > SUN_PATH_LEN {
        return Err(io::Error::from_raw_os_error(libc::ENAMETOOLONG));
    }
    for (i, &b) in bytes.iter().enumerate() {
        addr.sun_path[lead + i] = b as libc::c_char;
    }
    let len = match name {
        // A path is passed with its NUL when there is room, as libc callers do.
        UnixName::Path(_) => SUN_PATH_OFFSET + (bytes.len() + 1).min(SUN_PATH_LEN),
        _ => SUN_PATH_OFFSET + lead + bytes.len(),
    };
    Ok((addr, len as libc::socklen_t))
}

/// The name of `name` in the directory `dir` (open, no symlink followed), as a path through
/// our own fd table.
pub fn in_dir(dir: BorrowedFd<'_>, name: &[u8]) -> UnixName {
    let mut path = format!("/proc/self/fd/{}/", dir.as_raw_fd()).into_bytes();
    path.extend_from_slice(name);
    UnixName::Path(path)
}

fn int_option(socket: BorrowedFd<'_>, option: i32) -> io::Result<i32> {
    let mut value: i32 = 0;
    let mut len = std::mem::size_of::<i32>() as libc::socklen_t;
    // SAFETY: an int-sized buffer and its length.
    let rc = unsafe {
        libc::getsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            option,
            (&mut value as *mut i32).cast(),
            &mut len,
        )
    };
    zero_or_errno(rc.into())?;
    Ok(value)
}

/// The socket's domain (`SO_DOMAIN`); `ENOTSOCK` for another file.
pub fn domain(socket: BorrowedFd<'_>) -> io::Result<i32> {
    int_option(socket, libc::SO_DOMAIN)
}

/// The socket's type (`SO_TYPE`: stream, datagram, seqpacket).
pub fn kind(socket: BorrowedFd<'_>) -> io::Result<i32> {
    int_option(socket, libc::SO_TYPE)
}

/// The pid of the process at the other end of a connected local socket, as it was when it
/// listened (`SO_PEERCRED`); `None` when the kernel knows none.
pub fn peer_pid(socket: BorrowedFd<'_>) -> io::Result<Option<i32>> {
    let mut cred = libc::ucred {
        pid: 0,
        uid: 0,
        gid: 0,
    };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: a ucred-sized buffer and its length.
    let rc = unsafe {
        libc::getsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut cred as *mut libc::ucred).cast(),
            &mut len,
        )
    };
    zero_or_errno(rc.into())?;
    Ok((cred.pid > 0).then_some(cred.pid))
}

/// A new local socket of `kind` (close-on-exec; non-blocking when asked).
pub fn new_unix(kind: i32, nonblocking: bool) -> io::Result<OwnedFd> {
    let flags = libc::SOCK_CLOEXEC | if nonblocking { libc::SOCK_NONBLOCK } else { 0 };
    // SAFETY: plain syscall on integers.
    let fd = unsafe { libc::socket(libc::AF_UNIX, kind | flags, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel returned a new fd, owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// bind(2) of `socket` to `name`.
pub fn bind(socket: BorrowedFd<'_>, name: &UnixName) -> io::Result<()> {
    let (addr, len) = sockaddr(name)?;
    // SAFETY: a valid sockaddr_un of length `len`.
    let rc = unsafe {
        libc::bind(
            socket.as_raw_fd(),
            (&addr as *const libc::sockaddr_un).cast(),
            len,
        )
    };
    zero_or_errno(rc.into())
}

/// connect(2) of `socket` to `name`.
pub fn connect(socket: BorrowedFd<'_>, name: &UnixName) -> io::Result<()> {
    let (addr, len) = sockaddr(name)?;
    // SAFETY: a valid sockaddr_un of length `len`.
    let rc = unsafe {
        libc::connect(
            socket.as_raw_fd(),
            (&addr as *const libc::sockaddr_un).cast(),
            len,
        )
    };
    zero_or_errno(rc.into())
}

/// Whether `O_NONBLOCK` is set on the open file `file`.
pub fn is_nonblocking(file: BorrowedFd<'_>) -> io::Result<bool> {
    // SAFETY: fcntl F_GETFL on an open fd.
    let flags = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_GETFL) };
    if flags < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(flags & libc::O_NONBLOCK != 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    fn raw(path: &[u8]) -> Vec<u8> {
        let mut v = (libc::AF_UNIX as u16).to_ne_bytes().to_vec();
        v.extend_from_slice(path);
        v
    }

    #[test]
    fn addresses_are_read_as_the_kernel_reads_them() {
        assert_eq!(UnixName::parse(&raw(b"")).unwrap(), UnixName::Unnamed);
        assert_eq!(
            UnixName::parse(&raw(b"/tmp/s\0junk")).unwrap(),
            UnixName::Path(b"/tmp/s".to_vec())
        );
        assert_eq!(
            UnixName::parse(&raw(b"rel")).unwrap(),
            UnixName::Path(b"rel".to_vec())
        );
        assert_eq!(
            UnixName::parse(&raw(b"\0tmux\0x")).unwrap(),
            UnixName::Abstract(b"tmux\0x".to_vec())
        );
        assert!(UnixName::parse(&[1]).is_err());
        let mut inet = raw(b"/x");
        inet[0..2].copy_from_slice(&(libc::AF_INET as u16).to_ne_bytes());
        assert!(UnixName::parse(&inet).is_err());
        assert!(UnixName::parse(&raw(&[b'a'; 109])).is_err());
    }

    #[test]
    fn a_socket_bound_in_a_directory_is_reached_there_and_its_peer_known() {
        let dir = tempfile::tempdir().unwrap();
        let fd = std::fs::File::open(dir.path()).unwrap();
        let server = new_unix(libc::SOCK_STREAM, false).unwrap();
        bind(server.as_fd(), &in_dir(fd.as_fd(), b"s")).unwrap();
        assert!(dir.path().join("s").exists());
        // SAFETY: listen on our socket.
        assert_eq!(unsafe { libc::listen(server.as_raw_fd(), 1) }, 0);
        let client = new_unix(libc::SOCK_STREAM, false).unwrap();
        assert_eq!(domain(client.as_fd()).unwrap(), libc::AF_UNIX);
        assert_eq!(kind(client.as_fd()).unwrap(), libc::SOCK_STREAM);
        connect(client.as_fd(), &in_dir(fd.as_fd(), b"s")).unwrap();
        assert_eq!(
            peer_pid(client.as_fd()).unwrap(),
            Some(std::process::id() as i32)
        );
        assert!(!is_nonblocking(client.as_fd()).unwrap());
        assert_eq!(
            domain(fd.as_fd()).unwrap_err().raw_os_error(),
            Some(libc::ENOTSOCK)
        );
    }
}
