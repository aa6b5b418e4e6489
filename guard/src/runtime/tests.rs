use std::cell::Cell;
use std::path::{Path, PathBuf};

use super::*;
use crate::policy::{LoadContext, Platform};
use crate::vocab::{Actor, OpenFlags};

fn ctx() -> LoadContext {
    LoadContext {
        platform: Platform::Linux,
        homes: vec![PathBuf::from("/h")],
        guard_paths: vec![],
        agent_writable: vec![],
        unreadable: vec![],
        resolve_symlinks: false,
    }
}

fn runtime(dir: &Path) -> Runtime {
    let ctx = ctx();
    let json = r#"{"protected_zones": [{"path": "/h/p", "on_destroy": "deny"}], "secret_zones": ["/h/s"],
        "trusted_tools": [{"name": "tool", "exe": ["/opt/tool"]}]}"#;
    let policy = crate::policy::from_json(json, Path::new("p.json"), &ctx).unwrap();
    let config = RuntimeConfig {
        policy_file: None,
        ctx,
        locations: Locations::in_state_dir(dir),
        force_audit: false,
        keeps: true,
    };
    Runtime::new(policy, config).unwrap()
}

#[test]
fn facts_are_read_only_when_they_can_matter() {
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime(dir.path());
    let agent = Attribution::agent("claude", 1);
    let reads = Cell::new(0);
    let facts = |exe: &'static str| {
        let reads = &reads;
        move |e: &mut Event, _: FactsUse| {
            reads.set(reads.get() + 1);
            e.actor.exe = PathBuf::from(exe);
            7
        }
    };
    let event = |action| Event {
        actor: Actor::default(),
        action,
    };
    let read = Action::Open {
        path: "/h/p/f".into(),
        flags: OpenFlags::READ,
    };
    let unlink = Action::Unlink {
        path: "/h/p/f".into(),
    };

    // An allowed read-only open: decided without facts.
    assert!(rt
        .decide_lazily(None, event(read), &agent, facts("/usr/bin/cat"))
        .allows());
    assert_eq!(reads.get(), 0);
    // A delete by a trusted tool: denied without facts, allowed once they are read.
    assert!(rt
        .decide_lazily(None, event(unlink.clone()), &agent, facts("/opt/tool"))
        .allows());
    assert_eq!(reads.get(), 1);
    // The same delete by rm: facts read, still denied.
    assert!(!rt
        .decide_lazily(None, event(unlink), &agent, facts("/usr/bin/rm"))
        .allows());
    assert_eq!(reads.get(), 2);
    // An allowed write is stored, so its record gets the facts.
    let write = Action::Open {
        path: "/h/p/f".into(),
        flags: OpenFlags {
            write: true,
            ..OpenFlags::READ
        },
    };
    assert!(rt
        .decide_lazily(None, event(write), &agent, facts("/usr/bin/tee"))
        .allows());
    assert_eq!(reads.get(), 3);
    assert_eq!(rt.counters.decisions.load(Ordering::Relaxed), 4);
    assert_eq!(rt.counters.denials.load(Ordering::Relaxed), 1);
}

#[test]
fn a_keep_is_recorded_when_settled_and_the_brake_stops_mass_deletion() {
    use crate::vocab::{EntryKind, KeepFailure, KeepOutcome, KeptEntry, KeptHow, RuleId};
    let dir = tempfile::tempdir().unwrap();
    let ctx = ctx();
    let json = r#"{"protected_zones": ["/h/k"],
        "snapshots": {"brake": {"files": 2, "mb": 100, "window": "60s"}}}"#;
    let policy = crate::policy::from_json(json, Path::new("p.json"), &ctx).unwrap();
    let config = RuntimeConfig {
        policy_file: None,
        ctx,
        locations: Locations::in_state_dir(dir.path()),
        force_audit: false,
        keeps: true,
    };
    let rt = Runtime::new(policy, config).unwrap();
    let session = rt.open_session("1");
    let agent = Attribution::agent("claude", 1);
    let unlink = |n: u32| Event {
        actor: Actor::default(),
        action: Action::Unlink {
            path: format!("/h/k/f{n}").into(),
        },
    };
    let kept = |n: u32| {
        KeepOutcome::Kept(vec![KeptEntry {
            path: format!("/h/k/f{n}").into(),
            how: KeptHow::Moved,
            kind: EntryKind::File,
            seq: n.into(),
            store_name: Some(format!("s/{n}")),
            size: 10,
            mode: 0o100644,
            mtime_ns: 0,
        }])
    };
    for n in 0..2 {
        let Verdict::Keep(keep) = rt.decide_in(&session, &unlink(n), &agent, 0) else {
            panic!("expected a keep");
        };
        // Not counted before it is settled.
        assert_eq!(rt.counters.decisions.load(Ordering::Relaxed), n as u64);
        assert!(rt
            .settle(&session, &unlink(n), &agent, 0, &keep, kept(n))
            .allows());
    }
    assert_eq!(rt.counters.kept.load(Ordering::Relaxed), 2);
    // The third delete within the window: the brake.
    match rt.decide_in(&session, &unlink(2), &agent, 0) {
        Verdict::Deny(d) => assert_eq!(d.rule, RuleId::DestructionBrake),
        other => panic!("expected the brake, got {other:?}"),
    }
    // What could not be kept is refused, with why.
    let Verdict::Keep(keep) = rt.decide_in(&rt.open_session("2"), &unlink(3), &agent, 0) else {
        panic!("a new session has no brake on");
    };
    let failed = KeepOutcome::Failed {
        path: "/h/k/f3".into(),
        failure: KeepFailure::StoreFull { used: 1, limit: 1 },
    };
    match rt.settle(&session, &unlink(3), &agent, 0, &keep, failed) {
        Verdict::Deny(d) => assert_eq!(d.rule, RuleId::KeepFailed),
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert_eq!(rt.counters.denials.load(Ordering::Relaxed), 2);
}
