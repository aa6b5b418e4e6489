//! How much of the kernel's deadline a decision may use, and what to answer when it cannot.
//!
//! ES gives every AUTH message a deadline in mach absolute time; a client that misses it is
//! killed by the kernel. The daemon budgets 80% of the time left when the message reaches it:
//! if the engine has not answered within that budget, the kernel gets the fail-mode answer
//! (allow by default, deny with `fail_closed`; deny for a known agent) and the miss is counted.
//! Pure: the adapter passes the clock readings in.

use std::time::Duration;

/// Share of the time left that a decision may use, in percent.
pub const BUDGET_PERCENT: u64 = 80;

/// Below this, starting a decision is pointless: answer by fail mode at once.
pub const MIN_USEFUL_BUDGET: Duration = Duration::from_micros(200);

/// `mach_timebase_info`: nanoseconds = ticks * numer / denom (1/1 on Intel, 125/3 on Apple
/// silicon).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timebase {
    pub numer: u32,
    pub denom: u32,
}

impl Timebase {
    /// Ticks to nanoseconds without overflow; a zero denominator (never returned by the kernel)
    /// counts as 1.
    pub fn to_nanos(self, ticks: u64) -> u64 {
        let nanos = u128::from(ticks) * u128::from(self.numer) / u128::from(self.denom.max(1));
        u64::try_from(nanos).unwrap_or(u64::MAX)
    }
}

/// What to do with one AUTH message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeadlinePlan {
    /// Ask the engine, and wait for it at most this long.
    Decide { budget: Duration },
    /// Too little time is left: answer by fail mode now.
    AnswerNow,
}

/// The plan for a message with `deadline` (mach ticks) read at `now` (mach ticks).
pub fn plan(deadline: u64, now: u64, timebase: Timebase) -> DeadlinePlan {
    let left_ns = timebase.to_nanos(deadline.saturating_sub(now));
    let budget =
        Duration::from_nanos(left_ns / 100 * BUDGET_PERCENT + left_ns % 100 * BUDGET_PERCENT / 100);
    if budget < MIN_USEFUL_BUDGET {
        DeadlinePlan::AnswerNow
    } else {
        DeadlinePlan::Decide { budget }
    }
}

/// The answer when no decision was made in time: true = allow.
pub fn fail_mode_allows(fail_closed: bool) -> bool {
    !fail_closed
}

#[cfg(test)]
mod tests {
    use super::*;

    const INTEL: Timebase = Timebase { numer: 1, denom: 1 };
    const APPLE_SILICON: Timebase = Timebase {
        numer: 125,
        denom: 3,
    };

    #[test]
    fn budget_is_eighty_percent_of_time_left() {
        // 10 ms left on Intel ticks (1 ns each) → 8 ms budget.
        assert_eq!(
            plan(1_010_000_000, 1_000_000_000, INTEL),
            DeadlinePlan::Decide {
                budget: Duration::from_millis(8)
            }
        );
        // Apple silicon: 24 MHz ticks; 240_000 ticks = 10 ms → 8 ms.
        assert_eq!(
            plan(5_240_000, 5_000_000, APPLE_SILICON),
            DeadlinePlan::Decide {
                budget: Duration::from_millis(8)
            }
        );
    }

    #[test]
    fn past_or_too_close_deadlines_answer_now() {
        assert_eq!(plan(100, 200, INTEL), DeadlinePlan::AnswerNow);
        assert_eq!(plan(200, 200, INTEL), DeadlinePlan::AnswerNow);
        // 200 µs left → 160 µs budget, below the useful minimum.
        assert_eq!(plan(200_000, 0, INTEL), DeadlinePlan::AnswerNow);
        // 250 µs left → exactly 200 µs: still worth asking.
        assert_eq!(
            plan(250_000, 0, INTEL),
            DeadlinePlan::Decide {
                budget: Duration::from_micros(200)
            }
        );
    }

    #[test]
    fn huge_tick_counts_do_not_overflow() {
        let tb = Timebase {
            numer: u32::MAX,
            denom: 1,
        };
        assert_eq!(tb.to_nanos(u64::MAX), u64::MAX);
        assert!(matches!(plan(u64::MAX, 0, tb), DeadlinePlan::Decide { .. }));
        assert_eq!(Timebase { numer: 1, denom: 0 }.to_nanos(7), 7);
    }

    #[test]
    fn fail_mode_answer() {
        assert!(fail_mode_allows(false));
        assert!(!fail_mode_allows(true));
    }
}
