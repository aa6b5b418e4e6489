//! `decide`: the decision table (docs/design.md, "The decision table"), in order.
//!
//! 1. not agent-attributed → allow
//! 2. agent-guard's own files (and signals to the guard) → deny
//!    2b. a reach into a process outside the agent's tree, a block device or device node → deny
//! 3. an active override or grant → allow
//! 4. secret zone → deny
//! 5. exec rule → deny
//!    5b. a connection to a command server outside the tree (`command_servers`) → deny
//! 6. readonly zone → deny
//!    6b. a system command's name in the user's command directories (`command_dirs`) → deny
//! 7. trusted tool within its scope → allow (in zones that deny; zones that keep keep for it too)
//! 8. protected zone, destructive operation → keep what it destroys (`on_destroy: keep`), or
//!    deny (`on_destroy: deny`)
//! 9. else allow
//!
//! Audit mode turns every deny into an audit verdict that allows, except 2b's (those keep the
//! sandbox whole, and the supervisor refuses them whatever the mode), and every keep into a
//! would-keep (allowed, nothing kept).

mod protected;

use std::path::Path;

use super::reason;
use crate::policy::{ExecCall, ExecRule, PatternZone, Policy, Zone, ZoneHits, ZoneKind};
use crate::vocab::path::{is_within, match_key};
use crate::vocab::{
    Action, Attribution, Denial, Event, Grant, Grants, Keep, Mode, NodeKind, RuleId, Verdict,
};

/// Decide one event. Pure: everything it needs is passed in; `now` is unix seconds. A
/// [`Verdict::Keep`] asks the sensor to keep what the operation destroys before it happens.
pub fn decide(
    event: &Event,
    attribution: &Attribution,
    policy: &Policy,
    grants: &Grants,
    now: u64,
) -> Verdict {
    decide_as(event, attribution, policy, grants, now, Keeping::Supported)
}

/// [`decide`] for a sensor that cannot keep anything yet: zones that keep act as zones that deny
/// (today's answer), so no [`Verdict::Keep`] comes back.
pub fn decide_without_keeping(
    event: &Event,
    attribution: &Attribution,
    policy: &Policy,
    grants: &Grants,
    now: u64,
) -> Verdict {
    decide_as(
        event,
        attribution,
        policy,
        grants,
        now,
        Keeping::Unsupported,
    )
}

/// Whether the sensor asking can carry out a [`Verdict::Keep`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Keeping {
    Supported,
    Unsupported,
}

fn decide_as(
    event: &Event,
    attribution: &Attribution,
    policy: &Policy,
    grants: &Grants,
    now: u64,
    keeping: Keeping,
) -> Verdict {
    if !attribution.is_agent() {
        return Verdict::Allow;
    }
    let audit = policy.mode == Mode::Audit;
    match judge(event, policy, grants, now, keeping) {
        Judged::Allow => Verdict::Allow,
        Judged::Keep(keep) if audit => Verdict::WouldKeep(keep),
        Judged::Keep(keep) => Verdict::Keep(keep),
        Judged::Deny(denial) if audit && !denial.rule.is_containment() => Verdict::Audit(denial),
        Judged::Deny(denial) => Verdict::Deny(denial),
    }
}

/// The table's answer before the mode is applied.
enum Judged {
    Allow,
    Keep(Keep),
    Deny(Denial),
}

/// A path the action touches, how, and the zones it lies in (one index walk per path).
struct Touch<'a> {
    path: &'a Path,
    /// The action changes what is at `path` (not a read-only open, not an exec).
    modifies: bool,
    zones: ZoneHits<'a>,
    /// The protected zone that guards the path: none when it falls in that zone's carve-out.
    protected: Option<&'a Zone>,
    /// A read-only zone named by a glob that covers the path (looked up only when it modifies).
    pattern: Option<&'a PatternZone>,
}

