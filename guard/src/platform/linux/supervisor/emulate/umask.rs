//! Creating a file for a task with the task's umask, not ours. Each worker thread unshares its
//! file-system attributes at start, so it can set its own umask around one create without
//! touching the rest of the supervisor (the judge's own files keep the process's).
//!
//! This must never change the umask of a thread that has not unshared: that would change it for
//! every thread of the process.

use std::cell::Cell;

use crate::platform::linux::supervisor::task::TaskReader;
use crate::platform::linux::supervisor::umask_cache::UmaskCache;
use crate::platform::linux::sys::fs;

thread_local! {
    /// Whether this thread has its own fs attributes (umask); see [`unshare_fs_for_this_thread`].
    static PRIVATE_FS: Cell<bool> = const { Cell::new(false) };
}

/// Give the calling worker thread its own umask (and cwd), starting at 0, so that a create for a
/// task can apply the task's umask ([`TaskUmask::around`]).
pub fn unshare_fs_for_this_thread() {
    if fs::unshare_fs().is_ok() {
        fs::umask(0);
        PRIVATE_FS.with(|p| p.set(true));
    }
}

/// Where the tasks' umasks come from.
#[derive(Clone, Copy)]
pub struct TaskUmask<'a> {
    pub cache: &'a UmaskCache,
    pub tasks: &'a dyn TaskReader,
}

impl TaskUmask<'_> {
    /// Run `f` with the umask of task `tid` as this thread's; with this thread's own when `tid`
    /// is `None` or the thread shares its umask with the process.
    pub fn around<T>(&self, tid: Option<i32>, f: impl FnOnce() -> T) -> T {
        if !PRIVATE_FS.with(|p| p.get()) {
            // Changing the umask would change it for every thread of the process.
            return f();
        }
        let Some(tid) = tid else {
            return f();
        };
        let old = fs::umask(self.cache.get(self.tasks, tid));
        let out = f();
        fs::umask(old);
        out
    }
}
