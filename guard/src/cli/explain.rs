//! `agent-guard explain [--pid PID] [--json]`: why a process is, or is not, agent-attributed.
//!
//! It prints the live parent chain of the process with, for each one, its pid, start time,
//! executable, argv\[0\] and comm, and which agent pattern matched which of its names; and, when
//! the chain passes through a running `agent-guard run` supervisor (one that published its
//! status in this user's state directory), that the process is the agent's whatever its names:
//! `run` treats its whole tree as the agent. It only reads process and status information; it
//! never changes anything.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;

use crate::lineage::{explain, AgentMatcher, LineageError, ProcessSource};

#[derive(clap::Args, Debug)]
pub struct ExplainArgs {
    /// The process to explain [default: the parent of agent-guard, i.e. the shell that ran it].
    #[arg(long)]
    pub pid: Option<i32>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
    /// The policy whose ai_agent_patterns are used [default: the usual policy search].
    #[arg(long)]
    pub policy: Option<PathBuf>,
}

/// Explain `args.pid` against the policy's `ai_agent_patterns`. Exit status: 0 when the process
/// was explained (attributed or not), 2 when the pid names no process.
pub fn run(args: &ExplainArgs, patterns: &[String]) -> anyhow::Result<i32> {
    let source = process_source()?;
    let locations = crate::paths::Locations::for_user(&crate::paths::process_env);
    let supervisors: Vec<i32> = crate::runtime::status::running(&locations)
        .iter()
        .filter_map(|s| i32::try_from(s.pid).ok())
        .collect();
    run_with(
        args,
        patterns,
        &supervisors,
        source.as_ref(),
        &mut std::io::stdout().lock(),
    )
}

/// Where the chain passes through a running `run` supervisor: its pid and the agent's as the
/// records and `$AGENT_GUARD_AGENT` give it (`agent-guard run` itself, the supervisor's parent).
#[derive(serde::Serialize)]
struct UnderRun {
    supervisor_pid: i32,
    agent_pid: i32,
}

fn run_with(
    args: &ExplainArgs,
    patterns: &[String],
    supervisors: &[i32],
    source: &dyn ProcessSource,
    out: &mut dyn Write,
) -> anyhow::Result<i32> {
    let matcher = AgentMatcher::new(patterns).context("the policy's agent patterns")?;
    let pid = match args.pid {
        Some(pid) => pid,
        None => i32::try_from(std::os::unix::process::parent_id())
            .context("the parent process id does not fit a pid")?,
    };
    match explain(pid, source, &matcher) {
        Ok(explanation) => {
            let under_run = explanation.chain.iter().skip(1).find_map(|link| {
                supervisors.contains(&link.pid).then_some(UnderRun {
                    supervisor_pid: link.pid,
                    agent_pid: link.ppid,
                })
            });
            if args.json {
                let mut value = serde_json::to_value(&explanation)?;
                value["under_run"] = serde_json::to_value(&under_run)?;
                serde_json::to_writer_pretty(&mut *out, &value)?;
                writeln!(out)?;
            } else {
                if let Some(r) = &under_run {
                    writeln!(
                        out,
                        "pid {pid} is the agent's: it descends from `agent-guard run` (pid {}, the agent's pid in the records; supervisor pid {}), which treats every process it starts as the agent, whatever its names; the name check below does not apply.",
                        r.agent_pid, r.supervisor_pid
                    )?;
                }
                writeln!(out, "{explanation}")?;
            }
            Ok(0)
        }
        Err(error @ (LineageError::Vanished { .. } | LineageError::InvalidPid { .. })) => Err(
            super::Exit::bad_input(format!("explain: --pid {pid}: {error}")),
        ),
        Err(error) => Err(error).with_context(|| format!("cannot explain process {pid}")),
    }
}

#[cfg(target_os = "linux")]
fn process_source() -> anyhow::Result<Box<dyn ProcessSource>> {
    Ok(Box::new(crate::platform::linux::procfs::ProcFs::new()))
}

#[cfg(not(target_os = "linux"))]
fn process_source() -> anyhow::Result<Box<dyn ProcessSource>> {
    Err(LineageError::Unsupported).context("agent-guard explain")
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use crate::platform::linux::procfs::ProcFs;

    /// The exit code and stdout, or the error that ends the command (its code and message).
    fn explain_cli(pid: Option<i32>, json: bool) -> (i32, String, String) {
        let args = ExplainArgs {
            pid,
            json,
            policy: None,
        };
        let mut out = Vec::new();
        let patterns = ["claude-agent-guard-test".to_string()];
        match run_with(&args, &patterns, &[], &ProcFs::new(), &mut out) {
            Ok(code) => (code, String::from_utf8(out).unwrap(), String::new()),
            Err(e) => {
                let exit = e.downcast_ref::<super::super::Exit>().expect("an Exit");
                (
                    exit.kind.code(),
                    String::from_utf8(out).unwrap(),
                    e.to_string(),
                )
            }
        }
    }

    #[test]
    fn explains_this_process_as_text_and_json() {
        let pid = std::process::id() as i32;
        let (code, out, err) = explain_cli(Some(pid), false);
        assert_eq!((code, err.as_str()), (0, ""));
        assert!(
            out.starts_with(&format!("pid {pid} is not attributed")),
            "{out}"
        );
        let (code, out, _) = explain_cli(Some(pid), true);
        assert_eq!(code, 0);
        let json: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(json["pid"], pid);
        assert_eq!(json["chain"][0]["pid"], pid);
        assert!(json["agent"].is_null());
    }

    #[test]
    fn default_pid_is_the_parent() {
        let (code, out, _) = explain_cli(None, true);
        assert_eq!(code, 0);
        let json: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(json["pid"], std::os::unix::process::parent_id());
    }

    #[test]
    fn a_missing_pid_exits_2_and_says_so() {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id() as i32;
        child.wait().unwrap();
        let (code, out, err) = explain_cli(Some(pid), false);
        assert_eq!((code, out.as_str()), (2, ""));
        assert!(
            err.contains(&format!("process {pid} does not exist")),
            "{err}"
        );
        let (code, _, err) = explain_cli(Some(-3), false);
        assert_eq!(code, 2);
        assert!(err.contains("invalid pid -3"), "{err}");
    }
}
