//! `agent-guard demo`: a self-contained tour on the embedded default policy.
//!
//! Builds a throwaway home (a project with sources, a build directory, credentials, a shell rc
//! file) in a temp directory, then runs a scripted "agent" through destructive and harmless
//! actions, each under the real supervisor (`agent-guard run --agent claude -- sh -c STEP`) with
//! `HOME` pointing at the throwaway home, and prints what was blocked (with the reason from the
//! denial log), what was allowed and kept (put back after each step by `agent-guard undo
//! restore`, as the human would), and what was simply allowed. It changes nothing outside its
//! temp directory, which it removes.

use std::fs;
use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context};
use clap::Args;

#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Keep the throwaway workspace instead of removing it (prints where it is).
    #[arg(long)]
    pub keep: bool,
}

/// What the default policy does with a step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    /// Refused: EPERM, a denial record, the file untouched.
    Blocked,
    /// Allowed, and what it destroyed kept: `agent-guard undo restore` (run as the human) puts
    /// it back.
    Kept,
    /// Allowed; nothing to keep.
    Allowed,
}

/// One scripted agent action: what it tries, the shell command, and what the default policy
/// should do with it (the demo checks itself and says so if the outcome differs).
struct Step {
    what: &'static str,
    script: &'static str,
    expect: Outcome,
    /// A file the step destroys or must leave alone: after a block it is unchanged, after a
    /// keep the undo brings it back as it was.
    survivor: Option<&'static str>,
    /// A program the step needs; skipped when it is not installed.
    needs: Option<&'static str>,
}

#[rustfmt::skip]
const STEPS: &[Step] = &[
    Step { what: "delete a source file", script: "rm project/src/main.rs", expect: Outcome::Kept, survivor: Some("project/src/main.rs"), needs: None },
    Step { what: "rm -rf the project", script: "rm -rf project", expect: Outcome::Kept, survivor: Some("project/src/main.rs"), needs: None },
    Step { what: "delete through python", script: "python3 -c 'import os; os.remove(\"project/README.md\")'", expect: Outcome::Kept, survivor: Some("project/README.md"), needs: Some("python3") },
    Step { what: "move the project away", script: "mv project $TMPDIR/moved", expect: Outcome::Kept, survivor: Some("project/README.md"), needs: None },
    Step { what: "clobber a file from outside", script: "echo x > $TMPDIR/x && mv $TMPDIR/x project/README.md", expect: Outcome::Kept, survivor: Some("project/README.md"), needs: None },
    Step { what: "truncate a file", script: ": > project/README.md", expect: Outcome::Kept, survivor: Some("project/README.md"), needs: None },
    Step { what: "a renamed rm called git", script: "cp \"$(command -v rm)\" ./git && ./git project/README.md", expect: Outcome::Kept, survivor: Some("project/README.md"), needs: None },
    Step { what: "git clean -fdx", script: "cd project && git clean -fdx", expect: Outcome::Blocked, survivor: Some("project/notes-untracked.txt"), needs: Some("git") },
    Step { what: "read an SSH key", script: "cat .ssh/id_ed25519", expect: Outcome::Blocked, survivor: None, needs: None },
    Step { what: "append to ~/.bashrc", script: "echo 'alias ls=rm' >> .bashrc", expect: Outcome::Blocked, survivor: Some(".bashrc"), needs: None },
    Step { what: "edit a file (write temp, rename)", script: "echo 'fn main() {}' > project/src/.main.rs.tmp && mv project/src/.main.rs.tmp project/src/main.rs", expect: Outcome::Allowed, survivor: None, needs: None },
    Step { what: "create a new file", script: "echo notes > project/NOTES.md", expect: Outcome::Allowed, survivor: None, needs: None },
    Step { what: "clean the build output", script: "rm -rf project/target", expect: Outcome::Allowed, survivor: None, needs: None },
    Step { what: "delete a temp file", script: "touch $TMPDIR/scratch && rm $TMPDIR/scratch", expect: Outcome::Allowed, survivor: None, needs: None },
];

