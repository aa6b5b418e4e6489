//! `agent-guard mcp` driven by a real MCP client: the MCP inspector's command line
//! (`@modelcontextprotocol/inspector`, pinned in tests/agents/package-lock.json), run as the
//! agent under `agent-guard run`, which starts the server as its child over stdio, lists its
//! tools and calls each one. The inspector passes the server only the environment it is given
//! (`-e KEY=VALUE`), so each call hands on agent-guard's variables, as an agent's MCP settings
//! do (docs/closed-loop.md).
#![cfg(target_os = "linux")]

use agent_guard_e2e::agent_clients::{npm_bin, AgentHome, AgentRun, ClaudeCode, Codex};
use agent_guard_e2e::fake_model::{Api, FakeModel, Turn};
use agent_guard_e2e::mcp_client::tool_answer;
use serde_json::{json, Value};

/// `mcp-inspector --cli ARGS -- agent-guard mcp` run by the agent's shell after `before`, under
/// `agent-guard run`; the server gets the agent's `AGENT_GUARD_*` variables.
fn inspector(home: &AgentHome, before: &str, args: &[&str]) -> AgentRun {
    let quoted: Vec<String> = args
        .iter()
        .map(|a| format!("'{}'", a.replace('\'', r"'\''")))
        .collect();
    let script = format!(
        "{before}\n'{inspector}' --cli {args} \
         -e AGENT_GUARD_AGENT=\"$AGENT_GUARD_AGENT\" \
         -e AGENT_GUARD_STATE_DIR=\"$AGENT_GUARD_STATE_DIR\" \
         -e AGENT_GUARD_POLICY=\"$AGENT_GUARD_POLICY\" \
         -- agent-guard mcp\nexit $?",
        inspector = npm_bin("mcp-inspector").display(),
        args = quoted.join(" "),
    );
    home.run(
        true,
        std::path::Path::new("/bin/bash"),
        &["-c", &script],
        &[],
    )
}

/// A `tools/call` through the inspector: the tool's answer, parsed.
fn call(home: &AgentHome, before: &str, tool: &str, args: &[&str]) -> (Value, bool) {
    let mut argv = vec!["--method", "tools/call", "--tool-name", tool];
    for a in args {
        argv.extend(["--tool-arg", a]);
    }
    let run = inspector(home, before, &argv);
    run.assert_success();
    let result: Value = serde_json::from_slice(&run.output.stdout)
        .unwrap_or_else(|e| panic!("inspector output is not JSON: {e}\n{}", run.text()));
    tool_answer(&result)
}

