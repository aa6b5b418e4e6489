//! Lineage tests: the table and the walks against a fake process source, every scenario spelled
//! out. The same walks on real processes through `/proc` are in `guard/tests/lineage_procfs.rs`
//! (the `/proc` reader is platform code, above lineage).

use std::collections::HashMap;
use std::path::PathBuf;

use super::*;
use crate::vocab::{AgentInfo, Attribution};

const PATTERN: &str = "claude-agent-guard-test";

fn matcher() -> AgentMatcher {
    AgentMatcher::new(&[PATTERN.to_string()]).unwrap()
}

/// A process source whose processes the test writes by hand.
#[derive(Default)]
struct FakeSource {
    processes: HashMap<i32, ProcessInfo>,
}

impl FakeSource {
    fn add(&mut self, pid: i32, start: u64, ppid: i32, exe: &str, argv0: &str) -> ProcessKey {
        let key = ProcessKey { pid, start };
        let name = exe.rsplit('/').next().unwrap().to_string();
        self.processes.insert(
            pid,
            ProcessInfo {
                key,
                ppid,
                exe: Some(PathBuf::from(exe)),
                exe_deleted: false,
                argv: vec![argv0.to_string()],
                comm: name,
            },
        );
        key
    }
    fn reparent(&mut self, pid: i32, ppid: i32) {
        self.processes.get_mut(&pid).unwrap().ppid = ppid;
    }
    fn remove(&mut self, pid: i32) {
        self.processes.remove(&pid);
    }
}

impl ProcessSource for FakeSource {
    fn info(&self, pid: i32) -> Result<ProcessInfo, LineageError> {
        self.processes
            .get(&pid)
            .cloned()
            .ok_or(LineageError::Vanished { pid })
    }
}

fn agent(pid: i32) -> Attribution {
    Attribution::agent(PATTERN, pid)
}

/// init(1) -> shell(10, human) -> agent(20, matches by argv0).
fn desktop() -> (FakeSource, ProcessKey, ProcessKey) {
    let mut source = FakeSource::default();
    source.add(1, 1, 0, "/sbin/init", "/sbin/init");
    let shell = source.add(10, 100, 1, "/bin/bash", "-bash");
    let agent = source.add(20, 200, 10, "/usr/bin/node", PATTERN);
    (source, shell, agent)
}

#[test]
fn taint_is_inherited_at_fork_and_survives_reparenting_and_exec() {
    let (mut source, _, agent_key) = desktop();
    let m = matcher();
    let mut table = LineageTable::new();
    table.mark_agent(
        agent_key,
        AgentInfo {
            name: PATTERN.into(),
            pid: 20,
        },
    );

    // agent -> sh (30) -> subshell (40) -> rm (50); sh and the subshell exit (double fork),
    // rm is reparented to init, calls setsid, and execs a binary that matches nothing.
    let sh = source.add(30, 300, 20, "/bin/sh", "sh");
    let sub = source.add(40, 400, 30, "/bin/sh", "sh");
    let rm = source.add(50, 500, 40, "/bin/sh", "sh");
    assert!(table.on_fork(agent_key, sh));
    assert!(table.on_fork(sh, sub));
    assert!(table.on_fork(sub, rm));
    table.on_exit(sub);
    source.remove(40);
    table.on_exit(sh);
    source.remove(30);
    source.reparent(50, 1);
    let rm_info = source.add(50, 500, 1, "/usr/bin/rm", "rm");
    table.on_exec(rm, &source.info(50).unwrap(), &m);
    assert_eq!(rm, rm_info);

    assert_eq!(attribute(50, &table, &source, &m), agent(20));
    // Even after the agent itself is gone.
    table.on_exit(agent_key);
    source.remove(20);
    assert_eq!(attribute(50, &table, &source, &m), agent(20));
    // The live walk alone is blind to it: this is what the table is for.
    assert_eq!(
        attribute(50, &LineageTable::new(), &source, &m),
        Attribution::Human
    );
}

#[test]
fn exec_makes_a_matching_process_an_agent_but_never_clears_taint() {
    let (source, shell, agent_key) = desktop();
    let m = matcher();
    let mut table = LineageTable::new();
    table.insert(
        shell,
        ProcessRecord::of(&source.info(10).unwrap()),
        Attribution::Human,
    );
    // The shell forks a child that execs the agent.
    assert!(table.on_fork(shell, agent_key));
    assert_eq!(table.attribution(agent_key), Some(Attribution::Human));
    table.on_exec(agent_key, &source.info(20).unwrap(), &m);
    assert_eq!(table.attribution(agent_key), Some(agent(20)));
    // The agent execs a shell: still the agent, still attributed to pid 20.
    let bash = ProcessInfo {
        exe: Some("/bin/bash".into()),
        argv: vec!["bash".into()],
        comm: "bash".into(),
        ..source.info(20).unwrap()
    };
    table.on_exec(agent_key, &bash, &m);
    assert_eq!(table.attribution(agent_key), Some(agent(20)));
    assert_eq!(table.record(agent_key).unwrap().comm, "bash");
    // The human shell stays human.
    assert_eq!(table.attribution(shell), Some(Attribution::Human));
}

