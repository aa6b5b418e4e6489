//! Getting an answer for one ES message in time: the decision worker and the answer path.
//!
//! The ES thread must answer before the kernel's deadline or the kernel kills the client. So
//! the handler runs on a worker thread and the ES thread waits for it at most the budget from
//! [`super::deadline::plan`]; if the worker is late, stuck or its queue is full, the kernel gets
//! the fail-mode answer and the miss is counted. Pure std (threads and channels, no Apple
//! calls), so the timing behaviour is tested on Linux with a real slow handler.

use std::io;
use std::sync::mpsc::{self, SyncSender};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use crate::engine::{Actor, Event};

use super::deadline::{fail_mode_allows, DeadlineCounters, DeadlinePlan, Outcome};
use super::mapping::{actions_for, EsRequest, MappingContext};
use super::procinfo::ProcessInspector;
use super::{ActorFacts, EsHandler};

/// Pending decisions a worker may hold; beyond that, answers come from the fail mode at once.
pub const WORKER_QUEUE: usize = 256;

/// One request to a decision worker: every event must be allowed for the operation to be.
struct Job {
    facts: ActorFacts,
    events: Vec<Event>,
    reply: SyncSender<bool>,
}

/// A thread that runs [`EsHandler::decide`], so the ES thread can stop waiting at the budget.
pub struct DecisionWorker {
    jobs: SyncSender<Job>,
}

impl DecisionWorker {
    /// Start a worker. It ends when the worker (its sending side) is dropped.
    pub fn spawn(
        name: &str,
        handler: Arc<dyn EsHandler>,
        inspector: Arc<dyn ProcessInspector>,
    ) -> io::Result<DecisionWorker> {
        let (jobs, rx) = mpsc::sync_channel::<Job>(WORKER_QUEUE);
        thread::Builder::new().name(name.into()).spawn(move || {
            for job in rx {
                let allow = job
                    .events
                    .iter()
                    .all(|event| handler.decide(&job.facts, event, &*inspector).allows());
                // The ES thread may have given up waiting; then nobody reads this.
                let _ = job.reply.send(allow);
            }
        })?;
        Ok(DecisionWorker { jobs })
    }

    /// The decision (true = allow), or `None` if it did not come within `budget`.
    pub fn decide(&self, facts: ActorFacts, events: Vec<Event>, budget: Duration) -> Option<bool> {
        let (reply, answer) = mpsc::sync_channel(1);
        self.jobs
            .try_send(Job {
                facts,
                events,
                reply,
            })
            .ok()?;
        // Timeout or a worker that died: either way, no decision in time.
        answer.recv_timeout(budget).ok()
    }
}

/// Everything one answer needs besides the message itself.
pub struct AnswerContext<'a> {
    pub handler: &'a dyn EsHandler,
    pub worker: &'a DecisionWorker,
    pub counters: &'a DeadlineCounters,
    pub mapping: &'a MappingContext,
}

/// Decide one ES request: true = allow. `plan` comes from the message's deadline.
pub fn answer(
    ctx: &AnswerContext<'_>,
    plan: DeadlinePlan,
    facts: ActorFacts,
    actor: &Actor,
    request: &EsRequest,
) -> bool {
    let actions = actions_for(request, ctx.mapping);
    if actions.is_empty() {
        return true;
    }
    let budget = match plan {
        DeadlinePlan::Decide { budget } => budget,
        DeadlinePlan::AnswerNow => {
            ctx.counters.record(Outcome::ArrivedLate);
            return fail_mode_allows(ctx.handler.fail_closed());
        }
    };
    let events = actions
        .into_iter()
        .map(|action| Event {
            actor: actor.clone(),
            action,
        })
        .collect();
    match ctx.worker.decide(facts, events, budget) {
        Some(allow) => {
            ctx.counters.record(Outcome::Decided);
            allow
        }
        None => {
            ctx.counters.record(Outcome::BudgetExceeded);
            fail_mode_allows(ctx.handler.fail_closed())
        }
    }
}

