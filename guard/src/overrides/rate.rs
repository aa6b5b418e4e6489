//! The request rate limit: how many requests one agent may have pending, and file per minute.

use std::collections::HashSet;

use super::events::OverrideEvent;
use super::request::Request;
use crate::audit::OverrideEventKind;

/// How many requests one agent may have: pending at once, and filed per minute.
///
/// A courtesy against an agent stuck in a loop, not a security boundary: the spool is
/// agent-writable, so a determined agent can drop files there directly. What protects the user
/// is that nothing in the spool takes effect without a human's approval.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimit {
    pub max_pending: usize,
    pub max_per_minute: usize,
}

impl RateLimit {
    pub const DEFAULT: RateLimit = RateLimit {
        max_pending: 5,
        max_per_minute: 3,
    };

    /// Whether `key` may file one more request, given the pending requests and the recent
    /// audit events (requests already decided still count toward the minute).
    pub fn check(
        &self,
        key: &str,
        pending: &[Request],
        recent: &[OverrideEvent],
        now: u64,
    ) -> Result<(), RateLimited> {
        let mine: Vec<&Request> = pending
            .iter()
            .filter(|r| r.requester.rate_key() == key)
            .collect();
        if mine.len() >= self.max_pending {
            return Err(RateLimited::Pending {
                key: key.to_string(),
                pending: mine.len(),
                max: self.max_pending,
            });
        }
        let in_last_minute = |t: u64| t + 60 > now;
        let mut ids: HashSet<&str> = mine
            .iter()
            .filter(|r| in_last_minute(r.created_at))
            .map(|r| r.id.as_str())
            .collect();
        ids.extend(
            recent
                .iter()
                .filter(|e| {
                    e.agent
                        .clone()
                        .unwrap_or_else(|| format!("uid:{}", e.by_uid))
                        == key
                        && in_last_minute(e.requested_at)
                        && matches!(
                            e.event,
                            OverrideEventKind::Request
                                | OverrideEventKind::Approve
                                | OverrideEventKind::Deny
                        )
                })
                .map(|e| e.id.as_str()),
        );
        if ids.len() >= self.max_per_minute {
            return Err(RateLimited::PerMinute {
                key: key.to_string(),
                filed: ids.len(),
                max: self.max_per_minute,
            });
        }
        Ok(())
    }
}

/// Why [`RateLimit::check`] refuses one more request. Addressed to the agent that asked.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RateLimited {
    #[error("{key} already has {pending} pending override requests (at most {max}); wait for the user to approve or deny them (`agent-guard override list`)")]
    Pending {
        key: String,
        pending: usize,
        max: usize,
    },
    #[error("{key} filed {filed} override requests in the last minute (at most {max}); wait, and ask the user instead of retrying")]
    PerMinute {
        key: String,
        filed: usize,
        max: usize,
    },
}
