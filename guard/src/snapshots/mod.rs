//! The snapshot store's neutral side (docs/snapshots.md): where kept things go, the agent
//! session they belong to, the store's size, and what `agent-guard undo` does with them.
//!
//! The sensors keep (the Linux supervisor moves, links, clones or copies; the macOS daemon
//! clones) and report [`crate::vocab::KeptEntry`]s; this module names the store's directories
//! and entries ([`layout`]), holds what a session remembers while it runs ([`Session`]: its
//! numbering, the files it has kept since its start, the names it made itself ([`new_names`]),
//! the brake's count) and the store's size
//! ([`StoreBudget`]), and is what the human's commands use to list, restore and purge
//! ([`listing`], [`restore`], [`purge`]).
//!
//! It must never keep anything itself (that is the sensors' kernel work) and never write into a
//! zone except when a human restores.

pub mod budget;
pub mod layout;
pub mod listing;
pub mod new_names;
pub mod purge;
pub mod restore;
pub mod session;
pub mod tree;

pub use budget::StoreBudget;
pub use layout::SessionId;
pub use session::Session;
