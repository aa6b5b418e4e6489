//! The tools of `agent-guard mcp`: their names, their descriptions (read by a language model,
//! so they say when to call a tool and what to do with its answer), their input schemas, and
//! what each does, synchronously, on the same library calls as the CLI commands.
//!
//! Nothing here may approve, deny or revoke an override, or restore or purge what the guard
//! kept: those are the human's, and a call of such a name is answered with a refusal that says
//! so ([`HUMAN_ONLY`]).

mod explain;

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::engine::{decide, Action, Actor, Attribution, Event, OpKind, OpenFlags, Verdict};
use crate::feedback::{agent_pid_from_env, read_recent_denials, select_denials_within};
use crate::feedback::{DenialRecord, HookContext};
use crate::overrides::{
    approve_command, describe_scope, request_from, request_state, resolve_path, GrantStore,
    RequestInput, RequestState, AGENT_ENV,
};
use crate::paths::Locations;
use crate::policy::{load_for_user, ZoneKind};
use crate::vocab::printable;

pub const WHY_DENIED: &str = "why_denied";
pub const REQUEST_OVERRIDE: &str = "request_override";
pub const OVERRIDE_STATUS: &str = "override_status";
pub const EXPLAIN_PATH: &str = "explain_path";

/// The tools, in the order `tools/list` gives them.
pub const TOOL_NAMES: [&str; 4] = [WHY_DENIED, REQUEST_OVERRIDE, OVERRIDE_STATUS, EXPLAIN_PATH];

/// Default and longest look back of `why_denied`.
pub const DEFAULT_SINCE_SECS: u64 = crate::feedback::WINDOW_SECS;
pub const MAX_SINCE_SECS: u64 = 24 * 3600;

/// Longest `wait_seconds` of `override_status`: clients time tool calls out (a minute or more).
pub const MAX_WAIT_SECS: u64 = 120;

/// At most this many denials in one `why_denied` answer (the newest).
pub const MAX_DENIALS: usize = 20;

/// The answer to a call of any tool this server does not have, approving included.
pub const HUMAN_ONLY: &str = "Approving, denying or revoking an override, and restoring or purging what agent-guard kept, are the user's decisions: no tool of this server does them, and neither may you by other means. Tell the user the request id and that they approve it in their own terminal with `agent-guard override approve ID`; then wait with override_status.";

/// Server instructions sent in the `initialize` answer.
pub const INSTRUCTIONS: &str = "agent-guard is the user's kernel-enforced safety net for AI agents: it blocks destructive or credential-reading operations (the operation fails with EPERM, \"Operation not permitted\"). When a command or file operation fails that way, call why_denied to learn what was blocked and why. Do not work around a block (no sudo, no other tool or interpreter, no copy-then-delete). Either do the task another way, or call request_override with a one-sentence reason, tell the user the request id and that only they can approve it, wait with override_status, and retry only once it is approved. explain_path tells what the policy says about a path before you touch it.";

/// Why a tool call was not carried out; the text is what the model reads.
#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    #[error("{tool}: bad arguments: {message}")]
    BadArguments { tool: String, message: String },
    #[error("{0}")]
    Refused(String),
    #[error("no tool {name:?}; this server has {tools}. {HUMAN_ONLY}", tools = TOOL_NAMES.join(", "))]
    NoSuchTool { name: String },
    #[error("{0}")]
    Failed(String),
}

/// What the tools need to know about the process they serve.
#[derive(Clone, Debug)]
pub struct ToolContext {
    pub locations: Locations,
    /// `--policy`, else the user's policy as every command finds it.
    pub policy: Option<PathBuf>,
    /// `AGENT_GUARD_AGENT` (`NAME:PID`) of the agent that started this server, if any.
    pub agent: Option<String>,
    /// Relative paths in arguments are taken from here (the server's working directory, which
    /// clients set to the project).
    pub cwd: PathBuf,
    /// This server's pid: its ancestors are the agent's processes.
    pub self_pid: i32,
}

impl ToolContext {
    fn env(&self) -> impl Fn(&str) -> Option<String> + '_ {
        move |key| {
            if key == AGENT_ENV {
                self.agent.clone()
            } else {
                crate::paths::process_env(key)
            }
        }
    }

    fn load_policy(&self) -> Result<crate::policy::LoadedPolicy, ToolError> {
        load_for_user(self.policy.as_deref(), &self.env())
            .map_err(|e| ToolError::Failed(format!("the policy could not be loaded: {e}")))
    }
}

