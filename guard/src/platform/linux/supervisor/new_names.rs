//! The names an emulated call makes, moves or removes in zones that keep, noted in the agent
//! session's [`NewNames`] as the call is performed: a bulk `undo restore` leaves out what the
//! session made itself (docs/snapshots.md).
//!
//! Looked at before the call (what it will do, whether the name it makes is there yet), noted
//! after it (only what happened). A name a call makes is noted before the call is performed: an
//! open answers the task itself, and any task may remove the new name at once, whose keep must
//! find it marked; the note is taken back when the call did not make it.
//!
//! It must never change a file or an answer: it only tells the session what was done.

use std::path::{Path, PathBuf};

use super::emulate::{path_of, Emulation};
use crate::platform::linux::sys::notify::Response;
use crate::snapshots::new_names::NewNames;

/// What a call does to names in zones that keep.
#[derive(Debug, PartialEq, Eq)]
pub enum NameChange {
    Nothing,
    /// mkdir, mknod, symlink, link of a name that is not there: noted already (see the module),
    /// taken back unless the call succeeds.
    Makes(PathBuf),
    /// A creating open of a file that was not there: noted already, taken back unless the file
    /// is there afterwards (the open's answer may have gone to the task already).
    Opens(PathBuf),
    /// unlink, rmdir.
    Removes(PathBuf),
    /// A rename; `from_kept`/`to_kept`: whether each side lies in a zone that keeps.
    Renames {
        from: PathBuf,
        to: PathBuf,
        from_kept: bool,
        to_kept: bool,
        exchange: bool,
        /// The sensor kept the file at `from` before the rename (see [`NameChange::kept`]).
        from_stored: bool,
    },
}

impl NameChange {
    /// What `emulation` will do to names where `keeps_at`, looked at before it runs. A creating
    /// open of a file that is not there is noted in `names` now.
    pub fn before(
        emulation: &Emulation,
        keeps_at: &dyn Fn(&Path) -> bool,
        names: &NewNames,
    ) -> NameChange {
        let kept = |path: PathBuf| {
            if keeps_at(&path) {
                Some(path)
            } else {
                None
            }
        };
        // A name the call would make, when it is not there yet: noted now.
        let made = |path: PathBuf| {
            let path = kept(path)?;
            if std::fs::symlink_metadata(&path).is_ok() {
                return None;
            }
            names.created(&path);
            Some(path)
        };
        let change = match emulation {
            Emulation::Open { path, flags, .. } if flags & libc::O_CREAT != 0 => {
                made(path.clone()).map(NameChange::Opens)
            }
            Emulation::Mkdir { parent, name, .. }
            | Emulation::Mknod { parent, name, .. }
            | Emulation::Symlink { parent, name, .. }
            | Emulation::Link {
                to_parent: parent,
                to_name: name,
                ..
            }
            | Emulation::LinkObject {
                to_parent: parent,
                to_name: name,
                ..
            } => made(path_of(parent, name)).map(NameChange::Makes),
            Emulation::Unlink { parent, name, .. } => {
                kept(path_of(parent, name)).map(NameChange::Removes)
            }
            Emulation::Rename {
                from_parent,
                from_name,
                to_parent,
                to_name,
                flags,
                ..
            } => {
                let (from, to) = (path_of(from_parent, from_name), path_of(to_parent, to_name));
                let (from_kept, to_kept) = (keeps_at(&from), keeps_at(&to));
                (from_kept || to_kept).then_some(NameChange::Renames {
                    from,
                    to,
                    from_kept,
                    to_kept,
                    exchange: flags & libc::RENAME_EXCHANGE != 0,
                    from_stored: false,
                })
            }
            _ => None,
        };
        change.unwrap_or(NameChange::Nothing)
    }

    /// What the keeper stored for the call: a rename's source among it (a file renamed within
    /// its zone, kept at its old name) makes the destination a second copy, the session's own.
    pub fn kept(&mut self, stored: &[&Path]) {
        if let NameChange::Renames {
            from, from_stored, ..
        } = self
        {
            *from_stored = stored.contains(&from.as_path());
        }
    }

