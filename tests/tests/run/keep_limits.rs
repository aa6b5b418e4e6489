//! Zones that keep, continued: git's destruction of local work restored, the brake on mass
//! deletion (and the everyday cleanups it lets through), `policy check`, a full store.

use std::collections::BTreeMap;
use std::path::Path;

use agent_guard_e2e::KEEP_POLICY;

use super::keep::{keep_sandbox, kept_entries, restore_all, tree};
use super::*;

/// A repository in `proj/` with the human's uncommitted work: a modified tracked file, an
/// untracked file, an ignored file, and a stash.
fn repo_with_uncommitted_work(s: &Sandbox) {
    let out = s.human(
        r#"set -e; cd proj
        export GIT_AUTHOR_NAME=h GIT_AUTHOR_EMAIL=h@x GIT_COMMITTER_NAME=h GIT_COMMITTER_EMAIL=h@x
        git init -q -b main && echo '*.log' > .gitignore && git add -A && git commit -qm init
        echo stashed >> src/main.rs && git stash -q
        echo 'my unsaved edit' >> README.md
        echo 'my notes' > notes.txt
        echo 'a log' > build.log"#,
    );
    assert!(out.status.success(), "{}", text(&out));
}

/// What a repository's state is to its user: the work tree's files, `git status`, the stashes.
fn repo_state(s: &Sandbox) -> (BTreeMap<String, String>, String) {
    let mut files = tree(&s.path("proj"));
    files.retain(|path, _| !path.starts_with(".git/") && path != ".git");
    let out = s.human("cd proj && git status --porcelain && git stash list --format=%s");
    (files, text(&out))
}

/// Item 7 of the issue: with every file git destroys kept (.git internals included), each
/// local-history command's destruction is undone byte for byte, so the default policy need not
/// refuse them (README, "Git").
#[test]
fn what_git_destroys_of_local_work_is_restored() {
    for command in [
        "git reset -q --hard",
        "git clean -fdxq",
        "git checkout -q -- README.md",
        "git checkout -q .",
        "git restore README.md",
        "git switch -q --discard-changes main",
        "git stash drop -q",
        "git stash clear",
    ] {
        let s = keep_sandbox();
        repo_with_uncommitted_work(&s);
        let before = repo_state(&s);
        let out = s.agent(&format!("cd proj && {command}"));
        assert!(out.status.success(), "{command}: {}", text(&out));
        assert_ne!(repo_state(&s), before, "{command} destroyed nothing");
        let said = restore_all(&s);
        assert_eq!(repo_state(&s), before, "{command}: {said}");
        let fsck = s.human("cd proj && git fsck --no-dangling 2>&1");
        assert!(fsck.status.success(), "{command}: {}", text(&fsck));
    }
}

/// Files under `dir` (not directories), counted.
fn files_under(dir: &Path) -> usize {
    tree(dir)
        .values()
        .filter(|v| !v.starts_with("dir "))
        .count()
}

/// Item 6: an `rm -rf` of a large tree by one agent session is stopped by the default brake
/// (2000 files within 60 s) early, and what it removed before is kept.
#[test]
fn the_brake_stops_a_mass_deletion_early_and_what_went_before_is_restored() {
    let s = keep_sandbox();
    let made = s.human(
        r#"python3 -c '
import os
for d in range(60):
    os.makedirs(f"proj/home/d{d}", exist_ok=True)
    for f in range(100):
        open(f"proj/home/d{d}/f{f}", "w").write(f"{d}/{f}\n")
'"#,
    );
    assert!(made.status.success(), "{}", text(&made));
    let before = tree(&s.path("proj"));
    let out = s.agent("rm -rf proj/home 2>&1 | tail -2; echo done");
    let removed = 6000 - files_under(&s.path("proj/home"));
    eprintln!("files removed before the brake: {removed} of 6000");
    assert!(
        (1900..=2100).contains(&removed),
        "{removed}: {}",
        text(&out)
    );
    assert!(text(&out).contains(EPERM), "{}", text(&out));
    let denials = s.wait_denials(1);
    let brake = denials
        .iter()
        .find(|d| d["rule"] == "destruction_brake")
        .unwrap_or_else(|| panic!("{denials:#?}"));
    let reason = brake["reason"].as_str().unwrap();
    assert!(
        reason.contains("snapshots.brake") && reason.contains("agent-guard undo"),
        "{reason}"
    );
    // The next session starts with the brake off.
    let left = tree(&s.path("proj/home"));
    let survivor = left.iter().find(|(_, v)| !v.starts_with("dir ")).unwrap().0;
    let out = s.agent(&format!("rm proj/home/{survivor} && echo next"));
    assert!(text(&out).contains("next"), "{}", text(&out));
    let said = restore_all(&s);
    assert_eq!(tree(&s.path("proj")), before, "{said}");
}

