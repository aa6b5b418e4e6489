//! Every kernel boundary of agent-guard: the sensors and the process-information sources.
//!
//! Code here is thin: it turns kernel messages into [`crate::engine::Event`]s and answers with
//! the engine's verdict. Pure parsers of kernel data (e.g. macOS `KERN_PROCARGS2` buffers) compile
//! on every OS so they are tested on Linux; calls into the kernel are behind `cfg(target_os)`.

pub mod linux;
pub mod macos;