/// The tool definitions: name, description, JSON Schema of the arguments.
pub fn definitions() -> Vec<(&'static str, &'static str, Value)> {
    vec![
        (
            WHY_DENIED,
            "List the operations agent-guard blocked for you (this agent and the commands it ran) recently, newest last, each with the rule, the reason in plain words, and the exact override that would allow it. Call this whenever a command or file operation fails with \"Operation not permitted\" (EPERM) or otherwise looks blocked, before you try anything else.",
            json!({
                "type": "object",
                "properties": {
                    "since": {
                        "type": "string",
                        "description": "How far back to look: a whole number and a unit, s, m, h or d (90s, 10m, 2h). Default 10m; at most 24h."
                    }
                },
                "additionalProperties": false
            }),
        ),
        (
            REQUEST_OVERRIDE,
            "Ask the user to allow an operation agent-guard blocked, for a limited time. This files a request and returns its id; it does NOT allow anything by itself: only the user can approve it, in their own terminal. Use it only when the user's task truly needs the blocked operation. Easiest: pass denial_id from why_denied (path, operation and, for a command, its exact arguments come from the denial) and a one-sentence reason. After filing, tell the user the id and the approve command, then call override_status with wait_seconds and retry only once it says approved.",
            json!({
                "type": "object",
                "properties": {
                    "reason": {
                        "type": "string",
                        "description": "One sentence for the user: why the task needs this operation (at most 500 characters, no control characters)."
                    },
                    "denial_id": {
                        "type": "string",
                        "description": "The id of a denial from why_denied; supplies path, operation and a command's arguments."
                    },
                    "path": {
                        "type": "string",
                        "description": "The file or directory (a directory covers its whole subtree), absolute or relative to the server's working directory. Not needed with denial_id."
                    },
                    "ops": {
                        "type": "array",
                        "items": {"type": "string", "enum": ["exec", "unlink", "rmdir", "rename", "open", "truncate", "link", "create"]},
                        "description": "The operations to allow. Not needed with denial_id."
                    },
                    "args": {
                        "type": "array",
                        "items": {"type": "string"},
                        "description": "With ops [\"exec\"]: the command's arguments after the program, exactly as it will be run (for `git clean -n`: [\"clean\", \"-n\"]); the override covers that command only."
                    },
                    "ttl": {
                        "type": "string",
                        "description": "How long the override should last once approved, e.g. 10m (default 10m; the policy sets a maximum)."
                    }
                },
                "required": ["reason"],
                "additionalProperties": false
            }),
        ),
        (
            OVERRIDE_STATUS,
            "Where an override request you filed stands: pending (the user has not decided), approved (retry the operation now, before it expires), denied (do not retry; do the task another way or ask the user), revoked or expired (blocked again). With wait_seconds it waits for the user's decision up to that long before answering.",
            json!({
                "type": "object",
                "properties": {
                    "id": {
                        "type": "string",
                        "description": "The request id request_override returned (r- and hex digits)."
                    },
                    "wait_seconds": {
                        "type": "integer",
                        "minimum": 0,
                        "maximum": MAX_WAIT_SECS,
                        "description": "Wait up to this many seconds for the user to decide (default 0: answer at once)."
                    }
                },
                "required": ["id"],
                "additionalProperties": false
            }),
        ),
        (
            EXPLAIN_PATH,
            "What agent-guard's policy says about a path before you touch it: the zones it lies in (secret, read-only, protected, agent-guard's own files) and, for each operation (read, write, create, truncate, delete, rmdir, or the one you name), whether you may do it, and if not why and how to ask. Use it to plan work near sensitive files instead of trying and failing.",
            json!({
                "type": "object",
                "properties": {
                    "path": {
                        "type": "string",
                        "description": "The path, absolute or relative to the server's working directory; symlinks are resolved as the kernel would."
                    },
                    "op": {
                        "type": "string",
                        "enum": ["exec", "unlink", "rmdir", "rename", "open", "truncate", "link", "create"],
                        "description": "Only this operation (default: the usual file operations). exec: the path is the program."
                    },
                    "write": {
                        "type": "boolean",
                        "description": "With op open: opening for writing (default false: reading)."
                    },
                    "dest": {
                        "type": "string",
                        "description": "With op rename or link: the destination path."
                    },
                    "argv": {
                        "type": "array",
                        "items": {"type": "string"},
                        "description": "With op exec: the command line, argv[0] first (e.g. [\"git\", \"clean\", \"-fdx\"])."
                    }
                },
                "required": ["path"],
                "additionalProperties": false
            }),
        ),
    ]
}

