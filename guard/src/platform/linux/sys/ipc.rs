//! The messages between agent-guard's own processes: the caller of `run`, the supervisor it
//! forks, the CMD child and the late-roots helper. Every message is a [`Tag`] byte and an `i64`
//! payload (9 bytes); over a `SOCK_SEQPACKET` socketpair it may carry file descriptors as
//! `SCM_RIGHTS`, over the status pipe it carries none.
//!
//! [`send`] and [`write_to_pipe`] must never allocate or take a lock: they run in forked
//! children before exec. What a payload means is the sender's and receiver's business.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

/// What a message is. Each side accepts only the tags it expects (see each variant's sender).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Tag {
    /// Supervisor → caller (pipe): CMD's pid, for the caller's signal forwarding.
    CmdPid = b'P',
    /// Supervisor → caller (pipe): CMD's exit status.
    Status = b'S',
    /// Supervisor → caller (pipe) or CMD child → supervisor: setup failed; the payload is
    /// `stage << 32 | errno`.
    SetupFailed = b'E',
    /// CMD child → supervisor: the listener fd follows, then a FUSE fd per hidden root; the
    /// payload is 1 when the secret zones are hidden.
    Listener = b'L',
    /// Late-roots helper → supervisor: the helper's pid.
    HelperPid = b'H',
    /// Late-roots helper → supervisor: the root of this index is covered; its FUSE fd follows.
    Mounted = b'M',
}

impl Tag {
    fn from_byte(byte: u8) -> Option<Tag> {
        [
            Tag::CmdPid,
            Tag::Status,
            Tag::SetupFailed,
            Tag::Listener,
            Tag::HelperPid,
            Tag::Mounted,
        ]
        .into_iter()
        .find(|t| *t as u8 == byte)
    }
}

/// The most fds one message carries: the listener and a FUSE fd per hidden secret root.
pub const MAX_FDS: usize = 49;

/// Room for `MAX_FDS` fds in one control message, aligned for cmsghdr.
type CmsgBuf = [u64; MAX_FDS.div_ceil(2) + 4];

const LEN: usize = 9;

fn encode(tag: Tag, payload: i64) -> [u8; LEN] {
    let mut data = [0u8; LEN];
    data[0] = tag as u8;
    data[1..].copy_from_slice(&payload.to_ne_bytes());
    data
}

fn decode(data: &[u8; LEN]) -> Option<(Tag, i64)> {
    let mut payload = [0u8; 8];
    payload.copy_from_slice(&data[1..]);
    Some((Tag::from_byte(data[0])?, i64::from_ne_bytes(payload)))
}

fn iovec(data: &mut [u8; LEN]) -> libc::iovec {
    libc::iovec {
        iov_base: data.as_mut_ptr().cast(),
        iov_len: data.len(),
    }
}

/// A msghdr for the one buffer `iov`, without control data (the caller adds it). The pointer
/// is `iov`'s: the header must not outlive it.
fn header(iov: &mut libc::iovec) -> libc::msghdr {
    // SAFETY: msghdr is plain data, valid zeroed.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = iov;
    msg.msg_iovlen = 1;
    msg
}

/// One message received.
pub struct Message {
    pub tag: Tag,
    pub payload: i64,
    /// The fds attached, now ours, in the order they were sent.
    pub fds: Vec<OwnedFd>,
}

/// Send `tag`, `payload` and copies of `fds` (at most [`MAX_FDS`]) on a seqpacket socket.
/// Whether it was sent; a closed peer is an error, not a SIGPIPE. Async-signal-safe.
///
/// # Safety
/// `fds` must be open descriptors of the caller's.
pub unsafe fn send(sock: RawFd, tag: Tag, payload: i64, fds: &[RawFd]) -> bool {
    if fds.len() > MAX_FDS {
        return false;
    }
    let mut data = encode(tag, payload);
    let mut iov = iovec(&mut data);
    let mut cmsg_buf: CmsgBuf = [0; _];
    let mut msg = header(&mut iov);
    if !fds.is_empty() {
        let bytes = std::mem::size_of_val(fds) as u32;
        msg.msg_control = cmsg_buf.as_mut_ptr().cast();
        // SAFETY: CMSG_SPACE is arithmetic.
        msg.msg_controllen = unsafe { libc::CMSG_SPACE(bytes) } as usize;
        // SAFETY: msg_control points at cmsg_buf, which has room for one header and MAX_FDS
        // fds (checked above), so the header and its data are in bounds.
        unsafe {
            let cmsg = libc::CMSG_FIRSTHDR(&msg);
            (*cmsg).cmsg_level = libc::SOL_SOCKET;
            (*cmsg).cmsg_type = libc::SCM_RIGHTS;
            (*cmsg).cmsg_len = libc::CMSG_LEN(bytes) as usize;
            std::ptr::copy_nonoverlapping(
                fds.as_ptr().cast::<u8>(),
                libc::CMSG_DATA(cmsg),
                bytes as usize,
            );
        }
    }
    // SAFETY: msg points at data and cmsg_buf, both alive for the call; the fds are open (the
    // caller's promise).
    unsafe { libc::sendmsg(sock, &msg, libc::MSG_NOSIGNAL) >= 0 }
}

