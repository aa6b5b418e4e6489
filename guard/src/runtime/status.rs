//! What `agent-guard status` shows: each running sensor publishes a [`RuntimeStatus`] file once
//! a second (`<state dir>/status/PID.json`); [`StatusReport::gather`] reads them back with the
//! policy in force, the grants and the pending requests.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use super::Runtime;
use crate::paths::Locations;
use crate::policy::LoadedPolicy;
use crate::vocab::time::unix_secs;
use crate::vocab::Mode;

/// How often a running sensor rewrites its status file.
pub(super) const STATUS_INTERVAL: Duration = Duration::from_secs(1);

impl Runtime {
    /// What `status` shows about this runtime.
    pub fn status(&self) -> RuntimeStatus {
        let policy = self.policy.load();
        let reload = self.policy.status();
        let c = &self.counters;
        let (denial_drops, store_drops) = (
            self.denials.get().map(|l| l.dropped()).unwrap_or(0),
            self.store.get().map(|s| {
                let st = s.stats();
                st.dropped_queue_full + st.dropped_write_failed
            }),
        );
        RuntimeStatus {
            pid: std::process::id(),
            started: unix_secs(self.started),
            updated: unix_secs(SystemTime::now()),
            mode: if self.config.force_audit {
                Mode::Audit
            } else {
                policy.mode
            },
            policy_source: policy.source.clone(),
            policy_version: policy.version.clone(),
            reloads: reload.reloads,
            last_reload: reload.last_reload.map(unix_secs),
            last_reload_error: reload.last_error,
            decisions: c.decisions.load(Ordering::Relaxed),
            denials: c.denials.load(Ordering::Relaxed),
            audits: c.audits.load(Ordering::Relaxed),
            deadline_misses: c.deadline_misses.load(Ordering::Relaxed),
            kept: c.kept.load(Ordering::Relaxed),
            dropped_events: c.dropped_events.load(Ordering::Relaxed),
            dropped_denials: denial_drops,
            dropped_audit_records: store_drops.unwrap_or(0),
            active_grants: self.grants.current().grants.len(),
            denials_log: self.config.locations.denials.clone(),
            audit_db: self.config.locations.audit_db.clone(),
        }
    }

    /// Publish the status for `agent-guard status` (atomically: temp file + rename).
    pub fn write_status(&self) {
        let dir = status_dir(&self.config.locations);
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join(format!("{}.json", std::process::id()));
        let tmp = dir.join(format!(".{}.json.tmp", std::process::id()));
        if let Ok(json) = serde_json::to_vec_pretty(&self.status()) {
            if std::fs::write(&tmp, json).is_ok() {
                let _ = std::fs::rename(&tmp, &path);
            }
        }
    }

    /// Remove this process's status file (at exit).
    pub fn remove_status(&self) {
        let path = status_dir(&self.config.locations).join(format!("{}.json", std::process::id()));
        let _ = std::fs::remove_file(path);
    }
}

/// Where running sensors publish their status.
pub fn status_dir(locations: &Locations) -> PathBuf {
    locations.state_dir.join("status")
}

/// A running sensor's published status.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RuntimeStatus {
    pub pid: u32,
    pub started: u64,
    pub updated: u64,
    pub mode: Mode,
    pub policy_source: String,
    pub policy_version: String,
    pub reloads: u64,
    pub last_reload: Option<u64>,
    pub last_reload_error: Option<String>,
    pub decisions: u64,
    pub denials: u64,
    pub audits: u64,
    pub deadline_misses: u64,
    /// Paths kept in the snapshot store by this sensor.
    #[serde(default)]
    pub kept: u64,
    /// Events the kernel dropped before the sensor saw them (macOS; absent in older files).
    #[serde(default)]
    pub dropped_events: u64,
    pub dropped_denials: u64,
    pub dropped_audit_records: u64,
    pub active_grants: usize,
    pub denials_log: PathBuf,
    pub audit_db: PathBuf,
}

/// What `agent-guard status` prints: the policy in force, the running sensors of this state
/// directory with their counters, grants, pending requests, and where the logs are.
#[derive(Clone, Debug, Serialize)]
pub struct StatusReport {
    pub policy_source: String,
    pub policy_version: Option<String>,
    pub policy_error: Option<String>,
    pub policy_warnings: Vec<String>,
    pub mode: Option<String>,
    pub state_dir: String,
    pub denials_log: String,
    pub audit_db: String,
    pub running: Vec<RuntimeStatus>,
    pub active_grants: usize,
    pub pending_requests: usize,
    /// What the snapshot store holds; `None` when it cannot be read (an agent asking).
    pub snapshots: Option<StoreSummary>,
}

/// The snapshot store at a glance: `agent-guard undo list` has the detail.
#[derive(Clone, Debug, Serialize)]
pub struct StoreSummary {
    pub path: String,
    pub sessions: usize,
    pub entries: usize,
    pub bytes: u64,
    /// The oldest session's id (its start time, in UTC).
    pub oldest: Option<String>,
}

