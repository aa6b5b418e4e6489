//! ES message → neutral [`Action`]s, as a function of plain values.
//!
//! The ES adapter copies what it needs out of an `es_message_t` into an [`EsRequest`] (paths,
//! flags, stat facts) and calls [`actions_for`]; everything after that is tested here on any OS.
//! One ES event may be several engine questions (a clone reads its source and creates its
//! target); the adapter denies if any of them is denied.
//!
//! This module must never do I/O: no `stat`, no `realpath`. ES already gives resolved paths and
//! the stat of the files it names; a fact ES does not give is not guessed here.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};

use crate::engine::path::clean;
use crate::engine::{Action, OpenFlags};

use super::ProcessIdentity;

/// `fflag` bits of AUTH_OPEN. ES reports the kernel's file flags (`FFLAGS(oflag)`, i.e. the
/// `open(2)` flags plus one), so read-only is `FREAD` and write is `FWRITE`, while the creation
/// flags keep their `open(2)` values. Values from XNU `sys/fcntl.h`, identical on arm64 and x86_64.
pub mod fflag {
    pub const FREAD: i32 = 0x0001;
    pub const FWRITE: i32 = 0x0002;
    pub const O_APPEND: i32 = 0x0008;
    pub const O_CREAT: i32 = 0x0200;
    pub const O_TRUNC: i32 = 0x0400;
}

/// `S_IFMT` and `S_IFDIR` from `sys/stat.h` (same values on every Unix we build for).
const S_IFMT: u32 = 0o170000;
const S_IFDIR: u32 = 0o040000;

/// Whether a `st_mode` names a directory.
pub fn mode_is_dir(st_mode: u32) -> bool {
    st_mode & S_IFMT == S_IFDIR
}

/// The destination of a rename or create, as ES reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EsDestination {
    /// An entry already exists there and would be replaced.
    ExistingFile(PathBuf),
    /// Nothing exists yet: the directory and the name to be made in it.
    NewPath { dir: PathBuf, name: OsString },
}

/// One AUTH message in plain values. Paths are the ones ES reports (already resolved by the
/// kernel, `/private/...` for `/tmp`, `/var`, `/etc`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EsRequest {
    /// AUTH_EXEC: the new image, its arguments, and the script for a `#!` file.
    Exec {
        target: PathBuf,
        args: Vec<String>,
        script: Option<PathBuf>,
    },
    /// AUTH_UNLINK (also `rmdir`): `target_mode` is the target's `st_mode`.
    Unlink { target: PathBuf, target_mode: u32 },
    /// AUTH_RENAME.
    Rename {
        source: PathBuf,
        source_mode: u32,
        destination: EsDestination,
    },
    /// AUTH_OPEN with the kernel `fflag`.
    Open { path: PathBuf, fflag: i32 },
    /// AUTH_TRUNCATE.
    Truncate { target: PathBuf },
    /// AUTH_LINK: `target_dir/target_name` becomes a new name for `source`.
    Link {
        source: PathBuf,
        target_dir: PathBuf,
        target_name: OsString,
    },
    /// AUTH_CREATE (files, directories, symlinks, sockets).
    Create { destination: EsDestination },
    /// AUTH_CLONE: `clonefile(2)` of `source` to the new `target_dir/target_name`.
    Clone {
        source: PathBuf,
        target_dir: PathBuf,
        target_name: OsString,
    },
    /// AUTH_COPYFILE: `copyfile(3)` of `source`; `target_file` is set when the target exists.
    CopyFile {
        source: PathBuf,
        target_file: Option<PathBuf>,
        target_dir: PathBuf,
        target_name: OsString,
    },
    /// AUTH_EXCHANGEDATA: the contents of the two files are swapped.
    ExchangeData { file1: PathBuf, file2: PathBuf },
    /// AUTH_SIGNAL.
    Signal {
        target: ProcessIdentity,
        signal: i32,
    },
    /// AUTH_GET_TASK: `task_for_pid` (debuggers, injection), which can stop or rewrite a process.
    TaskPort { target: ProcessIdentity },
}

/// What the mapping needs to know about the daemon itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MappingContext {
    /// The daemon's own identity (signals to it are guard-self events).
    pub guard: ProcessIdentity,
}

