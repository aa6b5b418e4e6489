//! macOS: the Endpoint Security sensor behind `agent-guard daemon`.
//!
//! The split is deliberate. Everything that is logic is pure and compiles on every OS, so it is
//! unit-tested on Linux where we have no Mac:
//! - [`mapping`]: an ES message, copied into plain values ([`mapping::EsRequest`]), becomes the
//!   neutral [`crate::engine::Action`]s the engine decides on;
//! - [`muting`]: which target paths the file client asks the kernel for (inverted target-path
//!   muting), derived from the policy's zones and the guard's own files;
//! - [`deadline`]: how much of the kernel's answer deadline a decision may use, and the fail-mode
//!   answer when it cannot be made in time;
//! - [`procinfo`]: parsers of `KERN_PROCARGS2` buffers and `proc_bsdinfo` records, and the walk
//!   up the parent chain for processes that predate the daemon;
//! - [`start`]: the errors that stop the daemon at start, each with the one thing to do about it.
//!
//! Only [`es`] and [`sys`] (cfg macOS) call Apple's libraries. They must stay thin: copy the
//! message into plain values, call the pure code and the [`EsHandler`], answer the kernel. They
//! must never block the ES thread on I/O, logging or SQLite (that is the handler's job, off this
//! thread), and never cache an answer that depends on who the actor is.
//!
//! The glue boundary with the rest of the crate is the [`EsHandler`] trait: the daemon's caller
//! (policy, engine, lineage) implements it; this module only delivers facts and asks questions.

pub mod deadline;
pub mod decision;
pub mod mapping;
pub mod muting;
pub mod procinfo;
pub mod start;

#[cfg(target_os = "macos")]
pub mod es;
#[cfg(target_os = "macos")]
pub mod sys;

#[cfg(target_os = "macos")]
pub use es::run_daemon;

use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc};

use crate::engine::{Event, Verdict};

pub use deadline::{DeadlineCounters, DeadlinePlan, Timebase};
pub use mapping::{EsDestination, EsRequest};
pub use muting::MutingSelection;
pub use procinfo::{BsdInfo, ProcArgs, ProcessInspector};
pub use start::StartError;

/// A process as Endpoint Security names it: pid plus pidversion (from the audit token). The
/// pidversion changes on every exec and pid reuse, so the pair never names two processes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProcessIdentity {
    pub pid: i32,
    pub pidversion: i32,
}

/// The code-signing facts ES gives for free with every process (no `codesign` subprocess).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SigningInfo {
    /// e.g. `com.apple.git`; `None` when unsigned or ad hoc without an identifier.
    pub signing_id: Option<String>,
    /// Apple team identifier; `None` for platform binaries and ad hoc signatures.
    pub team_id: Option<String>,
    pub cdhash: [u8; 20],
    /// Signed by Apple as part of the OS.
    pub platform_binary: bool,
}

/// What the message says about the process that acts, beyond the neutral `Event::actor`.
///
/// `Event::actor.argv0` is left empty by the sensor: reading it costs a `sysctl`, so the handler
/// reads it with [`ProcessInspector::process_args`] only for actors not yet attributed (Node CLIs
/// rewrite it after exec, so it must be read at decision time, not at exec).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ActorFacts {
    pub process: ProcessIdentity,
    /// Current parent pid (1 after reparenting).
    pub ppid: i32,
    /// Parent pid at fork, before any reparenting to launchd.
    pub original_ppid: i32,
    /// The parent's identity as ES reports it (message version 4+, macOS 11+).
    pub parent: Option<ProcessIdentity>,
    /// The process macOS holds responsible (e.g. the app that launched a helper); may be the
    /// process itself.
    pub responsible: Option<ProcessIdentity>,
    pub signing: SigningInfo,
}

