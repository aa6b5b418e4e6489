//! One agent session's side of the store: its directory, the numbering of its entries, the files
//! it has already kept since it started (a file is kept at its first write-open only), the paths
//! it kept (whose state it leaves behind is recorded when it ends), the names it made itself
//! ([`NewNames`]: a bulk restore leaves what was kept at them out), and the brake's count of what
//! it destroyed lately.
//!
//! A session is one `agent-guard run` on Linux and one agent root process (pid + pidversion) on
//! macOS. Everything here is in memory and shared by the sensor's threads; the only file work is
//! making the session's directory.

use std::collections::{HashMap, HashSet, VecDeque};
use std::io;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, RwLock};

use super::budget::StoreBudget;
use super::layout::{entry_name, store_name, SessionId};
use super::new_names::NewNames;
use crate::engine::BrakeState;
use crate::policy::SnapshotPolicy;
use crate::vocab::KeptEntry;

/// A file as the kernel knows it, for "kept already in this session": its device and inode, and
/// its birth time where the file system has one, so that an inode number reused by a new file
/// is a new file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FileKey {
    pub dev: u64,
    pub ino: u64,
    pub birth_ns: i128,
}

/// What a session did with a file's content the first time it was about to change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ContentKept {
    /// In the store: its state at the session's first touch. Later truncations and rewrites by
    /// the session change what the session itself wrote, and need no new copy.
    Kept,
    /// Too large to copy, edited anyway (a write-open): later write-opens are edits too, but a
    /// truncation must still keep or be refused.
    NotKept,
}

/// The files whose content the session kept (or found too large), and those a thread of the
/// sensor is keeping right now.
#[derive(Debug, Default)]
struct KeptFiles {
    done: HashMap<FileKey, ContentKept>,
    claimed: HashSet<FileKey>,
}

/// The right to keep a file's content for the session, held by one thread of the sensor at a
/// time: another thread opening the same file waits for the copy to finish, so that the first
/// thread's task cannot write into the file while a second copy of it is still being read.
#[derive(Debug)]
pub struct ContentClaim<'a> {
    session: &'a Session,
    file: FileKey,
    /// What the session had done with the file's content when the claim was granted.
    pub so_far: Option<ContentKept>,
}

impl Drop for ContentClaim<'_> {
    fn drop(&mut self) {
        lock(&self.session.kept_files).claimed.remove(&self.file);
        self.session.claim_ended.notify_all();
    }
}

/// One agent session.
#[derive(Debug)]
pub struct Session {
    pub id: SessionId,
    /// `<store>/<id>`.
    pub dir: PathBuf,
    pub budget: Arc<StoreBudget>,
    limits: RwLock<SnapshotPolicy>,
    next_seq: Mutex<u64>,
    dir_made: Mutex<bool>,
    kept_files: Mutex<KeptFiles>,
    /// Signalled when a claim on a file's content ends.
    claim_ended: Condvar,
    kept_paths: Mutex<(HashSet<PathBuf>, Vec<PathBuf>)>,
    /// Per file (device, inode), how many hard links to it the session made in the store (a
    /// name kept before a rename): those are not names the agent can change the file through.
    store_links: Mutex<HashMap<(u64, u64), u64>>,
    /// The names in zones that keep that the session made itself (the sensor marks them as it
    /// performs the calls; a kept entry records whether its path was one).
    pub new_names: NewNames,
    brake: Mutex<BrakeWindow>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Plain data: a panic elsewhere leaves it usable.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Session {
    pub fn new(
        id: SessionId,
        store_root: &Path,
        budget: Arc<StoreBudget>,
        limits: SnapshotPolicy,
    ) -> Session {
        Session {
            dir: id.dir(store_root),
            id,
            budget,
            limits: RwLock::new(limits),
            next_seq: Mutex::new(1),
            dir_made: Mutex::new(false),
            kept_files: Mutex::default(),
            claim_ended: Condvar::new(),
            kept_paths: Mutex::default(),
            store_links: Mutex::default(),
            new_names: NewNames::default(),
            brake: Mutex::default(),
        }
    }

    /// The policy's limits now (a reload changes them).
    pub fn limits(&self) -> SnapshotPolicy {
        *self.limits.read().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn set_limits(&self, limits: SnapshotPolicy) {
        *self.limits.write().unwrap_or_else(PoisonError::into_inner) = limits;
        self.budget.set_limit(limits.max_bytes);
    }

    /// The next entry's number and name for the kept `path`, and its name relative to the
    /// store's root.
    pub fn next_entry(&self, path: &Path) -> (u64, String, String) {
        let seq = {
            let mut next = lock(&self.next_seq);
            let seq = *next;
            *next += 1;
            seq
        };
        let name = entry_name(seq, path);
        let relative = store_name(&self.id, &name);
        (seq, name, relative)
    }

    /// Make the store's and the session's directories (0700: the user's, or root's, alone) if
    /// they are not there yet; the session's directory.
    pub fn ensure_dir(&self) -> io::Result<&Path> {
        let mut made = lock(&self.dir_made);
        if !*made {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&self.dir)?;
            *made = true;
        }
        Ok(&self.dir)
    }

    /// What the session did with `file`'s content so far (`None`: nothing yet).
    pub fn content_of(&self, file: FileKey) -> Option<ContentKept> {
        lock(&self.kept_files).done.get(&file).copied()
    }

    /// Claim `file`'s content for keeping: waits while another thread holds a claim on it, then
    /// says what the session has done with it so far. Hold the claim until the file is kept (or
    /// not) and noted; dropping it lets the next claimant see the result.
    pub fn claim_content(&self, file: FileKey) -> ContentClaim<'_> {
        let mut files = lock(&self.kept_files);
        while files.claimed.contains(&file) {
            files = self
                .claim_ended
                .wait(files)
                .unwrap_or_else(PoisonError::into_inner);
        }
        files.claimed.insert(file);
        ContentClaim {
            session: self,
            file,
            so_far: files.done.get(&file).copied(),
        }
    }

