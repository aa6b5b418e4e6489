//! The decision workers: a fixed number of threads taking [`Job`]s from one bounded queue, so
//! the ES threads never wait for a decision and several are made at once. A job that panics is
//! answered by its own [`Job::panicked`] and its worker is replaced by a fresh thread: one bad
//! message costs one fallback answer, never a worker, never the daemon.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::Duration;

/// Work for a decision worker.
pub trait Job: Send {
    /// Do the work and answer. May panic.
    fn run(&mut self);
    /// Called after [`Job::run`] panicked: answer without the decision. Must not panic.
    fn panicked(&mut self);
}

type Queue = Receiver<Box<dyn Job>>;

struct Shared {
    queue: Mutex<Queue>,
    name: String,
    /// Jobs submitted and not yet taken by a worker.
    queued: AtomicUsize,
    live: AtomicUsize,
    replaced: AtomicU64,
    /// Notified when a worker exits, for [`WorkerPool::shutdown`].
    exited: (Mutex<()>, Condvar),
}

/// The workers and their queue.
pub struct WorkerPool {
    jobs: Mutex<Option<SyncSender<Box<dyn Job>>>>,
    capacity: usize,
    shared: Arc<Shared>,
}

impl WorkerPool {
    /// `workers` threads named `name-N` and a queue of `capacity` waiting jobs.
    pub fn start(name: &str, workers: usize, capacity: usize) -> std::io::Result<WorkerPool> {
        let (tx, rx) = mpsc::sync_channel(capacity);
        let shared = Arc::new(Shared {
            queue: Mutex::new(rx),
            name: name.to_string(),
            queued: AtomicUsize::new(0),
            live: AtomicUsize::new(0),
            replaced: AtomicU64::new(0),
            exited: (Mutex::new(()), Condvar::new()),
        });
        for _ in 0..workers.max(1) {
            spawn_worker(&shared)?;
        }
        Ok(WorkerPool {
            jobs: Mutex::new(Some(tx)),
            capacity,
            shared,
        })
    }

    /// Queue `job`, or give it back at once when the queue is full or the pool stopped: the
    /// caller answers it without a decision rather than wait.
    pub fn submit(&self, job: Box<dyn Job>) -> Result<(), Box<dyn Job>> {
        let jobs = self.jobs.lock().unwrap_or_else(|e| e.into_inner());
        let Some(tx) = jobs.as_ref() else {
            return Err(job);
        };
        // Counted before the send, so that a worker never takes a job not yet counted.
        self.shared.queued.fetch_add(1, Ordering::AcqRel);
        tx.try_send(job).map_err(|e| {
            self.shared.queued.fetch_sub(1, Ordering::AcqRel);
            match e {
                TrySendError::Full(job) | TrySendError::Disconnected(job) => job,
            }
        })
    }

    /// [`WorkerPool::submit`] for work that answers nobody (a record): refused while half the
    /// queue is taken, so that it never crowds out a decision.
    pub fn submit_background(&self, job: Box<dyn Job>) -> Result<(), Box<dyn Job>> {
        if self.shared.queued.load(Ordering::Acquire) >= self.capacity / 2 {
            return Err(job);
        }
        self.submit(job)
    }

    /// Workers alive now.
    pub fn live(&self) -> usize {
        self.shared.live.load(Ordering::Acquire)
    }

    /// Workers replaced after a panic.
    pub fn replaced(&self) -> u64 {
        self.shared.replaced.load(Ordering::Relaxed)
    }

    /// Take no more jobs; the workers finish the queued ones and exit. Waits at most `limit`
    /// for them; true if all exited.
    pub fn shutdown(&self, limit: Duration) -> bool {
        self.jobs.lock().unwrap_or_else(|e| e.into_inner()).take();
        let (lock, exited) = &self.shared.exited;
        let guard = lock.lock().unwrap_or_else(|e| e.into_inner());
        let (_guard, timeout) = exited
            .wait_timeout_while(guard, limit, |_| {
                self.shared.live.load(Ordering::Acquire) > 0
            })
            .unwrap_or_else(|e| e.into_inner());
        !timeout.timed_out()
    }
}

