//! Feedback to the agent: turn the denials of its last tool call into words it can act on.
//!
//! - [`run_hook`] is `agent-guard hook claude-code`: Claude Code runs it after each tool call
//!   (PostToolUse, and PostToolUseFailure when the call failed) with the call as JSON on stdin. It
//!   finds the denials of *this* agent that are recent and not yet reported to this session, and
//!   answers with the hook output that puts a short explanation into the agent's context: what
//!   was blocked, by which rule, why, and the exact `override request` command. No denial: no
//!   output at all.
//! - [`instructions()`] is `agent-guard instructions`: the settings.json hook snippet and the
//!   CLAUDE.md / AGENTS.md paragraph that teaches an agent the loop.
//!
//! This module only reads denials and writes its own per-session cursors; it must never change
//! a grant or a request, and never trust its input (the hook input and the denial log carry
//! agent-chosen file names, which are shown with control characters escaped).

pub mod instructions;

mod session;

pub use session::{run_hook, CALL_START_SLACK_MS, LOG_LAG};

use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use instructions::HOOK_COMMAND;
pub use instructions::{instructions, AgentKind};

pub use crate::audit::DenialRecord;
use crate::overrides::files;
use crate::paths::Locations;
use crate::vocab::{printable, Decision, IoError, OpKind, RuleId};

/// How far back the hook looks for denials. Claude Code gives no start time for the tool call;
/// the per-session cursor keeps a denial from being reported twice, and the window keeps the
/// first call of a session from reporting old history.
pub const WINDOW_SECS: u64 = 600;

/// At most this many denials are spelled out in one hook answer.
pub const MAX_REPORTED: usize = 5;

/// What went wrong in the feedback shim.
#[derive(Debug, thiserror::Error)]
pub enum FeedbackError {
    #[error("hook input on stdin: {0}: expected Claude Code's hook JSON (session_id, hook_event_name, tool_name, ...)")]
    BadInput(String),
    #[error(transparent)]
    Log(#[from] crate::audit::DenialLogError),
    #[error(transparent)]
    Io(#[from] IoError),
}

/// Read denial records from `file`: all of them (rotated files included, through the audit
/// module's reader), or only those in the last `tail_bytes` of the live file, which is what the
/// hook needs after every tool call (a long log is not parsed whole each time). Lines that do not
/// parse (a partial first line of a tail, a foreign line) are skipped.
pub fn read_denials(
    file: &Path,
    tail_bytes: Option<u64>,
) -> Result<Vec<DenialRecord>, FeedbackError> {
    let Some(tail) = tail_bytes else {
        return crate::audit::denials::read_denials(file, None)
            .map(|outcome| outcome.records)
            .map_err(FeedbackError::from);
    };
    let io = |what| IoError::at(file, what);
    let mut f = match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(file)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io("open the denial log")(e).into()),
    };
    let len = f.metadata().map_err(io("inspect the denial log"))?.len();
    f.seek(SeekFrom::Start(len.saturating_sub(tail)))
        .map_err(io("seek in the denial log"))?;
    let mut bytes = Vec::new();
    f.take(tail)
        .read_to_end(&mut bytes)
        .map_err(io("read the denial log"))?;
    Ok(bytes
        .split(|b| *b == b'\n')
        .filter_map(|l| serde_json::from_slice::<DenialRecord>(l).ok())
        .collect())
}

/// The fields of Claude Code's hook input the shim uses (PostToolUse / PostToolUseFailure).
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct HookInput {
    pub session_id: String,
    pub hook_event_name: String,
    #[serde(default)]
    pub cwd: Option<String>,
    #[serde(default)]
    pub tool_name: Option<String>,
    #[serde(default)]
    pub tool_input: Value,
    #[serde(default)]
    pub tool_use_id: Option<String>,
    /// How long the tool call ran (Claude Code sends it): denials from before its start are
    /// not its doing (Claude Code's own lock files, an earlier call's stragglers).
    #[serde(default)]
    pub duration_ms: Option<u64>,
    /// The tool's result: an object (Claude Code, Gemini CLI) or a string (Codex).
    #[serde(default)]
    pub tool_response: Value,
}

impl HookInput {
    pub fn parse(bytes: &[u8]) -> Result<HookInput, FeedbackError> {
        serde_json::from_slice(bytes).map_err(|e| FeedbackError::BadInput(e.to_string()))
    }

    /// The events the shim answers; others get no output.
    pub fn is_post_tool(&self) -> bool {
        matches!(
            self.hook_event_name.as_str(),
            // Claude Code and Codex; Gemini CLI's AfterTool has the same input fields.
            "PostToolUse" | "PostToolUseFailure" | "AfterTool"
        )
    }

