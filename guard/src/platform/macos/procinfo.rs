//! Live process facts on macOS, as pure parsers of the kernel's byte layouts plus the walk up
//! the parent chain.
//!
//! - `sysctl({CTL_KERN, KERN_PROCARGS2, pid})` returns `argc` (a native-endian `int`), the exec
//!   path, NUL padding, `argc` NUL-terminated arguments, then the environment. The process owns
//!   that memory and may rewrite it (Node's `process.title`), so the buffer is hostile input:
//!   the parser never trusts `argc`, never reads past the buffer and never panics.
//! - `proc_pidinfo(PROC_PIDTBSDINFO)` fills a `struct proc_bsdinfo` (136 bytes); [`BsdInfo::parse`]
//!   reads the fields the lineage needs from its bytes, so the layout is tested here and checked
//!   against `libc::proc_bsdinfo` at compile time on macOS (see `sys`).
//!
//! No syscalls here; the `sys` module feeds these functions on macOS.

use std::path::PathBuf;

/// `MAXCOMLEN` from `sys/param.h`: the length of `p_comm`.
pub const MAXCOMLEN: usize = 16;

/// A parsed `KERN_PROCARGS2` buffer.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProcArgs {
    /// The path the kernel exec'd (not `argv[0]`).
    pub exec_path: PathBuf,
    /// The arguments as the process shows them now (`argv[0]` included).
    pub argv: Vec<String>,
    pub env: Vec<String>,
}

/// Why a `KERN_PROCARGS2` buffer could not be parsed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProcArgsError {
    #[error("KERN_PROCARGS2 buffer of {0} bytes is shorter than the 4-byte argc")]
    TooShort(usize),
    #[error("KERN_PROCARGS2 argc is {0}: expected a count from 0 to the buffer size")]
    BadArgc(i32),
    #[error("KERN_PROCARGS2 exec path is not NUL-terminated within the buffer")]
    UnterminatedExecPath,
    #[error("KERN_PROCARGS2 buffer ends after {found} of {argc} arguments")]
    Truncated { argc: usize, found: usize },
}

impl ProcArgs {
    /// Parse a `KERN_PROCARGS2` buffer (exactly the bytes the sysctl returned).
    ///
    /// Known ambiguity, shared with `ps`: an empty `argv[0]` is indistinguishable from the NUL
    /// padding after the exec path and is skipped.
    pub fn parse(buf: &[u8]) -> Result<ProcArgs, ProcArgsError> {
        let argc_bytes: [u8; 4] = buf
            .get(..4)
            .and_then(|b| b.try_into().ok())
            .ok_or(ProcArgsError::TooShort(buf.len()))?;
        let argc_raw = i32::from_ne_bytes(argc_bytes);
        // Each argument takes at least its NUL, so argc can never exceed the buffer length.
        let argc = usize::try_from(argc_raw)
            .ok()
            .filter(|&n| n <= buf.len())
            .ok_or(ProcArgsError::BadArgc(argc_raw))?;
        let rest = &buf[4..];

        let path_end = rest
            .iter()
            .position(|&b| b == 0)
            .ok_or(ProcArgsError::UnterminatedExecPath)?;
        let exec_path = PathBuf::from(lossy(&rest[..path_end]));
        let mut cursor = path_end;
        while cursor < rest.len() && rest[cursor] == 0 {
            cursor += 1;
        }

        let mut strings = rest[cursor..].split(|&b| b == 0);
        let mut argv = Vec::with_capacity(argc.min(64));
        // `split` yields a last piece after the final NUL: a string is complete only if a NUL
        // follows it, which `consumed` tracks.
        let mut consumed = cursor;
        while argv.len() < argc {
            match strings.next() {
                Some(s) if consumed + s.len() < rest.len() => {
                    consumed += s.len() + 1;
                    argv.push(lossy(s));
                }
                _ => {
                    return Err(ProcArgsError::Truncated {
                        argc,
                        found: argv.len(),
                    })
                }
            }
        }

        let mut env = Vec::new();
        for s in strings {
            // The environment ends at an empty string (what follows are the `apple[]` strings
            // the kernel adds for dyld) or at the end of the buffer.
            if s.is_empty() || consumed + s.len() >= rest.len() {
                break;
            }
            consumed += s.len() + 1;
            env.push(lossy(s));
        }

        Ok(ProcArgs {
            exec_path,
            argv,
            env,
        })
    }

