//! The measured loop of `bench/keep-cost.sh`: one kind of call made on many files, each call
//! timed on its own. Run natively or under `agent-guard run`; prints the median and the mean
//! nanoseconds per call.
//!
//!   keep_calls unlink DIR N        makes N files of 4 KiB in DIR, then unlinks each (timed)
//!   keep_calls first-write DIR N   write-opens DIR/w0 .. DIR/w{N-1} (made beforehand) once each
//!                                  (timed: open and close)
//!
//! With `KEEP_CALLS_PAUSE_MS=T` it says `ready` on stderr once the files are made and waits T ms
//! before the timed calls: time for `perf record -p` to attach to the supervisor (profiling the
//! calls alone, not the making of the files).

#[cfg(target_os = "linux")]
fn main() {
    use std::ffi::CString;
    use std::time::Instant;

    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = || -> ! {
        eprintln!("usage: keep_calls unlink|first-write DIR N (N > 0)");
        std::process::exit(2);
    };
    let (kind, dir, n) = match &args[..] {
        [kind, dir, n] if kind == "unlink" || kind == "first-write" => match n.parse::<usize>() {
            Ok(n) if n > 0 => (kind.as_str(), dir.as_str(), n),
            _ => usage(),
        },
        _ => usage(),
    };
    let names: Vec<CString> = (0..n)
        .map(|i| {
            let prefix = if kind == "unlink" { "u" } else { "w" };
            CString::new(format!("{dir}/{prefix}{i}")).expect("no NUL in DIR")
        })
        .collect();
    if kind == "unlink" {
        std::fs::create_dir_all(dir).expect("DIR can be made");
        for name in &names {
            let path = std::str::from_utf8(name.as_bytes()).expect("utf-8");
            std::fs::write(path, [7u8; 4096]).expect("file can be written");
        }
    }
    if let Some(ms) = std::env::var("KEEP_CALLS_PAUSE_MS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        eprintln!("ready");
        std::thread::sleep(std::time::Duration::from_millis(ms));
    }
    let mut times: Vec<u128> = Vec::with_capacity(n);
    for name in &names {
        let start = Instant::now();
        let failed = if kind == "unlink" {
            // SAFETY: a valid C string.
            unsafe { libc::unlink(name.as_ptr()) != 0 }
        } else {
            // SAFETY: a valid C string; the fd is closed at once.
            unsafe {
                let fd = libc::open(name.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
                fd < 0 || libc::close(fd) != 0
            }
        };
        times.push(start.elapsed().as_nanos());
        if failed {
            eprintln!(
                "keep_calls: {kind} {}: {}",
                name.to_string_lossy(),
                std::io::Error::last_os_error()
            );
            std::process::exit(1);
        }
    }
    let mean = times.iter().sum::<u128>() / n as u128;
    times.sort_unstable();
    println!("{} {mean}", times[n / 2]);
}

#[cfg(not(target_os = "linux"))]
fn main() {
    eprintln!("keep_calls: Linux only");
    std::process::exit(2);
}
