//! `explain_path`: what the policy says about a path, zone by zone, and what the engine would
//! answer this agent for each operation on it (approved grants counted).

use super::*;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ExplainArgs {
    path: PathBuf,
    op: Option<String>,
    #[serde(default)]
    write: bool,
    dest: Option<PathBuf>,
    #[serde(default)]
    argv: Vec<String>,
}

pub(super) fn explain_path(
    ctx: &ToolContext,
    args: ExplainArgs,
    now: u64,
) -> Result<Value, ToolError> {
    let bad = |message: String| ToolError::BadArguments {
        tool: EXPLAIN_PATH.into(),
        message,
    };
    let loaded = ctx.load_policy()?;
    let path = resolve_path(&args.path, &ctx.cwd);
    let dest = args.dest.as_deref().map(|d| resolve_path(d, &ctx.cwd));
    let actions: Vec<(String, Action)> = match args.op.as_deref() {
        None => default_actions(&path),
        Some(op) => {
            let op: OpKind = op.parse().map_err(|_| {
                bad(format!(
                    "op: unknown operation {op:?}: expected exec, unlink, rmdir, rename, open, truncate, link or create"
                ))
            })?;
            vec![named_action(op, &path, dest, args.write, args.argv).map_err(bad)?]
        }
    };
    // The grants in force count: an approved override shows as allowed.
    let grants = GrantStore::new(ctx.locations.clone())
        .load()
        .map(|file| file.to_engine(now))
        .unwrap_or_default();
    let agent_name = ctx
        .agent
        .as_deref()
        .map(|a| a.rsplit_once(':').map_or(a, |(name, _)| name))
        .unwrap_or("agent")
        .to_string();
    let attribution = Attribution::agent(agent_name, 0);
    let verdicts: Vec<Value> = actions
        .into_iter()
        .map(|(label, action)| {
            let event = Event {
                actor: Actor::default(),
                action,
            };
            verdict_json(
                &label,
                &decide(&event, &attribution, &loaded.policy, &grants, now),
            )
        })
        .collect();
    let hits = loaded.policy.zones.lookup(&path);
    let zones: Vec<Value> = [
        ZoneKind::Guard,
        ZoneKind::Secret,
        ZoneKind::Readonly,
        ZoneKind::Protected,
    ]
    .into_iter()
    .filter_map(|kind| {
        hits.get(kind).map(|z| {
            let mut v =
                json!({"kind": kind.as_str(), "root": printable(&z.root.display().to_string())});
            if kind == ZoneKind::Protected && z.excepts(&path) {
                v["excepted"] = json!(true);
            }
            v
        })
    })
    .collect();
    Ok(json!({
        "path": printable(&path.display().to_string()),
        "policy": loaded.file.as_deref().map_or("the built-in default".to_string(), |f| printable(&f.display().to_string())),
        "zones": zones,
        "operations": verdicts,
    }))
}

/// The operations asked about when none is named.
fn default_actions(path: &Path) -> Vec<(String, Action)> {
    let open = |write| Action::Open {
        path: path.to_path_buf(),
        flags: OpenFlags {
            write,
            create: false,
            truncate: false,
        },
    };
    vec![
        ("read".into(), open(false)),
        ("write".into(), open(true)),
        (
            "create".into(),
            Action::Create {
                path: path.to_path_buf(),
                kind: crate::vocab::NodeKind::File,
            },
        ),
        (
            "truncate".into(),
            Action::Truncate {
                path: path.to_path_buf(),
            },
        ),
        (
            "delete".into(),
            Action::Unlink {
                path: path.to_path_buf(),
            },
        ),
        (
            "rmdir".into(),
            Action::Rmdir {
                path: path.to_path_buf(),
            },
        ),
    ]
}

fn named_action(
    op: OpKind,
    path: &Path,
    dest: Option<PathBuf>,
    write: bool,
    argv: Vec<String>,
) -> Result<(String, Action), String> {
    let path = path.to_path_buf();
    let need_dest = || {
        dest.clone()
            .ok_or(format!("dest: op {op} needs the destination path"))
    };
    let action = match op {
        OpKind::Exec => {
            let argv = if argv.is_empty() {
                vec![path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default()]
            } else {
                argv
            };
            Action::Exec {
                path,
                argv,
                env: Vec::new(),
            }
        }
        OpKind::Open => Action::Open {
            path,
            flags: OpenFlags {
                write,
                create: false,
                truncate: false,
            },
        },
        OpKind::Unlink => Action::Unlink { path },
        OpKind::Rmdir => Action::Rmdir { path },
        OpKind::Truncate => Action::Truncate { path },
        OpKind::Create => Action::Create {
            path,
            kind: crate::vocab::NodeKind::File,
        },
        OpKind::Rename => {
            let to = need_dest()?;
            Action::Rename {
                dest_exists: std::fs::symlink_metadata(&to).is_ok(),
                source_is_dir: std::fs::symlink_metadata(&path).is_ok_and(|m| m.is_dir()),
                from: path,
                to,
            }
        }
        OpKind::Link => Action::Link {
            from: path,
            to: need_dest()?,
        },
        other => {
            return Err(format!(
                "op: {other} concerns processes, not paths: expected exec, unlink, rmdir, rename, open, truncate, link or create"
            ))
        }
    };
    let label = match (&action, write) {
        (Action::Open { .. }, true) => "write".to_string(),
        (Action::Open { .. }, false) => "read".to_string(),
        _ => op.as_str().to_string(),
    };
    Ok((label, action))
}

fn verdict_json(label: &str, verdict: &Verdict) -> Value {
    let mut v = json!({"op": label, "decision": verdict.decision().as_str()});
    let (allowed, note) = match verdict {
        Verdict::Allow => (true, None),
        Verdict::Keep(_) => (true, Some("allowed: agent-guard keeps a copy of what it destroys (`agent-guard undo` lets the user restore it)")),
        Verdict::WouldKeep(_) => (true, Some("allowed (audit mode)")),
        Verdict::Audit(_) => (true, Some("allowed in audit mode, but recorded as an operation the policy would block")),
        Verdict::Deny(_) => (false, None),
    };
    v["allowed"] = json!(allowed);
    if let Some(note) = note {
        v["note"] = json!(note);
    }
    if let Some(d) = verdict.denial() {
        v["rule"] = json!(printable(d.rule.as_str()));
        v["reason"] = json!(printable(&d.reason));
        if !d.hint.is_empty() {
            v["override_command"] = json!(printable(&d.hint));
        }
    }
    v
}
