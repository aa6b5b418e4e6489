//! Secret zones under `agent-guard run`, both ways they are enforced: hidden behind the
//! supervisor's FUSE mount in the agent's own mount namespace (reads left to the kernel), and
//! with every open supervised (the fall-back). Each test says which way it expects, and checks
//! that it got it, so that a silent fall-back cannot make a hidden-mode test pass.

use std::process::{Output, Stdio};
use std::time::Duration;

use agent_guard_e2e::{text, Sandbox};

const EPERM: &str = "Operation not permitted";
const KEY: &str = "PRIVATE KEY";
const HIDDEN: &str = "fuse.agent-guard";
const SUPERVISE_READS: (&str, &str) = ("AGENT_GUARD_SUPERVISE_READS", "1");

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn run(s: &Sandbox, env: &[(&str, &str)], script: &str) -> Output {
    s.agent_command(&s.home, env, script).output().unwrap()
}

/// The agent's script prints its mount table first: whether the zone was hidden.
fn hidden(o: &Output) -> bool {
    stdout(o).contains(HIDDEN)
}

fn secret_denials(s: &Sandbox, before: usize, process: &str) -> usize {
    s.wait_denials(before + 1)[before..]
        .iter()
        .filter(|r| r["rule"] == "secret_zone" && r["op"] == "open" && r["process"] == process)
        .count()
}

#[test]
fn hidden_zone_denies_opens_and_records_them() {
    let s = Sandbox::new();
    let out = run(
        &s,
        &[],
        "grep -o fuse.agent-guard /proc/self/mountinfo; cat .ssh/id_ed25519; ls .ssh; \
         stat -c 'size=%s' .ssh/id_ed25519; head -c1 < .ssh/id_ed25519",
    );
    assert!(hidden(&out), "the zone was not hidden: {}", text(&out));
    assert!(!stdout(&out).contains(KEY), "{}", text(&out));
    // Opening the file or listing the directory is refused as a supervised open would be;
    // metadata stays visible, as it is under supervision (stat is not an open).
    assert!(text(&out).matches(EPERM).count() >= 3, "{}", text(&out));
    assert!(stdout(&out).contains("size=12"), "{}", text(&out));
    assert!(secret_denials(&s, 0, "cat") >= 1, "{:#?}", s.denials());
}

#[test]
fn with_reads_supervised_the_zone_is_denied_too() {
    let s = Sandbox::new();
    let out = run(
        &s,
        &[SUPERVISE_READS],
        "grep -o fuse.agent-guard /proc/self/mountinfo; cat .ssh/id_ed25519",
    );
    assert!(!hidden(&out), "reads were to be supervised: {}", text(&out));
    assert!(!stdout(&out).contains(KEY), "{}", text(&out));
    assert!(text(&out).contains(EPERM), "{}", text(&out));
    assert!(secret_denials(&s, 0, "cat") >= 1, "{:#?}", s.denials());
}

#[test]
fn the_humans_processes_do_not_lead_around_the_mount() {
    let s = Sandbox::new();
    // A process of the human's whose root and cwd show the file system without our mount.
    let mut human = std::process::Command::new("sleep")
        .arg("30")
        .current_dir(&s.home)
        .spawn()
        .unwrap();
    let pid = human.id();
    let out = run(
        &s,
        &[],
        &format!(
            "grep -o fuse.agent-guard /proc/self/mountinfo; \
             cat /proc/{pid}/root$HOME/.ssh/id_ed25519; cat /proc/{pid}/cwd/.ssh/id_ed25519; \
             cat /proc/$PPID/root$HOME/.ssh/id_ed25519; \
             readlink /proc/{pid}/cwd && echo cwd-read"
        ),
    );
    let _ = human.kill();
    let _ = human.wait();
    assert!(hidden(&out), "{}", text(&out));
    assert!(!stdout(&out).contains(KEY), "leaked: {}", text(&out));
    assert!(!stdout(&out).contains("cwd-read"), "{}", text(&out));
    assert!(
        text(&out).matches("Permission denied").count() >= 3,
        "{}",
        text(&out)
    );
}

