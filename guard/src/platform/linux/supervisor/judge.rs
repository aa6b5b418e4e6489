//! The decision side of the supervisor, as it sees it: the [`Judge`] trait. `runtime::linux`
//! implements it over the engine; tests implement it with fixed rules.
//!
//! The supervisor must never decide anything itself: every supervised action goes to the judge,
//! and only the guard's self-protection is answered without one.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::engine::{keep_refused, Event, Keep, KeepOutcome, Verdict};
use crate::snapshots::Session;

/// The decision side the supervisor asks for each supervised call.
pub trait Judge: Send + Sync {
    /// Decide one supervised call. `pid` is the calling task's id (the tid from the
    /// notification). `event.actor` carries only the pid; the judge reads the rest. A
    /// [`Verdict::Keep`] is not recorded yet: the supervisor keeps, then calls
    /// [`Judge::settle`].
    fn judge(&self, pid: i32, event: &Event) -> Verdict;

    /// The agent session whose store keep verdicts go to; `None`: this judge never keeps (and a
    /// keep verdict from it is refused).
    fn session(&self) -> Option<Arc<Session>> {
        None
    }

    /// Whether what an agent destroys at `path` is kept (a zone that keeps, outside its
    /// carve-outs): there the supervisor notes the names the session makes itself.
    fn keeps_at(&self, _path: &Path) -> bool {
        false
    }

    /// What the supervisor did with a keep verdict for `event`: record it, and give the final
    /// answer (allowed, or refused because what it destroys could not be kept).
    fn settle(&self, _pid: i32, event: &Event, keep: &Keep, outcome: KeepOutcome) -> Verdict {
        match outcome {
            KeepOutcome::Kept(_) => Verdict::Allow,
            KeepOutcome::Failed { path, failure } => {
                Verdict::Deny(keep_refused(&event.action, keep, &path, &failure))
            }
        }
    }

    /// agent-guard's own files that agents may not even see (the snapshot store): hidden in the
    /// agent's view like the secret zones, or read-supervised where they cannot be.
    fn hidden_paths(&self) -> Vec<PathBuf> {
        Vec::new()
    }

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
