//! The policy file as written by a user: JSON, a superset of codex-es-guard's `es_policy.json`.
//!
//! These types mirror the file exactly (every key optional, so an absent key can take the embedded
//! default's value) and generate the JSON Schema of `agent-guard policy schema`. They are never
//! used for decisions: [`super::normalize`] turns them into a [`super::Policy`]. Unknown keys are
//! errors. Entries that codex-es-guard wrote as plain strings may also be objects; both forms
//! deserialize through [`StringOr`].

use std::fmt;
use std::marker::PhantomData;

use schemars::JsonSchema;
use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

pub use crate::vocab::Mode;
use crate::vocab::OpKind;

/// What the macOS daemon answers when it cannot decide before the kernel's deadline.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum FailMode {
    /// Allow (the default: a slow guard must not hang the machine).
    #[default]
    Open,
    /// Deny.
    Closed,
}

/// The whole file. Every key is optional: an absent key takes the embedded default's value, an
/// explicit empty list means none.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicyFile {
    /// `enforce` (default) or `audit`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<Mode>,
    /// macOS daemon: answer when a decision misses the kernel deadline (`open` or `closed`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fail_mode: Option<FailMode>,
    /// Names that mark a process as an AI agent (matched on exe, `argv[0]`, comm, script name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ai_agent_patterns: Option<Vec<String>>,
    /// Agents may read, write and create here, but not delete or move things out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protected_zones: Option<Vec<StringOr<ProtectedZoneEntry>>>,
    /// Agents may only read here: paths, or globs for places anywhere (`**/.git/hooks/**`), each
    /// optionally with carve-outs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub readonly_zones: Option<Vec<StringOr<ReadonlyZoneEntry>>>,
    /// Agents may not even read here (credentials).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_zones: Option<Vec<String>>,
    /// Subtrees where the zones' denials do not apply (optionally only for some operations and
    /// until a time).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temporary_overrides: Option<Vec<StringOr<OverrideEntry>>>,
    /// Tools exempt from the protected-zone rules inside their scope.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trusted_tools: Option<Vec<StringOr<TrustedToolEntry>>>,
    /// Programs (with argument patterns) an agent may not start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exec_rules: Option<Vec<ExecRuleEntry>>,
    /// Programs that run commands or hold credentials for the user (`tmux`, `dockerd`,
    /// `ssh-agent`, or an absolute path): an agent may not connect to a local socket on which
    /// one of them listens outside the agent's own processes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command_servers: Option<Vec<String>>,
    /// The user's command directories (`~/.local/bin`): an agent may install new commands there
    /// but not one named like a system command, which would run instead of it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command_dirs: Option<Vec<String>>,
    /// Longest lifetime of an approved override, e.g. `"10m"`, `"2h"` (default `"1h"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_override_ttl: Option<String>,
    /// Retention of the SQLite audit trail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit_retention: Option<RetentionEntry>,
    /// The snapshot store: how long and how much it keeps, the largest copy, and the brake on
    /// mass destruction.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshots: Option<SnapshotsEntry>,
}

/// What a protected zone does with an agent's destructive operation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum OnDestroy {
    /// Carry it out once what it destroys is kept in the snapshot store (the default): undoable
    /// with `agent-guard undo`.
    #[default]
    Keep,
    /// Refuse it (EPERM): for zones that must stay untouchable.
    Deny,
}

impl OnDestroy {
    pub fn as_str(self) -> &'static str {
        match self {
            OnDestroy::Keep => "keep",
            OnDestroy::Deny => "deny",
        }
    }
}

/// The snapshot store's limits. A key absent here takes the embedded default's value.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SnapshotsEntry {
    /// Purge what was kept longer ago than this, e.g. `"7d"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_age: Option<String>,
    /// The store's size limit in megabytes; past it, destructive operations are refused (never
    /// a snapshot dropped) until `agent-guard undo purge` frees room.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_size_mb: Option<u64>,
    /// The largest file kept by copying, where the file system cannot clone it. A truncation
    /// of a larger file is refused; a first write-open of one is allowed and not kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_copy_mb: Option<u64>,
    /// The largest directory tree copied when it is moved out of its zone; a larger one may not
    /// be moved out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tree_copy_mb: Option<u64>,
    /// The brake on mass destruction.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub brake: Option<BrakeEntry>,
}

/// When one agent session deletes (or moves out of its zones) more than `files` files or `mb`
/// megabytes within `window`, its further destructive operations are refused until a human
/// approves an override or the window has passed.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BrakeEntry {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub files: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mb: Option<u64>,
    /// e.g. `"60s"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<String>,
}