impl StoreSummary {
    fn of(root: &Path) -> Option<StoreSummary> {
        let files = crate::snapshots::layout::store_files(root).ok()?;
        let sessions = crate::snapshots::purge::sessions(root).ok()?;
        Some(StoreSummary {
            path: root.display().to_string(),
            sessions: sessions.len(),
            entries: files.len(),
            bytes: sessions.iter().map(|s| s.bytes).sum(),
            oldest: sessions.first().map(|s| s.id.to_string()),
        })
    }
}

impl StatusReport {
    /// Read what the sensors published under `locations`, next to `policy` (or why it did not
    /// load).
    pub fn gather(locations: &Locations, policy: Result<&LoadedPolicy, String>) -> StatusReport {
        let (source, version, error, warnings, mode) = match policy {
            Ok(l) => (
                l.policy.source.clone(),
                Some(l.policy.version.clone()),
                None,
                l.policy.warnings.clone(),
                Some(l.policy.mode.as_str().to_string()),
            ),
            Err(e) => ("?".to_string(), None, Some(e), vec![], None),
        };
        let now = unix_secs(SystemTime::now());
        let grants = crate::overrides::GrantStore::new(locations.clone())
            .active(now)
            .map(|g| g.grants.len())
            .unwrap_or(0);
        let pending = crate::overrides::load_pending(locations)
            .map(|p| p.len())
            .unwrap_or(0);
        StatusReport {
            policy_source: source,
            policy_version: version,
            policy_error: error,
            policy_warnings: warnings,
            mode,
            state_dir: locations.state_dir.display().to_string(),
            denials_log: locations.denials.display().to_string(),
            audit_db: locations.audit_db.display().to_string(),
            running: running(locations),
            active_grants: grants,
            pending_requests: pending,
            snapshots: StoreSummary::of(&locations.store),
        }
    }

    /// The report for a human, a few lines per sensor.
    pub fn write_human(&self, out: &mut dyn Write) -> io::Result<()> {
        let s = self;
        match (&s.policy_version, &s.policy_error) {
            (Some(v), _) => writeln!(
                out,
                "policy:    {} (version {v}, mode {})",
                s.policy_source,
                s.mode.as_deref().unwrap_or("?")
            )?,
            (None, Some(e)) => writeln!(out, "policy:    INVALID: {e}")?,
            _ => {}
        }
        for w in &s.policy_warnings {
            writeln!(out, "           warning: {w}")?;
        }
        writeln!(out, "state:     {}", s.state_dir)?;
        writeln!(out, "denials:   {}", s.denials_log)?;
        writeln!(out, "audit db:  {}", s.audit_db)?;
        writeln!(
            out,
            "overrides: {} active grant(s), {} pending request(s)",
            s.active_grants, s.pending_requests
        )?;
        match &s.snapshots {
            Some(st) => writeln!(
                out,
                "snapshots: {} entries in {} session(s), {}{} in {} (`agent-guard undo list`)",
                st.entries,
                st.sessions,
                crate::vocab::human_bytes(st.bytes),
                st.oldest
                    .as_ref()
                    .map(|o| format!(", oldest {o}"))
                    .unwrap_or_default(),
                st.path
            )?,
            None => writeln!(out, "snapshots: the store is not readable from here")?,
        }
        if s.running.is_empty() {
            writeln!(
                out,
                "running:   no supervisor or daemon is running for this state directory"
            )?;
        }
        for r in &s.running {
            writeln!(
                out,
                "running:   pid {} (mode {}, policy {} version {}, {} reload(s){})",
                r.pid,
                r.mode.as_str(),
                r.policy_source,
                r.policy_version,
                r.reloads,
                r.last_reload_error
                    .as_ref()
                    .map(|e| format!(", last reload FAILED: {e}"))
                    .unwrap_or_default()
            )?;
            writeln!(
                out,
                "           {} decisions, {} denials, {} audits, {} kept, {} deadline misses; dropped: {} kernel events, {} denial records, {} audit records",
                r.decisions, r.denials, r.audits, r.kept, r.deadline_misses, r.dropped_events, r.dropped_denials, r.dropped_audit_records
            )?;
        }
        Ok(())
    }
}

/// Status files of sensors that are still alive; stale ones (a crashed supervisor) are skipped.
pub fn running(locations: &Locations) -> Vec<RuntimeStatus> {
    let Ok(entries) = std::fs::read_dir(status_dir(locations)) else {
        return vec![];
    };
    let mut out: Vec<RuntimeStatus> = entries
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
        .filter_map(|e| std::fs::read(e.path()).ok())
        .filter_map(|bytes| serde_json::from_slice::<RuntimeStatus>(&bytes).ok())
        .filter(|s| {
            Path::new(&format!("/proc/{}", s.pid)).exists() || !Path::new("/proc/self").exists()
        })
        .collect();
    out.sort_by_key(|s| s.started);
    out
}
