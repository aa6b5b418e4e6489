//! `DaemonCore` driven as the ES sensor drives it (fork, exec and exit notifications, then
//! attribution and decision on a worker), with a fake process table for the live inspector and
//! a real runtime (policy, engine, denial log) in a temp state dir. The tests are grouped by
//! subject in the files beside this one; here are the fixture and the helpers.

mod decisions;
mod glue;
mod keep;
mod keeper;
mod lineage;
mod policy;
mod setup;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::setup::*;
use super::*;
use crate::paths::Locations;
use crate::platform::macos::{cs, BsdInfo, ProcArgs, ProcessIdentity, SigningInfo};
use crate::policy::LoadContext;
use crate::runtime::RuntimeConfig;
use crate::vocab::{Action, AgentInfo, Attribution, Event, Verdict};

const HOME: &str = "/Users/alice";
const FILE: &str = "/Users/alice/src/app/main.rs";

/// What the fake knows of one process: `proc_bsdinfo`, argv, executable path.
type FakeProcess = (BsdInfo, Vec<String>, PathBuf);

/// A process table standing in for `proc_pidinfo`, `KERN_PROCARGS2` and `proc_pidpath`; counts
/// the argv reads (each a `sysctl` on a Mac).
#[derive(Default)]
struct FakeInspector {
    procs: Mutex<HashMap<i32, FakeProcess>>,
    argv_reads: AtomicU64,
}

impl FakeInspector {
    /// `start` in microseconds, as ES's `start_time` gives it.
    fn add(&self, pid: i32, ppid: i32, start: u64, exe: &str, argv: &[&str]) {
        let exe = PathBuf::from(exe);
        let bsd = BsdInfo {
            pid: pid as u32,
            ppid: ppid as u32,
            comm: comm_of(&exe),
            start_sec: start / 1_000_000,
            start_usec: start % 1_000_000,
            ..BsdInfo::default()
        };
        let argv = argv.iter().map(|a| a.to_string()).collect();
        self.procs.lock().unwrap().insert(pid, (bsd, argv, exe));
    }

    fn argv_reads(&self) -> u64 {
        self.argv_reads.load(Ordering::Relaxed)
    }
}

impl ProcessInspector for FakeInspector {
    fn process_args(&self, pid: i32) -> Option<ProcArgs> {
        self.argv_reads.fetch_add(1, Ordering::Relaxed);
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

/// launchd, Terminal (40) and the human's login shell (50), all older than the daemon.
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
    core: Arc<DaemonCore>,
    inspector: Arc<FakeInspector>,
    /// The message clock, in nanoseconds: every event is 1 ms after the last.
    clock: AtomicU64,
}

/// Its zone denies: these tests are about who is stopped (a delete by an agent is refused, a
/// human's allowed). What zones that keep do is tested with real files in `keep`.
const POLICY: &str = r#"{
  "ai_agent_patterns": ["claude"],
  "protected_zones": [{"path": "~/src", "on_destroy": "deny"}],
  "secret_zones": ["~/.ssh"],
  "trusted_tools": [{"name": "git", "signing_id": "com.apple.git"}]
}"#;

fn fixture(policy_json: &str) -> Fixture {
    fixture_with(policy_json, Arc::new(crate::platform::macos::CopyCloner))
}

/// A fixture whose core keeps with `cloner`.
fn fixture_with(policy_json: &str, cloner: Arc<dyn crate::platform::macos::Cloner>) -> Fixture {
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
        // As the daemon: it clones before answering (`keep.rs` tests it with real files).
        keeps: true,
    };
    let runtime = Arc::new(Runtime::new(policy, config).unwrap());
    runtime.start_background();
    let inspector = desktop();
    let core = Arc::new(DaemonCore::new(runtime, inspector.clone(), cloner).unwrap());
    Fixture {
        _dir: dir,
        state,
        policy_file,
        ctx,
        core,
        inspector,
        clock: AtomicU64::new(1_000_000_000),
    }
}

/// A process as ES describes it: `start` is its start time in microseconds (the lineage key
/// with the pid), its pidversion is made from it, its parent is `parent`.
fn proc(pid: i32, start: u64, parent: &ActorFacts, exe: &str) -> ActorFacts {
    ActorFacts {
        process: ProcessIdentity {
            pid,
            pidversion: start as i32,
        },
        start_micros: start,
        ppid: parent.process.pid,
        original_ppid: parent.process.pid,
        parent: Some(parent.process),
        responsible: None,
        exe: PathBuf::from(exe),
        signing: SigningInfo::default(),
    }
}

/// The processes of [`desktop`], as ES names them.
fn launchd() -> ActorFacts {
    ActorFacts {
        process: ProcessIdentity {
            pid: 1,
            pidversion: 1,
        },
        start_micros: 1,
        exe: PathBuf::from("/sbin/launchd"),
        ..ActorFacts::default()
    }
}