/// A protected zone with carve-outs where it does not apply (caches, build outputs).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProtectedZoneEntry {
    pub path: String,
    /// Globs (absolute, `~`-relative, or starting with `**/`) inside the zone that are not
    /// protected, e.g. `"~/.cache/**"`, `"**/target/**"`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub except: Vec<String>,
    /// `keep` (the default): an agent's delete, move out, overwrite or truncation is carried
    /// out once what it destroys is kept; `deny`: refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_destroy: Option<OnDestroy>,
}

impl From<String> for ProtectedZoneEntry {
    fn from(path: String) -> Self {
        ProtectedZoneEntry {
            path,
            except: Vec::new(),
            on_destroy: None,
        }
    }
}

/// A read-only zone: a path (a directory or a file), or a glob that names such places wherever
/// they are (`**/.git/hooks/**`: what the user's tools run later without reading it), with
/// carve-outs (`**/.git/hooks/*.sample`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReadonlyZoneEntry {
    pub path: String,
    /// Globs (absolute, `~`-relative, or starting with `**/`) that are not read-only.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub except: Vec<String>,
    /// Trusted tools (names in `trusted_tools`, known by their real executable) that may write
    /// here for the agent: git writes a worktree's `.git` file, which no one else may.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub except_tools: Vec<String>,
}

impl From<String> for ReadonlyZoneEntry {
    fn from(path: String) -> Self {
        ReadonlyZoneEntry {
            path,
            except: Vec::new(),
            except_tools: Vec::new(),
        }
    }
}

/// A temporary override in object form.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OverrideEntry {
    pub path: String,
    /// Operations allowed; all when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ops: Option<Vec<OpKind>>,
    /// End of the override: unix seconds or an RFC 3339 time; never when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Expiry>,
}

impl From<String> for OverrideEntry {
    fn from(path: String) -> Self {
        OverrideEntry {
            path,
            ops: None,
            expires_at: None,
        }
    }
}

/// An expiry: unix seconds or an RFC 3339 string.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Expiry {
    Unix(u64),
    Rfc3339(String),
}

/// A trusted tool in object form.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TrustedToolEntry {
    pub name: String,
    /// The real executables that are this tool (absolute paths, `*` allowed in a component).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exe: Option<Vec<String>>,
    /// macOS code-signing identifier, e.g. `com.apple.git`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signing_id: Option<String>,
    /// macOS code-signing team identifier.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub team_id: Option<String>,
    /// Where the tool is exempt (globs); the whole zone when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paths: Option<Vec<String>>,
}

impl From<String> for TrustedToolEntry {
    fn from(name: String) -> Self {
        TrustedToolEntry {
            name,
            ..TrustedToolEntry::default()
        }
    }
}

/// What an exec rule does when it matches.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ExecAction {
    #[default]
    Deny,
}

/// A program an agent may not start with certain arguments.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExecRuleEntry {
    /// Basename of the program (matched on the executable and on `argv[0]`).
    pub program: String,
    /// Globs that must match arguments in this order (other arguments may come between);
    /// `{a,b}` alternatives allowed. Empty: any invocation.
    #[serde(default)]
    pub args: Vec<String>,
    /// The rule does not apply when any argument matches one of these globs (e.g. `--dry-run`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unless: Vec<String>,
    /// The rule does not apply to a command that a trusted tool runs for one of its own
    /// subcommands: `"git stash"` is the trusted tool `git` (identified by its real executable)
    /// running `stash`, which resets the working tree only after saving it. The subcommand is the
    /// tool's first argument that is not an option; `-C DIR` and `-c KEY=VALUE` may come before
    /// it, any other option before it means no match.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unless_run_by: Vec<String>,
    #[serde(default)]
    pub action: ExecAction,
    /// Why, in one sentence for the agent.
    pub reason: String,
}

/// Retention of the SQLite audit trail.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RetentionEntry {
    /// Delete decisions older than this, e.g. `"30d"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_age: Option<String>,
    /// Keep the database under this many megabytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_size_mb: Option<u64>,
}

/// A list entry that is either a plain string (codex-es-guard's form) or an object.
///
/// Written by hand rather than `#[serde(untagged)]` so that an error inside the object form
/// (an unknown key, a wrong type) is reported as such, with its key path, instead of "did not
/// match any variant".
#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum StringOr<T> {
    String(String),
    Object(T),
}

impl<T: From<String>> StringOr<T> {
    pub fn into_object(self) -> T {
        match self {
            StringOr::String(s) => T::from(s),
            StringOr::Object(o) => o,
        }
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for StringOr<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct StringOrVisitor<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for StringOrVisitor<T> {
            type Value = StringOr<T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string or an object")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(StringOr::String(v.to_string()))
            }
            fn visit_map<M: MapAccess<'de>>(self, map: M) -> Result<Self::Value, M::Error> {
                T::deserialize(de::value::MapAccessDeserializer::new(map)).map(StringOr::Object)
            }
        }
        deserializer.deserialize_any(StringOrVisitor(PhantomData))
    }
}
