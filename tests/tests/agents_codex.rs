//! The closed loop with the real Codex CLI (`@openai/codex`, pinned in
//! tests/agents/package-lock.json) under `agent-guard run` and agent-guard's embedded default
//! policy: a scripted fake of the Responses API makes `codex exec` call its shell tool, Codex
//! runs the command and a PostToolUse hook from `~/.codex/hooks.json` (agent-guard's Claude Code
//! hook, unchanged), and the next request shows what the model was told.
//!
//! Codex runs a user hook only when `config.toml` records it as trusted (`[hooks.state]`, the
//! hash of its definition; see `agent_clients::codex_hook_trust`), and skips an untrusted one
//! without a word.
//!
//! Commands run with Codex's sandbox off (`-s danger-full-access`): its default bubblewrap
//! sandbox cannot start inside `agent-guard run` (issue 16, item 11).
#![cfg(target_os = "linux")]

use agent_guard_e2e::agent_clients::{
    assert_denial_explained, codex_hook_trust, npm_bin, AgentHome, Codex,
};
use agent_guard_e2e::fake_model::{Api, FakeModel, Turn};
use serde_json::{json, Value};

fn shell(cmd: &str) -> Turn {
    Turn::tool("exec_command", json!({"cmd": cmd}))
}

/// A trusted hook explains a denied `rm` to the model; the file survives.
#[test]
fn denied_rm_is_explained_to_the_model() {
    let home = AgentHome::new();
    let notes = home.write("project/protected/notes.txt", "my notes\n");
    let model = FakeModel::start(
        Api::OpenAiResponses,
        vec![
            shell("rm protected/notes.txt"),
            Turn::text("I could not delete it."),
        ],
    );

    let run = Codex::with_agent_guard_hook().run(&home, &model, "delete my notes");
    run.assert_success();
    eprintln!("codex rm run: {:?}", run.elapsed);

    assert_eq!(
        std::fs::read_to_string(&notes).ok().as_deref(),
        Some("my notes\n"),
        "the protected file must survive"
    );
    assert_eq!(model.model_requests().len(), 2, "{}", run.text());
    let told = model.told_after(0);
    assert!(
        told.result.contains("Operation not permitted"),
        "{}",
        told.all()
    );

    assert_denial_explained(&home, &told, "codex", "unlink", &notes);
}

/// Without the trust entry the same hook never runs: the rm is still refused, and the model
/// hears nothing from agent-guard. (Why `install codex` must leave its hook trusted.)
#[test]
fn untrusted_hook_is_skipped_silently() {
    let home = AgentHome::new();
    let notes = home.write("project/protected/notes.txt", "my notes\n");
    let model = FakeModel::start(
        Api::OpenAiResponses,
        vec![shell("rm protected/notes.txt"), Turn::text("ok")],
    );

    let codex = Codex {
        trust_hooks: false,
        ..Codex::with_agent_guard_hook()
    };
    let run = codex.run(&home, &model, "delete my notes");
    run.assert_success();

    assert!(notes.exists());
    assert_eq!(home.denials().len(), 1);
    let told = model.told_after(0);
    assert!(
        told.result.contains("Operation not permitted"),
        "{}",
        told.all()
    );
    assert!(
        !told.all().contains("agent-guard"),
        "an untrusted hook must not have run: {}",
        told.all()
    );
    let stderr = String::from_utf8_lossy(&run.output.stderr);
    assert!(!stderr.contains("hook: PostToolUse"), "{stderr}");
}

/// `agent-guard install codex`, run by the human on a config.toml of their own (here: the
/// model provider), leaves a hook Codex trusts and runs: the denied rm is explained to the
/// model, with no `--dangerously-bypass-hook-trust` and no trust entry written by the test.
#[test]
fn install_codex_leaves_a_hook_codex_trusts_and_runs() {
    let home = AgentHome::new();
    let notes = home.write("project/protected/notes.txt", "my notes\n");
    let model = FakeModel::start(
        Api::OpenAiResponses,
        vec![
            shell("rm protected/notes.txt"),
            Turn::text("I could not delete it."),
        ],
    );
    // The user's own Codex set-up: a provider, no hooks yet.
    let codex = Codex {
        hooks: json!({}),
        trust_hooks: false,
        ..Codex::with_agent_guard_hook()
    };
    codex.install(&home, &model);
    std::fs::remove_file(home.home.join(".codex/hooks.json")).unwrap();
    let config_before = std::fs::read_to_string(home.home.join(".codex/config.toml")).unwrap();

    let out = home.agent_guard(&["install", "codex"]);
    assert!(out.contains("hooks.json"), "{out}");
    let config = std::fs::read_to_string(home.home.join(".codex/config.toml")).unwrap();
    assert!(config.starts_with(&config_before), "{config}");
    assert!(config.contains("trusted_hash"), "{config}");
    assert!(home.home.join(".codex/AGENTS.md").exists());

    let run = codex.exec(&home, "delete my notes");
    run.assert_success();
    let stderr = String::from_utf8_lossy(&run.output.stderr);
    assert!(
        stderr.contains("hook: PostToolUse"),
        "the installed hook must run: {stderr}"
    );
    assert!(notes.exists());
    let told = model.told_after(0);
    assert_denial_explained(&home, &told, "codex", "unlink", &notes);
    // And Codex read the instructions file install wrote.
    let first = serde_json::to_string(&model.model_requests()[0]).unwrap();
    assert!(
        first.contains("agent-guard override request"),
        "AGENTS.md must reach the model"
    );
}

