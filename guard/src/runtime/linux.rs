//! Linux: `agent-guard run -- CMD`. Supervise CMD and every process it starts as an AI agent.
//!
//! Every process under the supervisor is agent-attributed, named by the agent option (default:
//! the basename of CMD). The seccomp supervisor in `platform::linux::supervisor` does the kernel
//! work and asks the [`Judge`]; [`AgentTree`] answers from the [`Runtime`] (policy, grants,
//! engine, records), reading `/proc` only when the decision or its record needs it.
//!
//! Nothing here touches the kernel itself: that is `platform::linux`.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{FactsUse, Runtime, RuntimeConfig};
use crate::overrides::{OverrideError, AGENT_ENV};
use crate::paths::{process_env, Locations};
use crate::platform::linux::procfs;
use crate::platform::linux::recent_facts::RecentFacts;
use crate::platform::linux::supervisor::{self, Judge, SupervisorConfig, SupervisorError};
use crate::policy::{load_for_user, PolicyError, ZoneKind};
use crate::snapshots::Session;
use crate::vocab::{Action, AgentInfo, Attribution, Event, Keep, KeepOutcome, Verdict};

/// How `run` was asked to supervise.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// The policy file; `None`: `$AGENT_GUARD_POLICY`, `/etc/agent-guard/policy.json`, the
    /// embedded default.
    pub policy: Option<PathBuf>,
    /// The agent's name in records and messages; `None`: the basename of CMD.
    pub agent: Option<String>,
    /// Log what would be denied, deny nothing.
    pub audit: bool,
}

