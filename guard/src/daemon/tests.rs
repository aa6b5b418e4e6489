//! `DaemonCore` driven as the ES sensor drives it, with a fake process table for the live
//! inspector and a real runtime (policy, engine, denial log) in a temp state dir.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::*;
use crate::platform::macos::{BsdInfo, ProcArgs, SigningInfo};
use crate::runtime::RuntimeConfig;
use crate::vocab::{Action, Actor, AgentInfo, Attribution, Event, Verdict};

const HOME: &str = "/Users/alice";
const FILE: &str = "/Users/alice/src/app/main.rs";

/// What the fake knows of one process: `proc_bsdinfo`, argv, executable path.
type FakeProcess = (BsdInfo, Vec<String>, PathBuf);

/// A process table standing in for `proc_pidinfo`, `KERN_PROCARGS2` and `proc_pidpath`.
#[derive(Default)]
struct FakeInspector {
    procs: Mutex<HashMap<i32, FakeProcess>>,
}

impl FakeInspector {
    fn add(&self, pid: i32, ppid: i32, start: u64, exe: &str, argv: &[&str]) {
        let exe = PathBuf::from(exe);
        let bsd = BsdInfo {
            pid: pid as u32,
            ppid: ppid as u32,
            comm: comm_of(&exe),
            start_sec: start,
            ..BsdInfo::default()
        };
        let argv = argv.iter().map(|a| a.to_string()).collect();
        self.procs.lock().unwrap().insert(pid, (bsd, argv, exe));
    }
}

impl ProcessInspector for FakeInspector {
    fn process_args(&self, pid: i32) -> Option<ProcArgs> {
        let procs = self.procs.lock().unwrap();
        let (_, argv, exe) = procs.get(&pid)?;
        Some(ProcArgs {
            exec_path: exe.clone(),
            argv: argv.clone(),
            env: vec![],
        })
    }
    fn bsd_info(&self, pid: i32) -> Option<BsdInfo> {
        Some(self.procs.lock().unwrap().get(&pid)?.0.clone())
    }
    fn exe_path(&self, pid: i32) -> Option<PathBuf> {
        Some(self.procs.lock().unwrap().get(&pid)?.2.clone())
    }
}

/// A desktop: launchd, the login shell of the human (pid 50) under Terminal (40).
fn desktop() -> Arc<FakeInspector> {
    let inspector = Arc::new(FakeInspector::default());
    inspector.add(1, 0, 1, "/sbin/launchd", &["/sbin/launchd"]);
    inspector.add(
        40,
        1,
        2,
        "/System/Applications/Utilities/Terminal.app/Contents/MacOS/Terminal",
        &["Terminal"],
    );
    inspector.add(50, 40, 3, "/bin/zsh", &["-zsh"]);
    inspector
}

struct Fixture {
    _dir: tempfile::TempDir,
    state: PathBuf,
    policy_file: PathBuf,
    ctx: LoadContext,
    core: DaemonCore,
    inspector: Arc<FakeInspector>,
}

const POLICY: &str = r#"{
  "ai_agent_patterns": ["claude"],
  "protected_zones": ["~/src"],
  "secret_zones": ["~/.ssh"],
  "trusted_tools": [{"name": "git", "signing_id": "com.apple.git"}]
}"#;

fn fixture(policy_json: &str) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let locations = Locations::in_state_dir(&state);
    let policy_file = dir.path().join("policy.json");
    std::fs::write(&policy_file, policy_json).unwrap();
    let mut ctx = daemon_context(
        vec![PathBuf::from(HOME)],
        &locations,
        Some(&policy_file),
        None,
    );
    // The zones are made-up paths: nothing to resolve on this machine.
    ctx.resolve_symlinks = false;
    let policy = crate::policy::load_file(&policy_file, &ctx).unwrap();
    let config = RuntimeConfig {
        policy_file: Some(policy_file.clone()),
        ctx: ctx.clone(),
        locations,
        force_audit: false,
    };
    let runtime = Arc::new(Runtime::new(policy, config).unwrap());
    runtime.start_background();
    let inspector = desktop();
    let core = DaemonCore::new(runtime, inspector.clone()).unwrap();
    Fixture {
        _dir: dir,
        state,
        policy_file,
        ctx,
        core,
        inspector,
    }
}

