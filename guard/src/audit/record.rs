//! The denial record: one JSON object per line of `denials.jsonl` (docs/audit.md, "The denial
//! record").
//!
//! It keeps codex-es-guard's keys (`ts`, `op`, `path`, `dest`, `zone`, `process`, `ancestor`) so
//! tools written for that log keep working, and adds what an agent needs to act on a denial
//! (`reason`, `hint`) and what a human needs to trace it (`id`, `time`, `pid`, `exe`, `rule`).
//! This module only builds and formats records; it must never do I/O.

use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::vocab::path::is_within;
use crate::vocab::time::rfc3339_millis;
use crate::vocab::{printable, Action, AgentInfo, Decision, Event, OpKind, RuleId, Verdict};

/// One line of `denials.jsonl`.
///
/// Keys that codex-es-guard did not write default when read back (empty, 0, `deny`), so its old
/// log lines stay readable.
///
/// Paths are stored as strings: a path that is not valid UTF-8 is written with U+FFFD in place of
/// the invalid bytes (JSON cannot carry raw bytes), so such a record names the file only
/// approximately.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DenialRecord {
    /// Unique id: milliseconds since the epoch, the writing process's pid and a per-process
    /// counter, so ids from several supervisors sharing one log never collide.
    #[serde(default)]
    pub id: String,
    /// codex-es-guard: unix seconds.
    pub ts: u64,
    /// RFC 3339, UTC, milliseconds (`2026-11-21T07:52:00.123Z`).
    #[serde(default)]
    pub time: String,
    pub op: OpKind,
    pub path: String,
    /// The second path of a rename or link; `null` otherwise (codex-es-guard writes `null` too).
    pub dest: Option<String>,
    /// The root of the zone involved; `null` for exec rules and guard files.
    pub zone: Option<String>,
    /// The acting process's name (basename of its real executable).
    pub process: String,
    /// The agent the process descends from (the agent pattern that matched).
    pub ancestor: String,
    #[serde(default)]
    pub pid: i32,
    #[serde(default)]
    pub exe: String,
    #[serde(default)]
    pub agent_pid: i32,
    /// The rule id (`protected_delete`, `secret_zone`, ...), stable across versions; a name this
    /// version does not know (empty in a codex-es-guard line) is kept as written.
    #[serde(default = "no_rule")]
    pub rule: RuleId,
    /// `deny` or `audit` (never `allow`: allowed operations have no denial record).
    #[serde(default = "denied")]
    pub decision: Decision,
    /// One sentence a language model can act on.
    #[serde(default)]
    pub reason: String,
    /// The exact command that requests an override.
    #[serde(default)]
    pub hint: String,
    /// For an exec: the arguments the program was run with (argv, `argv[0]` first), as denied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub argv: Option<Vec<String>>,
    /// Set on a summary of repeated denials: this record stands for `count` more denials like
    /// it (see `audit::aggregate`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repeated: Option<Repeated>,
}

/// The `rule` of a codex-es-guard line, which names none.
fn no_rule() -> RuleId {
    RuleId::Unknown(String::new())
}

/// The `decision` of a codex-es-guard line, which only ever recorded denials.
fn denied() -> Decision {
    Decision::Deny
}

static NEXT_ID: AtomicU64 = AtomicU64::new(0);

/// What a summary record stands for (see `audit::aggregate`): the denials after the first of its key within a window.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Repeated {
    /// How many denials this record stands for.
    pub count: u64,
    /// The paths they were about: a directory's entries (`/a/b/*`) or a zone (`/a/**`).
    pub pattern: String,
    /// RFC 3339 times of the first and last of them.
    pub first: String,
    pub last: String,
}

impl DenialRecord {
    /// The record of a deny or audit verdict; `None` for an allow.
    pub fn new(
        event: &Event,
        agent: &AgentInfo,
        verdict: &Verdict,
        now: SystemTime,
    ) -> Option<DenialRecord> {
        let (decision, denial) = match verdict {
            Verdict::Allow | Verdict::Keep(_) | Verdict::WouldKeep(_) => return None,
            Verdict::Deny(d) => (Decision::Deny, d),
            Verdict::Audit(d) => (Decision::Audit, d),
        };
        let since_epoch = now.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
        let actor = &event.actor;
        Some(DenialRecord {
            id: next_id(since_epoch),
            ts: since_epoch.as_secs(),
            time: rfc3339_millis(now),
            op: denial.op,
            path: lossy(&denial.path),
            dest: denial.dest.as_deref().map(lossy),
            zone: denial.zone.as_deref().map(lossy),
            process: process_name(event),
            ancestor: agent.name.clone(),
            pid: actor.pid,
            exe: lossy(&actor.exe),
            agent_pid: agent.pid,
            rule: denial.rule.clone(),
            decision,
            reason: denial.reason.clone(),
            hint: denial.hint.clone(),
            argv: match &event.action {
                Action::Exec { argv, .. } => Some(argv.clone()),
                _ => None,
            },
            repeated: None,
        })
    }

