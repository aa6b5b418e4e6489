//! Exactly one answer per AUTH message, whoever gives it first: the worker with the decision,
//! the [`DeadlineTimer`] at the budget, the stop, or, if everything else failed, the drop of the
//! last reference (Santa's semaphore race between the handler and `dispatch_after`, in Rust).
//!
//! A [`PendingAuth`] holds the retained message; the first answer takes it, responds and
//! releases it, so a second answer finds nothing to respond to and the kernel never sees two.

use std::collections::BinaryHeap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::thread;
use std::time::{Duration, Instant};

use crate::platform::macos::api::{EsClient, KernelAnswer, CACHE_ANSWERS};
use crate::platform::macos::counters::{Outcome, SensorCounters};
use crate::platform::macos::deadline::fail_mode_allows;

/// How many AUTH messages are held unanswered, so that a stop can wait for none.
#[derive(Debug, Default)]
pub struct InFlight {
    count: Mutex<usize>,
    none: Condvar,
}

impl InFlight {
    fn enter(&self) {
        *self.count.lock().unwrap_or_else(|e| e.into_inner()) += 1;
    }

    fn leave(&self) {
        let mut count = self.count.lock().unwrap_or_else(|e| e.into_inner());
        *count = count.saturating_sub(1);
        if *count == 0 {
            self.none.notify_all();
        }
    }

    pub fn count(&self) -> usize {
        *self.count.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Wait until no message is held, at most `limit`; true if none is.
    pub fn wait_none(&self, limit: Duration) -> bool {
        let count = self.count.lock().unwrap_or_else(|e| e.into_inner());
        let (count, _) = self
            .none
            .wait_timeout_while(count, limit, |c| *c > 0)
            .unwrap_or_else(|e| e.into_inner());
        *count == 0
    }
}

/// One AUTH message waiting for its answer.
pub struct PendingAuth<C: EsClient> {
    client: Arc<C>,
    message: Mutex<Option<C::Message>>,
    is_open: bool,
    /// The actor is known (or was found) to be an agent's: no decision means deny.
    agent: AtomicBool,
    /// The policy's fail mode when the message arrived.
    fail_closed: bool,
    counters: Arc<SensorCounters>,
    in_flight: Arc<InFlight>,
}

impl<C: EsClient> PendingAuth<C> {
    pub fn new(
        client: Arc<C>,
        message: C::Message,
        is_open: bool,
        fail_closed: bool,
        counters: Arc<SensorCounters>,
        in_flight: Arc<InFlight>,
    ) -> PendingAuth<C> {
        in_flight.enter();
        PendingAuth {
            client,
            message: Mutex::new(Some(message)),
            is_open,
            agent: AtomicBool::new(false),
            fail_closed,
            counters,
            in_flight,
        }
    }

    /// The actor is an agent's: from now on, no decision means deny.
    pub fn mark_agent(&self) {
        self.agent.store(true, Ordering::Release);
    }

    /// Answer, unless an answer has already gone out. Returns whether this one did.
    pub fn answer(&self, allow: bool, outcome: Outcome) -> bool {
        let taken = self
            .message
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        let Some(message) = taken else {
            return false;
        };
        let answer = KernelAnswer::of(self.is_open, allow);
        if let Err(e) = self.client.respond(&message, answer, CACHE_ANSWERS) {
            tracing::warn!(error = %e, "Endpoint Security rejected an answer");
        }
        self.counters.record(outcome);
        // Released only now, after the answer.
        drop(message);
        true
    }

    /// The answer without a decision: deny for an agent, else the fail mode.
    pub fn fallback(&self, outcome: Outcome) -> bool {
        let allow = !self.agent.load(Ordering::Acquire) && fail_mode_allows(self.fail_closed);
        self.answer(allow, outcome)
    }
}

impl<C: EsClient> Drop for PendingAuth<C> {
    fn drop(&mut self) {
        // Every path that forgot to answer (a job dropped by a stopping pool) ends here.
        self.fallback(Outcome::Stopping);
        self.in_flight.leave();
    }
}

/// Something the [`DeadlineTimer`] answers when its time is up.
pub trait Expire: Send + Sync {
    fn expire(&self, outcome: Outcome);
}

impl<C: EsClient> Expire for PendingAuth<C> {
    fn expire(&self, outcome: Outcome) {
        self.fallback(outcome);
    }
}

struct Armed {
    at: Instant,
    order: u64,
    target: Weak<dyn Expire>,
}

impl PartialEq for Armed {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.order) == (other.at, other.order)
    }
}
impl Eq for Armed {}
impl PartialOrd for Armed {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Armed {
    /// Reversed: the earliest is the top of the max-heap.
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (other.at, other.order).cmp(&(self.at, self.order))
    }
}