    /// The error of a Gemini CLI tool that failed (`tool_response.error.message` of AfterTool):
    /// its own file tools fail this way on EPERM, and the model then gets only that message.
    pub fn failed_tool_error(&self) -> Option<&str> {
        if self.hook_event_name != "AfterTool" {
            return None;
        }
        self.tool_response["error"]["message"].as_str()
    }
}

/// Facts about the world the hook runs in, passed in so the selection is testable.
pub struct HookContext<'a> {
    pub now: u64,
    /// The same instant in milliseconds: the tool call's start is `now_ms - duration_ms`.
    pub now_ms: i64,
    /// `AGENT_GUARD_AGENT` as set for this agent's tree (`NAME:PID`): whose override requests
    /// this agent filed, so it can be told what became of them.
    pub agent: Option<String>,
    /// The pid in `AGENT_GUARD_AGENT` (`NAME:PID`), which `agent-guard run` sets for its tree.
    pub agent_pid: Option<i32>,
    /// Where to read this process's ancestors; `None`: unknown, report every agent's denials.
    pub processes: Option<&'a dyn crate::lineage::ProcessSource>,
    /// This hook process.
    pub self_pid: i32,
}

/// Which of `records` to report to this session: recent, not reported before, and this
/// agent's: its `agent_pid` is the `AGENT_GUARD_AGENT` pid or one of the hook's ancestors.
///
/// The walk up the ancestors stops as soon as it reaches a pid that some recent record names
/// (or the `AGENT_GUARD_AGENT` pid), without reading it: above the agent sits the supervisor,
/// whose `/proc` entries its agents may not read, and each refused read would be a denial.
pub fn select_denials<'a>(
    records: &'a [DenialRecord],
    already_reported: &BTreeMap<String, u64>,
    ctx: &HookContext,
) -> Vec<&'a DenialRecord> {
    select_denials_within(records, already_reported, ctx, WINDOW_SECS)
}

/// [`select_denials`] over the last `window_secs` instead of [`WINDOW_SECS`] (`agent-guard
/// mcp`'s `why_denied` takes the window from the agent).
pub fn select_denials_within<'a>(
    records: &'a [DenialRecord],
    already_reported: &BTreeMap<String, u64>,
    ctx: &HookContext,
    window_secs: u64,
) -> Vec<&'a DenialRecord> {
    let since = ctx.now.saturating_sub(window_secs);
    let recent: Vec<&DenialRecord> = records
        .iter()
        .filter(|r| r.decision != Decision::Audit)
        .filter(|r| r.ts >= since)
        .filter(|r| !already_reported.contains_key(&key_of(r)))
        .collect();
    if recent.is_empty() {
        return recent;
    }
    let named: std::collections::HashSet<i32> = recent
        .iter()
        .map(|r| r.agent_pid)
        .filter(|p| *p > 0)
        .chain(ctx.agent_pid)
        .collect();
    let ancestors = ctx
        .processes
        .map(|source| ancestors_of(source, ctx.self_pid, |p| named.contains(&p)));
    recent
        .into_iter()
        .filter(|r| {
            // agent_pid 0: a writer that did not know the agent; report rather than hide.
            r.agent_pid <= 0
                || (ctx.agent_pid.is_none() && ancestors.is_none())
                || ctx.agent_pid == Some(r.agent_pid)
                || ancestors.as_ref().is_some_and(|a| a.contains(&r.agent_pid))
        })
        .collect()
}

/// The identity of a record in the cursor: its id, or its content when a writer gave none.
fn key_of(r: &DenialRecord) -> String {
    if r.id.is_empty() {
        format!("{}:{}:{}:{}", r.ts, r.op, r.path, r.pid)
    } else {
        r.id.clone()
    }
}