    /// `argv[0]`, or the empty string when the process has none.
    pub fn argv0(&self) -> &str {
        self.argv.first().map(String::as_str).unwrap_or("")
    }
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The fields of `struct proc_bsdinfo` (from `sys/proc_info.h`) that lineage needs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BsdInfo {
    pub pid: u32,
    pub ppid: u32,
    pub uid: u32,
    /// `p_comm`: the executable's basename cut to 16 bytes.
    pub comm: String,
    /// `p_name`: up to 32 bytes, empty unless set.
    pub name: String,
    pub start_sec: u64,
    pub start_usec: u64,
}

/// Byte offsets in `struct proc_bsdinfo` (every field is naturally aligned; same on arm64 and
/// x86_64). Checked against `libc::proc_bsdinfo` with `offset_of!` when building for macOS.
pub mod bsdinfo_layout {
    pub const SIZE: usize = 136;
    pub const PID: usize = 12;
    pub const PPID: usize = 16;
    pub const UID: usize = 20;
    pub const COMM: usize = 48;
    pub const NAME: usize = 64;
    pub const START_TVSEC: usize = 120;
    pub const START_TVUSEC: usize = 128;
}

impl BsdInfo {
    /// Read a `proc_bsdinfo` from the bytes `proc_pidinfo` filled; `None` if it returned fewer
    /// bytes than the structure (an error or an older kernel).
    pub fn parse(bytes: &[u8]) -> Option<BsdInfo> {
        use bsdinfo_layout::*;
        if bytes.len() < SIZE {
            return None;
        }
        let u32_at = |o: usize| u32::from_ne_bytes(bytes[o..o + 4].try_into().expect("4 bytes"));
        let u64_at = |o: usize| u64::from_ne_bytes(bytes[o..o + 8].try_into().expect("8 bytes"));
        Some(BsdInfo {
            pid: u32_at(PID),
            ppid: u32_at(PPID),
            uid: u32_at(UID),
            comm: c_string(&bytes[COMM..COMM + MAXCOMLEN]),
            name: c_string(&bytes[NAME..NAME + 2 * MAXCOMLEN]),
            start_sec: u64_at(START_TVSEC),
            start_usec: u64_at(START_TVUSEC),
        })
    }

    /// Start time in microseconds since the epoch: with the pid, a key that survives pid reuse.
    pub fn start_micros(&self) -> u64 {
        self.start_sec
            .saturating_mul(1_000_000)
            .saturating_add(self.start_usec)
    }
}

/// A fixed-size C string field: up to the first NUL, or the whole field if there is none.
fn c_string(field: &[u8]) -> String {
    let end = field.iter().position(|&b| b == 0).unwrap_or(field.len());
    lossy(&field[..end])
}

/// Reads live facts about a process. On macOS `sys::LiveInspector` asks the kernel; tests use
/// a table. Every method returns `None` for a process that is gone or not readable.
pub trait ProcessInspector: Send + Sync {
    /// `KERN_PROCARGS2`: argv as the process shows it now.
    fn process_args(&self, pid: i32) -> Option<ProcArgs>;
    /// `PROC_PIDTBSDINFO`.
    fn bsd_info(&self, pid: i32) -> Option<BsdInfo>;
    /// `proc_pidpath`: the executable's path.
    fn exe_path(&self, pid: i32) -> Option<PathBuf>;
}

/// One process of a parent walk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AncestorFacts {
    pub pid: i32,
    pub start_micros: u64,
    pub comm: String,
    pub exe: Option<PathBuf>,
    /// `argv[0]` as shown now (`process.title`), when readable.
    pub argv0: Option<String>,
    /// The script of an interpreter (`argv[1]`), when readable.
    pub argv1: Option<String>,
}

