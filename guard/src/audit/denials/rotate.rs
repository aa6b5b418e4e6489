//! Rotation of `denials.jsonl`: the full file is renamed aside (`.1`, `.2`, ... keeping `keep`)
//! and a new live file opened; nothing is ever truncated. Writers sharing the log rotate one at
//! a time, under `denials.jsonl.lock`.

use std::fs::{self, OpenOptions};
use std::io;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::identity;
use super::write::{LineSink, LogStats, WriteError};
use crate::audit::queue::Counters;

impl LineSink {
    pub(super) fn rotate(&mut self, counters: &Counters<LogStats>) -> Result<(), WriteError> {
        let Some(file) = &self.file else {
            return self.reopen();
        };
        // The rotated file will not be written again by us: make it durable once, now.
        if let Err(e) = file.sync_all() {
            counters.error(format!(
                "fsync of {} before rotation: {e}",
                self.path.display()
            ));
        }
        let ours = identity(file).ok();
        // One rotation at a time among all writers of this log: without it two writers
        // shifting `.1 .. .N` at once rename over each other's files and lose them.
        let lock =
            match RotationLock::acquire(&self.path).map_err(|(path, source)| WriteError::Io {
                what: "rotation lock",
                path,
                source,
            })? {
                Some(lock) => lock,
                // Another writer is rotating: keep appending to our file (it becomes `.1`, whole
                // lines and all) and follow it to the new live file at the next line.
                None => return Ok(()),
            };
        let at_path = fs::symlink_metadata(&self.path)
            .ok()
            .map(|m| (m.dev(), m.ino()));
        if ours.is_none() || ours != at_path {
            // Rotated by another writer since our last line: follow it.
            drop(lock);
            return self.reopen();
        }
        // Shift only the files that exist (.1 .. .top-1): with a large `keep` this costs one
        // stat per kept file instead of `keep` failed renames.
        let mut top = 1;
        while top < self.keep && fs::symlink_metadata(rotated_path(&self.path, top)).is_ok() {
            top += 1;
        }
        for n in (1..top).rev() {
            let from = rotated_path(&self.path, n);
            match fs::rename(&from, rotated_path(&self.path, n + 1)) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(source) => {
                    return Err(WriteError::Io {
                        what: "rotate",
                        path: from,
                        source,
                    })
                }
            }
        }
        fs::rename(&self.path, rotated_path(&self.path, 1))
            .map_err(|source| self.failed("rotate", source))?;
        drop(lock);
        Counters::<LogStats>::add(&counters.extra.rotations, 1);
        self.reopen()
    }
}

/// `denials.jsonl.lock`, created exclusively (`O_CREAT|O_EXCL`, which never follows a symlink)
/// by the writer that rotates and removed when it is done. A lock left by a writer that died
/// mid-rotation is taken over after [`STALE_ROTATION_LOCK`]. A plain file rather than `flock`,
/// which std offers only beyond this crate's minimum Rust version and which would otherwise be
/// a syscall outside `platform/`.
struct RotationLock {
    path: PathBuf,
}

/// A rotation takes milliseconds; a lock this old belongs to a writer that died.
pub(super) const STALE_ROTATION_LOCK: Duration = Duration::from_secs(10);

impl RotationLock {
    /// The lock, or `None` when another writer holds it; an error names the lock file.
    fn acquire(log: &Path) -> Result<Option<RotationLock>, (PathBuf, io::Error)> {
        let mut name = log.as_os_str().to_os_string();
        name.push(".lock");
        let path = PathBuf::from(name);
        for _ in 0..2 {
            match OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o644)
                .open(&path)
            {
                Ok(_) => return Ok(Some(RotationLock { path })),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    let stale = fs::symlink_metadata(&path)
                        .and_then(|m| m.modified())
                        .ok()
                        .and_then(|t| t.elapsed().ok())
                        .is_some_and(|age| age > STALE_ROTATION_LOCK);
                    if !stale {
                        return Ok(None);
                    }
                    let _ = fs::remove_file(&path);
                }
                Err(e) => return Err((path, e)),
            }
        }
        Ok(None)
    }
}

impl Drop for RotationLock {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

/// `denials.jsonl.N`.
pub fn rotated_path(path: &Path, n: usize) -> PathBuf {
    let mut name = path.as_os_str().to_os_string();
    name.push(format!(".{n}"));
    PathBuf::from(name)
}
