//! What the engine says about keeping beyond the decision table: the brake on mass destruction
//! (a pure function of the session's recent count, which the runtime keeps), and the refusal a
//! sensor gives when it could not keep what an operation destroys.
//!
//! Pure, like the rest of the engine: counts and times are passed in.

use std::path::{Component, Path};

use super::reason::request_command;
use crate::policy::{OnDestroy, Policy};
use crate::vocab::{human_bytes, shell_quote, Action, Denial, Keep, KeepFailure, RuleId};

/// What one agent session has deleted or moved out of its zones within the brake's window, and
/// whether the brake is on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BrakeState {
    pub files: u64,
    pub bytes: u64,
    /// The brake went on and holds until this time (milliseconds since the epoch), unless a
    /// human lifts it first.
    pub on_until_ms: Option<i64>,
}

/// Whether `keep` must wait for the human: the session's brake is on, or the count is at the
/// policy's limit already. Only what takes names out of the zones counts ([`Keep::removes_names`]);
/// git's object store is left out (git deletes loose objects by the thousand once it has
/// packed them: `git gc`, which it runs by itself).
pub fn brake(
    action: &Action,
    keep: &Keep,
    state: &BrakeState,
    policy: &Policy,
    now_ms: i64,
) -> Option<Denial> {
    if !keep.removes_names() || keep.items.iter().all(|i| in_git_objects(&i.path)) {
        return None;
    }
    let limits = policy.snapshots.brake;
    let on = state.on_until_ms.is_some_and(|until| now_ms < until);
    if !on && state.files < limits.files && state.bytes < limits.bytes {
        return None;
    }
    let path = &keep.items[0].path;
    let op = action.kind();
    // What to ask for: the directory being emptied (the file itself when that is a zone root).
    let ask_for = path
        .parent()
        .filter(|dir| *dir != keep.zone.as_path() && dir.parent().is_some())
        .unwrap_or(path);
    let reason = format!(
        "agent-guard paused this {op} of {}: this agent session has deleted or moved out {} files ({}) of the protected zones within {}s, the most the policy allows at once (snapshots.brake); everything removed so far is kept and the user can restore it with `agent-guard undo`; stop removing files and tell the user what you were doing: they can approve the override below to let you go on in {}, or you may go on after {}s",
        path.display(),
        state.files,
        human_bytes(state.bytes),
        limits.window_secs,
        ask_for.display(),
        limits.window_secs,
    );
    let hint = format!(
        "agent-guard override request {} --op unlink,rmdir,rename --reason {}",
        shell_quote(&ask_for.display().to_string()),
        shell_quote("<why the user wants these removed>")
    );
    Some(Denial {
        rule: RuleId::DestructionBrake,
        op,
        path: path.clone(),
        dest: action.dest().map(Path::to_path_buf),
        zone: Some(keep.zone.clone()),
        reason,
        hint,
    })
}

/// The refusal of an operation whose destruction of `path` could not be kept.
pub fn keep_refused(action: &Action, keep: &Keep, path: &Path, failure: &KeepFailure) -> Denial {
    let op = action.kind();
    let p = path.display();
    let what = match action {
        Action::Unlink { .. } | Action::Rmdir { .. } => "deleting",
        Action::Rename { .. } => "moving or replacing",
        Action::Link { .. } => "linking",
        Action::Truncate { .. } => "truncating",
        Action::Open { flags, .. } if flags.truncate => "truncating",
        _ => "changing",
    };
    let instead = match (failure, action) {
        (KeepFailure::StoreFull { .. }, _) => {
            "ask the user to free room with `agent-guard undo purge` (or to raise the limit); until then nothing more can be destroyed in the zone"
        }
        (KeepFailure::TooLarge { .. }, Action::Truncate { .. } | Action::Open { .. }) => {
            "delete the file first (a delete is kept without a copy) and write it anew, or request an override"
        }
        (KeepFailure::TooLarge { .. } | KeepFailure::TreeTooLarge { .. }, _) => {
            "copy it instead of moving it (or move it within the zone), or request an override"
        }
        _ => "request an override if the user wants it done anyway",
    };
    Denial {
        rule: RuleId::KeepFailed,
        op,
        path: path.to_path_buf(),
        dest: action.dest().map(Path::to_path_buf),
        zone: Some(keep.zone.clone()),
        reason: format!(
            "agent-guard blocked {what} {p}: in the protected zone {} what an agent destroys is kept first so the user can undo it, and this could not be kept: {failure}; {instead}",
            keep.zone.display()
        ),
        hint: request_command(path, op),
    }
}

/// Whether what an agent destroys at `path` is kept: it lies in a protected zone that keeps,
/// outside the zone's carve-outs. Sensors note the names a session makes only there.
pub fn keeps_at(policy: &Policy, path: &Path) -> bool {
    policy
        .zones
        .lookup(path)
        .protected
        .is_some_and(|zone| zone.on_destroy == OnDestroy::Keep && !zone.excepts(path))
}

