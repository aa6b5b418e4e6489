//! The neutral event: what a process asked the kernel to do, independent of the sensor.
//!
//! Both sensors (Endpoint Security on macOS, the seccomp supervisor on Linux) translate their
//! kernel messages into an [`Event`]. Paths in an event are absolute and lexically clean (no `.`,
//! `..`, or doubled slashes): the sensor resolves them against the caller's cwd or dirfd, and
//! [`crate::engine::path::clean`] removes what remains. This module must never do I/O.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The kind of an operation, without its payload. Used in rules, grants, records and the CLI.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum OpKind {
    Exec,
    Unlink,
    Rmdir,
    Rename,
    Open,
    Truncate,
    Link,
    Create,
    Signal,
}

impl OpKind {
    pub const ALL: [OpKind; 9] = [
        OpKind::Exec,
        OpKind::Unlink,
        OpKind::Rmdir,
        OpKind::Rename,
        OpKind::Open,
        OpKind::Truncate,
        OpKind::Link,
        OpKind::Create,
        OpKind::Signal,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            OpKind::Exec => "exec",
            OpKind::Unlink => "unlink",
            OpKind::Rmdir => "rmdir",
            OpKind::Rename => "rename",
            OpKind::Open => "open",
            OpKind::Truncate => "truncate",
            OpKind::Link => "link",
            OpKind::Create => "create",
            OpKind::Signal => "signal",
        }
    }

    fn bit(self) -> u16 {
        1 << (self as u16)
    }
}

impl fmt::Display for OpKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Error for an operation name that is not one of [`OpKind::ALL`].
#[derive(Debug, thiserror::Error)]
#[error("unknown operation {0:?}: expected one of exec, unlink, rmdir, rename, open, truncate, link, create, signal")]
pub struct UnknownOp(pub String);

impl FromStr for OpKind {
    type Err = UnknownOp;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        OpKind::ALL
            .into_iter()
            .find(|op| op.as_str() == s)
            .ok_or_else(|| UnknownOp(s.to_string()))
    }
}

/// A set of [`OpKind`]s, as a bit set so that grant checks on the hot path cost one AND.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct OpSet(u16);

impl OpSet {
    pub const EMPTY: OpSet = OpSet(0);

    pub fn all() -> OpSet {
        OpKind::ALL.into_iter().collect()
    }
    pub fn contains(self, op: OpKind) -> bool {
        self.0 & op.bit() != 0
    }
    pub fn insert(&mut self, op: OpKind) {
        self.0 |= op.bit();
    }
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
    pub fn iter(self) -> impl Iterator<Item = OpKind> {
        OpKind::ALL.into_iter().filter(move |op| self.contains(*op))
    }
}

impl FromIterator<OpKind> for OpSet {
    fn from_iter<I: IntoIterator<Item = OpKind>>(iter: I) -> Self {
        let mut set = OpSet::EMPTY;
        for op in iter {
            set.insert(op);
        }
        set
    }
}

impl fmt::Debug for OpSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

impl fmt::Display for OpSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.iter().map(OpKind::as_str).collect();
        f.write_str(&names.join(","))
    }
}

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

/// The operation with its payload. Every path is absolute and clean.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Start a program. `path` is the executable being started, `argv` its arguments
    /// (argv[0] included).
    Exec {
        path: PathBuf,
        argv: Vec<String>,
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
    Create {
        path: PathBuf,
    },
    /// A signal (or ptrace) aimed at another process. `target_is_guard` is set by the sensor when
    /// the target is the daemon or supervisor itself.
    Signal {
        target_pid: i32,
        target_is_guard: bool,
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
            | Action::Create { path } => Some(path),
            Action::Rename { from, .. } | Action::Link { from, .. } => Some(from),
            Action::Signal { .. } => None,
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
    /// The real executable (from the kernel, `/proc/PID/exe` or the ES message), never argv[0].
    pub exe: PathBuf,
    /// argv[0] as the process reports it now (Node's `process.title` rewrites it).
    pub argv0: String,
    /// The kernel's short process name (`comm`).
    pub comm: String,
    /// The arguments after argv[0] as the process shows them now; before an exec, those of the
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
