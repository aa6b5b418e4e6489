//! The audit trail's hash chains (schema version 3): each row's `hash` is SHA-256 over the
//! previous row's hash in its chain and the row's own values, id included. A row removed from
//! the middle of a chain, or altered, no longer links; `chain_heads` holds each chain's newest
//! row and the last row retention removed from its start, so a chain's ends are known too.
//!
//! Three chains, because retention removes rows of different kinds at different times, and
//! always the oldest of a chain (a prefix): [`Chain::Kept`] (deny and audit decisions, removed
//! only by age), [`Chain::Allowed`] (allowed decisions, also removed first when the trail is over
//! its size) and [`Chain::Overrides`] (override events, by age).
//!
//! What it proves: that the rows were not changed by something that did not recompute the
//! chain (a `DELETE` in the sqlite3 shell, a disk error, a half-restored backup). A writer that
//! recomputes every hash after its change is not detected: there is no secret here, and none
//! could be kept from a process with the user's (or root's) rights over the file.

use rusqlite::types::Value;
use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;
use sha2::{Digest, Sha256};

/// One chain of rows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Chain {
    Kept,
    Allowed,
    Overrides,
}

impl Chain {
    pub const ALL: [Chain; 3] = [Chain::Kept, Chain::Allowed, Chain::Overrides];

    pub fn name(self) -> &'static str {
        match self {
            Chain::Kept => "decisions (deny, audit)",
            Chain::Allowed => "decisions (allow)",
            Chain::Overrides => "override events",
        }
    }

    /// The key in `chain_heads`.
    fn key(self) -> &'static str {
        match self {
            Chain::Kept => "kept",
            Chain::Allowed => "allowed",
            Chain::Overrides => "overrides",
        }
    }

    pub(super) fn table(self) -> &'static str {
        match self {
            Chain::Kept | Chain::Allowed => "decisions",
            Chain::Overrides => "overrides",
        }
    }

    /// The SQL condition that selects the chain's rows in its table.
    pub(super) fn rows(self) -> &'static str {
        match self {
            Chain::Kept => "verdict != 'allow'",
            Chain::Allowed => "verdict = 'allow'",
            Chain::Overrides => "1",
        }
    }

    /// The chain of a decision by its verdict.
    pub fn of_verdict(verdict: &str) -> Chain {
        if verdict == "allow" {
            Chain::Allowed
        } else {
            Chain::Kept
        }
    }

    /// The columns hashed, in order (`hash` excluded), for [`row_hash`].
    pub(super) fn columns(self) -> &'static str {
        match self {
            Chain::Kept | Chain::Allowed => {
                "id, time_ms, agent, agent_pid, pid, start_key, exe, op, path, dest, zone, rule, \
                 verdict, mode, policy_version, argv, count"
            }
            Chain::Overrides => "id, time_ms, event, override_id, path, ops, who, ttl_secs",
        }
    }
}

/// Where a chain begins and ends.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct Head {
    pub head_id: i64,
    pub head_hash: Option<Vec<u8>>,
    /// The last row removed from the chain's start, and its hash: the first remaining row links
    /// to it.
    pub anchor_id: i64,
    pub anchor_hash: Option<Vec<u8>>,
}

pub(super) fn load_head(conn: &Connection, chain: Chain) -> rusqlite::Result<Head> {
    Ok(conn
        .query_row(
            "SELECT head_id, head_hash, anchor_id, anchor_hash FROM chain_heads WHERE chain = ?1",
            [chain.key()],
            |r| {
                Ok(Head {
                    head_id: r.get(0)?,
                    head_hash: r.get(1)?,
                    anchor_id: r.get(2)?,
                    anchor_hash: r.get(3)?,
                })
            },
        )
        .optional()?
        .unwrap_or_default())
}

pub(super) fn save_head(conn: &Connection, chain: Chain, head: &Head) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT INTO chain_heads (chain, head_id, head_hash, anchor_id, anchor_hash) \
         VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (chain) DO UPDATE SET head_id = ?2, \
         head_hash = ?3, anchor_id = ?4, anchor_hash = ?5",
        params![
            chain.key(),
            head.head_id,
            head.head_hash,
            head.anchor_id,
            head.anchor_hash
        ],
    )?;
    Ok(())
}

/// The hash of a row: SHA-256 over the previous row's hash (nothing for a chain's first row)
/// and each value, tagged by type and length-prefixed so that no two rows encode alike.
pub fn row_hash(prev: Option<&[u8]>, values: &[Value]) -> Vec<u8> {
    let mut h = Sha256::new();
    match prev {
        Some(p) => {
            h.update([1u8]);
            h.update(p);
        }
        None => h.update([0u8]),
    }
    for v in values {
        match v {
            Value::Null => h.update([0u8]),
            Value::Integer(i) => {
                h.update([1u8]);
                h.update(i.to_le_bytes());
            }
            Value::Real(f) => {
                h.update([2u8]);
                h.update(f.to_bits().to_le_bytes());
            }
            Value::Text(t) => {
                h.update([3u8]);
                h.update((t.len() as u64).to_le_bytes());
                h.update(t.as_bytes());
            }
            Value::Blob(b) => {
                h.update([4u8]);
                h.update((b.len() as u64).to_le_bytes());
                h.update(b);
            }
        }
    }
    h.finalize().to_vec()
}

