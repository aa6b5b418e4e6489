//! `agent-guard override status ID [--wait DUR] [--json]`: where one override request stands.
//! Agents may run it (it only reads). Exit codes: 0 approved and in force, 1 denied, revoked or
//! expired, 2 bad input or an unknown id, 3 still pending (after `--wait`, when it ran out).

use std::time::{Duration, Instant};

use clap::Args;

use crate::overrides::{now_unix, request_state, RequestState};
use crate::paths::{process_env, Locations};

/// How often `--wait` looks again.
const POLL: Duration = Duration::from_millis(250);

#[derive(Args, Debug)]
pub struct StatusArgs {
    /// The request id (`r-...`).
    pub id: String,
    /// Wait up to DUR (e.g. 30s, 5m) for the user to decide before answering.
    #[arg(long, value_name = "DUR", value_parser = super::parse_duration)]
    pub wait: Option<Duration>,
    /// Print the state as JSON (`{"id", "state", "expires_at"?}`).
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: &StatusArgs) -> anyhow::Result<i32> {
    let locations = Locations::for_user(&process_env);
    let deadline = args.wait.map(|w| Instant::now() + w);
    let state = loop {
        match request_state(&locations, &args.id, now_unix()) {
            Ok(state) if state.is_decided() => break state,
            Ok(state) if deadline.is_none_or(|d| Instant::now() >= d) => break state,
            Ok(_) => std::thread::sleep(POLL),
            // Exit 2 from main, as JSON with --json; the id is the caller's text: escaped.
            Err(e) => anyhow::bail!("{}", crate::vocab::printable(&e.to_string())),
        }
    };
    if args.json {
        let mut v = serde_json::to_value(&state)?;
        v["id"] = serde_json::json!(args.id);
        println!("{v}");
    } else {
        println!("{}", state.describe(&args.id, now_unix()));
    }
    Ok(match state {
        RequestState::Approved { .. } => 0,
        RequestState::Pending => 3,
        _ => 1,
    })
}
