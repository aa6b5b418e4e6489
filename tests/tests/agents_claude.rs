//! The closed loop with the real Claude Code (`@anthropic-ai/claude-code`, pinned in
//! tests/agents/package-lock.json) under `agent-guard run` and agent-guard's embedded default
//! policy: a scripted fake of the Messages API makes it call Bash, Claude Code runs the command
//! and agent-guard's hook from `~/.claude/settings.json`, and the next request shows what the
//! model was told.
#![cfg(target_os = "linux")]

use agent_guard_e2e::agent_clients::{assert_denial_explained, AgentHome, ClaudeCode};
use agent_guard_e2e::fake_model::{Api, FakeModel, Turn};
use serde_json::{json, Value};

fn bash(command: &str) -> Turn {
    Turn::tool(
        "Bash",
        json!({"command": command, "description": "run a command"}),
    )
}

/// The model asks Bash to `rm` a file in the protected zone: the file survives, the tool result
/// the model gets shows the failure, and the hook's explanation (the denial's reason and the
/// override command) reaches the model in the same request.
#[test]
fn denied_rm_is_explained_to_the_model() {
    let home = AgentHome::new();
    let notes = home.write("project/protected/notes.txt", "my notes\n");
    let model = FakeModel::start(
        Api::AnthropicMessages,
        vec![
            bash("rm protected/notes.txt"),
            Turn::text("I could not delete it."),
        ],
    );

    let run = ClaudeCode::with_agent_guard_hook().run(&home, &model, "delete my notes");
    run.assert_success();
    eprintln!("claude rm run: {:?}", run.elapsed);

    assert_eq!(
        std::fs::read_to_string(&notes).ok().as_deref(),
        Some("my notes\n"),
        "the protected file must survive"
    );
    assert_eq!(model.model_requests().len(), 2, "{}", run.text());
    let told = model.told_after(0);
    assert_eq!(told.is_error, Some(true), "{}", told.all());
    assert!(
        told.result.contains("Operation not permitted"),
        "the tool result shows the EPERM: {}",
        told.all()
    );

    assert_denial_explained(&home, &told, "claude", "unlink", &notes);
}

/// A harmless command runs and its output reaches the model; the hook adds nothing.
/// `agent-guard install claude-code` on the user's own settings (a permission rule) leaves
/// both: Claude Code still runs the command, the installed hook explains the denial, and the
/// CLAUDE.md paragraph install wrote reaches the model.
#[test]
fn install_claude_code_keeps_the_users_settings_and_its_hook_runs() {
    let home = AgentHome::new();
    let notes = home.write("project/protected/notes.txt", "my notes\n");
    home.write(
        ".claude/settings.json",
        &serde_json::to_string_pretty(&json!({"permissions": {"allow": ["Bash"]}})).unwrap(),
    );
    home.agent_guard(&["install", "claude-code"]);
    let model = FakeModel::start(
        Api::AnthropicMessages,
        vec![
            bash("rm protected/notes.txt"),
            Turn::text("I could not delete it."),
        ],
    );
    let run = ClaudeCode::exec(&home, &model, "delete my notes");
    run.assert_success();
    assert!(notes.exists());
    let told = model.told_after(0);
    assert!(
        told.result.contains("Operation not permitted"),
        "{}",
        told.all()
    );
    assert_denial_explained(&home, &told, "claude", "unlink", &notes);
    let first = serde_json::to_string(&model.model_requests()[0]).unwrap();
    assert!(
        first.contains("agent-guard override request"),
        "CLAUDE.md must reach the model"
    );
}

#[test]
fn harmless_command_output_reaches_the_model() {
    let home = AgentHome::new();
    let model = FakeModel::start(
        Api::AnthropicMessages,
        vec![
            bash("printf 'made by bash\\n' > made.txt && cat made.txt && echo out-$((6*7))"),
            Turn::text("done"),
        ],
    );

    let run = ClaudeCode::with_agent_guard_hook().run(&home, &model, "make a file");
    run.assert_success();
    eprintln!("claude harmless run: {:?}", run.elapsed);

    assert_eq!(
        std::fs::read_to_string(home.project.join("made.txt"))
            .ok()
            .as_deref(),
        Some("made by bash\n"),
        "creating a file in the protected zone is allowed"
    );
    let told = model.told_after(0);
    assert_eq!(told.is_error, Some(false), "{}", told.all());
    assert!(told.result.contains("made by bash"), "{}", told.all());
    assert!(told.result.contains("out-42"), "{}", told.all());
    assert!(
        !told.all().contains("agent-guard"),
        "no denial, so no explanation: {}",
        told.all()
    );
    assert_eq!(home.denials(), Vec::<Value>::new());
}

