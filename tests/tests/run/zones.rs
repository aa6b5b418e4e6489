//! Each zone's rule against the agent's everyday ways of breaking it: deletes, moves out and
//! over, a zone's parent renamed, relative paths and symlinks, secrets read through links,
//! a read-only file truncated, deletes from a double fork after the agent exited.

use super::*;

#[test]
fn rm_of_a_protected_file() {
    let s = Sandbox::new();
    let d = s.assert_blocked(
        "rm proj/src/main.rs",
        &["proj/src/main.rs"],
        "unlink",
        "protected_delete",
        &s.path("proj/src/main.rs"),
    );
    assert_eq!(d["process"], "rm");
}

#[test]
fn rm_rf_of_a_protected_tree() {
    let s = Sandbox::new();
    let survivors = ["proj/src/main.rs", "proj/README.md", "proj/src/sub/lib.rs"];
    let a = s.attempt("rm -rf proj", &survivors, Some(EPERM), 1);
    assert!(
        a.new
            .iter()
            .all(|r| r["rule"] == "protected_delete" && r["process"] == "rm"),
        "{:#?}",
        a.new
    );
}

#[test]
fn find_delete() {
    let s = Sandbox::new();
    let survivors = ["proj/src/main.rs", "proj/src/sub/lib.rs"];
    let a = s.attempt("find proj -name '*.rs' -delete", &survivors, Some(EPERM), 1);
    assert!(
        a.new
            .iter()
            .all(|r| r["rule"] == "protected_delete" && r["process"] == "find"),
        "{:#?}",
        a.new
    );
}

#[test]
fn mv_out_of_the_zone() {
    let s = Sandbox::new();
    s.assert_blocked(
        "mv proj/README.md \"$OUTSIDE/\"",
        &["proj/README.md"],
        "rename",
        "protected_move_out",
        &s.path("proj/README.md"),
    );
    assert!(!s.outside.join("README.md").exists());
}

#[test]
fn mv_from_outside_over_an_existing_file() {
    let s = Sandbox::new();
    s.assert_blocked(
        "echo evil > \"$OUTSIDE/x\" && mv \"$OUTSIDE/x\" proj/README.md",
        &["proj/README.md"],
        "rename",
        "protected_clobber",
        &s.path("proj/README.md"),
    );
    assert_eq!(
        std::fs::read_to_string(s.path("proj/README.md")).unwrap(),
        "readme\n"
    );
}

#[test]
fn mv_of_the_zones_parent_directory() {
    let s = Sandbox::new();
    s.assert_blocked(
        "mv work/deep work/moved",
        &["work/deep/zone/keep.txt"],
        "rename",
        "zone_root_rename",
        &s.path("work/deep"),
    );
}

#[test]
fn double_fork_after_the_agent_shell_exited() {
    let s = Sandbox::new();
    // Both escape routes: setsid in a subshell and nohup in the background; the shell exits
    // at once, so `run` returns before they act (the files are checked once they have).
    let a = s.attempt(
        "(setsid bash -c 'sleep 1; rm proj/README.md' >/dev/null 2>&1 &); \
         nohup bash -c 'sleep 1; rm proj/src/main.rs' >/dev/null 2>&1 & exit 0",
        &[],
        None,
        2,
    );
    assert!(a.out.status.success(), "{}", a.text);
    let paths: Vec<&str> = a.new.iter().filter_map(|r| r["path"].as_str()).collect();
    assert!(
        paths.contains(&s.path("proj/README.md").to_str().unwrap()),
        "{:#?}",
        a.new
    );
    assert!(
        paths.contains(&s.path("proj/src/main.rs").to_str().unwrap()),
        "{:#?}",
        a.new
    );
    assert!(s.path("proj/README.md").exists() && s.path("proj/src/main.rs").exists());
}

#[test]
fn relative_path_after_cd() {
    let s = Sandbox::new();
    s.assert_blocked(
        "cd proj/src/sub && rm ../main.rs",
        &["proj/src/main.rs"],
        "unlink",
        "protected_delete",
        &s.path("proj/src/main.rs"),
    );
}

#[test]
fn path_through_a_symlink() {
    let s = Sandbox::new();
    let link = s.outside.join("link");
    std::os::unix::fs::symlink(s.path("proj/src"), &link).unwrap();
    s.assert_blocked(
        "rm \"$OUTSIDE/link/main.rs\"",
        &["proj/src/main.rs"],
        "unlink",
        "protected_delete",
        &s.path("proj/src/main.rs"),
    );
    // Removing the link itself removes only the link: allowed.
    let out = s.agent("rm \"$OUTSIDE/link\"");
    assert!(
        out.status.success() && !link.exists() && s.path("proj/src/main.rs").exists(),
        "{}",
        text(&out)
    );
}

#[test]
fn cat_of_a_secret() {
    let s = Sandbox::new();
    let a = s.attempt("cat .ssh/id_ed25519", &[], Some(EPERM), 1);
    assert!(
        !String::from_utf8_lossy(&a.out.stdout).contains("PRIVATE KEY"),
        "{}",
        a.text
    );
    assert!(
        a.new
            .iter()
            .any(|r| r["rule"] == "secret_zone" && r["op"] == "open" && r["process"] == "cat"),
        "{:#?}",
        a.new
    );
}

#[test]
fn secret_through_a_symlink_and_a_hard_link() {
    let s = Sandbox::new();
    std::os::unix::fs::symlink(s.path(".ssh/id_ed25519"), s.outside.join("key-link")).unwrap();
    let out = s.agent("cat \"$OUTSIDE/key-link\"");
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("PRIVATE KEY"),
        "symlink leaked the secret: {}",
        text(&out)
    );
    // A hard link made by the human before the agent started (same file system).
    std::fs::hard_link(s.path(".ssh/id_ed25519"), s.outside.join("key-hard")).unwrap();
    let out = s.agent("cat \"$OUTSIDE/key-hard\"");
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("PRIVATE KEY"),
        "hard link leaked the secret: {}",
        text(&out)
    );
}

#[test]
fn truncate_of_a_readonly_file() {
    let s = Sandbox::new();
    let a = s.attempt(": > ro/config", &[], Some(EPERM), 1);
    assert_eq!(
        std::fs::read_to_string(s.path("ro/config")).unwrap(),
        "setting=1\n",
        "{}",
        a.text
    );
    assert!(
        a.new
            .iter()
            .any(|r| r["rule"] == "readonly_zone"
                && r["path"] == s.path("ro/config").to_str().unwrap()),
        "{:#?}",
        a.new
    );
}