    /// Remember what became of `file`'s content; once kept it stays kept.
    pub fn note_content(&self, file: FileKey, what: ContentKept) {
        let mut files = lock(&self.kept_files);
        let slot = files.done.entry(file).or_insert(what);
        if what == ContentKept::Kept {
            *slot = what;
        }
    }

    /// Remember what was kept: its paths get their end state recorded when the session ends.
    pub fn note_kept(&self, entries: &[KeptEntry]) {
        let mut paths = lock(&self.kept_paths);
        let (seen, order) = &mut *paths;
        for e in entries {
            if seen.insert(e.path.clone()) {
                order.push(e.path.clone());
            }
        }
    }

    /// A hard link to the file `(dev, ino)` was made in the store (`true`) or removed again.
    pub fn note_store_link(&self, dev: u64, ino: u64, made: bool) {
        let mut links = lock(&self.store_links);
        let count = links.entry((dev, ino)).or_default();
        if made {
            *count += 1;
        } else {
            *count = count.saturating_sub(1);
            if *count == 0 {
                links.remove(&(dev, ino));
            }
        }
    }

    /// How many of the file `(dev, ino)`'s hard links are the session's in the store.
    pub fn store_links(&self, dev: u64, ino: u64) -> u64 {
        lock(&self.store_links)
            .get(&(dev, ino))
            .copied()
            .unwrap_or(0)
    }

    /// Every path kept in this session, in the order first kept.
    pub fn kept_paths(&self) -> Vec<PathBuf> {
        lock(&self.kept_paths).1.clone()
    }

    /// What the brake counts now: the files and bytes destroyed within the last `window_ms`.
    pub fn brake_state(&self, now_ms: i64, window_ms: i64) -> BrakeState {
        let mut brake = lock(&self.brake);
        brake.forget_before(now_ms - window_ms);
        BrakeState {
            files: brake.files,
            bytes: brake.bytes,
            on_until_ms: brake.on_until_ms.filter(|until| *until > now_ms),
        }
    }

    /// Count destroyed files for the brake.
    pub fn count_destroyed(&self, now_ms: i64, files: u64, bytes: u64) {
        let mut brake = lock(&self.brake);
        brake.recent.push_back((now_ms, files, bytes));
        brake.files += files;
        brake.bytes += bytes;
    }

    /// The brake went on at `now_ms` until `until_ms`; the overrides approved by then
    /// (`grants`) do not lift it, a later one does.
    pub fn put_brake_on(&self, until_ms: i64, grants: HashSet<String>) {
        let mut brake = lock(&self.brake);
        if brake.on_until_ms.is_none_or(|u| u < until_ms) {
            brake.on_until_ms = Some(until_ms);
            brake.grants_when_on = grants;
        }
    }

    /// Lift the brake (and forget the count) when an override was approved since it went on:
    /// the human has looked. Whether it was lifted.
    pub fn lift_brake_for<'a>(&self, mut grant_ids: impl Iterator<Item = &'a str>) -> bool {
        let mut brake = lock(&self.brake);
        if brake.on_until_ms.is_none() {
            return false;
        }
        if grant_ids.any(|id| !brake.grants_when_on.contains(id)) {
            *brake = BrakeWindow::default();
            return true;
        }
        false
    }
}

