//! Which denials are a tool call's: named by the supervisor, logged just after the call, made
//! before it started; and what became of the agent's override requests.

use super::*;

#[test]
fn the_supervisor_named_agent_selects_its_denials() {
    let env = Env::new();
    let t = now();
    // Neither pid is an ancestor of the hook: only the agent variable can select.
    env.append_denial(&unlink_denial(
        "d-mine",
        "/home/dev/project/mine",
        t,
        424_242,
        "deny",
    ));
    env.append_denial(&unlink_denial(
        "d-other",
        "/home/dev/project/other",
        t,
        434_343,
        "deny",
    ));
    let (code, out, err) = env.hook_as(
        &data("post_tool_use_failure_bash.json"),
        Some("claude:424242"),
    );
    assert_eq!(code, 0, "{err}");
    let (_, context) = parse_answer(&out);
    assert!(context.contains("/home/dev/project/mine"), "{context}");
    assert!(!context.contains("/home/dev/project/other"), "{context}");
}

#[test]
fn a_denial_logged_just_after_the_tool_call_is_still_reported() {
    // The supervisor logs from a queue: the record can land after the hook started. The input
    // shows the EPERM, so the hook waits for it (bounded by LOG_LAG).
    let env = Env::new();
    std::fs::write(env.state.join("denials.jsonl"), "").unwrap();
    let record = unlink_denial("d-late", "/home/dev/project/late", now(), me(), "deny");
    let log = env.state.join("denials.jsonl");
    let writer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(100));
        let mut f = std::fs::OpenOptions::new().append(true).open(log).unwrap();
        writeln!(f, "{record}").unwrap();
    });
    let (code, out, err) = env.hook(&data("post_tool_use_failure_bash.json"));
    writer.join().unwrap();
    assert_eq!(code, 0, "{err}");
    let (_, context) = parse_answer(&out);
    assert!(context.contains("/home/dev/project/late"), "{context}");
}

/// Only the tool call's own denials: one from before the call started (Claude Code's own lock
/// file, half a second before a Bash call) is not reported as the call's.
#[test]
fn denials_before_the_tool_call_started_are_not_its_own() {
    let env = Env::new();
    let mut input: Value =
        serde_json::from_slice(&data("post_tool_use_failure_bash.json")).unwrap();
    input["duration_ms"] = json!(300);
    let before = now() - 3;
    let mut lock = unlink_denial("d-lock", "/home/dev/project/.lock", before, me(), "deny");
    lock["time"] = json!(rfc3339(before));
    env.append_denial(&lock);
    let (code, out, err) = env.hook(input.to_string().as_bytes());
    assert_eq!((code, out.as_str()), (0, ""), "{err}");
    // The call's own denial is.
    env.append_denial(&unlink_denial(
        "d-own",
        "/home/dev/project/x",
        now(),
        me(),
        "deny",
    ));
    let (code, out, err) = env.hook(input.to_string().as_bytes());
    assert_eq!(code, 0, "{err}");
    let (_, context) = parse_answer(&out);
    assert!(
        context.contains("d-own") && !context.contains("d-lock"),
        "{context}"
    );
}

/// The agent hears what became of its override requests at its next tool call, once.
#[test]
fn the_agent_is_told_when_its_request_is_approved_or_denied() {
    let env = Env::new();
    let trail = env.state.join("overrides.jsonl");
    let event = |id: &str, kind: &str, agent: &str| {
        json!({"ts": now(), "time": rfc3339(now()), "event": kind, "id": id,
            "path": "/home/dev/project/x", "ops": "unlink", "reason": "r",
            "expires_at": now() + 600, "agent": agent, "requested_at": now(),
            "by_uid": 0, "by_pid": 1})
    };
    let lines = [
        event("r-1", "request", "claude:77"),
        event("r-1", "approve", "claude:77"),
        event("r-2", "deny", "claude:77"),
        event("r-3", "approve", "codex:9"),
    ];
    std::fs::write(
        &trail,
        lines.iter().map(|l| format!("{l}\n")).collect::<String>(),
    )
    .unwrap();
    let input = data("post_tool_use_bash.json");
    let (code, out, err) = env.hook_as(&input, Some("claude:77"));
    assert_eq!(code, 0, "{err}");
    let (_, context) = parse_answer(&out);
    assert!(
        context.contains("APPROVED override request r-1"),
        "{context}"
    );
    assert!(context.contains("DENIED override request r-2"), "{context}");
    assert!(!context.contains("r-3"), "another agent's: {context}");
    let (code, out, _) = env.hook_as(&input, Some("claude:77"));
    assert_eq!((code, out.as_str()), (0, ""), "told once");
}