#[test]
fn the_inspector_lists_and_calls_every_tool() {
    let home = AgentHome::new();
    let notes = home.write("project/notes.txt", "my notes\n");

    let listed = inspector(&home, "", &["--method", "tools/list"]);
    listed.assert_success();
    let list: Value = serde_json::from_slice(&listed.output.stdout).unwrap();
    let names: Vec<&str> = list["tools"]
        .as_array()
        .unwrap_or_else(|| panic!("{}", listed.text()))
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "why_denied",
            "request_override",
            "override_status",
            "explain_path"
        ]
    );

    // The agent's rm is denied; why_denied, called by the same agent, explains it.
    let (why, is_error) = call(&home, "rm notes.txt 2>/dev/null", "why_denied", &[]);
    assert!(!is_error, "{why}");
    let denials = why["denials"].as_array().unwrap();
    assert_eq!(denials.len(), 1, "{why}");
    assert_eq!(denials[0]["path"], notes.display().to_string(), "{why}");
    assert_eq!(denials[0]["op"], "unlink", "{why}");
    assert!(notes.exists());
    let denial_id = denials[0]["id"].as_str().unwrap().to_string();

    let (request, is_error) = call(
        &home,
        "",
        "request_override",
        &[
            &format!("denial_id={denial_id}"),
            "reason=The user asked me to delete the notes.",
        ],
    );
    assert!(!is_error, "{request}");
    let id = request["id"].as_str().unwrap().to_string();
    assert_eq!(request["state"], "pending", "{request}");

    // The client cannot call what the server does not offer; nothing is granted.
    let refused = inspector(
        &home,
        "",
        &[
            "--method",
            "tools/call",
            "--tool-name",
            "approve_override",
            "--tool-arg",
            &format!("id={id}"),
        ],
    );
    assert_eq!(refused.output.status.code(), Some(5), "{}", refused.text());
    assert!(
        refused.text().contains("Tool 'approve_override' not found"),
        "{}",
        refused.text()
    );
    let (status, _) = call(&home, "", "override_status", &[&format!("id={id}")]);
    assert_eq!(status["state"], "pending", "{status}");

    // The human approves in their own terminal; the agent sees it.
    home.agent_guard(&["override", "approve", &id]);
    let (status, is_error) = call(
        &home,
        "",
        "override_status",
        &[&format!("id={id}"), "wait_seconds=5"],
    );
    assert!(!is_error, "{status}");
    assert_eq!(status["state"], "approved", "{status}");

    let (explained, is_error) = call(
        &home,
        "",
        "explain_path",
        &[&format!(
            "path={}",
            home.home.join(".ssh/id_ed25519").display()
        )],
    );
    assert!(!is_error, "{explained}");
    assert_eq!(explained["operations"][0]["op"], "read", "{explained}");
    assert_eq!(
        explained["operations"][0]["rule"], "secret_zone",
        "{explained}"
    );
}

/// `agent-guard install claude-code` registers the server where Claude Code keeps user-scope
/// MCP servers: the real `claude mcp list`, run as the agent, starts it, and its health check
/// connects; `uninstall` takes it out of Claude Code's list. The same for Codex's list (which
/// has no health check): the table install writes is read as a stdio server with agent-guard's
/// variables passed on.
#[test]
fn install_registers_the_server_with_the_real_clients() {
    let home = AgentHome::new();
    // Claude Code's own state, as it keeps it, with a server of the user's.
    home.write(
        ".claude.json",
        r#"{"numStartups": 3, "mcpServers": {"other": {"type": "stdio", "command": "/bin/true", "args": []}}}"#,
    );
    home.agent_guard(&["install", "claude-code", "--no-alias"]);
    home.agent_guard(&["install", "codex", "--no-alias"]);

    let claude_list = |home: &AgentHome| {
        let run = home.run(
            true,
            &npm_bin("claude"),
            &["mcp", "list"],
            &[
                ("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1"),
                ("DISABLE_AUTOUPDATER", "1"),
                ("DISABLE_TELEMETRY", "1"),
            ],
        );
        run.assert_success();
        String::from_utf8_lossy(&run.output.stdout).into_owned()
    };
    let listed = claude_list(&home);
    let line = listed
        .lines()
        .find(|l| l.starts_with("agent-guard:"))
        .unwrap_or_else(|| panic!("claude mcp list does not show agent-guard:\n{listed}"));
    assert!(
        line.contains("agent-guard mcp") && line.contains("Connected"),
        "{listed}"
    );
    assert!(listed.contains("other:"), "{listed}");

    let codex = home.run(
        false,
        &npm_bin("codex"),
        &["mcp", "list", "--json"],
        &[(
            "CODEX_HOME",
            &home.home.join(".codex").display().to_string(),
        )],
    );
    codex.assert_success();
    let servers: Value = serde_json::from_slice(&codex.output.stdout)
        .unwrap_or_else(|e| panic!("codex mcp list --json: {e}\n{}", codex.text()));
    let ours = servers
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "agent-guard")
        .unwrap_or_else(|| panic!("codex does not list agent-guard: {servers:#}"));
    assert_eq!(ours["enabled"], true, "{ours}");
    assert_eq!(ours["transport"]["type"], "stdio", "{ours}");
    assert_eq!(ours["transport"]["command"], "agent-guard", "{ours}");
    assert_eq!(ours["transport"]["args"][0], "mcp", "{ours}");
    assert!(
        ours["transport"]["env_vars"]
            .as_array()
            .unwrap()
            .contains(&Value::from("AGENT_GUARD_AGENT")),
        "{ours}"
    );

    home.agent_guard(&["uninstall", "claude-code", "--no-alias"]);
    let listed = claude_list(&home);
    assert!(!listed.contains("agent-guard"), "{listed}");
    assert!(listed.contains("other:"), "{listed}");
}

