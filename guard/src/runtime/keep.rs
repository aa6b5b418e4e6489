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
use std::time::{Duration, Instant, SystemTime};

use super::Runtime;
use crate::audit::{EndState, KeptRecord, KeptUpdate};
use crate::engine::{brake, keep_refused};
use crate::snapshots::{purge, restore, Session, SessionId};
use crate::vocab::time::unix_millis;
use crate::vocab::{Attribution, EntryKind, Event, Keep, KeepOutcome, KeptEntry, KeptHow, Verdict};

/// How often the running sensor purges expired sessions from the store.
pub(super) const PURGE_INTERVAL: Duration = Duration::from_secs(60);

/// A kept file to hash: its session, number, place in the store and size.
pub(super) enum HashJob {
    File {
        session: String,
        seq: u64,
        path: PathBuf,
        size: u64,
    },
    /// Answer once everything before it is hashed.
    Drain(mpsc::Sender<()>),
}

/// How long the hasher sleeps between looks at its queue while files come, and how long none
/// must come before it hashes what waits: a burst of keeps (an `rm -rf`, a checkout) neither
/// wakes the hasher for each file nor shares the cores with the hashing of its own files, which
/// follows once it is over. The content does not change meanwhile: the store is the guard's
/// alone (a file the agent still holds open could be written through that fd, before as after
/// a hash), and a session's end waits for every hash.
const QUIET: Duration = Duration::from_millis(20);

/// What may wait for a quiet spell at most, in files and in bytes: past either, the oldest is
/// hashed at once, so that a session's end (which waits for every hash) and the rows without a
/// hash stay bounded.
const MAX_PENDING_FILES: usize = 8192;
const MAX_PENDING_BYTES: u64 = 256 << 20;
/// And in time: a steady trickle of keeps (never a quiet spell) leaves no row without its hash
/// for longer than this.
const MAX_PENDING_WAIT: Duration = Duration::from_secs(2);

/// A file waiting to be hashed.
struct Pending {
    session: String,
    seq: u64,
    path: PathBuf,
    size: u64,
    since: Instant,
}

/// The files waiting for a quiet spell, oldest first.
#[derive(Default)]
struct PendingHashes {
    files: std::collections::VecDeque<Pending>,
    bytes: u64,
}

impl PendingHashes {
    fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// Note a job: a file waits; a drain is answered once everything before it is hashed.
    fn take(&mut self, job: HashJob, drains: &mut Vec<mpsc::Sender<()>>) {
        match job {
            HashJob::File {
                session,
                seq,
                path,
                size,
            } => {
                self.bytes += size;
                self.files.push_back(Pending {
                    session,
                    seq,
                    path,
                    size,
                    since: Instant::now(),
                });
            }
            HashJob::Drain(done) => drains.push(done),
        }
    }

    /// The next file to hash: the oldest, if `all` are due, or more wait than the bounds allow,
    /// or it has waited too long.
    fn next(&mut self, all: bool) -> Option<Pending> {
        let over = self.files.len() > MAX_PENDING_FILES
            || self.bytes > MAX_PENDING_BYTES
            || self
                .files
                .front()
                .is_some_and(|f| f.since.elapsed() > MAX_PENDING_WAIT);
        if !(all || over) {
            return None;
        }
        let job = self.files.pop_front()?;
        self.bytes -= job.size;
        Some(job)
    }
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
                        size: entry.size,
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

