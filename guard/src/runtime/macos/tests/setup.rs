//! Setting the daemon up: its policy context, the homes under /Users, the spool's modes.

use super::*;

#[test]
fn the_daemon_policy_guards_its_files_in_both_spellings_and_lets_agents_file_requests() {
    let locations = Locations::macos_daemon();
    let mut ctx = daemon_context(
        vec![PathBuf::from(HOME), PathBuf::from("/Users/bob")],
        &locations,
        None,
        Some(Path::new("/opt/agent-guard/bin/agent-guard")),
    );
    ctx.resolve_symlinks = false;
    let json = r#"{"ai_agent_patterns": ["claude"], "protected_zones": ["~/src"]}"#;
    let policy = crate::policy::from_json(json, Path::new("test.json"), &ctx).unwrap();
    let agent = Attribution::Agent(AgentInfo {
        name: "claude".into(),
        pid: 1,
    });
    let decide = |action: Action| {
        let event = Event {
            actor: proc(9, 9, &shell(), "/bin/rm").actor(),
            action,
        };
        crate::engine::decide(&event, &agent, &policy, &Default::default(), 0)
    };
    let unlink = |p: &str| Action::Unlink {
        path: PathBuf::from(p),
    };
    for guarded in [
        "/etc/agent-guard/policy.json",
        "/private/etc/agent-guard/policy.json",
        "/private/var/db/agent-guard/grants.json",
        "/var/log/agent-guard/denials.jsonl",
        "/private/var/log/agent-guard/daemon.log",
        "/Library/LaunchDaemons/com.agent-guard.daemon.plist",
        "/opt/agent-guard/bin/agent-guard",
        "/private/var/db/agent-guard/store/20261203T160000Z-100.1000/000001-main.rs",
        "/PRIVATE/etc/Agent-Guard/policy.json",
    ] {
        assert!(
            matches!(decide(unlink(guarded)), Verdict::Deny(_)),
            "{guarded}"
        );
    }
    // Every user's zone keeps; APFS is case-insensitive: so is matching in the daemon's policy.
    for kept in ["/Users/bob/src/x", "/USERS/Bob/SRC/x"] {
        assert!(matches!(decide(unlink(kept)), Verdict::Keep(_)), "{kept}");
    }
    // The store is unreadable to agents, by either spelling.
    for store in [
        "/var/db/agent-guard/store/20261203T160000Z-100.1000/000001-main.rs",
        "/private/var/db/agent-guard/store",
    ] {
        let read = Action::Open {
            path: PathBuf::from(store),
            flags: crate::vocab::OpenFlags::READ,
        };
        assert!(matches!(decide(read), Verdict::Deny(_)), "{store}");
    }
    for spool in [
        "/var/db/agent-guard/requests/r1.json",
        "/private/var/db/agent-guard/requests/r1.json",
    ] {
        let create = Action::Create {
            path: PathBuf::from(spool),
            kind: crate::engine::NodeKind::File,
        };
        assert_eq!(decide(create), Verdict::Allow, "{spool}");
    }
}

#[test]
fn user_homes_are_the_directories_under_users() {
    let dir = tempfile::tempdir().unwrap();
    for d in ["alice", "bob", "Shared", ".hidden"] {
        std::fs::create_dir(dir.path().join(d)).unwrap();
    }
    std::fs::write(dir.path().join(".localized"), "").unwrap();
    std::fs::write(dir.path().join("notes.txt"), "").unwrap();
    std::os::unix::fs::symlink("/", dir.path().join("root-link")).unwrap();
    assert_eq!(
        user_homes(dir.path()),
        vec![dir.path().join("alice"), dir.path().join("bob")]
    );
    assert!(user_homes(&dir.path().join("absent")).is_empty());
}

#[test]
fn the_requests_spool_is_sticky_and_writable_by_all() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let locations = Locations::in_state_dir(&dir.path().join("db"));
    // An older install's private state dir is opened up to traversal.
    std::fs::create_dir(&locations.state_dir).unwrap();
    std::fs::set_permissions(&locations.state_dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    prepare_state_dirs(&locations).unwrap();
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode(&locations.state_dir), 0o711);
    assert_eq!(mode(&locations.requests_dir), 0o1777);
}

#[test]
fn launchd_keeps_restarting_the_daemon_only_after_errors_that_can_mend_themselves() {
    use crate::platform::macos::StartError;
    // A user account appears, the patterns or the overrides file are fixed: restarted (non-zero
    // under launchd too, KeepAlive { SuccessfulExit = false }).
    let mends = DaemonError::NoHomes;
    assert_eq!(mends.exit_code_under(true), 78);
    assert_eq!(mends.exit_code_under(false), 78);
    assert!(mends.to_string().contains(USERS_DIR));
    let patterns = DaemonError::from(crate::lineage::PatternError::Empty);
    assert_eq!(patterns.exit_code_under(true), 78);
    // Only signing it, granting Full Disk Access, root or a newer macOS helps: exit 0 under
    // launchd (that action restarts it), sysexits from a terminal.
    let not_entitled = DaemonError::from(StartError::NotEntitled);
    assert_eq!(not_entitled.exit_code_under(true), 0);
    assert_eq!(not_entitled.exit_code_under(false), 77);
    // A transient failure inside the daemon: restarted.
    let setup = DaemonError::from(StartError::Setup("x".into()));
    assert_eq!(setup.exit_code_under(true), 70);
}
