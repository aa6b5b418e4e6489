//! The macOS daemon's glue: [`DaemonCore`] answers the Endpoint Security sensor's questions
//! ([`EsHandler`]) from the lineage table, the policy and the engine, through a [`Runtime`].
//!
//! What it does, per message the sensor delivers:
//! - fork: the child inherits the parent's attribution in a [`LineageTable`] keyed by
//!   [`ProcessKey`] `{pid, start: pidversion}`. A parent the table does not know (it predates the
//!   daemon) is first attributed by a live walk through the [`ProcessInspector`], so the child's
//!   taint no longer depends on a walk that reparenting would break.
//! - exec: the entry moves from the old identity to the new one (the pidversion changes at exec),
//!   keeping its taint, and the new image is matched against the agent patterns.
//! - exit: the entry is forgotten.
//! - decide: the actor's attribution from the table; for an actor the table has not seen (a race
//!   between the file and process clients, or a process older than the daemon), its parent's and
//!   original parent's entries, its own names (argv\[0\] read now: Node's `process.title`) and a
//!   live parent walk. Then the [`Runtime`] decides, counts and records.
//!
//! [`setup`] builds what the daemon loads the policy with ([`setup::daemon_context`]: `~` is
//! every user's home, [`setup::user_homes`]), prepares its state directory
//! ([`setup::prepare_state_dirs`]) and, on macOS, starts it all (`setup::serve`).
//!
//! This module compiles and is tested on every OS: it never calls Apple's libraries itself (the
//! inspector and the ES clients live in `platform::macos`). It must never do blocking I/O on the
//! decision path beyond the inspector's reads for an actor the table does not know; records go
//! to the runtime's queues.

pub mod setup;

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::lineage::{
    attribute, remember, AgentMatcher, LineageError, LineageTable, PatternError, ProcessInfo,
    ProcessKey, ProcessRecord, ProcessSource,
};
use crate::platform::macos::{
    comm_of, ActorFacts, EsHandler, MutingRoots, ProcessIdentity, ProcessInspector,
};
use crate::policy::{FailMode, ZoneKind};
use crate::runtime::Runtime;
use crate::vocab::{AgentInfo, Attribution, Event, Verdict};

/// The lineage table key of a process as Endpoint Security names it. The pidversion is taken as
/// its 32 bits, so a key of the table never has bit 63 set (see [`UNSEEN_START`]).
pub fn key_of(process: ProcessIdentity) -> ProcessKey {
    ProcessKey {
        pid: process.pid,
        start: u64::from(process.pidversion as u32),
    }
}

/// Marks the key of a process the daemon has never seen named by ES: its start time in
/// microseconds with bit 63 set, which no [`key_of`] key has, so it never finds an entry of the
/// table (and a recycled pid never inherits one).
const UNSEEN_START: u64 = 1 << 63;

/// The Endpoint Security handler over a [`Runtime`]: lineage, agent patterns, decisions.
pub struct DaemonCore {
    runtime: Arc<Runtime>,
    /// Live process facts for forks from parents the table does not know (`on_fork` is given no
    /// inspector by the sensor).
    inspector: Arc<dyn ProcessInspector>,
    state: Mutex<LineageState>,
}

struct LineageState {
    table: LineageTable,
    /// pid → pidversion of the live process with that pid, as ES last named it. A live walk
    /// reads parents by pid; this is how it finds their table entries.
    pidversions: HashMap<i32, i32>,
    matcher: AgentMatcher,
    /// The policy version `matcher` was built from.
    matcher_version: String,
}

impl LineageState {
    fn note(&mut self, process: ProcessIdentity) {
        self.pidversions.insert(process.pid, process.pidversion);
    }
}

impl DaemonCore {
    /// Fails when the policy's `ai_agent_patterns` cannot be compiled (a bad glob).
    pub fn new(
        runtime: Arc<Runtime>,
        inspector: Arc<dyn ProcessInspector>,
    ) -> Result<DaemonCore, PatternError> {
        let policy = runtime.policy.load();
        let matcher = AgentMatcher::new(&policy.agent_patterns)?;
        Ok(DaemonCore {
            state: Mutex::new(LineageState {
                table: LineageTable::new(),
                pidversions: HashMap::new(),
                matcher,
                matcher_version: policy.version.clone(),
            }),
            runtime,
            inspector,
        })
    }

