//! One notification in, one answer out: decode the syscall (`call`), plan it (`plan`), ask the
//! judge about each action, then let the kernel run the call, refuse it, or perform it here on
//! the checked path (`emulate`).
//!
//! This module must never answer `CONTINUE` for a call the plan emulates (the kernel would read
//! its path again: time of check, time of use), never act on a notification whose id is no
//! longer valid, and never act for a task with more than the task's own credentials.

use std::sync::{Arc, RwLock};

use crate::engine::{Action, Actor, Event};

use super::call::{self, Call};
use super::emulate::{Delivery, Emulator, TaskUmask};
use super::judge::Judge;
use super::plan::{self, GuardProcesses, Plan, Planner};
use super::refusal::refusal_of;
use super::secret_inodes::SecretInodes;
use super::task::{LiveTasks, TaskReader};
use super::umask_cache::UmaskCache;
use crate::platform::linux::sys::creds;
use crate::platform::linux::sys::notify::{Listener, Notification, Response};

/// The per-supervisor state every worker shares.
pub struct Handler {
    pub judge: Arc<dyn Judge>,
    pub secrets: SecretInodes,
    pub guard: GuardProcesses,
    /// The supervisor runs as root: an emulated call is performed in the worker thread switched
    /// to the task's credentials (`sys::creds::as_task`). An unprivileged supervisor's tasks
    /// cannot have more than it has (no_new_privs: no set-id exec), so it acts as itself.
    pub acts_as_task: bool,
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
            acts_as_task: self.acts_as_task,
            needs_exec_env: &|action| {
                self.judge.needs_exec_env(&Event {
                    actor: actor(n.tid),
                    action: action.clone(),
                })
            },
        };
        let plan = plan::plan(&planner, call).unwrap_or_else(|e| match refusal_of(&e) {
            Some(action) => Plan::Refuse(action.clone()),
            None => Plan::Answer(Response::failed(&e)),
        });
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
            Plan::Refuse(action) => {
                // As for the guard: the record is the judge's, the refusal is not negotiable
                // (the supervisor would lend its own power).
                let _ = self.judge.judge(
                    n.tid,
                    &Event {
                        actor: actor(n.tid),
                        action,
                    },
                );
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
                    if !self.acts_as_task {
                        emulator.run(emulation)?
                    } else {
                        // A root supervisor acts with the task's credentials, never its own,
                        // and never lets the kernel redo the call instead (CONTINUE would
                        // reopen the path-swap race the emulation closes).
                        match self.tasks.credentials(n.tid) {
                            None => Response::Error(libc::EPERM),
                            Some(creds) => match creds::as_task(&creds, || emulator.run(emulation))
                            {
                                Ok(answer) => answer?,
                                Err(_) => Response::Error(libc::EPERM),
                            },
                        }
                    }
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
