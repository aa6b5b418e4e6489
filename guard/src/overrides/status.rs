//! What became of one override request (`agent-guard override status ID [--wait DUR]`): an
//! agent may ask, so this only reads (the grants file, the spool, the trail).

use serde::Serialize;

use super::store::GrantStore;
use super::{check_id, read_recent_events, OverrideError};
use crate::audit::OverrideEventKind;
use crate::paths::Locations;

/// Where a request stands.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "lowercase")]
pub enum RequestState {
    /// Waiting for a human.
    Pending,
    /// Approved and in force until `expires_at` (unix seconds).
    Approved {
        expires_at: u64,
    },
    Denied,
    Revoked,
    Expired,
}

impl RequestState {
    /// Whether a human's decision (or time) has settled it.
    pub fn is_decided(&self) -> bool {
        !matches!(self, RequestState::Pending)
    }

    /// One line for the agent or the human.
    pub fn describe(&self, id: &str, now: u64) -> String {
        match self {
            RequestState::Pending => format!("{id} is waiting for the user's decision"),
            RequestState::Approved { expires_at } => format!(
                "{id} was approved: in force for {} more (until {})",
                super::human_duration(expires_at.saturating_sub(now)),
                crate::vocab::time::rfc3339_from_secs(*expires_at)
            ),
            RequestState::Denied => format!("{id} was denied by the user: do not retry"),
            RequestState::Revoked => format!("{id} was approved, then revoked by the user"),
            RequestState::Expired => format!("{id} was approved and has expired"),
        }
    }
}

/// Where request `id` stands at `now`.
pub fn request_state(
    locations: &Locations,
    id: &str,
    now: u64,
) -> Result<RequestState, OverrideError> {
    check_id(id)?;
    let grants = GrantStore::new(locations.clone()).load()?;
    if let Some(g) = grants.grants.iter().find(|g| g.id == id) {
        return Ok(if g.is_active(now) {
            RequestState::Approved {
                expires_at: g.expires_at,
            }
        } else {
            RequestState::Expired
        });
    }
    if super::spool::read_request(locations, id)?.is_some() {
        return Ok(RequestState::Pending);
    }
    let last = read_recent_events(locations, 8 << 20)?
        .into_iter()
        .rev()
        .find(|e| e.id == id);
    match last.map(|e| (e.event, e.expires_at)) {
        Some((OverrideEventKind::Deny, _)) => Ok(RequestState::Denied),
        Some((OverrideEventKind::Revoke, _)) => Ok(RequestState::Revoked),
        Some((OverrideEventKind::Expire, _)) => Ok(RequestState::Expired),
        Some((OverrideEventKind::Approve, Some(t))) if now < t => {
            Ok(RequestState::Approved { expires_at: t })
        }
        Some((OverrideEventKind::Approve, _)) => Ok(RequestState::Expired),
        // Recorded as filed, and gone from the spool without a decision.
        Some((OverrideEventKind::Request, _)) | None => {
            Err(OverrideError::NoSuchRequest { id: id.to_string() })
        }
    }
}
