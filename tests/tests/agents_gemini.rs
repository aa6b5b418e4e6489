//! The closed loop with the real Gemini CLI (`@google/gemini-cli`, pinned in
//! tests/agents/package-lock.json) under `agent-guard run` and agent-guard's embedded default
//! policy, set up by `agent-guard install gemini-cli` over the user's own settings: a scripted
//! fake of the Gemini API (`GOOGLE_GEMINI_BASE_URL`) makes `gemini -p` call its tools, Gemini CLI
//! runs them and the AfterTool hook install wrote, and the next request shows what the model was
//! told.
//!
//! Gemini CLI appends an AfterTool hook's additionalContext to the tool's output as
//! `<hook_context>…</hook_context>` (the fake reads those sections as context), except when the
//! tool itself failed (its write_file on EPERM): then the model gets only the error, which the
//! hook replaces with the error and the explanation (`decision: "deny"`). It runs settings hooks
//! and MCP servers only in a trusted folder; these tests trust the project as the user's answer
//! to its trust dialog does (`~/.gemini/trustedFolders.json`).
#![cfg(target_os = "linux")]

use agent_guard_e2e::agent_clients::{assert_denial_explained, AgentHome, AgentRun, GeminiCli};
use agent_guard_e2e::fake_model::{Api, FakeModel, Told, Turn};
use serde_json::{json, Value};

fn shell(command: &str) -> Turn {
    Turn::tool("run_shell_command", json!({"command": command}))
}

/// The user's Gemini CLI set-up, then `agent-guard install gemini-cli` as the human runs it.
fn installed(home: &AgentHome) -> GeminiCli {
    let gemini = GeminiCli::user_setup();
    gemini.install(home);
    let out = home.agent_guard(&["install", "gemini-cli", "--no-alias"]);
    assert!(out.contains(".gemini/settings.json"), "{out}");
    assert!(
        out.contains("trust"),
        "install must say hooks need a trusted folder: {out}"
    );
    let settings: Value = serde_json::from_str(
        &std::fs::read_to_string(home.home.join(".gemini/settings.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        settings["security"], gemini.settings["security"],
        "install keeps the user's settings: {settings:#}"
    );
    gemini
}

/// A `gemini -p PROMPT` session against a fake model answering `script`; panics unless the
/// run exits 0.
fn session(home: &AgentHome, script: Vec<Turn>, prompt: &str) -> (FakeModel, AgentRun) {
    let model = FakeModel::start(Api::GeminiGenerateContent, script);
    let run = GeminiCli::exec(home, &model, prompt);
    run.assert_success();
    eprintln!("gemini session {prompt:?}: {:?}", run.elapsed);
    (model, run)
}

/// After `install gemini-cli`, a protected `project/protected/notes.txt` and a session whose
/// model first runs `rm` on it, then answers `then`: the home, the file, the model, the run.
fn rm_session(then: Vec<Turn>) -> (AgentHome, std::path::PathBuf, FakeModel, AgentRun) {
    let home = AgentHome::new();
    let notes = home.write("project/protected/notes.txt", "my notes\n");
    installed(&home);
    let mut script = vec![shell("rm protected/notes.txt")];
    script.extend(then);
    let (model, run) = session(&home, script, "delete my notes");
    (home, notes, model, run)
}

/// The one line of `gemini mcp list` (it prints the list on stderr) naming agent-guard.
fn mcp_list_line(run: &AgentRun) -> Option<String> {
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&run.output.stdout),
        String::from_utf8_lossy(&run.output.stderr)
    );
    text.lines()
        .find(|l| l.contains("agent-guard:"))
        .map(str::to_string)
}

/// The denial of `path` and what the model was told about it, both checked to name each other:
/// the denial's id, its reason word for word and the override request command.
fn assert_told_in_result(home: &AgentHome, told: &Told, op: &str, path: &std::path::Path) {
    let denials = home.denials();
    assert_eq!(denials.len(), 1, "{denials:#?}");
    let denial = &denials[0];
    assert_eq!(denial["op"], op, "{denial:#}");
    assert_eq!(denial["path"], path.to_str().unwrap(), "{denial:#}");
    assert_eq!(denial["ancestor"], "gemini", "{denial:#}");
    let request = format!("agent-guard override request {}", path.display());
    for expected in [
        denial["id"].as_str().unwrap(),
        denial["reason"].as_str().unwrap(),
        &request,
    ] {
        assert!(
            told.result.contains(expected),
            "the model must be told {expected:?}; it was told:\n{}",
            told.all()
        );
    }
}

/// After `install gemini-cli`, a denied `rm` by Gemini CLI's shell tool is explained to the
/// model by the AfterTool hook, after the command's own output; the file survives, and the
/// GEMINI.md install wrote reaches the model.
#[test]
fn install_gemini_cli_explains_a_denied_rm_to_the_model() {
    let (home, notes, model, run) = rm_session(vec![Turn::text("I could not delete it.")]);
    assert!(
        String::from_utf8_lossy(&run.output.stdout).contains("I could not delete it."),
        "{}",
        run.text()
    );

    assert_eq!(
        std::fs::read_to_string(&notes).ok().as_deref(),
        Some("my notes\n"),
        "the protected file must survive"
    );
    assert_eq!(model.model_requests().len(), 2, "{}", run.text());
    let told = model.told_after(0);
    assert_eq!(told.is_error, Some(false), "{}", told.all());
    assert!(
        told.result.contains("Operation not permitted") && told.result.contains("Exit Code: 1"),
        "{}",
        told.all()
    );
    assert_denial_explained(&home, &told, "gemini", "unlink", &notes);

    let first = &model.model_requests()[0];
    assert!(
        first["systemInstruction"]
            .to_string()
            .contains("agent-guard override request"),
        "GEMINI.md must reach the model"
    );
}

