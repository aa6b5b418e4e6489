//! The names of the decision table's rules: which rule produced a denial or a keep. The string
//! form is the `rule` field of the denial record and of the audit trail, and is stable.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Which rule of the decision table produced a denial. The string form is the `rule` field of the
/// denial record and of the audit trail, and is stable.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum RuleId {
    /// agent-guard's own files (policy, state, logs, binary) or a signal to the guard.
    GuardSelf,
    SecretZone,
    ExecRule,
    ReadonlyZone,
    /// unlink/rmdir inside a protected zone.
    ProtectedDelete,
    /// A rename that moves an entry out of a protected zone.
    ProtectedMoveOut,
    /// A rename from elsewhere that replaces an existing entry of a protected zone.
    ProtectedClobber,
    /// A rename of a zone root or of one of its ancestors.
    ZoneRootRename,
    /// A reach into a process outside the agent's tree (ptrace, its memory, fds or `/proc`).
    OutsideProcess,
    /// A block device opened, or a device node made.
    Device,
    /// A connection to a server outside the agent's tree that runs commands or holds
    /// credentials for the user (the policy's `command_servers`).
    CommandServer,
    /// A nested sandbox (new user, mount or pid namespaces) inside the supervised tree.
    NestedSandbox,
    /// A program in the user's command directories named like a system command, which would
    /// run instead of it (the policy's `command_dirs`).
    CommandShadow,
    /// A rename from inside a protected zone over an existing entry of it (an atomic save):
    /// the replaced entry is kept.
    ProtectedReplace,
    /// A rename of a file to another name within its protected zone: the name it leaves is kept
    /// (unless the agent session made it itself), so a restore finds the file where it was.
    ProtectedRename,
    /// A truncation (`truncate`, `O_TRUNC`) of a file in a protected zone: its content is kept.
    ProtectedTruncate,
    /// The first write-open of an existing file of a protected zone in an agent session: its
    /// content is kept.
    ProtectedFirstWrite,
    /// A hard link from a protected zone to a place outside it (or into a carve-out): the
    /// content is kept, since the other name lets it change unseen.
    ProtectedLinkOut,
    /// What the operation destroys could not be kept (too large to copy, store full, an error):
    /// refused, because it could not be undone.
    KeepFailed,
    /// The agent session destroyed more than the policy's limit within its window: further
    /// destruction waits for the human (or the window).
    DestructionBrake,
    /// A rule this version does not know, kept as it was written so that it reads and prints
    /// back unchanged: empty for a line of codex-es-guard's log (which names no rule), or the
    /// name another version wrote.
    Unknown(String),
}

impl RuleId {
    /// Every rule this version applies.
    pub const KNOWN: [RuleId; 20] = [
        RuleId::GuardSelf,
        RuleId::SecretZone,
        RuleId::ExecRule,
        RuleId::ReadonlyZone,
        RuleId::ProtectedDelete,
        RuleId::ProtectedMoveOut,
        RuleId::ProtectedClobber,
        RuleId::ZoneRootRename,
        RuleId::OutsideProcess,
        RuleId::Device,
        RuleId::CommandServer,
        RuleId::NestedSandbox,
        RuleId::CommandShadow,
        RuleId::ProtectedReplace,
        RuleId::ProtectedRename,
        RuleId::ProtectedTruncate,
        RuleId::ProtectedFirstWrite,
        RuleId::ProtectedLinkOut,
        RuleId::KeepFailed,
        RuleId::DestructionBrake,
    ];

    pub fn as_str(&self) -> &str {
        match self {
            RuleId::GuardSelf => "guard_self",
            RuleId::SecretZone => "secret_zone",
            RuleId::ExecRule => "exec_rule",
            RuleId::ReadonlyZone => "readonly_zone",
            RuleId::ProtectedDelete => "protected_delete",
            RuleId::ProtectedMoveOut => "protected_move_out",
            RuleId::ProtectedClobber => "protected_clobber",
            RuleId::ZoneRootRename => "zone_root_rename",
            RuleId::OutsideProcess => "outside_process",
            RuleId::Device => "device",
            RuleId::CommandServer => "command_server",
            RuleId::NestedSandbox => "nested_sandbox",
            RuleId::CommandShadow => "command_shadow",
            RuleId::ProtectedReplace => "protected_replace",
            RuleId::ProtectedRename => "protected_rename",
            RuleId::ProtectedTruncate => "protected_truncate",
            RuleId::ProtectedFirstWrite => "protected_first_write",
            RuleId::ProtectedLinkOut => "protected_link_out",
            RuleId::KeepFailed => "keep_failed",
            RuleId::DestructionBrake => "destruction_brake",
            RuleId::Unknown(name) => name,
        }
    }

    /// Whether the rule keeps the sandbox itself whole (no power lent outside the agent's tree,
    /// no raw device): it denies in audit mode too, and no override covers it.
    pub fn is_containment(&self) -> bool {
        matches!(
            self,
            RuleId::OutsideProcess | RuleId::Device | RuleId::NestedSandbox
        )
    }

    /// The rule a record names; a name this version does not know is kept as [`RuleId::Unknown`].
    pub fn from_name(name: &str) -> RuleId {
        RuleId::KNOWN
            .into_iter()
            .find(|rule| rule.as_str() == name)
            .unwrap_or_else(|| RuleId::Unknown(name.to_string()))
    }
}

impl fmt::Display for RuleId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for RuleId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for RuleId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(|name| RuleId::from_name(&name))
    }
}
