//! Operations by kind: [`OpKind`] names one, [`OpSet`] holds several (a grant's, a rule's, an
//! override event's). Their names are the `op` and `ops` fields of every record and the `--op`
//! values of the command line, and are stable.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::error::UnknownName;

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
    /// A change of a file's metadata, not its contents: mode, owner, flags (`chflags uchg`),
    /// ACL, extended attributes, times (macOS Endpoint Security reports each).
    SetAttr,
    /// ptrace, memory, fds or privileged `/proc` entries of a process outside the agent's tree.
    Trace,
    /// A connection to a local (`AF_UNIX`) socket.
    Connect,
    /// New user, mount or pid namespaces (a nested sandbox).
    Namespace,
}

impl OpKind {
    pub const ALL: [OpKind; 13] = [
        OpKind::Exec,
        OpKind::Unlink,
        OpKind::Rmdir,
        OpKind::Rename,
        OpKind::Open,
        OpKind::Truncate,
        OpKind::Link,
        OpKind::Create,
        OpKind::Signal,
        OpKind::SetAttr,
        OpKind::Trace,
        OpKind::Connect,
        OpKind::Namespace,
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
            OpKind::SetAttr => "setattr",
            OpKind::Trace => "trace",
            OpKind::Connect => "connect",
            OpKind::Namespace => "namespace",
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

impl FromStr for OpKind {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        OpKind::ALL
            .into_iter()
            .find(|op| op.as_str() == s)
            .ok_or_else(|| UnknownName {
                what: "operation",
                value: s.to_string(),
                expected:
                    "one of exec, unlink, rmdir, rename, open, truncate, link, create, signal, setattr, trace, connect, namespace",
            })
    }
}

/// A set of [`OpKind`]s, as a bit set so that grant checks on the hot path cost one AND.
///
/// Written in records as the names joined by commas, in the order of [`OpKind::ALL`]
/// (`unlink,rename`): the `ops` of an override event.
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

impl<'a> FromIterator<&'a OpKind> for OpSet {
    fn from_iter<I: IntoIterator<Item = &'a OpKind>>(iter: I) -> Self {
        iter.into_iter().copied().collect()
    }
}

impl fmt::Debug for OpSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

impl fmt::Display for OpSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, op) in self.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            f.write_str(op.as_str())?;
        }
        Ok(())
    }
}

/// `unlink,rename`: names separated by commas; blanks around them and empty names are ignored.
impl FromStr for OpSet {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.split(',')
            .map(str::trim)
            .filter(|name| !name.is_empty())
            .map(OpKind::from_str)
            .collect()
    }
}

impl Serialize for OpSet {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for OpSet {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn op_sets_read_and_write_as_comma_lists() {
        let set: OpSet = "rename, unlink,,".parse().unwrap();
        assert_eq!(set, [OpKind::Unlink, OpKind::Rename].into_iter().collect());
        assert_eq!(set.to_string(), "unlink,rename");
        assert_eq!(serde_json::to_string(&set).unwrap(), r#""unlink,rename""#);
        let back: OpSet = serde_json::from_str(r#""unlink,rename""#).unwrap();
        assert_eq!(back, set);
        assert_eq!("".parse::<OpSet>().unwrap(), OpSet::EMPTY);
        let err = "unlink,delete".parse::<OpSet>().unwrap_err().to_string();
        assert!(
            err.starts_with("unknown operation \"delete\": expected one of exec"),
            "{err}"
        );
    }
}
