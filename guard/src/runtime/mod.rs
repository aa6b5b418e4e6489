//! The guard at run time: what a sensor holds to turn an event into a verdict and a record, and
//! the two sensors' glue side by side.
//!
//! [`Runtime`] ties the pieces together: the live policy (hot reload), the live grants (approved
//! overrides), the engine, the denial log and the audit store, and the counters `status` shows
//! ([`status`]). It is shared by the Linux supervisor ([`linux`]: `run`, every process of the
//! tree is the agent) and the macOS daemon ([`macos`]: lineage from Endpoint Security's fork,
//! exec and exit messages). It does no kernel work itself (that is `platform`): sensors fill the
//! event and give it the attribution; it never blocks on I/O on the decision path (records go
//! to bounded queues; a full queue is counted, not waited on).

#[cfg(target_os = "linux")]
pub mod linux;
// The macOS core is pure and tested on every OS; outside tests only the macOS binary uses it.
#[cfg(any(target_os = "macos", test))]
pub mod macos;
pub mod status;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use crate::audit::{
    AuditStore, AuditStoreConfig, DecisionRecord, DenialAggregator, DenialLog, DenialLogConfig,
    DenialRecord, Retention,
};
use crate::engine::decide;
use crate::overrides::{watch_grants, LiveGrants, OverrideError};
use crate::paths::Locations;
use crate::policy::watch::LivePolicy;
use crate::policy::{LoadContext, Policy};
use crate::vocab::time::unix_millis;
pub use crate::vocab::time::unix_secs;
use crate::vocab::{Action, AgentInfo, Attribution, Event, Mode, Verdict};

/// Decision counters, for `status`.
#[derive(Debug, Default)]
pub struct Counters {
    pub decisions: AtomicU64,
    pub denials: AtomicU64,
    pub audits: AtomicU64,
    /// Decisions answered by the fail mode because the deadline was near (macOS).
    pub deadline_misses: AtomicU64,
    /// Events the kernel dropped before the sensor saw them: gaps in Endpoint Security's
    /// sequence numbers (macOS).
    pub dropped_events: AtomicU64,
}

/// How the runtime was started.
#[derive(Clone, Debug)]
pub struct RuntimeConfig {
    /// The policy file to watch; `None` for the embedded default.
    pub policy_file: Option<PathBuf>,
    pub ctx: LoadContext,
    pub locations: Locations,
    /// `run --audit`: every deny becomes an audit verdict, whatever the policy's mode.
    pub force_audit: bool,
}

/// The shared decision and recording side of a sensor.
pub struct Runtime {
    pub config: RuntimeConfig,
    pub policy: Arc<LivePolicy>,
    pub grants: Arc<LiveGrants>,
    pub counters: Counters,
    started: SystemTime,
    /// Opened by [`Runtime::start_background`]: writer threads must be started in the process
    /// that serves (the Linux supervisor is forked, and fork keeps only the calling thread).
    denials: OnceLock<DenialLog>,
    store: OnceLock<AuditStore>,
    /// Repeated denials of a session folded into one record with a count (`audit::aggregate`):
    /// a flood of denials cannot push the records that matter out of the logs.
    aggregator: std::sync::Mutex<DenialAggregator>,
    watchers: std::sync::Mutex<Vec<Box<dyn std::any::Any + Send>>>,
    /// Called after each successful policy reload (the macOS daemon re-selects what the kernel
    /// delivers).
    reload_hooks: Arc<std::sync::Mutex<Vec<ReloadHook>>>,
}

type ReloadHook = Box<dyn Fn() + Send + Sync>;

impl Runtime {
    /// Fails only when approved overrides exist but cannot be read: a guard must not start with
    /// grants silently missing.
    pub fn new(policy: Policy, config: RuntimeConfig) -> Result<Runtime, OverrideError> {
        let grants = LiveGrants::load(config.locations.clone())?;
        Ok(Runtime {
            policy: LivePolicy::new(policy),
            grants,
            counters: Counters::default(),
            started: SystemTime::now(),
            denials: OnceLock::new(),
            store: OnceLock::new(),
            aggregator: Default::default(),
            watchers: Default::default(),
            reload_hooks: Default::default(),
            config,
        })
    }

