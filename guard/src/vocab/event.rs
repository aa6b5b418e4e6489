//! The neutral event: what a process asked the kernel to do, independent of the sensor.
//!
//! Both sensors (Endpoint Security on macOS, the seccomp supervisor on Linux) translate their
//! kernel messages into an [`Event`]. Paths in an event are absolute and lexically clean (no `.`,
//! `..`, or doubled slashes): the sensor resolves them against the caller's cwd or dirfd, and
//! [`super::path::clean`] removes what remains. This module must never do I/O.

use std::path::PathBuf;

use super::op::OpKind;

/// What an `open` asked for. Read-only is all flags false.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OpenFlags {
    pub write: bool,
    pub truncate: bool,
    pub create: bool,
}

impl OpenFlags {
    pub const READ: OpenFlags = OpenFlags {
        write: false,
        truncate: false,
        create: false,
    };

    pub fn modifies(self) -> bool {
        self.write || self.truncate || self.create
    }
}

/// What kind of entry a [`Action::Create`] makes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeKind {
    Directory,
    /// A regular file made without opening it (`mknod S_IFREG`).
    File,
    Symlink,
    /// A FIFO or a socket file.
    Special,
    /// A character or block device node.
    Device,
}

/// The operation with its payload. Every path is absolute and clean.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Start a program. `path` is the executable being started, `argv` its arguments
    /// (`argv[0]` included), `env` the `NAME=VALUE` entries of its environment that a rule needs
    /// (git's `GIT_CONFIG_*`, read by the sensor only when the policy asks: see
    /// `ExecCall::needs_env`), usually none.
    Exec {
        path: PathBuf,
        argv: Vec<String>,
        env: Vec<String>,
    },
    Unlink {
        path: PathBuf,
    },
    Rmdir {
        path: PathBuf,
    },
    /// `dest_exists`: the destination names an existing entry that the rename would replace.
    /// `source_is_dir`: the source is a directory (a whole subtree moves).
    Rename {
        from: PathBuf,
        to: PathBuf,
        dest_exists: bool,
        source_is_dir: bool,
    },
    Open {
        path: PathBuf,
        flags: OpenFlags,
    },
    Truncate {
        path: PathBuf,
    },
    /// A hard link: `to` becomes a new name for the existing file `from`.
    Link {
        from: PathBuf,
        to: PathBuf,
    },
    /// A new entry that is not a regular file opened for writing (those are `Open` with
    /// `create`): a directory, a symlink, a device node...
    Create {
        path: PathBuf,
        kind: NodeKind,
    },
    /// A change of `path`'s metadata (mode, owner, flags, ACL, extended attributes, times),
    /// not of its contents.
    SetAttr {
        path: PathBuf,
    },
    /// A signal (or ptrace) aimed at another process. `target_is_guard` is set by the sensor when
    /// the target is the daemon or supervisor itself.
    Signal {
        target_pid: i32,
        target_is_guard: bool,
    },
    /// A reach into a process OUTSIDE the agent's own tree: ptrace, its memory
    /// (process_vm_readv/writev), its fds (pidfd_getfd), or the `/proc` entry `path` that would
    /// act on it or lead around the agent's view (`mem`, `maps`, `environ`, `fd/`, `root`,
    /// `cwd`, ...). The sensor makes this event only for a target outside the tree.
    Trace {
        target_pid: i32,
        path: Option<PathBuf>,
    },
    /// Raw access to a device below every file system: opening a block device (`make` false),
    /// or making any device node (`make` true).
    Device {
        path: PathBuf,
        make: bool,
    },
    /// A connection to a local (`AF_UNIX`) socket at `path` (an abstract name is `@name`).
    /// `server` is the real executable of the process that listens on it when that process is
    /// outside the agent's tree; `None` when it is in the tree (or nothing listens).
    Connect {
        path: PathBuf,
        server: Option<PathBuf>,
    },
    /// A nested sandbox: new namespaces (`clone`/`unshare` with user, mount or pid namespace
    /// flags, as bwrap makes), `what` naming them (`user,mount`); or a Landlock domain the task
    /// would put itself in (`landlock`).
    Namespace {
        what: String,
    },
}

impl Action {
    pub fn kind(&self) -> OpKind {
        match self {
            Action::Exec { .. } => OpKind::Exec,
            Action::Unlink { .. } => OpKind::Unlink,
            Action::Rmdir { .. } => OpKind::Rmdir,
            Action::Rename { .. } => OpKind::Rename,
            Action::Open { .. } => OpKind::Open,
            Action::Truncate { .. } => OpKind::Truncate,
            Action::Link { .. } => OpKind::Link,
            Action::Create { .. } => OpKind::Create,
            Action::Signal { .. } => OpKind::Signal,
            Action::SetAttr { .. } => OpKind::SetAttr,
            Action::Trace { .. } => OpKind::Trace,
            Action::Device { make: false, .. } => OpKind::Open,
            Action::Device { make: true, .. } => OpKind::Create,
            Action::Connect { .. } => OpKind::Connect,
            Action::Namespace { .. } => OpKind::Namespace,
        }
    }

    /// The primary path of the action (the target, or the source of a rename or link).
    pub fn path(&self) -> Option<&std::path::Path> {
        match self {
            Action::Exec { path, .. }
            | Action::Unlink { path }
            | Action::Rmdir { path }
            | Action::Open { path, .. }
            | Action::Truncate { path }
            | Action::Create { path, .. }
            | Action::SetAttr { path }
            | Action::Device { path, .. }
            | Action::Connect { path, .. } => Some(path),
            Action::Rename { from, .. } | Action::Link { from, .. } => Some(from),
            Action::Trace { path, .. } => path.as_deref(),
            Action::Signal { .. } | Action::Namespace { .. } => None,
        }
    }

    /// The second path of a rename or link.
    pub fn dest(&self) -> Option<&std::path::Path> {
        match self {
            Action::Rename { to, .. } | Action::Link { to, .. } => Some(to),
            _ => None,
        }
    }
}

/// Facts about the process that acts, as the sensor saw them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Actor {
    pub pid: i32,
    /// The real executable (from the kernel, `/proc/PID/exe` or the ES message), never `argv[0]`.
    pub exe: PathBuf,
    /// `argv[0]` as the process reports it now (Node's `process.title` rewrites it).
    pub argv0: String,
    /// The kernel's short process name (`comm`).
    pub comm: String,
    /// The arguments after `argv[0]` as the process shows them now; before an exec, those of the
    /// program that execs. Read by the sensor only where a rule asks (an exec rule's
    /// `unless_run_by`), so usually empty.
    pub args: Vec<String>,
    /// macOS code-signing identity, when the sensor has it.
    pub signing_id: Option<String>,
    pub team_id: Option<String>,
}

/// One kernel event in neutral form.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    pub actor: Actor,
    pub action: Action,
}

/// Whether the actor is attributed to an AI agent, and to which one.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Attribution {
    /// Not agent-attributed: a human's process. The engine allows everything.
    #[default]
    Human,
    Agent(AgentInfo),
}

/// The agent a process is attributed to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgentInfo {
    /// The agent pattern that matched (e.g. `claude`).
    pub name: String,
    /// The pid of the agent process the taint came from.
    pub pid: i32,
}

impl Attribution {
    pub fn agent(name: impl Into<String>, pid: i32) -> Attribution {
        Attribution::Agent(AgentInfo {
            name: name.into(),
            pid,
        })
    }
    pub fn is_agent(&self) -> bool {
        matches!(self, Attribution::Agent(_))
    }
}
