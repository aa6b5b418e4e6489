//! Repeated denials of one agent session folded into one record with a count, so that a flood
//! of denials (an agent looping over `unlink`, 150 000 in 8 seconds) cannot push the records
//! that matter out of `denials.jsonl`'s rotation or the audit trail's retention.
//!
//! How: denials are keyed by session (the agent's pid), rule, operation, decision and a path
//! pattern (the parent directory, `/home/me/src/app/*`). The first denial of a key is written
//! in full at once (the hook explains it to the agent right away); the following ones within
//! [`AGGREGATION_WINDOW_MS`] are only counted, and when the window ends one summary record says
//! how many there were, when, and the pattern. A session that spreads its denials over more
//! than [`MAX_KEYS_PER_SESSION`] directories in one window is folded by zone instead
//! (`/home/me/src/**`), so the number of records a session can cause is bounded by rules,
//! operations and zones, not by the names it makes up.
//!
//! Plain data: the caller passes the time in and writes what comes out. It must never do I/O.

use std::collections::HashMap;
use std::path::Path;

use super::record::{DenialRecord, Repeated};
use super::store::DecisionRecord;
use crate::vocab::time::rfc3339_from_millis;
use crate::vocab::{Decision, OpKind, RuleId};

/// How long repeats of a first denial are counted before their summary is written.
pub const AGGREGATION_WINDOW_MS: i64 = 10_000;

/// Denials of one key written in full in a window before the rest are counted: an agent that
/// retries a denied command once or twice gets each explained as usual.
pub const FULL_PER_WINDOW: u64 = 3;

/// Distinct directory patterns one session may have open in a window before its denials are
/// folded by zone.
pub const MAX_KEYS_PER_SESSION: usize = 32;

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Key {
    agent_pid: i32,
    agent: String,
    rule: RuleId,
    op: OpKind,
    decision: Decision,
    pattern: String,
}

struct Open {
    /// When the key's first denial was written; the window ends `AGGREGATION_WINDOW_MS` later.
    started_ms: i64,
    /// Denials of the window written in full (at most [`FULL_PER_WINDOW`]).
    written: u64,
    count: u64,
    first_ms: i64,
    last_ms: i64,
    /// The last repeat's records, the summaries' templates.
    last: Option<(DenialRecord, Option<DecisionRecord>)>,
    /// Whether this key counts against the session's directory budget.
    fine: bool,
}

/// One window's summary: the denial log's record and the audit trail's row.
#[derive(Clone, Debug, PartialEq)]
pub struct Summary {
    pub denial: DenialRecord,
    pub decision: Option<DecisionRecord>,
}

/// The aggregation state of one sensor.
#[derive(Default)]
pub struct DenialAggregator {
    open: HashMap<Key, Open>,
    /// Fine (per-directory) keys open per session.
    fine_keys: HashMap<i32, usize>,
    /// Summaries of windows that `offer` closed because a new one of their key began.
    pending: Vec<Summary>,
}

impl DenialAggregator {
    pub fn new() -> DenialAggregator {
        DenialAggregator::default()
    }

