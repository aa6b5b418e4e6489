//! `agent-guard undo restore ID... | --session S | --since WHEN [--path P] [--include-new]
//! [--dry-run]`: put kept entries back (`snapshots::restore` says how), and say what became of
//! each path. A restore by `--session` or `--since` leaves out what the agent's session made
//! itself, and says how many entries it left out.

use anyhow::bail;

use crate::paths::Locations;
use crate::snapshots::restore::{leave_out_new, restore, Restored, MADE_IN_SESSION};
use crate::vocab::printable;

use super::{kept_rows, refuse_agents, Selection};

#[derive(clap::Args, Debug)]
pub struct RestoreArgs {
    /// Entry ids, as `undo list` shows them.
    pub ids: Vec<i64>,
    #[command(flatten)]
    pub select: Selection,
    /// With --session or --since: restore also what the agent's session made itself and then
    /// destroyed (files and directories that did not exist before it, such as a build tree or
    /// a temporary file); left out by default. Entries named by id are always restored.
    #[arg(long)]
    pub include_new: bool,
    /// Say what would be restored, change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Print what was done to each entry as JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: &RestoreArgs, locations: &Locations) -> anyhow::Result<i32> {
    refuse_agents("restore")?;
    let s = &args.select;
    if args.ids.is_empty() && s.session.is_none() && s.since.is_none() {
        bail!("name what to restore: entry ids, --session SESSION or --since WHEN (see `agent-guard undo list`)");
    }
    let rows = kept_rows(locations, &s.query(&args.ids))?;
    if rows.is_empty() {
        return Err(crate::cli::Exit::not_found("nothing kept matches"));
    }
    let (rows, left_out) = if args.ids.is_empty() && !args.include_new {
        leave_out_new(rows)
    } else {
        (rows, Vec::new())
    };
    let mut results = restore(&locations.store, &rows, args.dry_run);
    if args.json {
        results.extend(left_out.iter().map(|r| Restored::Skipped {
            id: r.id,
            path: r.record.path.clone().into(),
            why: MADE_IN_SESSION.to_string(),
        }));
        println!("{}", serde_json::to_string_pretty(&results)?);
    } else {
        let would = if args.dry_run {
            "would restore"
        } else {
            "restored"
        };
        for r in &results {
            match r {
                Restored::InPlace { id, path } => {
                    println!(
                        "{would} {} (entry {id})",
                        printable(&path.display().to_string())
                    )
                }
                Restored::Beside { id, path, to, why } => println!(
                    "{would} {} beside it as {} (entry {id}): {why}",
                    printable(&path.display().to_string()),
                    printable(&to.display().to_string())
                ),
                Restored::Skipped { id, path, why } => println!(
                    "skipped {} (entry {id}): {why}",
                    printable(&path.display().to_string())
                ),
                Restored::Failed { id, path, why } => println!(
                    "FAILED {} (entry {id}): {why}",
                    printable(&path.display().to_string())
                ),
            }
        }
        if !left_out.is_empty() {
            println!(
                "left out {} {} kept at paths the agent's session made itself (they did not exist before it); add --include-new to restore them too",
                left_out.len(),
                if left_out.len() == 1 { "entry" } else { "entries" }
            );
        }
    }
    Ok(if results.iter().any(Restored::failed) {
        1
    } else {
        0
    })
}
