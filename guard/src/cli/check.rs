//! `agent-guard check`: dry-run one decision against the policy.
//!
//! Exit 0 when the operation would be allowed (or only audited), 1 when it would be denied,
//! 2 on bad input. Nothing is executed or changed; the file system is only read to learn
//! whether a rename's destination exists.

use std::path::PathBuf;

use anyhow::bail;
use clap::Args;

use super::load_policy;
use crate::engine::{
    decide, Action, Actor, Attribution, Event, Grants, OpKind, OpenFlags, Verdict,
};
use crate::paths::absolute;

#[derive(Args, Debug)]
pub struct CheckArgs {
    /// The operation: exec, unlink, rmdir, rename, open, truncate, link, create.
    #[arg(long)]
    pub op: OpKind,
    /// The path operated on (relative paths are taken from the current directory).
    #[arg(long)]
    pub path: PathBuf,
    /// The destination of a rename or link.
    #[arg(long)]
    pub dest: Option<PathBuf>,
    /// Decide as a process attributed to this agent (without it: as a human, always allowed).
    #[arg(long)]
    pub as_agent: Option<String>,
    /// The acting process's real executable (trusted tools are identified by it).
    #[arg(long)]
    pub exe: Option<PathBuf>,
    /// For open: ask for write access.
    #[arg(long)]
    pub write: bool,
    /// For open: create the file.
    #[arg(long)]
    pub create: bool,
    /// For open: truncate the file.
    #[arg(long)]
    pub truncate: bool,
    /// For rename: the destination exists (default: look on disk).
    #[arg(long)]
    pub dest_exists: bool,
    /// The policy file (default: $AGENT_GUARD_POLICY, ~/.config/agent-guard/policy.json,
    /// /etc/agent-guard/policy.json, the embedded default).
    #[arg(long)]
    pub policy: Option<PathBuf>,
    /// Print the decision as one JSON object.
    #[arg(long)]
    pub json: bool,
    /// For exec: the arguments, `argv[0]` first (`-- git clean -fdx`).
    #[arg(last = true)]
    pub argv: Vec<String>,
}

pub fn run(args: &CheckArgs) -> anyhow::Result<i32> {
    // Bad input is an error of main's (exit 2; JSON with --json).
    let action = action_of(args)?;
    let loaded = load_policy(args.policy.as_deref())?;
    let exe = args.exe.clone().map(|e| absolute(&e)).unwrap_or_default();
    let name = exe
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let actor = Actor {
        pid: 0,
        exe,
        argv0: name.clone(),
        comm: name,
        ..Actor::default()
    };
    let attribution = match &args.as_agent {
        Some(agent) => Attribution::agent(agent.clone(), 0),
        None => Attribution::Human,
    };
    let event = Event { actor, action };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let verdict = decide(
        &event,
        &attribution,
        &loaded.policy,
        &Grants::default(),
        now,
    );
    print_verdict(&verdict, &event, &attribution, args.json)?;
    Ok(if verdict.allows() { 0 } else { 1 })
}

fn action_of(args: &CheckArgs) -> anyhow::Result<Action> {
    let path = absolute(&args.path);
    let dest = args.dest.as_deref().map(absolute);
    let need_dest = || match &dest {
        Some(d) => Ok(d.clone()),
        None => bail!("--op {} needs --dest: the destination path", args.op),
    };
    Ok(match args.op {
        OpKind::Exec => {
            let argv = if args.argv.is_empty() {
                vec![path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default()]
            } else {
                args.argv.clone()
            };
            Action::Exec {
                path,
                argv,
                env: Vec::new(),
            }
        }
        OpKind::Unlink => Action::Unlink { path },
        OpKind::Rmdir => Action::Rmdir { path },
        OpKind::Rename => {
            let to = need_dest()?;
            let dest_exists = args.dest_exists || std::fs::symlink_metadata(&to).is_ok();
            let source_is_dir = std::fs::symlink_metadata(&path).is_ok_and(|m| m.is_dir());
            Action::Rename {
                from: path,
                to,
                dest_exists,
                source_is_dir,
            }
        }
        OpKind::Open => Action::Open {
            path,
            flags: OpenFlags {
                write: args.write,
                create: args.create,
                truncate: args.truncate,
            },
        },
        OpKind::Truncate => Action::Truncate { path },
        OpKind::Link => Action::Link {
            from: path,
            to: need_dest()?,
        },
        OpKind::Create => Action::Create {
            path,
            kind: crate::vocab::NodeKind::File,
        },
        OpKind::SetAttr => Action::SetAttr { path },
        OpKind::Signal | OpKind::Trace | OpKind::Namespace => bail!(
            "--op {} cannot be checked: it concerns processes, not paths",
            args.op
        ),
        OpKind::Connect => Action::Connect { path, server: None },
    })
}

fn print_verdict(
    verdict: &Verdict,
    event: &Event,
    attribution: &Attribution,
    json: bool,
) -> anyhow::Result<()> {
    let who = match attribution {
        Attribution::Agent(a) => format!("agent {:?}", a.name),
        Attribution::Human => "a human (not agent-attributed)".to_string(),
    };
    if json {
        let out = serde_json::json!({
            "decision": verdict.decision().as_str(),
            "op": event.action.kind(),
            "path": event.action.path(),
            "dest": event.action.dest(),
            "actor": who,
            "denial": verdict.denial(),
            "keep": verdict.keep().map(|k| serde_json::json!({
                "rule": k.rule,
                "zone": k.zone,
                "items": k.items.iter().map(|i| serde_json::json!({
                    "path": i.path, "what": i.what.as_str(),
                })).collect::<Vec<_>>(),
            })),
        });
        println!("{out}");
        return Ok(());
    }
    let op = event.action.kind();
    let path = event
        .action
        .path()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    match verdict {
        Verdict::Allow => println!("allow: {op} {path} by {who}"),
        Verdict::Keep(k) | Verdict::WouldKeep(k) => {
            let word = if matches!(verdict, Verdict::Keep(_)) {
                "keep (allowed once what it destroys is in the snapshot store)"
            } else {
                "would keep (allowed without a snapshot in audit mode)"
            };
            println!("{word}: {op} {path} by {who}");
            println!("  rule:   {}", k.rule);
            println!("  zone:   {}", k.zone.display());
            for item in &k.items {
                println!(
                    "  keeps:  {} of {}",
                    item.what.as_str(),
                    item.path.display()
                );
            }
        }
        Verdict::Deny(d) | Verdict::Audit(d) => {
            let word = if matches!(verdict, Verdict::Deny(_)) {
                "deny"
            } else {
                "audit (would deny; allowed in audit mode)"
            };
            println!("{word}: {op} {path} by {who}");
            println!("  rule:   {}", d.rule);
            if let Some(zone) = &d.zone {
                println!("  zone:   {}", zone.display());
            }
            println!("  reason: {}", d.reason);
            println!("  hint:   {}", d.hint);
        }
    }
    Ok(())
}
