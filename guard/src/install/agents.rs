//! Each agent's files, as `install` and `uninstall` change them (see the module above).

use std::path::{Path, PathBuf};

use serde_json::{json, Map, Value};

use super::codex_trust::{set_table, trust_hash, trust_header, trust_key};
use super::mcp_servers::{claude_code_server, codex_table, plain_server, set_json_server};
use super::{read_text, replace_block, Change, Direction, InstallError, Plan};
use crate::feedback::instructions::{
    agent_paragraph, codex_hooks, gemini_hook_group, hook_group, AgentKind, HOOK_COMMAND,
    HOOK_MATCHER,
};

/// The agents `install` knows (the same names as `instructions --agent`).
pub type Agent = AgentKind;

const MD_BEGIN: &str = "<!-- agent-guard:begin (managed by `agent-guard install`; `agent-guard uninstall` removes it) -->";
const MD_END: &str = "<!-- agent-guard:end -->";
const RC_BEGIN: &str =
    "# >>> agent-guard: agents run under `agent-guard run` (agent-guard install) >>>";
const RC_END: &str = "# <<< agent-guard <<<";

/// What `install AGENT` (or `uninstall AGENT`) would change under `home`. `shell` is the
/// user's login shell (`$SHELL`) for the alias that runs the agent under `agent-guard run`
/// (Linux only: `linux`).
pub fn plan(
    agent: Agent,
    direction: Direction,
    home: &Path,
    shell: Option<&str>,
    linux: bool,
) -> Result<Plan, InstallError> {
    let install = direction == Direction::Install;
    let mut plan = Plan::default();
    match agent {
        Agent::ClaudeCode => {
            let settings = home.join(".claude/settings.json");
            plan.changes.push(json_change(
                &settings,
                "hooks PostToolUse, PostToolUseFailure",
                |v| {
                    for event in ["PostToolUse", "PostToolUseFailure"] {
                        set_hook_group(v, event, install.then(|| hook_group(HOOK_MATCHER)));
                    }
                },
            )?);
            // User-scope MCP servers live in ~/.claude.json, beside Claude Code's own state.
            plan.changes.push(json_change(
                &home.join(".claude.json"),
                "MCP server agent-guard",
                |v| set_json_server(v, install.then(claude_code_server)),
            )?);
        }
        Agent::Codex => {
            let hooks_json = home.join(".codex/hooks.json");
            let before_hooks = read_json(&hooks_json)?;
            let old_at = our_handler(&before_hooks, "PostToolUse");
            let hooks_change = json_change(&hooks_json, "hook PostToolUse", |v| {
                if v.as_object().is_some_and(|o| o.is_empty()) && install {
                    *v = codex_hooks();
                } else {
                    set_hook_group(v, "PostToolUse", install.then(|| hook_group("Bash")));
                }
            })?;
            let after_hooks: Value = hooks_change
                .after
                .as_deref()
                .and_then(|t| serde_json::from_str(t).ok())
                .unwrap_or(Value::Null);
            let new_at = our_handler(&after_hooks, "PostToolUse");
            plan.changes.push(hooks_change);
            let config = home.join(".codex/config.toml");
            let before = read_text(&config)?;
            let mut toml = before.clone().unwrap_or_default();
            // Codex keys trust by position: our old entry goes when our handler moved or went,
            // and when it went, the entries of the handlers after it move up as they did.
            if let Some((g, h)) = old_at.filter(|&at| Some(at) != new_at) {
                toml = set_table(
                    &toml,
                    &trust_header(&trust_key(&hooks_json, "post_tool_use", g, h)),
                    None,
                );
                if new_at.is_none() {
                    let groups =
                        |v: &Value| v["hooks"]["PostToolUse"].as_array().map_or(0, Vec::len);
                    let group_gone = groups(&after_hooks) < groups(&before_hooks);
                    toml = shift_trust(&toml, &hooks_json, g, (!group_gone).then_some(h));
                }
            }
            if let Some((g, h)) = new_at {
                let group = &after_hooks["hooks"]["PostToolUse"][g];
                let hash = trust_hash("post_tool_use", group.get("matcher"), &group["hooks"][h]);
                toml = set_table(
                    &toml,
                    &trust_header(&trust_key(&hooks_json, "post_tool_use", g, h)),
                    Some(&format!("trusted_hash = \"{hash}\"")),
                );
            }
            let (header, body) = codex_table();
            toml = set_table(&toml, &header, install.then_some(body.as_str()));
            plan.changes.push(Change {
                after: text_after(&before, toml),
                before,
                path: config,
                what: "hook trust, MCP server agent-guard".into(),
            });
        }
        Agent::GeminiCli => {
            let settings = home.join(".gemini/settings.json");
            plan.changes.push(json_change(
                &settings,
                "hook AfterTool, MCP server agent-guard",
                |v| {
                    set_hook_group(v, "AfterTool", install.then(gemini_hook_group));
                    set_json_server(v, install.then(plain_server));
                },
            )?);
            if install {
                plan.notes.push(
                    "Gemini CLI runs hooks and MCP servers, user-wide ones included, only in folders you trust (its trust dialog, kept in ~/.gemini/trustedFolders.json): in an untrusted folder agent-guard still blocks, but Gemini is not told why.".into(),
                );
            }
        }
        Agent::Cursor => {
            plan.changes.push(json_change(
                &home.join(".cursor/mcp.json"),
                "MCP server agent-guard",
                |v| set_json_server(v, install.then(plain_server)),
            )?);
            if install {
                plan.notes.push(
                    "Cursor's hooks cannot add text to the agent's context after a command, and it has no user-wide instructions file: paste the \"instructions\" of `agent-guard instructions --agent cursor` into Cursor Settings > Rules.".into(),
                );
            }
        }
    }
    if let Some(rel) = agent.instructions_file() {
        let file = home.join(rel);
        let before = read_text(&file)?;
        let paragraph = agent_paragraph(agent);
        let text = replace_block(
            before.as_deref().unwrap_or(""),
            MD_BEGIN,
            MD_END,
            install.then_some(paragraph.as_str()),
        );
        plan.changes.push(Change {
            after: text_after(&before, text),
            before,
            path: file,
            what: "agent-guard's instructions".into(),
        });
    }
    if agent == Agent::Codex && install {
        plan.notes.push(format!(
            "Codex runs a user hook only once it is trusted: the trust entry written to config.toml is the hash of the hook as installed; if you edit the hook, open Codex's /hooks screen to trust it again (`{HOOK_COMMAND}`)."
        ));
    }
    if linux {
        if let (Some(command), Some(rc)) =
            (agent_command(agent), shell.and_then(|s| shell_rc(home, s)))
        {
            let before = read_text(&rc)?;
            let text = set_alias(before.as_deref().unwrap_or(""), command, install);
            plan.changes.push(Change {
                after: text_after(&before, text),
                before,
                path: rc,
                what: format!("alias {command}='agent-guard run -- {command}'"),
            });
        }
    }
    plan.changes.retain(|c| !c.is_noop());
    Ok(plan)
}

