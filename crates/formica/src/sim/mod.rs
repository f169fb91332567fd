//! `formica sim`: deterministic simulation of the engine under faults. A seed drives random
//! clients (see `clients`), a real SQLite store that fails reads and commits on purpose
//! (see `faults`), checkpoints that fail half written, and crashes between any two steps
//! followed by a restart from disk. Every batch runs through the writer's own code
//! (`formica_engine::batch::run`).
//!
//! The oracle is a twin: a second core and store, without faults, that applies exactly the
//! batches the faulty store really wrote (including those whose answer was lost). After every
//! step the books and products under test must equal the twin's, every answer a client got
//! must equal the twin's answer to the same command, an answer to a retried key must equal
//! the first one, and the invariants in `check` must hold. A failing seed prints itself and
//! the command that replays it exactly.

mod check;
mod clients;
mod faults;

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use formica_core::{Command, CommandError, Core, Reply, Settings};
use formica_engine::batch;
use formica_store::{Location, Store};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use clients::Clients;
use faults::{Fate, FaultyStore, Rates};

/// Options of `formica sim`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Run this one seed (and print what it did).
    #[arg(long, conflicts_with = "seeds")]
    seed: Option<u64>,
    /// Run this many seeds, from `--first-seed` on, on every core.
    #[arg(long)]
    seeds: Option<u64>,
    /// The first seed of `--seeds`.
    #[arg(long, default_value_t = 1)]
    first_seed: u64,
    /// Steps per seed.
    #[arg(long, default_value_t = 300)]
    steps: usize,
    /// A store that sometimes acknowledges a commit it never wrote: the checker must catch
    /// it (a test of the simulator itself).
    #[arg(long, hide = true)]
    lying_store: bool,
}

/// Nanoseconds.
const MILLISECOND: u64 = 1_000_000;
const SECOND: u64 = 1_000 * MILLISECOND;
const DAY: u64 = 24 * 3600 * SECOND;
/// Monday 2027-01-18 10:00 in the platform's zone (UTC+8).
const START: u64 = (1_800_000_000 + 66 * 3600) * SECOND;
/// Retries of the commands in flight before a clock jump, before the run gives up.
const FLUSH_TRIES: usize = 100;

/// What one seed did.
#[derive(Debug, Default, Clone)]
pub struct Summary {
    pub seed: u64,
    pub steps: usize,
    pub batches: u64,
    pub answered: u64,
    pub retried: u64,
    pub failed_reads: u64,
    pub failed_before: u64,
    pub failed_after: u64,
    pub crashes: u64,
    pub checkpoints: u64,
    pub failed_checkpoints: u64,
    /// The books' digest at the end.
    pub digest: u128,
    /// A hash of every answer in order: equal for equal runs.
    pub trace: u64,
    /// How often each kind of answer came (`trade wait_seller_send`, `refused
    /// insufficient_funds`, ...): what the run reached.
    pub coverage: std::collections::BTreeMap<String, u64>,
}

/// The kind of an answer, for coverage.
fn answer_kind(answer: &Result<Reply, CommandError>) -> String {
    match answer {
        Ok(Reply::Product(outcome)) => {
            let json = serde_json::to_value(outcome).expect("outcomes serialize");
            let object = json["object"].as_str().unwrap_or("?");
            match json["status"].as_str() {
                Some(status) => format!("{object} {status}"),
                None => object.to_owned(),
            }
        }
        Err(CommandError::Refused(refusal)) => {
            let json = serde_json::to_value(refusal).expect("refusals serialize");
            format!("refused {}", json["refusal"].as_str().unwrap_or("?"))
        }
        Ok(_) => "books".to_owned(),
        Err(other) => format!("error {other}"),
    }
}

fn print_coverage(coverage: &std::collections::BTreeMap<String, u64>) {
    println!("answers reached:");
    for (kind, count) in coverage {
        println!("  {count:>8}  {kind}");
    }
}

