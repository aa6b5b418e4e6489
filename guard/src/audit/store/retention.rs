//! Retention of the audit trail, run by the writer thread: by age, then by size.
//!
//! Every deletion removes the oldest rows of one hash chain (a prefix in id order) and first
//! moves the chain's anchor to the last row removed, so `audit verify` still finds the chain
//! whole. By age, each chain loses the rows older than `max_age`; by size, only allowed
//! decisions go, oldest first: a flood of allowed calls, or of anything, can never push a
//! denial, an audit or an override event out before its age (issue 16, item 9). When nothing
//! allowed is left and the trail is still over its size, the sink stops storing new allowed
//! decisions (`full`, counted) until a later run finds room.

use rusqlite::OptionalExtension;

use super::chain::{self, Chain};
use super::write::StoreSink;

/// Rows deleted per statement: a first run over a large backlog does not hold the write lock
/// (and the queue) for long at a time.
const CHUNK: i64 = 20_000;

impl StoreSink {
    /// Delete what the retention no longer keeps; returns the rows deleted.
    pub(super) fn enforce_retention(&mut self, now_ms: i64) -> rusqlite::Result<u64> {
        let mut deleted = 0u64;
        if let Some(max_age) = self.retention.max_age {
            let cutoff = now_ms.saturating_sub(max_age.as_millis() as i64);
            for chain in Chain::ALL {
                deleted += self.delete_older(chain, cutoff)?;
            }
        }
        if let Some(max_bytes) = self.retention.max_bytes {
            // Bounded: each round deletes at least 1% of the allowed rows.
            let mut over = self.used_bytes()? > max_bytes;
            for _ in 0..200 {
                if !over {
                    break;
                }
                let used = self.used_bytes()?;
                let rows = self.allowed_rows()?;
                if rows == 0 {
                    break;
                }
                // The excess fraction of the rows, plus 1% so that a round rarely falls short.
                let excess = used.saturating_sub(max_bytes) as f64 / used as f64;
                let n = ((rows as f64 * excess).ceil() as u64 + rows / 100 + 1).min(50_000);
                deleted += self.delete_oldest_allowed(n as i64)?;
                over = self.used_bytes()? > max_bytes;
            }
            self.full = over;
        } else {
            self.full = false;
        }
        // Freed pages stay in the file and are reused by the next inserts, so the file stops
        // growing at about `max_bytes`; it is not shrunk. (Incremental auto-vacuum would shrink
        // it, but its pointer-map upkeep cost a third of the insert throughput.)
        Ok(deleted)
    }

    /// Delete the rows of `chain` that come before its oldest row written at or after `cutoff`
    /// (in id order), all older than `cutoff`. A row written late with an old time waits for
    /// the next run rather than breaking the prefix.
    fn delete_older(&mut self, chain: Chain, cutoff: i64) -> rusqlite::Result<u64> {
        let (table, rows) = (chain.table(), chain.rows());
        // In id order from the oldest: the walk costs the rows it will delete, and stops at
        // the first one to keep.
        let first_kept: Option<i64> = self
            .conn
            .query_row(
                &format!(
                    "SELECT id FROM {table} NOT INDEXED WHERE {rows} AND time_ms >= ?1 ORDER BY id LIMIT 1"
                ),
                [cutoff],
                |r| r.get(0),
            )
            .optional()?;
        let last: Option<i64> = self.conn.query_row(
            &format!("SELECT max(id) FROM {table} WHERE {rows} AND id < ?1"),
            [first_kept.unwrap_or(i64::MAX)],
            |r| r.get(0),
        )?;
        let Some(last) = last else { return Ok(0) };
        self.delete_through(chain, last)
    }

    /// Delete the `n` oldest allowed decisions.
    fn delete_oldest_allowed(&mut self, n: i64) -> rusqlite::Result<u64> {
        let last: Option<i64> = self
            .conn
            .query_row(
                "SELECT id FROM decisions NOT INDEXED WHERE verdict = 'allow' ORDER BY id LIMIT 1 OFFSET ?1",
                [n - 1],
                |r| r.get(0),
            )
            .optional()?;
        let last = match last {
            Some(id) => id,
            // Fewer than n: all of them.
            None => match self.conn.query_row(
                "SELECT max(id) FROM decisions WHERE verdict = 'allow'",
                [],
                |r| r.get::<_, Option<i64>>(0),
            )? {
                Some(id) => id,
                None => return Ok(0),
            },
        };
        self.delete_through(Chain::Allowed, last)
    }

    /// Delete every row of `chain` with an id up to `last`, moving its anchor there first, in
    /// one transaction per chunk.
    fn delete_through(&mut self, chain: Chain, last: i64) -> rusqlite::Result<u64> {
        let (table, rows) = (chain.table(), chain.rows());
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        chain::move_anchor(&tx, chain, last)?;
        tx.commit()?;
        let mut deleted = 0u64;
        loop {
            let n = self.conn.execute(
                &format!(
                    "DELETE FROM {table} WHERE id IN \
                     (SELECT id FROM {table} WHERE {rows} AND id <= ?1 ORDER BY id LIMIT {CHUNK})"
                ),
                [last],
            )?;
            deleted += n as u64;
            if (n as i64) < CHUNK {
                break;
            }
        }
        Ok(deleted)
    }

    /// Bytes in pages that hold data (file pages minus free pages).
    fn used_bytes(&self) -> rusqlite::Result<u64> {
        let pragma = |name: &str| -> rusqlite::Result<i64> {
            self.conn.pragma_query_value(None, name, |r| r.get(0))
        };
        let pages = pragma("page_count")? - pragma("freelist_count")?;
        Ok((pages.max(0) * pragma("page_size")?) as u64)
    }

    /// An estimate of the allowed rows without a full count: the id span of the table (ids are
    /// assigned in order and retention deletes the oldest) scaled by the allowed share of the
    /// newest thousand rows.
    fn allowed_rows(&self) -> rusqlite::Result<u64> {
        let span: i64 = self.conn.query_row(
            "SELECT coalesce(max(id) - min(id) + 1, 0) FROM decisions",
            [],
            |r| r.get(0),
        )?;
        let (allowed, sampled): (i64, i64) = self.conn.query_row(
            "SELECT coalesce(sum(verdict = 'allow'), 0), count(*) FROM \
             (SELECT verdict FROM decisions ORDER BY id DESC LIMIT 1000)",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        if allowed == 0 {
            // None among the newest: are there any at all?
            let any: Option<i64> = self
                .conn
                .query_row(
                    "SELECT id FROM decisions WHERE verdict = 'allow' LIMIT 1",
                    [],
                    |r| r.get(0),
                )
                .optional()?;
            return Ok(u64::from(any.is_some()) * (span as u64).max(1));
        }
        Ok((span as u64) * (allowed as u64) / (sampled.max(1) as u64))
    }
}
