//! The decision table (docs/design.md, "The decision table"), row by row, for agent and human
//! actors.

use std::path::{Path, PathBuf};

use agent_guard::engine::{
    decide, decide_without_keeping, Action, Actor, Attribution, Event, Grant, Grants, KeepWhat,
    NodeKind, OpKind, OpSet, OpenFlags, RuleId, Verdict,
};
use agent_guard::policy::{self, LoadContext, Platform, Policy};

const HOME: &str = "/home/u";

fn ctx() -> LoadContext {
    LoadContext {
        platform: Platform::Linux,
        homes: vec![PathBuf::from(HOME)],
        guard_paths: vec![
            PathBuf::from("/home/u/.local/state/agent-guard"),
            PathBuf::from("/etc/agent-guard/policy.json"),
        ],
        agent_writable: vec![PathBuf::from("/home/u/.local/state/agent-guard/requests")],
        unreadable: vec![PathBuf::from("/home/u/.local/state/agent-guard/store")],
        resolve_symlinks: false,
    }
}

fn policy(json: &str) -> Policy {
    policy::from_json(json, Path::new("test.json"), &ctx()).expect("test policy is valid")
}

/// A policy with one zone of each kind (a protected zone that denies, `/a/proj`, and one that
/// keeps, `/a/keep`), carve-outs, trusted tools, an exec rule and overrides.
fn table_policy() -> Policy {
    policy(
        r#"{
        "ai_agent_patterns": ["claude"],
        "protected_zones": [{"path": "/a/proj", "except": ["**/target/**"], "on_destroy": "deny"},
            {"path": "/a/keep", "except": ["**/target/**"]}],
        "readonly_zones": ["/a/ro"],
        "secret_zones": ["~/.ssh", "/a/vault/keys"],
        "temporary_overrides": ["/a/proj/scratch", "/a/keep/scratch",
            {"path": "/a/proj/old", "ops": ["unlink"], "expires_at": 1000}],
        "trusted_tools": ["git", {"name": "cargo", "exe": ["/usr/bin/cargo"], "paths": ["**/target/**"]},
            {"name": "gen", "exe": ["/opt/gen/bin/gen"], "paths": ["/a/proj/generated/**"]}],
        "exec_rules": [{"program": "git", "args": ["clean"], "unless": ["-n"], "reason": "no"}]
    }"#,
    )
}

fn actor(exe: &str) -> Actor {
    let name = Path::new(exe)
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    Actor {
        pid: 42,
        exe: PathBuf::from(exe),
        argv0: name.clone(),
        comm: name,
        ..Actor::default()
    }
}

fn p(s: &str) -> PathBuf {
    PathBuf::from(s)
}

fn unlink(path: &str) -> Action {
    Action::Unlink { path: p(path) }
}
fn rename(from: &str, to: &str, dest_exists: bool) -> Action {
    Action::Rename {
        from: p(from),
        to: p(to),
        dest_exists,
        source_is_dir: false,
    }
}
fn open(path: &str, write: bool) -> Action {
    Action::Open {
        path: p(path),
        flags: OpenFlags {
            write,
            truncate: false,
            create: false,
        },
    }
}
fn exec(path: &str, argv: &[&str]) -> Action {
    Action::Exec {
        path: p(path),
        argv: argv.iter().map(|s| s.to_string()).collect(),
        env: Vec::new(),
    }
}

#[derive(Debug, PartialEq)]
enum Want {
    Allow,
    Deny(RuleId),
    /// Allowed once kept: the rule, and what of which paths.
    Keep(RuleId, Vec<(PathBuf, KeepWhat)>),
}

fn keep(rule: RuleId, items: &[(&str, KeepWhat)]) -> Want {
    Want::Keep(
        rule,
        items.iter().map(|(p, w)| (PathBuf::from(p), *w)).collect(),
    )
}

