//! The engine: Formica's single writer. Callers submit commands into a bounded queue; one
//! thread takes what is waiting (up to a batch's bound), stamps the batch with the clock and
//! applies it to the core; a second thread writes the batch's effects to the store in one
//! transaction while the first applies the next batch, and every caller is answered only once
//! their batch is durable. If a commit fails, every caller of the batch gets an error and the
//! core is rebuilt from the store (a batch applied on top of it is applied again): memory and
//! disk never disagree.
//!
//! Timers (pending-transfer expiry) run inside batches too, stamped by the same clock.
//!
//! Between batches the writer takes a checkpoint of account balances (every account changed
//! since the last one, at most every `CHECKPOINT_INTERVAL` under load and soon after the load
//! stops) and hands it to a thread that writes it on a connection of its own while the next
//! batches commit. A batch itself writes only new rows, so its cost does not grow with the number
//! of accounts it touches; after a crash the store brings the last checkpoint forward with the
//! transfers that follow it.

pub mod bank;
pub mod batch;
mod clock;
pub mod webhooks;
mod writer;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, SyncSender, TrySendError};
use std::thread::JoinHandle;

use formica_core::{Command, CommandError, Core, Reply};
use formica_store::{Store, StoreError};
use tokio::sync::oneshot;

pub use clock::Clock;

/// Largest number of ledger events one batch applies and commits (TigerBeetle's batch size).
pub const BATCH_EVENTS_MAX: usize = 8190;

/// Longest time between checkpoints while batches keep coming.
pub const CHECKPOINT_INTERVAL: std::time::Duration = std::time::Duration::from_secs(2);

/// How long the writer waits for more work before it checkpoints what changed.
pub const CHECKPOINT_IDLE: std::time::Duration = std::time::Duration::from_millis(50);

/// Default number of commands that may wait in the queue before callers are told `Busy`: two
/// full batches of one-event commands (a payment each, as the products send them), so that one
/// batch can fill while the previous one commits.
pub const QUEUE_COMMANDS_DEFAULT: usize = 2 * BATCH_EVENTS_MAX;

/// Default number of ledger events that may wait in the queue (eight full batches, about 8 MiB
/// of transfers): the bound on the queue's memory, however large its commands.
pub const QUEUE_EVENTS_DEFAULT: usize = 8 * BATCH_EVENTS_MAX;

/// How the engine runs.
#[derive(Clone, Debug)]
pub struct Config {
    /// Most ledger events per batch (a command is never split; one larger than this runs
    /// alone).
    pub batch_events_max: usize,
    /// Commands that may wait in the queue; past it `submit` answers `Busy`.
    pub queue_commands_max: usize,
    /// Ledger events that may wait in the queue; past it `submit` answers `Busy`.
    pub queue_events_max: usize,
    /// Where batch timestamps come from.
    pub clock: Clock,
    /// The rules the products run by (timeouts, limits).
    pub settings: formica_core::Settings,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            batch_events_max: BATCH_EVENTS_MAX,
            queue_commands_max: QUEUE_COMMANDS_DEFAULT,
            queue_events_max: QUEUE_EVENTS_DEFAULT,
            clock: Clock::System,
            settings: formica_core::Settings::default(),
        }
    }
}

/// Why a command got no reply from the core.
#[derive(Clone, Debug, thiserror::Error)]
pub enum EngineError {
    /// The queue is full: try again later.
    #[error("the engine is busy: its queue is full")]
    Busy,
    /// The engine has stopped.
    #[error("the engine has stopped")]
    Stopped,
    /// The command was refused as a whole; nothing changed.
    #[error(transparent)]
    Rejected(#[from] CommandError),
    /// The batch could not be made durable; nothing of it was applied.
    #[error("the batch could not be committed: {0}")]
    Store(Arc<StoreError>),
}

/// The answer a caller waits for.
type Answer = Result<Reply, EngineError>;

/// What goes through the queue.
enum Request {
    /// Apply a command and answer.
    Command(Command, oneshot::Sender<Answer>),
    /// Run the timers now (after a manual clock moved), then answer.
    Tick(oneshot::Sender<()>),
    /// Answer the digest of the books in memory, between batches.
    Digest(oneshot::Sender<u128>),
}

/// Counters the writer keeps, for metrics and benchmarks.
#[derive(Debug, Default)]
pub struct Stats {
    /// Batches committed.
    pub batches: AtomicU64,
    /// Ledger events committed.
    pub events: AtomicU64,
    /// The most ledger events one committed batch held.
    pub largest_batch_events: AtomicU64,
    /// Batches whose commit failed.
    pub failed_batches: AtomicU64,
    /// Total time spent committing, in nanoseconds.
    pub commit_nanos: AtomicU64,
    /// Commands waiting in the queue.
    pub queue_depth: AtomicU64,
    /// Ledger events waiting in the queue.
    pub queued_events: AtomicU64,
    /// Checkpoints of account balances written.
    pub checkpoints: AtomicU64,
    /// Total time spent writing checkpoints, in nanoseconds.
    pub checkpoint_nanos: AtomicU64,
    /// Accounts whose balances no checkpoint has written yet (changed since the last one, or
    /// being written): what a load would bring forward from the transfers.
    pub unsaved_balances: AtomicU64,
    /// Transfers the books hold in memory after the last batch (open holds, and settled
    /// transfers until enough gather to be swept).
    pub cached_transfers: AtomicU64,
}

/// A running engine. Cloning it gives another handle to the same writer.
#[derive(Clone, Debug)]
pub struct Engine {
    queue: SyncSender<Request>,
    clock: Clock,
    queue_events_max: u64,
    stats: Arc<Stats>,
    writer: Arc<WriterHandle>,
    settings: Arc<formica_core::Settings>,
}

/// Joins the writer thread when the last handle goes away.
#[derive(Debug)]
struct WriterHandle(std::sync::Mutex<Option<JoinHandle<()>>>);

impl Engine {
    /// Claims the store as the books' only writer, loads the books, checks them, and starts
    /// the writer thread.
    pub fn start(mut store: Store, config: Config) -> Result<Engine, StoreError> {
        store.claim_writer()?;
        let loaded = store.load()?;
        let mut core = Core::from_loaded(loaded)?;
        core.configure(config.settings.clone());
        let clock = config.clock.clone();
        let settings = Arc::new(config.settings.clone());
        let (queue, requests) = mpsc::sync_channel(config.queue_commands_max);
        let config_events_max = config.queue_events_max as u64;
        let stats = Arc::new(Stats::default());
        let reader = store.connect_again()?;
        let checkpoint_store = store.connect_again()?;
        let writer = writer::Writer::new(
            core,
            store,
            reader,
            checkpoint_store,
            config,
            Arc::clone(&stats),
        );
        let thread = std::thread::Builder::new()
            .name("formica-writer".into())
            .spawn(move || writer.run(requests))
            .expect("the writer thread can be spawned at start");
        Ok(Engine {
            queue,
            clock,
            queue_events_max: config_events_max,
            stats,
            writer: Arc::new(WriterHandle(std::sync::Mutex::new(Some(thread)))),
            settings,
        })
    }