/// Whether removing `path` counts for the brake: not inside a git object store.
pub fn counts_for_brake(path: &Path) -> bool {
    !in_git_objects(path)
}

/// Whether `path` lies in a git object store (`.../.git/objects/...`).
fn in_git_objects(path: &Path) -> bool {
    let names: Vec<_> = path
        .components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n),
            _ => None,
        })
        .collect();
    names
        .windows(2)
        .any(|w| w[0] == ".git" && w[1] == "objects")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{LoadContext, Platform};
    use crate::vocab::{KeepItem, KeepWhat};

    fn policy_of(json: &str) -> Policy {
        let ctx = LoadContext {
            platform: Platform::Linux,
            homes: vec!["/h".into()],
            guard_paths: vec![],
            agent_writable: vec![],
            unreadable: vec![],
            resolve_symlinks: false,
        };
        crate::policy::from_json(json, Path::new("p.json"), &ctx).unwrap()
    }

    fn policy() -> Policy {
        policy_of(
            r#"{"protected_zones": ["/h"], "snapshots": {"brake": {"files": 3, "mb": 1, "window": "60s"}}}"#,
        )
    }

    fn delete(path: &str) -> (Action, Keep) {
        (
            Action::Unlink { path: path.into() },
            Keep {
                items: vec![KeepItem {
                    path: path.into(),
                    what: KeepWhat::Entry,
                }],
                zone: "/h".into(),
                rule: RuleId::ProtectedDelete,
            },
        )
    }

    #[test]
    fn the_brake_holds_at_the_limit_and_until_its_time() {
        let policy = policy();
        let (action, keep) = delete("/h/src/a/f.rs");
        let state = |files, bytes, on_until_ms| BrakeState {
            files,
            bytes,
            on_until_ms,
        };
        assert!(brake(&action, &keep, &state(2, 0, None), &policy, 0).is_none());
        let d = brake(&action, &keep, &state(3, 0, None), &policy, 0).unwrap();
        assert_eq!(d.rule, RuleId::DestructionBrake);
        assert!(d.reason.contains("3 files"), "{}", d.reason);
        assert!(
            d.hint
                .starts_with("agent-guard override request /h/src/a --op unlink,rmdir,rename"),
            "{}",
            d.hint
        );
        assert!(brake(&action, &keep, &state(0, 2 << 20, None), &policy, 0).is_some());
        assert!(brake(&action, &keep, &state(0, 0, Some(10)), &policy, 9).is_some());
        assert!(brake(&action, &keep, &state(0, 0, Some(10)), &policy, 10).is_none());
        // git's packed-away loose objects and saves over files do not count.
        let (action, keep) = delete("/h/src/.git/objects/ab/cdef");
        assert!(brake(&action, &keep, &state(9, 0, Some(10)), &policy, 0).is_none());
        let (action, mut keep) = delete("/h/src/f");
        keep.rule = RuleId::ProtectedReplace;
        assert!(brake(&action, &keep, &state(9, 0, None), &policy, 0).is_none());
    }

    #[test]
    fn keeping_happens_in_zones_that_keep_outside_their_carve_outs() {
        let policy = policy_of(
            r#"{"protected_zones": [{"path": "/h/p", "except": ["**/target/**"]},
                                    {"path": "/h/d", "on_destroy": "deny"}]}"#,
        );
        assert!(keeps_at(&policy, Path::new("/h/p/src/a.rs")));
        assert!(keeps_at(&policy, Path::new("/h/p")));
        assert!(!keeps_at(&policy, Path::new("/h/p/target/debug/x")));
        assert!(!keeps_at(&policy, Path::new("/h/d/a.rs")));
        assert!(!keeps_at(&policy, Path::new("/tmp/a.rs")));
    }

    #[test]
    fn a_refusal_says_what_could_not_be_kept_and_what_to_do() {
        let (action, keep) = delete("/h/big");
        let full = KeepFailure::StoreFull {
            used: 2 << 30,
            limit: 2 << 30,
        };
        let d = keep_refused(&action, &keep, Path::new("/h/big"), &full);
        assert_eq!(d.rule, RuleId::KeepFailed);
        assert!(
            d.reason.contains("store is full") && d.reason.contains("agent-guard undo purge"),
            "{}",
            d.reason
        );
        let truncate = Action::Truncate {
            path: "/h/big".into(),
        };
        let large = KeepFailure::TooLarge {
            size: 100 << 20,
            limit: 64 << 20,
        };
        let d = keep_refused(&truncate, &keep, Path::new("/h/big"), &large);
        assert!(
            d.reason.contains("truncating /h/big") && d.reason.contains("delete the file first"),
            "{}",
            d.reason
        );
        assert_eq!(
            d.hint,
            "agent-guard override request /h/big --op truncate --reason '<why the user wants this>'"
        );
    }
}
