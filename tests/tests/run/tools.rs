//! Other tools and interpreters: python, node, perl, a copy of rm named git, git's own
//! destructive subcommands and the everyday git an agent needs.

use super::*;

#[test]
fn python_os_remove() {
    if !on_path("python3") {
        panic!("python3 is required for this test (scripts/test installs it)");
    }
    let s = Sandbox::new();
    let d = s.assert_blocked(
        "python3 -c 'import os; os.remove(\"proj/README.md\")'",
        &["proj/README.md"],
        "unlink",
        "protected_delete",
        &s.path("proj/README.md"),
    );
    assert!(d["process"].as_str().unwrap().starts_with("python3"), "{d}");
}

#[test]
fn node_rm_sync() {
    assert!(
        on_path("node"),
        "node is required for this test (scripts/test installs nodejs)"
    );
    let s = Sandbox::new();
    // Node's rimraf retries an EPERM unlink as a directory and reports ENOTDIR: the EPERM is in
    // the denial record, and the file survives.
    let d = s.assert_blocked_with(
        "node -e 'require(\"fs\").rmSync(\"proj/README.md\")'",
        &["proj/README.md"],
        "unlink",
        "protected_delete",
        &s.path("proj/README.md"),
        "Error:",
    );
    assert!(d["process"].as_str().unwrap().starts_with("node"), "{d}");
}

#[test]
fn perl_unlink() {
    let s = Sandbox::new();
    // perl's unlink reports failure through its return value, not a message.
    let a = s.attempt(
        "perl -e 'unlink(\"proj/README.md\") or die \"unlink: $!\\n\"'",
        &["proj/README.md"],
        Some(EPERM),
        1,
    );
    assert!(
        a.new
            .iter()
            .any(|r| r["process"] == "perl" && r["rule"] == "protected_delete"),
        "{:#?}",
        a.new
    );
}

#[test]
fn a_copy_of_rm_named_git_is_not_git() {
    let s = Sandbox::new();
    let d = s.assert_blocked(
        "cp \"$(command -v rm)\" ./git && ./git proj/README.md",
        &["proj/README.md"],
        "unlink",
        "protected_delete",
        &s.path("proj/README.md"),
    );
    assert_eq!(
        d["process"], "git",
        "the record names the binary as it is called: {d}"
    );
}

#[test]
fn git_clean_is_an_exec_rule() {
    assert!(on_path("git"), "git is required for this test");
    let s = Sandbox::new();
    let setup = s.human("cd proj && git init -q && git add src && git -c user.name=t -c user.email=t@t commit -qm init");
    assert!(setup.status.success(), "{}", text(&setup));
    // README.md is untracked: git clean would delete it.
    let a = s.attempt("cd proj && git clean -fdx", &["proj/README.md"], None, 1);
    assert!(!a.out.status.success(), "{}", a.text);
    assert!(
        a.new
            .iter()
            .any(|r| r["rule"] == "exec_rule" && r["op"] == "exec"),
        "{:#?}",
        a.new
    );
}

#[test]
fn git_stash_and_worktree_work_for_the_agent_and_git_reset_hard_does_not() {
    // git stash and git worktree add exec `git reset --hard` (stash also `git clean` and `git
    // checkout`) for themselves, after saving the tree or into a new one: the default exec rules
    // spare them (`unless_run_by`), and only them.
    assert!(on_path("git"), "git is required for this test");
    let s = Sandbox::new();
    let setup = s.human(
        "cd proj && git init -q && git add -A && \
         git -c user.name=t -c user.email=t@t commit -qm init",
    );
    assert!(setup.status.success(), "{}", text(&setup));
    let out = s.agent(
        "cd proj && echo edit >> README.md && echo new > untracked.txt && \
         git stash -q -u && test ! -e untracked.txt && git diff --quiet && echo stashed && \
         git stash pop -q && echo popped && \
         git worktree add -q ../wt HEAD && test -f ../wt/README.md && echo worktree",
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        stdout.lines().collect::<Vec<_>>(),
        ["stashed", "popped", "worktree"]
    );
    assert_eq!(
        std::fs::read_to_string(s.path("proj/README.md")).unwrap(),
        "readme\nedit\n"
    );
    assert_eq!(
        std::fs::read_to_string(s.path("proj/untracked.txt")).unwrap(),
        "new\n"
    );

    let a = s.attempt("cd proj && git reset --hard", &[], None, 1);
    assert!(!a.out.status.success(), "{}", a.text);
    assert_eq!(
        std::fs::read_to_string(s.path("proj/README.md")).unwrap(),
        "readme\nedit\n",
        "{}",
        a.text
    );
    assert!(
        a.new
            .iter()
            .any(|r| r["rule"] == "exec_rule" && r["process"] == "bash"),
        "{:#?}",
        a.new
    );
}

#[test]
fn everyday_git_works_for_the_agent_in_a_protected_zone() {
    assert!(on_path("git"), "git is required for this test");
    let s = Sandbox::new();
    let out = s.agent(
        "cd proj && git init -q && git add -A && git -c user.name=a -c user.email=a@a commit -qm one \
         && git checkout -q -b topic && echo more >> README.md && git -c user.name=a -c user.email=a@a commit -qam two \
         && git checkout -q - && git merge -q topic && git gc -q && git status --short && echo git-ok",
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("git-ok"),
        "{}",
        text(&out)
    );
    assert!(
        s.wait_denials(0).is_empty(),
        "git caused denials: {:#?}",
        s.denials()
    );
}
