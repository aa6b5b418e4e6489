//! Which processes are the agent's: a task is in the supervised tree iff it descends from the
//! supervisor. The supervisor is a child subreaper, so an orphan of the tree is reparented to it
//! (or to a subreaper inside the tree), never out of the tree; every process the agent starts
//! stays below it, and nothing else ever comes below it.
//!
//! The supervisor is an ancestor of the tree and may therefore look into every process of the
//! user (its memory, its fds, its root); it must lend that power only for the tree's own
//! processes. This module must never answer "inside" for a process it could not follow up to the
//! supervisor: a parent that vanished or whose pid was reused is read again, and what cannot be
//! read is outside.

use std::io;

use crate::platform::linux::procfs::{parse_stat, TaskDir};
use crate::platform::linux::sys::process;

/// Ancestors followed at most: deeper than any real tree, and bounded against a loop of reused
/// pids.
const MAX_DEPTH: usize = 4096;

/// Where a task stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Membership {
    /// It descends from the supervisor.
    Inside,
    /// It does not (or its ancestry cannot be followed).
    Outside,
}

/// The parent and start time of the task `dir` was opened for.
fn parent_and_start(dir: &TaskDir) -> io::Result<(i32, u64)> {
    let bytes = dir.read(c"stat")?;
    let stat = parse_stat(&String::from_utf8_lossy(&bytes))
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
    Ok((stat.ppid, stat.start_time))
}

/// Whether the task `dir` was opened for descends from this process (the supervisor). Read
/// through the handle: if that task is gone, the answer is `Outside`, whoever has its pid now.
pub fn membership(dir: &TaskDir) -> Membership {
    membership_below(dir, process::pid())
}

/// [`membership`] relative to `ancestor` instead of this process (tests).
pub fn membership_below(dir: &TaskDir, ancestor: i32) -> Membership {
    let Ok((mut ppid, mut start)) = parent_and_start(dir) else {
        return Membership::Outside;
    };
    // The task whose parent is being looked for, held open so that it can be read again when
    // its parent turns out to be gone.
    let mut child: Option<TaskDir> = None;
    for _ in 0..MAX_DEPTH {
        if ppid == ancestor {
            return Membership::Inside;
        }
        if ppid <= 1 {
            return Membership::Outside;
        }
        // A parent starts before its child. A "parent" that started later is another process
        // that took the pid of one that exited: the child was reparented meanwhile, and its
        // stat, read again, names its new parent.
        let parent = TaskDir::open(ppid)
            .ok()
            .and_then(|p| parent_and_start(&p).ok().map(|s| (p, s)));
        match parent {
            Some((parent, (grand, parent_start))) if parent_start <= start => {
                child = Some(parent);
                ppid = grand;
                start = parent_start;
            }
            _ => {
                let again = match &child {
                    Some(c) => parent_and_start(c),
                    None => parent_and_start(dir),
                };
                let Ok((p, s)) = again else {
                    return Membership::Outside;
                };
                if p == ppid && s == start {
                    // Unchanged and still unreadable: nothing to follow.
                    return Membership::Outside;
                }
                ppid = p;
                start = s;
            }
        }
    }
    Membership::Outside
}

/// [`membership`] of a pid or tid, opening its `/proc` entry.
pub fn membership_of(pid: i32) -> Membership {
    match TaskDir::open(pid) {
        Ok(dir) => membership(&dir),
        Err(_) => Membership::Outside,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    #[test]
    fn descendants_are_inside_and_others_outside() {
        let me = process::pid();
        // A grandchild: sh forks sleep and waits for it.
        let mut child = Command::new("sh")
            .args(["-c", "sleep 30 & echo $!; wait"])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(child.stdout.as_mut().unwrap()),
            &mut line,
        )
        .unwrap();
        let grandchild: i32 = line.trim().parse().unwrap();
        let dir = TaskDir::open(grandchild).unwrap();
        assert_eq!(membership_below(&dir, me), Membership::Inside);
        // Our own parent is not below us; init is below nothing.
        let parent = std::os::unix::process::parent_id() as i32;
        assert_eq!(
            membership_below(&TaskDir::open(parent).unwrap(), me),
            Membership::Outside
        );
        assert_eq!(
            membership_below(&TaskDir::open(1).unwrap(), me),
            Membership::Outside
        );
        // Relative to our parent, we and the grandchild are inside.
        assert_eq!(membership_below(&dir, parent), Membership::Inside);
        let _ = Command::new("kill").arg(grandchild.to_string()).status();
        let _ = child.kill();
        let _ = child.wait();
        // The handle names the reaped grandchild: nothing is inside any more.
        std::thread::sleep(std::time::Duration::from_millis(100));
        assert_eq!(membership_below(&dir, me), Membership::Outside);
    }
}
