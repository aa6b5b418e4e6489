//! Filing an override request: an agent's arguments (or a denial record) validated into a
//! [`Request`] in the spool.
//!
//! A request is validated when it is filed *and again* when a human approves it
//! ([`super::GrantStore::approve`]): the spool is agent-writable, so a file placed there by hand
//! gets no more than one that went through `override request`.

use std::path::{Path, PathBuf};

use super::rate::RateLimit;
use super::request::{Request, Requester, MAX_REASON_CHARS};
use super::spool::{load_pending, new_id, request_file, write_request};
use super::{files, OverrideError};
use crate::audit::{DenialRecord, OverrideEventKind};
use crate::paths::Locations;
use crate::policy::normalize::override_too_broad;
use crate::policy::{Policy, ZoneKind};
use crate::vocab::path::clean;
use crate::vocab::time::rfc3339_from_secs;
use crate::vocab::{OpKind, OpSet, RuleId};

/// What was asked, before validation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestSpec {
    /// Already resolved with [`resolve_path`].
    pub path: PathBuf,
    pub ops: Vec<OpKind>,
    pub reason: String,
    pub ttl_secs: u64,
    /// For an exec: the arguments after `argv[0]`; `None` only for other operations (a
    /// request cannot ask for a program with any arguments: a human widens it explicitly).
    pub args: Option<Vec<String>>,
}

/// A request that passed validation, with what a human should know about it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Validated {
    pub ops: OpSet,
    /// The zone the path lies in (the innermost policy zone), if any: a grant inside a secret
    /// zone hands out credentials, and the approver should see that.
    pub zone: Option<(ZoneKind, PathBuf)>,
}

/// Why a request is refused. The text is addressed to whoever asked (often an AI agent).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("--op: expected at least one operation (e.g. --op unlink)")]
    NoOps,
    #[error("--op: unknown operation {0:?}: expected exec, unlink, rmdir, rename, open, truncate, link or create")]
    UnknownOp(String),
    #[error("--op signal: signals are not path operations and cannot be overridden")]
    SignalOp,
    #[error("{0}: expected an absolute, clean path (no '.', '..' or '//')")]
    NotClean(PathBuf),
    #[error("{0}")]
    TooBroad(String),
    #[error("{0} is one of agent-guard's own files (policy, state, logs, binary): no override can cover it; ask the user to make the change")]
    GuardFile(PathBuf),
    #[error("--op exec: name the command's arguments after `--` (e.g. `--op exec -- clean -n`), or take them from the denial with --denial ID: an exec override covers that command only, not the whole program")]
    ExecNeedsArgs,
    #[error("arguments after `--` scope an exec override; add --op exec or leave them out")]
    ArgsWithoutExec,
    #[error("--ttl: expected a positive duration like 10m")]
    TtlZero,
    #[error("--ttl {0:?}: expected a duration like 90s, 10m or 1h")]
    BadTtl(String),
    #[error("--ttl: {ttl}s is longer than the policy's max_override_ttl of {max}s")]
    TtlTooLong { ttl: u64, max: u64 },
    #[error("--reason: expected one sentence telling the user why the override is needed")]
    EmptyReason,
    #[error("--reason: {0} characters is more than the {MAX_REASON_CHARS} allowed; say why in one or two sentences")]
    ReasonTooLong(usize),
    #[error("--reason: control characters (escape sequences, newlines) and invisible ones (bidirectional overrides, zero-width spaces) are not allowed")]
    ReasonControl,
}

/// Parse `--op` values; each may itself be a comma-separated list (`unlink,rmdir`).
pub fn parse_ops(values: &[String]) -> Result<Vec<OpKind>, Refusal> {
    let mut ops: Vec<OpKind> = Vec::new();
    for name in values.iter().flat_map(|v| v.split(',')) {
        let name = name.trim();
        if name.is_empty() {
            continue;
        }
        let op: OpKind = name
            .parse()
            .map_err(|_| Refusal::UnknownOp(name.to_string()))?;
        if !ops.contains(&op) {
            ops.push(op);
        }
    }
    if ops.is_empty() {
        return Err(Refusal::NoOps);
    }
    ops.sort();
    Ok(ops)
}