/// The explanation put into the agent's context.
pub fn render_context(denials: &[&DenialRecord]) -> String {
    let shown = &denials[..denials.len().min(MAX_REPORTED)];
    let mut text = format!(
        "agent-guard, the user's safety net for AI agents, blocked {} during this tool call (the kernel answered EPERM, \"Operation not permitted\"):\n",
        match denials.len() {
            1 => "1 operation".to_string(),
            n => format!("{n} operations"),
        }
    );
    for (i, d) in shown.iter().enumerate() {
        let mut target = match &d.dest {
            Some(dest) => format!("{} -> {}", printable(&d.path), printable(dest)),
            None => printable(&d.path),
        };
        if let Some(rep) = &d.repeated {
            target.push_str(&format!(
                " (and {} more like it under {})",
                rep.count,
                printable(&rep.pattern)
            ));
        }
        text.push_str(&format!(
            "{}. {} {} (rule {}{}): {}\n",
            i + 1,
            d.op,
            target,
            printable(d.rule.as_str()),
            if d.id.is_empty() {
                String::new()
            } else {
                format!(", denial {}", printable(&d.id))
            },
            printable(&d.reason),
        ));
        let hint = printable(&d.hint);
        if hint.starts_with("agent-guard ") {
            text.push_str(&format!(
                "   If the user wants this done, request an override: {hint}\n"
            ));
        } else if !hint.is_empty() {
            text.push_str(&format!("   Next step: {hint}\n"));
        }
    }
    if denials.len() > shown.len() {
        text.push_str(&format!(
            "... and {} more: run `agent-guard denials --since 10m` to see them all.\n",
            denials.len() - shown.len()
        ));
    }
    text.push_str(
        "Do not work around the block (no sudo, no other tool or interpreter, no copy-then-delete). Either do the task another way, or file the override request with a one-sentence reason, tell the user its id and that they approve it with `agent-guard override approve ID`, and retry only after they have approved it. You cannot approve it yourself.",
    );
    text
}

/// The hook answer that adds `context` to the agent's context for `event_name`. After a
/// PostToolUse it also says `decision: "block"` with the same text as `reason`: Claude Code
/// shows a PostToolUse hook's reason to the model even where it drops additionalContext
/// (anthropics/claude-code#55889). (PostToolUseFailure takes no decision: the call failed.)
///
/// Gemini CLI appends an AfterTool hook's additionalContext to the tool's output, but when the
/// tool failed (`failed_tool_error`, e.g. its write_file on EPERM) the model gets only the
/// error message: then the answer is `decision: "deny"` with that message and the context as
/// `reason`, which Gemini CLI hands the model in the error's place. A tool that succeeded
/// keeps its output (a shell command that exits 1 has succeeded as a tool call).
pub fn hook_output(event_name: &str, context: &str, failed_tool_error: Option<&str>) -> Value {
    let mut out = serde_json::json!({
        "hookSpecificOutput": {
            "hookEventName": event_name,
            "additionalContext": context,
        }
    });
    if event_name == "PostToolUse" {
        out["decision"] = serde_json::json!("block");
        out["reason"] = serde_json::json!(context);
    }
    if let Some(error) = failed_tool_error {
        out["decision"] = serde_json::json!("deny");
        out["reason"] = serde_json::json!(format!("{error}\n\n{context}"));
    }
    out
}

/// The denial records that can fall in a window (the tail of the live log: a large log is not
/// read whole per call), less agent-guard's own doings inside the agent's tree.
pub fn read_recent_denials(locations: &Locations) -> Result<Vec<DenialRecord>, FeedbackError> {
    let mut records = read_denials(&locations.denials, Some(4 << 20))?;
    // Where the cursor is not agent-writable, the hook's own write of it is a denial; telling
    // the agent about it would only make the next call write (and be denied) again.
    records.retain(|r| !Path::new(&r.path).starts_with(&locations.hook_cursors));
    // Nor about agent-guard's own reads of the supervisor's /proc entry: a hook whose walk
    // up the tree found no agent named in the log reaches the supervisor, which is refused
    // (and recorded as a signal to the guard); that is the hook's doing, not the agent's.
    records.retain(|r| {
        !(r.rule == RuleId::GuardSelf && r.op == OpKind::Signal && r.process == "agent-guard")
    });
    Ok(records)
}

/// The agent pid in an `AGENT_GUARD_AGENT` value (`NAME:PID`).
pub fn agent_pid_from_env(value: &str) -> Option<i32> {
    value
        .rsplit_once(':')
        .and_then(|(_, pid)| pid.parse().ok())
        .filter(|pid| *pid > 0)
}

/// The pids above `pid` in the live process tree, nearest first (at most 64). The walk ends
/// after the first pid for which `stop` holds, without reading that process.
pub fn ancestors_of(
    source: &dyn crate::lineage::ProcessSource,
    pid: i32,
    stop: impl Fn(i32) -> bool,
) -> Vec<i32> {
    let mut out = Vec::new();
    let mut current = pid;
    while out.len() < 64 {
        match source.info(current) {
            Ok(info) if info.ppid > 0 && info.ppid != current => {
                out.push(info.ppid);
                if stop(info.ppid) {
                    break;
                }
                current = info.ppid;
            }
            _ => break,
        }
    }
    out
}
