//! Resolve a path a task passed to a syscall into the absolute path the kernel will act on, from
//! the task's point of view: relative to its cwd or dirfd, every intermediate symlink followed,
//! the final one followed only when the syscall follows it.
//!
//! The walk is done component by component in user space because the supervisor is another
//! process: `/proc/self` and `/proc/thread-self` (and the symlinks into them, `/dev/fd`,
//! `/dev/stdin`) must mean the task, not the supervisor. It must never follow a symlink the
//! kernel would not follow for the same call, or the judge would see the wrong file; and never
//! follow a magic link of a process outside the agent's tree (see `check_proc_link`).

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use super::call::Base;
use super::proc_rules;
use super::refusal::refused;
use super::task::{self, TaskReader};
use crate::engine::Action;
use crate::platform::linux::sys::openat2::{openat2, OpenHow, Resolve};

/// The kernel's limit on symlinks followed in one lookup.
const MAX_SYMLINKS: u32 = 40;

/// Who asks: the thread, for its cwd, its fd table and `/proc/self`, read through `tasks`.
#[derive(Clone, Copy)]
pub struct Asker<'a> {
    pub tid: i32,
    pub tasks: &'a dyn TaskReader,
}

impl Asker<'_> {
    /// The thread's process id, read only when a path goes through `/proc/self`.
    fn tgid(self) -> i32 {
        self.tasks.tgid(self.tid).unwrap_or(self.tid)
    }
}

fn err(errno: i32) -> io::Error {
    io::Error::from_raw_os_error(errno)
}

/// The absolute path of the base directory.
pub fn base_dir(asker: Asker<'_>, base: Base) -> io::Result<PathBuf> {
    let raw = match base {
        Base::Cwd => asker.tasks.cwd(asker.tid)?,
        Base::Fd(fd) => asker.tasks.fd_target(asker.tid, fd)?,
    };
    if raw.first() != Some(&b'/') {
        // A pipe, socket or anon inode: not a directory.
        return Err(err(libc::ENOTDIR));
    }
    Ok(task::bytes_to_path(raw))
}

/// Whether `path` is a per-process magic link of procfs (`/proc/N/fd/K`, `/proc/N/cwd`, ...),
/// whose readlink text may not be a path at all (`pipe:[123]`).
fn is_proc_magic(path: &Path) -> bool {
    let mut comps = path.components().skip(1);
    let is_proc = comps.next().map(|c| c.as_os_str() == "proc") == Some(true);
    let is_pid = comps
        .next()
        .map(|c| c.as_os_str().as_bytes().iter().all(u8::is_ascii_digit))
        == Some(true);
    is_proc && is_pid
}

/// Following a link under `/proc/N` (`root`, `cwd`, `exe`, `fd/K`, `map_files/...`, `ns/...`)
/// leads to process N's own objects: its root and cwd show the file system without the agent's
/// mounts, its fds are files it opened. Refused for a process outside the agent's tree.
fn check_proc_link(asker: Asker<'_>, candidate: &Path) -> io::Result<()> {
    let Some((pid, _)) = proc_rules::split(candidate) else {
        return Ok(());
    };
    if pid == asker.tid || pid == asker.tgid() || asker.tasks.in_tree(pid) {
        return Ok(());
    }
    Err(refused(Action::Trace {
        target_pid: pid,
        path: Some(candidate.to_path_buf()),
    }))
}

/// Resolve `raw` (the bytes the task passed) from `base`. With `in_root`, the base directory is
/// also the root (`RESOLVE_IN_ROOT`): absolute paths and `..` stay beneath it.
/// The result is absolute and clean. The final component need not exist.
pub fn resolve(
    asker: Asker<'_>,
    base: Base,
    raw: &[u8],
    follow_final: bool,
    in_root: bool,
) -> io::Result<PathBuf> {
    resolve_traced(asker, base, raw, follow_final, in_root).map(|(path, _)| path)
}