fn id(pid: i32, pidversion: i32) -> ProcessIdentity {
    ProcessIdentity { pid, pidversion }
}

/// What an ES message says about a process whose parent is `parent`.
fn facts(process: ProcessIdentity, parent: ProcessIdentity) -> ActorFacts {
    ActorFacts {
        process,
        ppid: parent.pid,
        original_ppid: parent.pid,
        parent: Some(parent),
        responsible: Some(process),
        signing: SigningInfo::default(),
    }
}

fn unlink_by(pid: i32, exe: &str, path: &str) -> Event {
    Event {
        actor: Actor {
            pid,
            exe: PathBuf::from(exe),
            argv0: String::new(),
            comm: comm_of(Path::new(exe)),
            ..Actor::default()
        },
        action: Action::Unlink {
            path: PathBuf::from(path),
        },
    }
}

fn args(argv: &[&str]) -> Vec<String> {
    argv.iter().map(|a| a.to_string()).collect()
}

/// The ES sensor's exec: the decision is asked for by the old image, then the entry moves.
fn exec(f: &Fixture, before: ProcessIdentity, after: ActorFacts, exe: &str, argv: &[&str]) {
    f.core.on_exec(before, &after, Path::new(exe), &args(argv));
}

fn agent_of(v: &Option<Attribution>) -> Option<(String, i32)> {
    match v {
        Some(Attribution::Agent(AgentInfo { name, pid })) => Some((name.clone(), *pid)),
        _ => None,
    }
}

/// The agent (argv0 "claude") is started by the human's shell; it forks zsh, which forks rm.
/// Returns rm's identity after its exec.
fn agent_tree(f: &Fixture) -> ProcessIdentity {
    let shell = id(50, 3);
    // The human's shell was there before the daemon; its fork of the agent is the first event.
    f.core
        .on_fork(&facts(shell, id(40, 2)), &facts(id(100, 1), shell));
    exec(
        f,
        id(100, 1),
        facts(id(100, 2), shell),
        "/usr/local/bin/claude",
        &["claude"],
    );
    let agent = id(100, 2);
    f.core
        .on_fork(&facts(agent, shell), &facts(id(200, 1), agent));
    exec(
        f,
        id(200, 1),
        facts(id(200, 2), agent),
        "/bin/zsh",
        &["zsh", "-c", "rm -rf src"],
    );
    f.core
        .on_fork(&facts(id(200, 2), agent), &facts(id(300, 1), id(200, 2)));
    exec(
        f,
        id(300, 1),
        facts(id(300, 2), id(200, 2)),
        "/bin/rm",
        &["rm", "-rf", "src"],
    );
    id(300, 2)
}

fn denials(f: &Fixture) -> Vec<crate::audit::DenialRecord> {
    f.core.runtime().flush();
    crate::audit::read_denials(&f.state.join("denials.jsonl"), None)
        .unwrap()
        .records
}

