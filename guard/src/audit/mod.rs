//! What agent-guard remembers about decisions, written off the hot path.
//!
//! - [`DenialLog`] appends a [`DenialRecord`] to `denials.jsonl` for every deny and every
//!   audit-mode would-deny: the agent's channel (the hook and `agent-guard denials` read it).
//!   [`read_denials`] and [`follow`] read it back across rotated files.
//! - [`AuditStore`] keeps every agent-attributed decision ([`DecisionRecord`]) and override event
//!   ([`OverrideEvent`]) in SQLite for query and export by humans and security teams
//!   ([`AuditReader`]).
//!
//! Both are the same queued writer (`queue`) with a sink each: a bounded queue drained by its own
//! thread, so logging never blocks a sensor that is waiting to answer the kernel, and whatever
//! cannot be queued or written is counted (`dropped`, `write_errors`) for `agent-guard status`,
//! never lost silently. Each is split along write / rotate (retention) / read (query) / follow
//! (export). This module
//! must never be called with a lock held on the decision path and must never block it.

pub mod aggregate;
pub mod denials;
mod queue;
pub mod record;

pub mod store;

pub use aggregate::{DenialAggregator, Summary};
pub use denials::{
    follow, log_files, read_denials, rotated_path, DenialFollower, DenialLog, DenialLogConfig,
    DenialLogError, DenialLogStats, OnCreateHook, ReadOutcome,
};
pub use record::{latest_denial_of, DenialRecord, Repeated};
pub use store::{
    write_verify_report, AuditQuery, AuditReader, AuditStore, AuditStoreConfig, AuditStoreError,
    AuditStoreStats, DecisionRecord, ExportFormat, OverrideEvent, OverrideEventKind, Retention,
    StoredDecision, StoredOverride,
};
