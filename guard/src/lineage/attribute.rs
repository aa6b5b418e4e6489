//! Deciding attribution at decision time ([`attribute`]), learning a process the sensor did not
//! see start ([`remember`]), and showing the reasoning to a human ([`explain`]).
//!
//! These read live process facts through a [`ProcessSource`]; they never write anywhere.

use std::collections::HashSet;
use std::fmt;
use std::path::PathBuf;

use serde::Serialize;

use super::matcher::{AgentMatch, AgentMatcher};
use super::process::{LineageError, ProcessInfo, ProcessSource};
use super::table::{LineageTable, ProcessRecord};
use crate::vocab::{AgentInfo, Attribution};

/// How far a live walk climbs. Real process trees are a few dozen deep at most; the bound only
/// guarantees an end if a source reports a parent loop.
pub const MAX_WALK_DEPTH: usize = 64;

/// Is `pid` an agent's process? Never fails: what cannot be read counts as human.
///
/// 1. The table first: a process it knows as an agent's is one, whatever it looks like now.
/// 2. Otherwise the process itself, read now: a Node agent sets `process.title` after exec, so
///    its argv\[0\] says `claude` only later.
/// 3. Then its live ancestors, parent by parent, up to pid 1: the way to find the agent behind
///    a process that started before the sensor. The walk stops early at an ancestor the table
///    knows as human (its own ancestors were accounted for when it was forked, and it is
///    itself re-checked), at a vanished ancestor, a loop, or after [`MAX_WALK_DEPTH`] steps.
///
/// What a live walk cannot see: an agent's descendant that was reparented (double fork,
/// `setsid`, `nohup`) before the sensor knew of it. Only the table, fed from fork events,
/// covers that; hence [`remember`].
pub fn attribute(
    pid: i32,
    table: &LineageTable,
    source: &dyn ProcessSource,
    matcher: &AgentMatcher,
) -> Attribution {
    // The common case (a known agent's process) costs one small read.
    if let Ok(key) = source.key(pid) {
        if let Some(Attribution::Agent(agent)) = table.attribution(key) {
            return Attribution::Agent(agent);
        }
    }
    let mut next = pid;
    let mut seen = HashSet::new();
    for _ in 0..MAX_WALK_DEPTH {
        if next <= 0 || !seen.insert(next) {
            break;
        }
        let Ok(info) = source.info(next) else {
            break;
        };
        let known = table.attribution(info.key);
        if let Some(Attribution::Agent(agent)) = known {
            return Attribution::Agent(agent);
        }
        if let Some(name) = matcher.matches(&info) {
            return Attribution::Agent(AgentInfo {
                name,
                pid: info.key.pid,
            });
        }
        if known.is_some() || next == 1 {
            break;
        }
        next = info.ppid;
    }
    Attribution::Human
}

/// Attribute `pid` and record the answer in the table, so that what it forks from now on
/// inherits it even if it is reparented later. A sensor calls this for the parent of a fork it
/// sees from a process the table does not know (one that started before the sensor).
pub fn remember(
    pid: i32,
    table: &mut LineageTable,
    source: &dyn ProcessSource,
    matcher: &AgentMatcher,
) -> Result<Attribution, LineageError> {
    let info = source.info(pid)?;
    if let Some(known) = table.attribution(info.key) {
        return Ok(known);
    }
    let attribution = attribute(pid, table, source, matcher);
    table.insert(info.key, ProcessRecord::of(&info), attribution.clone());
    Ok(attribution)
}

/// One process of an [`Explanation`] chain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ChainLink {
    pub pid: i32,
    pub start: u64,
    pub ppid: i32,
    pub exe: Option<PathBuf>,
    pub exe_deleted: bool,
    pub argv0: Option<String>,
    pub comm: String,
    /// The pattern this process matches by its own names, and on which name.
    pub matched: Option<AgentMatch>,
}

impl ChainLink {
    fn of(info: &ProcessInfo, matcher: &AgentMatcher) -> ChainLink {
        ChainLink {
            pid: info.key.pid,
            start: info.key.start,
            ppid: info.ppid,
            exe: info.exe.clone(),
            exe_deleted: info.exe_deleted,
            argv0: info.argv0().map(str::to_string),
            comm: info.comm.clone(),
            matched: matcher.find(info),
        }
    }
}

/// Why the ancestor walk of an [`Explanation`] stopped.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum WalkEnd {
    /// Reached pid 1.
    Init,
    /// The last process has no parent (ppid 0: pid 1 itself, or a kernel thread).
    NoParent,
    /// The parent `pid` could not be read (it exited, or we may not inspect it).
    Unreadable {
        pid: i32,
        error: String,
    },
    /// The source reported a parent loop at `pid`.
    Loop {
        pid: i32,
    },
    DepthLimit,
}

