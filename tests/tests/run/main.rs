//! `agent-guard run` end to end: a fake agent (`bash -c ...` under the supervisor) tries each
//! destructive action of the issue; the file survives, the command gets EPERM, and one
//! well-formed denial names the operation, path, process and agent. The same commands by the
//! human succeed.

mod cli;
mod exec_override;
mod keep;
mod keep_limits;
mod keep_races;
mod record;
mod supervision;
mod tools;
mod zones;

use std::time::Duration;

use agent_guard_e2e::{bin, on_path, text, Sandbox, EPERM};
use serde_json::Value;
