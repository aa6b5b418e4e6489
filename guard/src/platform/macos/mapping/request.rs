//! One AUTH message in plain values: what the ES adapter copies out of an `es_message_t` before
//! anything is decided. Paths are the ones ES reports (resolved by the kernel, `/private/...` for
//! `/tmp`, `/var`, `/etc`); a path ES truncated never gets here (see `glue::Body::Unreadable`).

use std::ffi::OsString;
use std::path::PathBuf;

use crate::platform::macos::facts::ProcessIdentity;
use crate::vocab::NodeKind;

/// `fflag` bits of AUTH_OPEN. ES reports the kernel's file flags (`FFLAGS(oflag)`, i.e. the
/// `open(2)` flags plus one), so read-only is `FREAD` and write is `FWRITE`, while the creation
/// flags keep their `open(2)` values. Values from XNU `sys/fcntl.h`, identical on arm64 and x86_64.
pub mod fflag {
    pub const FREAD: i32 = 0x0001;
    pub const FWRITE: i32 = 0x0002;
    pub const O_APPEND: i32 = 0x0008;
    pub const O_CREAT: i32 = 0x0200;
    pub const O_TRUNC: i32 = 0x0400;
}

/// `S_IFMT` and `S_IFDIR` from `sys/stat.h` (same values on every Unix we build for).
const S_IFMT: u32 = 0o170000;
const S_IFDIR: u32 = 0o040000;

/// Whether a `st_mode` names a directory.
pub fn mode_is_dir(st_mode: u32) -> bool {
    st_mode & S_IFMT == S_IFDIR
}

/// The destination of a rename or create, as ES reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EsDestination {
    /// An entry already exists there and would be replaced.
    ExistingFile(PathBuf),
    /// Nothing exists yet: the directory and the name to be made in it, and what it will be (from
    /// the new entry's mode).
    NewPath {
        dir: PathBuf,
        name: OsString,
        kind: NodeKind,
    },
}

/// What a new entry of `mode` (`st_mode` bits, as ES reports it) is.
pub fn node_kind(mode: u32) -> NodeKind {
    match mode & S_IFMT {
        S_IFDIR => NodeKind::Directory,
        0o120000 => NodeKind::Symlink,
        0o020000 | 0o060000 => NodeKind::Device,
        0o010000 | 0o140000 => NodeKind::Special,
        _ => NodeKind::File,
    }
}

/// One AUTH message in plain values.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EsRequest {
    /// AUTH_EXEC: the new image, its arguments, and the script for a `#!` file. `program` is
    /// the program the new image is by its platform signing identifier
    /// (`SigningInfo::platform_program`), so that a renamed copy of `launchctl` still meets
    /// launchctl's exec rules.
    Exec {
        target: PathBuf,
        args: Vec<String>,
        script: Option<PathBuf>,
        program: Option<String>,
    },
    /// AUTH_UNLINK (also `rmdir`): `target_mode` is the target's `st_mode`.
    Unlink { target: PathBuf, target_mode: u32 },
    /// AUTH_RENAME.
    Rename {
        source: PathBuf,
        source_mode: u32,
        destination: EsDestination,
    },
    /// AUTH_OPEN with the kernel `fflag`.
    Open { path: PathBuf, fflag: i32 },
    /// AUTH_TRUNCATE.
    Truncate { target: PathBuf },
    /// AUTH_LINK: `target_dir/target_name` becomes a new name for `source`.
    Link {
        source: PathBuf,
        target_dir: PathBuf,
        target_name: OsString,
    },
    /// AUTH_CREATE (files, directories, symlinks, sockets).
    Create { destination: EsDestination },
    /// AUTH_CLONE: `clonefile(2)` of `source` to the new `target_dir/target_name`.
    Clone {
        source: PathBuf,
        target_dir: PathBuf,
        target_name: OsString,
    },
    /// AUTH_COPYFILE: `copyfile(3)` of `source`; `target_file` is set when the target exists.
    CopyFile {
        source: PathBuf,
        target_file: Option<PathBuf>,
        target_dir: PathBuf,
        target_name: OsString,
    },
    /// AUTH_EXCHANGEDATA: the contents of the two files are swapped.
    ExchangeData { file1: PathBuf, file2: PathBuf },
    /// A change of a file's metadata, not its contents: AUTH_SETMODE (`chmod`), AUTH_SETOWNER
    /// (`chown`), AUTH_SETFLAGS (`chflags uchg`), AUTH_SETACL, AUTH_SETEXTATTR,
    /// AUTH_DELETEEXTATTR, AUTH_UTIMES, AUTH_SETATTRLIST.
    Metadata { target: PathBuf },
    /// AUTH_SIGNAL.
    Signal {
        target: ProcessIdentity,
        signal: i32,
    },
    /// AUTH_GET_TASK: `task_for_pid` (debuggers, injection), which can stop or rewrite a process.
    TaskPort { target: ProcessIdentity },
    /// AUTH_PROC_SUSPEND_RESUME: `pid_suspend`, `pid_resume`, `pid_shutdown_sockets`.
    SuspendResume { target: ProcessIdentity },
}

impl EsRequest {
    /// AUTH_OPEN is answered with flags, every other AUTH event with a result.
    pub fn is_open(&self) -> bool {
        matches!(self, EsRequest::Open { .. })
    }
}
