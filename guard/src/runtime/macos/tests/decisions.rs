//! Decisions through the daemon core: an agent's descendants against the human, a trusted
//! tool's own subcommand, the signing identity from the ES message and how far it is trusted,
//! metadata changes by zone, exec rules by platform signing identity.

use super::*;
use crate::platform::macos::mapping::{actions_for, EsRequest, MappingContext};

#[test]
fn an_agents_grandchild_is_denied_and_the_humans_rm_is_allowed() {
    let f = fixture(POLICY);
    let (_, _, rm) = agent_tree(&f);
    let verdict = f.judge(&rm, unlink(FILE));
    assert!(matches!(verdict, Verdict::Deny(_)), "{verdict:?}");

    // The human's own rm, forked by the login shell, on the same file.
    let human = proc(400, 4_000, &shell(), "/bin/zsh");
    f.fork(&shell(), &human);
    let human = f.exec(&human, "/bin/rm", &["rm"]);
    assert_eq!(f.judge(&human, unlink(FILE)), Verdict::Allow);
    // Outside the zones the agent may delete too.
    assert_eq!(
        f.judge(&rm, unlink("/Users/alice/Downloads/x")),
        Verdict::Allow
    );

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
    let (agent, _, _) = agent_tree(&f);
    let git = "/usr/bin/git";
    let reset = Action::Exec {
        path: PathBuf::from(git),
        argv: args(&["git", "reset", "--hard", "-q"]),
        env: Vec::new(),
    };
    let apple_git = SigningInfo {
        signing_id: Some("com.apple.git".into()),
        platform_binary: true,
        cs_flags: SIGNED | cs::PLATFORM_BINARY,
        ..SigningInfo::default()
    };
    // The agent runs `git stash`; the fork that execs the reset is still `git stash`, and the
    // daemon reads that from KERN_PROCARGS2.
    let stash = proc(500, 5_000, &agent, "/bin/zsh");
    f.fork(&agent, &stash);
    let stash = ActorFacts {
        signing: apple_git.clone(),
        ..f.exec(&stash, git, &["git", "stash"])
    };
    let child = proc(600, 6_000, &stash, git);
    let child = ActorFacts {
        signing: apple_git,
        ..child
    };
    f.fork(&stash, &child);
    f.inspector.add(600, 500, 6_000, git, &["git", "stash"]);
    assert_eq!(f.judge(&child, reset.clone()), Verdict::Allow);
    // The same exec from a git whose command line is not a stash (an alias run by git).
    f.inspector.add(
        600,
        500,
        6_000,
        git,
        &["git", "-c", "alias.x=reset --hard", "x"],
    );
    let verdict = f.judge(&child, reset);
    assert!(matches!(verdict, Verdict::Deny(_)), "{verdict:?}");
}

#[test]
fn only_a_trusted_signing_identity_reaches_the_engine() {
    let f = fixture(POLICY);
    let (_, _, rm) = agent_tree(&f);
    // git, trusted by signing id in the policy, run by the agent from an unusual path.
    let git = proc(310, 3_100, &rm, "/bin/rm");
    f.fork(&rm, &git);
    let git = f.exec(&git, "/opt/tools/git", &["git", "rm"]);
    let signed = |signing: SigningInfo| ActorFacts {
        signing,
        ..git.clone()
    };
    let apple = signed(SigningInfo {
        signing_id: Some("com.apple.git".into()),
        platform_binary: true,
        cs_flags: SIGNED | cs::PLATFORM_BINARY,
        ..SigningInfo::default()
    });
    assert_eq!(f.judge(&apple, unlink(FILE)), Verdict::Allow);
    // `codesign -s - -i com.apple.git ./x`: ES reports the identifier, but it is ad hoc code,
    // not Apple's platform binary, so it is not git.
    let forged = signed(SigningInfo {
        signing_id: Some("com.apple.git".into()),
        cs_flags: SIGNED | cs::VALID | cs::ADHOC,
        ..SigningInfo::default()
    });
    let verdict = f.judge(&forged, unlink(FILE));
    assert!(matches!(verdict, Verdict::Deny(_)), "{verdict:?}");
    // A developer certificate does not make a third party's "com.apple.git" Apple's either.
    let developer = signed(SigningInfo {
        signing_id: Some("com.apple.git".into()),
        team_id: Some("ABCDE12345".into()),
        cs_flags: SIGNED,
        ..SigningInfo::default()
    });
    let verdict = f.judge(&developer, unlink(FILE));
    assert!(matches!(verdict, Verdict::Deny(_)), "{verdict:?}");
    // Unsigned: not git.
    let verdict = f.judge(&signed(SigningInfo::default()), unlink(FILE));
    assert!(matches!(verdict, Verdict::Deny(_)), "{verdict:?}");
}

