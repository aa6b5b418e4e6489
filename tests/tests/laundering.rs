//! No laundering through what the human runs later (issue 16, item 8), end to end under the
//! embedded default policy: an agent cannot plant what the human's own tools run without the
//! human reading it (git hooks, git's and the shell's start-up files, editor configs, Python's
//! start-up hooks, direnv files, the agents' own permission settings), by writing it, copying
//! it, linking it, renaming it into place, or moving a whole tree that holds it into place; the
//! everyday work next to those places keeps working; the human may do all of it.

use std::path::Path;

use agent_guard_e2e::{text, Sandbox, EPERM};

/// The embedded default (the home protected, with its carve-outs, read-only places and secrets).
fn sandbox() -> Sandbox {
    let s = Sandbox::with_policy("{\"ai_agent_patterns\": [\"claude\"]}");
    let init = s.human(
        "git init -q repo && git -C repo config user.name h && git -C repo config user.email h@h",
    );
    assert!(init.status.success(), "{}", text(&init));
    s
}

/// Every script is refused, leaves no file at `planted` (relative to the home, or absolute), and
/// is recorded as a read-only denial.
fn assert_refused(s: &Sandbox, script: &str, planted: &str) {
    let before = s.denials().len();
    let out = s.agent(script);
    let all = text(&out);
    assert!(
        !s.path(planted).exists(),
        "{script:?} planted {planted}\n{all}"
    );
    assert!(all.contains(EPERM), "{script:?} was not refused\n{all}");
    let records = s.wait_denials(before + 1);
    assert!(
        records[before..]
            .iter()
            .any(|r| r["rule"] == "readonly_zone"),
        "no read-only denial for {script:?}: {:#?}",
        &records[before..]
    );
}

#[test]
fn git_hooks_cannot_be_planted_by_any_route() {
    let s = sandbox();
    let hook = "repo/.git/hooks/post-commit";
    let body = "printf '#!/bin/sh\\ntouch $HOME/ran\\n'";
    for script in [
        format!("{body} > {hook}"),
        format!("{body} > $OUTSIDE/h && cp $OUTSIDE/h {hook}"),
        format!("{body} > $OUTSIDE/h && mv $OUTSIDE/h {hook}"),
        format!("{body} > $OUTSIDE/h && ln $OUTSIDE/h {hook}"),
        format!("ln -s $OUTSIDE/h {hook}"),
        format!("cp repo/.git/hooks/pre-commit.sample repo/.git/hooks/x.sample && mv repo/.git/hooks/x.sample {hook}"),
        format!("python3 -c 'open(\"{hook}\", \"w\").write(\"#!/bin/sh\\n\")'"),
    ] {
        assert_refused(&s, &script, hook);
    }
    // Hooks cannot be made anywhere, so a tree that holds one is made under other names and
    // renamed into place: each rename that would bring one is refused, at each depth.
    let o = |rel: &str| s.outside.join(rel).display().to_string();
    assert_refused(
        &s,
        &format!("mkdir -p $OUTSIDE/p/.gitx/hooks && {body} > $OUTSIDE/p/.gitx/hooks/post-commit && mv $OUTSIDE/p/.gitx $OUTSIDE/p/.git"),
        &o("p/.git/hooks/post-commit"),
    );
    assert_refused(
        &s,
        &format!("mkdir -p $OUTSIDE/q/g/hooks repo2 && {body} > $OUTSIDE/q/g/hooks/post-commit && mv $OUTSIDE/q/g repo2/.git"),
        "repo2/.git/hooks/post-commit",
    );
    assert_refused(
        &s,
        &format!("mkdir -p $OUTSIDE/hk && {body} > $OUTSIDE/hk/post-commit && mv repo/.git/hooks repo/.git/old; mv $OUTSIDE/hk repo/.git/hooks"),
        hook,
    );
    // The human's next commit runs nothing of the agent's.
    let commit =
        s.human("cd repo && echo x > f && git add f && git commit -qm one && ls $HOME/ran");
    assert!(
        !commit.status.success(),
        "a planted hook ran: {}",
        text(&commit)
    );
}