#[derive(Default)]
struct TimerState {
    heap: BinaryHeap<Armed>,
    /// The heap's length after its last compaction: answered entries are removed in bulk once
    /// it doubles, so memory follows the messages in flight, not the message rate.
    compacted: usize,
    stopped: bool,
}

/// One thread that answers every armed [`PendingAuth`] still unanswered at its budget.
pub struct DeadlineTimer {
    state: Arc<(Mutex<TimerState>, Condvar)>,
    order: AtomicU64,
}

/// Below this many entries the heap is never compacted.
const COMPACT_FLOOR: usize = 4096;

impl DeadlineTimer {
    pub fn start(name: &str) -> std::io::Result<DeadlineTimer> {
        let state: Arc<(Mutex<TimerState>, Condvar)> = Arc::default();
        let shared = state.clone();
        thread::Builder::new()
            .name(name.into())
            .spawn(move || timer_loop(&shared))?;
        Ok(DeadlineTimer {
            state,
            order: AtomicU64::new(0),
        })
    }

    /// Expire `target` at `at` (with [`Outcome::BudgetExceeded`]) unless it is gone by then.
    pub fn arm(&self, at: Instant, target: Weak<dyn Expire>) {
        let order = self.order.fetch_add(1, Ordering::Relaxed);
        let (lock, wake) = &*self.state;
        let mut state = lock.lock().unwrap_or_else(|e| e.into_inner());
        if state.heap.len() > COMPACT_FLOOR.max(2 * state.compacted) {
            state.heap.retain(|a| a.target.strong_count() > 0);
            state.compacted = state.heap.len();
        }
        let earliest = state.heap.peek().is_none_or(|top| at < top.at);
        state.heap.push(Armed { at, order, target });
        if earliest {
            wake.notify_one();
        }
    }

    /// Expire everything armed now, with `outcome` (the daemon is stopping).
    pub fn expire_all(&self, outcome: Outcome) {
        let (lock, _) = &*self.state;
        let due: Vec<Armed> = {
            let mut state = lock.lock().unwrap_or_else(|e| e.into_inner());
            std::mem::take(&mut state.heap).into_vec()
        };
        for armed in due {
            if let Some(target) = armed.target.upgrade() {
                target.expire(outcome);
            }
        }
    }

    /// Entries in the heap (answered or not), for tests of the compaction.
    #[cfg(test)]
    pub fn armed(&self) -> usize {
        self.state.0.lock().unwrap().heap.len()
    }
}

impl Drop for DeadlineTimer {
    fn drop(&mut self) {
        let (lock, wake) = &*self.state;
        lock.lock().unwrap_or_else(|e| e.into_inner()).stopped = true;
        wake.notify_all();
    }
}

