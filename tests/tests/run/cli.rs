//! `agent-guard run` as a command line, with the built binary: CMD without `--`, a command
//! that cannot run named with its errno, a session that has ended (end states recorded) the
//! moment `run` returns, one agent pid in `$AGENT_GUARD_AGENT`, the records and `explain`, and
//! a debug log without escape codes when it is not a terminal.

use std::process::{Command, Stdio};

use agent_guard_e2e::{bin, text, Sandbox, KEEP_POLICY};
use serde_json::Value;

fn run_cmd(s: &Sandbox, args: &[&str]) -> std::process::Output {
    s.guard(&[&["run"], args].concat())
}

#[test]
fn cmd_needs_no_double_dash_and_everything_after_it_is_cmds() {
    let s = Sandbox::new();
    let out = run_cmd(&s, &["sh", "-c", "exit 3"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    // Options before CMD are agent-guard's; from CMD on, even `--agent`, they are CMD's.
    let out = run_cmd(
        &s,
        &[
            "--agent",
            "claude",
            "sh",
            "-c",
            "echo \"$@\"",
            "x",
            "-a",
            "--agent",
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "-a --agent\n");
    let out = run_cmd(&s, &["--", "sh", "-c", "echo ok"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "ok\n",
        "{}",
        text(&out)
    );
}

#[test]
fn a_command_that_cannot_run_is_named_with_its_errno() {
    let s = Sandbox::new();
    let out = run_cmd(&s, &["--", "/no/such/cmd"]);
    assert_eq!(out.status.code(), Some(127), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("/no/such/cmd") && err.contains("No such file or directory (os error 2)"),
        "{err}"
    );
    let not_executable = s.path("proj/README.md");
    let out = run_cmd(&s, &[not_executable.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(126), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("README.md") && err.contains("Permission denied (os error 13)"),
        "{err}"
    );
    let out = run_cmd(&s, &["no-such-command-here"]);
    assert_eq!(out.status.code(), Some(127), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("\"no-such-command-here\" not found"),
        "{}",
        text(&out)
    );
}

/// Each time, at once after `run` returns (no pipe shared with the supervisor to wait on): the
/// records are queryable, the kept entry has its session's end state, and `undo restore` puts
/// the file the agent deleted back in place. The file is large, so that hashing its kept copy
/// is still under way when the agent is done: `run` must wait for it.
#[test]
fn the_session_has_ended_when_run_returns() {
    let s = Sandbox::with_policy(KEEP_POLICY);
    let gone = s.path("proj/gone.txt");
    for round in 0..5 {
        let content = format!("gone {round}\n").repeat(1 << 20);
        std::fs::write(&gone, &content).unwrap();
        // Not `output()`: its pipes would make the test wait for the supervisor, which holds
        // them too; a terminal does not.
        let status = s
            .agent_command(&s.home, &[], "rm proj/gone.txt")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success());

        let query = s.guard(&[
            "audit", "query", "--json", "--op", "unlink", "--since", "1m",
        ]);
        let records = String::from_utf8_lossy(&query.stdout).lines().count();
        assert_eq!(records, round + 1, "round {round}: {}", text(&query));

        let listed = s.guard(&["undo", "list", "--json", "--since", "1m"]);
        let listed: Value = serde_json::from_slice(&listed.stdout).unwrap();
        let session = listed["sessions"].as_array().unwrap().last().unwrap();
        let entries = session["entries"].as_array().unwrap();
        assert_eq!(entries.len(), 1, "round {round}: {session}");
        assert_eq!(
            entries[0]["end_state"], "absent",
            "round {round}: the session's end is not recorded yet: {session}"
        );
        let restored = s.guard(&[
            "undo",
            "restore",
            "--session",
            session["session"].as_str().unwrap(),
        ]);
        let said = text(&restored);
        assert!(restored.status.success(), "{said}");
        assert!(
            said.contains("restored ") && !said.contains("beside"),
            "round {round}: {said}"
        );
        assert!(
            std::fs::read_to_string(&gone).unwrap() == content,
            "round {round}: {said}"
        );
    }
}

/// `$AGENT_GUARD_AGENT` (given to the agent), the denial record and `explain` run inside the
/// tree name the same agent pid, and `explain` says the process is the agent's.
#[test]
fn the_agents_pid_is_the_same_everywhere_and_explain_says_it_is_the_agents() {
    let s = Sandbox::new();
    let out = s.agent(&format!(
        "echo \"$AGENT_GUARD_AGENT\"; rm proj/README.md 2>/dev/null; '{ag}' explain --json; '{ag}' explain; exit $?",
        ag = bin().display()
    ));
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let env_pid: i64 = stdout
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("claude:"))
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("AGENT_GUARD_AGENT is not claude:PID: {stdout}"));
    let denials = s.wait_denials(1);
    assert_eq!(denials[0]["agent_pid"], env_pid, "{denials:?}");
    let json_end = stdout.find("\n}\n").expect("explain --json output") + 3;
    let explained: Value = serde_json::from_str(&stdout[stdout.find('{').unwrap()..json_end])
        .unwrap_or_else(|e| panic!("{e}: {stdout}"));
    assert_eq!(explained["under_run"]["agent_pid"], env_pid, "{explained}");
    assert!(
        stdout[json_end..].starts_with(&format!("pid {} is the agent's", explained["pid"])),
        "{stdout}"
    );
    // The human's own shell is not under any run.
    let human = s.guard(&["explain", "--json"]);
    let human: Value = serde_json::from_slice(&human.stdout).unwrap();
    assert!(human["under_run"].is_null(), "{human}");
}

#[test]
fn the_debug_log_has_no_escape_codes_when_it_is_not_a_terminal() {
    let s = Sandbox::new();
    let log = s.root.join("debug.log");
    let mut cmd = Command::new(bin());
    cmd.args([
        "run",
        "--agent",
        "claude",
        "--",
        "sh",
        "-c",
        "rm proj/README.md",
    ])
    .current_dir(&s.home)
    .env("HOME", &s.home)
    .env("AGENT_GUARD_STATE_DIR", &s.state)
    .env("AGENT_GUARD_POLICY", &s.policy)
    .env("AGENT_GUARD_LOG", "debug")
    .stderr(std::fs::File::create(&log).unwrap());
    let status = cmd.status().unwrap();
    assert!(!status.success());
    let written = std::fs::read_to_string(&log).unwrap();
    assert!(
        written.contains("DEBUG"),
        "the debug log is empty: {written}"
    );
    assert!(!written.contains('\u{1b}'), "escape codes in {written:?}");
}