/// Walk from `pid`'s parent up to launchd (pid 1, excluded) for processes that predate the
/// daemon, nearest first. Stops after `max` steps, at a loop, or where a parent started after
/// its child (the pid was reused: what is there now is not the real parent).
pub fn ancestors(inspector: &dyn ProcessInspector, pid: i32, max: usize) -> Vec<AncestorFacts> {
    let mut out = Vec::new();
    let Some(mut child) = inspector.bsd_info(pid) else {
        return out;
    };
    let mut visited = vec![child.pid];
    while out.len() < max {
        let Ok(ppid) = i32::try_from(child.ppid) else {
            break;
        };
        if ppid <= 1 || visited.contains(&child.ppid) {
            break;
        }
        let Some(parent) = inspector.bsd_info(ppid) else {
            break;
        };
        if parent.pid != child.ppid || parent.start_micros() > child.start_micros() {
            break;
        }
        let args = inspector.process_args(ppid);
        out.push(AncestorFacts {
            pid: ppid,
            start_micros: parent.start_micros(),
            comm: parent.comm.clone(),
            exe: inspector.exe_path(ppid),
            argv0: args.as_ref().map(|a| a.argv0().to_string()),
            argv1: args.and_then(|a| a.argv.get(1).cloned()),
        });
        visited.push(parent.pid);
        child = parent;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    fn procargs(argc: i32, exec_path: &str, pad: usize, argv: &[&str], env: &[&str]) -> Vec<u8> {
        let mut buf = argc.to_ne_bytes().to_vec();
        buf.extend_from_slice(exec_path.as_bytes());
        buf.push(0);
        buf.resize(buf.len() + pad, 0);
        for a in argv {
            buf.extend_from_slice(a.as_bytes());
            buf.push(0);
        }
        for e in env {
            buf.extend_from_slice(e.as_bytes());
            buf.push(0);
        }
        buf
    }

    #[test]
    fn parses_a_well_formed_buffer() {
        let mut buf = procargs(
            3,
            "/opt/homebrew/bin/node",
            7,
            &["claude", "--resume", ""],
            &["HOME=/Users/me", "PATH=/usr/bin"],
        );
        // apple[] strings after an empty separator are not environment.
        buf.push(0);
        buf.extend_from_slice(b"executable_path=/opt/homebrew/bin/node\0");
        let args = ProcArgs::parse(&buf).unwrap();
        assert_eq!(args.exec_path, PathBuf::from("/opt/homebrew/bin/node"));
        assert_eq!(args.argv, vec!["claude", "--resume", ""]);
        assert_eq!(args.argv0(), "claude");
        assert_eq!(args.env, vec!["HOME=/Users/me", "PATH=/usr/bin"]);
    }

    #[test]
    fn process_title_rewrite_is_what_is_read() {
        // Node writes the title over argv[0] and NUL-fills the rest of the argv area.
        let mut buf = procargs(2, "/usr/local/bin/node", 3, &["claude"], &[]);
        buf.extend_from_slice(&[0; 20]);
        let args = ProcArgs::parse(&buf).unwrap();
        assert_eq!(args.argv0(), "claude");
        assert_eq!(args.argv, vec!["claude", ""]);
        assert!(args.env.is_empty());
    }

    #[test]
    fn zero_argc_and_no_env() {
        let args = ProcArgs::parse(&procargs(0, "/bin/x", 0, &[], &[])).unwrap();
        assert_eq!(args.exec_path, PathBuf::from("/bin/x"));
        assert!(args.argv.is_empty());
        assert_eq!(args.argv0(), "");
    }

    #[test]
    fn rejects_short_negative_and_absurd_argc() {
        assert_eq!(ProcArgs::parse(&[1, 0]), Err(ProcArgsError::TooShort(2)));
        assert_eq!(
            ProcArgs::parse(&procargs(-1, "/x", 0, &[], &[])),
            Err(ProcArgsError::BadArgc(-1))
        );
        assert_eq!(
            ProcArgs::parse(&procargs(i32::MAX, "/x", 0, &["a"], &[])),
            Err(ProcArgsError::BadArgc(i32::MAX))
        );
    }

    #[test]
    fn rejects_truncated_buffers() {
        let full = procargs(2, "/bin/sh", 2, &["sh", "-c"], &[]);
        // Drop the last NUL: "-c" is no longer complete.
        let cut = &full[..full.len() - 1];
        assert_eq!(
            ProcArgs::parse(cut),
            Err(ProcArgsError::Truncated { argc: 2, found: 1 })
        );
        // Cut inside the exec path.
        assert_eq!(
            ProcArgs::parse(&full[..7]),
            Err(ProcArgsError::UnterminatedExecPath)
        );
        // argc claims more arguments than there are.
        assert_eq!(
            ProcArgs::parse(&procargs(5, "/bin/sh", 0, &["sh"], &[])),
            Err(ProcArgsError::Truncated { argc: 5, found: 1 })
        );
    }

    #[test]
    fn invalid_utf8_is_replaced_not_fatal() {
        let mut buf = 1i32.to_ne_bytes().to_vec();
        buf.extend_from_slice(b"/bin/\xff\0\0claude\xfe\0");
        let args = ProcArgs::parse(&buf).unwrap();
        assert_eq!(args.argv0(), "claude\u{fffd}");
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 4000, ..ProptestConfig::default() })]

        /// Hostile buffers: never panics, and whatever parses stays within the input.
        #[test]
        fn never_panics_on_arbitrary_bytes(buf in proptest::collection::vec(any::<u8>(), 0..256)) {
            if let Ok(args) = ProcArgs::parse(&buf) {
                let text_bytes: usize = args.argv.iter().chain(&args.env).map(|s| s.len()).sum();
                // Lossy replacement may grow invalid bytes to 3 bytes each.
                prop_assert!(text_bytes <= buf.len() * 3);
            }
        }

        /// Round trip: a buffer built from arguments parses back to them.
        #[test]
        fn round_trips_well_formed_buffers(
            path in "/[a-z/]{1,20}",
            pad in 0usize..16,
            argv in proptest::collection::vec("[a-zA-Z0-9 =._-]{1,12}", 1..8),
            env in proptest::collection::vec("[A-Z]{1,5}=[a-z]{0,6}", 0..5),
        ) {
            let argv_ref: Vec<&str> = argv.iter().map(String::as_str).collect();
            let env_ref: Vec<&str> = env.iter().map(String::as_str).collect();
            let buf = procargs(argv.len() as i32, &path, pad, &argv_ref, &env_ref);
            let parsed = ProcArgs::parse(&buf).unwrap();
            prop_assert_eq!(parsed.exec_path, PathBuf::from(&path));
            prop_assert_eq!(parsed.argv, argv);
            prop_assert_eq!(parsed.env, env);
        }
    }

    fn bsdinfo_bytes(pid: u32, ppid: u32, comm: &[u8], start: (u64, u64)) -> Vec<u8> {
        use bsdinfo_layout::*;
        let mut b = vec![0u8; SIZE];
        b[PID..PID + 4].copy_from_slice(&pid.to_ne_bytes());
        b[PPID..PPID + 4].copy_from_slice(&ppid.to_ne_bytes());
        b[UID..UID + 4].copy_from_slice(&501u32.to_ne_bytes());
        b[COMM..COMM + comm.len()].copy_from_slice(comm);
        b[START_TVSEC..START_TVSEC + 8].copy_from_slice(&start.0.to_ne_bytes());
        b[START_TVUSEC..START_TVUSEC + 8].copy_from_slice(&start.1.to_ne_bytes());
        b
    }

    #[test]
    fn reads_bsdinfo_fields() {
        let b = bsdinfo_bytes(4242, 1, b"claude", (1_700_000_000, 5));
        let info = BsdInfo::parse(&b).unwrap();
        assert_eq!(info.pid, 4242);
        assert_eq!(info.ppid, 1);
        assert_eq!(info.uid, 501);
        assert_eq!(info.comm, "claude");
        assert_eq!(info.name, "");
        assert_eq!(info.start_micros(), 1_700_000_000_000_005);
        // A comm that fills all 16 bytes has no NUL and is still bounded.
        let full = bsdinfo_bytes(1, 0, b"0123456789abcdef", (0, 0));
        assert_eq!(BsdInfo::parse(&full).unwrap().comm, "0123456789abcdef");
        assert_eq!(BsdInfo::parse(&b[..100]), None);
    }

    #[derive(Default)]
    struct Table(HashMap<i32, (BsdInfo, Option<ProcArgs>)>);

    impl Table {
        fn add(&mut self, pid: i32, ppid: i32, start: u64, argv: &[&str]) {
            let info = BsdInfo {
                pid: pid as u32,
                ppid: ppid as u32,
                comm: format!("p{pid}"),
                start_sec: start,
                ..BsdInfo::default()
            };
            let args = (!argv.is_empty()).then(|| ProcArgs {
                exec_path: PathBuf::from(format!("/bin/p{pid}")),
                argv: argv.iter().map(|s| s.to_string()).collect(),
                env: vec![],
            });
            self.0.insert(pid, (info, args));
        }
    }

    impl ProcessInspector for Table {
        fn process_args(&self, pid: i32) -> Option<ProcArgs> {
            self.0.get(&pid)?.1.clone()
        }
        fn bsd_info(&self, pid: i32) -> Option<BsdInfo> {
            Some(self.0.get(&pid)?.0.clone())
        }
        fn exe_path(&self, pid: i32) -> Option<PathBuf> {
            self.0
                .contains_key(&pid)
                .then(|| PathBuf::from(format!("/bin/p{pid}")))
        }
    }

    #[test]
    fn walks_up_to_launchd_nearest_first() {
        let mut t = Table::default();
        t.add(1, 0, 1, &["launchd"]);
        t.add(100, 1, 10, &["claude"]);
        t.add(200, 100, 20, &["node", "/x/cli.js"]);
        t.add(300, 200, 30, &["rm", "-rf", "/"]);
        let walk = ancestors(&t, 300, 16);
        let pids: Vec<i32> = walk.iter().map(|a| a.pid).collect();
        assert_eq!(pids, vec![200, 100]);
        assert_eq!(walk[0].argv1.as_deref(), Some("/x/cli.js"));
        assert_eq!(walk[1].argv0.as_deref(), Some("claude"));
        assert_eq!(walk[1].exe, Some(PathBuf::from("/bin/p100")));
        assert_eq!(ancestors(&t, 300, 1).len(), 1);
        assert!(ancestors(&t, 999, 16).is_empty());
    }

    #[test]
    fn walk_stops_at_reused_pids_and_loops() {
        let mut t = Table::default();
        // 200's real parent died; pid 100 now belongs to a process started later.
        t.add(100, 1, 50, &["claude"]);
        t.add(200, 100, 20, &["sh"]);
        assert!(ancestors(&t, 200, 16).is_empty());
        // A table that loops (hostile or racing) ends.
        let mut l = Table::default();
        l.add(10, 11, 1, &["a"]);
        l.add(11, 10, 1, &["b"]);
        assert_eq!(ancestors(&l, 10, 16).len(), 1);
    }
}
