//! The macOS daemon's glue: [`DaemonCore`] answers the Endpoint Security sensor's questions
//! ([`EsHandler`]) from the lineage table, the policy and the engine, through a [`Runtime`].
//!
//! What it does, per message the sensor delivers:
//! - fork: the child inherits the parent's attribution in the lineage table, keyed by pid and
//!   start time ([`lineage`]: both ES clients deliver forks and exits, in their own orders). A
//!   parent the table does not know (it predates the daemon) is first attributed by a live walk
//!   through the [`ProcessInspector`], so the child's taint no longer depends on a walk that
//!   reparenting would break.
//! - exec (NOTIFY_EXEC, so only an exec that happened): the new image is matched against the
//!   agent patterns; taint is never removed.
//! - exit: the entry is forgotten after a grace period.
//! - triage on the ES thread ([`EsHandler::known`], [`EsHandler::matters`]): what the table
//!   says and whether an agent would be stopped at all; no syscall.
//! - attribute, on a worker: the table; for an actor it has not seen, its parent's and original
//!   parent's entries, its own names (argv\[0\] read now: Node's `process.title`) and a live
//!   parent walk; for a known human whose event an agent would be stopped for, its names and its
//!   ancestors' read again (at most once a second per process).
//! - decide, on a worker: the [`Runtime`] decides, counts and records. An agent's decisions are
//!   made in its session ([`Session`]: the brake, the first writes already kept), one per agent
//!   root process; a keep verdict comes back unrecorded, the glue has the [`MacKeeper`] clone
//!   what it asks for before answering, then the runtime records it ([`Runtime::settle`]).
//!   A session ends (the state it left is recorded) when its root process exits.
//!
//! [`setup`] builds what the daemon loads the policy with ([`setup::daemon_context`]: `~` is
//! every user's home, [`setup::user_homes`]), prepares its state directory
//! ([`setup::prepare_state_dirs`]) and, on macOS, starts it all (`setup::serve`).
//!
//! This module compiles and is tested on every OS: it never calls Apple's libraries itself (the
//! inspector and the ES clients live in `platform::macos`). It must never do blocking I/O on the
//! decision path beyond the inspector's reads on a worker; records go to the runtime's queues.
//! The lineage lock is never held across a `sysctl` of a known process.

pub mod lineage;
pub mod setup;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use crate::lineage::{
    attribute, remember, AgentMatcher, PatternError, ProcessInfo, ProcessKey, ProcessRecord,
};
use crate::platform::macos::keep::FileId;
use crate::platform::macos::{
    comm_of, ActorFacts, Attributed, Cloner, EsHandler, Keeping, Known, MacKeeper, MutingRoots,
    ProcessInspector,
};
use crate::policy::{FailMode, OnDestroy, ZoneKind};
use crate::runtime::Runtime;
use crate::snapshots::Session;
use crate::vocab::{AgentInfo, Attribution, Event, Keep, KeepOutcome, Verdict};

use lineage::{key_of, InspectorSource, LineageState};

/// How often a known human process's names are read again when an agent would be stopped for
/// what it does (message time).
pub const RECHECK_NS: u64 = 1_000_000_000;

/// How many of a known human's ancestors are read again with it: a Node agent that retitled
/// itself is usually the parent or grandparent of the process that acts.
pub const RECHECK_ANCESTORS: usize = 4;

/// How long after its root's exit a session ends: longer than a worker takes from an answer to
/// its record.
pub const SESSION_END_DELAY: std::time::Duration = std::time::Duration::from_secs(1);

/// The Endpoint Security handler over a [`Runtime`]: lineage, agent patterns, decisions.
pub struct DaemonCore {
    runtime: Arc<Runtime>,
    /// Live process facts for forks from parents the table does not know (`on_fork` is given no
    /// inspector by the sensor).
    inspector: Arc<dyn ProcessInspector>,
    state: Mutex<LineageState>,
    /// Clones what agents destroy into the snapshot store.
    keeper: MacKeeper,
    /// The agent sessions, by their root process (pid and start time: unlike the pidversion,
    /// it does not change when the agent execs itself again).
    sessions: Mutex<Sessions>,
}