/// Record that retention removed every row of `chain` up to and including `last_removed`:
/// its hash becomes the chain's anchor. Call before deleting them.
pub(super) fn move_anchor(
    conn: &Connection,
    chain: Chain,
    last_removed: i64,
) -> rusqlite::Result<()> {
    let hash: Option<Option<Vec<u8>>> = conn
        .query_row(
            &format!(
                "SELECT hash FROM {} WHERE id = ?1 AND {}",
                chain.table(),
                chain.rows()
            ),
            [last_removed],
            |r| r.get(0),
        )
        .optional()?;
    let mut head = load_head(conn, chain)?;
    head.anchor_id = last_removed;
    head.anchor_hash = hash.flatten();
    save_head(conn, chain, &head)
}

/// What `audit verify` found in one chain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ChainReport {
    pub chain: &'static str,
    /// Rows checked.
    pub rows: u64,
    /// Rows written before the chain existed (schema version 2 or earlier): not covered.
    pub legacy_rows: u64,
    /// Every place the chain does not hold, oldest first (at most [`MAX_BREAKS`]).
    pub breaks: Vec<String>,
}

/// At most this many breaks are listed per chain.
pub const MAX_BREAKS: usize = 20;

/// Walk one chain from its anchor to its head.
pub(super) fn verify_chain(conn: &Connection, chain: Chain) -> rusqlite::Result<ChainReport> {
    let head = load_head(conn, chain)?;
    let mut report = ChainReport {
        chain: chain.name(),
        rows: 0,
        legacy_rows: 0,
        breaks: Vec::new(),
    };
    let note = |report: &mut ChainReport, text: String| {
        if report.breaks.len() < MAX_BREAKS {
            report.breaks.push(text);
        }
    };
    let columns = chain.columns();
    let n = columns.split(',').count();
    let mut stmt = conn.prepare(&format!(
        "SELECT {columns}, hash FROM {} WHERE {} ORDER BY id",
        chain.table(),
        chain.rows()
    ))?;
    let mut rows = stmt.query([])?;
    let mut prev: Option<Vec<u8>> = head.anchor_hash.clone();
    let mut prev_id = head.anchor_id;
    let mut seen_hashed = false;
    while let Some(row) = rows.next()? {
        let values: Vec<Value> = (0..n).map(|i| row.get(i)).collect::<Result<_, _>>()?;
        let id = match values[0] {
            Value::Integer(id) => id,
            _ => 0,
        };
        let stored: Option<Vec<u8>> = row.get(n)?;
        let Some(stored) = stored else {
            if seen_hashed {
                note(
                    &mut report,
                    format!("row {id} has no hash after chained rows: it was inserted or altered outside agent-guard"),
                );
            } else {
                report.legacy_rows += 1;
            }
            continue;
        };
        report.rows += 1;
        if !seen_hashed && id <= head.anchor_id {
            note(
                &mut report,
                format!("row {id} is at or before the start of the chain (row {}), which retention removed", head.anchor_id),
            );
        }
        // The first chained row after legacy rows starts the chain when no anchor says more.
        let expected_prev = if seen_hashed || head.anchor_hash.is_some() {
            prev.as_deref()
        } else {
            None
        };
        if row_hash(expected_prev, &values) != stored {
            note(
                &mut report,
                if seen_hashed || head.anchor_hash.is_some() {
                    format!("row {id} does not follow row {prev_id}: it was altered, or rows between them were removed")
                } else {
                    format!("row {id}, the first of the chain, was altered, or rows before it were removed")
                },
            );
        }
        seen_hashed = true;
        prev = Some(stored);
        prev_id = id;
    }
    if head.head_id > 0 || head.head_hash.is_some() {
        if head.head_hash != prev || head.head_id != prev_id {
            note(
                &mut report,
                format!("the chain ends at row {prev_id}, but its last row written was row {}: rows at its end were removed or altered", head.head_id),
            );
        }
    } else if seen_hashed {
        note(
            &mut report,
            "the chain's record of its last row is missing".to_string(),
        );
    }
    Ok(report)
}

/// Print the reports of `audit verify`: one line per chain and one per break (or the reports
/// as JSON). Returns whether every chain holds.
pub fn write_verify_report(
    reports: &[ChainReport],
    json: bool,
    out: &mut dyn std::io::Write,
) -> std::io::Result<bool> {
    let intact = reports.iter().all(|r| r.breaks.is_empty());
    if json {
        serde_json::to_writer_pretty(
            &mut *out,
            &serde_json::json!({"intact": intact, "chains": reports}),
        )?;
        writeln!(out)?;
        return Ok(intact);
    }
    for r in reports {
        let legacy = if r.legacy_rows > 0 {
            format!(
                " ({} older rows written before the chain are not covered)",
                r.legacy_rows
            )
        } else {
            String::new()
        };
        if r.breaks.is_empty() {
            writeln!(out, "ok      {}: {} rows chained{legacy}", r.chain, r.rows)?;
        } else {
            writeln!(out, "BROKEN  {}: {} rows chained{legacy}", r.chain, r.rows)?;
            for b in &r.breaks {
                writeln!(out, "        {b}")?;
            }
        }
    }
    writeln!(
        out,
        "{}",
        if intact {
            "The audit trail is intact: no row was removed or altered."
        } else {
            "The audit trail was tampered with: rows were removed or altered (see above)."
        }
    )?;
    Ok(intact)
}
