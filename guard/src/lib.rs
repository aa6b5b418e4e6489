//! agent-guard: a kernel-enforced safety net for processes that descend from an AI agent.
//!
//! The flow (docs/design.md has the layers and the decision table; the README the rest):
//! a sensor in [`platform`] turns a kernel event into a neutral [`vocab::Event`]; [`lineage`]
//! says whether the actor is agent-attributed; [`engine::decide()`] answers with a
//! [`vocab::Verdict`] from the [`policy`] and the override [`vocab::Grants`]; [`audit`] records
//! denials off the hot path; [`overrides`] and [`feedback`] close the loop with the agent.
//!
//! Every kernel boundary lives in [`platform`]. The engine does no I/O at all. [`vocab`] is the
//! bottom layer every other module speaks; `guard/tests/layering.rs` checks that no module
//! imports one above it.

pub mod audit;
pub mod cli;
mod duration;
pub mod engine;
pub mod feedback;
pub mod git;
pub mod install;
pub mod lineage;
pub mod mcp;
pub mod overrides;
pub mod paths;
pub mod platform;
pub mod policy;
mod runtime;
pub mod snapshots;
pub mod vocab;
