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

use super::load_policy;
use crate::overrides::{
    approve_command, describe_scope, human_duration, now_unix, parse_ttl, refuse_if_agent,
    request_from, GrantStore, Listing, OverrideError, Refusal, RequestInput,
};
use crate::paths::{process_env, Locations};
use crate::vocab::printable;
use crate::vocab::time::rfc3339_from_secs as rfc3339;

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
    /// Where one request stands: pending, approved, denied, revoked or expired (agents may
    /// run it; --wait waits for the decision).
    Status(super::override_status::StatusArgs),
    /// A live view for your terminal: each new request as it arrives, with a bell, answered
    /// with one key (y approve, n deny, 1/2/3 approve for 1m/10m/1h, s later, q quit).
    Watch(super::override_watch::WatchArgs),
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
    /// Take the path and operation from this denial record (see `agent-guard denials`); for an
    /// exec denial, its arguments too.
    #[arg(long)]
    pub denial: Option<String>,
    /// The policy file (default: $AGENT_GUARD_POLICY, /etc/agent-guard/policy.json, the
    /// embedded default).
    #[arg(long)]
    pub policy: Option<PathBuf>,
    /// Print the request as JSON.
    #[arg(long)]
    pub json: bool,
    /// With --op exec: the command's arguments after the program, exactly as it will be run
    /// (`-- clean -n`); the override covers that command only.
    #[arg(last = true, value_name = "ARGS")]
    pub args: Vec<String>,
}

#[derive(Args, Debug)]
pub struct ListArgs {
    /// The policy file requests are checked against.
    #[arg(long)]
    pub policy: Option<PathBuf>,
    /// Print the requests and grants as JSON.
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
    /// For an exec request: allow the program with any arguments, not only the requested
    /// command (a deliberate widening: `git clean -n` approved this way also lets
    /// `git reset --hard` run).
    #[arg(long)]
    pub any_args: bool,
    /// The policy file the request is checked against again.
    #[arg(long)]
    pub policy: Option<PathBuf>,
    /// Print the grant as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct IdArgs {
    /// The request or grant id.
    pub id: String,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn run(cmd: OverrideCommand) -> anyhow::Result<i32> {
    let locations = Locations::for_user(&process_env);
    let result = match cmd {
        OverrideCommand::Request(args) => request(&args, &locations),
        OverrideCommand::List(args) => list(&args, &locations),
        OverrideCommand::Approve(args) => approve(&args, &locations),
        OverrideCommand::Deny(args) => deny(&args, &locations),
        OverrideCommand::Revoke(args) => revoke(&args, &locations),
        OverrideCommand::Status(args) => return super::override_status::run(&args),
        OverrideCommand::Watch(args) => return super::override_watch::run(&args),
    };
    match result {
        Ok(code) => Ok(code),
        Err(Failure::Refused(e)) => {
            // Messages can quote the agent-writable spool (a field name, an id): escape them.
            let message = printable(&e.to_string());
            Err(match exit_code(&e) {
                1 => super::Exit::refused(message),
                _ => super::Exit::bad_input(message),
            })
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

impl From<Refusal> for Failure {
    fn from(e: Refusal) -> Self {
        Failure::Refused(e.into())
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
            | Refusal::TtlZero
            | Refusal::ExecNeedsArgs
            | Refusal::ArgsWithoutExec,
        )
        | OverrideError::BadId { .. }
        | OverrideError::NoPath
        | OverrideError::DenialLog(_) => 2,
        _ => 1,
    }
}

fn print_json(value: &serde_json::Value) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

fn request(args: &RequestArgs, locations: &Locations) -> Result<i32, Failure> {
    let loaded = load_policy(args.policy.as_deref())?;
    let input = RequestInput {
        path: args.path.clone(),
        ops: args.op.clone(),
        reason: args.reason.clone(),
        ttl: args.ttl.clone(),
        denial: args.denial.clone(),
        args: args.args.clone(),
    };
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
    let request = request_from(
        &input,
        locations,
        &loaded.policy,
        &loaded.ctx.homes,
        &process_env,
        &cwd,
        now_unix(),
    )?;
    if args.json {
        let mut value = serde_json::to_value(&request).context("encode the request")?;
        value["approve_command"] = json!(approve_command(&request.id));
        print_json(&value)?;
    } else {
        println!(
            "Override request {} filed: {} for {}.",
            request.id,
            describe_scope(
                &request.op_set(),
                &request.path,
                request.args.as_deref(),
                false
            ),
            human_duration(request.ttl_secs)
        );
        println!("It takes effect only when a human approves it. Ask the user to run, in their own terminal:");
        println!("  {}", approve_command(&request.id));
    }
    Ok(0)
}

fn list(args: &ListArgs, locations: &Locations) -> Result<i32, Failure> {
    let loaded = load_policy(args.policy.as_deref())?;
    let listing = Listing::gather(
        locations,
        &loaded.policy,
        &loaded.ctx.homes,
        &process_env,
        now_unix(),
    )?;
    if args.json {
        print_json(&listing.to_json())?;
    } else {
        listing
            .write_human(&mut std::io::stdout().lock())
            .context("writing to standard output")?;
    }
    Ok(0)
}

fn approve(args: &ApproveArgs, locations: &Locations) -> Result<i32, Failure> {
    refuse_if_agent("approve", &process_env)?;
    let loaded = load_policy(args.policy.as_deref())?;
    let ttl = parse_ttl(args.ttl.as_deref())?;
    let store = GrantStore::new(locations.clone());
    let now = now_unix();
    let grant = store.approve(
        &args.id,
        ttl,
        args.any_args,
        &loaded.policy,
        &loaded.ctx.homes,
        now,
    )?;
    if args.json {
        print_json(&serde_json::to_value(&grant).context("encode the grant")?)?;
    } else {
        println!(
            "Approved {}: {} for {} (until {}).",
            grant.id,
            describe_scope(
                &grant.op_set(),
                &grant.path,
                grant.args.as_deref(),
                grant.op_set().contains(crate::vocab::OpKind::Exec)
            ),
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

fn deny(args: &IdArgs, locations: &Locations) -> Result<i32, Failure> {
    refuse_if_agent("deny", &process_env)?;
    let request = GrantStore::new(locations.clone()).deny(&args.id, now_unix())?;
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
    Ok(0)
}

fn revoke(args: &IdArgs, locations: &Locations) -> Result<i32, Failure> {
    refuse_if_agent("revoke", &process_env)?;
    let grant = GrantStore::new(locations.clone()).revoke(&args.id, now_unix())?;
    if args.json {
        print_json(&serde_json::to_value(&grant).context("encode the grant")?)?;
    } else {
        println!(
            "Revoked {}: {} is protected again.",
            grant.id,
            printable(&grant.path.display().to_string())
        );
    }
    Ok(0)
}
