//! The glue over the recording fake client and a scripted daemon core: every AUTH message is
//! answered exactly once and released after its answer, on every path (fast, decided, late,
//! panicked, full queue, short deadline, truncated path, stop: [`answers`]); the lineage hears of
//! a fork before the client's later messages are judged, dropped events are counted, a delegated
//! signal is judged by who asked for it, a stop answers what waits ([`order`]). Here: the rig.

mod answers;
mod order;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex};

use super::*;
use crate::platform::macos::api::KernelAnswer;
use crate::platform::macos::facts::ProcessIdentity;
use crate::platform::macos::fake::FakeClient;
use crate::platform::macos::handler::{Attributed, MutingRoots};
use crate::platform::macos::mapping::fflag;
use crate::platform::macos::procinfo::{BsdInfo, ProcArgs};
use crate::vocab::{Attribution, Denial, RuleId, Verdict};

const GUARD: ProcessIdentity = ProcessIdentity {
    pid: 99,
    pidversion: 9,
};

/// What the scripted core does, by actor pid.
#[derive(Default)]
struct Script {
    /// What [`EsHandler::known`] says; absent: unknown.
    known: HashMap<i32, Known>,
    /// Who [`EsHandler::attribute`] finds an agent.
    agents: Vec<i32>,
    /// Actors whose attribution panics.
    panics: Vec<i32>,
    /// Actors whose attribution waits for [`Scripted::release`].
    held: Vec<i32>,
    fail_closed: bool,
}

#[derive(Default)]
struct Scripted {
    script: Mutex<Script>,
    /// Lineage calls and decisions, in order.
    log: Mutex<Vec<String>>,
    released: (Mutex<bool>, Condvar),
}

impl Scripted {
    fn new(script: Script) -> Arc<Scripted> {
        Arc::new(Scripted {
            script: Mutex::new(script),
            ..Scripted::default()
        })
    }

    fn release(&self) {
        *self.released.0.lock().unwrap() = true;
        self.released.1.notify_all();
    }

    fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    fn note(&self, line: String) {
        self.log.lock().unwrap().push(line);
    }
}

impl EsHandler for Scripted {
    fn on_fork(&self, parent: &ActorFacts, child: &ActorFacts, _: u64) {
        self.note(format!("fork {} {}", parent.process.pid, child.process.pid));
        let mut script = self.script.lock().unwrap();
        if let Some(k) = script.known.get(&parent.process.pid).cloned() {
            script.known.insert(child.process.pid, k);
        }
    }
    fn on_exec(&self, process: &ActorFacts, _: &[String], _: u64) {
        self.note(format!("exec {}", process.process.pid));
    }
    fn on_exit(&self, process: &ActorFacts, _: u64) {
        self.note(format!("exit {}", process.process.pid));
    }
    fn known(&self, actor: &ActorFacts, _: u64) -> Known {
        let script = self.script.lock().unwrap();
        script
            .known
            .get(&actor.process.pid)
            .cloned()
            .unwrap_or(Known::Unknown)
    }
    fn matters(&self, events: &[Event]) -> bool {
        events.iter().any(|e| {
            e.action.path().is_some_and(|p| p.starts_with("/zone"))
                || matches!(
                    e.action,
                    Action::Signal {
                        target_is_guard: true,
                        ..
                    }
                )
        })
    }
    fn attribute(&self, actor: &ActorFacts, _: u64, _: &dyn ProcessInspector) -> Attributed {
        let pid = actor.process.pid;
        self.note(format!("attribute {pid}"));
        let (panics, held, agent) = {
            let s = self.script.lock().unwrap();
            (
                s.panics.contains(&pid),
                s.held.contains(&pid),
                s.agents.contains(&pid),
            )
        };
        if held {
            let (lock, cv) = &self.released;
            let _unused = cv
                .wait_while(lock.lock().unwrap(), |released| !*released)
                .unwrap();
        }
        if panics {
            panic!("attribution of {pid} panics");
        }
        Attributed {
            attribution: if agent {
                Attribution::agent("claude", pid)
            } else {
                Attribution::Human
            },
            argv0: None,
        }
    }
    fn decide(
        &self,
        actor: &ActorFacts,
        event: &Event,
        who: &Attributed,
        _: &dyn ProcessInspector,
    ) -> Verdict {
        self.note(format!("decide {}", actor.process.pid));
        let stopped = self.matters(std::slice::from_ref(event));
        if who.attribution.is_agent() && stopped {
            Verdict::Deny(Denial {
                rule: RuleId::ProtectedDelete,
                op: event.action.kind(),
                path: event.action.path().unwrap_or(Path::new("/")).to_path_buf(),
                dest: None,
                zone: None,
                reason: String::new(),
                hint: String::new(),
            })
        } else {
            Verdict::Allow
        }
    }
    fn keep(
        &self,
        _: &ActorFacts,
        _: &Attributed,
        _: Vec<(Event, crate::vocab::Keep)>,
        _: &[(std::path::PathBuf, crate::platform::macos::keep::FileId)],
        _: Instant,
    ) -> crate::platform::macos::Keeping {
        panic!("the scripted core never decides to keep (runtime/macos/tests/keep.rs does)")
    }
    fn settle(&self, _: &ActorFacts, _: &Attributed, _: crate::platform::macos::Keeping, _: bool) {
        panic!("the scripted core never decides to keep")
    }
    fn watched_roots(&self) -> MutingRoots {
        MutingRoots::default()
    }
    fn fail_closed(&self) -> bool {
        self.script.lock().unwrap().fail_closed
    }
}

