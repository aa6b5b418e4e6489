//! Exec rules for git against the real git: for each way of spelling a command that git accepts
//! (abbreviated long options, bundled flags, option values that look like options, global
//! options, aliases on the command line and in the environment, the dashed `git-clean`), the
//! real git is run in a throwaway repository and the rule must deny exactly the commands that
//! destroyed uncommitted or untracked work there. Then: the option tables in
//! `guard/src/git/options.rs` are the installed git's own (`git <subcommand> -h`), and the config
//! reader finds what `git config --list` finds, on generated files.

use std::path::{Path, PathBuf};
use std::process::Command;

use agent_guard::engine::{decide, Action, Actor, Attribution, Event, Grants, Verdict};
use agent_guard::git::config::{read, Entry};
use agent_guard::policy::{self, LoadContext, Platform, Policy};
use proptest::prelude::*;

fn ctx() -> LoadContext {
    LoadContext {
        platform: Platform::Linux,
        homes: vec![PathBuf::from("/home/u")],
        guard_paths: vec![],
        agent_writable: vec![],
        resolve_symlinks: false,
    }
}

/// The local-history rules as a user who keeps them writes them (short options and all).
fn rules() -> Policy {
    let json = r#"{"protected_zones": [], "exec_rules": [
        {"program": "git", "args": ["clean"], "unless": ["-n", "--dry-run", "-h", "--help"], "reason": "r"},
        {"program": "git", "args": ["reset", "--hard"], "reason": "r"},
        {"program": "git", "args": ["checkout", "{--,.,-f,--force,-p,--patch}"], "reason": "r"},
        {"program": "git", "args": ["restore", "--worktree"], "reason": "r"},
        {"program": "git", "args": ["switch", "{-f,--force,--discard-changes}"], "reason": "r"},
        {"program": "git", "args": ["push", "{-f,+*}"], "reason": "r"}
    ]}"#;
    policy::from_json(json, Path::new("rules.json"), &ctx()).expect("policy")
}

fn denied(policy: &Policy, exe: &str, argv: &[&str], env: &[&str]) -> bool {
    let event = Event {
        actor: Actor {
            pid: 7,
            ..Actor::default()
        },
        action: Action::Exec {
            path: PathBuf::from(exe),
            argv: argv.iter().map(|a| a.to_string()).collect(),
            env: env.iter().map(|a| a.to_string()).collect(),
        },
    };
    matches!(
        decide(
            &event,
            &Attribution::agent("claude", 1),
            policy,
            &Grants::default(),
            1
        ),
        Verdict::Deny(_)
    )
}

fn git(repo: &Path, args: &[&str]) -> std::process::Output {
    Command::new("git")
        .args(args)
        .current_dir(repo)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("HOME", repo)
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@t")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@t")
        .output()
        .expect("git runs")
}

/// A repository with a committed `f` changed in the working tree, a branch `other` where `f`
/// differs, and untracked `u.txt` and `d/x`.
fn repo() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path();
    for args in [
        &["init", "-q", "-b", "main"][..],
        &["config", "user.name", "t"],
    ] {
        assert!(git(r, args).status.success());
    }
    std::fs::write(r.join("f"), "v1").unwrap();
    assert!(git(r, &["add", "f"]).status.success());
    assert!(git(r, &["commit", "-qm", "one"]).status.success());
    assert!(git(r, &["checkout", "-qb", "other"]).status.success());
    std::fs::write(r.join("f"), "other").unwrap();
    assert!(git(r, &["commit", "-qam", "other"]).status.success());
    assert!(git(r, &["checkout", "-q", "main"]).status.success());
    std::fs::write(r.join("f"), "v2").unwrap();
    std::fs::write(r.join("u.txt"), "untracked").unwrap();
    std::fs::create_dir(r.join("d")).unwrap();
    std::fs::write(r.join("d/x"), "untracked").unwrap();
    dir
}

/// Whether uncommitted or untracked work is gone.
fn destroyed(r: &Path) -> bool {
    std::fs::read_to_string(r.join("f")).ok().as_deref() != Some("v2")
        || !r.join("u.txt").exists()
        || !r.join("d/x").exists()
}

