//! Rule 8 of the table: what an agent's operation destroys in a protected zone, and whether it
//! is kept (`on_destroy: keep`) or refused (`on_destroy: deny`). Pure, as the rest of `decide`.

use std::path::Path;

use super::{reason, touches, Judged, Keeping, Touch};
use crate::policy::{OnDestroy, Policy, Zone, ZoneKind};
use crate::vocab::{Action, Event, Keep, KeepItem, KeepWhat, RuleId};

/// One thing a destructive operation does to a protected zone (rule 8).
struct Destruction<'a> {
    rule: RuleId,
    /// The path the rule is about (the denial's path, the kept item's path).
    path: &'a Path,
    zone: &'a Zone,
    /// What a zone that keeps keeps; `None`: a zone that keeps lets it happen as it is.
    keep: Option<KeepWhat>,
    /// Whether a zone that denies refuses it (an atomic save, a truncation, a first write and a
    /// hard link out are allowed there, as they always were).
    denied_there: bool,
}

/// Rule 8: protected zones. Agents may create, write and rename within a zone; what destroys or
/// moves out (and a file's name left by a rename within the zone) is kept first where the zone
/// keeps, refused where it denies.
pub(super) fn protected(event: &Event, policy: &Policy, trusted: bool, keeping: Keeping) -> Judged {
    let action = &event.action;
    let touched = touches(action, policy);
    let deny = |rule, path: &Path, zone: &Zone| {
        Judged::Deny(reason::denial(
            rule,
            action,
            path,
            Some(zone.root.as_path()),
            None,
        ))
    };
    // A rename of a zone's root (or an ancestor) would move the zone: refused in every zone, as
    // a trusted tool's always was allowed.
    if let Action::Rename { from, .. } = action {
        if let Some(zone) = policy.zones.root_at_or_below(from, ZoneKind::Protected) {
            if !trusted {
                return deny(RuleId::ZoneRootRename, from, zone);
            }
        }
    }
    let mut keeps: Vec<(KeepItem, &Zone, RuleId)> = Vec::new();
    for d in destructions(action, &touched) {
        let keeps_here = d.zone.on_destroy == OnDestroy::Keep && keeping == Keeping::Supported;
        match (keeps_here, d.keep) {
            (true, Some(what)) => keeps.push((
                KeepItem {
                    path: d.path.to_path_buf(),
                    what,
                },
                d.zone,
                d.rule,
            )),
            (true, None) => {}
            (false, _) if d.denied_there && !trusted => return deny(d.rule, d.path, d.zone),
            (false, _) => {}
        }
    }
    let Some((_, zone, rule)) = keeps.first() else {
        return Judged::Allow;
    };
    let (zone, rule) = (zone.root.clone(), rule.clone());
    Judged::Keep(Keep {
        items: keeps.into_iter().map(|(item, _, _)| item).collect(),
        zone,
        rule,
    })
}

/// What `action` destroys in protected zones, outside their carve-outs.
fn destructions<'a>(action: &'a Action, touched: &[Option<Touch<'a>>; 2]) -> Vec<Destruction<'a>> {
    let same_zone = |a: Option<&Zone>, b: &Zone| a.is_some_and(|a| std::ptr::eq(a, b));
    let mut out = Vec::new();
    match (action, touched) {
        (Action::Unlink { path }, [Some(t), _]) => {
            out.extend(t.protected.map(|zone| Destruction {
                rule: RuleId::ProtectedDelete,
                path,
                zone,
                keep: Some(KeepWhat::Entry),
                denied_there: true,
            }))
        }
        (Action::Rmdir { path }, [Some(t), _]) => out.extend(t.protected.map(|zone| Destruction {
            rule: RuleId::ProtectedDelete,
            path,
            zone,
            keep: Some(KeepWhat::Dir),
            denied_there: true,
        })),
        (
            Action::Rename {
                from,
                to,
                dest_exists,
                source_is_dir,
            },
            [Some(source), Some(dest)],
        ) => {
            if let Some(zone) = source.protected {
                // Into a carve-out (e.g. target/) counts as out: it would be deletable there.
                if !same_zone(dest.protected, zone) {
                    out.push(Destruction {
                        rule: RuleId::ProtectedMoveOut,
                        path: from,
                        zone,
                        keep: Some(if *source_is_dir {
                            KeepWhat::Tree
                        } else {
                            KeepWhat::Content
                        }),
                        denied_there: true,
                    });
                }
            }
            if let (Some(zone), true) = (dest.protected, *dest_exists) {
                let from_inside = same_zone(source.protected, zone);
                out.push(Destruction {
                    rule: if from_inside {
                        RuleId::ProtectedReplace
                    } else {
                        RuleId::ProtectedClobber
                    },
                    path: to,
                    zone,
                    keep: Some(KeepWhat::Entry),
                    denied_there: !from_inside,
                });
            }
            // A file renamed within its zone: its old name is kept (after a replaced
            // destination, whose rule the keep names), so `sed -i.bak f` is undone at `f`. A
            // directory's contents keep their names below it.
            if let (Some(zone), false) = (source.protected, *source_is_dir) {
                if same_zone(dest.protected, zone) && from != to {
                    out.push(Destruction {
                        rule: RuleId::ProtectedRename,
                        path: from,
                        zone,
                        keep: Some(KeepWhat::Renamed),
                        denied_there: false,
                    });
                }
            }
        }
        (Action::Link { from, .. }, [Some(source), Some(dest)]) => {
            if let Some(zone) = source.protected {
                if !same_zone(dest.protected, zone) {
                    out.push(Destruction {
                        rule: RuleId::ProtectedLinkOut,
                        path: from,
                        zone,
                        keep: Some(KeepWhat::Content),
                        denied_there: false,
                    });
                }
            }
        }
        (Action::Truncate { path }, [Some(t), _]) => {
            out.extend(t.protected.map(|zone| Destruction {
                rule: RuleId::ProtectedTruncate,
                path,
                zone,
                keep: Some(KeepWhat::Content),
                denied_there: false,
            }))
        }
        (Action::Open { path, flags }, [Some(t), _]) if flags.write || flags.truncate => out
            .extend(t.protected.map(|zone| Destruction {
                rule: if flags.truncate {
                    RuleId::ProtectedTruncate
                } else {
                    RuleId::ProtectedFirstWrite
                },
                path,
                zone,
                keep: Some(if flags.truncate {
                    KeepWhat::Content
                } else {
                    KeepWhat::FirstWrite
                }),
                denied_there: false,
            })),
        _ => {}
    }
    out
}
