//! The rows of the audit trail: a [`DecisionRecord`] per agent-attributed decision and an
//! [`OverrideEvent`] per step in an override's life. Built from the vocabulary; no I/O.

use std::path::Path;
use std::str::FromStr;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use crate::vocab::time::unix_millis;
use crate::vocab::{
    Action, AgentInfo, Decision, EntryKind, Event, KeptEntry, KeptHow, Mode, OpKind, OpSet, RuleId,
    UnknownName, Verdict,
};

/// One agent-attributed decision.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DecisionRecord {
    /// Milliseconds since the Unix epoch.
    pub time_ms: i64,
    /// The agent the actor is attributed to.
    pub agent: String,
    pub agent_pid: i32,
    pub pid: i32,
    /// The second half of the process key: start time on Linux (clock ticks since boot) and on macOS (microseconds since the epoch).
    pub start_key: u64,
    pub exe: String,
    pub op: OpKind,
    pub path: String,
    pub dest: Option<String>,
    pub zone: Option<String>,
    pub rule: Option<RuleId>,
    pub verdict: Decision,
    pub mode: Mode,
    /// A hash of the normalized policy that decided.
    pub policy_version: String,
    /// For an exec: its arguments (`argv[0]` first).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub argv: Option<Vec<String>>,
    /// How many decisions this row stands for: 1, or the repeats a summary of repeated denials
    /// counts (its `path` is then their pattern; see `audit::aggregate`).
    #[serde(default = "one")]
    pub count: u64,
}

fn one() -> u64 {
    1
}

impl DecisionRecord {
    /// The record of one decision. For a deny or audit verdict the paths, zone and rule come
    /// from the denial (which names the side of a rename that made it deny); for an allow, from
    /// the event.
    pub fn new(
        event: &Event,
        agent: &AgentInfo,
        start_key: u64,
        verdict: &Verdict,
        mode: Mode,
        policy_version: &str,
        now: SystemTime,
    ) -> DecisionRecord {
        let lossy = |p: &Path| p.to_string_lossy().into_owned();
        let (op, path, dest, zone, rule) = match (verdict.denial(), verdict.keep()) {
            (Some(d), _) => (
                d.op,
                lossy(&d.path),
                d.dest.as_deref().map(lossy),
                d.zone.as_deref().map(lossy),
                Some(d.rule.clone()),
            ),
            (None, Some(k)) => (
                event.action.kind(),
                event.action.path().map(lossy).unwrap_or_default(),
                event.action.dest().map(lossy),
                Some(lossy(&k.zone)),
                Some(k.rule.clone()),
            ),
            (None, None) => {
                let path = match &event.action {
                    Action::Signal { target_pid, .. }
                    | Action::Trace {
                        target_pid,
                        path: None,
                    } => format!("pid:{target_pid}"),
                    action => action.path().map(lossy).unwrap_or_default(),
                };
                (
                    event.action.kind(),
                    path,
                    event.action.dest().map(lossy),
                    None,
                    None,
                )
            }
        };
        DecisionRecord {
            time_ms: unix_millis(now),
            agent: agent.name.clone(),
            agent_pid: agent.pid,
            pid: event.actor.pid,
            start_key,
            exe: lossy(&event.actor.exe),
            op,
            path,
            dest,
            zone,
            rule,
            verdict: verdict.decision(),
            mode,
            policy_version: policy_version.to_string(),
            argv: match &event.action {
                Action::Exec { argv, .. } => Some(argv.clone()),
                _ => None,
            },
            count: 1,
        }
    }
}

/// One path an agent's operation destroyed and a sensor kept: a row of `kept`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeptRecord {
    pub time_ms: i64,
    /// The agent session (`20261121T083541Z-25969`).
    pub session: String,
    /// The entry's number in its session.
    pub seq: u64,
    pub agent: String,
    pub agent_pid: i32,
    pub pid: i32,
    pub exe: String,
    /// The operation that destroyed it, and the rule that asked to keep it.
    pub op: OpKind,
    pub rule: RuleId,
    pub path: String,
    pub dest: Option<String>,
    pub kind: EntryKind,
    pub how: KeptHow,
    /// Relative to the store's root (`SESSION/NAME`); `None` when no file holds it.
    pub store_name: Option<String>,
    pub size: u64,
    /// `st_mode` with the type bits.
    pub mode: u32,
    pub mtime_ns: i64,
    /// SHA-256 of what the store holds (hex), computed after the fact; `None` until then, and for
    /// directories and what was not kept.
    pub sha256: Option<String>,
    /// What the session left at `path` when it ended (see [`EndState`]); `None` while it runs.
    pub end_state: Option<String>,
    /// The session had made `path` itself (it did not exist when the session's call that made
    /// it was judged): a bulk restore leaves the entry out unless asked.
    #[serde(default)]
    pub new_in_session: bool,
}

