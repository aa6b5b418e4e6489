//! An exec override covers exactly the command that was denied (issue 17, items 6 and 8): the
//! denial names the real command and keeps its argv, the request taken from it is scoped to
//! those arguments, and once a human approves it `git clean -fdx` runs while `git reset --hard`
//! and a `git clean` with other arguments are still refused. The human sees the whole command.

use super::*;

const POLICY: &str = r#"{
  "ai_agent_patterns": ["claude"],
  "protected_zones": ["~/proj"],
  "exec_rules": [
    {"program": "git", "args": ["clean"], "unless": ["-n", "--dry-run"], "reason": "git clean deletes untracked files for good"},
    {"program": "git", "args": ["reset", "--hard"], "reason": "git reset --hard discards uncommitted work"}
  ]
}"#;

#[test]
fn an_approved_exec_override_runs_that_command_only() {
    let s = Sandbox::with_policy(POLICY);
    let repo = s.outside.join("repo");
    let setup = s.human(&format!(
        "set -e; git init -q {r}; cd {r}; git config user.email a@b; git config user.name a; \
         echo a > tracked; git add tracked; git commit -qm init; echo junk > untracked",
        r = repo.display()
    ));
    assert!(setup.status.success(), "{}", text(&setup));

    // Denied, and the record names the command as it was run.
    let out = s.agent(&format!("cd {} && git clean -fdx", repo.display()));
    assert!(!out.status.success(), "{}", text(&out));
    assert!(repo.join("untracked").exists());
    let denials = s.wait_denials(1);
    let d = denials
        .iter()
        .find(|d| d["rule"] == "exec_rule")
        .unwrap_or_else(|| panic!("{denials:#?}"));
    assert_eq!(
        d["argv"],
        serde_json::json!(["git", "clean", "-fdx"]),
        "{d:#}"
    );
    let reason = d["reason"].as_str().unwrap();
    assert!(reason.contains("`git clean -fdx`"), "{reason}");
    assert!(
        !reason.contains('{'),
        "the rule's pattern, not the command: {reason}"
    );
    assert!(
        d["hint"].as_str().unwrap().ends_with("-- clean -fdx"),
        "{d:#}"
    );

    // The agent asks from the denial; the human sees the whole command and approves.
    let id = d["id"].as_str().unwrap();
    let out = s.agent(&format!(
        "agent-guard() {{ \"$AG\" \"$@\"; }}; AG={} ; agent-guard override request --denial {id} --reason 'the user wants a clean tree' --json",
        bin().display()
    ));
    assert!(out.status.success(), "{}", text(&out));
    let request: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(request["args"], serde_json::json!(["clean", "-fdx"]));
    let rid = request["id"].as_str().unwrap();
    let list = s.guard(&["override", "list"]);
    let listed = String::from_utf8_lossy(&list.stdout);
    assert!(
        listed.contains("git clean -fdx` (exactly this command)"),
        "{listed}"
    );
    let out = s.guard(&["override", "approve", rid]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("(exactly this command)"),
        "{}",
        text(&out)
    );

    // The approved command runs; anything else is still refused.
    for other in [
        "git reset --hard",
        "git clean -fdx -e keep",
        "git clean -fd",
    ] {
        let out = s.agent(&format!("cd {} && {other}", repo.display()));
        assert!(!out.status.success(), "{other} ran: {}", text(&out));
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("Operation not permitted"),
            "{other}: {}",
            text(&out)
        );
    }
    assert!(repo.join("untracked").exists());
    let out = s.agent(&format!("cd {} && git clean -fdx", repo.display()));
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        !repo.join("untracked").exists(),
        "the approved git clean ran"
    );
}

/// Without arguments an exec request is refused: it would unlock the whole program.
#[test]
fn an_exec_request_must_name_its_arguments() {
    let s = Sandbox::with_policy(POLICY);
    let out = s.guard(&[
        "override",
        "request",
        "/usr/bin/git",
        "--op",
        "exec",
        "--reason",
        "cleanup",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("an exec override covers that command only"),
        "{}",
        text(&out)
    );
}