/// A command that is denied but exits 0 as a whole arrives as PostToolUse (with
/// `tool_response` an object), not PostToolUseFailure: its denial is explained all the same.
#[test]
fn denial_inside_a_successful_command_is_explained() {
    let home = AgentHome::new();
    let notes = home.write("project/protected/notes.txt", "my notes\n");
    let model = FakeModel::start(
        Api::AnthropicMessages,
        vec![
            bash("rm -f protected/notes.txt; echo finished"),
            Turn::text("done"),
        ],
    );

    let run = ClaudeCode::with_agent_guard_hook().run(&home, &model, "clean up");
    run.assert_success();

    assert!(notes.exists(), "the protected file must survive");
    let told = model.told_after(0);
    assert_eq!(told.is_error, Some(false), "{}", told.all());
    assert!(told.result.contains("finished"), "{}", told.all());
    assert_denial_explained(&home, &told, "claude", "unlink", &notes);
}

/// Claude Code's own Read tool on a secret: the hook's matcher covers Read, so the denial of
/// the secret zone is explained to the model (issue 17, item 10).
#[test]
fn a_denied_read_of_a_secret_is_explained() {
    let home = AgentHome::new();
    let key = home.write(".ssh/id_ed25519", "PRIVATE KEY\n");
    let model = FakeModel::start(
        Api::AnthropicMessages,
        vec![
            Turn::tool("Read", json!({"file_path": key.to_str().unwrap()})),
            Turn::text("I cannot read it."),
        ],
    );
    // Claude Code's own permissions would refuse a read outside the project before it reaches
    // the kernel: allow it, so that agent-guard is what stops it.
    let mut claude = ClaudeCode::with_agent_guard_hook();
    claude.settings["permissions"]["allow"] = json!(["Bash", "Read"]);
    claude.settings["permissions"]["additionalDirectories"] = json!([home.home]);
    let run = claude.run(&home, &model, "show me my ssh key");
    run.assert_success();
    let told = model.told_after(0);
    assert!(!told.all().contains("PRIVATE KEY"), "{}", told.all());
    let denials = home.denials();
    let denial = denials
        .iter()
        .find(|d| d["rule"] == "secret_zone" && d["path"] == key.to_str().unwrap())
        .unwrap_or_else(|| panic!("no denial of the key: {denials:#?}"));
    let context = told.context.join("\n");
    assert!(
        context.contains(denial["id"].as_str().unwrap())
            && context.contains(denial["reason"].as_str().unwrap()),
        "the model must be told why: {}",
        told.all()
    );
}

/// With the whole home protected and no carve-outs, Claude Code's own housekeeping in its
/// state files is denied too; those denials are not the next Bash call's and are not reported
/// to the model as its doing (issue 17, item 10).
#[test]
fn claude_codes_own_denials_are_not_reported_as_a_tool_calls() {
    let home = AgentHome::with_policy(
        r#"{"ai_agent_patterns": ["claude"], "protected_zones": [{"path": "~", "on_destroy": "deny"}], "readonly_zones": [],
            "secret_zones": [], "exec_rules": []}"#,
    );
    let model = FakeModel::start(
        Api::AnthropicMessages,
        vec![bash("sleep 1; echo harmless"), Turn::text("done")],
    );
    let run = ClaudeCode::with_agent_guard_hook().run(&home, &model, "say something");
    run.assert_success();
    let own: Vec<Value> = home
        .denials()
        .into_iter()
        .filter(|d| d["path"].as_str().unwrap_or("").contains(".claude"))
        .collect();
    assert!(
        !own.is_empty(),
        "the scenario needs Claude Code's own denials: {:#?}",
        home.denials()
    );
    let told = model.told_after(0);
    assert!(told.result.contains("harmless"), "{}", told.all());
    assert!(
        !told.all().contains("agent-guard"),
        "Claude Code's own denials reported as the Bash call's: {}",
        told.all()
    );
}

/// A denial inside a command that exits 0 reaches the model as a PostToolUse hook's blocking
/// reason too, not only as additionalContext (anthropics/claude-code#55889).
#[test]
fn a_post_tool_use_denial_is_also_a_blocking_reason() {
    let home = AgentHome::new();
    let notes = home.write("project/protected/notes.txt", "my notes\n");
    let model = FakeModel::start(
        Api::AnthropicMessages,
        vec![
            bash("rm -f protected/notes.txt; echo finished"),
            Turn::text("done"),
        ],
    );
    let run = ClaudeCode::with_agent_guard_hook().run(&home, &model, "clean up");
    run.assert_success();
    assert!(notes.exists());
    let denial = home.denials().remove(0);
    let reason = denial["reason"].as_str().unwrap();
    // Every place the model was told the reason: the hook's context, and the block message.
    let told = model.told_after(0);
    let times = told.all().matches(reason).count();
    assert!(times >= 2, "told {times} time(s): {}", told.all());
}
