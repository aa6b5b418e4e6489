//! `decide`: the decision table of DESIGN.md, in order.
//!
//! 1. not agent-attributed → allow
//! 2. agent-guard's own files (and signals to the guard) → deny
//! 3. an active override or grant → allow
//! 4. secret zone → deny
//! 5. exec rule → deny
//! 6. readonly zone → deny
//! 7. trusted tool within its scope → allow
//! 8. protected zone, destructive operation → deny
//! 9. else allow
//!
//! Audit mode turns every deny into an audit verdict that allows.

use std::path::Path;

use super::event::{Action, Attribution, Event, OpKind};
use super::grant::{Grant, Grants};
use super::reason;
use super::verdict::{Denial, RuleId, Verdict};
use crate::policy::{Mode, Policy, Zone, ZoneKind};

/// Decide one event. Pure: everything it needs is passed in; `now` is unix seconds.
pub fn decide(
    event: &Event,
    attribution: &Attribution,
    policy: &Policy,
    grants: &Grants,
    now: u64,
) -> Verdict {
    if !attribution.is_agent() {
        return Verdict::Allow;
    }
    match judge(event, policy, grants, now) {
        None => Verdict::Allow,
        Some(denial) if policy.mode == Mode::Audit => Verdict::Audit(denial),
        Some(denial) => Verdict::Deny(denial),
    }
}

/// The paths an action touches, and how.
struct Touch<'a> {
    path: &'a Path,
    /// The action changes what is at `path` (not a read-only open, not an exec).
    modifies: bool,
}

fn touches(action: &Action) -> [Option<Touch<'_>>; 2] {
    let m = |path, modifies| Some(Touch { path, modifies });
    match action {
        Action::Exec { path, .. } => [m(path, false), None],
        Action::Open { path, flags } => [m(path, flags.modifies()), None],
        Action::Unlink { path }
        | Action::Rmdir { path }
        | Action::Truncate { path }
        | Action::Create { path } => [m(path, true), None],
        Action::Rename { from, to, .. } => [m(from, true), m(to, true)],
        // Both ends count as modified: a new name for a guarded or readonly file would be a
        // way to write it through a path outside the zone.
        Action::Link { from, to } => [m(from, true), m(to, true)],
        Action::Signal { .. } => [None, None],
    }
}

