//! The Endpoint Security clients (macOS only): two clients on two threads, as Santa does,
//! because a client is made and deleted on one thread and each has its own muting.
//!
//! - The **file client** subscribes to the file AUTH events and inverts target-path muting so
//!   that the kernel delivers only events inside the policy's zones and the guard's own files
//!   (`glue::setup::FileMuting`), re-selected on [`DaemonCommand::RefreshMuting`].
//! - The **process client** authorizes exec, signals, task ports and suspension of the daemon.
//! - Both deliver fork and exit to the lineage (the process client exec too), so that each
//!   client judges with the forks it delivered before.
//!
//! Each message is copied into plain values ([`convert`]) and handed to the glue, which answers
//! it on the ES thread or through the worker pool; this file only makes, runs and stops the
//! clients. A stop (SIGTERM, SIGINT, SIGHUP: blocked in `main` before any thread, waited for here)
//! unsubscribes both clients, answers every message still waiting, lets the workers finish, and
//! only then deletes the clients, each on its own thread.

pub mod client;
pub mod convert;

use std::cell::{Cell, RefCell};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, OnceLock};
use std::thread;
use std::time::Duration;

use endpoint_sec::sys::NewClientError;
use endpoint_sec::{AuditToken, Message};

use crate::platform::macos::api::{EsCallError, EsClient};
use crate::platform::macos::control::{DaemonCommand, DaemonCommands, Stopped};
use crate::platform::macos::deadline::Timebase;
use crate::platform::macos::glue::setup::{start_process_client, FileMuting};
use crate::platform::macos::glue::{ClientGlue, Sensor, QUEUE_CAPACITY};
use crate::platform::macos::handler::EsHandler;
use crate::platform::macos::mapping::MappingContext;
use crate::platform::macos::muting::MutingSelection;
use crate::platform::macos::start::{check_os_version, StartError};
use crate::platform::macos::sys::{self, LiveInspector};

use client::{ClientOwner, RealClient};

/// How long a stop waits for the workers and the messages in flight.
const STOP_LIMIT: Duration = Duration::from_secs(5);

