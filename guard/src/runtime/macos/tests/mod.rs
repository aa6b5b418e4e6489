//! `DaemonCore` driven as the ES sensor drives it, with a fake process table for the live
//! inspector and a real runtime (policy, engine, denial log) in a temp state dir. The tests are
//! grouped by subject in the files beside this one; here are the fixture and the helpers.

mod decisions;
mod lineage;
mod policy;
mod setup;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::setup::*;
use super::*;
use crate::paths::Locations;
use crate::platform::macos::{BsdInfo, ProcArgs, SigningInfo};
use crate::policy::LoadContext;
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
        // Until the daemon clones before answering (docs/snapshots.md, "macOS"), zones that keep
        // answer as zones that deny.
        keeps: false,
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
