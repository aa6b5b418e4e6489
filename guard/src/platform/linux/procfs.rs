//! The Linux [`ProcessSource`]: process facts from `/proc`.
//!
//! `/proc/PID/stat` gives the identity (pid, start time), the parent and the comm;
//! `/proc/PID/exe` the real executable; `/proc/PID/cmdline` the arguments. The parsers
//! ([`parse_stat`], [`parse_cmdline`], [`split_deleted`], [`parse_status_tgid`]) are pure and
//! compile on every unix, so they are tested (and fuzzed) anywhere; [`ProcFs`] only reads files
//! under a root directory (`/proc` unless a test points it at a crafted tree).
//!
//! Reading a process is not atomic: it can exit, and its pid be reused, between two reads. The
//! stat is therefore read again after the other files; a different start time means the
//! process we began reading is gone ([`LineageError::Vanished`]). This must never panic on
//! anything the kernel (or a crafted tree) hands it.

use std::ffi::OsString;
use std::io;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::PathBuf;
#[cfg(target_os = "linux")]
use std::{
    ffi::{CStr, CString},
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
};

use crate::lineage::{LineageError, ProcessInfo, ProcessKey, ProcessSource};

/// The fields of `/proc/PID/stat` that lineage uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stat {
    /// Field 1.
    pub pid: i32,
    /// Field 2, without its parentheses (lossy UTF-8; may hold spaces, `)` and newlines).
    pub comm: String,
    /// Field 3: R, S, D, Z (zombie), T, t, X, I, ...
    pub state: char,
    /// Field 4.
    pub ppid: i32,
    /// Field 20.
    pub num_threads: i64,
    /// Field 22: clock ticks after boot at which the process started.
    pub start_time: u64,
}

/// A `/proc/PID/stat` line that is not what the kernel writes.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StatError {
    #[error("no \"(comm)\" field: expected \"PID (COMM) STATE PPID ...\"")]
    NoComm,
    #[error("field {field} ({name}) is missing: expected at least 22 fields")]
    Missing { field: usize, name: &'static str },
    #[error("field {field} ({name}) is {value:?}: expected {expected}")]
    Invalid {
        field: usize,
        name: &'static str,
        value: String,
        expected: &'static str,
    },
}

/// Parse one `/proc/PID/stat` line.
///
/// The comm (field 2) is written raw between parentheses and may itself contain `)`, spaces or
/// newlines, so it ends at the *last* `)` of the line: no field after it can contain one.
pub fn parse_stat(line: &str) -> Result<Stat, StatError> {
    let open = line.find('(').ok_or(StatError::NoComm)?;
    let close = line.rfind(')').ok_or(StatError::NoComm)?;
    if close < open {
        return Err(StatError::NoComm);
    }
    let pid = number(1, "pid", line[..open].trim(), "a process id")?;
    let comm = line[open + 1..close].to_string();
    // Fields 3.. are plain numbers and letters separated by single spaces.
    let rest: Vec<&str> = line[close + 1..].split_ascii_whitespace().collect();
    let field = |n: usize, name: &'static str| -> Result<&str, StatError> {
        rest.get(n - 3)
            .copied()
            .ok_or(StatError::Missing { field: n, name })
    };
    let state_text = field(3, "state")?;
    let mut chars = state_text.chars();
    let state = match (chars.next(), chars.next()) {
        (Some(c), None) if c.is_ascii_alphabetic() => c,
        _ => {
            return Err(StatError::Invalid {
                field: 3,
                name: "state",
                value: state_text.to_string(),
                expected: "one letter",
            })
        }
    };
    Ok(Stat {
        pid,
        comm,
        state,
        ppid: number(4, "ppid", field(4, "ppid")?, "a process id")?,
        num_threads: number(20, "num_threads", field(20, "num_threads")?, "a count")?,
        start_time: number(22, "starttime", field(22, "starttime")?, "clock ticks")?,
    })
}