/// What the daemon needs from the rest of agent-guard. Implemented by the lead's glue over
/// policy, lineage and engine. Every method is called on an ES thread or the decision worker:
/// it must return quickly and never do blocking I/O (queue logging and SQLite elsewhere).
pub trait EsHandler: Send + Sync {
    /// NOTIFY_FORK: `child` inherits `parent`'s attribution.
    fn on_fork(&self, parent: &ActorFacts, child: &ActorFacts);
    /// NOTIFY_EXIT: forget the process.
    fn on_exit(&self, process: ProcessIdentity);
    /// An AUTH_EXEC that was allowed: the process now runs `exe` with `argv`. `before` is the
    /// identity that asked (the old image); `after` is the new image, whose pidversion differs,
    /// so the lineage entry must move from `before` to `after.process`, keep its taint, and
    /// re-check agent patterns against the new image.
    fn on_exec(&self, before: ProcessIdentity, after: &ActorFacts, exe: &Path, argv: &[String]);
    /// Decide one neutral event. `inspect` reads live process facts (argv[0], parent walk) when
    /// the actor is not yet known to the lineage table.
    fn decide(&self, actor: &ActorFacts, event: &Event, inspect: &dyn ProcessInspector) -> Verdict;
    /// Zones and guard files: what the file client asks the kernel to deliver. Called at start
    /// and on every [`DaemonControl::refresh_muting`].
    fn watched_roots(&self) -> MutingRoots;
    /// The policy's fail mode: deny (true) or allow (false) when no decision can be made in time.
    fn fail_closed(&self) -> bool;
}

/// The paths the policy is about, as input to [`muting::selection`].
///
/// Roots are absolute and expanded: in the system-wide policy `~` means every user's home, so
/// `~/src` becomes `/Users/a/src`, `/Users/b/src`, ... The daemon adds
/// [`default_guard_files`] itself.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MutingRoots {
    /// Protected, read-only and secret zone roots, and temporary-override paths need not be
    /// listed (they only allow what a zone would deny).
    pub zone_roots: Vec<PathBuf>,
    /// The policy file, the overrides store, the logs, the binary, the LaunchDaemon plist.
    pub guard_files: Vec<PathBuf>,
}

impl MutingRoots {
    /// The selection for these roots plus the default guard files.
    pub fn selection(&self, case_insensitive: bool) -> MutingSelection {
        let mut guard = self.guard_files.clone();
        guard.extend(default_guard_files());
        muting::selection(&self.zone_roots, &guard, case_insensitive)
    }
}

/// A command to the running daemon.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DaemonCommand {
    /// The policy changed: ask the handler for a new [`MutingSelection`] and apply it.
    RefreshMuting,
    /// Stop both clients and return from `run_daemon`.
    Stop,
}

/// The sending side: held by whoever reloads the policy (and by the signal thread).
#[derive(Clone, Debug)]
pub struct DaemonControl {
    tx: mpsc::Sender<DaemonCommand>,
    counters: Arc<DeadlineCounters>,
}

impl DaemonControl {
    /// Ask the daemon to re-read the muting selection. Returns false if the daemon has stopped.
    pub fn refresh_muting(&self) -> bool {
        self.tx.send(DaemonCommand::RefreshMuting).is_ok()
    }
    /// Ask the daemon to stop. Returns false if it has already stopped.
    pub fn stop(&self) -> bool {
        self.tx.send(DaemonCommand::Stop).is_ok()
    }
    /// How many answers came from the engine and how many from the fail mode (for `status`
    /// and periodic logging).
    pub fn deadline_counters(&self) -> deadline::DeadlineSnapshot {
        self.counters.snapshot()
    }
}

/// The receiving side, consumed by `run_daemon` (macOS only; elsewhere it is never read).
#[derive(Debug)]
#[cfg_attr(not(target_os = "macos"), allow(dead_code))]
pub struct DaemonCommands {
    pub(crate) rx: mpsc::Receiver<DaemonCommand>,
    /// Kept so the daemon's own signal thread can send `Stop`.
    pub(crate) tx: mpsc::Sender<DaemonCommand>,
    /// Shared with [`DaemonControl::deadline_counters`].
    pub(crate) counters: Arc<DeadlineCounters>,
}

