//! Lineage: who is an agent.
//!
//! A process is *agent-attributed* when
//! 1. it matches an agent pattern itself (its executable, argv\[0\], comm, or interpreter script
//!    is named like `claude`; see [`AgentMatcher`] for the exact rule), or
//! 2. its parent was agent-attributed when it forked it. This taint is copied into the
//!    [`LineageTable`] at fork time, so it survives everything that happens to the live process
//!    tree afterwards: reparenting to init or a subreaper, `setsid`, `nohup`, a double fork. An
//!    exec never removes it (an agent cannot launder itself through `exec bash`), or
//! 3. for a process the table does not know (it started before the sensor), a walk up its live
//!    parents finds an agent ([`attribute`]).
//!
//! Processes are identified by [`ProcessKey`] = (pid, start time), never by pid alone, so a
//! recycled pid never inherits anyone's attribution.
//!
//! How the pieces fit:
//! - a platform [`ProcessSource`] reads live facts ([`ProcessInfo`]): `/proc` on Linux
//!   (`platform::linux::procfs::ProcFs`);
//! - the sensor feeds fork/exec/exit events into the [`LineageTable`] (`run` calls
//!   [`LineageTable::mark_agent`] on the command it starts, so its whole tree is the agent's);
//!   when a fork comes from a parent the table does not know, it calls [`remember`] first;
//! - for each decision the sensor calls [`attribute`] and hands the [`Attribution`] to the
//!   engine; [`LineageTable::record`] and [`LineageTable::agent_record`] fill the denial record;
//! - `agent-guard explain` prints [`explain`]'s account of the live chain.
//!
//! This module decides nothing about files and never touches the kernel itself; all I/O goes
//! through [`ProcessSource`].
//!
//! [`Attribution`]: crate::vocab::Attribution

mod attribute;
mod matcher;
mod process;
mod table;

pub use attribute::{
    attribute, explain, remember, ChainLink, ExplainedAgent, Explanation, WalkEnd, MAX_WALK_DEPTH,
};
pub use matcher::{AgentMatch, AgentMatcher, MatchField, PatternError};
pub use process::{LineageError, ProcessInfo, ProcessKey, ProcessSource};
pub use table::{LineageTable, ProcessRecord};

#[cfg(test)]
mod tests;
