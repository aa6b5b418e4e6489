//! The closed loop end to end under `agent-guard run`: the agent is denied, the Claude Code hook
//! explains why, the agent files an override request, cannot approve it itself, a human
//! approves, the agent's retry succeeds, and after the TTL the same delete is denied again.

use std::time::{Duration, Instant};

use agent_guard_e2e::{text, Sandbox, LIVENESS};

const HOOK_INPUT: &str = r#"{"session_id":"e2e-session","transcript_path":"/tmp/t.jsonl","cwd":"/","hook_event_name":"PostToolUseFailure","tool_name":"Bash","tool_input":{"command":"rm proj/README.md","description":"Delete the readme"},"tool_use_id":"toolu_01","error":"rm: cannot remove 'proj/README.md': Operation not permitted","is_interrupt":false}"#;

#[test]
fn denied_explained_requested_approved_expired() {
    let s = Sandbox::new();
    let readme = s.path("proj/README.md");

    // 1-2. Denied, and the hook (run inside the agent's tree, as Claude Code runs it) explains.
    let out = s.agent(
        &format!(
            "rm proj/README.md; echo rm=$?; printf '%s' '{HOOK_INPUT}' | agent-guard-hook-shim"
        )
        .replace(
            "agent-guard-hook-shim",
            &format!("{} hook claude-code", agent_guard_e2e::bin().display()),
        ),
    );
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(readme.exists() && stdout.contains("rm=1"), "{}", text(&out));
    let hook_json = stdout
        .lines()
        .find(|l| l.starts_with('{'))
        .unwrap_or_else(|| panic!("the hook said nothing: {}", text(&out)));
    let hook: serde_json::Value = serde_json::from_str(hook_json).unwrap();
    let context = hook["hookSpecificOutput"]["additionalContext"]
        .as_str()
        .unwrap_or_default();
    assert_eq!(
        hook["hookSpecificOutput"]["hookEventName"],
        "PostToolUseFailure"
    );
    assert!(
        context.contains("protected_delete") && context.contains("agent-guard override request"),
        "{context}"
    );
    assert!(context.contains(readme.to_str().unwrap()), "{context}");

    // 3. The agent files a request (from inside its tree: the spool is writable to it).
    let bin = agent_guard_e2e::bin();
    let out = s.agent(&format!(
        "{} override request proj/README.md --op unlink --reason 'the user asked to delete the old readme' --ttl 4s --json",
        bin.display()
    ));
    assert!(out.status.success(), "request refused: {}", text(&out));
    let request: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out)));
    let id = request["id"].as_str().expect("request id").to_string();

    // 4. The agent cannot approve its own request: politely (environment) and by force (the
    //    kernel-level guard-files rule, with the courtesy variable removed).
    let out = s.agent(&format!("{} override approve {id}", bin.display()));
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let out = s.agent(&format!(
        "env -u AGENT_GUARD_AGENT {} override approve {id}",
        bin.display()
    ));
    assert_ne!(
        out.status.code(),
        Some(0),
        "the agent approved its own request: {}",
        text(&out)
    );
    assert!(
        !s.state.join("grants.json").exists()
            || !std::fs::read_to_string(s.state.join("grants.json"))
                .unwrap()
                .contains(&id)
    );

    // 5. A human approves.
    let out = s.guard(&["override", "approve", &id]);
    assert!(out.status.success(), "{}", text(&out));
    let approved = Instant::now();

    // 6. The retry succeeds (the grant reaches a new supervisor at start, and running ones by
    //    watching the file; the 1 s target is measured in the grant_reload benchmark).
    let out = s.agent("rm proj/README.md");
    assert!(out.status.success() && !readme.exists(), "{}", text(&out));
    eprintln!("retry succeeded {:?} after approval", approved.elapsed());

    // 7. After the TTL the same delete is denied again.
    std::fs::write(&readme, "back\n").unwrap();
    std::thread::sleep(
        Duration::from_secs(4).saturating_sub(approved.elapsed()) + Duration::from_millis(1100),
    );
    let out = s.agent("rm proj/README.md");
    assert!(
        readme.exists(),
        "the grant outlived its TTL: {}",
        text(&out)
    );
}

#[test]
fn a_running_supervisor_honours_a_new_grant() {
    let s = Sandbox::new();
    let readme = s.path("proj/README.md");
    let bin = agent_guard_e2e::bin();
    // One long-lived agent: it is denied, files a request, then retries until it succeeds.
    let agent = {
        let mut cmd = std::process::Command::new(&bin);
        cmd.args(["run", "--agent", "claude", "--", "bash", "-c"])
            .arg(format!(
                "rm proj/README.md 2>/dev/null && exit 3; \
                 {} override request proj/README.md --op unlink --reason 'user asked' --json > \"$OUTSIDE/req.json\" || exit 4; \
                 for i in $(seq 1 200); do rm proj/README.md 2>/dev/null && exit 0; sleep 0.05; done; exit 5",
                bin.display()
            ))
            .current_dir(&s.home)
            .env("HOME", &s.home)
            .env("AGENT_GUARD_STATE_DIR", &s.state)
            .env("AGENT_GUARD_POLICY", &s.policy)
            .env("OUTSIDE", &s.outside);
        cmd.spawn().unwrap()
    };
    let req_file = s.outside.join("req.json");
    let start = Instant::now();
    let id = loop {
        if let Ok(bytes) = std::fs::read(&req_file) {
            if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&bytes) {
                break v["id"].as_str().unwrap().to_string();
            }
        }
        assert!(
            start.elapsed() < LIVENESS,
            "the agent never filed its request"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let out = s.guard(&["override", "approve", &id]);
    assert!(out.status.success(), "{}", text(&out));
    let status = agent.wait_with_output().unwrap().status;
    assert_eq!(
        status.code(),
        Some(0),
        "the running supervisor did not honour the grant in time"
    );
    assert!(!readme.exists());
}
