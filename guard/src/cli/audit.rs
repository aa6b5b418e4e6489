//! `agent-guard audit query|export`: the SQLite audit trail of every agent decision and override
//! event, filtered, printed or exported (JSONL in the reference audit schema, or CSV).
//!
//! Read-only: this command never writes to the database (the supervisor or daemon does).

use std::fs::OpenOptions;
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;

use crate::audit::{self, AuditQuery, AuditReader, ExportFormat};
use crate::paths::Locations;
use crate::vocab::{Decision, OpKind};

#[derive(clap::Args, Debug)]
pub struct AuditArgs {
    #[command(subcommand)]
    pub command: AuditCommand,
}

#[derive(clap::Subcommand, Debug)]
pub enum AuditCommand {
    /// Print the newest recorded decisions (newest first) matching the filters.
    Query(QueryArgs),
    /// Write every matching decision and override event, oldest first, as JSONL or CSV.
    Export(ExportArgs),
    /// Check the trail's hash chains: exit 1 when a row was removed or altered.
    Verify(VerifyArgs),
}

#[derive(clap::Args, Debug)]
pub struct VerifyArgs {
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Filters shared by `query` and `export`; all given filters must match.
#[derive(clap::Args, Debug, Default)]
pub struct FilterArgs {
    /// Only decisions about processes of this agent (e.g. claude).
    #[arg(long)]
    pub agent: Option<String>,
    /// Only this operation: exec, unlink, rmdir, rename, open, truncate, link, create, signal.
    #[arg(long)]
    pub op: Option<OpKind>,
    /// Only this verdict: allow, deny or audit.
    #[arg(long)]
    pub verdict: Option<Decision>,
    /// Only this path and what lies under it (component boundaries; relative to the current
    /// directory when not absolute).
    #[arg(long, value_name = "PATH")]
    pub path: Option<PathBuf>,
    /// Only records at or after this time: a duration ago (30s, 2m, 1h, 1d) or an RFC 3339 time.
    #[arg(long, value_name = "WHEN", value_parser = super::parse_when)]
    pub since: Option<SystemTime>,
    /// Only records before this time: a duration ago or an RFC 3339 time.
    #[arg(long, value_name = "WHEN", value_parser = super::parse_when)]
    pub until: Option<SystemTime>,
    /// At most this many records (query: default 100; export: all).
    #[arg(long)]
    pub limit: Option<usize>,
}

#[derive(clap::Args, Debug)]
pub struct QueryArgs {
    #[command(flatten)]
    pub filters: FilterArgs,
    /// Print override events (request, approve, deny, revoke, expire) instead of decisions.
    #[arg(long)]
    pub overrides: bool,
    /// Print the records as JSON, one per line.
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Args, Debug)]
pub struct ExportArgs {
    #[command(flatten)]
    pub filters: FilterArgs,
    /// jsonl (timestamp, event_id, actor, action, decision, policy_id, context) or csv.
    #[arg(long, value_name = "FORMAT", default_value = "jsonl")]
    pub format: ExportFormat,
    /// Write to FILE (created 0600, replaced if it exists) instead of standard output.
    #[arg(long, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

impl FilterArgs {
    pub fn to_query(&self, default_limit: Option<usize>) -> anyhow::Result<AuditQuery> {
        let millis = |t: SystemTime| {
            t.duration_since(UNIX_EPOCH)
                .map(|d| d.as_millis() as i64)
                .unwrap_or(0)
        };
        let path_prefix = match &self.path {
            None => None,
            Some(p) => {
                let absolute = if p.is_absolute() {
                    p.clone()
                } else {
                    std::env::current_dir()
                        .context("--path is relative and the current directory is unknown")?
                        .join(p)
                };
                Some(
                    crate::vocab::path::clean(&absolute)
                        .to_string_lossy()
                        .into_owned(),
                )
            }
        };
        Ok(AuditQuery {
            agent: self.agent.clone(),
            op: self.op,
            verdict: self.verdict,
            path_prefix,
            since_ms: self.since.map(millis),
            until_ms: self.until.map(millis),
            limit: self.limit.or(default_limit),
        })
    }
}

/// Exit status 0 (`verify`: 1 when a chain is broken); an unreadable database is an error. A
/// database that does not exist yet (nothing was ever recorded) holds no records: `query` and
/// `export` print none, `verify` says so.
pub fn run(args: &AuditArgs, locations: &Locations) -> anyhow::Result<i32> {
    let db = &locations.audit_db;
    let missing = std::fs::symlink_metadata(db).is_err();
    if missing {
        if let AuditCommand::Verify(_) = &args.command {
            eprintln!(
                "agent-guard: no audit database at {} yet: nothing to verify",
                db.display()
            );
        }
        return Ok(0);
    }
    match &args.command {
        AuditCommand::Verify(v) => {
            let reports = AuditReader::open(db)?.verify()?;
            let stdout = io::stdout();
            let mut out = stdout.lock();
            let intact = audit::write_verify_report(&reports, v.json, &mut out)
                .context("writing to standard output")?;
            Ok(if intact { 0 } else { 1 })
        }
        AuditCommand::Query(q) => {
            let query = q.filters.to_query(Some(100))?;
            let reader = AuditReader::open(db)?;
            let stdout = io::stdout();
            let mut out = stdout.lock();
            let result = if q.overrides {
                reader
                    .overrides(&query)?
                    .iter()
                    .try_for_each(|o| o.write_line(&mut out, q.json))
            } else {
                reader
                    .query(&query)?
                    .iter()
                    .try_for_each(|d| d.write_line(&mut out, q.json))
            };
            finish(result.and_then(|()| out.flush()))
        }
        AuditCommand::Export(e) => {
            let query = e.filters.to_query(None)?;
            let reader = AuditReader::open(db)?;
            match &e.output {
                Some(file) => {
                    let f = OpenOptions::new()
                        .write(true)
                        .create(true)
                        .truncate(true)
                        .mode(0o600)
                        .open(file)
                        .with_context(|| format!("creating the export file {}", file.display()))?;
                    let mut out = BufWriter::new(f);
                    let n = reader.export(&query, e.format, &mut out)?;
                    eprintln!("agent-guard: exported {n} records to {}", file.display());
                    Ok(0)
                }
                None => {
                    let stdout = io::stdout();
                    let mut out = BufWriter::new(stdout.lock());
                    match reader.export(&query, e.format, &mut out) {
                        Ok(_) => Ok(0),
                        Err(audit::AuditStoreError::Output(err))
                            if err.kind() == io::ErrorKind::BrokenPipe =>
                        {
                            Ok(0)
                        }
                        Err(err) => Err(err.into()),
                    }
                }
            }
        }
    }
}

fn finish(result: io::Result<()>) -> anyhow::Result<i32> {
    match result {
        Ok(()) => Ok(0),
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(0),
        Err(e) => Err(e).context("writing to standard output"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::{AuditStore, AuditStoreConfig, DecisionRecord};
    use crate::vocab::{Mode, RuleId};
    use clap::Parser;

    #[derive(Parser, Debug)]
    struct Cli {
        #[command(flatten)]
        args: AuditArgs,
    }

    #[test]
    fn parses_filters_and_formats() {
        let cli = Cli::try_parse_from([
            "x",
            "query",
            "--agent",
            "claude",
            "--op",
            "unlink",
            "--verdict",
            "deny",
            "--path",
            "/a/proj/../proj/",
            "--since",
            "1h",
            "--until",
            "2030-01-01T00:00:00Z",
            "--limit",
            "5",
            "--json",
        ])
        .unwrap();
        let AuditCommand::Query(q) = &cli.args.command else {
            panic!("expected query: {cli:?}")
        };
        assert!(q.json);
        let query = q.filters.to_query(Some(100)).unwrap();
        assert_eq!(query.agent.as_deref(), Some("claude"));
        assert_eq!(query.op, Some(OpKind::Unlink));
        assert_eq!(query.verdict, Some(Decision::Deny));
        assert_eq!(query.path_prefix.as_deref(), Some("/a/proj"));
        assert_eq!(query.until_ms, Some(1_893_456_000_000));
        assert_eq!(query.limit, Some(5));
        let hour_ago = SystemTime::now() - std::time::Duration::from_secs(3600);
        let since = query.since_ms.unwrap();
        let expected = hour_ago.duration_since(UNIX_EPOCH).unwrap().as_millis() as i64;
        assert!((since - expected).abs() < 60_000, "{since} vs {expected}");

        let cli =
            Cli::try_parse_from(["x", "export", "--format", "csv", "--output", "/tmp/o"]).unwrap();
        let AuditCommand::Export(e) = &cli.args.command else {
            panic!("expected export")
        };
        assert_eq!(e.format, ExportFormat::Csv);

        for (arg, value) in [
            ("--format", "xml"),
            ("--verdict", "maybe"),
            ("--op", "delete"),
            ("--since", "last week"),
        ] {
            let sub = if arg == "--format" { "export" } else { "query" };
            let err = Cli::try_parse_from(["x", sub, arg, value])
                .unwrap_err()
                .to_string();
            assert!(err.contains(arg), "{arg}: {err}");
        }
    }

    #[test]
    fn export_to_a_file_streams_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let locations = Locations::in_state_dir(dir.path());
        // Nothing recorded yet: no records, no error.
        let fresh = run(
            &Cli::try_parse_from(["x", "query"]).unwrap().args,
            &locations,
        )
        .unwrap();
        assert_eq!(fresh, 0);

        let store = AuditStore::open(&locations.audit_db, AuditStoreConfig::default()).unwrap();
        for i in 0..10 {
            store.record_decision(DecisionRecord {
                time_ms: 1000 + i,
                agent: "claude".into(),
                agent_pid: 1,
                pid: 2,
                start_key: 3,
                exe: "/bin/rm".into(),
                op: OpKind::Unlink,
                path: format!("/a/proj/f{i}"),
                dest: None,
                zone: Some("/a/proj".into()),
                rule: Some(RuleId::ProtectedDelete),
                verdict: Decision::Deny,
                mode: Mode::Enforce,
                policy_version: "v".into(),
                argv: None,
                count: 1,
            });
        }
        store.flush().unwrap();
        let out = dir.path().join("export.csv");
        let cli = Cli::try_parse_from([
            "x",
            "export",
            "--format",
            "csv",
            "--output",
            out.to_str().unwrap(),
        ])
        .unwrap();
        assert_eq!(run(&cli.args, &locations).unwrap(), 0);
        let text = std::fs::read_to_string(&out).unwrap();
        assert_eq!(text.lines().count(), 11, "{text}");
        assert!(text.lines().nth(1).unwrap().contains("/a/proj/f0"));
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&out).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
}
