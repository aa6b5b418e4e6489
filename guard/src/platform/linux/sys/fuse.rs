//! Mounting a FUSE file system without libfuse: open `/dev/fuse`, mount it with the options the
//! kernel's fuse module parses (`fd=N,rootmode=...,user_id=...,group_id=...`), and serve the fd.
//! See Documentation/filesystems/fuse.rst of the kernel.
//!
//! [`mount`] runs in the forked CMD child and must never allocate; what the file system shows
//! and who serves it is the caller's (`supervisor::secret_fs`).

use std::ffi::{CStr, CString};
use std::os::fd::{AsRawFd, OwnedFd};

use super::fs;

/// The FUSE mount options that follow `fd=N`: the kind of the root and whose the files are.
pub fn options(is_dir: bool, uid: u32, gid: u32) -> CString {
    let rootmode = if is_dir { "40000" } else { "100000" };
    CString::new(format!(
        ",rootmode={rootmode},user_id={uid},group_id={gid},default_permissions"
    ))
    .expect("no NUL in formatted numbers")
}

/// Open `/dev/fuse` and mount it at `target` with `options` (from [`options`]); the fd to serve,
/// or `None` (nothing left open) when either fails. Async-signal-safe.
pub fn mount(target: &CStr, options: &CStr) -> Option<OwnedFd> {
    let fd = fs::open(c"/dev/fuse", libc::O_RDWR | libc::O_CLOEXEC).ok()?;
    // "fd=N" then the options, formatted without allocating.
    let mut data = [0u8; 256];
    let digits = decimal(fd.as_raw_fd());
    let digits = &digits[..digits.iter().position(|b| *b == 0).unwrap_or(digits.len())];
    let rest = options.to_bytes_with_nul();
    let len = 3 + digits.len();
    let mounted = len + rest.len() <= data.len() && {
        data[..3].copy_from_slice(b"fd=");
        data[3..len].copy_from_slice(digits);
        data[len..len + rest.len()].copy_from_slice(rest);
        // SAFETY: valid C strings; data is NUL-terminated (rest ends with the NUL).
        unsafe {
            libc::mount(
                c"agent-guard".as_ptr(),
                target.as_ptr(),
                c"fuse.agent-guard".as_ptr(),
                libc::MS_NOSUID | libc::MS_NODEV,
                data.as_ptr().cast(),
            ) == 0
        }
    };
    // Not mounted: dropping the fd closes it.
    mounted.then_some(fd)
}

/// The decimal digits of a non-negative fd, NUL-padded.
fn decimal(mut n: i32) -> [u8; 12] {
    let mut digits = [0u8; 12];
    let mut rev = [0u8; 12];
    let mut len = 0;
    loop {
        rev[len] = b'0' + (n % 10) as u8;
        len += 1;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for i in 0..len {
        digits[i] = rev[len - 1 - i];
    }
    digits
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fd_numbers_are_written_in_decimal() {
        assert_eq!(&decimal(0)[..2], b"0\0");
        assert_eq!(&decimal(1024)[..5], b"1024\0");
        assert_eq!(&decimal(i32::MAX)[..11], b"2147483647\0");
    }

    #[test]
    fn options_name_the_root_kind_and_owner() {
        assert_eq!(
            options(true, 1000, 100).as_bytes(),
            b",rootmode=40000,user_id=1000,group_id=100,default_permissions"
        );
        assert!(options(false, 0, 0)
            .to_str()
            .unwrap()
            .contains("rootmode=100000"));
    }
}
