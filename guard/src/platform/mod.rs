//! Every kernel boundary of agent-guard: the sensors and the process-information sources.
//!
//! Code here is thin: it turns kernel messages into [`crate::engine::Event`]s and answers with
//! the engine's verdict. Pure parsers of kernel data (e.g. macOS `KERN_PROCARGS2` buffers) compile
//! on every OS so they are tested on Linux; calls into the kernel are behind `cfg(target_os)`.
//!
//! Most of the crate's unsafe code is here, under two rules the compiler enforces: an unsafe
//! operation inside an `unsafe fn` still needs its own `unsafe` block, and every `unsafe` block
//! says why it is sound (`// SAFETY:`).
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]

pub mod linux;
pub mod macos;
#[cfg(unix)]
pub mod terminal;

/// Where the agent's feedback (the hook, `agent-guard mcp`) reads a process's ancestors: `/proc`
/// on Linux; `None` elsewhere (no source there yet: they report every agent of this user).
#[cfg(target_os = "linux")]
pub fn ancestry_source() -> Option<Box<dyn crate::lineage::ProcessSource>> {
    Some(Box::new(linux::procfs::ProcFs::new()))
}

/// See the Linux [`ancestry_source`].
#[cfg(not(target_os = "linux"))]
pub fn ancestry_source() -> Option<Box<dyn crate::lineage::ProcessSource>> {
    None
}
