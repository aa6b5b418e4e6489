//! `agent-guard override request|list|approve|deny|revoke`: the human half of the closed loop.
//!
//! `request` is what an agent runs; `approve`, `deny` and `revoke` are a human's (refused when
//! `AGENT_GUARD_AGENT` is set, and, under the supervisor, by the kernel when an agent writes the
//! state dir); `list` is for both. Exit codes: 0 done, 1 refused or failed (a request the policy
//! does not allow, the rate limit, an agent approving, an unknown id), 2 bad input.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use serde_json::json;

use super::common::{load_policy, LoadedPolicy};
use crate::feedback::{latest_denial_of, read_denials, DenialRecord};
use crate::overrides::{
    self, file_request, human_duration, load_pending, now_unix, parse_ops, refuse_if_agent,
    resolve_path, validate, GrantStore, OverrideError, OverrideEventKind, RateLimit, Refusal,
    Request, RequestSpec, Requester, DEFAULT_TTL_SECS,
};
use crate::paths::{process_env, Locations};
use crate::policy::normalize::parse_duration;
use crate::vocab::time::rfc3339_from_secs as rfc3339;
use crate::vocab::{printable, shell_quote, RuleId};

#[derive(Subcommand, Debug)]
pub enum OverrideCommand {
    /// Ask a human for a temporary override of a denial (what an agent runs).
    Request(RequestArgs),
    /// Pending requests (with the denial behind each) and active grants.
    List(ListArgs),
    /// Approve a pending request: the grant is in force within a second (humans only).
    Approve(ApproveArgs),
    /// Turn a pending request down (humans only).
    Deny(IdArgs),
    /// Withdraw an active grant before it expires (humans only).
    Revoke(IdArgs),
}