/// A path from the command line made absolute against `cwd`, cleaned, and with the symlinks of
/// its existing part resolved, because the engine sees the paths the kernel resolved: a request
/// for `~/src/link` where `link -> ~/.ssh` is a request for `~/.ssh`, and is judged as one.
pub fn resolve_path(path: &Path, cwd: &Path) -> PathBuf {
    let joined = if path.is_absolute() {
        path.to_path_buf()
    } else {
        cwd.join(path)
    };
    clean(&crate::policy::normalize::resolve_existing_prefix(&clean(
        &joined,
    )))
}

/// Check a request against the policy in force. `homes` are the home directories the policy was
/// loaded for (no override may cover one as a whole).
pub fn validate(
    spec: &RequestSpec,
    policy: &Policy,
    homes: &[PathBuf],
) -> Result<Validated, Refusal> {
    if spec.ops.is_empty() {
        return Err(Refusal::NoOps);
    }
    if spec.ops.contains(&OpKind::Signal) {
        return Err(Refusal::SignalOp);
    }
    match (spec.ops.contains(&OpKind::Exec), &spec.args) {
        (true, None) => return Err(Refusal::ExecNeedsArgs),
        (false, Some(_)) => return Err(Refusal::ArgsWithoutExec),
        _ => {}
    }
    let path = &spec.path;
    if !path.is_absolute() || clean(path) != *path {
        return Err(Refusal::NotClean(path.clone()));
    }
    if let Some(why) = override_too_broad(path, &policy.zones, homes) {
        return Err(Refusal::TooBroad(why));
    }
    let hits = policy.zones.lookup(path);
    if hits.guard.is_some() {
        return Err(Refusal::GuardFile(path.clone()));
    }
    if spec.ttl_secs == 0 {
        return Err(Refusal::TtlZero);
    }
    if spec.ttl_secs > policy.max_override_ttl {
        return Err(Refusal::TtlTooLong {
            ttl: spec.ttl_secs,
            max: policy.max_override_ttl,
        });
    }
    let reason = spec.reason.trim();
    if reason.is_empty() {
        return Err(Refusal::EmptyReason);
    }
    let chars = reason.chars().count();
    if chars > MAX_REASON_CHARS {
        return Err(Refusal::ReasonTooLong(chars));
    }
    if reason
        .chars()
        .any(|c| c.is_control() || crate::vocab::is_invisible(c))
    {
        return Err(Refusal::ReasonControl);
    }
    let zone = [ZoneKind::Secret, ZoneKind::Readonly, ZoneKind::Protected]
        .into_iter()
        .find_map(|k| hits.get(k).map(|z| (k, z.root.clone())));
    Ok(Validated {
        ops: spec.ops.iter().copied().collect(),
        zone,
    })
}

