//! A directory tree that leaves its zone is kept by a copy (Linux) or a clone (macOS) of the
//! whole, but only when it is small enough: this measures it first, so that nothing is copied of
//! a tree that does not fit. Reads metadata only; never follows a symlink.

use std::io;
use std::path::Path;

use crate::vocab::KeepFailure;

/// Entries a directory tree moved out of its zone may hold and still be kept.
pub const TREE_ENTRIES_LIMIT: usize = 100_000;

/// The bytes of the regular files under the directory `root`, or why the tree is not kept: more
/// than `limit` bytes or [`TREE_ENTRIES_LIMIT`] entries, an unreadable entry, or what
/// `before_each_dir` says (a deadline drawing near).
pub fn tree_bytes(
    root: &Path,
    limit: u64,
    mut before_each_dir: impl FnMut() -> Result<(), KeepFailure>,
) -> Result<u64, KeepFailure> {
    let io = |e: io::Error| KeepFailure::Io(format!("cannot read it: {e}"));
    let (mut bytes, mut entries) = (0u64, 0usize);
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        before_each_dir()?;
        for e in std::fs::read_dir(&dir).map_err(io)? {
            let e = e.map_err(io)?;
            let meta = e.path().symlink_metadata().map_err(io)?;
            entries += 1;
            if meta.is_dir() {
                stack.push(e.path());
            } else if meta.is_file() {
                bytes += meta.len();
            }
            if bytes > limit || entries > TREE_ENTRIES_LIMIT {
                return Err(KeepFailure::TreeTooLarge { limit });
            }
        }
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measures_files_not_symlinks_and_stops_past_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("a/b")).unwrap();
        std::fs::write(dir.path().join("a/x"), [0u8; 100]).unwrap();
        std::fs::write(dir.path().join("a/b/y"), [0u8; 50]).unwrap();
        std::os::unix::fs::symlink("/usr", dir.path().join("a/link")).unwrap();
        assert_eq!(tree_bytes(dir.path(), 1000, || Ok(())), Ok(150));
        assert_eq!(
            tree_bytes(dir.path(), 120, || Ok(())),
            Err(KeepFailure::TreeTooLarge { limit: 120 })
        );
        let stop = KeepFailure::Io("deadline".into());
        assert_eq!(
            tree_bytes(dir.path(), 1000, || Err(stop.clone())),
            Err(stop)
        );
    }
}
