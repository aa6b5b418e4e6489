//! macOS: the Endpoint Security sensor behind `agent-guard daemon`.
//!
//! The split is deliberate. Everything that is logic compiles on every OS and is tested on
//! Linux, where we have no Mac:
//! - [`facts`]: what a message says about a process, and which signing identity may be trusted;
//! - [`mapping`]: an ES message, copied into plain values ([`EsRequest`]), becomes the neutral
//!   [`crate::vocab::Action`]s the engine decides on;
//! - [`muting`]: which target paths (per event type) the file client asks the kernel for;
//! - [`deadline`]: how much of the kernel's answer deadline a decision may use;
//! - [`keep`]: what is cloned into the snapshot store before an agent's destructive operation
//!   is allowed, behind the [`keep::Cloner`] seam (`clonefile(2)` in `sys`);
//! - [`glue`]: every message's way from ES to its answer (lineage first, fast answers on the ES
//!   thread, the worker pool, exactly one answer per AUTH message), over the [`api::EsClient`]
//!   seam, tested with the recording fake (`fake`);
//! - [`procinfo`]: parsers of `KERN_PROCARGS2` buffers and `proc_bsdinfo` records;
//! - [`start`]: the errors that stop the daemon at start, each with the one thing to do about it;
//! - [`handler`], [`control`], [`counters`]: the daemon core's side of the seam, commands to
//!   the running daemon, and what it counts.
//!
//! Only `es` and `sys` (cfg macOS) call Apple's libraries. They must stay thin: create the
//! clients, copy each message into plain values, hand it to the glue, implement the seam. They
//! must never block the ES thread on I/O, logging or SQLite, and never cache an answer that
//! depends on who the actor is.
//!
//! This file only declares and re-exports: the items live in the modules, which name each other
//! directly, so that no module imports the one that declares it.

pub mod api;
pub mod control;
pub mod counters;
pub mod deadline;
pub mod facts;
pub mod glue;
pub mod handler;
pub mod keep;
pub mod mapping;
pub mod muting;
pub mod procinfo;
pub mod start;

#[cfg(test)]
pub mod fake;

#[cfg(target_os = "macos")]
pub mod es;
#[cfg(target_os = "macos")]
pub mod sys;

#[cfg(target_os = "macos")]
pub use es::run_daemon;

pub use control::{daemon_control, DaemonCommand, DaemonCommands, DaemonControl, Stopped};
pub use counters::{CountersSnapshot, SensorCounters};
pub use deadline::{DeadlinePlan, Timebase};
pub use facts::{comm_of, cs, ActorFacts, ProcessIdentity, SigningInfo};
pub use handler::{default_guard_files, Attributed, EsHandler, Known, MutingRoots};
pub use keep::{Cloner, CopyCloner, Keeping, MacKeeper};
pub use mapping::{EsDestination, EsRequest};
pub use muting::MutingSelection;
pub use procinfo::{BsdInfo, ProcArgs, ProcessInspector};
pub use start::StartError;
