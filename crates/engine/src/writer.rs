//! The writer thread: batch, apply, commit, answer. Batches form a pipeline of two: while
//! the commit thread writes one batch (SQL, then the fsync), the writer applies the next one
//! to memory. Nobody is answered before their batch is durable, and a batch that must read
//! the store, a checkpoint or a digest waits for the batch being committed, so that each sees
//! only committed books.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, TryRecvError};
use std::time::{Duration, Instant};

use formica_core::{Checkpoint, Command, CommandError, Core, Effects, Loaded, Reply};
use formica_store::{Store, StoreError};
use tokio::sync::oneshot;

use crate::batch::Reads;

use crate::{Answer, CHECKPOINT_IDLE, CHECKPOINT_INTERVAL, Config, EngineError, Request, Stats};

pub(crate) struct Writer {
    core: Core,
    /// A connection of the writer's own for what batches read, while the commit thread
    /// writes (and reloads) on the store's first connection.
    reader: Store,
    config: Config,
    stats: Arc<Stats>,
    /// The last batch's timestamp: batches never go back in time, even if the clock does.
    last_now: u64,
    last_checkpoint: Instant,
    /// The thread that writes checkpoints on a connection of its own while batches go on.
    checkpointer: Checkpointer,
    /// The thread that commits batches.
    committer: Committer,
    /// The batch the commit thread is writing, if one: applied to memory, not yet answered.
    committing: Option<Committing>,
    /// A commit failed: memory is rebuilt from the database before the next batch.
    reload_needed: bool,
}

/// How long the writer pauses after a failed batch.
const FAILURE_BACKOFF: Duration = Duration::from_millis(20);

/// How often the checkpoint thread copies the books' write-ahead log into their file.
const COPY_LOG_EVERY: Duration = Duration::from_millis(100);

/// The checkpoint thread's ends of the channels, and whether a checkpoint is being written.
struct Checkpointer {
    checkpoints: mpsc::SyncSender<Checkpoint>,
    results: mpsc::Receiver<(Checkpoint, Result<Duration, StoreError>)>,
    /// The accounts of the checkpoint being written, if one is.
    in_flight: Option<usize>,
}

/// The commit thread's ends of the channels.
struct Committer {
    jobs: mpsc::SyncSender<Job>,
    results: mpsc::Receiver<JobDone>,
    thread: std::thread::JoinHandle<()>,
}

/// What the commit thread does on the writer's own connection, one at a time.
enum Job {
    Commit(Box<Effects>),
    /// Load the books, to rebuild memory after a failed commit. On the writer's connection:
    /// on PostgreSQL a new session of it must first hold the writer's lock, and is refused
    /// (the load fails, to be tried again) while the session of a commit in doubt lives, so
    /// the load sees that commit if it landed.
    Load,
}

enum JobDone {
    /// How long the commit took.
    Committed(Result<Duration, StoreError>),
    Loaded(Result<Box<Loaded>, StoreError>),
}

/// A batch being committed, with what its callers will be told once it is durable.
struct Committing {
    batch: Batch,
    replies: Vec<Result<Reply, CommandError>>,
}

/// The requests of one batch.
#[derive(Default)]
struct Batch {
    commands: Vec<(Command, oneshot::Sender<Answer>)>,
    ticks: Vec<oneshot::Sender<()>>,
    digests: Vec<oneshot::Sender<u128>>,
    events: usize,
}

impl Writer {
    /// A writer that commits on `store` (which holds the writer's claim), reads on
    /// `reader` and writes checkpoints on `checkpoint_store`.
    pub(crate) fn new(
        core: Core,
        store: Store,
        reader: Store,
        checkpoint_store: Store,
        config: Config,
        stats: Arc<Stats>,
    ) -> Self {
        let last_now = core.ledger().timestamp();
        let checkpointer = Checkpointer::start(checkpoint_store);
        let committer = Committer::start(store);
        Writer {
            core,
            reader,
            config,
            stats,
            last_now,
            last_checkpoint: Instant::now(),
            checkpointer,
            committer,
            committing: None,
            reload_needed: false,
        }
    }