/// A broken promise, with what replays it.
#[derive(Debug)]
pub struct Violation {
    pub seed: u64,
    pub step: usize,
    pub steps: usize,
    pub what: String,
}

impl std::error::Error for Violation {}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "seed {} failed at step {}: {}\nreplay: formica sim --seed {} --steps {}",
            self.seed, self.step, self.what, self.seed, self.steps
        )
    }
}

pub fn run(args: Args) -> anyhow::Result<()> {
    if let Some(seed) = args.seed {
        let summary = simulate(seed, args.steps, args.lying_store)?;
        println!("{}", describe(&summary));
        print_coverage(&summary.coverage);
        return Ok(());
    }
    let count = args.seeds.unwrap_or(100);
    let seeds = args.first_seed..args.first_seed + count;
    let progress = indicatif::ProgressBar::new(count);
    progress.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} seeds {elapsed} {msg}")
            .expect("a valid template"),
    );
    let next = AtomicU64::new(seeds.start);
    let done: Mutex<(Vec<Summary>, Vec<Violation>)> = Mutex::default();
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| {
                loop {
                    let seed = next.fetch_add(1, Ordering::Relaxed);
                    if seed >= seeds.end {
                        return;
                    }
                    let result = simulate(seed, args.steps, args.lying_store);
                    let mut done = done.lock().expect("no worker panics holding it");
                    match result {
                        Ok(summary) => done.0.push(summary),
                        Err(violation) => {
                            progress.println(violation.to_string());
                            done.1.push(violation);
                        }
                    }
                    progress.set_message(format!("{} failed", done.1.len()));
                    progress.inc(1);
                }
            });
        }
    });
    progress.finish_and_clear();
    let (summaries, violations) = done.into_inner().expect("no worker panicked");
    let total = summaries.iter().fold(Summary::default(), |mut t, s| {
        t.steps += s.steps;
        t.batches += s.batches;
        t.answered += s.answered;
        t.retried += s.retried;
        t.failed_reads += s.failed_reads;
        t.failed_before += s.failed_before;
        t.failed_after += s.failed_after;
        t.crashes += s.crashes;
        t.checkpoints += s.checkpoints;
        t.failed_checkpoints += s.failed_checkpoints;
        for (kind, count) in &s.coverage {
            *t.coverage.entry(kind.clone()).or_default() += count;
        }
        t
    });
    println!(
        "seeds {}..{}: {} passed, {} failed; {} steps, {} batches, {} commands answered \
         ({} retries of answered keys), {} reads and {} commits failed before writing, {} \
         written but unanswered, {} crashes, {} checkpoints ({} failed)",
        seeds.start,
        seeds.end - 1,
        summaries.len(),
        violations.len(),
        total.steps,
        total.batches,
        total.answered,
        total.retried,
        total.failed_reads,
        total.failed_before,
        total.failed_after,
        total.crashes,
        total.checkpoints,
        total.failed_checkpoints,
    );
    print_coverage(&total.coverage);
    if let Some(first) = violations.iter().min_by_key(|v| v.seed) {
        anyhow::bail!(
            "{} of {count} seeds failed; the first:\n{first}",
            violations.len()
        );
    }
    Ok(())
}

fn describe(s: &Summary) -> String {
    format!(
        "seed {}: {} steps, {} batches, {} commands answered ({} retries of answered keys), \
         {} reads and {} commits failed before writing, {} written but unanswered, {} \
         crashes, {} checkpoints ({} failed); digest {:032x} trace {:016x}",
        s.seed,
        s.steps,
        s.batches,
        s.answered,
        s.retried,
        s.failed_reads,
        s.failed_before,
        s.failed_after,
        s.crashes,
        s.checkpoints,
        s.failed_checkpoints,
        s.digest,
        s.trace
    )
}

