//! Overrides end to end on a temporary state dir: the built binary for the CLI (request
//! validation, rate limit, approve/deny/revoke, the agent refusal), the library for the grant
//! store's atomicity, the live reload and the engine's handling of expiry.
//!
//! Liveness bounds are generous (5 s); the approve-to-enforce latency is for the benchmark.

mod decisions;
mod grants;
mod request;
mod spool;
mod watch;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use agent_guard::engine::{decide, Action, Actor, Attribution, Event, Grants, RuleId, Verdict};
use agent_guard::overrides::{
    file_request, load_pending, watch_grants, GrantStore, LiveGrants, OverrideError, RateLimit,
    Request, RequestSpec, Requester,
};
use agent_guard::paths::Locations;
use agent_guard::policy::{self, LoadContext, Platform, Policy};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_agent-guard");
const LIVENESS: Duration = Duration::from_secs(5);

/// A user with a home, a protected project and a secret dir, and a state dir, all temporary.
struct World {
    _dir: tempfile::TempDir,
    home: PathBuf,
    project: PathBuf,
    state: PathBuf,
    policy_file: PathBuf,
}

impl World {
    fn new() -> World {
        let dir = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(dir.path()).unwrap();
        let home = root.join("home");
        let project = home.join("src/project");
        let state = root.join("state");
        std::fs::create_dir_all(project.join("docs")).unwrap();
        std::fs::create_dir_all(home.join(".ssh")).unwrap();
        std::fs::write(project.join("docs/old.md"), "old").unwrap();
        let policy_file = root.join("policy.json");
        std::fs::write(
            &policy_file,
            serde_json::json!({
                "protected_zones": [{"path": project, "on_destroy": "deny"}],
                "secret_zones": [home.join(".ssh")],
                "max_override_ttl": "1h",
            })
            .to_string(),
        )
        .unwrap();
        World {
            _dir: dir,
            home,
            project,
            state,
            policy_file,
        }
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(BIN);
        c.args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", &self.home)
            .env("AGENT_GUARD_STATE_DIR", &self.state)
            .env("AGENT_GUARD_POLICY", &self.policy_file)
            .current_dir(&self.project);
        c
    }

    /// Run the CLI: (exit code, stdout, stderr).
    fn run(&self, args: &[&str]) -> (i32, String, String) {
        self.run_with(args, &[])
    }

    fn run_with(&self, args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
        let mut c = self.cmd(args);
        for (k, v) in env {
            c.env(k, v);
        }
        let out = c.output().unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// File a request as agent `agent` and return its id.
    fn request(&self, path: &str, op: &str, agent: &str) -> String {
        let (code, out, err) = self.run_with(
            &[
                "override",
                "request",
                path,
                "--op",
                op,
                "--reason",
                "the user asked for it",
                "--json",
            ],
            &[("AGENT_GUARD_AGENT", agent)],
        );
        assert_eq!(code, 0, "request {path}: {err}");
        let v: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(
            v["approve_command"],
            format!("agent-guard override approve {}", v["id"].as_str().unwrap())
        );
        v["id"].as_str().unwrap().to_string()
    }

    fn locations(&self) -> Locations {
        Locations::in_state_dir(&self.state)
    }

    fn policy(&self) -> Policy {
        let mut ctx = LoadContext::for_home(self.home.clone());
        ctx.platform = Platform::Linux;
        ctx.guard_paths = self.locations().guarded_files();
        policy::load_file(&self.policy_file, &ctx).unwrap()
    }

    fn events(&self) -> Vec<Value> {
        std::fs::read_to_string(self.state.join("overrides.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    fn event_kinds(&self, id: &str) -> Vec<String> {
        self.events()
            .iter()
            .filter(|e| e["id"] == id)
            .map(|e| e["event"].as_str().unwrap().to_string())
            .collect()
    }
}

fn now() -> u64 {
    agent_guard::overrides::now_unix()
}

fn unlink_by_agent(path: &Path) -> Event {
    Event {
        actor: Actor {
            pid: 77,
            exe: "/usr/bin/rm".into(),
            argv0: "rm".into(),
            comm: "rm".into(),
            ..Actor::default()
        },
        action: Action::Unlink { path: path.into() },
    }
}

fn agent() -> Attribution {
    Attribution::agent("claude", 70)
}