fn shell() -> ActorFacts {
    let terminal = proc(
        40,
        2,
        &launchd(),
        "/System/Applications/Utilities/Terminal.app",
    );
    proc(50, 3, &terminal, "/bin/zsh")
}

/// Reparented to launchd, as after its parent's exit.
fn orphaned(mut process: ActorFacts) -> ActorFacts {
    process.ppid = 1;
    process.parent = Some(launchd().process);
    process
}

fn args(argv: &[&str]) -> Vec<String> {
    argv.iter().map(|a| a.to_string()).collect()
}

impl Fixture {
    fn tick(&self) -> u64 {
        self.clock.fetch_add(1_000_000, Ordering::Relaxed)
    }

    /// Let `ns` of message time pass.
    fn wait(&self, ns: u64) {
        self.clock.fetch_add(ns, Ordering::Relaxed);
    }

    fn fork(&self, parent: &ActorFacts, child: &ActorFacts) {
        self.core.on_fork(parent, child, self.tick());
    }

    /// NOTIFY_EXEC: `process` now runs `exe`; returns it as ES describes it from now on.
    fn exec(&self, process: &ActorFacts, exe: &str, argv: &[&str]) -> ActorFacts {
        let after = ActorFacts {
            process: ProcessIdentity {
                pidversion: process.process.pidversion + 1,
                ..process.process
            },
            exe: PathBuf::from(exe),
            ..process.clone()
        };
        self.core.on_exec(&after, &args(argv), self.tick());
        after
    }

    fn exit(&self, process: &ActorFacts) {
        self.core.on_exit(process, self.tick());
    }

    /// What a worker does with one of `actor`'s events: attribute, then decide.
    fn judge(&self, actor: &ActorFacts, action: Action) -> Verdict {
        let event = Event {
            actor: actor.actor(),
            action,
        };
        let who = self.core.attribute(actor, self.tick(), &*self.inspector);
        self.core.decide(actor, &event, &who, &*self.inspector)
    }

    /// The glue's shared side over this core: two workers, as the daemon's sensor.
    fn sensor(&self) -> Arc<crate::platform::macos::glue::Sensor> {
        crate::platform::macos::glue::Sensor::start(
            self.core.clone(),
            self.inspector.clone(),
            crate::platform::macos::mapping::MappingContext {
                guard: ProcessIdentity {
                    pid: 99,
                    pidversion: 9,
                },
            },
            Arc::default(),
            2,
            64,
        )
        .unwrap()
    }

    fn known(&self, process: &ActorFacts) -> Option<Attribution> {
        self.core.known_attribution(process)
    }
}

fn unlink(path: &str) -> Action {
    Action::Unlink {
        path: PathBuf::from(path),
    }
}

fn agent_of(v: &Option<Attribution>) -> Option<(String, i32)> {
    match v {
        Some(Attribution::Agent(AgentInfo { name, pid })) => Some((name.clone(), *pid)),
        _ => None,
    }
}

/// The agent (`claude`) started by the human's shell; it forks zsh, which forks rm. Returns
/// (the agent, its zsh, rm), each after its exec.
fn agent_tree(f: &Fixture) -> (ActorFacts, ActorFacts, ActorFacts) {
    // The human's shell was there before the daemon; its fork of the agent is the first event.
    let agent = proc(100, 1_000, &shell(), "/bin/zsh");
    f.fork(&shell(), &agent);
    let agent = f.exec(&agent, "/usr/local/bin/claude", &["claude"]);
    let zsh = proc(200, 2_000, &agent, "/usr/local/bin/claude");
    f.fork(&agent, &zsh);
    let zsh = f.exec(&zsh, "/bin/zsh", &["zsh", "-c", "rm -rf src"]);
    let rm = proc(300, 3_000, &zsh, "/bin/zsh");
    f.fork(&zsh, &rm);
    let rm = f.exec(&rm, "/bin/rm", &["rm", "-rf", "src"]);
    (agent, zsh, rm)
}

fn denials(f: &Fixture) -> Vec<crate::audit::DenialRecord> {
    f.core.runtime().flush();
    crate::audit::read_denials(&f.state.join("denials.jsonl"), None)
        .unwrap()
        .records
}

/// Production signing flags: signed, valid, not ad hoc.
const SIGNED: u32 = cs::SIGNED | cs::VALID;

#[test]
fn the_fixture_keys_match_the_inspector() {
    // The live walk and ES must name a process by the same key, or the table is never found.
    let f = fixture(POLICY);
    let bsd = f.inspector.bsd_info(50).unwrap();
    assert_eq!(bsd.start_micros(), shell().start_micros);
    assert_eq!(crate::runtime::macos::lineage::key_of(&shell()).start, 3);
}
