//! What `agent-guard undo list` shows: the kept entries grouped by agent session, with their
//! sizes and how each was kept, and the store's files that have no row (their record was lost,
//! e.g. in a crash before the audit writer committed it), named by their session and entry name.

use std::collections::{BTreeMap, HashSet};
use std::io::{self, Write};

use serde::Serialize;

use super::layout::StoreFile;
use crate::audit::StoredKept;
use crate::vocab::{human_bytes, printable};

/// The kept entries of one agent session.
#[derive(Clone, Debug, Serialize)]
pub struct SessionListing {
    pub session: String,
    pub agent: String,
    /// RFC 3339 times of its first and last entry.
    pub first: String,
    pub last: String,
    /// Bytes in the store.
    pub bytes: u64,
    pub entries: Vec<StoredKept>,
}

/// Everything `undo list` shows.
#[derive(Clone, Debug, Serialize)]
pub struct Listing {
    pub sessions: Vec<SessionListing>,
    /// Store files without a row.
    pub unrecorded: Vec<UnrecordedFile>,
}

/// A store file without a row: what its name says.
#[derive(Clone, Debug, Serialize)]
pub struct UnrecordedFile {
    pub session: String,
    pub name: String,
    pub bytes: u64,
}

/// Group `rows` (oldest first) by session; `files` (the store's, already narrowed to what the
/// listing is about) that no row names are listed apart.
pub fn listing(rows: Vec<StoredKept>, files: &[StoreFile]) -> Listing {
    let named: HashSet<&str> = rows
        .iter()
        .filter_map(|r| r.record.store_name.as_deref())
        .collect();
    let unrecorded = files
        .iter()
        .filter(|f| !named.contains(format!("{}/{}", f.session, f.name).as_str()))
        .map(|f| UnrecordedFile {
            session: f.session.to_string(),
            name: f.name.clone(),
            bytes: f.size,
        })
        .collect();
    let mut by_session: BTreeMap<String, Vec<StoredKept>> = BTreeMap::new();
    for row in rows {
        by_session
            .entry(row.record.session.clone())
            .or_default()
            .push(row);
    }
    let sessions = by_session
        .into_iter()
        .map(|(session, entries)| SessionListing {
            agent: entries[0].record.agent.clone(),
            first: entries[0].time.clone(),
            last: entries[entries.len() - 1].time.clone(),
            bytes: entries
                .iter()
                .filter(|e| e.record.how.has_store_file())
                .map(|e| e.record.size)
                .sum(),
            session,
            entries,
        })
        .collect();
    Listing {
        sessions,
        unrecorded,
    }
}

impl Listing {
    /// The listing for a human: per session a header, then one line per entry (id, time, how,
    /// size, operation, path, and whether the session had made the path itself), control
    /// characters escaped (agents choose file names).
    pub fn write_human(&self, out: &mut dyn Write) -> io::Result<()> {
        if self.sessions.is_empty() && self.unrecorded.is_empty() {
            return writeln!(out, "nothing kept");
        }
        for s in &self.sessions {
            writeln!(
                out,
                "session {} (agent {}, {} to {}): {} entries, {}",
                s.session,
                printable(&s.agent),
                s.first,
                s.last,
                s.entries.len(),
                human_bytes(s.bytes)
            )?;
            for e in &s.entries {
                let r = &e.record;
                writeln!(
                    out,
                    "  {:>6}  {}  {:<9} {:>9}  {:<8} {}{}{}",
                    e.id,
                    &e.time[11..19],
                    r.how.as_str(),
                    if r.how.has_store_file() {
                        human_bytes(r.size)
                    } else {
                        "-".to_string()
                    },
                    r.op.as_str(),
                    printable(&r.path),
                    r.dest
                        .as_deref()
                        .map(|d| format!(" -> {}", printable(d)))
                        .unwrap_or_default(),
                    if r.new_in_session {
                        "  (made during the session)"
                    } else {
                        ""
                    }
                )?;
            }
        }
        if !self.unrecorded.is_empty() {
            writeln!(
                out,
                "in the store without a record (restore these by hand from the store):"
            )?;
            for f in &self.unrecorded {
                writeln!(
                    out,
                    "  {}/{} ({})",
                    f.session,
                    printable(&f.name),
                    human_bytes(f.bytes)
                )?;
            }
        }
        Ok(())
    }
}