    #[cfg(test)]
    pub fn runtime(&self) -> &Arc<Runtime> {
        &self.runtime
    }

    /// What the table holds for `process` (`None`: never seen, or exited).
    #[cfg(test)]
    pub fn known_attribution(&self, process: ProcessIdentity) -> Option<Attribution> {
        self.lock().table.attribution(key_of(process))
    }

    /// The state, with the matcher rebuilt if the policy changed since it was built. A poisoned
    /// lock is taken over: the table is plain data, and a guard that stops deciding after one
    /// panic would be worse than one that goes on with what it knows.
    fn lock(&self) -> MutexGuard<'_, LineageState> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let policy = self.runtime.policy.load();
        if state.matcher_version != policy.version {
            match AgentMatcher::new(&policy.agent_patterns) {
                Ok(matcher) => state.matcher = matcher,
                // Keep recognizing agents by the old patterns rather than by none.
                Err(e) => tracing::error!("agent patterns not updated, the old ones stay: {e}"),
            }
            state.matcher_version = policy.version.clone();
        }
        state
    }

    /// Whether the engine would stop `event` if its actor were an agent: only then is it worth
    /// reading a known-human actor's argv again (one `sysctl`), not on every open in a zone.
    fn agent_would_be_stopped(&self, event: &Event) -> bool {
        let probe = Attribution::Agent(AgentInfo {
            name: String::new(),
            pid: event.actor.pid,
        });
        let policy = self.runtime.policy.load();
        let grants = self.runtime.grants.current();
        let now = crate::vocab::time::unix_secs(std::time::SystemTime::now());
        crate::engine::decide(event, &probe, &policy, &grants, now) != Verdict::Allow
    }

    /// A process the table knows as human whose argv\[0\] now names an agent (Node's
    /// `process.title`, set after the exec the table judged it by): it becomes one, for good.
    /// Returns the attribution and argv\[0\] as read.
    fn retitled_agent(
        &self,
        actor: &ActorFacts,
        event: &Event,
        inspect: &dyn ProcessInspector,
    ) -> Option<(Attribution, String)> {
        let args = inspect.process_args(actor.process.pid)?;
        let argv0 = args.argv0().to_string();
        let key = key_of(actor.process);
        let info = ProcessInfo {
            key,
            ppid: actor.ppid,
            exe: (!event.actor.exe.as_os_str().is_empty()).then(|| event.actor.exe.clone()),
            exe_deleted: false,
            argv: args.argv,
            comm: event.actor.comm.clone(),
        };
        let mut state = self.lock();
        let name = state.matcher.matches(&info)?;
        let agent = AgentInfo {
            name,
            pid: actor.process.pid,
        };
        state.table.mark_agent(key, agent.clone());
        Some((Attribution::Agent(agent), argv0))
    }

    /// Who `actor` acts for, and argv\[0\] when it had to be read.
    fn attribute_actor(
        &self,
        actor: &ActorFacts,
        event: &Event,
        inspect: &dyn ProcessInspector,
    ) -> (Attribution, Option<String>) {
        let mut guard = self.lock();
        let state = &mut *guard;
        let key = key_of(actor.process);
        state.note(actor.process);
        if let Some(known) = state.table.attribution(key) {
            return (known, None);
        }
        // Not seen yet. Cheapest evidence first: the table's entries for the processes the
        // message names (the fork of this process may still be queued on the process client).
        let mut related = vec![actor.parent, actor.responsible];
        if actor.original_ppid > 1 && actor.original_ppid != actor.ppid {
            // Reparented before we saw it: its original parent, if that one still lives.
            related.push(
                state
                    .pidversions
                    .get(&actor.original_ppid)
                    .map(|&pidversion| ProcessIdentity {
                        pid: actor.original_ppid,
                        pidversion,
                    }),
            );
        }
        for process in related.into_iter().flatten() {
            if let Some(Attribution::Agent(agent)) = state.table.attribution(key_of(process)) {
                let attribution = Attribution::Agent(agent);
                state
                    .table
                    .insert(key, record_of(actor, event), attribution.clone());
                return (attribution, None);
            }
        }
        // Its own names, argv[0] as it is now.
        let args = inspect.process_args(actor.process.pid);
        let argv0 = args.as_ref().map(|a| a.argv0().to_string());
        let own = ProcessInfo {
            key,
            ppid: actor.ppid,
            exe: (!event.actor.exe.as_os_str().is_empty()).then(|| event.actor.exe.clone()),
            exe_deleted: false,
            argv: args.map(|a| a.argv).unwrap_or_default(),
            comm: event.actor.comm.clone(),
        };
        let attribution = if let Some(name) = state.matcher.matches(&own) {
            Attribution::Agent(AgentInfo {
                name,
                pid: actor.process.pid,
            })
        } else if let Some(parent) = actor.parent.filter(|p| p.pid > 1) {
            // The parent as ES named it: trust its pidversion for the first step of the walk.
            state.note(parent);
            let source = InspectorSource {
                inspector: inspect,
                pidversions: &state.pidversions,
            };
            attribute(parent.pid, &state.table, &source, &state.matcher)
        } else if actor.ppid > 1 {
            let source = InspectorSource {
                inspector: inspect,
                pidversions: &state.pidversions,
            };
            attribute(actor.ppid, &state.table, &source, &state.matcher)
        } else {
            Attribution::Human
        };
        // Remembered, so what it forks inherits this even once it is reparented.
        state
            .table
            .insert(key, record_of(actor, event), attribution.clone());
        (attribution, argv0)
    }
}

