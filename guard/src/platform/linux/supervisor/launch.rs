//! `run`'s caller side: index the secret zones and plan their hiding, prepare CMD's exec, fork
//! the supervisor (see `supervisor_process`), forward signals to CMD while it runs, and return
//! CMD's status as soon as the supervisor reports it.
//!
//! The caller must never serve notifications itself (the supervisor is a separate process so
//! that the user's prompt comes back while descendants stay supervised), and must restore its
//! signal handlers before returning.

use std::ffi::OsString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Arc;

use super::child::{ExecPlan, SetupStage};
use super::config::{SupervisorConfig, SupervisorError};
use super::judge::Judge;
use super::secret_inodes::SecretInodes;
use super::secret_view::{self, SecretPlan};
use super::supervisor_process::{self, Started, FORWARDED};
use crate::platform::linux::sys::ipc::{self, Tag};
use crate::platform::linux::sys::process;

/// CMD's pid in the caller, for the signal handler.
static CMD_PID: AtomicI32 = AtomicI32::new(0);

fn setup_err(what: &'static str) -> SupervisorError {
    SupervisorError::Setup {
        what,
        source: io::Error::last_os_error(),
    }
}

extern "C" fn forward_signal(sig: libc::c_int, info: *mut libc::siginfo_t, _: *mut libc::c_void) {
    // A signal the kernel generated for the terminal's foreground group (Ctrl-C, hangup) has
    // reached CMD already: forwarding it would deliver it twice.
    // SAFETY: the kernel passes a valid siginfo to an SA_SIGINFO handler.
    let code = unsafe { (*info).si_code };
    if code == libc::SI_KERNEL {
        return;
    }
    let pid = CMD_PID.load(Ordering::Relaxed);
    if pid > 0 {
        // SAFETY: kill is async-signal-safe.
        unsafe { libc::kill(pid, sig) };
    }
}

/// The caller's signal handlers while CMD runs; restored on drop.
struct Forwarding {
    saved: Vec<(i32, libc::sigaction)>,
}

impl Forwarding {
    fn install() -> Forwarding {
        let mut saved = Vec::new();
        for sig in FORWARDED {
            // SAFETY: sigaction structs are plain data; the handler is async-signal-safe.
            unsafe {
                let mut action: libc::sigaction = std::mem::zeroed();
                let handler: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
                    forward_signal;
                action.sa_sigaction = handler as usize;
                action.sa_flags = libc::SA_SIGINFO | libc::SA_RESTART;
                libc::sigemptyset(&mut action.sa_mask);
                let mut old: libc::sigaction = std::mem::zeroed();
                if libc::sigaction(sig, &action, &mut old) == 0 {
                    saved.push((sig, old));
                }
            }
        }
        Forwarding { saved }
    }
}

impl Drop for Forwarding {
    fn drop(&mut self) {
        for (sig, old) in &self.saved {
            // SAFETY: restoring an action the kernel gave us.
            unsafe { libc::sigaction(*sig, old, std::ptr::null_mut()) };
        }
        CMD_PID.store(0, Ordering::Relaxed);
    }
}

pub fn run(
    cmd: &[OsString],
    judge: Arc<dyn Judge>,
    config: &SupervisorConfig,
) -> Result<i32, SupervisorError> {
    if cmd.is_empty() {
        return Err(SupervisorError::EmptyCommand);
    }
    // Indexed here, before the fork, because whether the secret zones can be hidden depends on
    // what the walk finds (a hard-linked secret file).
    let secret_roots = judge.secret_paths();
    let hidden_dirs = judge.hidden_paths();
    let secrets = SecretInodes::index(&secret_roots, &hidden_dirs);
    let hidden = if config.supervise_reads {
        match secret_view::plan(&secret_roots, &secrets, &hidden_dirs) {
            Ok(hidden) => {
                tracing::debug!(
                    "secret zones hidden in the agent's mount namespace; reads left to the kernel"
                );
                hidden
            }
            Err(why) => {
                tracing::debug!("supervising every open: {why}");
                SecretPlan::default()
            }
        }
    } else {
        SecretPlan::default()
    };
    let plan = ExecPlan::new(cmd, config.supervise_reads, &hidden)?;
    let mut fds = [0; 2];
    // SAFETY: fds is valid for two ints.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(setup_err("pipe2"));
    }
    // SAFETY: fresh fds owned here.
    let (status_rd, status_wr) =
        unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    let (launcher_pid, launcher_pgid) = (process::pid(), process::pgid(0));
    let forwarding = Forwarding::install();

    // SAFETY: the child only runs `supervisor_process::main`, then `_exit`.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(setup_err("fork"));
    }
    if pid == 0 {
        drop(status_rd);
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let started = Started {
                launcher_pid,
                launcher_pgid,
                secrets,
                hidden,
            };
            supervisor_process::main(&plan, judge, config, status_wr, started)
        }));
        // SAFETY: leave the forked copy of the caller without running its destructors.
        unsafe { libc::_exit(if outcome.is_ok() { 0 } else { 101 }) };
    }
    drop(status_wr);
    loop {
        match ipc::read_from_pipe(status_rd.as_raw_fd()) {
            Some((Tag::CmdPid, p)) => CMD_PID.store(p as i32, Ordering::Relaxed),
            Some((Tag::Status, code)) => {
                drop(forwarding);
                return Ok(code as i32);
            }
            Some((Tag::SetupFailed, detail)) => {
                // SAFETY: reap the supervisor, which exits right after reporting.
                unsafe { libc::waitpid(pid, std::ptr::null_mut(), 0) };
                return Err(SupervisorError::Setup {
                    what: SetupStage::describe(detail >> 32),
                    source: io::Error::from_raw_os_error(detail as i32),
                });
            }
            _ => return Err(SupervisorError::SupervisorLost),
        }
    }
}
