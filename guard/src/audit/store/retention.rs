//! Retention of the audit trail, run by the writer thread: by age, then by size.

use super::write::StoreSink;

impl StoreSink {
    /// Delete what the retention no longer keeps; returns the rows deleted.
    pub(super) fn enforce_retention(&mut self, now_ms: i64) -> rusqlite::Result<u64> {
        let mut deleted = 0u64;
        if let Some(max_age) = self.retention.max_age {
            let cutoff = now_ms.saturating_sub(max_age.as_millis() as i64);
            // In chunks, so that a first run over a large backlog does not hold the write lock
            // (and the queue) for long.
            for table in ["decisions", "overrides"] {
                loop {
                    let n = self.conn.execute(
                        &format!(
                            "DELETE FROM {table} WHERE id IN \
                                 (SELECT id FROM {table} WHERE time_ms < ?1 LIMIT 20000)"
                        ),
                        [cutoff],
                    )?;
                    deleted += n as u64;
                    if n < 20_000 {
                        break;
                    }
                }
            }
        }
        if let Some(max_bytes) = self.retention.max_bytes {
            // Bounded: each round deletes at least 1% of the rows.
            for _ in 0..200 {
                let used = self.used_bytes()?;
                if used <= max_bytes {
                    break;
                }
                let rows = self.decision_id_span()?;
                if rows == 0 {
                    break;
                }
                // Delete the excess fraction of the rows, plus 1% so that a round rarely falls
                // short, at most 50 000 per transaction.
                let excess = (used - max_bytes) as f64 / used as f64;
                let n = ((rows as f64 * excess).ceil() as u64 + rows / 100 + 1).min(50_000);
                let n = self.conn.execute(
                    "DELETE FROM decisions WHERE id IN \
                         (SELECT id FROM decisions ORDER BY time_ms, id LIMIT ?1)",
                    [n as i64],
                )?;
                deleted += n as u64;
            }
        }
        // Freed pages stay in the file and are reused by the next inserts, so the file stops
        // growing at about `max_bytes`; it is not shrunk. (Incremental auto-vacuum would shrink
        // it, but its pointer-map upkeep cost a third of the insert throughput.)
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

    /// An estimate of the decision rows (ids are assigned in order and retention deletes the
    /// oldest, so the id span is close to the count) without a full count.
    fn decision_id_span(&self) -> rusqlite::Result<u64> {
        self.conn.query_row(
            "SELECT coalesce(max(id) - min(id) + 1, 0) FROM decisions",
            [],
            |r| Ok(r.get::<_, i64>(0)? as u64),
        )
    }
}
