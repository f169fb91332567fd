//! The engine against real stores, SQLite and PostgreSQL alike: batching, durability,
//! restart, idempotency at any age, failed commits, back-pressure and timers.

use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use formica_core::{Command, Reply};
use formica_engine::{Clock, Config, Engine, EngineError};
use formica_ledger::{
    AMOUNT_MAX, Account, AccountFlags, CreateTransferResult as T, Ledger, NANOS_PER_SECOND,
    PendingStatus, Transfer, TransferFlags,
};
use formica_store::{Location, Store};
use formica_testkit::{Backend, TestDb};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

const CNY: u32 = 156;
const BANK: u128 = 1;
const WALLETS: u128 = 20;
const START: u64 = 1_700_000_000 * NANOS_PER_SECOND;

/// Every test runs on both databases.
macro_rules! engine_suite {
    ($($test:ident),* $(,)?) => {
        mod sqlite {
            $(#[test]
            fn $test() {
                super::$test(formica_testkit::Backend::Sqlite);
            })*
        }
        mod postgres {
            $(#[test]
            fn $test() {
                if formica_testkit::Backend::Postgres.available() {
                    super::$test(formica_testkit::Backend::Postgres);
                }
            })*
        }
    };
}

engine_suite!(
    a_restart_rebuilds_the_same_books,
    a_transfer_retried_after_a_restart_answers_exists,
    a_failed_commit_fails_its_callers_and_changes_nothing,
    a_full_queue_answers_busy,
    a_hold_expires_when_the_engine_clock_passes_its_timeout,
    a_command_too_large_for_the_store_is_refused_whole,
    a_balance_the_store_cannot_keep_is_refused_without_failing_the_batch,
    a_batch_never_grows_past_its_bound,
    changes_not_yet_checkpointed_survive_a_restart_and_the_next_checkpoint,
    a_second_writer_is_refused_while_the_first_runs,
    queued_events_are_bounded_whatever_the_commands,
    an_idempotency_key_moves_money_once_whenever_and_however_it_is_retried,
);

/// Another connection that takes the books' write lock until dropped or released, so the
/// engine's commit waits (and, with a short SQLite busy timeout, fails).
enum Blocker {
    Sqlite(rusqlite::Connection),
    Postgres(::postgres::Client),
}

impl Blocker {
    fn hold(db: &TestDb) -> Blocker {
        match &db.location {
            Location::Sqlite(dir) => {
                let connection =
                    rusqlite::Connection::open(Location::sqlite_file(dir)).expect("opens");
                connection.execute_batch("BEGIN EXCLUSIVE").expect("locks");
                Blocker::Sqlite(connection)
            }
            Location::Postgres(_) => {
                let mut client = db.client();
                client
                    .batch_execute("BEGIN; LOCK TABLE transfers IN ACCESS EXCLUSIVE MODE")
                    .expect("locks");
                Blocker::Postgres(client)
            }
        }
    }

    fn release(self) {
        match self {
            Blocker::Sqlite(connection) => connection.execute_batch("ROLLBACK").expect("unlocks"),
            Blocker::Postgres(mut client) => client.batch_execute("ROLLBACK").expect("unlocks"),
        }
    }
}

fn terminate_other_sessions(db: &TestDb) {
    let mut client = db.client();
    client
        .batch_execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = current_database() AND pid <> pg_backend_pid()",
        )
        .expect("terminates");
}

fn manual_config() -> (Config, Clock) {
    let clock = Clock::manual(START);
    let config = Config {
        clock: clock.clone(),
        ..Config::default()
    };
    (config, clock)
}

fn start(location: &Location, config: Config) -> Engine {
    let store = Store::open(location).expect("the store opens");
    Engine::start(store, config).expect("the engine starts")
}

/// Starts an engine whose SQLite commits wait `busy` for a lock another connection holds
/// (PostgreSQL waits as long as the lock is held).
fn start_waiting(location: &Location, config: Config, busy: Duration) -> Engine {
    let store = Store::open(location).expect("opens");
    if let Store::Sqlite(sqlite) = &store {
        sqlite.set_busy_timeout(busy).expect("sets the timeout");
    }
    Engine::start(store, config).expect("starts")
}

