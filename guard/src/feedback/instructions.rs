//! What teaches an agent the closed loop (denied → explained → request → human approval →
//! retry): the hook entry for its settings and the paragraph for its instructions file
//! (CLAUDE.md, AGENTS.md, GEMINI.md). `agent-guard instructions` prints them as JSON;
//! `agent-guard install` merges them into the agent's own files.

use serde_json::{json, Value};

/// Which agent the instructions are for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum AgentKind {
    /// Claude Code: PostToolUse/PostToolUseFailure hooks in ~/.claude/settings.json.
    ClaudeCode,
    /// Codex CLI: a PostToolUse hook in ~/.codex/hooks.json (trusted in config.toml).
    Codex,
    /// Gemini CLI: an AfterTool hook in ~/.gemini/settings.json.
    GeminiCli,
    /// Cursor: its hooks cannot add context after a command; the rules text only.
    Cursor,
}

impl AgentKind {
    pub fn name(self) -> &'static str {
        match self {
            AgentKind::ClaudeCode => "claude-code",
            AgentKind::Codex => "codex",
            AgentKind::GeminiCli => "gemini-cli",
            AgentKind::Cursor => "cursor",
        }
    }

    /// The instructions file the agent reads for every session, relative to the home.
    pub fn instructions_file(self) -> Option<&'static str> {
        match self {
            AgentKind::ClaudeCode => Some(".claude/CLAUDE.md"),
            AgentKind::Codex => Some(".codex/AGENTS.md"),
            AgentKind::GeminiCli => Some(".gemini/GEMINI.md"),
            AgentKind::Cursor => None,
        }
    }

    /// Whether the agent has a hook that adds agent-guard's explanation after a tool call.
    pub fn has_hook(self) -> bool {
        !matches!(self, AgentKind::Cursor)
    }
}

/// The tools whose calls can touch files: Claude Code's hook runs after each of them. Its own
/// Read, Glob and Grep too, so that a secret zone's denial of a Read is explained.
pub const HOOK_MATCHER: &str = "Bash|Read|Write|Edit|MultiEdit|NotebookEdit|Glob|Grep";

/// Codex's shell tool, as its hooks name it.
pub const CODEX_HOOK_MATCHER: &str = "Bash";

/// Gemini CLI's tools that run commands or touch files (a regular expression, unanchored).
/// `grep_search` is what Gemini CLI 0.61 calls the tool older versions named
/// `search_file_content`; both stay, as does `read_many_files`, for the versions that have it.
pub const GEMINI_HOOK_MATCHER: &str =
    "run_shell_command|write_file|replace|read_file|read_many_files|glob|grep_search|search_file_content";

/// The command every hook runs.
pub const HOOK_COMMAND: &str = "agent-guard hook claude-code";

/// One hook group in the Claude Code / Codex shape.
pub fn hook_group(matcher: &str) -> Value {
    json!({
        "matcher": matcher,
        "hooks": [{"type": "command", "command": HOOK_COMMAND, "timeout": 10}]
    })
}

/// The hooks section for Claude Code's settings.json (`~/.claude/settings.json` or
/// `.claude/settings.json`).
pub fn claude_settings() -> Value {
    let entry = json!([hook_group(HOOK_MATCHER)]);
    json!({"hooks": {"PostToolUse": entry, "PostToolUseFailure": entry}})
}

/// Codex's `~/.codex/hooks.json` (PostToolUse runs after failed commands too).
pub fn codex_hooks() -> Value {
    json!({"hooks": {"PostToolUse": [hook_group(CODEX_HOOK_MATCHER)]}})
}

/// Gemini CLI's hook group for `AfterTool` in `~/.gemini/settings.json` (timeout in ms).
pub fn gemini_hook_group() -> Value {
    json!({
        "matcher": GEMINI_HOOK_MATCHER,
        "hooks": [{"type": "command", "command": HOOK_COMMAND, "name": "agent-guard", "timeout": 10000}]
    })
}

/// The settings snippet for `agent`, and the file it goes in.
pub fn settings(agent: AgentKind) -> (&'static str, Value) {
    match agent {
        AgentKind::ClaudeCode => ("~/.claude/settings.json", claude_settings()),
        AgentKind::Codex => ("~/.codex/hooks.json", codex_hooks()),
        AgentKind::GeminiCli => (
            "~/.gemini/settings.json",
            json!({"hooks": {"AfterTool": [gemini_hook_group()]}}),
        ),
        AgentKind::Cursor => ("Cursor Settings > Rules", json!({})),
    }
}

const LOOP: &str = "\
To ask for an exception, run
  agent-guard override request PATH --op OP --reason 'one sentence: why the user wants this'
(or `agent-guard override request --denial ID --reason '...'` with the id of the denial; for a
blocked command this asks for exactly that command), for the narrowest path and the operations
you need. It prints a request id. Tell the user the id and that they approve it in their own
terminal with `agent-guard override approve ID`, then wait: `agent-guard override status ID
--wait 5m` returns when they have decided. You cannot approve it yourself, and retrying before
approval fails the same way. Once approved, the grant lasts a limited time (10 minutes unless the
user chooses otherwise) and then ends by itself. Never work around a denial: no sudo, no other
tool, interpreter or copy-then-delete to get the same effect. Requests for `/`, a home directory
or a whole protected zone are refused.";

/// The CLAUDE.md / AGENTS.md / GEMINI.md paragraph for `agent`.
pub fn agent_paragraph(agent: AgentKind) -> String {
    let intro = "## agent-guard\n\nThis machine runs agent-guard, the user's safety net for AI agents. In protected places, what \
you delete, overwrite or truncate is kept first so the user can undo it (`agent-guard undo list` \
shows it); deleting many files at once is stopped. It stops agents from changing read-only files \
and reading credentials, and refuses what it cannot keep; such an operation fails with EPERM \
(\"Operation not permitted\"), whatever tool you use.";
    let how_to_learn = if agent.has_hook() {
        "After a tool call that agent-guard blocked, a hook adds a note to your context saying what was
blocked, by which rule, why, and the exact command that requests an override. Read it before you
do anything else. (`agent-guard denials --since 2m --json` lists the recent denials too.)"
    } else {
        "When a command fails with EPERM or \"Operation not permitted\", run
  agent-guard denials --since 2m --json
to see what agent-guard blocked: each record names the `path`, the `op`, the `rule`, a `reason`
and a `hint`, the exact command that requests an override. Read them before you do anything else."
    };
    format!("{intro}\n\n{how_to_learn}\n\n{LOOP}\n")
}

/// What `agent-guard instructions --agent AGENT` prints: the settings snippet and its file, the
/// instructions paragraph and its file, as one JSON object.
pub fn instructions(agent: AgentKind) -> Value {
    let (settings_file, settings) = settings(agent);
    json!({
        "agent": agent.name(),
        "settings_file": settings_file,
        "settings": settings,
        "instructions_file": agent.instructions_file().map(|f| format!("~/{f}")),
        "instructions": agent_paragraph(agent),
        "install_command": format!("agent-guard install {}", agent.name()),
    })
}
