//! ES message → neutral [`Action`]s, as a function of plain values.
//!
//! The ES adapter copies what it needs out of an `es_message_t` into an [`EsRequest`] (paths,
//! flags, stat facts) and calls [`actions_for`]; everything after that is tested here on any OS.
//! One ES event may be several engine questions (a clone reads its source and creates its
//! target); the answer is deny if any of them is denied.
//!
//! This module must never do I/O: no `stat`, no `realpath`. ES already gives resolved paths and
//! the stat of the files it names; a fact ES does not give is not guessed here.

mod request;

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use crate::platform::macos::facts::ProcessIdentity;
use crate::vocab::path::clean;
use crate::vocab::{Action, NodeKind, OpenFlags};

pub use request::{fflag, mode_is_dir, node_kind, EsDestination, EsRequest};

/// What the mapping needs to know about the daemon itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MappingContext {
    /// The daemon's own identity (signals to it are guard-self events).
    pub guard: ProcessIdentity,
}

/// A rewrite of the destination: opened for writing, truncated, not created.
const REWRITE: OpenFlags = OpenFlags {
    write: true,
    truncate: true,
    create: false,
};

/// The engine questions for one ES request. An empty list means "nothing to decide: allow"
/// (signal 0 only probes whether a process exists).
pub fn actions_for(request: &EsRequest, ctx: &MappingContext) -> Vec<Action> {
    match request {
        EsRequest::Exec {
            target,
            args,
            script,
            program,
        } => {
            let mut actions = vec![Action::Exec {
                path: clean(target),
                argv: exec_argv(target, args, program.as_deref()),
                env: Vec::new(),
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
            let (to, new_kind) = destination_path(destination);
            vec![Action::Rename {
                from: clean(source),
                to,
                dest_exists: new_kind.is_none(),
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
            let (path, kind) = destination_path(destination);
            match kind {
                Some(kind) => vec![Action::Create { path, kind }],
                // Creating over an existing entry rewrites it: ask as a truncating write.
                None => vec![Action::Open {
                    path,
                    flags: OpenFlags {
                        create: true,
                        ..REWRITE
                    },
                }],
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
                kind: NodeKind::File,
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
                    flags: REWRITE,
                },
                None => Action::Create {
                    path: join_name(target_dir, target_name),
                    kind: NodeKind::File,
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
                flags: REWRITE,
            })
            .collect(),
        // `chmod 000`, `chflags uchg`, an ACL or an xattr change the file, not its contents:
        // allowed in protected zones (nothing is lost), denied in read-only and secret zones
        // and on the guard's own files (`chflags uchg` on its log would stop it writing).
        EsRequest::Metadata { target } => vec![Action::SetAttr {
            path: clean(target),
        }],
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
        // Only the daemon's own task port or suspension matters (a suspended daemon answers
        // nothing until the kernel's deadline); debuggers elsewhere are none of our business.
        EsRequest::TaskPort { target } | EsRequest::SuspendResume { target } => {
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

/// The argv the engine matches exec rules against. A platform binary's signing identifier names
/// the program it is, whatever its file and argv\[0\] are called: when neither names that
/// program, argv\[0\] is reported as it, so that `cp /bin/launchctl x; ./x bootout ...` meets
/// launchctl's rules (the executable's own path stays in the record).
fn exec_argv(target: &Path, args: &[String], program: Option<&str>) -> Vec<String> {
    let mut argv = args.to_vec();
    let Some(program) = program else {
        return argv;
    };
    let named = |s: &str| Path::new(s).file_name().is_some_and(|n| n == program);
    if named(&target.to_string_lossy()) || argv.first().is_some_and(|a0| named(a0)) {
        return argv;
    }
    match argv.first_mut() {
        Some(argv0) => *argv0 = program.to_string(),
        None => argv.push(program.to_string()),
    }
    argv
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

/// The path a create names, and what a new entry will be (`None`: an existing file is replaced).
fn destination_path(destination: &EsDestination) -> (PathBuf, Option<NodeKind>) {
    match destination {
        EsDestination::ExistingFile(path) => (clean(path), None),
        EsDestination::NewPath { dir, name, kind } => (join_name(dir, name), Some(*kind)),
    }
}

/// `dir` + `name` as one clean path. A name is a single component; one that is not (`..`, a
/// slash) is joined lexically and cleaned, so it can never point above what it spells.
fn join_name(dir: &Path, name: &OsStr) -> PathBuf {
    clean(&dir.join(name))
}

#[cfg(test)]
mod tests;