/// Where the simulated stores live: memory-backed where the machine has it, since the run
/// tests what is written, not how fast the disk is.
fn scratch() -> std::io::Result<tempfile::TempDir> {
    let shm = Path::new("/dev/shm");
    let builder = {
        let mut b = tempfile::Builder::new();
        b.prefix("formica-sim-");
        b
    };
    if shm.is_dir() {
        builder.tempdir_in(shm)
    } else {
        builder.tempdir()
    }
}

fn settings() -> Settings {
    // Small accrual chunks, so that a day's earnings take several batches and crashes land
    // in the middle of them.
    Settings {
        accrual_chunk: 2,
        ..Settings::default()
    }
}

/// A core loaded from the store at `dir`.
fn open(dir: &Path) -> Result<(Core, Store), String> {
    let mut store = Store::open(&Location::Sqlite(dir.to_path_buf()))
        .map_err(|e| format!("the store does not open: {e}"))?;
    let loaded = store
        .load()
        .map_err(|e| format!("the store does not load: {e}"))?;
    let mut core =
        Core::from_loaded(loaded).map_err(|e| format!("the loaded books are broken: {e}"))?;
    core.configure(settings());
    Ok((core, store))
}

/// Runs one seed.
pub fn simulate(seed: u64, steps: usize, lying: bool) -> Result<Summary, Violation> {
    let violation = |step, what| Violation {
        seed,
        step,
        steps,
        what,
    };
    let mut sim = Sim::new(seed, lying).map_err(|what| violation(0, what))?;
    for step in 0..steps {
        sim.step().map_err(|what| violation(step, what))?;
        sim.check().map_err(|what| violation(step, what))?;
    }
    // The end: what is in flight is answered, and a last crash finds everything on disk.
    sim.flush().map_err(|what| violation(steps, what))?;
    sim.crash().map_err(|what| violation(steps, what))?;
    sim.check().map_err(|what| violation(steps, what))?;
    sim.summary.digest = sim.real.core.ledger().digest();
    sim.summary.trace = sim.trace.finish();
    sim.summary.seed = seed;
    sim.summary.steps = steps;
    Ok(sim.summary)
}

/// The node under test.
struct Real {
    core: Core,
    store: FaultyStore,
    dir: PathBuf,
}

/// The twin without faults.
struct Twin {
    core: Core,
    store: Store,
}

struct Sim {
    rng: SmallRng,
    lying: bool,
    real: Real,
    twin: Twin,
    now: u64,
    clients: Clients,
    /// Sent and not answered: sent again in the next batch, with the same keys.
    in_flight: Vec<Command>,
    /// Commands answered, to send again now and then.
    answered: Vec<Command>,
    /// The first answer to each key.
    answers: HashMap<String, String>,
    /// The twin's answer to each key whose batch was written but not answered.
    truth: HashMap<String, String>,
    summary: Summary,
    trace: DefaultHasher,
    _dirs: (tempfile::TempDir, tempfile::TempDir),
}

/// An answer as a client sees it (the JSON of the outcome or refusal, or the error).
fn answer_text(answer: &Result<Reply, CommandError>) -> String {
    match answer {
        Ok(Reply::Product(outcome)) => {
            serde_json::to_string(&Ok::<_, ()>(outcome)).expect("outcomes serialize")
        }
        Err(CommandError::Refused(refusal)) => {
            serde_json::to_string(&Err::<(), _>(refusal)).expect("refusals serialize")
        }
        other => format!("{other:?}"),
    }
}

fn key_of(command: &Command) -> String {
    match command {
        Command::Product(request) => request
            .idempotency
            .as_ref()
            .map(|k| format!("{}/{}", k.owner, k.key))
            .unwrap_or_default(),
        _ => String::new(),
    }
}

