//! The Endpoint Security clients (macOS only): two clients on two threads, as Santa does,
//! because an `es_client_t` is bound to the thread that made it (`Client` is `!Send`).
//!
//! - The **file client** subscribes to the destructive file AUTH events and inverts target-path
//!   muting so that the kernel delivers only events inside the policy's zones and the guard's
//!   own files ([`super::muting`]). The selection is re-applied on [`DaemonCommand::RefreshMuting`].
//! - The **process client** authorizes exec and signals and feeds the lineage table with fork,
//!   exec and exit.
//!
//! Each message is copied into plain values ([`EsRequest`], [`ActorFacts`]), mapped to neutral
//! events ([`super::mapping`]) and decided by the [`EsHandler`] on a decision worker, which the
//! ES thread waits for at most 80% of the time left before the kernel's deadline
//! ([`super::deadline`]); past that, the fail-mode answer goes out and the miss is counted.
//!
//! Answers are never cached (`cache: false`): ES caches per file for every process, and every
//! event this daemon receives is inside a zone, where the answer depends on who acts. A cached
//! allow given to a human's editor would otherwise let an agent through.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver};
use std::sync::Arc;
use std::thread;

use endpoint_sec::sys::{
    es_auth_result_t, es_event_type_t, es_mute_inversion_type_t, es_mute_path_type_t,
    MuteInvertedType, NewClientError, ReturnError,
};
use endpoint_sec::{
    AuditToken, Client, Event as EsEvent, EventCreateDestinationFile, EventRenameDestinationFile,
    File, Message, Process,
};

use crate::engine::Actor;

use super::deadline::{self, DeadlineCounters, Timebase};
use super::decision::{
    answer, answer_unreadable, kernel_answer, AnswerContext, DecisionWorker, KernelAnswer,
    CACHE_ANSWERS,
};
use super::mapping::{EsDestination, EsRequest, MappingContext};
use super::muting::MutingSelection;
use super::start::{check_os_version, StartError};
use super::sys::{self, LiveInspector};
use super::{
    comm_of, ActorFacts, DaemonCommand, DaemonCommands, EsHandler, ProcessIdentity, SigningInfo,
};

/// What the file client subscribes to.
const FILE_EVENTS: [es_event_type_t; 9] = [
    es_event_type_t::ES_EVENT_TYPE_AUTH_UNLINK,
    es_event_type_t::ES_EVENT_TYPE_AUTH_RENAME,
    es_event_type_t::ES_EVENT_TYPE_AUTH_OPEN,
    es_event_type_t::ES_EVENT_TYPE_AUTH_TRUNCATE,
    es_event_type_t::ES_EVENT_TYPE_AUTH_LINK,
    es_event_type_t::ES_EVENT_TYPE_AUTH_CREATE,
    es_event_type_t::ES_EVENT_TYPE_AUTH_CLONE,
    es_event_type_t::ES_EVENT_TYPE_AUTH_COPYFILE,
    es_event_type_t::ES_EVENT_TYPE_AUTH_EXCHANGEDATA,
];

/// What the process client subscribes to.
const PROCESS_EVENTS: [es_event_type_t; 5] = [
    es_event_type_t::ES_EVENT_TYPE_AUTH_EXEC,
    es_event_type_t::ES_EVENT_TYPE_AUTH_SIGNAL,
    // task_for_pid on the daemon (a root agent could suspend or inject into it).
    es_event_type_t::ES_EVENT_TYPE_AUTH_GET_TASK,
    es_event_type_t::ES_EVENT_TYPE_NOTIFY_FORK,
    es_event_type_t::ES_EVENT_TYPE_NOTIFY_EXIT,
];