fn record_of(actor: &ActorFacts, event: &Event) -> ProcessRecord {
    ProcessRecord {
        pid: actor.process.pid,
        ppid: actor.ppid,
        exe: (!event.actor.exe.as_os_str().is_empty()).then(|| event.actor.exe.clone()),
        comm: event.actor.comm.clone(),
    }
}

impl EsHandler for DaemonCore {
    fn on_fork(&self, parent: &ActorFacts, child: &ActorFacts) {
        let mut guard = self.lock();
        let state = &mut *guard;
        state.note(parent.process);
        state.note(child.process);
        let (parent_key, child_key) = (key_of(parent.process), key_of(child.process));
        if state.table.attribution(parent_key) == Some(Attribution::Human) {
            // A human's process may have retitled itself an agent since its exec (Node's
            // `process.title`): what it forks now must inherit that. One `sysctl` per fork of
            // a human process; fork notifications do not hold the kernel.
            if let Some(args) = self.inspector.process_args(parent.process.pid) {
                let record = state.table.record(parent_key).cloned().unwrap_or_default();
                let info = ProcessInfo {
                    key: parent_key,
                    ppid: parent.ppid,
                    exe: record.exe,
                    exe_deleted: false,
                    argv: args.argv,
                    comm: record.comm,
                };
                if let Some(name) = state.matcher.matches(&info) {
                    let agent = AgentInfo {
                        name,
                        pid: parent.process.pid,
                    };
                    state.table.mark_agent(parent_key, agent);
                }
            }
        }
        if state.table.on_fork(parent_key, child_key) {
            return;
        }
        let source = InspectorSource {
            inspector: &*self.inspector,
            pidversions: &state.pidversions,
        };
        match remember(
            parent.process.pid,
            &mut state.table,
            &source,
            &state.matcher,
        ) {
            Ok(_) => {
                state.table.on_fork(parent_key, child_key);
            }
            // The parent is already gone (fork notifications are asynchronous): the child stays
            // unknown, and its first decision walks from it.
            Err(e) => tracing::debug!("fork from an unreadable parent: {e}"),
        }
    }

    fn on_exit(&self, process: ProcessIdentity) {
        let mut state = self.lock();
        state.table.on_exit(key_of(process));
        if state.pidversions.get(&process.pid) == Some(&process.pidversion) {
            state.pidversions.remove(&process.pid);
        }
    }

    fn on_exec(&self, before: ProcessIdentity, after: &ActorFacts, exe: &Path, argv: &[String]) {
        let mut guard = self.lock();
        let state = &mut *guard;
        let (old, new) = (key_of(before), key_of(after.process));
        state.note(after.process);
        if old != new {
            if let Some(attribution) = state.table.attribution(old) {
                let record = state.table.record(old).cloned().unwrap_or_default();
                state.table.on_exit(old);
                state.table.insert(new, record, attribution);
            }
        }
        let info = ProcessInfo {
            key: new,
            ppid: after.ppid,
            exe: Some(exe.to_path_buf()),
            exe_deleted: false,
            argv: argv.to_vec(),
            comm: comm_of(exe),
        };
        state.table.on_exec(new, &info, &state.matcher);
    }

