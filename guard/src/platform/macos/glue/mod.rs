//! The client glue: what happens to each message between Endpoint Security delivering it and
//! the answer going back, for any [`EsClient`] (the real one on macOS, the recording fake in
//! tests, so that all of this is tested on Linux).
//!
//! On the ES thread, in message order, never blocking:
//! - sequence numbers: gaps (events ES dropped) are counted ([`seq`]);
//! - NOTIFY fork, exec, exit: the lineage is told at once, so every later message of the same
//!   client is judged with it;
//! - AUTH: the request becomes the engine's questions ([`crate::platform::macos::mapping`]);
//!   what no agent would be stopped for, and a known human's event, is answered here and now;
//!   everything else becomes a job for the [`pool::WorkerPool`] with a deadline armed in the
//!   [`answer::DeadlineTimer`], and the ES thread returns to the next message.
//!
//! A decision that keeps ([`crate::vocab::Verdict::Keep`]: an agent's destructive operation in a
//! zone that keeps) is carried out on the worker before the answer: the handler clones what the
//! operation destroys ([`EsHandler::keep`]), the allow goes out only if everything was kept,
//! and then the handler records it ([`EsHandler::settle`]), removing the clones again when the
//! deadline timer answered first.
//!
//! Each AUTH message is answered exactly once ([`answer::PendingAuth`]): by the worker's
//! decision; by the timer at the budget (deny for a known agent, else the fail mode); by the
//! fallback of a job that panicked (deny for an agent, the fail mode for a human); at once when
//! the queue is full or time is short; at the stop. A truncated path is attributed first: an
//! agent's event is denied, a human's allowed.

pub mod answer;
pub mod pool;
pub mod seq;
pub mod setup;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use crate::platform::macos::api::{EsClient, EsEventKind};
use crate::platform::macos::counters::{Outcome, SensorCounters};
use crate::platform::macos::deadline::DeadlinePlan;
use crate::platform::macos::facts::ActorFacts;
use crate::platform::macos::handler::{EsHandler, Known};
use crate::platform::macos::keep::MessageFiles;
use crate::platform::macos::mapping::{actions_for, EsRequest, MappingContext};
use crate::platform::macos::procinfo::ProcessInspector;
use crate::vocab::{Action, Event, Verdict};

use answer::{DeadlineTimer, Expire, InFlight, PendingAuth};
use pool::{Job, WorkerPool};
use seq::SeqTracker;

/// One message, copied out of the `es_message_t` into plain values.
#[derive(Debug)]
pub struct Incoming<M> {
    pub kind: EsEventKind,
    pub seq_num: Option<u64>,
    pub global_seq_num: Option<u64>,
    /// The message's mach time, in nanoseconds.
    pub at_ns: u64,
    /// The process that caused it.
    pub process: ActorFacts,
    pub body: Body<M>,
}

/// What a message is about.
#[derive(Debug)]
pub enum Body<M> {
    /// NOTIFY_FORK.
    Fork { child: ActorFacts },
    /// NOTIFY_EXEC: `target` is the process with its new image.
    Exec {
        target: ActorFacts,
        argv: Vec<String>,
    },
    /// NOTIFY_EXIT.
    Exit,
    /// An AUTH message, retained in `message` until answered.
    Auth {
        message: M,
        plan: DeadlinePlan,
        /// The process that asked for a delegated signal (launchd sends it on behalf of
        /// `launchctl kill`; ES message version 9, macOS 15.4): it acts, not launchd.
        instigator: Option<ActorFacts>,
        request: Result<EsRequest, Unreadable>,
        /// The existing files the request names, as the kernel identified them.
        files: MessageFiles,
    },
}

/// An AUTH message ES could not describe completely: a path longer than it reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Unreadable {
    pub is_open: bool,
}

/// Pending decisions beyond the busy workers; more are answered at once without a decision.
pub const QUEUE_CAPACITY: usize = 1024;