impl Sim {
    fn new(seed: u64, lying: bool) -> Result<Sim, String> {
        let dirs = (
            scratch().map_err(|e| e.to_string())?,
            scratch().map_err(|e| e.to_string())?,
        );
        let mut rng = SmallRng::seed_from_u64(seed);
        let (core, store) = open(dirs.0.path())?;
        let store = FaultyStore::new(store, rng.random(), Rates::default(), lying);
        let (twin_core, twin_store) = open(dirs.1.path())?;
        let mut clients = Clients::default();
        let in_flight = clients.setup();
        Ok(Sim {
            rng,
            lying,
            real: Real {
                core,
                store,
                dir: dirs.0.path().to_path_buf(),
            },
            twin: Twin {
                core: twin_core,
                store: twin_store,
            },
            now: START,
            clients,
            in_flight,
            answered: Vec::new(),
            answers: HashMap::new(),
            truth: HashMap::new(),
            summary: Summary::default(),
            trace: DefaultHasher::new(),
            _dirs: dirs,
        })
    }

    fn step(&mut self) -> Result<(), String> {
        match self.rng.random_range(0..100) {
            0..60 => {
                self.now += self.rng.random_range(MILLISECOND..2 * SECOND);
                let mut commands = std::mem::take(&mut self.in_flight);
                for _ in 0..self.rng.random_range(1..=4) {
                    commands.push(self.clients.next(&mut self.rng, &self.real.core));
                }
                if !self.answered.is_empty() && self.rng.random_bool(0.1) {
                    let again = self.rng.random_range(0..self.answered.len());
                    commands.push(self.answered[again].clone());
                    self.summary.retried += 1;
                }
                self.batch(commands)
            }
            60..70 => {
                // A quiet spell: clients finish what they sent, then the clock jumps (timers
                // fire, days pass, funds confirm).
                self.flush()?;
                self.now += self.rng.random_range(SECOND..3 * DAY);
                self.batch(Vec::new())
            }
            70..82 => {
                self.now += self.rng.random_range(MILLISECOND..10 * SECOND);
                let commands = std::mem::take(&mut self.in_flight);
                self.batch(commands)
            }
            82..94 => self.checkpoint(),
            _ => {
                if self.rng.random_bool(0.3) {
                    // A clean stop writes a last checkpoint first.
                    self.checkpoint()?;
                }
                self.crash()
            }
        }
    }

    /// Sends what is in flight until everything is answered.
    fn flush(&mut self) -> Result<(), String> {
        for _ in 0..FLUSH_TRIES {
            if self.in_flight.is_empty() {
                return Ok(());
            }
            self.now += MILLISECOND;
            let commands = std::mem::take(&mut self.in_flight);
            self.batch(commands)?;
        }
        Err(format!(
            "{} commands still unanswered after {FLUSH_TRIES} tries",
            self.in_flight.len()
        ))
    }

    /// One batch through the writer's code on the faulty store, and through the twin if the
    /// store really wrote it.
    fn batch(&mut self, commands: Vec<Command>) -> Result<(), String> {
        let refs: Vec<&Command> = commands.iter().collect();
        self.real.store.fate = Fate::NotTried;
        let result = batch::run(&mut self.real.core, &mut self.real.store, self.now, &refs);
        let fate = self.real.store.fate;
        let twin = match fate {
            Fate::Written | Fate::FailedAfter => {
                let done =
                    batch::run(&mut self.twin.core, &mut self.twin.store, self.now, &refs)
                        .map_err(|failed| format!("the twin's store failed: {}", failed.error))?;
                Some(done.replies.iter().map(answer_text).collect::<Vec<_>>())
            }
            Fate::NotTried | Fate::FailedBefore | Fate::Lost => None,
        };
        self.summary.batches += 1;
        match result {
            Ok(done) => {
                for (index, (command, reply)) in commands.iter().zip(&done.replies).enumerate() {
                    let text = answer_text(reply);
                    if let Some(twin) = &twin
                        && twin[index] != text
                    {
                        return Err(format!(
                            "{command:?} was answered {text}, a run without faults answered {}",
                            twin[index]
                        ));
                    }
                    self.answer(command, &text)?;
                    *self.summary.coverage.entry(answer_kind(reply)).or_default() += 1;
                    self.clients.learn(command, reply);
                }
                Ok(())
            }
            Err(failed) => {
                match fate {
                    Fate::NotTried => self.summary.failed_reads += 1,
                    Fate::FailedAfter => {
                        self.summary.failed_after += 1;
                        for (command, text) in commands.iter().zip(twin.unwrap_or_default()) {
                            self.truth.entry(key_of(command)).or_insert(text);
                        }
                    }
                    _ => self.summary.failed_before += 1,
                }
                if failed.reload {
                    // As the writer does: memory holds the batch, and the store may or may
                    // not; memory is rebuilt from the store before anything else reads it.
                    let (core, store) = open(&self.real.dir)?;
                    self.real.core = core;
                    self.real.store.store = store;
                }
                // Nobody was answered: every client sends its command again.
                self.in_flight = commands;
                Ok(())
            }
        }
    }

