//! The seccomp supervisor against real processes: a test judge denies deletions and moves out of
//! a "protected" directory, any open of a "secret" directory and the exec of programs named
//! "forbidden"; each test runs a real command under `run` and checks the file system afterwards.
#![cfg(target_os = "linux")]

use std::ffi::OsString;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use agent_guard::engine::path::is_within;
use agent_guard::engine::{Action, Denial, Event, RuleId, Verdict};
use agent_guard::platform::linux::supervisor::{run, Judge, SupervisorConfig, SupervisorError};

mod races;

/// A policy of three rules. The judge runs inside the supervisor process (a fork of the test),
/// so it records what it saw in a file, one line per event.
struct TestJudge {
    protected: PathBuf,
    secret: PathBuf,
    log: PathBuf,
}

fn within(path: &Path, root: &Path) -> bool {
    is_within(
        path.as_os_str().as_encoded_bytes(),
        root.as_os_str().as_encoded_bytes(),
    )
}

fn deny(rule: RuleId, event: &Event) -> Verdict {
    Verdict::Deny(Denial {
        rule,
        op: event.action.kind(),
        path: event
            .action
            .path()
            .map(Path::to_path_buf)
            .unwrap_or_default(),
        dest: event.action.dest().map(Path::to_path_buf),
        zone: None,
        reason: "test".into(),
        hint: String::new(),
    })
}

impl Judge for TestJudge {
    fn judge(&self, _pid: i32, event: &Event) -> Verdict {
        let p = &self.protected;
        let verdict = match &event.action {
            Action::Unlink { path } | Action::Rmdir { path } if within(path, p) => {
                deny(RuleId::ProtectedDelete, event)
            }
            Action::Rename {
                from,
                to,
                dest_exists,
                ..
            } => {
                if within(p, from) && !(within(from, p) && within(to, p)) {
                    deny(RuleId::ZoneRootRename, event)
                } else if within(from, p) && !within(to, p) {
                    deny(RuleId::ProtectedMoveOut, event)
                } else if *dest_exists && within(to, p) && !within(from, p) {
                    deny(RuleId::ProtectedClobber, event)
                } else {
                    Verdict::Allow
                }
            }
            Action::Open { path, .. } | Action::Exec { path, .. } if within(path, &self.secret) => {
                deny(RuleId::SecretZone, event)
            }
            Action::Link { from, .. } if within(from, &self.secret) => {
                deny(RuleId::SecretZone, event)
            }
            Action::Exec { path, .. } if path.file_name() == Some("forbidden".as_ref()) => {
                deny(RuleId::ExecRule, event)
            }
            Action::Signal {
                target_is_guard: true,
                ..
            } => deny(RuleId::GuardSelf, event),
            _ => Verdict::Allow,
        };
        let mut log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        writeln!(log, "{} {:?}", verdict.as_str(), event.action).unwrap();
        verdict
    }

    fn secret_paths(&self) -> Vec<PathBuf> {
        vec![self.secret.clone()]
    }
}

/// A temporary tree: protected/ (with file, sub/inner, existing), secret/key, outside/.
struct Sandbox {
    _dir: tempfile::TempDir,
    root: PathBuf,
    protected: PathBuf,
    secret: PathBuf,
    outside: PathBuf,
    log: PathBuf,
}

impl Sandbox {
    fn new() -> Sandbox {
        let dir = tempfile::tempdir().unwrap();
        let root = fs::canonicalize(dir.path()).unwrap();
        let protected = root.join("protected");
        let secret = root.join("secret");
        let outside = root.join("outside");
        for d in [&protected, &secret, &outside, &protected.join("sub")] {
            fs::create_dir_all(d).unwrap();
        }
        fs::write(protected.join("file"), b"precious").unwrap();
        fs::write(protected.join("existing"), b"original").unwrap();
        fs::write(protected.join("sub/inner"), b"inner").unwrap();
        fs::write(secret.join("key"), b"PRIVATE KEY").unwrap();
        fs::write(outside.join("plain"), b"plain").unwrap();
        let log = root.join("judge.log");
        Sandbox {
            _dir: dir,
            root,
            protected,
            secret,
            outside,
            log,
        }
    }