    /// Serves until every engine handle is gone and the queue is empty.
    pub(crate) fn run(mut self, requests: Receiver<Request>) {
        let mut batch = Batch::default();
        // A command that would have taken the batch past its bound opens the next one.
        let mut carried: Option<Request> = None;
        loop {
            let next = match carried.take() {
                Some(request) => Wait::Request(request),
                None => self.next(&requests),
            };
            match next {
                Wait::Request(request) => batch.push(request),
                Wait::Timer => {}
                Wait::Idle => {
                    self.checkpoint();
                    continue;
                }
                Wait::Stopped => {
                    // The last batch is answered and the last checkpoint written before the
                    // writer goes.
                    self.settle();
                    self.finish_checkpoint();
                    self.checkpoint();
                    self.finish_checkpoint();
                    self.committer.stop();
                    return;
                }
            }
            while batch.events < self.config.batch_events_max {
                match requests.try_recv() {
                    Ok(request) if batch.fits(&request, self.config.batch_events_max) => {
                        batch.push(request);
                    }
                    Ok(request) => {
                        carried = Some(request);
                        break;
                    }
                    Err(_) => break,
                }
            }
            self.stats
                .queue_depth
                .fetch_sub(batch.commands.len() as u64, Ordering::Relaxed);
            self.stats
                .queued_events
                .fetch_sub(batch.events as u64, Ordering::Relaxed);
            self.run_batch(&mut batch);
            // Digests are taken between batches, so they see only committed books.
            if !batch.digests.is_empty() {
                self.settle();
                // Memory that is not the books is not digested: if it cannot be rebuilt,
                // the askers get no answer (the sender dropped: the engine's error).
                if self.reload_needed && self.reload().is_err() {
                    batch.digests.clear();
                }
                for answer in batch.digests.drain(..) {
                    let _ = answer.send(self.core.ledger().digest());
                }
            }
            if self.last_checkpoint.elapsed() >= CHECKPOINT_INTERVAL {
                self.settle();
                self.checkpoint();
            }
        }
    }

    /// The next request, or what else to do. While a batch commits, the next batch is made
    /// of what is waiting (and the timers already due); with nothing waiting, the batch
    /// being committed is answered first.
    fn next(&mut self, requests: &Receiver<Request>) -> Wait {
        if self.committing.is_some() {
            match requests.try_recv() {
                Ok(request) => return Wait::Request(request),
                Err(TryRecvError::Empty) => {
                    let now = self.config.clock.now();
                    if self.core.next_deadline().is_some_and(|at| at <= now) {
                        return Wait::Timer;
                    }
                }
                Err(TryRecvError::Disconnected) => {}
            }
            self.settle();
        }
        self.wait(requests)
    }

    /// Blocks until a request arrives, the next pending transfer expires, or the writer has
    /// been idle long enough to checkpoint what changed.
    fn wait(&self, requests: &Receiver<Request>) -> Wait {
        // A manual clock (tests, benchmarks) moves only when told to, but what is due already
        // (an accrual's next chunk) runs at once, as with the system clock.
        let now = self.config.clock.now();
        let expiry = match self.core.next_deadline() {
            Some(at) if !self.config.clock.is_manual() || at <= now => {
                Some(Duration::from_nanos(at.saturating_sub(now)))
            }
            _ => None,
        };
        let checkpoint_waiting =
            self.core.dirty_accounts() > 0 || self.checkpointer.in_flight.is_some();
        let idle = checkpoint_waiting.then_some(CHECKPOINT_IDLE);
        let timeout = match (expiry, idle) {
            (Some(expiry), Some(idle)) => Some(expiry.min(idle)),
            (expiry, idle) => expiry.or(idle),
        };
        let Some(timeout) = timeout else {
            return match requests.recv() {
                Ok(request) => Wait::Request(request),
                Err(_) => Wait::Stopped,
            };
        };
        match requests.recv_timeout(timeout) {
            Ok(request) => Wait::Request(request),
            Err(RecvTimeoutError::Timeout) if expiry.is_some_and(|e| e <= timeout) => Wait::Timer,
            Err(RecvTimeoutError::Timeout) => Wait::Idle,
            Err(RecvTimeoutError::Disconnected) => Wait::Stopped,
        }
    }

