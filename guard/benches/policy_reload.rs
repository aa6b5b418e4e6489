//! Policy-write-to-enforcement latency: from a write of the policy file returning to the engine,
//! fed by the hot-reload watcher, deciding by the new policy. 100 trials each for a file written
//! in place and one replaced by rename (as editors do); prints p50/p99.
//! Targets: reload within 100 ms (issue 2), p99 under 200 ms (issue 5).

use std::time::{Duration, Instant};

use agent_guard::engine::{decide, Action, Actor, Attribution, Event, Grants};
use agent_guard::policy::watch::{watch, LivePolicy};
use agent_guard::policy::{self, LoadContext};

const TRIALS: usize = 100;

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let root = std::fs::canonicalize(dir.path()).unwrap();
    let file = root.join("policy.json");
    let protected = |on: bool| {
        let zones: Vec<String> = if on {
            vec![root.join("zone").display().to_string()]
        } else {
            vec![]
        };
        serde_json::json!({"protected_zones": zones}).to_string()
    };
    std::fs::write(&file, protected(false)).unwrap();
    let ctx = LoadContext::for_home(root.clone());
    let live = LivePolicy::new(policy::load_file(&file, &ctx).unwrap());
    let _watcher = watch(live.clone(), file.clone(), ctx, |_| {}).unwrap();
    let event = Event {
        actor: Actor::default(),
        action: Action::Unlink {
            path: root.join("zone/f"),
        },
    };
    let denies = |live: &LivePolicy| {
        !decide(
            &event,
            &Attribution::agent("claude", 1),
            &live.load(),
            &Grants::default(),
            0,
        )
        .allows()
    };

    for (label, by_rename) in [("written in place", false), ("replaced by rename", true)] {
        let mut samples = Vec::with_capacity(TRIALS);
        for i in 0..TRIALS {
            let on = i % 2 == 0;
            let text = protected(on);
            if by_rename {
                let tmp = root.join(".policy.json.tmp");
                std::fs::write(&tmp, text).unwrap();
                std::fs::rename(&tmp, &file).unwrap();
            } else {
                std::fs::write(&file, text).unwrap();
            }
            let start = Instant::now();
            while denies(&live) != on {
                assert!(
                    start.elapsed() < Duration::from_secs(10),
                    "trial {i}: the policy never reloaded"
                );
                std::thread::yield_now();
            }
            samples.push(start.elapsed());
        }
        samples.sort();
        let p = |q: f64| samples[((samples.len() as f64 * q) as usize).min(samples.len() - 1)];
        println!(
            "policy reload, file {label}: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms over {TRIALS} trials",
            p(0.50).as_secs_f64() * 1e3,
            p(0.99).as_secs_f64() * 1e3,
            samples[samples.len() - 1].as_secs_f64() * 1e3
        );
    }
}
