//! `agent-guard status`: the policy in force, the running supervisors or daemon with their
//! counters, active grants, pending override requests, and where the logs are.

use std::path::Path;

use clap::Args;
use serde::Serialize;

use super::common::load_policy;
use crate::paths::{process_env, Locations};
use crate::runtime::{status_dir, RuntimeStatus};

#[derive(Args, Debug)]
pub struct StatusArgs {
    #[arg(long)]
    pub policy: Option<std::path::PathBuf>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Serialize)]
struct Status {
    policy_source: String,
    policy_version: Option<String>,
    policy_error: Option<String>,
    policy_warnings: Vec<String>,
    mode: Option<String>,
    state_dir: String,
    denials_log: String,
    audit_db: String,
    running: Vec<RuntimeStatus>,
    active_grants: usize,
    pending_requests: usize,
}

pub fn run(args: &StatusArgs) -> anyhow::Result<i32> {
    let locations = Locations::for_user(&process_env);
    let (source, version, error, warnings, mode) = match load_policy(args.policy.as_deref()) {
        Ok(l) => (
            l.policy.source.clone(),
            Some(l.policy.version.clone()),
            None,
            l.policy.warnings.clone(),
            Some(l.policy.mode.as_str().to_string()),
        ),
        Err(e) => ("?".to_string(), None, Some(format!("{e:#}")), vec![], None),
    };
    let now = crate::runtime::unix_secs(std::time::SystemTime::now());
    let grants = crate::overrides::GrantStore::new(locations.clone())
        .active(now)
        .map(|g| g.grants.len())
        .unwrap_or(0);
    let pending = crate::overrides::load_pending(&locations)
        .map(|p| p.len())
        .unwrap_or(0);
    let status = Status {
        policy_source: source,
        policy_version: version,
        policy_error: error,
        policy_warnings: warnings,
        mode,
        state_dir: locations.state_dir.display().to_string(),
        denials_log: locations.denials.display().to_string(),
        audit_db: locations.audit_db.display().to_string(),
        running: running(&locations),
        active_grants: grants,
        pending_requests: pending,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&status)?);
        return Ok(0);
    }
    print_human(&status);
    Ok(0)
}

/// Status files of sensors that are still alive; stale ones (a crashed supervisor) are skipped.
fn running(locations: &Locations) -> Vec<RuntimeStatus> {
    let Ok(entries) = std::fs::read_dir(status_dir(locations)) else {
        return vec![];
    };
    let mut out: Vec<RuntimeStatus> = entries
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
        .filter_map(|e| std::fs::read(e.path()).ok())
        .filter_map(|bytes| serde_json::from_slice::<RuntimeStatus>(&bytes).ok())
        .filter(|s| {
            Path::new(&format!("/proc/{}", s.pid)).exists() || !Path::new("/proc/self").exists()
        })
        .collect();
    out.sort_by_key(|s| s.started);
    out
}

fn print_human(s: &Status) {
    match (&s.policy_version, &s.policy_error) {
        (Some(v), _) => println!(
            "policy:    {} (version {v}, mode {})",
            s.policy_source,
            s.mode.as_deref().unwrap_or("?")
        ),
        (None, Some(e)) => println!("policy:    INVALID: {e}"),
        _ => {}
    }
    for w in &s.policy_warnings {
        println!("           warning: {w}");
    }
    println!("state:     {}", s.state_dir);
    println!("denials:   {}", s.denials_log);
    println!("audit db:  {}", s.audit_db);
    println!(
        "overrides: {} active grant(s), {} pending request(s)",
        s.active_grants, s.pending_requests
    );
    if s.running.is_empty() {
        println!("running:   no supervisor or daemon is running for this state directory");
    }
    for r in &s.running {
        println!(
            "running:   pid {} (mode {}, policy {} version {}, {} reload(s){})",
            r.pid,
            r.mode.as_str(),
            r.policy_source,
            r.policy_version,
            r.reloads,
            r.last_reload_error
                .as_ref()
                .map(|e| format!(", last reload FAILED: {e}"))
                .unwrap_or_default()
        );
        println!(
            "           {} decisions, {} denials, {} audits, {} deadline misses; dropped: {} denial records, {} audit records",
            r.decisions, r.denials, r.audits, r.deadline_misses, r.dropped_denials, r.dropped_audit_records
        );
    }
}
