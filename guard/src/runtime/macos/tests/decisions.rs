//! Decisions through the daemon core: an agent's descendants against the human, a trusted
//! tool's own subcommand, the signing identity from the ES message.

use super::*;

#[test]
fn an_agents_grandchild_is_denied_and_the_humans_rm_is_allowed() {
    let f = fixture(POLICY);
    let rm = agent_tree(&f);
    let verdict = f.core.decide(
        &facts(rm, id(200, 2)),
        &unlink_by(300, "/bin/rm", FILE),
        &*f.inspector,
    );
    assert!(matches!(verdict, Verdict::Deny(_)), "{verdict:?}");

    // The human's own rm, forked by the login shell, on the same file.
    let shell = id(50, 3);
    f.core
        .on_fork(&facts(shell, id(40, 2)), &facts(id(400, 1), shell));
    exec(&f, id(400, 1), facts(id(400, 2), shell), "/bin/rm", &["rm"]);
    let verdict = f.core.decide(
        &facts(id(400, 2), shell),
        &unlink_by(400, "/bin/rm", FILE),
        &*f.inspector,
    );
    assert_eq!(verdict, Verdict::Allow);
    // Outside the zones the agent may delete too.
    let verdict = f.core.decide(
        &facts(rm, id(200, 2)),
        &unlink_by(300, "/bin/rm", "/Users/alice/Downloads/x"),
        &*f.inspector,
    );
    assert_eq!(verdict, Verdict::Allow);

    let records = denials(&f);
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0].path, FILE);
    assert_eq!(records[0].ancestor, "claude");
    assert_eq!(records[0].pid, 300);
    assert_eq!(records[0].agent_pid, 100);
    assert_eq!(records[0].process, "rm");
}

#[test]
fn git_stash_may_reset_the_tree_it_saved_and_the_agent_may_not() {
    let f = fixture(POLICY);
    agent_tree(&f);
    let agent = id(100, 2);
    let git = "/usr/bin/git";
    let reset = || Event {
        actor: Actor {
            pid: 600,
            exe: PathBuf::from(git),
            comm: "git".into(),
            signing_id: Some("com.apple.git".into()),
            ..Actor::default()
        },
        action: Action::Exec {
            path: PathBuf::from(git),
            argv: args(&["git", "reset", "--hard", "-q"]),
            env: Vec::new(),
        },
    };
    // The agent runs `git stash`; the fork that execs the reset is still `git stash`, and the
    // daemon reads that from KERN_PROCARGS2.
    f.core
        .on_fork(&facts(agent, id(50, 3)), &facts(id(500, 1), agent));
    exec(
        &f,
        id(500, 1),
        facts(id(500, 2), agent),
        git,
        &["git", "stash"],
    );
    f.core
        .on_fork(&facts(id(500, 2), agent), &facts(id(600, 1), id(500, 2)));
    f.inspector.add(600, 500, 9, git, &["git", "stash"]);
    let verdict = f
        .core
        .decide(&facts(id(600, 1), id(500, 2)), &reset(), &*f.inspector);
    assert_eq!(verdict, Verdict::Allow);
    // The same exec from a git whose command line is not a stash (an alias run by git).
    f.inspector.add(
        600,
        500,
        9,
        git,
        &["git", "-c", "alias.x=reset --hard", "x"],
    );
    let verdict = f
        .core
        .decide(&facts(id(600, 1), id(500, 2)), &reset(), &*f.inspector);
    assert!(matches!(verdict, Verdict::Deny(_)), "{verdict:?}");
}

#[test]
fn the_signing_identity_from_the_message_reaches_the_engine() {
    let f = fixture(POLICY);
    let rm = agent_tree(&f);
    // git, trusted by signing id in the policy, run by the agent from an unusual path.
    f.core
        .on_fork(&facts(rm, id(200, 2)), &facts(id(310, 1), rm));
    let git = ActorFacts {
        signing: SigningInfo {
            signing_id: Some("com.apple.git".into()),
            ..SigningInfo::default()
        },
        ..facts(id(310, 2), rm)
    };
    exec(
        &f,
        id(310, 1),
        git.clone(),
        "/opt/tools/git",
        &["git", "rm"],
    );
    let event = unlink_by(310, "/opt/tools/git", FILE);
    assert_eq!(f.core.decide(&git, &event, &*f.inspector), Verdict::Allow);
    // The same binary without the signature is not git.
    let unsigned = ActorFacts {
        signing: SigningInfo::default(),
        ..git
    };
    let verdict = f.core.decide(&unsigned, &event, &*f.inspector);
    assert!(matches!(verdict, Verdict::Deny(_)), "{verdict:?}");
}
