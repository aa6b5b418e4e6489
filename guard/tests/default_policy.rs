//! The embedded default policy against what everyday tools do for themselves: an agent's
//! `git stash` must work, while what the default is there to stop still stops. Each case was
//! found by running the tool under `agent-guard run`.

use std::path::{Path, PathBuf};

use agent_guard::engine::{decide, Action, Actor, Attribution, Event, Grants, RuleId, Verdict};
use agent_guard::policy::{self, LoadContext, Platform, Policy, PolicyError};

const GIT: &str = "/usr/bin/git";

fn ctx() -> LoadContext {
    LoadContext {
        platform: Platform::Linux,
        homes: vec![PathBuf::from("/home/u")],
        guard_paths: vec![],
        agent_writable: vec![],
        resolve_symlinks: false,
    }
}

/// `exe` running with `args` (after argv[0]), as the sensor reports it.
fn actor(exe: &str, args: &[&str]) -> Actor {
    let name = Path::new(exe).file_name().unwrap().to_string_lossy();
    Actor {
        pid: 7,
        exe: PathBuf::from(exe),
        argv0: name.to_string(),
        comm: name.to_string(),
        args: args.iter().map(|a| a.to_string()).collect(),
        ..Actor::default()
    }
}

fn verdict(policy: &Policy, actor: Actor, action: Action) -> Verdict {
    let event = Event { actor, action };
    decide(
        &event,
        &Attribution::agent("claude", 1),
        policy,
        &Grants::default(),
        1_000,
    )
}

fn exec(argv: &[&str]) -> Action {
    Action::Exec {
        path: PathBuf::from(GIT),
        argv: argv.iter().map(|a| a.to_string()).collect(),
        env: Vec::new(),
    }
}

fn denied_by(v: &Verdict) -> Option<RuleId> {
    match v {
        Verdict::Deny(d) => Some(d.rule.clone()),
        _ => None,
    }
}

#[test]
fn git_may_reset_clean_and_check_out_for_its_own_stash_and_worktree() {
    let p = policy::embedded_default(&ctx());
    let reset = || exec(&["git", "reset", "--hard", "-q", "--no-recurse-submodules"]);
    // What git stash and git worktree add run for themselves, by the process that execs
    // (still the forked `git stash`).
    for (by, action) in [
        (vec!["stash"], reset()),
        (
            vec!["stash", "push", "-u"],
            exec(&["git", "clean", "--force", "-q", "-d"]),
        ),
        (
            vec!["stash", "push", "--keep-index"],
            exec(&["git", "checkout", "--no-overlay", "HEAD", "--", "."]),
        ),
        (vec!["-C", "/home/u/src/app", "stash"], reset()),
        (vec!["-c", "color.ui=never", "stash"], reset()),
        (vec!["worktree", "add", "../wt"], reset()),
    ] {
        let v = verdict(&p, actor(GIT, &by), action.clone());
        assert_eq!(v, Verdict::Allow, "{by:?} running {action:?}");
    }
    // The same commands otherwise: typed by the agent (its shell execs), or made to look like
    // a stash.
    for (exe, by) in [
        ("/bin/bash", vec!["-c", "git reset --hard"]),
        (GIT, vec![]),
        (GIT, vec!["-c", "alias.x=reset --hard", "x"]),
        // An option whose value could pass for the subcommand.
        (
            GIT,
            vec!["--git-dir", "stash", "-c", "alias.x=reset --hard", "x"],
        ),
        (GIT, vec!["-C", "stash", "x"]),
        // Not the trusted git: a copy elsewhere, whatever it calls itself.
        ("/home/u/bin/git", vec!["stash"]),
        // A subcommand not named by the rule.
        (GIT, vec!["rebase"]),
    ] {
        let v = verdict(&p, actor(exe, &by), reset());
        assert_eq!(denied_by(&v), Some(RuleId::ExecRule), "{exe} {by:?}: {v:?}");
    }
    // git clean is spared only for stash, not for worktree.
    let v = verdict(
        &p,
        actor(GIT, &["worktree", "add", "x"]),
        exec(&["git", "clean", "-fdx"]),
    );
    assert_eq!(denied_by(&v), Some(RuleId::ExecRule), "{v:?}");
}