    /// Note what the call did, given its answer (`None`: answered already, or the task is gone).
    pub fn after(self, response: Option<&Response>, names: &NewNames) {
        let performed = matches!(response, Some(Response::Value(_)));
        match self {
            NameChange::Nothing => {}
            NameChange::Opens(path) => {
                if std::fs::symlink_metadata(&path).is_err() {
                    names.removed(&path);
                }
            }
            NameChange::Makes(path) => {
                if !performed {
                    names.removed(&path);
                }
            }
            _ if !performed => {}
            NameChange::Removes(path) => names.removed(&path),
            NameChange::Renames {
                from,
                to,
                from_kept,
                to_kept,
                exchange,
                from_stored,
            } => match (from_kept, to_kept, exchange) {
                (true, true, false) => names.renamed(&from, &to, from_stored),
                (true, true, true) => names.exchanged(&from, &to),
                // Brought in from outside the zones that keep: the session's own.
                (false, true, _) => names.created(&to),
                (true, false, true) => names.created(&from),
                (true, false, false) => names.removed(&from),
                (false, false, _) => {}
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CString;

    fn name(s: &str) -> CString {
        CString::new(s).unwrap()
    }

    fn mkdir(parent: &Path, n: &str) -> Emulation {
        Emulation::Mkdir {
            parent: parent.to_path_buf(),
            name: name(n),
            mode: 0o755,
            tid: 1,
        }
    }

    fn rename(from: &Path, to: &Path) -> Emulation {
        Emulation::Rename {
            from_parent: from.parent().unwrap().to_path_buf(),
            from_name: name(from.file_name().unwrap().to_str().unwrap()),
            to_parent: to.parent().unwrap().to_path_buf(),
            to_name: name(to.file_name().unwrap().to_str().unwrap()),
            flags: 0,
            noreplace_added: false,
        }
    }

    #[test]
    fn a_name_is_marked_before_the_call_and_unmarked_when_it_was_not_made() {
        let dir = tempfile::tempdir().unwrap();
        let zone = dir.path().join("zone");
        std::fs::create_dir(&zone).unwrap();
        let in_zone = |p: &Path| p.starts_with(&zone);
        let names = NewNames::default();
        let change = NameChange::before(&mkdir(&zone, "dist"), &in_zone, &names);
        assert!(names.is_new(&zone.join("dist")), "marked before the call");
        change.after(Some(&Response::Value(0)), &names);
        assert!(names.is_new(&zone.join("dist")));
        // A call that failed takes its mark back.
        let change = NameChange::before(&mkdir(&zone, "nope"), &in_zone, &names);
        change.after(Some(&Response::Error(libc::EACCES)), &names);
        assert!(!names.is_new(&zone.join("nope")));
        // A name that is there is not the call's to make; outside the zones nothing is noted.
        std::fs::write(zone.join("there"), "x").unwrap();
        let there = NameChange::before(&mkdir(&zone, "there"), &in_zone, &names);
        assert_eq!(there, NameChange::Nothing);
        let outside = NameChange::before(&mkdir(dir.path(), "out"), &in_zone, &names);
        assert_eq!(outside, NameChange::Nothing);
        assert!(names.is_new(&zone.join("dist")) && !names.is_new(&zone.join("there")));
    }

    #[test]
    fn a_rename_from_outside_is_new_and_one_whose_source_was_kept_too() {
        let dir = tempfile::tempdir().unwrap();
        let zone = dir.path().join("zone");
        let in_zone = |p: &Path| p.starts_with(&zone);
        let names = NewNames::default();
        let from_outside = rename(&dir.path().join("gen.json"), &zone.join("config.json"));
        NameChange::before(&from_outside, &in_zone, &names)
            .after(Some(&Response::Value(0)), &names);
        assert!(names.is_new(&zone.join("config.json")));
        // Within the zone: the mark moves, unless the source was kept at its old name.
        let (f, g) = (zone.join("f"), zone.join("g"));
        NameChange::before(&rename(&f, &g), &in_zone, &names)
            .after(Some(&Response::Value(0)), &names);
        assert!(!names.is_new(&g));
        let mut kept = NameChange::before(&rename(&g, &f), &in_zone, &names);
        kept.kept(&[g.as_path()]);
        kept.after(Some(&Response::Value(0)), &names);
        assert!(names.is_new(&f));
        // A rename that did not happen changes nothing.
        NameChange::before(&rename(&zone.join("config.json"), &g), &in_zone, &names)
            .after(Some(&Response::Error(libc::EEXIST)), &names);
        assert!(names.is_new(&zone.join("config.json")) && !names.is_new(&g));
    }
}