/// Fresh books with funded wallets, and no engine running on them.
fn funded_books(backend: Backend) -> TestDb {
    let db = backend.fresh();
    let (config, _) = manual_config();
    let setup = start(&db.location, config);
    open_wallets(&setup);
    setup.shutdown();
    db
}

/// `count` payments of 1 from wallet 2 to wallet 3, with ids from `first`.
fn payments(first: u128, count: u128) -> Vec<Transfer> {
    (first..first + count)
        .map(|id| Transfer::new(id, 2, 3, 1, CNY, 1))
        .collect()
}

/// Submits from another thread, for tests that queue commands behind a stalled writer.
fn submit_in_background(
    engine: &Engine,
    transfers: Vec<Transfer>,
) -> std::thread::JoinHandle<Result<Reply, EngineError>> {
    let engine = engine.clone();
    std::thread::spawn(move || engine.submit_blocking(Command::CreateTransfers(transfers)))
}

fn transfers(engine: &Engine, transfers: Vec<Transfer>) -> Vec<T> {
    match engine.submit_blocking(Command::CreateTransfers(transfers)) {
        Ok(Reply::Transfers(results)) => results,
        other => panic!("expected transfer results, got {other:?}"),
    }
}

/// A bank and funded wallets.
fn open_wallets(engine: &Engine) {
    let mut accounts = vec![Account::new(BANK, CNY, 9)];
    for id in 2..=WALLETS + 1 {
        accounts.push(
            Account::new(id, CNY, 1).with_flags(AccountFlags::DEBITS_MUST_NOT_EXCEED_CREDITS),
        );
    }
    let reply = engine
        .submit_blocking(Command::CreateAccounts(accounts))
        .expect("accounts created");
    assert!(matches!(reply, Reply::Accounts(r) if r.iter().all(|r| r.is_ok())));
    let funding = (2..=WALLETS + 1)
        .map(|id| Transfer::new(1_000_000 + id, BANK, id, 100_000, CNY, 9))
        .collect();
    assert!(transfers(engine, funding).iter().all(|r| r.is_ok()));
}

/// Random payments, holds, posts and voids between the wallets, from many threads at once.
fn random_workload(engine: &Engine, seed: u64, commands: usize) {
    std::thread::scope(|scope| {
        for client in 0..4u64 {
            let engine = engine.clone();
            scope.spawn(move || {
                let mut rng = SmallRng::seed_from_u64(seed * 10 + client);
                for n in 0..commands / 4 {
                    let base = u128::from(seed) << 64 | u128::from(client) << 40 | (n as u128) << 8;
                    let batch = random_command(&mut rng, base);
                    let _ = engine.submit_blocking(Command::CreateTransfers(batch));
                }
            });
        }
    });
}

fn random_command(rng: &mut SmallRng, base: u128) -> Vec<Transfer> {
    let size = rng.random_range(1..8);
    let mut batch = Vec::with_capacity(size);
    for index in 0..size {
        let id = base + index as u128 + 1;
        let debit = rng.random_range(2..=WALLETS + 1);
        let credit = if debit == 2 { 3 } else { 2 };
        let amount = rng.random_range(1..5_000u128);
        let transfer = match rng.random_range(0..4) {
            0 => Transfer::new(id, debit, credit, amount, CNY, 1)
                .with_flags(TransferFlags::PENDING)
                .with_timeout(rng.random_range(0..3)),
            1 if index > 0 => Transfer::post(id, id - 1, AMOUNT_MAX),
            2 if index > 0 => Transfer::void(id, id - 1),
            _ => Transfer::new(id, debit, credit, amount, CNY, 1),
        };
        batch.push(transfer);
    }
    batch
}

fn digest_after_restart(location: &Location) -> u128 {
    let mut store = Store::open(location).expect("the store opens");
    let ledger = Ledger::import(store.load().expect("loads").snapshot).expect("consistent");
    assert!(store.trial_balance().expect("trial balance").holds());
    ledger.digest()
}

