//! `agent-guard undo restore`: put kept entries back, as the human.
//!
//! Per path, the oldest kept state wins: the state before the agent first touched it. They go
//! back in the reverse order of their destruction, so a tree removed with `rm -rf` (files first,
//! then their directories) comes back directories first. A path is restored in place only when
//! what is there now is what the agent's session left (its end state: the agent's own later
//! writes are part of what is undone) or nothing; otherwise someone changed it since, and the
//! kept version goes beside it as `NAME.agent-guard-restored`. Every file is written to a
//! temporary name in its directory and renamed into place, and its bytes are checked against
//! the hash recorded when it was kept. Nothing is written through a symlink: every directory
//! on the way is reached without following one (`restore::at`), since the agent may have turned a
//! directory of the zone into a symlink to somewhere else after it deleted what is restored.
//!
//! This runs with the human's rights and writes into the zones: it must never be offered to an
//! agent (the CLI refuses), and never overwrite a path whose state it cannot vouch for.

mod at;

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::audit::{EndState, StoredKept};
use crate::vocab::{EntryKind, KeptHow};

/// The suffix of a restored version put beside a path that changed since the agent left it.
pub const BESIDE_SUFFIX: &str = ".agent-guard-restored";

/// What became of one path.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum Restored {
    /// Put back where it was.
    InPlace { id: i64, path: PathBuf },
    /// Put beside the path, which changed since the agent's session left it.
    Beside {
        id: i64,
        path: PathBuf,
        to: PathBuf,
        why: String,
    },
    /// Nothing to do or nothing that can be done.
    Skipped { id: i64, path: PathBuf, why: String },
    /// Tried and failed; nothing was changed at the path.
    Failed { id: i64, path: PathBuf, why: String },
}

impl Restored {
    pub fn failed(&self) -> bool {
        matches!(self, Restored::Failed { .. })
    }
}

/// Why a bulk restore leaves out an entry the agent session made itself.
pub const MADE_IN_SESSION: &str =
    "made during the agent's session (it did not exist before); --include-new restores it too";

/// A bulk restore's rows split into those to restore and those it leaves out: what was kept at
/// a path the agent's session had made itself (`rm -rf dist` of a `dist` it built, a temporary
/// file it wrote and removed). Nothing of the human's is among them; a restore by id, or with
/// `--include-new`, puts them back too.
pub fn leave_out_new(rows: Vec<StoredKept>) -> (Vec<StoredKept>, Vec<StoredKept>) {
    rows.into_iter().partition(|r| !r.record.new_in_session)
}

/// The rows to restore, one per path (the oldest that holds something), newest first.
pub fn choose(rows: &[StoredKept]) -> Vec<&StoredKept> {
    let mut oldest: HashMap<&str, &StoredKept> = HashMap::new();
    for row in rows {
        let r = &row.record;
        let better = |current: &StoredKept| {
            let c = &current.record;
            // What was not kept loses to anything that was; otherwise the older wins.
            match (c.how == KeptHow::NotKept, r.how == KeptHow::NotKept) {
                (true, false) => true,
                (false, true) => false,
                _ => (r.time_ms, row.id) < (c.time_ms, current.id),
            }
        };
        match oldest.get(r.path.as_str()) {
            Some(current) if !better(current) => {}
            _ => {
                oldest.insert(&r.path, row);
            }
        }
    }
    let mut chosen: Vec<&StoredKept> = oldest.into_values().collect();
    chosen.sort_by_key(|r| std::cmp::Reverse((r.record.time_ms, r.id)));
    chosen
}

/// Restore `rows` from the store at `store_root`; with `dry_run`, only say what would be done.
pub fn restore(store_root: &Path, rows: &[StoredKept], dry_run: bool) -> Vec<Restored> {
    let mut results = Vec::new();
    // Directory modes are applied last: one without write permission would refuse its files.
    let mut dir_modes: Vec<(PathBuf, u32)> = Vec::new();
    for row in choose(rows) {
        let result = restore_one(store_root, row, dry_run, &mut dir_modes);
        results.push(result);
    }
    if !dry_run {
        for (dir, mode) in dir_modes.into_iter().rev() {
            let _ = at::set_dir_mode(&dir, mode);
        }
    }
    results
}

