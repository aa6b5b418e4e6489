//! `agent-guard instructions`: what to paste into an agent's configuration so it learns the
//! closed loop (denied → explained → request → human approval → retry).

use serde_json::json;

/// Which agent the instructions are for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum AgentKind {
    /// Claude Code: a PostToolUse/PostToolUseFailure hook explains each denial in context.
    ClaudeCode,
    /// Codex: no such hook; the agent asks `agent-guard denials` after an EPERM.
    Codex,
}

/// The tools whose calls can touch files: the hook runs after each of them. Claude Code's own
/// Read, Glob and Grep too, so that a secret zone's denial of a Read is explained.
pub const HOOK_MATCHER: &str = "Bash|Read|Write|Edit|MultiEdit|NotebookEdit|Glob|Grep";

/// The hooks section for Claude Code's settings.json (`~/.claude/settings.json` or
/// `.claude/settings.json`).
pub fn claude_settings() -> serde_json::Value {
    let entry = json!([{
        "matcher": HOOK_MATCHER,
        "hooks": [{"type": "command", "command": "agent-guard hook claude-code", "timeout": 10}]
    }]);
    json!({"hooks": {"PostToolUse": entry, "PostToolUseFailure": entry}})
}

const LOOP: &str = "\
To ask for an exception, run
  agent-guard override request PATH --op OP --reason 'one sentence: why the user wants this'
(or `agent-guard override request --denial ID --reason '...'` with the id of the denial), for the
narrowest path and the operations you need. It prints a request id. Tell the user the id and that
they approve it in their own terminal with `agent-guard override approve ID`, then wait: you
cannot approve it yourself, and retrying before approval fails the same way. Once approved, the
grant lasts a limited time (10 minutes unless the user chooses otherwise) and then ends by itself.
Never work around a denial: no sudo, no other tool, interpreter or copy-then-delete to get the
same effect. Requests for `/`, a home directory or a whole protected zone are refused.";

/// The CLAUDE.md / AGENTS.md paragraph for `agent`.
pub fn agent_paragraph(agent: AgentKind) -> String {
    let intro = "## agent-guard\n\nThis machine runs agent-guard, the user's safety net for AI agents. In protected places, what \
you delete, overwrite or truncate is kept first so the user can undo it (`agent-guard undo list` \
shows it); deleting many files at once is stopped. It stops agents from changing read-only files \
and reading credentials, and refuses what it cannot keep; such an operation fails with EPERM \
(\"Operation not permitted\"), whatever tool you use.";
    let how_to_learn = match agent {
        AgentKind::ClaudeCode => "\
After a tool call that agent-guard blocked, a hook adds a note to your context saying what was
blocked, by which rule, why, and the exact command that requests an override. Read it before you
do anything else."
            .to_string(),
        AgentKind::Codex => "\
When a command fails with EPERM or \"Operation not permitted\", run
  agent-guard denials --since 2m --json
to see what agent-guard blocked: each record names the `path`, the `op`, the `rule`, a `reason`
and a `hint`, the exact command that requests an override. Read them before you do anything else."
            .to_string(),
    };
    format!("{intro}\n\n{how_to_learn}\n\n{LOOP}\n")
}

/// Everything `agent-guard instructions --agent AGENT` prints.
pub fn instructions(agent: AgentKind) -> String {
    let paragraph = agent_paragraph(agent);
    match agent {
        AgentKind::ClaudeCode => format!(
            "# 1. Add this to ~/.claude/settings.json (or the project's .claude/settings.json),\n#    merged with any hooks you already have:\n\n{}\n\n# 2. Add this to CLAUDE.md:\n\n{paragraph}",
            serde_json::to_string_pretty(&claude_settings()).unwrap_or_default()
        ),
        AgentKind::Codex => format!(
            "# Codex has no hook that runs after a tool call; add this to AGENTS.md:\n\n{paragraph}"
        ),
    }
}
