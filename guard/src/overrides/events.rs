//! The overrides audit trail: one JSON line per request, approval, denial, revocation and expiry
//! in `<state dir>/overrides.jsonl`.
//!
//! [`record_override_event`] is the single place these are written, so the SQLite store can be
//! fed from here too. It must never be on the engine's hot path.

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::files;
use super::OverrideError;
use crate::audit::OverrideEventKind;
use crate::paths::Locations;
use crate::vocab::{IoError, OpSet};

/// One line of `overrides.jsonl`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OverrideEvent {
    /// Unix seconds.
    pub ts: u64,
    /// RFC 3339, milliseconds.
    pub time: String,
    pub event: OverrideEventKind,
    /// The request id (grants keep the id of the request they came from).
    pub id: String,
    pub path: PathBuf,
    /// Written as the names separated by commas, as on the command line (`unlink,rename`).
    pub ops: OpSet,
    pub reason: String,
    /// When the grant ends (approve, revoke, expire).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<u64>,
    /// The denial the request was about, if it named one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub denial_id: Option<String>,
    /// For an exec: the arguments after `argv[0]` the request (or grant) is for; `None` on an
    /// approval that widened it to any arguments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args: Option<Vec<String>>,
    /// The agent that asked (`AGENT_GUARD_AGENT` of the requester), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    /// When the request was filed (unix seconds): the rate limit counts these.
    pub requested_at: u64,
    /// The lifetime the request asked for (request events), so an approval can check that the
    /// spooled request is still the one that was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_secs: Option<u64>,
    /// uid and pid of the process that caused this event.
    pub by_uid: u32,
    pub by_pid: u32,
    /// Who decided, for approve, deny and revoke: the user's name and uid and where they were
    /// (`alice (uid 1000) on /dev/pts/3`, `... over ssh from 10.0.0.5 port 51234`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
}

fn log_path(locations: &Locations) -> PathBuf {
    locations.state_dir.join("overrides.jsonl")
}

/// Append `event` to the overrides audit trail (`<state dir>/overrides.jsonl`).
pub fn record_override_event(
    locations: &Locations,
    event: &OverrideEvent,
) -> Result<(), OverrideError> {
    let path = log_path(locations);
    let line = serde_json::to_string(event).map_err(|e| OverrideError::Malformed {
        path: path.clone(),
        message: format!("cannot encode the event: {e}"),
    })?;
    files::append_line(&path, &line)
        .map_err(IoError::at(&path, "append to the overrides audit trail"))?;
    record_in_audit_store(locations, event);
    Ok(())
}

/// The same event in the SQLite audit trail, so `agent-guard audit query --overrides` and the
/// export show overrides next to decisions. Best effort: the JSONL line above is the record of
/// reference, and a store that cannot be opened (a first run, a read-only state dir) is logged.
fn record_in_audit_store(locations: &Locations, event: &OverrideEvent) {
    use crate::audit::{AuditStore, AuditStoreConfig};
    // The requester for a request; the human who decided for the rest (not the agent whose
    // request it was); agent-guard itself for an expiry.
    let who = match event.event {
        crate::audit::OverrideEventKind::Request => event
            .agent
            .clone()
            .unwrap_or_else(|| format!("uid {}", event.by_uid)),
        crate::audit::OverrideEventKind::Expire => "agent-guard".to_string(),
        _ => event
            .by
            .clone()
            .unwrap_or_else(|| format!("uid {}", event.by_uid)),
    };
    let ttl = event
        .ttl_secs
        .or_else(|| event.expires_at.map(|t| t.saturating_sub(event.ts)))
        .map(std::time::Duration::from_secs);
    let when = std::time::UNIX_EPOCH + std::time::Duration::from_secs(event.ts);
    let record = crate::audit::OverrideEvent::new(
        event.event,
        &event.id,
        &event.path,
        event.ops,
        &who,
        ttl,
        when,
    );
    match AuditStore::open(&locations.audit_db, AuditStoreConfig::default()) {
        Ok(store) => {
            store.record_override(record);
            if let Err(e) = store.flush() {
                tracing::warn!("override event not written to the audit store: {e}");
            }
        }
        Err(e) => tracing::warn!("override event not written to the audit store: {e}"),
    }
}

/// The events in the last `tail_bytes` of the trail (all of it when smaller). Lines that do not
/// parse are skipped: the trail is append-only and a partial first line is expected.
pub fn read_recent_events(
    locations: &Locations,
    tail_bytes: u64,
) -> Result<Vec<OverrideEvent>, OverrideError> {
    let path = log_path(locations);
    read_tail(&path, tail_bytes).map(|text| {
        text.lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    })
}

fn read_tail(path: &Path, tail_bytes: u64) -> Result<String, OverrideError> {
    let io = |what| IoError::at(path, what);
    let mut file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(String::new()),
        Err(e) => return Err(io("open")(e).into()),
    };
    let len = file.metadata().map_err(io("inspect"))?.len();
    file.seek(SeekFrom::Start(len.saturating_sub(tail_bytes)))
        .map_err(io("seek in"))?;
    let mut bytes = Vec::new();
    file.take(tail_bytes)
        .read_to_end(&mut bytes)
        .map_err(io("read"))?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}
