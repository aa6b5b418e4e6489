//! Which names in the zones that keep an agent session made itself: a name that did not exist
//! when the session's call that made it was judged (a creating open, mkdir, mknod, symlink, a
//! link's new name, a rename from outside those zones). A bulk `undo restore` leaves out what
//! was kept at such a name: the session's own scratch files and build trees, made and deleted,
//! would otherwise litter the zone (docs/snapshots.md).
//!
//! A mark belongs to a name and everything below it: what a session made inside a directory it
//! made is its own too. A rename carries the marks of the name and of everything below it to
//! the new name, so a file the session made and renamed is still its own, and a file that was
//! there before stays the human's wherever the session moves it within the zones (an explicit
//! "not new" mark, where it lands below a name the session made). A name that goes away takes
//! its marks with it.
//!
//! Only the sensor's view: what is marked is what the agent's calls did, as the sensor performed
//! them. It must never decide what is kept (everything destroyed still is, marked or not) and
//! never touch a file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};

/// The marks of one session: path → whether the session made the name (`true`) or it was there
/// before (`false`, only where it lies below a name the session made). A path without a mark
/// takes its nearest marked ancestor's; without one, it was there before.
#[derive(Debug, Default)]
pub struct NewNames {
    marks: Mutex<BTreeMap<PathBuf, bool>>,
}

impl NewNames {
    fn marks(&self) -> MutexGuard<'_, BTreeMap<PathBuf, bool>> {
        // Plain data: a panic elsewhere leaves it usable.
        self.marks.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether the session made `path` (or a directory above it) itself.
    pub fn is_new(&self, path: &Path) -> bool {
        status_of(&self.marks(), path)
    }

    /// The session made `path`.
    pub fn created(&self, path: &Path) {
        let mut marks = self.marks();
        take_below(&mut marks, path);
        set(&mut marks, path, true);
    }

    /// `path` went away (unlink, rmdir, moved out of the zones that keep): its marks go with it.
    pub fn removed(&self, path: &Path) {
        take_below(&mut self.marks(), path);
    }

    /// `from` was renamed to `to`, both in zones that keep: `to` (and what lies below it) is the
    /// session's own exactly when `from` was, or when the sensor kept `from` itself before the
    /// rename (`from_kept`: a restore puts the file back at `from`, so what is at `to` is a
    /// second copy of it). What `to` named before is gone.
    pub fn renamed(&self, from: &Path, to: &Path, from_kept: bool) {
        if from == to {
            return;
        }
        let mut marks = self.marks();
        let status = from_kept || status_of(&marks, from);
        let below = take_below(&mut marks, from);
        take_below(&mut marks, to);
        put_below(&mut marks, to, below);
        set(&mut marks, to, status);
    }

    /// `a` and `b` swapped places (`RENAME_EXCHANGE`), both in zones that keep.
    pub fn exchanged(&self, a: &Path, b: &Path) {
        if a == b {
            return;
        }
        let mut marks = self.marks();
        let (status_a, status_b) = (status_of(&marks, a), status_of(&marks, b));
        let (below_a, below_b) = (take_below(&mut marks, a), take_below(&mut marks, b));
        put_below(&mut marks, b, below_a);
        put_below(&mut marks, a, below_b);
        set(&mut marks, b, status_a);
        set(&mut marks, a, status_b);
    }