/// How long a refused step's denial record may take to appear in the log.
const RECORD_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

pub fn run(args: &DemoArgs) -> anyhow::Result<i32> {
    let exe = std::env::current_exe().context("cannot find the agent-guard binary")?;
    let root = tempfile::Builder::new()
        .prefix("agent-guard-demo-")
        .tempdir()
        .context("cannot create a temp dir")?;
    let root_path = fs::canonicalize(root.path())?;
    let home = root_path.join("home");
    let state = root_path.join("state");
    let tmp = root_path.join("tmp");
    build_home(&home)?;
    fs::create_dir_all(&tmp)?;

    println!(
        "agent-guard demo: a scripted agent \"claude\" in a throwaway home {}",
        home.display()
    );
    println!("policy: the embedded default (~ keeps what agents destroy, ~/.ssh is secret, ~/.bashrc read-only, git clean is an exec rule)\n");
    let mut rows = Vec::new();
    let mut surprises = 0;
    for step in STEPS {
        if let Some(program) = step.needs {
            if !on_path(program) {
                rows.push((
                    step.what,
                    "skipped".to_string(),
                    format!("{program} is not installed"),
                ));
                continue;
            }
        }
        let before = denial_count(&state);
        let original = step.survivor.and_then(|f| fs::read(home.join(f)).ok());
        let started = crate::vocab::time::rfc3339_millis(std::time::SystemTime::now());
        let status = Command::new(&exe)
            .args(["run", "--agent", "claude", "--", "sh", "-c", step.script])
            .current_dir(&home)
            .env("HOME", &home)
            .env("TMPDIR", &tmp)
            .env("AGENT_GUARD_STATE_DIR", &state)
            .env_remove("AGENT_GUARD_POLICY")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .with_context(|| format!("cannot run the step {:?}", step.what))?;
        // Records are written off the hot path: give a refused step's record a moment to land.
        let mut denial = newest_denial(&state, before);
        let waited = std::time::Instant::now();
        while denial.is_none() && !status.success() && waited.elapsed() < RECORD_WAIT {
            std::thread::sleep(std::time::Duration::from_millis(20));
            denial = newest_denial(&state, before);
        }
        let intact = || match (step.survivor, &original) {
            (Some(f), Some(bytes)) => fs::read(home.join(f)).ok().as_ref() == Some(bytes),
            _ => true,
        };
        let (outcome, verdict, detail) = if let Some(d) = &denial {
            let outcome = if intact() {
                Outcome::Blocked
            } else {
                Outcome::Allowed
            };
            (outcome, "BLOCKED", format!("[{}] {}", d.0, d.1))
        } else if !intact() {
            // The human's undo of what this step's session destroyed, once the session has
            // recorded the state it left (the supervisor does so as it stops).
            session_ended(&exe, &home, &state, &started);
            let restore = Command::new(&exe)
                .args(["undo", "restore", "--since", &started])
                .current_dir(&home)
                .env("HOME", &home)
                .env("AGENT_GUARD_STATE_DIR", &state)
                .env_remove("AGENT_GUARD_POLICY")
                .env_remove(crate::overrides::AGENT_ENV)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status()
                .context("cannot run agent-guard undo restore")?;
            if restore.success() && intact() {
                (
                    Outcome::Kept,
                    "kept",
                    "allowed; `agent-guard undo restore` put it back".to_string(),
                )
            } else {
                (
                    Outcome::Allowed,
                    "LOST",
                    "allowed, and the undo did not bring it back".to_string(),
                )
            }
        } else if status.success() {
            (Outcome::Allowed, "allowed", String::new())
        } else {
            (
                Outcome::Allowed,
                "allowed",
                format!("(the command itself failed: {status})"),
            )
        };
        if outcome != step.expect {
            surprises += 1;
        }
        rows.push((step.what, verdict.to_string(), detail));
    }
    print_table(&rows);
    println!(
        "\nEvery denial is one JSON line in {}/denials.jsonl (removed with the workspace unless --keep);",
        state.display()
    );
    println!(
        "an agent reads them with `agent-guard denials --since 2m --json` and asks for an override"
    );
    println!("with the command in the record's \"hint\" field.");
    if args.keep {
        println!("\nworkspace kept at {}", root.keep().display());
    }
    if surprises > 0 {
        bail!("{surprises} step(s) did not behave as the default policy promises");
    }
    Ok(0)
}