/// A connected pair: give the control to the policy reloader, the commands to `run_daemon`.
pub fn daemon_control() -> (DaemonControl, DaemonCommands) {
    let (tx, rx) = mpsc::channel();
    let counters = Arc::new(DeadlineCounters::default());
    (
        DaemonControl {
            tx: tx.clone(),
            counters: counters.clone(),
        },
        DaemonCommands { rx, tx, counters },
    )
}

/// The basename of an executable cut to the kernel's `MAXCOMLEN` (16 bytes), which is how XNU
/// sets `p_comm` at exec (`process.title` does not change it).
pub fn comm_of(exe: &Path) -> String {
    let name = exe
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut end = name.len().min(procinfo::MAXCOMLEN);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    name[..end].to_string()
}

/// The guard's own file locations on macOS that the file client must always see.
pub fn default_guard_files() -> Vec<PathBuf> {
    let mut files = crate::paths::Locations::macos_daemon().guarded_files();
    files.extend(
        [
            crate::paths::SYSTEM_POLICY,
            "/usr/local/bin/agent-guard",
            // Where nix/darwin-module.nix installs the signed bundle when a provisioning
            // profile is given.
            "/Library/Application Support/agent-guard",
            "/Library/LaunchDaemons/com.agent-guard.daemon.plist",
            "/var/log/agent-guard",
        ]
        .map(PathBuf::from),
    );
    files
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comm_is_basename_cut_to_maxcomlen() {
        assert_eq!(comm_of(Path::new("/usr/bin/git")), "git");
        assert_eq!(
            comm_of(Path::new("/x/a-very-long-executable-name")),
            "a-very-long-exec"
        );
        // A multi-byte character straddling byte 16 is dropped, not split.
        assert_eq!(comm_of(Path::new("/x/aaaaaaaaaaaaaaaé")), "aaaaaaaaaaaaaaa");
        assert_eq!(comm_of(Path::new("/")), "");
    }

    #[test]
    fn control_reaches_commands_and_reports_a_stopped_daemon() {
        let (control, commands) = daemon_control();
        assert!(control.refresh_muting());
        assert!(control.stop());
        assert_eq!(commands.rx.recv().unwrap(), DaemonCommand::RefreshMuting);
        assert_eq!(commands.rx.recv().unwrap(), DaemonCommand::Stop);
        commands.counters.record(deadline::Outcome::BudgetExceeded);
        assert_eq!(control.deadline_counters().budget_exceeded, 1);
        drop(commands);
        assert!(!control.stop());
    }

    #[test]
    fn roots_selection_always_includes_the_guard_files() {
        let roots = MutingRoots {
            zone_roots: vec![PathBuf::from("/Users/a/src")],
            guard_files: vec![],
        };
        let sel = roots.selection(true);
        assert!(sel.prefixes.contains(&PathBuf::from("/Users/a/src")));
        assert!(sel
            .prefixes
            .contains(&PathBuf::from("/private/etc/agent-guard/policy.json")));
        assert!(sel
            .prefixes
            .contains(&PathBuf::from("/usr/local/bin/agent-guard")));
        assert!(sel
            .literals
            .contains(&PathBuf::from("/Library/LaunchDaemons")));
    }

    #[test]
    fn guard_files_cover_policy_binary_plist_and_logs() {
        let files = default_guard_files();
        for want in [
            "/etc/agent-guard/policy.json",
            "/usr/local/bin/agent-guard",
            "/Library/LaunchDaemons/com.agent-guard.daemon.plist",
            "/var/log/agent-guard",
            "/var/db/agent-guard",
        ] {
            assert!(files.contains(&PathBuf::from(want)), "{want} missing");
        }
    }
}
