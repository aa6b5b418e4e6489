//! Which target paths the file client asks the kernel for.
//!
//! The file client inverts target-path muting (`ES_MUTE_INVERSION_TYPE_TARGET_PATH`): after
//! inversion, a muted path is the only thing delivered, so the kernel sends nothing for the rest
//! of the disk and the daemon costs nothing outside the zones. The selection must therefore be a
//! superset of every path a rule can be about:
//! - every zone root and guard file as a *prefix* (everything inside it);
//! - every ancestor of those as a *literal*, because renaming `~` or `~/src` moves a zone as a
//!   whole, and the rename's target is the ancestor itself, which no prefix covers;
//! - both spellings of the firmlinked system directories: ES reports `/private/tmp/x` for
//!   `/tmp/x` (and `/var`, `/etc`), while a policy names `/tmp/x`.
//!
//! Muting is per event type (`es_mute_path_events`): AUTH_OPEN, by far the most frequent event,
//! is selected only under read-only and secret zones and the guard's files, where a read or a
//! write can be denied, and under protected zones that keep, where a writing open is kept first;
//! in a protected zone that denies anyone may open anything.
//!
//! Pure: the glue applies [`MutingSelection::mutes`] through the `EsClient` seam.

use std::collections::{BTreeSet, HashSet};
use std::path::{Path, PathBuf};

use crate::platform::macos::api::{EsEventKind, PathMute};
use crate::vocab::path::{clean, is_within, match_key, self_and_ancestors};

/// The file AUTH events the file client subscribes to.
pub fn file_auth_events() -> Vec<EsEventKind> {
    EsEventKind::ALL
        .into_iter()
        .filter(|e| e.is_file_auth())
        .collect()
}

/// [`file_auth_events`] without AUTH_OPEN.
pub fn file_events_but_open() -> Vec<EsEventKind> {
    file_auth_events()
        .into_iter()
        .filter(|e| *e != EsEventKind::AuthOpen)
        .collect()
}

/// The paths to deliver; everything else stays muted.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MutingSelection {
    /// A root is `/`: deliver everything (do not invert at all).
    pub everything: bool,
    /// Deliver every file event but opens whose target is inside one of these.
    pub prefixes: Vec<PathBuf>,
    /// ... or exactly one of these (ancestors of the prefixes).
    pub literals: Vec<PathBuf>,
    /// Deliver opens whose target is inside one of these (read-only and secret zones, the
    /// guard's files).
    pub open_prefixes: Vec<PathBuf>,
}

/// One entry of a client's target-path mute set: a path, how it matches, and whether it is the
/// opens' entry or the other file events'.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Mute {
    pub path: PathBuf,
    pub how: PathMute,
    pub opens: bool,
}

impl Mute {
    /// The event types this entry selects.
    pub fn events(&self) -> Vec<EsEventKind> {
        if self.opens {
            vec![EsEventKind::AuthOpen]
        } else {
            file_events_but_open()
        }
    }
}

impl MutingSelection {
    /// The mute set that selects exactly this (empty for [`MutingSelection::everything`]).
    pub fn mutes(&self) -> BTreeSet<Mute> {
        if self.everything {
            return BTreeSet::new();
        }
        let entry = |path: &PathBuf, how, opens| Mute {
            path: path.clone(),
            how,
            opens,
        };
        let prefixes = self
            .prefixes
            .iter()
            .map(|p| entry(p, PathMute::Prefix, false));
        let literals = self
            .literals
            .iter()
            .map(|p| entry(p, PathMute::Literal, false));
        let opens = self
            .open_prefixes
            .iter()
            .map(|p| entry(p, PathMute::Prefix, true));
        prefixes.chain(literals).chain(opens).collect()
    }
}

/// The top-level directories macOS maps to `/private/...`.
const PRIVATE_ALIASED: [&str; 3] = ["tmp", "var", "etc"];