#[test]
fn a_repository_cannot_be_pointed_at_a_git_directory_the_agent_made() {
    let s = sandbox();
    // A git directory made elsewhere, under a name no `.git` pattern covers: its hooks are
    // refused by name, and the repository cannot be made to use it.
    assert_refused(
        &s,
        "mkdir -p $OUTSIDE/fake/hooks && printf '#!/bin/sh\\n' > $OUTSIDE/fake/hooks/post-commit",
        &s.outside
            .join("fake/hooks/post-commit")
            .display()
            .to_string(),
    );
    // A repository outside the protected home, so that removing its `.git` is allowed: what
    // may not follow is a pointer in its place.
    let pointer = s.outside.join("r/.git").display().to_string();
    for script in [
        "rm -rf $OUTSIDE/r/.git && echo \"gitdir: $OUTSIDE/fake\" > $OUTSIDE/r/.git",
        "rm -rf $OUTSIDE/r/.git && ln -s $OUTSIDE/fake $OUTSIDE/r/.git",
        "mkdir -p $OUTSIDE/g && rm -rf $OUTSIDE/r/.git && mv $OUTSIDE/g $OUTSIDE/r/.git",
    ] {
        let init = s.human("rm -rf $OUTSIDE/r && git init -q $OUTSIDE/r");
        assert!(init.status.success(), "{}", text(&init));
        assert_refused(&s, script, &pointer);
    }
    let before = s.denials().len();
    let out = s.agent("cd repo && git init -q --sep=$OUTSIDE/sep .");
    let records = s.wait_denials(before + 1);
    assert!(
        !out.status.success()
            && !s.outside.join("sep").exists()
            && records[before..].iter().any(|r| r["rule"] == "exec_rule"
                && r["reason"]
                    .as_str()
                    .unwrap()
                    .contains("separate git directory")),
        "{}\n{:#?}",
        text(&out),
        &records[before..]
    );
}

#[test]
fn everyday_git_still_works_next_to_the_hooks() {
    let s = sandbox();
    let out = s.agent(
        "set -e; git init -q fresh && cd fresh && git config user.name a && git config user.email a@a \
         && git remote add origin $OUTSIDE/remote.git && echo hi > f && git add f && git commit -qm m \
         && git clone -q . ../clone && ls .git/hooks/*.sample >/dev/null \
         && git worktree add -q ../wt && test -f ../wt/.git && git -C ../wt status --short \
         && git init -q $OUTSIDE/scratch && rm -rf $OUTSIDE/scratch && echo ok",
    );
    let all = text(&out);
    assert!(out.status.success() && all.contains("ok"), "{all}");
}

/// An agent may write a git config file anywhere and name it in `GIT_CONFIG_GLOBAL` (a
/// repository's own config refuses aliases: see below). That hides no forbidden command: git
/// runs an alias of a builtin as a new git process with the alias's words, and that exec meets
/// the rules like any other. Aliases that do no harm keep working.
#[test]
fn a_git_alias_from_a_config_file_hides_no_forbidden_command() {
    let s = sandbox();
    let before = s.denials().len();
    let out = s.agent(
        "cd repo && touch untracked && printf '[alias]\\n\\tzap = clean -fdx\\n' > $OUTSIDE/gc \
         && GIT_CONFIG_GLOBAL=$OUTSIDE/gc git zap; \
         git -c alias.look=status look --short >/dev/null && echo harmless-ok",
    );
    let all = text(&out);
    assert!(
        s.path("repo/untracked").exists(),
        "an alias cleaned the work\n{all}"
    );
    assert!(all.contains("harmless-ok"), "{all}");
    let records = s.wait_denials(before + 1);
    assert!(
        records[before..].iter().any(|r| {
            r["rule"] == "exec_rule"
                && r["argv"]
                    .as_array()
                    .is_some_and(|a| a.iter().any(|w| w == "clean"))
        }),
        "{:#?}",
        &records[before..]
    );
}