    /// Offer one denial (with its audit row, if the trail keeps one) at `now_ms`. Hands them
    /// back to be written now when it is the first of its key in a window; keeps them (as the
    /// template of the window's summary) when it was counted into an open window. Summaries of
    /// windows that ended come out of [`DenialAggregator::due`]. No copy is made either way:
    /// under a flood this runs for every denied call.
    pub fn offer(
        &mut self,
        denial: DenialRecord,
        decision: Option<DecisionRecord>,
        now_ms: i64,
    ) -> Option<(DenialRecord, Option<DecisionRecord>)> {
        let fine = self.key(&denial, true);
        let key = if self.open.contains_key(&fine)
            || self.fine_keys.get(&denial.agent_pid).copied().unwrap_or(0) < MAX_KEYS_PER_SESSION
        {
            fine
        } else {
            self.key(&denial, false)
        };
        if let Some(open) = self.open.get_mut(&key) {
            if now_ms < open.started_ms + AGGREGATION_WINDOW_MS && open.written < FULL_PER_WINDOW {
                open.written += 1;
                return Some((denial, decision));
            }
            if now_ms < open.started_ms + AGGREGATION_WINDOW_MS {
                if open.count == 0 {
                    open.first_ms = now_ms;
                }
                open.count += 1;
                open.last_ms = now_ms;
                open.last = Some((denial, decision));
                return None;
            }
        }
        // A new window (the old one, if any, is summarized by `due`, which runs first in a
        // sensor's tick; closing it here keeps the count whole if it did not).
        let is_fine = key.pattern == fine_pattern(&denial.path);
        if let Some(old) = self.open.remove(&key) {
            self.close_key(&key, &old);
            if let Some(summary) = summarize(&key, old) {
                self.pending.push(summary);
            }
        }
        if is_fine {
            *self.fine_keys.entry(denial.agent_pid).or_default() += 1;
        }
        self.open.insert(
            key,
            Open {
                started_ms: now_ms,
                written: 1,
                count: 0,
                first_ms: now_ms,
                last_ms: now_ms,
                last: None,
                fine: is_fine,
            },
        );
        Some((denial, decision))
    }

    /// Summaries of the windows that ended by `now_ms` (and of those closed early by a new
    /// window of their key), oldest first.
    pub fn due(&mut self, now_ms: i64) -> Vec<Summary> {
        let ended: Vec<Key> = self
            .open
            .iter()
            .filter(|(_, o)| now_ms >= o.started_ms + AGGREGATION_WINDOW_MS)
            .map(|(k, _)| k.clone())
            .collect();
        let mut out = std::mem::take(&mut self.pending);
        for key in ended {
            if let Some(open) = self.open.remove(&key) {
                self.close_key(&key, &open);
                out.extend(summarize(&key, open));
            }
        }
        out.sort_by_key(|s| s.denial.unix_millis());
        out
    }

    /// Every summary still open (shutdown).
    pub fn drain(&mut self) -> Vec<Summary> {
        self.due(i64::MAX)
    }

    /// Denials counted and not yet summarized.
    pub fn counted(&self) -> u64 {
        self.open.values().map(|o| o.count).sum()
    }

    fn close_key(&mut self, key: &Key, open: &Open) {
        if open.fine {
            if let Some(n) = self.fine_keys.get_mut(&key.agent_pid) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    self.fine_keys.remove(&key.agent_pid);
                }
            }
        }
    }

    fn key(&self, d: &DenialRecord, fine: bool) -> Key {
        Key {
            agent_pid: d.agent_pid,
            agent: d.ancestor.clone(),
            rule: d.rule.clone(),
            op: d.op,
            decision: d.decision,
            pattern: if fine {
                fine_pattern(&d.path)
            } else {
                coarse_pattern(d)
            },
        }
    }
}

/// `/a/b/c` → `/a/b/*`.
fn fine_pattern(path: &str) -> String {
    match Path::new(path).parent() {
        Some(parent) if parent.as_os_str().len() > 1 => format!("{}/*", parent.display()),
        _ => "/*".to_string(),
    }
}

/// The zone's subtree (`/a/**`), or everything (`/**`) for denials without a zone.
fn coarse_pattern(d: &DenialRecord) -> String {
    match &d.zone {
        Some(zone) if zone != "/" => format!("{zone}/**"),
        _ => "/**".to_string(),
    }
}