struct NoProcesses;
impl ProcessInspector for NoProcesses {
    fn process_args(&self, _: i32) -> Option<ProcArgs> {
        None
    }
    fn bsd_info(&self, _: i32) -> Option<BsdInfo> {
        None
    }
    fn exe_path(&self, _: i32) -> Option<PathBuf> {
        None
    }
}

struct Rig {
    fake: FakeClient,
    handler: Arc<Scripted>,
    sensor: Arc<Sensor>,
    glue: ClientGlue<FakeClient>,
}

fn rig(script: Script, workers: usize, queue: usize) -> Rig {
    let fake = FakeClient::new();
    let handler = Scripted::new(script);
    let sensor = Sensor::start(
        handler.clone(),
        Arc::new(NoProcesses),
        MappingContext { guard: GUARD },
        Arc::default(),
        workers,
        queue,
    )
    .unwrap();
    let glue = ClientGlue::new(Arc::new(fake.clone()), sensor.clone());
    Rig {
        fake,
        handler,
        sensor,
        glue,
    }
}

fn actor(pid: i32) -> ActorFacts {
    ActorFacts {
        process: ProcessIdentity { pid, pidversion: 1 },
        start_micros: pid as u64,
        exe: PathBuf::from("/bin/rm"),
        ..ActorFacts::default()
    }
}

const LONG: DeadlinePlan = DeadlinePlan::Decide {
    budget: Duration::from_secs(30),
};

impl Rig {
    /// Deliver AUTH message `id` from `pid` asking `request`.
    fn auth(&self, id: u64, pid: i32, plan: DeadlinePlan, request: Result<EsRequest, Unreadable>) {
        self.glue.on_message(Incoming {
            kind: EsEventKind::AuthUnlink,
            seq_num: None,
            global_seq_num: Some(id),
            at_ns: id,
            process: actor(pid),
            body: Body::Auth {
                message: self.fake.message(id),
                plan,
                instigator: None,
                request,
                files: Vec::new(),
            },
        });
    }

    fn unlink(&self, id: u64, pid: i32, path: &str) {
        self.auth(
            id,
            pid,
            LONG,
            Ok(EsRequest::Unlink {
                target: PathBuf::from(path),
                target_mode: 0o100644,
            }),
        );
    }

    fn notify(&self, id: u64, pid: i32, body: Body<crate::platform::macos::fake::FakeMessage>) {
        let kind = match body {
            Body::Fork { .. } => EsEventKind::NotifyFork,
            Body::Exec { .. } => EsEventKind::NotifyExec,
            _ => EsEventKind::NotifyExit,
        };
        self.glue.on_message(Incoming {
            kind,
            seq_num: None,
            global_seq_num: Some(id),
            at_ns: id,
            process: actor(pid),
            body,
        });
    }

    /// Wait until the scripted core logged `line` (a worker reached it).
    fn wait_for(&self, line: &str) {
        let end = Instant::now() + Duration::from_secs(10);
        while !self.handler.log().iter().any(|l| l == line) {
            assert!(
                Instant::now() < end,
                "never logged {line:?}: {:?}",
                self.handler.log()
            );
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}

const DENY: KernelAnswer = KernelAnswer::Auth { allow: false };
const ALLOW: KernelAnswer = KernelAnswer::Auth { allow: true };
