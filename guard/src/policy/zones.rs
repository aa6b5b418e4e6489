//! Zones and the index the engine uses to find the zones that contain a path.
//!
//! A lookup walks the path's own ancestors (at most its depth) and probes a hash map of zone roots
//! for each, so its cost does not grow with the number of zones. Matching is on path-component
//! boundaries, and case-insensitive when the policy was loaded for macOS.
//! Pure data and lookups: no I/O.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use globset::GlobSet;
use serde::Serialize;

use crate::engine::path::{match_key, self_and_ancestors};

/// The kinds of zone, in the order the engine consults them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ZoneKind {
    /// agent-guard's own files: the policy, the state dir, the logs, the binary.
    Guard,
    Secret,
    Readonly,
    Protected,
}

impl ZoneKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ZoneKind::Guard => "guard",
            ZoneKind::Secret => "secret",
            ZoneKind::Readonly => "readonly",
            ZoneKind::Protected => "protected",
        }
    }
}

/// One zone: a root (absolute, clean, symlinks resolved) and its kind.
#[derive(Clone, Debug)]
pub struct Zone {
    pub kind: ZoneKind,
    pub root: PathBuf,
    /// Subtrees of a protected zone that are not protected (`**/target/**`, `~/.cache/**`).
    pub except: Option<GlobSet>,
}

impl Zone {
    /// Whether `path` (inside this zone) falls in one of the zone's carve-outs.
    pub fn excepts(&self, path: &Path) -> bool {
        self.except.as_ref().is_some_and(|e| e.is_match(path))
    }
}

/// All zones of a policy, indexed by root.
#[derive(Clone, Debug, Default)]
pub struct ZoneIndex {
    zones: Vec<Zone>,
    /// Match key of a root → indices into `zones`.
    by_root: HashMap<Vec<u8>, Vec<usize>>,
    /// Match keys of every zone root and every ancestor of one, with the zone indices below them:
    /// renaming any of these would move a zone.
    root_or_ancestor: HashMap<Vec<u8>, Vec<usize>>,
    case_insensitive: bool,
}

impl ZoneIndex {
    pub fn new(zones: Vec<Zone>, case_insensitive: bool) -> ZoneIndex {
        let mut by_root: HashMap<Vec<u8>, Vec<usize>> = HashMap::new();
        let mut root_or_ancestor: HashMap<Vec<u8>, Vec<usize>> = HashMap::new();
        for (i, zone) in zones.iter().enumerate() {
            let key = match_key(&zone.root, case_insensitive).into_owned();
            for prefix in self_and_ancestors(&key) {
                let below = root_or_ancestor.entry(prefix.to_vec()).or_default();
                if !below.contains(&i) {
                    below.push(i);
                }
            }
            by_root.entry(key).or_default().push(i);
        }
        ZoneIndex {
            zones,
            by_root,
            root_or_ancestor,
            case_insensitive,
        }
    }

    pub fn case_insensitive(&self) -> bool {
        self.case_insensitive
    }

    pub fn all(&self) -> &[Zone] {
        &self.zones
    }

    pub fn of_kind(&self, kind: ZoneKind) -> impl Iterator<Item = &Zone> {
        self.zones.iter().filter(move |z| z.kind == kind)
    }

    /// The innermost zone of `kind` that contains `path`, if any.
    pub fn containing(&self, path: &Path, kind: ZoneKind) -> Option<&Zone> {
        let key = match_key(path, self.case_insensitive);
        let found = self_and_ancestors(&key)
            .filter_map(|prefix| self.by_root.get(prefix))
            .flatten()
            .map(|&i| &self.zones[i])
            .find(|z| z.kind == kind);
        found
    }

    /// A zone of `kind` whose root is `path` or lies below it: renaming `path` would move it.
    pub fn root_at_or_below(&self, path: &Path, kind: ZoneKind) -> Option<&Zone> {
        let key = match_key(path, self.case_insensitive);
        self.root_or_ancestor
            .get(&*key)?
            .iter()
            .map(|&i| &self.zones[i])
            .find(|z| z.kind == kind)
    }

    /// Distinct roots of every zone (for the macOS muting selection and `status`).
    pub fn roots(&self) -> Vec<&Path> {
        let mut seen = HashSet::new();
        self.zones
            .iter()
            .map(|z| z.root.as_path())
            .filter(|r| seen.insert(*r))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zone(kind: ZoneKind, root: &str) -> Zone {
        Zone {
            kind,
            root: PathBuf::from(root),
            except: None,
        }
    }

    #[test]
    fn innermost_zone_of_each_kind() {
        let index = ZoneIndex::new(
            vec![
                zone(ZoneKind::Protected, "/h"),
                zone(ZoneKind::Secret, "/h/.ssh"),
            ],
            false,
        );
        let p = Path::new("/h/.ssh/id");
        assert_eq!(
            index.containing(p, ZoneKind::Secret).unwrap().root,
            Path::new("/h/.ssh")
        );
        assert_eq!(
            index.containing(p, ZoneKind::Protected).unwrap().root,
            Path::new("/h")
        );
        assert!(index
            .containing(Path::new("/hx"), ZoneKind::Protected)
            .is_none());
    }

    #[test]
    fn ancestors_of_roots_are_known() {
        let index = ZoneIndex::new(vec![zone(ZoneKind::Secret, "/h/u/.ssh")], false);
        assert!(index
            .root_at_or_below(Path::new("/h"), ZoneKind::Secret)
            .is_some());
        assert!(index
            .root_at_or_below(Path::new("/h/u/.ssh"), ZoneKind::Secret)
            .is_some());
        assert!(index
            .root_at_or_below(Path::new("/h/u/.ssh/x"), ZoneKind::Secret)
            .is_none());
        assert!(index
            .root_at_or_below(Path::new("/h/v"), ZoneKind::Secret)
            .is_none());
    }

    #[test]
    fn case_insensitive_matching_when_asked() {
        let index = ZoneIndex::new(vec![zone(ZoneKind::Protected, "/users/a/src")], true);
        assert!(index
            .containing(Path::new("/Users/A/SRC/x"), ZoneKind::Protected)
            .is_some());
        let index = ZoneIndex::new(vec![zone(ZoneKind::Protected, "/users/a/src")], false);
        assert!(index
            .containing(Path::new("/Users/A/SRC/x"), ZoneKind::Protected)
            .is_none());
    }
}
