//! Pure parsers of the /proc files lineage reads: `stat`, `cmdline`, the `exe` link's
//! ` (deleted)` marker, `status`'s `Tgid:`. They compile on every unix, so they are tested (and
//! fuzzed) anywhere.
//!
//! They must never panic on anything the kernel (or a crafted tree) hands them, and never read a
//! file themselves.

use std::ffi::OsString;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::PathBuf;

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

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A stat line as the kernel formats it (52 fields), with the fields lineage reads.
    pub(crate) fn stat_line(
        pid: i32,
        comm: &str,
        state: char,
        ppid: i32,
        threads: i64,
        start: u64,
    ) -> String {
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
