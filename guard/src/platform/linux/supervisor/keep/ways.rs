//! The ways a [`Keeper`] keeps: a name moved or hard-linked into the store, content cloned or
//! copied, a directory tree copied whole.

use super::*;

impl Keeper {
    /// Keep a name that goes away: moved (an unlink) or hard-linked (a rename over it) into the
    /// store when it is the file's only name and on the store's file system; copied otherwise.
    pub(super) fn keep_entry(
        &self,
        dir: BorrowedFd<'_>,
        name: &CStr,
        path: &Path,
        st: &libc::stat,
        how: Move,
    ) -> Result<Made, Refused> {
        let (store, store_dev) = self.store().map_err(Refused::Keep)?;
        // Links the session made in the store (a name kept before a rename) are no way in.
        let in_store = self.session.store_links(st.st_dev, st.st_ino);
        let shared = is_regular(st) && st.st_nlink > 1 + in_store;
        if shared || st.st_dev != store_dev {
            let file = if is_regular(st) {
                Some(
                    fs::openat(
                        dir,
                        name,
                        libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC,
                    )
                    .map_err(|e| Refused::Keep(KeepFailure::Io(format!("cannot read it: {e}"))))?,
                )
            } else {
                None
            };
            let source = match &file {
                Some(f) => Source::File(f.as_fd()),
                None if is_symlink(st) => Source::Symlink(dir, name),
                None => Source::Special,
            };
            return match self.keep_content(source, st, path) {
                Ok(made) => Ok(made),
                // One name of several goes: the content stays under the others.
                Err(KeepFailure::TooLarge { .. }) if shared => {
                    let (seq, _, _) = self.session.next_entry(path);
                    let mut entry = recorded(path.to_path_buf(), st, seq);
                    entry.how = KeptHow::NotKept;
                    entry.kind = kind_of(st);
                    Ok(Made {
                        entry,
                        name: None,
                        reserved: 0,
                    })
                }
                Err(failure) => Err(Refused::Keep(failure)),
            };
        }
        let size = if is_regular(st) { st.st_size as u64 } else { 0 };
        self.session.budget.reserve(size).map_err(Refused::Keep)?;
        let (seq, entry_name, relative) = self.session.next_entry(path);
        let c_name = fs::c_path(entry_name.as_bytes()).map_err(Refused::Errno)?;
        let done = match how {
            Move::Rename => fs::renameat2(dir, name, store, &c_name, libc::RENAME_NOREPLACE),
            Move::Link => fs::linkat(Some(dir), name, store, &c_name, 0),
        };
        if let Err(e) = done {
            self.session.budget.release(size);
            return Err(Refused::Errno(e));
        }
        if matches!(how, Move::Link) {
            self.session.note_store_link(st.st_dev, st.st_ino, true);
        }
        Ok(Made {
            entry: KeptEntry {
                path: path.to_path_buf(),
                how: match how {
                    Move::Rename => KeptHow::Moved,
                    Move::Link => KeptHow::Linked,
                },
                kind: kind_of(st),
                seq,
                store_name: Some(relative),
                size,
                mode: st.st_mode,
                mtime_ns: mtime_ns(st),
            },
            name: Some(entry_name),
            reserved: size,
        })
    }

    /// Keep a file's bytes: a clone where the file system has it, else a copy up to the limit;
    /// a symlink's text; a special file's name and mode.
    pub(super) fn keep_content(
        &self,
        source: Source<'_>,
        st: &libc::stat,
        path: &Path,
    ) -> Result<Made, KeepFailure> {
        let (store, store_dev) = self.store()?;
        let (seq, entry_name, relative) = self.session.next_entry(path);
        let c_name =
            fs::c_path(entry_name.as_bytes()).map_err(|e| KeepFailure::Io(e.to_string()))?;
        let io = |e: io::Error| KeepFailure::Io(e.to_string());
        let entry = |how, size| KeptEntry {
            path: path.to_path_buf(),
            how,
            kind: kind_of(st),
            seq,
            store_name: Some(relative.clone()),
            size,
            mode: st.st_mode,
            mtime_ns: mtime_ns(st),
        };
        let file = match source {
            Source::Special => {
                return Ok(Made {
                    entry: recorded(path.to_path_buf(), st, seq),
                    name: None,
                    reserved: 0,
                })
            }
            Source::Symlink(dir, name) => {
                let mut text = vec![0u8; libc::PATH_MAX as usize];
                let n = fs::readlinkat(dir, name, &mut text).map_err(io)?;
                let target = fs::c_path(&text[..n]).map_err(io)?;
                fs::symlinkat(&target, store, &c_name).map_err(io)?;
                return Ok(Made {
                    entry: entry(KeptHow::Copied, 0),
                    name: Some(entry_name),
                    reserved: 0,
                });
            }
            Source::File(file) => file,
        };
        let size = st.st_size as u64;
        let dst = openat_mode(
            store,
            &c_name,
            libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_CLOEXEC,
            0o600,
        )
        .map_err(io)?;
        let remove = || {
            let _ = fs::unlinkat(store, &c_name, 0);
        };
        if let Err(full) = self.session.budget.reserve(size) {
            remove();
            return Err(full);
        }
        let made = |how| Made {
            entry: entry(how, size),
            name: Some(entry_name.clone()),
            reserved: size,
        };
        if st.st_dev == store_dev && self.reflink.load(Ordering::Relaxed) != 2 {
            match ficlone(dst.as_fd(), file) {
                Ok(()) => {
                    self.reflink.store(1, Ordering::Relaxed);
                    return Ok(made(KeptHow::Reflinked));
                }
                Err(e)
                    if matches!(
                        e.raw_os_error(),
                        Some(libc::EOPNOTSUPP | libc::EINVAL | libc::EXDEV | libc::ENOTTY)
                    ) =>
                {
                    self.reflink.store(2, Ordering::Relaxed);
                }
                Err(_) => {}
            }
        }
        let limit = self.session.limits().max_copy_bytes;
        if size > limit {
            self.session.budget.release(size);
            remove();
            return Err(KeepFailure::TooLarge { size, limit });
        }
        match copy_bytes(file, dst.as_fd(), size) {
            Ok(_) => Ok(made(KeptHow::Copied)),
            Err(e) => {
                self.session.budget.release(size);
                remove();
                Err(io(e))
            }
        }
    }

    /// Copy a directory tree that leaves its zone, when it fits the tree limit.
    pub(super) fn keep_tree(&self, path: &Path, st: &libc::stat) -> Result<Made, KeepFailure> {
        let limit = self.session.limits().max_tree_bytes;
        let io = |e: io::Error| KeepFailure::Io(e.to_string());
        let bytes = tree_bytes(path, limit, || Ok(()))?;
        self.store()?;
        self.session.budget.reserve(bytes)?;
        let (seq, entry_name, relative) = self.session.next_entry(path);
        let target = self.session.dir.join(&entry_name);
        if let Err(e) = copy_tree(path, &target) {
            self.session.budget.release(bytes);
            let _ = crate::snapshots::purge::remove_session_entry(&self.session.dir, &entry_name);
            return Err(io(e));
        }
        Ok(Made {
            entry: KeptEntry {
                path: path.to_path_buf(),
                how: KeptHow::Copied,
                kind: EntryKind::Dir,
                seq,
                store_name: Some(relative),
                size: bytes,
                mode: st.st_mode,
                mtime_ns: mtime_ns(st),
            },
            name: Some(entry_name),
            reserved: bytes,
        })
    }
}
