//! `agent-guard undo purge (--session S | --older-than DUR | --all) [--dry-run]`: remove
//! sessions from the snapshot store, with their records, to free room; the ones older than the
//! policy's `snapshots.max_age` go too, as they would at the supervisor's next purge.

use std::time::{Duration, SystemTime};

use anyhow::bail;

use crate::audit::store::forget_kept_sessions;
use crate::paths::{process_env, Locations};
use crate::policy::load_for_user;
use crate::snapshots::purge::{remove_session, sessions};
use crate::snapshots::SessionId;
use crate::vocab::human_bytes;

use super::refuse_agents;

#[derive(clap::Args, Debug)]
pub struct PurgeArgs {
    /// This session only.
    #[arg(long, value_name = "SESSION", value_parser = super::parse_session)]
    pub session: Option<SessionId>,
    /// Sessions whose newest entry is older than this (e.g. 1d).
    #[arg(long, value_name = "DUR", value_parser = parse_age)]
    pub older_than: Option<Duration>,
    /// Every session.
    #[arg(long)]
    pub all: bool,
    /// Say what would be removed, remove nothing.
    #[arg(long)]
    pub dry_run: bool,
}

fn parse_age(text: &str) -> Result<Duration, String> {
    crate::duration::parse_duration(text).map_err(|e| e.to_string())
}

pub fn run(args: &PurgeArgs, locations: &Locations) -> anyhow::Result<i32> {
    refuse_agents("purge")?;
    let chosen = [args.session.is_some(), args.older_than.is_some(), args.all];
    if chosen.iter().filter(|c| **c).count() > 1 {
        bail!("give one of --session, --older-than and --all");
    }
    let max_age = load_for_user(None, &process_env)
        .map(|l| Duration::from_secs(l.policy.snapshots.max_age))
        .ok();
    let now = SystemTime::now();
    let older = |last: SystemTime, age: Duration| now.duration_since(last).is_ok_and(|a| a > age);
    let mut gone = Vec::new();
    let mut freed = 0;
    for s in sessions(&locations.store)? {
        let asked = args.all
            || args.session.as_ref() == Some(&s.id)
            || args.older_than.is_some_and(|age| older(s.last_kept, age));
        let expired = max_age.is_some_and(|age| older(s.last_kept, age));
        if !(asked || expired) {
            continue;
        }
        if !args.dry_run {
            remove_session(&locations.store, &s.id)?;
        }
        println!(
            "{} session {} ({})",
            if args.dry_run {
                "would remove"
            } else {
                "removed"
            },
            s.id,
            human_bytes(s.bytes)
        );
        freed += s.bytes;
        gone.push(s.id.to_string());
    }
    if let Some(session) = &args.session {
        if !gone.contains(&session.to_string()) {
            return Err(crate::cli::Exit::not_found(format!(
                "no session {session} in the store"
            )));
        }
    }
    if !args.dry_run && !gone.is_empty() && locations.audit_db.exists() {
        forget_kept_sessions(&locations.audit_db, &gone)?;
    }
    println!("{} freed", human_bytes(freed));
    Ok(0)
}