/// The open sessions, and the agent roots that have exited (their processes that live on each
/// get a session of their own, which ends at their own exit).
#[derive(Default)]
struct Sessions {
    open: HashMap<ProcessKey, Arc<Session>>,
    ended_roots: HashSet<ProcessKey>,
}

impl DaemonCore {
    /// Fails when the policy's `ai_agent_patterns` cannot be compiled (a bad glob). `cloner`
    /// makes the snapshots (`clonefile(2)` on macOS).
    pub fn new(
        runtime: Arc<Runtime>,
        inspector: Arc<dyn ProcessInspector>,
        cloner: Arc<dyn Cloner>,
    ) -> Result<DaemonCore, PatternError> {
        let policy = runtime.policy.load();
        let matcher = AgentMatcher::new(&policy.agent_patterns)?;
        Ok(DaemonCore {
            state: Mutex::new(LineageState::new(matcher, policy.version.clone())),
            runtime,
            inspector,
            keeper: MacKeeper::new(cloner),
            sessions: Mutex::default(),
        })
    }

    /// The session of `actor`, whose agent's root process is `agent_pid` (the attribution's
    /// pid), opened at its first decision. Keyed by the root's lineage key, so that a pid reused
    /// after the root exited is another session; once the root has exited, by the actor's own.
    fn session_for(&self, agent_pid: i32, actor: &ActorFacts) -> Arc<Session> {
        let root = self.lock().live_key(agent_pid).unwrap_or(ProcessKey {
            pid: agent_pid,
            start: 0,
        });
        let mut sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        // A session must end: one whose root is gone would run until the daemon stops.
        let key = if sessions.ended_roots.contains(&root) {
            key_of(actor)
        } else {
            root
        };
        sessions
            .open
            .entry(key)
            .or_insert_with(|| {
                self.runtime
                    .open_session(&format!("{}.{}", key.pid, key.start))
            })
            .clone()
    }

    /// The session keyed by `process`, if one is open (tests).
    #[cfg(test)]
    pub fn session_of(&self, process: &ActorFacts) -> Option<Arc<Session>> {
        let sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        sessions.open.get(&key_of(process)).cloned()
    }

    /// `process` exited (`agent_root`: it was an agent's root process): the session keyed by it
    /// ends, off the ES thread (the runtime waits for the kept files' hashes, then records the
    /// state each kept path was left in). The agent's other processes, should they destroy
    /// more, each get a session of their own.
    fn end_session_of(&self, process: &ActorFacts, agent_root: bool) {
        let ended = {
            let mut sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
            if agent_root {
                sessions.ended_roots.insert(key_of(process));
            }
            sessions.open.remove(&key_of(process))
        };
        let Some(session) = ended else { return };
        let runtime = self.runtime.clone();
        let spawned = std::thread::Builder::new()
            .name("agent-guard-session-end".into())
            .spawn(move || {
                // A worker records a keep just after its allow, and the root may exit just
                // after that allow too: its last keep must be in the session when it ends.
                std::thread::sleep(SESSION_END_DELAY);
                runtime.end_session(&session)
            });
        if let Err(e) = spawned {
            tracing::warn!("the end of an agent session is not recorded: {e}");
        }
    }

    #[cfg(test)]
    pub fn runtime(&self) -> &Arc<Runtime> {
        &self.runtime
    }

    /// What the table holds for `process` (`None`: never seen, or exited).
    #[cfg(test)]
    pub fn known_attribution(&self, process: &ActorFacts) -> Option<Attribution> {
        self.lock().table.attribution(key_of(process))
    }