fn touches<'a>(action: &'a Action, policy: &'a Policy) -> [Option<Touch<'a>>; 2] {
    // A glob-named read-only place guards what runs, not directories (see `PatternZone`).
    let makes_or_removes_a_directory = matches!(
        action,
        Action::Create {
            kind: NodeKind::Directory,
            ..
        } | Action::Rmdir { .. }
    );
    let touch = |path: &'a Path, modifies: bool| {
        let zones = policy.zones.lookup(path);
        let protected = zones.protected.filter(|zone| !zone.excepts(path));
        let pattern = (modifies && !makes_or_removes_a_directory)
            .then(|| policy.readonly_patterns.matching(path))
            .flatten();
        Some(Touch {
            path,
            modifies,
            zones,
            protected,
            pattern,
        })
    };
    match action {
        Action::Exec { path, .. } => [touch(path, false), None],
        Action::Open { path, flags } => [touch(path, flags.modifies()), None],
        Action::Unlink { path }
        | Action::Rmdir { path }
        | Action::Truncate { path }
        | Action::Create { path, .. }
        | Action::SetAttr { path } => [touch(path, true), None],
        Action::Rename { from, to, .. } => [touch(from, true), touch(to, true)],
        // Both ends count as modified: a new name for a guarded or readonly file would be a
        // way to write it through a path outside the zone.
        Action::Link { from, to } => [touch(from, true), touch(to, true)],
        // A socket in a secret zone (an agent's socket in ~/.ssh, gpg-agent's in ~/.gnupg) is a
        // use of what the zone holds.
        Action::Connect { path, .. } => [touch(path, false), None],
        // Judged by what they reach, not by where: see `containment`.
        Action::Signal { .. }
        | Action::Trace { .. }
        | Action::Device { .. }
        | Action::Namespace { .. } => [None, None],
    }
}

/// The exec as the rules see it, for an exec `action`.
fn exec_call(action: &Action) -> Option<ExecCall<'_>> {
    let Action::Exec { path, argv, env } = action else {
        return None;
    };
    let exe_name = basename(path);
    let argv0_name = argv
        .first()
        .map(|a| basename(Path::new(a)))
        .unwrap_or(exe_name);
    Some(ExecCall {
        names: [exe_name, argv0_name],
        argv,
        env,
    })
}

/// The first exec rule that matches an exec `action` and `applies` to the process that execs.
fn exec_rule<'p>(
    action: &Action,
    policy: &'p Policy,
    applies: impl Fn(&ExecRule) -> bool,
) -> Option<&'p ExecRule> {
    policy.exec_rules.find(&exec_call(action)?, applies)
}

/// Whether deciding `event` needs the arguments of the process that acts ([`Actor::args`]): an
/// exec that an exec rule with `unless_run_by` matches. Sensors read them only then.
///
/// [`Actor::args`]: crate::vocab::Actor::args
pub fn needs_actor_args(event: &Event, policy: &Policy) -> bool {
    exec_rule(&event.action, policy, |rule| !rule.unless_run_by.is_empty()).is_some()
}

/// The places inside a directory being moved to `to` that the sensor must judge as creates
/// under `to` (see [`crate::policy::PatternZones::moved_tree_probes`]).
pub fn moved_tree_probes(policy: &Policy, to: &Path) -> Vec<std::path::PathBuf> {
    policy.readonly_patterns.moved_tree_probes(to)
}

/// Whether deciding `event` needs the exec's environment (`Action::Exec::env`): git may read an
/// alias from it. Sensors read it only then.
pub fn needs_exec_env(event: &Event, policy: &Policy) -> bool {
    !policy.exec_rules.is_empty() && exec_call(&event.action).is_some_and(|c| c.needs_env())
}

fn judge(event: &Event, policy: &Policy, grants: &Grants, now: u64, keeping: Keeping) -> Judged {
    match refusal(event, policy, grants, now) {
        Refusal::Deny(denial) => Judged::Deny(denial),
        Refusal::Allow => Judged::Allow,
        Refusal::ProtectedRules { trusted } => {
            protected::protected(event, policy, trusted, keeping)
        }
    }
}

