//! `agent-guard denials [--since WHEN] [--json] [--follow]`: what was denied (or, in audit mode,
//! would have been), read from denials.jsonl and its rotated files.
//!
//! Human output is one line per denial; `--json` prints the records themselves (JSONL). Paths
//! and reasons are printed with control characters escaped: an agent chooses file names and
//! must not be able to rewrite the user's terminal through them.

use std::io::{self, Write};
use std::ops::ControlFlow;
use std::time::{Duration, SystemTime};

use anyhow::Context;

use crate::audit;
use crate::paths::Locations;

/// How long `--follow` sleeps between looks at the log (see `audit::DenialFollower` for why it
/// polls).
const FOLLOW_INTERVAL: Duration = Duration::from_millis(250);

#[derive(clap::Args, Debug)]
pub struct DenialsArgs {
    /// Only denials at or after this time: a duration ago (30s, 2m, 1h, 1d) or an RFC 3339 time.
    #[arg(long, value_name = "WHEN", value_parser = super::parse_when)]
    pub since: Option<SystemTime>,
    /// Print the records as JSON, one per line.
    #[arg(long)]
    pub json: bool,
    /// Keep printing new denials as they happen (until interrupted); survives log rotation.
    #[arg(long)]
    pub follow: bool,
}

/// Exit status 0; an unreadable log is an error (exit 1 from main).
pub fn run(args: &DenialsArgs, locations: &Locations) -> anyhow::Result<i32> {
    let stdout = io::stdout();
    let mut out = stdout.lock();
    run_to(args, locations, &mut out)
}

/// [`run`] writing to `out`.
pub fn run_to(
    args: &DenialsArgs,
    locations: &Locations,
    out: &mut dyn Write,
) -> anyhow::Result<i32> {
    let path = &locations.denials;
    let since = args.since;
    if args.follow {
        let mut failure = None;
        audit::follow(path, since, FOLLOW_INTERVAL, |record| {
            match record.write_line(out, args.json).and_then(|()| out.flush()) {
                Ok(()) => ControlFlow::Continue(()),
                Err(e) => {
                    failure = Some(e);
                    ControlFlow::Break(())
                }
            }
        })
        .with_context(|| format!("following {}", path.display()))?;
        return finish(failure.map_or(Ok(()), Err));
    }
    let outcome = audit::read_denials(path, since)
        .with_context(|| format!("reading the denial log {}", path.display()))?;
    if outcome.malformed > 0 {
        eprintln!(
            "agent-guard: skipped {} malformed line(s) in {} and its rotated files",
            outcome.malformed,
            path.display()
        );
    }
    if outcome.records.is_empty() && !args.json {
        eprintln!("agent-guard: no denials in {}", path.display());
    }
    let result = outcome
        .records
        .iter()
        .try_for_each(|r| r.write_line(out, args.json))
        .and_then(|()| out.flush());
    finish(result)
}

/// A closed pipe (`agent-guard denials | head`) ends the output normally.
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
    use crate::audit::record::sample_record;
    use crate::audit::DenialRecord;
    use crate::audit::{DenialLog, DenialLogConfig};
    use clap::Parser;

    #[derive(Parser, Debug)]
    struct Cli {
        #[command(flatten)]
        args: DenialsArgs,
    }

    #[test]
    fn since_is_parsed_and_a_bad_value_names_the_argument() {
        let cli = Cli::try_parse_from(["x", "--since", "2m", "--json"]).unwrap();
        let ago = SystemTime::now()
            .duration_since(cli.args.since.unwrap())
            .unwrap();
        assert!(
            ago >= Duration::from_secs(120) && ago < Duration::from_secs(180),
            "{ago:?}"
        );
        assert!(cli.args.json);
        let cli = Cli::try_parse_from(["x", "--since", "1970-01-01T00:00:05Z"]).unwrap();
        assert_eq!(
            cli.args.since,
            Some(SystemTime::UNIX_EPOCH + Duration::from_secs(5))
        );
        let err = Cli::try_parse_from(["x", "--since", "2 minutes"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("--since"), "{err}");
        assert!(err.contains("30s"), "{err}");
    }

    #[test]
    fn run_reads_the_log_of_the_locations() {
        let dir = tempfile::tempdir().unwrap();
        let locations = Locations::in_state_dir(dir.path());
        let log = DenialLog::open(&locations.denials, DenialLogConfig::default()).unwrap();
        let now = SystemTime::now();
        let mut recent = sample_record("/p/recent");
        recent.id = "2-2-2".into();
        recent.time = crate::vocab::time::rfc3339_millis(now);
        recent.ts = now
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        log.log(sample_record("/p/old"));
        log.log(recent);
        drop(log);
        let mut args = DenialsArgs {
            since: Some(now - Duration::from_secs(3600)),
            json: true,
            follow: false,
        };
        let mut out = Vec::new();
        assert_eq!(run_to(&args, &locations, &mut out).unwrap(), 0);
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<DenialRecord> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 1, "{text}");
        assert_eq!(lines[0].path, "/p/recent");
        args.since = None;
        args.json = false;
        let mut out = Vec::new();
        run_to(&args, &locations, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(text.lines().count(), 2, "{text}");
        assert!(
            text.lines().next().unwrap().contains("DENY unlink /p/old"),
            "{text}"
        );
        // A log replaced by a symlink is an error that names it.
        std::fs::remove_file(&locations.denials).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", &locations.denials).unwrap();
        let err = run_to(&args, &locations, &mut Vec::new()).unwrap_err();
        assert!(format!("{err:#}").contains("denials.jsonl"), "{err:#}");
    }
}
