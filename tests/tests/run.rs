//! `agent-guard run` end to end: a fake agent (`bash -c ...` under the supervisor) tries each
//! destructive action of the issue; the file survives, the command gets EPERM, and one
//! well-formed denial names the operation, path, process and agent. The same commands by the
//! human succeed.

use std::path::Path;
use std::time::Duration;

use agent_guard_e2e::{on_path, text, Sandbox};
use serde_json::Value;

const EPERM: &str = "Operation not permitted";

/// Run `script` as the agent and check the outcome: every file in `survivors` still exists,
/// the output shows EPERM (or `eperm_marker`), and a new denial with this op/rule names `path`.
fn assert_blocked(
    s: &Sandbox,
    script: &str,
    survivors: &[&str],
    op: &str,
    rule: &str,
    path: &Path,
) -> Value {
    assert_blocked_with(s, script, survivors, op, rule, path, EPERM)
}

fn assert_blocked_with(
    s: &Sandbox,
    script: &str,
    survivors: &[&str],
    op: &str,
    rule: &str,
    path: &Path,
    marker: &str,
) -> Value {
    let before = s.denials().len();
    let out = s.agent(script);
    for f in survivors {
        assert!(
            s.path(f).exists(),
            "{f} was destroyed by {script:?}\n{}",
            text(&out)
        );
    }
    let all = text(&out);
    assert!(
        all.contains(marker),
        "{script:?} did not report {marker:?}\n{all}"
    );
    let denials = s.wait_denials(before + 1);
    let new: Vec<&Value> = denials[before..].iter().collect();
    let record = new
        .iter()
        .find(|d| d["op"] == op && d["rule"] == rule && d["path"] == path.to_str().unwrap())
        .unwrap_or_else(|| {
            panic!(
                "no {op}/{rule} denial of {} after {script:?}; new records: {new:#?}\n{all}",
                path.display()
            )
        });
    for key in [
        "id",
        "ts",
        "time",
        "op",
        "path",
        "zone",
        "process",
        "ancestor",
        "pid",
        "exe",
        "agent_pid",
        "rule",
        "decision",
        "reason",
        "hint",
    ] {
        assert!(record.get(key).is_some(), "denial lacks {key}: {record}");
    }
    assert_eq!(record["ancestor"], "claude");
    assert_eq!(record["decision"], "deny");
    assert!(!record["process"].as_str().unwrap().is_empty());
    assert!(
        record["hint"]
            .as_str()
            .unwrap()
            .starts_with("agent-guard override request")
            || rule == "guard_self"
    );
    (*record).clone()
}

#[test]
fn rm_of_a_protected_file() {
    let s = Sandbox::new();
    let d = assert_blocked(
        &s,
        "rm proj/src/main.rs",
        &["proj/src/main.rs"],
        "unlink",
        "protected_delete",
        &s.path("proj/src/main.rs"),
    );
    assert_eq!(d["process"], "rm");
}

#[test]
fn rm_rf_of_a_protected_tree() {
    let s = Sandbox::new();
    let before = s.denials().len();
    let out = s.agent("rm -rf proj");
    for f in ["proj/src/main.rs", "proj/README.md", "proj/src/sub/lib.rs"] {
        assert!(s.path(f).exists(), "{f} destroyed: {}", text(&out));
    }
    assert!(text(&out).contains(EPERM), "{}", text(&out));
    let d = s.wait_denials(before + 1);
    assert!(
        d[before..]
            .iter()
            .all(|r| r["rule"] == "protected_delete" && r["process"] == "rm"),
        "{d:#?}"
    );
}

#[test]
fn find_delete() {
    let s = Sandbox::new();
    let before = s.denials().len();
    let out = s.agent("find proj -name '*.rs' -delete");
    assert!(
        s.path("proj/src/main.rs").exists() && s.path("proj/src/sub/lib.rs").exists(),
        "{}",
        text(&out)
    );
    assert!(text(&out).contains(EPERM), "{}", text(&out));
    let d = s.wait_denials(before + 1);
    assert!(
        d[before..]
            .iter()
            .all(|r| r["rule"] == "protected_delete" && r["process"] == "find"),
        "{d:#?}"
    );
}