/// What a session destroyed lately: one (time, files, bytes) per kept operation.
#[derive(Debug, Default)]
struct BrakeWindow {
    recent: VecDeque<(i64, u64, u64)>,
    files: u64,
    bytes: u64,
    on_until_ms: Option<i64>,
    grants_when_on: HashSet<String>,
}

impl BrakeWindow {
    fn forget_before(&mut self, oldest_ms: i64) {
        while let Some(&(t, files, bytes)) = self.recent.front() {
            if t >= oldest_ms {
                break;
            }
            self.recent.pop_front();
            self.files -= files;
            self.bytes -= bytes;
        }
        if self.on_until_ms.is_some_and(|until| until <= oldest_ms) {
            self.on_until_ms = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::BrakeLimits;

    fn session(root: &Path) -> Session {
        let limits = SnapshotPolicy {
            max_age: 60,
            max_bytes: 1 << 20,
            max_copy_bytes: 1 << 10,
            max_tree_bytes: 1 << 10,
            brake: BrakeLimits {
                files: 3,
                bytes: 1 << 20,
                window_secs: 60,
            },
        };
        let id = SessionId::parse("20260101T000000Z-1").unwrap();
        Session::new(id, root, Arc::new(StoreBudget::new(1 << 20)), limits)
    }

    #[test]
    fn entries_are_numbered_and_the_directory_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let s = session(&dir.path().join("store"));
        assert_eq!(s.next_entry(Path::new("/h/a.rs")).1, "000001-a.rs");
        let (seq, _, rel) = s.next_entry(Path::new("/h/b"));
        assert_eq!((seq, rel.as_str()), (2, "20260101T000000Z-1/000002-b"));
        let made = s.ensure_dir().unwrap();
        let mode = std::fs::metadata(made).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        let key = FileKey {
            dev: 1,
            ino: 2,
            birth_ns: 3,
        };
        assert_eq!(s.content_of(key), None);
        s.note_content(key, ContentKept::NotKept);
        assert_eq!(s.content_of(key), Some(ContentKept::NotKept));
        s.note_content(key, ContentKept::Kept);
        s.note_content(key, ContentKept::NotKept);
        assert_eq!(s.content_of(key), Some(ContentKept::Kept));
        assert_eq!(s.content_of(FileKey { birth_ns: 4, ..key }), None);
    }

    #[test]
    fn the_store_links_of_a_file_are_counted_until_removed() {
        let dir = tempfile::tempdir().unwrap();
        let s = session(dir.path());
        s.note_store_link(1, 2, true);
        s.note_store_link(1, 2, true);
        assert_eq!((s.store_links(1, 2), s.store_links(1, 3)), (2, 0));
        s.note_store_link(1, 2, false);
        s.note_store_link(1, 2, false);
        s.note_store_link(1, 2, false);
        assert_eq!(s.store_links(1, 2), 0);
    }

    #[test]
    fn a_second_claim_on_a_file_waits_for_the_first_and_sees_its_outcome() {
        let dir = tempfile::tempdir().unwrap();
        let s = session(dir.path());
        let key = FileKey {
            dev: 1,
            ino: 2,
            birth_ns: 3,
        };
        let other = FileKey { ino: 9, ..key };
        let first = s.claim_content(key);
        assert_eq!(first.so_far, None);
        std::thread::scope(|scope| {
            let second = scope.spawn(|| s.claim_content(key).so_far);
            // Another file is not held up by the claim.
            assert_eq!(s.claim_content(other).so_far, None);
            std::thread::sleep(std::time::Duration::from_millis(50));
            assert!(!second.is_finished(), "the second claim must wait");
            s.note_content(key, ContentKept::Kept);
            drop(first);
            assert_eq!(second.join().unwrap(), Some(ContentKept::Kept));
        });
    }

    #[test]
    fn the_brake_counts_a_sliding_window_and_a_new_grant_lifts_it() {
        let dir = tempfile::tempdir().unwrap();
        let s = session(dir.path());
        s.count_destroyed(1_000, 2, 10);
        s.count_destroyed(30_000, 1, 5);
        assert_eq!(s.brake_state(30_000, 60_000).files, 3);
        // The first count leaves the window a minute after it was made.
        let later = s.brake_state(61_001, 60_000);
        assert_eq!((later.files, later.bytes), (1, 5));
        s.put_brake_on(120_000, HashSet::from(["g1".to_string()]));
        assert_eq!(s.brake_state(70_000, 60_000).on_until_ms, Some(120_000));
        assert!(!s.lift_brake_for(["g1"].into_iter()));
        assert!(s.lift_brake_for(["g1", "g2"].into_iter()));
        let lifted = s.brake_state(70_000, 60_000);
        assert_eq!((lifted.files, lifted.on_until_ms), (0, None));
    }
}
