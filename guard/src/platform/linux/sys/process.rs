//! Identity of processes: ours and the supervised tasks' (ids, process groups, credentials).
//! Plain getters that cannot touch memory, wrapped so that callers need no unsafe.
//!
//! This must never cache: ids change (a task calls setpgid, setuid) and pids are reused.

/// getpid(2).
pub fn pid() -> i32 {
    // SAFETY: getpid has no preconditions.
    unsafe { libc::getpid() }
}

/// gettid(2): the calling thread's id (tests read their own thread as a supervised task).
#[cfg(test)]
pub fn tid() -> i32 {
    // SAFETY: gettid has no preconditions.
    unsafe { libc::gettid() }
}

/// getpgid(2) of `pid` (0: ours); -1 when there is no such process.
pub fn pgid(pid: i32) -> i32 {
    // SAFETY: getpgid has no memory preconditions.
    unsafe { libc::getpgid(pid) }
}

/// Our effective (uid, gid).
pub fn effective_ids() -> (u32, u32) {
    // SAFETY: geteuid and getegid have no preconditions.
    unsafe { (libc::geteuid(), libc::getegid()) }
}
