//! `agent-guard undo list [--session S] [--since WHEN] [--path P] [--json]`: the kept entries
//! grouped by agent session, and the store's files that lost their record. Reads only.

use crate::paths::Locations;
use crate::snapshots::layout::store_files;
use crate::snapshots::listing::listing;

use super::{kept_rows, Selection};

#[derive(clap::Args, Debug)]
pub struct ListArgs {
    #[command(flatten)]
    pub select: Selection,
    /// Print the sessions and their entries as one JSON object.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: &ListArgs, locations: &Locations) -> anyhow::Result<i32> {
    let rows = kept_rows(locations, &args.select.query(&[]))?;
    // Files without a record have no path or time of their own: shown unless the listing is
    // narrowed to a path or a time.
    let files = if args.select.path.is_none() && args.select.since.is_none() {
        // The store is unreadable to agents: they see the records only.
        store_files(&locations.store)
            .unwrap_or_default()
            .into_iter()
            .filter(|f| args.select.session.as_ref().is_none_or(|s| &f.session == s))
            .collect()
    } else {
        Vec::new()
    };
    let listed = listing(rows, &files);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&listed)?);
    } else {
        listed.write_human(&mut std::io::stdout().lock())?;
    }
    Ok(0)
}
