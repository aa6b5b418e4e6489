//! Talking to the running daemon: the policy reloader asks it to re-select what the kernel
//! delivers, the signal thread asks it to stop, `status` reads its counters.

use std::sync::{mpsc, Arc};

use crate::platform::macos::counters::{CountersSnapshot, SensorCounters};

/// A command to the running daemon.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DaemonCommand {
    /// The policy changed: ask the handler for a new muting selection and apply it.
    RefreshMuting,
    /// Stop both clients and return from `run_daemon`. `signal`: the stop signal that asked
    /// for it, if any (the daemon then exits 128 + signal, which launchd restarts).
    Stop { signal: Option<i32> },
}

/// Why `run_daemon` returned without an error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stopped {
    /// [`DaemonControl::stop`].
    Asked,
    /// SIGTERM, SIGINT or SIGHUP.
    Signal(i32),
}

impl Stopped {
    /// The exit status: 128 + the signal, as a shell reports a process a signal ended. Under
    /// launchd's `KeepAlive = { SuccessfulExit = false; }` that restarts the daemon after a stop
    /// signal it did not ask for (`launchctl kill TERM`); `launchctl bootout` unloads the job,
    /// so nothing restarts then. 0 when asked to stop from inside.
    pub fn exit_code(self) -> i32 {
        match self {
            Stopped::Asked => 0,
            Stopped::Signal(signal) => 128 + signal,
        }
    }
}

/// The sending side: held by whoever reloads the policy (and by the signal thread).
#[derive(Clone, Debug)]
pub struct DaemonControl {
    tx: mpsc::Sender<DaemonCommand>,
    counters: Arc<SensorCounters>,
}

impl DaemonControl {
    /// Ask the daemon to re-read the muting selection. Returns false if the daemon has stopped.
    pub fn refresh_muting(&self) -> bool {
        self.tx.send(DaemonCommand::RefreshMuting).is_ok()
    }
    /// Ask the daemon to stop. Returns false if it has already stopped.
    pub fn stop(&self) -> bool {
        self.tx.send(DaemonCommand::Stop { signal: None }).is_ok()
    }
    /// How the sensor answered so far (for `status` and the log).
    pub fn counters(&self) -> CountersSnapshot {
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
    /// Shared with [`DaemonControl::counters`].
    pub(crate) counters: Arc<SensorCounters>,
}

/// A connected pair: give the control to the policy reloader, the commands to `run_daemon`.
pub fn daemon_control() -> (DaemonControl, DaemonCommands) {
    let (tx, rx) = mpsc::channel();
    let counters = Arc::new(SensorCounters::default());
    (
        DaemonControl {
            tx: tx.clone(),
            counters: counters.clone(),
        },
        DaemonCommands { rx, tx, counters },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::macos::counters::Outcome;

    #[test]
    fn control_reaches_commands_and_reports_a_stopped_daemon() {
        let (control, commands) = daemon_control();
        assert!(control.refresh_muting());
        assert!(control.stop());
        assert_eq!(commands.rx.recv().unwrap(), DaemonCommand::RefreshMuting);
        assert_eq!(
            commands.rx.recv().unwrap(),
            DaemonCommand::Stop { signal: None }
        );
        commands.counters.record(Outcome::BudgetExceeded);
        assert_eq!(control.counters().budget_exceeded, 1);
        drop(commands);
        assert!(!control.stop());
    }

    #[test]
    fn a_stop_signal_exits_so_that_launchd_restarts_the_daemon() {
        // launchd's KeepAlive { SuccessfulExit = false } restarts after any non-zero exit.
        assert_eq!(Stopped::Signal(15).exit_code(), 143);
        assert_eq!(Stopped::Signal(2).exit_code(), 130);
        assert_eq!(Stopped::Asked.exit_code(), 0);
    }
}
