use super::*;

fn tokens(argv: &str) -> Vec<String> {
    let argv: Vec<String> = argv.split(' ').map(String::from).collect();
    let command = parse(&argv, &[]);
    assert!(!command.refused, "{argv:?} refused");
    command.tokens()
}

#[test]
fn options_take_git_canonical_names() {
    assert_eq!(tokens("git reset --ha"), ["reset", "--hard"]);
    assert_eq!(
        tokens("git checkout -qf other"),
        ["checkout", "--quiet", "--force", "other"]
    );
    assert_eq!(
        tokens("git clean -fdx -e -n"),
        ["clean", "--force", "-d", "-x", "--exclude=-n"]
    );
    assert_eq!(
        tokens("git stash -u"),
        ["stash", "push", "--include-untracked"]
    );
    assert_eq!(
        tokens("git push --no-verify -f"),
        ["push", "--no-verify", "--force"]
    );
    assert_eq!(tokens("git push -f --no-force"), ["push", "--no-force"]);
    assert_eq!(
        tokens("/usr/lib/git-core/git-clean -f"),
        ["clean", "--force"]
    );
}

#[test]
fn an_option_the_table_lacks_is_kept_not_refused() {
    // A newer git may have it: the rule still sees everything else.
    assert_eq!(
        tokens("git clean --brand-new -fd"),
        ["clean", "--force", "-d", "--brand-new"]
    );
    assert_eq!(tokens("git clean -Zf"), ["clean", "--force", "-Z"]);
}

#[test]
fn what_git_does_unasked_is_explicit() {
    assert_eq!(tokens("git restore f"), ["restore", "--worktree", "f"]);
    assert_eq!(tokens("git restore -S f"), ["restore", "--staged", "f"]);
    assert_eq!(
        tokens("git checkout HEAD f"),
        ["checkout", "HEAD", "--", "f"]
    );
    assert_eq!(tokens("git checkout main"), ["checkout", "main"]);
}

#[test]
fn what_git_refuses_is_refused() {
    for argv in [
        "git push --fo origin",
        "git clean -h",
        "git -c",
        "git --bogus clean",
    ] {
        let argv: Vec<String> = argv.split(' ').map(String::from).collect();
        assert!(parse(&argv, &[]).refused, "{argv:?}");
    }
}

#[test]
fn aliases_expand_only_where_git_expands_them() {
    let argv = |s: &[&str]| s.iter().map(|a| a.to_string()).collect::<Vec<_>>();
    // An alias never replaces a builtin.
    let builtin = parse(
        &argv(&["git", "-c", "alias.reset=status", "reset", "--hard"]),
        &[],
    );
    assert_eq!(builtin.tokens(), ["reset", "--hard"]);
    let shell = parse(&argv(&["git", "-c", "alias.x=!rm -rf ~", "x"]), &[]);
    assert!(shell.shell_alias);
    let env = parse(
        &argv(&["git", "x"]),
        &["GIT_CONFIG_PARAMETERS='alias.x=reset --hard'".to_string()],
    );
    assert_eq!(env.tokens(), ["reset", "--hard"]);
    assert!(may_be_alias(&argv(&["git", "x"])));
    assert!(!may_be_alias(&argv(&["git", "clean", "-f"])));
}

#[test]
fn rule_patterns_take_the_same_names() {
    assert_eq!(canonical_pattern("clean", "-n"), "--dry-run");
    assert_eq!(
        canonical_pattern("push", "{-f,--force,+*}"),
        "{--force,--force,+*}"
    );
    assert_eq!(
        canonical_pattern("reflog", "--expire*=now"),
        "--expire*=now"
    );
    assert_eq!(canonical_pattern("stash", "-q"), "--quiet");
    assert_eq!(canonical_pattern("frobnicate", "-f"), "-f");
}