fn number<T: std::str::FromStr>(
    field: usize,
    name: &'static str,
    text: &str,
    expected: &'static str,
) -> Result<T, StatError> {
    text.parse().map_err(|_| StatError::Invalid {
        field,
        name,
        value: text.to_string(),
        expected,
    })
}

/// Split `/proc/PID/cmdline` into arguments (lossy UTF-8).
///
/// Arguments are NUL-terminated; the final terminator ends the list rather than starting an
/// empty argument. A process that rewrote its arguments (setproctitle) may leave no terminator,
/// or NUL padding: what is there is returned as is, empty strings included. Zombies and kernel
/// threads have an empty cmdline, hence no arguments.
pub fn parse_cmdline(bytes: &[u8]) -> Vec<String> {
    if bytes.is_empty() {
        return Vec::new();
    }
    bytes
        .strip_suffix(b"\0")
        .unwrap_or(bytes)
        .split(|&b| b == 0)
        .map(|arg| String::from_utf8_lossy(arg).into_owned())
        .collect()
}

/// The kernel appends this to `/proc/PID/exe` when the executable was unlinked after exec.
const DELETED_SUFFIX: &[u8] = b" (deleted)";

/// Split the kernel's ` (deleted)` marker off an `/proc/PID/exe` link target.
///
/// Returns the path the executable had and whether it was deleted. A file whose real name ends
/// in ` (deleted)` reads the same; the kernel gives no way to tell them apart.
pub fn split_deleted(target: PathBuf) -> (PathBuf, bool) {
    let bytes = target.as_os_str().as_bytes();
    match bytes.strip_suffix(DELETED_SUFFIX) {
        Some(path) if !path.is_empty() => (PathBuf::from(OsString::from_vec(path.to_vec())), true),
        _ => (target, false),
    }
}

/// The `Tgid:` (thread group, i.e. process id) line of `/proc/PID/status`.
pub fn parse_status_tgid(status: &str) -> Option<i32> {
    status
        .lines()
        .find_map(|line| line.strip_prefix("Tgid:"))
        .and_then(|value| value.trim().parse().ok())
}

/// Process facts from a procfs mount.
#[derive(Clone, Debug)]
pub struct ProcFs {
    root: PathBuf,
}

impl Default for ProcFs {
    fn default() -> Self {
        ProcFs::new()
    }
}

impl ProcFs {
    /// The system's `/proc`.
    pub fn new() -> ProcFs {
        ProcFs::with_root("/proc")
    }

    /// A procfs-shaped tree under `root` (`root/PID/stat`, `root/PID/exe`, ...).
    pub fn with_root(root: impl Into<PathBuf>) -> ProcFs {
        ProcFs { root: root.into() }
    }

    fn path(&self, pid: i32, file: &str) -> PathBuf {
        self.root.join(pid.to_string()).join(file)
    }

    fn stat(&self, pid: i32) -> Result<Stat, LineageError> {
        let path = self.path(pid, "stat");
        let bytes = std::fs::read(&path).map_err(|e| read_error(pid, path.clone(), e))?;
        let stat =
            parse_stat(&String::from_utf8_lossy(&bytes)).map_err(|e| LineageError::Malformed {
                path: path.clone(),
                reason: e.to_string(),
            })?;
        if stat.pid != pid {
            return Err(LineageError::Malformed {
                path,
                reason: format!("field 1 (pid) is {}: expected {pid}", stat.pid),
            });
        }
        Ok(stat)
    }

    /// The stat of the process `pid` belongs to: `pid` itself, or its thread group leader when
    /// `pid` is a thread id.
    fn process_stat(&self, pid: i32) -> Result<Stat, LineageError> {
        if pid <= 0 {
            return Err(LineageError::InvalidPid { pid });
        }
        let stat = self.stat(pid)?;
        // A single-threaded process is its own leader; only threads cost the extra read.
        if stat.num_threads <= 1 {
            return Ok(stat);
        }
        let path = self.path(pid, "status");
        let status = std::fs::read(&path).map_err(|e| read_error(pid, path.clone(), e))?;
        let tgid = parse_status_tgid(&String::from_utf8_lossy(&status)).ok_or_else(|| {
            LineageError::Malformed {
                path,
                reason: "no \"Tgid:\" line with a process id".to_string(),
            }
        })?;
        if tgid == pid {
            Ok(stat)
        } else {
            self.stat(tgid)
        }
    }
}

