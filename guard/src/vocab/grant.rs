//! Override grants as the engine sees them: a path subtree, a set of operations, an expiry.
//!
//! Grants come from two places: `temporary_overrides` in the policy and overrides a human
//! approved (the `overrides` module turns its store into [`Grants`]). This module is plain data.

use std::path::PathBuf;

use super::event::Action;
use super::op::OpSet;

/// Permission to do `ops` under `path` (the path itself and everything below it) until
/// `expires_at` (unix seconds; `None` = until the policy changes).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Grant {
    pub id: String,
    pub path: PathBuf,
    pub ops: OpSet,
    pub expires_at: Option<u64>,
    /// For an exec: the exact arguments after `argv[0]` the program may be run with, as the
    /// denied command had them (approving `git clean -fdx` must not let `git reset --hard`
    /// run). `None`: any arguments, which a human chooses explicitly (`approve --any-args`) or
    /// the policy's `temporary_overrides` give.
    pub args: Option<Vec<String>>,
}

impl Grant {
    pub fn is_active(&self, now: u64) -> bool {
        self.expires_at.is_none_or(|t| now < t)
    }

    /// Whether the grant's arguments allow `action`: any action but an exec, and an exec whose
    /// arguments after `argv[0]` are exactly the grant's (or any, when it names none).
    pub fn covers_args(&self, action: &Action) -> bool {
        match (&self.args, action) {
            (None, _) => true,
            (Some(args), Action::Exec { argv, .. }) => argv.get(1..).unwrap_or(&[]) == args,
            (Some(_), _) => true,
        }
    }
}

/// The approved overrides in force, as one immutable snapshot that the sensor swaps on change.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Grants {
    pub grants: Vec<Grant>,
}

impl Grants {
    pub fn new(grants: Vec<Grant>) -> Grants {
        Grants { grants }
    }
}