#[test]
fn python_os_remove() {
    if !on_path("python3") {
        panic!("python3 is required for this test (scripts/test installs it)");
    }
    let s = Sandbox::new();
    let d = assert_blocked(
        &s,
        "python3 -c 'import os; os.remove(\"proj/README.md\")'",
        &["proj/README.md"],
        "unlink",
        "protected_delete",
        &s.path("proj/README.md"),
    );
    assert!(d["process"].as_str().unwrap().starts_with("python3"), "{d}");
}

#[test]
fn node_rm_sync() {
    assert!(
        on_path("node"),
        "node is required for this test (scripts/test installs nodejs)"
    );
    let s = Sandbox::new();
    // Node's rimraf retries an EPERM unlink as a directory and reports ENOTDIR: the EPERM is in
    // the denial record, and the file survives.
    let d = assert_blocked_with(
        &s,
        "node -e 'require(\"fs\").rmSync(\"proj/README.md\")'",
        &["proj/README.md"],
        "unlink",
        "protected_delete",
        &s.path("proj/README.md"),
        "Error:",
    );
    assert!(d["process"].as_str().unwrap().starts_with("node"), "{d}");
}

#[test]
fn perl_unlink() {
    let s = Sandbox::new();
    // perl's unlink reports failure through its return value, not a message.
    let before = s.denials().len();
    let out = s.agent("perl -e 'unlink(\"proj/README.md\") or die \"unlink: $!\\n\"'");
    assert!(s.path("proj/README.md").exists());
    assert!(text(&out).contains(EPERM), "{}", text(&out));
    let d = s.wait_denials(before + 1);
    assert!(
        d[before..]
            .iter()
            .any(|r| r["process"] == "perl" && r["rule"] == "protected_delete"),
        "{d:#?}"
    );
}

#[test]
fn mv_out_of_the_zone() {
    let s = Sandbox::new();
    assert_blocked(
        &s,
        "mv proj/README.md \"$OUTSIDE/\"",
        &["proj/README.md"],
        "rename",
        "protected_move_out",
        &s.path("proj/README.md"),
    );
    assert!(!s.outside.join("README.md").exists());
}

#[test]
fn mv_from_outside_over_an_existing_file() {
    let s = Sandbox::new();
    assert_blocked(
        &s,
        "echo evil > \"$OUTSIDE/x\" && mv \"$OUTSIDE/x\" proj/README.md",
        &["proj/README.md"],
        "rename",
        "protected_clobber",
        &s.path("proj/README.md"),
    );
    assert_eq!(
        std::fs::read_to_string(s.path("proj/README.md")).unwrap(),
        "readme\n"
    );
}

#[test]
fn mv_of_the_zones_parent_directory() {
    let s = Sandbox::new();
    assert_blocked(
        &s,
        "mv work/deep work/moved",
        &["work/deep/zone/keep.txt"],
        "rename",
        "zone_root_rename",
        &s.path("work/deep"),
    );
}

#[test]
fn a_copy_of_rm_named_git_is_not_git() {
    let s = Sandbox::new();
    let d = assert_blocked(
        &s,
        "cp \"$(command -v rm)\" ./git && ./git proj/README.md",
        &["proj/README.md"],
        "unlink",
        "protected_delete",
        &s.path("proj/README.md"),
    );
    assert_eq!(
        d["process"], "git",
        "the record names the binary as it is called: {d}"
    );
}

#[test]
fn double_fork_after_the_agent_shell_exited() {
    let s = Sandbox::new();
    let before = s.denials().len();
    // Both escape routes: setsid in a subshell and nohup in the background; the shell exits
    // at once, so `run` returns before they act.
    let out = s.agent(
        "(setsid bash -c 'sleep 1; rm proj/README.md' >/dev/null 2>&1 &); \
         nohup bash -c 'sleep 1; rm proj/src/main.rs' >/dev/null 2>&1 & exit 0",
    );
    assert!(out.status.success(), "{}", text(&out));
    let d = s.wait_denials(before + 2);
    let paths: Vec<&str> = d[before..]
        .iter()
        .filter_map(|r| r["path"].as_str())
        .collect();
    assert!(
        paths.contains(&s.path("proj/README.md").to_str().unwrap()),
        "{d:#?}"
    );
    assert!(
        paths.contains(&s.path("proj/src/main.rs").to_str().unwrap()),
        "{d:#?}"
    );
    assert!(s.path("proj/README.md").exists() && s.path("proj/src/main.rs").exists());
}