    /// Start the thread that hashes kept files off the decision path, when the sessions are
    /// quiet (see [`QUIET`]).
    pub(super) fn start_hasher(self: &Arc<Self>) {
        let (jobs, rx) = mpsc::channel::<HashJob>();
        let me = Arc::downgrade(self);
        let started = std::thread::Builder::new()
            .name("agent-guard-hasher".into())
            .stack_size(256 * 1024)
            .spawn(move || {
                // One buffer for every file: a fresh zeroed one per file cost more than
                // hashing a small file.
                let mut buf = vec![0u8; 256 * 1024];
                let mut hash = |job: Pending| {
                    let Ok(sha256) = restore::sha256_with(&job.path, &mut buf) else {
                        return true;
                    };
                    let Some(runtime) = me.upgrade() else {
                        return false;
                    };
                    if let Some(store) = runtime.store.get() {
                        store.update_kept(KeptUpdate::Hash {
                            session: job.session,
                            seq: job.seq,
                            sha256,
                        });
                    }
                    true
                };
                let mut pending = PendingHashes::default();
                let mut drains = Vec::new();
                let mut open = true;
                while open {
                    // Idle: wait for the first file (one wake-up per burst, not per file).
                    match rx.recv() {
                        Ok(job) => pending.take(job, &mut drains),
                        Err(_) => open = false,
                    }
                    // Then sleep and drain rather than wait on the channel: a waiting receiver
                    // makes every send a futex wake and a context switch on the path of the
                    // kept call. Files are hashed once a sleep brought nothing new (the burst
                    // is over), or when more wait than the bounds allow, or a drain asks.
                    while open && !(pending.is_empty() && drains.is_empty()) {
                        if drains.is_empty() {
                            std::thread::sleep(QUIET);
                        }
                        let mut came = false;
                        loop {
                            match rx.try_recv() {
                                Ok(job) => {
                                    came = true;
                                    pending.take(job, &mut drains);
                                }
                                Err(mpsc::TryRecvError::Empty) => break,
                                Err(mpsc::TryRecvError::Disconnected) => {
                                    open = false;
                                    break;
                                }
                            }
                        }
                        let all = !came || !drains.is_empty() || !open;
                        while let Some(job) = pending.next(all) {
                            if !hash(job) {
                                return;
                            }
                        }
                        for done in drains.drain(..) {
                            let _ = done.send(());
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

#[cfg(test)]
mod tests {
    use super::*;

    fn file(seq: u64, size: u64) -> HashJob {
        HashJob::File {
            session: "s".into(),
            seq,
            path: PathBuf::from(format!("/store/s/{seq}")),
            size,
        }
    }

    #[test]
    fn files_wait_for_a_quiet_spell_within_bounds_and_drains_are_kept() {
        let mut pending = PendingHashes::default();
        let mut drains = Vec::new();
        pending.take(file(1, 10), &mut drains);
        pending.take(file(2, 10), &mut drains);
        // A burst goes on: nothing is due.
        assert!(pending.next(false).is_none());
        let (done, _wait) = mpsc::channel();
        pending.take(HashJob::Drain(done), &mut drains);
        assert_eq!(drains.len(), 1);
        // Quiet (or a drain): every file, oldest first.
        let order: Vec<u64> = std::iter::from_fn(|| pending.next(true))
            .map(|p| p.seq)
            .collect();
        assert_eq!(order, [1, 2]);
        assert!(pending.is_empty());
        // Over the bytes bound in a burst: the oldest is due until it fits again.
        pending.take(file(3, MAX_PENDING_BYTES), &mut drains);
        pending.take(file(4, 1), &mut drains);
        assert_eq!(pending.next(false).map(|p| p.seq), Some(3));
        assert!(pending.next(false).is_none());
        // Over the files bound.
        for seq in 0..=MAX_PENDING_FILES as u64 {
            pending.take(file(10 + seq, 0), &mut drains);
        }
        assert_eq!(pending.next(false).map(|p| p.seq), Some(4));
        assert!(pending.next(false).is_some());
        assert!(pending.next(false).is_none());
        // Waited too long: due in a burst too.
        while pending.next(true).is_some() {}
        pending.take(file(99, 0), &mut drains);
        assert!(pending.next(false).is_none());
        if let Some(f) = pending.files.front_mut() {
            f.since -= MAX_PENDING_WAIT + Duration::from_millis(1);
        }
        assert_eq!(pending.next(false).map(|p| p.seq), Some(99));
    }
}
