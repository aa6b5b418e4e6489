//! Retention of the store: a session's directory goes once its newest entry is older than the
//! policy's `snapshots.max_age` (the running supervisor or daemon checks every minute, the
//! human's `undo` commands each time they run), or when the human purges it
//! (`agent-guard undo purge`). Its rows go with it.
//!
//! A session is purged whole: its entries are the states of one agent run, and a restore of half
//! of them would be a state nobody saw. The store's size limit is never met by purging: a full
//! store refuses further destruction instead (see [`super::budget`]).

use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, SystemTime};

use super::layout::{tree_size, SessionId};

/// A session of the store, as purging sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredSession {
    pub id: SessionId,
    /// When its newest entry was made (its directory's modification time).
    pub last_kept: SystemTime,
    pub bytes: u64,
}

/// Every session in the store at `root`, oldest first.
pub fn sessions(root: &Path) -> io::Result<Vec<StoredSession>> {
    let entries = match std::fs::read_dir(root) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut out: Vec<StoredSession> = entries
        .flatten()
        .filter_map(|e| {
            let id = SessionId::parse(e.file_name().to_str()?).ok()?;
            let meta = e.path().symlink_metadata().ok().filter(|m| m.is_dir())?;
            Some(StoredSession {
                id,
                last_kept: meta.modified().ok()?,
                bytes: tree_size(&e.path()),
            })
        })
        .collect();
    out.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(out)
}

/// The sessions whose newest entry is older than `max_age` at `now`, except `running` ones.
pub fn expired(
    root: &Path,
    max_age: Duration,
    now: SystemTime,
    running: &[SessionId],
) -> io::Result<Vec<StoredSession>> {
    Ok(sessions(root)?
        .into_iter()
        .filter(|s| !running.contains(&s.id))
        .filter(|s| {
            now.duration_since(s.last_kept)
                .is_ok_and(|age| age > max_age)
        })
        .collect())
}

/// Remove a session's directory and everything in it. Directories copied from the agent's tree
/// may have come without write permission: they are made writable first.
pub fn remove_session(root: &Path, id: &SessionId) -> io::Result<()> {
    let dir = id.dir(root);
    let mut stack = vec![dir.clone()];
    while let Some(d) = stack.pop() {
        let _ = std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o700));
        if let Ok(entries) = std::fs::read_dir(&d) {
            for e in entries.flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    stack.push(e.path());
                }
            }
        }
    }
    match std::fs::remove_dir_all(&dir) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

/// Remove one entry (a file, a symlink or a copied tree) of a session's directory `dir`.
pub fn remove_session_entry(dir: &Path, name: &str) -> io::Result<()> {
    let path = dir.join(name);
    match std::fs::symlink_metadata(&path) {
        Ok(m) if m.is_dir() => {
            let mut stack = vec![path.clone()];
            while let Some(d) = stack.pop() {
                let _ = std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o700));
                for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
                    if e.file_type().is_ok_and(|t| t.is_dir()) {
                        stack.push(e.path());
                    }
                }
            }
            std::fs::remove_dir_all(&path)
        }
        Ok(_) => std::fs::remove_file(&path),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// The bytes the store at `root` holds.
pub fn store_size(root: &Path) -> u64 {
    tree_size(root)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn old_sessions_expire_and_are_removed_even_with_read_only_directories() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let old = SessionId::parse("20200101T000000Z-1").unwrap();
        let new = SessionId::parse("20200101T000000Z-2").unwrap();
        let locked = old.dir(root).join("000001-tree/sub");
        std::fs::create_dir_all(&locked).unwrap();
        std::fs::write(locked.join("f"), b"12345").unwrap();
        std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o500)).unwrap();
        std::fs::create_dir_all(new.dir(root)).unwrap();
        let listed = sessions(root).unwrap();
        assert_eq!(listed.len(), 2);
        assert_eq!(listed[0].bytes, 5);
        let later = SystemTime::now() + Duration::from_secs(3600);
        let gone = expired(
            root,
            Duration::from_secs(60),
            later,
            std::slice::from_ref(&new),
        )
        .unwrap();
        assert_eq!(gone.iter().map(|s| &s.id).collect::<Vec<_>>(), [&old]);
        assert!(
            expired(root, Duration::from_secs(60), SystemTime::now(), &[])
                .unwrap()
                .is_empty()
        );
        remove_session(root, &old).unwrap();
        assert!(!old.dir(root).exists());
        assert_eq!(store_size(root), 0);
    }
}
