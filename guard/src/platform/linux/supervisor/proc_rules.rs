//! What of a process's `/proc/PID` entry the supervisor may open or follow for a task, when
//! that process is not the task's own tree: what `ps` and `top` read of any process, read-only,
//! and nothing else. Its memory (`mem`, `maps`, `smaps`, `map_files/`), environment, file
//! descriptors (`fd/`, `fdinfo/`), root and cwd (which show the file system without the
//! agent's mounts), and every write stay refused: the supervisor is an ancestor of every process
//! of the user and could open them where the agent itself could not.
//!
//! Pure: this reads paths, never `/proc` itself.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path};

/// What `ps`, `top`, `pgrep` or a parent walk read of any process.
const PUBLIC: &[&str] = &[
    "stat",
    "status",
    "cmdline",
    "comm",
    "statm",
    "wchan",
    "cgroup",
    "loginuid",
    "sessionid",
    "oom_score",
    "oom_score_adj",
    "oom_adj",
    "schedstat",
    "ctty",
    "limits",
    "io",
];

/// `path` under `/proc/N`: N and the components after it (a `task/M/` kept in them).
pub fn split(path: &Path) -> Option<(i32, Vec<&OsStr>)> {
    let mut comps = path.components();
    if comps.next() != Some(Component::RootDir) {
        return None;
    }
    if comps.next().map(|c| c.as_os_str()) != Some(OsStr::new("proc")) {
        return None;
    }
    let pid = comps.next()?.as_os_str();
    if pid.is_empty() || !pid.as_bytes().iter().all(u8::is_ascii_digit) {
        return None;
    }
    let pid = std::str::from_utf8(pid.as_bytes()).ok()?.parse().ok()?;
    Some((pid, comps.map(|c| c.as_os_str()).collect()))
}

/// Whether opening `rest` of another process's entry (`rest` as [`split`] returns it) is what
/// any process may read of any other: the directory itself, a [`PUBLIC`] file or a thread's,
/// read-only. `environ` is public only where `environ_public` (the guard's own processes, whose
/// environment the agent inherited).
pub fn is_public_read(rest: &[&OsStr], modifies: bool, environ_public: bool) -> bool {
    if modifies {
        return false;
    }
    let entry = match rest {
        [] => return true,
        [task] if *task == "task" => return true,
        [entry] => entry,
        // A thread's files: the same rule.
        [task, _tid] if *task == "task" => return true,
        [task, _tid, entry] if *task == "task" => entry,
        _ => return false,
    };
    entry
        .to_str()
        .is_some_and(|e| PUBLIC.contains(&e) || (environ_public && e == "environ"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rest(path: &str) -> (i32, Vec<String>) {
        let (pid, rest) = split(Path::new(path)).unwrap();
        (
            pid,
            rest.iter()
                .map(|c| c.to_string_lossy().into_owned())
                .collect(),
        )
    }

    #[test]
    fn a_pid_entry_splits_into_its_pid_and_the_rest() {
        assert_eq!(rest("/proc/12/fd/3"), (12, vec!["fd".into(), "3".into()]));
        assert_eq!(rest("/proc/12"), (12, vec![]));
        assert!(split(Path::new("/proc/self/mem")).is_none());
        assert!(split(Path::new("/proc/sys/kernel")).is_none());
        assert!(split(Path::new("/tmp/proc/12/mem")).is_none());
    }

    #[test]
    fn only_what_ps_reads_is_public_and_only_read_only() {
        let public = |path: &str, modifies: bool| {
            let (_, rest) = split(Path::new(path)).unwrap();
            is_public_read(&rest, modifies, false)
        };
        for path in [
            "/proc/9",
            "/proc/9/stat",
            "/proc/9/cmdline",
            "/proc/9/task",
            "/proc/9/task/10",
            "/proc/9/task/10/status",
        ] {
            assert!(public(path, false), "{path}");
            assert!(!public(path, true), "{path}");
        }
        for path in [
            "/proc/9/mem",
            "/proc/9/maps",
            "/proc/9/environ",
            "/proc/9/fd",
            "/proc/9/fd/3",
            "/proc/9/fdinfo/3",
            "/proc/9/root",
            "/proc/9/cwd",
            "/proc/9/map_files/1-2",
            "/proc/9/task/10/mem",
            "/proc/9/task/10/fd/1",
        ] {
            assert!(!public(path, false), "{path}");
        }
        assert!(!public("/proc/9/stat", true));
        let (_, environ) = split(Path::new("/proc/9/environ")).unwrap();
        assert!(is_public_read(&environ, false, true));
    }
}
