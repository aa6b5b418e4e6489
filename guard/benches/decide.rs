//! `decide` on a policy of 200 zones and 50 exec rules.
//!
//! Criterion measures the mean per decision for a mix of events; then a second pass times one
//! million decisions one by one to print p50/p99 and decisions/s on one core (the README quotes
//! these). Target: p99 under 2 µs, over 1 M decisions/s.

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::Instant;

use agent_guard::engine::{decide, Action, Actor, Attribution, Event, Grants, OpenFlags};
use agent_guard::policy::{self, LoadContext, Platform, Policy};
use criterion::{criterion_group, Criterion};

fn big_policy() -> Policy {
    let protected: Vec<String> = (0..100).map(|i| format!("/home/u/proj{i}")).collect();
    let readonly: Vec<String> = (0..50).map(|i| format!("/srv/ro{i}")).collect();
    let secret: Vec<String> = (0..50).map(|i| format!("/home/u/.secret{i}")).collect();
    let rules: Vec<serde_json::Value> = (0..50)
        .map(|i| {
            serde_json::json!({"program": format!("tool{}", i % 10), "args": [format!("sub{i}"), "-f*"], "reason": "bench"})
        })
        .collect();
    let json = serde_json::json!({
        "protected_zones": protected.iter().map(|p| serde_json::json!({"path": p, "except": ["**/target/**"]})).collect::<Vec<_>>(),
        "readonly_zones": readonly,
        "secret_zones": secret,
        "exec_rules": rules,
        "trusted_tools": ["git", "cargo"],
    });
    let ctx = LoadContext {
        platform: Platform::Linux,
        homes: vec![PathBuf::from("/home/u")],
        guard_paths: vec![PathBuf::from("/home/u/.local/state/agent-guard")],
        agent_writable: vec![],
        resolve_symlinks: false,
    };
    policy::from_json(&json.to_string(), Path::new("bench.json"), &ctx).unwrap()
}

fn events() -> Vec<Event> {
    let actor = Actor {
        pid: 1,
        exe: "/usr/bin/rm".into(),
        argv0: "rm".into(),
        comm: "rm".into(),
        ..Actor::default()
    };
    let mut events = Vec::new();
    for i in 0..100 {
        let actions = [
            Action::Unlink {
                path: format!("/home/u/proj{}/src/deep/dir/file{i}.rs", i % 100).into(),
            },
            Action::Unlink {
                path: format!("/tmp/build/{i}/x.o").into(),
            },
            Action::Open {
                path: format!("/home/u/.secret{}/key", i % 50).into(),
                flags: OpenFlags::READ,
            },
            Action::Open {
                path: format!("/srv/ro{}/a/b/c", i % 50).into(),
                flags: OpenFlags {
                    write: true,
                    ..OpenFlags::READ
                },
            },
            Action::Rename {
                from: format!("/home/u/proj{}/a.tmp", i % 100).into(),
                to: format!("/home/u/proj{}/a", i % 100).into(),
                dest_exists: true,
                source_is_dir: false,
            },
            Action::Exec {
                path: format!("/usr/bin/tool{}", i % 10).into(),
                argv: vec![format!("tool{}", i % 10), format!("sub{i}"), "-fx".into()],
                env: Vec::new(),
            },
            Action::Unlink {
                path: format!("/home/u/proj{}/target/debug/{i}.o", i % 100).into(),
            },
        ];
        events.extend(actions.into_iter().map(|action| Event {
            actor: actor.clone(),
            action,
        }));
    }
    events
}

fn bench(c: &mut Criterion) {
    let policy = big_policy();
    let events = events();
    let grants = Grants::default();
    let agent = Attribution::agent("claude", 1);
    let mut i = 0;
    c.bench_function("decide/200 zones, 50 exec rules, mixed events", |b| {
        b.iter(|| {
            i = (i + 1) % events.len();
            black_box(decide(black_box(&events[i]), &agent, &policy, &grants, 0))
        })
    });
}

fn percentiles() {
    let policy = big_policy();
    let events = events();
    let grants = Grants::default();
    let agent = Attribution::agent("claude", 1);
    const N: usize = 1_000_000;
    // The cost of reading the clock, subtracted from each sample.
    let clock = {
        let start = Instant::now();
        for _ in 0..N {
            black_box(Instant::now());
        }
        start.elapsed().as_nanos() as f64 / N as f64
    };
    let mut samples = Vec::with_capacity(N);
    let wall = Instant::now();
    for n in 0..N {
        let event = &events[n % events.len()];
        let t = Instant::now();
        black_box(decide(black_box(event), &agent, &policy, &grants, 0));
        samples.push((t.elapsed().as_nanos() as f64 - clock).max(0.0));
    }
    let total = wall.elapsed().as_secs_f64();
    samples.sort_by(|a, b| a.total_cmp(b));
    let pct = |p: f64| samples[((samples.len() as f64 * p) as usize).min(samples.len() - 1)];
    let mean: f64 = samples.iter().sum::<f64>() / N as f64;
    println!(
        "decide (200 zones, 50 exec rules): p50 {:.0} ns, p99 {:.0} ns, mean {:.0} ns, {:.2} M decisions/s on one core (timed loop incl. clock reads: {:.2} M/s)",
        pct(0.50),
        pct(0.99),
        mean,
        1e3 / mean,
        N as f64 / total / 1e6
    );
}

criterion_group!(benches, bench);

fn main() {
    benches();
    percentiles();
    Criterion::default().configure_from_args().final_summary();
}
