//! The store's size against the policy's limit (`snapshots.max_size_mb`).
//!
//! A sensor reserves an entry's bytes before it keeps it; past the limit the reservation fails
//! and the operation is refused, so a full store never drops a snapshot silently. The count
//! starts from a walk of the store (on a background thread when the sensor starts, and after
//! each purge) and grows with what this process keeps. Other processes sharing the store (a
//! second `run`) are seen at the next walk: the limit is approximate by what they keep
//! meanwhile, never by what this one keeps.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::vocab::KeepFailure;

/// Bytes in the store and the most it may hold.
#[derive(Debug)]
pub struct StoreBudget {
    used: AtomicU64,
    limit: AtomicU64,
}

impl StoreBudget {
    pub fn new(limit: u64) -> StoreBudget {
        StoreBudget {
            used: AtomicU64::new(0),
            limit: AtomicU64::new(limit),
        }
    }

    /// Count `bytes` as stored, or refuse when the store would grow past its limit.
    pub fn reserve(&self, bytes: u64) -> Result<(), KeepFailure> {
        let limit = self.limit.load(Ordering::Relaxed);
        self.used
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |used| {
                used.checked_add(bytes).filter(|total| *total <= limit)
            })
            .map(|_| ())
            .map_err(|used| KeepFailure::StoreFull { used, limit })
    }

    /// Give back a reservation whose entry was not kept after all.
    pub fn release(&self, bytes: u64) {
        let _ = self
            .used
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |used| {
                Some(used.saturating_sub(bytes))
            });
    }

    /// What a walk of the store found.
    pub fn set_used(&self, bytes: u64) {
        self.used.store(bytes, Ordering::Relaxed);
    }

    /// A reloaded policy's limit.
    pub fn set_limit(&self, bytes: u64) {
        self.limit.store(bytes, Ordering::Relaxed);
    }

    pub fn used(&self) -> u64 {
        self.used.load(Ordering::Relaxed)
    }

    pub fn limit(&self) -> u64 {
        self.limit.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_stop_at_the_limit_and_can_be_given_back() {
        let budget = StoreBudget::new(100);
        assert!(budget.reserve(60).is_ok());
        assert_eq!(
            budget.reserve(41),
            Err(KeepFailure::StoreFull {
                used: 60,
                limit: 100
            })
        );
        assert!(budget.reserve(40).is_ok());
        budget.release(50);
        assert_eq!(budget.used(), 50);
        budget.set_limit(40);
        assert!(budget.reserve(1).is_err());
    }
}
