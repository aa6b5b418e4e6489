//! Filing requests: each bad request refused with its reason, paths resolved before judging,
//! the rate limit, spool files written by hand validated again.

use super::*;

#[test]
fn request_validation_refuses_each_bad_request_with_its_reason() {
    let w = World::new();
    let home = w.home.display().to_string();
    let project = w.project.display().to_string();
    let state_file = w.state.join("grants.json").display().to_string();
    let cases: &[(&[&str], i32, &str)] = &[
        (&["/", "--op", "unlink"], 1, "may not cover / as a whole"),
        (&[&home, "--op", "unlink"], 1, "home directory"),
        (
            &[&project, "--op", "unlink"],
            1,
            "root of the protected zone",
        ),
        // An ancestor of a zone root covers the whole zone.
        (
            &[&format!("{home}/src"), "--op", "unlink"],
            1,
            "root of the protected zone",
        ),
        (
            &[&format!("{home}/.ssh"), "--op", "open"],
            1,
            "root of the secret zone",
        ),
        (
            &[&state_file, "--op", "unlink"],
            1,
            "agent-guard's own files",
        ),
        (
            &["docs/old.md", "--op", "unlink", "--ttl", "2h"],
            1,
            "longer than the policy's max_override_ttl",
        ),
        (
            &["docs/old.md", "--op", "unlink", "--ttl", "soon"],
            2,
            "expected a duration",
        ),
        (
            &["docs/old.md", "--op", "unlink", "--ttl", "0s"],
            2,
            "positive duration",
        ),
        (
            &["docs/old.md", "--op", "frobnicate"],
            2,
            "unknown operation \"frobnicate\"",
        ),
        (
            &["docs/old.md", "--op", "signal"],
            1,
            "cannot be overridden",
        ),
        (&["docs/old.md"], 2, "at least one operation"),
    ];
    for (args, code, message) in cases {
        let mut full = vec!["override", "request"];
        full.extend_from_slice(args);
        full.extend_from_slice(&["--reason", "because"]);
        let (got, _, err) = w.run(&full);
        assert_eq!(got, *code, "{args:?}: {err}");
        assert!(err.contains(message), "{args:?}: {err}");
    }
    // Reasons: empty, or with escape sequences meant for the approver's terminal.
    for (reason, message) in [
        ("  ", "one sentence"),
        ("ok\u{1b}[2K\rall fine", "control characters"),
    ] {
        let (code, _, err) = w.run(&[
            "override",
            "request",
            "docs/old.md",
            "--op",
            "unlink",
            "--reason",
            reason,
        ]);
        assert_eq!(code, 2, "{err}");
        assert!(err.contains(message), "{err}");
    }
    // Nothing was spooled by any refused request.
    let spooled = std::fs::read_dir(w.state.join("requests"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(spooled, 0);
}

#[test]
fn relative_paths_and_symlinks_resolve_before_judging() {
    let w = World::new();
    // Relative to the current directory (the project), cleaned.
    let id = w.request("./docs/../docs/old.md", "unlink", "a:1");
    let spooled: Value = serde_json::from_slice(
        &std::fs::read(w.state.join("requests").join(format!("{id}.json"))).unwrap(),
    )
    .unwrap();
    assert_eq!(
        spooled["path"],
        w.project.join("docs/old.md").display().to_string()
    );
    // A link inside the project to the secret zone's root asks for the secret zone.
    std::os::unix::fs::symlink(w.home.join(".ssh"), w.project.join("keys")).unwrap();
    let (code, _, err) = w.run(&[
        "override",
        "request",
        "keys",
        "--op",
        "open",
        "--reason",
        "read config",
    ]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("root of the secret zone"), "{err}");
}

#[test]
fn rate_limit_per_minute_and_pending_per_agent() {
    let w = World::new();
    for i in 0..3 {
        w.request(&format!("docs/f{i}"), "unlink", "claude:1");
    }
    let (code, _, err) = w.run_with(
        &[
            "override", "request", "docs/f3", "--op", "unlink", "--reason", "again",
        ],
        &[("AGENT_GUARD_AGENT", "claude:1")],
    );
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("in the last minute"), "{err}");
    // Another agent has its own budget.
    w.request("docs/g0", "unlink", "codex:2");

    // Pending limit: five requests of one agent from earlier minutes are still open.
    let w = World::new();
    let locations = w.locations();
    let policy = w.policy();
    for i in 0..5 {
        file_request(
            &locations,
            &RequestSpec {
                path: w.project.join(format!("docs/p{i}")),
                ops: vec![agent_guard::engine::OpKind::Unlink],
                reason: "old".into(),
                ttl_secs: 600,
                args: None,
            },
            None,
            Requester {
                pid: 1,
                uid: 0,
                agent: Some("claude:1".into()),
                cwd: None,
            },
            &policy,
            std::slice::from_ref(&w.home),
            RateLimit::DEFAULT,
            true,
            now() - 3600 + i * 120,
        )
        .unwrap();
    }
    let (code, _, err) = w.run_with(
        &[
            "override", "request", "docs/p5", "--op", "unlink", "--reason", "more",
        ],
        &[("AGENT_GUARD_AGENT", "claude:1")],
    );
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("5 pending override requests"), "{err}");
}

