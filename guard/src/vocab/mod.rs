//! The vocabulary every layer shares: what a process asked ([`Event`], [`Action`], [`OpKind`]),
//! who it acts for ([`Attribution`]), what the engine answered ([`Verdict`], [`RuleId`],
//! [`Decision`]), what a human granted ([`Grant`]), and the lexical path, text, time and error
//! helpers that go with them.
//!
//! This is the bottom layer: it uses nothing of the crate, so the policy, the engine, lineage,
//! the records and the sensors can all speak it without importing each other (the layering is
//! stated and checked in `guard/tests/layering.rs`). It must never do I/O or read a clock: it is
//! plain data and pure functions.

pub mod error;
pub mod event;
pub mod grant;
pub mod op;
pub mod path;
pub mod text;
pub mod time;
pub mod verdict;

pub use error::{IoError, UnknownName};
pub use event::{Action, Actor, AgentInfo, Attribution, Event, NodeKind, OpenFlags};
pub use grant::{Grant, Grants};
pub use op::{OpKind, OpSet};
pub use text::{is_invisible, printable, shell_quote};
pub use verdict::{Decision, Denial, Mode, RuleId, Verdict};
