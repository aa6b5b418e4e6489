//! Who the daemon takes for an agent: taint through fork, exec and reparenting, the two clients'
//! copies of each fork and exit in different orders, processes older than the daemon, and
//! Node's `process.title`.

use super::*;
use crate::runtime::macos::lineage::EXIT_GRACE_NS;

#[test]
fn taint_survives_exec_and_reparenting() {
    let f = fixture(POLICY);
    let (_, zsh, rm) = agent_tree(&f);
    // rm double-forks: 301 is orphaned when rm exits and launchd adopts it.
    let orphan = proc(301, 3_100, &rm, "/bin/rm");
    f.fork(&rm, &orphan);
    f.exit(&rm);
    f.wait(EXIT_GRACE_NS);
    f.exit(&zsh); // any later message applies the exits whose grace has passed
    assert_eq!(f.known(&rm), None, "forgotten once the grace has passed");
    let orphan = orphaned(orphan);
    // It execs something that is nobody's agent pattern: same process, same key.
    let perl = f.exec(&orphan, "/usr/bin/perl", &["perl", "-e", "unlink"]);
    assert_eq!(
        agent_of(&f.known(&perl)),
        Some(("claude".into(), 100)),
        "an exec never removes taint"
    );
    let verdict = f.judge(&perl, unlink(FILE));
    assert!(matches!(verdict, Verdict::Deny(_)), "{verdict:?}");

    // The reused pid 300 (a new start time, forked by the human) inherits nothing.
    let reused = proc(300, 9_000, &shell(), "/bin/rm");
    f.fork(&shell(), &reused);
    assert_eq!(f.judge(&reused, unlink(FILE)), Verdict::Allow);
}

#[test]
fn each_fork_and_exit_delivered_twice_is_applied_once() {
    // `(sh -c 'rm -rf ~/x' &)`: the agent's subshell forks sh and exits at once. The process
    // client delivers all of it; the file client, behind, delivers its copies after that.
    let f = fixture(POLICY);
    let (agent, _, _) = agent_tree(&f);
    let subshell = proc(400, 4_000, &agent, "/bin/zsh");
    let sh = proc(401, 4_100, &subshell, "/bin/zsh");
    // The process client: fork agent→subshell, fork subshell→sh, exit subshell.
    f.fork(&agent, &subshell);
    f.fork(&subshell, &sh);
    f.exit(&subshell);
    // The file client's copies, a little later (within the grace): duplicates, no harm.
    f.wait(EXIT_GRACE_NS / 2);
    f.fork(&agent, &subshell);
    f.fork(&subshell, &sh);
    f.exit(&subshell);
    let rm = f.exec(&orphaned(sh), "/bin/rm", &["rm", "-rf", "x"]);
    let verdict = f.judge(&rm, unlink(FILE));
    assert!(matches!(verdict, Verdict::Deny(_)), "{verdict:?}");
}

#[test]
fn the_lagging_client_finds_the_exited_parent_within_the_grace() {
    let f = fixture(POLICY);
    let (agent, _, _) = agent_tree(&f);
    let subshell = proc(410, 4_200, &agent, "/bin/zsh");
    let sh = proc(411, 4_300, &subshell, "/bin/zsh");
    // The file client has the subshell's fork and exit (its copy of the fork of sh was dropped
    // by ES under load) ...
    f.fork(&agent, &subshell);
    f.exit(&subshell);
    // ... and only then does the process client deliver the subshell's fork of sh: without the
    // grace the subshell would be gone, sh unknown, its walk ending at launchd: human.
    f.wait(EXIT_GRACE_NS / 2);
    f.fork(&subshell, &sh);
    assert_eq!(agent_of(&f.known(&sh)), Some(("claude".into(), 100)));
    // After the grace the subshell is gone for good, and a late copy of its fork does not bring
    // it back.
    f.wait(EXIT_GRACE_NS);
    f.exit(&sh);
    assert_eq!(f.known(&subshell), None);
    f.fork(&agent, &subshell);
    assert_eq!(f.known(&subshell), None, "a late duplicate fork");
    f.wait(2 * EXIT_GRACE_NS);
    f.exit(&agent);
    f.wait(2 * EXIT_GRACE_NS);
    f.fork(&shell(), &proc(999, 99_000, &shell(), "/bin/ls"));
    assert_eq!(f.core.pending_exits(), 0, "exits are applied, not kept");
}

#[test]
fn a_child_the_table_has_not_seen_is_attributed_by_its_relatives() {
    let f = fixture(POLICY);
    let (_, _, rm) = agent_tree(&f);
    // Its fork not delivered (yet, or dropped): its parent's entry answers.
    let child = proc(302, 3_200, &rm, "/bin/rm");
    let verdict = f.judge(&child, unlink(FILE));
    assert!(matches!(verdict, Verdict::Deny(_)), "{verdict:?}");
    // Reparented too, before the first event: the original parent's entry still answers.
    let orphan = orphaned(proc(303, 3_300, &rm, "/bin/rm"));
    let verdict = f.judge(&orphan, unlink(FILE));
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
    let node = proc(100, 10, &shell(), "/opt/homebrew/bin/node");
    let zsh = proc(200, 11, &node, "/bin/zsh");
    let rm = proc(300, 12, &zsh, "/bin/rm");
    let verdict = f.judge(&rm, unlink(FILE));
    assert!(matches!(verdict, Verdict::Deny(_)), "{verdict:?}");
    assert_eq!(
        agent_of(&f.known(&rm)),
        Some(("claude".into(), 100)),
        "remembered for its children"
    );

    // The agent's zsh forks again, a fork from a parent the table does not know: the parent is
    // attributed by the walk at the fork, so its child keeps the taint after reparenting.
    let child = proc(201, 13, &zsh, "/bin/zsh");
    f.fork(&zsh, &child);
    assert_eq!(agent_of(&f.known(&zsh)), Some(("claude".into(), 100)));
    let verdict = f.judge(&orphaned(child), unlink(FILE));
    assert!(matches!(verdict, Verdict::Deny(_)), "{verdict:?}");

    // The agent itself, acting before any exec event: its own argv[0] is read now.
    let verdict = f.judge(&node, unlink(FILE));
    assert!(matches!(verdict, Verdict::Deny(_)), "{verdict:?}");
    let records = denials(&f);
    assert!(
        records.iter().any(|r| r.pid == 100 && r.agent_pid == 100),
        "{records:?}"
    );

    // A human's process older than the daemon: the walk ends at launchd, nothing matches.
    f.inspector.add(500, 50, 14, "/bin/rm", &["rm"]);
    let human = proc(500, 14, &shell(), "/bin/rm");
    assert_eq!(f.judge(&human, unlink(FILE)), Verdict::Allow);
    assert_eq!(f.known(&human), Some(Attribution::Human));
}

