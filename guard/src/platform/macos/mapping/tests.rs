//! The mapping of each ES request kind to the engine's questions.

use super::*;
use crate::vocab::NodeKind;

const GUARD: ProcessIdentity = ProcessIdentity {
    pid: 77,
    pidversion: 3,
};
const CTX: MappingContext = MappingContext { guard: GUARD };
const S_IFREG: u32 = 0o100000;
const S_IFDIR: u32 = 0o040000;

fn p(s: &str) -> PathBuf {
    PathBuf::from(s)
}

#[test]
fn rename_over_existing_file_sets_dest_exists() {
    let actions = actions_for(
        &EsRequest::Rename {
            source: p("/tmp/evil"),
            source_mode: S_IFREG | 0o644,
            destination: EsDestination::ExistingFile(p("/Users/me/src/a.rs")),
        },
        &CTX,
    );
    assert_eq!(
        actions,
        vec![Action::Rename {
            from: p("/tmp/evil"),
            to: p("/Users/me/src/a.rs"),
            dest_exists: true,
            source_is_dir: false,
        }]
    );
}

#[test]
fn rename_to_new_path_joins_dir_and_name() {
    let actions = actions_for(
        &EsRequest::Rename {
            source: p("/Users/me/src/proj"),
            source_mode: S_IFDIR | 0o755,
            destination: EsDestination::NewPath {
                dir: p("/Users/me/.Trash"),
                name: "proj".into(),
                kind: NodeKind::Directory,
            },
        },
        &CTX,
    );
    assert_eq!(
        actions,
        vec![Action::Rename {
            from: p("/Users/me/src/proj"),
            to: p("/Users/me/.Trash/proj"),
            dest_exists: false,
            source_is_dir: true,
        }]
    );
}

#[test]
fn a_hostile_filename_cannot_climb_out_of_its_directory_unseen() {
    // ES never reports such a name, but if it did the result is the real place, cleaned.
    let actions = actions_for(
        &EsRequest::Create {
            destination: EsDestination::NewPath {
                dir: p("/tmp/x"),
                name: "../../Users/me/src/f".into(),
                kind: NodeKind::File,
            },
        },
        &CTX,
    );
    assert_eq!(
        actions,
        vec![Action::Create {
            path: p("/Users/me/src/f"),
            kind: NodeKind::File
        }]
    );
}

#[test]
fn open_flags_follow_kernel_fflag() {
    use fflag::*;
    assert_eq!(open_flags(FREAD), OpenFlags::READ);
    assert!(!open_flags(FREAD).modifies());
    assert_eq!(
        open_flags(FREAD | FWRITE),
        OpenFlags {
            write: true,
            truncate: false,
            create: false
        }
    );
    // open(path, O_WRONLY|O_CREAT|O_TRUNC) → FFLAGS = O_WRONLY+1 | O_CREAT | O_TRUNC
    let wr_creat_trunc = (0x0001 + 1) | 0x0200 | 0x0400;
    assert_eq!(
        open_flags(wr_creat_trunc),
        OpenFlags {
            write: true,
            truncate: true,
            create: true
        }
    );
    // O_RDONLY|O_TRUNC still truncates: the kernel honours it for a read-only open.
    assert!(open_flags(FREAD | O_TRUNC).truncate);
    assert!(open_flags(FREAD | O_TRUNC).modifies());
    assert!(open_flags(O_APPEND).write);
    let mapped = actions_for(
        &EsRequest::Open {
            path: p("/Users/me/.ssh/id_ed25519"),
            fflag: FREAD,
        },
        &CTX,
    );
    assert_eq!(
        mapped,
        vec![Action::Open {
            path: p("/Users/me/.ssh/id_ed25519"),
            flags: OpenFlags::READ
        }]
    );
}

#[test]
fn exec_keeps_args_and_asks_about_the_script() {
    let actions = actions_for(
        &EsRequest::Exec {
            target: p("/bin/sh"),
            args: vec!["sh".into(), "/Users/me/.ssh/run.sh".into()],
            script: Some(p("/Users/me/.ssh/run.sh")),
            program: None,
        },
        &CTX,
    );
    assert_eq!(
        actions,
        vec![
            Action::Exec {
                path: p("/bin/sh"),
                argv: vec!["sh".into(), "/Users/me/.ssh/run.sh".into()],
                env: Vec::new(),
            },
            Action::Open {
                path: p("/Users/me/.ssh/run.sh"),
                flags: OpenFlags::READ
            },
        ]
    );
    let plain = actions_for(
        &EsRequest::Exec {
            target: p("/usr/bin/git"),
            args: vec!["git".into(), "clean".into(), "-fdx".into()],
            script: None,
            program: None,
        },
        &CTX,
    );
    assert_eq!(plain.len(), 1);
    assert_eq!(plain[0].kind(), crate::vocab::OpKind::Exec);
}

