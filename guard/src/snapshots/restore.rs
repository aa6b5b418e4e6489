//! `agent-guard undo restore`: put kept entries back, as the human.
//!
//! Per path, the oldest kept state wins: the state before the agent first touched it. They go
//! back in the reverse order of their destruction, so a tree removed with `rm -rf` (files first,
//! then their directories) comes back directories first. A path is restored in place only when
//! what is there now is what the agent's session left (its end state: the agent's own later
//! writes are part of what is undone) or nothing; otherwise someone changed it since, and the
//! kept version goes beside it as `NAME.agent-guard-restored`. Every file is written to a
//! temporary name in its directory and renamed into place, and its bytes are checked against
//! the hash recorded when it was kept.
//!
//! This runs with the human's rights and writes into the zones: it must never be offered to an
//! agent (the CLI refuses), and never overwrite a path whose state it cannot vouch for.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
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
            let _ = fs::set_permissions(&dir, fs::Permissions::from_mode(mode & 0o7777));
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
    let now = EndState::of(&path);
    if r.kind == EntryKind::Dir && r.how == KeptHow::Recorded {
        if path.is_dir() {
            return skipped("the directory is there");
        }
        if now != EndState::Absent {
            return skipped("something else is there now");
        }
        if dry_run {
            return Restored::InPlace { id, path };
        }
        return match make_dir_and_parents(&path) {
            Ok(()) => {
                dir_modes.push((path.clone(), r.mode));
                Restored::InPlace { id, path }
            }
            Err(e) => Restored::Failed {
                id,
                path,
                why: format!("cannot make the directory: {e}"),
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
    // In place when the path holds nothing, or exactly what the agent's session left there.
    let left = r.end_state.as_deref().and_then(EndState::parse);
    let (target, why_beside) = if now == EndState::Absent || left == Some(now) {
        (path.clone(), None)
    } else {
        let why = match left {
            None => "the agent's session had not ended, so whether it changed since cannot be told",
            Some(_) => "it changed after the agent's session ended",
        };
        (beside(&path), Some(why.to_string()))
    };
    let done = |path: PathBuf, target: PathBuf, why_beside: Option<String>| match why_beside {
        None => Restored::InPlace { id, path },
        Some(why) => Restored::Beside {
            id,
            path,
            to: target,
            why,
        },
    };
    if dry_run {
        return done(path, target, why_beside);
    }
    if let Some(parent) = target.parent() {
        if let Err(e) = make_dir_and_parents(parent) {
            return Restored::Failed {
                id,
                path,
                why: format!("cannot make {}: {e}", parent.display()),
            };
        }
    }
    match put_back(
        &source,
        &target,
        r.kind,
        r.mode,
        r.mtime_ns,
        r.sha256.as_deref(),
    ) {
        Ok(()) => done(path, target, why_beside),
        Err(why) => Restored::Failed { id, path, why },
    }
}

/// `PATH.agent-guard-restored`, or `.1`, `.2`, ... when that is taken.
fn beside(path: &Path) -> PathBuf {
    let base = format!("{}{BESIDE_SUFFIX}", path.display());
    let mut candidate = PathBuf::from(&base);
    let mut n = 1;
    while fs::symlink_metadata(&candidate).is_ok() {
        candidate = PathBuf::from(format!("{base}.{n}"));
        n += 1;
    }
    candidate
}

fn make_dir_and_parents(dir: &Path) -> io::Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(dir)
}

/// Copy `source` (a file, a symlink or a copied tree in the store) to a temporary name next to
/// `target`, check it, and rename it into place.
fn put_back(
    source: &Path,
    target: &Path,
    kind: EntryKind,
    mode: u32,
    mtime_ns: i64,
    sha256: Option<&str>,
) -> Result<(), String> {
    let parent = target.parent().unwrap_or(Path::new("/"));
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temp = parent.join(format!(
        ".{name}.agent-guard-restoring-{}",
        std::process::id()
    ));
    let meta = fs::symlink_metadata(source).map_err(|e| e.to_string())?;
    let written = if meta.file_type().is_symlink() {
        fs::read_link(source)
            .and_then(|text| std::os::unix::fs::symlink(text, &temp))
            .map_err(|e| format!("cannot make the symlink: {e}"))
    } else if meta.is_dir() {
        if fs::symlink_metadata(target).is_ok() {
            return Err(format!(
                "{} exists; a kept directory tree is only put back where nothing is",
                target.display()
            ));
        }
        copy_tree(source, &temp).map_err(|e| format!("cannot copy the kept tree: {e}"))
    } else if kind == EntryKind::File || meta.is_file() {
        copy_checked(source, &temp, mode, mtime_ns, sha256)
    } else {
        return Err("only files, directories and symlinks can be restored".to_string());
    };
    if let Err(why) = written {
        let _ = fs::remove_file(&temp);
        let _ = fs::remove_dir_all(&temp);
        return Err(why);
    }
    fs::rename(&temp, target).map_err(|e| {
        let _ = fs::remove_file(&temp);
        let _ = fs::remove_dir_all(&temp);
        format!("cannot put it in place: {e}")
    })
}

/// Copy a kept file, hashing what is read; refuse it when the hash is not the recorded one.
fn copy_checked(
    source: &Path,
    temp: &Path,
    mode: u32,
    mtime_ns: i64,
    sha256: Option<&str>,
) -> Result<(), String> {
    let mut from = File::open(source).map_err(|e| format!("cannot read the kept copy: {e}"))?;
    let mut to = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(temp)
        .map_err(|e| format!("cannot write {}: {e}", temp.display()))?;
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

fn copy_tree(from: &Path, to: &Path) -> io::Result<()> {
    fs::create_dir(to)?;
    let mut modes = Vec::new();
    let mut stack = vec![(from.to_path_buf(), to.to_path_buf())];
    while let Some((src, dst)) = stack.pop() {
        for e in fs::read_dir(&src)? {
            let e = e?;
            let meta = e.path().symlink_metadata()?;
            let out = dst.join(e.file_name());
            if meta.is_dir() {
                fs::create_dir(&out)?;
                modes.push((out.clone(), meta.permissions().mode()));
                stack.push((e.path(), out));
            } else if meta.file_type().is_symlink() {
                std::os::unix::fs::symlink(fs::read_link(e.path())?, &out)?;
            } else if meta.is_file() {
                fs::copy(e.path(), &out)?;
            }
        }
    }
    for (dir, mode) in modes.into_iter().rev() {
        fs::set_permissions(dir, fs::Permissions::from_mode(mode))?;
    }
    Ok(())
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The SHA-256 of a file, in hex (what the sensors record for each kept file).
pub fn sha256_of(path: &Path) -> io::Result<String> {
    let mut file = File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            return Ok(hex(&hasher.finalize()));
        }
        hasher.update(&buf[..n]);
    }
}

#[cfg(test)]
mod tests;