fn timer_loop(state: &(Mutex<TimerState>, Condvar)) {
    let (lock, wake) = state;
    let mut guard = lock.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        if guard.stopped {
            return;
        }
        let now = Instant::now();
        let mut due = Vec::new();
        while guard.heap.peek().is_some_and(|top| top.at <= now) {
            due.extend(guard.heap.pop());
        }
        if !due.is_empty() {
            drop(guard);
            for armed in due {
                if let Some(target) = armed.target.upgrade() {
                    target.expire(Outcome::BudgetExceeded);
                }
            }
            guard = lock.lock().unwrap_or_else(|e| e.into_inner());
            continue;
        }
        guard = match guard.heap.peek().map(|top| top.at - now) {
            Some(wait) => {
                wake.wait_timeout(guard, wait)
                    .unwrap_or_else(|e| e.into_inner())
                    .0
            }
            None => wake.wait(guard).unwrap_or_else(|e| e.into_inner()),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::macos::fake::{Call, FakeClient};

    fn pending(fake: &FakeClient, id: u64, fail_closed: bool) -> Arc<PendingAuth<FakeClient>> {
        Arc::new(PendingAuth::new(
            Arc::new(fake.clone()),
            fake.message(id),
            false,
            fail_closed,
            Arc::default(),
            Arc::default(),
        ))
    }

    #[test]
    fn the_first_answer_wins_and_the_message_is_released_after_it() {
        let fake = FakeClient::new();
        let p = pending(&fake, 1, false);
        assert!(p.answer(false, Outcome::Decided));
        assert!(!p.answer(true, Outcome::Decided), "a second answer");
        assert!(!p.fallback(Outcome::BudgetExceeded));
        drop(p);
        assert_eq!(
            fake.answer_of(1),
            KernelAnswer::Auth { allow: false },
            "{:?}",
            fake.calls()
        );
    }

    #[test]
    fn an_unanswered_message_is_answered_when_dropped() {
        let fake = FakeClient::new();
        let in_flight = Arc::new(InFlight::default());
        let p = PendingAuth::new(
            Arc::new(fake.clone()),
            fake.message(2),
            true,
            true,
            Arc::default(),
            in_flight.clone(),
        );
        assert_eq!(in_flight.count(), 1);
        drop(p);
        assert_eq!(in_flight.count(), 0);
        // Fail closed, an open: flags 0.
        assert_eq!(fake.answer_of(2), KernelAnswer::Flags(0));
    }

    #[test]
    fn no_decision_denies_a_known_agent_whatever_the_fail_mode() {
        let fake = FakeClient::new();
        let human = pending(&fake, 3, false);
        assert!(human.fallback(Outcome::BudgetExceeded));
        let agent = pending(&fake, 4, false);
        agent.mark_agent();
        assert!(agent.fallback(Outcome::BudgetExceeded));
        drop((human, agent));
        assert_eq!(fake.answer_of(3), KernelAnswer::Auth { allow: true });
        assert_eq!(fake.answer_of(4), KernelAnswer::Auth { allow: false });
    }

    #[test]
    fn the_timer_answers_at_the_budget_only_what_is_still_waiting() {
        let fake = FakeClient::new();
        let timer = DeadlineTimer::start("test-timer").unwrap();
        let slow = pending(&fake, 5, true);
        let quick = pending(&fake, 6, true);
        let soon = Instant::now() + Duration::from_millis(30);
        timer.arm(soon, Arc::downgrade(&slow) as Weak<dyn Expire>);
        timer.arm(soon, Arc::downgrade(&quick) as Weak<dyn Expire>);
        assert!(quick.answer(true, Outcome::Decided));
        // The worker holding `slow` never answers; the timer does, by the fail mode (closed).
        assert!(fake.wait_released(5, Duration::from_secs(5)));
        assert!(
            !slow.answer(true, Outcome::Decided),
            "the worker is too late"
        );
        drop((slow, quick));
        assert_eq!(fake.answer_of(5), KernelAnswer::Auth { allow: false });
        assert_eq!(fake.answer_of(6), KernelAnswer::Auth { allow: true });
    }

    #[test]
    fn expire_all_answers_everything_armed_now() {
        let fake = FakeClient::new();
        let timer = DeadlineTimer::start("test-timer").unwrap();
        let far = Instant::now() + Duration::from_secs(3600);
        let held: Vec<_> = (10..13).map(|id| pending(&fake, id, false)).collect();
        for p in &held {
            timer.arm(far, Arc::downgrade(p) as Weak<dyn Expire>);
        }
        timer.expire_all(Outcome::Stopping);
        for id in 10..13 {
            assert_eq!(fake.answers(id), vec![KernelAnswer::Auth { allow: true }]);
        }
        drop(held);
        assert_eq!(
            fake.calls()
                .iter()
                .filter(|c| matches!(c, Call::Respond { .. }))
                .count(),
            3
        );
    }

    #[test]
    fn answered_entries_do_not_pile_up_in_the_timer() {
        let fake = FakeClient::new();
        let timer = DeadlineTimer::start("test-timer").unwrap();
        let far = Instant::now() + Duration::from_secs(3600);
        for id in 0..(3 * COMPACT_FLOOR as u64) {
            let p = pending(&fake, id, false);
            timer.arm(far, Arc::downgrade(&p) as Weak<dyn Expire>);
            p.answer(true, Outcome::Decided);
        }
        assert!(timer.armed() <= 2 * COMPACT_FLOOR + 1, "{}", timer.armed());
    }
}
