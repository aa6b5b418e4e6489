//! Helpers for the end-to-end tests: a throwaway home with zones, the built `agent-guard`
//! binary, and ways to run a command as the agent (under `agent-guard run`) or as the human.
//!
//! The binary is the one `cargo test --workspace` builds for the guard crate's own integration
//! tests (`target/debug/agent-guard`); `$AGENT_GUARD_BIN` points elsewhere.

pub mod agent_clients;
pub mod fake_model;
pub mod mcp_client;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::Value;

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

/// A throwaway home: `proj/` protected (a zone that denies destruction: the tests of what is
/// refused), `ro/` read-only, `.ssh/` secret, `state/` for the guard. [`KEEP_POLICY`] makes
/// `proj/` a zone that keeps what agents destroy (the default's behaviour).
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
  "protected_zones": [{"path": "~/proj", "on_destroy": "deny"}, {"path": "~/work/deep/zone", "on_destroy": "deny"}],
  "readonly_zones": ["~/ro"],
  "secret_zones": ["~/.ssh"],
  "trusted_tools": ["git"],
  "temporary_overrides": []
}"#;

/// [`POLICY`] with `proj/` a zone that keeps what agents destroy (the default's `on_destroy`)
/// and no exec rules: what git destroys there is kept.
pub const KEEP_POLICY: &str = r#"{
  "ai_agent_patterns": ["claude"],
  "protected_zones": [{"path": "~/proj", "except": ["**/node_modules/**", "**/target/**"]}],
  "readonly_zones": ["~/ro"],
  "secret_zones": ["~/.ssh"],
  "trusted_tools": ["git"],
  "exec_rules": [],
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

/// What one attempt by the agent left behind: its output and the denial records it added.
pub struct Attempt {
    pub out: Output,
    /// [`text`] of the output, for assertion messages.
    pub text: String,
    /// The denial records written since just before the attempt.
    pub new: Vec<Value>,
}

/// `EPERM` as the C library spells it in error messages.
pub const EPERM: &str = "Operation not permitted";

impl Sandbox {
    /// Run `script` as the agent and check what it left: every file in `survivors` still
    /// exists, the output shows `marker` (when given), and at least `records` new denial records
    /// were written (the writer is off the hot path, so they are waited for).
    pub fn attempt(
        &self,
        script: &str,
        survivors: &[&str],
        marker: Option<&str>,
        records: usize,
    ) -> Attempt {
        let before = self.denials().len();
        let out = self.agent(script);
        let text = text(&out);
        for f in survivors {
            assert!(
                self.path(f).exists(),
                "{f} was destroyed by {script:?}\n{text}"
            );
        }
        if let Some(marker) = marker {
            assert!(
                text.contains(marker),
                "{script:?} did not report {marker:?}\n{text}"
            );
        }
        let denials = self.wait_denials(before + records);
        Attempt {
            out,
            text,
            new: denials[before.min(denials.len())..].to_vec(),
        }
    }

    /// [`Sandbox::attempt`] of something that must be blocked: the files survive, the output
    /// shows `marker`, and a new, well-formed denial with this op and rule names `path`.
    pub fn assert_blocked_with(
        &self,
        script: &str,
        survivors: &[&str],
        op: &str,
        rule: &str,
        path: &Path,
        marker: &str,
    ) -> Value {
        let Attempt { text: all, new, .. } = self.attempt(script, survivors, Some(marker), 1);
        let record = new
            .iter()
            .find(|d| d["op"] == op && d["rule"] == rule && d["path"] == path.to_str().unwrap())
            .unwrap_or_else(|| {
                panic!(
                    "no {op}/{rule} denial of {} after {script:?}; new records: {new:#?}\n{all}",
                    path.display()
                )
            });
        for key in [
            "id",
            "ts",
            "time",
            "op",
            "path",
            "zone",
            "process",
            "ancestor",
            "pid",
            "exe",
            "agent_pid",
            "rule",
            "decision",
            "reason",
            "hint",
        ] {
            assert!(record.get(key).is_some(), "denial lacks {key}: {record}");
        }
        assert_eq!(record["ancestor"], "claude");
        assert_eq!(record["decision"], "deny");
        assert!(!record["process"].as_str().unwrap().is_empty());
        assert!(
            record["hint"]
                .as_str()
                .unwrap()
                .starts_with("agent-guard override request")
                || rule == "guard_self"
        );
        record.clone()
    }

    /// [`Sandbox::assert_blocked_with`] where the output shows EPERM.
    pub fn assert_blocked(
        &self,
        script: &str,
        survivors: &[&str],
        op: &str,
        rule: &str,
        path: &Path,
    ) -> Value {
        self.assert_blocked_with(script, survivors, op, rule, path, EPERM)
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
