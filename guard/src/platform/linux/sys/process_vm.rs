//! Reading another process's memory with process_vm_readv(2): one range, or many ranges into
//! one buffer in a single call. The caller needs ptrace access to the task (its parent under
//! Yama's `ptrace_scope=1`, or the same user for a dumpable task).
//!
//! This must never write to a task: the supervisor only reads what a task passed.

use std::io;

/// Read up to `buf.len()` bytes at `addr` of task `tid`; how many were read (short at an
/// unmapped page).
pub fn read(tid: i32, addr: u64, buf: &mut [u8]) -> io::Result<usize> {
    let local = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    let remote = libc::iovec {
        iov_base: addr as *mut libc::c_void,
        iov_len: buf.len(),
    };
    // SAFETY: local points at buf for buf.len() bytes; remote is only read by the kernel, in the
    // other process.
    let n = unsafe { libc::process_vm_readv(tid, &local, 1, &remote, 1, 0) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(n as usize)
}

/// Read the task's ranges (`addrs[i]`, `lens[i]` bytes) one after the other into `buf` (at
/// least as long as their sum), in one call; how many bytes were read in all. A fault stops
/// the transfer: what was read before it still counts. At most `IOV_MAX` (1024) ranges.
pub fn read_ranges(tid: i32, buf: &mut [u8], addrs: &[u64], lens: &[usize]) -> io::Result<usize> {
    assert!(addrs.len() == lens.len() && buf.len() >= lens.iter().sum::<usize>());
    let local = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    let remote: Vec<libc::iovec> = addrs
        .iter()
        .zip(lens)
        .map(|(&addr, &len)| libc::iovec {
            iov_base: addr as *mut libc::c_void,
            iov_len: len,
        })
        .collect();
    // SAFETY: local covers buf; the remote iovecs are only read by the kernel, in the other
    // process.
    let n = unsafe {
        libc::process_vm_readv(
            tid,
            &local,
            1,
            remote.as_ptr(),
            remote.len() as libc::c_ulong,
            0,
        )
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(n as usize)
}