/// What both clients share: the daemon core, the workers, the timer, the counters.
pub struct Sensor {
    handler: Arc<dyn EsHandler>,
    inspector: Arc<dyn ProcessInspector>,
    mapping: MappingContext,
    counters: Arc<SensorCounters>,
    pool: WorkerPool,
    timer: DeadlineTimer,
    in_flight: Arc<InFlight>,
    stopping: AtomicBool,
}

impl Sensor {
    /// Start the workers (`workers` threads, `queue` waiting jobs at most) and the timer.
    pub fn start(
        handler: Arc<dyn EsHandler>,
        inspector: Arc<dyn ProcessInspector>,
        mapping: MappingContext,
        counters: Arc<SensorCounters>,
        workers: usize,
        queue: usize,
    ) -> std::io::Result<Arc<Sensor>> {
        Ok(Arc::new(Sensor {
            handler,
            inspector,
            mapping,
            counters,
            pool: WorkerPool::start("es-decide", workers, queue)?,
            timer: DeadlineTimer::start("es-deadline")?,
            in_flight: Arc::default(),
            stopping: AtomicBool::new(false),
        }))
    }

    pub fn counters(&self) -> &Arc<SensorCounters> {
        &self.counters
    }

    pub fn handler(&self) -> &Arc<dyn EsHandler> {
        &self.handler
    }

    /// Stop: every message still waiting is answered now without a decision, the workers finish
    /// what they hold, and this returns once no message is held (at most `limit`), so that the
    /// clients can be deleted. Unsubscribe the clients first: a message that arrives after this
    /// is answered at once.
    pub fn stop(&self, limit: Duration) -> bool {
        self.stopping.store(true, Ordering::Release);
        self.timer.expire_all(Outcome::Stopping);
        let workers_done = self.pool.shutdown(limit);
        self.timer.expire_all(Outcome::Stopping);
        workers_done && self.in_flight.wait_none(limit)
    }

    /// Workers alive (tests).
    #[cfg(test)]
    pub fn live_workers(&self) -> usize {
        self.pool.live()
    }
}

/// The glue of one client.
pub struct ClientGlue<C: EsClient> {
    client: Arc<C>,
    sensor: Arc<Sensor>,
    seq: Mutex<SeqTracker>,
}

impl<C: EsClient> ClientGlue<C> {
    pub fn new(client: Arc<C>, sensor: Arc<Sensor>) -> ClientGlue<C> {
        ClientGlue {
            client,
            sensor,
            seq: Mutex::default(),
        }
    }

    pub fn client(&self) -> &Arc<C> {
        &self.client
    }

    /// Handle one message on the ES thread. Returns once it is answered or handed to a worker.
    pub fn on_message(&self, m: Incoming<C::Message>) {
        let handler = &self.sensor.handler;
        match m.body {
            Body::Fork { child } => {
                self.note_seq(m.kind, m.seq_num, m.global_seq_num);
                handler.on_fork(&m.process, &child, m.at_ns)
            }
            Body::Exec { target, argv } => {
                self.note_seq(m.kind, m.seq_num, m.global_seq_num);
                handler.on_exec(&target, &argv, m.at_ns)
            }
            Body::Exit => {
                self.note_seq(m.kind, m.seq_num, m.global_seq_num);
                handler.on_exit(&m.process, m.at_ns)
            }
            Body::Auth {
                message,
                plan,
                instigator,
                request,
                files,
            } => {
                // The message is in a PendingAuth before anything else is done with it: from
                // here on, whatever happens, dropping it answers it.
                let is_open = match &request {
                    Ok(request) => request.is_open(),
                    Err(unreadable) => unreadable.is_open,
                };
                let pending = Arc::new(PendingAuth::new(
                    self.client.clone(),
                    message,
                    is_open,
                    handler.fail_closed(),
                    self.sensor.counters.clone(),
                    self.sensor.in_flight.clone(),
                ));
                self.note_seq(m.kind, m.seq_num, m.global_seq_num);
                let actor = instigator.unwrap_or(m.process);
                self.authorize(pending, actor, m.at_ns, plan, request, files);
            }
        }
    }

