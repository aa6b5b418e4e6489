//! What `override list` shows: the pending requests, each with whether the current policy lets
//! a human approve it, the zone it opens up and the denial behind it, and the active grants.
//!
//! Spool files are agent-written: everything from them is printed with control characters
//! escaped, and a file that is not a request is listed as unreadable, not skipped.

use std::io::{self, Write};
use std::path::PathBuf;

use serde_json::{json, Value};

use super::filing::{validate, RequestSpec};
use super::request::Request;
use super::store::{GrantStore, StoredGrant};
use super::{human_duration, load_pending, refuse_if_agent, OverrideError};
use crate::audit::{latest_denial_of, read_denials, DenialRecord};
use crate::paths::Locations;
use crate::policy::Policy;
use crate::vocab::printable;
use crate::vocab::time::rfc3339_from_secs as rfc3339;

/// The pending requests and active grants at `now`.
pub struct Listing {
    pub requests: Vec<Result<(Request, Described), OverrideError>>,
    /// Spool files past the rate limit ([`super::RateLimit::admit`]): not shown in full and
    /// not approvable until earlier requests are decided.
    pub held: Vec<(Request, String)>,
    pub grants: Vec<StoredGrant>,
    pub now: u64,
}

/// What a human should see next to a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Described {
    /// Why it cannot be approved as it is; `None`: it can.
    pub refusal: Option<String>,
    /// The kind and root of the zone it opens up.
    pub zone: Option<(String, String)>,
    /// The denial it names, or the latest one of its path.
    pub denial: Option<DenialRecord>,
}

/// What a request or grant covers, as the engine will match it, for a human: `unlink under
/// /a/b`, or for an exec the whole command (`exec /usr/bin/git clean -fdx (exactly this
/// command)`). `widened` says an exec grant without arguments was widened to any.
pub fn describe_scope(
    ops: &crate::vocab::OpSet,
    path: &std::path::Path,
    args: Option<&[String]>,
    widened: bool,
) -> String {
    let path_text = printable(&crate::vocab::shell_quote(&path.display().to_string()));
    match args {
        Some(args) => {
            let command: Vec<String> = std::iter::once(path_text.clone())
                .chain(
                    args.iter()
                        .map(|a| printable(&crate::vocab::shell_quote(a))),
                )
                .collect();
            let others = ops
                .iter()
                .filter(|op| *op != crate::vocab::OpKind::Exec)
                .map(|op| op.as_str())
                .collect::<Vec<_>>();
            let mut text = format!("exec `{}` (exactly this command)", command.join(" "));
            if !others.is_empty() {
                text.push_str(&format!(" and {} under {path_text}", others.join(",")));
            }
            text
        }
        None if widened => format!("{ops} of {path_text} with ANY arguments"),
        None => format!("{ops} under {path_text}"),
    }
}

/// The command that approves request `id`, as the agent is told to ask for it.
pub fn approve_command(id: &str) -> String {
    format!("agent-guard override approve {id}")
}

impl Listing {
    /// Read the spool, the denial log and the grants. For a human (no `AGENT_GUARD_AGENT` in
    /// `env`) first record the requests agents filed and drop expired grants: an agent may not
    /// write the state dir, and failing at it only costs completeness.
    pub fn gather(
        locations: &Locations,
        policy: &Policy,
        homes: &[PathBuf],
        env: &dyn Fn(&str) -> Option<String>,
        now: u64,
    ) -> Result<Listing, OverrideError> {
        let store = GrantStore::new(locations.clone());
        if refuse_if_agent("list", env).is_ok() {
            let _ = store.record_pending_requests(now);
            let _ = store.prune_expired(now);
        }
        let pending = load_pending(locations)?;
        let denials = read_denials(&locations.denials, None)
            .map(|outcome| outcome.records)
            .unwrap_or_default();
        let grants = store.load()?;
        let (readable, unreadable): (Vec<_>, Vec<_>) = pending.into_iter().partition(Result::is_ok);
        let (shown, held) =
            super::RateLimit::DEFAULT.admit(readable.into_iter().flatten().collect());
        let mut requests: Vec<Result<(Request, Described), OverrideError>> = shown
            .into_iter()
            .map(|r| {
                let described = describe(&r, policy, homes, &denials, &store);
                Ok((r, described))
            })
            .collect();
        requests.extend(unreadable.into_iter().filter_map(Result::err).map(Err));
        Ok(Listing {
            requests,
            held: held
                .into_iter()
                .map(|(r, why)| (r, why.to_string()))
                .collect(),
            grants: grants
                .grants
                .into_iter()
                .filter(|g| g.is_active(now))
                .collect(),
            now,
        })
    }