/// Item 6: the default brake never trips on everyday cleanups. Carve-outs keep and count
/// nothing (`rm -rf node_modules`, `cargo clean`); a virtualenv made and removed (1474 files
/// with pip) and a branch switched there and back (500 files deleted each way) stay under it.
#[test]
fn the_brake_does_not_trip_on_everyday_cleanups() {
    let s = keep_sandbox();
    let made = s.human(
        r#"set -e
        python3 -c '
import os
for base in ["proj/node_modules/pkg", "proj/target/debug/deps"]:
    os.makedirs(base)
    for f in range(5000):
        open(f"{base}/f{f}", "w").close()
for f in range(500):
    os.makedirs(f"proj/repo/common", exist_ok=True)
    open(f"proj/repo/common/c{f}", "w").write(str(f))
'
        cd proj/repo
        export GIT_AUTHOR_NAME=h GIT_AUTHOR_EMAIL=h@x GIT_COMMITTER_NAME=h GIT_COMMITTER_EMAIL=h@x
        git init -q -b main
        mkdir a && for i in $(seq 500); do echo "a$i" > a/$i; done
        git add -A && git commit -qm main
        git checkout -q -b other && git rm -rq a
        mkdir b && for i in $(seq 500); do echo "b$i" > b/$i; done
        git add -A && git commit -qm other && git checkout -q main"#,
    );
    assert!(made.status.success(), "{}", text(&made));
    let steps = [
        "rm -rf proj/node_modules",
        "printf '[package]\\nname = \"x\"\\nversion = \"0.1.0\"\\n' > proj/Cargo.toml && mkdir -p proj/src && touch proj/src/lib.rs && cd proj && cargo clean -q",
        "python3 -m venv proj/venv && rm -rf proj/venv",
        "cd proj/repo && git checkout -q other && git checkout -q main",
    ];
    for step in steps {
        let out = s.agent(&format!("set -e; {step}; echo ok"));
        assert!(
            out.status.success() && text(&out).contains("ok"),
            "{step}: {}",
            text(&out)
        );
    }
    assert!(s.denials().is_empty(), "{:#?}", s.denials());
    assert!(!s.path("proj/node_modules").exists() && !s.path("proj/target").exists());
    assert_eq!(files_under(&s.path("proj/repo/a")), 500);
    let kept = kept_entries(&s);
    assert!(
        kept.iter().all(|e| {
            let path = e["path"].as_str().unwrap();
            !path.contains("/node_modules/") && !path.contains("/target/")
        }),
        "carve-outs keep nothing"
    );
    eprintln!(
        "kept entries for a venv and a branch switched there and back: {}",
        kept.len()
    );
}

/// Item 8: `policy check` says what each protected zone does with an agent's destruction, and
/// a bad `on_destroy` is named.
#[test]
fn policy_check_explains_keep_and_deny() {
    let s = Sandbox::with_policy(
        r#"{"protected_zones": ["~/proj", {"path": "~/work", "on_destroy": "deny"}],
            "snapshots": {"max_age": "3d", "brake": {"files": 500}}}"#,
    );
    let policy = s.policy.display().to_string();
    let out = s.guard(&["policy", "check", &policy]);
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(
        t.contains(&format!("protected {}: keep", s.path("proj").display())),
        "{t}"
    );
    assert!(
        t.contains(&format!("protected {}: deny", s.path("work").display())),
        "{t}"
    );
    assert!(t.contains("kept 3d") && t.contains("at 500 files"), "{t}");
    std::fs::write(
        &s.policy,
        r#"{"protected_zones": [{"path": "~/proj", "on_destroy": "snapshot"}]}"#,
    )
    .unwrap();
    let out = s.guard(&["policy", "check", &policy]);
    assert!(!out.status.success());
    assert!(text(&out).contains("on_destroy"), "{}", text(&out));
}

/// Item 5: a full store refuses further destruction with a reason that says how to free it,
/// never drops a snapshot silently; `status` shows what the store holds; `undo purge` frees it.
#[test]
fn a_full_store_refuses_and_status_shows_the_store() {
    let s = Sandbox::with_policy(&KEEP_POLICY.replace(
        r#""temporary_overrides": []"#,
        r#""temporary_overrides": [], "snapshots": {"max_size_mb": 1}"#,
    ));
    std::fs::write(s.path("proj/a.bin"), vec![1u8; 700 << 10]).unwrap();
    std::fs::write(s.path("proj/b.bin"), vec![2u8; 700 << 10]).unwrap();
    let out = s.agent("rm proj/a.bin && echo first; rm proj/b.bin 2>&1; echo second=$?");
    let t = text(&out);
    assert!(t.contains("first") && t.contains("second=1"), "{t}");
    assert!(s.path("proj/b.bin").exists());
    let denials = s.wait_denials(1);
    let reason = denials[0]["reason"].as_str().unwrap();
    assert_eq!(denials[0]["rule"], "keep_failed", "{denials:#?}");
    assert!(
        reason.contains("store is full") && reason.contains("agent-guard undo purge"),
        "{reason}"
    );
    let status = s.guard(&["status"]);
    let st = text(&status);
    assert!(st.contains("snapshots: 1 entries in 1 session(s)"), "{st}");
    let purge = s.guard(&["undo", "purge", "--all"]);
    assert!(purge.status.success(), "{}", text(&purge));
    let out = s.agent("rm proj/b.bin && echo freed");
    assert!(text(&out).contains("freed"), "{}", text(&out));
}