fn summarize(key: &Key, open: Open) -> Option<Summary> {
    let (mut denial, mut decision) = open.last?;
    let repeated = Repeated {
        count: open.count,
        pattern: key.pattern.clone(),
        first: rfc3339_from_millis(open.first_ms),
        last: rfc3339_from_millis(open.last_ms),
    };
    denial.repeated = Some(repeated);
    if let Some(d) = decision.as_mut() {
        d.count = open.count;
        d.path = key.pattern.clone();
        d.dest = None;
    }
    Some(Summary { denial, decision })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::record::sample_record;

    fn denial(path: &str, agent_pid: i32) -> DenialRecord {
        DenialRecord {
            path: path.into(),
            agent_pid,
            ..sample_record(path)
        }
    }

    #[test]
    fn repeats_in_a_window_become_one_summary_with_their_count() {
        let mut agg = DenialAggregator::new();
        for i in 1..=FULL_PER_WINDOW as i64 {
            let first = agg.offer(denial(&format!("/p/a/{i}"), 1), None, i - 1);
            assert!(first.is_some(), "the first are written");
        }
        for i in FULL_PER_WINDOW as i64 + 1..=1000 {
            let counted = agg.offer(denial(&format!("/p/a/{i}"), 1), None, i);
            assert!(counted.is_none(), "{i}");
        }
        // Another directory, session or rule is its own key.
        assert!(agg.offer(denial("/p/b/1", 1), None, 5).is_some());
        assert!(agg.offer(denial("/p/a/1", 2), None, 5).is_some());
        assert!(agg.due(AGGREGATION_WINDOW_MS - 1).is_empty());
        assert_eq!(agg.counted(), 1000 - FULL_PER_WINDOW);
        let due = agg.due(AGGREGATION_WINDOW_MS);
        assert_eq!(due.len(), 1, "the keys with repeats: {due:?}");
        let rep = due[0].denial.repeated.clone().unwrap();
        assert_eq!(rep.count, 1000 - FULL_PER_WINDOW);
        assert_eq!(rep.pattern, "/p/a/*");
        assert_eq!(due[0].denial.path, "/p/a/1000");
        // The next one after the window is written in full again.
        assert!(agg
            .offer(denial("/p/a/x", 1), None, AGGREGATION_WINDOW_MS + 1)
            .is_some());
    }

    #[test]
    fn a_session_spreading_over_many_directories_is_folded_by_zone() {
        let mut agg = DenialAggregator::new();
        let mut written = 0;
        for i in 0..100_000 {
            if agg
                .offer(denial(&format!("/p/d{i}/f"), 1), None, i / 100)
                .is_some()
            {
                written += 1;
            }
        }
        // One per directory (each has one denial) up to the budget, then a few for the zone.
        assert_eq!(
            written as u64,
            MAX_KEYS_PER_SESSION as u64 + FULL_PER_WINDOW
        );
        let summaries = agg.drain();
        let total: u64 = summaries
            .iter()
            .map(|s| s.denial.repeated.as_ref().unwrap().count)
            .sum();
        assert_eq!(total + written as u64, 100_000);
        assert!(summaries
            .iter()
            .any(|s| s.denial.repeated.as_ref().unwrap().pattern == "/p/**"));
    }

    #[test]
    fn the_audit_row_of_a_summary_counts_and_names_the_pattern() {
        use crate::vocab::{Decision, Mode};
        let row = DecisionRecord {
            time_ms: 0,
            agent: "claude".into(),
            agent_pid: 1,
            pid: 2,
            start_key: 3,
            exe: "/bin/rm".into(),
            op: OpKind::Unlink,
            path: "/p/a/2".into(),
            dest: None,
            zone: Some("/p".into()),
            rule: Some(RuleId::ProtectedDelete),
            verdict: Decision::Deny,
            mode: Mode::Enforce,
            policy_version: "v".into(),
            argv: None,
            count: 1,
        };
        let mut agg = DenialAggregator::new();
        for i in 0..FULL_PER_WINDOW as i64 {
            assert!(agg
                .offer(denial("/p/a/0", 1), Some(row.clone()), i)
                .is_some());
        }
        assert!(agg
            .offer(denial("/p/a/2", 1), Some(row.clone()), 10)
            .is_none());
        assert!(agg.offer(denial("/p/a/3", 1), Some(row), 20).is_none());
        let s = agg.drain().pop().unwrap();
        let d = s.decision.unwrap();
        assert_eq!((d.count, d.path.as_str()), (2, "/p/a/*"));
    }
}
