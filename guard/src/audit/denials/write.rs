//! Writing `denials.jsonl`: the [`Sink`] the queued writer drains records into, one `write(2)`
//! per line on an `O_APPEND` descriptor that is always the live file at the path (see the
//! module above for why each of these rules holds).

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use super::{DenialLogError, OnCreateHook, MAX_PENDING_LINES};
use crate::audit::queue::{Counters, Sink};
use crate::audit::record::DenialRecord;
use crate::vocab::IoError;

/// How often the writer retries pending lines after a write error.
const RETRY_INTERVAL: Duration = Duration::from_millis(500);

/// What went wrong on the way to a line's `write(2)`; counted and retried, never fatal.
#[derive(Debug, thiserror::Error)]
pub(super) enum WriteError {
    #[error("{what} {}: {source}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("no live file at {}", path.display())]
    NoLiveFile { path: PathBuf },
    #[error(transparent)]
    Open(#[from] DenialLogError),
}

/// The denial log's own counter, beside the writer's.
#[derive(Default)]
pub(super) struct LogStats {
    pub rotations: AtomicU64,
}

/// The live file and the lines not yet written to it.
pub(super) struct LineSink {
    pub path: PathBuf,
    pub max_bytes: u64,
    pub keep: usize,
    pub on_create: Option<OnCreateHook>,
    /// `None` after a failed reopen; retried with the next line.
    pub file: Option<File>,
    pub size: u64,
    /// Lines not yet (fully) written; the front one may be the remainder of a short write.
    pub pending: VecDeque<Vec<u8>>,
    /// When lines left pending by a failed write are tried again.
    pub retry_at: Option<Instant>,
}

impl Sink for LineSink {
    type Record = Box<DenialRecord>;
    type Control = std::convert::Infallible;
    type Stats = LogStats;

    fn write(&mut self, records: Vec<Box<DenialRecord>>, counters: &Counters<LogStats>) {
        for record in records {
            self.enqueue(&record, counters);
        }
        self.write_pending(counters);
    }

    fn control(&mut self, control: std::convert::Infallible, _: &Counters<LogStats>) {
        match control {}
    }

    fn next_tick(&self) -> Option<Duration> {
        let at = self.retry_at.filter(|_| !self.pending.is_empty())?;
        Some(at.saturating_duration_since(Instant::now()))
    }

    fn tick(&mut self, counters: &Counters<LogStats>) {
        if self.next_tick().is_some_and(|wait| wait.is_zero()) {
            self.write_pending(counters);
        }
    }

    fn close(&mut self, counters: &Counters<LogStats>) {
        self.write_pending(counters);
        if !self.pending.is_empty() {
            let lost = self.pending.len() as u64;
            Counters::<LogStats>::add(&counters.dropped_write_failed, lost);
            counters.error(format!(
                "{lost} records unwritten at shutdown to {}",
                self.path.display()
            ));
        }
        if let Some(file) = &self.file {
            if let Err(e) = file.sync_all() {
                counters.error(format!("fsync of {} at shutdown: {e}", self.path.display()));
            }
        }
    }
}

impl LineSink {
    fn enqueue(&mut self, record: &DenialRecord, counters: &Counters<LogStats>) {
        if self.pending.len() >= MAX_PENDING_LINES {
            Counters::<LogStats>::add(&counters.dropped_write_failed, 1);
            return;
        }
        match serde_json::to_vec(record) {
            Ok(mut line) => {
                line.push(b'\n');
                self.pending.push_back(line);
            }
            Err(e) => {
                Counters::<LogStats>::add(&counters.dropped_write_failed, 1);
                counters.error(format!("cannot serialize record {}: {e}", record.id));
            }
        }
    }

    fn write_pending(&mut self, counters: &Counters<LogStats>) {
        self.retry_at = Some(Instant::now() + RETRY_INTERVAL);
        while let Some(line_len) = self.pending.front().map(Vec::len) {
            if let Err(e) = self.prepare_for(line_len as u64, counters) {
                counters.error(e.to_string());
                return;
            }
            let Some(file) = self.file.as_mut() else {
                return;
            };
            let line = self.pending.front_mut().expect("front exists");
            // One write per line: with O_APPEND the kernel places the whole buffer at the end
            // of the file atomically with respect to other appenders.
            match file.write(line) {
                Ok(n) if n == line.len() => {
                    self.size += n as u64;
                    self.pending.pop_front();
                    Counters::<LogStats>::add(&counters.written, 1);
                }
                Ok(n) => {
                    // A short write (disk filling up): keep the remainder so the line is
                    // completed, not duplicated, when space returns.
                    self.size += n as u64;
                    line.drain(..n);
                    counters.error(format!(
                        "short write to {} ({n} of {} bytes)",
                        self.path.display(),
                        n + line.len()
                    ));
                    return;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    counters.error(format!("write to {}: {e}", self.path.display()));
                    return;
                }
            }
        }
    }

