//! The engine's answer to one event, and the words records use for it.
//!
//! A [`Verdict`] is what the sensor gives the kernel (allow or deny) plus, when the policy would
//! deny, a [`Denial`] that explains it: the rule, the zone, one sentence a language model can act
//! on, and the exact command that asks a human for an override. Audit mode allows but keeps the
//! denial so it can be logged. Records keep the verdict's [`Decision`] and [`RuleId`], and the
//! policy's [`Mode`] at the time.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::error::UnknownName;
use super::op::OpKind;

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
    /// A rule this version does not know, kept as it was written so that it reads and prints
    /// back unchanged: empty for a line of codex-es-guard's log (which names no rule), or the
    /// name another version wrote.
    Unknown(String),
}

impl RuleId {
    /// Every rule this version applies.
    pub const KNOWN: [RuleId; 13] = [
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

/// What became of an operation: allowed, refused (`deny`), or allowed and recorded as what
/// enforce mode would have refused (`audit`). The `decision` of the denial record and the
/// `verdict` of the audit trail.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Decision {
    Allow,
    Deny,
    Audit,
}

impl Decision {
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Allow => "allow",
            Decision::Deny => "deny",
            Decision::Audit => "audit",
        }
    }
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Decision {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        UnknownName::find(
            s,
            &[Decision::Allow, Decision::Deny, Decision::Audit],
            Decision::as_str,
            "verdict",
            "allow, deny or audit",
        )
    }
}

/// `enforce` denies; `audit` allows and records what enforce would have denied. The policy's
/// `mode`, and the `mode` of each decision in the audit trail.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    #[default]
    Enforce,
    Audit,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Enforce => "enforce",
            Mode::Audit => "audit",
        }
    }
}

impl FromStr for Mode {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        UnknownName::find(
            s,
            &[Mode::Enforce, Mode::Audit],
            Mode::as_str,
            "mode",
            "enforce or audit",
        )
    }
}

/// Why an operation is (or in audit mode would be) denied.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Denial {
    pub rule: RuleId,
    pub op: OpKind,
    /// The path the rule is about (for a rename, the side that made it deny).
    pub path: PathBuf,
    pub dest: Option<PathBuf>,
    /// The root of the zone involved, or `None` (exec rules, guard files).
    pub zone: Option<PathBuf>,
    /// One sentence, addressed to an AI agent, that says what was blocked and what to do instead.
    pub reason: String,
    /// The exact command that requests an override for this denial.
    pub hint: String,
}

/// The engine's decision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Allow,
    /// Enforce mode: the kernel answers EPERM.
    Deny(Denial),
    /// Audit mode: allowed, but recorded as what enforce mode would have denied.
    Audit(Denial),
}

impl Verdict {
    /// Whether the kernel should let the operation happen.
    pub fn allows(&self) -> bool {
        !matches!(self, Verdict::Deny(_))
    }
    pub fn denial(&self) -> Option<&Denial> {
        match self {
            Verdict::Allow => None,
            Verdict::Deny(d) | Verdict::Audit(d) => Some(d),
        }
    }
    /// `allow`, `deny` or `audit`: the name of its [`Decision`].
    pub fn as_str(&self) -> &'static str {
        self.decision().as_str()
    }
    /// The decision, without the explanation.
    pub fn decision(&self) -> Decision {
        match self {
            Verdict::Allow => Decision::Allow,
            Verdict::Deny(_) => Decision::Deny,
            Verdict::Audit(_) => Decision::Audit,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rule_names_round_trip_and_unknown_ones_are_kept() {
        for rule in RuleId::KNOWN {
            assert_eq!(RuleId::from_name(rule.as_str()), rule);
        }
        let foreign = RuleId::from_name("some_later_rule");
        assert_eq!(foreign, RuleId::Unknown("some_later_rule".into()));
        assert_eq!(
            serde_json::to_string(&foreign).unwrap(),
            r#""some_later_rule""#
        );
        let empty: RuleId = serde_json::from_str(r#""""#).unwrap();
        assert_eq!(empty.to_string(), "");
    }

    #[test]
    fn decisions_and_modes_parse_their_names_only() {
        assert_eq!("audit".parse::<Decision>(), Ok(Decision::Audit));
        let err = "maybe".parse::<Decision>().unwrap_err().to_string();
        assert_eq!(
            err,
            "unknown verdict \"maybe\": expected allow, deny or audit"
        );
        assert_eq!("enforce".parse::<Mode>(), Ok(Mode::Enforce));
        assert!("strict".parse::<Mode>().is_err());
    }
}
