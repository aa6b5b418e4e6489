//! Following `denials.jsonl` as it grows, `tail -f` style, across rotations.

use std::fs::{self, File};
use std::io::{self, Read, Seek, SeekFrom};
use std::ops::ControlFlow;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use super::read::{
    log_files, open_for_reading, push_line, read_file_into, read_files, retain_since,
    rotated_since, ReadOutcome,
};
use super::{identity, DenialLogError};
use crate::audit::record::DenialRecord;
use crate::vocab::IoError;

/// Reads new records as they are appended to the live file, `tail -f` style, across rotations:
/// when the file at the path is no longer the one it reads, it finishes the old one and moves to
/// the new one from its start.
///
/// It polls ([`DenialFollower::poll`]) rather than waiting on file notifications: a poll is two
/// `stat`s, the latency of a short sleep (see [`follow`]) is invisible to a human or an agent
/// reading denials, and it behaves the same on Linux, on macOS and on file systems where
/// inotify/FSEvents miss changes (NFS home directories, another process's rename).
pub struct DenialFollower {
    path: PathBuf,
    file: Option<File>,
    id: Option<(u64, u64)>,
    offset: u64,
    partial: Vec<u8>,
    malformed: u64,
}

impl DenialFollower {
    /// Start at the beginning of the current live file (which need not exist yet).
    pub fn new(path: &Path) -> DenialFollower {
        let mut follower = DenialFollower {
            path: path.to_path_buf(),
            file: None,
            id: None,
            offset: 0,
            partial: Vec::new(),
            malformed: 0,
        };
        let _ = follower.open_current();
        follower
    }

    /// Lines skipped as not being records.
    pub fn malformed(&self) -> u64 {
        self.malformed
    }

    fn open_current(&mut self) -> Result<bool, DenialLogError> {
        match open_for_reading(&self.path) {
            Ok(file) => {
                self.id = identity(&file).ok();
                self.file = Some(file);
                self.offset = 0;
                self.partial.clear();
                Ok(true)
            }
            Err(DenialLogError::Io(e)) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// The records appended since the last poll (complete lines only), in file order. Never
    /// blocks. After a rotation it finishes the old file, reads the files rotated since (newest
    /// last) and continues with the new live file from its start.
    pub fn poll(&mut self) -> Result<Vec<DenialRecord>, DenialLogError> {
        let mut outcome = ReadOutcome::default();
        if self.file.is_none() && !self.open_current()? {
            return Ok(Vec::new());
        }
        self.read_available(&mut outcome)?;
        let at_path = fs::symlink_metadata(&self.path)
            .ok()
            .map(|m| (m.dev(), m.ino()));
        if at_path.is_some() && at_path != self.id {
            self.move_to_live_file(&mut outcome)?;
        }
        self.malformed += outcome.malformed;
        Ok(outcome.records)
    }

    /// The file at the path is no longer the one held: it was rotated. The held file is complete
    /// now (the writer no longer appends to it once it has renamed it), but it may have grown
    /// between the last read and the rename: finish it, then read the files rotated since (newest
    /// last) and continue with the new live file from its start.
    fn move_to_live_file(&mut self, outcome: &mut ReadOutcome) -> Result<(), DenialLogError> {
        self.read_available(outcome)?;
        // Complete file: a trailing fragment is a damaged line.
        if !self.partial.is_empty() {
            self.malformed += 1;
            self.partial.clear();
        }
        let old = self.id;
        // Hold the new live file before looking at the rotated ones, so that a rotation in
        // between cannot hide a file from us.
        self.file = None;
        if self.open_current()? {
            for file in rotated_since(&self.path, old, self.id) {
                read_file_into(&file, outcome)?;
            }
            self.read_available(outcome)?;
        }
        Ok(())
    }

    fn read_available(&mut self, outcome: &mut ReadOutcome) -> Result<(), DenialLogError> {
        let Some(file) = self.file.as_mut() else {
            return Ok(());
        };
        let read_err =
            |source| DenialLogError::from(IoError::at(&self.path, "read the denial log")(source));
        let len = file.metadata().map_err(read_err)?.len();
        if len < self.offset {
            // Truncated by someone else (agent-guard never truncates): start over.
            self.offset = 0;
            self.partial.clear();
        }
        file.seek(SeekFrom::Start(self.offset)).map_err(read_err)?;
        let mut buf = Vec::new();
        file.read_to_end(&mut buf).map_err(read_err)?;
        self.offset += buf.len() as u64;
        self.partial.extend_from_slice(&buf);
        if let Some(last_newline) = self.partial.iter().rposition(|b| *b == b'\n') {
            let rest = self.partial.split_off(last_newline + 1);
            for line in self.partial.split(|b| *b == b'\n') {
                push_line(line, outcome);
            }
            self.partial = rest;
        }
        Ok(())
    }
}

/// Records already in the log at or after `since`, then every new one as it is appended, until
/// `on_record` breaks. Sleeps `interval` between polls.
pub fn follow(
    path: &Path,
    since: Option<SystemTime>,
    interval: Duration,
    mut on_record: impl FnMut(&DenialRecord) -> ControlFlow<()>,
) -> Result<(), DenialLogError> {
    // Open the live file first, then read the rotated ones except the one we hold: a rotation in
    // between then neither loses nor repeats records.
    let mut follower = DenialFollower::new(path);
    let rotated: Vec<PathBuf> = log_files(path)?
        .into_iter()
        .filter(|p| p.as_path() != path)
        .collect();
    let mut initial = read_files(&rotated, None, follower.id)?.records;
    initial.extend(follower.poll()?);
    retain_since(&mut initial, since);
    initial.sort_by_key(DenialRecord::unix_millis);
    for record in &initial {
        if on_record(record).is_break() {
            return Ok(());
        }
    }
    loop {
        std::thread::sleep(interval);
        let mut new = follower.poll()?;
        retain_since(&mut new, since);
        for record in &new {
            if on_record(record).is_break() {
                return Ok(());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn line(n: usize) -> String {
        format!(
            "{{\"id\":\"{n}\",\"ts\":1,\"time\":\"2026-01-01T00:00:00Z\",\"op\":\"unlink\",\"path\":\"/p/{n}\",\"zone\":\"/p\",\"process\":\"rm\",\"ancestor\":\"claude\",\"reason\":\"r\",\"hint\":\"h\"}}\n"
        )
    }

    /// A record the writer appended after the follower's last read and just before it renamed
    /// the file away is still reported. (Found as a rare failure of
    /// `follow_reports_existing_then_new_records` on a loaded machine.)
    #[test]
    fn a_rotation_finishes_the_old_file_first() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("denials.jsonl");
        std::fs::write(&path, line(0)).unwrap();
        let mut follower = DenialFollower::new(&path);
        let first = follower.poll().unwrap();
        assert_eq!(first.len(), 1, "{first:?}");
        // Between the follower's read and its look at the path: an append, then the rotation.
        let mut old = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        old.write_all(line(1).as_bytes()).unwrap();
        std::fs::rename(&path, dir.path().join("denials.jsonl.1")).unwrap();
        std::fs::write(&path, line(2)).unwrap();
        let mut outcome = ReadOutcome::default();
        follower.move_to_live_file(&mut outcome).unwrap();
        let paths: Vec<&str> = outcome.records.iter().map(|r| r.path.as_str()).collect();
        assert_eq!(paths, ["/p/1", "/p/2"]);
    }
}
