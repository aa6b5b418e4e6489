//! Lexical path handling shared by the policy loader and the engine.
//!
//! Zones are matched on path-component boundaries: `/a/proj` covers `/a/proj` and `/a/proj/x`,
//! never `/a/project2`. Everything here is lexical (no I/O): symlinks are resolved by the sensor
//! (for event paths) and by the policy loader (for zone roots), never here.

use std::borrow::Cow;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

/// Make an absolute path lexically clean: no `.`, no `..`, no repeated or trailing slash.
/// `..` at the root stays at the root, as the kernel does. A relative path is joined to `/`,
/// so the result is always absolute.
pub fn clean(path: &Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    for component in path.components() {
        match component {
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
            Component::ParentDir => {
                out.pop();
            }
            Component::Normal(name) => out.push(name),
        }
    }
    out
}

/// Whether `path` is `root` or lies below it, comparing bytes on component boundaries.
/// Both must be clean. `root` "/" covers every absolute path.
pub fn is_within(path: &[u8], root: &[u8]) -> bool {
    if root == b"/" {
        return path.first() == Some(&b'/');
    }
    path.starts_with(root) && (path.len() == root.len() || path[root.len()] == b'/')
}

/// The bytes of a path, lowercased when matching is case-insensitive (macOS, APFS default).
pub fn match_key(path: &Path, case_insensitive: bool) -> Cow<'_, [u8]> {
    let bytes = path.as_os_str().as_bytes();
    if case_insensitive && bytes.iter().any(u8::is_ascii_uppercase) {
        Cow::Owned(bytes.to_ascii_lowercase())
    } else {
        Cow::Borrowed(bytes)
    }
}

/// The path itself, then each ancestor up to and including "/", as byte prefixes.
/// `/a/b` yields `/a/b`, `/a`, `/`.
pub fn self_and_ancestors(path: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut next = Some(path);
    std::iter::from_fn(move || {
        let current = next?;
        next = match current.iter().rposition(|&b| b == b'/') {
            _ if current == b"/" => None,
            Some(0) => Some(&b"/"[..]),
            Some(i) => Some(&current[..i]),
            None => None,
        };
        Some(current)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_removes_dots_and_slashes() {
        assert_eq!(clean(Path::new("/a/./b//c/")), PathBuf::from("/a/b/c"));
        assert_eq!(clean(Path::new("/a/b/../../../c")), PathBuf::from("/c"));
        assert_eq!(clean(Path::new("/..")), PathBuf::from("/"));
        assert_eq!(clean(Path::new("a/b")), PathBuf::from("/a/b"));
    }

    #[test]
    fn within_respects_component_boundaries() {
        assert!(is_within(b"/a/proj", b"/a/proj"));
        assert!(is_within(b"/a/proj/x", b"/a/proj"));
        assert!(!is_within(b"/a/project2", b"/a/proj"));
        assert!(!is_within(b"/a", b"/a/proj"));
        assert!(is_within(b"/anything", b"/"));
    }

    #[test]
    fn ancestors_walk_to_root() {
        let all: Vec<&[u8]> = self_and_ancestors(b"/a/b/c").collect();
        assert_eq!(all, vec![&b"/a/b/c"[..], b"/a/b", b"/a", b"/"]);
        let root: Vec<&[u8]> = self_and_ancestors(b"/").collect();
        assert_eq!(root, vec![&b"/"[..]]);
    }

    #[test]
    fn match_key_lowercases_only_when_asked() {
        assert_eq!(&*match_key(Path::new("/A/b"), true), b"/a/b");
        assert_eq!(&*match_key(Path::new("/A/b"), false), b"/A/b");
    }
}
