//! The human's terminal, for `override watch`: one key at a time without Enter (raw input,
//! restored when dropped), and waiting for a key with a timeout. Unix (Linux and macOS).
//!
//! Never touches a descriptor that is not a terminal: on a pipe, keys are the bytes that come.

use std::io;
use std::os::fd::RawFd;
use std::time::Duration;

/// Standard input switched to byte-at-a-time input without echo; the old settings come back
/// when this is dropped. `None` from [`KeyInput::stdin`] means stdin is not a terminal.
pub struct KeyInput {
    fd: RawFd,
    saved: Option<libc::termios>,
}

impl KeyInput {
    /// Take standard input. On a terminal: no line buffering, no echo (signals still work).
    pub fn stdin() -> io::Result<KeyInput> {
        let fd = libc::STDIN_FILENO;
        // SAFETY: isatty only inspects the descriptor number.
        if unsafe { libc::isatty(fd) } != 1 {
            return Ok(KeyInput { fd, saved: None });
        }
        // SAFETY: termios is plain data; tcgetattr fills it (checked below).
        let mut saved: libc::termios = unsafe { std::mem::zeroed() };
        // SAFETY: fd is a terminal; `saved` is a valid, writable termios.
        if unsafe { libc::tcgetattr(fd, &mut saved) } != 0 {
            return Err(io::Error::last_os_error());
        }
        let mut raw = saved;
        raw.c_lflag &= !(libc::ICANON | libc::ECHO);
        raw.c_cc[libc::VMIN] = 1;
        raw.c_cc[libc::VTIME] = 0;
        // SAFETY: fd is a terminal; `raw` is a valid termios derived from its own settings.
        if unsafe { libc::tcsetattr(fd, libc::TCSANOW, &raw) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(KeyInput {
            fd,
            saved: Some(saved),
        })
    }

    /// The next byte typed, waiting at most `timeout`; `Ok(None)` on timeout, an error on the
    /// end of input.
    pub fn key(&self, timeout: Duration) -> io::Result<Option<u8>> {
        let mut pfd = libc::pollfd {
            fd: self.fd,
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = libc::c_int::try_from(timeout.as_millis()).unwrap_or(libc::c_int::MAX);
        // SAFETY: one valid pollfd, count 1.
        let n = unsafe { libc::poll(&mut pfd, 1, ms) };
        if n < 0 {
            let e = io::Error::last_os_error();
            return if e.kind() == io::ErrorKind::Interrupted {
                Ok(None)
            } else {
                Err(e)
            };
        }
        if n == 0 {
            return Ok(None);
        }
        let mut byte = 0u8;
        // SAFETY: reads at most one byte into a valid one-byte buffer.
        let got = unsafe { libc::read(self.fd, (&mut byte as *mut u8).cast(), 1) };
        match got {
            1 => Ok(Some(byte)),
            0 => Err(io::Error::new(io::ErrorKind::UnexpectedEof, "end of input")),
            _ => Err(io::Error::last_os_error()),
        }
    }
}

impl Drop for KeyInput {
    fn drop(&mut self) {
        if let Some(saved) = &self.saved {
            // SAFETY: restores the settings read from the same terminal.
            unsafe { libc::tcsetattr(self.fd, libc::TCSANOW, saved) };
        }
    }
}