#[test]
fn an_agents_grandchild_is_denied_and_the_humans_rm_is_allowed() {
    let f = fixture(POLICY);
    let rm = agent_tree(&f);
    let verdict = f.core.decide(
        &facts(rm, id(200, 2)),
        &unlink_by(300, "/bin/rm", FILE),
        &*f.inspector,
    );
    assert!(matches!(verdict, Verdict::Deny(_)), "{verdict:?}");

    // The human's own rm, forked by the login shell, on the same file.
    let shell = id(50, 3);
    f.core
        .on_fork(&facts(shell, id(40, 2)), &facts(id(400, 1), shell));
    exec(&f, id(400, 1), facts(id(400, 2), shell), "/bin/rm", &["rm"]);
    let verdict = f.core.decide(
        &facts(id(400, 2), shell),
        &unlink_by(400, "/bin/rm", FILE),
        &*f.inspector,
    );
    assert_eq!(verdict, Verdict::Allow);
    // Outside the zones the agent may delete too.
    let verdict = f.core.decide(
        &facts(rm, id(200, 2)),
        &unlink_by(300, "/bin/rm", "/Users/alice/Downloads/x"),
        &*f.inspector,
    );
    assert_eq!(verdict, Verdict::Allow);

    let records = denials(&f);
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0].path, FILE);
    assert_eq!(records[0].ancestor, "claude");
    assert_eq!(records[0].pid, 300);
    assert_eq!(records[0].agent_pid, 100);
    assert_eq!(records[0].process, "rm");
}

#[test]
fn git_stash_may_reset_the_tree_it_saved_and_the_agent_may_not() {
    let f = fixture(POLICY);
    agent_tree(&f);
    let agent = id(100, 2);
    let git = "/usr/bin/git";
    let reset = || Event {
        actor: Actor {
            pid: 600,
            exe: PathBuf::from(git),
            comm: "git".into(),
            signing_id: Some("com.apple.git".into()),
            ..Actor::default()
        },
        action: Action::Exec {
            path: PathBuf::from(git),
            argv: args(&["git", "reset", "--hard", "-q"]),
        },
    };
    // The agent runs `git stash`; the fork that execs the reset is still `git stash`, and the
    // daemon reads that from KERN_PROCARGS2.
    f.core
        .on_fork(&facts(agent, id(50, 3)), &facts(id(500, 1), agent));
    exec(
        &f,
        id(500, 1),
        facts(id(500, 2), agent),
        git,
        &["git", "stash"],
    );
    f.core
        .on_fork(&facts(id(500, 2), agent), &facts(id(600, 1), id(500, 2)));
    f.inspector.add(600, 500, 9, git, &["git", "stash"]);
    let verdict = f
        .core
        .decide(&facts(id(600, 1), id(500, 2)), &reset(), &*f.inspector);
    assert_eq!(verdict, Verdict::Allow);
    // The same exec from a git whose command line is not a stash (an alias run by git).
    f.inspector.add(
        600,
        500,
        9,
        git,
        &["git", "-c", "alias.x=reset --hard", "x"],
    );
    let verdict = f
        .core
        .decide(&facts(id(600, 1), id(500, 2)), &reset(), &*f.inspector);
    assert!(matches!(verdict, Verdict::Deny(_)), "{verdict:?}");
}

#[test]
fn taint_survives_exec_and_reparenting() {
    let f = fixture(POLICY);
    let rm = agent_tree(&f);
    // rm double-forks: 301 is orphaned when 300 exits and launchd adopts it.
    f.core
        .on_fork(&facts(rm, id(200, 2)), &facts(id(301, 1), rm));
    f.core.on_exit(rm);
    assert_eq!(f.core.known_attribution(rm), None);
    let orphan = ActorFacts {
        ppid: 1,
        original_ppid: 300,
        parent: Some(id(1, 1)),
        ..facts(id(301, 1), id(1, 1))
    };
    // It execs something that is nobody's agent pattern, under a new pidversion.
    exec(
        &f,
        id(301, 1),
        ActorFacts {
            process: id(301, 5),
            ..orphan.clone()
        },
        "/usr/bin/perl",
        &["perl", "-e", "unlink"],
    );
    assert_eq!(
        f.core.known_attribution(id(301, 1)),
        None,
        "moved, not copied"
    );
    assert_eq!(
        agent_of(&f.core.known_attribution(id(301, 5))),
        Some(("claude".into(), 100))
    );
    let verdict = f.core.decide(
        &ActorFacts {
            process: id(301, 5),
            ..orphan
        },
        &unlink_by(301, "/usr/bin/perl", FILE),
        &*f.inspector,
    );
    assert!(matches!(verdict, Verdict::Deny(_)), "{verdict:?}");

    // The reused pid 300 (a new pidversion, forked by the human) inherits nothing.
    let shell = id(50, 3);
    f.core
        .on_fork(&facts(shell, id(40, 2)), &facts(id(300, 9), shell));
    let verdict = f.core.decide(
        &facts(id(300, 9), shell),
        &unlink_by(300, "/bin/rm", FILE),
        &*f.inspector,
    );
    assert_eq!(verdict, Verdict::Allow);
}