/// Why `run` could not supervise CMD.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Policy(#[from] PolicyError),
    /// Approved overrides exist but cannot be read.
    #[error(transparent)]
    Grants(#[from] OverrideError),
    #[error(transparent)]
    Supervisor(#[from] SupervisorError),
}

impl RunError {
    /// The exit status `run` ends with: 2 for bad input, 127 when CMD could not be started
    /// under the supervisor (as a shell does for a command it cannot run).
    pub fn exit_code(&self) -> i32 {
        match self {
            RunError::Policy(_) | RunError::Grants(_) => 2,
            RunError::Supervisor(_) => 127,
        }
    }
}

/// Supervise `cmd` as an agent until it and every process it started have exited. Returns
/// CMD's exit status (128+N when a signal N killed it).
pub fn supervise(cmd: &[OsString], options: &RunOptions) -> Result<i32, RunError> {
    let loaded = load_for_user(options.policy.as_deref(), &process_env)?;
    for warning in &loaded.policy.warnings {
        eprintln!("agent-guard: warning: {warning}");
    }
    let locations = Locations::for_user(&process_env);
    let agent = options.agent.clone().unwrap_or_else(|| {
        Path::new(&cmd[0])
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    });
    // The snapshot store is made now, so that the agent's view can cover it from the start
    // (what earlier sessions kept is in it too). Whether or not this policy keeps, the agent
    // must not read it: reads are covered (hidden, or supervised) whenever it exists.
    let store_exists = make_store(&locations.store);
    let supervise_reads = has_secret_zones(&loaded.policy) || store_exists;
    let config = RuntimeConfig {
        policy_file: loaded.file,
        ctx: loaded.ctx,
        locations,
        force_audit: options.audit,
        keeps: true,
    };
    let runtime = Arc::new(Runtime::new(loaded.policy, config)?);
    // The supervised tree inherits this: `override approve` refuses politely when it is set (the
    // guard-files rule is what actually stops an agent from approving), and requests are
    // rate-limited per agent.
    // The pid is this process's, `agent-guard run` itself: it stands for the agent in the
    // records (`agent_pid`) and the session's name too, so the three agree, and every process
    // of the tree (the hook, the MCP server) descends from it.
    let launcher = std::process::id() as i32;
    // SAFETY: single-threaded here; no thread has been started yet that reads the environment.
    unsafe { std::env::set_var(AGENT_ENV, format!("{agent}:{launcher}")) };
    let session = runtime.open_session(&std::process::id().to_string());
    let tree = Arc::new(AgentTree {
        session,
        runtime,
        agent: AgentInfo {
            name: agent,
            pid: launcher,
        },
        recent: Default::default(),
    });
    if !supervise_reads {
        // Read-only opens are left to the kernel from the start (the filter cannot change): a
        // reload that brings secret zones can only say so.
        let weak = Arc::downgrade(&tree.runtime);
        tree.runtime.on_policy_reload(move || {
            let Some(runtime) = weak.upgrade() else { return };
            if has_secret_zones(&runtime.policy.load()) {
                tracing::warn!(
                    "the reloaded policy has secret zones, but this run started without any: reads are not supervised until `agent-guard run` is restarted"
                );
                eprintln!("agent-guard: warning: the new policy's secret zones take effect for reads only when `agent-guard run` is restarted");
            }
        });
    }
    let config = SupervisorConfig {
        supervise_reads,
        ..SupervisorConfig::default()
    };
    Ok(supervisor::run(cmd, tree, &config)?)
}

fn has_secret_zones(policy: &crate::policy::Policy) -> bool {
    policy.zones.of_kind(ZoneKind::Secret).next().is_some()
}

/// Make the snapshot store's directory (0700) if it is missing; whether it exists.
fn make_store(store: &Path) -> bool {
    use std::os::unix::fs::DirBuilderExt;
    let made = std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(store);
    if let Err(e) = &made {
        tracing::warn!("cannot make the snapshot store {}: {e}", store.display());
    }
    store.is_dir()
}

/// The judge for a supervised tree: every process in it is the agent.
struct AgentTree {
    runtime: Arc<Runtime>,
    /// This run is one agent session of the snapshot store.
    session: Arc<Session>,
    /// The agent's name, and the pid of `agent-guard run` (the process the human started for
    /// the agent, an ancestor of every process of the tree; `$AGENT_GUARD_AGENT` names it too).
    agent: AgentInfo,
    /// Facts of the tree's processes for the records of allowed calls.
    recent: RecentFacts,
}

impl Judge for AgentTree {
    fn judge(&self, pid: i32, event: &Event) -> Verdict {
        let agent = AgentInfo {
            name: self.agent.name.clone(),
            pid: self.agent.pid,
        };
        let verdict = self.runtime.decide_lazily(
            Some(&self.session),
            event.clone(),
            &Attribution::Agent(agent),
            |event, used| {
                let facts = match used {
                    FactsUse::Record => self.recent.get(pid),
                    FactsUse::Decision => {
                        let Ok(dir) = procfs::TaskDir::open(pid) else {
                            return 0;
                        };
                        // Only a denied exec gets here; its rule may spare a trusted
                        // tool's own subcommand (`unless_run_by`), known by these.
                        if matches!(event.action, Action::Exec { .. }) {
                            event.actor.args = dir.args();
                        }
                        let facts = dir.facts();
                        procfs::QuickFacts {
                            tgid: (facts.threads == 1).then_some(pid),
                            ..facts
                        }
                    }
                };
                // The kernel names the thread; a record names the process (a hook tells
                // the agent's own process from the commands it runs by this pid). Known
                // without reading `status` for a task alone in its process or a leader.
                event.actor.pid = facts.tgid.or_else(|| procfs::tgid_of(pid)).unwrap_or(pid);
                event.actor.exe = facts.exe;
                event.actor.comm = facts.comm;
                facts.start
            },
        );
        if matches!(event.action, Action::Exec { .. }) && verdict.allows() {
            // Judged after its record was written: the record names the program that execs.
            self.recent.exec_allowed(pid);
        }
        verdict
    }

    fn session(&self) -> Option<Arc<Session>> {
        Some(Arc::clone(&self.session))
    }

    fn keeps_at(&self, path: &Path) -> bool {
        crate::engine::keeps_at(&self.runtime.policy.load(), path)
    }

    fn settle(&self, pid: i32, event: &Event, keep: &Keep, outcome: KeepOutcome) -> Verdict {
        let agent = AgentInfo {
            name: self.agent.name.clone(),
            pid: self.agent.pid,
        };
        let facts = self.recent.get(pid);
        let mut event = event.clone();
        event.actor.exe = facts.exe;
        event.actor.comm = facts.comm;
        self.runtime.settle(
            &self.session,
            &event,
            &Attribution::Agent(agent),
            facts.start,
            keep,
            outcome,
        )
    }

    fn hidden_paths(&self) -> Vec<PathBuf> {
        let store = &self.runtime.config.locations.store;
        if store.is_dir() {
            vec![store.clone()]
        } else {
            Vec::new()
        }
    }

    fn secret_paths(&self) -> Vec<PathBuf> {
        let policy = self.runtime.policy.load();
        policy
            .zones
            .of_kind(ZoneKind::Secret)
            .map(|z| z.root.clone())
            .collect()
    }

    fn moved_tree_probes(&self, to: &Path) -> Vec<PathBuf> {
        crate::engine::moved_tree_probes(&self.runtime.policy.load(), to)
    }

    fn needs_exec_env(&self, event: &Event) -> bool {
        crate::engine::needs_exec_env(event, &self.runtime.policy.load())
    }

    fn start_in_supervisor(&self) {
        self.runtime.start_background();
    }

    fn flush_records(&self) {
        self.runtime.flush();
    }

    fn stop_in_supervisor(&self) {
        self.runtime.end_session(&self.session);
        self.runtime.flush();
        self.runtime.remove_status();
    }
}