    /// Submits a command and waits for its reply, which comes only once its batch is durable.
    pub async fn submit(&self, command: Command) -> Answer {
        let receiver = self.enqueue(command)?;
        receiver.await.map_err(|_| EngineError::Stopped)?
    }

    /// `submit` for callers without an async runtime (the command line, tests).
    pub fn submit_blocking(&self, command: Command) -> Answer {
        let receiver = self.enqueue(command)?;
        receiver.blocking_recv().map_err(|_| EngineError::Stopped)?
    }

    /// The rules the products run by.
    pub fn settings(&self) -> &formica_core::Settings {
        &self.settings
    }

    /// The clock batches are stamped with.
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// `tick_blocking` for async callers.
    pub async fn tick(&self) -> Result<(), EngineError> {
        let (sender, receiver) = oneshot::channel();
        self.queue
            .try_send(Request::Tick(sender))
            .map_err(|_| EngineError::Busy)?;
        receiver.await.map_err(|_| EngineError::Stopped)
    }

    /// Runs the timers now and waits until they have run (for a manual clock that moved).
    pub fn tick_blocking(&self) -> Result<(), EngineError> {
        let (sender, receiver) = oneshot::channel();
        self.queue
            .send(Request::Tick(sender))
            .map_err(|_| EngineError::Stopped)?;
        receiver.blocking_recv().map_err(|_| EngineError::Stopped)
    }

    /// The digest of the books the writer holds, taken between batches (for checks that
    /// memory equals what the store rebuilds).
    pub fn digest_blocking(&self) -> Result<u128, EngineError> {
        let (sender, receiver) = oneshot::channel();
        self.queue
            .send(Request::Digest(sender))
            .map_err(|_| EngineError::Stopped)?;
        receiver.blocking_recv().map_err(|_| EngineError::Stopped)
    }

    /// The writer's counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Stops taking commands, lets the writer finish what is queued, and waits for it.
    /// Other clones of this handle get `Stopped` afterwards.
    pub fn shutdown(self) {
        let Engine { queue, writer, .. } = self;
        drop(queue);
        // The writer stops once every handle's sender is gone; this handle waits for it only
        // if it is the last one.
        if let Ok(handle) = Arc::try_unwrap(writer) {
            let thread = handle
                .0
                .into_inner()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Some(thread) = thread {
                let _ = thread.join();
            }
        }
    }

    fn enqueue(&self, command: Command) -> Result<oneshot::Receiver<Answer>, EngineError> {
        let (sender, receiver) = oneshot::channel();
        let events = command.events() as u64;
        let waiting = self
            .stats
            .queued_events
            .fetch_add(events, Ordering::Relaxed);
        // An empty queue takes any one command, so that a command larger than the bound is
        // still served (alone).
        if waiting > 0 && waiting + events > self.queue_events_max {
            self.stats
                .queued_events
                .fetch_sub(events, Ordering::Relaxed);
            return Err(EngineError::Busy);
        }
        self.stats.queue_depth.fetch_add(1, Ordering::Relaxed);
        match self.queue.try_send(Request::Command(command, sender)) {
            Ok(()) => Ok(receiver),
            Err(error) => {
                self.stats.queue_depth.fetch_sub(1, Ordering::Relaxed);
                self.stats
                    .queued_events
                    .fetch_sub(events, Ordering::Relaxed);
                Err(match error {
                    TrySendError::Full(_) => EngineError::Busy,
                    TrySendError::Disconnected(_) => EngineError::Stopped,
                })
            }
        }
    }
}
