//! The umask of recently seen threads. Reading it (/proc/TID/status) is the costliest step of a
//! supervised create, so it is kept for `UMASK_TTL`, and the whole cache is dropped whenever a
//! supervised task calls umask() (the filter notifies it).
//!
//! The umask only decides the mode of the agent's own new files (which it may chmod anyway): it
//! is not a security boundary, so a thread racing its own umask() against its creates only gets
//! the mode it raced for. It must never be used for anything that is one.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::task::TaskReader;

/// Long enough to serve a burst of creates (tar, git), far too short for a tid to be reused.
const UMASK_TTL: Duration = Duration::from_secs(2);

/// Without the task's umask, the common default rather than files more open than asked.
const DEFAULT_UMASK: libc::mode_t = 0o022;

#[derive(Default)]
pub struct UmaskCache {
    entries: Mutex<HashMap<i32, (libc::mode_t, Instant)>>,
}

impl UmaskCache {
    /// The umask of thread `tid`, read through `tasks` unless read within `UMASK_TTL`.
    pub fn get(&self, tasks: &dyn TaskReader, tid: i32) -> libc::mode_t {
        let now = Instant::now();
        if let Ok(entries) = self.entries.lock() {
            if let Some((mask, at)) = entries.get(&tid) {
                if now.duration_since(*at) < UMASK_TTL {
                    return *mask;
                }
            }
        }
        let mask = tasks.umask(tid).unwrap_or(DEFAULT_UMASK);
        if let Ok(mut entries) = self.entries.lock() {
            if entries.len() > 4096 {
                entries.retain(|_, (_, at)| now.duration_since(*at) < UMASK_TTL);
            }
            entries.insert(tid, (mask, now));
        }
        mask
    }

    /// Drop every entry: a supervised task changed its umask.
    pub fn forget_all(&self) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::linux::supervisor::task::fake::FakeTasks;

    #[test]
    fn a_umask_is_read_once_then_again_after_forget_all() {
        let cache = UmaskCache::default();
        let mut before = FakeTasks::new();
        before.umask_of(7, 0o077);
        assert_eq!(cache.get(&before, 7), 0o077);
        // The task changed it: until the cache forgets, the old value is served.
        let mut after = FakeTasks::new();
        after.umask_of(7, 0o002);
        assert_eq!(cache.get(&after, 7), 0o077);
        cache.forget_all();
        assert_eq!(cache.get(&after, 7), 0o002);
        // An unreadable umask is the common default.
        assert_eq!(cache.get(&after, 8), 0o022);
    }
}
