//! Linux: /proc process source and the seccomp supervisor behind `agent-guard run`.

pub mod procfs;