#[test]
fn unknown_processes_are_not_recorded_as_human() {
    let (source, shell, agent_key) = desktop();
    let m = matcher();
    let mut table = LineageTable::new();
    // A fork from an unknown parent is refused, so the sensor learns the parent first.
    let child = ProcessKey {
        pid: 60,
        start: 600,
    };
    assert!(!table.on_fork(agent_key, child));
    assert!(table.is_empty());
    assert_eq!(remember(20, &mut table, &source, &m).unwrap(), agent(20));
    assert!(table.on_fork(agent_key, child));
    assert_eq!(table.attribution(child), Some(agent(20)));
    // An exec of an unknown process that matches nothing leaves it unknown, so the live walk
    // still runs for it.
    table.on_exec(shell, &source.info(10).unwrap(), &m);
    assert_eq!(table.attribution(shell), None);
    // `remember` of a human records the human, with its record.
    assert_eq!(
        remember(10, &mut table, &source, &m).unwrap(),
        Attribution::Human
    );
    assert_eq!(table.attribution(shell), Some(Attribution::Human));
    assert_eq!(
        table.record(shell).unwrap().exe,
        Some(PathBuf::from("/bin/bash"))
    );
    assert!(matches!(
        remember(99, &mut table, &source, &m),
        Err(LineageError::Vanished { pid: 99 })
    ));
}

#[test]
fn a_reused_pid_does_not_inherit() {
    let (mut source, shell, agent_key) = desktop();
    let m = matcher();
    let mut table = LineageTable::new();
    table.insert(shell, ProcessRecord::default(), Attribution::Human);
    table.mark_agent(
        agent_key,
        AgentInfo {
            name: PATTERN.into(),
            pid: 20,
        },
    );
    let tool = ProcessKey {
        pid: 70,
        start: 700,
    };
    table.on_fork(agent_key, tool);
    // The agent's child exits without the sensor seeing it; a human process gets pid 70.
    source.add(70, 701, 10, "/usr/bin/vim", "vim");
    assert_eq!(attribute(70, &table, &source, &m), Attribution::Human);
    assert_eq!(
        table.attribution(ProcessKey {
            pid: 70,
            start: 701
        }),
        None
    );
}

#[test]
fn exits_free_memory() {
    let (_, _, agent_key) = desktop();
    let mut table = LineageTable::new();
    table.mark_agent(
        agent_key,
        AgentInfo {
            name: PATTERN.into(),
            pid: 20,
        },
    );
    let mut parent = agent_key;
    let children: Vec<ProcessKey> = (0..1000)
        .map(|i| {
            let child = ProcessKey {
                pid: 1000 + i,
                start: 1,
            };
            assert!(table.on_fork(parent, child));
            parent = child;
            child
        })
        .collect();
    assert_eq!(table.len(), 1001);
    for child in children {
        table.on_exit(child);
    }
    table.on_exit(agent_key);
    assert!(table.is_empty());
}

#[test]
fn records_for_the_denial_record() {
    let (source, _, agent_key) = desktop();
    let m = matcher();
    let mut table = LineageTable::new();
    table.on_exec(agent_key, &source.info(20).unwrap(), &m);
    assert_eq!(table.attribution(agent_key), Some(agent(20)));
    let child = ProcessKey {
        pid: 80,
        start: 800,
    };
    table.on_fork(agent_key, child);
    // Before its exec, a child runs its parent's program.
    let record = table.record(child).unwrap();
    assert_eq!(
        (
            record.pid,
            record.ppid,
            record.exe.clone(),
            record.comm.as_str()
        ),
        (80, 20, Some(PathBuf::from("/usr/bin/node")), "node")
    );
    assert_eq!(table.agent_record(child).unwrap().pid, 20);
    assert_eq!(table.agent_record(child).unwrap().ppid, 10);
    table.on_exit(agent_key);
    assert_eq!(table.agent_record(child), None);
    assert_eq!(table.attribution(child), Some(agent(20)));
}

