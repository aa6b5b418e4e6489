//! The file system the agent sees at each secret zone root when secrets are hidden (see
//! `secret_view`): a FUSE file system, served by the supervisor, that shows the real entries'
//! names and attributes but opens nothing the judge does not allow. A denied open answers EPERM
//! and leaves a denial record, exactly as a supervised open would; an override lets the open
//! through to the real file.
//!
//! Only the agent's processes (its private mount namespace) see this file system. It must never
//! act on a path outside its real root, and it must never create, remove, rename or change
//! anything: those calls are supervised by the seccomp filter and carried out there, on the real
//! file system.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::File;
use std::os::unix::fs::{DirEntryExt, FileExt, FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fuser::{
    Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo, LockOwner,
    OpenFlags, RenameFlags, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory, ReplyEmpty,
    ReplyEntry, ReplyOpen, ReplyWrite, Request, TimeOrNow, WriteFlags,
};

use super::judge::Judge;
use crate::engine::{Action, Actor, Event, OpenFlags as OpenIntent};

/// Nothing is cached by the kernel: a file the human adds or removes in the zone shows at once,
/// and every open comes here to be judged. Secret zones are small and rarely touched.
const NO_CACHE: Duration = Duration::ZERO;

/// One secret zone root, as the agent sees it.
pub struct SecretFs {
    /// The real directory or file (symlinks resolved), read with our own credentials.
    real_root: PathBuf,
    /// The zone root as the policy names it: the paths the judge sees.
    shown_root: PathBuf,
    judge: Arc<dyn Judge>,
    /// The supervisor's own pid: its path walks (a task's cwd inside the zone) are not the agent's.
    supervisor: u32,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Node id (the real inode number; 1 for the root) → path relative to the root.
    nodes: HashMap<u64, PathBuf>,
    /// Open files by handle.
    files: HashMap<u64, Arc<File>>,
    next_handle: u64,
}

impl SecretFs {
    pub fn new(real_root: PathBuf, shown_root: PathBuf, judge: Arc<dyn Judge>) -> SecretFs {
        let mut state = State::default();
        state.nodes.insert(INodeNo::ROOT.0, PathBuf::new());
        SecretFs {
            real_root,
            shown_root,
            judge,
            supervisor: std::process::id(),
            state: Mutex::new(state),
        }
    }

    /// Serve the FUSE connection `fd` of the root mounted with this file system on a thread of
    /// its own (`index` names it). It ends when the last process of the namespace is gone (the
    /// kernel aborts the connection); should it end early, opens under the root fail: closed.
    pub fn serve(self, fd: std::os::fd::OwnedFd, index: usize) {
        let spawned = std::thread::Builder::new()
            .name(format!("secret-fs-{index}"))
            .stack_size(256 * 1024)
            .spawn(move || {
                match fuser::Session::from_fd(
                    self,
                    fd,
                    fuser::SessionACL::Owner,
                    Default::default(),
                ) {
                    Ok(session) => {
                        let _ = session.run();
                    }
                    Err(e) => tracing::warn!("secret zone file system: {e}"),
                }
            });
        if spawned.is_err() {
            // The fd was dropped with the closure: the kernel aborts the connection and opens
            // under that root fail.
            tracing::warn!("no thread for a secret zone file system: its files cannot be opened");
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic in another request cannot leave the maps half-updated: every update is one
        // insert or remove.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn relative(&self, ino: INodeNo) -> Result<PathBuf, Errno> {
        self.state().nodes.get(&ino.0).cloned().ok_or(Errno::ESTALE)
    }

    fn real(&self, rel: &Path) -> PathBuf {
        if rel.as_os_str().is_empty() {
            self.real_root.clone()
        } else {
            self.real_root.join(rel)
        }
    }

    fn shown(&self, rel: &Path) -> PathBuf {
        if rel.as_os_str().is_empty() {
            self.shown_root.clone()
        } else {
            self.shown_root.join(rel)
        }
    }

    /// Ask the judge about an open by the task `pid`; our own walks are not judged.
    fn allowed(&self, req: &Request, rel: &Path, flags: i32) -> bool {
        let pid = req.pid();
        if pid == 0
            || crate::platform::linux::procfs::tgid_of(pid as i32) == Some(self.supervisor as i32)
        {
            return pid != 0;
        }
        let accmode = flags & libc::O_ACCMODE;
        let intent = OpenIntent {
            write: accmode == libc::O_WRONLY || accmode == libc::O_RDWR,
            truncate: flags & libc::O_TRUNC != 0,
            create: flags & libc::O_CREAT != 0,
        };
        let event = Event {
            actor: Actor {
                pid: pid as i32,
                ..Actor::default()
            },
            action: Action::Open {
                path: self.shown(rel),
                flags: intent,
            },
        };
        self.judge.judge(pid as i32, &event).allows()
    }

    fn attr(&self, ino: INodeNo, meta: &std::fs::Metadata) -> FileAttr {
        let time = |secs: i64, nsecs: i64| {
            if secs >= 0 {
                UNIX_EPOCH + Duration::new(secs as u64, nsecs as u32)
            } else {
                UNIX_EPOCH
            }
        };
        FileAttr {
            ino,
            size: meta.size(),
            blocks: meta.blocks(),
            atime: time(meta.atime(), meta.atime_nsec()),
            mtime: time(meta.mtime(), meta.mtime_nsec()),
            ctime: time(meta.ctime(), meta.ctime_nsec()),
            crtime: SystemTime::UNIX_EPOCH,
            kind: kind_of(meta.file_type()),
            perm: (meta.mode() & 0o7777) as u16,
            nlink: meta.nlink() as u32,
            uid: meta.uid(),
            gid: meta.gid(),
            rdev: meta.rdev() as u32,
            blksize: meta.blksize() as u32,
            flags: 0,
        }
    }

    fn open_file(&self, req: &Request, ino: INodeNo, flags: i32, dir: bool) -> Result<u64, Errno> {
        let rel = self.relative(ino)?;
        let flags = if dir {
            flags | libc::O_DIRECTORY
        } else {
            flags
        };
        if !self.allowed(req, &rel, flags) {
            return Err(Errno::EPERM);
        }
        if dir {
            return Ok(0);
        }
        let accmode = flags & libc::O_ACCMODE;
        let file = std::fs::OpenOptions::new()
            .read(accmode != libc::O_WRONLY)
            .write(accmode != libc::O_RDONLY)
            .truncate(flags & libc::O_TRUNC != 0)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(self.real(&rel))
            .map_err(errno)?;
        let mut state = self.state();
        state.next_handle += 1;
        let handle = state.next_handle;
        state.files.insert(handle, Arc::new(file));
        Ok(handle)
    }

    fn file(&self, fh: FileHandle) -> Result<Arc<File>, Errno> {
        self.state().files.get(&fh.0).cloned().ok_or(Errno::EBADF)
    }
}

fn kind_of(t: std::fs::FileType) -> FileType {
    if t.is_dir() {
        FileType::Directory
    } else if t.is_symlink() {
        FileType::Symlink
    } else if t.is_block_device() {
        FileType::BlockDevice
    } else if t.is_char_device() {
        FileType::CharDevice
    } else if t.is_fifo() {
        FileType::NamedPipe
    } else if t.is_socket() {
        FileType::Socket
    } else {
        FileType::RegularFile
    }
}

fn errno(e: std::io::Error) -> Errno {
    Errno::from_i32(e.raw_os_error().unwrap_or(libc::EIO))
}

/// A name inside a directory: one component, never `..` (the kernel does not send it, and a
/// path must not leave the root whatever is sent).
fn is_plain_name(name: &OsStr) -> bool {
    let bytes = std::os::unix::ffi::OsStrExt::as_bytes(name);
    !bytes.is_empty() && bytes != b"." && bytes != b".." && !bytes.contains(&b'/')
}

impl Filesystem for SecretFs {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        if !is_plain_name(name) {
            return reply.error(Errno::ENOENT);
        }
        let rel = match self.relative(parent) {
            Ok(p) => p.join(name),
            Err(e) => return reply.error(e),
        };
        match std::fs::symlink_metadata(self.real(&rel)) {
            Ok(meta) => {
                // The node id is the real inode number, which is never 1 (the root's id) on
                // ext4; a file system that uses 1 gets another id for it.
                let ino = INodeNo(if meta.ino() == INodeNo::ROOT.0 {
                    u64::MAX - 1
                } else {
                    meta.ino()
                });
                self.state().nodes.insert(ino.0, rel);
                reply.entry(&NO_CACHE, &self.attr(ino, &meta), Generation(0));
            }
            Err(e) => reply.error(errno(e)),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self
            .relative(ino)
            .and_then(|rel| std::fs::symlink_metadata(self.real(&rel)).map_err(errno))
        {
            Ok(meta) => reply.attr(&NO_CACHE, &self.attr(ino, &meta)),
            Err(e) => reply.error(e),
        }
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        match self
            .relative(ino)
            .and_then(|rel| std::fs::read_link(self.real(&rel)).map_err(errno))
        {
            Ok(target) => reply.data(std::os::unix::ffi::OsStrExt::as_bytes(target.as_os_str())),
            Err(e) => reply.error(e),
        }
    }

    fn open(&self, req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        match self.open_file(req, ino, flags.0, false) {
            Ok(fh) => reply.opened(FileHandle(fh), FopenFlags::empty()),
            Err(e) => reply.error(e),
        }
    }

    fn read(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let file = match self.file(fh) {
            Ok(f) => f,
            Err(e) => return reply.error(e),
        };
        let mut buf = vec![0u8; size as usize];
        let mut got = 0;
        while got < buf.len() {
            match file.read_at(&mut buf[got..], offset + got as u64) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return reply.error(errno(e)),
            }
        }
        reply.data(&buf[..got]);
    }

    fn write(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        // Only a file the judge let open for writing has a handle that can write.
        match self
            .file(fh)
            .and_then(|f| f.write_all_at(data, offset).map_err(errno))
        {
            Ok(()) => reply.written(data.len() as u32),
            Err(e) => reply.error(e),
        }
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lo: LockOwner,
        reply: ReplyEmpty,
    ) {
        reply.ok();
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        self.state().files.remove(&fh.0);
        reply.ok();
    }

    fn opendir(&self, req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        match self.open_file(req, ino, flags.0, true) {
            Ok(fh) => reply.opened(FileHandle(fh), FopenFlags::empty()),
            Err(e) => reply.error(e),
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let rel = match self.relative(ino) {
            Ok(r) => r,
            Err(e) => return reply.error(e),
        };
        let entries = match std::fs::read_dir(self.real(&rel)) {
            Ok(e) => e,
            Err(e) => return reply.error(errno(e)),
        };
        let mut listing = vec![
            (ino.0, FileType::Directory, OsStr::new(".").to_os_string()),
            (ino.0, FileType::Directory, OsStr::new("..").to_os_string()),
        ];
        for entry in entries.flatten() {
            let kind = entry
                .file_type()
                .map(kind_of)
                .unwrap_or(FileType::RegularFile);
            listing.push((entry.ino(), kind, entry.file_name()));
        }
        for (i, (ino, kind, name)) in listing.into_iter().enumerate().skip(offset as usize) {
            if reply.add(INodeNo(ino), (i + 1) as u64, kind, name) {
                break;
            }
        }
        reply.ok();
    }

    // What changes the zone is not done here. Creating, removing and renaming are supervised
    // calls that the supervisor carries out on the real file system when the judge allows them;
    // what reaches this file system instead (chmod, utimes, a call on a path the filter let
    // through) is refused.

    #[allow(clippy::too_many_arguments)]
    fn setattr(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _mode: Option<u32>,
        _uid: Option<u32>,
        _gid: Option<u32>,
        _size: Option<u64>,
        _atime: Option<TimeOrNow>,
        _mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        reply.error(Errno::EPERM);
    }

    fn mknod(&self, _: &Request, _: INodeNo, _: &OsStr, _: u32, _: u32, _: u32, reply: ReplyEntry) {
        reply.error(Errno::EPERM);
    }

    fn mkdir(&self, _: &Request, _: INodeNo, _: &OsStr, _: u32, _: u32, reply: ReplyEntry) {
        reply.error(Errno::EPERM);
    }

    fn unlink(&self, _: &Request, _: INodeNo, _: &OsStr, reply: ReplyEmpty) {
        reply.error(Errno::EPERM);
    }

    fn rmdir(&self, _: &Request, _: INodeNo, _: &OsStr, reply: ReplyEmpty) {
        reply.error(Errno::EPERM);
    }

    fn symlink(&self, _: &Request, _: INodeNo, _: &OsStr, _: &Path, reply: ReplyEntry) {
        reply.error(Errno::EPERM);
    }

    #[allow(clippy::too_many_arguments)]
    fn rename(
        &self,
        _: &Request,
        _: INodeNo,
        _: &OsStr,
        _: INodeNo,
        _: &OsStr,
        _: RenameFlags,
        reply: ReplyEmpty,
    ) {
        reply.error(Errno::EPERM);
    }

    fn link(&self, _: &Request, _: INodeNo, _: INodeNo, _: &OsStr, reply: ReplyEntry) {
        reply.error(Errno::EPERM);
    }

    #[allow(clippy::too_many_arguments)]
    fn create(
        &self,
        _: &Request,
        _: INodeNo,
        _: &OsStr,
        _: u32,
        _: u32,
        _: i32,
        reply: ReplyCreate,
    ) {
        reply.error(Errno::EPERM);
    }
}