#[test]
fn relative_path_after_cd() {
    let s = Sandbox::new();
    assert_blocked(
        &s,
        "cd proj/src/sub && rm ../main.rs",
        &["proj/src/main.rs"],
        "unlink",
        "protected_delete",
        &s.path("proj/src/main.rs"),
    );
}

#[test]
fn path_through_a_symlink() {
    let s = Sandbox::new();
    let link = s.outside.join("link");
    std::os::unix::fs::symlink(s.path("proj/src"), &link).unwrap();
    assert_blocked(
        &s,
        "rm \"$OUTSIDE/link/main.rs\"",
        &["proj/src/main.rs"],
        "unlink",
        "protected_delete",
        &s.path("proj/src/main.rs"),
    );
    // Removing the link itself removes only the link: allowed.
    let out = s.agent("rm \"$OUTSIDE/link\"");
    assert!(
        out.status.success() && !link.exists() && s.path("proj/src/main.rs").exists(),
        "{}",
        text(&out)
    );
}

#[test]
fn cat_of_a_secret() {
    let s = Sandbox::new();
    let before = s.denials().len();
    let out = s.agent("cat .ssh/id_ed25519");
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("PRIVATE KEY"),
        "{}",
        text(&out)
    );
    assert!(text(&out).contains(EPERM), "{}", text(&out));
    let d = s.wait_denials(before + 1);
    assert!(
        d[before..]
            .iter()
            .any(|r| r["rule"] == "secret_zone" && r["op"] == "open" && r["process"] == "cat"),
        "{d:#?}"
    );
}

#[test]
fn secret_through_a_symlink_and_a_hard_link() {
    let s = Sandbox::new();
    std::os::unix::fs::symlink(s.path(".ssh/id_ed25519"), s.outside.join("key-link")).unwrap();
    let out = s.agent("cat \"$OUTSIDE/key-link\"");
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("PRIVATE KEY"),
        "symlink leaked the secret: {}",
        text(&out)
    );
    // A hard link made by the human before the agent started (same file system).
    std::fs::hard_link(s.path(".ssh/id_ed25519"), s.outside.join("key-hard")).unwrap();
    let out = s.agent("cat \"$OUTSIDE/key-hard\"");
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("PRIVATE KEY"),
        "hard link leaked the secret: {}",
        text(&out)
    );
}

#[test]
fn truncate_of_a_readonly_file() {
    let s = Sandbox::new();
    let before = s.denials().len();
    let out = s.agent(": > ro/config");
    assert_eq!(
        std::fs::read_to_string(s.path("ro/config")).unwrap(),
        "setting=1\n",
        "{}",
        text(&out)
    );
    assert!(text(&out).contains(EPERM), "{}", text(&out));
    let d = s.wait_denials(before + 1);
    assert!(
        d[before..]
            .iter()
            .any(|r| r["rule"] == "readonly_zone"
                && r["path"] == s.path("ro/config").to_str().unwrap()),
        "{d:#?}"
    );
}

#[test]
fn git_clean_is_an_exec_rule() {
    assert!(on_path("git"), "git is required for this test");
    let s = Sandbox::new();
    let setup = s.human("cd proj && git init -q && git add src && git -c user.name=t -c user.email=t@t commit -qm init");
    assert!(setup.status.success(), "{}", text(&setup));
    let before = s.denials().len();
    let out = s.agent("cd proj && git clean -fdx");
    assert!(
        s.path("proj/README.md").exists(),
        "untracked file destroyed: {}",
        text(&out)
    );
    assert!(!out.status.success(), "{}", text(&out));
    let d = s.wait_denials(before + 1);
    assert!(
        d[before..]
            .iter()
            .any(|r| r["rule"] == "exec_rule" && r["op"] == "exec"),
        "{d:#?}"
    );
}

