//! The store's layout: `<state dir>/store/<SESSION>/<SEQ>-<NAME>`.
//!
//! One directory per agent session, named by its start time and who started it, so that the
//! sessions sort in time order and purging a session is removing a directory. One entry per kept
//! path, named by its number in the session and the kept file's own name, so that a file whose
//! record was lost (a crash before the audit writer committed it) still says, in `undo list`,
//! when it was kept (the session), in which order, and what it was called.
//!
//! Names only: nothing here touches the file system except [`store_files`], which lists it.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use time::OffsetDateTime;

/// An agent session's id: `20261121T083541Z-25969` (its start in UTC, then the supervisor's pid
/// on Linux, or the agent's `pid.pidversion` on macOS). Safe as a directory name.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(String);

/// A session id that is not one.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a session id: expected one like 20261121T083541Z-25969, as `agent-guard undo list` shows")]
pub struct BadSessionId(pub String);

impl SessionId {
    /// The id of a session started at `start` by `tag` (letters, digits, `.`, `_`, `-`; anything
    /// else becomes `_`).
    pub fn new(start: SystemTime, tag: &str) -> SessionId {
        let t = OffsetDateTime::from(start);
        let tag: String = tag
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                    c
                } else {
                    '_'
                }
            })
            .take(40)
            .collect();
        SessionId(format!(
            "{:04}{:02}{:02}T{:02}{:02}{:02}Z-{tag}",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        ))
    }

    /// A session id as the command line or a record spells it.
    pub fn parse(text: &str) -> Result<SessionId, BadSessionId> {
        let ok = !text.is_empty()
            && text.len() <= 64
            && !text.starts_with('.')
            && text
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
        if ok {
            Ok(SessionId(text.to_string()))
        } else {
            Err(BadSessionId(text.to_string()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The session's directory in the store at `root`.
    pub fn dir(&self, root: &Path) -> PathBuf {
        root.join(&self.0)
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The longest kept name in an entry's name (bytes): with the number, well inside the 255 a
/// name may have.
const NAME_BYTES: usize = 200;

/// The name of entry `seq` of a session, for the kept path `path`: `000042-main.rs`.
pub fn entry_name(seq: u64, path: &Path) -> String {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "root".to_string());
    let mut end = name.len().min(NAME_BYTES);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    format!("{seq:06}-{}", &name[..end])
}

/// An entry's number and kept name, from its name.
pub fn parse_entry_name(name: &str) -> Option<(u64, &str)> {
    let (seq, rest) = name.split_once('-')?;
    Some((seq.parse().ok()?, rest))
}

/// An entry as stored, relative to the store's root: `SESSION/NAME`.
pub fn store_name(session: &SessionId, entry: &str) -> String {
    format!("{session}/{entry}")
}

/// One entry found in the store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreFile {
    pub session: SessionId,
    pub name: String,
    /// Bytes (a directory: every file under it).
    pub size: u64,
    pub modified: Option<SystemTime>,
}

/// Every entry of every session in the store at `root` (none when it does not exist).
pub fn store_files(root: &Path) -> std::io::Result<Vec<StoreFile>> {
    let mut out = Vec::new();
    let sessions = match std::fs::read_dir(root) {
        Ok(s) => s,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e),
    };
    for session in sessions.flatten() {
        let Some(id) = session
            .file_name()
            .to_str()
            .and_then(|n| SessionId::parse(n).ok())
        else {
            continue;
        };
        let Ok(entries) = std::fs::read_dir(session.path()) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(meta) = entry.path().symlink_metadata() else {
                continue;
            };
            out.push(StoreFile {
                session: id.clone(),
                name: entry.file_name().to_string_lossy().into_owned(),
                size: if meta.is_dir() {
                    tree_size(&entry.path())
                } else {
                    meta.len()
                },
                modified: meta.modified().ok(),
            });
        }
    }
    out.sort_by(|a, b| (&a.session, &a.name).cmp(&(&b.session, &b.name)));
    Ok(out)
}

/// Bytes of the regular files under `dir` (symlinks not followed).
pub fn tree_size(dir: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            match e.path().symlink_metadata() {
                Ok(m) if m.is_dir() => stack.push(e.path()),
                Ok(m) => total += m.len(),
                Err(_) => {}
            }
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn ids_sort_by_time_and_parse_back() {
        let t = UNIX_EPOCH + Duration::from_secs(1_795_250_141);
        let id = SessionId::new(t, "25969");
        assert_eq!(id.as_str(), "20261121T083541Z-25969");
        assert_eq!(SessionId::parse(id.as_str()), Ok(id.clone()));
        assert!(SessionId::new(t + Duration::from_secs(1), "1") > id);
        assert_eq!(
            SessionId::new(t, "a/b c").as_str(),
            "20261121T083541Z-a_b_c"
        );
        for bad in ["", "../x", "a/b", ".hidden"] {
            assert!(SessionId::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn entry_names_keep_the_number_and_a_bounded_name() {
        assert_eq!(
            entry_name(42, Path::new("/h/src/main.rs")),
            "000042-main.rs"
        );
        assert_eq!(parse_entry_name("000042-main.rs"), Some((42, "main.rs")));
        assert_eq!(parse_entry_name("000042-a-b"), Some((42, "a-b")));
        let long = format!("/h/{}", "é".repeat(200));
        let name = entry_name(1, Path::new(&long));
        assert!(name.len() <= 7 + NAME_BYTES, "{}", name.len());
        assert!(name.starts_with("000001-é"));
    }
}
