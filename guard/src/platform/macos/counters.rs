//! How the sensor answered, counted for `status` and the daemon's log: answers the engine gave,
//! answers given without it (and why), handler panics, answers that came too late, and events
//! ES dropped before they reached the daemon (gaps in its sequence numbers).

use std::sync::atomic::{AtomicU64, Ordering};

/// How one AUTH message was answered, for the counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The engine decided in time.
    Decided,
    /// Answered on the ES thread without the engine: nothing any agent would be stopped for,
    /// or a human's process.
    Fast,
    /// Too little time left on arrival: fail mode (deny for a known agent).
    ArrivedLate,
    /// The engine did not answer within the budget: fail mode (deny for a known agent).
    BudgetExceeded,
    /// Every worker busy and the queue full: fail mode (deny for a known agent) at once.
    QueueFull,
    /// ES truncated a path: denied for an agent, allowed for a human.
    Unreadable,
    /// The decision panicked: fail mode for a human, deny for an agent.
    Panicked,
    /// The daemon was stopping: fail mode (deny for a known agent).
    Stopping,
}

/// Counters of the sensor, shared by both clients.
#[derive(Debug, Default)]
pub struct SensorCounters {
    decided: AtomicU64,
    fast: AtomicU64,
    arrived_late: AtomicU64,
    budget_exceeded: AtomicU64,
    queue_full: AtomicU64,
    unreadable: AtomicU64,
    panicked: AtomicU64,
    stopping: AtomicU64,
    /// A worker answered after the deadline answer had gone out (its answer was dropped).
    late_answers: AtomicU64,
    /// Events ES dropped: the sum of the gaps in `global_seq_num` (or `seq_num`).
    dropped_events: AtomicU64,
    /// Record-only jobs (allowed events of agents) dropped because the queue was full.
    dropped_records: AtomicU64,
}

/// A copy of the counters at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CountersSnapshot {
    pub decided: u64,
    pub fast: u64,
    pub arrived_late: u64,
    pub budget_exceeded: u64,
    pub queue_full: u64,
    pub unreadable: u64,
    pub panicked: u64,
    pub stopping: u64,
    pub late_answers: u64,
    pub dropped_events: u64,
    pub dropped_records: u64,
}

impl CountersSnapshot {
    /// Answers that the engine did not give because time, room or the decision itself failed
    /// (what `status` calls deadline misses).
    pub fn misses(&self) -> u64 {
        self.arrived_late + self.budget_exceeded + self.queue_full + self.panicked + self.stopping
    }
}

impl SensorCounters {
    pub fn record(&self, outcome: Outcome) {
        let counter = match outcome {
            Outcome::Decided => &self.decided,
            Outcome::Fast => &self.fast,
            Outcome::ArrivedLate => &self.arrived_late,
            Outcome::BudgetExceeded => &self.budget_exceeded,
            Outcome::QueueFull => &self.queue_full,
            Outcome::Unreadable => &self.unreadable,
            Outcome::Panicked => &self.panicked,
            Outcome::Stopping => &self.stopping,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn late_answer(&self) {
        self.late_answers.fetch_add(1, Ordering::Relaxed);
    }

    pub fn dropped_events(&self, n: u64) {
        self.dropped_events.fetch_add(n, Ordering::Relaxed);
    }

    pub fn dropped_record(&self) {
        self.dropped_records.fetch_add(1, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> CountersSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        CountersSnapshot {
            decided: get(&self.decided),
            fast: get(&self.fast),
            arrived_late: get(&self.arrived_late),
            budget_exceeded: get(&self.budget_exceeded),
            queue_full: get(&self.queue_full),
            unreadable: get(&self.unreadable),
            panicked: get(&self.panicked),
            stopping: get(&self.stopping),
            late_answers: get(&self.late_answers),
            dropped_events: get(&self.dropped_events),
            dropped_records: get(&self.dropped_records),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_outcome_has_its_counter_and_misses_sum_the_failures() {
        let c = SensorCounters::default();
        for outcome in [
            Outcome::Decided,
            Outcome::Fast,
            Outcome::ArrivedLate,
            Outcome::BudgetExceeded,
            Outcome::BudgetExceeded,
            Outcome::QueueFull,
            Outcome::Unreadable,
            Outcome::Panicked,
            Outcome::Stopping,
        ] {
            c.record(outcome);
        }
        c.late_answer();
        c.dropped_events(5);
        c.dropped_record();
        let s = c.snapshot();
        assert_eq!(
            s,
            CountersSnapshot {
                decided: 1,
                fast: 1,
                arrived_late: 1,
                budget_exceeded: 2,
                queue_full: 1,
                unreadable: 1,
                panicked: 1,
                stopping: 1,
                late_answers: 1,
                dropped_events: 5,
                dropped_records: 1,
            }
        );
        assert_eq!(s.misses(), 6);
    }
}