#[test]
fn a_third_party_tool_is_trusted_only_with_its_team() {
    let policy = r#"{
      "ai_agent_patterns": ["claude"],
      "protected_zones": [{"path": "~/src", "on_destroy": "deny"}],
      "trusted_tools": [{"name": "tool", "signing_id": "com.example.tool", "team_id": "ABCDE12345"}]
    }"#;
    let f = fixture(policy);
    let (_, _, rm) = agent_tree(&f);
    let tool = |team: Option<&str>, flags: u32| ActorFacts {
        signing: SigningInfo {
            signing_id: Some("com.example.tool".into()),
            team_id: team.map(Into::into),
            cs_flags: flags,
            ..SigningInfo::default()
        },
        ..proc(320, 3_200, &rm, "/opt/tool")
    };
    assert_eq!(
        f.judge(&tool(Some("ABCDE12345"), SIGNED), unlink(FILE)),
        Verdict::Allow
    );
    for (team, flags) in [
        (Some("ZZZZZ99999"), SIGNED),
        (None, SIGNED),
        (Some("ABCDE12345"), SIGNED | cs::ADHOC),
    ] {
        let verdict = f.judge(&tool(team, flags), unlink(FILE));
        assert!(
            matches!(verdict, Verdict::Deny(_)),
            "{team:?} {flags:#x}: {verdict:?}"
        );
    }
}

#[test]
fn metadata_changes_are_allowed_in_protected_zones_only() {
    let policy = r#"{
      "ai_agent_patterns": ["claude"],
      "protected_zones": ["~/src"],
      "readonly_zones": ["~/.zshrc"],
      "secret_zones": ["~/.ssh"]
    }"#;
    let f = fixture(policy);
    let (_, _, rm) = agent_tree(&f);
    let ctx = MappingContext {
        guard: ProcessIdentity::default(),
    };
    let setattr = |path: &str| {
        let mut actions = actions_for(
            &EsRequest::Metadata {
                target: PathBuf::from(path),
            },
            &ctx,
        );
        actions.remove(0)
    };
    assert_eq!(f.judge(&rm, setattr(FILE)), Verdict::Allow);
    for path in [
        "/Users/alice/.zshrc",
        "/Users/alice/.ssh/id_ed25519",
        // The guard's own files: `chflags uchg` on its log would stop it writing.
        &f.policy_file.display().to_string(),
    ] {
        let verdict = f.judge(&rm, setattr(path));
        assert!(matches!(verdict, Verdict::Deny(_)), "{path}: {verdict:?}");
    }
    let records = denials(&f);
    assert!(
        records
            .iter()
            .all(|r| r.op == crate::vocab::OpKind::SetAttr),
        "{records:?}"
    );
    assert_eq!(records.len(), 3);
}

#[test]
fn a_renamed_launchctl_meets_launchctls_exec_rules() {
    // The default policy's rule: launchctl bootout/kill ... *agent-guard* is denied to agents.
    let f = fixture(r#"{"ai_agent_patterns": ["claude"]}"#);
    let (_, _, rm) = agent_tree(&f);
    let ctx = MappingContext {
        guard: ProcessIdentity::default(),
    };
    let exec = |program: Option<&str>| {
        let mut actions = actions_for(
            &EsRequest::Exec {
                target: PathBuf::from("/tmp/x"),
                args: args(&["x", "bootout", "system/com.agent-guard.daemon"]),
                script: None,
                program: program.map(Into::into),
            },
            &ctx,
        );
        actions.remove(0)
    };
    let verdict = f.judge(&rm, exec(Some("launchctl")));
    assert!(matches!(verdict, Verdict::Deny(_)), "{verdict:?}");
    // The same copy, unsigned (no platform identity): nothing says it is launchctl.
    assert_eq!(f.judge(&rm, exec(None)), Verdict::Allow);
}