    /// Hands the balances changed since the last checkpoint to the checkpoint thread, if it
    /// is free. A failure loses nothing: the store still has every transfer, and the next
    /// checkpoint writes the same accounts. Called with no batch being committed: a
    /// checkpoint holds only committed balances.
    fn checkpoint(&mut self) {
        debug_assert!(
            self.committing.is_none(),
            "checkpoints are of committed books"
        );
        self.collect_checkpoint();
        if self.reload_needed
            || self.core.dirty_accounts() == 0
            || self.checkpointer.in_flight.is_some()
        {
            return;
        }
        self.last_checkpoint = Instant::now();
        let checkpoint = self.core.take_checkpoint();
        self.checkpointer.in_flight = Some(checkpoint.accounts.len());
        self.checkpointer
            .checkpoints
            .send(checkpoint)
            .expect("the checkpoint thread lives as long as the writer");
    }

    /// Takes the checkpoint thread's answer, if it has one.
    fn collect_checkpoint(&mut self) {
        if let Ok((checkpoint, written)) = self.checkpointer.results.try_recv() {
            self.checkpointer.in_flight = None;
            self.checkpoint_done(&checkpoint, written);
        }
    }

    /// Waits for the checkpoint being written, if any.
    fn finish_checkpoint(&mut self) {
        if self.checkpointer.in_flight.is_some() {
            let answer = self.checkpointer.results.recv();
            self.checkpointer.in_flight = None;
            if let Ok((checkpoint, written)) = answer {
                self.checkpoint_done(&checkpoint, written);
            }
        }
    }

    fn checkpoint_done(&mut self, checkpoint: &Checkpoint, written: Result<Duration, StoreError>) {
        match written {
            Ok(took) => {
                self.stats.checkpoints.fetch_add(1, Ordering::Relaxed);
                let nanos = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
                self.stats
                    .checkpoint_nanos
                    .fetch_add(nanos, Ordering::Relaxed);
            }
            Err(error) => {
                tracing::warn!(error = %error, "checkpoint not written; will retry");
                self.core.checkpoint_failed(checkpoint);
            }
        }
        self.count_unsaved();
    }

    /// Publishes how many accounts' balances no checkpoint has written yet.
    fn count_unsaved(&self) {
        let unsaved = self.core.dirty_accounts() + self.checkpointer.in_flight.unwrap_or(0);
        self.stats
            .unsaved_balances
            .store(unsaved as u64, Ordering::Relaxed);
    }

    /// Applies the batch to memory and hands it to the commit thread once the batch before
    /// it is durable. If that one's commit fails, memory is rebuilt from the database and
    /// this batch applied again, on what was really committed.
    fn run_batch(&mut self, batch: &mut Batch) {
        let now = self.config.clock.now().max(self.last_now);
        self.last_now = now;
        let commands: Vec<&Command> = batch.commands.iter().map(|(command, _)| command).collect();
        let applied = loop {
            let mut reads = Reads::of(&self.core, &commands);
            // The store is read as committed: the batch being committed first. If its commit
            // fails, memory is rebuilt and what to read is asked again.
            if !reads.is_empty() && !self.settle() {
                reads = Reads::of(&self.core, &commands);
            }
            if self.reload_needed {
                // An earlier reload failed: memory is not the books until one succeeds.
                if let Err(error) = self.reload() {
                    self.fail(batch, error);
                    return;
                }
                reads = Reads::of(&self.core, &commands);
            }
            let reader = &mut self.reader;
            if let Err(error) = read_again_once(|| reads.fetch(&mut self.core, reader)) {
                self.fail(batch, error);
                return;
            }
            let applied = crate::batch::apply(&mut self.core, now, &commands);
            if self.settle() {
                break applied;
            }
            // The batch before failed and memory was rebuilt: what to read is asked again.
        };
        self.committer.send(Job::Commit(Box::new(applied.effects)));
        // Digests stay behind: they are answered between batches, once this one settles.
        let digests = std::mem::take(&mut batch.digests);
        self.committing = Some(Committing {
            batch: std::mem::replace(
                batch,
                Batch {
                    digests,
                    ..Batch::default()
                },
            ),
            replies: applied.replies,
        });
    }

