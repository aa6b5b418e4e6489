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
                    super::request::rate_key(e.agent.as_deref()) == key
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

impl RateLimit {
    /// At most this many requests are shown to a human at once, whatever agents they name
    /// (a name is only what a spool file claims).
    pub fn max_shown(&self) -> usize {
        self.max_pending * 4
    }

    /// Split pending requests into those a human is shown and may approve, and those the limit
    /// holds back. `override request` checks the limit when it files, but the spool is
    /// agent-writable and a file dropped there directly went through no check: here every file
    /// is held to it. In order of arrival (the kernel's inode change time, which the writer
    /// cannot set), an agent gets at most `max_pending` requests shown and at most
    /// `max_per_minute` that arrived within one minute, and all agents together at most
    /// [`RateLimit::max_shown`]. A held request is shown once earlier ones are decided.
    pub fn admit(&self, mut pending: Vec<Request>) -> (Vec<Request>, Vec<(Request, RateLimited)>) {
        pending.sort_by(|a, b| (a.arrived_at, &a.id).cmp(&(b.arrived_at, &b.id)));
        let mut shown: Vec<Request> = Vec::new();
        let mut held = Vec::new();
        for request in pending {
            let key = request.requester.rate_key();
            let mine: Vec<&Request> = shown
                .iter()
                .filter(|r| r.requester.rate_key() == key)
                .collect();
            let in_minute = mine
                .iter()
                .filter(|r| r.arrived_at + 60 > request.arrived_at)
                .count();
            let refusal = if shown.len() >= self.max_shown() {
                Some(RateLimited::Spool {
                    shown: shown.len(),
                    max: self.max_shown(),
                })
            } else if mine.len() >= self.max_pending {
                Some(RateLimited::Pending {
                    key: key.clone(),
                    pending: mine.len(),
                    max: self.max_pending,
                })
            } else if in_minute >= self.max_per_minute {
                Some(RateLimited::PerMinute {
                    key: key.clone(),
                    filed: in_minute,
                    max: self.max_per_minute,
                })
            } else {
                None
            };
            match refusal {
                Some(why) => held.push((request, why)),
                None => shown.push(request),
            }
        }
        (shown, held)
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
    #[error("{shown} override requests are already waiting for the user (at most {max}, whatever agents they name); wait for the user to decide them")]
    Spool { shown: usize, max: usize },
}