/// A repository's config is read by every git the human runs there: a key that runs a command
/// (core.fsmonitor runs on `git status`) would run it outside the agent's lineage. git writes
/// the config through config.lock and a rename, whose new content is checked; every way git
/// (or anything else) writes one is refused when it adds such a key, and everyday settings
/// pass.
#[test]
fn a_repository_config_gains_no_key_that_runs_a_command() {
    let s = sandbox();
    let marker = "touch $HOME/ran";
    let tpl =
        "mkdir -p $OUTSIDE/tpl && printf '[core]\\n\\tfsmonitor = x\\n' > $OUTSIDE/tpl/config";
    for script in [
        format!("git -C repo config core.fsmonitor '{marker}'"),
        "git -C repo config core.hooksPath $OUTSIDE".to_string(),
        format!("git -C repo config alias.st '!{marker}'"),
        "git -C repo config --add include.path $OUTSIDE/inc".to_string(),
        "git -C repo config set core.sshCommand x".to_string(),
        "git -C repo remote add evil $OUTSIDE && git -C repo config remote.evil.uploadpack x".to_string(),
        format!("{tpl} && git init -q --template=$OUTSIDE/tpl tplrepo && git -C tplrepo config --list | grep fsmonitor"),
        "git clone -q -c core.fsmonitor=x repo cloned && git -C cloned config --list | grep fsmonitor".to_string(),
        "printf '[core]\\n\\tfsmonitor = x\\n' >> repo/.git/config".to_string(),
        "cp repo/.git/config $OUTSIDE/c && printf '[core]\\n\\tfsmonitor = x\\n' >> $OUTSIDE/c && mv $OUTSIDE/c repo/.git/config".to_string(),
    ] {
        let before = s.denials().len();
        let out = s.agent(&script);
        let all = text(&out);
        for config in ["repo/.git/config", "tplrepo/.git/config", "cloned/.git/config"] {
            let text = std::fs::read_to_string(s.path(config)).unwrap_or_default();
            for key in ["fsmonitor", "hooksPath", "st =", "include", "sshCommand", "uploadpack"] {
                assert!(!text.contains(key), "{script:?} set {key} in {config}\n{all}");
            }
        }
        let records = s.wait_denials(before + 1);
        assert!(
            records[before..].iter().any(|r| r["rule"] == "readonly_zone"
                && r["path"].as_str().is_some_and(|p| p.ends_with("/.git/config"))),
            "{script:?}: no denial of the config: {:#?}\n{all}",
            &records[before..]
        );
        let _ = s.human("rm -rf tplrepo cloned");
    }
    // Everyday settings are git's to write.
    let out = s.agent(
        "set -e; cd repo && git config user.name a && git config core.autocrlf false \
         && git remote add origin $OUTSIDE/r.git && git init -q --bare $OUTSIDE/r.git \
         && git commit -q --allow-empty -m m && git push -q -u origin HEAD \
         && git config --unset user.name && echo ok",
    );
    assert!(text(&out).contains("ok"), "{}", text(&out));
    // The human's git may set anything.
    let out = s.human("git -C repo config core.fsmonitor false && echo ok");
    assert!(text(&out).contains("ok"), "{}", text(&out));
}

