//! The runtime's side of keeping (docs/snapshots.md): a sensor's agent sessions, the brake on
//! mass destruction, what a sensor reports once it has kept (or could not keep), the content
//! hashes computed after the fact, the state a session leaves behind, and the store's retention.
//!
//! The sensor asks [`Runtime::decide_in`] (or `decide_lazily`) with its session; a
//! [`Verdict::Keep`] comes back unrecorded, the sensor keeps, and [`Runtime::settle`] records the
//! outcome and says the final answer. Nothing here keeps anything itself, and nothing here
//! blocks a decision: records and hashes are queued.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::Runtime;
use crate::audit::{EndState, KeptRecord, KeptUpdate};
use crate::engine::{brake, keep_refused};
use crate::snapshots::{purge, restore, Session, SessionId};
use crate::vocab::time::unix_millis;
use crate::vocab::{Attribution, EntryKind, Event, Keep, KeepOutcome, KeptEntry, KeptHow, Verdict};

/// How often the running sensor purges expired sessions from the store.
pub(super) const PURGE_INTERVAL: Duration = Duration::from_secs(60);

/// A kept file to hash: its session, number and place in the store.
pub(super) enum HashJob {
    File {
        session: String,
        seq: u64,
        path: PathBuf,
    },
    /// Answer once everything before it is hashed.
    Drain(mpsc::Sender<()>),
}