    /// How many marks are held (for tests and the curious).
    pub fn len(&self) -> usize {
        self.marks().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The nearest mark at or above `path`; unmarked: there before.
fn status_of(marks: &BTreeMap<PathBuf, bool>, path: &Path) -> bool {
    path.ancestors()
        .find_map(|p| marks.get(p).copied())
        .unwrap_or(false)
}

/// Mark `path` with `status`, or leave it unmarked when its parent says the same already.
fn set(marks: &mut BTreeMap<PathBuf, bool>, path: &Path, status: bool) {
    marks.remove(path);
    let inherited = path.parent().is_some_and(|p| status_of(marks, p));
    if inherited != status {
        marks.insert(path.to_path_buf(), status);
    }
}

/// Remove the marks at and below `path`; those below, relative to it.
fn take_below(marks: &mut BTreeMap<PathBuf, bool>, path: &Path) -> Vec<(PathBuf, bool)> {
    marks.remove(path);
    // Paths order by component: everything below `path` follows it, before any sibling.
    let below: Vec<PathBuf> = marks
        .range::<Path, _>((std::ops::Bound::Excluded(path), std::ops::Bound::Unbounded))
        .map(|(p, _)| p)
        .take_while(|p| p.starts_with(path))
        .cloned()
        .collect();
    below
        .into_iter()
        .filter_map(|p| {
            let status = marks.remove(&p)?;
            let relative = p.strip_prefix(path).ok()?.to_path_buf();
            Some((relative, status))
        })
        .collect()
}

fn put_below(marks: &mut BTreeMap<PathBuf, bool>, path: &Path, below: Vec<(PathBuf, bool)>) {
    for (relative, status) in below {
        marks.insert(path.join(relative), status);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> &Path {
        Path::new(s)
    }

    #[test]
    fn what_a_session_makes_is_new_below_it_too_until_it_goes() {
        let n = NewNames::default();
        assert!(!n.is_new(p("/h/proj/README.md")));
        n.created(p("/h/proj/dist"));
        n.created(p("/h/proj/dist/app.js"));
        n.created(p("/h/proj/tmp.o"));
        assert!(n.is_new(p("/h/proj/dist")));
        assert!(n.is_new(p("/h/proj/dist/app.js")));
        // Made inside a directory the session made, by a call it did not see.
        assert!(n.is_new(p("/h/proj/dist/deep/x")));
        assert!(!n.is_new(p("/h/proj")));
        assert!(!n.is_new(p("/h/proj/dist2")));
        assert!(!n.is_new(p("/h/proj/dis")));
        // dist/app.js inherits dist's mark: one mark less to hold.
        assert_eq!(n.len(), 2);
        n.removed(p("/h/proj/tmp.o"));
        assert!(!n.is_new(p("/h/proj/tmp.o")));
        n.removed(p("/h/proj/dist"));
        assert!(!n.is_new(p("/h/proj/dist/app.js")));
        assert!(n.is_empty());
    }

    #[test]
    fn a_rename_moves_the_mark_with_the_name_and_what_is_below_it() {
        let n = NewNames::default();
        // An editor's save: a new temporary file renamed over a file that was there.
        n.created(p("/h/f.tmp"));
        n.renamed(p("/h/f.tmp"), p("/h/f"), false);
        assert!(!n.is_new(p("/h/f.tmp")));
        assert!(n.is_new(p("/h/f")));
        // GNU sed -i.bak: the original renamed aside stays the human's, unless the sensor kept
        // it at its old name (then a restore puts it back there, and g.bak is a second copy).
        n.renamed(p("/h/g"), p("/h/g.bak"), false);
        assert!(!n.is_new(p("/h/g.bak")));
        n.renamed(p("/h/k"), p("/h/k.bak"), true);
        assert!(n.is_new(p("/h/k.bak")) && !n.is_new(p("/h/k")));
        // A tree the session made, moved: its marks move with it, old and new.
        n.created(p("/h/build"));
        n.created(p("/h/build/out"));
        n.renamed(p("/h/src.rs"), p("/h/build/src.rs"), false);
        assert!(!n.is_new(p("/h/build/src.rs")), "there before, moved in");
        n.renamed(p("/h/build"), p("/h/dist"), false);
        assert!(!n.is_new(p("/h/build")) && !n.is_new(p("/h/build/out")));
        assert!(n.is_new(p("/h/dist")) && n.is_new(p("/h/dist/out")));
        assert!(!n.is_new(p("/h/dist/src.rs")));
        // Moved back out from under the new directory, it is still the human's.
        n.renamed(p("/h/dist/src.rs"), p("/h/src.rs"), false);
        assert!(!n.is_new(p("/h/src.rs")));
        // A name the session made renamed over one it made: the new content is its own.
        n.created(p("/h/a"));
        n.renamed(p("/h/old"), p("/h/a"), false);
        assert!(!n.is_new(p("/h/a")), "what was at old was there before");
    }

    #[test]
    fn an_exchange_swaps_the_marks() {
        let n = NewNames::default();
        n.created(p("/h/new"));
        n.created(p("/h/new/x"));
        n.exchanged(p("/h/new"), p("/h/old"));
        assert!(n.is_new(p("/h/old")) && n.is_new(p("/h/old/x")));
        assert!(!n.is_new(p("/h/new")) && !n.is_new(p("/h/new/x")));
    }
}
