//! [`LineageTable`]: attribution remembered per process, handed from parent to child at fork.
//!
//! The table is what makes taint survive the tricks that break a live ancestor walk: when an
//! agent's child double-forks, calls `setsid`, or is `nohup`ed, the grandchild is reparented to
//! init (or a subreaper) and its live parent chain no longer leads to the agent. The table does
//! not care: the grandchild's attribution was copied from its parent at the moment of the fork,
//! when the parent was still known to be an agent's descendant.
//!
//! It is pure bookkeeping, fed by a sensor's fork/exec/exit events; it never reads the system.
//! Memory stays bounded by the number of live processes because [`LineageTable::on_exit`]
//! removes an entry (a sensor that misses exits leaks entries, but never mis-attributes: keys
//! include the start time, so a reused pid is a different key).

use std::collections::HashMap;
use std::path::PathBuf;

use serde::Serialize;

use super::matcher::AgentMatcher;
use super::process::{ProcessInfo, ProcessKey};
use crate::vocab::{AgentInfo, Attribution};

/// What a denial record says about a process (`process` / `ancestor`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ProcessRecord {
    pub pid: i32,
    /// 0 when unknown (a process the table learnt of without its fork).
    pub ppid: i32,
    pub exe: Option<PathBuf>,
    pub comm: String,
}

impl ProcessRecord {
    pub fn of(info: &ProcessInfo) -> ProcessRecord {
        ProcessRecord {
            pid: info.key.pid,
            ppid: info.ppid,
            exe: info.exe.clone(),
            comm: info.comm.clone(),
        }
    }
}

#[derive(Clone, Debug)]
struct Entry {
    attribution: Attribution,
    /// The key of the agent process the taint came from (for its record), when agent.
    agent: Option<ProcessKey>,
    record: ProcessRecord,
}

/// Attribution of every process the sensor has seen, keyed by [`ProcessKey`].
#[derive(Debug, Default)]
pub struct LineageTable {
    entries: HashMap<ProcessKey, Entry>,
}

impl LineageTable {
    pub fn new() -> LineageTable {
        LineageTable::default()
    }

    /// `parent` forked `child`: the child gets the parent's attribution, now and for good.
    ///
    /// Returns `false` (and records nothing) when the parent is unknown to the table; the sensor
    /// should then learn the parent first (see [`super::remember`]) and call this again, so the
    /// child does not depend on a live walk that a later reparenting would break.
    pub fn on_fork(&mut self, parent: ProcessKey, child: ProcessKey) -> bool {
        let Some(parent_entry) = self.entries.get(&parent) else {
            return false;
        };
        let child_entry = Entry {
            attribution: parent_entry.attribution.clone(),
            agent: parent_entry.agent,
            // Until it execs, a child runs its parent's program.
            record: ProcessRecord {
                pid: child.pid,
                ppid: parent.pid,
                ..parent_entry.record.clone()
            },
        };
        self.entries.insert(child, child_entry);
        true
    }

    /// `key` exec'd and now looks like `info`. A process that matches a pattern itself becomes
    /// an agent; an exec never removes taint it inherited.
    ///
    /// An exec of a process unknown to the table is recorded only if it matches: recording it as
    /// human would hide an agent ancestor that the live walk in [`super::attribute`] can still
    /// find.
    pub fn on_exec(&mut self, key: ProcessKey, info: &ProcessInfo, matcher: &AgentMatcher) {
        let own_match = matcher
            .matches(info)
            .map(|name| AgentInfo { name, pid: key.pid });
        match self.entries.get_mut(&key) {
            Some(entry) => {
                entry.record = ProcessRecord {
                    ppid: entry.record.ppid,
                    ..ProcessRecord::of(info)
                };
                if let (Attribution::Human, Some(agent)) = (&entry.attribution, own_match) {
                    entry.attribution = Attribution::Agent(agent);
                    entry.agent = Some(key);
                }
            }
            None => {
                if let Some(agent) = own_match {
                    self.insert(key, ProcessRecord::of(info), Attribution::Agent(agent));
                }
            }
        }
    }

    /// `key` exited: forget it. Its descendants keep their own entries.
    pub fn on_exit(&mut self, key: ProcessKey) {
        self.entries.remove(&key);
    }

    /// What the table knows about `key`; `None` when it has never seen it.
    pub fn attribution(&self, key: ProcessKey) -> Option<Attribution> {
        self.entries
            .get(&key)
            .map(|entry| entry.attribution.clone())
    }

    /// Attribute `key` (and, through [`LineageTable::on_fork`], everything it forks from now on)
    /// to `agent`. Used by `agent-guard run`, whose whole tree is the agent.
    pub fn mark_agent(&mut self, key: ProcessKey, agent: AgentInfo) {
        let record = self.record(key).cloned().unwrap_or(ProcessRecord {
            pid: key.pid,
            ..ProcessRecord::default()
        });
        self.insert(key, record, Attribution::Agent(agent));
    }

    /// Record `key` with an attribution decided elsewhere (a live walk for a process whose fork
    /// the sensor did not see). Overwrites what the table had.
    pub fn insert(&mut self, key: ProcessKey, record: ProcessRecord, attribution: Attribution) {
        let agent = match &attribution {
            Attribution::Agent(info) if info.pid == key.pid => Some(key),
            Attribution::Agent(info) => self.live_key_of(info.pid),
            Attribution::Human => None,
        };
        self.entries.insert(
            key,
            Entry {
                attribution,
                agent,
                record,
            },
        );
    }

    /// The record of `key` (pid, ppid, exe, comm), for a denial's `process` field.
    pub fn record(&self, key: ProcessKey) -> Option<&ProcessRecord> {
        self.entries.get(&key).map(|entry| &entry.record)
    }

    /// The record of the agent process `key` is attributed to, for a denial's `ancestor` field.
    /// `None` when `key` is not an agent's, or when that agent has exited (its pid and pattern
    /// are still in the [`AgentInfo`]).
    pub fn agent_record(&self, key: ProcessKey) -> Option<&ProcessRecord> {
        let agent = self.entries.get(&key)?.agent?;
        self.record(agent)
    }

    pub fn contains(&self, key: ProcessKey) -> bool {
        self.entries.contains_key(&key)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The key of the live entry with this pid (the table holds at most one live process per
    /// pid when the sensor reports exits). A scan: only used when an attribution is recorded
    /// by hand for an agent other than the process itself.
    fn live_key_of(&self, pid: i32) -> Option<ProcessKey> {
        self.entries.keys().copied().find(|key| key.pid == pid)
    }
}
