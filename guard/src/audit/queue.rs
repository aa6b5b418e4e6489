//! One queued writer for both of the audit module's files: a bounded queue that the hot path
//! fills without ever blocking, drained by one thread that hands batches to a [`Sink`] (the
//! denial log's lines, the SQLite store's transactions), the way Santa puts its File, Syslog and
//! Spool writers behind one `Writer`.
//!
//! What the writer does for every sink, so no sink repeats it:
//! - [`QueuedWriter::send`] never blocks: when the queue is full the record is dropped and
//!   counted ([`Counters::dropped_queue_full`]); nothing is lost silently.
//! - The thread takes what is queued, up to [`WriterConfig::batch_max`] records, waiting up to
//!   [`WriterConfig::linger`] for more when they trickle in (a transaction per record costs more
//!   than the records), and gives them to [`Sink::write`] in order.
//! - [`QueuedWriter::flush`] answers once everything queued before it went through
//!   [`Sink::write`]; a [`Sink::Control`] message (change the retention, run it now) is handled
//!   after the batch it came with.
//! - [`Sink::tick`] runs after every batch and whenever [`Sink::next_tick`] comes due while the
//!   queue is quiet: retries after a write error, retention.
//! - Dropping the writer closes the queue; the thread writes what is left, calls
//!   [`Sink::close`] and is joined.
//!
//! This module must never block the sender and never drop a record without counting it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TryRecvError, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Where a [`QueuedWriter`] puts its records. Runs on the writer thread only.
pub(super) trait Sink: Send + 'static {
    type Record: Send + 'static;
    /// Requests other than records, handled in order after the batch they came with.
    type Control: Send + 'static;
    /// The sink's own counters, beside the writer's, readable from any thread.
    type Stats: Default + Send + Sync + 'static;

    /// Write `records` (possibly none, when a flush asks to retry what is pending), counting
    /// what was written and what was lost in `counters`.
    fn write(&mut self, records: Vec<Self::Record>, counters: &Counters<Self::Stats>);
    fn control(&mut self, control: Self::Control, counters: &Counters<Self::Stats>);
    /// How long the queue may stay quiet before [`Sink::tick`] must run; `None`: until a record
    /// comes.
    fn next_tick(&self) -> Option<Duration>;
    /// Work that comes due by time: a retry, a retention run. Called after every batch and when
    /// [`Sink::next_tick`] has passed; the sink checks what is due.
    fn tick(&mut self, counters: &Counters<Self::Stats>);
    /// The queue is closed and drained: finish (sync, checkpoint, count what is left).
    fn close(&mut self, counters: &Counters<Self::Stats>);
}

/// Queue and batching of a [`QueuedWriter`].
#[derive(Clone, Copy, Debug)]
pub(super) struct WriterConfig {
    /// The thread's name, and the prefix of its log lines.
    pub name: &'static str,
    /// Messages the queue holds before [`QueuedWriter::send`] drops.
    pub capacity: usize,
    /// Records handed to [`Sink::write`] at most at once.
    pub batch_max: usize,
    /// How long to wait for more records once one has come (zero: write at once).
    pub linger: Duration,
}

/// How often a lingering writer looks for more: the bound on how late a flush is answered.
const LINGER_STEP: Duration = Duration::from_millis(5);

/// What every writer counts, and the sink's own counters (`extra`).
#[derive(Default)]
pub(super) struct Counters<E> {
    name: &'static str,
    /// Records written whole (the sink counts them).
    pub written: AtomicU64,
    /// Records dropped because the queue was full.
    pub dropped_queue_full: AtomicU64,
    /// Records dropped by the sink: unwritable after retries, or left at shutdown.
    pub dropped_write_failed: AtomicU64,
    /// Failed writes, opens, rotations, retention runs.
    pub write_errors: AtomicU64,
    last_error: Mutex<Option<String>>,
    pub extra: E,
}

impl<E> Counters<E> {
    /// Count and log a failure; `status` shows the last one.
    pub fn error(&self, what: String) {
        self.write_errors.fetch_add(1, Ordering::Relaxed);
        tracing::warn!("{}: {what}", self.name);
        if let Ok(mut last) = self.last_error.lock() {
            *last = Some(what);
        }
    }

    pub fn last_error(&self) -> Option<String> {
        self.last_error.lock().ok().and_then(|l| l.clone())
    }

    pub fn load(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}

/// The writer thread has stopped (it panicked, or the writer is being dropped).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the writer thread has stopped")]
pub(super) struct WriterGone;

enum Message<S: Sink> {
    Record(S::Record),
    Flush(mpsc::Sender<()>),
    Control(S::Control),
}

/// The sending side: a bounded queue and the thread that drains it into a [`Sink`].
pub(super) struct QueuedWriter<S: Sink> {
    sender: Option<SyncSender<Message<S>>>,
    counters: Arc<Counters<S::Stats>>,
    thread: Option<JoinHandle<()>>,
}

impl<S: Sink> QueuedWriter<S> {
    /// Start the writer thread over `sink`.
    pub fn spawn(config: WriterConfig, sink: S) -> std::io::Result<QueuedWriter<S>> {
        let counters = Arc::new(Counters {
            name: config.name,
            written: AtomicU64::new(0),
            dropped_queue_full: AtomicU64::new(0),
            dropped_write_failed: AtomicU64::new(0),
            write_errors: AtomicU64::new(0),
            last_error: Mutex::new(None),
            extra: S::Stats::default(),
        });
        let (sender, receiver) = mpsc::sync_channel(config.capacity);
        let thread_counters = counters.clone();
        let thread = std::thread::Builder::new()
            .name(config.name.replace(' ', "-"))
            .spawn(move || drain(config, sink, &receiver, &thread_counters))?;
        Ok(QueuedWriter {
            sender: Some(sender),
            counters,
            thread: Some(thread),
        })
    }