#[test]
fn the_agent_cannot_unmount_or_make_its_own_namespace() {
    let s = Sandbox::new();
    let out = run(
        &s,
        &[],
        "grep -o fuse.agent-guard /proc/self/mountinfo; umount .ssh; umount -l .ssh; \
         unshare -rm cat .ssh/id_ed25519; unshare -m sh -c 'umount -l .ssh; cat .ssh/id_ed25519'; \
         mkdir -p m; mount --bind / m && cat m$HOME/.ssh/id_ed25519; cat .ssh/id_ed25519",
    );
    assert!(hidden(&out), "{}", text(&out));
    assert!(!stdout(&out).contains(KEY), "leaked: {}", text(&out));
}

#[test]
fn a_cwd_inside_the_zone_is_the_covered_one() {
    let s = Sandbox::new();
    let out = s
        .agent_command(
            &s.path(".ssh"),
            &[],
            "grep -o fuse.agent-guard /proc/self/mountinfo; cat id_ed25519; cat ./id_ed25519",
        )
        .output()
        .unwrap();
    assert!(hidden(&out), "{}", text(&out));
    assert!(!stdout(&out).contains(KEY), "leaked: {}", text(&out));
    assert!(text(&out).matches(EPERM).count() >= 2, "{}", text(&out));
}

