//! One hook call answered: the session's cursor (what it was told already, when its last call
//! ended), the denials of this tool call, and what became of the agent's override requests.

use super::*;

/// Denials and override decisions already reported to one session (key → unix seconds),
/// pruned to the window, and when the session's last tool call ended.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Cursor {
    reported: BTreeMap<String, u64>,
    /// Milliseconds: the hook's previous run in this session. Without the tool call's duration
    /// in the input, denials from before it belong to earlier calls.
    #[serde(default)]
    last_call_ms: Option<i64>,
}

/// How much earlier than `now - duration_ms` a denial may be and still be the call's: the time
/// between the tool's end and the hook's start (the client spawning it; with 200 ms, a Read's
/// denial on a busy two-core machine fell outside and went unexplained) and the record's clock.
pub const CALL_START_SLACK_MS: i64 = 1500;

fn cursor_file(locations: &Locations, session_id: &str) -> PathBuf {
    let safe = !session_id.is_empty()
        && session_id.len() <= 128
        && session_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    let name = if safe {
        session_id.to_string()
    } else {
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for b in session_id.bytes() {
            hash ^= u64::from(b);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
        format!("h{hash:016x}")
    };
    locations.hook_cursors.join(format!("{name}.json"))
}

fn load_cursor(file: &Path) -> Cursor {
    files::read_regular(file)
        .ok()
        .flatten()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

/// Answer one hook call: the JSON to print, or `None` when there is nothing to say.
///
/// A cursor that cannot be written (the state dir not carved out for the agent) only means a
/// denial may be reported again by a later call within the window; it is not an error.
pub fn run_hook(
    input: &[u8],
    locations: &Locations,
    ctx: &HookContext,
) -> Result<Option<Value>, FeedbackError> {
    let raw = input;
    let input = HookInput::parse(raw)?;
    if !input.is_post_tool() {
        return Ok(None);
    }
    let file = cursor_file(locations, &input.session_id);
    let mut cursor = load_cursor(&file);
    // Agent-writable: the hook runs inside the agent's tree. Tampering with the cursors only
    // changes what the agent itself is told.
    let read = || read_recent_denials(locations);
    // Only denials of this tool call: from its start on (Claude Code gives its duration), or,
    // without one, since this session's previous hook run. Claude Code's own operations just
    // before a call (its lock files) are not the call's.
    let call_start = input
        .duration_ms
        .map(|d| ctx.now_ms - d as i64 - CALL_START_SLACK_MS)
        .or(cursor.last_call_ms);
    // A shell tool's command runs in processes of its own, below the agent: the agent's own
    // processes, the ones the hook runs under, do their housekeeping at the same time (Claude
    // Code's plugin-store lock files during a `sleep`), and that is not the command's doing.
    let shell_tool = matches!(
        input.tool_name.as_deref(),
        Some("Bash" | "exec_command" | "shell" | "run_shell_command")
    );
    let agents_own: Vec<i32> = match ctx.processes {
        Some(source) if shell_tool => {
            ancestors_of(source, ctx.self_pid, |p| Some(p) == ctx.agent_pid)
        }
        _ => Vec::new(),
    };
    let read = || -> Result<Vec<DenialRecord>, FeedbackError> {
        let mut records = read()?;
        if let Some(start) = call_start {
            records.retain(|r| r.unix_millis() >= i128::from(start));
        }
        // A record names the calling thread: a worker thread of the agent's own process is
        // the process (the thread group) it belongs to, while it lives.
        let own = |tid: i32| {
            agents_own.contains(&tid)
                || ctx
                    .processes
                    .and_then(|source| source.key(tid).ok())
                    .is_some_and(|key| agents_own.contains(&key.pid))
        };
        if !agents_own.is_empty() {
            records.retain(|r| !own(r.pid));
        }
        Ok(records)
    };
    let mut records = read()?;
    // The supervisor logs denials from a queue, off the hot path: when the tool's output shows
    // an EPERM but its record is not in the log yet, give the writer a moment.
    let looks_denied = mentions_eperm(raw);
    let deadline = std::time::Instant::now() + LOG_LAG;
    while looks_denied
        && select_denials(&records, &cursor.reported, ctx).is_empty()
        && std::time::Instant::now() < deadline
    {
        std::thread::sleep(std::time::Duration::from_millis(20));
        records = read()?;
    }
    let selected = select_denials(&records, &cursor.reported, ctx);
    let decided = decided_requests(locations, ctx, &cursor.reported);
    let since = ctx.now.saturating_sub(WINDOW_SECS);
    cursor.reported.retain(|_, t| *t >= since);
    cursor.last_call_ms = Some(ctx.now_ms);
    for r in &selected {
        cursor.reported.insert(key_of(r), r.ts);
    }
    for (key, _) in &decided {
        cursor.reported.insert(key.clone(), ctx.now);
    }
    if files::ensure_dir(&locations.hook_cursors).is_ok() {
        if let Ok(bytes) = serde_json::to_vec(&cursor) {
            let _ = files::write_atomic(&file, &bytes);
        }
    }
    if selected.is_empty() && decided.is_empty() {
        return Ok(None);
    }
    let mut context = String::new();
    for (_, line) in &decided {
        context.push_str(line);
        context.push('\n');
    }
    if !selected.is_empty() {
        context.push_str(&render_context(&selected));
    }
    Ok(Some(hook_output(
        &input.hook_event_name,
        context.trim_end(),
        input.failed_tool_error(),
    )))
}

/// What became of this agent's override requests since the session was last told: one line
/// each, keyed for the cursor (`override:ID:EVENT`). Only for an agent named by
/// `AGENT_GUARD_AGENT`, whose requests carry that name.
fn decided_requests(
    locations: &Locations,
    ctx: &HookContext,
    reported: &BTreeMap<String, u64>,
) -> Vec<(String, String)> {
    use crate::audit::OverrideEventKind as Kind;
    let Some(agent) = ctx.agent.as_deref() else {
        return Vec::new();
    };
    let since = ctx.now.saturating_sub(WINDOW_SECS);
    let events = crate::overrides::read_recent_events(locations, 256 * 1024).unwrap_or_default();
    events
        .iter()
        .filter(|e| e.agent.as_deref() == Some(agent) && e.ts >= since)
        .filter(|e| e.event != Kind::Request)
        .filter_map(|e| {
            let key = format!("override:{}:{}", e.id, e.event.as_str());
            if reported.contains_key(&key) {
                return None;
            }
            let what = crate::overrides::describe_scope(&e.ops, &e.path, e.args.as_deref(), false);
            let until = e
                .expires_at
                .map(crate::vocab::time::rfc3339_from_secs)
                .unwrap_or_default();
            let line = match e.event {
                Kind::Approve => format!(
                    "agent-guard: the user APPROVED override request {} ({what}) until {until}: retry the operation now.",
                    e.id
                ),
                Kind::Deny => format!(
                    "agent-guard: the user DENIED override request {} ({what}): do not retry it; do the task another way or ask the user.",
                    e.id
                ),
                Kind::Revoke => format!(
                    "agent-guard: the user REVOKED the override {} ({what}): the operation is blocked again.",
                    e.id
                ),
                Kind::Expire => format!(
                    "agent-guard: the override {} ({what}) EXPIRED: the operation is blocked again; request a new one if the user still wants it.",
                    e.id
                ),
                Kind::Request => return None,
            };
            Some((key, printable(&line)))
        })
        .collect()
}

/// How long the hook waits for a denial record when the tool's output shows an EPERM. Only
/// then: the writer is normally a few milliseconds behind, but with 500 ms the real-client tests
/// (agents_claude) sometimes left a denial unexplained on a loaded two-core machine.
pub const LOG_LAG: std::time::Duration = std::time::Duration::from_millis(2000);

/// Whether the hook input carries the text of an EPERM (the Bash tool's stderr, a file tool's
/// error message).
fn mentions_eperm(raw: &[u8]) -> bool {
    const MARKS: [&[u8]; 2] = [b"Operation not permitted", b"EPERM"];
    MARKS.iter().any(|m| raw.windows(m.len()).any(|w| w == *m))
}
