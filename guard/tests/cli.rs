//! The command line as a whole, with the built binary: errors as JSON on stderr under `--json`
//! (the shape documented in `cli/mod.rs`), help text for every argument, one `--since` for every
//! subcommand that has it, an empty state directory read without complaint, `instructions`
//! printing pure JSON, and `policy check` naming each interpreter's real one-liner flag.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use clap::CommandFactory;
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_agent-guard");

/// `agent-guard ARGS` with a fresh, empty HOME (no state directory, no policy of the user's).
fn fresh(home: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env_clear()
        .env("HOME", home)
        .env("PATH", "/usr/bin:/bin")
        .output()
        .unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The one JSON error line on stderr, checked for the documented shape.
fn json_error(out: &Output) -> Value {
    let err = stderr(out);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "one line of JSON on stderr: {err}");
    let v: Value = serde_json::from_str(lines[0]).unwrap_or_else(|e| panic!("{e}: {err}"));
    let e = &v["error"];
    assert!(
        matches!(
            e["kind"].as_str(),
            Some("usage" | "failed" | "refused" | "not_found" | "bad_input")
        ),
        "{v}"
    );
    assert!(e["message"].as_str().is_some_and(|m| !m.is_empty()), "{v}");
    assert!(e["causes"].is_array(), "{v}");
    assert_eq!(e["exit_code"], out.status.code().unwrap(), "{v}");
    v
}

