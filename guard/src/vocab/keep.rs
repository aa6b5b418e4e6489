//! What an operation destroys and must be kept first ([`Keep`]), and what a sensor reports once
//! it has kept it ([`KeepOutcome`]): the words between the engine, the sensors and the records
//! for "allow once what it destroys is in the store" (docs/snapshots.md).
//!
//! A [`Keep`] says *what* must be kept, never *how*: the sensor chooses a move, a hard link, a
//! reflink or a copy (Linux), or a clone (macOS), and reports the choice in a [`KeptEntry`].
//! Plain data; nothing here does I/O.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::error::UnknownName;
use super::rule::RuleId;

/// The engine's "allow once kept": the paths whose entry or content the operation destroys.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Keep {
    /// Usually one; an exchange keeps both sides.
    pub items: Vec<KeepItem>,
    /// The root of the protected zone involved.
    pub zone: PathBuf,
    /// The row of the decision table that asked for it (`protected_delete`, ...), for records.
    pub rule: RuleId,
}

impl Keep {
    /// Whether carrying it out takes a name out of the zone (a delete or a move out), which the
    /// brake on mass destruction counts. Replacing a file (a save over it, a truncation) and
    /// first edits are kept too, but are what editing looks like, and are not counted.
    pub fn removes_names(&self) -> bool {
        matches!(
            self.rule,
            RuleId::ProtectedDelete | RuleId::ProtectedMoveOut | RuleId::ProtectedLinkOut
        ) && self
            .items
            .iter()
            .any(|i| matches!(i.what, KeepWhat::Entry | KeepWhat::Content | KeepWhat::Tree))
    }
}

/// One path to keep, and what of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeepItem {
    pub path: PathBuf,
    pub what: KeepWhat,
}

/// What of a path must be kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KeepWhat {
    /// The name goes away or is replaced (unlink; the destination of a rename over it): the old
    /// inode itself may be moved or hard-linked into the store (no copy), when nothing else can
    /// reach it afterwards.
    Entry,
    /// The content changes in place (truncate, `O_TRUNC`) or leaves the zone (a rename or a
    /// hard link out of it): only a reflink or a copy keeps it. Over the copy limit without
    /// reflink, the operation is refused.
    Content,
    /// A write-open of an existing file: kept the first time in a session (per device and inode),
    /// so an in-place rewrite can be undone to the session's start. Over the copy limit without
    /// reflink it is allowed and recorded as not kept: an edit, not a destruction.
    FirstWrite,
    /// A directory disappears (rmdir, or an empty one renamed over): recorded, and a restore
    /// makes it again with its mode.
    Dir,
    /// A directory tree leaves the zone: copied whole, when it fits the tree limit; refused when
    /// it does not.
    Tree,
    /// A file's name moves to another name within its zone (a rename): nothing of it is lost,
    /// but a restore must find it at the name it had. Kept as a second name in the store (a hard
    /// link, no copy), unless the agent session made the name itself (an editor's temporary
    /// file renamed over the file it saves), which a sensor that notes such names skips.
    Renamed,
}

impl KeepWhat {
    pub fn as_str(self) -> &'static str {
        match self {
            KeepWhat::Entry => "entry",
            KeepWhat::Content => "content",
            KeepWhat::FirstWrite => "first_write",
            KeepWhat::Dir => "dir",
            KeepWhat::Tree => "tree",
            KeepWhat::Renamed => "renamed",
        }
    }
}

/// How a sensor kept one path: the `how` of a kept entry's record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeptHow {
    /// The old inode was renamed into the store (an unlink, done as a move).
    Moved,
    /// A hard link to the old inode was made in the store (a rename over it).
    Linked,
    /// A copy-on-write clone (Linux FICLONE, macOS clonefile).
    Reflinked,
    /// A byte copy.
    Copied,
    /// Nothing to copy: a directory's name and mode were recorded.
    Recorded,
    /// Allowed without keeping (a first write-open of a file over the copy limit).
    NotKept,
}

impl KeptHow {
    pub const ALL: [KeptHow; 6] = [
        KeptHow::Moved,
        KeptHow::Linked,
        KeptHow::Reflinked,
        KeptHow::Copied,
        KeptHow::Recorded,
        KeptHow::NotKept,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            KeptHow::Moved => "moved",
            KeptHow::Linked => "linked",
            KeptHow::Reflinked => "reflinked",
            KeptHow::Copied => "copied",
            KeptHow::Recorded => "recorded",
            KeptHow::NotKept => "not_kept",
        }
    }

    /// Whether a file in the store holds what was kept.
    pub fn has_store_file(self) -> bool {
        !matches!(self, KeptHow::Recorded | KeptHow::NotKept)
    }
}

impl fmt::Display for KeptHow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for KeptHow {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        UnknownName::find(
            s,
            &KeptHow::ALL,
            KeptHow::as_str,
            "way of keeping",
            "moved, linked, reflinked, copied, recorded or not_kept",
        )
    }
}