fn judge(event: &Event, policy: &Policy, grants: &Grants, now: u64) -> Option<Denial> {
    let action = &event.action;
    let op = action.kind();
    let zones = &policy.zones;
    let paths = touches(action);
    let paths = paths.iter().flatten();
    let deny = |rule, path: &Path, zone: Option<&Zone>| {
        Some(reason::denial(
            rule,
            action,
            path,
            zone.map(|z| z.root.as_path()),
            None,
        ))
    };

    // 2. The guard's own files and process.
    if let Action::Signal {
        target_is_guard: true,
        ..
    } = action
    {
        return Some(reason::denial(
            RuleId::GuardSelf,
            action,
            Path::new("/"),
            None,
            None,
        ));
    }
    for t in paths.clone().filter(|t| t.modifies) {
        if let Some(zone) = zones.containing(t.path, ZoneKind::Guard) {
            return deny(RuleId::GuardSelf, t.path, Some(zone));
        }
    }
    if let Action::Rename { from, .. } = action {
        if let Some(zone) = zones.root_at_or_below(from, ZoneKind::Guard) {
            return deny(RuleId::GuardSelf, from, Some(zone));
        }
    }

    // 3. Overrides: the grant must cover a path the action touches, and every other zoned path.
    let covered = |g: &Grant| {
        g.is_active(now)
            && g.ops.contains(op)
            && paths.clone().any(|t| grant_covers(g, t.path, policy))
            && paths
                .clone()
                .all(|t| !in_any_zone(policy, t.path) || grant_covers(g, t.path, policy))
    };
    if policy.overrides.iter().chain(&grants.grants).any(covered) {
        return None;
    }

    // 4. Secret zones: no access at all, and their roots may not be moved.
    for t in paths.clone() {
        if let Some(zone) = zones.containing(t.path, ZoneKind::Secret) {
            return deny(RuleId::SecretZone, t.path, Some(zone));
        }
    }
    if let Action::Rename { from, .. } = action {
        if let Some(zone) = zones.root_at_or_below(from, ZoneKind::Secret) {
            return deny(RuleId::ZoneRootRename, from, Some(zone));
        }
    }

    // 5. Exec rules.
    if let Action::Exec { path, argv } = action {
        let exe_name = basename(path);
        let argv0_name = argv
            .first()
            .map(|a| basename(Path::new(a)))
            .unwrap_or(exe_name);
        let args = argv.get(1..).unwrap_or(&[]);
        if let Some(rule) = policy.exec_rules.find(&[exe_name, argv0_name], args) {
            return Some(reason::denial(
                RuleId::ExecRule,
                action,
                path,
                None,
                Some(rule),
            ));
        }
    }

    // 6. Readonly zones: no modification in, out, or over; their roots may not be moved.
    for t in paths.clone().filter(|t| t.modifies) {
        if let Some(zone) = zones.containing(t.path, ZoneKind::Readonly) {
            return deny(RuleId::ReadonlyZone, t.path, Some(zone));
        }
    }
    if let Action::Rename { from, .. } = action {
        if let Some(zone) = zones.root_at_or_below(from, ZoneKind::Readonly) {
            return deny(RuleId::ZoneRootRename, from, Some(zone));
        }
    }

    // 7. Trusted tools inside their scope.
    let protected_paths = || {
        paths
            .clone()
            .filter(|t| protected_zone(policy, t.path).is_some())
    };
    if protected_paths().next().is_some()
        && policy.trusted_tools.iter().any(|tool| {
            tool.identifies(&event.actor) && protected_paths().all(|t| tool.covers(t.path))
        })
    {
        return None;
    }

    // 8. Protected zones: create, write and rename within, but nothing that destroys or moves out.
    match action {
        Action::Unlink { path } | Action::Rmdir { path } => {
            if let Some(zone) = protected_zone(policy, path) {
                return deny(RuleId::ProtectedDelete, path, Some(zone));
            }
        }
        Action::Rename {
            from,
            to,
            dest_exists,
            ..
        } => {
            if let Some(zone) = zones.root_at_or_below(from, ZoneKind::Protected) {
                return deny(RuleId::ZoneRootRename, from, Some(zone));
            }
            let source_zone = protected_zone(policy, from);
            let dest_zone = protected_zone(policy, to);
            if let Some(zone) = source_zone {
                // Into a carve-out (e.g. target/) counts as out: it would be deletable there.
                if !dest_zone.is_some_and(|d| std::ptr::eq(d, zone)) {
                    return deny(RuleId::ProtectedMoveOut, from, Some(zone));
                }
            }
            if let Some(zone) = dest_zone {
                if *dest_exists && !source_zone.is_some_and(|s| std::ptr::eq(s, zone)) {
                    return deny(RuleId::ProtectedClobber, to, Some(zone));
                }
            }
        }
        _ => {}
    }
    None
}

/// The protected zone that guards `path`: the innermost protected zone containing it, unless the
/// path is in one of that zone's carve-outs.
fn protected_zone<'p>(policy: &'p Policy, path: &Path) -> Option<&'p Zone> {
    policy
        .zones
        .containing(path, ZoneKind::Protected)
        .filter(|zone| !zone.excepts(path))
}

fn in_any_zone(policy: &Policy, path: &Path) -> bool {
    [ZoneKind::Secret, ZoneKind::Readonly, ZoneKind::Protected]
        .into_iter()
        .any(|kind| policy.zones.containing(path, kind).is_some())
}

fn grant_covers(grant: &Grant, path: &Path, policy: &Policy) -> bool {
    use crate::engine::path::{is_within, match_key};
    let ci = policy.case_insensitive();
    is_within(&match_key(path, ci), &match_key(&grant.path, ci))
}

fn basename(path: &Path) -> &str {
    path.file_name().and_then(|n| n.to_str()).unwrap_or("")
}

/// For `check` and records: the operation names accepted on the command line.
pub fn op_names() -> Vec<&'static str> {
    OpKind::ALL.iter().map(|op| op.as_str()).collect()
}