/// The answer for a message ES could not describe completely (a truncated path): the fail
/// mode, counted.
pub fn answer_unreadable(handler: &dyn EsHandler, counters: &DeadlineCounters) -> bool {
    counters.record(Outcome::Unreadable);
    fail_mode_allows(handler.fail_closed())
}

/// What goes back to the kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KernelAnswer {
    /// `es_respond_auth_result`: allow or deny.
    Auth { allow: bool },
    /// `es_respond_flags_result` for AUTH_OPEN: the flags authorized, all or none.
    Flags(u32),
}

/// AUTH_OPEN answers with flags (0 denies, `u32::MAX` allows whatever was asked); every other
/// AUTH event with a plain result.
pub fn kernel_answer(is_open: bool, allow: bool) -> KernelAnswer {
    if is_open {
        KernelAnswer::Flags(if allow { u32::MAX } else { 0 })
    } else {
        KernelAnswer::Auth { allow }
    }
}

/// Whether ES may cache the answer. Never: ES caches per file for every process, and every
/// event this daemon receives is inside a zone, where the answer depends on who acts; a cached
/// allow for a human's editor would let the next agent through.
pub const CACHE_ANSWERS: bool = false;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{Action, Denial, OpKind, RuleId, Verdict};
    use crate::platform::macos::procinfo::{BsdInfo, ProcArgs};
    use crate::platform::macos::{MutingRoots, ProcessIdentity};
    use std::path::{Path, PathBuf};
    use std::sync::Mutex;

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

    /// Denies unlinks under /zone; sleeps `delay` per decision; records what it was asked.
    struct ZoneHandler {
        delay: Duration,
        fail_closed: bool,
        asked: Mutex<Vec<Action>>,
    }

    impl ZoneHandler {
        fn new(delay: Duration, fail_closed: bool) -> Arc<ZoneHandler> {
            Arc::new(ZoneHandler {
                delay,
                fail_closed,
                asked: Mutex::new(Vec::new()),
            })
        }
    }

    impl EsHandler for ZoneHandler {
        fn on_fork(&self, _: &ActorFacts, _: &ActorFacts) {}
        fn on_exit(&self, _: ProcessIdentity) {}
        fn on_exec(&self, _: ProcessIdentity, _: &ActorFacts, _: &Path, _: &[String]) {}
        fn decide(&self, _: &ActorFacts, event: &Event, _: &dyn ProcessInspector) -> Verdict {
            thread::sleep(self.delay);
            self.asked.lock().unwrap().push(event.action.clone());
            let path = event.action.path().map(Path::to_path_buf);
            match (&event.action, path) {
                (Action::Create { .. }, Some(p)) if p.starts_with("/zone") => {
                    Verdict::Deny(Denial {
                        rule: RuleId::ReadonlyZone,
                        op: OpKind::Create,
                        path: p,
                        dest: None,
                        zone: Some(PathBuf::from("/zone")),
                        reason: "read-only".into(),
                        hint: String::new(),
                    })
                }
                _ => Verdict::Allow,
            }
        }
        fn watched_roots(&self) -> MutingRoots {
            MutingRoots::default()
        }
        fn fail_closed(&self) -> bool {
            self.fail_closed
        }
    }

    const MAPPING: MappingContext = MappingContext {
        guard: ProcessIdentity {
            pid: 1,
            pidversion: 1,
        },
    };

    fn clone_into(dir: &str) -> EsRequest {
        EsRequest::Clone {
            source: PathBuf::from("/src/a"),
            target_dir: PathBuf::from(dir),
            target_name: "b".into(),
        }
    }

    fn run(
        handler: Arc<ZoneHandler>,
        plan: DeadlinePlan,
        request: &EsRequest,
    ) -> (bool, DeadlineCounters) {
        let worker =
            DecisionWorker::spawn("test-decide", handler.clone(), Arc::new(NoProcesses)).unwrap();
        let counters = DeadlineCounters::default();
        let ctx = AnswerContext {
            handler: &*handler,
            worker: &worker,
            counters: &counters,
            mapping: &MAPPING,
        };
        let allow = answer(
            &ctx,
            plan,
            ActorFacts::default(),
            &Actor::default(),
            request,
        );
        (allow, counters)
    }

    const GENEROUS: DeadlinePlan = DeadlinePlan::Decide {
        budget: Duration::from_secs(5),
    };

    #[test]
    fn every_event_of_a_request_must_be_allowed() {
        let handler = ZoneHandler::new(Duration::ZERO, false);
        let (allow, counters) = run(handler.clone(), GENEROUS, &clone_into("/zone"));
        assert!(!allow, "the create half of the clone is denied");
        assert_eq!(counters.snapshot().decided, 1);
        assert_eq!(handler.asked.lock().unwrap().len(), 2);
        let (allow, _) = run(
            ZoneHandler::new(Duration::ZERO, false),
            GENEROUS,
            &clone_into("/elsewhere"),
        );
        assert!(allow);
    }

    #[test]
    fn a_slow_handler_gets_the_fail_mode_answer_and_is_counted() {
        let budget = DeadlinePlan::Decide {
            budget: Duration::from_millis(20),
        };
        // Fail open: allowed although the handler would deny.
        let (allow, counters) = run(
            ZoneHandler::new(Duration::from_millis(300), false),
            budget,
            &clone_into("/zone"),
        );
        assert!(allow);
        assert_eq!(counters.snapshot().budget_exceeded, 1);
        assert_eq!(counters.snapshot().decided, 0);
        // Fail closed: denied although the handler would allow.
        let (allow, counters) = run(
            ZoneHandler::new(Duration::from_millis(300), true),
            budget,
            &clone_into("/elsewhere"),
        );
        assert!(!allow);
        assert_eq!(counters.misses(), 1);
    }

    #[test]
    fn a_late_message_is_not_even_asked() {
        let handler = ZoneHandler::new(Duration::ZERO, true);
        let (allow, counters) = run(
            handler.clone(),
            DeadlinePlan::AnswerNow,
            &clone_into("/elsewhere"),
        );
        assert!(!allow);
        assert_eq!(counters.snapshot().arrived_late, 1);
        assert!(handler.asked.lock().unwrap().is_empty());
    }

    #[test]
    fn signal_zero_needs_no_decision() {
        let handler = ZoneHandler::new(Duration::ZERO, true);
        let request = EsRequest::Signal {
            target: MAPPING.guard,
            signal: 0,
        };
        let (allow, counters) = run(handler.clone(), DeadlinePlan::AnswerNow, &request);
        assert!(allow);
        assert_eq!(counters.misses(), 0);
    }

    #[test]
    fn a_full_queue_answers_by_fail_mode_at_once() {
        // A handler stuck far longer than the test: the queue fills, then later jobs are
        // refused immediately instead of waiting for the budget each.
        let handler = ZoneHandler::new(Duration::from_secs(30), true);
        let worker = DecisionWorker::spawn("stuck", handler, Arc::new(NoProcesses)).unwrap();
        let tiny = Duration::from_millis(1);
        let one = || {
            vec![Event {
                actor: Actor::default(),
                action: Action::Create {
                    path: PathBuf::from("/zone/x"),
                    kind: crate::engine::NodeKind::File,
                },
            }]
        };
        let mut refused = 0;
        for _ in 0..WORKER_QUEUE + 2 {
            if worker.decide(ActorFacts::default(), one(), tiny).is_none() {
                refused += 1;
            }
        }
        assert_eq!(refused, WORKER_QUEUE + 2);
        let started = std::time::Instant::now();
        assert_eq!(
            worker.decide(ActorFacts::default(), one(), Duration::from_secs(10)),
            None
        );
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "a full queue must not wait for the budget"
        );
    }

    #[test]
    fn open_answers_with_flags_others_with_results() {
        assert_eq!(kernel_answer(true, true), KernelAnswer::Flags(u32::MAX));
        assert_eq!(kernel_answer(true, false), KernelAnswer::Flags(0));
        assert_eq!(
            kernel_answer(false, false),
            KernelAnswer::Auth { allow: false }
        );
        assert_eq!(
            kernel_answer(false, true),
            KernelAnswer::Auth { allow: true }
        );
        const { assert!(!CACHE_ANSWERS) };
    }
}
