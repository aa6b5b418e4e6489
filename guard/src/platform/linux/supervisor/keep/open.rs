//! Keeping before a truncation or a write-open: the file is opened as the task asked (so the call
//! is within its rights), its content kept, then the call completed on that file.

use super::*;

impl Keeper {
    /// truncate(2): opened for writing as the task would (its rights), the bytes it cuts kept,
    /// then truncated.
    pub(super) fn truncate(
        &self,
        path: &Path,
        length: i64,
        keeps: &[&Keep],
    ) -> (Option<Response>, Vec<KeepOutcome>) {
        let nothing = || vec![KeepOutcome::Kept(Vec::new()); keeps.len()];
        let opened = parent_and_name(path, false).and_then(|(parent, name)| {
            let dir = open_dir_nofollow(&parent)?;
            fs::openat(
                dir.as_fd(),
                &name,
                libc::O_WRONLY
                    | libc::O_CLOEXEC
                    | libc::O_NOFOLLOW
                    | libc::O_NONBLOCK
                    | libc::O_NOCTTY,
            )
        });
        let file = match opened {
            Ok(f) => f,
            Err(e) => return (Some(Response::failed(&e)), nothing()),
        };
        let mut kept = Vec::new();
        match self.keep_open_file(file.as_fd(), path, KeepWhat::Content, length) {
            Ok(Some(made)) => kept.push(made.entry),
            Ok(None) => {}
            Err(failure) => return self.failed(keeps, path.to_path_buf(), failure),
        }
        let response = Response::of(fs::ftruncate(file.as_fd(), length));
        (Some(response), outcome_for(keeps, kept))
    }

    /// The content of a file the task has opened (through our fd), for a truncation to
    /// `length` (`Content`) or a first write-open (`FirstWrite`). `None`: nothing to keep (not a
    /// regular file, nothing cut off, already kept in this session).
    pub(super) fn keep_open_file(
        &self,
        file: BorrowedFd<'_>,
        path: &Path,
        what: KeepWhat,
        length: i64,
    ) -> Result<Option<Made>, KeepFailure> {
        let io = |e: io::Error| KeepFailure::Io(e.to_string());
        let st = fstat(file).map_err(io)?;
        if !is_regular(&st) || (what == KeepWhat::Content && length >= st.st_size) {
            return Ok(None);
        }
        // The session's first state of the file is what a restore puts back: once it is in the
        // store, later changes by the session need no copy. Noted only once kept (or, for an
        // edit, found too large), so that a refused truncation stays refused next time.
        // Held until the outcome is noted: a second thread of the session opening the same file
        // waits here instead of copying it while the first one's task already writes to it.
        let key = file_key(file, &st);
        let claim = self.session.claim_content(key);
        match (claim.so_far, what) {
            (Some(ContentKept::Kept), _) | (Some(ContentKept::NotKept), KeepWhat::FirstWrite) => {
                return Ok(None)
            }
            _ => {}
        }
        // Our fd may be write-only: read through a second open of the same file.
        let magic = format!("/proc/self/fd/{}", file.as_raw_fd());
        let reader = std::fs::File::open(&magic);
        let result = match &reader {
            Ok(r) => self.keep_content(Source::File(r.as_fd()), &st, path),
            Err(e) => Err(KeepFailure::Io(format!("cannot read it: {e}"))),
        };
        match (result, what) {
            (Ok(made), _) => {
                self.session.note_content(key, ContentKept::Kept);
                Ok(Some(made))
            }
            // An edit of a file too large to copy goes ahead, recorded as not kept.
            (Err(KeepFailure::TooLarge { .. } | KeepFailure::Io(_)), KeepWhat::FirstWrite) => {
                self.session.note_content(key, ContentKept::NotKept);
                let (seq, _, _) = self.session.next_entry(path);
                let mut entry = recorded(path.to_path_buf(), &st, seq);
                entry.how = KeptHow::NotKept;
                entry.kind = EntryKind::File;
                entry.size = st.st_size as u64;
                Ok(Some(Made {
                    entry,
                    name: None,
                    reserved: 0,
                }))
            }
            (Err(failure), _) => Err(failure),
        }
    }

    /// A writing or truncating open of an existing file: opened as the task asked (its rights),
    /// what it would destroy kept, then truncated if asked, and installed in the task. The answer
    /// is left to the handler, which records what was kept first: a task that ran on could exit
    /// and end the session before the record of its last keep was made.
    pub(super) fn open(
        &self,
        emulator: &Emulator<'_>,
        path: PathBuf,
        flags: i32,
        mode: u32,
        umask_of: Option<i32>,
        keeps: &[&Keep],
    ) -> (Option<Response>, Vec<KeepOutcome>) {
        let nothing = || vec![KeepOutcome::Kept(Vec::new()); keeps.len()];
        let plain = |emulator: &Emulator<'_>, path| {
            emulator.run(Emulation::Open {
                path,
                flags,
                mode,
                umask_of,
            })
        };
        let creates_new = flags & libc::O_CREAT != 0 && flags & libc::O_EXCL != 0;
        let is_fifo = std::fs::symlink_metadata(&path).is_ok_and(|m| {
            use std::os::unix::fs::FileTypeExt;
            m.file_type().is_fifo()
        });
        if creates_new || is_fifo {
            // Nothing there to destroy (or a FIFO, which the open emulation waits on).
            return (plain(emulator, path), nothing());
        }
        let what = keeps
            .iter()
            .flat_map(|k| &k.items)
            .map(|i| i.what)
            .find(|w| *w == KeepWhat::Content)
            .unwrap_or(KeepWhat::FirstWrite);
        let probe_flags = flags & !(libc::O_TRUNC | libc::O_CREAT);
        let file = match emulator.open_for_task(&path, probe_flags) {
            Ok(f) => f,
            // Not there: the open creates it; nothing to keep.
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) && flags & libc::O_CREAT != 0 => {
                return (plain(emulator, path), nothing())
            }
            Err(e) => return (Some(Response::failed(&e)), nothing()),
        };
        let mut kept = Vec::new();
        match self.keep_open_file(file.as_fd(), &path, what, 0) {
            Ok(Some(made)) => kept.push(made.entry),
            Ok(None) => {}
            Err(failure) => return self.failed(keeps, path, failure),
        }
        if flags & libc::O_TRUNC == 0 {
            return (
                Some(emulator.install_unanswered(file, flags)),
                outcome_for(keeps, kept),
            );
        }
        let writable = flags & libc::O_ACCMODE != libc::O_RDONLY;
        let truncated = if writable && fstat(file.as_fd()).is_ok_and(|st| is_regular(&st)) {
            fs::ftruncate(file.as_fd(), 0).map(|()| file)
        } else {
            // A read-only open that truncates, or a device: as the task asked, again.
            drop(file);
            emulator.open_for_task(&path, flags & !libc::O_CREAT)
        };
        match truncated {
            Ok(file) => (
                Some(emulator.install_unanswered(file, flags)),
                outcome_for(keeps, kept),
            ),
            Err(e) => (Some(Response::failed(&e)), outcome_for(keeps, kept)),
        }
    }
}