/// Receive one message; `None` when the peer is gone, or sent something shorter than a message
/// or with a tag no sender uses.
pub fn recv(sock: RawFd) -> Option<Message> {
    let mut data = [0u8; LEN];
    let mut iov = iovec(&mut data);
    let mut cmsg_buf: CmsgBuf = [0; _];
    let mut msg = header(&mut iov);
    msg.msg_control = cmsg_buf.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&cmsg_buf);
    let n = loop {
        // SAFETY: msg points at valid buffers of the sizes it states.
        let n = unsafe { libc::recvmsg(sock, &mut msg, libc::MSG_CMSG_CLOEXEC) };
        if n < 0 && io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
            continue;
        }
        break n;
    };
    if n < data.len() as isize {
        return None;
    }
    // SAFETY: walking the control message the kernel filled in; every fd in it is new and ours.
    let fds = unsafe {
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        if cmsg.is_null()
            || (*cmsg).cmsg_level != libc::SOL_SOCKET
            || (*cmsg).cmsg_type != libc::SCM_RIGHTS
        {
            Vec::new()
        } else {
            let count =
                ((*cmsg).cmsg_len - libc::CMSG_LEN(0) as usize) / std::mem::size_of::<RawFd>();
            let first = libc::CMSG_DATA(cmsg).cast::<RawFd>();
            (0..count)
                .map(|i| OwnedFd::from_raw_fd(std::ptr::read_unaligned(first.add(i))))
                .collect()
        }
    };
    let (tag, payload) = decode(&data)?;
    Some(Message { tag, payload, fds })
}

/// Write one message to a pipe (9 bytes: one write, never split). Async-signal-safe.
pub fn write_to_pipe(fd: RawFd, tag: Tag, payload: i64) {
    let buf = encode(tag, payload);
    // SAFETY: buf is valid for its length. A write of 9 bytes to a pipe is atomic.
    unsafe { libc::write(fd, buf.as_ptr().cast(), buf.len()) };
}

/// Read one message from a pipe; `None` at end of file or on a tag no sender uses.
pub fn read_from_pipe(fd: RawFd) -> Option<(Tag, i64)> {
    let mut buf = [0u8; LEN];
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
    decode(&buf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    #[test]
    fn a_message_and_its_fds_cross_a_socketpair() {
        let (a, b) = std::os::unix::net::UnixDatagram::pair().unwrap();
        let file = tempfile::tempfile().unwrap();
        // SAFETY: the fd is open (file is alive).
        assert!(unsafe { send(a.as_raw_fd(), Tag::Mounted, 7, &[file.as_raw_fd()]) });
        let m = recv(b.as_raw_fd()).unwrap();
        assert_eq!((m.tag, m.payload, m.fds.len()), (Tag::Mounted, 7, 1));
        // The same message byte for byte on a pipe.
        let (r, w) = std::os::unix::net::UnixStream::pair().unwrap();
        write_to_pipe(w.as_raw_fd(), Tag::SetupFailed, (2 << 32) | 13);
        assert_eq!(
            read_from_pipe(r.as_raw_fd()),
            Some((Tag::SetupFailed, (2 << 32) | 13))
        );
    }

    #[test]
    fn an_unknown_tag_or_a_closed_peer_is_no_message() {
        let (r, w) = std::os::unix::net::UnixStream::pair().unwrap();
        let mut bytes = encode(Tag::Status, 0);
        bytes[0] = b'?';
        std::io::Write::write_all(&mut &w, &bytes).unwrap();
        drop(w);
        assert_eq!(read_from_pipe(r.as_raw_fd()), None);
        assert_eq!(read_from_pipe(r.as_raw_fd()), None);
    }
}
