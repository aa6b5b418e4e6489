//! macOS syscalls behind the pure parsers: `sysctl`, `proc_pidinfo`, `proc_pidpath`, the mach
//! clock, signal masks. Each wrapper copies kernel data into a byte buffer and hands it to the
//! pure code in [`super::procinfo`]; none of them interprets a structure itself. And
//! `clonefile(2)`, the snapshot store's [`super::keep::Cloner`] ([`Clonefile`]).
//!
//! Must never block: every call here is a bounded syscall, safe on an ES thread, except
//! [`Clonefile`], which writes the store and runs on a worker.

use std::ffi::CString;
use std::mem::{offset_of, size_of, MaybeUninit};
use std::os::fd::AsRawFd;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

use super::deadline::Timebase;
use super::keep::{changed, open_checked, Cloner, FileId};
use super::procinfo::{bsdinfo_layout, BsdInfo, ProcArgs, ProcessInspector};
use crate::vocab::KeptHow;

// The pure reader of `proc_bsdinfo` uses fixed offsets; prove they are libc's (and Apple's).
const _: () = {
    use libc::proc_bsdinfo as B;
    assert!(size_of::<B>() == bsdinfo_layout::SIZE);
    assert!(offset_of!(B, pbi_pid) == bsdinfo_layout::PID);
    assert!(offset_of!(B, pbi_ppid) == bsdinfo_layout::PPID);
    assert!(offset_of!(B, pbi_uid) == bsdinfo_layout::UID);
    assert!(offset_of!(B, pbi_comm) == bsdinfo_layout::COMM);
    assert!(offset_of!(B, pbi_name) == bsdinfo_layout::NAME);
    assert!(offset_of!(B, pbi_start_tvsec) == bsdinfo_layout::START_TVSEC);
    assert!(offset_of!(B, pbi_start_tvusec) == bsdinfo_layout::START_TVUSEC);
};

/// `sysctlbyname(name)` as a string, e.g. `kern.osproductversion`.
pub fn sysctl_string(name: &str) -> Option<String> {
    let name = CString::new(name).ok()?;
    let mut len: libc::size_t = 0;
    // SAFETY: a NULL old buffer asks only for the length, written to `len`.
    let rc = unsafe {
        libc::sysctlbyname(
            name.as_ptr(),
            std::ptr::null_mut(),
            &mut len,
            std::ptr::null_mut(),
            0,
        )
    };
    if rc != 0 || len == 0 {
        return None;
    }
    let mut buf = vec![0u8; len];
    // SAFETY: `buf` has `len` writable bytes; the kernel writes at most `len` and updates it.
    let rc = unsafe {
        libc::sysctlbyname(
            name.as_ptr(),
            buf.as_mut_ptr().cast(),
            &mut len,
            std::ptr::null_mut(),
            0,
        )
    };
    if rc != 0 {
        return None;
    }
    buf.truncate(len);
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    Some(String::from_utf8_lossy(&buf[..end]).into_owned())
}

/// The running macOS version string (`kern.osproductversion`).
pub fn os_product_version() -> Option<String> {
    sysctl_string("kern.osproductversion")
}

/// The mach clock's tick length.
pub fn timebase() -> Timebase {
    let mut info = mach2::mach_time::mach_timebase_info { numer: 0, denom: 0 };
    // SAFETY: `info` is a valid out-pointer for the duration of the call.
    let rc = unsafe { mach2::mach_time::mach_timebase_info(&mut info) };
    if rc != 0 || info.denom == 0 {
        // Only reachable if the kernel refuses; 1/1 over-estimates time left on Apple silicon
        // never, and is exact on Intel.
        return Timebase { numer: 1, denom: 1 };
    }
    Timebase {
        numer: info.numer,
        denom: info.denom,
    }
}

/// Now, in mach absolute ticks (the clock of ES deadlines).
pub fn now_ticks() -> u64 {
    // SAFETY: no arguments, no side effects.
    unsafe { mach2::mach_time::mach_absolute_time() }
}

