//! Events ES dropped before they reached a client. Each message carries `global_seq_num`
//! (per client, every event, macOS 11+) and `seq_num` (per client and event type, macOS
//! 10.15.4+); ES numbers what it meant to deliver, so a jump in either is a message the client
//! never got (ES drops NOTIFY messages when a client falls behind). A dropped fork or exit is a
//! hole in the lineage, so the count is in `status`.

use std::collections::HashMap;

use crate::platform::macos::api::EsEventKind;

/// The last sequence numbers one client saw.
#[derive(Debug, Default)]
pub struct SeqTracker {
    global: Option<u64>,
    by_kind: HashMap<EsEventKind, u64>,
}

impl SeqTracker {
    /// Note one message; returns how many messages were dropped just before it. The global
    /// number counts when the message has one; the per-type numbers are followed anyway, and
    /// count only without it (a message has both on every macOS the daemon runs on).
    pub fn note(&mut self, kind: EsEventKind, seq: Option<u64>, global: Option<u64>) -> u64 {
        let by_kind = seq.map_or(0, |seq| gap(self.by_kind.insert(kind, seq), seq));
        match global {
            Some(global) => gap(self.global.replace(global), global),
            None => by_kind,
        }
    }
}

/// Messages missing between `last` and `now` (none when either is unknown or `now` went back,
/// which a restarted numbering would do).
fn gap(last: Option<u64>, now: u64) -> u64 {
    match last {
        Some(last) if now > last => now - last - 1,
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use EsEventKind::{AuthOpen, NotifyExit, NotifyFork};

    #[test]
    fn gaps_in_the_global_number_are_dropped_events() {
        let mut t = SeqTracker::default();
        assert_eq!(
            t.note(NotifyFork, Some(0), Some(10)),
            0,
            "the first is no gap"
        );
        assert_eq!(t.note(AuthOpen, Some(0), Some(11)), 0);
        // 12, 13 and 14 never came.
        assert_eq!(t.note(NotifyFork, Some(3), Some(15)), 3);
        assert_eq!(t.note(NotifyExit, Some(0), Some(16)), 0);
        // A restarted numbering is no gap.
        assert_eq!(t.note(NotifyExit, Some(1), Some(2)), 0);
    }

    #[test]
    fn without_a_global_number_each_type_counts_its_own() {
        let mut t = SeqTracker::default();
        assert_eq!(t.note(NotifyFork, Some(5), None), 0);
        assert_eq!(t.note(NotifyExit, Some(9), None), 0);
        assert_eq!(t.note(NotifyFork, Some(6), None), 0);
        assert_eq!(t.note(NotifyFork, Some(9), None), 2);
        assert_eq!(t.note(NotifyExit, Some(10), None), 0);
        assert_eq!(t.note(NotifyExit, None, None), 0);
    }
}
