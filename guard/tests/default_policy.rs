//! The embedded default policy against what everyday tools do for themselves: an agent's
//! `git stash` must work, while what the default is there to stop still stops. Each case was
//! found by running the tool under `agent-guard run`.

use std::path::{Path, PathBuf};

use agent_guard::engine::{
    decide, Action, Actor, Attribution, Event, Grants, KeepWhat, RuleId, Verdict,
};
use agent_guard::policy::{self, LoadContext, Platform, Policy, PolicyError};

const GIT: &str = "/usr/bin/git";

fn ctx() -> LoadContext {
    LoadContext {
        platform: Platform::Linux,
        homes: vec![PathBuf::from("/home/u")],
        guard_paths: vec![],
        agent_writable: vec![],
        unreadable: vec![],
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
fn a_directory_moved_into_a_build_directory_is_kept_whoever_moves_it() {
    // cargo makes `target` atomically: a temporary `targetXXXXXX` renamed to `target`, a move into
    // a carve-out. cargo is known by executables under ~/.rustup, which the agent can write, so a
    // copy of `mv` planted there as "cargo" could move `src`, renamed `targetABCDEF`, into
    // `target` and delete it there: trusting cargo for it was tried and withdrawn. In the
    // default's zone that keeps, the move is allowed for everyone once the tree is copied into
    // the store (a fresh `targetXXXXXX` is a few bytes; a tree over the limit stays put), and
    // deleting what is in it is kept too.
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
        let Verdict::Keep(k) = &v else {
            panic!("{exe}: {v:?}")
        };
        assert_eq!(k.rule, RuleId::ProtectedMoveOut);
        assert_eq!(k.items[0].what, KeepWhat::Tree);
        let v = verdict(
            &p,
            actor(exe, &[]),
            Action::Unlink {
                path: PathBuf::from("/home/u/src/app/targetABCDEF/main.rs"),
            },
        );
        assert!(
            matches!(&v, Verdict::Keep(k) if k.rule == RuleId::ProtectedDelete),
            "{exe}: {v:?}"
        );
    }
}
