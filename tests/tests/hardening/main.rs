//! Issue 16 end to end, with the built binary: the supervisor never lends its power beyond the
//! agent's own (processes outside the tree, other credentials, devices), exec rules judge the
//! program the kernel really runs, servers outside the tree cannot run commands for the agent,
//! the terminal cannot be typed into, links and socket files are judged by the object acted on,
//! and a nested sandbox is explained.
//!
//! Every test runs in both ways `run` covers secret zones ([`Mode`]): hidden behind the FUSE
//! mount (reads left to the kernel) and supervising every open (the fall-back), and checks that
//! it got the mode it asked for. Run the binary as root and as an unprivileged user: tests whose
//! path differs by user say so, and skip what only one of them can show (with a line on stderr).

mod bind;
mod connect;
mod creds;
mod devices;
mod exec;
mod links;
mod nested;
mod outside;
mod tty;

use std::path::{Path, PathBuf};
use std::process::Output;

use agent_guard_e2e::{text, Sandbox};

/// How secret zones are covered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Behind the supervisor's FUSE mounts, in the agent's own mount namespace.
    Hidden,
    /// Every open supervised (`AGENT_GUARD_SUPERVISE_READS=1`).
    Supervised,
}

impl Mode {
    pub const BOTH: [Mode; 2] = [Mode::Hidden, Mode::Supervised];

    fn env(self) -> Vec<(&'static str, &'static str)> {
        match self {
            Mode::Hidden => vec![],
            Mode::Supervised => vec![("AGENT_GUARD_SUPERVISE_READS", "1")],
        }
    }
}

/// Whether this user may open `/dev/fuse`, without which `run` cannot hide the zones.
pub fn fuse_usable() -> bool {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/fuse")
        .is_ok()
}

pub fn is_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"))
}

const MODE_PROBE: &str =
    "if grep -q fuse.agent-guard /proc/self/mountinfo; then echo MODE=hidden; else echo MODE=supervised; fi; ";

/// Run `script` as the agent in `mode`, from the sandbox's home; check that the mode is the one
/// asked for (hidden only where `/dev/fuse` can be opened: elsewhere `run` falls back, and the
/// test says so).
pub fn agent_in(s: &Sandbox, mode: Mode, script: &str) -> Output {
    agent_in_with(s, mode, &[], script)
}

pub fn agent_in_with(s: &Sandbox, mode: Mode, env: &[(&str, &str)], script: &str) -> Output {
    let mut all = mode.env();
    all.extend_from_slice(env);
    let full = format!("{MODE_PROBE}{script}");
    let out = s.agent_command(&s.home, &all, &full).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let got_hidden = stdout.contains("MODE=hidden");
    match mode {
        Mode::Supervised => assert!(!got_hidden, "reads were to be supervised: {}", text(&out)),
        Mode::Hidden if fuse_usable() => {
            assert!(got_hidden, "the zone was not hidden: {}", text(&out))
        }
        Mode::Hidden => eprintln!("note: /dev/fuse is not usable here: hidden mode fell back"),
    }
    out
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The denial records added after the first `before`, waiting until there are at least `n`.
pub fn new_denials(s: &Sandbox, before: usize, n: usize) -> Vec<serde_json::Value> {
    let all = s.wait_denials(before + n);
    all[before.min(all.len())..].to_vec()
}

/// Compile a C helper from `source` into the sandbox (`cc -O2 -pthread`), readable and
/// runnable by every user.
pub fn compile(s: &Sandbox, name: &str, source: &str) -> PathBuf {
    let src = s.root.join(format!("{name}.c"));
    std::fs::write(&src, source).unwrap();
    let bin = s.root.join(name);
    let out = std::process::Command::new("cc")
        .args(["-O2", "-pthread", "-o"])
        .arg(&bin)
        .arg(&src)
        .output()
        .unwrap();
    assert!(out.status.success(), "cc {name}: {}", text(&out));
    bin
}

/// Make `path` and its ancestors up to the sandbox root traversable by every user, and `path`
/// itself writable by every user (tests that act as another uid).
pub fn open_up(s: &Sandbox, path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &Path, m: u32| {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap();
    };
    let mut dir = path.parent();
    while let Some(d) = dir {
        if !d.starts_with(&s.root) {
            break;
        }
        mode(d, 0o755);
        dir = d.parent();
    }
    mode(path, 0o777);
}

/// A process of the human's: `sleep`, outside the agent's tree, killed when dropped.
pub struct HumanProcess(std::process::Child);

impl HumanProcess {
    pub fn start(s: &Sandbox) -> HumanProcess {
        HumanProcess(
            std::process::Command::new("sleep")
                .arg("300")
                .current_dir(&s.home)
                .env("HUMAN_SECRET", "human-token-123")
                .spawn()
                .unwrap(),
        )
    }

    pub fn pid(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for HumanProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
