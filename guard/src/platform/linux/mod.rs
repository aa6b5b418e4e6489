//! Linux: /proc process source and the seccomp supervisor behind `agent-guard run`.

pub mod procfs;
#[cfg(target_os = "linux")]
pub mod recent_facts;
#[cfg(target_os = "linux")]
pub mod supervisor;
#[cfg(target_os = "linux")]
pub(crate) mod sys;