/// Run the daemon until SIGTERM/SIGINT/SIGHUP or [`DaemonCommand::Stop`]. Blocks.
///
/// Fails at start with a [`StartError`] whose message says what to do (not root, no
/// entitlement, no Full Disk Access, macOS older than 13).
pub fn run_daemon(handler: Arc<dyn EsHandler>, commands: DaemonCommands) -> Result<(), StartError> {
    if !sys::is_root() {
        return Err(StartError::NotPrivileged);
    }
    let version = sys::os_product_version().unwrap_or_default();
    let (major, minor, patch) = check_os_version(&version)?;
    endpoint_sec::version::set_runtime_version(major, minor, patch);

    if !sys::block_stop_signals() {
        return Err(StartError::Setup(
            "could not block SIGTERM for sigwait".into(),
        ));
    }
    let own_token = AuditToken::from_pid(std::process::id() as i32).map_err(|kr| {
        StartError::Setup(format!(
            "no audit token for the daemon itself (kern_return {kr})"
        ))
    })?;
    let shared = Arc::new(Shared {
        handler,
        counters: commands.counters.clone(),
        timebase: sys::timebase(),
        mapping: MappingContext {
            guard: identity(&own_token),
        },
        own_token,
    });

    let DaemonCommands { rx, tx, .. } = commands;
    let (process_stop_tx, process_stop_rx) = mpsc::channel::<()>();

    let (ready_tx, ready_rx) = mpsc::channel::<(&'static str, Result<(), StartError>)>();
    let process_thread = {
        let shared = shared.clone();
        let ready = ready_tx.clone();
        thread::Builder::new()
            .name("es-process".into())
            .spawn(move || process_client_thread(shared, ready, process_stop_rx))
            .map_err(|e| StartError::Setup(format!("spawning the process-client thread: {e}")))?
    };
    let file_thread = {
        let shared = shared.clone();
        let ready = ready_tx;
        let process_stop = process_stop_tx.clone();
        thread::Builder::new()
            .name("es-file".into())
            .spawn(move || {
                file_client_thread(shared, ready, rx);
                let _ = process_stop.send(());
            })
            .map_err(|e| StartError::Setup(format!("spawning the file-client thread: {e}")))?
    };
    // The signal thread outlives nothing that matters: the process exits after run_daemon.
    let signal_tx = tx.clone();
    thread::Builder::new()
        .name("es-signals".into())
        .spawn(move || {
            let sig = sys::wait_stop_signal();
            tracing::info!(signal = sig, "stopping on signal");
            let _ = signal_tx.send(DaemonCommand::Stop);
        })
        .map_err(|e| StartError::Setup(format!("spawning the signal thread: {e}")))?;

    let mut first_error = None;
    for _ in 0..2 {
        match ready_rx.recv() {
            Ok((_, Ok(()))) => {}
            Ok((which, Err(e))) => {
                tracing::error!(client = which, error = %e, "Endpoint Security client failed to start");
                first_error.get_or_insert(e);
            }
            Err(_) => {
                first_error.get_or_insert(StartError::ThreadFailed(
                    "a client thread exited before it started".into(),
                ));
            }
        }
    }
    if first_error.is_some() {
        let _ = tx.send(DaemonCommand::Stop);
        let _ = process_stop_tx.send(());
    } else {
        tracing::info!(version = %version, "agent-guard daemon running");
    }

    let file_result = file_thread.join();
    let _ = process_stop_tx.send(());
    let process_result = process_thread.join();
    let misses = shared.counters.snapshot();
    tracing::info!(?misses, "agent-guard daemon stopped");
    if let Some(e) = first_error {
        return Err(e);
    }
    if file_result.is_err() || process_result.is_err() {
        return Err(StartError::ThreadFailed(
            "an Endpoint Security thread panicked".into(),
        ));
    }
    Ok(())
}

/// State shared by both clients.
struct Shared {
    handler: Arc<dyn EsHandler>,
    counters: Arc<DeadlineCounters>,
    timebase: Timebase,
    mapping: MappingContext,
    own_token: AuditToken,
}

/// The ES error that stops a client, mapped to what the user must do.
fn start_error(e: NewClientError) -> StartError {
    match e {
        NewClientError::NotEntitled => StartError::NotEntitled,
        NewClientError::NotPermitted => StartError::NotPermitted,
        NewClientError::NotPrivileged => StartError::NotPrivileged,
        NewClientError::TooManyClients => StartError::TooManyClients,
        other => StartError::Rejected(format!("{other:?}")),
    }
}

fn setup(what: &str) -> impl Fn(ReturnError) -> StartError + '_ {
    move |e| StartError::Setup(format!("{what}: {e:?}"))
}

