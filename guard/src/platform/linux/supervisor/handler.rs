//! One notification in, one answer out: decode the syscall (`call`), plan it (`plan`), ask the
//! judge about each action, then let the kernel run the call, refuse it, or perform it here on
//! the checked path (`emulate`).
//!
//! This module must never answer `CONTINUE` for a call the plan emulates (the kernel would read
//! its path again: time of check, time of use), never act on a notification whose id is no
//! longer valid, and never act for a task with more than the task's own credentials.

use std::sync::{Arc, RwLock};

use crate::engine::{Action, Actor, Event, Keep, KeepFailure, KeepOutcome};

use super::call::{self, Call};
use super::emulate::{Delivery, Emulation, Emulator, TaskUmask};
use super::judge::Judge;
use super::keep::Keeper;
use super::new_names::NameChange;
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
    /// Where keep verdicts are carried out (the judge's session), if it keeps.
    pub keeper: Option<Keeper>,
    /// Held by every emulation that changes names: shared by those that act in one call,
    /// exclusively by a keep, which looks at a name, keeps what is there and then acts on the
    /// name. Without it a second thread could put another file at the name between the look
    /// and the act (a rename away, then a rename in), and the act would destroy that file
    /// unkept. Every agent call that removes or replaces a name is emulated, so every one of
    /// them waits here; creating calls need not (they fail on a name that is there).
    pub names: RwLock<()>,
}

/// Renames retried at most this often when their destination appeared after they were judged.
const REPLANS: u32 = 3;

impl Handler {
    /// Handle one notification. `None` means no answer is due (the task is gone).
    pub fn handle(&self, listener: &Listener, n: &Notification) -> Option<Response> {
        self.handle_attempt(listener, n, 0)
    }

