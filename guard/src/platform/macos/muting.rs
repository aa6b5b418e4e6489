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
//! Pure: the adapter applies the result with `mute_path(.., TARGET_PREFIX/TARGET_LITERAL)`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::engine::path::{clean, is_within, match_key, self_and_ancestors};

/// The paths to deliver; everything else stays muted.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MutingSelection {
    /// A root is `/`: deliver everything (do not invert at all).
    pub everything: bool,
    /// Deliver events whose target is inside one of these.
    pub prefixes: Vec<PathBuf>,
    /// Deliver events whose target is exactly one of these (ancestors of the prefixes).
    pub literals: Vec<PathBuf>,
}

/// The top-level directories macOS maps to `/private/...`.
const PRIVATE_ALIASED: [&str; 3] = ["tmp", "var", "etc"];

/// The selection for a policy's zone roots (all kinds: protected, readonly, secret) and the
/// guard's own files. `case_insensitive`: the boot volume's matching (APFS default); two
/// spellings differing only in case are one entry.
pub fn selection(
    zone_roots: &[PathBuf],
    guard_files: &[PathBuf],
    case_insensitive: bool,
) -> MutingSelection {
    let mut roots: Vec<PathBuf> = Vec::new();
    for root in zone_roots.iter().chain(guard_files) {
        let root = clean(root);
        if root == Path::new("/") {
            return MutingSelection {
                everything: true,
                ..MutingSelection::default()
            };
        }
        roots.extend(private_aliases(&root));
        roots.push(root);
    }

    // Shorter first, so a root covered by an earlier one is dropped.
    roots.sort_by_key(|r| r.as_os_str().len());
    let mut prefixes: Vec<PathBuf> = Vec::new();
    for root in roots {
        let key = match_key(&root, case_insensitive).into_owned();
        let covered = prefixes
            .iter()
            .any(|p| is_within(&key, &match_key(p, case_insensitive)));
        if !covered {
            prefixes.push(root);
        }
    }

    let mut seen = BTreeSet::new();
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

    prefixes.sort();
    literals.sort();
    MutingSelection {
        everything: false,
        prefixes,
        literals,
    }
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