/// A harmless command runs and its output reaches the model; the hook adds nothing.
#[test]
fn harmless_command_output_reaches_the_model() {
    let home = AgentHome::new();
    let model = FakeModel::start(
        Api::OpenAiResponses,
        vec![
            shell("printf 'made by codex\\n' > made.txt && cat made.txt && echo out-$((6*7))"),
            Turn::text("done"),
        ],
    );

    let run = Codex::with_agent_guard_hook().run(&home, &model, "make a file");
    run.assert_success();
    eprintln!("codex harmless run: {:?}", run.elapsed);

    assert_eq!(
        std::fs::read_to_string(home.project.join("made.txt"))
            .ok()
            .as_deref(),
        Some("made by codex\n")
    );
    let told = model.told_after(0);
    assert!(told.result.contains("made by codex"), "{}", told.all());
    assert!(told.result.contains("out-42"), "{}", told.all());
    assert!(!told.all().contains("agent-guard"), "{}", told.all());
    // The hook did run (it is trusted) and printed nothing.
    let stderr = String::from_utf8_lossy(&run.output.stderr);
    assert!(stderr.contains("hook: PostToolUse Completed"), "{stderr}");
    assert_eq!(home.denials(), Vec::<Value>::new());
}

/// The trust entries `codex_hook_trust` writes are the ones Codex itself computes: its
/// app-server's `hooks/list` reports each hook's `key` and `currentHash`, and with our
/// `[hooks.state]` entries in place, `trustStatus: "trusted"`.
#[test]
fn trust_entries_match_codex_own_hashes() {
    let home = AgentHome::new();
    let model = FakeModel::start(Api::OpenAiResponses, vec![]);
    let codex = Codex {
        hooks: json!({"hooks": {
            "PostToolUse": [
                {"matcher": "Bash", "hooks": [{"type": "command", "command": "agent-guard hook claude-code", "timeout": 10}]},
                {"matcher": "Bash|apply_patch", "hooks": [
                    {"type": "command", "command": "true"},
                    {"type": "command", "command": "echo 'quoted \"x\"'", "timeout": 0, "statusMessage": "checking"}]}],
            "PreToolUse": [{"hooks": [{"type": "command", "command": "true", "async": false, "timeout": 5}]}]}}),
        ..Codex::with_agent_guard_hook()
    };
    codex.install(&home, &model);
    let ours = codex_hook_trust(&home.home.join(".codex/hooks.json"), &codex.hooks);
    assert_eq!(ours.len(), 4);

    let requests = [
        json!({"id": 0, "method": "initialize", "params": {"clientInfo": {"name": "agent-guard-e2e", "version": "0"}}}),
        json!({"method": "initialized"}),
        json!({"id": 1, "method": "hooks/list", "params": {}}),
    ];
    let input: String = requests.iter().map(|r| format!("{r}\n")).collect();
    let list = app_server_answer(&home, &input, 1);
    let listed: Vec<Value> = list["result"]["data"][0]["hooks"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(listed.len(), 4, "{list:#}");
    for hook in &listed {
        let key = hook["key"].as_str().unwrap();
        let ours = ours
            .iter()
            .find(|(k, _)| k == key)
            .unwrap_or_else(|| panic!("no entry of ours for {key}: {ours:?}"));
        assert_eq!(hook["currentHash"], ours.1.as_str(), "{hook:#}");
        assert_eq!(hook["trustStatus"], "trusted", "{hook:#}");
    }
}

/// Run `codex app-server` (JSON-RPC, one message a line on stdin/stdout) outside agent-guard,
/// feed it `input`, and return its answer to request `id`.
fn app_server_answer(home: &AgentHome, input: &str, id: u64) -> Value {
    use std::io::{BufRead, Write};
    let mut child = std::process::Command::new(npm_bin("codex"))
        .arg("app-server")
        .current_dir(&home.project)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", &home.home)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    child
        .stdin
        .as_mut()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut seen = Vec::new();
    let mut answer = None;
    for line in stdout.lines() {
        let Ok(line) = line else { break };
        let Ok(message) = serde_json::from_str::<Value>(&line) else {
            continue;
        };
        if message["id"] == id {
            answer = Some(message);
            break;
        }
        seen.push(line);
    }
    // Closing stdin ends the server.
    drop(child.stdin.take());
    let _ = child.kill();
    let _ = child.wait();
    answer.unwrap_or_else(|| {
        panic!("no answer to request {id} from codex app-server; it said: {seen:#?}")
    })
}