/// A real Claude Code session uses the server `install claude-code` registered: the model
/// runs a `rm` that is denied, then calls `why_denied` through MCP (the tool Claude Code names
/// `mcp__agent-guard__why_denied`), and the tool's answer the model gets names that denial.
#[test]
fn claude_code_calls_the_installed_server_in_a_session() {
    let home = AgentHome::new();
    let notes = home.write("project/protected/notes.txt", "my notes\n");
    home.agent_guard(&["install", "claude-code", "--no-alias"]);
    let model = FakeModel::start(
        Api::AnthropicMessages,
        vec![
            Turn::tool(
                "Bash",
                json!({"command": "rm protected/notes.txt", "description": "delete"}),
            ),
            Turn::tool("mcp__agent-guard__why_denied", json!({})),
            Turn::text("It is protected."),
        ],
    );
    // Install's settings, plus the permission rules print mode needs to run Bash and the
    // server's tools without asking.
    let settings_path = home.home.join(".claude/settings.json");
    let mut settings: Value =
        serde_json::from_str(&std::fs::read_to_string(&settings_path).unwrap()).unwrap();
    settings["permissions"] = json!({"allow": ["Bash", "mcp__agent-guard"]});
    std::fs::write(&settings_path, settings.to_string()).unwrap();

    let run = ClaudeCode::exec(&home, &model, "delete my notes");
    run.assert_success();
    assert!(notes.exists());
    let told = model.told_after(1);
    assert_ne!(told.is_error, Some(true), "{}", told.all());
    let denial_id = home.denials()[0]["id"].as_str().unwrap().to_string();
    assert!(
        told.result.contains(&denial_id) && told.result.contains("notes.txt"),
        "why_denied over MCP must name the denial {denial_id}: {}",
        told.all()
    );
}

/// The same with a real Codex session: after `install codex`, `codex exec` starts the server
/// from the `[mcp_servers.agent-guard]` table (with the agent's variables passed on), the model
/// calls `why_denied` (Codex offers each MCP server's tools in a namespace, here
/// `mcp__agent_guard`) and gets the denial of its own `rm`.
#[test]
fn codex_calls_the_installed_server_in_a_session() {
    let home = AgentHome::new();
    let notes = home.write("project/protected/notes.txt", "my notes\n");
    let model = FakeModel::start(
        Api::OpenAiResponses,
        vec![
            Turn::tool("exec_command", json!({"cmd": "rm protected/notes.txt"})),
            Turn::tool("mcp__agent_guard/why_denied", json!({})),
            Turn::text("It is protected."),
        ],
    );
    let codex = Codex {
        hooks: json!({}),
        trust_hooks: false,
        ..Codex::with_agent_guard_hook()
    };
    codex.install(&home, &model);
    std::fs::remove_file(home.home.join(".codex/hooks.json")).unwrap();
    home.agent_guard(&["install", "codex", "--no-alias"]);

    let run = codex.exec(&home, "delete my notes");
    run.assert_success();
    assert!(notes.exists());
    let told = model.told_after(1);
    let denial_id = home.denials()[0]["id"].as_str().unwrap().to_string();
    assert!(
        told.result.contains(&denial_id) && told.result.contains("notes.txt"),
        "why_denied over MCP must name the denial {denial_id}: {}\n{}",
        told.all(),
        run.text()
    );
}
