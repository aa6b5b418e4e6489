//! The files of the secret zones by (device, inode), indexed once at start, so that a hard link
//! to a secret file elsewhere is judged as the secret file itself, and so that `secret_view`
//! knows whether any secret file has another name (hiding the zones would then leave it readable).
//!
//! It must never follow a symlink inside a zone while indexing (that would index files outside
//! it), and never stall the start on a zone that is far too big: the walk is bounded.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// How many files of the secret zones are indexed at most (a zone is a few credential files;
/// the bound keeps a mistaken zone like `~` from stalling the start).
const SECRET_INDEX_LIMIT: usize = 100_000;

/// Files of the secret zones, by (device, inode).
#[derive(Default)]
pub struct SecretInodes {
    by_inode: HashMap<(u64, u64), PathBuf>,
    /// A secret file that has another name (a hard link) somewhere.
    hard_linked: Option<PathBuf>,
    /// The secret roots and the guard's hidden paths (the snapshot store), as given and
    /// resolved: what the agent may not look into, not even by the errors of a removal.
    covered: Vec<PathBuf>,
}

impl SecretInodes {
    /// Index every regular file under the secret `roots` (symlinks not followed), and remember
    /// them and the `hidden` paths as covered.
    pub fn index(roots: &[PathBuf], hidden: &[PathBuf]) -> SecretInodes {
        let mut covered: Vec<PathBuf> = roots.iter().chain(hidden).cloned().collect();
        covered.extend(
            roots
                .iter()
                .chain(hidden)
                .filter_map(|r| std::fs::canonicalize(r).ok()),
        );
        let mut by_inode = HashMap::new();
        let mut hard_linked = None;
        // A root may itself be a symlink (`~/.ssh` kept elsewhere): index what it points to.
        let mut stack: Vec<PathBuf> = roots
            .iter()
            .map(|r| std::fs::canonicalize(r).unwrap_or_else(|_| r.clone()))
            .collect();
        while let Some(path) = stack.pop() {
            if by_inode.len() >= SECRET_INDEX_LIMIT {
                break;
            }
            let Ok(meta) = std::fs::symlink_metadata(&path) else {
                continue;
            };
            if meta.is_dir() {
                if let Ok(entries) = std::fs::read_dir(&path) {
                    stack.extend(entries.flatten().map(|e| e.path()));
                }
            } else if meta.is_file() {
                if meta.nlink() > 1 && hard_linked.is_none() {
                    hard_linked = Some(path.clone());
                }
                by_inode.insert((meta.dev(), meta.ino()), path);
            }
        }
        SecretInodes {
            by_inode,
            hard_linked,
            covered,
        }
    }

    /// Whether `path` (resolved) is in a secret zone or a hidden guard path: a removal there is
    /// judged before the file system is asked whether it exists, so that its errno tells the
    /// agent nothing a `stat` would not.
    pub fn covers(&self, path: &Path) -> bool {
        self.covered.iter().any(|root| path.starts_with(root))
    }

    /// A secret file with another hard link, if any.
    pub fn hard_linked(&self) -> Option<&Path> {
        self.hard_linked.as_deref()
    }

    /// The secret file that `path` (already resolved) is another name for, if any.
    pub fn alias_of(&self, path: &Path) -> Option<&PathBuf> {
        if self.by_inode.is_empty() {
            return None;
        }
        let meta = std::fs::metadata(path).ok()?;
        if !meta.is_file() || meta.nlink() < 2 {
            return None;
        }
        self.by_inode
            .get(&(meta.dev(), meta.ino()))
            .filter(|secret| secret.as_path() != path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hard_link_elsewhere_is_the_secret_and_the_secret_is_not_its_own_alias() {
        let dir = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(dir.path()).unwrap();
        let zone = root.join("zone");
        std::fs::create_dir(&zone).unwrap();
        std::fs::write(zone.join("key"), b"k").unwrap();
        std::fs::write(zone.join("alone"), b"a").unwrap();
        std::fs::write(root.join("outside"), b"o").unwrap();
        let secrets = SecretInodes::index(std::slice::from_ref(&zone), &[]);
        assert_eq!(secrets.hard_linked(), None);
        std::fs::hard_link(zone.join("key"), root.join("copy")).unwrap();
        let secrets = SecretInodes::index(std::slice::from_ref(&zone), &[]);
        assert_eq!(secrets.hard_linked(), Some(zone.join("key").as_path()));
        assert_eq!(
            secrets.alias_of(&root.join("copy")),
            Some(&zone.join("key"))
        );
        assert_eq!(secrets.alias_of(&zone.join("key")), None);
        assert_eq!(secrets.alias_of(&root.join("outside")), None);
        assert!(secrets.covers(&zone.join("key")) && !secrets.covers(&root.join("outside")));
    }
}