impl ProcessSource for ProcFs {
    fn info(&self, pid: i32) -> Result<ProcessInfo, LineageError> {
        let before = self.process_stat(pid)?;
        let pid = before.pid;
        // Unreadable for zombies, kernel threads and (without privilege) other users' processes.
        let (exe, exe_deleted) = match std::fs::read_link(self.path(pid, "exe")) {
            Ok(target) => {
                let (exe, deleted) = split_deleted(target);
                (Some(exe), deleted)
            }
            Err(_) => (None, false),
        };
        let argv = std::fs::read(self.path(pid, "cmdline"))
            .map(|bytes| parse_cmdline(&bytes))
            .unwrap_or_default();
        let after = self.stat(pid)?;
        if after.start_time != before.start_time {
            return Err(LineageError::Vanished { pid });
        }
        Ok(ProcessInfo {
            key: ProcessKey {
                pid,
                start: after.start_time,
            },
            // The later read: a reparenting in between is the newer truth.
            ppid: after.ppid,
            exe,
            exe_deleted,
            argv,
            comm: after.comm,
        })
    }

    fn key(&self, pid: i32) -> Result<ProcessKey, LineageError> {
        let stat = self.process_stat(pid)?;
        Ok(ProcessKey {
            pid: stat.pid,
            start: stat.start_time,
        })
    }
}