/// The engine questions for one ES request. An empty list means "nothing to decide: allow"
/// (signal 0 only probes whether a process exists).
pub fn actions_for(request: &EsRequest, ctx: &MappingContext) -> Vec<Action> {
    match request {
        EsRequest::Exec {
            target,
            args,
            script,
        } => {
            let mut actions = vec![Action::Exec {
                path: clean(target),
                argv: args.clone(),
            }];
            // For `#!` files ES's target is the interpreter; the script is what is really run,
            // and reading it is what a secret zone forbids.
            if let Some(script) = script {
                actions.push(Action::Open {
                    path: clean(script),
                    flags: OpenFlags::READ,
                });
            }
            actions
        }
        EsRequest::Unlink {
            target,
            target_mode,
        } => {
            let path = clean(target);
            vec![if mode_is_dir(*target_mode) {
                Action::Rmdir { path }
            } else {
                Action::Unlink { path }
            }]
        }
        EsRequest::Rename {
            source,
            source_mode,
            destination,
        } => {
            let (to, dest_exists) = destination_path(destination);
            vec![Action::Rename {
                from: clean(source),
                to,
                dest_exists,
                source_is_dir: mode_is_dir(*source_mode),
            }]
        }
        EsRequest::Open { path, fflag } => vec![Action::Open {
            path: clean(path),
            flags: open_flags(*fflag),
        }],
        EsRequest::Truncate { target } => vec![Action::Truncate {
            path: clean(target),
        }],
        EsRequest::Link {
            source,
            target_dir,
            target_name,
        } => vec![Action::Link {
            from: clean(source),
            to: join_name(target_dir, target_name),
        }],
        EsRequest::Create { destination } => {
            let (path, exists) = destination_path(destination);
            if exists {
                // Creating over an existing entry rewrites it: ask as a truncating write.
                vec![Action::Open {
                    path,
                    flags: OpenFlags {
                        write: true,
                        truncate: true,
                        create: true,
                    },
                }]
            } else {
                vec![Action::Create { path }]
            }
        }
        EsRequest::Clone {
            source,
            target_dir,
            target_name,
        } => vec![
            // A clone is a read of the source (copying a secret out is exfiltration) ...
            Action::Open {
                path: clean(source),
                flags: OpenFlags::READ,
            },
            // ... and the creation of a new entry.
            Action::Create {
                path: join_name(target_dir, target_name),
            },
        ],
        EsRequest::CopyFile {
            source,
            target_file,
            target_dir,
            target_name,
        } => {
            let target = match target_file {
                Some(existing) => Action::Open {
                    path: clean(existing),
                    flags: OpenFlags {
                        write: true,
                        truncate: true,
                        create: false,
                    },
                },
                None => Action::Create {
                    path: join_name(target_dir, target_name),
                },
            };
            vec![
                Action::Open {
                    path: clean(source),
                    flags: OpenFlags::READ,
                },
                target,
            ]
        }
        // Each file's contents are replaced by the other's: a read and a rewrite of both, so a
        // secret cannot be swapped into a readable file, nor a read-only file rewritten.
        EsRequest::ExchangeData { file1, file2 } => [file1, file2]
            .into_iter()
            .map(|file| Action::Open {
                path: clean(file),
                flags: OpenFlags {
                    write: true,
                    truncate: true,
                    create: false,
                },
            })
            .collect(),
        EsRequest::Signal { target, signal } => {
            if *signal == 0 {
                return Vec::new();
            }
            vec![Action::Signal {
                target_pid: target.pid,
                // pid alone is not enough: the pidversion tells the daemon from a process that
                // reused its pid after a restart.
                target_is_guard: *target == ctx.guard,
            }]
        }
        // Only the daemon's own task port matters; debuggers elsewhere are none of our business.
        EsRequest::TaskPort { target } => {
            if *target == ctx.guard {
                vec![Action::Signal {
                    target_pid: target.pid,
                    target_is_guard: true,
                }]
            } else {
                Vec::new()
            }
        }
    }
}

/// AUTH_OPEN `fflag` → what the open asks for. `O_APPEND` implies `FWRITE` in the kernel; it
/// is checked anyway so that a flag word ES reports without FWRITE cannot pass as a read.
pub fn open_flags(fflag: i32) -> OpenFlags {
    OpenFlags {
        write: fflag & (fflag::FWRITE | fflag::O_APPEND) != 0,
        truncate: fflag & fflag::O_TRUNC != 0,
        create: fflag & fflag::O_CREAT != 0,
    }
}

fn destination_path(destination: &EsDestination) -> (PathBuf, bool) {
    match destination {
        EsDestination::ExistingFile(path) => (clean(path), true),
        EsDestination::NewPath { dir, name } => (join_name(dir, name), false),
    }
}

/// `dir` + `name` as one clean path. A name is a single component; one that is not (`..`, a
/// slash) is joined lexically and cleaned, so it can never point above what it spells.
fn join_name(dir: &Path, name: &OsStr) -> PathBuf {
    clean(&dir.join(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    const GUARD: ProcessIdentity = ProcessIdentity {
        pid: 77,
        pidversion: 3,
    };
    const CTX: MappingContext = MappingContext { guard: GUARD };
    const S_IFREG: u32 = 0o100000;

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
                },
            },
            &CTX,
        );
        assert_eq!(
            actions,
            vec![Action::Create {
                path: p("/Users/me/src/f")
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
            },
            &CTX,
        );
        assert_eq!(
            actions,
            vec![
                Action::Exec {
                    path: p("/bin/sh"),
                    argv: vec!["sh".into(), "/Users/me/.ssh/run.sh".into()]
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
            },
            &CTX,
        );
        assert_eq!(plain.len(), 1);
        assert_eq!(plain[0].kind(), crate::engine::OpKind::Exec);
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
                        name: "new".into()
                    }
                },
                &CTX
            ),
            vec![Action::Create { path: p("/ro/new") }]
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
                Action::Create { path: p("/tmp/c") },
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
        assert_eq!(new[1], Action::Create { path: p("/ro/n") });
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
}