#[test]
fn hand_written_spool_files_are_validated_again_at_approval() {
    let w = World::new();
    let id = w.request("docs/old.md", "unlink", "claude:1");
    let file = w.state.join("requests").join(format!("{id}.json"));
    // The agent rewrites its own pending request to cover the whole home directory.
    let mut req: Request = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    req.path = w.home.clone();
    std::fs::write(&file, serde_json::to_vec(&req).unwrap()).unwrap();
    let (code, _, err) = w.run(&["override", "approve", &id]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("home directory"), "{err}");
    assert!(!w.state.join("grants.json").exists());
    let (_, out, _) = w.run(&["override", "list"]);
    assert!(out.contains("cannot be approved"), "{out}");

    // Changed after the human listed it: the trail holds what was listed, approve refuses.
    let id = w.request("docs/old.md", "unlink", "claude:1");
    let file = w.state.join("requests").join(format!("{id}.json"));
    let (_, out, _) = w.run(&["override", "list"]);
    assert!(out.contains(&id), "{out}");
    let mut req: Request = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    req.path = w.project.join("docs");
    req.ops.push(agent_guard::engine::OpKind::Rmdir);
    std::fs::write(&file, serde_json::to_vec(&req).unwrap()).unwrap();
    let (_, out, _) = w.run(&["override", "list"]);
    assert!(out.contains("file changed after it was recorded"), "{out}");
    let (code, _, err) = w.run(&["override", "approve", &id]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("changed after it was recorded"), "{err}");
    assert!(!w.state.join("grants.json").exists());

    // A decided id cannot come back with new content.
    // ...but it can be turned down, which removes it.
    let (code, _, err) = w.run(&["override", "deny", &id]);
    assert_eq!(code, 0, "{err}");
    assert!(!file.exists());
    let id = w.request("docs/old.md", "unlink", "claude:3");
    let file = w.state.join("requests").join(format!("{id}.json"));
    let saved = std::fs::read(&file).unwrap();
    assert_eq!(w.run(&["override", "deny", &id]).0, 0);
    std::fs::write(&file, saved).unwrap();
    let (code, _, err) = w.run(&["override", "approve", &id]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("already decided (deny"), "{err}");

    // A symlink in the spool is never followed, an id is never a path.
    let secret = w.home.join(".ssh/id_ed25519");
    std::fs::write(&secret, "KEY").unwrap();
    std::os::unix::fs::symlink(&secret, w.state.join("requests/r-e1e1.json")).unwrap();
    let (code, _, err) = w.run(&["override", "approve", "r-e1e1"]);
    assert_eq!(code, 1);
    assert!(!err.contains("KEY"), "{err}");
    let (code, out, _) = w.run(&["override", "list"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("(unreadable)") && !out.contains("KEY"),
        "{out}"
    );
    let (code, _, err) = w.run(&["override", "approve", "../grants"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("not an override id"), "{err}");

    // Terminal escapes smuggled into a spool file's keys never reach the human's terminal raw.
    std::fs::write(
        w.state.join("requests/r-e5c.json"),
        // JSON's own escape: the key decodes to ESC [2J ESC [H, which serde's
        // "unknown field" error quotes.
        r#"{"id": "r-e5c", "\u001b[2J\u001b[Happroved": 1}"#,
    )
    .unwrap();
    let (_, out, _) = w.run(&["override", "list"]);
    assert!(out.contains("(unreadable)"), "{out}");
    assert!(!out.contains('\u{1b}'), "{out:?}");
    let (code, _, err) = w.run(&["override", "approve", "r-e5c"]);
    assert_eq!(code, 1);
    assert!(!err.contains('\u{1b}'), "{err:?}");

    // The spool replaced by a symlink (to a directory holding a request-shaped file) is not
    // used: a human's deny would otherwise unlink files wherever it points.
    let id3 = w.request("docs/y.md", "unlink", "claude:4");
    let elsewhere = w.home.join("elsewhere");
    std::fs::rename(w.state.join("requests"), &elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, w.state.join("requests")).unwrap();
    for cmd in ["approve", "deny"] {
        let (code, _, err) = w.run(&["override", cmd, &id3]);
        assert_eq!(code, 1, "{cmd}: {err}");
        assert!(err.contains("expected a directory"), "{cmd}: {err}");
    }
    assert!(elsewhere.join(format!("{id3}.json")).exists());
    let (code, _, err) = w.run(&["override", "list"]);
    assert_eq!(code, 1, "{err}");
    std::fs::remove_file(w.state.join("requests")).unwrap();
    std::fs::rename(&elsewhere, w.state.join("requests")).unwrap();

    // An id inside the file that is not its name is refused.
    let id2 = w.request("docs/x.md", "unlink", "claude:2");
    std::fs::copy(
        w.state.join("requests").join(format!("{id2}.json")),
        w.state.join("requests/r-00000000.json"),
    )
    .unwrap();
    let (code, _, err) = w.run(&["override", "approve", "r-00000000"]);
    assert_eq!(code, 1);
    assert!(err.contains("not \"r-00000000\""), "{err}");
}
