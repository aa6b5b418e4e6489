//! Whether secret zones can be hidden from the agent instead of supervising every read.
//!
//! Supervising read-only opens costs a round trip to the supervisor on every open the agent
//! makes (tens of thousands in a build). When it is safe, `run` instead gives the agent its own
//! mount namespace (inside a user namespace unless we are root) in which every secret zone root
//! is covered by [`secret_fs`](super::secret_fs), a FUSE file system served by the supervisor that
//! judges each open, and leaves read-only opens to the kernel. The agent's tree is also put in a
//! Landlock domain, whose only effect is the ptrace rule: a process in the domain cannot read
//! through `/proc/PID/{root,cwd,fd}` of a process outside it (the human's shell), which would
//! otherwise show the file system without our mounts.
//!
//! Hiding is chosen only when it leaves nothing readable that supervision would have denied; this
//! module decides that, before the fork. Everything it cannot vouch for falls back to supervised
//! reads, with the reason (printed by `run` with `AGENT_GUARD_LOG=debug`):
//! - a secret root that does not exist yet, where the helper that covers it when it appears
//!   (`late_roots`) cannot run;
//! - a secret file with another hard link (the other name is outside every mount of ours);
//! - a secret root that is a symlink to nothing yet (what it will point to is not watched);
//! - a secret reachable through another mount of its file system (a bind mount elsewhere);
//! - no Landlock, no `/dev/fuse` we may open, or more roots than one message can carry.
//!
//! The namespace itself is made in the forked child (`launch`); when that fails (user namespaces
//! disabled, AppArmor's `restrict_unprivileged_userns`), the child installs the filter that
//! supervises reads instead, so a failure costs speed, never a secret.

use std::ffi::CString;
use std::fmt;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use super::late_roots;
use super::secret_inodes::SecretInodes;
use crate::platform::linux::sys::landlock::AbiVersion;
use crate::platform::linux::sys::{fuse, ipc, process};

/// Set to `1` to keep supervising reads even where secrets could be hidden (comparisons, tests).
pub const SUPERVISE_READS_ENV: &str = "AGENT_GUARD_SUPERVISE_READS";

/// The most roots hidden at once: their FUSE fds travel in one `SCM_RIGHTS` message with the
/// listener.
pub const MAX_HIDDEN_ROOTS: usize = ipc::MAX_FDS - 1;

/// One secret zone root to cover.
#[derive(Clone, Debug)]
pub struct HiddenRoot {
    /// The root as the policy names it (the paths in denial records).
    pub shown: PathBuf,
    /// The real directory or file, symlinks resolved: the mount target, and what the FUSE file
    /// system reads.
    pub real: PathBuf,
    pub is_dir: bool,
}

/// Why reads stay supervised.
#[derive(Debug)]
pub enum Fallback {
    NoSecretZones,
    Requested,
    MissingRoot(PathBuf),
    DanglingRoot(PathBuf),
    HardLinked(PathBuf),
    MountedTwice { root: PathBuf, also_at: PathBuf },
    NoLandlock,
    NoFuse(std::io::Error),
    TooManyRoots(usize),
}

impl fmt::Display for Fallback {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fallback::NoSecretZones => write!(f, "the policy has no secret zones"),
            Fallback::Requested => write!(f, "{SUPERVISE_READS_ENV} is set"),
            Fallback::MissingRoot(p) => write!(
                f,
                "secret zone {} does not exist yet, and this kernel cannot list a process's \
                 children (CONFIG_PROC_CHILDREN) for the helper that would cover it later",
                p.display()
            ),
            Fallback::DanglingRoot(p) => write!(
                f,
                "secret zone {} is a symlink to something that does not exist yet",
                p.display()
            ),
            Fallback::HardLinked(p) => {
                write!(f, "secret file {} has other hard links", p.display())
            }
            Fallback::MountedTwice { root, also_at } => write!(
                f,
                "secret zone {} is also reachable at {}",
                root.display(),
                also_at.display()
            ),
            Fallback::NoLandlock => write!(f, "Landlock is not available"),
            Fallback::NoFuse(e) => write!(f, "/dev/fuse cannot be opened: {e}"),
            Fallback::TooManyRoots(n) => {
                write!(f, "{n} secret zones, more than {MAX_HIDDEN_ROOTS}")
            }
        }
    }
}

