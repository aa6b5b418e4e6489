//! `agent-guard policy check|show|default|schema`.

use std::path::PathBuf;

use clap::Subcommand;

use super::load_policy;
use crate::policy::{self, PolicyFile, DEFAULT_POLICY_JSON};

#[derive(Subcommand, Debug)]
pub enum PolicyCommand {
    /// Validate a policy file (default: the one in force) and print its warnings.
    Check {
        /// The policy file to check [default: the one in force].
        file: Option<PathBuf>,
        /// Print the result as one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Print the effective policy after loading and normalizing (defaults filled in, paths
    /// expanded and resolved).
    Show {
        /// The policy file (default: $AGENT_GUARD_POLICY, ~/.config/agent-guard/policy.json,
        /// /etc/agent-guard/policy.json, the embedded default).
        #[arg(long)]
        policy: Option<PathBuf>,
    },
    /// Print the embedded default policy.
    Default,
    /// Print the JSON Schema of the policy file.
    Schema,
}

pub fn run(cmd: PolicyCommand) -> anyhow::Result<i32> {
    match cmd {
        PolicyCommand::Check { file, json } => check(file, json),
        PolicyCommand::Show { policy } => {
            let loaded = load_policy(policy.as_deref())?;
            println!(
                "{}",
                serde_json::to_string_pretty(&loaded.policy.normalized)?
            );
            Ok(0)
        }
        PolicyCommand::Default => {
            print!("{DEFAULT_POLICY_JSON}");
            Ok(0)
        }
        PolicyCommand::Schema => {
            let schema = schemars::schema_for!(PolicyFile);
            println!("{}", serde_json::to_string_pretty(&schema)?);
            Ok(0)
        }
    }
}

fn check(file: Option<PathBuf>, json: bool) -> anyhow::Result<i32> {
    let loaded = match load_policy(file.as_deref()) {
        Ok(l) => l,
        Err(e) => {
            let error = format!("{e:#}");
            if json {
                println!("{}", serde_json::json!({"valid": false, "error": error}));
            } else {
                eprintln!("agent-guard: invalid policy: {error}");
            }
            return Ok(1);
        }
    };
    let p = &loaded.policy;
    if json {
        let out = serde_json::json!({
            "valid": true,
            "source": p.source,
            "version": p.version,
            "warnings": p.warnings,
            "protected_zones": p.zones.of_kind(policy::ZoneKind::Protected).map(|z| serde_json::json!({
                "path": z.root,
                "on_destroy": z.on_destroy.as_str(),
            })).collect::<Vec<_>>(),
            "snapshots": {
                "max_age_secs": p.snapshots.max_age,
                "max_size_bytes": p.snapshots.max_bytes,
                "max_copy_bytes": p.snapshots.max_copy_bytes,
                "max_tree_copy_bytes": p.snapshots.max_tree_bytes,
                "brake": {
                    "files": p.snapshots.brake.files,
                    "bytes": p.snapshots.brake.bytes,
                    "window_secs": p.snapshots.brake.window_secs,
                },
            },
        });
        println!("{out}");
    } else {
        let zones = |k| p.zones.of_kind(k).count();
        println!(
            "{}: valid (version {}, mode {}): {} protected, {} readonly, {} secret zones; {} trusted tools; {} exec rules",
            p.source,
            p.version,
            p.mode.as_str(),
            zones(policy::ZoneKind::Protected),
            zones(policy::ZoneKind::Readonly),
            zones(policy::ZoneKind::Secret),
            p.trusted_tools.len(),
            p.exec_rules.len()
        );
        explain_destruction(p);
        for w in &p.warnings {
            println!("warning: {w}");
        }
    }
    Ok(0)
}

/// What each protected zone does with an agent's destruction, and the snapshot store's limits
/// when a zone keeps.
fn explain_destruction(p: &policy::Policy) {
    for zone in p.zones.of_kind(policy::ZoneKind::Protected) {
        let what = match zone.on_destroy {
            policy::OnDestroy::Keep => "keep: an agent's deletes, moves out, overwrites and truncations happen once what they destroy is in the snapshot store (`agent-guard undo` restores it)",
            policy::OnDestroy::Deny => "deny: an agent's deletes, moves out and overwrites are refused (EPERM)",
        };
        println!("protected {}: {what}", zone.root.display());
    }
    if p.keeps() {
        let s = &p.snapshots;
        let mb = |b: u64| b / (1024 * 1024);
        let age = |secs: u64| match secs {
            s if s % 86_400 == 0 => format!("{}d", s / 86_400),
            s if s % 3_600 == 0 => format!("{}h", s / 3_600),
            s => format!("{s}s"),
        };
        println!(
            "snapshots: kept {}, store up to {} MB, files copied up to {} MB (directory trees moved out up to {} MB); the brake stops an agent session at {} files or {} MB removed within {}s",
            age(s.max_age),
            mb(s.max_bytes),
            mb(s.max_copy_bytes),
            mb(s.max_tree_bytes),
            s.brake.files,
            mb(s.brake.bytes),
            s.brake.window_secs
        );
    }
}