#[test]
fn a_fork_the_process_client_has_not_delivered_yet_is_attributed_by_its_parent() {
    let f = fixture(POLICY);
    let rm = agent_tree(&f);
    // The file client is faster than the process client: 302's fork is still queued.
    let verdict = f.core.decide(
        &facts(id(302, 1), rm),
        &unlink_by(302, "/bin/rm", FILE),
        &*f.inspector,
    );
    assert!(matches!(verdict, Verdict::Deny(_)), "{verdict:?}");
    // Reparented too, before the first event: the original parent's entry still answers.
    let orphan = ActorFacts {
        ppid: 1,
        original_ppid: 300,
        parent: Some(id(1, 1)),
        ..facts(id(303, 1), id(1, 1))
    };
    let verdict = f
        .core
        .decide(&orphan, &unlink_by(303, "/bin/rm", FILE), &*f.inspector);
    assert!(matches!(verdict, Verdict::Deny(_)), "{verdict:?}");
}

#[test]
fn processes_older_than_the_daemon_are_attributed_by_the_live_walk() {
    let f = fixture(POLICY);
    // A Node agent started before the daemon: exe node, argv[0] retitled to "claude"
    // (process.title); its zsh and that zsh's rm, none of them seen by ES yet.
    f.inspector
        .add(100, 50, 10, "/opt/homebrew/bin/node", &["claude"]);
    f.inspector.add(200, 100, 11, "/bin/zsh", &["zsh"]);
    f.inspector.add(300, 200, 12, "/bin/rm", &["rm", "-f"]);
    let verdict = f.core.decide(
        &facts(id(300, 7), id(200, 6)),
        &unlink_by(300, "/bin/rm", FILE),
        &*f.inspector,
    );
    assert!(matches!(verdict, Verdict::Deny(_)), "{verdict:?}");
    assert_eq!(
        agent_of(&f.core.known_attribution(id(300, 7))),
        Some(("claude".into(), 100)),
        "remembered for its children"
    );

    // The agent's zsh forks again, a fork from a parent the table does not know: the parent is
    // attributed by the walk at the fork, so its child keeps the taint after reparenting.
    f.core.on_fork(
        &facts(id(200, 6), id(100, 5)),
        &facts(id(201, 1), id(200, 6)),
    );
    assert_eq!(
        agent_of(&f.core.known_attribution(id(200, 6))),
        Some(("claude".into(), 100))
    );
    let orphan = ActorFacts {
        ppid: 1,
        original_ppid: 1,
        parent: Some(id(1, 1)),
        ..facts(id(201, 1), id(1, 1))
    };
    let verdict = f
        .core
        .decide(&orphan, &unlink_by(201, "/bin/rm", FILE), &*f.inspector);
    assert!(matches!(verdict, Verdict::Deny(_)), "{verdict:?}");

    // The agent itself, acting before any exec event: its own argv[0] is read now.
    let verdict = f.core.decide(
        &facts(id(100, 5), id(50, 3)),
        &unlink_by(100, "/opt/homebrew/bin/node", FILE),
        &*f.inspector,
    );
    assert!(matches!(verdict, Verdict::Deny(_)), "{verdict:?}");
    let records = denials(&f);
    assert!(
        records.iter().any(|r| r.pid == 100 && r.agent_pid == 100),
        "{records:?}"
    );

    // A human's process older than the daemon: the walk ends at launchd, nothing matches.
    f.inspector.add(500, 50, 13, "/bin/rm", &["rm"]);
    let verdict = f.core.decide(
        &facts(id(500, 1), id(50, 3)),
        &unlink_by(500, "/bin/rm", FILE),
        &*f.inspector,
    );
    assert_eq!(verdict, Verdict::Allow);
    assert_eq!(
        f.core.known_attribution(id(500, 1)),
        Some(Attribution::Human)
    );
}