fn build_home(home: &Path) -> anyhow::Result<()> {
    let files = [
        (
            "project/src/main.rs",
            "fn main() { println!(\"hello\"); }\n",
        ),
        ("project/README.md", "# project\n"),
        ("project/notes-untracked.txt", "work not yet committed\n"),
        ("project/target/debug/app", "build output\n"),
        (
            ".ssh/id_ed25519",
            "-----BEGIN OPENSSH PRIVATE KEY----- (demo)\n",
        ),
        (".bashrc", "# shell start-up\n"),
    ];
    for (path, content) in files {
        let full = home.join(path);
        fs::create_dir_all(full.parent().unwrap_or(home))?;
        fs::write(&full, content).with_context(|| format!("cannot write {}", full.display()))?;
    }
    if on_path("git") {
        let git = |args: &[&str]| {
            Command::new("git")
                .args(args)
                .current_dir(home.join("project"))
                .env("HOME", home)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status()
        };
        git(&["init", "-q"])?;
        git(&["add", "src", "README.md"])?;
        git(&[
            "-c",
            "user.name=demo",
            "-c",
            "user.email=demo@example.com",
            "commit",
            "-qm",
            "init",
        ])?;
    }
    Ok(())
}

/// Wait (up to a few seconds) until the entries kept since `since` are recorded and carry their
/// session's end state: before that, `undo restore` cannot tell the agent's last write from a
/// human's.
fn session_ended(exe: &Path, home: &Path, state: &Path, since: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while std::time::Instant::now() < deadline {
        let listed = Command::new(exe)
            .args(["undo", "list", "--json", "--since", since])
            .env("HOME", home)
            .env("AGENT_GUARD_STATE_DIR", state)
            .env_remove("AGENT_GUARD_POLICY")
            .output();
        let ended = listed
            .ok()
            .and_then(|out| serde_json::from_slice::<serde_json::Value>(&out.stdout).ok())
            .is_some_and(|list| {
                // At least one entry: the step destroyed something, whose row may not be
                // written yet.
                let entries: Vec<&serde_json::Value> = list["sessions"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|s| s["entries"].as_array())
                    .flatten()
                    .collect();
                !entries.is_empty() && entries.iter().all(|e| !e["end_state"].is_null())
            });
        if ended {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
}

fn denial_lines(state: &Path) -> Vec<String> {
    fs::read_to_string(state.join("denials.jsonl"))
        .map(|s| s.lines().map(str::to_string).collect())
        .unwrap_or_default()
}

fn denial_count(state: &Path) -> usize {
    denial_lines(state).len()
}

/// The first denial logged after `before` lines: (rule, reason).
fn newest_denial(state: &Path, before: usize) -> Option<(String, String)> {
    let lines = denial_lines(state);
    let line = lines.get(before)?;
    let record: serde_json::Value = serde_json::from_str(line).ok()?;
    let field = |k: &str| {
        record
            .get(k)
            .and_then(|v| v.as_str())
            .unwrap_or("")
            .to_string()
    };
    Some((field("rule"), field("reason")))
}

fn print_table(rows: &[(&str, String, String)]) {
    let width = rows.iter().map(|r| r.0.len()).max().unwrap_or(0);
    println!("{:width$}  {:8}  why", "the agent tries to", "result");
    println!("{:-<width$}  {:-<8}  {:-<40}", "", "", "");
    for (what, verdict, detail) in rows {
        println!("{what:width$}  {verdict:8}  {detail}");
    }
}