#[test]
fn unlink_of_a_directory_is_rmdir() {
    let file = actions_for(
        &EsRequest::Unlink {
            target: p("/a/f"),
            target_mode: S_IFREG,
        },
        &CTX,
    );
    assert_eq!(file, vec![Action::Unlink { path: p("/a/f") }]);
    let dir = actions_for(
        &EsRequest::Unlink {
            target: p("/a/d/"),
            target_mode: S_IFDIR,
        },
        &CTX,
    );
    assert_eq!(dir, vec![Action::Rmdir { path: p("/a/d") }]);
}

#[test]
fn truncate_link_and_create() {
    assert_eq!(
        actions_for(&EsRequest::Truncate { target: p("/a/f") }, &CTX),
        vec![Action::Truncate { path: p("/a/f") }]
    );
    assert_eq!(
        actions_for(
            &EsRequest::Link {
                source: p("/Users/me/.ssh/id_rsa"),
                target_dir: p("/tmp"),
                target_name: "k".into()
            },
            &CTX
        ),
        vec![Action::Link {
            from: p("/Users/me/.ssh/id_rsa"),
            to: p("/tmp/k")
        }]
    );
    assert_eq!(
        actions_for(
            &EsRequest::Create {
                destination: EsDestination::NewPath {
                    dir: p("/ro"),
                    name: "new".into(),
                    kind: NodeKind::Directory,
                }
            },
            &CTX
        ),
        vec![Action::Create {
            path: p("/ro/new"),
            kind: NodeKind::Directory
        }]
    );
    let over = actions_for(
        &EsRequest::Create {
            destination: EsDestination::ExistingFile(p("/ro/old")),
        },
        &CTX,
    );
    assert!(
        matches!(&over[..], [Action::Open { path, flags }] if path == &p("/ro/old") && flags.truncate)
    );
}

#[test]
fn clone_and_copyfile_read_the_source_and_write_the_target() {
    let clone = actions_for(
        &EsRequest::Clone {
            source: p("/Users/me/.aws/credentials"),
            target_dir: p("/tmp"),
            target_name: "c".into(),
        },
        &CTX,
    );
    assert_eq!(
        clone,
        vec![
            Action::Open {
                path: p("/Users/me/.aws/credentials"),
                flags: OpenFlags::READ
            },
            Action::Create {
                path: p("/tmp/c"),
                kind: NodeKind::File
            },
        ]
    );
    let over = actions_for(
        &EsRequest::CopyFile {
            source: p("/tmp/junk"),
            target_file: Some(p("/ro/keep")),
            target_dir: p("/ro"),
            target_name: "keep".into(),
        },
        &CTX,
    );
    assert!(
        matches!(&over[1], Action::Open { path, flags } if path == &p("/ro/keep") && flags.write && flags.truncate)
    );
    let new = actions_for(
        &EsRequest::CopyFile {
            source: p("/tmp/junk"),
            target_file: None,
            target_dir: p("/ro"),
            target_name: "n".into(),
        },
        &CTX,
    );
    assert_eq!(
        new[1],
        Action::Create {
            path: p("/ro/n"),
            kind: NodeKind::File
        }
    );
}

#[test]
fn exchangedata_rewrites_both_files() {
    let actions = actions_for(
        &EsRequest::ExchangeData {
            file1: p("/Users/me/.ssh/id_rsa"),
            file2: p("/tmp/mine"),
        },
        &CTX,
    );
    let paths: Vec<_> = actions.iter().filter_map(|a| a.path()).collect();
    assert_eq!(
        paths,
        vec![Path::new("/Users/me/.ssh/id_rsa"), Path::new("/tmp/mine")]
    );
    assert!(actions
        .iter()
        .all(|a| matches!(a, Action::Open { flags, .. } if flags.write)));
}

