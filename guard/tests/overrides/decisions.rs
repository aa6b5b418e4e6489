//! A human's decisions: approve, deny, revoke; refused for an agent, and when the kernel will
//! not let the store be written.

use super::*;

#[test]
fn approve_deny_revoke_round_trip() {
    let w = World::new();
    let target = w.project.join("docs/old.md");
    // A denial record for the path, as the supervisor writes it.
    std::fs::create_dir_all(&w.state).unwrap();
    std::fs::write(
        w.state.join("denials.jsonl"),
        serde_json::json!({
            "ts": now(), "op": "unlink", "path": target, "dest": null, "zone": w.project,
            "process": "rm", "ancestor": "claude", "id": "d-42", "time": "2026-11-21T08:00:00.000Z",
            "pid": 4242, "exe": "/usr/bin/rm", "agent_pid": 4200, "rule": "protected_delete",
            "decision": "deny", "reason": "agent-guard blocked deleting it", "hint": "agent-guard override request ..."
        })
        .to_string()
            + "\n",
    )
    .unwrap();

    // --denial fills path and op from the record.
    let (code, out, err) = w.run_with(
        &[
            "override",
            "request",
            "--denial",
            "d-42",
            "--reason",
            "user wants it gone",
            "--json",
        ],
        &[("AGENT_GUARD_AGENT", "claude:4200")],
    );
    assert_eq!(code, 0, "{err}");
    let req: Value = serde_json::from_str(&out).unwrap();
    let id = req["id"].as_str().unwrap().to_string();
    assert_eq!(req["path"], target.display().to_string());
    assert_eq!(req["ops"], serde_json::json!(["unlink"]));
    assert_eq!(req["denial_id"], "d-42");
    // An agent's request is not written to the (guarded) audit trail by the agent itself.
    assert_eq!(req["recorded"], false);

    // list shows it with its denial, and records the request on the agent's behalf.
    let (code, out, err) = w.run(&["override", "list", "--json"]);
    assert_eq!(code, 0, "{err}");
    let list: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(list["requests"][0]["id"], id.as_str());
    assert_eq!(list["requests"][0]["denial"]["id"], "d-42");
    assert_eq!(list["requests"][0]["valid"], true);
    assert_eq!(list["requests"][0]["zone"][0], "protected");
    assert_eq!(w.event_kinds(&id), ["request"]);

    // Before approval the engine denies; after approval it allows.
    let locations = w.locations();
    let policy = w.policy();
    let store = GrantStore::new(locations.clone());
    let event = unlink_by_agent(&target);
    let before = decide(
        &event,
        &agent(),
        &policy,
        &store.active(now()).unwrap(),
        now(),
    );
    assert!(matches!(before, Verdict::Deny(ref d) if d.rule == RuleId::ProtectedDelete));

    let (code, out, err) = w.run_with(
        &["override", "approve", &id, "--ttl", "2m"],
        &[("SSH_CONNECTION", "192.0.2.7 50022 192.0.2.1 22")],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(&format!("Approved {id}")), "{out}");
    // The trail names the approver (uid, name, where), not the agent that asked.
    let uid = agent_guard::overrides::current_uid();
    let approved: Vec<Value> = std::fs::read_to_string(w.state.join("overrides.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|e: &Value| e["event"] == "approve")
        .collect();
    let by = approved[0]["by"].as_str().unwrap();
    assert!(by.contains(&format!("(uid {uid})")), "{by}");
    assert!(by.ends_with("over ssh from 192.0.2.7 port 50022"), "{by}");
    let (_, out, _) = w.run(&["audit", "query", "--overrides", "--json"]);
    let rows: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let approve_row = rows
        .iter()
        .find(|r| r.to_string().contains("\"approve\""))
        .unwrap();
    assert!(approve_row.to_string().contains(by), "{approve_row}");
    assert!(
        !approve_row.to_string().contains("claude:4200"),
        "{approve_row}"
    );
    assert!(!w.state.join("requests").join(format!("{id}.json")).exists());
    let file: Value =
        serde_json::from_slice(&std::fs::read(w.state.join("grants.json")).unwrap()).unwrap();
    let g = &file["grants"][0];
    assert_eq!(g["id"], id.as_str());
    assert_eq!(
        g["expires_at"].as_u64().unwrap() - g["approved_at"].as_u64().unwrap(),
        120
    );
    let after = decide(
        &event,
        &agent(),
        &policy,
        &store.active(now()).unwrap(),
        now(),
    );
    assert_eq!(after, Verdict::Allow);
    // The grant is for unlink only, and only under its path.
    let sibling = unlink_by_agent(&w.project.join("docs/other.md"));
    assert!(!decide(
        &sibling,
        &agent(),
        &policy,
        &store.active(now()).unwrap(),
        now()
    )
    .allows());

    let (code, out, _) = w.run(&["override", "list"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("Active grants: 1") && out.contains("left"),
        "{out}"
    );

    // Revoke: denied again at once.
    let (code, _, err) = w.run(&["override", "revoke", &id]);
    assert_eq!(code, 0, "{err}");
    assert!(!decide(
        &event,
        &agent(),
        &policy,
        &store.active(now()).unwrap(),
        now()
    )
    .allows());
    let (code, _, err) = w.run(&["override", "revoke", &id]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("no active grant"), "{err}");

    // Deny: the request goes, no grant comes.
    let id2 = w.request("docs/old.md", "unlink,rmdir", "claude:4200");
    let (code, _, err) = w.run(&["override", "deny", &id2]);
    assert_eq!(code, 0, "{err}");
    assert!(!w
        .state
        .join("requests")
        .join(format!("{id2}.json"))
        .exists());
    assert!(store.load().unwrap().grants.is_empty());
    let (code, _, err) = w.run(&["override", "approve", &id2]);
    assert_eq!(code, 1);
    assert!(err.contains("no pending override request"), "{err}");

    // The whole story is in the audit trail.
    assert_eq!(w.event_kinds(&id), ["request", "approve", "revoke"]);
    assert_eq!(w.event_kinds(&id2), ["request", "deny"]);
}

#[test]
fn approval_by_an_agent_is_refused() {
    let w = World::new();
    let id = w.request("docs/old.md", "unlink", "claude:9");
    for cmd in ["approve", "deny"] {
        let (code, _, err) = w.run_with(
            &["override", cmd, &id],
            &[("AGENT_GUARD_AGENT", "claude:9")],
        );
        assert_eq!(code, 1, "{err}");
        assert!(
            err.contains(&format!(
                "agent-guard override {cmd} must be run by a human, not by an agent"
            )),
            "{err}"
        );
    }
    assert!(!w.state.join("grants.json").exists());
    assert!(w.state.join("requests").join(format!("{id}.json")).exists());
}

#[test]
fn a_store_the_kernel_will_not_let_us_write_is_reported_as_not_human() {
    // What the supervisor's guard-files rule does to an agent (EPERM on any write in the state
    // dir), stood in for by file permissions: as root, the approver runs as `nobody`, which may
    // not write the root-owned state dir; otherwise the state dir is made read-only.
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;
    let w = World::new();
    let id = w.request("docs/old.md", "unlink", "claude:8");
    let root = agent_guard::overrides::current_uid() == 0;
    let mut cmd = w.cmd(&["override", "approve", &id]);
    if root {
        // nobody must reach the binary, the policy and the spool, but not write the state dir.
        let mut dir = w.state.parent().unwrap().to_path_buf();
        loop {
            let mode = std::fs::metadata(&dir).unwrap().permissions().mode();
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(mode | 0o005)).unwrap();
            if !dir.pop() || dir == Path::new("/") {
                break;
            }
        }
        cmd.uid(65534).gid(65534);
    } else {
        std::fs::set_permissions(&w.state, std::fs::Permissions::from_mode(0o555)).unwrap();
    }
    let out = cmd.output().unwrap();
    std::fs::set_permissions(&w.state, std::fs::Permissions::from_mode(0o755)).unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("agent-guard override approve must be run by a human, not by an agent"),
        "{err}"
    );
    assert!(!w.state.join("grants.json").exists());
}

/// `override status ID [--wait DUR]`: an agent learns where its request stands (issue 17,
/// item 5), and `--wait` returns as soon as a human decides.
#[test]
fn status_tells_the_agent_and_waits_for_the_decision() {
    let w = World::new();
    let agent = [("AGENT_GUARD_AGENT", "claude:5")];
    let id = w.request("docs/old.md", "unlink", "claude:5");
    let (code, out, err) = w.run_with(&["override", "status", &id], &agent);
    assert_eq!(code, 3, "{out}{err}");
    assert!(out.contains("waiting"), "{out}");

    let waiter = {
        let mut c = w.cmd(&["override", "status", &id, "--wait", "20s", "--json"]);
        c.env("AGENT_GUARD_AGENT", "claude:5");
        c.stdout(std::process::Stdio::piped()).spawn().unwrap()
    };
    std::thread::sleep(Duration::from_millis(300));
    let (code, _, err) = w.run(&["override", "approve", &id]);
    assert_eq!(code, 0, "{err}");
    let started = Instant::now();
    let out = waiter.wait_with_output().unwrap();
    assert!(started.elapsed() < LIVENESS);
    assert_eq!(out.status.code(), Some(0));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (v["state"].as_str(), v["id"].as_str()),
        (Some("approved"), Some(id.as_str()))
    );
    assert!(v["expires_at"].as_u64().unwrap() > now());

    let (code, _, _) = w.run(&["override", "revoke", &id]);
    assert_eq!(code, 0);
    let (code, out, _) = w.run_with(&["override", "status", &id], &agent);
    assert_eq!((code, out.contains("revoked")), (1, true), "{out}");

    let other = w.request("docs/other.md", "unlink", "claude:5");
    w.run(&["override", "deny", &other]);
    let (code, out, _) = w.run_with(&["override", "status", &other, "--wait", "5s"], &agent);
    assert_eq!((code, out.contains("denied")), (1, true), "{out}");

    let (code, _, err) = w.run(&["override", "status", "r-ffff"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("no pending override request"), "{err}");
}