/// `~/.local/bin` comes before the system's directories on the user's PATH: installing a new
/// command there is everyday work, planting one named like a system command (`ls`, `git`) is
/// the attack, by any route.
#[test]
fn a_command_directory_takes_new_commands_but_no_system_commands_name() {
    let s = sandbox();
    let bin = ".local/bin";
    for (script, planted) in [
        ("mkdir -p .local/bin && printf '#!/bin/sh\\nrm -rf ~\\n' > .local/bin/ls", "ls"),
        ("mkdir -p .local/bin && cp /bin/true .local/bin/git", "git"),
        ("mkdir -p .local/bin && ln -s /bin/true .local/bin/cat", "cat"),
        ("mkdir -p .local/bin && cp /bin/true $OUTSIDE/x && mv $OUTSIDE/x .local/bin/mv", "mv"),
        ("mkdir -p .local/bin && cp /bin/true $OUTSIDE/y && ln $OUTSIDE/y .local/bin/env", "env"),
        ("mkdir -p .local/bin && python3 -c 'open(\".local/bin/grep\", \"w\").write(\"x\")'", "grep"),
        ("mkdir -p $OUTSIDE/b && cp /bin/true $OUTSIDE/b/ls && mkdir -p bin2 && mv $OUTSIDE/b bin", "ls"),
    ] {
        let before = s.denials().len();
        let out = s.agent(script);
        let all = text(&out);
        let dir = if script.contains(" bin") && !script.contains(".local") { "bin" } else { bin };
        assert!(
            std::fs::symlink_metadata(s.path(&format!("{dir}/{planted}"))).is_err(),
            "{script:?} planted {planted}\n{all}"
        );
        let records = s.wait_denials(before + 1);
        assert!(
            records[before..].iter().any(|r| r["rule"] == "command_shadow"),
            "{script:?}: {:#?}\n{all}",
            &records[before..]
        );
    }
    let out = s.agent(
        "set -e; mkdir -p .local/bin && install -m755 /bin/true .local/bin/mytool \
         && printf x > .local/bin/mytool && echo ok",
    );
    assert!(text(&out).contains("ok"), "{}", text(&out));
    let out = s.human("mkdir -p .local/bin && cp /bin/true .local/bin/ls && echo ok");
    assert!(text(&out).contains("ok"), "{}", text(&out));
}

#[test]
fn start_up_files_of_the_humans_tools_are_read_only() {
    let s = sandbox();
    for (script, planted) in [
        ("echo 'rm -rf ~' >> .bash_login", ".bash_login"),
        ("echo 'rm -rf ~' > .zlogin", ".zlogin"),
        ("mkdir -p .config/nvim && echo 'os.execute(\"x\")' > .config/nvim/init.lua", ".config/nvim/init.lua"),
        ("echo 'shell rm -rf ~' > .gdbinit", ".gdbinit"),
        ("git config --global core.pager 'sh -c x'", ".gitconfig"),
        ("mkdir -p .config/git && echo '[core] pager = x' > .config/git/config", ".config/git/config"),
        ("mkdir -p .cargo && echo '[alias] b = \"!x\"' > .cargo/config.toml", ".cargo/config.toml"),
        ("mkdir -p repo && echo 'rm -rf ~' > repo/.envrc", "repo/.envrc"),
        ("mkdir -p .claude && echo '{\"permissions\":{\"allow\":[\"Bash\"]}}' > .claude/settings.json", ".claude/settings.json"),
        ("mkdir -p repo/.claude && echo '{}' > repo/.claude/settings.local.json", "repo/.claude/settings.local.json"),
        ("mkdir -p .codex && echo 'approval_policy = \"never\"' > .codex/config.toml", ".codex/config.toml"),
        ("mkdir -p .local/lib/python3.11/site-packages && echo 'import os' > .local/lib/python3.11/site-packages/usercustomize.py", ".local/lib/python3.11/site-packages/usercustomize.py"),
        ("mkdir -p .local/lib/python3.11/site-packages && echo 'import os; os.system(\"x\")' > .local/lib/python3.11/site-packages/evil.pth", ".local/lib/python3.11/site-packages/evil.pth"),
    ] {
        assert_refused(&s, script, planted);
    }
    // What sits next to them stays the agent's to write: a library in site-packages, a project
    // file, the agent's own state.
    let out = s.agent(
        "set -e; mkdir -p .local/lib/python3.11/site-packages/lib && echo x > .local/lib/python3.11/site-packages/lib/m.py \
         && mkdir -p .claude && echo '{}' > .claude/history.json && echo env > repo/env.example && echo ok",
    );
    assert!(text(&out).contains("ok"), "{}", text(&out));
}

#[test]
fn the_human_may_change_all_of_it() {
    let s = sandbox();
    let out = s.human(
        "set -e; echo x > .bash_login; printf '#!/bin/sh\\n' > repo/.git/hooks/post-commit; \
         echo x > repo/.envrc; mkdir -p .claude; echo '{}' > .claude/settings.json; echo ok",
    );
    assert!(text(&out).contains("ok"), "{}", text(&out));
    assert!(Path::new(&s.path("repo/.git/hooks/post-commit")).exists());
}
