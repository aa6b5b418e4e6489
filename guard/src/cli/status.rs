//! `agent-guard status`: the policy in force, the running supervisors or daemon with their
//! counters, active grants, pending override requests, and where the logs are. The report is
//! [`crate::runtime::status::StatusReport`].

use clap::Args;

use crate::paths::{process_env, Locations};
use crate::policy::load_for_user;
use crate::runtime::status::StatusReport;

#[derive(Args, Debug)]
pub struct StatusArgs {
    /// The policy file (default: $AGENT_GUARD_POLICY, ~/.config/agent-guard/policy.json,
    /// /etc/agent-guard/policy.json, the embedded default).
    #[arg(long)]
    pub policy: Option<std::path::PathBuf>,
    /// Print the report as one JSON object.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: &StatusArgs) -> anyhow::Result<i32> {
    let locations = Locations::for_user(&process_env);
    let loaded = load_for_user(args.policy.as_deref(), &process_env)
        .map_err(|e| format!("{:#}", anyhow::Error::new(e)));
    let report = StatusReport::gather(&locations, loaded.as_ref().map_err(Clone::clone));
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        report.write_human(&mut std::io::stdout().lock())?;
    }
    Ok(0)
}
