//! The benchmark's floor (`supervisor::bench_support`, run by `examples/notify_floor.rs`) really
//! runs its command under the filter `run` installs and lets every call through: otherwise
//! `bench/workload.sh` would print a floor that measures nothing.
#![cfg(target_os = "linux")]

use std::ffi::OsString;
use std::process::Command;

use agent_guard::platform::linux::supervisor::bench_support::run_answering_everything;

fn floor(cmd: &[&str]) -> i32 {
    let cmd: Vec<OsString> = cmd.iter().map(OsString::from).collect();
    run_answering_everything(&cmd).expect("starting the command under the filter")
}

#[test]
fn notified_calls_go_through_and_the_exit_status_comes_back() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("f");
    let script = format!(
        "echo x > '{f}' && mkdir '{f}.d' && mv '{f}' '{f}.d/g' && rm -r '{f}.d' && exit 7",
        f = file.display()
    );
    assert_eq!(floor(&["sh", "-c", &script]), 7);
    assert!(!file.exists() && !dir.path().join("f.d").exists());
}

/// io_uring_setup(1, NULL)'s errno as the exit status: ENOSYS from the filter; any other answer
/// (EFAULT, or EPERM where io_uring is disabled) comes from the kernel itself.
const IO_URING_ERRNO: &str = "import ctypes, sys; libc = ctypes.CDLL(None, use_errno=True); \
     libc.syscall(425, 1, None); sys.exit(ctypes.get_errno())";

#[test]
fn the_filter_is_the_one_run_installs() {
    let under = floor(&["python3", "-c", IO_URING_ERRNO]);
    let outside = Command::new("python3")
        .args(["-c", IO_URING_ERRNO])
        .status()
        .unwrap()
        .code()
        .unwrap();
    assert_eq!(under, libc::ENOSYS);
    assert_ne!(outside, libc::ENOSYS);
}