type Glue = ClientGlue<RealClient>;
type Ready = Sender<(&'static str, Result<(), StartError>)>;

/// Run the daemon until a stop signal or [`DaemonCommand::Stop`]. Blocks.
///
/// Fails at start with a [`StartError`] whose message says what to do (not root, no
/// entitlement, no Full Disk Access, macOS older than 13).
pub fn run_daemon(
    handler: Arc<dyn EsHandler>,
    commands: DaemonCommands,
) -> Result<Stopped, StartError> {
    if !sys::is_root() {
        return Err(StartError::NotPrivileged);
    }
    let version = sys::os_product_version().unwrap_or_default();
    let (major, minor, patch) = check_os_version(&version)?;
    endpoint_sec::version::set_runtime_version(major, minor, patch);
    // Blocked in `main` already (before any thread): this thread's mask only, for the record.
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
    let workers = thread::available_parallelism().map_or(2, |n| n.get().clamp(2, 8));
    let sensor = Sensor::start(
        handler,
        Arc::new(LiveInspector),
        MappingContext {
            guard: convert::identity(&own_token),
        },
        commands.counters.clone(),
        workers,
        QUEUE_CAPACITY,
    )
    .map_err(|e| StartError::Setup(format!("starting the decision workers: {e}")))?;
    let timebase = sys::timebase();

    let DaemonCommands { rx, tx, .. } = commands;
    let (ready_tx, ready_rx) = mpsc::channel();
    let (process_stop_tx, process_stop_rx) = mpsc::channel::<()>();
    let (unsubscribed_tx, unsubscribed_rx) = mpsc::channel::<&'static str>();
    let (process_delete_tx, process_delete_rx) = mpsc::channel::<()>();
    let (file_delete_tx, file_delete_rx) = mpsc::channel::<()>();

    let client_setup = |ready, unsubscribed, delete| ClientSetup {
        sensor: sensor.clone(),
        token: own_token,
        timebase,
        ready,
        unsubscribed,
        delete,
    };
    let process_thread = {
        let setup_process =
            client_setup(ready_tx.clone(), unsubscribed_tx.clone(), process_delete_rx);
        thread::Builder::new()
            .name("es-process".into())
            .spawn(move || {
                client_thread(
                    "process",
                    setup_process,
                    |glue| {
                        start_process_client(&**glue.client())
                            .map_err(setup("starting the process client"))
                    },
                    |glue| {
                        let _ = process_stop_rx.recv();
                        if let Err(e) = glue.client().unsubscribe_all() {
                            tracing::warn!("process client: {e}");
                        }
                    },
                )
            })
            .map_err(|e| StartError::Setup(format!("spawning the process-client thread: {e}")))?
    };
    let file_thread = {
        let setup_file = client_setup(ready_tx, unsubscribed_tx, file_delete_rx);
        let process_stop = process_stop_tx.clone();
        thread::Builder::new()
            .name("es-file".into())
            .spawn(move || {
                let muting = RefCell::new(None);
                let stopped_by = Cell::new(None);
                let handler = setup_file.sensor.handler().clone();
                client_thread(
                    "file",
                    setup_file,
                    |glue| {
                        let selection = current_selection(&*handler);
                        let started = FileMuting::start(&**glue.client(), &selection)
                            .map_err(setup("starting the file client"))?;
                        *muting.borrow_mut() = Some(started);
                        Ok(())
                    },
                    |glue| {
                        serve_file_client(glue, &rx, &*handler, &muting, &stopped_by);
                        let _ = process_stop.send(());
                    },
                );
                let _ = process_stop.send(());
                stopped_by.get()
            })
            .map_err(|e| StartError::Setup(format!("spawning the file-client thread: {e}")))?
    };
    // The signals were blocked in `main`: only this thread takes them.
    let signal_tx = tx.clone();
    thread::Builder::new()
        .name("es-signals".into())
        .spawn(move || {
            let signal = sys::wait_stop_signal();
            tracing::info!(signal, "stopping on signal");
            let _ = signal_tx.send(DaemonCommand::Stop {
                signal: Some(signal),
            });
        })
        .map_err(|e| StartError::Setup(format!("spawning the signal thread: {e}")))?;

    let mut first_error = None;
    let mut started = 0;
    for _ in 0..2 {
        match ready_rx.recv() {
            Ok((_, Ok(()))) => started += 1,
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
        let _ = tx.send(DaemonCommand::Stop { signal: None });
        let _ = process_stop_tx.send(());
    } else {
        tracing::info!(version = %version, workers, "agent-guard daemon running");
    }

    // Both clients unsubscribed: nothing new arrives. Answer what waits, then delete them.
    for _ in 0..started {
        let _ = unsubscribed_rx.recv();
    }
    if !sensor.stop(STOP_LIMIT) {
        tracing::warn!("messages were still held at the stop");
    }
    drop((process_delete_tx, file_delete_tx));
    let file_result = file_thread.join();
    let _ = process_stop_tx.send(());
    let process_result = process_thread.join();
    let counters = sensor.counters().snapshot();
    tracing::info!(?counters, "agent-guard daemon stopped");
    if let Some(e) = first_error {
        return Err(e);
    }
    match (file_result, process_result) {
        (Ok(Some(signal)), Ok(())) => Ok(Stopped::Signal(signal)),
        (Ok(None), Ok(())) => Ok(Stopped::Asked),
        _ => Err(StartError::ThreadFailed(
            "an Endpoint Security thread panicked".into(),
        )),
    }
}

/// The file client's loop: re-select on a policy reload, until a stop (whose signal it notes).
/// Unsubscribes at the end: from then on nothing new arrives.
fn serve_file_client(
    glue: &Arc<Glue>,
    commands: &Receiver<DaemonCommand>,
    handler: &dyn EsHandler,
    muting: &RefCell<Option<FileMuting>>,
    stopped_by: &Cell<Option<i32>>,
) {
    while let Ok(command) = commands.recv() {
        match command {
            DaemonCommand::Stop { signal } => {
                stopped_by.set(signal);
                break;
            }
            DaemonCommand::RefreshMuting => {
                let next = current_selection(handler);
                if let Some(muting) = muting.borrow_mut().as_mut() {
                    if let Err(e) = muting.refresh(&**glue.client(), &next) {
                        tracing::error!(error = %e, "the new muting selection is not fully applied; the old one is kept");
                    }
                }
            }
        }
    }
    if let Err(e) = glue.client().unsubscribe_all() {
        tracing::warn!("file client: {e}");
    }
}

/// What every client thread needs to make its client, and to tell the main thread how it goes.
struct ClientSetup {
    sensor: Arc<Sensor>,
    token: AuditToken,
    timebase: Timebase,
    ready: Ready,
    /// Told once the client is unsubscribed after a stop.
    unsubscribed: Sender<&'static str>,
    /// Closed when the client may be deleted (every message it delivered is answered).
    delete: Receiver<()>,
}

/// Make a client whose messages go to its glue, `start` it, report, `serve` until a stop, say
/// so, wait for the go-ahead, and delete the client on this thread.
fn client_thread(
    which: &'static str,
    setup: ClientSetup,
    start: impl FnOnce(&Arc<Glue>) -> Result<(), StartError>,
    serve: impl FnOnce(&Arc<Glue>),
) {
    let ClientSetup {
        sensor,
        token,
        timebase,
        ready,
        unsubscribed,
        delete,
    } = setup;
    let slot: Arc<OnceLock<Arc<Glue>>> = Arc::default();
    let handler_slot = slot.clone();
    let owner = ClientOwner::new(token, move |raw, handed_over| {
        let Some(glue) = handler_slot.get() else {
            // Subscribed only after the glue is set, so this cannot happen; if it did, the
            // block allows an AUTH message.
            return;
        };
        // SAFETY: `raw` is the message ES passed to the handler block, live for this call.
        let retained = unsafe { client::RetainedMessage::retain(raw) };
        // SAFETY: as above; endpoint-sec's view retains it again for its own lifetime.
        let view = unsafe { Message::from_raw(raw) };
        if let Some(incoming) = convert::incoming(&view, retained, timebase) {
            // The glue puts an AUTH message under its PendingAuth first thing.
            handed_over.set(true);
            glue.on_message(incoming);
        }
    });
    let owner = match owner {
        Ok(owner) => owner,
        Err(e) => {
            let _ = ready.send((which, Err(start_error(e))));
            return;
        }
    };
    let glue = Arc::new(ClientGlue::new(owner.client().clone(), sensor));
    let _ = slot.set(glue.clone());
    let started = start(&glue);
    let ok = started.is_ok();
    let _ = ready.send((which, started));
    if ok {
        serve(&glue);
        let _ = unsubscribed.send(which);
        let _ = delete.recv();
    }
    drop(owner);
}

/// The selection for the handler's current roots on this machine's boot volume.
fn current_selection(handler: &dyn EsHandler) -> MutingSelection {
    let selection = handler
        .watched_roots()
        .selection(sys::case_insensitive(std::path::Path::new("/")));
    tracing::info!(
        prefixes = selection.prefixes.len(),
        literals = selection.literals.len(),
        open_prefixes = selection.open_prefixes.len(),
        everything = selection.everything,
        "file client muting selection"
    );
    selection
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

fn setup(what: &'static str) -> impl Fn(EsCallError) -> StartError {
    move |e| StartError::Setup(format!("{what}: {e}"))
}