type Ready = mpsc::Sender<(&'static str, Result<(), StartError>)>;

fn file_client_thread(shared: Arc<Shared>, ready: Ready, commands: Receiver<DaemonCommand>) {
    let worker = match DecisionWorker::spawn(
        "es-file-decide",
        shared.handler.clone(),
        Arc::new(LiveInspector),
    ) {
        Ok(w) => w,
        Err(e) => {
            let _ = ready.send((
                "file",
                Err(StartError::Setup(format!(
                    "spawning a decision worker: {e}"
                ))),
            ));
            return;
        }
    };
    let handler_state = AssertUnwindSafe((shared.clone(), worker));
    let client = Client::new(move |client, message| {
        let (shared, worker) = &*handler_state;
        on_file_message(shared, worker, client, message);
    });
    let mut client = match client {
        Ok(c) => c,
        Err(e) => {
            let _ = ready.send(("file", Err(start_error(e))));
            return;
        }
    };
    let started = (|| {
        client
            .mute_process(&shared.own_token)
            .map_err(setup("muting the daemon"))?;
        // Select before subscribing, so the first event already respects the selection.
        let selection = current_selection(&shared);
        let mut applied = MutingSelection::default();
        apply_selection(&mut client, &applied, &selection)?;
        applied = selection;
        client
            .subscribe(&FILE_EVENTS)
            .map_err(setup("subscribing the file client"))?;
        Ok(applied)
    })();
    let mut applied = match started {
        Ok(applied) => {
            let _ = ready.send(("file", Ok(())));
            applied
        }
        Err(e) => {
            let _ = ready.send(("file", Err(e)));
            return;
        }
    };
    while let Ok(command) = commands.recv() {
        match command {
            DaemonCommand::Stop => break,
            DaemonCommand::RefreshMuting => {
                let next = current_selection(&shared);
                match apply_selection(&mut client, &applied, &next) {
                    Ok(()) => applied = next,
                    // Keep the old selection (still a valid one) and say why.
                    Err(e) => {
                        tracing::error!(error = %e, "could not apply the new muting selection")
                    }
                }
            }
        }
    }
    let _ = client.unsubscribe_all();
}

/// The selection for the handler's current roots on this machine's boot volume.
fn current_selection(shared: &Shared) -> MutingSelection {
    let roots = shared.handler.watched_roots();
    let selection = roots.selection(sys::case_insensitive(Path::new("/")));
    tracing::info!(
        prefixes = selection.prefixes.len(),
        literals = selection.literals.len(),
        everything = selection.everything,
        "file client muting selection"
    );
    selection
}

/// Make the client's target-path muting equal `next`, adding before removing so that no zone is
/// unwatched in between.
fn apply_selection(
    client: &mut Client<'_>,
    previous: &MutingSelection,
    next: &MutingSelection,
) -> Result<(), StartError> {
    let inverted = matches!(
        client.muting_inverted(es_mute_inversion_type_t::ES_MUTE_INVERSION_TYPE_TARGET_PATH),
        Ok(MuteInvertedType::Inverted)
    );
    if next.everything {
        // Deliver everything: no inversion, nothing muted by target.
        if inverted {
            client
                .invert_muting(es_mute_inversion_type_t::ES_MUTE_INVERSION_TYPE_TARGET_PATH)
                .map_err(setup("un-inverting target-path muting"))?;
        }
        return client
            .unmute_all_target_paths()
            .map_err(setup("clearing target-path mutes"));
    }
    if !inverted {
        client
            .unmute_all_target_paths()
            .map_err(setup("clearing target-path mutes"))?;
        client
            .invert_muting(es_mute_inversion_type_t::ES_MUTE_INVERSION_TYPE_TARGET_PATH)
            .map_err(setup("inverting target-path muting"))?;
    }
    let prefix = es_mute_path_type_t::ES_MUTE_PATH_TYPE_TARGET_PREFIX;
    let literal = es_mute_path_type_t::ES_MUTE_PATH_TYPE_TARGET_LITERAL;
    for path in &next.prefixes {
        client
            .mute_path(path.as_os_str(), prefix)
            .map_err(|e| StartError::Setup(format!("selecting {}: {e:?}", path.display())))?;
    }
    for path in &next.literals {
        client
            .mute_path(path.as_os_str(), literal)
            .map_err(|e| StartError::Setup(format!("selecting {}: {e:?}", path.display())))?;
    }
    for path in previous
        .prefixes
        .iter()
        .filter(|p| !next.prefixes.contains(p))
    {
        let _ = client.unmute_path(path.as_os_str(), prefix);
    }
    for path in previous
        .literals
        .iter()
        .filter(|p| !next.literals.contains(p))
    {
        let _ = client.unmute_path(path.as_os_str(), literal);
    }
    Ok(())
}

fn process_client_thread(shared: Arc<Shared>, ready: Ready, stop: Receiver<()>) {
    let worker = match DecisionWorker::spawn(
        "es-process-decide",
        shared.handler.clone(),
        Arc::new(LiveInspector),
    ) {
        Ok(w) => w,
        Err(e) => {
            let _ = ready.send((
                "process",
                Err(StartError::Setup(format!(
                    "spawning a decision worker: {e}"
                ))),
            ));
            return;
        }
    };
    let handler_state = AssertUnwindSafe((shared.clone(), worker));
    let client = Client::new(move |client, message| {
        let (shared, worker) = &*handler_state;
        on_process_message(shared, worker, client, message);
    });
    let mut client = match client {
        Ok(c) => c,
        Err(e) => {
            let _ = ready.send(("process", Err(start_error(e))));
            return;
        }
    };
    let started = client
        .mute_process(&shared.own_token)
        .map_err(setup("muting the daemon"))
        .and_then(|()| {
            client
                .subscribe(&PROCESS_EVENTS)
                .map_err(setup("subscribing the process client"))
        });
    let ok = started.is_ok();
    let _ = ready.send(("process", started));
    if ok {
        let _ = stop.recv();
        let _ = client.unsubscribe_all();
    }
}

fn on_file_message(
    shared: &Shared,
    worker: &DecisionWorker,
    client: &mut Client<'_>,
    message: Message,
) {
    let Some(event) = message.event() else {
        return;
    };
    let request = file_request(&event);
    let is_open = matches!(event, EsEvent::AuthOpen(_));
    let allow = match request {
        Some(request) => decide(shared, worker, &message, &request),
        // A truncated path cannot be judged: fail mode, counted.
        None => answer_unreadable(&*shared.handler, &shared.counters),
    };
    respond(client, &message, is_open, allow);
}

fn on_process_message(
    shared: &Shared,
    worker: &DecisionWorker,
    client: &mut Client<'_>,
    message: Message,
) {
    let Some(event) = message.event() else {
        return;
    };
    match &event {
        EsEvent::NotifyFork(fork) => {
            let parent = actor_facts(&message.process());
            let child = actor_facts(&fork.child());
            shared.handler.on_fork(&parent, &child);
        }
        EsEvent::NotifyExit(_) => {
            shared
                .handler
                .on_exit(identity(&message.process().audit_token()));
        }
        EsEvent::AuthExec(exec) => {
            let target = exec.target();
            let exe = path_of(&target.executable());
            let args: Vec<String> = exec.args().map(lossy).collect();
            let request = EsRequest::Exec {
                target: exe.clone().unwrap_or_default(),
                args: args.clone(),
                script: exec.script().map(|f| PathBuf::from(f.path())),
            };
            let allow = if exe.is_none() {
                answer_unreadable(&*shared.handler, &shared.counters)
            } else {
                decide(shared, worker, &message, &request)
            };
            if allow {
                // Before answering, so the new image is attributed before it can act.
                let before = identity(&message.process().audit_token());
                let after = actor_facts(&target);
                shared.handler.on_exec(
                    before,
                    &after,
                    exe.as_deref().unwrap_or(Path::new("")),
                    &args,
                );
            }
            respond(client, &message, false, allow);
        }
        EsEvent::AuthGetTask(get_task) => {
            let request = EsRequest::TaskPort {
                target: identity(&get_task.target().audit_token()),
            };
            let allow = decide(shared, worker, &message, &request);
            respond(client, &message, false, allow);
        }
        EsEvent::AuthSignal(signal) => {
            let request = EsRequest::Signal {
                target: identity(&signal.target().audit_token()),
                signal: signal.sig(),
            };
            let allow = decide(shared, worker, &message, &request);
            respond(client, &message, false, allow);
        }
        _ => {}
    }
}

fn respond(client: &mut Client<'_>, message: &Message, is_open: bool, allow: bool) {
    let result = match kernel_answer(is_open, allow) {
        KernelAnswer::Flags(flags) => client.respond_flags_result(message, flags, CACHE_ANSWERS),
        KernelAnswer::Auth { allow } => {
            let result = if allow {
                es_auth_result_t::ES_AUTH_RESULT_ALLOW
            } else {
                es_auth_result_t::ES_AUTH_RESULT_DENY
            };
            client.respond_auth_result(message, result, CACHE_ANSWERS)
        }
    };
    if let Err(e) = result {
        tracing::warn!(error = ?e, "Endpoint Security rejected an answer");
    }
}

/// Decide a request within the deadline budget; true = allow.
fn decide(
    shared: &Shared,
    worker: &DecisionWorker,
    message: &Message,
    request: &EsRequest,
) -> bool {
    let plan = deadline::plan(message.raw_deadline(), sys::now_ticks(), shared.timebase);
    let process = message.process();
    let facts = actor_facts(&process);
    let actor = actor_of(&process, &facts);
    let ctx = AnswerContext {
        handler: &*shared.handler,
        worker,
        counters: &shared.counters,
        mapping: &shared.mapping,
    };
    answer(&ctx, plan, facts, &actor, request)
}

/// Copy a file AUTH event into plain values. `None` when ES truncated a path (longer than it
/// reports): such an event cannot be judged and gets the fail-mode answer.
fn file_request(event: &EsEvent<'_>) -> Option<EsRequest> {
    Some(match event {
        EsEvent::AuthUnlink(e) => EsRequest::Unlink {
            target: path_of(&e.target())?,
            target_mode: mode_of(&e.target()),
        },
        EsEvent::AuthRename(e) => EsRequest::Rename {
            source: path_of(&e.source())?,
            source_mode: mode_of(&e.source()),
            destination: match e.destination()? {
                EventRenameDestinationFile::ExistingFile { file, .. } => {
                    EsDestination::ExistingFile(path_of(&file)?)
                }
                EventRenameDestinationFile::NewPath {
                    directory,
                    filename,
                    ..
                } => EsDestination::NewPath {
                    dir: path_of(&directory)?,
                    name: filename.to_os_string(),
                },
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
                EventCreateDestinationFile::ExistingFile { file, .. } => {
                    EsDestination::ExistingFile(path_of(&file)?)
                }
                EventCreateDestinationFile::NewPath {
                    directory,
                    filename,
                    ..
                } => EsDestination::NewPath {
                    dir: path_of(&directory)?,
                    name: filename.to_os_string(),
                },
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
        _ => return None,
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

fn identity(token: &AuditToken) -> ProcessIdentity {
    ProcessIdentity {
        pid: token.pid(),
        pidversion: token.pidversion(),
    }
}

/// Everything the message says about a process, without a syscall.
fn actor_facts(process: &Process<'_>) -> ActorFacts {
    ActorFacts {
        process: identity(&process.audit_token()),
        ppid: process.ppid(),
        original_ppid: process.original_ppid(),
        parent: process.parent_audit_token().map(|t| identity(&t)),
        responsible: process.responsible_audit_token().map(|t| identity(&t)),
        signing: SigningInfo {
            signing_id: non_empty(process.signing_id()),
            team_id: non_empty(process.team_id()),
            cdhash: process.cdhash(),
            platform_binary: process.is_platform_binary(),
        },
    }
}

fn actor_of(process: &Process<'_>, facts: &ActorFacts) -> Actor {
    let exe = PathBuf::from(process.executable().path());
    Actor {
        pid: facts.process.pid,
        comm: comm_of(&exe),
        exe,
        argv0: String::new(),
        args: Vec::new(),
        signing_id: facts.signing.signing_id.clone(),
        team_id: facts.signing.team_id.clone(),
    }
}
