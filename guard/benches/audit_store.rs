//! Audit store figures, measured in one run (`cargo bench -p agent-guard --bench audit_store`):
//! batched insert throughput through the real writer (queue + thread + transactions), p50/p99
//! query latency per filter at 1M rows, and the database size per million rows.
//!
//! Targets (issue 6): over 150K inserts/s and p99 under 5 ms at 1M rows; oktsec publishes
//! ~90K inserts/s batched and <6 ms queries at 1M rows. Set `AUDIT_BENCH_ROWS` for another size.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use agent_guard::audit::{AuditQuery, AuditReader, AuditStore, AuditStoreConfig, DecisionRecord};
use agent_guard::vocab::{Decision, Mode, OpKind, RuleId};

const AGENTS: [&str; 5] = ["claude", "codex", "cursor", "aider", "gemini"];
const PROJECTS: usize = 200;
const QUERIES_PER_FILTER: usize = 200;

/// xorshift64*: reproducible data without a dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// A realistic mix: mostly opens and execs allowed, 2% denies, 1% audits, over 30 days.
fn record(rng: &mut Rng, i: usize, rows: usize, start_ms: i64, span_ms: i64) -> DecisionRecord {
    let op = match rng.below(100) {
        0..=54 => OpKind::Open,
        55..=74 => OpKind::Exec,
        75..=84 => OpKind::Create,
        85..=92 => OpKind::Rename,
        93..=97 => OpKind::Unlink,
        _ => OpKind::Truncate,
    };
    let verdict = match rng.below(100) {
        0..=1 => Decision::Deny,
        2 => Decision::Audit,
        _ => Decision::Allow,
    };
    let project = rng.below(PROJECTS);
    let root = format!("/home/dev/src/project{project}");
    let path = format!(
        "{root}/src/module{}/file{}.rs",
        rng.below(40),
        rng.below(500)
    );
    let denied = verdict != Decision::Allow;
    DecisionRecord {
        time_ms: start_ms + (i as i64 * span_ms) / rows as i64,
        agent: AGENTS[rng.below(AGENTS.len())].to_string(),
        agent_pid: 4000 + rng.below(50) as i32,
        pid: 10_000 + rng.below(30_000) as i32,
        start_key: 1_000_000 + rng.next() % 1_000_000,
        exe: [
            "/usr/bin/git",
            "/usr/bin/rm",
            "/usr/bin/node",
            "/usr/bin/cargo",
        ][rng.below(4)]
        .to_string(),
        op,
        dest: (op == OpKind::Rename).then(|| format!("{path}.tmp")),
        path,
        zone: denied.then(|| root.clone()),
        rule: denied.then_some(RuleId::ProtectedDelete),
        verdict,
        mode: if verdict == Decision::Audit {
            Mode::Audit
        } else {
            Mode::Enforce
        },
        policy_version: "sha256:3f9a1c0d2b7e".to_string(),
        argv: None,
        count: 1,
    }
}

/// CPU time of the whole process (user + system), to tell the store's cost from time spent
/// waiting for a CPU on a shared machine.
fn process_cpu() -> Duration {
    // SAFETY: getrusage writes into the zeroed struct we pass and reads nothing else.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

/// CPU time of the calling thread.
fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we pass.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx]
}

