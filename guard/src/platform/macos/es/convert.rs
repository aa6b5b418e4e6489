//! An `es_message_t` (read through endpoint-sec's accessors) → the glue's plain [`Incoming`].
//!
//! Only copying: every decision about the values is made by the portable code. An AUTH message
//! always becomes an AUTH [`Body`], even one this code cannot read (an unknown event, a
//! truncated path): it must be answered.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::time::UNIX_EPOCH;

use endpoint_sec::sys::es_action_type_t;
use endpoint_sec::{
    AuditToken, Event as EsEvent, EventCreateDestinationFile, EventRenameDestinationFile, File,
    Message, Process,
};

use crate::platform::macos::api::EsEventKind;
use crate::platform::macos::deadline::{self, Timebase};
use crate::platform::macos::facts::{ActorFacts, ProcessIdentity, SigningInfo};
use crate::platform::macos::glue::{Body, Incoming, Unreadable};
use crate::platform::macos::keep::{FileId, MessageFiles};
use crate::platform::macos::mapping::{node_kind, EsDestination, EsRequest};
use crate::platform::macos::sys;

use super::client::{kind_of, RetainedMessage};

/// The glue's view of `view`, holding `message` when it is an AUTH message. `None` for a
/// NOTIFY message of a kind the daemon does not handle.
pub fn incoming(
    view: &Message,
    message: RetainedMessage,
    timebase: Timebase,
) -> Option<Incoming<RetainedMessage>> {
    let kind = kind_of(view.event_type());
    let is_auth = view.action_type() == es_action_type_t::ES_ACTION_TYPE_AUTH;
    let event = view.event();
    let body = match (&event, kind) {
        (Some(EsEvent::NotifyFork(fork)), _) => Body::Fork {
            child: actor_facts(&fork.child()),
        },
        (Some(EsEvent::NotifyExec(exec)), _) => Body::Exec {
            target: actor_facts(&exec.target()),
            argv: exec.args().map(lossy).collect(),
        },
        (Some(EsEvent::NotifyExit(_)), _) => Body::Exit,
        _ if is_auth => {
            let is_open = kind == Some(EsEventKind::AuthOpen);
            let unreadable = Unreadable { is_open };
            Body::Auth {
                message,
                plan: deadline::plan(view.raw_deadline(), sys::now_ticks(), timebase),
                instigator: event.as_ref().and_then(instigator),
                request: event.as_ref().and_then(request).ok_or(unreadable),
                files: event.as_ref().map(files_of).unwrap_or_default(),
            }
        }
        _ => return None,
    };
    Some(Incoming {
        // An AUTH message of a kind we never subscribed to cannot come; if one does, it is
        // answered as unreadable and counted under AUTH_OPEN's sequence.
        kind: kind.unwrap_or(EsEventKind::AuthOpen),
        seq_num: view.seq_num(),
        global_seq_num: view.global_seq_num(),
        at_ns: timebase.to_nanos(view.raw_mach_time()),
        process: actor_facts(&view.process()),
        body,
    })
}

/// Who asked launchd for a delegated signal (message version 9, macOS 15.4+).
fn instigator(event: &EsEvent<'_>) -> Option<ActorFacts> {
    match event {
        EsEvent::AuthSignal(signal) => signal.instigator().map(|p| actor_facts(&p)),
        _ => None,
    }
}