/// The selection for a policy's protected zone roots and its `restricted` roots (read-only and
/// secret zones, the guard's own files). `case_insensitive`: the boot volume's matching (APFS
/// default); two spellings differing only in case are one entry.
pub fn selection(
    protected: &[PathBuf],
    restricted: &[PathBuf],
    case_insensitive: bool,
) -> MutingSelection {
    let (Some(prefixes), Some(open_prefixes)) = (
        covering(protected.iter().chain(restricted), case_insensitive),
        covering(restricted.iter(), case_insensitive),
    ) else {
        return MutingSelection {
            everything: true,
            ..MutingSelection::default()
        };
    };

    let mut seen = HashSet::new();
    let mut literals = Vec::new();
    for prefix in &prefixes {
        let key = match_key(prefix, case_insensitive).into_owned();
        for ancestor in self_and_ancestors(&key).skip(1) {
            if ancestor == b"/" {
                continue;
            }
            if !seen.insert(ancestor.to_vec()) {
                continue;
            }
            // The original spelling of this ancestor: the same byte length of `prefix`.
            let spelled = &prefix.as_os_str().as_encoded_bytes()[..ancestor.len()];
            literals.push(PathBuf::from(String::from_utf8_lossy(spelled).into_owned()));
        }
    }
    literals.sort();
    MutingSelection {
        everything: false,
        prefixes,
        literals,
        open_prefixes,
    }
}

/// The fewest prefixes that cover `roots` and their `/private` aliases, sorted; `None` when one
/// of them is `/` (everything).
fn covering<'a>(
    roots: impl Iterator<Item = &'a PathBuf>,
    case_insensitive: bool,
) -> Option<Vec<PathBuf>> {
    let mut all: Vec<PathBuf> = Vec::new();
    for root in roots {
        let root = clean(root);
        if root == Path::new("/") {
            return None;
        }
        all.extend(private_aliases(&root));
        all.push(root);
    }
    // Shorter first, so a root covered by an earlier one is dropped.
    all.sort_by_key(|r| r.as_os_str().len());
    let mut prefixes: Vec<PathBuf> = Vec::new();
    for root in all {
        let key = match_key(&root, case_insensitive).into_owned();
        let covered = prefixes
            .iter()
            .any(|p| is_within(&key, &match_key(p, case_insensitive)));
        if !covered {
            prefixes.push(root);
        }
    }
    prefixes.sort();
    Some(prefixes)
}

