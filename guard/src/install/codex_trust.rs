//! Codex's side of `install codex`: the trust it keeps for user hooks, and `config.toml`
//! sections edited as text (no TOML library: only whole sections agent-guard owns are put in,
//! replaced or taken out, and every other line is kept byte for byte).
//!
//! Codex runs a hook from `~/.codex/hooks.json` only when `config.toml` holds, under
//! `[hooks.state."<hooks.json path>:<event>:<group>:<handler>"]`, a `trusted_hash` equal to the
//! hash of the hook's definition, and skips an untrusted one without a word. The hash, as Codex
//! 0.171 computes it (tests/agents/README.md; checked against Codex's own `hooks/list` by
//! `tests/tests/agents_codex.rs`): `sha256:` and the hex SHA-256 of the compact JSON, keys
//! sorted at every level, of `{"event_name", "matcher", "hooks": [handler]}` with the handler
//! normalized to `type`, `command`, `timeout` (600 when absent), `async` (false when absent)
//! and `statusMessage` (when set).

use std::path::Path;

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// The `(key, trusted_hash)` entries that make Codex trust every command hook in `hooks` (the
/// content of the `hooks.json` at `hooks_json`).
pub fn codex_hook_trust(hooks_json: &Path, hooks: &Value) -> Vec<(String, String)> {
    let mut entries = Vec::new();
    let Some(events) = hooks["hooks"].as_object() else {
        return entries;
    };
    for (event, groups) in events {
        let label = snake_case(event);
        for (g, group) in groups.as_array().into_iter().flatten().enumerate() {
            for (h, handler) in group["hooks"].as_array().into_iter().flatten().enumerate() {
                entries.push((
                    trust_key(hooks_json, &label, g, h),
                    trust_hash(&label, group.get("matcher"), handler),
                ));
            }
        }
    }
    entries
}

/// `<hooks.json>:<event>:<group>:<handler>`.
pub(super) fn trust_key(hooks_json: &Path, event: &str, group: usize, handler: usize) -> String {
    format!("{}:{event}:{group}:{handler}", hooks_json.display())
}

/// The `trusted_hash` of one handler of a group (with its matcher) of hooks `event` (snake case).
pub(super) fn trust_hash(event: &str, matcher: Option<&Value>, handler: &Value) -> String {
    let mut normalized = json!({
        "type": "command",
        "command": handler["command"],
        "timeout": handler["timeout"].as_u64().unwrap_or(600).max(1),
        "async": handler["async"].as_bool().unwrap_or(false),
    });
    if let Some(message) = handler.get("statusMessage") {
        normalized["statusMessage"] = message.clone();
    }
    let mut identity = json!({"event_name": event, "hooks": [normalized]});
    if let Some(matcher) = matcher {
        identity["matcher"] = matcher.clone();
    }
    let digest = Sha256::digest(sorted(&identity).to_string().as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// `PostToolUse` -> `post_tool_use`.
pub(super) fn snake_case(name: &str) -> String {
    let mut out = String::new();
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_lowercase());
    }
    out
}

fn sorted(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let mut out = serde_json::Map::new();
            for k in keys {
                out.insert(k.clone(), sorted(&map[k]));
            }
            Value::Object(out)
        }
        Value::Array(items) => Value::Array(items.iter().map(sorted).collect()),
        other => other.clone(),
    }
}

/// A TOML basic string.
pub(super) fn toml_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `toml` with the table whose header line is `header` (`[mcp_servers.agent-guard]`) set to
/// `body` (its lines after the header), added at the end when absent, or removed (`None`).
/// A table runs from its header to the next line that starts a table.
pub(super) fn set_table(toml: &str, header: &str, body: Option<&str>) -> String {
    let mut out = String::new();
    let mut in_table = false;
    let mut found = false;
    // Blank lines at the end of the replaced table separate it from the next: they stay.
    let mut blanks = 0;
    for line in toml.lines() {
        if line.trim_start().starts_with('[') {
            if in_table && !out.is_empty() && !out.ends_with("\n\n") {
                out.push_str(&"\n".repeat(blanks));
            }
            in_table = line.trim() == header;
            if in_table {
                found = true;
                blanks = 0;
                if let Some(body) = body {
                    out.push_str(&format!("{header}\n{}\n", body.trim_end()));
                }
                continue;
            }
        }
        if in_table {
            blanks = if line.trim().is_empty() {
                blanks + 1
            } else {
                0
            };
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    if !found {
        if let Some(body) = body {
            if !out.is_empty() && !out.ends_with("\n\n") {
                out.push('\n');
            }
            out.push_str(&format!("{header}\n{}\n", body.trim_end()));
        }
    } else if body.is_none() {
        while out.ends_with("\n\n") {
            out.pop();
        }
    }
    out
}

/// The table header of a trust entry.
pub(super) fn trust_header(key: &str) -> String {
    format!("[hooks.state.{}]", toml_string(key))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pinned against the `currentHash` Codex 0.171's own `hooks/list` reported for this hook
    /// (the same pin as the test harness's).
    #[test]
    fn trust_hash_is_codex_own() {
        let hooks = json!({"hooks": {"PostToolUse": [{"matcher": "Bash",
            "hooks": [{"type": "command", "command": "/tmp/explore/loghook.sh", "timeout": 10}]}]}});
        assert_eq!(
            codex_hook_trust(Path::new("/h/.codex/hooks.json"), &hooks),
            [(
                "/h/.codex/hooks.json:post_tool_use:0:0".to_string(),
                "sha256:343f49528c973013a1c1e1871ba1408451a701b2ebbf1fb3a253d17729395048"
                    .to_string()
            )]
        );
    }

    #[test]
    fn tables_are_set_replaced_and_removed_keeping_other_lines() {
        let toml = "model = \"x\" # mine\n\n[profiles.a]\nk = 1\n";
        let h = "[mcp_servers.agent-guard]";
        let added = set_table(toml, h, Some("command = \"agent-guard\""));
        assert!(added.starts_with(toml), "{added}");
        assert_eq!(
            set_table(&added, h, Some("command = \"agent-guard\"")),
            added
        );
        let replaced = set_table(&added, h, Some("command = \"/bin/ag\""));
        assert!(replaced.contains("/bin/ag") && !replaced.contains("\"agent-guard\""));
        assert_eq!(set_table(&replaced, h, None), toml);
        // A table in the middle is replaced in place, keeping the blank line after it.
        let middle = "[a]\nx = 1\n\n[b]\ny = 2\n";
        assert_eq!(
            set_table(middle, "[a]", Some("x = 3")),
            "[a]\nx = 3\n\n[b]\ny = 2\n"
        );
        assert_eq!(set_table(middle, "[a]", None), "[b]\ny = 2\n");
        assert_eq!(trust_header("/a \"b\":x"), r#"[hooks.state."/a \"b\":x"]"#);
    }
}
