//! Lineage on real processes, read through `/proc`: renamed argv[0] and comm, a double fork
//! that loses the agent from its live chain (the gap the lineage table closes), and this test
//! process itself. The same walks against a fake process source are unit tests in
//! `guard/src/lineage/tests.rs`.
#![cfg(target_os = "linux")]

use std::os::unix::process::CommandExt;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use agent_guard::lineage::{
    attribute, explain, remember, AgentMatcher, LineageTable, MatchField, ProcessSource, WalkEnd,
};
use agent_guard::platform::linux::procfs::ProcFs;
use agent_guard::vocab::Attribution;

const PATTERN: &str = "claude-agent-guard-test";

fn matcher() -> AgentMatcher {
    AgentMatcher::new(&[PATTERN.to_string()]).unwrap()
}

fn agent(pid: i32) -> Attribution {
    Attribution::agent(PATTERN, pid)
}

/// Kills (by pid) and reaps what a test started, even when the test fails.
struct Started {
    children: Vec<Child>,
    orphans: Vec<i32>,
}

impl Drop for Started {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        for &pid in &self.orphans {
            // SAFETY: kill(2) on a pid this test started and read from its own pid file.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
}

fn wait_for_comm(pid: i32, comm: &str) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while std::fs::read_to_string(format!("/proc/{pid}/comm")).map_or(true, |c| c.trim() != comm) {
        assert!(Instant::now() < deadline, "{pid} never became {comm}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn wait_for_pid_file(path: &std::path::Path) -> i32 {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if let Ok(text) = std::fs::read_to_string(path) {
            if let Ok(pid) = text.trim().parse() {
                return pid;
            }
        }
        assert!(
            Instant::now() < deadline,
            "{} never appeared",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// spawn() returns once the child's exec has replaced its memory, but the kernel fills in
/// the new argument area a moment later: until then /proc/PID/cmdline reads empty.
fn wait_for_argv(source: &ProcFs, pid: i32) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while source.info(pid).unwrap().argv.is_empty() {
        assert!(
            Instant::now() < deadline,
            "pid {pid} never showed its arguments"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn argv0_renamed_process_is_an_agent() {
    let child = Command::new("sleep")
        .arg0(PATTERN)
        .arg("30")
        .spawn()
        .unwrap();
    let pid = child.id() as i32;
    let _started = Started {
        children: vec![child],
        orphans: vec![],
    };
    let source = ProcFs::new();
    wait_for_argv(&source, pid);
    assert_eq!(
        attribute(pid, &LineageTable::new(), &source, &matcher()),
        agent(pid)
    );
    let explanation = explain(pid, &source, &matcher()).unwrap();
    let matched = explanation.chain[0].matched.clone().unwrap();
    assert_eq!(matched.field, MatchField::Argv0);
    assert_eq!(explanation.chain[1].pid, std::process::id() as i32);
}

#[test]
fn double_fork_children_of_a_renamed_shell() {
    let dir = tempfile::tempdir().unwrap();
    let script = format!(
        "(setsid sh -c 'echo $$ > {orphan}; exec sleep 30' &) ; sleep 30 & echo $! > {child}; wait",
        orphan = dir.path().join("orphan").display(),
        child = dir.path().join("child").display(),
    );
    let shell = Command::new("sh")
        .arg0(PATTERN)
        .args(["-c", &script])
        .spawn()
        .unwrap();
    let shell_pid = shell.id() as i32;
    let mut started = Started {
        children: vec![shell],
        orphans: vec![],
    };
    let child = wait_for_pid_file(&dir.path().join("child"));
    let orphan = wait_for_pid_file(&dir.path().join("orphan"));
    started.orphans.extend([child, orphan]);
    // Until it execs sleep, a forked child still carries the shell's argv[0] (the pattern) and
    // would be an agent of its own.
    wait_for_comm(child, "sleep");
    wait_for_comm(orphan, "sleep");
    let (source, m) = (ProcFs::new(), matcher());

    // The foreground child: its parent, the agent, is alive, so the live walk finds it.
    assert_eq!(
        attribute(child, &LineageTable::new(), &source, &m),
        agent(shell_pid)
    );

    // The double-forked, setsid'd grandchild loses the agent from its live chain once the
    // subshell between them exits and it is reparented...
    let deadline = Instant::now() + Duration::from_secs(5);
    let chain_has_agent = |pid| {
        let explanation = explain(pid, &source, &m).unwrap();
        explanation.chain.iter().any(|link| link.pid == shell_pid)
    };
    while chain_has_agent(orphan) {
        assert!(Instant::now() < deadline, "the orphan was never reparented");
        std::thread::sleep(Duration::from_millis(10));
    }
    // ...so no live walk can attribute it (the gap the table closes)...
    assert_eq!(
        attribute(orphan, &LineageTable::new(), &source, &m),
        Attribution::Human
    );
    // ...while a table that saw the forks keeps it (the intermediate subshell already
    // exited; the fork events are replayed with the real keys that remain).
    let mut table = LineageTable::new();
    let shell_key = source.key(shell_pid).unwrap();
    assert_eq!(
        remember(shell_pid, &mut table, &source, &m).unwrap(),
        agent(shell_pid)
    );
    let orphan_key = source.key(orphan).unwrap();
    assert!(table.on_fork(shell_key, orphan_key));
    table.on_exec(orphan_key, &source.info(orphan).unwrap(), &m);
    assert_eq!(attribute(orphan, &table, &source, &m), agent(shell_pid));
}

#[test]
fn comm_renamed_process_is_an_agent() {
    let dir = tempfile::tempdir().unwrap();
    let ready = dir.path().join("ready");
    // Writing /proc/PID/comm is the same kernel path as prctl(PR_SET_NAME): set_task_comm.
    // The 23-byte pattern is truncated to 15 bytes by the kernel.
    let script = format!(
        "printf %s {PATTERN} > /proc/$$/comm; echo $$ > {}; sleep 30 & wait",
        ready.display()
    );
    let shell = Command::new("sh").args(["-c", &script]).spawn().unwrap();
    let pid = shell.id() as i32;
    let _started = Started {
        children: vec![shell],
        orphans: vec![],
    };
    assert_eq!(wait_for_pid_file(&ready), pid);
    let source = ProcFs::new();
    let info = source.info(pid).unwrap();
    assert_eq!(info.comm, &PATTERN[..15]);
    assert_eq!(
        attribute(pid, &LineageTable::new(), &source, &matcher()),
        agent(pid)
    );
    let explanation = explain(pid, &source, &matcher()).unwrap();
    assert_eq!(
        explanation.chain[0].matched.as_ref().unwrap().field,
        MatchField::Comm
    );
}

#[test]
fn this_test_process_is_human() {
    let pid = std::process::id() as i32;
    let source = ProcFs::new();
    assert_eq!(
        attribute(pid, &LineageTable::new(), &source, &matcher()),
        Attribution::Human
    );
    let explanation = explain(pid, &source, &matcher()).unwrap();
    assert_eq!(explanation.agent, None);
    assert_eq!(explanation.chain[0].pid, pid);
    assert_eq!(
        explanation.chain[1].pid,
        std::os::unix::process::parent_id() as i32
    );
    // The walk reached the top of this pid namespace.
    assert!(
        matches!(explanation.end, WalkEnd::Init | WalkEnd::NoParent),
        "{:?}",
        explanation.end
    );
}