impl KeptRecord {
    /// The row of `entry`, kept for `event` by `agent`'s process.
    pub fn new(
        session: &str,
        event: &Event,
        agent: &AgentInfo,
        rule: &RuleId,
        entry: &KeptEntry,
        now: SystemTime,
    ) -> KeptRecord {
        let lossy = |p: &Path| p.to_string_lossy().into_owned();
        KeptRecord {
            time_ms: unix_millis(now),
            session: session.to_string(),
            seq: entry.seq,
            agent: agent.name.clone(),
            agent_pid: agent.pid,
            pid: event.actor.pid,
            exe: lossy(&event.actor.exe),
            op: event.action.kind(),
            rule: rule.clone(),
            path: lossy(&entry.path),
            dest: event.action.dest().map(lossy),
            kind: entry.kind,
            how: entry.how,
            store_name: entry.store_name.clone(),
            size: entry.size,
            mode: entry.mode,
            mtime_ns: entry.mtime_ns,
            sha256: None,
            end_state: None,
            new_in_session: false,
        }
    }
}

/// What a session left at a path it kept, when it ended: `absent`, or the file's fingerprint
/// `ino:size:mtime_ns:ctime_ns`. A restore compares it with what is there now: the same, and
/// the path holds only the agent's own work, which the restore undoes; different, and someone
/// changed it since, so the restore puts the kept version beside it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EndState {
    Absent,
    Present {
        ino: u64,
        size: u64,
        mtime_ns: i64,
        ctime_ns: i64,
    },
}

impl EndState {
    /// The state of `path` now (symlinks not followed).
    pub fn of(path: &Path) -> EndState {
        use std::os::unix::fs::MetadataExt;
        match std::fs::symlink_metadata(path) {
            Err(_) => EndState::Absent,
            Ok(m) => EndState::Present {
                ino: m.ino(),
                size: m.size(),
                mtime_ns: m.mtime() * 1_000_000_000 + m.mtime_nsec(),
                ctime_ns: m.ctime() * 1_000_000_000 + m.ctime_nsec(),
            },
        }
    }

    pub fn to_text(self) -> String {
        match self {
            EndState::Absent => "absent".to_string(),
            EndState::Present {
                ino,
                size,
                mtime_ns,
                ctime_ns,
            } => format!("{ino}:{size}:{mtime_ns}:{ctime_ns}"),
        }
    }

    pub fn parse(text: &str) -> Option<EndState> {
        if text == "absent" {
            return Some(EndState::Absent);
        }
        let mut parts = text.split(':');
        let state = EndState::Present {
            ino: parts.next()?.parse().ok()?,
            size: parts.next()?.parse().ok()?,
            mtime_ns: parts.next()?.parse().ok()?,
            ctime_ns: parts.next()?.parse().ok()?,
        };
        parts.next().is_none().then_some(state)
    }
}

/// A later fact about kept rows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeptUpdate {
    /// The hash of entry `seq` of `session`, computed off the decision path.
    Hash {
        session: String,
        seq: u64,
        sha256: String,
    },
    /// What `session` left at `path` when it ended.
    EndState {
        session: String,
        path: String,
        state: EndState,
    },
}

/// What happened to an override.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OverrideEventKind {
    Request,
    Approve,
    Deny,
    Revoke,
    Expire,
}

impl OverrideEventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            OverrideEventKind::Request => "request",
            OverrideEventKind::Approve => "approve",
            OverrideEventKind::Deny => "deny",
            OverrideEventKind::Revoke => "revoke",
            OverrideEventKind::Expire => "expire",
        }
    }
}

impl FromStr for OverrideEventKind {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        UnknownName::find(
            s,
            &[
                OverrideEventKind::Request,
                OverrideEventKind::Approve,
                OverrideEventKind::Deny,
                OverrideEventKind::Revoke,
                OverrideEventKind::Expire,
            ],
            OverrideEventKind::as_str,
            "override event",
            "request, approve, deny, revoke or expire",
        )
    }
}

/// One step in an override's life.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OverrideEvent {
    pub time_ms: i64,
    pub kind: OverrideEventKind,
    pub override_id: String,
    pub path: String,
    /// Stored as the names separated by commas (`unlink,rename`).
    pub ops: OpSet,
    /// Who acted: the requesting agent, the approving user, `agent-guard` for expiry.
    pub who: String,
    pub ttl_secs: Option<u64>,
}

impl OverrideEvent {
    pub fn new(
        kind: OverrideEventKind,
        override_id: &str,
        path: &Path,
        ops: OpSet,
        who: &str,
        ttl: Option<Duration>,
        now: SystemTime,
    ) -> OverrideEvent {
        OverrideEvent {
            time_ms: unix_millis(now),
            kind,
            override_id: override_id.to_string(),
            path: path.to_string_lossy().into_owned(),
            ops,
            who: who.to_string(),
            ttl_secs: ttl.map(|t| t.as_secs()),
        }
    }
}
