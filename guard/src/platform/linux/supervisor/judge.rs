//! The decision side of the supervisor, as it sees it: the [`Judge`] trait. `runtime::linux`
//! implements it over the engine; tests implement it with fixed rules.
//!
//! The supervisor must never decide anything itself: every supervised action goes to the judge,
//! and only the guard's self-protection is answered without one.

use std::path::{Path, PathBuf};

use crate::engine::{Event, Verdict};

/// The decision side the supervisor asks for each supervised call.
pub trait Judge: Send + Sync {
    /// Decide one supervised call. `pid` is the calling task's id (the tid from the
    /// notification). `event.actor` carries only the pid; the judge reads the rest.
    fn judge(&self, pid: i32, event: &Event) -> Verdict;

    /// The roots of the secret zones. Their regular files are indexed by inode at start so that
    /// a hard link to a secret file elsewhere is judged as the secret file itself.
    fn secret_paths(&self) -> Vec<PathBuf> {
        Vec::new()
    }

    /// The places inside a directory being moved to `to` whose contents must be judged as
    /// creates under `to` (a tree moved into place must not bring, say, a git hook with it
    /// without one create to judge): relative paths, `""` for the whole tree.
    fn moved_tree_probes(&self, _to: &Path) -> Vec<PathBuf> {
        Vec::new()
    }

    /// Whether judging this exec needs its environment (`Action::Exec::env`): git may read an
    /// alias from it. The sensor reads it only then.
    fn needs_exec_env(&self, _event: &Event) -> bool {
        false
    }

    /// Called once inside the supervisor process, after it was forked from the caller and before
    /// it serves. Threads of the caller do not exist there (fork copies only the calling
    /// thread): start here whatever the judge needs in the background (policy file watcher,
    /// audit writer). The judge lives in this process for as long as anything is supervised.
    fn start_in_supervisor(&self) {}

    /// Called when CMD has exited, before its status goes to `run`'s caller: write out the
    /// records queued so far, so that what the run did is in the logs when `run` returns
    /// (processes CMD left behind may add more later).
    fn flush_records(&self) {}

    /// Called once in the supervisor process after the last supervised process has exited,
    /// just before it exits (with `_exit`, so no destructor runs): flush what was queued.
    fn stop_in_supervisor(&self) {}
}
