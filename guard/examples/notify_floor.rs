//! The floor of `agent-guard run`'s cost: CMD under `run`'s filter, every notification answered
//! at once, nothing judged. **It enforces nothing.** See `supervisor::bench_support`.
//!
//!   cargo build --release --example notify_floor
//!   target/release/examples/notify_floor -- CMD [ARGS...]

#[cfg(target_os = "linux")]
fn main() {
    use agent_guard::platform::linux::supervisor::bench_support::run_answering_everything;
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    let cmd = match args.first() {
        Some(a) if a == "--" => &args[1..],
        _ => &args[..],
    };
    if cmd.is_empty() {
        eprintln!("usage: notify_floor -- CMD [ARGS...]");
        std::process::exit(2);
    }
    match run_answering_everything(cmd) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("notify_floor: {e}");
            std::process::exit(127);
        }
    }
}

#[cfg(not(target_os = "linux"))]
fn main() {
    eprintln!("notify_floor: Linux only");
    std::process::exit(2);
}
