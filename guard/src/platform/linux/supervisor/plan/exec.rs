//! Planning execve and execveat: judge the program the kernel will really run, with its
//! arguments, then let the kernel run the exec. An exec cannot be performed for another process,
//! so the program can be swapped between the check and the exec (the documented exec race; see
//! docs/linux.md); a program that provably does not exist is left to the kernel to refuse.
//!
//! "The program the kernel will run" is: the file the task's fd names (`execveat(fd, "",
//! AT_EMPTY_PATH)`, `/dev/fd/N`, `/proc/self/fd/N`), resolved in the task's fd table, never
//! ours; and for a `#!` script, also its interpreter as the kernel starts it
//! (`interp [optarg] script args...`), judged in turn, as deep as the kernel goes. When git may
//! take an alias from its environment, the environment entries it reads go with the exec.
//!
//! It must never skip the judgment of a program that exists, and never decide "missing" by a
//! look in the supervisor's own fd table or namespace of /proc.

use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use super::planner::{Plan, Planner};
use crate::engine::Action;
use crate::platform::linux::supervisor::call::{Base, UserPtr};
use crate::platform::linux::supervisor::task;
use crate::platform::linux::sys::fs;
use crate::platform::linux::sys::notify::Response;
use crate::platform::linux::sys::openat2::{openat2, OpenHow, Resolve};

/// How many `#!` interpreters deep the kernel goes before ELOOP (fs/exec.c: `depth > 5`, the
/// script itself counted); deeper scripts are refused here.
const MAX_INTERPRETER_DEPTH: usize = 5;
/// How much of a script the kernel reads for its `#!` line (BINPRM_BUF_SIZE).
const BINPRM_BUF_SIZE: usize = 256;

pub fn exec(
    p: &Planner<'_>,
    dir: Base,
    path: UserPtr,
    argv: UserPtr,
    envp: UserPtr,
    flags: i32,
) -> io::Result<Plan> {
    let raw = p.read_path(path)?;
    // A shell or execvp tries each PATH directory in turn (two in three execs of a build): what
    // does not exist cannot start, and the kernel says so itself. This adds no race beyond the
    // documented exec race, and saves reading argv, the facts and the record. Only a walk that
    // met no symlink proves it (a symlink may lead into /proc, whose `self` and fds would be
    // the supervisor's: `/dev/fd/200` is missing here and git in the task).
    let absolute = raw.first() == Some(&b'/');
    if absolute && missing_without_links(&raw) {
        return Ok(Plan::Answer(Response::Continue));
    }
    let (path, object) = if raw.is_empty() && flags & libc::AT_EMPTY_PATH != 0 {
        let fd = dir.raw_fd();
        let text = task::bytes_to_path(p.tasks.fd_target(p.tid, fd)?);
        (text, Program::TaskFd(fd))
    } else {
        let follow = flags & libc::AT_SYMLINK_NOFOLLOW == 0;
        let (path, magic) = p.resolve_traced(dir, &raw, follow)?;
        match magic {
            // Reached through an fd or another magic link: the object, whatever its name says.
            Some(link) => (path, Program::Link(link)),
            None if missing_without_links(path.as_os_str().as_bytes()) => {
                return Ok(Plan::Answer(Response::Continue));
            }
            None => (path.clone(), Program::Path(path)),
        }
    };
    let argv = p.tasks.read_argv(p.tid, argv)?;
    let mut actions = Vec::new();
    let mut exec = Action::Exec {
        path: kernel_name_to_path(path),
        argv,
        env: Vec::new(),
    };
    // What the kernel passes a script's interpreter as the script's name.
    let filename = if raw.is_empty() {
        format!("/dev/fd/{}", dir.raw_fd())
    } else {
        String::from_utf8_lossy(&raw).into_owned()
    };
    let mut program = object;
    for depth in 0.. {
        if (p.needs_exec_env)(&exec) {
            if let Action::Exec { argv, env, .. } = &mut exec {
                *env = read_env(p, envp, argv)?;
            }
        }
        let next = interpreter(p, &program)?;
        let (interp, script_argv) = match next {
            None => {
                actions.push(exec);
                break;
            }
            Some(_) if depth + 1 >= MAX_INTERPRETER_DEPTH => {
                return Ok(Plan::Answer(Response::Error(libc::ELOOP)));
            }
            Some((interp, optarg)) => {
                let Action::Exec { argv, .. } = &exec else {
                    unreachable!("built as an exec");
                };
                let mut new_argv = vec![String::from_utf8_lossy(&interp).into_owned()];
                new_argv.extend(optarg.map(|a| String::from_utf8_lossy(&a).into_owned()));
                // argv[0] goes; the script's name comes instead: the name the task gave for the
                // first, the previous interpreter as its `#!` line wrote it for the next.
                new_argv.push(if depth == 0 {
                    filename.clone()
                } else {
                    argv[0].clone()
                });
                new_argv.extend(argv.iter().skip(1).cloned());
                (interp, new_argv)
            }
        };
        // The kernel opens the interpreter as the task would (relative to its cwd).
        let (interp_path, magic) = p.resolve_traced(Base::Cwd, &interp, true)?;
        actions.push(exec);
        program = match magic {
            Some(link) => Program::Link(link),
            None => Program::Path(interp_path.clone()),
        };
        exec = Action::Exec {
            path: kernel_name_to_path(interp_path),
            argv: script_argv,
            env: Vec::new(),
        };
    }
    Ok(Plan::Check(actions))
}