#[test]
fn rules_deny_exactly_what_destroys_work_in_the_real_git() {
    let policy = rules();
    let dashed = Path::new("/usr/lib/git-core/git-clean");
    // (argv as the kernel passes it, extra environment)
    let mut cases: Vec<(Vec<&str>, Vec<&str>)> = vec![
        (vec!["git", "reset", "--ha"], vec![]),
        (vec!["git", "reset", "--hard"], vec![]),
        (vec!["git", "reset", "--soft", "HEAD"], vec![]),
        (vec!["git", "reset", "-q"], vec![]),
        (vec!["git", "checkout", "-qf", "other"], vec![]),
        (vec!["git", "checkout", "HEAD", "f"], vec![]),
        (vec!["git", "checkout", "--", "f"], vec![]),
        (vec!["git", "checkout", "-b", "new"], vec![]),
        (vec!["git", "checkout", "-q", "-b", "f"], vec![]),
        (
            vec!["git", "restore", "--staged", "--worktree", "f"],
            vec![],
        ),
        (vec!["git", "restore", "-SW", "f"], vec![]),
        (vec!["git", "restore", "f"], vec![]),
        (vec!["git", "restore", "--staged", "f"], vec![]),
        (vec!["git", "clean", "-fdx", "-e", "-n"], vec![]),
        (
            vec!["git", "clean", "--forc", "-d", "-x", "-e", "--dry-run"],
            vec![],
        ),
        (vec!["git", "clean", "-fdn"], vec![]),
        (vec!["git", "clean", "-n"], vec![]),
        (vec!["git", "clean", "--dry", "-fd"], vec![]),
        (vec!["git", "clean", "-f", "--", "--dry-run", "."], vec![]),
        (vec!["git", "clean", "--fo", "-d"], vec![]),
        (
            vec!["git", "-C", ".", "-c", "core.quotepath=off", "clean", "-fd"],
            vec![],
        ),
        (vec!["git", "--git-dir", "clean", "status"], vec![]),
        (vec!["git", "-c", "alias.nuke=reset --hard", "nuke"], vec![]),
        (vec!["git", "-c", "alias.look=status", "look"], vec![]),
        (
            vec!["git", "z"],
            vec!["GIT_CONFIG_PARAMETERS='alias.z'='clean -fdx'"],
        ),
        (
            vec!["git", "y"],
            vec![
                "GIT_CONFIG_COUNT=1",
                "GIT_CONFIG_KEY_0=alias.y",
                "GIT_CONFIG_VALUE_0=checkout -f other",
            ],
        ),
        (
            vec!["git", "--config-env=alias.w=W", "w"],
            vec!["W=reset --hard"],
        ),
        (vec!["git", "switch", "--discard-changes", "other"], vec![]),
        (vec!["git", "switch", "--disc", "other"], vec![]),
        (vec!["git", "switch", "-c", "fresh"], vec![]),
        (vec!["git", "reset", "-h"], vec![]),
    ];
    if dashed.exists() {
        cases.push((vec!["git-clean", "-fd"], vec![]));
        cases.push((vec!["/usr/lib/git-core/git-clean", "-n"], vec![]));
    }
    let mut wrong = Vec::new();
    for (argv, env) in &cases {
        let dir = repo();
        let exe = if argv[0].starts_with("git-") || argv[0].contains('/') {
            dashed.to_str().unwrap()
        } else {
            "/usr/bin/git"
        };
        let mut cmd = Command::new(exe);
        cmd.arg0(argv[0])
            .args(&argv[1..])
            .current_dir(dir.path())
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("HOME", dir.path());
        for e in env {
            let (k, v) = e.split_once('=').unwrap();
            cmd.env(k, v);
        }
        let out = cmd.output().expect("git runs");
        let destroyed = destroyed(dir.path());
        let denied = denied(&policy, exe, argv, env);
        if destroyed != denied {
            wrong.push(format!(
                "{argv:?} {env:?}: git destroyed work: {destroyed}, rule denied: {denied} ({})",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

use std::os::unix::process::CommandExt;

#[test]
fn option_tables_are_the_installed_gits_own() {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/git-options");
    let out = Command::new("python3")
        .arg(&script)
        .output()
        .expect("python3 runs scripts/git-options");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let committed =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/git/options.rs"))
            .unwrap();
    let generated = String::from_utf8(out.stdout).unwrap();
    // The first line names the git version the tables were taken from.
    let body = |s: &str| s.lines().skip(1).collect::<Vec<_>>().join("\n");
    assert!(
        body(&committed) == body(&generated),
        "guard/src/git/options.rs differs from the installed git's options: run \
         scripts/git-options > guard/src/git/options.rs and review the difference"
    );
}

/// What `git config --list` reads from `content`, or `None` when git refuses the file.
fn git_list(content: &[u8]) -> Option<Vec<Entry>> {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("config");
    std::fs::write(&f, content).unwrap();
    let out = Command::new("git")
        .args(["config", "-f"])
        .arg(&f)
        .args(["--list", "--null"])
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("HOME", dir.path())
        .output()
        .unwrap();
    if !out.status.success() {
        return None;
    }
    let mut entries = Vec::new();
    for item in out.stdout.split(|b| *b == 0).filter(|s| !s.is_empty()) {
        let s = String::from_utf8(item.to_vec()).ok()?;
        let (key, value) = match s.split_once('\n') {
            Some((k, v)) => (k.to_string(), Some(v.to_string())),
            None => (s, None),
        };
        entries.push(Entry { key, value });
    }
    Some(entries)
}

fn fragment() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("[core]\n".to_string()),
        Just("[Core]".to_string()),
        Just("[alias]\n".to_string()),
        Just("[remote \"Origin\"]\n".to_string()),
        Just("[remote \"a\\\"b\"]\n".to_string()),
        Just("[diff.X]\n".to_string()),
        Just("[includeIf \"gitdir:/x/\"]\n".to_string()),
        Just("[ core ]\n".to_string()),
        Just("  [core]\n".to_string()),
        Just("[sec \"sub\" ]\n".to_string()),
        Just("[sec\"sub\"]\n".to_string()),
        Just("[s \"a\nb\"]\n".to_string()),
        Just("\tpager = less\n".to_string()),
        Just("Pager=\"a b\" # c\n".to_string()),
        Just("x = \"a;b\" ; c\n".to_string()),
        Just("y = a\\\n b\n".to_string()),
        Just("z\n".to_string()),
        Just("z # t\n".to_string()),
        Just("w = a\\tb\\n\n".to_string()),
        Just("v = \"unterminated\n".to_string()),
        Just("u = bad\\q\n".to_string()),
        Just("# comment\n".to_string()),
        Just("\r\n".to_string()),
        Just("t = 1\r\n".to_string()),
        Just("s-1 =   spaced  out   \n".to_string()),
        Just("1bad = x\n".to_string()),
        Just("k = \"q\"x\"q\" \n".to_string()),
        Just("a b = c\n".to_string()),
        Just("k = \u{e9}\n".to_string()),
        Just("\u{feff}[core]\n".to_string()),
        Just("fsmonitor = /tmp/x\n".to_string()),
        Just("[core] editor = vi\n".to_string()),
        "[a-z]{1,4} = [a-z \"#;\\\\]{0,8}\n",
        "[\\[\\]a-zA-Z0-9 .\"\\\\#;=\t\r\n-]{0,12}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    /// Every file git reads, the reader reads to the same entries; every file the reader
    /// reads, git reads too. (A NUL byte is refused here where git cuts the value: a refusal
    /// makes the caller deny, never miss.)
    #[test]
    fn config_reader_reads_what_git_reads(parts in proptest::collection::vec(fragment(), 0..8)) {
        let content = parts.concat();
        let ours = read(content.as_bytes());
        match (&ours, git_list(content.as_bytes())) {
            (Ok(a), Some(b)) => prop_assert_eq!(a, &b, "content {:?}", content),
            (Ok(a), None) => prop_assert!(false, "git refused what we read as {:?}: {:?}", a, content),
            (Err(e), Some(b)) => prop_assert!(false, "we refused ({}) what git read as {:?}: {:?}", e, b, content),
            (Err(_), None) => {}
        }
    }
}