/// ENOENT (no such pid) and ESRCH (the process died while its file was open) both mean gone.
fn read_error(pid: i32, path: PathBuf, error: io::Error) -> LineageError {
    if error.kind() == io::ErrorKind::NotFound || error.raw_os_error() == Some(libc::ESRCH) {
        LineageError::Vanished { pid }
    } else {
        LineageError::Io {
            path,
            source: error,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A stat line as the kernel formats it (52 fields), with the fields lineage reads.
    fn stat_line(pid: i32, comm: &str, state: char, ppid: i32, threads: i64, start: u64) -> String {
        let mut fields: Vec<String> = vec![state.to_string(), ppid.to_string()];
        fields.extend((5..=19).map(|n| n.to_string()));
        fields.push(threads.to_string()); // 20
        fields.push("0".into()); // 21
        fields.push(start.to_string()); // 22
        fields.extend((23..=52).map(|n| n.to_string()));
        format!("{pid} ({comm}) {}\n", fields.join(" "))
    }

    #[test]
    fn comm_is_delimited_by_the_last_paren() {
        let line = stat_line(123, "a) b", 'S', 1, 1, 999);
        let stat = parse_stat(&line).unwrap();
        assert_eq!(
            (stat.comm.as_str(), stat.ppid, stat.start_time),
            ("a) b", 1, 999)
        );
        // A comm crafted to look like the rest of a stat line.
        let line = stat_line(
            7,
            "x) Z 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 (",
            'R',
            2,
            1,
            5,
        );
        let stat = parse_stat(&line).unwrap();
        assert_eq!((stat.state, stat.ppid, stat.start_time), ('R', 2, 5));
        let stat = parse_stat(&stat_line(8, "sp ace\nnew)line (", 'Z', 3, 1, 6)).unwrap();
        assert_eq!(
            (stat.comm.as_str(), stat.state),
            ("sp ace\nnew)line (", 'Z')
        );
        assert_eq!(
            parse_stat(&stat_line(9, "", 'I', 2, 1, 4)).unwrap().comm,
            ""
        );
    }

    #[test]
    fn malformed_stat_lines_are_errors_that_name_the_field() {
        let good = stat_line(123, "sleep", 'S', 1, 1, 999);
        let cut_at_field_10 = good.split(' ').take(10).collect::<Vec<_>>().join(" ");
        let cases: Vec<(String, &str)> = vec![
            ("".into(), "no \"(comm)\""),
            ("garbage".into(), "no \"(comm)\""),
            ("123 (sleep".into(), "no \"(comm)\""),
            ("123 )sleep( S 1".into(), "no \"(comm)\""),
            ("123 (sleep)".into(), "field 3 (state) is missing"),
            ("123 (sleep) S".into(), "field 4 (ppid) is missing"),
            (cut_at_field_10, "field 20 (num_threads) is missing"),
            (good.replacen("123", "12x", 1), "field 1 (pid) is \"12x\""),
            (good.replacen(" S ", " Sx ", 1), "field 3 (state) is \"Sx\""),
            (
                good.replace(" 999 ", " -1 "),
                "field 22 (starttime) is \"-1\"",
            ),
            (
                good.replacen(" S 1 ", " S one ", 1),
                "field 4 (ppid) is \"one\"",
            ),
        ];
        for (line, want) in cases {
            let error = parse_stat(&line).unwrap_err().to_string();
            assert!(error.contains(want), "{line:?}: {error}");
        }
    }

    #[test]
    fn cmdline_splitting() {
        assert_eq!(parse_cmdline(b"sleep\x0030\x00"), ["sleep", "30"]);
        assert_eq!(parse_cmdline(b""), Vec::<String>::new());
        assert_eq!(parse_cmdline(b"\x00"), [""]);
        assert_eq!(parse_cmdline(b"a\x00\x00"), ["a", ""]);
        // setproctitle without a terminator.
        assert_eq!(parse_cmdline(b"claude: worker"), ["claude: worker"]);
        assert_eq!(parse_cmdline(b"\xffx\x00"), ["\u{fffd}x"]);
    }

    #[test]
    fn deleted_suffix() {
        let split = |s: &str| split_deleted(PathBuf::from(s));
        assert_eq!(
            split("/usr/bin/claude (deleted)"),
            ("/usr/bin/claude".into(), true)
        );
        assert_eq!(split("/usr/bin/claude"), ("/usr/bin/claude".into(), false));
        assert_eq!(split(" (deleted)"), (" (deleted)".into(), false));
        assert_eq!(
            split("/a (deleted) (deleted)"),
            ("/a (deleted)".into(), true)
        );
        assert_eq!(
            parse_status_tgid("Name:\tx\nTgid:\t42\nPid:\t43\n"),
            Some(42)
        );
        assert_eq!(parse_status_tgid("Name:\tx\n"), None);
    }

    /// A crafted procfs tree with one process.
    fn crafted(pid: i32, stat: &str, exe: Option<&str>, cmdline: &[u8]) -> tempfile::TempDir {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join(pid.to_string());
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(dir.join("stat"), stat).unwrap();
        std::fs::write(dir.join("cmdline"), cmdline).unwrap();
        if let Some(exe) = exe {
            std::os::unix::fs::symlink(exe, dir.join("exe")).unwrap();
        }
        root
    }

    #[test]
    fn crafted_tree_deleted_exe_and_odd_comm() {
        let line = stat_line(4242, "cl) aude\n", 'S', 1, 1, 77);
        let root = crafted(
            4242,
            &line,
            Some("/opt/claude (deleted)"),
            b"claude\x00--yes\x00",
        );
        let info = ProcFs::with_root(root.path()).info(4242).unwrap();
        assert_eq!(
            info.key,
            ProcessKey {
                pid: 4242,
                start: 77
            }
        );
        assert_eq!(info.exe, Some(PathBuf::from("/opt/claude")));
        assert!(info.exe_deleted);
        assert_eq!(info.argv, ["claude", "--yes"]);
        assert_eq!(info.comm, "cl) aude\n");
        assert_eq!(info.ppid, 1);
    }

    #[test]
    fn crafted_tree_errors() {
        let root = crafted(5, "5 (x) S", None, b"");
        let procfs = ProcFs::with_root(root.path());
        let error = procfs.info(5).unwrap_err();
        assert!(matches!(error, LineageError::Malformed { .. }), "{error}");
        assert!(error.to_string().contains("5/stat"), "{error}");
        assert!(matches!(
            procfs.info(6),
            Err(LineageError::Vanished { pid: 6 })
        ));
        assert!(matches!(
            procfs.key(0),
            Err(LineageError::InvalidPid { pid: 0 })
        ));
        // A stat whose pid field is not the directory's pid is not that process.
        let root = crafted(7, &stat_line(8, "x", 'S', 1, 1, 1), None, b"");
        let error = ProcFs::with_root(root.path()).info(7).unwrap_err();
        assert!(
            error.to_string().contains("field 1 (pid) is 8: expected 7"),
            "{error}"
        );
    }

    #[cfg(target_os = "linux")]
    mod real {
        use super::*;
        use std::process::Command;
        use std::time::{Duration, Instant};

        #[test]
        fn stat_of_this_process() {
            let text = std::fs::read_to_string("/proc/self/stat").unwrap();
            let stat = parse_stat(&text).unwrap();
            assert_eq!(stat.pid, std::process::id() as i32);
            assert_eq!(stat.ppid, std::os::unix::process::parent_id() as i32);
            // The process is named by its main thread, which the test harness keeps waiting;
            // this thread is the one running.
            let thread = parse_stat(&std::fs::read_to_string("/proc/thread-self/stat").unwrap());
            assert_eq!(thread.unwrap().state, 'R');
            let comm = std::fs::read_to_string("/proc/self/comm").unwrap();
            assert_eq!(stat.comm, comm.trim_end_matches('\n'));
            // The test binary's comm has no spaces, so a naive split agrees on field 22.
            let naive: Vec<&str> = text.split_whitespace().collect();
            assert_eq!(stat.start_time.to_string(), naive[21]);
            assert!(stat.num_threads >= 1);
        }

        #[test]
        fn cmdline_of_this_process() {
            let own = parse_cmdline(&std::fs::read("/proc/self/cmdline").unwrap());
            assert_eq!(own, std::env::args().collect::<Vec<_>>());
        }

        #[test]
        fn this_process() {
            let procfs = ProcFs::new();
            let pid = std::process::id() as i32;
            let info = procfs.info(pid).unwrap();
            assert_eq!(info.key.pid, pid);
            assert_eq!(info.exe, Some(std::env::current_exe().unwrap()));
            assert!(!info.exe_deleted);
            assert_eq!(info.argv, std::env::args().collect::<Vec<_>>());
            assert_eq!(procfs.key(pid).unwrap(), info.key);
            assert_eq!(info.ppid, std::os::unix::process::parent_id() as i32);
        }

        #[test]
        fn a_thread_id_is_read_as_its_process() {
            let procfs = ProcFs::new();
            let pid = std::process::id() as i32;
            let (tid, key, info) = std::thread::spawn(move || {
                // SAFETY: gettid has no preconditions.
                let tid = unsafe { libc::gettid() };
                let procfs = ProcFs::new();
                (tid, procfs.key(tid).unwrap(), procfs.info(tid).unwrap())
            })
            .join()
            .unwrap();
            assert_ne!(tid, pid);
            let own = procfs.info(pid).unwrap();
            assert_eq!(key, own.key);
            assert_eq!(info.key, own.key);
            assert_eq!(info.ppid, own.ppid);
        }

        #[test]
        fn zombie_then_vanished() {
            let mut child = Command::new("true").spawn().unwrap();
            let pid = child.id() as i32;
            let procfs = ProcFs::new();
            // Not reaped yet: once it exits it is a zombie.
            let deadline = Instant::now() + Duration::from_secs(5);
            let stat = loop {
                let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
                let stat = parse_stat(&text).unwrap();
                if stat.state == 'Z' {
                    break stat;
                }
                assert!(Instant::now() < deadline, "child never became a zombie");
                std::thread::sleep(Duration::from_millis(10));
            };
            assert_eq!(stat.comm, "true");
            let info = procfs.info(pid).unwrap();
            assert_eq!(info.exe, None);
            assert!(info.argv.is_empty());
            assert_eq!(info.comm, "true");
            assert_eq!(info.key.start, stat.start_time);
            child.wait().unwrap();
            assert!(matches!(
                procfs.info(pid),
                Err(LineageError::Vanished { .. })
            ));
            assert!(matches!(
                procfs.key(pid),
                Err(LineageError::Vanished { .. })
            ));
        }

        #[test]
        fn deleted_executable_of_a_real_process() {
            let dir = tempfile::tempdir().unwrap();
            let copy = dir.path().join("sleep-copy");
            std::fs::copy("/bin/sleep", &copy).unwrap();
            let mut child = Command::new(&copy).arg("30").spawn().unwrap();
            std::fs::remove_file(&copy).unwrap();
            let info = ProcFs::new().info(child.id() as i32);
            child.kill().unwrap();
            child.wait().unwrap();
            let info = info.unwrap();
            assert_eq!(info.exe.as_deref(), Some(copy.as_path()));
            assert!(info.exe_deleted);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        #[test]
        fn parsers_never_panic_on_garbage(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = parse_stat(&String::from_utf8_lossy(&bytes));
            let _ = parse_cmdline(&bytes);
            let _ = split_deleted(PathBuf::from(OsString::from_vec(bytes.clone())));
            let _ = parse_status_tgid(&String::from_utf8_lossy(&bytes));
        }

        #[test]
        fn parse_stat_never_panics_on_stat_like_text(line in "[0-9]{0,4} ?\\(?[ -~\\n]{0,40}\\)?[ 0-9A-Z()-]{0,120}") {
            let _ = parse_stat(&line);
        }

        #[test]
        fn stat_round_trips_any_comm(
            pid in 1..i32::MAX,
            comm in proptest::collection::vec(1..=255u8, 0..=64),
            state in proptest::sample::select(vec!['R', 'S', 'D', 'Z', 'T', 't', 'X', 'I']),
            ppid in 0..i32::MAX,
            threads in 1..10_000i64,
            start in any::<u64>(),
        ) {
            let comm = String::from_utf8_lossy(&comm).into_owned();
            let line = stat_line(pid, &comm, state, ppid, threads, start);
            let stat = parse_stat(&line).unwrap();
            prop_assert_eq!(stat, Stat { pid, comm, state, ppid, num_threads: threads, start_time: start });
        }

        #[test]
        fn cmdline_round_trips(argv in proptest::collection::vec("[^\\x00]{0,20}", 0..8)) {
            let mut bytes = Vec::new();
            for arg in &argv {
                bytes.extend_from_slice(arg.as_bytes());
                bytes.push(0);
            }
            prop_assert_eq!(parse_cmdline(&bytes), argv);
        }

        #[test]
        fn deleted_suffix_round_trips(path in proptest::collection::vec(1..=255u8, 1..60)) {
            let original = PathBuf::from(OsString::from_vec(path.clone()));
            let mut marked = path.clone();
            marked.extend_from_slice(DELETED_SUFFIX);
            let (stripped, deleted) = split_deleted(PathBuf::from(OsString::from_vec(marked)));
            prop_assert!(deleted);
            prop_assert_eq!(stripped, original);
        }
    }
}

/// What a sensor needs of the acting task for one decision, read cheaply: the real executable
/// (trusted tools are identified by it), the kernel's name for it, and its start time (the
/// second half of its key). Fields that cannot be read stay empty: a task that exits while
/// being judged still gets a verdict.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct QuickFacts {
    pub exe: PathBuf,
    pub comm: String,
    pub start: u64,
    pub ppid: Option<i32>,
    /// The process a thread belongs to (`Tgid:`), when read.
    pub tgid: Option<i32>,
    /// How many threads its process has (0 when unread): a task alone in its process is the
    /// process's leader.
    pub threads: i64,
}

/// Read a small procfs file in three syscalls: open, one read, close. (`fs::read` first asks
/// statx for a size, which procfs reports as 0, then reads twice more to find the end; on the
/// supervisor's hot path those calls were a third of the cost of knowing who acted.)
/// A procfs seq_file hands over everything that fits in one read, so a read that does not fill
/// the buffer is the end; a longer file is read on until a read returns nothing.
pub fn read_small(path: &str) -> io::Result<Vec<u8>> {
    read_to_end(std::fs::File::open(path)?)
}

fn read_to_end(mut file: std::fs::File) -> io::Result<Vec<u8>> {
    use std::io::Read;
    let mut out = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = file.read(&mut chunk)?;
        out.extend_from_slice(&chunk[..n]);
        if n < chunk.len() {
            return Ok(out);
        }
    }
}

/// An open `/proc/TID` directory: one task's files read without walking `/proc/TID` again for
/// each. (For a task first seen, procfs builds each entry on its first lookup, directory and
/// files alike; the supervisor reads a few files of every process the agent forks.) A file
/// opened through the handle after the task is gone fails: it never reads a task that took the
/// pid since, so the files read through one handle are all of the same task.
#[cfg(target_os = "linux")]
pub struct TaskDir(OwnedFd);

#[cfg(target_os = "linux")]
impl TaskDir {
    pub fn open(tid: i32) -> io::Result<TaskDir> {
        let path = CString::new(format!("/proc/{tid}")).map_err(|_| io::ErrorKind::InvalidInput)?;
        // SAFETY: path is a valid C string.
        let fd = unsafe {
            libc::open(
                path.as_ptr(),
                libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: a new fd owned here.
        Ok(TaskDir(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    /// A small file of the task (see [`read_small`]).
    pub fn read(&self, name: &CStr) -> io::Result<Vec<u8>> {
        // SAFETY: a valid directory fd and C string.
        let fd = unsafe {
            libc::openat(
                self.0.as_raw_fd(),
                name.as_ptr(),
                libc::O_RDONLY | libc::O_CLOEXEC,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: a new fd owned here.
        read_to_end(std::fs::File::from(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    /// The real executable, empty when it cannot be read.
    pub fn exe(&self) -> PathBuf {
        let mut buf = vec![0u8; libc::PATH_MAX as usize];
        // SAFETY: a valid directory fd, C string and buffer of the given length.
        let n = unsafe {
            libc::readlinkat(
                self.0.as_raw_fd(),
                c"exe".as_ptr(),
                buf.as_mut_ptr().cast(),
                buf.len(),
            )
        };
        if n <= 0 || n as usize >= buf.len() {
            return PathBuf::new();
        }
        buf.truncate(n as usize);
        split_deleted(PathBuf::from(OsString::from_vec(buf))).0
    }

    /// The kernel's name of the task (`comm`, a cheaper read than the whole stat line).
    pub fn comm(&self) -> String {
        self.read(c"comm")
            .map(|bytes| {
                let line = bytes.strip_suffix(b"\n").unwrap_or(&bytes);
                String::from_utf8_lossy(line).into_owned()
            })
            .unwrap_or_default()
    }

    /// The task's arguments after argv[0] (`cmdline`), empty when they cannot be read.
    pub fn args(&self) -> Vec<String> {
        let mut argv = self
            .read(c"cmdline")
            .map(|bytes| parse_cmdline(&bytes))
            .unwrap_or_default();
        if !argv.is_empty() {
            argv.remove(0);
        }
        argv
    }

    /// [`QuickFacts`] of the task.
    pub fn facts(&self) -> QuickFacts {
        let exe = self.exe();
        let stat = self
            .read(c"stat")
            .ok()
            .and_then(|bytes| parse_stat(&String::from_utf8_lossy(&bytes)).ok());
        let ppid = stat.as_ref().map(|s| s.ppid);
        let threads = stat.as_ref().map_or(0, |s| s.num_threads);
        let (comm, start) = stat.map(|s| (s.comm, s.start_time)).unwrap_or_default();
        QuickFacts {
            exe,
            comm,
            start,
            ppid,
            tgid: None,
            threads,
        }
    }

    /// Whether the task has not been reaped: the kernel takes a `/proc/PID` directory fd as a
    /// pidfd, and signal 0 only checks existence. (A zombie counts: it makes no more calls.)
    pub fn is_alive(&self) -> bool {
        // SAFETY: signal 0 only checks existence and permission; null info is allowed.
        unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                self.0.as_raw_fd(),
                0,
                std::ptr::null::<libc::siginfo_t>(),
                0,
            ) == 0
        }
    }
}

/// [`QuickFacts`] of task `tid` (a thread id works: `exe`, `comm` and `stat` exist per thread).
#[cfg(target_os = "linux")]
pub fn quick_facts(tid: i32) -> QuickFacts {
    TaskDir::open(tid)
        .map(|dir| dir.facts())
        .unwrap_or_default()
}

/// The process a thread belongs to (`Tgid:` of `/proc/TID/status`), or None when no such
/// thread exists.
pub fn tgid_of(tid: i32) -> Option<i32> {
    read_small(&format!("/proc/{tid}/status"))
        .ok()
        .and_then(|s| parse_status_tgid(&String::from_utf8_lossy(&s)))
}

/// [`QuickFacts`] plus the process a thread belongs to (one more read, of `status`).
#[cfg(target_os = "linux")]
pub fn facts_with_tgid(tid: i32) -> QuickFacts {
    QuickFacts {
        tgid: tgid_of(tid),
        ..quick_facts(tid)
    }
}

#[cfg(all(test, target_os = "linux"))]
pub(crate) mod task_dir_tests {
    use super::*;
    use std::process::{Command, Stdio};

    #[test]
    fn reads_a_live_process_and_nothing_once_it_is_reaped() {
        let mut child = Command::new("sleep")
            .arg("30")
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let dir = TaskDir::open(child.id() as i32).unwrap();
        let facts = dir.facts();
        assert!(facts.exe.ends_with("sleep"), "{facts:?}");
        assert_eq!(facts.comm, "sleep");
        assert_eq!(dir.comm(), "sleep");
        assert_eq!(facts.ppid, Some(std::process::id() as i32));
        assert!(facts.start > 0);
        assert_eq!(facts.threads, 1);
        assert!(dir.is_alive());

        child.kill().unwrap();
        child.wait().unwrap();
        // The handle still names the reaped process: nothing is read, whoever has the pid now.
        assert!(!dir.is_alive());
        assert_eq!(dir.facts(), QuickFacts::default());
        assert_eq!(dir.comm(), "");
    }

    /// A thread of the test process that waits until dropped: a task that is not a leader.
    pub(crate) struct ParkedThread {
        pub tid: i32,
        done: Option<std::sync::mpsc::Sender<()>>,
        handle: Option<std::thread::JoinHandle<()>>,
    }

    impl ParkedThread {
        pub(crate) fn start() -> ParkedThread {
            let (tx, rx) = std::sync::mpsc::channel();
            let (done, parked) = std::sync::mpsc::channel::<()>();
            let handle = std::thread::spawn(move || {
                // SAFETY: gettid has no preconditions.
                tx.send(unsafe { libc::gettid() }).unwrap();
                let _ = parked.recv();
            });
            ParkedThread {
                tid: rx.recv().unwrap(),
                done: Some(done),
                handle: Some(handle),
            }
        }
    }

    impl Drop for ParkedThread {
        fn drop(&mut self) {
            drop(self.done.take());
            if let Some(handle) = self.handle.take() {
                let _ = handle.join();
            }
        }
    }

    #[test]
    fn a_thread_is_alive_until_it_ends() {
        let thread = ParkedThread::start();
        let dir = TaskDir::open(thread.tid).unwrap();
        // A thread has files of its own; its process has more than one thread.
        let facts = dir.facts();
        assert_eq!(facts.ppid, Some(std::os::unix::process::parent_id() as i32));
        assert!(facts.threads > 1, "{facts:?}");
        assert!(dir.is_alive());
        drop(thread);
        assert!(!dir.is_alive());
    }
}