/// The command that starts the agent in a terminal, for its alias (Cursor's is its CLI).
fn agent_command(agent: Agent) -> Option<&'static str> {
    match agent {
        Agent::ClaudeCode => Some("claude"),
        Agent::Codex => Some("codex"),
        Agent::GeminiCli => Some("gemini"),
        Agent::Cursor => Some("cursor-agent"),
    }
}

/// The interactive start-up file of `shell` (a path or name: `/bin/bash`, `zsh`).
fn shell_rc(home: &Path, shell: &str) -> Option<PathBuf> {
    match Path::new(shell).file_name()?.to_str()? {
        "bash" => Some(home.join(".bashrc")),
        "zsh" => Some(home.join(".zshrc")),
        "fish" => Some(home.join(".config/fish/config.fish")),
        _ => None,
    }
}

/// `rc` with `command`'s alias in agent-guard's block (or out of it); the block goes when empty.
fn set_alias(rc: &str, command: &str, on: bool) -> String {
    let mut aliases: Vec<String> = Vec::new();
    let mut inside = false;
    for line in rc.lines() {
        if line.trim() == RC_BEGIN {
            inside = true;
        } else if line.trim() == RC_END {
            inside = false;
        } else if inside && !line.trim().is_empty() {
            aliases.push(line.to_string());
        }
    }
    let mine = format!("alias {command}='agent-guard run -- {command}'");
    aliases.retain(|a| !a.starts_with(&format!("alias {command}=")));
    if on {
        aliases.push(mine);
    }
    let block = (!aliases.is_empty()).then(|| aliases.join("\n"));
    replace_block(rc, RC_BEGIN, RC_END, block.as_deref())
}

fn text_after(before: &Option<String>, text: String) -> Option<String> {
    if before.is_none() && text.trim().is_empty() {
        None
    } else {
        Some(text)
    }
}

/// A JSON settings file (absent or empty: `{}`); anything but a JSON object is an error.
fn read_json(path: &Path) -> Result<Value, InstallError> {
    match read_text(path)? {
        None => Ok(json!({})),
        Some(t) if t.trim().is_empty() => Ok(json!({})),
        Some(t) => {
            let v: Value = serde_json::from_str(&t).map_err(|e| InstallError::Unreadable {
                path: path.to_path_buf(),
                message: format!("not valid JSON ({e})"),
            })?;
            if v.is_object() {
                Ok(v)
            } else {
                Err(InstallError::Unreadable {
                    path: path.to_path_buf(),
                    message: "expected a JSON object".into(),
                })
            }
        }
    }
}

