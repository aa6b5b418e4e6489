//! `agent-guard run -- CMD`: supervise CMD and every process it starts as an AI agent (Linux).
//!
//! Every process under the supervisor is agent-attributed, named by `--agent` (default: the
//! basename of CMD). The seccomp supervisor in `platform/linux/supervisor` does the kernel work;
//! this file only wires it to the runtime (policy, grants, engine, logs).

use std::ffi::OsString;
use std::path::PathBuf;

use clap::Args;

#[cfg(target_os = "linux")]
use crate::engine::{AgentInfo, Attribution, Event, Verdict};
#[cfg(target_os = "linux")]
use crate::runtime::Runtime;
#[cfg(target_os = "linux")]
use std::sync::Arc;

#[derive(Args, Debug)]
pub struct RunArgs {
    /// The policy file (default: $AGENT_GUARD_POLICY, /etc/agent-guard/policy.json, the
    /// embedded default).
    #[arg(long)]
    pub policy: Option<PathBuf>,
    /// The agent's name in records and messages (default: the basename of CMD).
    #[arg(long)]
    pub agent: Option<String>,
    /// Log what would be denied, deny nothing.
    #[arg(long)]
    pub audit: bool,
    /// The command to supervise, after `--`.
    #[arg(last = true, required = true, value_name = "CMD")]
    pub cmd: Vec<OsString>,
}

#[cfg(target_os = "linux")]
pub fn run(args: &RunArgs) -> anyhow::Result<i32> {
    use std::path::Path;

    use super::common::load_policy;
    use crate::paths::{process_env, Locations};
    use crate::platform::linux::supervisor::{self, SupervisorConfig};
    use crate::runtime::RuntimeConfig;

    // Quiet unless asked: the agent's terminal is the user's. `AGENT_GUARD_LOG=debug` says, among
    // other things, whether the secret zones are hidden or every open is supervised, and why.
    if let Ok(filter) = tracing_subscriber::EnvFilter::try_from_env("AGENT_GUARD_LOG") {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .try_init();
    }
    let loaded = match load_policy(args.policy.as_deref()) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("agent-guard run: {e:#}");
            return Ok(2);
        }
    };
    for warning in &loaded.policy.warnings {
        eprintln!("agent-guard: warning: {warning}");
    }
    let locations = Locations::for_user(&process_env);
    let agent = args.agent.clone().unwrap_or_else(|| {
        Path::new(&args.cmd[0])
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    });
    let supervise_reads = loaded
        .policy
        .zones
        .of_kind(crate::policy::ZoneKind::Secret)
        .next()
        .is_some();
    let config = RuntimeConfig {
        policy_file: loaded.file,
        ctx: loaded.ctx,
        locations,
        force_audit: args.audit,
    };
    let runtime = match Runtime::new(loaded.policy, config) {
        Ok(r) => Arc::new(r),
        Err(e) => {
            eprintln!("agent-guard run: {e}");
            return Ok(2);
        }
    };
    // The supervised tree inherits this: `override approve` refuses politely when it is set (the
    // guard-files rule is what actually stops an agent from approving), and requests are
    // rate-limited per agent.
    // SAFETY: single-threaded here; no thread has been started yet that reads the environment.
    unsafe {
        std::env::set_var(
            crate::overrides::AGENT_ENV,
            format!("{agent}:{}", std::process::id()),
        )
    };
    let tree = Arc::new(AgentTree {
        runtime,
        agent: AgentInfo {
            name: agent,
            pid: 0,
        },
        agent_pid: std::sync::OnceLock::new(),
        recent: Default::default(),
    });
    if !supervise_reads {
        // Read-only opens are left to the kernel from the start (the filter cannot change): a
        // reload that brings secret zones can only say so.
        let weak = Arc::downgrade(&tree.runtime);
        tree.runtime.on_policy_reload(move || {
            let Some(runtime) = weak.upgrade() else { return };
            let policy = runtime.policy.load();
            if policy.zones.of_kind(crate::policy::ZoneKind::Secret).next().is_some() {
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
    match supervisor::run(&args.cmd, tree, &config) {
        Ok(status) => Ok(status),
        Err(e) => {
            eprintln!("agent-guard run: {e}");
            Ok(127)
        }
    }
}

#[cfg(not(target_os = "linux"))]
pub fn run(_args: &RunArgs) -> anyhow::Result<i32> {
    eprintln!("agent-guard run: the seccomp supervisor is Linux-only; on macOS install the daemon (see the README)");
    Ok(2)
}

/// The judge for a supervised tree: every process in it is the agent.
#[cfg(target_os = "linux")]
struct AgentTree {
    runtime: Arc<Runtime>,
    /// The agent's name; its pid is [`AgentTree::agent_pid`].
    agent: AgentInfo,
    agent_pid: std::sync::OnceLock<i32>,
    /// Facts of the tree's processes for the records of allowed calls.
    recent: crate::platform::linux::recent_facts::RecentFacts,
}

#[cfg(target_os = "linux")]
impl AgentTree {
    /// The pid of CMD, the agent itself: the supervised process whose parent is the supervisor
    /// (this process: the judge runs in it). Found once by walking up from the first caller; a
    /// process orphaned before that (adopted by the supervisor as subreaper) stands for itself.
    /// The hook matches denials to its agent by this pid.
    fn agent_pid(&self, tid: i32) -> i32 {
        *self.agent_pid.get_or_init(|| {
            let me = std::process::id() as i32;
            let mut pid = crate::platform::linux::procfs::facts_with_tgid(tid)
                .tgid
                .unwrap_or(tid);
            for _ in 0..64 {
                match crate::platform::linux::procfs::quick_facts(pid).ppid {
                    Some(parent) if parent == me || parent <= 1 => return pid,
                    Some(parent) => pid = parent,
                    None => return pid,
                }
            }
            pid
        })
    }
}

#[cfg(target_os = "linux")]
impl crate::platform::linux::supervisor::Judge for AgentTree {
    fn judge(&self, pid: i32, event: &Event) -> Verdict {
        use crate::platform::linux::procfs;
        let agent = AgentInfo {
            name: self.agent.name.clone(),
            pid: self.agent_pid(pid),
        };
        let verdict =
            self.runtime
                .decide_lazily(event.clone(), &Attribution::Agent(agent), |event, used| {
                    let facts = match used {
                        crate::runtime::FactsUse::Record => self.recent.get(pid),
                        crate::runtime::FactsUse::Decision => {
                            let Ok(dir) = procfs::TaskDir::open(pid) else {
                                return 0;
                            };
                            // Only a denied exec gets here; its rule may spare a trusted
                            // tool's own subcommand (`unless_run_by`), known by these.
                            if matches!(event.action, crate::engine::Action::Exec { .. }) {
                                event.actor.args = dir.args();
                            }
                            dir.facts()
                        }
                    };
                    event.actor.exe = facts.exe;
                    event.actor.comm = facts.comm;
                    facts.start
                });
        if matches!(event.action, crate::engine::Action::Exec { .. }) && verdict.allows() {
            // Judged after its record was written: the record names the program that execs.
            self.recent.exec_allowed(pid);
        }
        verdict
    }

    fn secret_paths(&self) -> Vec<PathBuf> {
        let policy = self.runtime.policy.load();
        policy
            .zones
            .of_kind(crate::policy::ZoneKind::Secret)
            .map(|z| z.root.clone())
            .collect()
    }

    fn start_in_supervisor(&self) {
        self.runtime.start_background();
    }

    fn stop_in_supervisor(&self) {
        self.runtime.flush();
        self.runtime.remove_status();
    }
}
