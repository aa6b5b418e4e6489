//! What the sensor needs from the rest of agent-guard ([`EsHandler`], implemented by the daemon
//! core over lineage, policy and engine), and which paths it asks the kernel for
//! ([`MutingRoots`]).

use std::path::PathBuf;
use std::time::Instant;

use crate::platform::macos::facts::ActorFacts;
use crate::platform::macos::keep::Keeping;
use crate::platform::macos::muting::{self, MutingSelection};
use crate::platform::macos::procinfo::ProcessInspector;
use crate::vocab::{Attribution, Event, Keep, Verdict};

/// What the lineage table already knows about an actor, learnt without a syscall.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Known {
    /// An agent's process.
    Agent,
    /// A human's process. `fresh`: its names were read again recently (a Node process may
    /// retitle itself an agent after its exec), so there is nothing to re-check now.
    Human { fresh: bool },
    /// Never seen: it must be attributed (a live walk) before anything is decided.
    Unknown,
}

/// An actor's attribution, and its argv\[0\] when it had to be read for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attributed {
    pub attribution: Attribution,
    pub argv0: Option<String>,
}

/// The daemon core, as the sensor sees it. The `on_*` methods and the triage methods
/// ([`EsHandler::known`], [`EsHandler::matters`]) run on an ES thread and must never block or
/// make a syscall; [`EsHandler::attribute`] and [`EsHandler::decide`] run on a worker and may
/// read live process facts through the inspector (never other blocking I/O: records go to the
/// runtime's queues).
///
/// Both ES clients deliver fork and exit, each in its own order: an implementation must take
/// the same event twice and must keep an exited process findable for a while, so that a fork the
/// other client delivers late still finds its parent. Every `at_ns` is the message's mach time in
/// nanoseconds.
pub trait EsHandler: Send + Sync {
    /// NOTIFY_FORK: `child` inherits `parent`'s attribution.
    fn on_fork(&self, parent: &ActorFacts, child: &ActorFacts, at_ns: u64);
    /// NOTIFY_EXEC: the exec happened (a denied or failed exec never gets here); `process` runs
    /// its new image now, `argv` its arguments.
    fn on_exec(&self, process: &ActorFacts, argv: &[String], at_ns: u64);
    /// NOTIFY_EXIT.
    fn on_exit(&self, process: &ActorFacts, at_ns: u64);
    /// What the table knows of `actor` now.
    fn known(&self, actor: &ActorFacts, at_ns: u64) -> Known;
    /// Whether the engine would stop any of `events` if their actor were an agent. When it
    /// would not, the answer is allow whoever acts.
    fn matters(&self, events: &[Event]) -> bool;
    /// Who `actor` acts for (the table, then its parents, its names read now, a live walk).
    fn attribute(
        &self,
        actor: &ActorFacts,
        at_ns: u64,
        inspect: &dyn ProcessInspector,
    ) -> Attributed;
    /// Decide one neutral event of an attributed actor; counted and recorded, except a
    /// [`Verdict::Keep`], which comes back unrecorded: the glue then calls [`EsHandler::keep`]
    /// before it answers and [`EsHandler::settle`] after.
    fn decide(
        &self,
        actor: &ActorFacts,
        event: &Event,
        who: &Attributed,
        inspect: &dyn ProcessInspector,
    ) -> Verdict;
    /// Carry out the keeps one message's decisions asked for (clones into the snapshot store),
    /// on a worker, before the message is answered; no clone is started too near `deadline`.
    /// The message may be allowed only if [`Keeping::allows`]. `files`: the message's files as
    /// the kernel identified them (see [`MacKeeper::keep`](super::MacKeeper::keep)).
    fn keep(
        &self,
        actor: &ActorFacts,
        who: &Attributed,
        keeps: Vec<(Event, Keep)>,
        files: &[(std::path::PathBuf, super::keep::FileId)],
        deadline: Instant,
    ) -> Keeping;
    /// Record what became of the keeps once the answer went out. `allowed`: the kernel got this
    /// message's allow; false when it was refused or the deadline timer answered first, and then
    /// what was kept for it is removed again.
    fn settle(&self, actor: &ActorFacts, who: &Attributed, keeping: Keeping, allowed: bool);
    /// Zones and guard files: what the file client asks the kernel to deliver. Called at start
    /// and on every policy reload.
    fn watched_roots(&self) -> MutingRoots;
    /// The policy's fail mode: deny (true) or allow (false) when no decision can be made in time.
    fn fail_closed(&self) -> bool;
}

/// The paths the policy is about, as input to [`muting::selection`].
///
/// Roots are absolute and expanded: in the system-wide policy `~` means every user's home, so
/// `~/src` becomes `/Users/a/src`, `/Users/b/src`, ... The daemon adds [`default_guard_files`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MutingRoots {
    /// Protected zone roots that deny destruction: everyone may read and edit there, so opens
    /// are not delivered.
    pub protected: Vec<PathBuf>,
    /// Read-only and secret zone roots, and protected zones that keep (a writing open is kept
    /// the first time, a truncating one always): opens are delivered too.
    pub restricted: Vec<PathBuf>,
    /// The policy file, the overrides store, the logs, the binary, the LaunchDaemon plist.
    pub guard_files: Vec<PathBuf>,
}

impl MutingRoots {
    /// The selection for these roots plus the default guard files.
    pub fn selection(&self, case_insensitive: bool) -> MutingSelection {
        let mut restricted = self.restricted.clone();
        restricted.extend(self.guard_files.iter().cloned());
        restricted.extend(default_guard_files());
        muting::selection(&self.protected, &restricted, case_insensitive)
    }
}

/// The guard's own file locations on macOS that the file client must always see.
pub fn default_guard_files() -> Vec<PathBuf> {
    let mut files = crate::paths::Locations::macos_daemon().guarded_files();
    files.extend(
        [
            crate::paths::SYSTEM_POLICY,
            "/usr/local/bin/agent-guard",
            // Where nix/darwin-module.nix installs the signed daemon bundle.
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
    fn roots_selection_always_includes_the_guard_files() {
        let roots = MutingRoots {
            protected: vec![PathBuf::from("/Users/a/src")],
            ..MutingRoots::default()
        };
        let sel = roots.selection(true);
        assert!(sel.prefixes.contains(&PathBuf::from("/Users/a/src")));
        for guard in [
            "/private/etc/agent-guard/policy.json",
            "/usr/local/bin/agent-guard",
        ] {
            assert!(sel.prefixes.contains(&PathBuf::from(guard)), "{guard}");
            assert!(sel.open_prefixes.contains(&PathBuf::from(guard)), "{guard}");
        }
        // Opens in a protected zone are nobody's concern.
        assert!(!sel.open_prefixes.contains(&PathBuf::from("/Users/a/src")));
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
            "/Library/Application Support/agent-guard",
            "/var/log/agent-guard",
            "/var/db/agent-guard",
        ] {
            assert!(files.contains(&PathBuf::from(want)), "{want} missing");
        }
    }
}
