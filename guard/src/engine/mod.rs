//! The decision engine: a pure function from (event, attribution, policy, grants, now) to a
//! verdict.
//!
//! It must never do I/O, read a clock or touch a global: everything it needs is passed in, so it
//! is tested exhaustively on any OS and benchmarked in isolation.

pub mod decide;
pub mod event;
pub mod grant;
pub mod path;
mod reason;
pub mod verdict;

pub use decide::{decide, needs_actor_args};
pub use event::{Action, Actor, AgentInfo, Attribution, Event, OpKind, OpSet, OpenFlags};
pub use grant::{Grant, Grants};
pub use reason::shell_quote;
pub use verdict::{Denial, RuleId, Verdict};