    fn note_seq(&self, kind: EsEventKind, seq: Option<u64>, global: Option<u64>) {
        let dropped = self
            .seq
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .note(kind, seq, global);
        if dropped > 0 {
            self.sensor.counters.dropped_events(dropped);
            tracing::warn!(dropped, ?kind, "Endpoint Security dropped events");
        }
    }

    fn authorize(
        &self,
        pending: Arc<PendingAuth<C>>,
        actor: ActorFacts,
        at_ns: u64,
        plan: DeadlinePlan,
        request: Result<EsRequest, Unreadable>,
        files: MessageFiles,
    ) {
        let sensor = &self.sensor;
        let handler = &sensor.handler;
        if sensor.stopping.load(Ordering::Acquire) {
            if handler.known(&actor, at_ns) == Known::Agent {
                pending.mark_agent();
            }
            pending.fallback(Outcome::Stopping);
            return;
        }
        let request = match request {
            Ok(request) => request,
            Err(_) => return self.unreadable(pending, actor, at_ns, plan),
        };
        let template = actor.actor();
        let events: Vec<Event> = actions_for(&request, &sensor.mapping)
            .into_iter()
            .map(|action| Event {
                actor: template.clone(),
                action,
            })
            .collect();
        if events.is_empty() {
            pending.answer(true, Outcome::Fast);
            return;
        }
        let matters = handler.matters(&events);
        if !matters && events.iter().all(is_read_only_open) {
            // The commonest message: a read where anyone may read. Nothing to record either.
            pending.answer(true, Outcome::Fast);
            return;
        }
        let known = handler.known(&actor, at_ns);
        if !matters {
            pending.answer(true, Outcome::Fast);
            if !matches!(known, Known::Human { .. }) {
                // An agent's allowed change still goes to the audit trail, off this thread.
                let job = Box::new(RecordJob {
                    sensor: sensor.clone(),
                    actor,
                    at_ns,
                    events,
                });
                if sensor.pool.submit_background(job).is_err() {
                    sensor.counters.dropped_record();
                }
            }
            return;
        }
        match known {
            Known::Human { fresh: true } => {
                pending.answer(true, Outcome::Fast);
                return;
            }
            Known::Agent => pending.mark_agent(),
            Known::Human { fresh: false } | Known::Unknown => {}
        }
        let Some(deadline) = budget_end(&pending, plan) else {
            return;
        };
        let job = Box::new(DecideJob {
            sensor: sensor.clone(),
            pending: pending.clone(),
            actor,
            at_ns,
            events,
            files,
            deadline,
        });
        self.dispatch(pending, deadline, job);
    }

    /// A truncated path: decided by who acts, never by half a path.
    fn unreadable(
        &self,
        pending: Arc<PendingAuth<C>>,
        actor: ActorFacts,
        at_ns: u64,
        plan: DeadlinePlan,
    ) {
        match self.sensor.handler.known(&actor, at_ns) {
            Known::Agent => {
                pending.answer(false, Outcome::Unreadable);
            }
            Known::Human { .. } => {
                pending.answer(true, Outcome::Unreadable);
            }
            Known::Unknown => {
                let Some(deadline) = budget_end(&pending, plan) else {
                    return;
                };
                let job = Box::new(UnreadableJob {
                    sensor: self.sensor.clone(),
                    pending: pending.clone(),
                    actor,
                    at_ns,
                });
                self.dispatch(pending, deadline, job);
            }
        }
    }

    /// Hand `job` to a worker with the deadline armed at `deadline`, or answer without a
    /// decision now when the queue is full.
    fn dispatch(&self, pending: Arc<PendingAuth<C>>, deadline: Instant, job: Box<dyn Job>) {
        let expire: Weak<dyn Expire> = Arc::downgrade(&pending) as Weak<PendingAuth<C>>;
        self.sensor.timer.arm(deadline, expire);
        if self.sensor.pool.submit(job).is_err() {
            pending.fallback(Outcome::QueueFull);
        }
    }
}