/// [`resolve`], and the last /proc magic link it followed (`/proc/N/fd/K`, `cwd`, ...): the
/// text of such a link is the kernel's name for the object, which may no longer be a path at
/// all (`/tmp/x (deleted)`, `/memfd:x (deleted)`); the link itself still reaches the object.
pub fn resolve_traced(
    asker: Asker<'_>,
    base: Base,
    raw: &[u8],
    follow_final: bool,
    in_root: bool,
) -> io::Result<(PathBuf, Option<PathBuf>)> {
    let mut magic = None;
    if raw.is_empty() {
        return Err(err(libc::ENOENT));
    }
    let root = if in_root {
        base_dir(asker, base)?
    } else {
        PathBuf::from("/")
    };
    let mut cur = if raw[0] == b'/' || in_root {
        root.clone()
    } else {
        base_dir(asker, base)?
    };
    if !in_root {
        if let Some(path) = resolve_without_symlinks(&cur, raw, follow_final) {
            return Ok((path, None));
        }
    }
    let mut pending: std::collections::VecDeque<Vec<u8>> = split(raw).collect();
    let mut links = 0;
    while let Some(comp) = pending.pop_front() {
        let last = pending.is_empty();
        match comp.as_slice() {
            b"." => continue,
            b".." => {
                if cur != root {
                    cur.pop();
                }
                continue;
            }
            _ => {}
        }
        // `/proc/self` means the asking task, not the supervisor that reads the link.
        if cur == Path::new("/proc") && (comp == b"self" || comp == b"thread-self") {
            let tgid = asker.tgid();
            cur = if comp == b"self" {
                PathBuf::from(format!("/proc/{tgid}"))
            } else {
                PathBuf::from(format!("/proc/{tgid}/task/{}", asker.tid))
            };
            continue;
        }
        let candidate = cur.join(std::ffi::OsStr::from_bytes(&comp));
        if last && !follow_final {
            cur = candidate;
            break;
        }
        let meta = match std::fs::symlink_metadata(&candidate) {
            Ok(m) => m,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) && last => {
                cur = candidate;
                break;
            }
            Err(e) => return Err(e),
        };
        if meta.file_type().is_symlink() {
            check_proc_link(asker, &candidate)?;
            links += 1;
            if links > MAX_SYMLINKS {
                return Err(err(libc::ELOOP));
            }
            let target = std::fs::read_link(&candidate)?
                .into_os_string()
                .into_encoded_bytes();
            if is_proc_magic(&candidate) {
                magic = Some(candidate.clone());
            }
            if target.first() != Some(&b'/') && is_proc_magic(&candidate) {
                // An fd that is a pipe, socket or anon inode: the magic link is the object.
                if last {
                    cur = candidate;
                    break;
                }
                return Err(err(libc::ENOTDIR));
            }
            if target.first() == Some(&b'/') {
                cur = root.clone();
            }
            for part in split(&target).collect::<Vec<_>>().into_iter().rev() {
                pending.push_front(part);
            }
            continue;
        }
        if !last && !meta.is_dir() {
            return Err(err(libc::ENOTDIR));
        }
        cur = candidate;
    }
    Ok((crate::engine::path::clean(&cur), magic))
}

/// The common case in one step: when no directory on the way is a symlink, the lexically clean
/// path *is* the resolved path. One `openat2(RESOLVE_NO_SYMLINKS)` of the parent proves it (instead
/// of one lstat per component); `None` sends the caller to the component walk (a symlink on the
/// way, a missing directory whose errno the walk reports, or anything under /proc, whose `self`
/// must be rewritten).
fn resolve_without_symlinks(base: &Path, raw: &[u8], follow_final: bool) -> Option<PathBuf> {
    let joined = base.join(std::ffi::OsStr::from_bytes(raw));
    let (last, _) = last_component(raw);
    if last.is_empty() || last == b"." || last == b".." {
        return None;
    }
    let full = crate::engine::path::clean(&joined);
    if full.starts_with("/proc") {
        return None;
    }
    let how = OpenHow {
        flags: (libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC) as u64,
        mode: 0,
        resolve: Resolve::NO_SYMLINKS,
    };
    // The walk is made on the raw joined path, not the cleaned one: `..` after a directory is
    // only lexical when that directory is not a symlink, which RESOLVE_NO_SYMLINKS checks.
    let raw_parent = {
        let bytes = joined.as_os_str().as_bytes();
        let end = bytes.len() - bytes.iter().rev().take_while(|&&b| b == b'/').count();
        let cut = bytes[..end].iter().rposition(|&b| b == b'/')?;
        CString::new(if cut == 0 { &b"/"[..] } else { &bytes[..cut] }).ok()?
    };
    // The fd proves the walk; it is closed at once.
    drop(openat2(&raw_parent, &how).ok()?);
    if follow_final {
        match std::fs::symlink_metadata(&full) {
            Ok(meta) if meta.file_type().is_symlink() => return None,
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
            Err(_) => return None,
        }
    }
    Some(full)
}

fn split(raw: &[u8]) -> impl Iterator<Item = Vec<u8>> + '_ {
    raw.split(|&b| b == b'/')
        .filter(|c| !c.is_empty())
        .map(<[u8]>::to_vec)
}

