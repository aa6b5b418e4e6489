//! The grant store: `<state dir>/grants.json`, and the decisions that change it.
//!
//! Every change is a read-modify-write under a lock file, published by an atomic replace
//! ([`files::write_atomic`]), so the supervisor's watcher never reads half a file and two
//! approvals at once never lose one another. Expired grants are dropped on every load and
//! recorded as `expire` events when a human's command (or the supervisor) prunes the file.

use std::io;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::events::{record_override_event, OverrideEvent};
use super::filing::RequestSpec;
use super::request::Request;
use super::spool::{read_request, remove_request};
use super::{check_id, files, OverrideError, Requester};
use crate::audit::OverrideEventKind;
use crate::paths::Locations;
use crate::policy::Policy;
use crate::vocab::time::rfc3339_from_secs;
use crate::vocab::{Grant, Grants, IoError, OpKind, OpSet};

/// How much of the end of the audit trail an approval reads to find a request's history.
const TRAIL_TAIL: u64 = 8 << 20;

/// The format version of `grants.json`.
pub const GRANTS_VERSION: u32 = 1;

/// `grants.json`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrantFile {
    pub version: u32,
    pub grants: Vec<StoredGrant>,
}

/// One approved override as stored: what the engine needs, and who asked and approved it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoredGrant {
    /// The id of the request it came from.
    pub id: String,
    pub path: PathBuf,
    pub ops: Vec<OpKind>,
    /// Unix seconds; the engine stops honouring the grant at this second.
    pub expires_at: u64,
    pub approved_at: u64,
    pub approved_by_uid: u32,
    pub reason: String,
    pub requester: Requester,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub denial_id: Option<String>,
    pub requested_at: u64,
    /// For an exec: the exact arguments after `argv[0]` it allows; `None`: any (other
    /// operations, or an approval that widened it with `--any-args`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args: Option<Vec<String>>,
}

impl StoredGrant {
    pub fn op_set(&self) -> OpSet {
        self.ops.iter().collect()
    }

    pub fn to_engine(&self) -> Grant {
        Grant {
            id: self.id.clone(),
            path: self.path.clone(),
            ops: self.op_set(),
            expires_at: Some(self.expires_at),
            args: self.args.clone(),
        }
    }

    pub fn is_active(&self, now: u64) -> bool {
        now < self.expires_at
    }

    fn event(&self, kind: OverrideEventKind, now: u64) -> OverrideEvent {
        OverrideEvent {
            ts: now,
            time: rfc3339_from_secs(now),
            event: kind,
            id: self.id.clone(),
            path: self.path.clone(),
            ops: self.op_set(),
            reason: self.reason.clone(),
            expires_at: Some(self.expires_at),
            denial_id: self.denial_id.clone(),
            args: self.args.clone(),
            agent: self.requester.agent.clone(),
            requested_at: self.requested_at,
            ttl_secs: None,
            by_uid: super::current_uid(),
            by_pid: std::process::id(),
            by: (kind != OverrideEventKind::Expire)
                .then(|| super::approver(super::current_uid(), &crate::paths::process_env)),
        }
    }
}

impl GrantFile {
    /// The grants still active at `now`, as the engine takes them.
    pub fn to_engine(&self, now: u64) -> Grants {
        Grants::new(
            self.grants
                .iter()
                .filter(|g| g.is_active(now))
                .map(StoredGrant::to_engine)
                .collect(),
        )
    }
}

/// The grants file and the decisions on it, for one installation's locations.
#[derive(Clone, Debug)]
pub struct GrantStore {
    pub locations: Locations,
}

impl GrantStore {
    pub fn new(locations: Locations) -> GrantStore {
        GrantStore { locations }
    }

    fn path(&self) -> &PathBuf {
        &self.locations.grants
    }

    fn lock_path(&self) -> PathBuf {
        self.locations.state_dir.join("grants.lock")
    }

    /// Read `grants.json` (absent = no grants). Never follows a symlink.
    pub fn load(&self) -> Result<GrantFile, OverrideError> {
        let path = self.path();
        let Some(bytes) = files::read_regular(path)? else {
            return Ok(GrantFile {
                version: GRANTS_VERSION,
                grants: Vec::new(),
            });
        };
        let file: GrantFile =
            serde_json::from_slice(&bytes).map_err(|e| OverrideError::Malformed {
                path: path.clone(),
                message: format!("not an agent-guard grants file: {e}"),
            })?;
        if file.version != GRANTS_VERSION {
            return Err(OverrideError::Malformed {
                path: path.clone(),
                message: format!(
                    "version {}: expected {GRANTS_VERSION} (written by another agent-guard?)",
                    file.version
                ),
            });
        }
        Ok(file)
    }

    /// The grants in force at `now`, for the engine. Expired ones are dropped.
    pub fn active(&self, now: u64) -> Result<Grants, OverrideError> {
        Ok(self.load()?.to_engine(now))
    }

