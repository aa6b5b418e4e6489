//! `agent-guard override watch`: the human's live view of override requests. Each new request
//! is shown as it arrives (who asked, exactly what, the agent's reason, the denial behind it)
//! with a bell, and a desktop notification where there is a session to show one, and is
//! answered with one key: y approve as asked, n deny, 1/2/3 approve for 1m/10m/1h, s decide
//! later, q quit. Plain terminal output, so it works over ssh and in tmux. Humans only.

use std::collections::HashSet;
use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;

use super::load_policy;
use crate::overrides::{
    describe_scope, human_duration, now_unix, refuse_if_agent, write_request, GrantStore, Listing,
    Request,
};
use crate::paths::{process_env, Locations};
use crate::platform::terminal::KeyInput;
use crate::vocab::printable;

/// How often the spool is looked at for new requests.
const POLL: Duration = Duration::from_millis(300);

#[derive(Args, Debug)]
pub struct WatchArgs {
    /// The policy file requests are checked against.
    #[arg(long)]
    pub policy: Option<PathBuf>,
    /// No desktop notification (the bell and the terminal view stay).
    #[arg(long)]
    pub no_notify: bool,
}

const KEYS: &str =
    "[y] approve as asked  [n] deny  [1] approve 1m  [2] 10m  [3] 1h  [s] later  [q] quit";

pub fn run(args: &WatchArgs) -> anyhow::Result<i32> {
    refuse_if_agent("watch", &process_env)?;
    let locations = Locations::for_user(&process_env);
    let keys = KeyInput::stdin().context("set up the terminal")?;
    let mut seen: HashSet<String> = HashSet::new();
    let mut out = std::io::stdout();
    writeln!(
        out,
        "agent-guard: watching for override requests ({}). q quits.\r",
        locations.requests_dir.display()
    )?;
    loop {
        let loaded = load_policy(args.policy.as_deref())?;
        let listing = Listing::gather(
            &locations,
            &loaded.policy,
            &loaded.ctx.homes,
            &process_env,
            now_unix(),
        )?;
        let next = listing
            .requests
            .iter()
            .filter_map(|r| r.as_ref().ok())
            .find(|(r, _)| !seen.contains(&r.id));
        let Some((request, described)) = next else {
            match keys.key(POLL) {
                Ok(Some(b'q')) | Err(_) => return Ok(0),
                _ => continue,
            }
        };
        seen.insert(request.id.clone());
        // The bell: a terminal (or tmux, or an ssh client) turns it into whatever it shows.
        writeln!(out, "\x07")?;
        let mut shown = Vec::new();
        write_request(&mut shown, request, described)?;
        out.write_all(
            String::from_utf8_lossy(&shown)
                .replace('\n', "\r\n")
                .as_bytes(),
        )?;
        if let Some(refusal) = &described.refusal {
            writeln!(
                out,
                "      cannot be approved as asked: {}\r",
                printable(refusal)
            )?;
        }
        writeln!(out, "  {KEYS}\r")?;
        out.flush()?;
        if !args.no_notify {
            notify(request);
        }
        if answer(&keys, &mut out, request, &locations, args)? {
            return Ok(0);
        }
    }
}

/// Wait for the human's key for `request` and act on it; `true` to quit. A request decided
/// elsewhere meanwhile (another terminal) ends the wait.
fn answer(
    keys: &KeyInput,
    out: &mut std::io::Stdout,
    request: &Request,
    locations: &Locations,
    args: &WatchArgs,
) -> anyhow::Result<bool> {
    let store = GrantStore::new(locations.clone());
    let mut last_check = Instant::now();
    loop {
        let key = match keys.key(POLL) {
            Ok(k) => k,
            Err(_) => return Ok(true),
        };
        let ttl = match key {
            Some(b'y' | b'Y') => Some(None),
            Some(b'1') => Some(Some(60)),
            Some(b'2') => Some(Some(600)),
            Some(b'3') => Some(Some(3600)),
            Some(b'n' | b'N') => {
                match store.deny(&request.id, now_unix()) {
                    Ok(_) => writeln!(out, "  denied {}\r", request.id)?,
                    Err(e) => writeln!(out, "  could not deny {}: {e}\r", request.id)?,
                }
                return Ok(false);
            }
            Some(b's' | b'S' | b' ') => {
                writeln!(
                    out,
                    "  left for later: agent-guard override approve {}\r",
                    request.id
                )?;
                return Ok(false);
            }
            Some(b'q' | b'Q') => return Ok(true),
            _ => None,
        };
        if let Some(ttl) = ttl {
            let loaded = load_policy(args.policy.as_deref())?;
            let now = now_unix();
            match store.approve(
                &request.id,
                ttl,
                false,
                &loaded.policy,
                &loaded.ctx.homes,
                now,
            ) {
                Ok(grant) => writeln!(
                    out,
                    "  approved {}: {} for {}\r",
                    grant.id,
                    describe_scope(&grant.op_set(), &grant.path, grant.args.as_deref(), false),
                    human_duration(grant.expires_at.saturating_sub(now))
                )?,
                Err(e) => writeln!(out, "  could not approve {}: {e}\r", request.id)?,
            }
            out.flush()?;
            return Ok(false);
        }
        if last_check.elapsed() > Duration::from_secs(1) {
            last_check = Instant::now();
            let pending = crate::overrides::load_pending(locations).unwrap_or_default();
            if !pending.iter().flatten().any(|r| r.id == request.id) {
                writeln!(out, "  {} was decided elsewhere\r", request.id)?;
                return Ok(false);
            }
        }
    }
}

/// A desktop notification with the approve command in it, where one can be shown: on Linux
/// through `notify-send` (org.freedesktop.Notifications) when a session bus is set, on macOS
/// through `osascript`. Best effort: the terminal view is the interface, this is a nudge.
fn notify(request: &Request) {
    let title = format!(
        "agent-guard: {} asks for an override",
        request.requester.rate_key()
    );
    let body = format!(
        "{}\n{}\nagent-guard override approve {}",
        describe_scope(
            &request.op_set(),
            &request.path,
            request.args.as_deref(),
            false
        ),
        request.reason,
        request.id
    );
    let mut cmd = if cfg!(target_os = "macos") {
        let quote = |s: &str| s.replace('\\', "\\\\").replace('"', "\\\"");
        let mut c = std::process::Command::new("osascript");
        c.arg("-e").arg(format!(
            "display notification \"{}\" with title \"{}\"",
            quote(&body),
            quote(&title)
        ));
        c
    } else {
        if process_env("DBUS_SESSION_BUS_ADDRESS").is_none() {
            return;
        }
        let mut c = std::process::Command::new("notify-send");
        c.args(["--app-name=agent-guard", &title, &body]);
        c
    };
    let spawned = cmd
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn();
    if let Ok(mut child) = spawned {
        // Reaped in the background: a slow notification daemon never holds up the view.
        std::thread::spawn(move || child.wait());
    }
}