    /// Records an answer a client got, which must be the first answer to its key.
    fn answer(&mut self, command: &Command, text: &str) -> Result<(), String> {
        let key = key_of(command);
        text.hash(&mut self.trace);
        self.summary.answered += 1;
        if let Some(truth) = self.truth.get(&key)
            && truth != text
        {
            return Err(format!(
                "{command:?} was written once and answered {truth}, but its retry was \
                 answered {text}"
            ));
        }
        match self.answers.get(&key) {
            Some(first) if first != text => Err(format!(
                "{command:?} was answered {first}, and again with the same key {text}"
            )),
            Some(_) => Ok(()),
            None => {
                self.answers.insert(key, text.to_owned());
                self.answered.push(command.clone());
                Ok(())
            }
        }
    }

    /// A checkpoint, written, failed, or half written and reported failed.
    fn checkpoint(&mut self) -> Result<(), String> {
        let checkpoint = self.real.core.take_checkpoint();
        self.summary.checkpoints += 1;
        match self.real.store.checkpoint(&checkpoint) {
            Ok(()) => check::store(&mut self.real.store.store),
            Err(_) => {
                self.summary.failed_checkpoints += 1;
                self.real.core.checkpoint_failed(&checkpoint);
                Ok(())
            }
        }
    }

    /// The process dies: memory is gone; the books are loaded again from disk. Whatever was
    /// in flight is sent again after the restart.
    fn crash(&mut self) -> Result<(), String> {
        self.summary.crashes += 1;
        let (core, store) = open(&self.real.dir)?;
        let seed = self.rng.random();
        self.real.core = core;
        self.real.store = FaultyStore::new(store, seed, Rates::default(), self.lying);
        check::store(&mut self.real.store.store)
    }

    /// The books and products under test equal the twin's, and the invariants hold.
    fn check(&self) -> Result<(), String> {
        let (real, twin) = (&self.real.core, &self.twin.core);
        if real.ledger().digest() != twin.ledger().digest() {
            return Err(format!(
                "the books differ from a run without faults (accounts {} vs {}, open pending \
                 {} vs {}, clock {} vs {})",
                real.ledger().account_count(),
                twin.ledger().account_count(),
                real.ledger().open_pending().count(),
                twin.ledger().open_pending().count(),
                real.ledger().timestamp(),
                twin.ledger().timestamp(),
            ));
        }
        let (ours, theirs) = (check::products_text(real), check::products_text(twin));
        if ours != theirs {
            let at = ours
                .bytes()
                .zip(theirs.bytes())
                .position(|(a, b)| a != b)
                .unwrap_or(0);
            let from = at.saturating_sub(200);
            return Err(format!(
                "the products differ from a run without faults at byte {at}:\n  ours:   \
                 …{}…\n  theirs: …{}…",
                ours.get(from..(at + 200).min(ours.len())).unwrap_or(""),
                theirs.get(from..(at + 200).min(theirs.len())).unwrap_or("")
            ));
        }
        check::core(real)
    }
}