    /// `{"requests": [...], "grants": [...]}`: each request as filed plus `valid`, `refusal`,
    /// `zone`, `denial` and `approve_command`; each grant plus `remaining_secs`.
    pub fn to_json(&self) -> Value {
        let requests: Vec<Value> = self
            .requests
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
        let grants: Vec<Value> = self
            .grants
            .iter()
            .map(|g| {
                let mut v = serde_json::to_value(g).unwrap_or_default();
                v["remaining_secs"] = json!(g.expires_at.saturating_sub(self.now));
                v
            })
            .collect();
        let held: Vec<Value> = self
            .held
            .iter()
            .map(|(r, why)| {
                let mut v = serde_json::to_value(r).unwrap_or_default();
                v["held_back"] = json!(why);
                v
            })
            .collect();
        json!({"requests": requests, "held": held, "grants": grants})
    }

    /// The listing for a human: a few lines per request, one per grant.
    pub fn write_human(&self, out: &mut dyn Write) -> io::Result<()> {
        writeln!(out, "Pending override requests: {}", self.requests.len())?;
        for d in &self.requests {
            match d {
                Ok((r, desc)) => write_request(out, r, desc)?,
                Err(e) => writeln!(out, "  (unreadable) {}", printable(&e.to_string()))?,
            }
        }
        if !self.held.is_empty() {
            writeln!(
                out,
                "Held back by the rate limit: {} (shown once earlier requests are decided)",
                self.held.len()
            )?;
            for (r, why) in &self.held {
                writeln!(
                    out,
                    "  {}  {}  {}: {}",
                    r.id,
                    r.op_set(),
                    printable(&r.path.display().to_string()),
                    printable(why)
                )?;
            }
        }
        writeln!(out, "Active grants: {}", self.grants.len())?;
        for g in &self.grants {
            writeln!(
                out,
                "  {}  {}  {} left (until {})  reason: {}",
                g.id,
                describe_scope(
                    &g.op_set(),
                    &g.path,
                    g.args.as_deref(),
                    g.op_set().contains(crate::vocab::OpKind::Exec)
                ),
                human_duration(g.expires_at.saturating_sub(self.now)),
                rfc3339(g.expires_at),
                printable(&g.reason)
            )?;
        }
        Ok(())
    }
}

/// One pending request as `override list` and `override watch` show it: who asked, for
/// exactly what, why, and the denial behind it.
pub fn write_request(out: &mut dyn Write, r: &Request, desc: &Described) -> io::Result<()> {
    writeln!(
        out,
        "  {}  {}  for {}  filed {} by {}",
        r.id,
        describe_scope(&r.op_set(), &r.path, r.args.as_deref(), false),
        human_duration(r.ttl_secs),
        rfc3339(r.arrived_at),
        printable(&r.requester.rate_key())
    )?;
    writeln!(out, "      reason: {}", printable(&r.reason))?;
    if let Some((kind, root)) = &desc.zone {
        writeln!(out, "      zone:   {kind} {root}")?;
    }
    if let Some(den) = &desc.denial {
        writeln!(
            out,
            "      denial: {} {} {} (rule {}) at {}: {}",
            printable(&den.id),
            den.op,
            printable(&den.path),
            printable(den.rule.as_str()),
            printable(&den.time),
            printable(&den.reason)
        )?;
    }
    match &desc.refusal {
        Some(why) => writeln!(out, "      cannot be approved: {why}"),
        None => writeln!(out, "      approve: {}", approve_command(&r.id)),
    }
}

/// Whether the current policy allows `r`, the zone it opens up, and the denial that caused it
/// (named, or the latest one of that path).
fn describe(
    r: &Request,
    policy: &Policy,
    homes: &[PathBuf],
    denials: &[DenialRecord],
    store: &GrantStore,
) -> Described {
    let spec = RequestSpec {
        path: r.path.clone(),
        ops: r.ops.clone(),
        reason: r.reason.clone(),
        ttl_secs: r.ttl_secs,
        args: r.args.clone(),
    };
    let (refusal, zone) = match validate(&spec, policy, homes) {
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
