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

mod keep;
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
use crate::engine::{decide, decide_without_keeping};
use crate::overrides::{watch_grants, LiveGrants, OverrideError};
use crate::paths::Locations;
use crate::policy::watch::LivePolicy;
use crate::policy::{LoadContext, Policy};
use crate::snapshots::{Session, StoreBudget};
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
    /// Paths kept in the snapshot store.
    pub kept: AtomicU64,
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
    /// The sensor keeps what agents destroy before letting it happen (answers
    /// [`Verdict::Keep`]). A sensor that cannot yet gets the answer of zones that deny instead.
    pub keeps: bool,
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
    /// The snapshot store's size against its limit, shared by this sensor's sessions.
    budget: Arc<StoreBudget>,
    /// The agent sessions running in this sensor (never purged while they run).
    sessions: std::sync::Mutex<Vec<Arc<Session>>>,
    /// Hashes kept files off the decision path (`keep`).
    hasher: OnceLock<std::sync::Mutex<std::sync::mpsc::Sender<keep::HashJob>>>,
}

type ReloadHook = Box<dyn Fn() + Send + Sync>;

impl Runtime {
    /// Fails only when approved overrides exist but cannot be read: a guard must not start with
    /// grants silently missing.
    pub fn new(policy: Policy, config: RuntimeConfig) -> Result<Runtime, OverrideError> {
        let grants = LiveGrants::load(config.locations.clone())?;
        Ok(Runtime {
            budget: Arc::new(StoreBudget::new(policy.snapshots.max_bytes)),
            sessions: Default::default(),
            hasher: OnceLock::new(),
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
        if self.config.keeps {
            self.start_hasher();
        }
        let me = Arc::downgrade(self);
        std::thread::Builder::new()
            .name("agent-guard-status".into())
            .spawn(move || {
                let mut next_purge = std::time::Instant::now();
                loop {
                    let Some(runtime) = me.upgrade() else { return };
                    if runtime.config.keeps && std::time::Instant::now() >= next_purge {
                        // The first round also counts what the store holds.
                        runtime.purge_store();
                        next_purge = std::time::Instant::now() + keep::PURGE_INTERVAL;
                    }
                    runtime.write_summaries(false);
                    runtime.write_status();
                    runtime.record_expiries();
                    drop(runtime);
                    std::thread::sleep(status::STATUS_INTERVAL);
                }
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

    /// Decide one event by an agent-attributed (or not) process, count and record it. For a
    /// sensor that does not keep ([`RuntimeConfig::keeps`] false): no [`Verdict::Keep`] comes
    /// back, zones that keep answer as zones that deny.
    #[cfg(any(target_os = "macos", test))]
    pub fn decide(&self, event: &Event, attribution: &Attribution, start_key: u64) -> Verdict {
        let policy = self.policy.load();
        let now = SystemTime::now();
        let verdict = self.engine(event, attribution, &policy, now);
        self.account(event, attribution, start_key, verdict, &policy, now)
    }

    /// [`Runtime::decide`] for a sensor that keeps, in one agent session: a
    /// [`Verdict::Keep`] (unless the session's brake is on) comes back *unrecorded*; the sensor
    /// keeps, then reports to [`Runtime::settle`], which records and gives the final answer.
    #[cfg(any(target_os = "macos", test))]
    pub fn decide_in(
        &self,
        session: &Session,
        event: &Event,
        attribution: &Attribution,
        start_key: u64,
    ) -> Verdict {
        let policy = self.policy.load();
        let now = SystemTime::now();
        let verdict = self.engine(event, attribution, &policy, now);
        let verdict = self.apply_brake(session, event, verdict, now);
        if matches!(verdict, Verdict::Keep(_)) {
            return verdict;
        }
        self.account(event, attribution, start_key, verdict, &policy, now)
    }

    /// The engine's answer as this runtime applies it: with or without keeping (the sensor's
    /// ability), `run --audit` turning refusals into audits and keeps into would-keeps.
    fn engine(
        &self,
        event: &Event,
        attribution: &Attribution,
        policy: &Policy,
        now: SystemTime,
    ) -> Verdict {
        let grants = self.grants.current();
        let decide_with = if self.config.keeps {
            decide
        } else {
            decide_without_keeping
        };
        let verdict = decide_with(event, attribution, policy, &grants, unix_secs(now));
        match verdict {
            Verdict::Deny(d) if self.config.force_audit => Verdict::Audit(d),
            Verdict::Keep(k) if self.config.force_audit => Verdict::WouldKeep(k),
            v => v,
        }
    }

    /// [`Runtime::decide`] for a sensor whose facts about the actor cost reads (`/proc`): decide
    /// first without them, and read them (`facts` fills the event's actor and returns its start
    /// key) only when they can matter. The actor's executable only ever *allows* more (trusted
    /// tools), so an allow without it is an allow with it and is not decided again; the facts
    /// are then read only if the decision is stored, for its record. The commonest supervised
    /// call, a read-only open, costs no read. `facts` is told which of the two it serves: a sensor
    /// may answer [`FactsUse::Record`] from memory, never [`FactsUse::Decision`].
    ///
    /// In `session`, a [`Verdict::Keep`] comes back unrecorded, as from [`Runtime::decide_in`]
    /// (a keep does not depend on the actor either: trusted tools are exempt only where zones
    /// deny).
    #[cfg(any(target_os = "linux", test))]
    pub fn decide_lazily(
        &self,
        session: Option<&Session>,
        mut event: Event,
        attribution: &Attribution,
        facts: impl FnOnce(&mut Event, FactsUse) -> u64,
    ) -> Verdict {
        let policy = self.policy.load();
        let now = SystemTime::now();
        // Read at most once, whatever needs them first.
        let mut facts = Some(facts);
        let mut read = |event: &mut Event, used| facts.take().map_or(0, |f| f(event, used));
        let bare = self.engine(&event, attribution, &policy, now);
        let (verdict, mut start_key) = match bare {
            Verdict::Keep(_) => (bare, 0),
            Verdict::Allow | Verdict::WouldKeep(_) => {
                let start_key = if worth_storing(&event, &bare) {
                    read(&mut event, FactsUse::Record)
                } else {
                    0
                };
                (bare, start_key)
            }
            _ => {
                let start_key = read(&mut event, FactsUse::Decision);
                (self.engine(&event, attribution, &policy, now), start_key)
            }
        };
        let verdict = match session {
            Some(session) => self.apply_brake(session, &event, verdict, now),
            None => verdict,
        };
        match verdict {
            Verdict::Keep(_) => return verdict,
            // The brake's refusal of a keep: its record names the process.
            Verdict::Deny(_) if start_key == 0 => start_key = read(&mut event, FactsUse::Record),
            _ => {}
        }
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
            Verdict::Allow | Verdict::Keep(_) => {}
            Verdict::Deny(_) => {
                self.counters.denials.fetch_add(1, Ordering::Relaxed);
            }
            Verdict::Audit(_) | Verdict::WouldKeep(_) => {
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
mod tests;