    /// The record's time in milliseconds since the epoch: from `time` when it parses, else `ts`.
    /// Used to order records read back from several files.
    pub fn unix_millis(&self) -> i128 {
        OffsetDateTime::parse(&self.time, &Rfc3339)
            .map(|t| t.unix_timestamp_nanos() / 1_000_000)
            .unwrap_or(self.ts as i128 * 1000)
    }

    /// The record as one line of output: its JSON, or [`DenialRecord::human_line`].
    pub fn write_line(&self, out: &mut dyn Write, json: bool) -> io::Result<()> {
        if json {
            serde_json::to_writer(&mut *out, self)?;
            out.write_all(b"\n")
        } else {
            writeln!(out, "{}", self.human_line())
        }
    }

    /// One line for a human: time, decision, op, path, rule, who, reason and the override
    /// command, with control characters escaped (agents choose file names).
    pub fn human_line(&self) -> String {
        let r = self;
        let mut line = format!(
            "{} {} {} {}",
            r.time,
            r.decision.as_str().to_ascii_uppercase(),
            r.op,
            printable(&r.path)
        );
        if let Some(dest) = &r.dest {
            line.push_str(&format!(" -> {}", printable(dest)));
        }
        if let Some(rep) = &r.repeated {
            line.push_str(&format!(
                " and {} more like it under {} until {}",
                rep.count,
                printable(&rep.pattern),
                printable(&rep.last)
            ));
        }
        line.push_str(&format!(
            " [{}] by {} (pid {}) under {}: {}",
            printable(r.rule.as_str()),
            printable(&r.process),
            r.pid,
            printable(&r.ancestor),
            printable(&r.reason)
        ));
        if !r.hint.is_empty() {
            line.push_str(&format!(" Override: {}", printable(&r.hint)));
        }
        line
    }
}

/// The latest denial of `path` (or below it) in `records`, to show next to a request.
pub fn latest_denial_of<'a>(records: &'a [DenialRecord], path: &Path) -> Option<&'a DenialRecord> {
    let root = path.as_os_str().as_bytes();
    records
        .iter()
        .filter(|r| is_within(r.path.as_bytes(), root))
        .max_by_key(|r| r.unix_millis())
}

fn next_id(since_epoch: Duration) -> String {
    let n = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    format!("{}-{}-{}", since_epoch.as_millis(), std::process::id(), n)
}

/// The name codex-es-guard put in `process`: the real executable's basename (never `argv[0]`,
/// which the agent controls), falling back to comm when the sensor had no executable.
fn process_name(event: &Event) -> String {
    let actor = &event.actor;
    match actor.exe.file_name() {
        Some(name) => name.to_string_lossy().into_owned(),
        None if !actor.comm.is_empty() => actor.comm.clone(),
        None => actor.argv0.clone(),
    }
}

