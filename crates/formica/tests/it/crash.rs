//! The crash test: `formica crash-load` runs in a child process, paying from several clients
//! and printing `ack ID` for each payment the engine acknowledged, and is killed with SIGKILL
//! at a random moment, again and again against the same books, so that each run starts from
//! what the earlier kills left. After every kill the books are opened directly and must hold
//! every acknowledged payment (the payment and its fee), no half-applied payment (one of the
//! linked pair without the other), a snapshot the ledger imports, and a trial balance, also as
//! `formica admin trial-balance` sees it.
//!
//! `FORMICA_CRASH_KILLS` sets the number of kill points (20 by default, the floor CI runs) and
//! `FORMICA_CRASH_SEED` the seed, which is printed. A seed replays the kill moments, client
//! counts and payments, not the thread scheduling: a replay kills after the same delays, not
//! at the same instruction, so a failure also keeps its books for inspection.
//! `scripts/crash-test` runs any number of kill points.

#![cfg(unix)]

mod fund;

use std::collections::{BTreeMap, HashSet};
use std::ffi::OsString;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

use formica_ledger::{Ledger, Transfer};
use formica_store::{Location, Store, TemporaryDatabase};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// Kill points when `FORMICA_CRASH_KILLS` is unset: the project's floor for CI.
const KILLS_DEFAULT: usize = 20;
/// A kill under load comes this long after `ready`, in milliseconds, drawn uniformly.
const LOAD_MS_MIN: u64 = 20;
const LOAD_MS_MAX: u64 = 400;
/// One kill point in this many kills at a moment counted from the spawn instead, up to
/// `EARLY_MS_MAX`: it may land while the child opens or migrates the books or creates the
/// accounts, which must be as safe as a kill under load.
const EARLY_KILL_ONE_IN: u32 = 8;
const EARLY_MS_MAX: u64 = 30;
/// Clients of one run, drawn from 1 to this: one client makes one-command batches, several
/// make batches of several payments.
const CLIENTS_MAX: u64 = 8;
/// How long a child may take to print `ready` before the test gives up on it (a debug build
/// on a loaded 2-core machine opens the books in well under a second).
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// Ids per `lookup_transfers` call when checking the acknowledged payments.
const LOOKUP_IDS_MAX: usize = 10_000;

// What `crates/formica/src/crash_load.rs` writes: the test reads the books it leaves.
/// The shop, credited by every payment and debited by every fee.
const SHOP: u128 = 1;
/// Paying wallets.
const WALLETS: std::ops::RangeInclusive<u128> = 2..=51;
/// The platform's fee account.
const FEES: u128 = 52;
/// The code of a payment (id P) and of its fee (id P + 1, a hundredth of the payment).
const PAYMENT: u16 = 1;
const FEE: u16 = 2;
/// The code of the transfers that fund the wallets, all in one command at start.
const FUNDING: u16 = 9;
const FUNDING_TRANSFERS: i64 = 50;

#[test]
fn sigkill_under_load_loses_no_acknowledged_payment_on_sqlite() {
    let dir = KeptOnFailure::Sqlite(Some(
        tempfile::TempDir::new().expect("a temporary directory for the books"),
    ));
    let location = dir.location();
    crash_test("sqlite", &location);
}

#[test]
fn sigkill_under_load_loses_no_acknowledged_payment_on_postgres() {
    let Some(url) = postgres_url() else {
        return;
    };
    let database = TemporaryDatabase::create(&url, "formica_crash")
        .expect("DATABASE_URL names a reachable PostgreSQL server");
    let database = KeptOnFailure::Postgres(Some(database));
    let location = database.location();
    crash_test("postgres", &location);
}