    /// Start the background work: the denial log and audit store writers, the policy and grant
    /// watchers, and the status file. Call once, in the serving process. Failures are reported
    /// and the guard keeps deciding: a guard that cannot log must still protect.
    pub fn start_background(self: &Arc<Self>) {
        let loc = &self.config.locations;
        if let Err(e) = std::fs::create_dir_all(&loc.requests_dir) {
            tracing::warn!("cannot create {}: {e}", loc.requests_dir.display());
        }
        match DenialLog::open(&loc.denials, DenialLogConfig::default()) {
            Ok(log) => {
                let _ = self.denials.set(log);
            }
            Err(e) => tracing::error!("denials are not logged: {e}"),
        }
        let store_config = AuditStoreConfig {
            retention: retention_of(&self.policy.load()),
            ..AuditStoreConfig::default()
        };
        match AuditStore::open(&loc.audit_db, store_config) {
            Ok(store) => {
                let _ = self.store.set(store);
            }
            Err(e) => tracing::error!("decisions are not recorded in the audit store: {e}"),
        }
        // A reloaded policy may change the audit trail's retention.
        let me = Arc::downgrade(self);
        self.on_policy_reload(move || {
            let Some(runtime) = me.upgrade() else { return };
            if let Some(store) = runtime.store.get() {
                if let Err(e) = store.set_retention(retention_of(&runtime.policy.load())) {
                    tracing::warn!("audit retention not updated: {e}");
                }
            }
        });
        let mut watchers = self.watchers.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(file) = &self.config.policy_file {
            let hooks = self.reload_hooks.clone();
            let watched = crate::policy::watch::watch(
                self.policy.clone(),
                file.clone(),
                self.config.ctx.clone(),
                move |result| match result {
                    Ok(_) => {
                        tracing::info!("policy reloaded");
                        for hook in hooks.lock().unwrap_or_else(|e| e.into_inner()).iter() {
                            hook();
                        }
                    }
                    Err(e) => tracing::error!("policy not reloaded, the last good one stays: {e}"),
                },
            );
            match watched {
                Ok(w) => watchers.push(Box::new(w) as Box<dyn std::any::Any + Send>),
                Err(e) => tracing::error!("the policy file is not watched: {e}"),
            }
        }
        let grants_watch = watch_grants(self.grants.clone(), |result| match result {
            Ok(_) => tracing::info!("approved overrides reloaded"),
            Err(e) => {
                tracing::error!("approved overrides not reloaded, the last good ones stay: {e}")
            }
        });
        match grants_watch {
            Ok(w) => watchers.push(Box::new(w)),
            Err(e) => tracing::error!("approved overrides are not watched: {e}"),
        }
        drop(watchers);
        let me = Arc::downgrade(self);
        std::thread::Builder::new()
            .name("agent-guard-status".into())
            .spawn(move || loop {
                let Some(runtime) = me.upgrade() else { return };
                runtime.write_summaries(false);
                runtime.write_status();
                runtime.record_expiries();
                drop(runtime);
                std::thread::sleep(status::STATUS_INTERVAL);
            })
            .ok();
    }

