//! The calling THREAD's credentials, changed one thread at a time: the raw syscalls, which act
//! on the calling task only. (glibc's `setresuid`, `setgroups` and friends broadcast the change to
//! every thread of the process, as POSIX wants; these must not.)
//!
//! This must never be called through the libc wrappers of the same names, and never leave a
//! thread's credentials changed on an error path: callers restore what they changed.

use std::io;

use super::zero_or_errno;

/// `_LINUX_CAPABILITY_VERSION_3`: two 32-bit words per set.
const CAPABILITY_VERSION_3: u32 = 0x2008_0522;

/// A thread's capability sets, as 64-bit masks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Caps {
    effective: u64,
    permitted: u64,
    inheritable: u64,
}

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: i32,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// capget(2) of the calling thread.
fn caps() -> io::Result<Caps> {
    let mut header = CapHeader {
        version: CAPABILITY_VERSION_3,
        pid: 0,
    };
    let mut data = [CapData::default(); 2];
    // SAFETY: a valid header and two data words, as version 3 requires.
    zero_or_errno(unsafe {
        libc::syscall(
            libc::SYS_capget,
            &mut header as *mut CapHeader,
            data.as_mut_ptr(),
        )
    })?;
    let join = |lo: u32, hi: u32| u64::from(lo) | (u64::from(hi) << 32);
    Ok(Caps {
        effective: join(data[0].effective, data[1].effective),
        permitted: join(data[0].permitted, data[1].permitted),
        inheritable: join(data[0].inheritable, data[1].inheritable),
    })
}

/// capset(2) of the calling thread.
fn set_caps(caps: Caps) -> io::Result<()> {
    let mut header = CapHeader {
        version: CAPABILITY_VERSION_3,
        pid: 0,
    };
    let split = |mask: u64| (mask as u32, (mask >> 32) as u32);
    let (e0, e1) = split(caps.effective);
    let (p0, p1) = split(caps.permitted);
    let (i0, i1) = split(caps.inheritable);
    let data = [
        CapData {
            effective: e0,
            permitted: p0,
            inheritable: i0,
        },
        CapData {
            effective: e1,
            permitted: p1,
            inheritable: i1,
        },
    ];
    // SAFETY: a valid header and two data words, as version 3 requires.
    zero_or_errno(unsafe {
        libc::syscall(
            libc::SYS_capset,
            &mut header as *mut CapHeader,
            data.as_ptr(),
        )
    })
}

/// setfsuid(2) of the calling thread; it reports no error, so the new value is read back (a
/// second call with an invalid id changes nothing and returns the current one).
fn set_fsuid(uid: u32) -> io::Result<()> {
    // SAFETY: plain syscalls on integers.
    let now = unsafe {
        libc::syscall(libc::SYS_setfsuid, uid);
        libc::syscall(libc::SYS_setfsuid, u32::MAX)
    };
    if now as u32 == uid {
        Ok(())
    } else {
        Err(io::Error::from_raw_os_error(libc::EPERM))
    }
}

/// setfsgid(2) of the calling thread, read back like [`set_fsuid`].
fn set_fsgid(gid: u32) -> io::Result<()> {
    // SAFETY: plain syscalls on integers.
    let now = unsafe {
        libc::syscall(libc::SYS_setfsgid, gid);
        libc::syscall(libc::SYS_setfsgid, u32::MAX)
    };
    if now as u32 == gid {
        Ok(())
    } else {
        Err(io::Error::from_raw_os_error(libc::EPERM))
    }
}

/// setgroups(2) of the calling thread.
fn set_groups(groups: &[u32]) -> io::Result<()> {
    // SAFETY: a valid array of `len` gids.
    zero_or_errno(unsafe { libc::syscall(libc::SYS_setgroups, groups.len(), groups.as_ptr()) })
}

/// The thread's current supplementary groups (getgroups(2) reads the calling task's).
/// Asked for the count first: a buffer for the kernel's maximum (65536) was zeroed on every
/// supervised call, a tenth of a worker's time.
fn groups() -> io::Result<Vec<u32>> {
    loop {
        // SAFETY: a zero size asks for the count only; nothing is written.
        let count = unsafe { libc::syscall(libc::SYS_getgroups, 0, std::ptr::null_mut::<u32>()) };
        if count < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut groups = vec![0u32; count as usize];
        // SAFETY: a buffer of `len` gids.
        let n = unsafe { libc::syscall(libc::SYS_getgroups, groups.len(), groups.as_mut_ptr()) };
        if n >= 0 {
            groups.truncate(n as usize);
            return Ok(groups);
        }
        let e = io::Error::last_os_error();
        // EINVAL: the groups grew between the two calls (only this thread changes its own).
        if e.raw_os_error() != Some(libc::EINVAL) {
            return Err(e);
        }
    }
}