/// `/tmp/x` ↔ `/private/tmp/x` (and `var`, `etc`).
fn private_aliases(root: &Path) -> Option<PathBuf> {
    let mut components = root.components().skip(1);
    let first = components.next()?.as_os_str().to_str()?.to_string();
    if first == "private" {
        let second = components.next()?.as_os_str().to_str()?;
        if PRIVATE_ALIASED.contains(&second) {
            return root
                .strip_prefix("/private")
                .ok()
                .map(|r| Path::new("/").join(r));
        }
        return None;
    }
    if PRIVATE_ALIASED.contains(&first.as_str()) {
        return root
            .strip_prefix("/")
            .ok()
            .map(|r| Path::new("/private").join(r));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths(list: &[&str]) -> Vec<PathBuf> {
        list.iter().map(PathBuf::from).collect()
    }

    #[test]
    fn zones_become_prefixes_and_their_ancestors_literals() {
        let sel = selection(
            &paths(&["/Users/me/src", "/Users/me/.ssh"]),
            &paths(&["/etc/agent-guard/policy.json"]),
            true,
        );
        assert!(!sel.everything);
        assert_eq!(
            sel.prefixes,
            paths(&[
                "/Users/me/.ssh",
                "/Users/me/src",
                "/etc/agent-guard/policy.json",
                "/private/etc/agent-guard/policy.json",
            ])
        );
        assert_eq!(
            sel.literals,
            paths(&[
                "/Users",
                "/Users/me",
                "/etc",
                "/etc/agent-guard",
                "/private",
                "/private/etc",
                "/private/etc/agent-guard",
            ])
        );
        // Opens only where a read or a write can be denied: not in the protected ~/src.
        assert_eq!(
            sel.open_prefixes,
            paths(&[
                "/etc/agent-guard/policy.json",
                "/private/etc/agent-guard/policy.json",
            ])
        );
    }

    #[test]
    fn opens_are_selected_under_restricted_roots_even_inside_a_protected_one() {
        // Protected ~ with the secret ~/.ssh inside: every event under ~, opens under ~/.ssh.
        let sel = selection(
            &paths(&["/Users/me"]),
            &paths(&["/Users/me/.ssh", "/Users/me/.ssh/id_rsa"]),
            true,
        );
        assert_eq!(sel.prefixes, paths(&["/Users/me"]));
        assert_eq!(sel.open_prefixes, paths(&["/Users/me/.ssh"]));
        let mutes = sel.mutes();
        let opens: Vec<_> = mutes.iter().filter(|m| m.opens).collect();
        assert_eq!(opens.len(), 1);
        assert_eq!(opens[0].path, PathBuf::from("/Users/me/.ssh"));
        assert_eq!(opens[0].events(), vec![EsEventKind::AuthOpen]);
        let others: Vec<_> = mutes.iter().filter(|m| !m.opens).collect();
        assert_eq!(others.len(), 2, "{others:?}"); // the prefix ~ and the literal /Users
        for m in others {
            assert!(!m.events().contains(&EsEventKind::AuthOpen));
            assert_eq!(m.events().len(), file_auth_events().len() - 1);
        }
        // A root of / anywhere selects everything, opens included: no mutes at all.
        let all = selection(&[], &paths(&["/"]), true);
        assert!(all.everything);
        assert!(all.mutes().is_empty());
    }

    #[test]
    fn nested_and_duplicate_roots_collapse() {
        let sel = selection(
            &paths(&["/Users/me/src/proj", "/Users/me/src", "/Users/me/src/"]),
            &[],
            false,
        );
        assert_eq!(sel.prefixes, paths(&["/Users/me/src"]));
        assert_eq!(sel.literals, paths(&["/Users", "/Users/me"]));
    }

    #[test]
    fn case_insensitive_volume_merges_spellings() {
        let sel = selection(&paths(&["/Users/Me/Src", "/users/me/src/x"]), &[], true);
        assert_eq!(sel.prefixes, paths(&["/Users/Me/Src"]));
        // On a case-sensitive volume they are different directories.
        let sel = selection(&paths(&["/Users/Me/Src", "/users/me/src/x"]), &[], false);
        assert_eq!(sel.prefixes.len(), 2);
    }

    #[test]
    fn private_firmlinks_get_both_spellings() {
        let sel = selection(
            &paths(&["/private/var/db/agent-guard", "/tmp/t"]),
            &[],
            true,
        );
        for want in [
            "/private/var/db/agent-guard",
            "/var/db/agent-guard",
            "/tmp/t",
            "/private/tmp/t",
        ] {
            assert!(sel.prefixes.contains(&PathBuf::from(want)), "{want}");
        }
        // /private/other is not a firmlinked directory and has no alias.
        let sel = selection(&paths(&["/private/other/x"]), &[], true);
        assert_eq!(sel.prefixes, paths(&["/private/other/x"]));
    }

    #[test]
    fn a_root_zone_means_everything() {
        let sel = selection(&paths(&["/Users/me", "/"]), &[], true);
        assert!(sel.everything);
        assert!(sel.prefixes.is_empty());
    }

    #[test]
    fn every_rename_target_that_moves_a_zone_is_selected() {
        // Bypass attempt: rename an ancestor of a zone (mv ~ ~.bak, mv ~/src ~/old). Each
        // ancestor up to (not including) "/" must be delivered.
        let sel = selection(&paths(&["/Users/me/src/proj"]), &[], true);
        for ancestor in ["/Users", "/Users/me", "/Users/me/src"] {
            assert!(
                sel.literals.contains(&PathBuf::from(ancestor)),
                "{ancestor}"
            );
        }
        assert!(!sel.literals.contains(&PathBuf::from("/")));
    }
}
