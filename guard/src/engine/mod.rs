//! The decision engine: a pure function from (event, attribution, policy, grants, now) to a
//! verdict.
//!
//! It must never do I/O, read a clock or touch a global: everything it needs is passed in, so it
//! is tested exhaustively on any OS and benchmarked in isolation. Its input and output types are
//! the shared vocabulary ([`crate::vocab`]); they are re-exported here so that a caller of
//! [`decide()`] names them where it names the engine.

pub mod decide;
pub mod keep;
mod reason;

pub use crate::vocab::path;
pub use crate::vocab::{
    Action, Actor, AgentInfo, Attribution, Decision, Denial, EntryKind, Event, Grant, Grants, Keep,
    KeepFailure, KeepItem, KeepOutcome, KeepWhat, KeptEntry, KeptHow, NodeKind, OpKind, OpSet,
    OpenFlags, RuleId, Verdict,
};
pub use decide::{
    decide, decide_without_keeping, moved_tree_probes, needs_actor_args, needs_exec_env,
};
pub use keep::{brake, keep_refused, keeps_at, BrakeState};