    /// Run `change` on the grants file under the lock, and publish the result atomically.
    /// A write the kernel refuses (EPERM/EACCES: the guard-files rule that keeps agents out of the
    /// state dir) is reported as [`OverrideError::NotHuman`].
    fn modify<T>(
        &self,
        command: &'static str,
        change: impl FnOnce(&mut GrantFile) -> Result<T, OverrideError>,
    ) -> Result<T, OverrideError> {
        let refused = |source: io::Error, path: &PathBuf, what: &'static str| {
            if source.kind() == io::ErrorKind::PermissionDenied {
                OverrideError::NotHuman {
                    command,
                    detail: format!(
                        "writing {} was refused ({source}); only a process that is not agent-attributed may change the grants",
                        path.display()
                    ),
                }
            } else {
                OverrideError::Io(IoError {
                    path: path.clone(),
                    what,
                    source,
                })
            }
        };
        files::ensure_dir(&self.locations.state_dir).map_err(|e| match e {
            OverrideError::Io(IoError { source, path, what }) => refused(source, &path, what),
            other => other,
        })?;
        let lock_path = self.lock_path();
        let _lock = files::FileLock::acquire(&lock_path)
            .map_err(|e| refused(e, &lock_path, "lock the grants file"))?;
        let mut file = self.load()?;
        let out = change(&mut file)?;
        let bytes = serde_json::to_vec_pretty(&file).map_err(|e| OverrideError::Malformed {
            path: self.path().clone(),
            message: format!("cannot encode the grants: {e}"),
        })?;
        files::write_atomic(self.path(), &bytes)
            .map_err(|e| refused(e, self.path(), "write the grants file"))?;
        Ok(out)
    }

    /// Pending request `id`, checked against the audit trail: an id that was already decided
    /// cannot come back (the agent may write a new file under an old name), and a request that
    /// changed since its `request` event was recorded (by the human's `list`, or by `request`
    /// itself) is refused, so a human approves what they saw.
    pub fn pending(&self, id: &str) -> Result<Request, OverrideError> {
        let request = read_request(&self.locations, id)?
            .ok_or_else(|| OverrideError::NoSuchRequest { id: id.to_string() })?;
        // Held to the rate limit like every spool file: a request dropped into the spool past
        // the limit is not shown, so it cannot be approved either.
        let all: Vec<Request> = super::load_pending(&self.locations)?
            .into_iter()
            .flatten()
            .collect();
        let (_, held) = super::RateLimit::DEFAULT.admit(all);
        if let Some((_, why)) = held.iter().find(|(r, _)| r.id == id) {
            return Err(OverrideError::HeldBack {
                id: id.to_string(),
                why: why.to_string(),
            });
        }
        let history: Vec<OverrideEvent> = super::read_recent_events(&self.locations, TRAIL_TAIL)?
            .into_iter()
            .filter(|e| e.id == id)
            .collect();
        if let Some(done) = history
            .iter()
            .find(|e| e.event != OverrideEventKind::Request)
        {
            return Err(OverrideError::Tampered {
                id: id.to_string(),
                why: format!(
                    "it was already decided ({} at {})",
                    done.event.as_str(),
                    done.time
                ),
            });
        }
        if let Some(recorded) = history
            .iter()
            .rev()
            .find(|e| e.event == OverrideEventKind::Request)
        {
            if !request.matches_recorded(recorded) {
                return Err(OverrideError::Tampered {
                    id: id.to_string(),
                    why: format!(
                        "its file changed after it was recorded (recorded: {} under {} for {}s: {:?})",
                        recorded.ops,
                        recorded.path.display(),
                        recorded.ttl_secs.unwrap_or(0),
                        recorded.reason
                    ),
                });
            }
        }
        Ok(request)
    }

    /// Approve request `id`: validate it again against `policy` (the spool is agent-writable),
    /// write the grant, remove the request, record the approval. `ttl_secs` overrides the
    /// requested lifetime. Returns the grant.
    ///
    /// An exec grant allows exactly the requested arguments; `any_args` (the approver's explicit
    /// choice) widens it to the program with any arguments.
    #[allow(clippy::too_many_arguments)]
    pub fn approve(
        &self,
        id: &str,
        ttl_secs: Option<u64>,
        any_args: bool,
        policy: &Policy,
        homes: &[PathBuf],
        now: u64,
    ) -> Result<StoredGrant, OverrideError> {
        check_id(id)?;
        let request = self.pending(id)?;
        let ttl = ttl_secs.unwrap_or(request.ttl_secs);
        super::validate(
            &RequestSpec {
                path: request.path.clone(),
                ops: request.ops.clone(),
                reason: request.reason.clone(),
                ttl_secs: ttl,
                args: request.args.clone(),
            },
            policy,
            homes,
        )?;
        let grant = StoredGrant {
            id: request.id.clone(),
            path: request.path.clone(),
            ops: request.ops.clone(),
            expires_at: now + ttl,
            approved_at: now,
            approved_by_uid: super::current_uid(),
            reason: request.reason.clone(),
            requester: request.requester.clone(),
            denial_id: request.denial_id.clone(),
            requested_at: request.created_at,
            args: if any_args { None } else { request.args.clone() },
        };
        let expired = self.modify("approve", |file| {
            let expired = prune(file, now);
            file.grants.retain(|g| g.id != grant.id);
            file.grants.push(grant.clone());
            Ok(expired)
        })?;
        self.record_decided(
            &request,
            OverrideEventKind::Approve,
            Some(grant.expires_at),
            now,
        );
        self.record_expired(&expired, now);
        remove_request(&self.locations, id)?;
        Ok(grant)
    }

    /// Turn request `id` down: remove it and record the denial.
    pub fn deny(&self, id: &str, now: u64) -> Result<Request, OverrideError> {
        check_id(id)?;
        // No trail check: turning down a request, even one changed behind the human's back,
        // only removes it.
        let request = read_request(&self.locations, id)?
            .ok_or_else(|| OverrideError::NoSuchRequest { id: id.to_string() })?;
        // Deciding is a human's act even when it writes no grant: take the lock, so an agent
        // (which may write the spool) cannot "deny" other requests away.
        let expired = self.modify("deny", |file| Ok(prune(file, now)))?;
        self.record_decided(&request, OverrideEventKind::Deny, None, now);
        self.record_expired(&expired, now);
        remove_request(&self.locations, id)?;
        Ok(request)
    }

    /// Withdraw grant `id` before its expiry.
    pub fn revoke(&self, id: &str, now: u64) -> Result<StoredGrant, OverrideError> {
        check_id(id)?;
        let (revoked, expired) = self.modify("revoke", |file| {
            let expired = prune(file, now);
            let index = file
                .grants
                .iter()
                .position(|g| g.id == id)
                .ok_or_else(|| OverrideError::NoSuchGrant { id: id.to_string() })?;
            Ok((file.grants.remove(index), expired))
        })?;
        let _ = record_override_event(
            &self.locations,
            &revoked.event(OverrideEventKind::Revoke, now),
        );
        self.record_expired(&expired, now);
        Ok(revoked)
    }

    /// Remove the grants that expired by `now` from the file and record an `expire` event for
    /// each. For humans' commands and the supervisor (never an agent: it writes the state dir).
    pub fn prune_expired(&self, now: u64) -> Result<Vec<StoredGrant>, OverrideError> {
        let has_expired = self.load()?.grants.iter().any(|g| !g.is_active(now));
        if !has_expired {
            return Ok(Vec::new());
        }
        let expired = self.modify("prune", |file| Ok(prune(file, now)))?;
        self.record_expired(&expired, now);
        Ok(expired)
    }

    /// Record the `request` events of pending requests an agent filed without being able to
    /// write the audit trail, and mark them recorded. Run by humans' commands and the supervisor.
    pub fn record_pending_requests(&self, now: u64) -> Result<usize, OverrideError> {
        let mut recorded = 0;
        let pending: Vec<Request> = super::load_pending(&self.locations)?
            .into_iter()
            .flatten()
            .collect();
        if pending.is_empty() {
            return Ok(0);
        }
        // The trail says what was recorded, never the agent-written file's `recorded` flag: a
        // file claiming it would otherwise never be bound to what the human saw.
        let in_trail = self.recorded_requests()?;
        for request in pending {
            if in_trail.contains(&request.id) {
                continue;
            }
            record_override_event(
                &self.locations,
                &request.event(OverrideEventKind::Request, None, now),
            )?;
            recorded += 1;
        }
        Ok(recorded)
    }

    /// The ids whose `request` event is in the recent audit trail.
    fn recorded_requests(&self) -> Result<std::collections::HashSet<String>, OverrideError> {
        Ok(super::read_recent_events(&self.locations, TRAIL_TAIL)?
            .into_iter()
            .filter(|e| e.event == OverrideEventKind::Request)
            .map(|e| e.id)
            .collect())
    }

    fn record_decided(
        &self,
        request: &Request,
        kind: OverrideEventKind,
        expires_at: Option<u64>,
        now: u64,
    ) {
        // The audit trail must not make a decision fail after the grant is published; a
        // request the trail has not seen yet is recorded first, so the trail stays complete.
        let in_trail = self
            .recorded_requests()
            .is_ok_and(|ids| ids.contains(&request.id));
        if !in_trail {
            let _ = record_override_event(
                &self.locations,
                &request.event(OverrideEventKind::Request, None, request.created_at),
            );
        }
        let _ = record_override_event(&self.locations, &request.event(kind, expires_at, now));
    }

    fn record_expired(&self, expired: &[StoredGrant], now: u64) {
        for grant in expired {
            let _ = record_override_event(
                &self.locations,
                &grant.event(OverrideEventKind::Expire, now),
            );
        }
    }
}

fn prune(file: &mut GrantFile, now: u64) -> Vec<StoredGrant> {
    let (active, expired) = std::mem::take(&mut file.grants)
        .into_iter()
        .partition(|g| g.is_active(now));
    file.grants = active;
    file.version = GRANTS_VERSION;
    expired
}
