//! Per-call latency of a supervised call under concurrency: THREADS threads each open one file
//! of their own for writing (`O_WRONLY`, no create: a call `run` judges and answers CONTINUE)
//! CALLS times, and every call is timed on its own. Prints the p50 and p99 of all calls in
//! nanoseconds, the number of calls and the wall time of the timed part, on one line:
//!
//!   p50_ns p99_ns calls wall_ns
//!
//! It measures, it enforces nothing; `bench/workload.sh` runs it natively, under the
//! notification floor and under `agent-guard run`, with 1 and with many threads.
//!
//!   call_latency THREADS CALLS DIR

#[cfg(target_os = "linux")]
fn main() {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    use std::sync::{Arc, Barrier};
    use std::time::Instant;

    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = || -> ! {
        eprintln!("usage: call_latency THREADS CALLS DIR (THREADS and CALLS positive integers)");
        std::process::exit(2);
    };
    let [threads, calls, dir] = args.as_slice() else {
        usage()
    };
    let (Ok(threads), Ok(calls)) = (threads.parse::<usize>(), calls.parse::<usize>()) else {
        usage()
    };
    if threads == 0 || calls == 0 {
        usage()
    }
    let dir = std::path::PathBuf::from(dir);
    // Each thread's file is made before the clock starts: creating is file-system work.
    let files: Vec<CString> = (0..threads)
        .map(|i| {
            let path = dir.join(format!("latency-{i}"));
            if let Err(e) = std::fs::write(&path, b"x") {
                eprintln!("call_latency: cannot create {}: {e}", path.display());
                std::process::exit(1);
            }
            CString::new(path.as_os_str().as_bytes()).expect("no NUL in a path we made")
        })
        .collect();
    let start_line = Arc::new(Barrier::new(threads + 1));
    let workers: Vec<_> = files
        .into_iter()
        .map(|file| {
            let start_line = Arc::clone(&start_line);
            std::thread::spawn(move || {
                let mut took = Vec::with_capacity(calls);
                start_line.wait();
                for _ in 0..calls {
                    let t = Instant::now();
                    // SAFETY: a valid C string; the fd is closed right away.
                    let fd = unsafe { libc::open(file.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC) };
                    took.push(t.elapsed().as_nanos() as u64);
                    if fd < 0 {
                        eprintln!(
                            "call_latency: open failed: {}",
                            std::io::Error::last_os_error()
                        );
                        std::process::exit(1);
                    }
                    // SAFETY: fd was just opened by this thread.
                    unsafe { libc::close(fd) };
                }
                took
            })
        })
        .collect();
    let t = Instant::now();
    start_line.wait();
    let mut all: Vec<u64> = workers
        .into_iter()
        .flat_map(|w| w.join().expect("a timing thread panicked"))
        .collect();
    let wall = t.elapsed().as_nanos();
    all.sort_unstable();
    let at = |q: f64| all[((all.len() - 1) as f64 * q) as usize];
    println!("{} {} {} {wall}", at(0.5), at(0.99), all.len());
}

#[cfg(not(target_os = "linux"))]
fn main() {
    eprintln!("call_latency: Linux only");
    std::process::exit(2);
}