/// Validate, rate-limit and spool a request. The file appears under its final name complete
/// (written to a temporary `O_EXCL|O_NOFOLLOW` file, then renamed), so no reader sees half of it.
///
/// The `request` event is recorded here only when `record` is set (a process that may write the
/// audit trail); otherwise the next human command records it.
#[allow(clippy::too_many_arguments)]
pub fn file_request(
    locations: &Locations,
    spec: &RequestSpec,
    denial_id: Option<String>,
    requester: Requester,
    policy: &Policy,
    homes: &[PathBuf],
    limit: RateLimit,
    record: bool,
    now: u64,
) -> Result<Request, OverrideError> {
    validate(spec, policy, homes)?;
    files::ensure_dir(&locations.requests_dir)?;
    let pending: Vec<Request> = load_pending(locations)?.into_iter().flatten().collect();
    let recent = super::events::read_recent_events(locations, 256 * 1024).unwrap_or_default();
    limit.check(&requester.rate_key(), &pending, &recent, now)?;

    let mut request = Request {
        id: String::new(),
        path: spec.path.clone(),
        ops: spec.ops.clone(),
        reason: spec.reason.trim().to_string(),
        ttl_secs: spec.ttl_secs,
        created_at: now,
        time: rfc3339_from_secs(now),
        denial_id,
        args: spec.args.clone(),
        requester,
        recorded: false,
        arrived_at: now,
    };
    for attempt in 0.. {
        let id = new_id(&spec.path, attempt);
        let file = request_file(locations, &id)?;
        if std::fs::symlink_metadata(&file).is_ok() {
            continue;
        }
        request.id = id;
        break;
    }
    if record
        && super::record_override_event(
            locations,
            &request.event(OverrideEventKind::Request, None, now),
        )
        .is_ok()
    {
        request.recorded = true;
    }
    write_request(locations, &request)?;
    Ok(request)
}

/// What `override request` was given on the command line, before anything is resolved.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RequestInput {
    /// The file or directory to open up; may be left out when `denial` names a record.
    pub path: Option<PathBuf>,
    /// `--op` values, each possibly a comma-separated list; empty: the denial's operation.
    pub ops: Vec<String>,
    pub reason: String,
    /// `--ttl` as typed (`10m`); `None`: [`super::DEFAULT_TTL_SECS`].
    pub ttl: Option<String>,
    /// `--denial ID`: the denial record the request is about.
    pub denial: Option<String>,
    /// The arguments after `--`: for an exec, the command's arguments after `argv[0]`; empty:
    /// the denial's (an exec denial records its argv).
    pub args: Vec<String>,
}

/// File the request `input` describes, for this process: the path and operation may come from
/// the denial record it names, a relative path is taken from `cwd`, and the requester is this
/// process, whose agent `AGENT_GUARD_AGENT` (read through `env`) names.
///
/// An agent under the supervisor cannot write the audit trail (and the attempt would itself be
/// a denial), so a request by an agent is recorded by the next human command instead.
pub fn request_from(
    input: &RequestInput,
    locations: &Locations,
    policy: &Policy,
    homes: &[PathBuf],
    env: &dyn Fn(&str) -> Option<String>,
    cwd: &Path,
    now: u64,
) -> Result<Request, OverrideError> {
    let denial = match &input.denial {
        Some(id) => Some(denial_to_override(locations, id)?),
        None => None,
    };
    let raw_path = match (&input.path, &denial) {
        (Some(p), _) => p.clone(),
        (None, Some(d)) => PathBuf::from(&d.path),
        (None, None) => return Err(OverrideError::NoPath),
    };
    let ops = match (&input.ops[..], &denial) {
        ([], Some(d)) => parse_ops(&[d.op.as_str().to_string()]),
        (ops, _) => parse_ops(ops),
    }?;
    let args = if !input.args.is_empty() {
        Some(input.args.clone())
    } else if ops.contains(&OpKind::Exec) {
        denial
            .as_ref()
            .and_then(|d| d.argv.as_ref())
            .map(|argv| argv.get(1..).unwrap_or(&[]).to_vec())
    } else {
        None
    };
    let spec = RequestSpec {
        path: resolve_path(&raw_path, cwd),
        ops,
        reason: input.reason.clone(),
        ttl_secs: parse_ttl(input.ttl.as_deref())?.unwrap_or(super::DEFAULT_TTL_SECS),
        args,
    };
    let agent = env(super::AGENT_ENV).filter(|a| !a.is_empty());
    let requester = Requester {
        pid: std::process::id(),
        uid: super::current_uid(),
        agent: agent.clone(),
        cwd: Some(cwd.to_path_buf()),
    };
    file_request(
        locations,
        &spec,
        denial.map(|d| d.id),
        requester,
        policy,
        homes,
        RateLimit::DEFAULT,
        agent.is_none(),
        now,
    )
}