fn a_restart_rebuilds_the_same_books(backend: Backend) {
    let db = backend.fresh();
    let location = db.location.clone();
    let (config, clock) = manual_config();
    let engine = start(&location, config.clone());
    open_wallets(&engine);
    random_workload(&engine, 1, 200);
    clock.advance(5 * NANOS_PER_SECOND);
    engine.tick_blocking().expect("timers ran");
    random_workload(&engine, 2, 200);
    assert!(engine.stats().batches.load(Relaxed) > 0);
    // What the writer holds in memory is exactly what a new writer rebuilds from disk.
    let live = engine.digest_blocking().expect("the writer answers");
    engine.shutdown();
    assert_eq!(digest_after_restart(&location), live);
    let engine = start(&location, config);
    assert_eq!(engine.digest_blocking().expect("the writer answers"), live);
    random_workload(&engine, 3, 40);
    let moved = engine.digest_blocking().expect("the writer answers");
    engine.shutdown();
    assert_ne!(moved, live, "the third workload moved money");
    assert_eq!(digest_after_restart(&location), moved);
}

fn a_transfer_retried_after_a_restart_answers_exists(backend: Backend) {
    let db = backend.fresh();
    let location = db.location.clone();
    let (config, _) = manual_config();
    let engine = start(&location, config.clone());
    open_wallets(&engine);
    let payment = Transfer::new(50, 2, 3, 700, CNY, 1);
    let hold = Transfer::new(51, 2, 3, 300, CNY, 1).with_flags(TransferFlags::PENDING);
    assert_eq!(transfers(&engine, vec![payment, hold]), vec![T::Ok, T::Ok]);
    engine.shutdown();

    // A new writer holds nothing of those transfers in memory but the open hold.
    let engine = start(&location, config);
    let results = transfers(
        &engine,
        vec![
            payment,
            Transfer {
                amount: 701,
                ..payment
            },
            Transfer::post(52, 51, AMOUNT_MAX),
            Transfer::void(53, 51),
        ],
    );
    assert_eq!(
        results,
        vec![
            T::Exists,
            T::ExistsWithDifferentAmount,
            T::Ok,
            T::PendingTransferAlreadyPosted
        ]
    );
    engine.shutdown();

    // After another restart the settled hold comes back from the store to answer a retry.
    let (config, _) = manual_config();
    let engine = start(&location, config);
    let results = transfers(&engine, vec![Transfer::void(54, 51), payment]);
    assert_eq!(results, vec![T::PendingTransferAlreadyPosted, T::Exists]);
    engine.shutdown();
    let mut store = Store::open(&location).expect("opens");
    let wallet = store.account(2).expect("reads").expect("exists");
    assert_eq!(wallet.debits_posted, 1_000);
    assert!(store.trial_balance().expect("trial balance").holds());
}

fn a_failed_commit_fails_its_callers_and_changes_nothing(backend: Backend) {
    let db = backend.fresh();
    let location = db.location.clone();
    let (config, _) = manual_config();
    let engine = start_waiting(&location, config, Duration::from_millis(100));
    open_wallets(&engine);
    let before = digest_after_restart(&location);

    // SQLite: another process holds the write lock. PostgreSQL: the server ends the
    // engine's session. Either way this commit fails.
    let blocker = (backend == Backend::Sqlite).then(|| Blocker::hold(&db));
    if backend == Backend::Postgres {
        terminate_other_sessions(&db);
    }
    let payment = Transfer::new(60, 2, 3, 10, CNY, 1);
    let failed = engine.submit_blocking(Command::CreateTransfers(vec![payment]));
    assert!(matches!(failed, Err(EngineError::Store(_))), "{failed:?}");
    if let Some(blocker) = blocker {
        blocker.release();
    }
    // The writer idles long enough to checkpoint: what it writes is the books the store
    // has, without the payment that failed.
    std::thread::sleep(formica_engine::CHECKPOINT_IDLE * 5);

    // Memory was rebuilt and the engine keeps serving: the same transfer now applies once,
    // as new.
    assert_eq!(transfers(&engine, vec![payment]), vec![T::Ok]);
    assert_eq!(transfers(&engine, vec![payment]), vec![T::Exists]);
    let live = engine.digest_blocking().expect("the writer answers");
    engine.shutdown();
    let after = digest_after_restart(&location);
    assert_ne!(before, after);
    assert_eq!(after, live, "memory equals what the store rebuilds");
    let mut store = Store::open(&location).expect("opens");
    assert_eq!(
        store
            .account(3)
            .expect("reads")
            .expect("exists")
            .credits_posted,
        100_010
    );
}