    /// Exits waiting for their grace (tests).
    #[cfg(test)]
    pub fn pending_exits(&self) -> usize {
        self.lock().pending_exits()
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

    /// Read again the names of a process the table knows as human, and of its known ancestors
    /// (a Node process sets `process.title` after the exec it was judged by). The reads happen
    /// without the lock; an ancestor is read only if it is still the process the table knows
    /// (same start time). Returns the agent found, marked in the table for good.
    fn recheck_human(
        &self,
        actor: &ActorFacts,
        at_ns: u64,
        inspect: &dyn ProcessInspector,
    ) -> Option<(AgentInfo, Option<String>)> {
        let key = key_of(actor);
        let chain = {
            let mut state = self.lock();
            state.checked.insert(key, at_ns);
            let mut chain = vec![(key, actor.ppid)];
            let mut next = state.table.record(key).map(|r| r.ppid);
            while chain.len() <= RECHECK_ANCESTORS {
                let Some(parent) = next.filter(|&pid| pid > 1).and_then(|p| state.live_key(p))
                else {
                    break;
                };
                if state.table.attribution(parent) != Some(Attribution::Human) {
                    break;
                }
                let ppid = state.table.record(parent).map_or(0, |r| r.ppid);
                chain.push((parent, ppid));
                next = Some(ppid);
            }
            chain
        };
        let mut own_argv0 = None;
        for (i, (key, ppid)) in chain.into_iter().enumerate() {
            if i > 0 {
                let same = inspect
                    .bsd_info(key.pid)
                    .is_some_and(|bsd| bsd.start_micros() == key.start);
                if !same {
                    break;
                }
            }
            let Some(args) = inspect.process_args(key.pid) else {
                continue;
            };
            if i == 0 {
                own_argv0 = Some(args.argv0().to_string());
            }
            let mut state = self.lock();
            let record = state.table.record(key).cloned().unwrap_or_default();
            let info = ProcessInfo {
                key,
                ppid,
                exe: if i == 0 {
                    Some(actor.exe.clone())
                } else {
                    record.exe
                },
                exe_deleted: false,
                argv: args.argv,
                comm: if i == 0 {
                    comm_of(&actor.exe)
                } else {
                    record.comm
                },
            };
            if let Some(name) = state.matcher.matches(&info) {
                let agent = AgentInfo { name, pid: key.pid };
                state.table.mark_agent(key, agent.clone());
                if i > 0 {
                    let own = key_of(actor);
                    let record = state.table.record(own).cloned().unwrap_or_default();
                    state
                        .table
                        .insert(own, record, Attribution::Agent(agent.clone()));
                }
                return Some((agent, own_argv0));
            }
        }
        None
    }

    /// Attribute an actor the table has not seen: its relatives' entries, its own names, a live
    /// walk. Remembered, so what it forks inherits this even once it is reparented.
    fn attribute_unknown(
        &self,
        actor: &ActorFacts,
        at_ns: u64,
        inspect: &dyn ProcessInspector,
    ) -> Attributed {
        let key = key_of(actor);
        {
            // Cheapest evidence first, without a syscall: the entries of the processes the
            // message names (its fork may not have been delivered to this client yet).
            let mut state = self.lock();
            if let Some(known) = state.table.attribution(key) {
                return Attributed {
                    attribution: known,
                    argv0: None,
                };
            }
            let mut related: Vec<ProcessKey> = [actor.parent, actor.responsible]
                .into_iter()
                .flatten()
                .filter_map(|p| state.live_key(p.pid).filter(|k| k.pid == p.pid))
                .collect();
            if actor.original_ppid > 1 && actor.original_ppid != actor.ppid {
                // Reparented before we saw it: its original parent, while the table has it.
                related.extend(state.live_key(actor.original_ppid));
            }
            for process in related {
                if let Some(Attribution::Agent(agent)) = state.table.attribution(process) {
                    let attribution = Attribution::Agent(agent);
                    state
                        .table
                        .insert(key, record_of(actor), attribution.clone());
                    return Attributed {
                        attribution,
                        argv0: None,
                    };
                }
            }
        }
        // Its own names, argv[0] as it is now (read without the lock).
        let args = inspect.process_args(actor.process.pid);
        let argv0 = args.as_ref().map(|a| a.argv0().to_string());
        let own = ProcessInfo {
            key,
            ppid: actor.ppid,
            exe: (!actor.exe.as_os_str().is_empty()).then(|| actor.exe.clone()),
            exe_deleted: false,
            argv: args.map(|a| a.argv).unwrap_or_default(),
            comm: comm_of(&actor.exe),
        };
        let mut guard = self.lock();
        let state = &mut *guard;
        let parent = actor.parent.map_or(actor.ppid, |p| p.pid);
        let attribution = if let Some(name) = state.matcher.matches(&own) {
            Attribution::Agent(AgentInfo {
                name,
                pid: actor.process.pid,
            })
        } else if parent > 1 {
            let source = InspectorSource {
                inspector: inspect,
                live: &state.live,
            };
            attribute(parent, &state.table, &source, &state.matcher)
        } else {
            Attribution::Human
        };
        state
            .table
            .insert(key, record_of(actor), attribution.clone());
        if attribution == Attribution::Human {
            // Its names were just read.
            state.checked.insert(key, at_ns);
        }
        Attributed { attribution, argv0 }
    }
}

fn record_of(actor: &ActorFacts) -> ProcessRecord {
    ProcessRecord {
        pid: actor.process.pid,
        ppid: actor.ppid,
        exe: (!actor.exe.as_os_str().is_empty()).then(|| actor.exe.clone()),
        comm: comm_of(&actor.exe),
    }
}

impl EsHandler for DaemonCore {
    fn on_fork(&self, parent: &ActorFacts, child: &ActorFacts, at_ns: u64) {
        let mut guard = self.lock();
        let state = &mut *guard;
        state.step(at_ns);
        let (parent_key, child_key) = (key_of(parent), key_of(child));
        if state.seen(child_key) {
            return; // the other client's copy of this fork
        }
        state.note(parent);
        state.note(child);
        if state.table.on_fork(parent_key, child_key) {
            return;
        }
        // A parent older than the daemon: attributed once by a live walk, then known.
        let source = InspectorSource {
            inspector: &*self.inspector,
            live: &state.live,
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

    fn on_exec(&self, process: &ActorFacts, argv: &[String], at_ns: u64) {
        let mut guard = self.lock();
        let state = &mut *guard;
        state.step(at_ns);
        state.note(process);
        let key = key_of(process);
        let info = ProcessInfo {
            key,
            ppid: process.ppid,
            exe: Some(process.exe.clone()),
            exe_deleted: false,
            argv: argv.to_vec(),
            comm: comm_of(&process.exe),
        };
        state.table.on_exec(key, &info, &state.matcher);
        // A new image: its names are worth reading again.
        state.checked.remove(&key);
    }

    fn on_exit(&self, process: &ActorFacts, at_ns: u64) {
        let agent_root = {
            let mut state = self.lock();
            let root = matches!(state.table.attribution(key_of(process)),
                Some(Attribution::Agent(agent)) if agent.pid == process.process.pid);
            state.exit(process, at_ns);
            root
        };
        self.end_session_of(process, agent_root);
    }

    fn known(&self, actor: &ActorFacts, at_ns: u64) -> Known {
        let key = key_of(actor);
        let mut state = self.lock();
        match state.table.attribution(key) {
            Some(Attribution::Agent(_)) => Known::Agent,
            Some(Attribution::Human) => {
                // Exec'd into an agent's executable, and this client is ahead of the process
                // client's NOTIFY_EXEC: the message's own executable says so.
                let info = ProcessInfo {
                    key,
                    ppid: actor.ppid,
                    exe: Some(actor.exe.clone()),
                    exe_deleted: false,
                    argv: Vec::new(),
                    comm: comm_of(&actor.exe),
                };
                if let Some(name) = state.matcher.matches(&info) {
                    let agent = AgentInfo {
                        name,
                        pid: actor.process.pid,
                    };
                    state.table.mark_agent(key, agent);
                    return Known::Agent;
                }
                let fresh = state
                    .checked
                    .get(&key)
                    .is_some_and(|&at| at_ns.saturating_sub(at) < RECHECK_NS);
                Known::Human { fresh }
            }
            None => Known::Unknown,
        }
    }

    fn matters(&self, events: &[Event]) -> bool {
        let probe = Attribution::Agent(AgentInfo {
            name: String::new(),
            pid: 0,
        });
        let policy = self.runtime.policy.load();
        let grants = self.runtime.grants.current();
        let now = crate::vocab::time::unix_secs(std::time::SystemTime::now());
        events.iter().any(|event| {
            crate::engine::decide(event, &probe, &policy, &grants, now) != Verdict::Allow
        })
    }

    fn attribute(
        &self,
        actor: &ActorFacts,
        at_ns: u64,
        inspect: &dyn ProcessInspector,
    ) -> Attributed {
        let known = self.lock().table.attribution(key_of(actor));
        match known {
            Some(Attribution::Agent(agent)) => Attributed {
                attribution: Attribution::Agent(agent),
                argv0: None,
            },
            Some(Attribution::Human) => match self.recheck_human(actor, at_ns, inspect) {
                Some((agent, argv0)) => Attributed {
                    attribution: Attribution::Agent(agent),
                    argv0,
                },
                None => Attributed {
                    attribution: Attribution::Human,
                    argv0: None,
                },
            },
            None => self.attribute_unknown(actor, at_ns, inspect),
        }
    }

    fn decide(
        &self,
        actor: &ActorFacts,
        event: &Event,
        who: &Attributed,
        inspect: &dyn ProcessInspector,
    ) -> Verdict {
        let mut event = event.clone();
        if let Some(argv0) = &who.argv0 {
            if event.actor.argv0.is_empty() {
                event.actor.argv0 = argv0.clone();
            }
        }
        // An exec rule may spare a trusted tool's own subcommand (`git stash` resetting the tree
        // it has just saved): only then are the arguments of the process that execs read. In an
        // AUTH_EXEC it has not exec'd yet, so they are still the tool's.
        if who.attribution.is_agent()
            && event.actor.args.is_empty()
            && crate::engine::needs_actor_args(&event, &self.runtime.policy.load())
        {
            if let Some(args) = inspect.process_args(actor.process.pid) {
                event.actor.args = args.argv.into_iter().skip(1).collect();
            }
        }
        let start = key_of(actor).start;
        match &who.attribution {
            Attribution::Agent(agent) if self.runtime.config.keeps => {
                let session = self.session_for(agent.pid, actor);
                self.runtime
                    .decide_in(&session, &event, &who.attribution, start)
            }
            _ => self.runtime.decide(&event, &who.attribution, start),
        }
    }

    fn keep(
        &self,
        actor: &ActorFacts,
        who: &Attributed,
        keeps: Vec<(Event, Keep)>,
        files: &[(PathBuf, FileId)],
        deadline: Instant,
    ) -> Keeping {
        let root = match &who.attribution {
            Attribution::Agent(agent) => agent.pid,
            // The engine keeps only for agents; should it ever not, the actor is its own session.
            Attribution::Human => actor.process.pid,
        };
        self.keeper
            .keep(self.session_for(root, actor), keeps, files, deadline)
    }

    fn settle(&self, actor: &ActorFacts, who: &Attributed, mut keeping: Keeping, allowed: bool) {
        if !allowed && keeping.allows() {
            // Everything was kept, but the deadline timer answered first: nothing happened.
            self.keeper.unkeep(&mut keeping);
        }
        let start = key_of(actor).start;
        for kept in keeping.kept {
            if !allowed && matches!(kept.outcome, KeepOutcome::Kept(_)) {
                // Refused for another keep of the message: that one's record says why.
                continue;
            }
            self.runtime.settle(
                &keeping.session,
                &kept.event,
                &who.attribution,
                start,
                &kept.keep,
                kept.outcome,
            );
        }
    }

    fn watched_roots(&self) -> MutingRoots {
        let policy = self.runtime.policy.load();
        let mut roots = MutingRoots::default();
        for zone in policy.zones.all() {
            let list = match zone.kind {
                ZoneKind::Guard => &mut roots.guard_files,
                // Its writing opens are kept the first time, and `O_TRUNC` destroys: opens must
                // be delivered there too.
                ZoneKind::Protected
                    if self.runtime.config.keeps && zone.on_destroy == OnDestroy::Keep =>
                {
                    &mut roots.restricted
                }
                ZoneKind::Protected => &mut roots.protected,
                ZoneKind::Readonly | ZoneKind::Secret => &mut roots.restricted,
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

#[cfg(test)]
mod tests;
