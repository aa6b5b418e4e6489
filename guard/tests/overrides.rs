//! Overrides end to end on a temporary state dir: the built binary for the CLI (request
//! validation, rate limit, approve/deny/revoke, the agent refusal), the library for the grant
//! store's atomicity, the live reload and the engine's handling of expiry.
//!
//! Liveness bounds are generous (5 s); the approve-to-enforce latency is for the benchmark.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use agent_guard::engine::{decide, Action, Actor, Attribution, Event, Grants, RuleId, Verdict};
use agent_guard::overrides::{
    file_request, watch_grants, GrantStore, LiveGrants, RateLimit, Request, RequestSpec, Requester,
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
                "protected_zones": [project],
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

#[test]
fn request_validation_refuses_each_bad_request_with_its_reason() {
    let w = World::new();
    let home = w.home.display().to_string();
    let project = w.project.display().to_string();
    let state_file = w.state.join("grants.json").display().to_string();
    let cases: &[(&[&str], i32, &str)] = &[
        (&["/", "--op", "unlink"], 1, "may not cover / as a whole"),
        (&[&home, "--op", "unlink"], 1, "home directory"),
        (
            &[&project, "--op", "unlink"],
            1,
            "root of the protected zone",
        ),
        // An ancestor of a zone root covers the whole zone.
        (
            &[&format!("{home}/src"), "--op", "unlink"],
            1,
            "root of the protected zone",
        ),
        (
            &[&format!("{home}/.ssh"), "--op", "open"],
            1,
            "root of the secret zone",
        ),
        (
            &[&state_file, "--op", "unlink"],
            1,
            "agent-guard's own files",
        ),
        (
            &["docs/old.md", "--op", "unlink", "--ttl", "2h"],
            1,
            "longer than the policy's max_override_ttl",
        ),
        (
            &["docs/old.md", "--op", "unlink", "--ttl", "soon"],
            2,
            "expected a duration",
        ),
        (
            &["docs/old.md", "--op", "unlink", "--ttl", "0s"],
            2,
            "positive duration",
        ),
        (
            &["docs/old.md", "--op", "frobnicate"],
            2,
            "unknown operation \"frobnicate\"",
        ),
        (
            &["docs/old.md", "--op", "signal"],
            1,
            "cannot be overridden",
        ),
        (&["docs/old.md"], 2, "at least one operation"),
    ];
    for (args, code, message) in cases {
        let mut full = vec!["override", "request"];
        full.extend_from_slice(args);
        full.extend_from_slice(&["--reason", "because"]);
        let (got, _, err) = w.run(&full);
        assert_eq!(got, *code, "{args:?}: {err}");
        assert!(err.contains(message), "{args:?}: {err}");
    }
    // Reasons: empty, or with escape sequences meant for the approver's terminal.
    for (reason, message) in [
        ("  ", "one sentence"),
        ("ok\u{1b}[2K\rall fine", "control characters"),
    ] {
        let (code, _, err) = w.run(&[
            "override",
            "request",
            "docs/old.md",
            "--op",
            "unlink",
            "--reason",
            reason,
        ]);
        assert_eq!(code, 2, "{err}");
        assert!(err.contains(message), "{err}");
    }
    // Nothing was spooled by any refused request.
    let spooled = std::fs::read_dir(w.state.join("requests"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(spooled, 0);
}

#[test]
fn relative_paths_and_symlinks_resolve_before_judging() {
    let w = World::new();
    // Relative to the current directory (the project), cleaned.
    let id = w.request("./docs/../docs/old.md", "unlink", "a:1");
    let spooled: Value = serde_json::from_slice(
        &std::fs::read(w.state.join("requests").join(format!("{id}.json"))).unwrap(),
    )
    .unwrap();
    assert_eq!(
        spooled["path"],
        w.project.join("docs/old.md").display().to_string()
    );
    // A link inside the project to the secret zone's root asks for the secret zone.
    std::os::unix::fs::symlink(w.home.join(".ssh"), w.project.join("keys")).unwrap();
    let (code, _, err) = w.run(&[
        "override",
        "request",
        "keys",
        "--op",
        "open",
        "--reason",
        "read config",
    ]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("root of the secret zone"), "{err}");
}

#[test]
fn rate_limit_per_minute_and_pending_per_agent() {
    let w = World::new();
    for i in 0..3 {
        w.request(&format!("docs/f{i}"), "unlink", "claude:1");
    }
    let (code, _, err) = w.run_with(
        &[
            "override", "request", "docs/f3", "--op", "unlink", "--reason", "again",
        ],
        &[("AGENT_GUARD_AGENT", "claude:1")],
    );
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("in the last minute"), "{err}");
    // Another agent has its own budget.
    w.request("docs/g0", "unlink", "codex:2");

    // Pending limit: five requests of one agent from earlier minutes are still open.
    let w = World::new();
    let locations = w.locations();
    let policy = w.policy();
    for i in 0..5 {
        file_request(
            &locations,
            &RequestSpec {
                path: w.project.join(format!("docs/p{i}")),
                ops: vec![agent_guard::engine::OpKind::Unlink],
                reason: "old".into(),
                ttl_secs: 600,
            },
            None,
            Requester {
                pid: 1,
                uid: 0,
                agent: Some("claude:1".into()),
                cwd: None,
            },
            &policy,
            std::slice::from_ref(&w.home),
            RateLimit::DEFAULT,
            true,
            now() - 3600 + i * 120,
        )
        .unwrap();
    }
    let (code, _, err) = w.run_with(
        &[
            "override", "request", "docs/p5", "--op", "unlink", "--reason", "more",
        ],
        &[("AGENT_GUARD_AGENT", "claude:1")],
    );
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("5 pending override requests"), "{err}");
}

#[test]
fn approve_deny_revoke_round_trip() {
    let w = World::new();
    let target = w.project.join("docs/old.md");
    // A denial record for the path, as the supervisor writes it.
    std::fs::create_dir_all(&w.state).unwrap();
    std::fs::write(
        w.state.join("denials.jsonl"),
        serde_json::json!({
            "ts": now(), "op": "unlink", "path": target, "dest": null, "zone": w.project,
            "process": "rm", "ancestor": "claude", "id": "d-42", "time": "2026-11-21T08:00:00.000Z",
            "pid": 4242, "exe": "/usr/bin/rm", "agent_pid": 4200, "rule": "protected_delete",
            "decision": "deny", "reason": "agent-guard blocked deleting it", "hint": "agent-guard override request ..."
        })
        .to_string()
            + "\n",
    )
    .unwrap();

    // --denial fills path and op from the record.
    let (code, out, err) = w.run_with(
        &[
            "override",
            "request",
            "--denial",
            "d-42",
            "--reason",
            "user wants it gone",
            "--json",
        ],
        &[("AGENT_GUARD_AGENT", "claude:4200")],
    );
    assert_eq!(code, 0, "{err}");
    let req: Value = serde_json::from_str(&out).unwrap();
    let id = req["id"].as_str().unwrap().to_string();
    assert_eq!(req["path"], target.display().to_string());
    assert_eq!(req["ops"], serde_json::json!(["unlink"]));
    assert_eq!(req["denial_id"], "d-42");
    // An agent's request is not written to the (guarded) audit trail by the agent itself.
    assert_eq!(req["recorded"], false);

    // list shows it with its denial, and records the request on the agent's behalf.
    let (code, out, err) = w.run(&["override", "list", "--json"]);
    assert_eq!(code, 0, "{err}");
    let list: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(list["requests"][0]["id"], id.as_str());
    assert_eq!(list["requests"][0]["denial"]["id"], "d-42");
    assert_eq!(list["requests"][0]["valid"], true);
    assert_eq!(list["requests"][0]["zone"][0], "protected");
    assert_eq!(w.event_kinds(&id), ["request"]);

    // Before approval the engine denies; after approval it allows.
    let locations = w.locations();
    let policy = w.policy();
    let store = GrantStore::new(locations.clone());
    let event = unlink_by_agent(&target);
    let before = decide(
        &event,
        &agent(),
        &policy,
        &store.active(now()).unwrap(),
        now(),
    );
    assert!(matches!(before, Verdict::Deny(ref d) if d.rule == RuleId::ProtectedDelete));

    let (code, out, err) = w.run(&["override", "approve", &id, "--ttl", "2m"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(&format!("Approved {id}")), "{out}");
    assert!(!w.state.join("requests").join(format!("{id}.json")).exists());
    let file: Value =
        serde_json::from_slice(&std::fs::read(w.state.join("grants.json")).unwrap()).unwrap();
    let g = &file["grants"][0];
    assert_eq!(g["id"], id.as_str());
    assert_eq!(
        g["expires_at"].as_u64().unwrap() - g["approved_at"].as_u64().unwrap(),
        120
    );
    let after = decide(
        &event,
        &agent(),
        &policy,
        &store.active(now()).unwrap(),
        now(),
    );
    assert_eq!(after, Verdict::Allow);
    // The grant is for unlink only, and only under its path.
    let sibling = unlink_by_agent(&w.project.join("docs/other.md"));
    assert!(!decide(
        &sibling,
        &agent(),
        &policy,
        &store.active(now()).unwrap(),
        now()
    )
    .allows());

    let (code, out, _) = w.run(&["override", "list"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("Active grants: 1") && out.contains("left"),
        "{out}"
    );

    // Revoke: denied again at once.
    let (code, _, err) = w.run(&["override", "revoke", &id]);
    assert_eq!(code, 0, "{err}");
    assert!(!decide(
        &event,
        &agent(),
        &policy,
        &store.active(now()).unwrap(),
        now()
    )
    .allows());
    let (code, _, err) = w.run(&["override", "revoke", &id]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("no active grant"), "{err}");

    // Deny: the request goes, no grant comes.
    let id2 = w.request("docs/old.md", "unlink,rmdir", "claude:4200");
    let (code, _, err) = w.run(&["override", "deny", &id2]);
    assert_eq!(code, 0, "{err}");
    assert!(!w
        .state
        .join("requests")
        .join(format!("{id2}.json"))
        .exists());
    assert!(store.load().unwrap().grants.is_empty());
    let (code, _, err) = w.run(&["override", "approve", &id2]);
    assert_eq!(code, 1);
    assert!(err.contains("no pending override request"), "{err}");

    // The whole story is in the audit trail.
    assert_eq!(w.event_kinds(&id), ["request", "approve", "revoke"]);
    assert_eq!(w.event_kinds(&id2), ["request", "deny"]);
}

#[test]
fn approval_by_an_agent_is_refused() {
    let w = World::new();
    let id = w.request("docs/old.md", "unlink", "claude:9");
    for cmd in ["approve", "deny"] {
        let (code, _, err) = w.run_with(
            &["override", cmd, &id],
            &[("AGENT_GUARD_AGENT", "claude:9")],
        );
        assert_eq!(code, 1, "{err}");
        assert!(
            err.contains(&format!(
                "agent-guard override {cmd} must be run by a human, not by an agent"
            )),
            "{err}"
        );
    }
    assert!(!w.state.join("grants.json").exists());
    assert!(w.state.join("requests").join(format!("{id}.json")).exists());
}

#[test]
fn hand_written_spool_files_are_validated_again_at_approval() {
    let w = World::new();
    let id = w.request("docs/old.md", "unlink", "claude:1");
    let file = w.state.join("requests").join(format!("{id}.json"));
    // The agent rewrites its own pending request to cover the whole home directory.
    let mut req: Request = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    req.path = w.home.clone();
    std::fs::write(&file, serde_json::to_vec(&req).unwrap()).unwrap();
    let (code, _, err) = w.run(&["override", "approve", &id]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("home directory"), "{err}");
    assert!(!w.state.join("grants.json").exists());
    let (_, out, _) = w.run(&["override", "list"]);
    assert!(out.contains("cannot be approved"), "{out}");

    // Changed after the human listed it: the trail holds what was listed, approve refuses.
    let id = w.request("docs/old.md", "unlink", "claude:1");
    let file = w.state.join("requests").join(format!("{id}.json"));
    let (_, out, _) = w.run(&["override", "list"]);
    assert!(out.contains(&id), "{out}");
    let mut req: Request = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    req.path = w.project.join("docs");
    req.ops.push(agent_guard::engine::OpKind::Rmdir);
    std::fs::write(&file, serde_json::to_vec(&req).unwrap()).unwrap();
    let (_, out, _) = w.run(&["override", "list"]);
    assert!(out.contains("file changed after it was recorded"), "{out}");
    let (code, _, err) = w.run(&["override", "approve", &id]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("changed after it was recorded"), "{err}");
    assert!(!w.state.join("grants.json").exists());

    // A decided id cannot come back with new content.
    // ...but it can be turned down, which removes it.
    let (code, _, err) = w.run(&["override", "deny", &id]);
    assert_eq!(code, 0, "{err}");
    assert!(!file.exists());
    let id = w.request("docs/old.md", "unlink", "claude:3");
    let file = w.state.join("requests").join(format!("{id}.json"));
    let saved = std::fs::read(&file).unwrap();
    assert_eq!(w.run(&["override", "deny", &id]).0, 0);
    std::fs::write(&file, saved).unwrap();
    let (code, _, err) = w.run(&["override", "approve", &id]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("already decided (deny"), "{err}");

    // A symlink in the spool is never followed, an id is never a path.
    let secret = w.home.join(".ssh/id_ed25519");
    std::fs::write(&secret, "KEY").unwrap();
    std::os::unix::fs::symlink(&secret, w.state.join("requests/r-e1e1.json")).unwrap();
    let (code, _, err) = w.run(&["override", "approve", "r-e1e1"]);
    assert_eq!(code, 1);
    assert!(!err.contains("KEY"), "{err}");
    let (code, out, _) = w.run(&["override", "list"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("(unreadable)") && !out.contains("KEY"),
        "{out}"
    );
    let (code, _, err) = w.run(&["override", "approve", "../grants"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("not an override id"), "{err}");

    // Terminal escapes smuggled into a spool file's keys never reach the human's terminal raw.
    std::fs::write(
        w.state.join("requests/r-e5c.json"),
        // JSON's own escape: the key decodes to ESC [2J ESC [H, which serde's
        // "unknown field" error quotes.
        r#"{"id": "r-e5c", "\u001b[2J\u001b[Happroved": 1}"#,
    )
    .unwrap();
    let (_, out, _) = w.run(&["override", "list"]);
    assert!(out.contains("(unreadable)"), "{out}");
    assert!(!out.contains('\u{1b}'), "{out:?}");
    let (code, _, err) = w.run(&["override", "approve", "r-e5c"]);
    assert_eq!(code, 1);
    assert!(!err.contains('\u{1b}'), "{err:?}");

    // The spool replaced by a symlink (to a directory holding a request-shaped file) is not
    // used: a human's deny would otherwise unlink files wherever it points.
    let id3 = w.request("docs/y.md", "unlink", "claude:4");
    let elsewhere = w.home.join("elsewhere");
    std::fs::rename(w.state.join("requests"), &elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, w.state.join("requests")).unwrap();
    for cmd in ["approve", "deny"] {
        let (code, _, err) = w.run(&["override", cmd, &id3]);
        assert_eq!(code, 1, "{cmd}: {err}");
        assert!(err.contains("expected a directory"), "{cmd}: {err}");
    }
    assert!(elsewhere.join(format!("{id3}.json")).exists());
    let (code, _, err) = w.run(&["override", "list"]);
    assert_eq!(code, 1, "{err}");
    std::fs::remove_file(w.state.join("requests")).unwrap();
    std::fs::rename(&elsewhere, w.state.join("requests")).unwrap();

    // An id inside the file that is not its name is refused.
    let id2 = w.request("docs/x.md", "unlink", "claude:2");
    std::fs::copy(
        w.state.join("requests").join(format!("{id2}.json")),
        w.state.join("requests/r-00000000.json"),
    )
    .unwrap();
    let (code, _, err) = w.run(&["override", "approve", "r-00000000"]);
    assert_eq!(code, 1);
    assert!(err.contains("not \"r-00000000\""), "{err}");
}

#[test]
fn grants_file_is_never_seen_half_written() {
    let w = World::new();
    let locations = w.locations();
    let policy = w.policy();
    let store = GrantStore::new(locations.clone());
    let unlimited = RateLimit {
        max_pending: usize::MAX,
        max_per_minute: usize::MAX,
    };
    let n = 40;
    let ids: Vec<String> = (0..n)
        .map(|i| {
            file_request(
                &locations,
                &RequestSpec {
                    path: w.project.join(format!("docs/f{i}")),
                    ops: vec![agent_guard::engine::OpKind::Unlink],
                    reason: "bulk".into(),
                    ttl_secs: 600,
                },
                None,
                Requester {
                    pid: 1,
                    uid: 0,
                    agent: None,
                    cwd: None,
                },
                &policy,
                std::slice::from_ref(&w.home),
                unlimited,
                true,
                now(),
            )
            .unwrap()
            .id
        })
        .collect();

    let done = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let done = done.clone();
            let file = locations.grants.clone();
            std::thread::spawn(move || {
                let (mut reads, mut max_seen) = (0u64, 0usize);
                while !done.load(Ordering::Relaxed) {
                    match std::fs::read(&file) {
                        Ok(bytes) => {
                            let v: Value = serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                                panic!(
                                    "partial grants.json ({e}): {}",
                                    String::from_utf8_lossy(&bytes)
                                )
                            });
                            let count = v["grants"].as_array().unwrap().len();
                            assert!(count >= max_seen, "a grant vanished: {count} < {max_seen}");
                            max_seen = count;
                            reads += 1;
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                            assert_eq!(max_seen, 0, "grants.json disappeared");
                        }
                        Err(e) => panic!("{e}"),
                    }
                }
                reads
            })
        })
        .collect();
    // Two approvers at once: the lock must keep every approval.
    let halves: Vec<Vec<String>> = ids.chunks(n / 2).map(|c| c.to_vec()).collect();
    let approvers: Vec<_> = halves
        .into_iter()
        .map(|chunk| {
            let store = store.clone();
            let policy = policy.clone();
            let home = w.home.clone();
            std::thread::spawn(move || {
                for id in chunk {
                    store
                        .approve(&id, None, &policy, std::slice::from_ref(&home), now())
                        .unwrap();
                }
            })
        })
        .collect();
    for a in approvers {
        a.join().unwrap();
    }
    done.store(true, Ordering::Relaxed);
    let reads: u64 = readers.into_iter().map(|r| r.join().unwrap()).sum();
    assert!(reads > 0, "the readers never saw the file");
    let stored = store.load().unwrap();
    assert_eq!(stored.grants.len(), n, "an approval was lost");
    // No temporary or lock file is left behind.
    let leftovers: Vec<_> = std::fs::read_dir(&w.state)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp") || n.ends_with(".lock"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn live_grants_pick_up_an_approval_and_the_engine_drops_it_at_expiry() {
    let w = World::new();
    let locations = w.locations();
    let policy = w.policy();
    let live = LiveGrants::load(locations.clone()).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let _watcher = watch_grants(live.clone(), move |r| {
        let _ = tx.send(r.map_err(|e| e.to_string()));
    })
    .unwrap();
    let target = w.project.join("docs/old.md");
    let event = unlink_by_agent(&target);
    assert!(!decide(&event, &agent(), &policy, &live.current(), now()).allows());

    let id = w.request("docs/old.md", "unlink", "claude:5");
    // The watcher records the agent's request as it appears (freezing its content).
    let spooled = w.state.join("requests").join(format!("{id}.json"));
    let filed = Instant::now();
    let marked = || {
        serde_json::from_slice::<Request>(&std::fs::read(&spooled).unwrap())
            .unwrap()
            .recorded
    };
    while !marked() {
        assert!(
            filed.elapsed() < LIVENESS,
            "the new request was never recorded"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(w.event_kinds(&id), ["request"]);
    let (code, _, err) = w.run(&["override", "approve", &id, "--ttl", "10m"]);
    assert_eq!(code, 0, "{err}");
    let approved = Instant::now();
    while live.current().grants.is_empty() {
        assert!(
            approved.elapsed() < LIVENESS,
            "the approval never reached LiveGrants"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    eprintln!("approval seen after {:?}", approved.elapsed());
    assert_eq!(rx.recv_timeout(LIVENESS).unwrap(), Ok(true));
    let grants = live.current();
    assert_eq!(grants.grants[0].id, id);
    let t = now();
    assert_eq!(
        decide(&event, &agent(), &policy, &grants, t),
        Verdict::Allow
    );
    // At expiry the engine stops honouring it, with no reload.
    let expires = grants.grants[0].expires_at.unwrap();
    assert_eq!(live.next_expiry(), Some(expires));
    assert!(!decide(&event, &agent(), &policy, &grants, expires).allows());
    assert!(decide(&event, &agent(), &policy, &grants, expires - 1).allows());

    // Revocation reaches the live set too.
    let (code, _, err) = w.run(&["override", "revoke", &id]);
    assert_eq!(code, 0, "{err}");
    let revoked = Instant::now();
    while !live.current().grants.is_empty() {
        assert!(
            revoked.elapsed() < LIVENESS,
            "the revocation never reached LiveGrants"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    assert!(!decide(&event, &agent(), &policy, &live.current(), now()).allows());

    // A corrupt grants.json keeps the last good set and is reported.
    let id = w.request("docs/old.md", "unlink", "claude:6");
    assert_eq!(w.run(&["override", "approve", &id]).0, 0);
    let start = Instant::now();
    while live.current().grants.is_empty() {
        assert!(start.elapsed() < LIVENESS);
        std::thread::sleep(Duration::from_millis(2));
    }
    while rx.try_recv().is_ok() {}
    std::fs::write(&locations.grants, "{not json").unwrap();
    let error = loop {
        match rx
            .recv_timeout(LIVENESS)
            .expect("the corrupt file is reported")
        {
            Err(e) => break e,
            Ok(_) => continue,
        }
    };
    assert!(error.contains("grants.json"), "{error}");
    assert_eq!(live.current().grants.len(), 1);
}

#[test]
fn expired_grants_are_dropped_on_load_and_recorded_as_expired() {
    let w = World::new();
    let locations = w.locations();
    let policy = w.policy();
    let store = GrantStore::new(locations.clone());
    let id = w.request("docs/old.md", "unlink", "claude:3");
    let long_ago = now() - 7200;
    store
        .approve(
            &id,
            Some(60),
            &policy,
            std::slice::from_ref(&w.home),
            long_ago,
        )
        .unwrap();
    // Still in the file, but not handed to the engine.
    assert_eq!(store.load().unwrap().grants.len(), 1);
    assert_eq!(store.active(now()).unwrap(), Grants::default());
    // A human's `list` prunes it and records the expiry.
    let (code, out, _) = w.run(&["override", "list"]);
    assert_eq!(code, 0);
    assert!(out.contains("Active grants: 0"), "{out}");
    assert!(store.load().unwrap().grants.is_empty());
    assert_eq!(w.event_kinds(&id), ["request", "approve", "expire"]);
}

#[test]
fn a_store_the_kernel_will_not_let_us_write_is_reported_as_not_human() {
    // What the supervisor's guard-files rule does to an agent (EPERM on any write in the state
    // dir), stood in for by file permissions: as root, the approver runs as `nobody`, which may
    // not write the root-owned state dir; otherwise the state dir is made read-only.
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;
    let w = World::new();
    let id = w.request("docs/old.md", "unlink", "claude:8");
    let root = agent_guard::overrides::current_uid() == 0;
    let mut cmd = w.cmd(&["override", "approve", &id]);
    if root {
        // nobody must reach the binary, the policy and the spool, but not write the state dir.
        let mut dir = w.state.parent().unwrap().to_path_buf();
        loop {
            let mode = std::fs::metadata(&dir).unwrap().permissions().mode();
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(mode | 0o005)).unwrap();
            if !dir.pop() || dir == Path::new("/") {
                break;
            }
        }
        cmd.uid(65534).gid(65534);
    } else {
        std::fs::set_permissions(&w.state, std::fs::Permissions::from_mode(0o555)).unwrap();
    }
    let out = cmd.output().unwrap();
    std::fs::set_permissions(&w.state, std::fs::Permissions::from_mode(0o755)).unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("agent-guard override approve must be run by a human, not by an agent"),
        "{err}"
    );
    assert!(!w.state.join("grants.json").exists());
}
