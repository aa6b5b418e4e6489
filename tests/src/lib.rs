//! Helpers for the end-to-end tests: a throwaway home with zones, the built `agent-guard`
//! binary, and ways to run a command as the agent (under `agent-guard run`) or as the human.
//!
//! The binary is the one `cargo test --workspace` builds for the guard crate's own integration
//! tests (`target/debug/agent-guard`); `$AGENT_GUARD_BIN` points elsewhere.

pub mod agent_clients;
pub mod fake_model;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// A generous bound for things that must happen "soon": only a liveness check, never a speed
/// target (those are in the benchmarks).
pub const LIVENESS: Duration = Duration::from_secs(10);

pub fn bin() -> PathBuf {
    if let Some(p) = std::env::var_os("AGENT_GUARD_BIN") {
        return PathBuf::from(p);
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let bin = target.join("debug/agent-guard");
    assert!(
        bin.exists(),
        "{} is missing: run `cargo build -p agent-guard` (scripts/test does)",
        bin.display()
    );
    bin
}

/// A throwaway home: `proj/` protected, `ro/` read-only, `.ssh/` secret, `state/` for the guard.
pub struct Sandbox {
    _dir: tempfile::TempDir,
    pub root: PathBuf,
    pub home: PathBuf,
    pub state: PathBuf,
    pub policy: PathBuf,
    pub outside: PathBuf,
}

pub const POLICY: &str = r#"{
  "ai_agent_patterns": ["claude"],
  "protected_zones": ["~/proj", "~/work/deep/zone"],
  "readonly_zones": ["~/ro"],
  "secret_zones": ["~/.ssh"],
  "trusted_tools": ["git"],
  "temporary_overrides": []
}"#;

impl Sandbox {
    pub fn new() -> Sandbox {
        Sandbox::with_policy(POLICY)
    }

    pub fn with_policy(policy: &str) -> Sandbox {
        let dir = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(dir.path()).unwrap();
        let home = root.join("home");
        let state = root.join("state");
        let outside = root.join("outside");
        for d in ["proj/src/sub", "ro", ".ssh", "work/deep/zone"] {
            std::fs::create_dir_all(home.join(d)).unwrap();
        }
        std::fs::create_dir_all(&outside).unwrap();
        let files = [
            ("proj/src/main.rs", "fn main() {}\n"),
            ("proj/src/sub/lib.rs", "// lib\n"),
            ("proj/README.md", "readme\n"),
            ("ro/config", "setting=1\n"),
            (".ssh/id_ed25519", "PRIVATE KEY\n"),
            ("work/deep/zone/keep.txt", "keep\n"),
        ];
        for (path, content) in files {
            std::fs::write(home.join(path), content).unwrap();
        }
        let policy_path = root.join("policy.json");
        std::fs::write(&policy_path, policy).unwrap();
        Sandbox {
            _dir: dir,
            root,
            home,
            state,
            policy: policy_path,
            outside,
        }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.home.join(rel)
    }

    fn env(&self, cmd: &mut Command) {
        cmd.current_dir(&self.home)
            .env("HOME", &self.home)
            .env("AGENT_GUARD_STATE_DIR", &self.state)
            .env("AGENT_GUARD_POLICY", &self.policy)
            .env("OUTSIDE", &self.outside)
            .env_remove("AGENT_GUARD_AGENT");
    }

    /// Run `bash -c script` as the agent `claude`, under the supervisor.
    pub fn agent(&self, script: &str) -> Output {
        let mut cmd = Command::new(bin());
        cmd.args(["run", "--agent", "claude", "--", "bash", "-c", script]);
        self.env(&mut cmd);
        cmd.output().unwrap()
    }

    /// `bash -c script` as the agent `claude`, started in `dir` with extra environment, not
    /// waited for.
    pub fn agent_command(&self, dir: &Path, env: &[(&str, &str)], script: &str) -> Command {
        let mut cmd = Command::new(bin());
        cmd.args(["run", "--agent", "claude", "--", "bash", "-c", script]);
        self.env(&mut cmd);
        cmd.current_dir(dir).envs(env.iter().copied());
        cmd
    }

    /// Run `bash -c script` as the human: no supervisor.
    pub fn human(&self, script: &str) -> Output {
        let mut cmd = Command::new("bash");
        cmd.args(["-c", script]);
        self.env(&mut cmd);
        cmd.output().unwrap()
    }

    /// Run `agent-guard ARGS` as the human.
    pub fn guard(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new(bin());
        cmd.args(args);
        self.env(&mut cmd);
        cmd.output().unwrap()
    }

    /// The denial records written so far.
    pub fn denials(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self.state.join("denials.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(|l| {
                serde_json::from_str(l)
                    .unwrap_or_else(|e| panic!("malformed denial line {l:?}: {e}"))
            })
            .collect()
    }

    /// Wait until at least `n` denial records exist (the writer is off the hot path).
    pub fn wait_denials(&self, n: usize) -> Vec<serde_json::Value> {
        let start = Instant::now();
        loop {
            let d = self.denials();
            if d.len() >= n || start.elapsed() > LIVENESS {
                return d;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Default for Sandbox {
    fn default() -> Self {
        Sandbox::new()
    }
}

pub fn text(o: &Output) -> String {
    format!(
        "status {:?}\nstdout: {}\nstderr: {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

pub fn on_path(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .output()
        .is_ok_and(|o| o.status.success())
}