/// The human adds `rel` while the agent waits for it and then reads it.
fn read_what_the_human_adds_later(s: &Sandbox, rel: &str) -> Output {
    let child = s
        .agent_command(
            &s.home,
            &[],
            &format!(
                "grep -o fuse.agent-guard /proc/self/mountinfo; echo ready; \
                 for i in $(seq 200); do [ -e {rel} ] && break; sleep 0.05; done; cat {rel}"
            ),
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let path = s.path(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, "PRIVATE KEY added later\n").unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn a_secret_the_human_adds_while_the_agent_runs_is_covered() {
    let s = Sandbox::new();
    let out = read_what_the_human_adds_later(&s, ".ssh/id_new");
    assert!(hidden(&out), "{}", text(&out));
    assert!(!stdout(&out).contains(KEY), "leaked: {}", text(&out));
    assert!(text(&out).contains(EPERM), "{}", text(&out));
}

#[test]
fn a_secret_zone_made_while_the_agent_runs_is_covered_when_it_appears() {
    // `~/.aws` and `~/.config/gh` do not exist when the agent starts; the human makes them (and
    // the missing parent `~/.config`) while it runs, as `aws configure` or `gh auth login` in
    // another terminal would.
    let policy =
        agent_guard_e2e::POLICY.replace(r#"["~/.ssh"]"#, r#"["~/.ssh", "~/.aws", "~/.config/gh"]"#);
    assert_ne!(policy, agent_guard_e2e::POLICY);
    for rel in [".aws/credentials", ".config/gh/hosts.yml"] {
        let s = Sandbox::with_policy(&policy);
        let before = s.denials().len();
        let out = read_what_the_human_adds_later(&s, rel);
        assert!(hidden(&out), "{rel}: {}", text(&out));
        assert!(!stdout(&out).contains(KEY), "{rel} leaked: {}", text(&out));
        assert!(text(&out).contains(EPERM), "{rel}: {}", text(&out));
        assert!(secret_denials(&s, before, "cat") >= 1, "{:#?}", s.denials());
    }
}

#[test]
fn a_secret_root_that_is_a_dangling_symlink_keeps_reads_supervised() {
    // What the link will point to is not watched: no mount could be placed in time.
    let policy = agent_guard_e2e::POLICY.replace(r#"["~/.ssh"]"#, r#"["~/.ssh", "~/.aws"]"#);
    let s = Sandbox::with_policy(&policy);
    let target = s.outside.join("aws-later");
    std::os::unix::fs::symlink(&target, s.path(".aws")).unwrap();
    let child = s
        .agent_command(
            &s.home,
            &[],
            "grep -o fuse.agent-guard /proc/self/mountinfo; \
             for i in $(seq 200); do [ -e .aws/credentials ] && break; sleep 0.05; done; \
             cat .aws/credentials",
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    std::fs::create_dir_all(&target).unwrap();
    std::fs::write(target.join("credentials"), "PRIVATE KEY via a link\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(!hidden(&out), "{}", text(&out));
    assert!(!stdout(&out).contains(KEY), "leaked: {}", text(&out));
    assert!(text(&out).contains(EPERM), "{}", text(&out));
}

#[test]
fn an_override_reads_through_the_mount() {
    let policy = agent_guard_e2e::POLICY.replace(
        r#""temporary_overrides": []"#,
        r#""temporary_overrides": ["~/.ssh/config"]"#,
    );
    assert_ne!(policy, agent_guard_e2e::POLICY);
    let s = Sandbox::with_policy(&policy);
    std::fs::write(s.path(".ssh/config"), "Host example\n").unwrap();
    let out = run(
        &s,
        &[],
        "grep -o fuse.agent-guard /proc/self/mountinfo; cat .ssh/config; cat .ssh/id_ed25519",
    );
    assert!(hidden(&out), "{}", text(&out));
    assert!(stdout(&out).contains("Host example"), "{}", text(&out));
    assert!(!stdout(&out).contains(KEY), "{}", text(&out));
    assert!(text(&out).contains(EPERM), "{}", text(&out));
}

#[test]
fn reads_elsewhere_are_left_to_the_kernel_when_the_zone_is_hidden() {
    // Who refuses a read of the supervisor's memory tells who saw the open: the supervisor
    // answers EPERM to a supervised open of its own /proc files; unsupervised, the kernel
    // refuses (EACCES: the supervisor is not dumpable).
    let s = Sandbox::new();
    let script = "grep -o fuse.agent-guard /proc/self/mountinfo; cat proj/README.md; \
                  cat /proc/$PPID/mem > /dev/null";
    let out = run(&s, &[], script);
    assert!(hidden(&out), "{}", text(&out));
    assert!(stdout(&out).contains("readme"), "{}", text(&out));
    assert!(text(&out).contains("Permission denied"), "{}", text(&out));
    assert!(!text(&out).contains(EPERM), "{}", text(&out));
    let out = run(&s, &[SUPERVISE_READS], script);
    assert!(!hidden(&out), "{}", text(&out));
    assert!(stdout(&out).contains("readme"), "{}", text(&out));
    assert!(text(&out).contains(EPERM), "{}", text(&out));
}

#[test]
fn a_task_the_supervisor_does_not_act_for_still_moves_files_between_directories() {
    // The hidden view puts the agent in a Landlock domain for its ptrace rule. A domain that
    // does not handle Landlock's REFER right refuses every rename or link into another
    // directory with EXDEV. The supervisor performs those calls itself, outside the domain,
    // except for a task whose credentials differ from a root supervisor's (it would lend it
    // ours): that task's rename is let through, and must work as it does for the human.
    let root_user = std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"));
    if !root_user {
        eprintln!("skipped: only a root supervisor lets a task with other credentials act itself");
        return;
    }
    let s = Sandbox::new();
    let shared = tempfile::tempdir().unwrap();
    for dir in ["a", "b"] {
        std::fs::create_dir(shared.path().join(dir)).unwrap();
    }
    std::fs::write(shared.path().join("a/f"), "moved\n").unwrap();
    let open = |p: &std::path::Path| {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o777)).unwrap();
    };
    for p in ["", "a", "b", "a/f"] {
        open(&shared.path().join(p));
    }
    let script = format!(
        "grep -o fuse.agent-guard /proc/self/mountinfo; \
         setpriv --reuid=65534 --regid=65534 --clear-groups \
         perl -e 'rename(\"{0}/a/f\", \"{0}/b/f\") or die \"rename: $!\\n\"; \
                  link(\"{0}/b/f\", \"{0}/a/g\") or die \"link: $!\\n\"'",
        shared.path().display()
    );
    let out = run(&s, &[], &script);
    assert!(hidden(&out), "the zone was not hidden: {}", text(&out));
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        std::fs::read_to_string(shared.path().join("b/f")).unwrap(),
        "moved\n"
    );
    assert!(shared.path().join("a/g").exists(), "{}", text(&out));
}
