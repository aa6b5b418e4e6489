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