fn restore_one(
    store_root: &Path,
    row: &StoredKept,
    dry_run: bool,
    dir_modes: &mut Vec<(PathBuf, u32)>,
) -> Restored {
    let r = &row.record;
    let id = row.id;
    let path = PathBuf::from(&r.path);
    let skipped = |why: &str| Restored::Skipped {
        id,
        path: path.clone(),
        why: why.to_string(),
    };
    if r.how == KeptHow::NotKept {
        return skipped("not kept (larger than the copy limit when the agent first wrote it)");
    }
    let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
        return skipped("not a path a file can be restored at");
    };
    // The parent as it is now: `None` while it does not exist (made below, unless a dry run).
    let looked = match at::open_dir(parent, false) {
        Ok(dir) => Some(dir),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => None,
        Err(e) => {
            let why = at::not_followed(parent, &e);
            return Restored::Failed { id, path, why };
        }
    };
    let now = match &looked {
        Some(dir) => at::state(dir.as_fd(), name),
        None => EndState::Absent,
    };
    if r.kind == EntryKind::Dir && r.how == KeptHow::Recorded {
        if at::open_dir(&path, false).is_ok() {
            return skipped("the directory is there");
        }
        if now != EndState::Absent {
            return skipped("something else is there now");
        }
        if dry_run {
            return Restored::InPlace { id, path };
        }
        return match at::open_dir(&path, true) {
            Ok(_) => {
                dir_modes.push((path.clone(), r.mode));
                Restored::InPlace { id, path }
            }
            Err(e) => Restored::Failed {
                id,
                why: format!("cannot make the directory: {}", at::not_followed(&path, &e)),
                path,
            },
        };
    }
    let Some(store_name) = r.store_name.as_deref() else {
        return skipped("nothing of it is in the store");
    };
    let source = store_root.join(store_name);
    if fs::symlink_metadata(&source).is_err() {
        return Restored::Failed {
            id,
            path,
            why: format!("{} is no longer in the store (purged?)", source.display()),
        };
    }
    let dir = match looked {
        Some(dir) => Some(dir),
        None if dry_run => None,
        None => match at::open_dir(parent, true) {
            Ok(dir) => Some(dir),
            Err(e) => {
                let why = format!("cannot make {}", at::not_followed(parent, &e));
                return Restored::Failed { id, path, why };
            }
        },
    };
    // In place when the path holds nothing, or exactly what the agent's session left there.
    let left = r.end_state.as_deref().and_then(EndState::parse);
    let (target_name, why_beside) = if now == EndState::Absent || left == Some(now) {
        (name.to_os_string(), None)
    } else {
        let why = match left {
            None => "the agent's session had not ended, so whether it changed since cannot be told",
            Some(_) => "it changed after the agent's session ended",
        };
        let free = |candidate: &OsStr| match &dir {
            Some(dir) => at::state(dir.as_fd(), candidate) == EndState::Absent,
            None => true,
        };
        (beside(name, free), Some(why.to_string()))
    };
    let target = parent.join(&target_name);
    let done = |path: PathBuf, target: PathBuf, why_beside: Option<String>| match why_beside {
        None => Restored::InPlace { id, path },
        Some(why) => Restored::Beside {
            id,
            path,
            to: target,
            why,
        },
    };
    let Some(dir) = dir.filter(|_| !dry_run) else {
        return done(path, target, why_beside);
    };
    match put_back(
        &source,
        dir.as_fd(),
        &target_name,
        r.kind,
        r.mode,
        r.mtime_ns,
        r.sha256.as_deref(),
    ) {
        Ok(()) => done(path, target, why_beside),
        Err(why) => Restored::Failed { id, path, why },
    }
}