    fn judge(&self) -> Arc<TestJudge> {
        Arc::new(TestJudge {
            protected: self.protected.clone(),
            secret: self.secret.clone(),
            log: self.log.clone(),
        })
    }

    /// Run `sh -c script` under the supervisor, with $P, $S, $O, $R naming the directories.
    fn sh_with(&self, script: &str, config: &SupervisorConfig) -> i32 {
        let full = format!(
            "P='{}'; S='{}'; O='{}'; R='{}'; {script}",
            self.protected.display(),
            self.secret.display(),
            self.outside.display(),
            self.root.display()
        );
        let cmd: Vec<OsString> = vec!["sh".into(), "-c".into(), full.into()];
        run(&cmd, self.judge(), config).expect("run")
    }

    fn sh(&self, script: &str) -> i32 {
        self.sh_with(script, &SupervisorConfig::default())
    }

    fn read(&self, rel: &str) -> String {
        fs::read_to_string(self.root.join(rel)).unwrap_or_default()
    }

    fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn assert_protected_intact(&self) {
        assert_eq!(fs::read(self.protected.join("file")).unwrap(), b"precious");
        assert_eq!(
            fs::read(self.protected.join("existing")).unwrap(),
            b"original"
        );
        assert_eq!(
            fs::read(self.protected.join("sub/inner")).unwrap(),
            b"inner"
        );
    }
}

fn wait_for(path: &Path) -> String {
    wait_for_text(path, "\n")
}

