//! agent-guard's MCP server (`agent-guard mcp`) as each agent registers its user-wide MCP
//! servers, for `install` to put in and `uninstall` to take out; only the entry named
//! [`SERVER_NAME`] is ever touched.
//!
//! - Claude Code: `mcpServers` at the top of `~/.claude.json`, where `claude mcp add --scope
//!   user` writes (`{"type": "stdio", "command", "args", "env"}`).
//! - Codex: the `[mcp_servers.agent-guard]` table of `~/.codex/config.toml`. Codex hands an MCP
//!   server only a default list of variables, so `env_vars` names agent-guard's.
//! - Gemini CLI: `mcpServers` in `~/.gemini/settings.json`.
//! - Cursor: `mcpServers` in `~/.cursor/mcp.json`.

use serde_json::{json, Value};

/// The name agent-guard's server is registered under, in every agent.
pub const SERVER_NAME: &str = "agent-guard";

/// The variables the server must see: which agent it serves, the state dir, the policy.
const AGENT_VARIABLES: [&str; 3] = [
    "AGENT_GUARD_AGENT",
    "AGENT_GUARD_STATE_DIR",
    "AGENT_GUARD_POLICY",
];

/// Claude Code's entry (the shape `claude mcp add --scope user` writes).
pub fn claude_code_server() -> Value {
    json!({"type": "stdio", "command": "agent-guard", "args": ["mcp"], "env": {}})
}

/// Gemini CLI's and Cursor's entry.
pub fn plain_server() -> Value {
    json!({"command": "agent-guard", "args": ["mcp"]})
}

/// The header and body of Codex's table.
pub fn codex_table() -> (String, String) {
    let vars: Vec<String> = AGENT_VARIABLES.iter().map(|v| format!("\"{v}\"")).collect();
    (
        format!("[mcp_servers.{SERVER_NAME}]"),
        format!(
            "command = \"agent-guard\"\nargs = [\"mcp\"]\nenv_vars = [{}]",
            vars.join(", ")
        ),
    )
}

/// Put `server` as `mcpServers.agent-guard` of a JSON settings object, or take it out (`None`;
/// `mcpServers` goes too when nothing else is left in it). Other servers keep their places.
pub fn set_json_server(settings: &mut Value, server: Option<Value>) {
    let Some(root) = settings.as_object_mut() else {
        return;
    };
    match server {
        Some(server) => {
            let servers = root.entry("mcpServers").or_insert_with(|| json!({}));
            if !servers.is_object() {
                *servers = json!({});
            }
            servers
                .as_object_mut()
                .expect("an object")
                .insert(SERVER_NAME.to_string(), server);
        }
        None => {
            if let Some(servers) = root.get_mut("mcpServers").and_then(Value::as_object_mut) {
                servers.remove(SERVER_NAME);
                if servers.is_empty() {
                    root.remove("mcpServers");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_agent_guards_entry_is_put_in_and_taken_out() {
        let mut v = json!({"numStartups": 3, "mcpServers": {"github": {"command": "gh-mcp"}}});
        let before = v.clone();
        set_json_server(&mut v, Some(plain_server()));
        assert_eq!(v["mcpServers"]["github"], before["mcpServers"]["github"]);
        assert_eq!(v["mcpServers"][SERVER_NAME]["args"], json!(["mcp"]));
        let keys: Vec<&String> = v["mcpServers"].as_object().unwrap().keys().collect();
        assert_eq!(keys, ["github", SERVER_NAME], "others keep their places");
        set_json_server(&mut v, None);
        assert_eq!(v, before);
        let mut alone = json!({"theme": "dark"});
        set_json_server(&mut alone, Some(claude_code_server()));
        set_json_server(&mut alone, None);
        assert_eq!(
            alone,
            json!({"theme": "dark"}),
            "an emptied mcpServers goes"
        );
    }
}
