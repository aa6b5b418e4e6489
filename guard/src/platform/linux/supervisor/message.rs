//! The messages between the supervisor and the processes it forks (the CMD child, the late-roots
//! helper), over a `SOCK_SEQPACKET` socketpair: a tag byte and an `i64` payload, with file
//! descriptors attached as `SCM_RIGHTS`.
//!
//! `send` must never allocate or take a lock: it runs in forked children before exec.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

use super::secret_view::MAX_HIDDEN_ROOTS;

/// The most fds one message carries: the listener and a FUSE fd per hidden root.
pub const MAX_FDS: usize = MAX_HIDDEN_ROOTS + 1;

/// Room for `MAX_FDS` fds in one control message, aligned for cmsghdr.
type CmsgBuf = [u64; MAX_FDS.div_ceil(2) + 4];

/// One message received.
pub struct Message {
    pub tag: u8,
    pub payload: i64,
    /// The fds attached, now ours, in the order they were sent.
    pub fds: Vec<OwnedFd>,
}

/// Send `tag`, `payload` and copies of `fds` (at most [`MAX_FDS`]). Whether it was sent; a
/// closed peer is an error, not a SIGPIPE.
///
/// # Safety
/// `fds` must be open descriptors. Async-signal-safe.
pub unsafe fn send(sock: RawFd, tag: u8, payload: i64, fds: &[RawFd]) -> bool {
    if fds.len() > MAX_FDS {
        return false;
    }
    let mut data = [0u8; 9];
    data[0] = tag;
    data[1..].copy_from_slice(&payload.to_ne_bytes());
    let mut iov = libc::iovec {
        iov_base: data.as_mut_ptr().cast(),
        iov_len: data.len(),
    };
    let mut cmsg_buf: CmsgBuf = [0; _];
    let mut msg: libc::msghdr = std::mem::zeroed();
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    if !fds.is_empty() {
        let bytes = std::mem::size_of_val(fds) as u32;
        msg.msg_control = cmsg_buf.as_mut_ptr().cast();
        msg.msg_controllen = libc::CMSG_SPACE(bytes) as usize;
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
    libc::sendmsg(sock, &msg, libc::MSG_NOSIGNAL) >= 0
}

/// Receive one message; `None` when the peer is gone (or sent something shorter than a message).
pub fn recv(sock: RawFd) -> Option<Message> {
    let mut data = [0u8; 9];
    let mut iov = libc::iovec {
        iov_base: data.as_mut_ptr().cast(),
        iov_len: data.len(),
    };
    let mut cmsg_buf: CmsgBuf = [0; _];
    // SAFETY: msghdr is plain data; it points at valid buffers for recvmsg.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cmsg_buf.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&cmsg_buf);
    let n = loop {
        // SAFETY: as above.
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
    let mut payload = [0u8; 8];
    payload.copy_from_slice(&data[1..]);
    Some(Message {
        tag: data[0],
        payload: i64::from_ne_bytes(payload),
        fds,
    })
}