/// Kills `formica crash-load` at `FORMICA_CRASH_KILLS` random moments against the books at
/// `location`, checking the books after each kill.
fn crash_test(database: &str, location: &Location) {
    let kills = kills();
    let seed = seed();
    eprintln!(
        "crash test on {database}: {kills} kill points, seed {seed} \
         (replay with FORMICA_CRASH_SEED={seed})"
    );
    let mut rng = SmallRng::seed_from_u64(seed);
    let started = Instant::now();
    let mut acknowledged = Vec::new();
    let mut seen = HashSet::new();
    for kill in 1..=kills {
        let moment = Moment::pick(&mut rng);
        let clients = rng.random_range(1..=CLIENTS_MAX);
        // Small: crash-load derives its clients' seeds as `seed * 100 + client`.
        let load_seed = u64::from(rng.random::<u32>());
        let context = format!(
            "{database}, kill {kill} of {kills}, seed {seed}: crash-load --seed {load_seed} \
             --clients {clients} killed {moment}"
        );
        let load = [
            "--seed".to_owned(),
            load_seed.to_string(),
            "--clients".to_owned(),
            clients.to_string(),
        ];
        let run = run_and_kill(location, &load, moment)
            .unwrap_or_else(|problem| panic!("{context}: {problem}"));
        for &id in &run.acks {
            assert!(
                seen.insert(id),
                "{context}: payment {id} was acknowledged twice"
            );
        }
        acknowledged.extend_from_slice(&run.acks);
        let books = check_books(location, &acknowledged).unwrap_or_else(|problem| {
            panic!("{context}: {problem}\nthe child's stderr:\n{}", run.stderr)
        });
        eprintln!(
            "{database} kill {kill:>3}/{kills}: {moment:<20} {clients} clients, {:>5} acks{}; \
             books hold {} payments, {} of them committed but never acknowledged",
            run.acks.len(),
            if run.ready {
                ""
            } else {
                " (killed before ready)"
            },
            books.payments,
            books.payments - acknowledged.len(),
        );
    }
    assert!(
        !acknowledged.is_empty(),
        "{database}, seed {seed}: no payment was acknowledged in {kills} runs, so the kills \
         tested nothing"
    );
    eprintln!(
        "crash test on {database}: {kills} kills, {} acknowledged payments, all present, \
         in {:.1?}",
        acknowledged.len(),
        started.elapsed()
    );
}

/// When a run is killed.
#[derive(Clone, Copy, Debug)]
enum Moment {
    /// This long after the child printed `ready`: under load.
    AfterReady(Duration),
    /// This long after the spawn: maybe before `ready`.
    AfterSpawn(Duration),
}

impl Moment {
    fn pick(rng: &mut SmallRng) -> Moment {
        if rng.random_ratio(1, EARLY_KILL_ONE_IN) {
            Moment::AfterSpawn(Duration::from_millis(rng.random_range(0..=EARLY_MS_MAX)))
        } else {
            Moment::AfterReady(Duration::from_millis(
                rng.random_range(LOAD_MS_MIN..=LOAD_MS_MAX),
            ))
        }
    }
}

impl std::fmt::Display for Moment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let text = match self {
            Moment::AfterReady(delay) => format!("{} ms after ready", delay.as_millis()),
            Moment::AfterSpawn(delay) => format!("{} ms after spawn", delay.as_millis()),
        };
        f.pad(&text)
    }
}

/// What one killed run printed.
struct Run {
    /// Payments acknowledged, in the order printed.
    acks: Vec<u128>,
    /// With `--fund`: the days whose income was acknowledged as posted.
    incomes: Vec<i64>,
    /// With `--fund`: the last day every holder was credited for.
    accrued: Option<i64>,
    /// Whether it printed `ready` before the kill.
    ready: bool,
    stderr: String,
}

/// Runs `formica crash-load` and kills it at `moment`. A child that exits on its own, or
/// prints something the test does not expect, is an error showing its stderr.
fn run_and_kill(location: &Location, load: &[String], moment: Moment) -> Result<Run, String> {
    let mut child = Killed(
        formica()
            .arg("crash-load")
            .args(store_args(location))
            .args(load)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the formica binary can be spawned"),
    );
    let spawned = Instant::now();
    let stdout = child.0.stdout.take().expect("stdout is piped");
    let mut stderr = child.0.stderr.take().expect("stderr is piped");
    let (ready_sender, ready) = mpsc::channel();
    // Both pipes are drained on threads until EOF, so the child never blocks on a full pipe
    // and every line it wrote before the kill is read.
    let stdout = std::thread::spawn(move || read_stdout(stdout, ready_sender));
    let stderr = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let waited = match moment {
        Moment::AfterReady(delay) => match ready.recv_timeout(READY_TIMEOUT) {
            Ok(()) => {
                std::thread::sleep(delay);
                Ok(())
            }
            Err(RecvTimeoutError::Disconnected) => Err("closed its stdout before `ready`"),
            Err(RecvTimeoutError::Timeout) => Err("did not print `ready` in time"),
        },
        Moment::AfterSpawn(delay) => {
            std::thread::sleep(delay.saturating_sub(spawned.elapsed()));
            Ok(())
        }
    };
    // Killed and reaped before anything is judged, so the pipes reach EOF.
    let status = child.kill_and_wait();
    let stdout = stdout.join().expect("the stdout reader does not panic");
    let stderr = stderr.join().expect("the stderr reader does not panic");
    let died = |why: &str| format!("formica crash-load {why} ({status}); its stderr:\n{stderr}");
    if let Err(why) = waited {
        return Err(died(why));
    }
    // Only our SIGKILL may end it: anything else means it died on its own first.
    if status.signal() != Some(SIGKILL) {
        return Err(died("exited before it was killed"));
    }
    if let Some(line) = stdout.unexpected.first() {
        return Err(died(&format!("printed an unexpected line {line:?}")));
    }
    Ok(Run {
        acks: stdout.acks,
        incomes: stdout.incomes,
        accrued: stdout.accrued,
        ready: stdout.ready,
        stderr,
    })
}