/// Waits (ten seconds at most) until `done` holds: for tests that order events across threads.
fn wait_until(what: &str, done: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(
            std::time::Instant::now() < deadline,
            "{what}: not in ten seconds"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Waits until `commands` wait in the engine's queue (behind a stalled writer), so that the
/// next one submitted queues after them.
fn queued(engine: &Engine, commands: u64) {
    wait_until("the commands queued", || {
        engine.stats().queue_depth.load(Relaxed) >= commands
    });
}

/// Stops the engine after checking that its memory equals what the store rebuilds.
fn shut_down_as_stored(engine: Engine, location: &Location) {
    let live = engine.digest_blocking().expect("the writer answers");
    engine.shutdown();
    assert_eq!(
        digest_after_restart(location),
        live,
        "memory equals the store"
    );
}

/// Fresh SQLite books with funded wallets, served by an engine whose batches take at most
/// `batch_events_max` events and whose commits wait `busy` for another connection's lock:
/// the pipeline's tests below stall and fail commits on demand with a `Blocker`.
fn stallable(batch_events_max: usize, busy: Duration) -> (TestDb, Engine) {
    let db = Backend::Sqlite.fresh();
    let (mut config, _) = manual_config();
    config.batch_events_max = batch_events_max;
    let engine = start_waiting(&db.location, config, busy);
    open_wallets(&engine);
    (db, engine)
}

/// While one batch commits, the writer applies the next to memory. When that commit fails,
/// the next batch is not answered from memory that held the failed one: it is applied again
/// on the books the store really has. (SQLite only: there another connection's lock fails a
/// commit after the busy timeout, on demand.)
#[test]
fn a_batch_applied_over_a_failed_commit_is_applied_again() {
    // One payment per batch: the two below are two batches, the second applied while the
    // first commits.
    let (db, engine) = stallable(1, Duration::from_millis(200));
    let location = db.location.clone();
    let blocker = Blocker::hold(&db);
    // A payment whose commit waits for the lock holds the writer while the two are queued.
    let stall = submit_in_background(&engine, vec![Transfer::new(2_000_000, 5, 6, 1, CNY, 1)]);
    std::thread::sleep(Duration::from_millis(50));
    // Wallet 2 holds 100,000: the first payment takes all of it, the second half of it.
    let first = submit_in_background(
        &engine,
        vec![Transfer::new(2_000_001, 2, 3, 100_000, CNY, 1)],
    );
    queued(&engine, 1);
    let second = submit_in_background(
        &engine,
        vec![Transfer::new(2_000_002, 2, 4, 50_000, CNY, 1)],
    );
    let stall = stall.join().expect("the stall is answered");
    assert!(matches!(stall, Err(EngineError::Store(_))), "{stall:?}");
    let first = first.join().expect("the first is answered");
    assert!(matches!(first, Err(EngineError::Store(_))), "{first:?}");
    blocker.release();
    // Wallet 2 still has its 100,000: refusing the second for want of money would be an
    // answer from the payment that failed.
    let second = second.join().expect("the second is answered");
    let paid = match &second {
        Ok(Reply::Transfers(results)) => {
            assert_eq!(results, &vec![T::Ok]);
            50_000
        }
        Err(EngineError::Store(_)) => 0,
        other => panic!("the second payment: {other:?}"),
    };
    shut_down_as_stored(engine, &location);
    let mut store = Store::open(&location).expect("opens");
    let payer = store.account(2).expect("reads").expect("exists");
    assert_eq!(payer.debits_posted, paid);
}

/// A batch that must read the store waits for the batch being committed. If that commit
/// fails, memory is rebuilt, and what the batch must read is asked again of the rebuilt
/// memory: a transfer the old memory held (and the new one does not) is read too, so that
/// its retry answers `exists`. (SQLite only, as above.)
#[test]
fn a_batch_reads_again_what_memory_lost_when_the_commit_before_it_failed() {
    let (db, engine) = stallable(2, Duration::from_secs(1));
    let location = db.location.clone();
    // Checkpointed: a reload brings forward no transfer, so the funding leaves memory.
    wait_until("the balances checkpointed", || {
        engine.stats().unsaved_balances.load(Relaxed) == 0
    });
    let funding = Transfer::new(1_000_002, BANK, 2, 100_000, CNY, 9);
    let blocker = Blocker::hold(&db);
    // The first stall holds the writer while the second and the retry queue up. The second
    // brings the funding back into memory (its retry, read from the store) and is applied;
    // its commit fails while the retry waits to read.
    let first = submit_in_background(&engine, vec![Transfer::new(2_000_000, 5, 6, 1, CNY, 1)]);
    std::thread::sleep(Duration::from_millis(100));
    let second = submit_in_background(
        &engine,
        vec![funding, Transfer::new(2_000_001, 5, 6, 1, CNY, 1)],
    );
    queued(&engine, 1);
    // Then the funding is in memory; transfer 50 (an old id, never used) is not.
    let retry = submit_in_background(&engine, vec![funding, Transfer::new(50, 2, 3, 1, CNY, 1)]);
    for stalled in [first, second] {
        let answer = stalled.join().expect("answered");
        assert!(matches!(answer, Err(EngineError::Store(_))), "{answer:?}");
    }
    blocker.release();
    let retry = retry.join().expect("answered");
    assert!(
        matches!(&retry, Ok(Reply::Transfers(results)) if results == &vec![T::Exists, T::Ok]),
        "{retry:?}"
    );
    shut_down_as_stored(engine, &location);
}

fn a_full_queue_answers_busy(backend: Backend) {
    let db = backend.fresh();
    let location = db.location.clone();
    let (mut config, _) = manual_config();
    config.queue_commands_max = 2;
    let engine = start_waiting(&location, config, Duration::from_secs(5));
    open_wallets(&engine);
    // Stall the writer on a lock, then fill its queue.
    let blocker = Blocker::hold(&db);
    let stalled = submit_in_background(&engine, payments(70, 1));
    let mut busy = 0;
    let mut waiting = Vec::new();
    for id in 71..80u128 {
        let engine = engine.clone();
        let (sender, receiver) = std::sync::mpsc::channel();
        waiting.push(std::thread::spawn(move || {
            let answer = engine.submit_blocking(Command::CreateTransfers(vec![Transfer::new(
                id, 2, 3, 1, CNY, 1,
            )]));
            let _ = sender.send(());
            answer
        }));
        // A busy answer comes at once; a queued one waits for the lock.
        if receiver.recv_timeout(Duration::from_millis(200)).is_ok() {
            busy += 1;
        }
    }
    blocker.release();
    let stalled = stalled.join().expect("joins");
    assert!(
        stalled.is_ok(),
        "the stalled command committed once the lock went: {stalled:?}"
    );
    let answers: Vec<_> = waiting
        .into_iter()
        .map(|t| t.join().expect("joins"))
        .collect();
    let refused = answers
        .iter()
        .filter(|a| matches!(a, Err(EngineError::Busy)))
        .count();
    assert!(
        refused > 0,
        "some commands were refused as busy: {answers:?}"
    );
    assert_eq!(refused, busy, "busy answers come at once");
    assert!(
        answers
            .iter()
            .all(|a| a.is_ok() || matches!(a, Err(EngineError::Busy))),
        "queued commands committed: {answers:?}"
    );
    engine.shutdown();
    let mut store = Store::open(&location).expect("opens");
    assert!(store.trial_balance().expect("trial balance").holds());
}

fn a_hold_expires_when_the_engine_clock_passes_its_timeout(backend: Backend) {
    let db = backend.fresh();
    let location = db.location.clone();
    let (config, clock) = manual_config();
    let engine = start(&location, config);
    open_wallets(&engine);
    let hold = Transfer::new(90, 2, 3, 500, CNY, 1)
        .with_flags(TransferFlags::PENDING)
        .with_timeout(10);
    assert_eq!(transfers(&engine, vec![hold]), vec![T::Ok]);
    clock.advance(9 * NANOS_PER_SECOND);
    engine.tick_blocking().expect("timers ran");
    let mut store = Store::open(&location).expect("opens");
    let status = |store: &mut Store| store.lookup_transfers(&[90]).expect("reads")[0].1;
    assert_eq!(status(&mut store), Some(PendingStatus::Pending));
    clock.advance(2 * NANOS_PER_SECOND);
    engine.tick_blocking().expect("timers ran");
    assert_eq!(status(&mut store), Some(PendingStatus::Expired));
    assert_eq!(
        store
            .account(2)
            .expect("reads")
            .expect("exists")
            .debits_pending,
        0
    );
    assert_eq!(
        transfers(&engine, vec![Transfer::post(91, 90, AMOUNT_MAX)]),
        vec![T::PendingTransferExpired]
    );
    engine.shutdown();
    assert!(store.trial_balance().expect("trial balance").holds());
}

fn a_command_too_large_for_the_store_is_refused_whole(backend: Backend) {
    let db = backend.fresh();
    let location = db.location.clone();
    let (config, _) = manual_config();
    let engine = start(&location, config);
    open_wallets(&engine);
    let huge = Transfer::new(95, BANK, 2, u128::from(u64::MAX), CNY, 9);
    let answer = engine.submit_blocking(Command::CreateTransfers(vec![huge]));
    assert!(
        matches!(answer, Err(EngineError::Rejected(_))),
        "{answer:?}"
    );
    let empty = engine.submit_blocking(Command::CreateTransfers(vec![]));
    assert!(matches!(empty, Err(EngineError::Rejected(_))), "{empty:?}");
    engine.shutdown();
}

fn a_balance_the_store_cannot_keep_is_refused_without_failing_the_batch(backend: Backend) {
    let db = backend.fresh();
    let location = db.location.clone();
    let (config, _) = manual_config();
    let engine = start(&location, config);
    open_wallets(&engine);
    let most = formica_core::STORED_AMOUNT_MAX;
    let results = transfers(
        &engine,
        vec![
            Transfer::new(96, BANK, 2, most - 200_000, CNY, 9),
            Transfer::new(97, BANK, 2, most - 200_000, CNY, 9),
            Transfer::new(98, 3, 4, 5, CNY, 1),
        ],
    );
    assert_eq!(
        results,
        vec![T::OverflowsDebitsPosted, T::OverflowsDebitsPosted, T::Ok]
    );
    engine.shutdown();
    let mut store = Store::open(&location).expect("opens");
    assert!(store.trial_balance().expect("trial balance").holds());
}

fn a_batch_never_grows_past_its_bound(backend: Backend) {
    let db = funded_books(backend);
    let location = db.location.clone();

    let (mut config, _) = manual_config();
    config.batch_events_max = 10;
    let engine = start_waiting(&location, config, Duration::from_secs(5));
    let largest = |engine: &Engine| engine.stats().largest_batch_events.load(Relaxed);
    // A first command larger than the bound runs alone.
    let big = (0..11u128)
        .map(|i| Transfer::new(100 + i, 2, 3, 1, CNY, 1))
        .collect();
    assert!(
        engine
            .submit_blocking(Command::CreateTransfers(big))
            .is_ok()
    );
    assert_eq!(largest(&engine), 11);
    // Queue commands of 4 payments behind a lock, so the writer finds them all at once.
    let blocker = Blocker::hold(&db);
    let stalled = submit_in_background(&engine, payments(200, 1));
    std::thread::sleep(Duration::from_millis(100));
    let queued: Vec<_> = (0..5u128)
        .map(|n| submit_in_background(&engine, payments(300 + n * 10, 4)))
        .collect();
    std::thread::sleep(Duration::from_millis(100));
    blocker.release();
    assert!(stalled.join().expect("joins").is_ok());
    for waiting in queued {
        assert!(waiting.join().expect("joins").is_ok());
    }
    assert_eq!(
        largest(&engine),
        11,
        "no batch of the queued commands passed 10 events"
    );
    let batches = engine.stats().batches.load(Relaxed);
    assert!(
        batches >= 4,
        "21 queued events in batches of at most 10: {batches}"
    );
    engine.shutdown();
}

/// Regression (issue 3, found in review): after a crash between a batch and its checkpoint, a
/// restarted writer did not know which rows were stale, and its first checkpoint moved the
/// checkpoint's timestamp past transfers those rows never received.
fn changes_not_yet_checkpointed_survive_a_restart_and_the_next_checkpoint(backend: Backend) {
    let db = backend.fresh();
    let location = db.location.clone();
    let (config, _) = manual_config();
    let engine = start(&location, config.clone());
    open_wallets(&engine);
    // Let the idle checkpoint write the new accounts.
    std::thread::sleep(formica_engine::CHECKPOINT_IDLE * 5);
    let unsaved = |engine: &Engine| engine.stats().unsaved_balances.load(Relaxed);
    assert_eq!(unsaved(&engine), 0, "every balance is checkpointed");
    // From here every checkpoint fails: the same as a crash before the next checkpoint.
    db.execute_on_balances(match backend {
        Backend::Sqlite => {
            "CREATE TRIGGER no_checkpoint BEFORE UPDATE ON balance_checkpoint \
             BEGIN SELECT RAISE(ABORT, 'no checkpoint'); END;"
        }
        Backend::Postgres => {
            "CREATE FUNCTION no_checkpoint() RETURNS trigger LANGUAGE plpgsql AS \
             $$ BEGIN RAISE EXCEPTION 'no checkpoint'; END $$; \
             CREATE TRIGGER no_checkpoint BEFORE UPDATE ON balance_checkpoint \
             FOR EACH ROW EXECUTE FUNCTION no_checkpoint();"
        }
    });
    assert_eq!(
        transfers(&engine, vec![Transfer::new(400, 2, 3, 100, CNY, 1)]),
        vec![T::Ok]
    );
    std::thread::sleep(formica_engine::CHECKPOINT_IDLE * 5);
    assert_eq!(unsaved(&engine), 2, "the payer's and payee's balances wait");
    engine.shutdown();
    db.execute_on_balances(match backend {
        Backend::Sqlite => "DROP TRIGGER no_checkpoint;",
        Backend::Postgres => "DROP TRIGGER no_checkpoint ON balance_checkpoint;",
    });

    // The restarted writer touches other accounts; its checkpoints must write 2 and 3 too.
    let engine = start(&location, config);
    assert_eq!(
        transfers(&engine, vec![Transfer::new(401, 4, 5, 5, CNY, 1)]),
        vec![T::Ok]
    );
    let live = engine.digest_blocking().expect("the writer answers");
    std::thread::sleep(formica_engine::CHECKPOINT_IDLE * 5);
    assert_eq!(unsaved(&engine), 0, "the restarted writer saved all four");
    engine.shutdown();
    assert_eq!(digest_after_restart(&location), live);
    let mut store = Store::open(&location).expect("opens");
    let payer = store.account(2).expect("reads").expect("exists");
    assert_eq!(payer.debits_posted, 100);
    let history = store
        .history(&formica_store::HistoryQuery {
            account_id: 3,
            from: None,
            before: None,
            limit: 10,
        })
        .expect("reads");
    let ids: Vec<u128> = history.iter().map(|t| t.id).collect();
    assert_eq!(ids, vec![400, 1_000_003], "the payment, then the funding");
}

fn a_second_writer_is_refused_while_the_first_runs(backend: Backend) {
    let db = backend.fresh();
    let location = db.location.clone();
    let (config, _) = manual_config();
    let first = start(&location, config.clone());
    open_wallets(&first);
    let second = Engine::start(Store::open(&location).expect("opens"), config.clone());
    assert!(
        matches!(second, Err(formica_store::StoreError::AnotherWriter)),
        "{second:?}"
    );
    // Readers need no claim.
    let mut reader = Store::open(&location).expect("opens");
    assert!(reader.trial_balance().expect("trial balance").holds());
    first.shutdown();
    let second = start(&location, config);
    assert_eq!(
        transfers(&second, vec![Transfer::new(500, 2, 3, 1, CNY, 1)]),
        vec![T::Ok]
    );
    second.shutdown();
}

fn queued_events_are_bounded_whatever_the_commands(backend: Backend) {
    let db = funded_books(backend);
    let location = db.location.clone();

    let (mut config, _) = manual_config();
    config.queue_events_max = 10;
    let engine = start_waiting(&location, config, Duration::from_secs(5));
    // A command larger than the bound is served when nothing waits.
    let big = (0..12u128)
        .map(|i| Transfer::new(600 + i, 2, 3, 1, CNY, 1))
        .collect();
    assert!(
        engine
            .submit_blocking(Command::CreateTransfers(big))
            .is_ok()
    );
    // Stall the writer, then queue 6 + 4 events: the next command is refused at once.
    let blocker = Blocker::hold(&db);
    let stalled = submit_in_background(&engine, payments(700, 1));
    std::thread::sleep(Duration::from_millis(100));
    let six = submit_in_background(&engine, payments(710, 6));
    std::thread::sleep(Duration::from_millis(50));
    let four = submit_in_background(&engine, payments(720, 4));
    std::thread::sleep(Duration::from_millis(50));
    let refused = engine.submit_blocking(Command::CreateTransfers(vec![Transfer::new(
        730, 2, 3, 1, CNY, 1,
    )]));
    assert!(matches!(refused, Err(EngineError::Busy)), "{refused:?}");
    blocker.release();
    assert!(stalled.join().expect("joins").is_ok());
    assert!(six.join().expect("joins").is_ok());
    assert!(four.join().expect("joins").is_ok());
    // Served again once the queue drained.
    assert_eq!(
        transfers(&engine, vec![Transfer::new(730, 2, 3, 1, CNY, 1)]),
        vec![T::Ok]
    );
    engine.shutdown();
}

/// The writer itself honours idempotency keys, whatever the edge does: a retry in a later
/// batch, after a restart, or in the same batch gets the first answer and moves nothing; the
/// same key with another request is refused.
fn an_idempotency_key_moves_money_once_whenever_and_however_it_is_retried(backend: Backend) {
    use formica_core::wallet::{WalletCommand, wallet_account};
    use formica_core::{
        CommandError, Currency, Id, IdempotencyKey, Money, Outcome, ProductCommand, ProductRequest,
    };
    let db = backend.fresh();
    let wallet = |command, key: Option<(&str, &str)>| {
        Command::Product(ProductRequest {
            command: ProductCommand::Wallet(command),
            idempotency: key.map(|(key, fingerprint)| IdempotencyKey {
                owner: Id(1),
                key: key.to_owned(),
                fingerprint: fingerprint.to_owned(),
            }),
        })
    };
    let transfer = |minor| WalletCommand::Transfer {
        from_user_id: Id(1),
        to_user_id: Id(2),
        amount: Money::new(minor, Currency::CNY),
        note: String::new(),
    };
    let engine = start(&db.location, Config::default());
    for user in [1, 2] {
        engine
            .submit_blocking(wallet(
                WalletCommand::OpenWallet {
                    user_id: Id(user),
                    currency: Currency::CNY,
                },
                None,
            ))
            .expect("opens");
    }
    let Ok(Reply::Product(Outcome::Movement(top_up))) = engine.submit_blocking(wallet(
        WalletCommand::StartTopUp {
            user_id: Id(1),
            amount: Money::new(1_000, Currency::CNY),
            card_id: Id(3),
        },
        None,
    )) else {
        panic!("a top-up")
    };
    engine
        .submit_blocking(wallet(
            WalletCommand::SettleMovement {
                movement_id: top_up.id,
                succeeded: true,
                failure: None,
            },
            None,
        ))
        .expect("settles");
    let first = engine
        .submit_blocking(wallet(transfer(100), Some(("k", "a"))))
        .expect("applied");
    let again = engine
        .submit_blocking(wallet(transfer(100), Some(("k", "a"))))
        .expect("answered");
    assert_eq!(first, again, "a later batch gets the saved answer");
    assert!(matches!(
        engine.submit_blocking(wallet(transfer(200), Some(("k", "b")))),
        Err(EngineError::Rejected(CommandError::IdempotencyKeyReused))
    ));
    engine.shutdown();
    let engine = start(&db.location, Config::default());
    let after_restart = engine
        .submit_blocking(wallet(transfer(100), Some(("k", "a"))))
        .expect("answered");
    assert_eq!(first, after_restart, "and so does one after a restart");
    // Two at once with a new key: one batch or two, the money moves once.
    let pending: Vec<_> = (0..2)
        .map(|_| {
            let engine = engine.clone();
            std::thread::spawn(move || {
                engine.submit_blocking(wallet(transfer(50), Some(("k2", "c"))))
            })
        })
        .collect();
    let answers: Vec<_> = pending
        .into_iter()
        .map(|p| p.join().expect("answers").expect("applied"))
        .collect();
    assert_eq!(answers[0], answers[1]);
    engine.shutdown();
    let mut store = Store::open(&db.location).expect("opens");
    let payee = store
        .account(wallet_account(Id(2), Currency::CNY))
        .expect("reads")
        .expect("exists");
    assert_eq!(payee.credits_posted, 150, "100 once and 50 once");
    assert!(store.trial_balance().expect("runs").holds());
}