/// The current fs uid and gid: a setfs*id call with an invalid id changes nothing and returns
/// the current value.
fn fs_ids() -> (u32, u32) {
    // SAFETY: plain syscalls on integers; -1 is never a valid id, so nothing changes.
    unsafe {
        (
            libc::syscall(libc::SYS_setfsuid, u32::MAX) as u32,
            libc::syscall(libc::SYS_setfsgid, u32::MAX) as u32,
        )
    }
}

/// Whether the calling thread's fs ids and effective capabilities are `task`'s: read with three
/// system calls, not through `/proc/thread-self/status` (which costs a keep its own read and
/// parse on every call).
pub fn thread_has_ids_of(task: &Credentials) -> io::Result<bool> {
    let effective = caps()?.effective;
    Ok(fs_ids() == (task.fsuid, task.fsgid) && effective == task.effective)
}

/// What the kernel checks when a task acts on files and on other processes' /proc entries:
/// its fs uid and gid, supplementary groups and effective capabilities
/// (`/proc/TID/status`: the fourth `Uid:`/`Gid:` field, `Groups:`, `CapEff:`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credentials {
    pub fsuid: u32,
    pub fsgid: u32,
    pub groups: Vec<u32>,
    pub effective: u64,
}

impl Credentials {
    /// Parse the text of `/proc/TID/status`; `None` when a line is missing or malformed.
    pub fn from_status(status: &str) -> Option<Credentials> {
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .map(str::trim)
        };
        let fourth =
            |name: &str| -> Option<u32> { field(name)?.split_whitespace().nth(3)?.parse().ok() };
        let groups = field("Groups:")?
            .split_whitespace()
            .map(|g| g.parse().ok())
            .collect::<Option<Vec<u32>>>()?;
        Some(Credentials {
            fsuid: fourth("Uid:")?,
            fsgid: fourth("Gid:")?,
            groups,
            effective: u64::from_str_radix(field("CapEff:")?, 16).ok()?,
        })
    }
}

/// Run `f` in the calling thread switched to `task`'s credentials, and switch back: what `f`
/// does on files is then never more than the task could do itself. Only the fs ids change
/// (real, effective and saved ids stay, so switching back is always allowed) and the effective
/// capabilities become the task's as far as ours permit.
///
/// An error means the switch could not be made (the thread is as before). A thread that cannot
/// be switched BACK would go on acting with another task's credentials: that aborts the process
/// (the supervised calls then fail; nothing is done with the wrong identity).
pub fn as_task<T>(task: &Credentials, f: impl FnOnce() -> T) -> io::Result<T> {
    let ours = Saved {
        caps: caps()?,
        groups: groups()?,
        fs_ids: fs_ids(),
    };
    if ours.would_be(task) {
        // The switch would leave every credential as it is (a root agent under a root
        // supervisor): nothing to change, nothing to restore. Each switch and restore
        // allocates and commits new credentials four times.
        return Ok(f());
    }
    let switched = (|| {
        set_groups(&task.groups)?;
        set_fsgid(task.fsgid)?;
        set_fsuid(task.fsuid)?;
        set_caps(Caps {
            effective: task.effective & ours.caps.permitted,
            ..ours.caps
        })
    })();
    if let Err(e) = switched {
        ours.restore();
        return Err(e);
    }
    let out = f();
    ours.restore();
    Ok(out)
}

struct Saved {
    caps: Caps,
    groups: Vec<u32>,
    fs_ids: (u32, u32),
}

impl Saved {
    /// Whether switching to `task` would leave the thread exactly as it is: the same fs ids,
    /// the same set of groups and the same effective capabilities (the switch keeps the
    /// permitted and inheritable sets).
    fn would_be(&self, task: &Credentials) -> bool {
        let sorted = |groups: &[u32]| {
            let mut g = groups.to_vec();
            g.sort_unstable();
            g.dedup();
            g
        };
        self.fs_ids == (task.fsuid, task.fsgid)
            && task.effective & self.caps.permitted == self.caps.effective
            && sorted(&self.groups) == sorted(&task.groups)
    }