#[test]
fn a_human_started_node_that_retitles_itself_an_agent_is_caught() {
    let f = fixture(POLICY);
    // `node cli.js` from the human's shell: no name matches at exec, so it is recorded human.
    let node = proc(700, 30, &shell(), "/bin/zsh");
    f.fork(&shell(), &node);
    let node = f.exec(
        &node,
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
    assert_eq!(f.known(&node), Some(Attribution::Human));
    assert_eq!(f.judge(&node, unlink(FILE)), Verdict::Allow);

    // Then it sets process.title = "claude", and a second later deletes.
    f.inspector
        .add(700, 50, 30, "/opt/homebrew/bin/node", &["claude"]);
    f.wait(RECHECK_NS);
    let verdict = f.judge(&node, unlink(FILE));
    assert!(matches!(verdict, Verdict::Deny(_)), "{verdict:?}");
    // What it forks from now on inherits it.
    let rm = proc(701, 31, &node, "/opt/homebrew/bin/node");
    f.fork(&node, &rm);
    let verdict = f.judge(&rm, unlink(FILE));
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
fn a_retitled_ancestor_is_found_from_its_childs_event_without_reading_at_every_fork() {
    let f = fixture(POLICY);
    let node = proc(710, 31, &shell(), "/bin/zsh");
    f.fork(&shell(), &node);
    let node = f.exec(&node, "/usr/bin/node", &["node", "main.js"]);
    f.inspector
        .add(710, 50, 31, "/usr/bin/node", &["node", "main.js"]);
    // Its children were forked while it was still `node`: human, and no fork read anything.
    let reads = f.inspector.argv_reads();
    let sh = proc(711, 32, &node, "/usr/bin/node");
    f.fork(&node, &sh);
    let rm = proc(712, 33, &sh, "/usr/bin/node");
    f.fork(&sh, &rm);
    let rm = f.exec(&rm, "/bin/rm", &["rm", "-rf", "src"]);
    f.inspector.add(711, 710, 32, "/bin/sh", &["sh"]);
    f.inspector
        .add(712, 711, 33, "/bin/rm", &["rm", "-rf", "src"]);
    assert_eq!(
        f.inspector.argv_reads(),
        reads,
        "forks and execs read no argv"
    );
    assert_eq!(f.known(&rm), Some(Attribution::Human));

    // node retitles itself; its grandchild's delete reads the chain again and finds it.
    f.inspector.add(710, 50, 31, "/usr/bin/node", &["claude"]);
    let verdict = f.judge(&rm, unlink(FILE));
    assert!(matches!(verdict, Verdict::Deny(_)), "{verdict:?}");
    assert_eq!(agent_of(&f.known(&node)), Some(("claude".into(), 710)));

    // The human's own processes keep being human: their titles name no agent.
    let ls = proc(713, 34, &shell(), "/bin/zsh");
    f.fork(&shell(), &ls);
    assert_eq!(f.known(&ls), Some(Attribution::Human));
}

#[test]
fn a_known_human_is_fast_until_its_names_are_worth_reading_again() {
    let f = fixture(POLICY);
    let rm = proc(720, 40, &shell(), "/bin/zsh");
    f.fork(&shell(), &rm);
    let rm = f.exec(&rm, "/bin/rm", &["rm", "-rf", "src"]);
    f.inspector
        .add(720, 50, 40, "/bin/rm", &["rm", "-rf", "src"]);
    let at = f.tick();
    assert_eq!(f.core.known(&rm, at), Known::Human { fresh: false });
    assert_eq!(f.judge(&rm, unlink(FILE)), Verdict::Allow);
    // Read just now: the next second of its deletes is answered without a read.
    let at = f.tick();
    assert_eq!(f.core.known(&rm, at), Known::Human { fresh: true });
    assert_eq!(
        f.core.known(&rm, at + RECHECK_NS),
        Known::Human { fresh: false }
    );
    // An exec makes it worth reading again at once.
    let rm = f.exec(&rm, "/bin/rm", &["rm", "x"]);
    assert_eq!(f.core.known(&rm, f.tick()), Known::Human { fresh: false });
    // And an exec into an agent's executable is seen from the message alone, before the
    // process client's NOTIFY_EXEC (here: never delivered).
    let claude = ActorFacts {
        exe: PathBuf::from("/Users/alice/.local/bin/claude"),
        ..rm.clone()
    };
    assert_eq!(f.core.known(&claude, f.tick()), Known::Agent);
}
