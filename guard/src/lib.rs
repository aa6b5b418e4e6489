//! agent-guard: a kernel-enforced safety net for processes that descend from an AI agent.
//!
//! The flow (see `DESIGN.md` in the shared design notes and the README):
//! a sensor in [`platform`] turns a kernel event into a neutral [`engine::Event`]; [`lineage`]
//! says whether the actor is agent-attributed; [`engine::decide`] answers with a
//! [`engine::Verdict`] from the [`policy`] and the override [`engine::Grants`]; [`audit`] records
//! denials off the hot path; [`overrides`] and [`feedback`] close the loop with the agent.
//!
//! Every kernel boundary lives in [`platform`]. The engine does no I/O at all.

pub mod audit;
pub mod cli;
pub mod daemon;
pub mod duration;
pub mod engine;
pub mod feedback;
pub mod lineage;
pub mod overrides;
pub mod paths;
pub mod platform;
pub mod policy;
pub mod runtime;
