//! Hot reload: watch the policy file and swap in each new valid version.
//!
//! The watcher (the `notify` crate: inotify on Linux, FSEvents on macOS) watches the file's
//! *directory*, so a file replaced by rename (as editors and `mv` do) is seen like one written in
//! place. Each change is validated; a valid policy is swapped in atomically ([`ArcSwap`]) so
//! deciders never block or see half a policy; an invalid one keeps the last good policy and its
//! error is reported once (until the file changes again).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use notify::event::{AccessKind, AccessMode, ModifyKind};
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
    /// Returns whether the policy changed.
    fn try_swap(&self, file: &Path, ctx: &LoadContext) -> bool {
        let Ok(policy) = load_file(file, ctx) else {
            return false;
        };
        let mut status = self.status.lock().unwrap_or_else(|e| e.into_inner());
        let changed = policy.version != self.current.load().version;
        self.current.store(Arc::new(policy));
        status.last_error = None;
        if changed {
            status.reloads += 1;
            status.last_reload = Some(SystemTime::now());
        }
        changed
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

/// How long a half-written file is given to settle before its error is reported.
const SETTLE: Duration = Duration::from_millis(30);

/// Keeps the watch alive; dropping it stops watching.
pub struct PolicyWatcher {
    _watcher: notify::RecommendedWatcher,
}

/// Watch `file` and reload `live` when it changes. `on_event` is told about each reload: `Ok(true)`
/// for a new policy, `Err` for an invalid file (once per distinct error).
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
    let name = file.file_name().map(|n| n.to_os_string());
    let watched = file.clone();
    let mut watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        let Ok(event) = res else { return };
        let closed_after_write = matches!(
            event.kind,
            EventKind::Access(AccessKind::Close(AccessMode::Write))
        );
        if event.kind.is_access() && !closed_after_write {
            return;
        }
        let ours = event
            .paths
            .iter()
            .any(|p| p.file_name().map(|n| n.to_os_string()) == name);
        if !ours || !watched.exists() {
            return;
        }
        // A write in place (truncate, then write) is seen half done. Where the kernel reports
        // the writer's close (inotify), a data change is only tried quietly and the close
        // settles it; elsewhere, a failing file gets a moment before its error is reported.
        // The last good policy stays in force meanwhile.
        if matches!(event.kind, EventKind::Modify(ModifyKind::Data(_))) && cfg!(target_os = "linux")
        {
            if live.try_swap(&watched, &ctx) {
                on_event(Ok(true));
            }
            return;
        }
        if !closed_after_write && load_file(&watched, &ctx).is_err() {
            std::thread::sleep(SETTLE);
        }
        match live.reload(&watched, &ctx) {
            Ok(false) => {}
            other => on_event(other),
        }
    })?;
    watcher.watch(&dir, RecursiveMode::NonRecursive)?;
    Ok(PolicyWatcher { _watcher: watcher })
}
