//! Approve-to-enforce latency: from `agent-guard override approve ID` (the built binary, as a
//! human runs it) returning, to [`LiveGrants`] — what the supervisor hands the engine — holding
//! the grant, and the engine allowing the operation. 100 trials; prints p50/p99.
//! Target (issue 5): p99 under 200 ms; the requirement is one second.
//!
//! The supervisor's own glue adds one `ArcSwap` load per decision on top of this.

use std::process::Command;
use std::time::{Duration, Instant};

use agent_guard::engine::{decide, Action, Actor, Attribution, Event, OpKind};
use agent_guard::overrides::{
    file_request, now_unix, watch_grants, LiveGrants, RateLimit, RequestSpec, Requester,
};
use agent_guard::paths::Locations;
use agent_guard::policy::{self, LoadContext};

const TRIALS: usize = 100;

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let root = std::fs::canonicalize(dir.path()).unwrap();
    let home = root.join("home");
    let project = home.join("project");
    let state = root.join("state");
    std::fs::create_dir_all(&project).unwrap();
    let policy_file = root.join("policy.json");
    std::fs::write(
        &policy_file,
        serde_json::json!({"protected_zones": [project]}).to_string(),
    )
    .unwrap();
    let locations = Locations::in_state_dir(&state);
    let mut ctx = LoadContext::for_home(home.clone());
    ctx.guard_paths = locations.guarded_files();
    let policy = policy::load_file(&policy_file, &ctx).unwrap();

    let live = LiveGrants::load(locations.clone()).unwrap();
    let _watcher = watch_grants(live.clone(), |_| {}).unwrap();
    let unlimited = RateLimit {
        max_pending: usize::MAX,
        max_per_minute: usize::MAX,
    };

    let mut latencies = Vec::with_capacity(TRIALS);
    let mut approve_times = Vec::with_capacity(TRIALS);
    for i in 0..TRIALS {
        let target = project.join(format!("f{i}"));
        let request = file_request(
            &locations,
            &RequestSpec {
                path: target.clone(),
                ops: vec![OpKind::Unlink],
                reason: "bench".into(),
                ttl_secs: 600,
                args: None,
            },
            None,
            Requester {
                pid: std::process::id(),
                uid: 0,
                agent: None,
                cwd: None,
            },
            &policy,
            std::slice::from_ref(&home),
            unlimited,
            true,
            now_unix(),
        )
        .unwrap();
        let event = Event {
            actor: Actor::default(),
            action: Action::Unlink {
                path: target.clone(),
            },
        };
        let agent = Attribution::agent("claude", 1);
        assert!(!decide(&event, &agent, &policy, &live.current(), now_unix()).allows());

        let started = Instant::now();
        let status = Command::new(env!("CARGO_BIN_EXE_agent-guard"))
            .args(["override", "approve", &request.id])
            .env("HOME", &home)
            .env("AGENT_GUARD_STATE_DIR", &state)
            .env("AGENT_GUARD_POLICY", &policy_file)
            .env_remove("AGENT_GUARD_AGENT")
            .stdout(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(status.success());
        let returned = Instant::now();
        approve_times.push(returned - started);
        loop {
            if decide(&event, &agent, &policy, &live.current(), now_unix()).allows() {
                break;
            }
            assert!(
                returned.elapsed() < Duration::from_secs(5),
                "grant never seen"
            );
            std::hint::spin_loop();
        }
        latencies.push(returned.elapsed());
    }
    report("approve returned -> engine allows", &mut latencies);
    report("override approve (process run time)", &mut approve_times);
}

fn report(what: &str, samples: &mut [Duration]) {
    samples.sort();
    let pct = |p: f64| samples[((samples.len() as f64 * p) as usize).min(samples.len() - 1)];
    println!(
        "{what}: p50 {:?}  p99 {:?}  max {:?}  ({} trials)",
        pct(0.50),
        pct(0.99),
        samples[samples.len() - 1],
        samples.len()
    );
}