/// A `#!` line: the interpreter and its one optional argument.
type Shebang = (Vec<u8>, Option<Vec<u8>>);

/// Where the program's bytes are, to look for a `#!` line.
enum Program {
    /// A resolved path with no magic link on the way.
    Path(PathBuf),
    /// A /proc magic link of the task's (or its tree's) that reaches it.
    Link(PathBuf),
    /// The task's fd.
    TaskFd(i32),
}

/// The interpreter line of a `#!` script as the kernel reads it: the interpreter and its one
/// optional argument. `None` when the program is not a script (or not a regular file).
fn interpreter(p: &Planner<'_>, program: &Program) -> io::Result<Option<Shebang>> {
    let file: OwnedFd = match program {
        Program::TaskFd(fd) => p.tasks.copy_fd(p.tid, *fd)?.0,
        Program::Path(path) | Program::Link(path) => {
            // Looked at first without opening it for reading: opening a device can act (a
            // watchdog arms, a tape rewinds); only a regular file is read.
            let how = OpenHow {
                flags: (libc::O_PATH | libc::O_CLOEXEC) as u64,
                mode: 0,
                resolve: match program {
                    // The link is the task's own object (checked in resolution).
                    Program::Link(_) => Resolve::NONE,
                    _ => Resolve::NO_SYMLINKS,
                },
            };
            let Ok(handle) = openat2(&fs::c_path(path.as_os_str().as_bytes())?, &how) else {
                // Gone, or not reachable without a symlink: the kernel will say what it says.
                return Ok(None);
            };
            if fs::file_type(handle.as_fd())? != libc::S_IFREG {
                return Ok(None);
            }
            let again = format!("/proc/self/fd/{}", handle.as_raw_fd());
            let flags = libc::O_RDONLY | libc::O_NONBLOCK | libc::O_NOCTTY | libc::O_CLOEXEC;
            match fs::open(&fs::c_path(again.as_bytes())?, flags) {
                Ok(file) => file,
                // A script we may not read (execute-only, for an unprivileged supervisor)
                // could still start its interpreter (`#!/usr/bin/git clean` needs no read of
                // the script by git): not judged, not run.
                Err(e) if matches!(e.raw_os_error(), Some(libc::EACCES | libc::EPERM)) => {
                    return Err(io::Error::from_raw_os_error(libc::EACCES))
                }
                Err(_) => return Ok(None),
            }
        }
    };
    if fs::file_type(file.as_fd())? != libc::S_IFREG {
        return Ok(None);
    }
    let mut head = [0u8; BINPRM_BUF_SIZE];
    let n = fs::pread(file.as_fd(), &mut head, 0)?;
    Ok(parse_shebang(&head[..n]))
}

/// fs/binfmt_script.c: after `#!`, blanks, the interpreter up to a blank or the end of the
/// line, then blanks, and the rest of the line (trailing blanks cut) as one argument.
fn parse_shebang(head: &[u8]) -> Option<Shebang> {
    let rest = head.strip_prefix(b"#!")?;
    let line = match rest.iter().position(|&b| b == b'\n') {
        Some(end) => &rest[..end],
        None => rest,
    };
    let blank = |b: &u8| *b == b' ' || *b == b'\t';
    let line = line.split(|&b| b == 0).next().unwrap_or(&[]);
    let start = line.iter().position(|b| !blank(b))?;
    let line = &line[start..];
    let end = line.iter().position(blank).unwrap_or(line.len());
    let interp = line[..end].to_vec();
    let arg = &line[end..];
    let arg_start = arg.iter().position(|b| !blank(b));
    let optarg = arg_start.map(|s| {
        let arg = &arg[s..];
        let trimmed = arg.len() - arg.iter().rev().take_while(|b| blank(b)).count();
        arg[..trimmed].to_vec()
    });
    Some((interp, optarg))
}

