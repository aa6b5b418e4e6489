//! Hot reload: watch the policy file and swap in each new valid version.
//!
//! The watcher (the `notify` crate: inotify on Linux, FSEvents on macOS) watches the file's
//! *directory*, so a file replaced by rename (as editors and `mv` do) is seen like one written in
//! place. Each change is validated; a valid policy is swapped in atomically ([`ArcSwap`]) so
//! deciders never block or see half a policy; an invalid one keeps the last good policy and its
//! error is reported once (until the file changes again), after the file has been quiet for a
//! moment, so a version caught half-written is never reported.

use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use arc_swap::ArcSwap;
use notify::event::{AccessKind, AccessMode};
use notify::{EventKind, RecursiveMode, Watcher};

use super::{load_file, LoadContext, Policy, PolicyError};

/// The policy in force, shared between the watcher and every decider.
pub struct LivePolicy {
    current: ArcSwap<Policy>,
    status: Mutex<ReloadStatus>,
}

/// What the last reload did, for `status` and logs.
#[derive(Clone, Debug, Default)]
pub struct ReloadStatus {
    pub reloads: u64,
    pub last_reload: Option<SystemTime>,
    /// The error of the newest version of the file, while it is invalid.
    pub last_error: Option<String>,
}

impl LivePolicy {
    pub fn new(policy: Policy) -> Arc<LivePolicy> {
        Arc::new(LivePolicy {
            current: ArcSwap::from_pointee(policy),
            status: Mutex::default(),
        })
    }

    /// The policy in force now. Cheap; never blocks.
    pub fn load(&self) -> Arc<Policy> {
        self.current.load_full()
    }

    pub fn status(&self) -> ReloadStatus {
        self.status.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Swap in `file` if it is a valid policy now; say nothing if it is not (yet).
    /// Returns whether the policy changed, or `None` if the file is not valid now.
    fn try_swap(&self, file: &Path, ctx: &LoadContext) -> Option<bool> {
        let policy = load_file(file, ctx).ok()?;
        let mut status = self.status.lock().unwrap_or_else(|e| e.into_inner());
        let changed = policy.version != self.current.load().version;
        self.current.store(Arc::new(policy));
        status.last_error = None;
        if changed {
            status.reloads += 1;
            status.last_reload = Some(SystemTime::now());
        }
        Some(changed)
    }

    /// Load `file` again; swap it in if valid, keep the current policy if not.
    /// Returns the error only the first time a given error is seen.
    pub fn reload(&self, file: &Path, ctx: &LoadContext) -> Result<bool, PolicyError> {
        let result = load_file(file, ctx);
        let mut status = self.status.lock().unwrap_or_else(|e| e.into_inner());
        match result {
            Ok(policy) => {
                let changed = policy.version != self.current.load().version;
                self.current.store(Arc::new(policy));
                if changed {
                    status.reloads += 1;
                    status.last_reload = Some(SystemTime::now());
                }
                status.last_error = None;
                Ok(changed)
            }
            Err(e) => {
                let message = e.to_string();
                if status.last_error.as_deref() == Some(message.as_str()) {
                    return Ok(false);
                }
                status.last_error = Some(message);
                Err(e)
            }
        }
    }
}

/// How long the file must stay quiet before an invalid version's error is reported: a write in
/// place (truncate, then write) is seen half done, and a writer can be preempted between the two.
/// Only the report waits; a valid version is swapped in at the first event that shows it.
const SETTLE: Duration = Duration::from_millis(200);

/// Keeps the watch alive; dropping it stops watching (and ends the reload thread).
pub struct PolicyWatcher {
    _watcher: notify::RecommendedWatcher,
}

/// Watch `file` and reload `live` when it changes. `on_event` is told about each reload: `Ok(true)`
/// for a new policy, `Err` for an invalid file (once per distinct error, after the file has been
/// quiet for `SETTLE`, so a half-written file is never reported).
pub fn watch(
    live: Arc<LivePolicy>,
    file: PathBuf,
    ctx: LoadContext,
    on_event: impl Fn(Result<bool, PolicyError>) + Send + 'static,
) -> notify::Result<PolicyWatcher> {
    let dir = file
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    let (events, received) = mpsc::channel();
    let mut watcher = notify::recommended_watcher(events)?;
    watcher.watch(&dir, RecursiveMode::NonRecursive)?;
    std::thread::Builder::new()
        .name("policy-reload".into())
        .spawn(move || reload_loop(&received, &live, &file, &ctx, on_event))
        .map_err(notify::Error::io)?;
    Ok(PolicyWatcher { _watcher: watcher })
}

/// Serve the watcher's events until it is dropped. Every event that touches the file tries it
/// quietly; a failing file is reloaded for real (and its error reported) once no event has come
/// for [`SETTLE`].
fn reload_loop(
    received: &mpsc::Receiver<notify::Result<notify::Event>>,
    live: &LivePolicy,
    file: &Path,
    ctx: &LoadContext,
    on_event: impl Fn(Result<bool, PolicyError>),
) {
    let name = file.file_name();
    // A change made after the caller loaded `live` but before the watch began sent no event:
    // look at the file once now.
    let mut report_at = if file.exists() {
        try_now(live, file, ctx, &on_event)
    } else {
        None
    };
    loop {
        let next = match report_at {
            Some(at) => received.recv_timeout(at.saturating_duration_since(Instant::now())),
            None => received.recv().map_err(|_| RecvTimeoutError::Disconnected),
        };
        match next {
            Ok(Ok(event)) => {
                // Opens and reads change nothing; a writer's close does (it may be the only event
                // left once a burst is over).
                let closed_after_write = matches!(
                    event.kind,
                    EventKind::Access(AccessKind::Close(AccessMode::Write))
                );
                if event.kind.is_access() && !closed_after_write {
                    continue;
                }
                if !event.paths.iter().any(|p| p.file_name() == name) || !file.exists() {
                    continue;
                }
                report_at = try_now(live, file, ctx, &on_event);
            }
            Ok(Err(_)) => {}
            Err(RecvTimeoutError::Timeout) => {
                report_at = None;
                match live.reload(file, ctx) {
                    Ok(false) => {}
                    other => on_event(other),
                }
            }
            Err(RecvTimeoutError::Disconnected) => return,
        }
    }
}

/// Try the file as it is now: swapped in (and told, when it changed), or, while it is not valid,
/// when to report it if nothing else happens.
fn try_now(
    live: &LivePolicy,
    file: &Path,
    ctx: &LoadContext,
    on_event: &impl Fn(Result<bool, PolicyError>),
) -> Option<Instant> {
    match live.try_swap(file, ctx) {
        Some(changed) => {
            if changed {
                on_event(Ok(true));
            }
            None
        }
        None => Some(Instant::now() + SETTLE),
    }
}
