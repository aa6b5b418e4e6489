//! Who the daemon takes for an agent: taint through fork, exec and reparenting, forks the
//! process client delivers late, processes older than the daemon, and Node's `process.title`.

use super::*;

#[test]
fn taint_survives_exec_and_reparenting() {
    let f = fixture(POLICY);
    let rm = agent_tree(&f);
    // rm double-forks: 301 is orphaned when 300 exits and launchd adopts it.
    f.core
        .on_fork(&facts(rm, id(200, 2)), &facts(id(301, 1), rm));
    f.core.on_exit(rm);
    assert_eq!(f.core.known_attribution(rm), None);
    let orphan = ActorFacts {
        ppid: 1,
        original_ppid: 300,
        parent: Some(id(1, 1)),
        ..facts(id(301, 1), id(1, 1))
    };
    // It execs something that is nobody's agent pattern, under a new pidversion.
    exec(
        &f,
        id(301, 1),
        ActorFacts {
            process: id(301, 5),
            ..orphan.clone()
        },
        "/usr/bin/perl",
        &["perl", "-e", "unlink"],
    );
    assert_eq!(
        f.core.known_attribution(id(301, 1)),
        None,
        "moved, not copied"
    );
    assert_eq!(
        agent_of(&f.core.known_attribution(id(301, 5))),
        Some(("claude".into(), 100))
    );
    let verdict = f.core.decide(
        &ActorFacts {
            process: id(301, 5),
            ..orphan
        },
        &unlink_by(301, "/usr/bin/perl", FILE),
        &*f.inspector,
    );
    assert!(matches!(verdict, Verdict::Deny(_)), "{verdict:?}");

    // The reused pid 300 (a new pidversion, forked by the human) inherits nothing.
    let shell = id(50, 3);
    f.core
        .on_fork(&facts(shell, id(40, 2)), &facts(id(300, 9), shell));
    let verdict = f.core.decide(
        &facts(id(300, 9), shell),
        &unlink_by(300, "/bin/rm", FILE),
        &*f.inspector,
    );
    assert_eq!(verdict, Verdict::Allow);
}

#[test]
fn a_fork_the_process_client_has_not_delivered_yet_is_attributed_by_its_parent() {
    let f = fixture(POLICY);
    let rm = agent_tree(&f);
    // The file client is faster than the process client: 302's fork is still queued.
    let verdict = f.core.decide(
        &facts(id(302, 1), rm),
        &unlink_by(302, "/bin/rm", FILE),
        &*f.inspector,
    );
    assert!(matches!(verdict, Verdict::Deny(_)), "{verdict:?}");
    // Reparented too, before the first event: the original parent's entry still answers.
    let orphan = ActorFacts {
        ppid: 1,
        original_ppid: 300,
        parent: Some(id(1, 1)),
        ..facts(id(303, 1), id(1, 1))
    };
    let verdict = f
        .core
        .decide(&orphan, &unlink_by(303, "/bin/rm", FILE), &*f.inspector);
    assert!(matches!(verdict, Verdict::Deny(_)), "{verdict:?}");
}

#[test]
fn processes_older_than_the_daemon_are_attributed_by_the_live_walk() {
    let f = fixture(POLICY);
    // A Node agent started before the daemon: exe node, argv[0] retitled to "claude"
    // (process.title); its zsh and that zsh's rm, none of them seen by ES yet.
    f.inspector
        .add(100, 50, 10, "/opt/homebrew/bin/node", &["claude"]);
    f.inspector.add(200, 100, 11, "/bin/zsh", &["zsh"]);
    f.inspector.add(300, 200, 12, "/bin/rm", &["rm", "-f"]);
    let verdict = f.core.decide(
        &facts(id(300, 7), id(200, 6)),
        &unlink_by(300, "/bin/rm", FILE),
        &*f.inspector,
    );
    assert!(matches!(verdict, Verdict::Deny(_)), "{verdict:?}");
    assert_eq!(
        agent_of(&f.core.known_attribution(id(300, 7))),
        Some(("claude".into(), 100)),
        "remembered for its children"
    );

    // The agent's zsh forks again, a fork from a parent the table does not know: the parent is
    // attributed by the walk at the fork, so its child keeps the taint after reparenting.
    f.core.on_fork(
        &facts(id(200, 6), id(100, 5)),
        &facts(id(201, 1), id(200, 6)),
    );
    assert_eq!(
        agent_of(&f.core.known_attribution(id(200, 6))),
        Some(("claude".into(), 100))
    );
    let orphan = ActorFacts {
        ppid: 1,
        original_ppid: 1,
        parent: Some(id(1, 1)),
        ..facts(id(201, 1), id(1, 1))
    };
    let verdict = f
        .core
        .decide(&orphan, &unlink_by(201, "/bin/rm", FILE), &*f.inspector);
    assert!(matches!(verdict, Verdict::Deny(_)), "{verdict:?}");

    // The agent itself, acting before any exec event: its own argv[0] is read now.
    let verdict = f.core.decide(
        &facts(id(100, 5), id(50, 3)),
        &unlink_by(100, "/opt/homebrew/bin/node", FILE),
        &*f.inspector,
    );
    assert!(matches!(verdict, Verdict::Deny(_)), "{verdict:?}");
    let records = denials(&f);
    assert!(
        records.iter().any(|r| r.pid == 100 && r.agent_pid == 100),
        "{records:?}"
    );

    // A human's process older than the daemon: the walk ends at launchd, nothing matches.
    f.inspector.add(500, 50, 13, "/bin/rm", &["rm"]);
    let verdict = f.core.decide(
        &facts(id(500, 1), id(50, 3)),
        &unlink_by(500, "/bin/rm", FILE),
        &*f.inspector,
    );
    assert_eq!(verdict, Verdict::Allow);
    assert_eq!(
        f.core.known_attribution(id(500, 1)),
        Some(Attribution::Human)
    );
}