impl Runtime {
    /// A new agent session; `tag` says who started it (Linux: the supervisor's pid; macOS: the
    /// agent's `pid.pidversion`).
    pub fn open_session(&self, tag: &str) -> Arc<Session> {
        let policy = self.policy.load();
        let session = Arc::new(Session::new(
            SessionId::new(SystemTime::now(), tag),
            &self.config.locations.store,
            Arc::clone(&self.budget),
            policy.snapshots,
        ));
        self.sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Arc::clone(&session));
        session
    }

    /// A keep verdict becomes the brake's refusal when the session has destroyed too much lately
    /// (the brake then holds for a window, unless a human approves an override meanwhile).
    pub(super) fn apply_brake(
        &self,
        session: &Session,
        event: &Event,
        verdict: Verdict,
        now: SystemTime,
    ) -> Verdict {
        let Verdict::Keep(keep) = &verdict else {
            return verdict;
        };
        let policy = self.policy.load();
        let now_ms = unix_millis(now);
        let grants = self.grants.current();
        session.lift_brake_for(grants.grants.iter().map(|g| g.id.as_str()));
        let window_ms = policy.snapshots.brake.window_secs as i64 * 1000;
        let state = session.brake_state(now_ms, window_ms);
        match brake(&event.action, keep, &state, &policy, now_ms) {
            None => verdict,
            Some(denial) => {
                if state.on_until_ms.is_none() {
                    let approved = grants.grants.iter().map(|g| g.id.clone()).collect();
                    session.put_brake_on(now_ms + window_ms, approved);
                }
                Verdict::Deny(denial)
            }
        }
    }

    /// Record what the sensor did with `keep` for `event` and say the final answer: allowed
    /// (kept, or nothing there to keep), or refused with why it could not be kept.
    pub fn settle(
        &self,
        session: &Session,
        event: &Event,
        attribution: &Attribution,
        start_key: u64,
        keep: &Keep,
        outcome: KeepOutcome,
    ) -> Verdict {
        let policy = self.policy.load();
        let now = SystemTime::now();
        let entries = match outcome {
            KeepOutcome::Failed { path, failure } => {
                let denial = keep_refused(&event.action, keep, &path, &failure);
                return self.account(
                    event,
                    attribution,
                    start_key,
                    Verdict::Deny(denial),
                    &policy,
                    now,
                );
            }
            KeepOutcome::Kept(entries) if entries.is_empty() => {
                return self.account(event, attribution, start_key, Verdict::Allow, &policy, now)
            }
            KeepOutcome::Kept(entries) => entries,
        };
        session.note_kept(&entries);
        if keep.removes_names() {
            let counted = entries
                .iter()
                .filter(|e| e.kind != EntryKind::Dir || e.how != KeptHow::Recorded);
            let counted: Vec<&KeptEntry> = counted
                .filter(|e| crate::engine::keep::counts_for_brake(&e.path))
                .collect();
            let bytes = counted.iter().map(|e| e.size).sum();
            session.count_destroyed(unix_millis(now), counted.len() as u64, bytes);
        }
        self.counters
            .kept
            .fetch_add(entries.len() as u64, Ordering::Relaxed);
        let verdict = Verdict::Keep(keep.clone());
        let verdict = self.account(event, attribution, start_key, verdict, &policy, now);
        if let (Some(store), Attribution::Agent(agent)) = (self.store.get(), attribution) {
            for entry in &entries {
                let mut record =
                    KeptRecord::new(session.id.as_str(), event, agent, &keep.rule, entry, now);
                // Settled before the sensor notes what the call did to names: whether the path
                // was the session's own before the call.
                record.new_in_session = session.new_names.is_new(&entry.path);
                store.record_kept(record);
            }
        }
        if let Some(hasher) = self.hasher.get() {
            let hasher = hasher.lock().unwrap_or_else(|e| e.into_inner());
            for entry in &entries {
                if let (Some(name), EntryKind::File) = (&entry.store_name, entry.kind) {
                    let _ = hasher.send(HashJob::File {
                        session: session.id.to_string(),
                        seq: entry.seq,
                        path: self.config.locations.store.join(name),
                    });
                }
            }
        }
        verdict
    }

    /// The session's last process has exited: record the state it left at every path it kept
    /// (see [`EndState`]), after the hashes still being computed.
    pub fn end_session(&self, session: &Session) {
        if let Some(hasher) = self.hasher.get() {
            let (done, wait) = mpsc::channel();
            let sent = hasher
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .send(HashJob::Drain(done));
            if sent.is_ok() {
                let _ = wait.recv();
            }
        }
        if let Some(store) = self.store.get() {
            for path in session.kept_paths() {
                store.update_kept(KeptUpdate::EndState {
                    session: session.id.to_string(),
                    path: path.to_string_lossy().into_owned(),
                    state: EndState::of(&path),
                });
            }
        }
        self.sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|s| s.id != session.id);
    }

    /// Start the thread that hashes kept files off the decision path.
    pub(super) fn start_hasher(self: &Arc<Self>) {
        let (jobs, rx) = mpsc::channel::<HashJob>();
        let me = Arc::downgrade(self);
        let started = std::thread::Builder::new()
            .name("agent-guard-hasher".into())
            .stack_size(256 * 1024)
            .spawn(move || {
                for job in rx {
                    match job {
                        HashJob::Drain(done) => {
                            let _ = done.send(());
                        }
                        HashJob::File { session, seq, path } => {
                            let Ok(sha256) = restore::sha256_of(&path) else {
                                continue;
                            };
                            let Some(runtime) = me.upgrade() else { return };
                            if let Some(store) = runtime.store.get() {
                                store.update_kept(KeptUpdate::Hash {
                                    session,
                                    seq,
                                    sha256,
                                });
                            }
                        }
                    }
                }
            });
        if started.is_ok() {
            let _ = self.hasher.set(std::sync::Mutex::new(jobs));
        }
    }

    /// Purge the sessions older than the policy's `snapshots.max_age` (not this process's own)
    /// and count what the store holds now.
    pub(super) fn purge_store(&self) {
        let policy = self.policy.load();
        let root = &self.config.locations.store;
        let running: Vec<SessionId> = self
            .sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|s| s.id.clone())
            .collect();
        let max_age = Duration::from_secs(policy.snapshots.max_age);
        match purge::expired(root, max_age, SystemTime::now(), &running) {
            Ok(expired) if !expired.is_empty() => {
                let mut gone = Vec::new();
                for s in expired {
                    match purge::remove_session(root, &s.id) {
                        Ok(()) => gone.push(s.id.to_string()),
                        Err(e) => tracing::warn!("snapshot session {} not purged: {e}", s.id),
                    }
                }
                if let Some(store) = self.store.get() {
                    let _ = store.forget_sessions(gone);
                }
            }
            Ok(_) => {}
            Err(e) => tracing::warn!("the snapshot store {} is not readable: {e}", root.display()),
        }
        self.budget.set_used(purge::store_size(root));
        self.budget.set_limit(policy.snapshots.max_bytes);
        for session in self
            .sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            session.set_limits(policy.snapshots);
        }
    }
}