    /// Waits for the batch being committed, if one is, and answers its callers. Whether it
    /// is durable (true too when there was none); if not, memory is to be rebuilt.
    fn settle(&mut self) -> bool {
        let Some(Committing { mut batch, replies }) = self.committing.take() else {
            return true;
        };
        let JobDone::Committed(written) = self.committer.receive() else {
            unreachable!("a commit's answer follows its commit");
        };
        match written {
            Ok(took) => {
                let nanos = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
                self.stats.commit_nanos.fetch_add(nanos, Ordering::Relaxed);
                self.stats.batches.fetch_add(1, Ordering::Relaxed);
                let events = batch.events as u64;
                self.stats.events.fetch_add(events, Ordering::Relaxed);
                self.stats
                    .largest_batch_events
                    .fetch_max(events, Ordering::Relaxed);
                self.stats.cached_transfers.store(
                    self.core.ledger().cached_transfer_count() as u64,
                    Ordering::Relaxed,
                );
                self.count_unsaved();
                for ((_, reply), answer) in batch.commands.into_iter().zip(replies) {
                    // A caller that gave up waiting is no error: its command is durable.
                    let _ = reply.send(answer.map_err(EngineError::from));
                }
                for tick in batch.ticks {
                    let _ = tick.send(());
                }
                true
            }
            Err(error) => {
                // Memory holds the batch and disk may not: memory is rebuilt before anything
                // else reads it (see `batch::Failed`). If that fails too, the next batch
                // tries again, and no checkpoint is taken meanwhile.
                self.reload_needed = true;
                self.fail(&mut batch, error);
                if let Err(error) = self.reload() {
                    tracing::error!(error = %error, "books not reloaded; the next batch retries");
                }
                false
            }
        }
    }

    /// Rebuilds the core from the database (after a commit failed).
    fn reload(&mut self) -> Result<(), StoreError> {
        self.finish_checkpoint();
        debug_assert!(
            self.committing.is_none(),
            "a load waits for the commit in flight"
        );
        let loaded = read_again_once(|| {
            self.committer.send(Job::Load);
            match self.committer.receive() {
                JobDone::Loaded(loaded) => loaded.map(|loaded| *loaded),
                JobDone::Committed(_) => unreachable!("a load's answer follows its load"),
            }
        })?;
        self.core = Core::from_loaded(loaded)?;
        self.core.configure(self.config.settings.clone());
        self.last_now = self.last_now.max(self.core.ledger().timestamp());
        self.reload_needed = false;
        self.count_unsaved();
        tracing::info!("books reloaded from the database after a failed commit");
        Ok(())
    }

    /// Answers every caller of the batch with the store's error: it was not committed.
    fn fail(&mut self, batch: &mut Batch, error: StoreError) {
        tracing::error!(error = %error, commands = batch.commands.len(), "batch not committed");
        // A database that keeps failing is not hammered by timers retrying at once.
        std::thread::sleep(FAILURE_BACKOFF);
        self.stats.failed_batches.fetch_add(1, Ordering::Relaxed);
        let error = Arc::new(error);
        for (_, reply) in batch.commands.drain(..) {
            let _ = reply.send(Err(EngineError::Store(Arc::clone(&error))));
        }
        for tick in batch.ticks.drain(..) {
            let _ = tick.send(());
        }
        batch.events = 0;
    }
}