fn spawn_worker(shared: &Arc<Shared>) -> std::io::Result<()> {
    let n = shared.live.fetch_add(1, Ordering::AcqRel);
    let me = shared.clone();
    let spawned = thread::Builder::new()
        .name(format!("{}-{n}", shared.name))
        .spawn(move || work(me));
    if spawned.is_err() {
        shared.live.fetch_sub(1, Ordering::AcqRel);
    }
    spawned.map(drop)
}

fn work(shared: Arc<Shared>) {
    loop {
        let next = shared
            .queue
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .recv();
        let Ok(mut job) = next else {
            break; // the pool stopped and the queue is empty
        };
        shared.queued.fetch_sub(1, Ordering::AcqRel);
        if catch_unwind(AssertUnwindSafe(|| job.run())).is_ok() {
            continue;
        }
        // The job's answer first, then a fresh worker for a thread that may hold broken
        // thread-local state.
        if catch_unwind(AssertUnwindSafe(|| job.panicked())).is_err() {
            tracing::error!("a decision job panicked twice; its message is answered when dropped");
        }
        drop(job);
        shared.replaced.fetch_add(1, Ordering::Relaxed);
        tracing::error!("a decision worker panicked; it is replaced");
        if let Err(e) = spawn_worker(&shared) {
            tracing::error!("no replacement for a decision worker: {e}");
        }
        break;
    }
    shared.live.fetch_sub(1, Ordering::AcqRel);
    let (lock, exited) = &shared.exited;
    let _guard = lock.lock().unwrap_or_else(|e| e.into_inner());
    exited.notify_all();
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc::Sender;
    use std::time::Instant;

    /// Lets jobs wait for each other: `meet(n)` returns true once `n` jobs are inside at once.
    #[derive(Default)]
    struct Gate {
        inside: Mutex<usize>,
        changed: Condvar,
    }

    impl Gate {
        fn meet(&self, n: usize, limit: Duration) -> bool {
            let mut inside = self.inside.lock().unwrap();
            *inside += 1;
            self.changed.notify_all();
            let (inside, _) = self
                .changed
                .wait_timeout_while(inside, limit, |i| *i < n)
                .unwrap();
            *inside >= n
        }
    }

    /// Reports its id (or its panic) on a channel; panics when `boom`; first waits at the gate
    /// for `meet` jobs to be inside at once, when it has one.
    struct Probe {
        id: u32,
        boom: bool,
        gate: Option<(Arc<Gate>, usize)>,
        done: Sender<Result<u32, u32>>,
    }

    impl Job for Probe {
        fn run(&mut self) {
            if let Some((gate, n)) = &self.gate {
                if !gate.meet(*n, Duration::from_secs(5)) {
                    self.done.send(Err(u32::MAX)).unwrap();
                    return;
                }
            }
            if self.boom {
                panic!("probe {} panics", self.id);
            }
            self.done.send(Ok(self.id)).unwrap();
        }
        fn panicked(&mut self) {
            self.done.send(Err(self.id)).unwrap();
        }
    }

    fn probe(id: u32, boom: bool, done: &Sender<Result<u32, u32>>) -> Box<dyn Job> {
        Box::new(Probe {
            id,
            boom,
            gate: None,
            done: done.clone(),
        })
    }

    fn gated(id: u32, gate: &Arc<Gate>, n: usize, done: &Sender<Result<u32, u32>>) -> Box<dyn Job> {
        Box::new(Probe {
            id,
            boom: false,
            gate: Some((gate.clone(), n)),
            done: done.clone(),
        })
    }

    #[test]
    fn a_panicking_job_is_answered_and_its_worker_replaced() {
        let pool = WorkerPool::start("test-pool", 2, 16).unwrap();
        let (done, results) = mpsc::channel();
        pool.submit(probe(1, true, &done)).map_err(|_| ()).unwrap();
        assert_eq!(results.recv_timeout(Duration::from_secs(5)), Ok(Err(1)));
        // Jobs after the panic are still decided, by as many workers as before: two of them
        // must be inside at once.
        let gate = Arc::new(Gate::default());
        for id in 2..4 {
            pool.submit(gated(id, &gate, 2, &done))
                .map_err(|_| ())
                .unwrap();
        }
        let mut ok: Vec<_> = (2..4)
            .map(|_| results.recv_timeout(Duration::from_secs(10)).unwrap())
            .collect();
        ok.sort();
        assert_eq!(ok, vec![Ok(2), Ok(3)]);
        assert_eq!(pool.replaced(), 1);
        let end = Instant::now() + Duration::from_secs(5);
        while pool.live() != 2 && Instant::now() < end {
            thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(pool.live(), 2);
        assert!(pool.shutdown(Duration::from_secs(5)));
        assert_eq!(pool.live(), 0);
    }

    #[test]
    fn jobs_run_in_parallel() {
        // Four jobs that each wait until all four are running: only four workers at once can
        // finish them (one worker would time out at the gate).
        let pool = WorkerPool::start("test-pool", 4, 16).unwrap();
        let (done, results) = mpsc::channel();
        let gate = Arc::new(Gate::default());
        for id in 0..4 {
            pool.submit(gated(id, &gate, 4, &done))
                .map_err(|_| ())
                .unwrap();
        }
        for _ in 0..4 {
            let r = results.recv_timeout(Duration::from_secs(10)).unwrap();
            assert!(r.is_ok(), "{r:?}");
        }
    }

    #[test]
    fn a_full_queue_gives_the_job_back_instead_of_waiting() {
        let pool = WorkerPool::start("test-pool", 1, 1).unwrap();
        let (done, results) = mpsc::channel();
        // The worker is held at a gate no second job will reach until the test lets it: one
        // running, one queued, and the third has no room.
        let gate = Arc::new(Gate::default());
        pool.submit(gated(1, &gate, 2, &done))
            .map_err(|_| ())
            .unwrap();
        while *gate.inside.lock().unwrap() == 0 {
            thread::sleep(Duration::from_millis(1));
        }
        pool.submit(probe(2, false, &done)).map_err(|_| ()).unwrap();
        assert!(pool.submit(probe(3, false, &done)).is_err());
        // Let the worker go: the queued job is still done.
        gate.meet(2, Duration::ZERO);
        assert_eq!(results.recv_timeout(Duration::from_secs(5)), Ok(Ok(1)));
        assert_eq!(results.recv_timeout(Duration::from_secs(5)), Ok(Ok(2)));
        // A stopped pool takes nothing.
        assert!(pool.shutdown(Duration::from_secs(5)));
        assert!(pool.submit(probe(4, false, &done)).is_err());
    }

    #[test]
    fn background_work_never_takes_the_second_half_of_the_queue() {
        let pool = WorkerPool::start("test-pool", 1, 4).unwrap();
        let (done, results) = mpsc::channel();
        let gate = Arc::new(Gate::default());
        pool.submit(gated(1, &gate, 2, &done))
            .map_err(|_| ())
            .unwrap();
        while *gate.inside.lock().unwrap() == 0 {
            thread::sleep(Duration::from_millis(1));
        }
        // The worker is busy; the queue (4) takes two background jobs, then only decisions.
        pool.submit_background(probe(2, false, &done))
            .map_err(|_| ())
            .unwrap();
        pool.submit_background(probe(3, false, &done))
            .map_err(|_| ())
            .unwrap();
        assert!(pool.submit_background(probe(4, false, &done)).is_err());
        pool.submit(probe(5, false, &done)).map_err(|_| ()).unwrap();
        pool.submit(probe(6, false, &done)).map_err(|_| ()).unwrap();
        assert!(pool.submit(probe(7, false, &done)).is_err(), "now full");
        gate.meet(2, Duration::ZERO);
        let mut got: Vec<u32> = (0..5)
            .map(|_| {
                results
                    .recv_timeout(Duration::from_secs(5))
                    .unwrap()
                    .unwrap()
            })
            .collect();
        got.sort();
        assert_eq!(got, vec![1, 2, 3, 5, 6]);
        // Drained: background work is taken again.
        assert!(pool.submit_background(probe(8, false, &done)).is_ok());
    }
}
