//! `agent-guard policy check|show|default|schema`.

use std::path::PathBuf;

use clap::Subcommand;

use super::load_policy;
use crate::policy::{self, PolicyFile, DEFAULT_POLICY_JSON};

#[derive(Subcommand, Debug)]
pub enum PolicyCommand {
    /// Validate a policy file (default: the one in force) and print its warnings.
    Check {
        file: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Print the effective policy after loading and normalizing (defaults filled in, paths
    /// expanded and resolved).
    Show {
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
        for w in &p.warnings {
            println!("warning: {w}");
        }
    }
    Ok(0)
}