/// A `--ttl` value in seconds.
pub fn parse_ttl(ttl: Option<&str>) -> Result<Option<u64>, Refusal> {
    ttl.map(|t| {
        crate::policy::normalize::parse_duration(t).ok_or_else(|| Refusal::BadTtl(t.to_string()))
    })
    .transpose()
}

/// The newest denial record `id`, which a request may be about: never one of agent-guard's own
/// files, which no override can cover.
fn denial_to_override(locations: &Locations, id: &str) -> Result<DenialRecord, OverrideError> {
    let records = crate::audit::read_denials(&locations.denials, None)
        .map_err(OverrideError::DenialLog)?
        .records;
    let record = records
        .into_iter()
        .rev()
        .find(|r| r.id == id)
        .ok_or_else(|| OverrideError::NoSuchDenial {
            id: id.to_string(),
            file: locations.denials.clone(),
        })?;
    if record.rule == RuleId::GuardSelf {
        return Err(Refusal::GuardFile(PathBuf::from(&record.path)).into());
    }
    Ok(record)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::overrides::events::OverrideEvent;
    use crate::overrides::RateLimit;

    fn request(id: &str, agent: &str, created_at: u64) -> Request {
        Request {
            id: id.into(),
            path: "/p/x".into(),
            ops: vec![OpKind::Unlink],
            reason: "r".into(),
            ttl_secs: 600,
            created_at,
            time: String::new(),
            denial_id: None,
            args: None,
            requester: Requester {
                pid: 1,
                uid: 1000,
                agent: Some(agent.into()),
                cwd: None,
            },
            recorded: false,
            arrived_at: created_at,
        }
    }

    #[test]
    fn ops_parse_lists_and_dedupe() {
        let ops = parse_ops(&["unlink,rmdir".into(), "unlink".into()]).unwrap();
        assert_eq!(ops, vec![OpKind::Unlink, OpKind::Rmdir]);
        assert_eq!(parse_ops(&[",".into()]), Err(Refusal::NoOps));
        assert_eq!(
            parse_ops(&["unlink,nope".into()]),
            Err(Refusal::UnknownOp("nope".into()))
        );
    }

    #[test]
    fn rate_limit_counts_per_agent_pending_and_decided() {
        let limit = RateLimit {
            max_pending: 2,
            max_per_minute: 2,
        };
        let now = 10_000;
        // Two pending of agent a: a is at its pending limit, b is not.
        let pending = [
            request("r-1", "a", now - 600),
            request("r-2", "a", now - 500),
        ];
        assert!(limit.check("agent a", &pending, &[], now).is_err());
        assert!(limit.check("agent b", &pending, &[], now).is_ok());
        // Two requests of b decided within the minute still count toward it.
        let decided: Vec<OverrideEvent> = ["r-3", "r-4"]
            .iter()
            .map(|id| request(id, "b", now - 10).event(OverrideEventKind::Deny, None, now))
            .collect();
        let err = limit
            .check("agent b", &[], &decided, now)
            .unwrap_err()
            .to_string();
        assert!(err.contains("in the last minute"), "{err}");
        // A minute later they do not.
        assert!(limit.check("agent b", &[], &decided, now + 60).is_ok());
    }

    #[test]
    fn a_recorded_request_binds_its_content() {
        let r = request("r-1", "a", 5);
        let recorded = r.event(OverrideEventKind::Request, None, 5);
        assert!(r.matches_recorded(&recorded));
        for changed in [
            Request {
                path: "/p".into(),
                ..r.clone()
            },
            Request {
                ops: vec![OpKind::Unlink, OpKind::Rmdir],
                ..r.clone()
            },
            Request {
                ttl_secs: 3600,
                ..r.clone()
            },
            Request {
                reason: "other".into(),
                ..r.clone()
            },
        ] {
            assert!(!changed.matches_recorded(&recorded), "{changed:?}");
        }
    }
}
