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

use crate::vocab::path::{match_key, self_and_ancestors};

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

/// The innermost zone of each kind that contains one path: the result of one ancestor walk.
#[derive(Clone, Copy, Debug, Default)]
pub struct ZoneHits<'a> {
    pub guard: Option<&'a Zone>,
    pub secret: Option<&'a Zone>,
    pub readonly: Option<&'a Zone>,
    pub protected: Option<&'a Zone>,
}

impl<'a> ZoneHits<'a> {
    pub fn get(&self, kind: ZoneKind) -> Option<&'a Zone> {
        match kind {
            ZoneKind::Guard => self.guard,
            ZoneKind::Secret => self.secret,
            ZoneKind::Readonly => self.readonly,
            ZoneKind::Protected => self.protected,
        }
    }

    fn slot(&mut self, kind: ZoneKind) -> &mut Option<&'a Zone> {
        match kind {
            ZoneKind::Guard => &mut self.guard,
            ZoneKind::Secret => &mut self.secret,
            ZoneKind::Readonly => &mut self.readonly,
            ZoneKind::Protected => &mut self.protected,
        }
    }

    /// In a secret, readonly or protected zone (the guard's own files aside).
    pub fn any_policy_zone(&self) -> bool {
        self.secret.is_some() || self.readonly.is_some() || self.protected.is_some()
    }
}

/// FNV-1a: zone lookups hash short path prefixes on every event, where SipHash's DoS resistance
/// buys nothing (the keys are the policy's own roots) and costs several times more.
#[derive(Clone, Copy, Debug, Default)]
pub struct PrefixHasher(u64);

impl std::hash::Hasher for PrefixHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        let mut hash = if self.0 == 0 {
            0xcbf2_9ce4_8422_2325
        } else {
            self.0
        };
        for &b in bytes {
            hash ^= u64::from(b);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
        self.0 = hash;
    }
}

type PrefixMap<V> = HashMap<Vec<u8>, V, std::hash::BuildHasherDefault<PrefixHasher>>;

/// All zones of a policy, indexed by root.
#[derive(Clone, Debug, Default)]
pub struct ZoneIndex {
    zones: Vec<Zone>,
    /// Match key of a root → indices into `zones`.
    by_root: PrefixMap<Vec<usize>>,
    /// Match keys of every zone root and every ancestor of one, with the zone indices below them:
    /// renaming any of these would move a zone.
    root_or_ancestor: PrefixMap<Vec<usize>>,
    case_insensitive: bool,
}

impl ZoneIndex {
    pub fn new(zones: Vec<Zone>, case_insensitive: bool) -> ZoneIndex {
        let mut by_root: PrefixMap<Vec<usize>> = PrefixMap::default();
        let mut root_or_ancestor: PrefixMap<Vec<usize>> = PrefixMap::default();
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
        self.lookup(path).get(kind)
    }

    /// The innermost zone of every kind that contains `path`, in one walk up its ancestors.
    pub fn lookup(&self, path: &Path) -> ZoneHits<'_> {
        let mut hits = ZoneHits::default();
        if self.zones.is_empty() {
            return hits;
        }
        let key = match_key(path, self.case_insensitive);
        for prefix in self_and_ancestors(&key) {
            for &i in self.by_root.get(prefix).into_iter().flatten() {
                let zone = &self.zones[i];
                hits.slot(zone.kind).get_or_insert(zone);
            }
        }
        hits
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

/// Read-only places named by globs (`**/.git/hooks/**`, `**/.envrc`): files the user's tools run
/// later, wherever they are. Looked up only for operations that modify, so reads pay nothing.
#[derive(Clone, Debug, Default)]
pub struct PatternZones {
    set: Option<GlobSet>,
    /// For each glob of `set`, the entry it came from (one entry may compile to several globs).
    owner: Vec<usize>,
    entries: Vec<PatternZone>,
}

/// One glob-named read-only zone. Making a directory there, or removing an empty one, is not a
/// change it guards: a directory runs nothing, and what is put in it is judged entry by entry.
#[derive(Clone, Debug)]
pub struct PatternZone {
    /// The glob as normalized (`~` expanded), for messages.
    pub pattern: String,
    pub except: Option<GlobSet>,
    /// Names of trusted tools that may write here (see `ReadonlyZoneEntry::except_tools`).
    pub except_tools: Vec<String>,
}

impl PatternZones {
    /// `entries` with, for each, the globs it compiles to.
    pub fn new(set: Option<GlobSet>, owner: Vec<usize>, entries: Vec<PatternZone>) -> Self {
        PatternZones {
            set,
            owner,
            entries,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// What a directory moved to `to` could bring into these zones without a single create: the
    /// places inside it, relative to it, that a glob with a `**/` head would cover once there
    /// (`.git/hooks` for any directory, `hooks` for one moved to `.../.git`). The sensor judges
    /// what exists there as creates under `to`.
    pub fn moved_tree_probes(&self, to: &Path) -> Vec<PathBuf> {
        let mut probes: Vec<PathBuf> = Vec::new();
        for zone in &self.entries {
            let Some(rest) = zone.pattern.strip_prefix("**/") else {
                continue;
            };
            let literal: Vec<&str> = rest
                .split('/')
                .take_while(|c| !c.contains(['*', '?', '[', '{']))
                .collect();
            let tail: Vec<&str> = to
                .components()
                .rev()
                .filter_map(|c| c.as_os_str().to_str())
                .collect();
            for i in 0..=literal.len() {
                let ends_with = (0..i).all(|k| tail.get(k) == Some(&literal[i - 1 - k]));
                if ends_with {
                    let probe: PathBuf = literal[i..].iter().collect();
                    if !probes.contains(&probe) {
                        probes.push(probe);
                    }
                }
            }
        }
        probes
    }

    /// A glob without a `**/` head whose fixed part lies at or below `to`: a directory moved
    /// there would replace what it names wholesale (`mv x ~/.local/lib`).
    pub fn fixed_part_at_or_below(&self, to: &Path) -> Option<&PatternZone> {
        self.entries.iter().find(|zone| {
            if zone.pattern.starts_with("**/") {
                return false;
            }
            let fixed: PathBuf = zone
                .pattern
                .split('/')
                .take_while(|c| !c.contains(['*', '?', '[', '{']))
                .collect::<Vec<_>>()
                .join("/")
                .into();
            fixed.starts_with(to)
        })
    }

    /// The first zone whose glob matches `path` and whose carve-outs do not.
    pub fn matching(&self, path: &Path) -> Option<&PatternZone> {
        let set = self.set.as_ref()?;
        set.matches(path)
            .into_iter()
            .map(|i| &self.entries[self.owner[i]])
            .find(|zone| !zone.except.as_ref().is_some_and(|e| e.is_match(path)))
    }
}