/// The raw `KERN_PROCARGS2` buffer of `pid`, sized by `KERN_ARGMAX`.
pub fn procargs_buffer(pid: i32) -> Option<Vec<u8>> {
    let mut argmax: libc::c_int = 0;
    let mut size = size_of::<libc::c_int>();
    let mut mib = [libc::CTL_KERN, libc::KERN_ARGMAX];
    // SAFETY: `argmax` is a valid int out-buffer of `size` bytes.
    let rc = unsafe {
        libc::sysctl(
            mib.as_mut_ptr(),
            2,
            (&mut argmax as *mut libc::c_int).cast(),
            &mut size,
            std::ptr::null_mut(),
            0,
        )
    };
    if rc != 0 || argmax <= 0 {
        return None;
    }
    let mut buf = vec![0u8; argmax as usize];
    let mut len = buf.len();
    let mut mib = [libc::CTL_KERN, libc::KERN_PROCARGS2, pid];
    // SAFETY: `buf` has `len` writable bytes; the kernel writes at most that and updates `len`.
    let rc = unsafe {
        libc::sysctl(
            mib.as_mut_ptr(),
            3,
            buf.as_mut_ptr().cast(),
            &mut len,
            std::ptr::null_mut(),
            0,
        )
    };
    if rc != 0 {
        return None;
    }
    buf.truncate(len);
    Some(buf)
}

/// `proc_pidinfo(PROC_PIDTBSDINFO)` of `pid`, as the bytes of a `proc_bsdinfo`.
pub fn bsdinfo_bytes(pid: i32) -> Option<Vec<u8>> {
    let mut info = MaybeUninit::<libc::proc_bsdinfo>::zeroed();
    let size = size_of::<libc::proc_bsdinfo>() as libc::c_int;
    // SAFETY: `info` is a writable buffer of `size` bytes.
    let n = unsafe {
        libc::proc_pidinfo(
            pid,
            libc::PROC_PIDTBSDINFO,
            0,
            info.as_mut_ptr().cast(),
            size,
        )
    };
    if n != size {
        return None;
    }
    // SAFETY: zero-initialised and fully written; a plain-old-data struct viewed as bytes.
    let bytes = unsafe {
        std::slice::from_raw_parts(info.as_ptr().cast::<u8>(), size_of::<libc::proc_bsdinfo>())
    };
    Some(bytes.to_vec())
}

/// `proc_pidpath(pid)`: the executable of a live process.
pub fn pidpath(pid: i32) -> Option<PathBuf> {
    let mut buf = vec![0u8; libc::PROC_PIDPATHINFO_MAXSIZE as usize];
    // SAFETY: `buf` has the stated number of writable bytes.
    let n = unsafe { libc::proc_pidpath(pid, buf.as_mut_ptr().cast(), buf.len() as u32) };
    if n <= 0 {
        return None;
    }
    buf.truncate(n as usize);
    Some(PathBuf::from(std::ffi::OsString::from_vec(buf)))
}

/// Whether the volume holding `path` matches names case-insensitively (APFS default). Unknown
/// counts as insensitive: merging two spellings selects more, never less.
pub fn case_insensitive(path: &Path) -> bool {
    let Ok(c) = CString::new(path.as_os_str().as_encoded_bytes()) else {
        return true;
    };
    // SAFETY: `c` is a valid NUL-terminated path.
    let sensitive = unsafe { libc::pathconf(c.as_ptr(), libc::_PC_CASE_SENSITIVE) };
    sensitive != 1
}

/// Whether this process runs as root.
pub fn is_root() -> bool {
    // SAFETY: no arguments.
    unsafe { libc::geteuid() == 0 }
}

