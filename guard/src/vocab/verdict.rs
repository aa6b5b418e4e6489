//! The engine's answer to one event, and the words records use for it.
//!
//! A [`Verdict`] is what the sensor gives the kernel (allow, allow once kept, or deny) plus, when
//! the policy would deny, a [`Denial`] that explains it: the rule, the zone, one sentence a
//! language model can act on, and the exact command that asks a human for an override. A
//! [`Keep`] says what the sensor must put in the snapshot store before the operation may happen.
//! Audit mode allows but keeps the denial (or what would have been kept) so it can be logged.
//! Records keep the verdict's [`Decision`] and [`RuleId`], and the policy's [`Mode`] at the time.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::error::UnknownName;
use super::keep::Keep;
use super::op::OpKind;
use super::rule::RuleId;

/// What became of an operation: allowed, allowed once what it destroyed was kept (`keep`),
/// refused (`deny`), or allowed and recorded as what enforce mode would have refused (`audit`) or
/// kept (`would_keep`). The `decision` of the denial record and the `verdict` of the audit trail.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    Allow,
    Deny,
    Audit,
    Keep,
    WouldKeep,
}

impl Decision {
    pub const ALL: [Decision; 5] = [
        Decision::Allow,
        Decision::Deny,
        Decision::Audit,
        Decision::Keep,
        Decision::WouldKeep,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Allow => "allow",
            Decision::Deny => "deny",
            Decision::Audit => "audit",
            Decision::Keep => "keep",
            Decision::WouldKeep => "would_keep",
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
            &Decision::ALL,
            Decision::as_str,
            "verdict",
            "allow, deny, audit, keep or would_keep",
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
    /// Allow once the sensor has kept what the operation destroys; when it cannot, the sensor
    /// refuses (EPERM) and records why (`keep_failed`).
    Keep(Keep),
    /// Enforce mode: the kernel answers EPERM.
    Deny(Denial),
    /// Audit mode: allowed, but recorded as what enforce mode would have denied.
    Audit(Denial),
    /// Audit mode: allowed without keeping anything, and recorded as what enforce mode would
    /// have kept.
    WouldKeep(Keep),
}

impl Verdict {
    /// Whether the operation may happen: for [`Verdict::Keep`], only once what it destroys is
    /// kept, which the sensor must do first.
    pub fn allows(&self) -> bool {
        !matches!(self, Verdict::Deny(_))
    }
    pub fn denial(&self) -> Option<&Denial> {
        match self {
            Verdict::Allow | Verdict::Keep(_) | Verdict::WouldKeep(_) => None,
            Verdict::Deny(d) | Verdict::Audit(d) => Some(d),
        }
    }
    /// What must be (or in audit mode would have been) kept.
    pub fn keep(&self) -> Option<&Keep> {
        match self {
            Verdict::Keep(k) | Verdict::WouldKeep(k) => Some(k),
            _ => None,
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
            Verdict::Keep(_) => Decision::Keep,
            Verdict::Deny(_) => Decision::Deny,
            Verdict::Audit(_) => Decision::Audit,
            Verdict::WouldKeep(_) => Decision::WouldKeep,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vocab::RuleId;

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
            "unknown verdict \"maybe\": expected allow, deny, audit, keep or would_keep"
        );
        assert_eq!("enforce".parse::<Mode>(), Ok(Mode::Enforce));
        assert!("strict".parse::<Mode>().is_err());
    }
}