    pub fn counters(&self) -> &Counters<S::Stats> {
        &self.counters
    }

    /// Queue a record, or hand it back when the queue is full (not counted: the caller
    /// decides).
    pub fn try_send(&self, record: S::Record) -> Result<(), S::Record> {
        let Some(sender) = &self.sender else {
            return Err(record);
        };
        match sender.try_send(Message::Record(record)) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(Message::Record(r)))
            | Err(TrySendError::Disconnected(Message::Record(r))) => Err(r),
            Err(_) => unreachable!("a record message comes back as itself"),
        }
    }

    /// Queue a record. Never blocks: when the queue is full the record is dropped and counted.
    pub fn send(&self, record: S::Record) {
        if self.try_send(record).is_err() {
            Counters::<S::Stats>::add(&self.counters.dropped_queue_full, 1);
        }
    }

    /// Wait until every record queued before this call has gone through the sink. Blocks: for
    /// tests, shutdown and the CLI, never for a decision.
    pub fn flush(&self) -> Result<(), WriterGone> {
        let sender = self.sender.as_ref().ok_or(WriterGone)?;
        let (ack, done) = mpsc::channel();
        sender.send(Message::Flush(ack)).map_err(|_| WriterGone)?;
        done.recv().map_err(|_| WriterGone)
    }

    /// Queue a control message, waiting for room: controls are rare and must not be lost.
    pub fn control(&self, control: S::Control) -> Result<(), WriterGone> {
        let sender = self.sender.as_ref().ok_or(WriterGone)?;
        sender
            .send(Message::Control(control))
            .map_err(|_| WriterGone)
    }
}