    fn decide(&self, actor: &ActorFacts, event: &Event, inspect: &dyn ProcessInspector) -> Verdict {
        let (mut attribution, mut argv0) = self.attribute_actor(actor, event, inspect);
        if attribution == Attribution::Human
            && argv0.is_none()
            && self.agent_would_be_stopped(event)
        {
            if let Some((agent, now)) = self.retitled_agent(actor, event, inspect) {
                attribution = agent;
                argv0 = Some(now);
            }
        }
        let mut event = event.clone();
        if let Some(argv0) = argv0 {
            if event.actor.argv0.is_empty() {
                event.actor.argv0 = argv0;
            }
        }
        if event.actor.signing_id.is_none() {
            event.actor.signing_id = actor.signing.signing_id.clone();
        }
        if event.actor.team_id.is_none() {
            event.actor.team_id = actor.signing.team_id.clone();
        }
        // An exec rule may spare a trusted tool's own subcommand (`git stash` resetting the tree
        // it has just saved): only then are the arguments of the process that execs read. In an
        // AUTH_EXEC it has not exec'd yet, so they are still the tool's.
        if event.actor.args.is_empty()
            && crate::engine::needs_actor_args(&event, &self.runtime.policy.load())
        {
            if let Some(args) = inspect.process_args(actor.process.pid) {
                event.actor.args = args.argv.into_iter().skip(1).collect();
            }
        }
        self.runtime
            .decide(&event, &attribution, key_of(actor.process).start)
    }

    fn watched_roots(&self) -> MutingRoots {
        let policy = self.runtime.policy.load();
        let mut roots = MutingRoots::default();
        for zone in policy.zones.all() {
            let list = if zone.kind == ZoneKind::Guard {
                &mut roots.guard_files
            } else {
                &mut roots.zone_roots
            };
            if !list.contains(&zone.root) {
                list.push(zone.root.clone());
            }
        }
        let config = &self.runtime.config;
        roots.guard_files.extend(config.policy_file.iter().cloned());
        roots.guard_files.extend(config.locations.guarded_files());
        roots.guard_files.sort();
        roots.guard_files.dedup();
        roots
    }

    fn fail_closed(&self) -> bool {
        self.runtime.policy.load().fail_mode == FailMode::Closed
    }
}

/// Lineage's view of live processes through the macOS inspector. A process is keyed by the
/// pidversion ES last gave for its pid, so the walk meets the table's entries; a pid ES never
/// named gets a key no entry has ([`UNSEEN_START`]).
struct InspectorSource<'a> {
    inspector: &'a dyn ProcessInspector,
    pidversions: &'a HashMap<i32, i32>,
}

impl InspectorSource<'_> {
    fn key_for(&self, pid: i32, start_micros: u64) -> ProcessKey {
        match self.pidversions.get(&pid) {
            Some(&pidversion) => key_of(ProcessIdentity { pid, pidversion }),
            None => ProcessKey {
                pid,
                start: UNSEEN_START | start_micros,
            },
        }
    }
}

impl ProcessSource for InspectorSource<'_> {
    fn info(&self, pid: i32) -> Result<ProcessInfo, LineageError> {
        if pid <= 0 {
            return Err(LineageError::InvalidPid { pid });
        }
        let bsd = self
            .inspector
            .bsd_info(pid)
            .ok_or(LineageError::Vanished { pid })?;
        let args = self.inspector.process_args(pid);
        Ok(ProcessInfo {
            key: self.key_for(pid, bsd.start_micros()),
            ppid: i32::try_from(bsd.ppid).unwrap_or(0),
            exe: self.inspector.exe_path(pid),
            exe_deleted: false,
            argv: args.map(|a| a.argv).unwrap_or_default(),
            comm: bsd.comm,
        })
    }

    fn key(&self, pid: i32) -> Result<ProcessKey, LineageError> {
        if let Some(&pidversion) = self.pidversions.get(&pid) {
            return Ok(key_of(ProcessIdentity { pid, pidversion }));
        }
        self.info(pid).map(|info| info.key)
    }
}

#[cfg(test)]
mod tests;
