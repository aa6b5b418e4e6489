//! The careful file handling every overrides file needs: no symlink is ever followed, a file is
//! never seen half-written, an oversized file from the agent-writable spool is never read whole.
//!
//! Plain std file I/O (with `O_NOFOLLOW`/`O_EXCL` flags); nothing here decides anything.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use super::OverrideError;
use crate::vocab::IoError;

/// Largest request or grants file read; anything larger is not ours (the spool is agent-writable).
pub const MAX_FILE_BYTES: u64 = 1 << 20;

fn io_err(path: &Path, what: &'static str) -> impl FnOnce(io::Error) -> OverrideError {
    let at = IoError::at(path, what);
    move |source| OverrideError::Io(at(source))
}

/// Create `dir` (and its parents) owner-only if it does not exist; refuse a symlink in its place.
pub fn ensure_dir(dir: &Path) -> Result<(), OverrideError> {
    match fs::symlink_metadata(dir) {
        Ok(m) if m.file_type().is_symlink() || !m.is_dir() => Err(OverrideError::NotADirectory {
            path: dir.to_path_buf(),
        }),
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            use std::os::unix::fs::DirBuilderExt;
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o755)
                .create(dir)
                .map_err(io_err(dir, "create the directory"))
        }
        Err(e) => Err(io_err(dir, "inspect the directory")(e)),
    }
}

/// Create `path` exclusively (`O_CREAT|O_EXCL|O_NOFOLLOW`), mode 0644.
pub fn create_new(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
}

/// Read a regular file without following a symlink and refusing anything over
/// [`MAX_FILE_BYTES`]. `Ok(None)` when it does not exist.
pub fn read_regular(path: &Path) -> Result<Option<Vec<u8>>, OverrideError> {
    Ok(read_regular_with_meta(path)?.map(|(bytes, _)| bytes))
}

/// [`read_regular`], with the metadata of the file that was read (its inode change time is set
/// by the kernel, never by the file's writer).
pub fn read_regular_with_meta(
    path: &Path,
) -> Result<Option<(Vec<u8>, fs::Metadata)>, OverrideError> {
    let file = match OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err(path, "open")(e)),
    };
    let meta = file.metadata().map_err(io_err(path, "inspect"))?;
    if !meta.is_file() {
        return Err(OverrideError::NotAFile {
            path: path.to_path_buf(),
        });
    }
    if meta.len() > MAX_FILE_BYTES {
        return Err(OverrideError::TooLarge {
            path: path.to_path_buf(),
            limit: MAX_FILE_BYTES,
        });
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(io_err(path, "read"))?;
    Ok(Some((bytes, meta)))
}

/// A temporary name next to `path`, unique to this process and call.
fn temp_name(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    path.with_file_name(format!(".{name}.{}.{nanos}.tmp", std::process::id()))
}

/// Replace `path` with `bytes` atomically: written to a temporary file in the same directory
/// (created `O_EXCL|O_NOFOLLOW`), fsynced, renamed over `path`, then the directory fsynced. A
/// reader sees the old file or the new one, never a mix; a crash leaves one of them.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let tmp = temp_name(path);
    let result = (|| {
        let mut file = create_new(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&tmp, path)?;
        if let Some(dir) = path.parent() {
            // The rename is durable only once the directory entry is.
            File::open(dir)?.sync_all()?;
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// An exclusive lock held as a file created with `O_EXCL`; removed on drop.
///
/// Used only by humans' commands (approve, deny, revoke) to serialize read-modify-write of
/// `grants.json`; the lock lives in the guarded state dir, so an agent can neither take it nor
/// remove it. A lock older than [`STALE_LOCK`] was left by a crashed process and is broken.
pub struct FileLock {
    path: PathBuf,
}

/// How old a lock file must be before it is taken to be left over from a crash.
pub const STALE_LOCK: Duration = Duration::from_secs(30);
const LOCK_WAIT: Duration = Duration::from_secs(10);

impl FileLock {
    pub fn acquire(path: &Path) -> io::Result<FileLock> {
        let start = std::time::Instant::now();
        loop {
            match create_new(path) {
                Ok(mut f) => {
                    let _ = writeln!(f, "{}", std::process::id());
                    return Ok(FileLock {
                        path: path.to_path_buf(),
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    let stale = fs::symlink_metadata(path)
                        .ok()
                        .and_then(|m| {
                            let mtime = SystemTime::UNIX_EPOCH
                                + Duration::from_secs(u64::try_from(m.mtime()).unwrap_or(0));
                            SystemTime::now().duration_since(mtime).ok()
                        })
                        .is_some_and(|age| age > STALE_LOCK);
                    if stale {
                        let _ = fs::remove_file(path);
                        continue;
                    }
                    if start.elapsed() > LOCK_WAIT {
                        return Err(io::Error::new(
                            io::ErrorKind::TimedOut,
                            format!(
                                "{} is held by another agent-guard command (remove it if none is running)",
                                path.display()
                            ),
                        ));
                    }
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(e) => return Err(e),
            }
        }
    }
}

impl Drop for FileLock {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

/// Append one line to `path` (created `O_NOFOLLOW`, mode 0644) in a single write, so concurrent
/// appenders never interleave within a line.
pub fn append_line(path: &Path, line: &str) -> io::Result<()> {
    let mut file = OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o644)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)?;
    let mut buf = Vec::with_capacity(line.len() + 1);
    buf.extend_from_slice(line.as_bytes());
    buf.push(b'\n');
    file.write_all(&buf)
}
