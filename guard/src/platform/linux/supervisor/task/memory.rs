//! Reading a supervised task's memory: path strings, an exec's argv, plain structs, each in as
//! few `process_vm_readv` calls as the page boundaries allow.
//!
//! It must never read across a page it was not asked to (a string that ends just before an
//! unmapped page is readable, and must be read), and never write to the task.

use std::io;

use crate::platform::linux::sys::process_vm;

/// Longest path the kernel accepts, NUL included.
pub const PATH_MAX: usize = libc::PATH_MAX as usize;
/// Bounds on an exec's argv as read for the judge (the kernel's own limits are larger; the judge
/// only matches the first few arguments).
const ARGV_MAX_ARGS: usize = 256;
const ARGV_MAX_ARG_LEN: usize = 4096;
/// Bounds on an exec's environment as read for the judge: an array longer than this fails the
/// exec (E2BIG) rather than leave an entry unread; an entry is read whole up to the kernel's
/// own limit on one string (MAX_ARG_STRLEN, 32 pages).
const ENV_MAX_VARS: usize = 16384;
const ENV_MAX_LEN: usize = 32 * 4096;
/// How many ranges one process_vm_readv takes (IOV_MAX).
const IOV_MAX: usize = 1024;

const PAGE: usize = 4096;

/// Read up to `buf.len()` bytes at `addr` of task `tid`. Returns how many were read (short at an
/// unmapped page).
fn read_mem(tid: i32, addr: u64, buf: &mut [u8]) -> io::Result<usize> {
    process_vm::read(tid, addr, buf)
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
///
/// An exec is the supervisor's commonest judged call and a compiler's argv has dozens of
/// arguments, so this reads in batches rather than two reads per argument: the pointers a page at
/// a time, then the first bytes of every argument in one `process_vm_readv` with one remote
/// buffer per argument; only arguments that did not end within their first bytes are read again.
/// No read crosses a page boundary, so an argument that ends just before an unmapped page is
/// still read whole.
pub fn read_argv(tid: i32, addr: u64) -> io::Result<Vec<String>> {
    if addr == 0 {
        return Ok(Vec::new());
    }
    let (pointers, _) = read_pointers(tid, addr, ARGV_MAX_ARGS)?;
    let heads = read_heads(tid, &pointers);
    pointers
        .iter()
        .zip(heads)
        .map(|(&p, head)| {
            let arg = match head {
                Some(head) => head,
                None => read_cstr(tid, p, ARGV_MAX_ARG_LEN).or_else(|e| {
                    // A longer argument is cut, not refused: the judge matches prefixes of argv.
                    if e.raw_os_error() == Some(libc::ENAMETOOLONG) {
                        Ok(Vec::new())
                    } else {
                        Err(e)
                    }
                })?,
            };
            Ok(String::from_utf8_lossy(&arg).into_owned())
        })
        .collect()
}

/// The entries of an environment array that `wanted` keeps (it sees each whole entry), at most
/// `ENV_MAX_VARS` entries (more: `E2BIG`, so that no entry is left unread).
pub fn read_env(tid: i32, addr: u64, wanted: &dyn Fn(&[u8]) -> bool) -> io::Result<Vec<String>> {
    if addr == 0 {
        return Ok(Vec::new());
    }
    let (pointers, complete) = read_pointers(tid, addr, ENV_MAX_VARS)?;
    if !complete {
        return Err(io::Error::from_raw_os_error(libc::E2BIG));
    }
    let mut kept = Vec::new();
    for batch in pointers.chunks(IOV_MAX) {
        for (&p, head) in batch.iter().zip(read_heads(tid, batch)) {
            let entry = match head {
                Some(head) => head,
                None => read_cstr(tid, p, ENV_MAX_LEN)?,
            };
            if wanted(&entry) {
                kept.push(String::from_utf8_lossy(&entry).into_owned());
            }
        }
    }
    Ok(kept)
}

/// The pointers of a NULL-terminated array, at most `max`, and whether its NULL was reached.
fn read_pointers(tid: i32, addr: u64, max: usize) -> io::Result<(Vec<u64>, bool)> {
    let mut pointers = Vec::new();
    let mut cursor = addr;
    let mut chunk = [0u8; 512];
    while pointers.len() <= max {
        let to_page_end = PAGE - cursor as usize % PAGE;
        // A pointer that straddles a page boundary is read alone (the read may then fail).
        let want = if to_page_end < 8 {
            8
        } else {
            (to_page_end / 8 * 8).min(chunk.len())
        };
        let n = read_mem(tid, cursor, &mut chunk[..want])?;
        if n < 8 {
            return Err(io::Error::from_raw_os_error(libc::EFAULT));
        }
        for word in chunk[..n - n % 8].chunks_exact(8) {
            let p = u64::from_ne_bytes(word.try_into().expect("8 bytes"));
            if p == 0 {
                return Ok((pointers, true));
            }
            if pointers.len() == max {
                return Ok((pointers, false));
            }
            pointers.push(p);
        }
        cursor += (n - n % 8) as u64;
    }
    Ok((pointers, false))
}

/// How much of each argument the batched read takes: most arguments are shorter.
const ARG_HEAD: usize = 256;

/// Each string's bytes when it ends (NUL) within its first `ARG_HEAD` bytes and its page, read
/// in one call; `None` for a string to read on its own (longer, or the batch fell short).
fn read_heads(tid: i32, pointers: &[u64]) -> Vec<Option<Vec<u8>>> {
    let lens: Vec<usize> = pointers
        .iter()
        .map(|&p| ARG_HEAD.min(PAGE - p as usize % PAGE))
        .collect();
    let mut buf = vec![0u8; lens.iter().sum()];
    // At most ARGV_MAX_ARGS ranges, below IOV_MAX.
    let n = process_vm::read_ranges(tid, &mut buf, pointers, &lens);
    // A fault stops the transfer: what was read before it still counts.
    let mut read = n.unwrap_or(0);
    let mut offset = 0;
    lens.iter()
        .map(|&len| {
            let got = len.min(read);
            read -= got;
            let head = &buf[offset..offset + got];
            offset += len;
            head.iter()
                .position(|&b| b == 0)
                .map(|end| head[..end].to_vec())
        })
        .collect()
}

/// Exactly `buf.len()` bytes at `addr` (a plain struct such as `open_how`).
pub fn read_exact(tid: i32, addr: u64, buf: &mut [u8]) -> io::Result<()> {
    if addr == 0 || read_mem(tid, addr, buf)? != buf.len() {
        return Err(io::Error::from_raw_os_error(libc::EFAULT));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CString;

    fn me() -> i32 {
        crate::platform::linux::sys::process::tid()
    }

    /// A NULL-terminated pointer array for `args`, as a task would pass to execve.
    fn pointers(args: &[CString]) -> Vec<u64> {
        let mut v: Vec<u64> = args.iter().map(|a| a.as_ptr() as u64).collect();
        v.push(0);
        v
    }

    /// Two mapped pages of which the second is then unmapped: reads must stop before it.
    struct PageBeforeHole(*mut u8);

    impl PageBeforeHole {
        fn new() -> PageBeforeHole {
            // SAFETY: anonymous mapping of two pages; the second is unmapped right away.
            unsafe {
                let p = libc::mmap(
                    std::ptr::null_mut(),
                    2 * PAGE,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                    -1,
                    0,
                );
                assert_ne!(p, libc::MAP_FAILED);
                assert_eq!(libc::munmap(p.cast::<u8>().add(PAGE).cast(), PAGE), 0);
                PageBeforeHole(p.cast())
            }
        }
        /// Put `bytes` at the very end of the mapped page; returns their address.
        fn put_at_end(&self, bytes: &[u8]) -> u64 {
            // SAFETY: the copy stays within the mapped first page.
            unsafe {
                let at = self.0.add(PAGE - bytes.len());
                std::ptr::copy_nonoverlapping(bytes.as_ptr(), at, bytes.len());
                at as u64
            }
        }
    }

    impl Drop for PageBeforeHole {
        fn drop(&mut self) {
            // SAFETY: unmapping the page mapped in new().
            unsafe { libc::munmap(self.0.cast(), PAGE) };
        }
    }

    #[test]
    fn argv_is_read_whole_short_and_long_arguments_alike() {
        let long = "x".repeat(ARG_HEAD * 3);
        let mut want: Vec<String> = vec!["cc1".into(), "-quiet".into(), long, String::new()];
        // More pointers than one batch of pointer reads holds.
        want.extend((0..100).map(|i| format!("-Darg{i}")));
        let args: Vec<CString> = want
            .iter()
            .map(|a| CString::new(a.as_str()).unwrap())
            .collect();
        let array = pointers(&args);
        let got = read_argv(me(), array.as_ptr() as u64).unwrap();
        assert_eq!(got, want);
    }

    #[test]
    fn argv_stops_at_the_bound_and_cuts_an_overlong_argument() {
        let huge = CString::new("y".repeat(ARGV_MAX_ARG_LEN + 10)).unwrap();
        let short = CString::new("z").unwrap();
        let mut array: Vec<u64> = vec![huge.as_ptr() as u64];
        array.extend(std::iter::repeat_n(
            short.as_ptr() as u64,
            ARGV_MAX_ARGS + 5,
        ));
        array.push(0);
        let got = read_argv(me(), array.as_ptr() as u64).unwrap();
        assert_eq!(got.len(), ARGV_MAX_ARGS);
        assert_eq!(
            got[0], "",
            "an argument longer than the bound is cut to nothing"
        );
        assert!(got[1..].iter().all(|a| a == "z"));
    }

    #[test]
    fn an_argument_ending_just_before_an_unmapped_page_is_read() {
        let page = PageBeforeHole::new();
        let at = page.put_at_end(b"--last\0");
        let first = CString::new("prog").unwrap();
        let array = [first.as_ptr() as u64, at, 0];
        let got = read_argv(me(), array.as_ptr() as u64).unwrap();
        assert_eq!(got, ["prog", "--last"]);
        assert_eq!(read_path(me(), at).unwrap(), b"--last");
    }

    #[test]
    fn a_pointer_array_ending_just_before_an_unmapped_page_is_read() {
        let page = PageBeforeHole::new();
        let a = CString::new("a").unwrap();
        let b = CString::new("b").unwrap();
        let words: Vec<u8> = [a.as_ptr() as u64, b.as_ptr() as u64, 0]
            .iter()
            .flat_map(|p| p.to_ne_bytes())
            .collect();
        let array = page.put_at_end(&words);
        assert_eq!(read_argv(me(), array).unwrap(), ["a", "b"]);
    }

    #[test]
    fn an_argument_running_into_an_unmapped_page_is_a_fault() {
        let page = PageBeforeHole::new();
        let at = page.put_at_end(b"no-nul");
        let array = [at, 0];
        let e = read_argv(me(), array.as_ptr() as u64).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EFAULT));
        // And an array without its NULL before the hole.
        let words: Vec<u8> = at.to_ne_bytes().to_vec();
        let unterminated = page.put_at_end(&words);
        let e = read_argv(me(), unterminated).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EFAULT));
    }
}
