//! `agent-guard mcp` spoken to over its stdio, JSON-RPC line by line, as an MCP client does: the
//! server runs inside the agent's tree under `agent-guard run` (the agent's shell first makes a
//! denied `rm`, then starts the server), and each tool is called for real: the
//! denial it explains comes from the supervisor, the request it files is the one a human
//! approves with the CLI, and the status it reports is that approval.
//!
//! The server is a child of the agent's shell, as a client starts its MCP servers: its
//! ancestors are what tie the denials to this agent.
#![cfg(target_os = "linux")]

use std::process::Command;
use std::time::Duration;

use agent_guard_e2e::mcp_client::McpSession;
use agent_guard_e2e::{bin, text, Sandbox, LIVENESS};
use serde_json::json;

/// `agent-guard run --agent claude -- bash -c 'SCRIPT; agent-guard mcp'` in the sandbox, with
/// the handshake checked.
fn under_agent(sandbox: &Sandbox, script: &str) -> McpSession {
    let mut cmd = sandbox.agent_command(
        &sandbox.home,
        &[],
        // `; exit`: bash would exec a last simple command in place of itself.
        &format!("{script}; '{}' mcp; exit $?", bin().display()),
    );
    let session = McpSession::start(&mut cmd);
    let init = &session.initialized;
    assert_eq!(
        init["result"]["serverInfo"]["name"], "agent-guard",
        "{init}"
    );
    assert!(
        init["result"]["capabilities"]["tools"].is_object(),
        "{init}"
    );
    assert!(
        init["result"]["instructions"]
            .as_str()
            .unwrap()
            .contains("why_denied"),
        "{init}"
    );
    session
}