impl<S: Sink> Drop for QueuedWriter<S> {
    fn drop(&mut self) {
        // Closing the queue lets the thread write what is queued, close the sink and exit.
        self.sender.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// One batch taken from the queue.
struct Batch<S: Sink> {
    records: Vec<S::Record>,
    flushes: Vec<mpsc::Sender<()>>,
    controls: Vec<S::Control>,
}

impl<S: Sink> Batch<S> {
    fn new() -> Batch<S> {
        Batch {
            records: Vec::new(),
            flushes: Vec::new(),
            controls: Vec::new(),
        }
    }

    fn add(&mut self, message: Message<S>) {
        match message {
            Message::Record(r) => self.records.push(r),
            Message::Flush(ack) => self.flushes.push(ack),
            Message::Control(c) => self.controls.push(c),
        }
    }

    fn is_empty(&self) -> bool {
        self.records.is_empty() && self.flushes.is_empty() && self.controls.is_empty()
    }
}

/// The writer thread: batches from the queue to the sink until the queue closes.
fn drain<S: Sink>(
    config: WriterConfig,
    mut sink: S,
    receiver: &Receiver<Message<S>>,
    counters: &Counters<S::Stats>,
) {
    let mut open = true;
    while open {
        let mut batch = Batch::<S>::new();
        let first = match sink.next_tick() {
            Some(wait) => receiver.recv_timeout(wait),
            None => receiver.recv().map_err(|_| RecvTimeoutError::Disconnected),
        };
        match first {
            Ok(message) => batch.add(message),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => open = false,
        }
        // Gather more, up to one batch, for at most `linger`: a supervised agent produces a
        // steady trickle of decisions, and a transaction for each one cost more CPU than the
        // decisions themselves (7% of a build's samples). Meanwhile the writer sleeps and
        // drains rather than waiting on the channel: a waiting receiver makes every send a
        // futex wake and a context switch on the path of the supervised call (6% of a
        // write-open loop's samples). A flush or a control ends the wait at the next step.
        let linger_end = Instant::now() + config.linger;
        while open
            && !batch.records.is_empty()
            && batch.records.len() < config.batch_max
            && batch.flushes.is_empty()
            && batch.controls.is_empty()
        {
            match receiver.try_recv() {
                Ok(message) => batch.add(message),
                Err(TryRecvError::Disconnected) => open = false,
                Err(TryRecvError::Empty) => {
                    let left = linger_end.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        break;
                    }
                    std::thread::sleep(left.min(LINGER_STEP));
                }
            }
        }
        if !batch.is_empty() {
            sink.write(batch.records, counters);
            for ack in batch.flushes {
                let _ = ack.send(());
            }
            for control in batch.controls {
                sink.control(control, counters);
            }
        }
        sink.tick(counters);
    }
    sink.close(counters);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Collects batches. Each write first tells `entered` and waits on `gate`; while `failing`
    /// is set, records stay pending and each tick counts an error.
    struct Recorder {
        batches: Arc<Mutex<Vec<Vec<u32>>>>,
        pending: Vec<u32>,
        failing: Arc<std::sync::atomic::AtomicBool>,
        closed: Arc<std::sync::atomic::AtomicBool>,
        gate: Arc<Mutex<()>>,
        entered: mpsc::Sender<()>,
    }

    impl Recorder {
        fn new() -> (Recorder, mpsc::Receiver<()>) {
            let (entered, entries) = mpsc::channel();
            let recorder = Recorder {
                batches: Default::default(),
                pending: Vec::new(),
                failing: Default::default(),
                closed: Default::default(),
                gate: Default::default(),
                entered,
            };
            (recorder, entries)
        }
    }

    impl Sink for Recorder {
        type Record = u32;
        type Control = mpsc::Sender<usize>;
        type Stats = ();

        fn write(&mut self, records: Vec<u32>, counters: &Counters<()>) {
            let _ = self.entered.send(());
            drop(self.gate.lock().unwrap());
            self.pending.extend(records);
            self.tick(counters);
        }
        fn control(&mut self, reply: mpsc::Sender<usize>, _: &Counters<()>) {
            let _ = reply.send(self.pending.len());
        }
        fn next_tick(&self) -> Option<Duration> {
            (!self.pending.is_empty()).then_some(Duration::from_millis(5))
        }
        fn tick(&mut self, counters: &Counters<()>) {
            if self.pending.is_empty() {
                return;
            }
            if self.failing.load(Ordering::SeqCst) {
                counters.error("failing".into());
                return;
            }
            let batch = std::mem::take(&mut self.pending);
            Counters::<()>::add(&counters.written, batch.len() as u64);
            self.batches.lock().unwrap().push(batch);
        }
        fn close(&mut self, counters: &Counters<()>) {
            Counters::<()>::add(&counters.dropped_write_failed, self.pending.len() as u64);
            self.closed.store(true, Ordering::SeqCst);
        }
    }

    fn config(capacity: usize, linger_ms: u64) -> WriterConfig {
        WriterConfig {
            name: "test writer",
            capacity,
            batch_max: 1000,
            linger: Duration::from_millis(linger_ms),
        }
    }

    #[test]
    fn records_arrive_in_order_batched_and_flush_waits_for_them() {
        let (sink, _entries) = Recorder::new();
        let batches = sink.batches.clone();
        let writer = QueuedWriter::spawn(config(10_000, 50), sink).unwrap();
        for n in 0..5000 {
            writer.send(n);
        }
        writer.flush().unwrap();
        let got: Vec<u32> = batches.lock().unwrap().concat();
        assert_eq!(got, (0..5000).collect::<Vec<_>>());
        assert!(
            batches.lock().unwrap().len() < 5000,
            "lingering batches records"
        );
        assert_eq!(Counters::<()>::load(&writer.counters().written), 5000);
    }

    #[test]
    fn a_full_queue_drops_and_counts_and_try_send_hands_the_record_back() {
        let (sink, entries) = Recorder::new();
        let gate = sink.gate.clone();
        let held = gate.lock().unwrap();
        const CAPACITY: u32 = 2;
        let writer = QueuedWriter::spawn(config(CAPACITY as usize, 0), sink).unwrap();
        writer.send(0);
        // The writer holds record 0 in a write that waits on the gate: the queue is empty and
        // takes exactly CAPACITY more.
        entries.recv().unwrap();
        for n in 1..=CAPACITY + 7 {
            writer.send(n);
        }
        assert_eq!(
            Counters::<()>::load(&writer.counters().dropped_queue_full),
            7
        );
        assert_eq!(
            writer.try_send(100),
            Err(100),
            "the refused record comes back"
        );
        assert_eq!(
            Counters::<()>::load(&writer.counters().dropped_queue_full),
            7,
            "try_send does not count"
        );
        drop(held);
        writer.flush().unwrap();
        assert_eq!(
            Counters::<()>::load(&writer.counters().written),
            u64::from(1 + CAPACITY)
        );
    }

    #[test]
    fn controls_follow_their_batch_errors_are_counted_and_drop_closes_the_sink() {
        let (sink, _entries) = Recorder::new();
        let closed = sink.closed.clone();
        sink.failing.store(true, Ordering::SeqCst);
        let writer = QueuedWriter::spawn(config(100, 0), sink).unwrap();
        writer.send(1);
        writer.send(2);
        let (reply, pending) = mpsc::channel();
        writer.control(reply).unwrap();
        assert_eq!(
            pending.recv().unwrap(),
            2,
            "the control came after its batch"
        );
        assert!(Counters::<()>::load(&writer.counters().write_errors) > 0);
        assert_eq!(writer.counters().last_error().as_deref(), Some("failing"));
        let counters = writer.counters.clone();
        drop(writer);
        assert!(closed.load(Ordering::SeqCst));
        assert_eq!(Counters::<()>::load(&counters.dropped_write_failed), 2);
    }
}