/// Runs a read, and runs it again if it fails: a server that ended its sessions (restarted,
/// say) breaks the reader's connection unnoticed until it is used, and the store reconnects
/// for the second try. A read changes nothing, so trying it twice is safe.
fn read_again_once<T>(mut read: impl FnMut() -> Result<T, StoreError>) -> Result<T, StoreError> {
    read().or_else(|error| {
        tracing::warn!(error = %error, "a read failed; trying once more");
        read()
    })
}

enum Wait {
    Request(Request),
    /// A pending transfer's timeout has passed.
    Timer,
    /// Nothing came for a while: time to checkpoint.
    Idle,
    Stopped,
}

impl Checkpointer {
    /// Starts the thread that writes checkpoints on `store`, one at a time.
    fn start(mut store: Store) -> Self {
        let (checkpoints, incoming) = mpsc::sync_channel::<Checkpoint>(1);
        let (answers, results) = mpsc::sync_channel(1);
        std::thread::Builder::new()
            .name("formica-checkpoint".into())
            .spawn(move || {
                loop {
                    match incoming.recv_timeout(COPY_LOG_EVERY) {
                        Ok(checkpoint) => {
                            let started = Instant::now();
                            let written = store.checkpoint(&checkpoint).map(|()| started.elapsed());
                            if answers.send((checkpoint, written)).is_err() {
                                return;
                            }
                        }
                        Err(mpsc::RecvTimeoutError::Timeout) => {}
                        Err(mpsc::RecvTimeoutError::Disconnected) => return,
                    }
                    // The log's copying, done here, leaves the writer's own (at a commit that
                    // fills the log) little to copy. Failing it costs nothing: it is redone.
                    if let Err(error) = store.copy_log() {
                        tracing::warn!(error = %error, "write-ahead log not copied; will retry");
                    }
                }
            })
            .expect("the checkpoint thread can be spawned at start");
        Checkpointer {
            checkpoints,
            results,
            in_flight: None,
        }
    }
}

impl Committer {
    /// Starts the thread that commits batches (and loads the books) on `store`, one job at
    /// a time.
    fn start(mut store: Store) -> Self {
        let (jobs, incoming) = mpsc::sync_channel::<Job>(1);
        let (answers, results) = mpsc::sync_channel(1);
        let thread = std::thread::Builder::new()
            .name("formica-commit".into())
            .spawn(move || {
                for job in incoming {
                    let done = match job {
                        Job::Commit(effects) => {
                            let started = Instant::now();
                            JobDone::Committed(store.commit(&effects).map(|()| started.elapsed()))
                        }
                        Job::Load => JobDone::Loaded(store.load().map(Box::new)),
                    };
                    if answers.send(done).is_err() {
                        return;
                    }
                }
            })
            .expect("the commit thread can be spawned at start");
        Committer {
            jobs,
            results,
            thread,
        }
    }

    /// Hands the thread its next job; the one before must have been answered.
    fn send(&self, job: Job) {
        self.jobs
            .send(job)
            .expect("the commit thread lives as long as the writer");
    }

    /// Waits for the answer to the job in hand.
    fn receive(&self) -> JobDone {
        self.results
            .recv()
            .expect("the commit thread lives as long as the writer")
    }

    /// Ends the thread once it has done what it was given, closing the store (and so giving
    /// up the writer's claim on the books) before this returns.
    fn stop(self) {
        drop(self.jobs);
        let _ = self.thread.join();
    }
}

impl Batch {
    /// Whether `request` joins this batch without taking it past `events_max` (a first
    /// command always does, however large).
    fn fits(&self, request: &Request, events_max: usize) -> bool {
        match request {
            Request::Command(command, _) => {
                self.commands.is_empty() || self.events + command.events() <= events_max
            }
            Request::Tick(_) | Request::Digest(_) => true,
        }
    }

    fn push(&mut self, request: Request) {
        match request {
            Request::Command(command, reply) => {
                self.events += command.events();
                self.commands.push((command, reply));
            }
            Request::Tick(done) => self.ticks.push(done),
            Request::Digest(answer) => self.digests.push(answer),
        }
    }
}