#[derive(Args, Debug)]
pub struct RequestArgs {
    /// The file or directory (the whole subtree) to open up; relative to the current directory.
    /// May be left out with --denial.
    pub path: Option<PathBuf>,
    /// Operations, comma-separated: exec, unlink, rmdir, rename, open, truncate, link, create.
    #[arg(long)]
    pub op: Vec<String>,
    /// One sentence for the human: why the override is needed.
    #[arg(long)]
    pub reason: String,
    /// How long the grant should last (e.g. 10m; at most the policy's max_override_ttl).
    #[arg(long)]
    pub ttl: Option<String>,
    /// Take the path and operation from this denial record (see `agent-guard denials`).
    #[arg(long)]
    pub denial: Option<String>,
    #[arg(long)]
    pub policy: Option<PathBuf>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct ListArgs {
    #[arg(long)]
    pub policy: Option<PathBuf>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct ApproveArgs {
    /// The request id (`r-...`), as `override request` or `override list` printed it.
    pub id: String,
    /// Grant lifetime instead of the requested one (at most the policy's max_override_ttl).
    #[arg(long)]
    pub ttl: Option<String>,
    #[arg(long)]
    pub policy: Option<PathBuf>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct IdArgs {
    /// The request or grant id.
    pub id: String,
    #[arg(long)]
    pub json: bool,
}

pub fn run(cmd: OverrideCommand) -> anyhow::Result<i32> {
    let locations = Locations::for_user(&process_env);
    let result = match cmd {
        OverrideCommand::Request(args) => request(&args, &locations),
        OverrideCommand::List(args) => list(&args, &locations),
        OverrideCommand::Approve(args) => approve(&args, &locations),
        OverrideCommand::Deny(args) => decide(&args, &locations, OverrideEventKind::Deny),
        OverrideCommand::Revoke(args) => decide(&args, &locations, OverrideEventKind::Revoke),
    };
    match result {
        Ok(code) => Ok(code),
        Err(Failure::Refused(e)) => {
            // Messages can quote the agent-writable spool (a field name, an id): escape them.
            eprintln!("agent-guard: {}", printable(&e.to_string()));
            Ok(exit_code(&e))
        }
        Err(Failure::Other(e)) => Err(e),
    }
}

/// An override error (reported with its exit code), or anything else (reported by `main`).
enum Failure {
    Refused(OverrideError),
    Other(anyhow::Error),
}

impl From<OverrideError> for Failure {
    fn from(e: OverrideError) -> Self {
        Failure::Refused(e)
    }
}

impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Self {
        Failure::Other(e)
    }
}

fn exit_code(e: &OverrideError) -> i32 {
    match e {
        OverrideError::Refused(
            Refusal::NoOps
            | Refusal::UnknownOp(_)
            | Refusal::BadTtl(_)
            | Refusal::NotClean(_)
            | Refusal::EmptyReason
            | Refusal::ReasonTooLong(_)
            | Refusal::ReasonControl
            | Refusal::TtlZero,
        )
        | OverrideError::BadId { .. } => 2,
        _ => 1,
    }
}

fn parse_ttl(ttl: Option<&str>) -> Result<Option<u64>, OverrideError> {
    ttl.map(|t| parse_duration(t).ok_or_else(|| Refusal::BadTtl(t.to_string()).into()))
        .transpose()
}

fn print_json(value: &serde_json::Value) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

fn approve_command(id: &str) -> String {
    format!("agent-guard override approve {id}")
}

fn request(args: &RequestArgs, locations: &Locations) -> Result<i32, Failure> {
    let loaded = load_policy(args.policy.as_deref())?;
    let denial = match &args.denial {
        Some(id) => Some(find_denial(locations, id)?),
        None => None,
    };
    let raw_path = match (&args.path, &denial) {
        (Some(p), _) => p.clone(),
        (None, Some(d)) => PathBuf::from(&d.path),
        (None, None) => {
            return Err(anyhow::anyhow!(
                "override request: expected a PATH, or --denial ID to take it from a denial record"
            )
            .into())
        }
    };
    let ops = match (&args.op[..], &denial) {
        ([], Some(d)) => parse_ops(&[d.op.as_str().to_string()]),
        (ops, _) => parse_ops(ops),
    }
    .map_err(OverrideError::from)?;
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
    let spec = RequestSpec {
        path: resolve_path(&raw_path, &cwd),
        ops,
        reason: args.reason.clone(),
        ttl_secs: parse_ttl(args.ttl.as_deref())?.unwrap_or(DEFAULT_TTL_SECS),
    };
    let agent = process_env(overrides::AGENT_ENV).filter(|a| !a.is_empty());
    let requester = Requester {
        pid: std::process::id(),
        uid: overrides::current_uid(),
        agent: agent.clone(),
        cwd: Some(cwd),
    };
    // An agent under the supervisor cannot write the audit trail (and the attempt would itself be
    // a denial); its request is recorded by the next human command instead.
    let request = file_request(
        locations,
        &spec,
        denial.map(|d| d.id),
        requester,
        &loaded.policy,
        &loaded.ctx.homes,
        RateLimit::DEFAULT,
        agent.is_none(),
        now_unix(),
    )?;
    if args.json {
        let mut value = serde_json::to_value(&request).context("encode the request")?;
        value["approve_command"] = json!(approve_command(&request.id));
        print_json(&value)?;
    } else {
        println!(
            "Override request {} filed: {} under {} for {}.",
            request.id,
            request.op_set(),
            shell_quote(&request.path.display().to_string()),
            human_duration(request.ttl_secs)
        );
        println!("It takes effect only when a human approves it. Ask the user to run, in their own terminal:");
        println!("  {}", approve_command(&request.id));
    }
    Ok(0)
}

fn find_denial(locations: &Locations, id: &str) -> Result<DenialRecord, Failure> {
    let records = read_denials(&locations.denials, None).context("--denial")?;
    let record = records
        .into_iter()
        .rev()
        .find(|r| r.id == id)
        .ok_or_else(|| OverrideError::NoSuchDenial {
            id: id.to_string(),
            file: locations.denials.clone(),
        })?;
    if record.rule == RuleId::GuardSelf {
        return Err(OverrideError::Refused(Refusal::GuardFile(PathBuf::from(&record.path))).into());
    }
    Ok(record)
}

/// Human housekeeping done by `list`: record requests an agent filed, drop expired grants.
/// Skipped for an agent (it may not write the state dir); failures only cost completeness.
fn housekeeping(store: &GrantStore, now: u64) {
    if refuse_if_agent("list", &process_env).is_ok() {
        let _ = store.record_pending_requests(now);
        let _ = store.prune_expired(now);
    }
}

fn list(args: &ListArgs, locations: &Locations) -> Result<i32, Failure> {
    let loaded = load_policy(args.policy.as_deref())?;
    let store = GrantStore::new(locations.clone());
    let now = now_unix();
    housekeeping(&store, now);
    let pending = load_pending(locations)?;
    let denials = read_denials(&locations.denials, None).unwrap_or_default();
    let grants = store.load()?;
    let active: Vec<_> = grants.grants.iter().filter(|g| g.is_active(now)).collect();

    let described: Vec<_> = pending
        .iter()
        .map(|entry| match entry {
            Ok(r) => Ok((r, describe(r, &loaded, &denials, &store))),
            Err(e) => Err(e),
        })
        .collect();

    if args.json {
        let requests: Vec<_> = described
            .iter()
            .map(|d| match d {
                Ok((r, desc)) => {
                    let mut v = serde_json::to_value(r).unwrap_or_default();
                    v["valid"] = json!(desc.refusal.is_none());
                    v["refusal"] = json!(desc.refusal);
                    v["zone"] = json!(desc.zone);
                    v["denial"] = json!(desc.denial);
                    v["approve_command"] = json!(approve_command(&r.id));
                    v
                }
                Err(e) => json!({"error": e.to_string()}),
            })
            .collect();
        let grants: Vec<_> = active
            .iter()
            .map(|g| {
                let mut v = serde_json::to_value(g).unwrap_or_default();
                v["remaining_secs"] = json!(g.expires_at.saturating_sub(now));
                v
            })
            .collect();
        print_json(&json!({"requests": requests, "grants": grants}))?;
        return Ok(0);
    }

    println!("Pending override requests: {}", described.len());
    for d in &described {
        match d {
            Ok((r, desc)) => {
                println!(
                    "  {}  {}  {}  for {}  filed {}{}",
                    r.id,
                    r.op_set(),
                    printable(&r.path.display().to_string()),
                    human_duration(r.ttl_secs),
                    rfc3339(r.created_at),
                    r.requester
                        .agent
                        .as_deref()
                        .map(|a| format!(" by agent {}", printable(a)))
                        .unwrap_or_default()
                );
                println!("      reason: {}", printable(&r.reason));
                if let Some((kind, root)) = &desc.zone {
                    println!("      zone:   {kind} {root}");
                }
                if let Some(den) = &desc.denial {
                    println!(
                        "      denial: {} {} {} (rule {}) at {}: {}",
                        printable(&den.id),
                        den.op,
                        printable(&den.path),
                        printable(den.rule.as_str()),
                        printable(&den.time),
                        printable(&den.reason)
                    );
                }
                match &desc.refusal {
                    Some(why) => println!("      cannot be approved: {why}"),
                    None => println!("      approve: {}", approve_command(&r.id)),
                }
            }
            Err(e) => println!("  (unreadable) {}", printable(&e.to_string())),
        }
    }
    println!("Active grants: {}", active.len());
    for g in &active {
        let ops: Vec<&str> = g.ops.iter().map(|o| o.as_str()).collect();
        println!(
            "  {}  {}  {}  {} left (until {})  reason: {}",
            g.id,
            ops.join(","),
            printable(&g.path.display().to_string()),
            human_duration(g.expires_at.saturating_sub(now)),
            rfc3339(g.expires_at),
            printable(&g.reason)
        );
    }
    Ok(0)
}

struct Described {
    refusal: Option<String>,
    zone: Option<(String, String)>,
    denial: Option<DenialRecord>,
}

/// What a human should see next to a request: whether the current policy allows it, the zone
/// it opens up, and the denial that caused it (named, or the latest one of that path).
fn describe(
    r: &Request,
    loaded: &LoadedPolicy,
    denials: &[DenialRecord],
    store: &GrantStore,
) -> Described {
    let spec = RequestSpec {
        path: r.path.clone(),
        ops: r.ops.clone(),
        reason: r.reason.clone(),
        ttl_secs: r.ttl_secs,
    };
    let (refusal, zone) = match validate(&spec, &loaded.policy, &loaded.ctx.homes) {
        Ok(v) => (
            None,
            v.zone
                .map(|(k, root)| (k.as_str().to_string(), root.display().to_string())),
        ),
        Err(e) => (Some(e.to_string()), None),
    };
    // Changed since it was recorded, or an old id brought back: the same check approve makes.
    let refusal = refusal.or_else(|| store.pending(&r.id).err().map(|e| e.to_string()));
    let denial = match &r.denial_id {
        Some(id) => denials.iter().rev().find(|d| &d.id == id),
        None => latest_denial_of(denials, &r.path),
    }
    .cloned();
    Described {
        refusal,
        zone,
        denial,
    }
}

fn approve(args: &ApproveArgs, locations: &Locations) -> Result<i32, Failure> {
    refuse_if_agent("approve", &process_env)?;
    let loaded = load_policy(args.policy.as_deref())?;
    let ttl = parse_ttl(args.ttl.as_deref())?;
    let store = GrantStore::new(locations.clone());
    let now = now_unix();
    let grant = store.approve(&args.id, ttl, &loaded.policy, &loaded.ctx.homes, now)?;
    if args.json {
        print_json(&serde_json::to_value(&grant).context("encode the grant")?)?;
    } else {
        let ops: Vec<&str> = grant.ops.iter().map(|o| o.as_str()).collect();
        println!(
            "Approved {}: {} under {} for {} (until {}).",
            grant.id,
            ops.join(","),
            printable(&grant.path.display().to_string()),
            human_duration(grant.expires_at - now),
            rfc3339(grant.expires_at)
        );
        println!(
            "Withdraw it early with: agent-guard override revoke {}",
            grant.id
        );
    }
    Ok(0)
}

/// `override deny` or `override revoke`: a human's decision on a request or a grant.
fn decide(
    args: &IdArgs,
    locations: &Locations,
    decision: OverrideEventKind,
) -> Result<i32, Failure> {
    refuse_if_agent(decision.as_str(), &process_env)?;
    let store = GrantStore::new(locations.clone());
    let now = now_unix();
    match decision {
        OverrideEventKind::Deny => {
            let request = store.deny(&args.id, now)?;
            if args.json {
                print_json(&serde_json::to_value(&request).context("encode the request")?)?;
            } else {
                println!(
                    "Denied {}: {} under {}.",
                    request.id,
                    request.op_set(),
                    printable(&request.path.display().to_string())
                );
            }
        }
        _ => {
            let grant = store.revoke(&args.id, now)?;
            if args.json {
                print_json(&serde_json::to_value(&grant).context("encode the grant")?)?;
            } else {
                println!(
                    "Revoked {}: {} is protected again.",
                    grant.id,
                    printable(&grant.path.display().to_string())
                );
            }
        }
    }
    Ok(0)
}