/// The whole loop over MCP: list the tools, learn why the `rm` was denied (and only this
/// agent's denial), request an override from that denial, be refused when approving it, see
/// it pending, wait while the human approves it with the CLI, see it approved.
#[test]
fn the_closed_loop_over_mcp_inside_the_agents_tree() {
    let sandbox = Sandbox::new();
    // Another agent's denial, before: it must not be reported to this one.
    let other = sandbox.agent("rm proj/src/main.rs");
    assert!(
        text(&other).contains("Operation not permitted"),
        "{}",
        text(&other)
    );
    sandbox.wait_denials(1);

    let mut mcp = under_agent(&sandbox, "rm proj/README.md 2>/dev/null");
    let readme = sandbox.path("proj/README.md");
    assert!(readme.exists(), "the protected file must survive");

    let list = mcp.request("tools/list", json!({}));
    let names: Vec<&str> = list["result"]["tools"]
        .as_array()
        .unwrap()
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
        ],
        "{list}"
    );
    for tool in list["result"]["tools"].as_array().unwrap() {
        assert!(
            tool["description"].as_str().unwrap().len() > 100,
            "a description the model can act on: {tool}"
        );
        assert_eq!(tool["inputSchema"]["type"], "object", "{tool}");
    }

    // why_denied: this agent's denial of the rm, with its reason and override, and not the
    // other agent's (the writer is off the hot path: ask again until it is there).
    let start = std::time::Instant::now();
    let denials = loop {
        let (answer, is_error) = mcp.call("why_denied", json!({}));
        assert!(!is_error, "{answer}");
        let denials = answer["denials"].as_array().unwrap().clone();
        if !denials.is_empty() || start.elapsed() > LIVENESS {
            break denials;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(denials.len(), 1, "only this agent's denial: {denials:?}");
    let denial = &denials[0];
    assert_eq!(denial["op"], "unlink", "{denial}");
    assert_eq!(denial["path"], readme.display().to_string(), "{denial}");
    assert_eq!(denial["rule"], "protected_delete", "{denial}");
    assert!(
        denial["reason"].as_str().unwrap().contains("README.md"),
        "{denial}"
    );
    assert!(
        denial["override_command"]
            .as_str()
            .unwrap()
            .starts_with("agent-guard override request"),
        "{denial}"
    );
    let (bad, is_error) = mcp.call("why_denied", json!({"since": "ten minutes"}));
    assert!(is_error, "{bad}");
    assert!(bad.as_str().unwrap().contains("since"), "{bad}");

    // request_override from the denial: pending, with the approve command for the human.
    let (request, is_error) = mcp.call(
        "request_override",
        json!({"denial_id": denial["id"], "reason": "The user asked to delete the README."}),
    );
    assert!(!is_error, "{request}");
    let id = request["id"].as_str().unwrap().to_string();
    assert_eq!(request["state"], "pending", "{request}");
    assert_eq!(
        request["approve_command"],
        format!("agent-guard override approve {id}")
    );
    assert!(
        sandbox
            .state
            .join("requests")
            .join(format!("{id}.json"))
            .exists(),
        "the request is in the spool"
    );
    // The same validation as `override request`: a reason with an escape sequence is refused.
    let (refused, is_error) = mcp.call(
        "request_override",
        json!({"denial_id": denial["id"], "reason": "please\u{1b}[2J"}),
    );
    assert!(is_error, "{refused}");
    assert!(refused.as_str().unwrap().contains("--reason"), "{refused}");

    // No tool approves: the attempt is refused, and nothing is granted.
    for name in ["approve_override", "override_approve", "undo_restore"] {
        let (answer, is_error) = mcp.call(name, json!({"id": id}));
        assert!(is_error, "{name}: {answer}");
        let words = answer.as_str().unwrap();
        assert!(words.contains("the user's decisions"), "{words}");
    }
    let (status, is_error) = mcp.call("override_status", json!({"id": id}));
    assert!(!is_error, "{status}");
    assert_eq!(status["state"], "pending", "{status}");
    assert!(
        !sandbox.state.join("grants.json").exists() || {
            let grants = std::fs::read_to_string(sandbox.state.join("grants.json")).unwrap();
            !grants.contains(&id)
        }
    );

    // The human approves in their terminal while the agent waits on override_status.
    let human = {
        let id = id.clone();
        let (home, state, policy) = (
            sandbox.home.clone(),
            sandbox.state.clone(),
            sandbox.policy.clone(),
        );
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(800));
            Command::new(bin())
                .args(["override", "approve", &id])
                .env("HOME", home)
                .env("AGENT_GUARD_STATE_DIR", state)
                .env("AGENT_GUARD_POLICY", policy)
                .env_remove("AGENT_GUARD_AGENT")
                .output()
                .unwrap()
        })
    };
    let (status, is_error) = mcp.call("override_status", json!({"id": id, "wait_seconds": 60}));
    let approved = human.join().unwrap();
    assert!(approved.status.success(), "{}", text(&approved));
    assert!(!is_error, "{status}");
    assert_eq!(status["state"], "approved", "{status}");
    assert!(status["expires_at"].as_u64().unwrap() > 0, "{status}");

    let (unknown, is_error) = mcp.call("override_status", json!({"id": "r-00000000"}));
    assert!(is_error, "{unknown}");
    let (bad, is_error) = mcp.call("override_status", json!({"id": "../grants"}));
    assert!(is_error, "{bad}");
    assert!(
        bad.as_str().unwrap().contains("not an override id"),
        "{bad}"
    );

    // explain_path: the secret key may not be read; the approved README may now be deleted.
    let (key, is_error) = mcp.call("explain_path", json!({"path": ".ssh/id_ed25519"}));
    assert!(!is_error, "{key}");
    assert!(
        key["zones"]
            .as_array()
            .unwrap()
            .iter()
            .any(|z| z["kind"] == "secret"),
        "{key}"
    );
    let read = &key["operations"][0];
    assert_eq!(read["op"], "read", "{key}");
    assert_eq!(read["allowed"], false, "{key}");
    assert_eq!(read["rule"], "secret_zone", "{key}");
    let (readme_now, _) = mcp.call(
        "explain_path",
        json!({"path": readme.display().to_string(), "op": "unlink"}),
    );
    assert_eq!(readme_now["operations"][0]["allowed"], true, "{readme_now}");
    let (main_rs, _) = mcp.call(
        "explain_path",
        json!({"path": "proj/src/main.rs", "op": "unlink"}),
    );
    assert_eq!(main_rs["operations"][0]["allowed"], false, "{main_rs}");
    assert_eq!(
        main_rs["operations"][0]["rule"], "protected_delete",
        "{main_rs}"
    );
    let (bad, is_error) = mcp.call("explain_path", json!({"path": "x", "op": "destroy"}));
    assert!(is_error, "{bad}");
    assert!(bad.as_str().unwrap().contains("op"), "{bad}");
    let (bad, is_error) = mcp.call("explain_path", json!({"path": "x", "bogus": 1}));
    assert!(is_error, "{bad}");
    assert!(bad.as_str().unwrap().contains("bogus"), "{bad}");

    mcp.close();
}