    fn restore(&self) {
        // Capabilities first: switching the fs ids and groups back needs CAP_SETUID/CAP_SETGID,
        // which the task's set may lack; then once more, as moving fsuid to 0 raises the fs
        // capabilities by itself.
        let back = set_caps(self.caps)
            .and_then(|()| set_fsuid(self.fs_ids.0))
            .and_then(|()| set_fsgid(self.fs_ids.1))
            .and_then(|()| set_groups(&self.groups))
            .and_then(|()| set_caps(self.caps))
            .and_then(|()| caps());
        match back {
            Ok(now) if now == self.caps && fs_ids() == self.fs_ids => {}
            other => {
                eprintln!(
                    "agent-guard: a supervisor thread could not take back its own credentials ({other:?}); stopping"
                );
                std::process::abort();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_threads_own_ids_are_told_from_anothers() {
        let status = std::fs::read_to_string("/proc/thread-self/status").unwrap();
        let ours = Credentials::from_status(&status).unwrap();
        assert!(thread_has_ids_of(&ours).unwrap());
        let other_uid = Credentials {
            fsuid: ours.fsuid + 1,
            ..ours.clone()
        };
        let other_gid = Credentials {
            fsgid: ours.fsgid + 1,
            ..ours.clone()
        };
        let other_caps = Credentials {
            effective: ours.effective ^ 1,
            ..ours.clone()
        };
        for other in [other_uid, other_gid, other_caps] {
            assert!(!thread_has_ids_of(&other).unwrap(), "{other:?}");
        }
    }

    #[test]
    fn credentials_are_read_from_status() {
        let status = "Name:\tbash\nUid:\t0\t1000\t0\t1000\nGid:\t0\t0\t0\t100\nGroups:\t4 27 \nCapEff:\t000001ffffffffff\n";
        assert_eq!(
            Credentials::from_status(status),
            Some(Credentials {
                fsuid: 1000,
                fsgid: 100,
                groups: vec![4, 27],
                effective: 0x1ff_ffff_ffff,
            })
        );
        let no_groups = status.replace("Groups:\t4 27 ", "Groups:");
        assert_eq!(
            Credentials::from_status(&no_groups).unwrap().groups,
            Vec::<u32>::new()
        );
        assert_eq!(Credentials::from_status("Name:\tx\n"), None);
        assert_eq!(
            Credentials::from_status(&status.replace("CapEff:\t0", "CapEff:\tz")),
            None
        );
    }

    #[test]
    fn only_a_switch_that_changes_nothing_is_skipped() {
        let ours = Saved {
            caps: Caps {
                effective: 0b0110,
                permitted: 0b0111,
                inheritable: 0,
            },
            groups: vec![27, 4],
            fs_ids: (1000, 100),
        };
        let same = Credentials {
            fsuid: 1000,
            fsgid: 100,
            groups: vec![4, 27],
            // A bit we do not have permitted is not ours to give: the switch drops it too.
            effective: 0b1110,
        };
        assert!(ours.would_be(&same));
        for other in [
            Credentials {
                fsuid: 1001,
                ..same.clone()
            },
            Credentials {
                fsgid: 101,
                ..same.clone()
            },
            Credentials {
                groups: vec![4],
                ..same.clone()
            },
            Credentials {
                groups: vec![4, 27, 1000],
                ..same.clone()
            },
            Credentials {
                effective: 0b0100,
                ..same.clone()
            },
        ] {
            assert!(!ours.would_be(&other), "{other:?}");
        }
        // The thread's own groups, read with an exact buffer.
        assert_eq!(
            groups().unwrap().len(),
            // SAFETY: a zero size only asks for the count.
            unsafe { libc::getgroups(0, std::ptr::null_mut()) } as usize
        );
    }

    #[test]
    fn a_thread_acts_with_the_task_credentials_and_switches_back() {
        if fs_ids().0 != 0 {
            eprintln!("note: not root: the switch needs CAP_SETUID; only parsing was tested");
            return;
        }
        // In a thread of its own: the test harness's threads must keep their credentials.
        std::thread::spawn(|| {
            let dir = tempfile::tempdir().unwrap();
            let root_only = dir.path().join("root-only");
            std::fs::create_dir(&root_only).unwrap();
            std::fs::set_permissions(
                &root_only,
                std::os::unix::fs::PermissionsExt::from_mode(0o700),
            )
            .unwrap();
            let before = (caps().unwrap(), fs_ids());
            let user = Credentials {
                fsuid: 65534,
                fsgid: 65534,
                groups: vec![],
                effective: 0,
            };
            let inside = as_task(&user, || {
                (
                    std::fs::write(root_only.join("f"), "x").map_err(|e| e.kind()),
                    fs_ids(),
                )
            })
            .unwrap();
            assert_eq!(inside.0, Err(io::ErrorKind::PermissionDenied));
            assert_eq!(inside.1, (65534, 65534));
            assert_eq!((caps().unwrap(), fs_ids()), before);
            std::fs::write(root_only.join("f"), "x").unwrap();
            // A task with root's capabilities but another fs uid (SECBIT_NO_SETUID_FIXUP):
            // what it creates is its own.
            let keeps_caps = Credentials {
                effective: before.0.effective,
                ..user
            };
            as_task(&keeps_caps, || std::fs::write(root_only.join("g"), "y"))
                .unwrap()
                .unwrap();
            use std::os::unix::fs::MetadataExt;
            assert_eq!(std::fs::metadata(root_only.join("g")).unwrap().uid(), 65534);
            assert_eq!((caps().unwrap(), fs_ids()), before);
        })
        .join()
        .unwrap();
    }
}