    /// Make sure a live file is open, still the one at the path, and has room for `len` more
    /// bytes, rotating when it has not.
    fn prepare_for(&mut self, len: u64, counters: &Counters<LogStats>) -> Result<(), WriteError> {
        let at_path = match fs::symlink_metadata(&self.path) {
            Ok(m) => Some((m.dev(), m.ino())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(source) => return Err(self.failed("stat", source)),
        };
        let ours = match &self.file {
            Some(f) => {
                let m = f
                    .metadata()
                    .map_err(|source| self.failed("fstat", source))?;
                // Another process appending to the same file moves its end; take the kernel's
                // size, not our count.
                self.size = m.len();
                Some((m.dev(), m.ino()))
            }
            None => None,
        };
        if ours.is_none() || ours != at_path {
            // First line after an error, or another supervisor rotated (or removed) the file:
            // write to whatever is at the path now.
            self.reopen()?;
        }
        if self.size > 0 && self.size + len > self.max_bytes {
            if let Err(e) = self.rotate(counters) {
                // Better an oversized file than a stalled log: keep appending and retry the
                // rotation with the next line.
                counters.error(e.to_string());
                if self.file.is_none() {
                    return Err(WriteError::NoLiveFile {
                        path: self.path.clone(),
                    });
                }
            }
        }
        Ok(())
    }

    pub(super) fn reopen(&mut self) -> Result<(), WriteError> {
        self.file = None;
        let (file, size) = open_live(&self.path, self.on_create.as_ref())?;
        self.file = Some(file);
        self.size = size;
        Ok(())
    }

    pub(super) fn failed(&self, what: &'static str, source: io::Error) -> WriteError {
        WriteError::Io {
            what,
            path: self.path.clone(),
            source,
        }
    }
}

/// Open (or create, mode 0644) the live file for appending, refusing anything but a regular file
/// with one link. Returns the file and its current size.
pub(super) fn open_live(
    path: &Path,
    on_create: Option<&OnCreateHook>,
) -> Result<(File, u64), DenialLogError> {
    let open = |create_new: bool| {
        let mut options = OpenOptions::new();
        options
            .append(true)
            .mode(0o644)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK);
        if create_new {
            options.create_new(true);
        }
        options.open(path)
    };
    let (file, created) = match open(true) {
        Ok(file) => (file, true),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            (open(false).map_err(|e| open_error(path, e))?, false)
        }
        Err(e) => return Err(open_error(path, e)),
    };
    let meta = file
        .metadata()
        .map_err(IoError::at(path, "open the denial log"))?;
    if !meta.file_type().is_file() || meta.nlink() != 1 {
        let found = if meta.file_type().is_file() {
            format!("{} hard links", meta.nlink())
        } else {
            format!("{:?}", meta.file_type())
        };
        return Err(DenialLogError::NotRegular {
            path: path.to_path_buf(),
            found,
        });
    }
    if created {
        // The umask may have removed read bits; the user whose agent was denied must read it.
        file.set_permissions(fs::Permissions::from_mode(0o644))
            .map_err(IoError::at(path, "open the denial log"))?;
        if let Some(hook) = on_create {
            hook(&file, path).map_err(IoError::at(path, "open the denial log"))?;
        }
    }
    Ok((file, meta.len()))
}

fn open_error(path: &Path, e: io::Error) -> DenialLogError {
    match e.raw_os_error() {
        Some(libc::ELOOP) => DenialLogError::Symlink {
            path: path.to_path_buf(),
        },
        Some(libc::ENXIO) => DenialLogError::NotRegular {
            path: path.to_path_buf(),
            found: "a FIFO with no reader".into(),
        },
        _ => IoError::at(path, "open the denial log")(e).into(),
    }
}