/// The agent an explanation found: the nearest process in the chain that matches.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ExplainedAgent {
    pub name: String,
    pub pid: i32,
}

/// Why a process is (or is not) agent-attributed, from a live walk. Printed by
/// `agent-guard explain`, as JSON with `--json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Explanation {
    pub pid: i32,
    pub patterns: Vec<String>,
    /// `None`: no process in the chain matches a pattern.
    pub agent: Option<ExplainedAgent>,
    /// The process, then its parent, and so on.
    pub chain: Vec<ChainLink>,
    pub end: WalkEnd,
}

/// Walk from `pid` up to init and say which process matches which pattern on which name.
///
/// The whole chain is shown, even above the first match; the attribution is the nearest match,
/// as [`attribute`] decides without a table. Fails only when `pid` itself cannot be read.
pub fn explain(
    pid: i32,
    source: &dyn ProcessSource,
    matcher: &AgentMatcher,
) -> Result<Explanation, LineageError> {
    if pid <= 0 {
        return Err(LineageError::InvalidPid { pid });
    }
    let first = source.info(pid)?;
    let mut chain = vec![ChainLink::of(&first, matcher)];
    let mut seen = HashSet::from([pid]);
    let mut current = first;
    let end = loop {
        if current.key.pid == 1 {
            break WalkEnd::Init;
        }
        if current.ppid <= 0 {
            break WalkEnd::NoParent;
        }
        if chain.len() >= MAX_WALK_DEPTH {
            break WalkEnd::DepthLimit;
        }
        if !seen.insert(current.ppid) {
            break WalkEnd::Loop { pid: current.ppid };
        }
        match source.info(current.ppid) {
            Ok(parent) => {
                chain.push(ChainLink::of(&parent, matcher));
                current = parent;
            }
            Err(error) => {
                break WalkEnd::Unreadable {
                    pid: current.ppid,
                    error: error.to_string(),
                }
            }
        }
    };
    let agent = chain.iter().find_map(|link| {
        link.matched.as_ref().map(|m| ExplainedAgent {
            name: m.pattern.clone(),
            pid: link.pid,
        })
    });
    Ok(Explanation {
        pid,
        patterns: matcher.patterns().map(str::to_string).collect(),
        agent,
        chain,
        end,
    })
}

impl fmt::Display for Explanation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let matched = self
            .chain
            .iter()
            .find_map(|link| link.matched.as_ref().map(|m| (link, m)));
        match matched {
            Some((link, m)) => writeln!(
                f,
                "pid {} is attributed to agent {:?} (pid {}): {} of pid {} is {:?}, which matches {:?}.",
                self.pid,
                m.pattern,
                link.pid,
                m.field.as_str(),
                link.pid,
                m.name,
                m.pattern
            )?,
            None if self.patterns.is_empty() => writeln!(
                f,
                "pid {} is not attributed to an agent: the policy has no ai_agent_patterns.",
                self.pid
            )?,
            None => writeln!(
                f,
                "pid {} is not attributed to an agent: no process in its chain has an exe, argv0, comm or script name matching {}.",
                self.pid,
                self.patterns
                    .iter()
                    .map(|p| format!("{p:?}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )?,
        }
        writeln!(f, "chain (the process first, then each parent):")?;
        for link in &self.chain {
            let exe = match &link.exe {
                Some(exe) if link.exe_deleted => format!("{} (deleted)", exe.display()),
                Some(exe) => exe.display().to_string(),
                None => "?".to_string(),
            };
            write!(
                f,
                "  pid {:<7} start {:<10} comm {:<16} exe {}  argv0 {}",
                link.pid,
                link.start,
                format!("{:?}", link.comm),
                exe,
                link.argv0
                    .as_deref()
                    .map_or("?".to_string(), |a| format!("{a:?}"))
            )?;
            if let Some(m) = &link.matched {
                write!(f, "  <= {} matches {:?}", m.field.as_str(), m.pattern)?;
            }
            writeln!(f)?;
        }
        match &self.end {
            WalkEnd::Init => writeln!(f, "the walk reached pid 1.")?,
            WalkEnd::NoParent => writeln!(f, "the walk ended at a process without a parent.")?,
            WalkEnd::Unreadable { pid, error } => {
                writeln!(f, "the walk stopped at parent pid {pid}: {error}.")?
            }
            WalkEnd::Loop { pid } => {
                writeln!(f, "the walk stopped at a parent loop at pid {pid}.")?
            }
            WalkEnd::DepthLimit => {
                writeln!(f, "the walk stopped after {MAX_WALK_DEPTH} processes.")?
            }
        }
        write!(
            f,
            "note: this is the live parent chain; a running guard also keeps the attribution of \
             processes that an agent started and that were later reparented (double fork, setsid, \
             nohup), which this chain cannot show."
        )
    }
}