/// The secret roots to cover: those that exist, mounted at start, and those that do not yet,
/// covered by `late_roots` when they appear; and the guard's own hidden directories (the
/// snapshot store), each covered by an empty read-only tmpfs: nothing of them is to be seen.
#[derive(Debug, Default)]
pub struct SecretPlan {
    pub present: Vec<HiddenRoot>,
    pub pending: Vec<PathBuf>,
    pub covers: Vec<PathBuf>,
}

impl SecretPlan {
    /// Whether there is anything to hide.
    pub fn is_empty(&self) -> bool {
        self.present.is_empty() && self.pending.is_empty() && self.covers.is_empty()
    }
}

/// The secret roots and hidden guard directories to hide, or why reads must be supervised
/// instead.
pub fn plan(
    roots: &[PathBuf],
    secrets: &SecretInodes,
    hidden_dirs: &[PathBuf],
) -> Result<SecretPlan, Fallback> {
    if roots.is_empty() && hidden_dirs.is_empty() {
        return Err(Fallback::NoSecretZones);
    }
    if std::env::var_os(SUPERVISE_READS_ENV).is_some_and(|v| v == "1") {
        return Err(Fallback::Requested);
    }
    if roots.len() > MAX_HIDDEN_ROOTS {
        return Err(Fallback::TooManyRoots(roots.len()));
    }
    if let Some(path) = secrets.hard_linked() {
        return Err(Fallback::HardLinked(path.to_path_buf()));
    }
    let mounts = std::fs::read_to_string("/proc/self/mountinfo")
        .map(|text| parse_mountinfo(&text))
        .unwrap_or_default();
    let mut hidden = SecretPlan::default();
    for shown in roots {
        let Some((real, meta)) = std::fs::canonicalize(shown)
            .ok()
            .and_then(|real| std::fs::metadata(&real).ok().map(|m| (real, m)))
        else {
            // A symlink to a place that does not exist yet: its target, wherever it will be, is
            // not watched.
            if std::fs::symlink_metadata(shown).is_ok() {
                return Err(Fallback::DanglingRoot(shown.clone()));
            }
            if !late_roots::supported() {
                return Err(Fallback::MissingRoot(shown.clone()));
            }
            hidden.pending.push(shown.clone());
            continue;
        };
        if let Some(also_at) = other_mount_of(&real, &mounts) {
            return Err(Fallback::MountedTwice {
                root: shown.clone(),
                also_at,
            });
        }
        hidden.present.push(HiddenRoot {
            shown: shown.clone(),
            real,
            is_dir: meta.is_dir(),
        });
    }
    for dir in hidden_dirs {
        // Made by `run` before it starts; one that is missing has nothing to hide yet.
        let Ok(real) = std::fs::canonicalize(dir) else {
            continue;
        };
        if let Some(also_at) = other_mount_of(&real, &mounts) {
            return Err(Fallback::MountedTwice {
                root: dir.clone(),
                also_at,
            });
        }
        hidden.covers.push(real);
    }
    if !AbiVersion::current().is_supported() {
        return Err(Fallback::NoLandlock);
    }
    if !hidden.present.is_empty() || !hidden.pending.is_empty() {
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/fuse")
            .map_err(Fallback::NoFuse)?;
    }
    Ok(hidden)
}

/// A line of /proc/self/mountinfo: the device, the directory of that file system mounted, and
/// where.
#[derive(Debug, PartialEq)]
struct MountLine {
    dev: String,
    root: PathBuf,
    mount_point: PathBuf,
}