/// The kernel's name of an fd's file, as a path to judge: `/tmp/git (deleted)` is judged as
/// `/tmp/git`, what the file was called.
fn kernel_name_to_path(path: PathBuf) -> PathBuf {
    let bytes = path.as_os_str().as_bytes();
    match bytes.strip_suffix(b" (deleted)") {
        Some(name) => PathBuf::from(std::ffi::OsStr::from_bytes(name)),
        None => path,
    }
}

/// The environment entries git may read an alias from: `GIT_CONFIG_PARAMETERS`,
/// `GIT_CONFIG_COUNT`, `GIT_CONFIG_KEY_n`, `GIT_CONFIG_VALUE_n`, and the variables
/// `--config-env=KEY=VAR` names in `argv`.
fn read_env(p: &Planner<'_>, envp: UserPtr, argv: &[String]) -> io::Result<Vec<String>> {
    let named: Vec<String> = argv
        .iter()
        .zip(argv.iter().skip(1).map(Some).chain([None]))
        .filter_map(|(arg, next)| match arg.strip_prefix("--config-env=") {
            Some(spec) => Some(spec.to_string()),
            None if arg == "--config-env" => next.cloned(),
            None => None,
        })
        .filter_map(|spec| spec.split_once('=').map(|(_, var)| var.to_string()))
        .collect();
    let wanted = |entry: &[u8]| {
        let name = entry.split(|&b| b == b'=').next().unwrap_or(entry);
        name == b"GIT_CONFIG_PARAMETERS"
            || name == b"GIT_CONFIG_COUNT"
            || name.starts_with(b"GIT_CONFIG_KEY_")
            || name.starts_with(b"GIT_CONFIG_VALUE_")
            || named.iter().any(|n| n.as_bytes() == name)
    };
    p.tasks.read_env(p.tid, envp, &wanted)
}

/// Whether nothing exists at `path`, proven by a walk that met no symlink (ENOENT under
/// `RESOLVE_NO_SYMLINKS`, which refuses magic links too); a symlink on the way (ELOOP) or
/// anything else is not a proof.
fn missing_without_links(path: &[u8]) -> bool {
    let Ok(c) = fs::c_path(path) else {
        return false;
    };
    let how = OpenHow {
        flags: (libc::O_PATH | libc::O_CLOEXEC) as u64,
        mode: 0,
        resolve: Resolve::NO_SYMLINKS,
    };
    openat2(&c, &how).is_err_and(|e| e.raw_os_error() == Some(libc::ENOENT))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(head: &str) -> Option<(String, Option<String>)> {
        parse_shebang(head.as_bytes()).map(|(i, a)| {
            (
                String::from_utf8(i).unwrap(),
                a.map(|a| String::from_utf8(a).unwrap()),
            )
        })
    }

    #[test]
    fn the_interpreter_line_is_read_as_the_kernel_reads_it() {
        let some = |i: &str, a: Option<&str>| Some((i.to_string(), a.map(str::to_string)));
        assert_eq!(parsed("#!/bin/sh\necho"), some("/bin/sh", None));
        assert_eq!(
            parsed("#! /usr/bin/git clean -fdx  \nx"),
            some("/usr/bin/git", Some("clean -fdx"))
        );
        assert_eq!(
            parsed("#!/usr/bin/env\tpython3 -u\n"),
            some("/usr/bin/env", Some("python3 -u"))
        );
        assert_eq!(parsed("#!/bin/bash"), some("/bin/bash", None));
        assert_eq!(parsed("#!   \n"), None);
        assert_eq!(parsed("echo hi\n"), None);
        assert_eq!(parsed("\x7fELF"), None);
    }

    #[test]
    fn deleted_files_are_judged_by_the_name_they_had() {
        assert_eq!(
            kernel_name_to_path("/tmp/git (deleted)".into()),
            PathBuf::from("/tmp/git")
        );
        assert_eq!(
            kernel_name_to_path("/usr/bin/git".into()),
            PathBuf::from("/usr/bin/git")
        );
    }

    #[test]
    fn only_a_walk_without_symlinks_proves_a_program_missing() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nothing-here");
        assert!(missing_without_links(missing.as_os_str().as_bytes()));
        // /dev/fd/N is ours here, not the task's: never a proof.
        assert!(!missing_without_links(b"/dev/fd/987"));
        assert!(!missing_without_links(b"/proc/self/fd/987"));
        std::os::unix::fs::symlink("/nowhere", dir.path().join("l")).unwrap();
        let through = dir.path().join("l/x");
        assert!(!missing_without_links(through.as_os_str().as_bytes()));
    }
}