/// The change of a JSON settings file by `edit`, pretty-printed (two spaces, as the agents
/// write them). A file that ends up `{}` and did not exist is not created.
fn json_change(
    path: &Path,
    what: &str,
    edit: impl FnOnce(&mut Value),
) -> Result<Change, InstallError> {
    let before = read_text(path)?;
    let mut v = read_json(path)?;
    let original = v.clone();
    edit(&mut v);
    let after = if v == original {
        before.clone()
    } else if before.is_none() && v.as_object().is_some_and(Map::is_empty) {
        None
    } else {
        Some(format!(
            "{}\n",
            serde_json::to_string_pretty(&v).unwrap_or_default()
        ))
    };
    Ok(Change {
        path: path.to_path_buf(),
        before,
        after,
        what: what.to_string(),
    })
}

/// Whether a hook handler is agent-guard's.
fn is_ours(handler: &Value) -> bool {
    handler["command"]
        .as_str()
        .is_some_and(|c| c.trim() == HOOK_COMMAND)
}

/// Where agent-guard's handler is in `hooks.<event>`: (group, handler) indices.
fn our_handler(settings: &Value, event: &str) -> Option<(usize, usize)> {
    settings["hooks"][event]
        .as_array()?
        .iter()
        .enumerate()
        .find_map(|(g, group)| Some((g, group["hooks"].as_array()?.iter().position(is_ours)?)))
}

/// Put `group` as agent-guard's group of `hooks.<event>`: in place of the group that held its
/// handler (so other groups keep their positions), else at the end; `None` takes agent-guard's
/// handlers out (and a group, event or `hooks` left empty by that).
fn set_hook_group(settings: &mut Value, event: &str, group: Option<Value>) {
    let Some(root) = settings.as_object_mut() else {
        return;
    };
    let hooks = root.entry("hooks").or_insert_with(|| json!({}));
    if !hooks.is_object() {
        *hooks = json!({});
    }
    let groups = hooks
        .as_object_mut()
        .expect("an object")
        .entry(event)
        .or_insert_with(|| json!([]));
    if !groups.is_array() {
        *groups = json!([]);
    }
    let list = groups.as_array_mut().expect("an array");
    let at = list
        .iter()
        .position(|g| g["hooks"].as_array().is_some_and(|h| h.iter().any(is_ours)));
    // A group the user shares with agent-guard (their handlers beside its handler) keeps its
    // matcher and their handlers: only agent-guard's handler is replaced.
    let shared = |g: &Value| {
        g["hooks"]
            .as_array()
            .is_some_and(|h| h.iter().any(|x| !is_ours(x)))
    };
    match (at, group) {
        (Some(i), Some(group)) if shared(&list[i]) => {
            let handlers = list[i]["hooks"].as_array_mut().expect("checked");
            let ours = handlers.iter().position(is_ours).expect("checked");
            handlers[ours] = group["hooks"][0].clone();
        }
        (Some(i), Some(group)) => list[i] = group,
        (None, Some(group)) => list.push(group),
        (Some(i), None) => {
            let handlers = list[i]["hooks"].as_array_mut().expect("checked");
            handlers.retain(|h| !is_ours(h));
            if handlers.is_empty() {
                list.remove(i);
            }
        }
        (None, None) => {}
    }
    if list.is_empty() {
        hooks.as_object_mut().expect("an object").remove(event);
    }
    if hooks.as_object().is_some_and(Map::is_empty) {
        root.remove("hooks");
    }
}

/// After agent-guard's handler at `group` was taken out of `PostToolUse`, the trust entries
/// after it move up one place, as their hooks did: the later handlers of that group when the
/// group stayed (`handler` is its index), else every later group.
fn shift_trust(toml: &str, hooks_json: &Path, group: usize, handler: Option<usize>) -> String {
    let prefix = format!("{}:post_tool_use:", hooks_json.display());
    toml.lines()
        .map(|line| {
            let shifted = (|| {
                let inner = line
                    .trim()
                    .strip_prefix("[hooks.state.\"")?
                    .strip_suffix("\"]")?;
                let rest = inner.strip_prefix(&prefix)?;
                let (g, h) = rest.split_once(':')?;
                let (g, h): (usize, usize) = (g.parse().ok()?, h.parse().ok()?);
                let (g, h) = match handler {
                    Some(removed) => (g == group && h > removed).then(|| (g, h - 1))?,
                    None => (g > group).then(|| (g - 1, h))?,
                };
                Some(trust_header(&trust_key(hooks_json, "post_tool_use", g, h)))
            })();
            shifted.unwrap_or_else(|| line.to_string())
        })
        .collect::<Vec<_>>()
        .join("\n")
        + if toml.ends_with('\n') { "\n" } else { "" }
}