    fn handle_attempt(
        &self,
        listener: &Listener,
        n: &Notification,
        attempt: u32,
    ) -> Option<Response> {
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
                match self.judged(n.tid, actions) {
                    Err(Refused) => Response::Error(libc::EPERM),
                    Ok(keeps) if !keeps.is_empty() => {
                        // The kernel performs these itself (a truncate through a /proc magic
                        // link): there is no point at which to keep first.
                        self.cannot_keep(n.tid, &keeps, "this call cannot be kept first");
                        Response::Error(libc::EPERM)
                    }
                    Ok(_) => {
                        if execs {
                            // The file may be one the task just wrote through an fd we
                            // installed: our copy must be closed before the kernel checks that
                            // nothing has it open for writing (ETXTBSY). See `emulate`.
                            drop(self.installing_writable.write());
                        }
                        Response::Continue
                    }
                }
            }
            Plan::Emulate(actions, emulation) => {
                let Ok(keeps) = self.judged(n.tid, actions) else {
                    return Some(Response::Error(libc::EPERM));
                };
                if !listener.id_valid(n.id) {
                    return None;
                }
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
                // A root supervisor acts with the task's credentials, never its own, and never
                // lets the kernel redo the call instead (CONTINUE would reopen the path-swap
                // race the emulation closes).
                // A rename judged onto a name that was not there is performed with
                // RENAME_NOREPLACE: a file put there since was not judged (nor kept), and is
                // judged now, on a new plan.
                let replan_if_taken = matches!(
                    emulation,
                    Emulation::Rename {
                        noreplace_added: true,
                        ..
                    }
                ) && attempt < REPLANS;
                let changes_names = matches!(
                    emulation,
                    Emulation::Unlink { .. }
                        | Emulation::Rename { .. }
                        | Emulation::Link { .. }
                        | Emulation::LinkObject { .. }
                );
                let task_creds = if self.acts_as_task {
                    match self.tasks.credentials(n.tid) {
                        Some(creds) => Some(creds),
                        None => return Some(Response::Error(libc::EPERM)),
                    }
                } else {
                    None
                };
                // The names the call makes, moves or removes in zones that keep, for the
                // session: noted once it is performed, after what it keeps is settled (a kept
                // entry says whether its path was new before the call), and before the names
                // lock is let go (another call's keep looks at the marks).
                let new_names = self.keeper.as_ref().map(|k| &k.session.new_names);
                let name_change = |emulation: &Emulation| {
                    new_names.map_or(NameChange::Nothing, |names| {
                        NameChange::before(emulation, &|p| self.judge.keeps_at(p), names)
                    })
                };
                if keeps.is_empty() {
                    let names_held = changes_names.then(|| self.names.read());
                    let change = name_change(&emulation);
                    // None: nothing to answer (the task is gone, or a FIFO open answers later).
                    let response = match &task_creds {
                        None => emulator.run(emulation),
                        Some(task) => creds::as_task(task, || emulator.run(emulation))
                            .unwrap_or(Some(Response::Error(libc::EPERM))),
                    };
                    if let Some(names) = new_names {
                        change.after(response.as_ref(), names);
                    }
                    drop(names_held);
                    if replan_if_taken && response == Some(Response::Error(libc::EEXIST)) {
                        return self.handle_attempt(listener, n, attempt + 1);
                    }
                    return response;
                }
                if task_creds.is_some_and(|task| !acts_as_itself(&task)) {
                    // Keeping writes the store, which only the supervisor's own identity may;
                    // performing the call with it would lend it to the task.
                    self.cannot_keep(
                        n.tid,
                        &keeps,
                        "the process runs with other credentials than the supervisor, which keeps only for processes that have its own",
                    );
                    return Some(Response::Error(libc::EPERM));
                }
                let Some(keeper) = &self.keeper else {
                    self.cannot_keep(n.tid, &keeps, "agent-guard has no snapshot store here");
                    return Some(Response::Error(libc::EPERM));
                };
                let wanted: Vec<&Keep> = keeps.iter().map(|(_, k)| k).collect();
                let names_held = changes_names.then(|| self.names.write());
                let mut change = name_change(&emulation);
                let (response, outcomes) = keeper.run(&emulator, emulation, &wanted);
                change.kept(
                    &outcomes
                        .iter()
                        .flat_map(|o| match o {
                            KeepOutcome::Kept(entries) => entries.as_slice(),
                            KeepOutcome::Failed { .. } => &[],
                        })
                        .map(|e| e.path.as_path())
                        .collect::<Vec<_>>(),
                );
                let mut allowed = true;
                for ((event, keep), outcome) in keeps.iter().zip(outcomes) {
                    allowed &= self.judge.settle(n.tid, event, keep, outcome).allows();
                }
                if !allowed {
                    // Nothing was done: a keep that fails stops the call before it happens.
                    change.after(
                        Some(&Response::Error(libc::EPERM)),
                        &keeper.session.new_names,
                    );
                    return Some(Response::Error(libc::EPERM));
                }
                change.after(response.as_ref(), &keeper.session.new_names);
                drop(names_held);
                if replan_if_taken && response == Some(Response::Error(libc::EEXIST)) {
                    return self.handle_attempt(listener, n, attempt + 1);
                }
                response?
            }
        };
        // No last ID_VALID check: an answer to a notification whose task died meanwhile is
        // refused by the kernel (ENOENT), and nothing was done for it (emulation checks first).
        Some(response)
    }

    /// Judge each action: refused at the first the judge denies, else the keeps to carry out
    /// with their events (unrecorded until [`Judge::settle`]).
    fn judged(&self, tid: i32, actions: Vec<Action>) -> Result<Vec<(Event, Keep)>, Refused> {
        let mut keeps = Vec::new();
        for action in actions {
            let event = Event {
                actor: actor(tid),
                action,
            };
            match self.judge.judge(tid, &event) {
                crate::engine::Verdict::Keep(keep) => keeps.push((event, keep)),
                verdict if !verdict.allows() => return Err(Refused),
                _ => {}
            }
        }
        Ok(keeps)
    }

    /// Record keeps that cannot be carried out for this call as refused.
    fn cannot_keep(&self, tid: i32, keeps: &[(Event, Keep)], why: &'static str) {
        for (event, keep) in keeps {
            let path = keep
                .items
                .first()
                .map(|i| i.path.clone())
                .unwrap_or_default();
            let outcome = KeepOutcome::Failed {
                path,
                failure: KeepFailure::Unsupported(why),
            };
            let _ = self.judge.settle(tid, event, keep, outcome);
        }
    }
}

/// The judge refused one of the call's actions.
struct Refused;

fn actor(tid: i32) -> Actor {
    Actor {
        pid: tid,
        ..Actor::default()
    }
}

/// Whether a task's credentials are the supervisor's own (a root agent under a root
/// supervisor): what the supervisor does for it with its own identity is then no more.
fn acts_as_itself(task: &creds::Credentials) -> bool {
    creds::thread_has_ids_of(task).unwrap_or(false)
}