/// The raw path's last component as the task named it (`.` and `..` included), and whether the
/// path ended with a slash.
pub fn last_component(raw: &[u8]) -> (&[u8], bool) {
    let trailing = raw.len() > 1 && raw.ends_with(b"/");
    let trimmed = {
        let mut end = raw.len();
        while end > 1 && raw[end - 1] == b'/' {
            end -= 1;
        }
        &raw[..end]
    };
    let name = match trimmed.iter().rposition(|&b| b == b'/') {
        Some(i) => &trimmed[i + 1..],
        None => trimmed,
    };
    (name, trailing)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::linux::supervisor::task::LiveTasks;
    use crate::platform::linux::sys;
    use std::os::unix::fs::symlink;

    fn me() -> Asker<'static> {
        Asker {
            tid: sys::process::tid(),
            tasks: &LiveTasks,
        }
    }

    #[test]
    fn intermediate_symlinks_are_followed_the_final_one_only_on_request() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real");
        std::fs::create_dir(&real).unwrap();
        std::fs::write(real.join("f"), b"x").unwrap();
        symlink(&real, dir.path().join("via")).unwrap();
        symlink(real.join("f"), dir.path().join("link")).unwrap();
        let canon = std::fs::canonicalize(dir.path()).unwrap();
        let raw = format!("{}/via/./f", dir.path().display());
        let got = resolve(me(), Base::Cwd, raw.as_bytes(), false, false).unwrap();
        assert_eq!(got, canon.join("real/f"));
        let link = format!("{}/link", dir.path().display());
        assert_eq!(
            resolve(me(), Base::Cwd, link.as_bytes(), false, false).unwrap(),
            canon.join("link")
        );
        assert_eq!(
            resolve(me(), Base::Cwd, link.as_bytes(), true, false).unwrap(),
            canon.join("real/f")
        );
        // A missing final component resolves; a missing intermediate one does not.
        let missing = format!("{}/real/new", dir.path().display());
        assert_eq!(
            resolve(me(), Base::Cwd, missing.as_bytes(), true, false).unwrap(),
            canon.join("real/new")
        );
        let bad = format!("{}/nope/new", dir.path().display());
        let e = resolve(me(), Base::Cwd, bad.as_bytes(), true, false).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ENOENT));
    }

    #[test]
    fn dotdot_after_a_symlinked_directory_is_physical_not_lexical() {
        let dir = tempfile::tempdir().unwrap();
        let canon = std::fs::canonicalize(dir.path()).unwrap();
        std::fs::create_dir_all(canon.join("elsewhere/sub")).unwrap();
        symlink(canon.join("elsewhere/sub"), canon.join("link")).unwrap();
        let raw = format!("{}/link/../x", canon.display());
        // The kernel goes up from elsewhere/sub, not from the directory holding the link.
        assert_eq!(
            resolve(me(), Base::Cwd, raw.as_bytes(), false, false).unwrap(),
            canon.join("elsewhere/x")
        );
        // Without symlinks, `..` is lexical (the one-step path).
        std::fs::create_dir(canon.join("plain")).unwrap();
        let raw = format!("{}/plain/../y", canon.display());
        assert_eq!(
            resolve(me(), Base::Cwd, raw.as_bytes(), false, false).unwrap(),
            canon.join("y")
        );
    }

    #[test]
    fn relative_paths_start_at_the_dirfd() {
        let dir = tempfile::tempdir().unwrap();
        let canon = std::fs::canonicalize(dir.path()).unwrap();
        std::fs::create_dir(dir.path().join("a")).unwrap();
        std::fs::create_dir(dir.path().join("etc")).unwrap();
        let f = std::fs::File::open(dir.path()).unwrap();
        let fd = std::os::fd::AsRawFd::as_raw_fd(&f);
        let got = resolve(me(), Base::Fd(fd), b"a/../b", false, false).unwrap();
        assert_eq!(got, canon.join("b"));
        let rooted = resolve(me(), Base::Fd(fd), b"/../../etc/x", false, true).unwrap();
        assert_eq!(rooted, canon.join("etc/x"));
    }

    #[test]
    fn proc_self_means_the_asker() {
        let got = resolve(me(), Base::Cwd, b"/proc/self/cwd", true, false).unwrap();
        assert_eq!(got, std::env::current_dir().unwrap());
    }

    #[test]
    fn last_component_keeps_dots() {
        assert_eq!(last_component(b"a/b/"), (&b"b"[..], true));
        assert_eq!(last_component(b"a/."), (&b"."[..], false));
        assert_eq!(last_component(b"x"), (&b"x"[..], false));
    }
}