#[test]
fn signal_to_the_daemon_needs_pid_and_pidversion() {
    let to_guard = actions_for(
        &EsRequest::Signal {
            target: GUARD,
            signal: 15,
        },
        &CTX,
    );
    assert_eq!(
        to_guard,
        vec![Action::Signal {
            target_pid: 77,
            target_is_guard: true
        }]
    );
    let reused_pid = actions_for(
        &EsRequest::Signal {
            target: ProcessIdentity {
                pid: 77,
                pidversion: 4,
            },
            signal: 9,
        },
        &CTX,
    );
    assert_eq!(
        reused_pid,
        vec![Action::Signal {
            target_pid: 77,
            target_is_guard: false
        }]
    );
    let probe = actions_for(
        &EsRequest::Signal {
            target: GUARD,
            signal: 0,
        },
        &CTX,
    );
    assert!(probe.is_empty());
}

#[test]
fn task_port_of_the_daemon_is_a_guard_signal_and_nothing_else_is_asked() {
    assert_eq!(
        actions_for(&EsRequest::TaskPort { target: GUARD }, &CTX),
        vec![Action::Signal {
            target_pid: 77,
            target_is_guard: true
        }]
    );
    let debugger = actions_for(
        &EsRequest::TaskPort {
            target: ProcessIdentity {
                pid: 500,
                pidversion: 1,
            },
        },
        &CTX,
    );
    assert!(debugger.is_empty());
}

#[test]
fn metadata_changes_are_setattr_of_their_file() {
    let actions = actions_for(
        &EsRequest::Metadata {
            target: p("/Users/me/.zshrc"),
        },
        &CTX,
    );
    assert_eq!(
        actions,
        vec![Action::SetAttr {
            path: p("/Users/me/.zshrc")
        }]
    );
}

#[test]
fn suspending_the_daemon_is_a_guard_signal_and_nothing_else_is_asked() {
    assert_eq!(
        actions_for(&EsRequest::SuspendResume { target: GUARD }, &CTX),
        vec![Action::Signal {
            target_pid: 77,
            target_is_guard: true
        }]
    );
    let other = ProcessIdentity {
        pid: 77,
        pidversion: 4,
    };
    assert!(actions_for(&EsRequest::SuspendResume { target: other }, &CTX).is_empty());
}

fn exec_of(target: &str, argv: &[&str], program: Option<&str>) -> Vec<String> {
    let actions = actions_for(
        &EsRequest::Exec {
            target: p(target),
            args: argv.iter().map(|a| a.to_string()).collect(),
            script: None,
            program: program.map(Into::into),
        },
        &CTX,
    );
    match &actions[..] {
        [Action::Exec { argv, path, .. }] => {
            assert_eq!(path, &p(target), "the real executable stays in the record");
            argv.clone()
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_renamed_platform_binary_is_asked_about_as_the_program_it_is() {
    // cp /bin/launchctl /tmp/x; /tmp/x bootout system/com.agent-guard.daemon
    assert_eq!(
        exec_of(
            "/tmp/x",
            &["x", "bootout", "system/com.agent-guard.daemon"],
            Some("launchctl")
        ),
        vec!["launchctl", "bootout", "system/com.agent-guard.daemon"]
    );
    // Named right by its file or by argv[0]: argv stays as it was.
    assert_eq!(
        exec_of("/bin/launchctl", &["lc", "list"], Some("launchctl")),
        vec!["lc", "list"]
    );
    assert_eq!(
        exec_of("/tmp/x", &["/usr/bin/launchctl", "list"], Some("launchctl")),
        vec!["/usr/bin/launchctl", "list"]
    );
    // Not a platform binary (no program): nothing is made up.
    assert_eq!(exec_of("/tmp/x", &["x", "list"], None), vec!["x", "list"]);
    // No argv at all (execve with an empty argv): the program name is the only argument.
    assert_eq!(exec_of("/tmp/x", &[], Some("launchctl")), vec!["launchctl"]);
}

#[test]
fn a_new_entry_is_what_its_mode_says() {
    assert_eq!(node_kind(S_IFDIR | 0o755), NodeKind::Directory);
    assert_eq!(node_kind(0o120777), NodeKind::Symlink);
    assert_eq!(node_kind(0o020666), NodeKind::Device);
    assert_eq!(node_kind(0o140755), NodeKind::Special);
    assert_eq!(node_kind(S_IFREG | 0o644), NodeKind::File);
}