/// An AUTH event in plain values; `None` when a path is truncated (or the event unexpected).
fn request(event: &EsEvent<'_>) -> Option<EsRequest> {
    Some(match event {
        EsEvent::AuthExec(e) => {
            let target = e.target();
            let facts = actor_facts(&target);
            EsRequest::Exec {
                target: path_of(&target.executable())?,
                args: e.args().map(lossy).collect(),
                script: match e.script() {
                    Some(script) => Some(path_of(&script)?),
                    None => None,
                },
                program: facts.signing.platform_program().map(str::to_string),
            }
        }
        EsEvent::AuthSignal(e) => EsRequest::Signal {
            target: identity(&e.target().audit_token()),
            signal: e.sig(),
        },
        EsEvent::AuthGetTask(e) => EsRequest::TaskPort {
            target: identity(&e.target().audit_token()),
        },
        EsEvent::AuthProcSuspendResume(e) => EsRequest::SuspendResume {
            // No target: no process of ours is suspended.
            target: e
                .target()
                .map(|p| identity(&p.audit_token()))
                .unwrap_or_default(),
        },
        EsEvent::AuthUnlink(e) => EsRequest::Unlink {
            target: path_of(&e.target())?,
            target_mode: mode_of(&e.target()),
        },
        EsEvent::AuthRename(e) => EsRequest::Rename {
            source: path_of(&e.source())?,
            source_mode: mode_of(&e.source()),
            destination: match e.destination()? {
                EventRenameDestinationFile::ExistingFile { file, .. } => existing(&file)?,
                // The new name is the source's entry under another name.
                EventRenameDestinationFile::NewPath {
                    directory,
                    filename,
                    ..
                } => new_path(&directory, filename, mode_of(&e.source()))?,
                _ => return None,
            },
        },
        EsEvent::AuthOpen(e) => EsRequest::Open {
            path: path_of(&e.file())?,
            fflag: e.fflag(),
        },
        EsEvent::AuthTruncate(e) => EsRequest::Truncate {
            target: path_of(&e.target())?,
        },
        EsEvent::AuthLink(e) => EsRequest::Link {
            source: path_of(&e.source())?,
            target_dir: path_of(&e.target_dir())?,
            target_name: e.target_filename().to_os_string(),
        },
        EsEvent::AuthCreate(e) => EsRequest::Create {
            destination: match e.destination()? {
                EventCreateDestinationFile::ExistingFile { file, .. } => existing(&file)?,
                EventCreateDestinationFile::NewPath {
                    directory,
                    filename,
                    mode,
                    ..
                } => new_path(&directory, filename, u32::from(mode))?,
                _ => return None,
            },
        },
        EsEvent::AuthClone(e) => EsRequest::Clone {
            source: path_of(&e.source())?,
            target_dir: path_of(&e.target_dir())?,
            target_name: e.target_name().to_os_string(),
        },
        EsEvent::AuthCopyFile(e) => EsRequest::CopyFile {
            source: path_of(&e.source())?,
            target_file: match e.target_file() {
                Some(f) => Some(path_of(&f)?),
                None => None,
            },
            target_dir: path_of(&e.target_dir())?,
            target_name: e.target_name().to_os_string(),
        },
        EsEvent::AuthExchangeData(e) => EsRequest::ExchangeData {
            file1: path_of(&e.file1())?,
            file2: path_of(&e.file2())?,
        },
        EsEvent::AuthSetMode(e) => metadata(&e.target())?,
        EsEvent::AuthSetOwner(e) => metadata(&e.target())?,
        EsEvent::AuthSetFlags(e) => metadata(&e.target())?,
        EsEvent::AuthSetAcl(e) => metadata(&e.target())?,
        EsEvent::AuthSetExtAttr(e) => metadata(&e.target())?,
        EsEvent::AuthDeleteExtAttr(e) => metadata(&e.target())?,
        EsEvent::AuthUTimes(e) => metadata(&e.target())?,
        EsEvent::AuthSetAttrlist(e) => metadata(&e.target())?,
        _ => return None,
    })
}

/// The existing files of an AUTH message whose operation keeping may have to keep, each as
/// the kernel identified it (the message's `stat`): the file it will act on once allowed.
fn files_of(event: &EsEvent) -> MessageFiles {
    let mut files: Vec<File<'_>> = Vec::new();
    match event {
        EsEvent::AuthUnlink(e) => files.push(e.target()),
        EsEvent::AuthRename(e) => {
            files.push(e.source());
            if let Some(EventRenameDestinationFile::ExistingFile { file, .. }) = e.destination() {
                files.push(file);
            }
        }
        EsEvent::AuthOpen(e) => files.push(e.file()),
        EsEvent::AuthTruncate(e) => files.push(e.target()),
        EsEvent::AuthLink(e) => files.push(e.source()),
        EsEvent::AuthExchangeData(e) => {
            files.push(e.file1());
            files.push(e.file2());
        }
        _ => {}
    }
    files
        .iter()
        .filter_map(|file| {
            let stat = file.stat();
            let id = FileId {
                // As std's `MetadataExt::dev` widens it, so the two compare.
                dev: stat.st_dev as u64,
                ino: stat.st_ino,
            };
            Some((path_of(file)?, id))
        })
        .collect()
}

fn existing(file: &File<'_>) -> Option<EsDestination> {
    Some(EsDestination::ExistingFile(path_of(file)?))
}

fn new_path(directory: &File<'_>, name: &OsStr, mode: u32) -> Option<EsDestination> {
    Some(EsDestination::NewPath {
        dir: path_of(directory)?,
        name: name.to_os_string(),
        kind: node_kind(mode),
    })
}

fn metadata(target: &File<'_>) -> Option<EsRequest> {
    Some(EsRequest::Metadata {
        target: path_of(target)?,
    })
}

fn path_of(file: &File<'_>) -> Option<PathBuf> {
    if file.path_truncated() {
        return None;
    }
    Some(PathBuf::from(file.path()))
}

fn mode_of(file: &File<'_>) -> u32 {
    u32::from(file.stat().st_mode)
}

fn lossy(s: &OsStr) -> String {
    String::from_utf8_lossy(s.as_bytes()).into_owned()
}

fn non_empty(s: &OsStr) -> Option<String> {
    (!s.is_empty()).then(|| lossy(s))
}

pub fn identity(token: &AuditToken) -> ProcessIdentity {
    ProcessIdentity {
        pid: token.pid(),
        pidversion: token.pidversion(),
    }
}

/// Everything the message says about a process, without a syscall.
fn actor_facts(process: &Process<'_>) -> ActorFacts {
    let start_micros = process
        .start_time()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
    ActorFacts {
        process: identity(&process.audit_token()),
        start_micros,
        ppid: process.ppid(),
        original_ppid: process.original_ppid(),
        parent: process.parent_audit_token().map(|t| identity(&t)),
        responsible: process.responsible_audit_token().map(|t| identity(&t)),
        exe: PathBuf::from(process.executable().path()),
        signing: SigningInfo {
            signing_id: non_empty(process.signing_id()),
            team_id: non_empty(process.team_id()),
            cdhash: process.cdhash(),
            platform_binary: process.is_platform_binary(),
            cs_flags: process.codesigning_flags(),
        },
    }
}