fn main() {
    let rows: usize = std::env::var("AUDIT_BENCH_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("audit.db");
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let span_ms = 30 * 86_400_000i64;
    let start_ms = now_ms - span_ms;

    // Generate first so that the timing covers the store, not the data generator.
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let data: Vec<DecisionRecord> = (0..rows)
        .map(|i| record(&mut rng, i, rows, start_ms, span_ms))
        .collect();

    let store = AuditStore::open(&path, AuditStoreConfig::default()).expect("open store");
    let t0 = Instant::now();
    let cpu0 = process_cpu();
    let main_cpu0 = thread_cpu();
    let mut waits = 0u64;
    for r in data {
        let mut r = r;
        // The bench waits for room instead of dropping: it measures what the writer sustains.
        while let Err(back) = store.try_record_decision(r) {
            r = *back;
            waits += 1;
            // Sleep rather than spin: on a small machine a spinning producer steals the
            // writer's CPU and the figure would measure the producer.
            std::thread::sleep(Duration::from_micros(200));
        }
    }
    store.flush().expect("flush");
    let insert = t0.elapsed();
    let insert_cpu = process_cpu() - cpu0;
    let producer_cpu = thread_cpu() - main_cpu0;
    let stats = store.stats();
    assert_eq!(stats.decisions_written as usize, rows, "{stats:?}");
    drop(store); // checkpoints the WAL into the database file
    let size = std::fs::metadata(&path).expect("db size").len();

    println!("audit store benchmark: {rows} decisions; indexes: time, agent, op, deny, audit, day+path; WAL, synchronous=NORMAL");
    println!(
        "insert (batched, through the writer queue): {:.0} inserts/s ({:.2} s, {} batches, avg {:.0} rows/batch, producer waited {waits}x)",
        rows as f64 / insert.as_secs_f64(),
        insert.as_secs_f64(),
        stats.batches,
        rows as f64 / stats.batches.max(1) as f64,
    );
    println!(
        "insert CPU: {:.2} s for the process, of which the producer {:.2} s: {:.0} inserts per writer CPU-second (the wall figure includes waiting for a CPU on a shared host)",
        insert_cpu.as_secs_f64(),
        producer_cpu.as_secs_f64(),
        rows as f64 / (insert_cpu - producer_cpu).as_secs_f64()
    );
    println!(
        "database size: {:.1} MB for {rows} rows = {:.0} MB per million rows ({:.0} bytes/row)",
        size as f64 / 1e6,
        size as f64 / 1e6 * 1_000_000.0 / rows as f64,
        size as f64 / rows as f64
    );

    let reader = AuditReader::open(&path).expect("open reader");
    let hour = 3_600_000i64;
    type MakeQuery = Box<dyn Fn(usize) -> AuditQuery>;
    let filters: Vec<(&str, MakeQuery)> = vec![
        ("newest 100, no filter", Box::new(|_| AuditQuery::default())),
        (
            "--agent",
            Box::new(|i| AuditQuery {
                agent: Some(AGENTS[i % AGENTS.len()].to_string()),
                ..Default::default()
            }),
        ),
        (
            "--op",
            Box::new(|i| AuditQuery {
                op: Some(
                    [
                        OpKind::Unlink,
                        OpKind::Rename,
                        OpKind::Exec,
                        OpKind::Truncate,
                    ][i % 4],
                ),
                ..Default::default()
            }),
        ),
        (
            "--verdict deny",
            Box::new(|_| AuditQuery {
                verdict: Some(Decision::Deny),
                ..Default::default()
            }),
        ),
        (
            "--path (one project of 200)",
            Box::new(|i| AuditQuery {
                path_prefix: Some(format!("/home/dev/src/project{}", (i * 37) % PROJECTS)),
                ..Default::default()
            }),
        ),
        (
            "--path (one module, ~125 rows in 30 days)",
            Box::new(|i| AuditQuery {
                path_prefix: Some(format!(
                    "/home/dev/src/project{}/src/module{}",
                    (i * 37) % PROJECTS,
                    i % 40
                )),
                ..Default::default()
            }),
        ),
        (
            "--since 1h",
            Box::new(move |_| AuditQuery {
                since_ms: Some(now_ms - hour),
                ..Default::default()
            }),
        ),
        (
            "--since/--until (a 1 h window in the past)",
            Box::new(move |i| {
                let end = start_ms + hour * (2 + (i as i64 * 13) % 700);
                AuditQuery {
                    since_ms: Some(end - hour),
                    until_ms: Some(end),
                    ..Default::default()
                }
            }),
        ),
        (
            "--agent --verdict deny --since 7d",
            Box::new(move |i| AuditQuery {
                agent: Some(AGENTS[i % AGENTS.len()].to_string()),
                verdict: Some(Decision::Deny),
                since_ms: Some(now_ms - 7 * 24 * hour),
                ..Default::default()
            }),
        ),
    ];
    println!("query latency, newest 100 matching rows ({QUERIES_PER_FILTER} queries per filter):");
    let mut worst_p99 = Duration::ZERO;
    for (name, make) in &filters {
        // One warm-up pass: the figures are for a database in the page cache, as on a live host.
        for i in 0..10 {
            reader.query(&make(i)).expect("query");
        }
        let mut times = Vec::with_capacity(QUERIES_PER_FILTER);
        let mut cpu_times = Vec::with_capacity(QUERIES_PER_FILTER);
        let mut returned = 0usize;
        for i in 0..QUERIES_PER_FILTER {
            let q = make(i);
            let (t, c) = (Instant::now(), thread_cpu());
            let got = reader.query(&q).expect("query");
            times.push(t.elapsed());
            cpu_times.push(thread_cpu() - c);
            returned += got.len();
        }
        times.sort();
        cpu_times.sort();
        let p99 = percentile(&times, 0.99);
        worst_p99 = worst_p99.max(p99);
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        println!(
            "  {name:<45} wall p50 {:>7.3} ms p99 {:>7.3} ms | cpu p50 {:>7.3} ms p99 {:>7.3} ms ({:.0} rows/query)",
            ms(percentile(&times, 0.5)),
            ms(p99),
            ms(percentile(&cpu_times, 0.5)),
            ms(percentile(&cpu_times, 0.99)),
            returned as f64 / QUERIES_PER_FILTER as f64
        );
    }
    println!("worst wall p99: {:.3} ms", worst_p99.as_secs_f64() * 1e3);

    let t = Instant::now();
    let mut sink = std::io::sink();
    let exported = reader
        .export(
            &AuditQuery::default(),
            agent_guard::audit::ExportFormat::Jsonl,
            &mut sink,
        )
        .expect("export");
    let e = t.elapsed();
    println!(
        "export jsonl (streamed): {exported} records in {:.2} s = {:.0} records/s",
        e.as_secs_f64(),
        exported as f64 / e.as_secs_f64()
    );
}
