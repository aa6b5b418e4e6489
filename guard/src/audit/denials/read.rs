//! Reading `denials.jsonl` back: every record of the live file and its rotated files, oldest
//! first, skipping (and counting) lines that are not records. Never follows a symlink.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::rotate::rotated_path;
use super::DenialLogError;
use crate::audit::record::DenialRecord;
use crate::vocab::IoError;

/// Records read back from the log, and how many lines were not records.
#[derive(Debug, Default)]
pub struct ReadOutcome {
    /// In time order (oldest first).
    pub records: Vec<DenialRecord>,
    /// Lines that are not a JSON denial record (skipped).
    pub malformed: u64,
}

/// The log's files, oldest first: `path.N` .. `path.1`, then `path` itself when present. Finds
/// every numbered file, not only `keep` of them, so nothing a larger `keep` left is missed.
pub fn log_files(path: &Path) -> Result<Vec<PathBuf>, DenialLogError> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let Some(base) = path.file_name().map(|n| n.to_string_lossy().into_owned()) else {
        return Ok(Vec::new());
    };
    let mut numbered: Vec<(u64, PathBuf)> = Vec::new();
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => return Err(IoError::at(dir, "read the denial log")(source).into()),
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let Some(suffix) = name
            .strip_prefix(base.as_str())
            .and_then(|s| s.strip_prefix('.'))
        else {
            continue;
        };
        if let Ok(n) = suffix.parse::<u64>() {
            numbered.push((n, entry.path()));
        }
    }
    numbered.sort_by_key(|(n, _)| std::cmp::Reverse(*n));
    let mut files: Vec<PathBuf> = numbered.into_iter().map(|(_, p)| p).collect();
    if fs::symlink_metadata(path).is_ok() {
        files.push(path.to_path_buf());
    }
    Ok(files)
}

/// Read every record of the log at `path` (rotated files included) written at or after `since`.
pub fn read_denials(path: &Path, since: Option<SystemTime>) -> Result<ReadOutcome, DenialLogError> {
    read_files(&log_files(path)?, since, None)
}

pub(super) fn read_files(
    files: &[PathBuf],
    since: Option<SystemTime>,
    skip: Option<(u64, u64)>,
) -> Result<ReadOutcome, DenialLogError> {
    let mut outcome = ReadOutcome::default();
    for file in files {
        if skip.is_some() {
            let id = fs::symlink_metadata(file).ok().map(|m| (m.dev(), m.ino()));
            if id == skip {
                continue;
            }
        }
        read_file_into(file, &mut outcome)?;
    }
    // A file caught between its two names during a rotation is read twice.
    let mut ids = std::collections::HashSet::new();
    outcome
        .records
        .retain(|r| r.id.is_empty() || ids.insert(r.id.clone()));
    retain_since(&mut outcome.records, since);
    // Stable: records of the same millisecond keep their file order.
    outcome.records.sort_by_key(DenialRecord::unix_millis);
    Ok(outcome)
}

/// The rotated files newer than the file `old` (oldest first), excluding `live`. When `old` is
/// no longer among them (rotated past `keep`), every rotated file is newer.
pub(super) fn rotated_since(
    path: &Path,
    old: Option<(u64, u64)>,
    live: Option<(u64, u64)>,
) -> Vec<PathBuf> {
    let mut newer = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for n in 1.. {
        let candidate = rotated_path(path, n);
        let Ok(meta) = fs::symlink_metadata(&candidate) else {
            break;
        };
        let id = Some((meta.dev(), meta.ino()));
        if id == old {
            break;
        }
        // `seen`: a file caught between its two names during a rotation.
        if id != live && seen.insert(id) {
            newer.push(candidate);
        }
    }
    newer.reverse();
    newer
}

/// Append the records of one file to `outcome`, in file order. A file that vanished (rotated
/// past `keep`) contributes nothing.
pub(super) fn read_file_into(file: &Path, outcome: &mut ReadOutcome) -> Result<(), DenialLogError> {
    let handle = match open_for_reading(file) {
        Ok(h) => h,
        Err(DenialLogError::Io(e)) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    for line in BufReader::new(handle).split(b'\n') {
        let line = line.map_err(IoError::at(file, "read the denial log"))?;
        push_line(&line, outcome);
    }
    Ok(())
}

pub(super) fn push_line(line: &[u8], outcome: &mut ReadOutcome) {
    if line.iter().all(u8::is_ascii_whitespace) {
        return;
    }
    match serde_json::from_slice::<DenialRecord>(line) {
        Ok(record) => outcome.records.push(record),
        Err(_) => outcome.malformed += 1,
    }
}

pub(super) fn retain_since(records: &mut Vec<DenialRecord>, since: Option<SystemTime>) {
    if let Some(since) = since {
        let since_ms = since
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO)
            .as_millis() as i128;
        records.retain(|r| r.unix_millis() >= since_ms);
    }
}

pub(super) fn open_for_reading(path: &Path) -> Result<File, DenialLogError> {
    OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .map_err(|source| match source.raw_os_error() {
            Some(libc::ELOOP) => DenialLogError::Symlink {
                path: path.to_path_buf(),
            },
            _ => IoError::at(path, "read the denial log")(source).into(),
        })
}
