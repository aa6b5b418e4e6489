//! The grants in force, shared between a watcher and every decider (mirrors
//! [`crate::policy::watch::LivePolicy`]).
//!
//! The watcher (`notify`: inotify on Linux, FSEvents on macOS) watches the state *directory*, so
//! the atomic rename that publishes a new `grants.json` is seen. Each change is loaded and
//! swapped in whole ([`ArcSwap`]); deciders never block and never see half a set. A file that
//! cannot be read or parsed keeps the last good grants. Expiry needs no event: the engine
//! compares each grant's expiry with `now`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;
use notify::{RecursiveMode, Watcher};

use super::store::GrantStore;
use super::{now_unix, OverrideError};
use crate::paths::Locations;
use crate::vocab::Grants;

/// The approved overrides in force.
pub struct LiveGrants {
    current: ArcSwap<Grants>,
    store: GrantStore,
}

impl LiveGrants {
    /// Start from what `grants.json` holds now (no file: no grants; an unreadable file is an
    /// error, so a supervisor does not start with grants silently missing).
    pub fn load(locations: Locations) -> Result<Arc<LiveGrants>, OverrideError> {
        let store = GrantStore::new(locations);
        let grants = store.active(now_unix())?;
        Ok(Arc::new(LiveGrants {
            current: ArcSwap::from_pointee(grants),
            store,
        }))
    }

    /// The grants in force now. Cheap; never blocks.
    pub fn current(&self) -> Arc<Grants> {
        self.current.load_full()
    }

    /// Read `grants.json` again and swap it in. Returns whether the grants changed; on error the
    /// last good grants stay.
    pub fn reload(&self) -> Result<bool, OverrideError> {
        let grants = self.store.active(now_unix())?;
        let changed = *self.current.load_full() != grants;
        if changed {
            self.current.store(Arc::new(grants));
        }
        Ok(changed)
    }

    /// The earliest expiry among the grants in force: when the supervisor should call
    /// [`GrantStore::prune_expired`] to record the expiry in the audit trail. (The engine stops
    /// honouring the grant at that second regardless.)
    pub fn next_expiry(&self) -> Option<u64> {
        self.current()
            .grants
            .iter()
            .filter_map(|g| g.expires_at)
            .min()
    }

    /// The store behind these grants (to prune expired grants, record pending requests).
    pub fn store(&self) -> &GrantStore {
        &self.store
    }

    pub fn grants_file(&self) -> &Path {
        &self.store.locations.grants
    }
}

/// Keeps the watch alive; dropping it stops watching.
pub struct GrantWatcher {
    _watcher: notify::RecommendedWatcher,
}

/// Watch `grants.json` and reload `live` whenever it changes. `on_event` is told about each
/// reload that changed the grants (`Ok(true)`) and each failed one (`Err`).
///
/// Also watches the requests spool and records each new request in the audit trail as soon as
/// it appears ([`GrantStore::record_pending_requests`]): run by the supervisor, a process that
/// may write the trail, this freezes what the agent asked before a human looks at it.
pub fn watch_grants(
    live: Arc<LiveGrants>,
    on_event: impl Fn(Result<bool, OverrideError>) + Send + 'static,
) -> notify::Result<GrantWatcher> {
    let file: PathBuf = live.grants_file().to_path_buf();
    let dir = file
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    // The state dir may not exist before the first approval; watching needs it, and the agent
    // cannot create the directories it is allowed to write in.
    let _ = super::prepare_state_dir(&live.store.locations);
    let requests_dir = live.store.locations.requests_dir.clone();
    let store = live.store.clone();
    let live_requests_dir = requests_dir.clone();
    let name = file.file_name().map(|n| n.to_os_string());
    let after_start = Arc::clone(&live);
    let mut watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        let Ok(event) = res else { return };
        if event.kind.is_access() {
            return;
        }
        // A new request in the spool: record it now, which freezes its content for the
        // approval check (the agent may rewrite its file until then).
        if event
            .paths
            .iter()
            .any(|p| p.parent() == Some(requests_dir.as_path()))
        {
            let _ = store.record_pending_requests(now_unix());
            return;
        }
        let ours = event
            .paths
            .iter()
            .any(|p| p.file_name().map(|n| n.to_os_string()) == name);
        if !ours {
            return;
        }
        match live.reload() {
            Ok(false) => {}
            other => on_event(other),
        }
    })?;
    watcher.watch(&dir, RecursiveMode::NonRecursive)?;
    if let Err(e) = watcher.watch(&live_requests_dir, RecursiveMode::NonRecursive) {
        tracing::warn!("not watching the override requests spool: {e}");
    }
    // An approval between `LiveGrants::load` and the start of the watch would otherwise be missed.
    let _ = after_start.reload();
    Ok(GrantWatcher { _watcher: watcher })
}