/// Run tool `name` with `arguments` (everything but `override_status`'s waiting, which the
/// server does between calls of [`override_status`]).
pub fn call(ctx: &ToolContext, name: &str, arguments: Value, now: u64) -> Result<Value, ToolError> {
    match name {
        WHY_DENIED => why_denied(ctx, parse(name, arguments)?, now),
        REQUEST_OVERRIDE => request_override(ctx, parse(name, arguments)?, now),
        OVERRIDE_STATUS => {
            let args: StatusArgs = parse(name, arguments)?;
            override_status(ctx, &args.id, now)
        }
        EXPLAIN_PATH => explain::explain_path(ctx, parse(name, arguments)?, now),
        _ => Err(ToolError::NoSuchTool {
            name: printable(name),
        }),
    }
}

fn parse<T: for<'de> Deserialize<'de>>(tool: &str, arguments: Value) -> Result<T, ToolError> {
    // A client that sends no arguments means "all defaults".
    let arguments = if arguments.is_null() {
        Value::Object(Map::new())
    } else {
        arguments
    };
    serde_json::from_value(arguments).map_err(|e| ToolError::BadArguments {
        tool: tool.to_string(),
        message: e.to_string(),
    })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WhyDeniedArgs {
    since: Option<String>,
}

fn why_denied(ctx: &ToolContext, args: WhyDeniedArgs, now: u64) -> Result<Value, ToolError> {
    let window = match args.since.as_deref() {
        None => DEFAULT_SINCE_SECS,
        Some(text) => crate::duration::parse_duration(text)
            .map(|d| d.as_secs())
            .map_err(|e| ToolError::BadArguments {
                tool: WHY_DENIED.into(),
                message: format!("since: {e}"),
            })?,
    };
    if window > MAX_SINCE_SECS {
        return Err(ToolError::BadArguments {
            tool: WHY_DENIED.into(),
            message: format!("since: at most 24h, not {window}s"),
        });
    }
    let records = read_recent_denials(&ctx.locations).map_err(|e| {
        ToolError::Failed(format!(
            "the denial log could not be read: {}",
            printable(&e.to_string())
        ))
    })?;
    let processes = crate::platform::ancestry_source();
    let hook_ctx = HookContext {
        now,
        now_ms: i64::try_from(now).unwrap_or(0) * 1000,
        agent: ctx.agent.clone(),
        agent_pid: ctx.agent.as_deref().and_then(agent_pid_from_env),
        processes: processes.as_deref(),
        self_pid: ctx.self_pid,
    };
    // Every recent denial of this agent, whether or not a hook already reported it: the agent
    // asked.
    let selected = select_denials_within(&records, &Default::default(), &hook_ctx, window);
    let skipped = selected.len().saturating_sub(MAX_DENIALS);
    let denials: Vec<Value> = selected[skipped..].iter().map(|r| denial_json(r)).collect();
    let advice = if denials.is_empty() {
        "No operation of yours was blocked in this window. A failure you see has another cause (or happened earlier: pass a longer since).".to_string()
    } else {
        "Do not work around these blocks (no sudo, no other tool or interpreter, no copy-then-delete). Either do the task another way, or call request_override with the denial's id and a one-sentence reason, tell the user the request id, and retry only after override_status says approved.".to_string()
    };
    Ok(json!({
        "denials": denials,
        "older_not_shown": skipped,
        "advice": advice,
    }))
}

fn denial_json(r: &DenialRecord) -> Value {
    let mut v = json!({
        "id": printable(&r.id),
        "time": r.time,
        "decision": r.decision.as_str(),
        "op": r.op.as_str(),
        "path": printable(&r.path),
        "rule": printable(r.rule.as_str()),
        "reason": printable(&r.reason),
        "process": printable(&r.process),
    });
    if let Some(dest) = &r.dest {
        v["dest"] = json!(printable(dest));
    }
    if let Some(argv) = &r.argv {
        v["command"] = json!(argv.iter().map(|a| printable(a)).collect::<Vec<_>>());
    }
    if let Some(rep) = &r.repeated {
        v["and_more_like_it"] = json!({"count": rep.count, "under": printable(&rep.pattern)});
    }
    if !r.hint.is_empty() {
        v["override_command"] = json!(printable(&r.hint));
    }
    v
}

/// `ops` as a list or one comma-separated string (both are what models send).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum OpList {
    One(String),
    Many(Vec<String>),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RequestArgs {
    reason: String,
    denial_id: Option<String>,
    path: Option<PathBuf>,
    ops: Option<OpList>,
    #[serde(default)]
    args: Vec<String>,
    ttl: Option<String>,
}

fn request_override(ctx: &ToolContext, args: RequestArgs, now: u64) -> Result<Value, ToolError> {
    let loaded = ctx.load_policy()?;
    let input = RequestInput {
        path: args.path,
        ops: match args.ops {
            None => Vec::new(),
            Some(OpList::One(s)) => vec![s],
            Some(OpList::Many(v)) => v,
        },
        reason: args.reason,
        ttl: args.ttl,
        denial: args.denial_id,
        args: args.args,
    };
    let request = request_from(
        &input,
        &ctx.locations,
        &loaded.policy,
        &loaded.ctx.homes,
        &ctx.env(),
        &ctx.cwd,
        now,
    )
    // The same words `override request` prints; they can quote the agent-writable spool.
    .map_err(|e| ToolError::Refused(printable(&e.to_string())))?;
    let scope = describe_scope(
        &request.op_set(),
        &request.path,
        request.args.as_deref(),
        false,
    );
    Ok(json!({
        "id": request.id,
        "state": "pending",
        "scope": printable(&scope),
        "ttl_secs": request.ttl_secs,
        "approve_command": approve_command(&request.id),
        "next_step": format!(
            "Nothing is allowed yet. Tell the user: \"I filed override request {id} ({scope}); if you agree, run `{cmd}` in your own terminal.\" Then call override_status with id {id} and wait_seconds, and retry only once it says approved.",
            id = request.id,
            scope = printable(&scope),
            cmd = approve_command(&request.id),
        ),
    }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct StatusArgs {
    pub id: String,
    #[serde(default)]
    pub wait_seconds: u64,
}

/// `override_status` arguments, for the server's waiting loop.
pub(super) fn status_args(arguments: Value) -> Result<StatusArgs, ToolError> {
    let args: StatusArgs = parse(OVERRIDE_STATUS, arguments)?;
    if args.wait_seconds > MAX_WAIT_SECS {
        return Err(ToolError::BadArguments {
            tool: OVERRIDE_STATUS.into(),
            message: format!(
                "wait_seconds: at most {MAX_WAIT_SECS}, not {}; call again to wait longer",
                args.wait_seconds
            ),
        });
    }
    Ok(args)
}

/// Where request `id` stands, with what the agent should do next; `Ok` with `"state":
/// "pending"` while the user has not decided.
pub fn override_status(ctx: &ToolContext, id: &str, now: u64) -> Result<Value, ToolError> {
    let state = request_state(&ctx.locations, id, now)
        .map_err(|e| ToolError::Refused(printable(&e.to_string())))?;
    let next = match &state {
        RequestState::Pending => "The user has not decided yet. Do not retry the operation; wait (call again with wait_seconds) or go on with other work.",
        RequestState::Approved { .. } => "Approved: retry the operation now, exactly as requested, before it expires.",
        RequestState::Denied => "Denied: do not retry it; do the task another way or ask the user.",
        RequestState::Revoked | RequestState::Expired => "No longer in force: the operation is blocked again; request a new override if the user still wants it.",
    };
    let mut v = serde_json::to_value(&state)
        .map_err(|e| ToolError::Failed(format!("encode the state: {e}")))?;
    v["id"] = json!(id);
    v["summary"] = json!(state.describe(id, now));
    v["next_step"] = json!(next);
    Ok(v)
}

/// Whether an `override_status` answer is settled.
pub fn is_pending(answer: &Value) -> bool {
    answer["state"] == "pending"
}