#[test]
fn unless_run_by_names_a_trusted_tool_and_a_subcommand() {
    let load = |rules: &str| {
        let json = format!(r#"{{"trusted_tools": ["git"], "exec_rules": [{rules}]}}"#);
        policy::from_json(&json, Path::new("p.json"), &ctx())
    };
    let ok = load(
        r#"{"program": "git", "args": ["reset"], "unless_run_by": ["git stash"], "reason": "r"}"#,
    );
    assert!(ok.is_ok(), "{ok:?}");
    // A file that keeps the default's exec rules but trusts other tools is valid: git just
    // cannot vouch for its stash there.
    let p = policy::from_json(
        r#"{"trusted_tools": ["cargo"]}"#,
        Path::new("p.json"),
        &ctx(),
    )
    .expect("the default's exec rules load without git trusted");
    let v = verdict(
        &p,
        actor(GIT, &["stash"]),
        exec(&["git", "reset", "--hard"]),
    );
    assert_eq!(denied_by(&v), Some(RuleId::ExecRule), "{v:?}");
    for (rules, want) in [
        (
            r#"{"program": "git", "args": ["reset"], "unless_run_by": ["mytool stash"], "reason": "r"}"#,
            "exec_rules[0].unless_run_by[0]: \"mytool\" is not in trusted_tools",
        ),
        (
            r#"{"program": "git", "args": ["reset"], "unless_run_by": ["git"], "reason": "r"}"#,
            "exec_rules[0].unless_run_by[0]: \"git\": expected a trusted tool and its subcommand",
        ),
    ] {
        let err = load(rules).unwrap_err();
        assert!(matches!(err, PolicyError::Invalid { .. }), "{err:?}");
        assert!(err.to_string().contains(want), "{err}");
    }
}

#[test]
fn cargo_cannot_be_planted_to_move_a_protected_directory_into_a_build_directory() {
    // cargo makes `target` atomically: a temporary `targetXXXXXX` renamed to `target`. Letting
    // cargo do that inside the home was tried and withdrawn: cargo is known by executables under
    // ~/.rustup, which the agent can write, so a copy of `mv` planted there as "cargo" could move
    // `src`, renamed `targetABCDEF`, into `target` and delete it. The move stays denied for
    // everyone (the known limit: `mkdir target` before the first build, see the README).
    let p = policy::embedded_default(&ctx());
    let planted = "/home/u/.rustup/toolchains/x/bin/cargo";
    let real = "/home/u/.rustup/toolchains/stable-x86_64-unknown-linux-gnu/bin/cargo";
    for exe in [planted, real, "/usr/bin/mv"] {
        let v = verdict(
            &p,
            actor(exe, &[]),
            Action::Rename {
                from: PathBuf::from("/home/u/src/app/targetABCDEF"),
                to: PathBuf::from("/home/u/src/app/target"),
                dest_exists: false,
                source_is_dir: true,
            },
        );
        assert_eq!(
            denied_by(&v),
            Some(RuleId::ProtectedMoveOut),
            "{exe}: {v:?}"
        );
        // The agent is told the way through.
        let Verdict::Deny(d) = &v else { unreachable!() };
        assert!(d.reason.contains("mkdir it first"), "{}", d.reason);
        let v = verdict(
            &p,
            actor(exe, &[]),
            Action::Unlink {
                path: PathBuf::from("/home/u/src/app/targetABCDEF/main.rs"),
            },
        );
        assert_eq!(denied_by(&v), Some(RuleId::ProtectedDelete), "{exe}: {v:?}");
    }
}

/// The default's trusted identities on each platform (issue 15, item 6): on a Mac, Homebrew's
/// prefixes, /Applications and the homes are writable by users, so a path there identifies no
/// tool (`cp /bin/rm /opt/homebrew/bin/git` would be "git"); on Linux those paths are root's and
/// stay trusted.
#[test]
fn user_writable_executables_identify_no_tool_on_a_mac_and_still_do_on_linux() {
    let delete = || Action::Unlink {
        path: PathBuf::from("/home/u/src/x"),
    };
    let mac = LoadContext {
        platform: Platform::MacOs,
        homes: vec![PathBuf::from("/home/u")],
        ..ctx()
    };
    let linux = policy::embedded_default(&ctx());
    let macos = policy::embedded_default(&mac);
    assert!(macos.warnings.is_empty(), "{:?}", macos.warnings);
    for planted in [
        "/usr/local/bin/git",
        "/opt/homebrew/bin/git",
        "/opt/homebrew/Cellar/git/2.45.0/bin/git",
        "/Applications/Xcode-beta.app/Contents/Developer/usr/bin/git",
    ] {
        assert!(
            denied_by(&verdict(&macos, actor(planted, &[]), delete())).is_some(),
            "{planted} on a Mac"
        );
    }
    assert_eq!(
        verdict(&linux, actor("/usr/local/bin/git", &[]), delete()),
        Verdict::Allow,
        "Linux keeps its behaviour"
    );
    for root_owned in [
        "/usr/bin/git",
        "/Library/Developer/CommandLineTools/usr/bin/git",
        "/nix/store/abc-git-2.45/bin/git",
    ] {
        assert_eq!(
            verdict(&macos, actor(root_owned, &[]), delete()),
            Verdict::Allow,
            "{root_owned} on a Mac"
        );
    }
    // cargo lives only under a home or Homebrew on a Mac: trusted nowhere there, not by its
    // name either (an entry whose every path was left out must not fall back to the basename).
    let json = r#"{"protected_zones": ["/home/u/src"], "trusted_tools": ["cargo"]}"#;
    let target = || Action::Unlink {
        path: PathBuf::from("/home/u/src/app/target/debug/x"),
    };
    let cargo = || actor("/home/u/.cargo/bin/cargo", &[]);
    let on_mac = policy::from_json(json, Path::new("p.json"), &mac).unwrap();
    assert!(denied_by(&verdict(&on_mac, cargo(), target())).is_some());
    assert!(on_mac.warnings.is_empty(), "{:?}", on_mac.warnings);
    let on_linux = policy::from_json(json, Path::new("p.json"), &ctx()).unwrap();
    assert_eq!(verdict(&on_linux, cargo(), target()), Verdict::Allow);
}

/// A policy's own user-writable path is left out on a Mac, with a warning that says what to do;
/// a signing identifier other than Apple's identifies nothing without its team.
#[test]
fn a_policys_own_user_writable_path_and_a_teamless_signing_id_are_warned_about() {
    let mac = LoadContext {
        platform: Platform::MacOs,
        ..ctx()
    };
    let json = r#"{"protected_zones": ["/home/u/src"], "trusted_tools": [
        {"name": "mytool", "exe": ["/opt/homebrew/bin/mytool", "/usr/libexec/mytool"]},
        {"name": "signed", "signing_id": "com.example.signed"}
    ]}"#;
    let loaded = policy::from_json(json, Path::new("p.json"), &mac).unwrap();
    let warnings = loaded.warnings.join("\n");
    assert!(
        warnings.contains("trusted_tools[0].exe[0]")
            && warnings.contains("/opt/homebrew/bin/mytool")
            && warnings.contains("signing_id"),
        "{warnings}"
    );
    assert!(
        warnings.contains("trusted_tools[1].signing_id") && warnings.contains("team_id"),
        "{warnings}"
    );
    let delete = || Action::Unlink {
        path: PathBuf::from("/home/u/src/x"),
    };
    assert!(denied_by(&verdict(
        &loaded,
        actor("/opt/homebrew/bin/mytool", &[]),
        delete()
    ))
    .is_some());
    assert_eq!(
        verdict(&loaded, actor("/usr/libexec/mytool", &[]), delete()),
        Verdict::Allow
    );
    let teamless = Actor {
        signing_id: Some("com.example.signed".into()),
        ..actor("/opt/x/signed", &[])
    };
    assert!(denied_by(&verdict(&loaded, teamless, delete())).is_some());
    // The same JSON on Linux: no such warnings, the path is root's there.
    let linux = policy::from_json(json, Path::new("p.json"), &ctx()).unwrap();
    assert!(!linux.warnings.join("\n").contains("writable by users"));
}