#[test]
fn the_signing_identity_from_the_message_reaches_the_engine() {
    let f = fixture(POLICY);
    let rm = agent_tree(&f);
    // git, trusted by signing id in the policy, run by the agent from an unusual path.
    f.core
        .on_fork(&facts(rm, id(200, 2)), &facts(id(310, 1), rm));
    let git = ActorFacts {
        signing: SigningInfo {
            signing_id: Some("com.apple.git".into()),
            ..SigningInfo::default()
        },
        ..facts(id(310, 2), rm)
    };
    exec(
        &f,
        id(310, 1),
        git.clone(),
        "/opt/tools/git",
        &["git", "rm"],
    );
    let event = unlink_by(310, "/opt/tools/git", FILE);
    assert_eq!(f.core.decide(&git, &event, &*f.inspector), Verdict::Allow);
    // The same binary without the signature is not git.
    let unsigned = ActorFacts {
        signing: SigningInfo::default(),
        ..git
    };
    let verdict = f.core.decide(&unsigned, &event, &*f.inspector);
    assert!(matches!(verdict, Verdict::Deny(_)), "{verdict:?}");
}

#[test]
fn fail_mode_and_agent_patterns_follow_policy_reloads() {
    let f = fixture(POLICY);
    assert!(!f.core.fail_closed());
    let codex = |pidversion| {
        f.inspector
            .add(600, 50, 20, "/usr/local/bin/codex", &["codex"]);
        f.core.decide(
            &facts(id(600, pidversion), id(50, 3)),
            &unlink_by(600, "/usr/local/bin/codex", FILE),
            &*f.inspector,
        )
    };
    assert_eq!(codex(1), Verdict::Allow, "codex is not a pattern yet");

    std::fs::write(
        &f.policy_file,
        POLICY
            .replace(r#"["claude"]"#, r#"["claude", "codex"]"#)
            .replacen("{", r#"{"fail_mode": "closed","#, 1),
    )
    .unwrap();
    // The fixture's watcher may have swapped the new file in already; either way, after this
    // the new policy is in force.
    f.core
        .runtime()
        .policy
        .reload(&f.policy_file, &f.ctx)
        .unwrap();
    assert!(f.core.fail_closed());
    // A new codex process (a new pidversion) is recognized by the rebuilt matcher.
    assert!(matches!(codex(2), Verdict::Deny(_)));
}

#[test]
fn watched_roots_are_the_zones_and_the_guard_files() {
    let f = fixture(POLICY);
    let roots = f.core.watched_roots();
    assert!(roots
        .zone_roots
        .contains(&PathBuf::from("/Users/alice/src")));
    assert!(roots
        .zone_roots
        .contains(&PathBuf::from("/Users/alice/.ssh")));
    for guard in [
        f.state.clone(),
        f.policy_file.clone(),
        PathBuf::from("/etc/agent-guard"),
        PathBuf::from("/private/etc/agent-guard"),
        PathBuf::from(LAUNCH_DAEMON_PLIST),
        PathBuf::from(LOG_DIR),
        PathBuf::from("/private/var/log/agent-guard"),
    ] {
        assert!(roots.guard_files.contains(&guard), "{guard:?} not watched");
    }
    assert!(!roots.zone_roots.iter().any(|r| r.starts_with("/etc")));
}

#[test]
fn the_daemon_policy_guards_its_files_in_both_spellings_and_lets_agents_file_requests() {
    let locations = Locations::macos_daemon();
    let mut ctx = daemon_context(
        vec![PathBuf::from(HOME), PathBuf::from("/Users/bob")],
        &locations,
        None,
        Some(Path::new("/opt/agent-guard/bin/agent-guard")),
    );
    ctx.resolve_symlinks = false;
    let policy = crate::policy::from_json(POLICY, Path::new("test.json"), &ctx).unwrap();
    let agent = Attribution::Agent(AgentInfo {
        name: "claude".into(),
        pid: 1,
    });
    let decide = |action: Action| {
        let event = Event {
            actor: unlink_by(9, "/bin/rm", "/").actor,
            action,
        };
        crate::engine::decide(&event, &agent, &policy, &Default::default(), 0)
    };
    let unlink = |p: &str| Action::Unlink {
        path: PathBuf::from(p),
    };
    for guarded in [
        "/etc/agent-guard/policy.json",
        "/private/etc/agent-guard/policy.json",
        "/private/var/db/agent-guard/grants.json",
        "/var/log/agent-guard/denials.jsonl",
        "/private/var/log/agent-guard/daemon.log",
        "/Library/LaunchDaemons/com.agent-guard.daemon.plist",
        "/opt/agent-guard/bin/agent-guard",
        "/Users/bob/src/x",
        // APFS is case-insensitive: so is matching in the daemon's policy.
        "/USERS/Bob/SRC/x",
        "/PRIVATE/etc/Agent-Guard/policy.json",
    ] {
        assert!(
            matches!(decide(unlink(guarded)), Verdict::Deny(_)),
            "{guarded}"
        );
    }
    for spool in [
        "/var/db/agent-guard/requests/r1.json",
        "/private/var/db/agent-guard/requests/r1.json",
    ] {
        let create = Action::Create {
            path: PathBuf::from(spool),
        };
        assert_eq!(decide(create), Verdict::Allow, "{spool}");
    }
}

#[test]
fn user_homes_are_the_directories_under_users() {
    let dir = tempfile::tempdir().unwrap();
    for d in ["alice", "bob", "Shared", ".hidden"] {
        std::fs::create_dir(dir.path().join(d)).unwrap();
    }
    std::fs::write(dir.path().join(".localized"), "").unwrap();
    std::fs::write(dir.path().join("notes.txt"), "").unwrap();
    std::os::unix::fs::symlink("/", dir.path().join("root-link")).unwrap();
    assert_eq!(
        user_homes(dir.path()),
        vec![dir.path().join("alice"), dir.path().join("bob")]
    );
    assert!(user_homes(&dir.path().join("absent")).is_empty());
}

#[test]
fn the_requests_spool_is_sticky_and_writable_by_all() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let locations = Locations::in_state_dir(&dir.path().join("db"));
    // An older install's private state dir is opened up to traversal.
    std::fs::create_dir(&locations.state_dir).unwrap();
    std::fs::set_permissions(&locations.state_dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    prepare_state_dirs(&locations).unwrap();
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode(&locations.state_dir), 0o711);
    assert_eq!(mode(&locations.requests_dir), 0o1777);
}

#[test]
fn a_policy_file_change_runs_the_reload_hook_the_daemon_refreshes_muting_with() {
    let f = fixture(POLICY);
    let (tx, rx) = std::sync::mpsc::channel();
    let tx = Mutex::new(tx);
    f.core.runtime().on_policy_reload(move || {
        let _ = tx.lock().unwrap().send(());
    });
    // As nix-darwin's activation writes it: a new file renamed over the old one.
    let tmp = f.policy_file.with_extension("new");
    std::fs::write(&tmp, POLICY.replace("~/src", "~/work")).unwrap();
    std::fs::rename(&tmp, &f.policy_file).unwrap();
    rx.recv_timeout(std::time::Duration::from_secs(5))
        .expect("the reload hook ran within 5 s");
    let roots = f.core.watched_roots();
    assert!(roots
        .zone_roots
        .contains(&PathBuf::from("/Users/alice/work")));
    assert!(!roots
        .zone_roots
        .contains(&PathBuf::from("/Users/alice/src")));
}

#[test]
fn a_human_started_node_that_retitles_itself_an_agent_is_caught() {
    let f = fixture(POLICY);
    let shell = id(50, 3);
    // `node cli.js` from the human's shell: no name matches at exec, so it is recorded human.
    f.core
        .on_fork(&facts(shell, id(40, 2)), &facts(id(700, 1), shell));
    let node = facts(id(700, 2), shell);
    exec(
        &f,
        id(700, 1),
        node.clone(),
        "/opt/homebrew/bin/node",
        &["node", "/opt/lib/cli.js"],
    );
    f.inspector.add(
        700,
        50,
        30,
        "/opt/homebrew/bin/node",
        &["node", "/opt/lib/cli.js"],
    );
    assert_eq!(
        f.core.known_attribution(id(700, 2)),
        Some(Attribution::Human)
    );
    let unlink = unlink_by(700, "/opt/homebrew/bin/node", FILE);
    assert_eq!(f.core.decide(&node, &unlink, &*f.inspector), Verdict::Allow);

    // Then it sets process.title = "claude".
    f.inspector
        .add(700, 50, 30, "/opt/homebrew/bin/node", &["claude"]);
    // Its own unlink in the zone: the title is read again because an agent would be stopped.
    let verdict = f.core.decide(&node, &unlink, &*f.inspector);
    assert!(matches!(verdict, Verdict::Deny(_)), "{verdict:?}");
    // What it forks from now on inherits it.
    f.core.on_fork(&node, &facts(id(701, 1), id(700, 2)));
    let verdict = f.core.decide(
        &facts(id(701, 1), id(700, 2)),
        &unlink_by(701, "/bin/rm", FILE),
        &*f.inspector,
    );
    assert!(matches!(verdict, Verdict::Deny(_)), "{verdict:?}");
    let records = denials(&f);
    assert!(
        records
            .iter()
            .all(|r| r.ancestor == "claude" && r.agent_pid == 700),
        "{records:?}"
    );
    assert_eq!(records.len(), 2);
}

#[test]
fn a_retitled_parent_is_seen_at_its_next_fork() {
    let f = fixture(POLICY);
    let shell = id(50, 3);
    f.core
        .on_fork(&facts(shell, id(40, 2)), &facts(id(710, 1), shell));
    let node = facts(id(710, 2), shell);
    exec(
        &f,
        id(710, 1),
        node.clone(),
        "/usr/bin/node",
        &["node", "main.js"],
    );
    f.inspector
        .add(710, 50, 31, "/usr/bin/node", &["codex-like", "x"]);
    f.core.on_fork(&node, &facts(id(711, 1), id(710, 2)));
    assert_eq!(
        f.core.known_attribution(id(711, 1)),
        Some(Attribution::Human),
        "a title that is no agent pattern changes nothing"
    );
    f.inspector.add(710, 50, 31, "/usr/bin/node", &["claude"]);
    f.core.on_fork(&node, &facts(id(712, 1), id(710, 2)));
    assert_eq!(
        agent_of(&f.core.known_attribution(id(712, 1))),
        Some(("claude".into(), 710))
    );
    // The human's own processes keep being human: their titles name no agent.
    f.core
        .on_fork(&facts(shell, id(40, 2)), &facts(id(713, 1), shell));
    assert_eq!(
        f.core.known_attribution(id(713, 1)),
        Some(Attribution::Human)
    );
}
