//! An override request: what an agent asked for and who asked, as it lies in the spool.
//!
//! Filing and validating one is [`super::filing`]; this module only says what a request is.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::events::OverrideEvent;
use crate::audit::OverrideEventKind;
use crate::vocab::time::rfc3339_from_secs;
use crate::vocab::{OpKind, OpSet};

/// Longest reason accepted, in characters: one or two sentences for a human to read.
pub const MAX_REASON_CHARS: usize = 500;

/// Who filed a request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Requester {
    pub pid: u32,
    pub uid: u32,
    /// `AGENT_GUARD_AGENT` of the requesting process: which agent asked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cwd: Option<PathBuf>,
}

impl Requester {
    /// The key the rate limit counts by: the agent the request names. Every request in the
    /// spool counts as an agent's, one that names none included: the spool is agent-writable,
    /// so no file in it can claim a human's origin (or a human's freedom from the limit).
    pub fn rate_key(&self) -> String {
        rate_key(self.agent.as_deref())
    }
}

/// The rate-limit key of a request naming `agent` (see [`Requester::rate_key`]).
pub fn rate_key(agent: Option<&str>) -> String {
    match agent.filter(|a| !a.is_empty()) {
        Some(agent) => format!("agent {agent}"),
        None => "an agent that gave no name".to_string(),
    }
}

/// A pending request, as stored in `<state dir>/requests/ID.json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Request {
    pub id: String,
    /// Absolute, clean, symlinks of its existing part resolved: the subtree to open up.
    pub path: PathBuf,
    pub ops: Vec<OpKind>,
    pub reason: String,
    /// How long the grant should last once approved (the approver may change it).
    pub ttl_secs: u64,
    /// Unix seconds.
    pub created_at: u64,
    /// RFC 3339 of `created_at`.
    pub time: String,
    /// The denial record this request is about (`--denial ID`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub denial_id: Option<String>,
    /// For an exec: the exact arguments after `argv[0]` the override is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args: Option<Vec<String>>,
    pub requester: Requester,
    /// What the filing command says about the `request` event being in the audit trail. Only
    /// the trail itself is believed (an agent writes this file): humans' commands look the id
    /// up there, and record the request when it is missing.
    #[serde(default)]
    pub recorded: bool,
    /// When the file appeared in the spool (unix seconds, its inode change time, which the
    /// kernel sets and the file's writer cannot): the rate limit orders requests by it, never
    /// by the `created_at` the file claims.
    #[serde(skip)]
    pub arrived_at: u64,
}

impl Request {
    /// Whether `event` (a recorded `request` event) describes this request as it is now: same
    /// path, operations, reason and lifetime. The spool is agent-writable and the trail is not,
    /// so this is what binds a human's approval to what was filed and listed.
    pub fn matches_recorded(&self, event: &OverrideEvent) -> bool {
        event.path == self.path
            && event.ops == self.op_set()
            && event.args == self.args
            && event.reason == self.reason
            && event.ttl_secs.is_none_or(|t| t == self.ttl_secs)
            && event.requested_at == self.created_at
    }

    pub fn op_set(&self) -> OpSet {
        self.ops.iter().copied().collect()
    }

    /// The audit event of `kind` about this request.
    pub fn event(
        &self,
        kind: OverrideEventKind,
        expires_at: Option<u64>,
        now: u64,
    ) -> OverrideEvent {
        OverrideEvent {
            ts: now,
            time: rfc3339_from_secs(now),
            event: kind,
            id: self.id.clone(),
            path: self.path.clone(),
            ops: self.op_set(),
            reason: self.reason.clone(),
            expires_at,
            denial_id: self.denial_id.clone(),
            args: self.args.clone(),
            agent: self.requester.agent.clone(),
            requested_at: self.created_at,
            ttl_secs: Some(self.ttl_secs),
            by_uid: super::current_uid(),
            by_pid: std::process::id(),
            // The deciding human's; the requester is `agent`.
            by: (!matches!(kind, OverrideEventKind::Request | OverrideEventKind::Expire))
                .then(|| super::approver(super::current_uid(), &crate::paths::process_env)),
        }
    }
}