/// Gemini CLI's own write_file tool (in its own process, no shell) on a read-only file: the
/// tool fails with EPERM and the model gets, in place of the bare error, the error and
/// agent-guard's explanation. (With additionalContext alone it would get the bare error.)
#[test]
fn a_denied_write_file_is_explained_in_the_tool_error() {
    let home = AgentHome::new();
    let envrc = home.write("project/.envrc", "export MODE=dev\n");
    installed(&home);
    let (model, _) = session(
        &home,
        vec![
            Turn::tool(
                "write_file",
                json!({"file_path": ".envrc", "content": "export MODE=prod\n"}),
            ),
            Turn::text("It is read-only."),
        ],
        "switch .envrc to prod",
    );

    assert_eq!(
        std::fs::read_to_string(&envrc).unwrap(),
        "export MODE=dev\n"
    );
    let told = model.told_after(0);
    assert_eq!(told.is_error, Some(true), "{}", told.all());
    assert!(
        told.result.starts_with("Error writing to file") && told.result.contains("EPERM"),
        "the tool's own error comes first: {}",
        told.all()
    );
    assert_told_in_result(&home, &told, "open", &envrc);
}

/// A harmless command runs and its output reaches the model; the hook adds nothing.
#[test]
fn harmless_command_output_reaches_the_model() {
    let home = AgentHome::new();
    installed(&home);
    let (model, _) = session(
        &home,
        vec![
            // No `$(…)` or `$((…))`: Gemini CLI refuses any command with a `$(` in it
            // ("Command injection detected") before running it.
            shell("printf 'made by gemini\\n' > made.txt && tr a-z A-Z < made.txt"),
            Turn::text("done"),
        ],
        "make a file",
    );

    assert_eq!(
        std::fs::read_to_string(home.project.join("made.txt"))
            .ok()
            .as_deref(),
        Some("made by gemini\n")
    );
    let told = model.told_after(0);
    assert!(told.result.contains("MADE BY GEMINI"), "{}", told.all());
    assert!(!told.all().contains("agent-guard"), "{}", told.all());
    assert!(!told.all().contains("hook_context"), "{}", told.all());
    assert_eq!(home.denials(), Vec::<Value>::new());
}

/// The MCP server entry install writes: the real `gemini mcp list`, run as the agent, starts
/// it and connects, in a trusted folder; in an untrusted one Gemini CLI lists it disabled;
/// after `uninstall` it is gone, with the user's settings left as they were.
#[test]
fn gemini_mcp_list_connects_to_the_installed_server() {
    let home = AgentHome::new();
    let gemini = installed(&home);

    let listed = GeminiCli::command(&home, &["mcp", "list"]);
    listed.assert_success();
    let line = mcp_list_line(&listed).unwrap_or_else(|| {
        panic!(
            "gemini mcp list does not show agent-guard:\n{}",
            listed.text()
        )
    });
    assert!(
        line.contains("agent-guard mcp") && line.contains("Connected"),
        "{}",
        listed.text()
    );

    std::fs::remove_file(home.home.join(".gemini/trustedFolders.json")).unwrap();
    let untrusted = GeminiCli::command(&home, &["mcp", "list"]);
    untrusted.assert_success();
    let line = mcp_list_line(&untrusted).unwrap_or_else(|| panic!("{}", untrusted.text()));
    assert!(line.contains("Disabled"), "{}", untrusted.text());

    home.agent_guard(&["uninstall", "gemini-cli", "--no-alias"]);
    let settings: Value = serde_json::from_str(
        &std::fs::read_to_string(home.home.join(".gemini/settings.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        settings, gemini.settings,
        "uninstall leaves the user's settings"
    );
    gemini.install(&home); // the project trusted again: the server is gone, not disabled
    let after = GeminiCli::command(&home, &["mcp", "list"]);
    after.assert_success();
    assert_eq!(mcp_list_line(&after), None, "{}", after.text());
}

/// A real Gemini CLI session uses the server `install gemini-cli` registered: the model runs a
/// `rm` that is denied, then calls `why_denied` (Gemini CLI names an MCP tool
/// `mcp_SERVER_TOOL`), and the tool's answer the model gets names that denial.
#[test]
fn gemini_calls_the_installed_server_in_a_session() {
    let (home, notes, model, run) = rm_session(vec![
        Turn::tool("mcp_agent-guard_why_denied", json!({})),
        Turn::text("It is protected."),
    ]);
    assert!(notes.exists());
    let tools = model.model_requests()[0]["tools"].to_string();
    assert!(tools.contains("mcp_agent-guard_why_denied"), "{tools}");
    let told = model.told_after(1);
    assert_eq!(told.is_error, Some(false), "{}", told.all());
    let denial_id = home.denials()[0]["id"].as_str().unwrap().to_string();
    assert!(
        told.result.contains(&denial_id) && told.result.contains("notes.txt"),
        "why_denied over MCP must name the denial {denial_id}: {}\n{}",
        told.all(),
        run.text()
    );
}