fn verdict_of(policy: &Policy, exe: &str, action: Action, agent: bool, now: u64) -> Want {
    let attribution = if agent {
        Attribution::agent("claude", 7)
    } else {
        Attribution::Human
    };
    let event = Event {
        actor: actor(exe),
        action,
    };
    match decide(&event, &attribution, policy, &Grants::default(), now) {
        Verdict::Allow => Want::Allow,
        Verdict::Deny(d) => Want::Deny(d.rule.clone()),
        Verdict::Keep(k) => {
            assert!(k.zone.starts_with("/a"), "{k:?}");
            Want::Keep(
                k.rule,
                k.items.into_iter().map(|i| (i.path, i.what)).collect(),
            )
        }
        v @ (Verdict::Audit(_) | Verdict::WouldKeep(_)) => {
            panic!("enforce policy gave an audit verdict: {v:?}")
        }
    }
}

#[test]
fn decision_table() {
    use RuleId::*;
    let pol = table_policy();
    let rm = "/usr/bin/rm";
    #[rustfmt::skip]
    let rows: Vec<(&str, &str, Action, Want)> = vec![
        // Protected zone.
        ("unlink in protected zone", rm, unlink("/a/proj/src/main.rs"), Want::Deny(ProtectedDelete)),
        ("rmdir in protected zone", rm, Action::Rmdir { path: p("/a/proj/src") }, Want::Deny(ProtectedDelete)),
        ("unlink outside every zone", rm, unlink("/tmp/x"), Want::Allow),
        ("unlink in a sibling with a shared prefix", rm, unlink("/a/project2/x"), Want::Allow),
        ("write in protected zone", rm, open("/a/proj/src/main.rs", true), Want::Allow),
        ("create in protected zone", rm, Action::Create { path: p("/a/proj/new.rs"), kind: NodeKind::File }, Want::Allow),
        ("truncate in protected zone", rm, Action::Truncate { path: p("/a/proj/f") }, Want::Allow),
        ("rename inside the zone (atomic save)", "/usr/bin/mv", rename("/a/proj/.f.tmp", "/a/proj/f", true), Want::Allow),
        ("rename out of the zone", "/usr/bin/mv", rename("/a/proj/f", "/tmp/f", false), Want::Deny(ProtectedMoveOut)),
        ("rename into a carve-out counts as out", "/usr/bin/mv", rename("/a/proj/f", "/a/proj/target/f", false), Want::Deny(ProtectedMoveOut)),
        ("rename from outside over an existing zone file", "/usr/bin/mv", rename("/tmp/x", "/a/proj/f", true), Want::Deny(ProtectedClobber)),
        ("rename from outside to a new name in the zone", "/usr/bin/mv", rename("/tmp/x", "/a/proj/new", false), Want::Allow),
        ("rename of the zone root", "/usr/bin/mv", rename("/a/proj", "/a/other", false), Want::Deny(ZoneRootRename)),
        ("rename of an ancestor of the zone root", "/usr/bin/mv", rename("/a", "/b", false), Want::Deny(ZoneRootRename)),
        ("rename of an unrelated sibling", "/usr/bin/mv", rename("/a/project2", "/a/p3", false), Want::Allow),
        ("unlink in a carve-out", rm, unlink("/a/proj/target/debug/x"), Want::Allow),
        ("rmdir of the carve-out directory itself", rm, Action::Rmdir { path: p("/a/proj/target") }, Want::Allow),
        ("hard link out of a zone that denies", "/usr/bin/ln", Action::Link { from: p("/a/proj/f"), to: p("/tmp/f") }, Want::Allow),
        ("truncating open in a zone that denies", rm, Action::Open { path: p("/a/proj/f"), flags: OpenFlags { write: true, truncate: true, create: true } }, Want::Allow),
        // Protected zone that keeps (`on_destroy: keep`, the default).
        ("unlink keeps the entry", rm, unlink("/a/keep/src/main.rs"), keep(ProtectedDelete, &[("/a/keep/src/main.rs", KeepWhat::Entry)])),
        ("rmdir records the directory", rm, Action::Rmdir { path: p("/a/keep/src") }, keep(ProtectedDelete, &[("/a/keep/src", KeepWhat::Dir)])),
        ("rename of a file to a new name inside keeps its old name", "/usr/bin/mv", rename("/a/keep/a", "/a/keep/b", false), keep(ProtectedRename, &[("/a/keep/a", KeepWhat::Renamed)])),
        ("rename of a directory inside keeps nothing", "/usr/bin/mv", Action::Rename { from: p("/a/keep/d"), to: p("/a/keep/e"), dest_exists: false, source_is_dir: true }, Want::Allow),
        ("atomic save over a file keeps the old one (and the temporary's name, unless the session made it)", "/usr/bin/mv", rename("/a/keep/.f.tmp", "/a/keep/f", true), keep(ProtectedReplace, &[("/a/keep/f", KeepWhat::Entry), ("/a/keep/.f.tmp", KeepWhat::Renamed)])),
        ("rename of a file out keeps its content", "/usr/bin/mv", rename("/a/keep/f", "/tmp/f", false), keep(ProtectedMoveOut, &[("/a/keep/f", KeepWhat::Content)])),
        ("rename of a directory out keeps the tree", "/usr/bin/mv", Action::Rename { from: p("/a/keep/d"), to: p("/tmp/d"), dest_exists: false, source_is_dir: true }, keep(ProtectedMoveOut, &[("/a/keep/d", KeepWhat::Tree)])),
        ("rename into a carve-out keeps the content", "/usr/bin/mv", rename("/a/keep/f", "/a/keep/target/f", false), keep(ProtectedMoveOut, &[("/a/keep/f", KeepWhat::Content)])),
        ("rename from outside over a file keeps it", "/usr/bin/mv", rename("/tmp/gen.json", "/a/keep/config.json", true), keep(ProtectedClobber, &[("/a/keep/config.json", KeepWhat::Entry)])),
        ("rename from outside to a new name", "/usr/bin/mv", rename("/tmp/x", "/a/keep/new", false), Want::Allow),
        ("rename from a zone that keeps over one that denies", "/usr/bin/mv", rename("/a/keep/f", "/a/proj/f", true), Want::Deny(ProtectedClobber)),
        ("rename of the zone root that keeps", "/usr/bin/mv", rename("/a/keep", "/a/other", false), Want::Deny(ZoneRootRename)),
        ("hard link out keeps the content", "/usr/bin/ln", Action::Link { from: p("/a/keep/f"), to: p("/tmp/f") }, keep(ProtectedLinkOut, &[("/a/keep/f", KeepWhat::Content)])),
        ("hard link into a carve-out keeps the content", "/usr/bin/ln", Action::Link { from: p("/a/keep/f"), to: p("/a/keep/target/f") }, keep(ProtectedLinkOut, &[("/a/keep/f", KeepWhat::Content)])),
        ("hard link within the zone", "/usr/bin/ln", Action::Link { from: p("/a/keep/f"), to: p("/a/keep/g") }, Want::Allow),
        ("truncate keeps the content", rm, Action::Truncate { path: p("/a/keep/f") }, keep(ProtectedTruncate, &[("/a/keep/f", KeepWhat::Content)])),
        ("truncating open keeps the content", "/usr/bin/sh", Action::Open { path: p("/a/keep/f"), flags: OpenFlags { write: true, truncate: true, create: true } }, keep(ProtectedTruncate, &[("/a/keep/f", KeepWhat::Content)])),
        ("write-open keeps the first version", "/usr/bin/sed", open("/a/keep/f", true), keep(ProtectedFirstWrite, &[("/a/keep/f", KeepWhat::FirstWrite)])),
        ("read-open keeps nothing", "/usr/bin/cat", open("/a/keep/f", false), Want::Allow),
        ("create keeps nothing", rm, Action::Create { path: p("/a/keep/new"), kind: NodeKind::File }, Want::Allow),
        ("unlink in a carve-out keeps nothing", rm, unlink("/a/keep/target/x"), Want::Allow),
        ("trusted git is kept like everyone", "/usr/bin/git", unlink("/a/keep/.git/index.lock"), keep(ProtectedDelete, &[("/a/keep/.git/index.lock", KeepWhat::Entry)])),
        ("cargo in its carve-out keeps nothing", "/usr/bin/cargo", unlink("/a/keep/target/x"), Want::Allow),
        ("override in a zone that keeps allows without keeping", rm, unlink("/a/keep/scratch/x"), Want::Allow),
        // Readonly zone.
        ("read in readonly zone", "/usr/bin/cat", open("/a/ro/f", false), Want::Allow),
        ("write-open in readonly zone", rm, open("/a/ro/f", true), Want::Deny(ReadonlyZone)),
        ("truncate in readonly zone", rm, Action::Truncate { path: p("/a/ro/f") }, Want::Deny(ReadonlyZone)),
        ("create in readonly zone", rm, Action::Create { path: p("/a/ro/new"), kind: NodeKind::File }, Want::Deny(ReadonlyZone)),
        ("unlink in readonly zone", rm, unlink("/a/ro/f"), Want::Deny(ReadonlyZone)),
        ("rename into readonly zone", "/usr/bin/mv", rename("/tmp/x", "/a/ro/new", false), Want::Deny(ReadonlyZone)),
        ("rename out of readonly zone", "/usr/bin/mv", rename("/a/ro/f", "/tmp/f", false), Want::Deny(ReadonlyZone)),
        ("hard link to a readonly file", "/usr/bin/ln", Action::Link { from: p("/a/ro/f"), to: p("/tmp/f") }, Want::Deny(ReadonlyZone)),
        // Secret zone.
        ("read a secret", "/usr/bin/cat", open("/home/u/.ssh/id_ed25519", false), Want::Deny(SecretZone)),
        ("exec from a secret zone", "/usr/bin/sh", exec("/home/u/.ssh/run", &["run"]), Want::Deny(SecretZone)),
        ("hard link out of a secret zone", "/usr/bin/ln", Action::Link { from: p("/home/u/.ssh/id"), to: p("/tmp/id") }, Want::Deny(SecretZone)),
        ("rename of a secret zone's ancestor", "/usr/bin/mv", rename("/a/vault", "/a/v2", false), Want::Deny(ZoneRootRename)),
        ("rename of the home holding guard files", "/usr/bin/mv", rename("/home/u", "/home/v", false), Want::Deny(GuardSelf)),
        ("read next to the secret zone", "/usr/bin/cat", open("/home/u/.sshx", false), Want::Allow),
        // Exec rules.
        ("git clean -fdx", "/usr/bin/git", exec("/usr/bin/git", &["git", "clean", "-fdx"]), Want::Deny(ExecRule)),
        ("git -C dir clean -f", "/usr/bin/git", exec("/usr/bin/git", &["git", "-C", "/a/proj", "clean", "-f"]), Want::Deny(ExecRule)),
        ("git clean -n (dry run)", "/usr/bin/git", exec("/usr/bin/git", &["git", "clean", "-n"]), Want::Allow),
        ("git status", "/usr/bin/git", exec("/usr/bin/git", &["git", "status"]), Want::Allow),
        ("renamed git binary run as git (argv0)", "/tmp/g", exec("/tmp/g", &["git", "clean", "-f"]), Want::Deny(ExecRule)),
        // Trusted tools.
        ("git (real exe) deletes in the zone", "/usr/bin/git", unlink("/a/proj/.git/index.lock"), Want::Allow),
        ("a copy of rm named git is not git", "/a/proj/git", unlink("/a/proj/src/main.rs"), Want::Deny(ProtectedDelete)),
        ("cargo inside its scope", "/usr/bin/cargo", unlink("/a/proj/sub/target/x"), Want::Allow),
        ("cargo outside its scope", "/usr/bin/cargo", unlink("/a/proj/src/lib.rs"), Want::Deny(ProtectedDelete)),
        ("scoped tool inside an absolute scope", "/opt/gen/bin/gen", unlink("/a/proj/generated/a.rs"), Want::Allow),
        ("scoped tool outside its scope", "/opt/gen/bin/gen", unlink("/a/proj/src/a.rs"), Want::Deny(ProtectedDelete)),
        ("node is never trusted", "/usr/bin/node", unlink("/a/proj/src/main.rs"), Want::Deny(ProtectedDelete)),
        ("python is never trusted", "/usr/bin/python3", unlink("/a/proj/src/main.rs"), Want::Deny(ProtectedDelete)),
        ("trusted git still may not read secrets", "/usr/bin/git", open("/home/u/.ssh/id", false), Want::Deny(SecretZone)),
        ("trusted git still may not write readonly", "/usr/bin/git", open("/a/ro/f", true), Want::Deny(ReadonlyZone)),
        // Overrides.
        ("policy override (string form) allows delete", rm, unlink("/a/proj/scratch/x"), Want::Allow),
        ("expired override is ignored", rm, unlink("/a/proj/old/x"), Want::Deny(ProtectedDelete)),
        // Guard files.
        ("write the policy file", "/usr/bin/tee", open("/etc/agent-guard/policy.json", true), Want::Deny(GuardSelf)),
        ("delete a guard state file", rm, unlink("/home/u/.local/state/agent-guard/grants.json"), Want::Deny(GuardSelf)),
        ("file an override request in the spool", "/usr/bin/agent-guard", Action::Create { path: p("/home/u/.local/state/agent-guard/requests/r1.json"), kind: NodeKind::File }, Want::Allow),
        ("rename a request over the grants file", "/usr/bin/mv", rename("/home/u/.local/state/agent-guard/requests/r1.json", "/home/u/.local/state/agent-guard/grants.json", true), Want::Deny(GuardSelf)),
        ("read the denial log", "/usr/bin/cat", open("/home/u/.local/state/agent-guard/denials.jsonl", false), Want::Allow),
        ("read the snapshot store", "/usr/bin/cat", open("/home/u/.local/state/agent-guard/store/s/000001-f", false), Want::Deny(GuardSelf)),
        ("link into the snapshot store", "/usr/bin/ln", Action::Link { from: p("/a/keep/f"), to: p("/home/u/.local/state/agent-guard/store/x") }, Want::Deny(GuardSelf)),
        ("rename into the snapshot store", "/usr/bin/mv", rename("/tmp/x", "/home/u/.local/state/agent-guard/store/x", false), Want::Deny(GuardSelf)),
        ("rename the guard state dir's parent", "/usr/bin/mv", rename("/home/u/.local/state", "/tmp/s", false), Want::Deny(GuardSelf)),
        ("signal the guard", "/usr/bin/kill", Action::Signal { target_pid: 1, target_is_guard: true }, Want::Deny(GuardSelf)),
        ("signal another process", "/usr/bin/kill", Action::Signal { target_pid: 1, target_is_guard: false }, Want::Allow),
    ];
    let mut failures = Vec::new();
    for (name, exe, action, want) in rows {
        let got = verdict_of(&pol, exe, action.clone(), true, 2000);
        if got != want {
            failures.push(format!("{name}: want {want:?}, got {got:?}"));
        }
        // The same event by a human is always allowed.
        let human = verdict_of(&pol, exe, action, false, 2000);
        if human != Want::Allow {
            failures.push(format!("{name} (human): want Allow, got {human:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn override_before_expiry_allows() {
    let pol = table_policy();
    assert_eq!(
        verdict_of(&pol, "/usr/bin/rm", unlink("/a/proj/old/x"), true, 999),
        Want::Allow
    );
    // Scoped to unlink: a move out is still denied.
    assert_eq!(
        verdict_of(
            &pol,
            "/usr/bin/mv",
            rename("/a/proj/old/x", "/tmp/x", false),
            true,
            999
        ),
        Want::Deny(RuleId::ProtectedMoveOut)
    );
}

#[test]
fn grants_allow_until_expiry_and_only_their_ops() {
    let pol = table_policy();
    let grants = Grants::new(vec![Grant {
        id: "g1".into(),
        path: p("/a/proj/src"),
        ops: [OpKind::Unlink].into_iter().collect::<OpSet>(),
        expires_at: Some(100),
        args: None,
    }]);
    let event = |action| Event {
        actor: actor("/usr/bin/rm"),
        action,
    };
    let agent = Attribution::agent("claude", 7);
    assert!(decide(&event(unlink("/a/proj/src/x")), &agent, &pol, &grants, 99).allows());
    assert!(!decide(&event(unlink("/a/proj/src/x")), &agent, &pol, &grants, 100).allows());
    assert!(!decide(&event(unlink("/a/proj/srcx")), &agent, &pol, &grants, 99).allows());
    assert!(!decide(
        &event(Action::Rmdir {
            path: p("/a/proj/src/d")
        }),
        &agent,
        &pol,
        &grants,
        99
    )
    .allows());
    // No grant lifts the guard's own files.
    let all = Grants::new(vec![Grant {
        id: "g2".into(),
        path: p("/etc"),
        ops: OpSet::all(),
        expires_at: None,
        args: None,
    }]);
    assert!(!decide(
        &event(open("/etc/agent-guard/policy.json", true)),
        &agent,
        &pol,
        &all,
        0
    )
    .allows());
}

/// An exec override is scoped to the denied command's arguments (issue 17, item 6): approving
/// `git clean -fdx` does not let `git clean -fdx -e keep`, `git reset --hard` or `git reflog
/// expire` through; a human's explicit widening (`args: None`) does.
#[test]
fn an_exec_grant_covers_only_the_arguments_it_names() {
    let pol = policy(
        r#"{"ai_agent_patterns": ["claude"], "exec_rules": [
            {"program": "git", "args": ["clean"], "reason": "no"},
            {"program": "git", "args": ["reset", "--hard"], "reason": "no"},
            {"program": "git", "args": ["reflog", "expire"], "reason": "no"}]}"#,
    );
    let scoped = Grants::new(vec![Grant {
        id: "r-1".into(),
        path: p("/usr/bin/git"),
        ops: [OpKind::Exec].into_iter().collect::<OpSet>(),
        expires_at: None,
        args: Some(vec!["clean".into(), "-fdx".into()]),
    }]);
    let agent = Attribution::agent("claude", 7);
    let run = |argv: &[&str], grants: &Grants| {
        decide(
            &Event {
                actor: actor("/bin/bash"),
                action: exec("/usr/bin/git", argv),
            },
            &agent,
            &pol,
            grants,
            0,
        )
        .allows()
    };
    assert!(run(&["git", "clean", "-fdx"], &scoped));
    // argv[0] is the agent's to choose; the program is the path the kernel runs.
    assert!(run(&["/usr/bin/git", "clean", "-fdx"], &scoped));
    for other in [
        &["git", "clean", "-fdx", "-e", "keep"][..],
        &["git", "clean", "-fd"],
        &["git", "reset", "--hard"],
        &["git", "reflog", "expire", "--all"],
    ] {
        assert!(!run(other, &scoped), "{other:?} must stay denied");
    }
    let widened = Grants::new(vec![Grant {
        args: None,
        ..scoped.grants[0].clone()
    }]);
    assert!(run(&["git", "reset", "--hard"], &widened));
}

#[test]
fn a_sensor_that_cannot_keep_gets_the_answers_of_a_zone_that_denies() {
    let pol = table_policy();
    let agent = Attribution::agent("claude", 7);
    let ev = |action| Event {
        actor: actor("/usr/bin/rm"),
        action,
    };
    let verdict = |action| decide_without_keeping(&ev(action), &agent, &pol, &Grants::default(), 0);
    assert!(
        matches!(verdict(unlink("/a/keep/f")), Verdict::Deny(d) if d.rule == RuleId::ProtectedDelete)
    );
    assert_eq!(verdict(open("/a/keep/f", true)), Verdict::Allow);
    assert_eq!(
        verdict(Action::Truncate {
            path: p("/a/keep/f")
        }),
        Verdict::Allow
    );
}

#[test]
fn audit_mode_would_keep_without_keeping() {
    let pol = policy(r#"{"mode": "audit", "protected_zones": ["/a/keep"]}"#);
    let event = Event {
        actor: actor("/usr/bin/rm"),
        action: unlink("/a/keep/x"),
    };
    match decide(
        &event,
        &Attribution::agent("claude", 1),
        &pol,
        &Grants::default(),
        0,
    ) {
        Verdict::WouldKeep(k) => assert_eq!(k.rule, RuleId::ProtectedDelete),
        other => panic!("expected a would-keep verdict, got {other:?}"),
    }
}

#[test]
fn audit_mode_allows_but_reports() {
    let pol = policy(
        r#"{"mode": "audit", "protected_zones": [{"path": "/a/proj", "on_destroy": "deny"}]}"#,
    );
    let event = Event {
        actor: actor("/usr/bin/rm"),
        action: unlink("/a/proj/x"),
    };
    match decide(
        &event,
        &Attribution::agent("claude", 1),
        &pol,
        &Grants::default(),
        0,
    ) {
        Verdict::Audit(d) => assert_eq!(d.rule, RuleId::ProtectedDelete),
        other => panic!("expected an audit verdict, got {other:?}"),
    }
}

#[test]
fn denial_carries_reason_zone_and_hint() {
    let pol = table_policy();
    let event = Event {
        actor: actor("/usr/bin/rm"),
        action: unlink("/a/proj/my file.rs"),
    };
    let Verdict::Deny(d) = decide(
        &event,
        &Attribution::agent("claude", 1),
        &pol,
        &Grants::default(),
        0,
    ) else {
        panic!("expected deny");
    };
    assert_eq!(d.zone.as_deref(), Some(Path::new("/a/proj")));
    assert!(
        d.reason.contains("/a/proj/my file.rs") && d.reason.contains("protected zone"),
        "{}",
        d.reason
    );
    assert_eq!(
        d.hint,
        "agent-guard override request '/a/proj/my file.rs' --op unlink --reason '<why the user wants this>'"
    );
}

#[test]
fn override_of_a_zone_root_is_rejected_at_load() {
    for bad in [r#"["/a/proj"]"#, r#"["/a"]"#, r#"["/"]"#, r#"["~"]"#] {
        let json = format!(r#"{{"protected_zones": ["/a/proj"], "temporary_overrides": {bad}}}"#);
        let err = policy::from_json(&json, Path::new("p.json"), &ctx())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("temporary_overrides[0]") && err.contains("may not cover"),
            "{err}"
        );
    }
}

#[test]
fn macos_matching_is_case_insensitive_and_maps_private() {
    let mut c = ctx();
    c.platform = Platform::MacOs;
    let pol = policy::from_json(
        r#"{"protected_zones": [{"path": "/Users/u/Src", "on_destroy": "deny"}, {"path": "/tmp/keep", "on_destroy": "deny"}]}"#,
        Path::new("p"),
        &c,
    )
    .unwrap();
    let ev = |path: &str| Event {
        actor: actor("/bin/rm"),
        action: unlink(path),
    };
    let agent = Attribution::agent("claude", 1);
    assert!(!decide(&ev("/users/U/src/x"), &agent, &pol, &Grants::default(), 0).allows());
    assert!(!decide(
        &ev("/private/tmp/keep/x"),
        &agent,
        &pol,
        &Grants::default(),
        0
    )
    .allows());
}