fn lossy(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

/// A denial record as written, for tests: an unlink of `path` in the protected zone `/p`.
#[cfg(test)]
pub(crate) fn sample_record(path: &str) -> DenialRecord {
    DenialRecord {
        id: "1-1-1".into(),
        ts: 1_718_000_000,
        time: "2024-06-10T06:13:20.000Z".into(),
        op: OpKind::Unlink,
        path: path.into(),
        dest: None,
        zone: Some("/p".into()),
        process: "rm".into(),
        ancestor: "claude".into(),
        pid: 7,
        exe: "/bin/rm".into(),
        agent_pid: 1,
        rule: RuleId::ProtectedDelete,
        decision: Decision::Deny,
        reason: "Deleting files in /p is blocked.".into(),
        hint: "agent-guard override request --op unlink --path /p/x".into(),
        argv: None,
        repeated: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vocab::{Actor, Denial};
    use std::path::PathBuf;

    fn event() -> Event {
        Event {
            actor: Actor {
                pid: 4242,
                exe: PathBuf::from("/usr/bin/rm"),
                argv0: "git".into(),
                comm: "rm".into(),
                ..Actor::default()
            },
            action: Action::Unlink {
                path: PathBuf::from("/home/u/src/main.rs"),
            },
        }
    }

    fn denial() -> Denial {
        Denial {
            rule: RuleId::ProtectedDelete,
            op: OpKind::Unlink,
            path: PathBuf::from("/home/u/src/main.rs"),
            dest: None,
            zone: Some(PathBuf::from("/home/u/src")),
            reason: "Deleting files in /home/u/src is blocked.".into(),
            hint: "agent-guard override request --path /home/u/src/main.rs --op unlink".into(),
        }
    }

    fn agent() -> AgentInfo {
        AgentInfo {
            name: "claude".into(),
            pid: 100,
        }
    }

    #[test]
    fn allow_has_no_record() {
        assert!(
            DenialRecord::new(&event(), &agent(), &Verdict::Allow, SystemTime::now()).is_none()
        );
    }

    #[test]
    fn deny_record_carries_codex_es_guard_keys_and_ours() {
        let now = UNIX_EPOCH + Duration::from_millis(1_718_000_000_123);
        let rec = DenialRecord::new(&event(), &agent(), &Verdict::Deny(denial()), now).unwrap();
        let json: serde_json::Value = serde_json::to_value(&rec).unwrap();
        assert_eq!(json["ts"], 1_718_000_000u64);
        assert_eq!(json["op"], "unlink");
        assert_eq!(json["path"], "/home/u/src/main.rs");
        assert!(
            json["dest"].is_null(),
            "dest must be present and null: {json}"
        );
        assert_eq!(json["zone"], "/home/u/src");
        // The real executable's name, not the argv[0] the agent chose.
        assert_eq!(json["process"], "rm");
        assert_eq!(json["ancestor"], "claude");
        assert_eq!(json["time"], "2024-06-10T06:13:20.123Z");
        assert_eq!(json["pid"], 4242);
        assert_eq!(json["exe"], "/usr/bin/rm");
        assert_eq!(json["agent_pid"], 100);
        assert_eq!(json["rule"], "protected_delete");
        assert_eq!(json["decision"], "deny");
        assert!(json["reason"].as_str().unwrap().contains("blocked"));
        assert!(json["hint"]
            .as_str()
            .unwrap()
            .starts_with("agent-guard override"));
        assert!(json["id"].as_str().unwrap().starts_with("1718000000123-"));
        let back: DenialRecord = serde_json::from_value(json).unwrap();
        assert_eq!(back, rec);
        assert_eq!(back.unix_millis(), 1_718_000_000_123);
    }

    #[test]
    fn audit_verdict_is_recorded_as_audit() {
        let rec = DenialRecord::new(
            &event(),
            &agent(),
            &Verdict::Audit(denial()),
            SystemTime::now(),
        )
        .unwrap();
        assert_eq!(rec.decision, Decision::Audit);
    }

    #[test]
    fn ids_are_unique_within_one_millisecond() {
        let now = SystemTime::now();
        let v = Verdict::Deny(denial());
        let a = DenialRecord::new(&event(), &agent(), &v, now).unwrap();
        let b = DenialRecord::new(&event(), &agent(), &v, now).unwrap();
        assert_ne!(a.id, b.id);
    }

    #[test]
    fn codex_es_guard_line_reads_with_defaults() {
        let old = r#"{"ts":1718000000,"op":"unlink","path":"/p","dest":null,"zone":"/z","process":"rm","ancestor":"claude"}"#;
        let rec: DenialRecord = serde_json::from_str(old).unwrap();
        assert_eq!(rec.ancestor, "claude");
        assert_eq!(rec.decision, Decision::Deny);
        assert_eq!(rec.unix_millis(), 1_718_000_000_000);
        // Without its codex-es-guard keys a line is not a denial record.
        assert!(serde_json::from_str::<DenialRecord>(r#"{"ts":1,"op":"unlink"}"#).is_err());
    }

    #[test]
    fn a_rule_this_version_does_not_know_reads_and_writes_back_as_written() {
        let old = r#"{"ts":1718000000,"op":"unlink","path":"/p","dest":null,"zone":"/z","process":"rm","ancestor":"claude"}"#;
        let rec: DenialRecord = serde_json::from_str(old).unwrap();
        assert_eq!(rec.rule, RuleId::Unknown(String::new()));
        assert_eq!(serde_json::to_value(&rec).unwrap()["rule"], "");
        let later = old.replace("\"ts\"", "\"rule\":\"a_later_rule\",\"ts\"");
        let rec: DenialRecord = serde_json::from_str(&later).unwrap();
        assert_eq!(rec.rule.to_string(), "a_later_rule");
        assert_eq!(serde_json::to_value(&rec).unwrap()["rule"], "a_later_rule");
        let known = old.replace("\"ts\"", "\"rule\":\"guard_self\",\"ts\"");
        let rec: DenialRecord = serde_json::from_str(&known).unwrap();
        assert_eq!(rec.rule, RuleId::GuardSelf);
    }
    #[test]
    fn human_line_has_the_facts_and_escapes_control_characters() {
        let line = sample_record("/p/evil\n\x1b[2Jname").human_line();
        assert!(!line.contains('\n') && !line.contains('\x1b'), "{line:?}");
        for part in [
            "2024-06-10T06:13:20.000Z",
            "DENY",
            "unlink",
            "/p/evil\\n\\u{1b}[2Jname",
            "[protected_delete]",
            "blocked",
            "agent-guard override request",
        ] {
            assert!(line.contains(part), "{part:?} missing in {line:?}");
        }
    }
}