fn unescape(field: &str) -> PathBuf {
    // mountinfo writes space, tab, newline and backslash as \ooo.
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && i + 3 < bytes.len()
            && bytes[i + 1..i + 4]
                .iter()
                .all(|b| (b'0'..=b'7').contains(b))
        {
            let v = (bytes[i + 1] - b'0') * 64 + (bytes[i + 2] - b'0') * 8 + (bytes[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    PathBuf::from(<std::ffi::OsString as std::os::unix::ffi::OsStringExt>::from_vec(out))
}

fn parse_mountinfo(text: &str) -> Vec<MountLine> {
    text.lines()
        .filter_map(|line| {
            let mut fields = line.split(' ');
            let (_id, _parent) = (fields.next()?, fields.next()?);
            let dev = fields.next()?.to_string();
            let root = unescape(fields.next()?);
            let mount_point = unescape(fields.next()?);
            Some(MountLine {
                dev,
                root,
                mount_point,
            })
        })
        .collect()
}

/// Another place where the file system holding `real` shows it: a mount of the same device whose
/// root contains `real`'s path within that file system.
fn other_mount_of(real: &Path, mounts: &[MountLine]) -> Option<PathBuf> {
    // The mount `real` is seen through: the deepest mount point above it (the last listed wins
    // when one is mounted over another).
    let (home, suffix) = mounts
        .iter()
        .filter_map(|m| real.strip_prefix(&m.mount_point).ok().map(|s| (m, s)))
        .max_by_key(|(m, _)| m.mount_point.as_os_str().len())?;
    let in_fs = home.root.join(suffix);
    mounts
        .iter()
        .filter(|m| m.dev == home.dev && !std::ptr::eq(*m, home))
        .filter_map(|m| {
            let rest = in_fs.strip_prefix(&m.root).ok()?;
            let at = m.mount_point.join(rest);
            (at != real).then_some(at)
        })
        .next()
}

/// What the forked child needs to make the view, prepared before the fork (it may not allocate).
pub struct ChildPlan {
    /// Unshare a user namespace too (we are not root).
    pub user_namespace: bool,
    pub uid_map: CString,
    pub gid_map: CString,
    /// Per root: the mount target and its FUSE options ([`fuse::options`]).
    pub mounts: Vec<(CString, CString)>,
    /// The hidden guard directories, each covered by an empty read-only tmpfs.
    pub covers: Vec<CString>,
    /// The directory to enter again once the mounts are made, so that a cwd inside a secret zone
    /// is the covered one.
    pub cwd: Option<CString>,
    /// Roots that do not exist yet, for the helper.
    pub pending: Vec<PathBuf>,
}

impl ChildPlan {
    pub fn new(roots: &[HiddenRoot], pending: &[PathBuf], covers: &[PathBuf]) -> Option<ChildPlan> {
        let (uid, gid) = process::effective_ids();
        let mut mounts = Vec::new();
        for root in roots {
            let target = CString::new(root.real.as_os_str().as_bytes()).ok()?;
            mounts.push((target, fuse::options(root.is_dir, uid, gid)));
        }
        let covers = covers
            .iter()
            .map(|c| CString::new(c.as_os_str().as_bytes()).ok())
            .collect::<Option<Vec<_>>>()?;
        let cwd = std::env::current_dir()
            .ok()
            .and_then(|d| CString::new(d.as_os_str().as_bytes()).ok());
        Some(ChildPlan {
            user_namespace: uid != 0,
            uid_map: CString::new(format!("{uid} {uid} 1\n")).ok()?,
            gid_map: CString::new(format!("{gid} {gid} 1\n")).ok()?,
            mounts,
            covers,
            cwd,
            pending: pending.to_vec(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTINFO: &str = "\
27 1 254:0 / / rw,relatime - ext4 /dev/vda rw
22 27 0:21 / /proc rw,relatime - proc proc rw
40 27 254:0 /home /srv/home\\040copy rw,relatime - ext4 /dev/vda rw
41 27 254:0 /var /mnt/var rw,relatime - ext4 /dev/vda rw
";

    #[test]
    fn a_bind_mount_of_an_ancestor_is_another_way_in() {
        let mounts = parse_mountinfo(MOUNTINFO);
        assert_eq!(mounts[2].mount_point, Path::new("/srv/home copy"));
        assert_eq!(
            other_mount_of(Path::new("/home/u/.ssh"), &mounts),
            Some(PathBuf::from("/srv/home copy/u/.ssh"))
        );
        assert_eq!(other_mount_of(Path::new("/etc/secret"), &mounts), None);
    }

    #[test]
    fn a_path_seen_through_the_bind_mount_finds_the_original() {
        let mounts = parse_mountinfo(MOUNTINFO);
        assert_eq!(
            other_mount_of(Path::new("/srv/home copy/u/.ssh"), &mounts),
            Some(PathBuf::from("/home/u/.ssh"))
        );
    }

    #[test]
    fn another_file_system_is_not_an_alias() {
        let mounts = parse_mountinfo(MOUNTINFO);
        assert_eq!(other_mount_of(Path::new("/proc/self"), &mounts), None);
    }
}