/// `NAME.agent-guard-restored`, or `.1`, `.2`, ... when that is taken (`free` says).
fn beside(name: &OsStr, free: impl Fn(&OsStr) -> bool) -> OsString {
    let mut base = name.to_os_string();
    base.push(BESIDE_SUFFIX);
    let mut candidate = base.clone();
    let mut n = 1;
    while !free(&candidate) {
        candidate = base.clone();
        candidate.push(format!(".{n}"));
        n += 1;
    }
    candidate
}

/// Copy `source` (a file, a symlink or a copied tree in the store) to a temporary name in
/// `dir`, check it, and rename it to `name`.
fn put_back(
    source: &Path,
    dir: BorrowedFd<'_>,
    name: &OsStr,
    kind: EntryKind,
    mode: u32,
    mtime_ns: i64,
    sha256: Option<&str>,
) -> Result<(), String> {
    let mut temp = OsString::from(".");
    temp.push(name);
    temp.push(format!(".agent-guard-restoring-{}", std::process::id()));
    let meta = fs::symlink_metadata(source).map_err(|e| e.to_string())?;
    let written = if meta.file_type().is_symlink() {
        fs::read_link(source)
            .and_then(|text| at::symlink(&text, dir, &temp))
            .map_err(|e| format!("cannot make the symlink: {e}"))
    } else if meta.is_dir() {
        if at::state(dir, name) != EndState::Absent {
            return Err(format!(
                "{} exists; a kept directory tree is only put back where nothing is",
                name.to_string_lossy()
            ));
        }
        at::copy_tree(source, dir, &temp).map_err(|e| format!("cannot copy the kept tree: {e}"))
    } else if kind == EntryKind::File || meta.is_file() {
        at::create_file(dir, &temp)
            .map_err(|e| format!("cannot write {}: {e}", temp.to_string_lossy()))
            .and_then(|to| copy_checked(source, to, mode, mtime_ns, sha256))
    } else {
        return Err("only files, directories and symlinks can be restored".to_string());
    };
    if let Err(why) = written {
        at::remove(dir, &temp);
        return Err(why);
    }
    at::rename(dir, &temp, name).map_err(|e| {
        at::remove(dir, &temp);
        format!("cannot put it in place: {e}")
    })
}

/// Copy a kept file, hashing what is read; refuse it when the hash is not the recorded one.
fn copy_checked(
    source: &Path,
    mut to: File,
    mode: u32,
    mtime_ns: i64,
    sha256: Option<&str>,
) -> Result<(), String> {
    let mut from = File::open(source).map_err(|e| format!("cannot read the kept copy: {e}"))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = from.read(&mut buf).map_err(|e| e.to_string())?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        to.write_all(&buf[..n]).map_err(|e| e.to_string())?;
    }
    let got = hex(&hasher.finalize());
    if let Some(want) = sha256 {
        if got != want {
            return Err(format!(
                "the kept copy's SHA-256 is {got}, not the {want} recorded when it was kept; not restored"
            ));
        }
    }
    to.set_permissions(fs::Permissions::from_mode(mode & 0o7777))
        .map_err(|e| e.to_string())?;
    if mtime_ns >= 0 {
        let _ = to.set_modified(UNIX_EPOCH + Duration::from_nanos(mtime_ns as u64));
    }
    to.sync_all().map_err(|e| e.to_string())
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    out
}

/// The SHA-256 of a file, in hex (what the sensors record for each kept file).
pub fn sha256_of(path: &Path) -> io::Result<String> {
    sha256_with(path, &mut vec![0u8; 256 * 1024])
}

/// [`sha256_of`] reading through `buf`: a thread that hashes many files reuses one buffer
/// (a fresh zeroed one costs more than hashing a small file).
pub fn sha256_with(path: &Path, buf: &mut [u8]) -> io::Result<String> {
    let mut file = File::open(path)?;
    let mut hasher = Sha256::new();
    loop {
        let n = file.read(buf)?;
        if n == 0 {
            return Ok(hex(&hasher.finalize()));
        }
        hasher.update(&buf[..n]);
    }
}

#[cfg(test)]
mod tests;