#[test]
fn attribute_reads_the_process_now_for_late_retitles() {
    let (mut source, shell, _) = desktop();
    let m = matcher();
    let mut table = LineageTable::new();
    // node started as `node cli.js`; the table saw that and knows it as human.
    let node = source.add(90, 900, 10, "/usr/bin/node", "node");
    table.insert(shell, ProcessRecord::default(), Attribution::Human);
    table.on_fork(shell, node);
    assert_eq!(attribute(90, &table, &source, &m), Attribution::Human);
    // Then it set process.title.
    source.add(90, 900, 10, "/usr/bin/node", PATTERN);
    assert_eq!(attribute(90, &table, &source, &m), agent(90));
}

#[test]
fn live_walk_finds_an_ancestor_and_tolerates_loops_and_gaps() {
    let (mut source, _, _) = desktop();
    let m = matcher();
    let table = LineageTable::new();
    source.add(100, 1, 20, "/bin/sh", "sh");
    source.add(101, 1, 100, "/usr/bin/rm", "rm");
    assert_eq!(attribute(101, &table, &source, &m), agent(20));
    assert_eq!(attribute(10, &table, &source, &m), Attribution::Human);
    assert_eq!(attribute(1, &table, &source, &m), Attribution::Human);
    // A vanished ancestor ends the walk without error.
    source.remove(100);
    assert_eq!(attribute(101, &table, &source, &m), Attribution::Human);
    assert_eq!(attribute(100, &table, &source, &m), Attribution::Human);
    assert_eq!(attribute(-5, &table, &source, &m), Attribution::Human);
    // A loop ends.
    source.add(200, 1, 201, "/bin/a", "a");
    source.add(201, 1, 200, "/bin/b", "b");
    assert_eq!(attribute(200, &table, &source, &m), Attribution::Human);
    // The walk is bounded: an agent 100 generations up is out of reach.
    source.add(300, 1, 1, "/x/agent", PATTERN);
    for pid in 301..=400 {
        source.add(pid, 1, pid - 1, "/bin/sh", "sh");
    }
    assert_eq!(attribute(310, &table, &source, &m), agent(300));
    assert_eq!(attribute(400, &table, &source, &m), Attribution::Human);
}

#[test]
fn explain_shows_the_chain_and_the_match() {
    let (mut source, _, _) = desktop();
    let m = matcher();
    source.add(100, 5, 20, "/usr/bin/rm", "rm");
    let explanation = explain(100, &source, &m).unwrap();
    let pids: Vec<i32> = explanation.chain.iter().map(|l| l.pid).collect();
    assert_eq!(pids, [100, 20, 10, 1]);
    assert_eq!(explanation.end, WalkEnd::Init);
    assert_eq!(
        explanation.agent,
        Some(ExplainedAgent {
            name: PATTERN.into(),
            pid: 20
        })
    );
    let matched = explanation.chain[1].matched.as_ref().unwrap();
    assert_eq!(matched.field, MatchField::Argv0);
    assert!(explanation.chain[0].matched.is_none());
    // Same answer as the decision path.
    assert_eq!(attribute(100, &LineageTable::new(), &source, &m), agent(20));

    let text = explanation.to_string();
    assert!(
        text.contains(&format!("attributed to agent {PATTERN:?} (pid 20)")),
        "{text}"
    );
    assert!(text.contains("argv0 matches"), "{text}");
    let json = serde_json::to_value(&explanation).unwrap();
    assert_eq!(json["agent"]["pid"], 20);
    assert_eq!(json["chain"][1]["matched"]["field"], "argv0");
    assert_eq!(json["end"]["kind"], "init");
}

#[test]
fn explain_says_why_nothing_matched() {
    let (mut source, _, _) = desktop();
    let m = matcher();
    let explanation = explain(10, &source, &m).unwrap();
    assert_eq!(explanation.agent, None);
    assert!(explanation.to_string().contains("not attributed"));
    let none = AgentMatcher::new(&[]).unwrap();
    assert!(explain(20, &source, &none)
        .unwrap()
        .to_string()
        .contains("no ai_agent_patterns"));
    // A parent that vanished ends the chain and is named.
    source.add(110, 1, 111, "/bin/sh", "sh");
    let explanation = explain(110, &source, &m).unwrap();
    assert!(matches!(
        explanation.end,
        WalkEnd::Unreadable { pid: 111, .. }
    ));
    assert!(matches!(
        explain(999, &source, &m),
        Err(LineageError::Vanished { pid: 999 })
    ));
    assert!(matches!(
        explain(0, &source, &m),
        Err(LineageError::InvalidPid { pid: 0 })
    ));
}
