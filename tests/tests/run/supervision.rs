//! What `run` itself promises: the human untouched, atomic saves allowed, CMD's exit status, a
//! policy change while running, the guard's files and process out of the agent's reach, `ps`,
//! a file run right after it was written.

use super::*;

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

/// `AGENT_GUARD_LOG=debug` written to a file (not a terminal) has no ANSI escape codes.
#[test]
fn the_debug_log_in_a_file_has_no_escape_codes() {
    let s = Sandbox::new();
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = s.agent_command(
        dir.path(),
        &[("AGENT_GUARD_LOG", "debug"), ("TERM", "xterm-256color")],
        "true",
    );
    cmd.env_remove("NO_COLOR");
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(
        log.contains("DEBUG"),
        "the debug log should say something: {log}"
    );
    assert!(!log.contains('\x1b'), "escape codes in the log: {log:?}");
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
        let updated = agent_guard_e2e::POLICY.replace(
            "\"protected_zones\": [",
            "\"protected_zones\": [{\"path\": \"~/later\", \"on_destroy\": \"deny\"}, ",
        );
        assert_ne!(updated, agent_guard_e2e::POLICY);
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