/// The signal `Child::kill` sends on Unix.
const SIGKILL: i32 = 9;

/// A child that is killed and reaped when dropped, also when a test panics.
struct Killed(Child);

impl Killed {
    fn kill_and_wait(&mut self) -> ExitStatus {
        // Fails only if the child was already reaped, which `wait` then reports.
        let _ = self.0.kill();
        self.0.wait().expect("a spawned child can be waited for")
    }
}

impl Drop for Killed {
    fn drop(&mut self) {
        // No panic here: this may run while a failed test unwinds.
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The lines of a crash-load's stdout.
#[derive(Default)]
struct Stdout {
    ready: bool,
    acks: Vec<u128>,
    incomes: Vec<i64>,
    accrued: Option<i64>,
    unexpected: Vec<String>,
}

/// Reads until EOF, telling `ready` when the child is ready. A last line cut off without its
/// newline is not counted: the child writes whole lines, so only a kill mid-write makes one,
/// and its payment was never fully acknowledged to anyone.
fn read_stdout(stdout: ChildStdout, ready: mpsc::Sender<()>) -> Stdout {
    let mut lines = BufReader::new(stdout);
    let mut read = Stdout::default();
    let mut line = String::new();
    loop {
        line.clear();
        match lines.read_line(&mut line) {
            Ok(0) | Err(_) => return read,
            Ok(_) => {}
        }
        let Some(whole) = line.strip_suffix('\n') else {
            return read;
        };
        if whole == "ready" && !read.ready {
            read.ready = true;
            let _ = ready.send(());
        } else if let Some(day) = whole
            .strip_prefix("ack income ")
            .and_then(|day| day.parse().ok())
        {
            read.incomes.push(day);
        } else if let Some(day) = whole
            .strip_prefix("accrued ")
            .and_then(|day| day.parse().ok())
        {
            read.accrued = Some(day);
        } else if let Some(id) = whole.strip_prefix("ack ").and_then(|id| id.parse().ok()) {
            read.acks.push(id);
        } else {
            read.unexpected.push(whole.to_owned());
        }
    }
}

/// What the books held at a check.
struct Books {
    /// Payments (each with its fee) in the transfers table.
    payments: usize,
}

/// Opens the books at `location` directly and checks them against every payment acknowledged
/// so far; then asks `formica admin trial-balance` too.
fn check_books(location: &Location, acknowledged: &[u128]) -> Result<Books, String> {
    let mut store = Store::open(location).map_err(|error| format!("open the books: {error}"))?;
    let snapshot = store
        .load()
        .map_err(|error| format!("load the books: {error}"))?
        .snapshot;
    Ledger::import(snapshot)
        .map_err(|violation| format!("the loaded books do not import: {violation:?}"))?;
    let balance = store
        .trial_balance()
        .map_err(|error| format!("trial balance: {error}"))?;
    if !balance.holds() {
        return Err(format!("the trial balance does not hold: {balance:?}"));
    }
    check_acknowledged(&mut store, acknowledged)?;
    drop(store);
    let payments = check_pairs(location)?;
    check_admin_trial_balance(location)?;
    Ok(Books { payments })
}

/// Every acknowledged payment P is stored, and so is its fee P + 1.
fn check_acknowledged(store: &mut Store, acknowledged: &[u128]) -> Result<(), String> {
    for chunk in acknowledged.chunks(LOOKUP_IDS_MAX / 2) {
        let ids: Vec<u128> = chunk.iter().flat_map(|&id| [id, id + 1]).collect();
        let found: BTreeMap<u128, Transfer> = store
            .lookup_transfers(&ids)
            .map_err(|error| format!("look up acknowledged payments: {error}"))?
            .into_iter()
            .map(|(transfer, _)| (transfer.id, transfer))
            .collect();
        let missing: Vec<u128> = ids
            .iter()
            .copied()
            .filter(|id| !found.contains_key(id))
            .collect();
        if !missing.is_empty() {
            return Err(format!(
                "{} transfers of acknowledged payments are missing after the kill, \
                 the first ones: {:?}",
                missing.len(),
                &missing[..missing.len().min(10)]
            ));
        }
        for &id in chunk {
            let (payment, fee) = (&found[&id], &found[&(id + 1)]);
            let payment_right = payment.code == PAYMENT
                && WALLETS.contains(&payment.debit_account_id)
                && payment.credit_account_id == SHOP;
            let fee_right = fee.code == FEE
                && fee.debit_account_id == SHOP
                && fee.credit_account_id == FEES
                && fee.amount == payment.amount / 100;
            if !payment_right || !fee_right {
                return Err(format!(
                    "acknowledged payment {id} is stored wrong: {payment:?} with fee {fee:?}"
                ));
            }
        }
    }
    Ok(())
}

/// Every payment in the books has its fee and every fee its payment (linked transfers
/// commit together or not at all), and the funding command is applied whole or not at all.
/// Reads the transfers table behind the store's back. Answers the number of payments.
fn check_pairs(location: &Location) -> Result<usize, String> {
    let rows = transfer_rows(location)?;
    let mut payments = BTreeMap::new();
    let mut fees = BTreeMap::new();
    let mut funding = 0;
    let mut other = Vec::new();
    for (id, code, amount) in rows {
        match u16::try_from(code) {
            Ok(PAYMENT) => {
                payments.insert(id, amount);
            }
            Ok(FEE) => {
                fees.insert(id, amount);
            }
            Ok(FUNDING) => funding += 1,
            _ => other.push((id, code)),
        }
    }
    if !other.is_empty() {
        return Err(format!(
            "transfers crash-load never makes (id, code): {:?}",
            &other[..other.len().min(10)]
        ));
    }
    if funding != 0 && funding != FUNDING_TRANSFERS {
        return Err(format!(
            "{funding} of the {FUNDING_TRANSFERS} funding transfers are stored: \
             one command was half applied"
        ));
    }
    let fee_without_payment: Vec<u128> = fees
        .keys()
        .filter(|&&id| !payments.contains_key(&(id - 1)))
        .copied()
        .collect();
    let payment_without_fee: Vec<u128> = payments
        .iter()
        .filter(|&(&id, &amount)| fees.get(&(id + 1)) != Some(&(amount / 100)))
        .map(|(&id, _)| id)
        .collect();
    if !fee_without_payment.is_empty() || !payment_without_fee.is_empty() {
        return Err(format!(
            "half-applied payments: {} payments without their fee (first ones {:?}), \
             {} fees without their payment (first ones {:?}); {} payments and {} fees stored",
            payment_without_fee.len(),
            &payment_without_fee[..payment_without_fee.len().min(10)],
            fee_without_payment.len(),
            &fee_without_payment[..fee_without_payment.len().min(10)],
            payments.len(),
            fees.len()
        ));
    }
    Ok(payments.len())
}

/// `(id, code, amount)` of every stored transfer, straight from the transfers table.
fn transfer_rows(location: &Location) -> Result<Vec<(u128, i64, i64)>, String> {
    const SQL: &str = "SELECT id, code, amount FROM transfers";
    match location {
        Location::Sqlite(dir) => {
            let connection = rusqlite::Connection::open(Location::sqlite_file(dir))
                .map_err(|error| format!("open the SQLite file: {error}"))?;
            let mut statement = connection
                .prepare(SQL)
                .map_err(|error| format!("read the transfers: {error}"))?;
            let rows = statement
                .query_map([], |row| {
                    Ok((row.get::<_, Vec<u8>>(0)?, row.get(1)?, row.get(2)?))
                })
                .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
                .map_err(|error| format!("read the transfers: {error}"))?;
            rows.into_iter()
                .map(|(id, code, amount)| {
                    let id: [u8; 16] = id
                        .try_into()
                        .map_err(|id: Vec<u8>| format!("an id of {} bytes", id.len()))?;
                    Ok((u128::from_be_bytes(id), code, amount))
                })
                .collect()
        }
        Location::Postgres(url) => {
            let mut client = postgres::Client::connect(url, postgres::NoTls)
                .map_err(|error| format!("connect to the books: {error}"))?;
            // The uuid's text is the id's 32 hex digits with dashes.
            let rows = client
                .query("SELECT id::text, code, amount FROM transfers", &[])
                .map_err(|error| format!("read the transfers: {error}"))?;
            rows.iter()
                .map(|row| {
                    let id: String = row.get(0);
                    let code: i32 = row.get(1);
                    let hex: String = id.chars().filter(|c| *c != '-').collect();
                    let id = u128::from_str_radix(&hex, 16)
                        .map_err(|_| format!("a uuid that is no id: {id}"))?;
                    Ok((id, i64::from(code), row.get(2)))
                })
                .collect()
        }
    }
}

/// The operators' command agrees: it exits successfully only if the books balance.
fn check_admin_trial_balance(location: &Location) -> Result<(), String> {
    let output = formica()
        .args(["admin", "trial-balance"])
        .args(store_args(location))
        .output()
        .expect("the formica binary can be run");
    if !output.status.success() {
        return Err(format!(
            "`formica admin trial-balance` failed ({}):\n{}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    Ok(())
}

/// The binary under test, with the environment's store settings removed so that only the
/// arguments choose the books.
fn formica() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_formica"));
    command
        .env_remove("FORMICA_DATA_DIR")
        .env_remove("FORMICA_DATABASE_URL");
    command
}

fn store_args(location: &Location) -> [OsString; 2] {
    match location {
        Location::Sqlite(dir) => ["--data-dir".into(), dir.into()],
        Location::Postgres(url) => ["--database-url".into(), url.into()],
    }
}

fn kills() -> usize {
    match std::env::var("FORMICA_CRASH_KILLS") {
        Ok(text) => match text.parse() {
            Ok(kills) if kills > 0 => kills,
            _ => panic!("FORMICA_CRASH_KILLS={text:?} is not a positive number of kill points"),
        },
        Err(_) => KILLS_DEFAULT,
    }
}

fn seed() -> u64 {
    match std::env::var("FORMICA_CRASH_SEED") {
        Ok(text) => text
            .parse()
            .unwrap_or_else(|_| panic!("FORMICA_CRASH_SEED={text:?} is not a u64")),
        Err(_) => rand::random(),
    }
}

/// The server `DATABASE_URL` names, or `None` (with the reason printed) if it is unset and
/// PostgreSQL is not required.
pub(crate) fn postgres_url() -> Option<String> {
    if let Ok(url) = std::env::var("DATABASE_URL") {
        return Some(url);
    }
    let required = std::env::var("FORMICA_REQUIRE_POSTGRES").is_ok_and(|v| v == "1");
    assert!(
        !required,
        "FORMICA_REQUIRE_POSTGRES=1 but DATABASE_URL is unset: the PostgreSQL crash test \
         cannot run"
    );
    eprintln!(
        "skipped: DATABASE_URL is unset (e.g. postgres://postgres@127.0.0.1:5432/postgres); \
         set it to run the PostgreSQL crash test"
    );
    None
}

/// Books that outlive a failing test, for inspection, and are removed after a passing one.
enum KeptOnFailure {
    Sqlite(Option<tempfile::TempDir>),
    Postgres(Option<TemporaryDatabase>),
}

impl KeptOnFailure {
    fn location(&self) -> Location {
        match self {
            KeptOnFailure::Sqlite(dir) => Location::Sqlite(
                dir.as_ref()
                    .expect("present until dropped")
                    .path()
                    .to_path_buf(),
            ),
            KeptOnFailure::Postgres(database) => Location::Postgres(
                database
                    .as_ref()
                    .expect("present until dropped")
                    .url
                    .clone(),
            ),
        }
    }
}

impl Drop for KeptOnFailure {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        match self {
            KeptOnFailure::Sqlite(dir) => {
                if let Some(dir) = dir.take() {
                    eprintln!("the books are kept in {}", dir.keep().display());
                }
            }
            KeptOnFailure::Postgres(database) => {
                if let Some(database) = database.take() {
                    eprintln!(
                        "the books are kept in database {} (DROP DATABASE {} WITH (FORCE) \
                         when done)",
                        database.name(),
                        database.name()
                    );
                    std::mem::forget(database);
                }
            }
        }
    }
}