#[test]
fn git_stash_and_worktree_work_for_the_agent_and_git_reset_hard_does_not() {
    // git stash and git worktree add exec `git reset --hard` (stash also `git clean` and `git
    // checkout`) for themselves, after saving the tree or into a new one: the default exec rules
    // spare them (`unless_run_by`), and only them.
    assert!(on_path("git"), "git is required for this test");
    let s = Sandbox::new();
    let setup = s.human(
        "cd proj && git init -q && git add -A && \
         git -c user.name=t -c user.email=t@t commit -qm init",
    );
    assert!(setup.status.success(), "{}", text(&setup));
    let out = s.agent(
        "cd proj && echo edit >> README.md && echo new > untracked.txt && \
         git stash -q -u && test ! -e untracked.txt && git diff --quiet && echo stashed && \
         git stash pop -q && echo popped && \
         git worktree add -q ../wt HEAD && test -f ../wt/README.md && echo worktree",
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        stdout.lines().collect::<Vec<_>>(),
        ["stashed", "popped", "worktree"]
    );
    assert_eq!(
        std::fs::read_to_string(s.path("proj/README.md")).unwrap(),
        "readme\nedit\n"
    );
    assert_eq!(
        std::fs::read_to_string(s.path("proj/untracked.txt")).unwrap(),
        "new\n"
    );

    let before = s.denials().len();
    let out = s.agent("cd proj && git reset --hard");
    assert!(!out.status.success(), "{}", text(&out));
    assert_eq!(
        std::fs::read_to_string(s.path("proj/README.md")).unwrap(),
        "readme\nedit\n",
        "{}",
        text(&out)
    );
    let d = s.wait_denials(before + 1);
    assert!(
        d[before..]
            .iter()
            .any(|r| r["rule"] == "exec_rule" && r["process"] == "bash"),
        "{d:#?}"
    );
}

#[test]
fn the_human_is_not_stopped() {
    let s = Sandbox::new();
    for script in [
        "cat .ssh/id_ed25519 > /dev/null",
        ": > ro/config",
        "mv proj/README.md \"$OUTSIDE/\"",
        "rm proj/src/sub/lib.rs",
        "rm -rf work",
    ] {
        let out = s.human(script);
        assert!(
            out.status.success(),
            "the human's {script:?} failed: {}",
            text(&out)
        );
    }
    assert!(!s.path("proj/src/sub/lib.rs").exists() && !s.path("work").exists());
    assert!(s.denials().is_empty());
}

#[test]
fn the_agent_may_edit_by_write_temp_then_rename() {
    let s = Sandbox::new();
    let out = s.agent("printf 'fn main() { /* v2 */ }\\n' > proj/src/.main.rs.tmp && mv proj/src/.main.rs.tmp proj/src/main.rs && echo new > proj/NEW.md");
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        std::fs::read_to_string(s.path("proj/src/main.rs")).unwrap(),
        "fn main() { /* v2 */ }\n"
    );
    assert!(s.path("proj/NEW.md").exists());
    assert!(s.denials().is_empty(), "{:#?}", s.denials());
}

#[test]
fn run_exits_with_the_commands_status() {
    let s = Sandbox::new();
    assert_eq!(s.agent("exit 7").status.code(), Some(7));
    assert_eq!(s.agent("true").status.code(), Some(0));
}

#[test]
fn a_policy_change_reaches_a_running_supervisor() {
    let s = Sandbox::new();
    std::fs::create_dir_all(s.path("later")).unwrap();
    std::fs::write(s.path("later/f"), "x").unwrap();
    std::fs::write(s.path("later/g"), "x").unwrap();
    // The agent deletes one file right away (allowed), waits, then tries the other.
    let policy = s.policy.clone();
    let writer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(600));
        let updated = agent_guard_e2e::POLICY.replace("\"~/proj\"", "\"~/proj\", \"~/later\"");
        std::fs::write(&policy, updated).unwrap();
    });
    let out = s.agent("rm later/f && sleep 2 && rm later/g");
    writer.join().unwrap();
    assert!(
        !s.path("later/f").exists(),
        "the first delete predates the change: {}",
        text(&out)
    );
    assert!(
        s.path("later/g").exists(),
        "the new zone was not enforced within a second: {}",
        text(&out)
    );
}

