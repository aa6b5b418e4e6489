//! One notification in, one answer out: decode the syscall (`call`), plan it (`plan`), ask the
//! judge about each action, then let the kernel run the call, refuse it, or perform it here on
//! the checked path (`emulate`).
//!
//! This module must never answer `CONTINUE` for a call the plan emulates (the kernel would read
//! its path again: time of check, time of use), never act on a notification whose id is no
//! longer valid, and never act for a task with other credentials than a root supervisor's.

use std::sync::{Arc, RwLock};

use crate::engine::{Action, Actor, Event};

use super::call::{self, Call};
use super::emulate::{Delivery, Emulator, TaskUmask};
use super::judge::Judge;
use super::plan::{self, GuardProcesses, Plan, Planner};
use super::secret_inodes::SecretInodes;
use super::task::{LiveTasks, TaskReader};
use super::umask_cache::UmaskCache;
use crate::platform::linux::sys::notify::{Listener, Notification, Response};

/// The per-supervisor state every worker shares.
pub struct Handler {
    pub judge: Arc<dyn Judge>,
    pub secrets: SecretInodes,
    pub guard: GuardProcesses,
    /// The supervisor runs as root: its effective (uid, gid), which a task must have for the
    /// supervisor to act for it (an unprivileged supervisor's tasks cannot have other
    /// credentials, so there is nothing to check).
    pub check_creds: Option<(u32, u32)>,
    pub umasks: UmaskCache,
    /// Held (shared) by a worker from installing a writable fd in a task until it has closed its
    /// own copy; an exec is answered only once none is held (see `emulate`).
    pub installing_writable: Arc<RwLock<()>>,
    pub tasks: LiveTasks,
}

impl Handler {
    /// Handle one notification. `None` means no answer is due (the task is gone).
    pub fn handle(&self, listener: &Listener, n: &Notification) -> Option<Response> {
        let call = call::decode(n.nr, n.args);
        if call == Call::Umask {
            self.umasks.forget_all();
        }
        let planner = Planner {
            tid: n.tid,
            tasks: &self.tasks,
            secrets: &self.secrets,
            guard: &self.guard,
            moved_tree_probes: &|to| self.judge.moved_tree_probes(to),
        };
        let plan =
            plan::plan(&planner, call).unwrap_or_else(|e| Plan::Answer(Response::failed(&e)));
        let response = match plan {
            Plan::Answer(r) => r,
            Plan::Guard(target) => {
                let event = Event {
                    actor: actor(n.tid),
                    action: Action::Signal {
                        target_pid: target,
                        target_is_guard: true,
                    },
                };
                // The record is the judge's business; the refusal is not negotiable: an audit-
                // mode verdict must not let the agent switch the enforcement off.
                let _ = self.judge.judge(n.tid, &event);
                Response::Error(libc::EPERM)
            }
            Plan::Check(actions) => {
                let execs = actions.iter().any(|a| matches!(a, Action::Exec { .. }));
                if !self.allowed(n.tid, actions) {
                    Response::Error(libc::EPERM)
                } else {
                    if execs {
                        // The file may be one the task just wrote through an fd we installed:
                        // our copy must be closed before the kernel checks that nothing has
                        // it open for writing (ETXTBSY). See `emulate`.
                        drop(self.installing_writable.write());
                    }
                    Response::Continue
                }
            }
            Plan::Emulate(actions, emulation) => {
                if !self.allowed(n.tid, actions) {
                    Response::Error(libc::EPERM)
                } else if !listener.id_valid(n.id) {
                    return None;
                } else if self
                    .check_creds
                    .is_some_and(|ids| self.tasks.effective_ids(n.tid) != Some(ids))
                {
                    // Acting for a task with other credentials would lend it ours.
                    Response::Continue
                } else {
                    let emulator = Emulator {
                        deliver: Delivery {
                            listener,
                            id: n.id,
                            installing_writable: &self.installing_writable,
                        },
                        umask: TaskUmask {
                            cache: &self.umasks,
                            tasks: &self.tasks,
                        },
                    };
                    // None: nothing to answer (the task is gone, or a FIFO open answers later).
                    emulator.run(emulation)?
                }
            }
        };
        // No last ID_VALID check: an answer to a notification whose task died meanwhile is
        // refused by the kernel (ENOENT), and nothing was done for it (emulation checks first).
        Some(response)
    }

    fn allowed(&self, tid: i32, actions: Vec<Action>) -> bool {
        actions.into_iter().all(|action| {
            let event = Event {
                actor: actor(tid),
                action,
            };
            self.judge.judge(tid, &event).allows()
        })
    }
}

fn actor(tid: i32) -> Actor {
    Actor {
        pid: tid,
        ..Actor::default()
    }
}