#[test]
fn a_human_started_node_that_retitles_itself_an_agent_is_caught() {
    let f = fixture(POLICY);
    let shell = id(50, 3);
    // `node cli.js` from the human's shell: no name matches at exec, so it is recorded human.
    f.core
        .on_fork(&facts(shell, id(40, 2)), &facts(id(700, 1), shell));
    let node = facts(id(700, 2), shell);
    exec(
        &f,
        id(700, 1),
        node.clone(),
        "/opt/homebrew/bin/node",
        &["node", "/opt/lib/cli.js"],
    );
    f.inspector.add(
        700,
        50,
        30,
        "/opt/homebrew/bin/node",
        &["node", "/opt/lib/cli.js"],
    );
    assert_eq!(
        f.core.known_attribution(id(700, 2)),
        Some(Attribution::Human)
    );
    let unlink = unlink_by(700, "/opt/homebrew/bin/node", FILE);
    assert_eq!(f.core.decide(&node, &unlink, &*f.inspector), Verdict::Allow);

    // Then it sets process.title = "claude".
    f.inspector
        .add(700, 50, 30, "/opt/homebrew/bin/node", &["claude"]);
    // Its own unlink in the zone: the title is read again because an agent would be stopped.
    let verdict = f.core.decide(&node, &unlink, &*f.inspector);
    assert!(matches!(verdict, Verdict::Deny(_)), "{verdict:?}");
    // What it forks from now on inherits it.
    f.core.on_fork(&node, &facts(id(701, 1), id(700, 2)));
    let verdict = f.core.decide(
        &facts(id(701, 1), id(700, 2)),
        &unlink_by(701, "/bin/rm", FILE),
        &*f.inspector,
    );
    assert!(matches!(verdict, Verdict::Deny(_)), "{verdict:?}");
    let records = denials(&f);
    assert!(
        records
            .iter()
            .all(|r| r.ancestor == "claude" && r.agent_pid == 700),
        "{records:?}"
    );
    assert_eq!(records.len(), 2);
}

#[test]
fn a_retitled_parent_is_seen_at_its_next_fork() {
    let f = fixture(POLICY);
    let shell = id(50, 3);
    f.core
        .on_fork(&facts(shell, id(40, 2)), &facts(id(710, 1), shell));
    let node = facts(id(710, 2), shell);
    exec(
        &f,
        id(710, 1),
        node.clone(),
        "/usr/bin/node",
        &["node", "main.js"],
    );
    f.inspector
        .add(710, 50, 31, "/usr/bin/node", &["codex-like", "x"]);
    f.core.on_fork(&node, &facts(id(711, 1), id(710, 2)));
    assert_eq!(
        f.core.known_attribution(id(711, 1)),
        Some(Attribution::Human),
        "a title that is no agent pattern changes nothing"
    );
    f.inspector.add(710, 50, 31, "/usr/bin/node", &["claude"]);
    f.core.on_fork(&node, &facts(id(712, 1), id(710, 2)));
    assert_eq!(
        agent_of(&f.core.known_attribution(id(712, 1))),
        Some(("claude".into(), 710))
    );
    // The human's own processes keep being human: their titles name no agent.
    f.core
        .on_fork(&facts(shell, id(40, 2)), &facts(id(713, 1), shell));
    assert_eq!(
        f.core.known_attribution(id(713, 1)),
        Some(Attribution::Human)
    );
}
