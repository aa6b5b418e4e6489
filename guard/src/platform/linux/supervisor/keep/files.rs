//! Small facts about files for the keeper: stat fields, identities, a tree copy.

use super::*;

pub(super) use crate::platform::linux::supervisor::emulate::path_of;

pub(super) fn recorded(path: PathBuf, st: &libc::stat, seq: u64) -> KeptEntry {
    KeptEntry {
        path,
        how: KeptHow::Recorded,
        kind: kind_of(st),
        seq,
        store_name: None,
        size: 0,
        mode: st.st_mode,
        mtime_ns: mtime_ns(st),
    }
}

pub(super) fn kind_of(st: &libc::stat) -> EntryKind {
    match st.st_mode & libc::S_IFMT {
        libc::S_IFREG => EntryKind::File,
        libc::S_IFDIR => EntryKind::Dir,
        libc::S_IFLNK => EntryKind::Symlink,
        _ => EntryKind::Other,
    }
}

pub(super) fn is_dir(st: &libc::stat) -> bool {
    st.st_mode & libc::S_IFMT == libc::S_IFDIR
}

pub(super) fn is_regular(st: &libc::stat) -> bool {
    st.st_mode & libc::S_IFMT == libc::S_IFREG
}

pub(super) fn is_symlink(st: &libc::stat) -> bool {
    st.st_mode & libc::S_IFMT == libc::S_IFLNK
}

pub(super) fn mtime_ns(st: &libc::stat) -> i64 {
    st.st_mtime * 1_000_000_000 + st.st_mtime_nsec
}

/// The file behind `file` as "kept already" knows it: device, inode, birth time.
pub(super) fn file_key(file: BorrowedFd<'_>, st: &libc::stat) -> FileKey {
    // Without a birth time (a second fd failed, or the file system has none): device and inode.
    let birth_ns = file
        .try_clone_to_owned()
        .ok()
        .map(std::fs::File::from)
        .and_then(|f| f.metadata().ok())
        .and_then(|m| m.created().ok())
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos() as i128);
    FileKey {
        dev: st.st_dev,
        ino: st.st_ino,
        birth_ns,
    }
}

/// Copy a directory tree (symlinks as symlinks, special files left out), directories made
/// writable while filled and given their modes at the end.
pub(super) fn copy_tree(from: &Path, to: &Path) -> io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new().mode(0o700).create(to)?;
    let mut modes = vec![(to.to_path_buf(), std::fs::symlink_metadata(from)?.mode())];
    let mut stack = vec![(from.to_path_buf(), to.to_path_buf())];
    while let Some((src, dst)) = stack.pop() {
        for e in std::fs::read_dir(&src)? {
            let e = e?;
            let meta = e.path().symlink_metadata()?;
            let out = dst.join(e.file_name());
            if meta.is_dir() {
                std::fs::DirBuilder::new().mode(0o700).create(&out)?;
                modes.push((out.clone(), meta.mode()));
                stack.push((e.path(), out));
            } else if meta.file_type().is_symlink() {
                std::os::unix::fs::symlink(std::fs::read_link(e.path())?, &out)?;
            } else if meta.is_file() {
                std::fs::copy(e.path(), &out)?;
            }
        }
    }
    for (dir, mode) in modes.into_iter().rev() {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode & 0o7777))?;
    }
    Ok(())
}