#[test]
fn the_agent_cannot_change_the_guards_files() {
    let s = Sandbox::new();
    let out = s.agent("echo '{}' > \"$AGENT_GUARD_POLICY\"; echo '{}' > \"$AGENT_GUARD_STATE_DIR/grants.json\"; rm -f \"$AGENT_GUARD_STATE_DIR/denials.jsonl\"");
    assert_ne!(
        std::fs::read_to_string(&s.policy).unwrap(),
        "{}\n",
        "{}",
        text(&out)
    );
    assert!(!s.state.join("grants.json").exists(), "{}", text(&out));
    assert!(s.state.join("denials.jsonl").exists());
    let d = s.wait_denials(3);
    assert!(
        d.iter().filter(|r| r["rule"] == "guard_self").count() >= 3,
        "{d:#?}"
    );
}

#[test]
fn the_agent_cannot_kill_its_supervisor() {
    let s = Sandbox::new();
    // Walk up from the agent's shell and SIGKILL every agent-guard ancestor (the waiting `run`
    // and the supervisor), then try a delete: it must still be judged (or fail closed).
    let out = s.agent(
        "p=$$; while [ \"$p\" -gt 1 ]; do \
           [ \"$(cat /proc/$p/comm)\" = agent-guard ] && kill -9 $p && echo killed $p; \
           p=$(awk '{print $4}' /proc/$p/stat); done; \
         sleep 0.2; rm proj/README.md; true",
    );
    assert!(s.path("proj/README.md").exists(), "{}", text(&out));
}

#[test]
fn ps_works_and_the_supervisors_memory_and_fds_stay_closed() {
    let s = Sandbox::new();
    // `ps` reads every process's stat, status, cmdline and environ, the supervisor's included.
    let out = s.agent("ps -ef > /dev/null && echo ps-ok");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("ps-ok"),
        "{}",
        text(&out)
    );
    assert!(
        s.wait_denials(0).is_empty(),
        "ps caused denials: {:#?}",
        s.denials()
    );
    // The supervisor is the agent shell's parent: its memory and its fds (the seccomp listener
    // among them) are refused: by the supervisor when it sees the open (EPERM), else by the
    // kernel (the supervisor is not dumpable, and outside the agent's Landlock domain: EACCES).
    let out = s.agent("cat /proc/$PPID/mem > /dev/null; ls -l /proc/$PPID/fd/ > /dev/null");
    let all = text(&out);
    let refused = all.matches(EPERM).count() + all.matches("Permission denied").count();
    assert!(refused >= 2, "{all}");
}

#[test]
fn everyday_git_works_for_the_agent_in_a_protected_zone() {
    assert!(on_path("git"), "git is required for this test");
    let s = Sandbox::new();
    let out = s.agent(
        "cd proj && git init -q && git add -A && git -c user.name=a -c user.email=a@a commit -qm one \
         && git checkout -q -b topic && echo more >> README.md && git -c user.name=a -c user.email=a@a commit -qam two \
         && git checkout -q - && git merge -q topic && git gc -q && git status --short && echo git-ok",
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("git-ok"),
        "{}",
        text(&out)
    );
    assert!(
        s.wait_denials(0).is_empty(),
        "git caused denials: {:#?}",
        s.denials()
    );
}

/// The supervisor opens files for the agent and closes its own copy after the agent runs on; an
/// exec of a file just written must still not find it open for writing (ETXTBSY). Builds and
/// code generators do this all the time: write a script or binary, run it.
#[test]
fn a_file_written_and_run_at_once_is_not_busy() {
    let s = Sandbox::new();
    // Busy loops on every core make it likely that a worker is preempted between installing
    // the fd and closing its copy, which is when an unordered exec would fail.
    let out = s.agent(
        "cd proj && for c in $(seq 1 $(nproc)); do (while :; do :; done) & done; \
         for i in $(seq 1 100); do \
           printf '#!/bin/sh\\necho run-%s\\n' $i > tool.sh && chmod +x tool.sh && ./tool.sh || break; \
           cp /bin/true ./t && ./t || break; \
         done; kill $(jobs -p); echo ran-to-$i",
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("run-100") && stdout.contains("ran-to-100"),
        "{}",
        text(&out)
    );
}
