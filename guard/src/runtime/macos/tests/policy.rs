//! Policy reloads as the daemon sees them: fail mode and agent patterns, the muting roots, the
//! reload hook.

use super::*;

#[test]
fn fail_mode_and_agent_patterns_follow_policy_reloads() {
    let f = fixture(POLICY);
    assert!(!f.core.fail_closed());
    let codex = |start| {
        f.inspector
            .add(600, 50, start, "/usr/local/bin/codex", &["codex"]);
        f.judge(
            &proc(600, start, &shell(), "/usr/local/bin/codex"),
            unlink(FILE),
        )
    };
    assert_eq!(codex(1), Verdict::Allow, "codex is not a pattern yet");

    std::fs::write(
        &f.policy_file,
        POLICY
            .replace(r#"["claude"]"#, r#"["claude", "codex"]"#)
            .replacen("{", r#"{"fail_mode": "closed","#, 1),
    )
    .unwrap();
    // The fixture's watcher may have swapped the new file in already; either way, after this
    // the new policy is in force.
    f.core
        .runtime()
        .policy
        .reload(&f.policy_file, &f.ctx)
        .unwrap();
    assert!(f.core.fail_closed());
    // A new codex process (a new start time) is recognized by the rebuilt matcher.
    assert!(matches!(codex(2), Verdict::Deny(_)));
}

#[test]
fn watched_roots_are_the_zones_and_the_guard_files() {
    let f = fixture(POLICY);
    let roots = f.core.watched_roots();
    assert!(roots.protected.contains(&PathBuf::from("/Users/alice/src")));
    // Opens are delivered under the secret zone, not under the protected one.
    assert!(roots
        .restricted
        .contains(&PathBuf::from("/Users/alice/.ssh")));
    assert!(!roots
        .restricted
        .contains(&PathBuf::from("/Users/alice/src")));
    for guard in [
        f.state.clone(),
        f.policy_file.clone(),
        PathBuf::from("/etc/agent-guard"),
        PathBuf::from("/private/etc/agent-guard"),
        PathBuf::from(LAUNCH_DAEMON_PLIST),
        PathBuf::from(LOG_DIR),
        PathBuf::from("/private/var/log/agent-guard"),
    ] {
        assert!(roots.guard_files.contains(&guard), "{guard:?} not watched");
    }
    assert!(!roots
        .protected
        .iter()
        .chain(&roots.restricted)
        .any(|r| r.starts_with("/etc")));
}

#[test]
fn a_policy_file_change_runs_the_reload_hook_the_daemon_refreshes_muting_with() {
    let f = fixture(POLICY);
    let (tx, rx) = std::sync::mpsc::channel();
    let tx = Mutex::new(tx);
    f.core.runtime().on_policy_reload(move || {
        let _ = tx.lock().unwrap().send(());
    });
    // As nix-darwin's activation writes it: a new file renamed over the old one.
    let tmp = f.policy_file.with_extension("new");
    std::fs::write(&tmp, POLICY.replace("~/src", "~/work")).unwrap();
    std::fs::rename(&tmp, &f.policy_file).unwrap();
    rx.recv_timeout(std::time::Duration::from_secs(5))
        .expect("the reload hook ran within 5 s");
    let roots = f.core.watched_roots();
    assert!(roots
        .protected
        .contains(&PathBuf::from("/Users/alice/work")));
    assert!(!roots.protected.contains(&PathBuf::from("/Users/alice/src")));
}

#[test]
fn opens_are_delivered_in_zones_that_keep_and_not_in_zones_that_deny() {
    let f = fixture(
        r#"{"ai_agent_patterns": ["claude"],
            "protected_zones": ["~/src", {"path": "~/vault", "on_destroy": "deny"}]}"#,
    );
    let roots = f.core.watched_roots();
    // `: > README.md` is an open with O_TRUNC, and a first write is kept: ES must send opens.
    assert!(roots
        .restricted
        .contains(&PathBuf::from("/Users/alice/src")));
    assert!(!roots.protected.contains(&PathBuf::from("/Users/alice/src")));
    assert!(roots
        .protected
        .contains(&PathBuf::from("/Users/alice/vault")));
    let selection = roots.selection(true);
    assert!(selection
        .open_prefixes
        .contains(&PathBuf::from("/Users/alice/src")));
    assert!(!selection
        .open_prefixes
        .contains(&PathBuf::from("/Users/alice/vault")));
}