/// When a message's budget ends, or `None` once it was answered without a decision because too
/// little time was left.
fn budget_end<C: EsClient>(pending: &PendingAuth<C>, plan: DeadlinePlan) -> Option<Instant> {
    match plan {
        DeadlinePlan::Decide { budget } => Some(Instant::now() + budget),
        DeadlinePlan::AnswerNow => {
            pending.fallback(Outcome::ArrivedLate);
            None
        }
    }
}

fn is_read_only_open(event: &Event) -> bool {
    matches!(event.action, Action::Open { flags, .. } if !flags.modifies())
}

/// Decide an AUTH message's events on a worker and answer.
struct DecideJob<C: EsClient> {
    sensor: Arc<Sensor>,
    pending: Arc<PendingAuth<C>>,
    actor: ActorFacts,
    at_ns: u64,
    events: Vec<Event>,
    /// The message's files as the kernel identified them: what keeping must keep.
    files: MessageFiles,
    /// When the timer answers without a decision: keeping must be done before.
    deadline: Instant,
}

impl<C: EsClient> Job for DecideJob<C> {
    fn run(&mut self) {
        let s = &self.sensor;
        let inspect = &*s.inspector;
        let who = s.handler.attribute(&self.actor, self.at_ns, inspect);
        if who.attribution.is_agent() {
            // Found to be an agent: should the decision now miss its budget, deny.
            self.pending.mark_agent();
        }
        let mut keeps = Vec::new();
        let mut allow = true;
        for event in &self.events {
            match s.handler.decide(&self.actor, event, &who, inspect) {
                Verdict::Keep(keep) => keeps.push((event.clone(), keep)),
                verdict if !verdict.allows() => {
                    // Refused: what the other events would have kept is not kept.
                    allow = false;
                    break;
                }
                _ => {}
            }
        }
        if !allow || keeps.is_empty() {
            if !self.pending.answer(allow, Outcome::Decided) {
                s.counters.late_answer();
            }
            return;
        }
        // Kept first, answered after: the kernel holds the operation until the answer.
        let keeping = s
            .handler
            .keep(&self.actor, &who, keeps, &self.files, self.deadline);
        let allow = keeping.allows();
        let answered = self.pending.answer(allow, Outcome::Decided);
        if !answered {
            s.counters.late_answer();
        }
        s.handler
            .settle(&self.actor, &who, keeping, allow && answered);
    }

    fn panicked(&mut self) {
        self.pending.fallback(Outcome::Panicked);
    }
}

/// Attribute the actor of a message with a truncated path and answer by who it is.
struct UnreadableJob<C: EsClient> {
    sensor: Arc<Sensor>,
    pending: Arc<PendingAuth<C>>,
    actor: ActorFacts,
    at_ns: u64,
}

impl<C: EsClient> Job for UnreadableJob<C> {
    fn run(&mut self) {
        let s = &self.sensor;
        let who = s.handler.attribute(&self.actor, self.at_ns, &*s.inspector);
        let agent = who.attribution.is_agent();
        if agent {
            self.pending.mark_agent();
        }
        if !self.pending.answer(!agent, Outcome::Unreadable) {
            s.counters.late_answer();
        }
    }

    fn panicked(&mut self) {
        self.pending.fallback(Outcome::Panicked);
    }
}

/// Record an agent's events that were allowed on the ES thread (the audit trail keeps every
/// agent's change, not only its denials).
struct RecordJob {
    sensor: Arc<Sensor>,
    actor: ActorFacts,
    at_ns: u64,
    events: Vec<Event>,
}

impl Job for RecordJob {
    fn run(&mut self) {
        let s = &self.sensor;
        let inspect = &*s.inspector;
        let who = s.handler.attribute(&self.actor, self.at_ns, inspect);
        for event in &self.events {
            s.handler.decide(&self.actor, event, &who, inspect);
        }
    }

    fn panicked(&mut self) {}
}

#[cfg(test)]
mod tests;
