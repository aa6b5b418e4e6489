//! The engine's answer to one event.
//!
//! A [`Verdict`] is what the sensor gives the kernel (allow or deny) plus, when the policy would
//! deny, a [`Denial`] that explains it: the rule, the zone, one sentence a language model can act
//! on, and the exact command that asks a human for an override. Audit mode allows but keeps the
//! denial so it can be logged.

use std::fmt;
use std::path::PathBuf;

use serde::Serialize;

use super::event::OpKind;

/// Which rule of the decision table produced a denial. The string form is the `rule` field of the
/// denial record and is stable.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
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
}

impl RuleId {
    pub fn as_str(self) -> &'static str {
        match self {
            RuleId::GuardSelf => "guard_self",
            RuleId::SecretZone => "secret_zone",
            RuleId::ExecRule => "exec_rule",
            RuleId::ReadonlyZone => "readonly_zone",
            RuleId::ProtectedDelete => "protected_delete",
            RuleId::ProtectedMoveOut => "protected_move_out",
            RuleId::ProtectedClobber => "protected_clobber",
            RuleId::ZoneRootRename => "zone_root_rename",
        }
    }
}

impl fmt::Display for RuleId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
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
    /// `allow`, `deny` or `audit`: the `decision` field of records.
    pub fn as_str(&self) -> &'static str {
        match self {
            Verdict::Allow => "allow",
            Verdict::Deny(_) => "deny",
            Verdict::Audit(_) => "audit",
        }
    }
}
