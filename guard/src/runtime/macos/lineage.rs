//! The daemon's lineage state: the [`LineageTable`] fed by two Endpoint Security clients.
//!
//! ES orders messages only within one client, and both clients deliver fork and exit, so each
//! event comes twice, in two different orders (Santa's process tree has the same problem and the
//! same cure):
//! - an event seen twice is applied once: a fork whose child is known (or gone) is skipped, an
//!   exit is idempotent;
//! - an exit is applied only [`EXIT_GRACE_NS`] of message time after it happened, so that the
//!   other client, which may be behind, still finds the exited process when it delivers the fork
//!   of its child: `(sh -c 'rm -rf ~/x' &)` forks `sh` from a subshell that exits at once, and
//!   that fork must still find the subshell;
//! - a process applied as gone is remembered ([`GONE_CAPACITY`] of them), so that a fork the
//!   other client delivers even later does not bring it back.
//!
//! Processes are keyed by pid and start time (ES's `start_time`, the fork time in microseconds,
//! which is also `proc_bsdinfo`'s): unlike the pidversion it does not change at exec, so an exec
//! the file client has not heard of yet (NOTIFY_EXEC is the process client's) never hides the
//! process from the table.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet, VecDeque};

use crate::lineage::{
    AgentMatcher, LineageError, LineageTable, ProcessInfo, ProcessKey, ProcessSource,
};
use crate::platform::macos::{ActorFacts, ProcessInspector};

/// How long (message time) an exited process stays in the table: more than the two clients
/// are ever apart. Santa uses the same 5 s.
pub const EXIT_GRACE_NS: u64 = 5_000_000_000;

/// How many processes applied as gone are remembered against late duplicate forks.
pub const GONE_CAPACITY: usize = 16_384;

/// The lineage table key of a process as ES describes it.
pub fn key_of(actor: &ActorFacts) -> ProcessKey {
    ProcessKey {
        pid: actor.process.pid,
        start: actor.start_micros,
    }
}

/// The table and what keeps it right under two clients.
pub struct LineageState {
    pub table: LineageTable,
    /// pid → start of the live process with that pid, as ES last named it: a live walk reads
    /// parents by pid, and this is how it finds their entries without a syscall.
    pub live: HashMap<i32, u64>,
    /// Exits not applied yet, earliest first.
    exits: BinaryHeap<Reverse<(u64, ProcessKey)>>,
    /// Keys applied as gone, and their order (oldest first) for the bound.
    gone: HashSet<ProcessKey>,
    gone_order: VecDeque<ProcessKey>,
    /// The latest message time seen.
    latest_ns: u64,
    /// When a known human process's names were last read again (a Node process may retitle
    /// itself an agent after its exec).
    pub checked: HashMap<ProcessKey, u64>,
    pub matcher: AgentMatcher,
    /// The policy version `matcher` was built from.
    pub matcher_version: String,
}

impl LineageState {
    pub fn new(matcher: AgentMatcher, matcher_version: String) -> LineageState {
        LineageState {
            table: LineageTable::new(),
            live: HashMap::new(),
            exits: BinaryHeap::new(),
            gone: HashSet::new(),
            gone_order: VecDeque::new(),
            latest_ns: 0,
            checked: HashMap::new(),
            matcher,
            matcher_version,
        }
    }

    /// Note a message at `at_ns` and apply the exits whose grace has passed.
    pub fn step(&mut self, at_ns: u64) {
        self.latest_ns = self.latest_ns.max(at_ns);
        let cutoff = self.latest_ns.saturating_sub(EXIT_GRACE_NS);
        while let Some(Reverse((at, key))) = self.exits.peek().copied() {
            if at >= cutoff {
                break;
            }
            self.exits.pop();
            self.forget(key);
        }
    }

    fn forget(&mut self, key: ProcessKey) {
        self.table.on_exit(key);
        self.checked.remove(&key);
        if self.live.get(&key.pid) == Some(&key.start) {
            self.live.remove(&key.pid);
        }
        if self.gone.insert(key) {
            self.gone_order.push_back(key);
            if self.gone_order.len() > GONE_CAPACITY {
                if let Some(old) = self.gone_order.pop_front() {
                    self.gone.remove(&old);
                }
            }
        }
    }

    /// `process` is alive and ES names it so.
    pub fn note(&mut self, process: &ActorFacts) {
        if !self.gone.contains(&key_of(process)) {
            self.live.insert(process.process.pid, process.start_micros);
        }
    }

    /// Whether the table has, or had and let go, this process: a fork of it is a duplicate.
    pub fn seen(&self, key: ProcessKey) -> bool {
        self.table.contains(key) || self.gone.contains(&key)
    }

    /// `process` exited at `at_ns`: applied once the grace has passed.
    pub fn exit(&mut self, process: &ActorFacts, at_ns: u64) {
        self.exits.push(Reverse((at_ns, key_of(process))));
        self.step(at_ns);
    }

    /// The key of the live process `pid` as ES last named it.
    pub fn live_key(&self, pid: i32) -> Option<ProcessKey> {
        self.live.get(&pid).map(|&start| ProcessKey { pid, start })
    }

    /// Exits waiting for their grace (tests).
    #[cfg(test)]
    pub fn pending_exits(&self) -> usize {
        self.exits.len()
    }
}

/// Lineage's view of live processes through the macOS inspector, keyed like the table: pid and
/// start time (`proc_bsdinfo`'s, the same clock as ES's `start_time`).
pub struct InspectorSource<'a> {
    pub inspector: &'a dyn ProcessInspector,
    pub live: &'a HashMap<i32, u64>,
}

impl ProcessSource for InspectorSource<'_> {
    fn info(&self, pid: i32) -> Result<ProcessInfo, LineageError> {
        if pid <= 0 {
            return Err(LineageError::InvalidPid { pid });
        }
        let bsd = self
            .inspector
            .bsd_info(pid)
            .ok_or(LineageError::Vanished { pid })?;
        let args = self.inspector.process_args(pid);
        Ok(ProcessInfo {
            key: ProcessKey {
                pid,
                start: bsd.start_micros(),
            },
            ppid: i32::try_from(bsd.ppid).unwrap_or(0),
            exe: self.inspector.exe_path(pid),
            exe_deleted: false,
            argv: args.map(|a| a.argv).unwrap_or_default(),
            comm: bsd.comm,
        })
    }

    fn key(&self, pid: i32) -> Result<ProcessKey, LineageError> {
        if let Some(&start) = self.live.get(&pid) {
            return Ok(ProcessKey { pid, start });
        }
        self.info(pid).map(|info| info.key)
    }
}