/// Wait (up to 10 s, for liveness only) until the file contains `marker`.
fn wait_for_text(path: &Path, marker: &str) -> String {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(10) {
        if let Ok(s) = fs::read_to_string(path) {
            if s.contains(marker) {
                return s;
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{} never appeared", path.display());
}

/// Take back an fd lent to a child, closing it.
fn report_file_guard(fd: i32) -> std::os::fd::OwnedFd {
    // SAFETY: the fd belongs to a File that was leaked into this guard's ownership.
    unsafe { std::os::fd::FromRawFd::from_raw_fd(fd) }
}

const EPERM_TEXT: &str = "Operation not permitted";

#[test]
fn rm_of_a_protected_file_is_denied_with_eperm_and_the_absolute_path_is_judged() {
    let sb = Sandbox::new();
    let rc = sb.sh(r#"rm "$P/file" 2> "$R/err""#);
    assert_ne!(rc, 0);
    assert!(sb.read("err").contains(EPERM_TEXT), "{}", sb.read("err"));
    sb.assert_protected_intact();
    let expected = format!("deny Unlink {{ path: {:?} }}", sb.protected.join("file"));
    assert!(sb.log().contains(&expected), "{}", sb.log());
}

#[test]
fn rm_rf_find_delete_python_and_perl_all_fail() {
    let sb = Sandbox::new();
    sb.sh(r#"rm -rf "$P/sub"; rm -rf "$P"; find "$P" -delete;
             python3 -c 'import os,sys; os.remove(sys.argv[1])' "$P/file";
             python3 -c 'import shutil,sys; shutil.rmtree(sys.argv[1])' "$P/sub";
             perl -e 'unlink $ARGV[0] or exit 1' "$P/existing"; exit 0"#);
    sb.assert_protected_intact();
    assert!(sb.log().contains("deny Rmdir"), "{}", sb.log());
}

#[test]
fn moving_out_clobbering_and_renaming_the_zone_are_denied() {
    let sb = Sandbox::new();
    let rc = sb.sh(r#"echo evil > "$O/x"; mv "$P/file" "$O/" 2>"$R/e1"; a=$?;
           mv "$O/x" "$P/existing" 2>"$R/e2"; b=$?;
           mv "$P" "$O/moved" 2>"$R/e3"; c=$?;
           [ $a -ne 0 ] && [ $b -ne 0 ] && [ $c -ne 0 ]"#);
    assert_eq!(
        rc,
        0,
        "{} / {} / {}",
        sb.read("e1"),
        sb.read("e2"),
        sb.read("e3")
    );
    sb.assert_protected_intact();
    assert!(!sb.outside.join("file").exists());
}

#[test]
fn write_temp_then_rename_inside_the_zone_is_allowed() {
    let sb = Sandbox::new();
    let rc = sb.sh(r#"printf edited > "$P/file.tmp" && mv "$P/file.tmp" "$P/file""#);
    assert_eq!(rc, 0);
    assert_eq!(fs::read(sb.protected.join("file")).unwrap(), b"edited");
    assert!(!sb.protected.join("file.tmp").exists());
    // Unprotected files are deleted as usual.
    assert_eq!(sb.sh(r#"rm "$O/plain""#), 0);
    assert!(!sb.outside.join("plain").exists());
}

#[test]
fn relative_paths_and_symlinked_directories_resolve_to_the_zone() {
    let sb = Sandbox::new();
    std::os::unix::fs::symlink(&sb.protected, sb.outside.join("dirlink")).unwrap();
    std::os::unix::fs::symlink(sb.protected.join("file"), sb.outside.join("filelink")).unwrap();
    let rc = sb.sh(
        r#"cd "$P/sub" && rm ../file 2>/dev/null; rm inner 2>/dev/null;
           cd "$O" && rm dirlink/existing 2>/dev/null; rm ./dirlink/../dirlink/sub/inner 2>/dev/null;
           rm filelink"#,
    );
    // The symlink itself is not in the zone: removing it removes the link, not the file.
    assert_eq!(rc, 0);
    assert!(!sb.outside.join("filelink").exists());
    sb.assert_protected_intact();
}

#[test]
fn secrets_stay_unreadable_through_symlinks_and_hard_links() {
    let sb = Sandbox::new();
    std::os::unix::fs::symlink(sb.secret.join("key"), sb.outside.join("sym")).unwrap();
    fs::hard_link(sb.secret.join("key"), sb.outside.join("hard")).unwrap();
    let config = SupervisorConfig {
        supervise_reads: true,
        ..SupervisorConfig::default()
    };
    let rc = sb.sh_with(
        r#"cat "$S/key" > "$R/o1" 2>&1; cat "$O/sym" > "$R/o2" 2>&1; cat "$O/hard" > "$R/o3" 2>&1;
           cat "$O/plain" > "$R/o4"; ln "$S/key" "$O/hard2" 2>/dev/null; exit 0"#,
        &config,
    );
    assert_eq!(rc, 0);
    for out in ["o1", "o2", "o3"] {
        let text = sb.read(out);
        assert!(!text.contains("PRIVATE"), "{out}: {text}");
        assert!(text.contains(EPERM_TEXT), "{out}: {text}");
    }
    assert_eq!(sb.read("o4"), "plain");
    assert!(!sb.outside.join("hard2").exists());
}

#[test]
fn exec_of_a_forbidden_program_is_denied_even_renamed_in() {
    let sb = Sandbox::new();
    fs::copy("/bin/true", sb.outside.join("forbidden")).unwrap();
    let rc = sb.sh(r#""$O/forbidden" 2> "$R/err""#);
    assert_eq!(rc, 126);
    assert!(sb.read("err").contains(EPERM_TEXT), "{}", sb.read("err"));
    assert_eq!(sb.sh(r#"cp "$O/forbidden" "$O/fine" && "$O/fine""#), 0);
}

#[test]
fn exit_status_and_signal_death_propagate() {
    let sb = Sandbox::new();
    assert_eq!(sb.sh("exit 7"), 7);
    assert_eq!(sb.sh("kill -TERM $$"), 128 + libc::SIGTERM);
    assert_eq!(sb.sh("true"), 0);
}

#[test]
fn the_supervisor_cannot_be_killed_from_inside() {
    let sb = Sandbox::new();
    // $PPID of CMD is the supervisor process.
    let rc = sb.sh(
        r#"kill -9 $PPID 2>/dev/null && exit 10; kill -STOP $PPID 2>/dev/null && exit 11;
           kill -9 -1 2>/dev/null && exit 12;
           python3 -c 'import os,sys; os.kill(int(sys.argv[1]), 9)' $PPID 2>/dev/null && exit 13;
           rm "$P/file" 2>/dev/null && exit 14; exit 0"#,
    );
    assert_eq!(rc, 0);
    sb.assert_protected_intact();
    assert!(sb.log().contains("deny Signal"), "{}", sb.log());
}

#[test]
fn filter_holes_are_closed() {
    let sb = Sandbox::new();
    // io_uring_setup(1, &params) -> ENOSYS; seccomp(SET_MODE_FILTER, NEW_LISTENER, NULL) -> EPERM
    // (without our filter it would be EFAULT); unshare(CLONE_NEWUSER) -> EPERM.
    let script = r#"python3 - <<'PY' > "$R/out"
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
def call(*args):
    r = libc.syscall(*args)
    return ctypes.get_errno() if r < 0 else 0
params = ctypes.create_string_buffer(120)
print(call(425, 1, params), call(317, 1, 8, None), call(272, 0x10000000))
PY"#;
    assert_eq!(sb.sh(script), 0);
    let expected = format!("{} {} {}\n", libc::ENOSYS, libc::EPERM, libc::EPERM);
    assert_eq!(sb.read("out"), expected);
}

#[test]
fn a_double_fork_after_cmd_exits_is_still_supervised() {
    let sb = Sandbox::new();
    let start = Instant::now();
    let rc = sb.sh(
        r#"(setsid sh -c 'sleep 0.5; rm "$1/file" 2>"$2/err"; echo $? > "$2/rc"' x "$P" "$R" &) ;
           nohup sh -c 'sleep 0.6; rm "$1/existing"' x "$P" >/dev/null 2>&1 &
           exit 0"#,
    );
    assert_eq!(rc, 0);
    // run returned with CMD's status before the background job ran.
    assert!(!sb.root.join("rc").exists());
    assert!(start.elapsed() < Duration::from_secs(5));
    assert_ne!(wait_for(&sb.root.join("rc")).trim(), "0");
    std::thread::sleep(Duration::from_millis(300));
    assert!(sb.read("err").contains(EPERM_TEXT), "{}", sb.read("err"));
    sb.assert_protected_intact();
}

#[test]
fn killing_the_supervisor_fails_closed() {
    let sb = Sandbox::new();
    let judge = sb.judge();
    // Once the supervisor is gone even write-opens fail, so the shell reports through an fd it
    // inherited already open.
    let report = fs::File::create(sb.root.join("report")).unwrap();
    let fd = std::os::fd::IntoRawFd::into_raw_fd(report);
    // SAFETY: clearing FD_CLOEXEC on an fd this test owns.
    assert_eq!(unsafe { libc::fcntl(fd, libc::F_SETFD, 0) }, 0);
    let script = format!(
        r#"echo $PPID > "{r}/sup"; sleep 1; rm "{p}/file" 2>&{fd}; echo "rc=$?" >&{fd}"#,
        r = sb.root.display(),
        p = sb.protected.display()
    );
    let cmd: Vec<OsString> = vec!["sh".into(), "-c".into(), script.into()];
    let killer = {
        let sup = sb.root.join("sup");
        std::thread::spawn(move || {
            let pid: i32 = wait_for(&sup).trim().parse().unwrap();
            // SAFETY: signalling the supervisor process this test started.
            assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0);
        })
    };
    let result = run(&cmd, judge, &SupervisorConfig::default());
    killer.join().unwrap();
    assert!(
        matches!(result, Err(SupervisorError::SupervisorLost)),
        "{result:?}"
    );
    let report = wait_for_text(&sb.root.join("report"), "rc=");
    drop(report_file_guard(fd));
    assert!(!report.contains("rc=0"), "{report}");
    // The shell cannot even exec rm: every notified call now fails with ENOSYS.
    assert!(report.contains("Function not implemented"), "{report}");
    sb.assert_protected_intact();
}