/// Rules 2 to 7: what ends the walk before the protected zones.
enum Refusal {
    Deny(Denial),
    Allow,
    /// On to rule 8; `trusted`: the actor is a trusted tool in whose scope every protected path
    /// of the event lies (zones that deny exempt it, zones that keep keep for it too).
    ProtectedRules {
        trusted: bool,
    },
}

fn refusal(event: &Event, policy: &Policy, grants: &Grants, now: u64) -> Refusal {
    let action = &event.action;
    let op = action.kind();
    let zones = &policy.zones;
    let touched = touches(action, policy);
    let paths = || touched.iter().flatten();
    let deny = |rule, path: &Path, zone: Option<&Zone>| {
        Refusal::Deny(reason::denial(
            rule,
            action,
            path,
            zone.map(|z| z.root.as_path()),
            None,
        ))
    };
    // A rename moves the source's whole subtree: zone roots at or below it move too.
    let moved_root = |kind| match action {
        Action::Rename { from, .. } => zones.root_at_or_below(from, kind).map(|z| (from, z)),
        _ => None,
    };

    // 2. The guard's own files and process.
    if let Action::Signal {
        target_is_guard: true,
        ..
    } = action
    {
        return Refusal::Deny(reason::denial(
            RuleId::GuardSelf,
            action,
            Path::new("/"),
            None,
            None,
        ));
    }
    // The snapshot store may not even be read: what is in it is the human's to restore.
    let guarded = |t: &Touch| t.modifies || t.zones.guard.is_some_and(|z| z.unreadable);
    for t in paths().filter(|t| guarded(t)) {
        if let Some(zone) = t.zones.guard.filter(|zone| !zone.excepts(t.path)) {
            return deny(RuleId::GuardSelf, t.path, Some(zone));
        }
    }
    if let Some((from, zone)) = moved_root(ZoneKind::Guard) {
        return deny(RuleId::GuardSelf, from, Some(zone));
    }
    if let Some(denial) = containment(action) {
        return Refusal::Deny(denial);
    }

    // 3. Overrides: the grant must cover a path the action touches, and every other zoned path.
    let covered = |g: &Grant| {
        g.is_active(now)
            && g.ops.contains(op)
            && g.covers_args(action)
            && paths().any(|t| grant_covers(g, t.path, policy))
            && paths().all(|t| {
                !(t.zones.any_policy_zone() || t.pattern.is_some())
                    || grant_covers(g, t.path, policy)
            })
    };
    if policy.overrides.iter().chain(&grants.grants).any(covered) {
        return Refusal::Allow;
    }

    // 4. Secret zones: no access at all, and their roots may not be moved.
    for t in paths() {
        if let Some(zone) = t.zones.secret {
            return deny(RuleId::SecretZone, t.path, Some(zone));
        }
    }
    if let Some((from, zone)) = moved_root(ZoneKind::Secret) {
        return deny(RuleId::ZoneRootRename, from, Some(zone));
    }

    // 5. Exec rules.
    if let Action::Exec { path, .. } = action {
        let applies = |rule: &ExecRule| {
            !rule
                .unless_run_by
                .iter()
                .any(|by| by.matches(&event.actor, &policy.trusted_tools))
        };
        if let Some(rule) = exec_rule(action, policy, applies) {
            return Refusal::Deny(reason::denial(
                RuleId::ExecRule,
                action,
                path,
                None,
                Some(rule),
            ));
        }
    }

    // 5b. Servers outside the tree that run commands or hold credentials for the user.
    if let Action::Connect {
        path,
        server: Some(server),
    } = action
    {
        if policy.command_servers.identifies(server) {
            return deny(RuleId::CommandServer, path, None);
        }
    }

    // 6. Readonly zones: no modification in, out, or over; their roots may not be moved.
    for t in paths().filter(|t| t.modifies) {
        if let Some(zone) = t.zones.readonly.filter(|zone| !zone.excepts(t.path)) {
            return deny(RuleId::ReadonlyZone, t.path, Some(zone));
        }
        // git changes a repository's config by writing config.lock and renaming it over the
        // config; the sensor checks that rename's new content for keys that run commands (and
        // adds a write of the config when it finds one). Any other change could set any key.
        let checked_config_rename = || {
            !crate::git::config::is_repository_config(t.path)
                || matches!(action, Action::Rename { to, .. } if to == t.path)
        };
        let written_by_its_tool = |zone: &PatternZone| {
            checked_config_rename()
                && policy.trusted_tools.iter().any(|tool| {
                    zone.except_tools.contains(&tool.name) && tool.identifies(&event.actor)
                })
        };
        // Deleting a repository deletes its config: that sets no key.
        let removes_config = crate::git::config::is_repository_config(t.path)
            && match action {
                Action::Unlink { path } => path == t.path,
                Action::Rename { from, .. } => from == t.path,
                _ => false,
            };
        if let Some(zone) = t
            .pattern
            .filter(|zone| !written_by_its_tool(zone) && !removes_config)
        {
            return Refusal::Deny(reason::denial(
                RuleId::ReadonlyZone,
                action,
                t.path,
                Some(Path::new(&zone.pattern)),
                None,
            ));
        }
    }
    let shadowed = |path: &Path, dir: &Path| {
        Refusal::Deny(reason::denial(
            RuleId::CommandShadow,
            action,
            path,
            Some(dir),
            None,
        ))
    };
    // 6b. The user's command directories: a new or changed program there named like a system
    // command runs instead of it (removing one shadows nothing).
    for t in paths().filter(|t| t.modifies) {
        let removes = match action {
            Action::Unlink { path } => path == t.path,
            Action::Rename { from, .. } => from == t.path,
            _ => false,
        };
        if let Some(dir) = policy.command_dirs.shadowed_by(t.path).filter(|_| !removes) {
            return shadowed(t.path, dir);
        }
    }
    if let Action::Rename {
        to,
        source_is_dir: true,
        ..
    } = action
    {
        if let Some(dir) = policy.command_dirs.at_or_below(to) {
            return shadowed(dir, dir);
        }
    }
    if let Some((from, zone)) = moved_root(ZoneKind::Readonly) {
        return deny(RuleId::ZoneRootRename, from, Some(zone));
    }
    if let Action::Rename {
        to,
        source_is_dir: true,
        ..
    } = action
    {
        if let Some(zone) = policy.readonly_patterns.fixed_part_at_or_below(to) {
            return Refusal::Deny(reason::denial(
                RuleId::ReadonlyZone,
                action,
                to,
                Some(Path::new(&zone.pattern)),
                None,
            ));
        }
    }

    // 7. Trusted tools inside their scope.
    let protected_paths = || paths().filter(|t| t.protected.is_some());
    let trusted = protected_paths().next().is_some()
        && policy.trusted_tools.iter().any(|tool| {
            protected_paths().all(|t| tool.covers(t.path)) && tool.identifies(&event.actor)
        });
    Refusal::ProtectedRules { trusted }
}

/// 2b. What would make the sandbox itself lend power outside the agent's tree, or go below
/// every file system: never overridden, denied in audit mode too (see [`RuleId::is_containment`]).
fn containment(action: &Action) -> Option<Denial> {
    let (rule, path) = match action {
        Action::Trace { target_pid, path } => (
            RuleId::OutsideProcess,
            path.clone()
                .unwrap_or_else(|| format!("/proc/{target_pid}").into()),
        ),
        Action::Device { path, .. } => (RuleId::Device, path.clone()),
        Action::Namespace { what } => (RuleId::NestedSandbox, format!("namespace:{what}").into()),
        _ => return None,
    };
    Some(reason::denial(rule, action, &path, None, None))
}

fn grant_covers(grant: &Grant, path: &Path, policy: &Policy) -> bool {
    let ci = policy.case_insensitive();
    is_within(&match_key(path, ci), &match_key(&grant.path, ci))
}

fn basename(path: &Path) -> &str {
    path.file_name().and_then(|n| n.to_str()).unwrap_or("")
}