/// The kind of a kept entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EntryKind {
    File,
    Dir,
    Symlink,
    /// A FIFO, socket or device node: its name and mode only.
    Other,
}

impl EntryKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EntryKind::File => "file",
            EntryKind::Dir => "dir",
            EntryKind::Symlink => "symlink",
            EntryKind::Other => "other",
        }
    }
}

impl FromStr for EntryKind {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        UnknownName::find(
            s,
            &[
                EntryKind::File,
                EntryKind::Dir,
                EntryKind::Symlink,
                EntryKind::Other,
            ],
            EntryKind::as_str,
            "entry kind",
            "file, dir, symlink or other",
        )
    }
}

/// One path a sensor kept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeptEntry {
    /// The original path (absolute, clean).
    pub path: PathBuf,
    pub how: KeptHow,
    pub kind: EntryKind,
    /// The entry's number within its session (orders a restore).
    pub seq: u64,
    /// Where it is, relative to the store's root (`SESSION/NAME`); `None` when nothing was
    /// stored ([`KeptHow::Recorded`], [`KeptHow::NotKept`]).
    pub store_name: Option<String>,
    /// Bytes (a tree: all its files).
    pub size: u64,
    /// `st_mode`, type bits included.
    pub mode: u32,
    /// Last modification, nanoseconds since the epoch.
    pub mtime_ns: i64,
}

/// Why a sensor could not keep what a [`Keep`] asked for: the operation is then refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeepFailure {
    /// A copy is needed (no reflink here) and the file is larger than the policy's copy limit.
    TooLarge { size: u64, limit: u64 },
    /// A directory tree leaving the zone is larger than the tree limit (or has too many entries).
    TreeTooLarge { limit: u64 },
    /// The store would grow past the policy's limit.
    StoreFull { used: u64, limit: u64 },
    /// The sensor cannot keep for this call (e.g. a process that changed its credentials).
    Unsupported(&'static str),
    /// An I/O error while keeping (the store's file system full, permissions).
    Io(String),
}

impl fmt::Display for KeepFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeepFailure::TooLarge { size, limit } => write!(
                f,
                "it is {} and only files up to {} are copied (the policy's snapshots.max_copy_mb) where the file system cannot clone",
                human_bytes(*size),
                human_bytes(*limit)
            ),
            KeepFailure::TreeTooLarge { limit } => write!(
                f,
                "the directory holds more than {} (the policy's snapshots.max_tree_copy_mb)",
                human_bytes(*limit)
            ),
            KeepFailure::StoreFull { used, limit } => write!(
                f,
                "the snapshot store is full ({} of {}, the policy's snapshots.max_size_mb)",
                human_bytes(*used),
                human_bytes(*limit)
            ),
            KeepFailure::Unsupported(why) => f.write_str(why),
            KeepFailure::Io(e) => write!(f, "the snapshot could not be written: {e}"),
        }
    }
}

/// What a sensor did with a [`Keep`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeepOutcome {
    /// Kept (and the operation performed). Empty: there was nothing to keep (a write-open that
    /// created the file, a first write already kept this session): an ordinary allow.
    Kept(Vec<KeptEntry>),
    /// Not kept, so not performed: the operation is refused.
    Failed { path: PathBuf, failure: KeepFailure },
}

/// `12.3 MB`, `64.0 KB`, `17 B`: sizes in reasons and listings (decimal units, as `ls -h --si`).
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["KB", "MB", "GB", "TB", "PB"];
    if n < 1000 {
        return format!("{n} B");
    }
    let mut value = n as f64 / 1000.0;
    let mut unit = 0;
    while value >= 1000.0 && unit + 1 < UNITS.len() {
        value /= 1000.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_sizes_read_well() {
        for how in KeptHow::ALL {
            assert_eq!(how.as_str().parse::<KeptHow>(), Ok(how));
        }
        assert!("kept".parse::<KeptHow>().is_err());
        assert_eq!("symlink".parse::<EntryKind>(), Ok(EntryKind::Symlink));
        assert_eq!(human_bytes(17), "17 B");
        assert_eq!(human_bytes(65_536), "65.5 KB");
        assert_eq!(human_bytes(64 * 1024 * 1024), "67.1 MB");
    }

    #[test]
    fn only_deletes_and_moves_out_count_for_the_brake() {
        let keep = |rule, what| Keep {
            items: vec![KeepItem {
                path: "/z/f".into(),
                what,
            }],
            zone: "/z".into(),
            rule,
        };
        assert!(keep(RuleId::ProtectedDelete, KeepWhat::Entry).removes_names());
        assert!(keep(RuleId::ProtectedMoveOut, KeepWhat::Tree).removes_names());
        assert!(!keep(RuleId::ProtectedDelete, KeepWhat::Dir).removes_names());
        assert!(!keep(RuleId::ProtectedReplace, KeepWhat::Entry).removes_names());
        assert!(!keep(RuleId::ProtectedTruncate, KeepWhat::Content).removes_names());
        assert!(!keep(RuleId::ProtectedFirstWrite, KeepWhat::FirstWrite).removes_names());
    }
}