/// The signals that stop the daemon (launchd sends SIGTERM on bootout).
fn stop_signals() -> libc::sigset_t {
    let mut set = MaybeUninit::<libc::sigset_t>::zeroed();
    // SAFETY: `set` is a valid sigset_t to initialise and fill.
    unsafe {
        libc::sigemptyset(set.as_mut_ptr());
        for sig in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP] {
            libc::sigaddset(set.as_mut_ptr(), sig);
        }
        set.assume_init()
    }
}

/// Block the stop signals in the calling thread, so threads spawned afterwards inherit the mask
/// and only [`wait_stop_signal`] receives them.
pub fn block_stop_signals() -> bool {
    let set = stop_signals();
    // SAFETY: `set` is initialised; no old mask wanted.
    unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) == 0 }
}

/// Wait until a stop signal arrives; returns its number.
pub fn wait_stop_signal() -> i32 {
    let set = stop_signals();
    let mut sig: libc::c_int = 0;
    // SAFETY: `set` is initialised, `sig` a valid out-pointer.
    unsafe { libc::sigwait(&set, &mut sig) };
    sig
}

/// Live process facts from the kernel.
#[derive(Clone, Copy, Debug, Default)]
pub struct LiveInspector;

impl ProcessInspector for LiveInspector {
    fn process_args(&self, pid: i32) -> Option<ProcArgs> {
        ProcArgs::parse(&procargs_buffer(pid)?).ok()
    }
    fn bsd_info(&self, pid: i32) -> Option<BsdInfo> {
        BsdInfo::parse(&bsdinfo_bytes(pid)?)
    }
    fn exe_path(&self, pid: i32) -> Option<PathBuf> {
        pidpath(pid)
    }
}

/// `clonefile(2)`: a copy-on-write clone on APFS, constant time and no space until the two
/// diverge. A symlink is cloned as itself (`CLONE_NOFOLLOW`); the clone belongs to the daemon
/// (root), not to the file's owner (`CLONE_NOOWNERCOPY`), so the store stays root's alone.
/// Another volume (`EXDEV`) or a file system without clones (`ENOTSUP`) fails: the operation is
/// then refused.
pub struct Clonefile;

/// `sys/clonefile.h` (not in the libc crate): do not follow a symlink source; the clone is
/// owned by the caller, not copied from the source's owner.
const CLONE_NOFOLLOW: u32 = 0x0001;
const CLONE_NOOWNERCOPY: u32 = 0x0002;

impl Cloner for Clonefile {
    fn way(&self) -> KeptHow {
        KeptHow::Reflinked
    }

    fn clone_file(
        &self,
        source: &Path,
        target: &Path,
        expect: Option<FileId>,
    ) -> std::io::Result<()> {
        let c = |p: &Path| {
            CString::new(p.as_os_str().as_bytes())
                .map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))
        };
        let meta = std::fs::symlink_metadata(source)?;
        if expect.is_some_and(|id| id != FileId::of(&meta)) {
            return Err(changed());
        }
        if expect.is_some() && meta.is_file() {
            // Cloned from what was opened and checked: a rename in between changes nothing.
            let file = open_checked(source, expect)?;
            let target = c(target)?;
            // SAFETY: the fd is open for the call's duration and the target a NUL-terminated
            // path that outlives it; fclonefileat only reads them.
            let rc = unsafe {
                libc::fclonefileat(
                    file.as_raw_fd(),
                    libc::AT_FDCWD,
                    target.as_ptr(),
                    CLONE_NOOWNERCOPY,
                )
            };
            return if rc == 0 {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            };
        }
        let (source, target) = (c(source)?, c(target)?);
        // SAFETY: both are NUL-terminated paths that outlive the call; clonefile reads them only.
        let rc = unsafe {
            libc::clonefile(
                source.as_ptr(),
                target.as_ptr(),
                CLONE_NOFOLLOW | CLONE_NOOWNERCOPY,
            )
        };
        if rc == 0 {
            Ok(())
        } else {
            Err(std::io::Error::last_os_error())
        }
    }
}