/// Errors a command reports itself, with its own exit code, take the same shape.
#[test]
fn a_commands_own_refusals_are_json_errors_too() {
    let home = tempfile::tempdir().unwrap();
    // Nothing kept: exit 1.
    let out = fresh(home.path(), &["undo", "restore", "--since", "1h", "--json"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let v = json_error(&out);
    assert_eq!(v["error"]["kind"], "not_found", "{v}");
    // A pid that names no process: exit 2.
    let mut child = Command::new("true").spawn().unwrap();
    let pid = child.id().to_string();
    child.wait().unwrap();
    let out = fresh(home.path(), &["explain", "--pid", &pid, "--json"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let v = json_error(&out);
    assert_eq!(v["error"]["kind"], "bad_input", "{v}");
    assert!(
        v["error"]["message"].as_str().unwrap().contains(&pid),
        "{v}"
    );
    // What only a human may do, asked by an agent: exit 1.
    let out = Command::new(BIN)
        .args(["undo", "restore", "--since", "1h", "--json"])
        .env_clear()
        .env("HOME", home.path())
        .env("PATH", "/usr/bin:/bin")
        .env("AGENT_GUARD_AGENT", "claude:4200")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let v = json_error(&out);
    assert_eq!(v["error"]["kind"], "refused", "{v}");
    // Without --json, the same as text.
    let out = fresh(home.path(), &["undo", "restore", "--since", "1h"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stderr(&out), "agent-guard: nothing kept matches\n");
}

#[test]
fn json_errors_are_one_json_line_on_stderr() {
    let home = tempfile::tempdir().unwrap();
    // A command line clap cannot take.
    let out = fresh(
        home.path(),
        &["audit", "query", "--json", "--since", "bogus"],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    let v = json_error(&out);
    assert_eq!(v["error"]["kind"], "usage", "{v}");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("--since"),
        "{v}"
    );
    // A command that fails.
    let out = fresh(home.path(), &["override", "status", "nosuch", "--json"]);
    assert_eq!(out.status.code(), Some(2));
    let v = json_error(&out);
    assert_eq!(v["error"]["kind"], "failed", "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not an override id"),
        "{v}"
    );
    let out = fresh(
        home.path(),
        &["check", "--json", "--op", "rename", "--path", "/tmp/a"],
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert_eq!(json_error(&out)["error"]["kind"], "failed");
    // The same errors without --json are text.
    let out = fresh(home.path(), &["override", "status", "nosuch"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).starts_with("agent-guard: "),
        "{}",
        stderr(&out)
    );
    // Help is not an error, with --json or not.
    let out = fresh(home.path(), &["audit", "query", "--json", "--help"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("Usage:"));
    // `run`'s arguments from CMD on are CMD's, --json included.
    let out = fresh(home.path(), &["run", "--bogus", "--json"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).starts_with("error: "), "{}", stderr(&out));
}

/// Every argument of every subcommand has help text.
#[test]
fn every_argument_has_help() {
    fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
        for arg in cmd.get_arguments() {
            let id = arg.get_id().as_str();
            if matches!(id, "help" | "version") {
                continue;
            }
            if arg.get_help().is_none() && arg.get_long_help().is_none() {
                missing.push(format!("{path} {id}"));
            }
        }
        for sub in cmd.get_subcommands() {
            if sub.get_about().is_none() && sub.get_long_about().is_none() {
                missing.push(format!("{path} {} (the subcommand)", sub.get_name()));
            }
            walk(sub, &format!("{path} {}", sub.get_name()), missing);
        }
    }
    let mut missing = Vec::new();
    walk(
        &agent_guard::cli::Cli::command(),
        "agent-guard",
        &mut missing,
    );
    assert!(missing.is_empty(), "no help text:\n{}", missing.join("\n"));
}

/// The subcommands that take `--since`, found in the clap tree, each run by the binary with
/// both forms (a duration ago and an RFC 3339 time), and a bad value refused naming `--since`.
#[test]
fn since_takes_the_same_forms_everywhere() {
    fn walk(cmd: &clap::Command, path: Vec<String>, found: &mut Vec<Vec<String>>) {
        if cmd.get_arguments().any(|a| a.get_long() == Some("since")) {
            found.push(path.clone());
        }
        for sub in cmd.get_subcommands() {
            let mut p = path.clone();
            p.push(sub.get_name().to_string());
            walk(sub, p, found);
        }
    }
    let mut found = Vec::new();
    walk(&agent_guard::cli::Cli::command(), vec![], &mut found);
    let names: Vec<String> = found.iter().map(|p| p.join(" ")).collect();
    for expected in [
        "denials",
        "audit query",
        "audit export",
        "undo list",
        "undo restore",
    ] {
        assert!(names.iter().any(|n| n == expected), "{names:?}");
    }
    let home = tempfile::tempdir().unwrap();
    for path in &found {
        let path: Vec<&str> = path.iter().map(String::as_str).collect();
        for good in [
            "2m",
            "1d",
            "2026-11-21T07:00:00Z",
            "2026-11-21T08:00:00.5+01:00",
        ] {
            let out = fresh(home.path(), &[&path[..], &["--since", good]].concat());
            assert_ne!(
                out.status.code(),
                Some(2),
                "{path:?} --since {good}: {}",
                stderr(&out)
            );
        }
        let out = fresh(
            home.path(),
            &[&path[..], &["--since", "2 minutes"]].concat(),
        );
        assert_eq!(out.status.code(), Some(2), "{path:?}");
        assert!(
            stderr(&out).contains("--since"),
            "{path:?}: {}",
            stderr(&out)
        );
    }
}

/// On a machine where nothing ran yet: nothing printed, exit 0, nothing created.
#[test]
fn audit_query_on_a_fresh_machine_prints_nothing() {
    let home = tempfile::tempdir().unwrap();
    for args in [&["audit", "query"][..], &["audit", "query", "--json"]] {
        let out = fresh(home.path(), args);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", stderr(&out));
        assert!(out.stdout.is_empty(), "{args:?}");
        assert!(out.stderr.is_empty(), "{args:?}: {}", stderr(&out));
    }
    let left: Vec<PathBuf> = std::fs::read_dir(home.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn instructions_print_pure_json_on_stdout() {
    let home = tempfile::tempdir().unwrap();
    for agent in ["claude-code", "codex", "gemini-cli", "cursor"] {
        let out = fresh(home.path(), &["instructions", "--agent", agent]);
        assert_eq!(out.status.code(), Some(0), "{agent}");
        let v: Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{agent}: stdout is not one JSON value: {e}"));
        assert!(v["instructions"].as_str().is_some(), "{agent}: {v}");
        assert!(stderr(&out).contains("agent-guard install"), "{agent}");
    }
}

#[test]
fn policy_check_names_each_interpreters_one_liner() {
    let home = tempfile::tempdir().unwrap();
    let policy = home.path().join("policy.json");
    std::fs::write(&policy, r#"{"trusted_tools": ["python3", "node", "bash"]}"#).unwrap();
    let out = fresh(home.path(), &["policy", "check", policy.to_str().unwrap()]);
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), stderr(&out));
    for one_liner in ["`python3 -c ...`", "`node -e ...`", "`bash -c ...`"] {
        assert!(said.contains(one_liner), "{one_liner}: {said}");
    }
    assert!(!said.contains("python3 -e"), "{said}");
}