    /// Run `hook` after every successful reload of the policy file by the watcher that
    /// [`Runtime::start_background`] starts. It runs on the watcher's thread: keep it short.
    pub fn on_policy_reload(&self, hook: impl Fn() + Send + Sync + 'static) {
        self.reload_hooks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Box::new(hook));
    }

    /// Decide one event by an agent-attributed (or not) process, count and record it.
    #[cfg(any(target_os = "macos", test))]
    pub fn decide(&self, event: &Event, attribution: &Attribution, start_key: u64) -> Verdict {
        let policy = self.policy.load();
        let now = SystemTime::now();
        let verdict = decide(
            event,
            attribution,
            &policy,
            &self.grants.current(),
            unix_secs(now),
        );
        self.account(event, attribution, start_key, verdict, &policy, now)
    }

    /// [`Runtime::decide`] for a sensor whose facts about the actor cost reads (`/proc`): decide
    /// first without them, and read them (`facts` fills the event's actor and returns its start
    /// key) only when they can matter. The actor's executable only ever *allows* more (trusted
    /// tools), so an allow without it is an allow with it and is not decided again; the facts
    /// are then read only if the decision is stored, for its record. The commonest supervised
    /// call, a read-only open, costs no read. `facts` is told which of the two it serves: a sensor
    /// may answer [`FactsUse::Record`] from memory, never [`FactsUse::Decision`].
    #[cfg(any(target_os = "linux", test))]
    pub fn decide_lazily(
        &self,
        mut event: Event,
        attribution: &Attribution,
        facts: impl FnOnce(&mut Event, FactsUse) -> u64,
    ) -> Verdict {
        let policy = self.policy.load();
        let grants = self.grants.current();
        let now = SystemTime::now();
        let bare = decide(&event, attribution, &policy, &grants, unix_secs(now));
        if matches!(bare, Verdict::Allow) {
            let start_key = if worth_storing(&event, &bare) {
                facts(&mut event, FactsUse::Record)
            } else {
                0
            };
            return self.account(&event, attribution, start_key, bare, &policy, now);
        }
        let start_key = facts(&mut event, FactsUse::Decision);
        let verdict = decide(&event, attribution, &policy, &grants, unix_secs(now));
        self.account(&event, attribution, start_key, verdict, &policy, now)
    }

    /// Apply `run --audit`, count, and record a verdict.
    fn account(
        &self,
        event: &Event,
        attribution: &Attribution,
        start_key: u64,
        mut verdict: Verdict,
        policy: &Policy,
        now: SystemTime,
    ) -> Verdict {
        if self.config.force_audit {
            if let Verdict::Deny(d) = verdict {
                verdict = Verdict::Audit(d);
            }
        }
        let Attribution::Agent(agent) = attribution else {
            return verdict;
        };
        self.counters.decisions.fetch_add(1, Ordering::Relaxed);
        match &verdict {
            Verdict::Allow => {}
            Verdict::Deny(_) => {
                self.counters.denials.fetch_add(1, Ordering::Relaxed);
            }
            Verdict::Audit(_) => {
                self.counters.audits.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.record(event, agent, start_key, &verdict, policy, now);
        verdict
    }

    fn record(
        &self,
        event: &Event,
        agent: &AgentInfo,
        start_key: u64,
        verdict: &Verdict,
        policy: &Policy,
        now: SystemTime,
    ) {
        let denial = DenialRecord::new(event, agent, verdict, now);
        let decision = worth_storing(event, verdict).then(|| {
            let mode = if self.config.force_audit {
                Mode::Audit
            } else {
                policy.mode
            };
            DecisionRecord::new(event, agent, start_key, verdict, mode, &policy.version, now)
        });
        let (denial, decision) = match denial {
            Some(denial) => {
                let offered = self
                    .aggregator
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .offer(denial, decision, unix_millis(now));
                match offered {
                    Some((denial, decision)) => (Some(denial), decision),
                    // Counted into its key's window; the summary is written when it ends.
                    None => return,
                }
            }
            None => (None, decision),
        };
        if let (Some(log), Some(record)) = (self.denials.get(), denial) {
            log.log(record);
        }
        if let (Some(store), Some(decision)) = (self.store.get(), decision) {
            store.record_decision(decision);
        }
    }

    /// Write the summaries of repeated denials whose window ended (all of them when `all`).
    fn write_summaries(&self, all: bool) {
        let summaries = {
            let mut aggregator = self.aggregator.lock().unwrap_or_else(|e| e.into_inner());
            if all {
                aggregator.drain()
            } else {
                aggregator.due(unix_millis(SystemTime::now()))
            }
        };
        for summary in summaries {
            if let Some(log) = self.denials.get() {
                log.log(summary.denial);
            }
            if let (Some(store), Some(decision)) = (self.store.get(), summary.decision) {
                store.record_decision(decision);
            }
        }
    }

    /// Record grants that have expired in the audit trail and drop them from `grants.json`.
    /// (The engine stops honouring a grant at its expiry second regardless.)
    fn record_expiries(&self) {
        let now = unix_secs(SystemTime::now());
        if self.grants.next_expiry().is_some_and(|t| t <= now) {
            if let Err(e) = self.grants.store().prune_expired(now) {
                tracing::warn!("expired overrides not pruned: {e}");
            }
        }
    }

    /// Wait until everything queued so far is written (shutdown, tests).
    pub fn flush(&self) {
        self.write_summaries(true);
        if let Some(log) = self.denials.get() {
            log.flush();
        }
        if let Some(store) = self.store.get() {
            let _ = store.flush();
        }
    }
}

/// The audit trail's retention as the policy sets it.
fn retention_of(policy: &Policy) -> Retention {
    Retention {
        max_age: policy.retention_max_age.map(Duration::from_secs),
        max_bytes: policy.retention_max_bytes,
    }
}

/// Whether a decision goes to the audit store. Every decision does, except allowed read-only
/// opens: with secret zones the Linux supervisor sees every file an agent reads (a build reads
/// tens of thousands), and a row for each would bury the decisions that matter and cost more
/// than the decision itself. Denied or audited reads are stored.
fn worth_storing(event: &Event, verdict: &Verdict) -> bool {
    let read_only_open = matches!(event.action, Action::Open { flags, .. } if !flags.modifies());
    !(read_only_open && matches!(verdict, Verdict::Allow))
}

/// Why [`Runtime::decide_lazily`] asks for the actor's facts.
#[cfg(any(target_os = "linux", test))]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FactsUse {
    /// Only for the record of a decision already made: facts remembered from an earlier call of
    /// the same process will do.
    Record,
    /// The decision depends on them (a trusted tool is identified by its executable): they
    /// must be read now.
    Decision,
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;
    use std::path::{Path, PathBuf};

    use super::*;
    use crate::policy::{LoadContext, Platform};
    use crate::vocab::{Actor, OpenFlags};

    fn runtime(dir: &Path) -> Runtime {
        let ctx = LoadContext {
            platform: Platform::Linux,
            homes: vec![PathBuf::from("/h")],
            guard_paths: vec![],
            agent_writable: vec![],
            resolve_symlinks: false,
        };
        let json = r#"{"protected_zones": ["/h/p"], "secret_zones": ["/h/s"],
            "trusted_tools": [{"name": "tool", "exe": ["/opt/tool"]}]}"#;
        let policy = crate::policy::from_json(json, Path::new("p.json"), &ctx).unwrap();
        let config = RuntimeConfig {
            policy_file: None,
            ctx,
            locations: Locations::in_state_dir(dir),
            force_audit: false,
        };
        Runtime::new(policy, config).unwrap()
    }

    #[test]
    fn facts_are_read_only_when_they_can_matter() {
        let dir = tempfile::tempdir().unwrap();
        let rt = runtime(dir.path());
        let agent = Attribution::agent("claude", 1);
        let reads = Cell::new(0);
        let facts = |exe: &'static str| {
            let reads = &reads;
            move |e: &mut Event, _: FactsUse| {
                reads.set(reads.get() + 1);
                e.actor.exe = PathBuf::from(exe);
                7
            }
        };
        let event = |action| Event {
            actor: Actor::default(),
            action,
        };
        let read = Action::Open {
            path: "/h/p/f".into(),
            flags: OpenFlags::READ,
        };
        let unlink = Action::Unlink {
            path: "/h/p/f".into(),
        };

        // An allowed read-only open: decided without facts.
        assert!(rt
            .decide_lazily(event(read), &agent, facts("/usr/bin/cat"))
            .allows());
        assert_eq!(reads.get(), 0);
        // A delete by a trusted tool: denied without facts, allowed once they are read.
        assert!(rt
            .decide_lazily(event(unlink.clone()), &agent, facts("/opt/tool"))
            .allows());
        assert_eq!(reads.get(), 1);
        // The same delete by rm: facts read, still denied.
        assert!(!rt
            .decide_lazily(event(unlink), &agent, facts("/usr/bin/rm"))
            .allows());
        assert_eq!(reads.get(), 2);
        // An allowed write is stored, so its record gets the facts.
        let write = Action::Open {
            path: "/h/p/f".into(),
            flags: OpenFlags {
                write: true,
                ..OpenFlags::READ
            },
        };
        assert!(rt
            .decide_lazily(event(write), &agent, facts("/usr/bin/tee"))
            .allows());
        assert_eq!(reads.get(), 3);
        assert_eq!(rt.counters.decisions.load(Ordering::Relaxed), 4);
        assert_eq!(rt.counters.denials.load(Ordering::Relaxed), 1);
    }
}
