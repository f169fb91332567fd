//! The store conformance suite: written once, run against SQLite and PostgreSQL.
//!
//! `store_suite!` generates one module per backend with one `#[test]` per suite function (as
//! ripgrep runs each test per regex engine). Every test gets a fresh store: SQLite in a
//! temporary directory, PostgreSQL in a database of its own created on the server named by
//! `DATABASE_URL` and dropped afterwards. Without `DATABASE_URL` the PostgreSQL tests say why
//! and pass, unless `FORMICA_REQUIRE_POSTGRES=1` (CI) makes them fail.
//!
//! Effects are never written by hand where the core can make them: the suite drives
//! `formica_core::Core` the way the engine's writer does (look up uncached ids, begin, expire,
//! apply, commit, keep or roll back), and checks the store against a plain in-memory ledger
//! that was given the same commands.

use std::collections::BTreeSet;

use formica_core::{COMMAND_EVENTS_MAX, Command, Core, Effects, Reply, TransferRow};
use formica_ledger::{
    AMOUNT_MAX, Account, AccountFlags, CreateAccountResult, CreateTransferResult, Ledger,
    PendingStatus, Transfer, TransferFlags,
};
use formica_store::{HistoryQuery, Store, StoreError};
use formica_testkit::{Backend, TestDb};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

/// One module per backend, one test per suite function. The list of tests is written here
/// once; each backend module calls the same functions.
macro_rules! store_suite {
    ($module:ident, $backend:expr) => {
        mod $module {
            store_suite!(
                @tests $backend;
                schema_migration_is_idempotent,
                schema_newer_than_known_is_refused,
                commit_then_load_gives_the_ledger_export,
                lookup_transfers_finds_old_transfers_with_their_status,
                history_pages_newest_first_with_each_transfer_once,
                trial_balance_holds_and_catches_a_tampered_account,
                amount_above_i64_max_is_rejected_and_nothing_is_written,
                a_full_command_commits_in_one_batch,
                random_workloads_load_back_as_the_ledger_export,
                an_expiry_after_the_last_event_is_inside_the_next_checkpoint,
                products_load_back_as_memory_holds_them,
                a_crash_in_the_middle_of_an_accrual_credits_each_holder_once,
                a_crash_in_the_middle_of_the_credit_run_resumes_it_and_consents_persist,
                a_frozen_deposit_is_charged_after_a_restart,
                a_used_payment_code_stays_used_after_a_restart,
                a_credit_line_its_purchases_and_the_policy_survive_a_restart,
            );
        }
    };
    (@tests $backend:expr; $($test:ident),+ $(,)?) => {
        $(
            #[test]
            fn $test() {
                let backend = $backend;
                if backend.available() {
                    super::$test(backend);
                }
            }
        )+
    };
}

store_suite!(sqlite, super::Backend::Sqlite);
store_suite!(postgres, super::Backend::Postgres);

/// Behaviour only the embedded store has: the balances in a file of their own.
mod sqlite_only {
    use super::*;

    /// The balances file only saves work: without it the books load from the accounts table's
    /// balances (as of its own checkpoint) and the transfers, and a new one is started.
    #[test]
    fn the_balances_file_can_be_lost() {
        let db = Backend::Sqlite.fresh();
        let books = checkpointed_workload(&db);
        let mut books = books.reopen(&db, || remove_balances_file(&db));
        books.check();
        assert!(books.store.trial_balance().expect("reads").holds());
        // The new file takes checkpoints as the old one did.
        more_transfers(&mut books);
        books.check();
        assert!(books.store.trial_balance().expect("reads").holds());
    }

    /// Books written before the balances file had their checkpoints in the accounts table:
    /// they load as they were, and later checkpoints go to the new file.
    #[test]
    fn books_from_before_the_balances_file_load_as_they_were() {
        let db = Backend::Sqlite.fresh();
        let books = checkpointed_workload(&db);
        let mut books = books.reopen(&db, || {
            // What a checkpoint wrote before: the balances in the accounts rows, and the
            // timestamp in the books' file.
            db.execute(&format!(
                "ATTACH DATABASE '{}' AS b; \
                 UPDATE accounts SET (debits_pending, debits_posted, credits_pending, \
                 credits_posted, flags, last_transfer) = (SELECT debits_pending, debits_posted, \
                 credits_pending, credits_posted, flags, last_transfer FROM b.balances \
                 WHERE b.balances.id = accounts.id) \
                 WHERE id IN (SELECT id FROM b.balances); \
                 UPDATE balance_checkpoint SET timestamp = \
                 (SELECT timestamp FROM b.balance_checkpoint); DETACH DATABASE b;",
                formica_store::Location::sqlite_balances_file(data_dir(&db)).display()
            ));
            remove_balances_file(&db);
        });
        books.check();
        more_transfers(&mut books);
        books.check();
        assert!(books.store.trial_balance().expect("reads").holds());
    }

    /// Another connection copies the books' log into their file while the writer stays
    /// open, and the books read the same after it.
    #[test]
    fn the_log_is_copied_from_another_connection() {
        let db = Backend::Sqlite.fresh();
        let mut books = Books::new(db.open());
        workload(&mut books);
        let mut other = books.store.connect_again().expect("connects");
        let (frames, copied) = other.copy_log().expect("copies");
        assert!(frames > 0, "the batches are in the log");
        assert_eq!(copied, frames, "no reader or writer holds any back");
        books.check();
        more_transfers(&mut books);
        books.check();
    }

    /// Books with `workload` committed and every balance checkpointed.
    fn checkpointed_workload(db: &TestDb) -> Books {
        let mut books = Books::new(db.open());
        workload(&mut books);
        let checkpoint = books.core.take_checkpoint();
        books.store.checkpoint(&checkpoint).expect("checkpoint");
        books
    }

    /// Four batches after `workload`, every other one followed by a checkpoint.
    fn more_transfers(books: &mut Books) {
        for n in 0..4 {
            books.commit_ok(
                1,
                vec![Command::CreateTransfers(vec![Transfer::new(
                    transfer_id(500 + n),
                    account_id(3),
                    account_id(1),
                    7,
                    1,
                    1,
                )])],
            );
        }
    }

    fn data_dir(db: &TestDb) -> &std::path::Path {
        match &db.location {
            formica_store::Location::Sqlite(dir) => dir,
            formica_store::Location::Postgres(_) => unreachable!("a SQLite test"),
        }
    }

    fn remove_balances_file(db: &TestDb) {
        let file = formica_store::Location::sqlite_balances_file(data_dir(db));
        for suffix in ["", "-wal", "-shm"] {
            let mut path = file.clone().into_os_string();
            path.push(suffix);
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
                Err(error) => panic!("remove {path:?}: {error}"),
            }
        }
    }
}

/// Behaviour only the server store has: connections that can break, processes that race.
mod postgres_only {
    use super::*;

    #[test]
    fn commit_after_the_backend_is_terminated_fails_once_then_reconnects() {
        if !Backend::Postgres.available() {
            return;
        }
        let db = Backend::Postgres.fresh();
        let mut books = Books::new(db.open());
        let [a, b] = [account_id(1), account_id(2)];
        books.commit_ok(
            0,
            vec![Command::CreateAccounts(vec![
                Account::new(a, 1, 1),
                Account::new(b, 1, 1),
            ])],
        );

        let pid = terminate_backend(&db, &mut books.store);
        let batch = || {
            vec![Command::CreateTransfers(vec![Transfer::new(
                transfer_id(1),
                a,
                b,
                5,
                1,
                1,
            )])]
        };
        match books.commit(SECOND, batch()) {
            Err(StoreError::Postgres(_)) => {}
            other => panic!("a commit on a terminated session fails, got {other:?}"),
        }
        // The engine retries with the same commands: the store connects again.
        books.commit_ok(SECOND, batch());
        books.check();
        assert_ne!(
            backend_pid(&mut books.store),
            pid,
            "a new session serves the store"
        );

        // Reads reconnect the same way.
        terminate_backend(&db, &mut books.store);
        assert!(
            books.store.account(a).is_err(),
            "a read on a terminated session fails"
        );
        let account = books.store.account(a).expect("the next read reconnects");
        assert_eq!(account.as_ref(), books.core.ledger().account(a));
    }

    #[test]
    fn concurrent_opens_migrate_once() {
        if !Backend::Postgres.available() {
            return;
        }
        let db = Backend::Postgres.fresh();
        let openers: Vec<_> = (0..4)
            .map(|_| {
                let location = db.location.clone();
                std::thread::spawn(move || Store::open(&location).map(drop))
            })
            .collect();
        for opener in openers {
            opener
                .join()
                .expect("an opener thread does not panic")
                .expect("every concurrent open succeeds: the migration lock serializes them");
        }
        assert_eq!(
            db.query_i64("SELECT COUNT(*) FROM schema_migrations"),
            formica_store::SCHEMA_VERSION
        );
    }

    /// Kills the server process behind `store` and waits until it is gone. Returns its pid.
    fn terminate_backend(db: &TestDb, store: &mut Store) -> i32 {
        let pid = backend_pid(store);
        let mut client = db.client();
        // The timeout makes the call wait until the process has exited (PostgreSQL 14+), so
        // the store's next call meets a closed session rather than racing the signal.
        let terminated: bool = client
            .query_one("SELECT pg_terminate_backend($1, 10000)", &[&pid])
            .expect("pg_terminate_backend runs")
            .get(0);
        assert!(terminated, "backend {pid} terminated");
        pid
    }

    fn backend_pid(store: &mut Store) -> i32 {
        match store {
            Store::Postgres(store) => store.backend_pid().expect("the store is connected"),
            Store::Sqlite(_) => panic!("a PostgreSQL test opened a PostgreSQL store"),
        }
    }
}

// The suite.

fn schema_migration_is_idempotent(backend: Backend) {
    let db = backend.fresh();
    let mut books = Books::new(db.open());
    workload(&mut books);
    drop(books.store);
    let mut again = db.open();
    assert_eq!(
        again.load().expect("load after reopening").snapshot,
        books.core.ledger().export()
    );
    drop(again);
    drop(db.open());
    assert_eq!(
        db.query_i64("SELECT COUNT(*) FROM schema_migrations"),
        formica_store::SCHEMA_VERSION
    );
    assert_eq!(
        db.query_i64("SELECT MAX(version) FROM schema_migrations"),
        formica_store::SCHEMA_VERSION
    );
}

fn schema_newer_than_known_is_refused(backend: Backend) {
    let db = backend.fresh();
    drop(db.open());
    db.execute("INSERT INTO schema_migrations (version) VALUES (99)");
    match Store::open(&db.location) {
        Err(StoreError::SchemaTooNew {
            found: 99,
            known: formica_store::SCHEMA_VERSION,
        }) => {}
        other => panic!("a schema from the future is refused, got {other:?}"),
    }
}

fn commit_then_load_gives_the_ledger_export(backend: Backend) {
    let db = backend.fresh();
    let mut books = Books::new(db.open());
    let ids = workload(&mut books);
    let snapshot = books.store.load().expect("load").snapshot;
    // The workload leaves one pending transfer of each fate; only the open one is loaded.
    let pending: Vec<u128> = snapshot.pending.iter().map(|t| t.id).collect();
    assert_eq!(pending, vec![ids.open]);
    assert_eq!(snapshot.accounts.len(), 6);
    books.check();
    for account in books.core.ledger().accounts() {
        assert_eq!(
            books.store.account(account.id).expect("account").as_ref(),
            Some(account)
        );
    }
    assert_eq!(books.store.account(account_id(999)).expect("account"), None);
}

fn lookup_transfers_finds_old_transfers_with_their_status(backend: Backend) {
    let db = backend.fresh();
    let mut books = Books::new(db.open());
    let ids = workload(&mut books);
    let unknown = transfer_id(10_000);
    let wanted = [
        ids.single,
        ids.posted,
        ids.voided,
        ids.expired,
        ids.open,
        ids.post,
        unknown,
    ];
    let mut found = books.store.lookup_transfers(&wanted).expect("lookup");
    // The interface promises no order.
    found.sort_by_key(|(t, _)| t.id);
    let mut expected: Vec<(Transfer, Option<PendingStatus>)> = [
        (ids.single, None),
        (ids.posted, Some(PendingStatus::Posted)),
        (ids.voided, Some(PendingStatus::Voided)),
        (ids.expired, Some(PendingStatus::Expired)),
        (ids.open, Some(PendingStatus::Pending)),
        (ids.post, None),
    ]
    .into_iter()
    .map(|(id, status)| (books.committed(id), status))
    .collect();
    expected.sort_by_key(|(t, _)| t.id);
    assert_eq!(found, expected);
    assert!(
        books
            .store
            .lookup_transfers(&[])
            .expect("lookup")
            .is_empty()
    );
    assert!(
        books
            .store
            .lookup_transfers(&[unknown])
            .expect("lookup")
            .is_empty()
    );
}

fn history_pages_newest_first_with_each_transfer_once(backend: Backend) {
    let db = backend.fresh();
    let mut books = Books::new(db.open());
    let [hub, x, y] = [account_id(1), account_id(2), account_id(3)];
    books.commit_ok(
        0,
        vec![Command::CreateAccounts(vec![
            Account::new(hub, 1, 1),
            Account::new(x, 1, 1),
            Account::new(y, 1, 1),
        ])],
    );
    let mut next = 0;
    let mut transfer = |debit, credit| {
        next += 1;
        Transfer::new(transfer_id(next), debit, credit, next.into(), 1, 1)
    };
    for _ in 0..5 {
        let transfers = vec![
            transfer(hub, x),
            transfer(y, hub),
            transfer(x, y),
            transfer(hub, y).with_flags(TransferFlags::PENDING),
            transfer(x, hub),
        ];
        books.commit_ok(SECOND, vec![Command::CreateTransfers(transfers)]);
    }
    let mut expected: Vec<Transfer> = books
        .committed
        .iter()
        .filter(|t| t.debit_account_id == hub || t.credit_account_id == hub)
        .copied()
        .collect();
    expected.sort_by_key(|t| std::cmp::Reverse(t.timestamp));
    assert_eq!(expected.len(), 20);

    let pages = |store: &mut Store, from: Option<u64>| {
        let mut seen = Vec::new();
        let mut before = None;
        loop {
            let query = HistoryQuery {
                account_id: hub,
                from,
                before,
                limit: 3,
            };
            let page = store.history(&query).expect("history");
            assert!(page.len() <= 3, "a page holds at most its limit");
            let Some(last) = page.last() else { break };
            before = Some(last.timestamp);
            seen.extend(page);
        }
        seen
    };
    assert_eq!(pages(&mut books.store, None), expected);
    let ids: BTreeSet<u128> = expected.iter().map(|t| t.id).collect();
    assert_eq!(ids.len(), expected.len(), "each transfer once");

    // `from` is inclusive: the 8 newest, down to and including the 8th.
    let from = expected[7].timestamp;
    assert_eq!(pages(&mut books.store, Some(from)), expected[..8]);

    let one = HistoryQuery {
        account_id: hub,
        from: None,
        before: None,
        limit: 0,
    };
    assert_eq!(
        books.store.history(&one).expect("history"),
        expected[..1],
        "limit 0 is 1"
    );
    let all = HistoryQuery {
        limit: u32::MAX,
        ..one
    };
    assert_eq!(books.store.history(&all).expect("history"), expected);
    let nobody = HistoryQuery {
        account_id: account_id(999),
        ..all
    };
    assert!(books.store.history(&nobody).expect("history").is_empty());
}

fn trial_balance_holds_and_catches_a_tampered_account(backend: Backend) {
    let db = backend.fresh();
    let mut books = Books::new(db.open());
    workload(&mut books);
    let balance = books.store.trial_balance().expect("trial balance");
    assert!(balance.holds(), "{balance:?}");
    assert_eq!(balance.ledgers, books.core.ledger().totals());
    assert_eq!(
        balance.ledgers.keys().copied().collect::<Vec<_>>(),
        [1, LEDGER_MAX]
    );
    assert_eq!(balance.ledgers[&1].accounts, 4);
    assert_eq!(balance.ledgers[&LEDGER_MAX].accounts, 2);

    // Where the checkpoints write the balances: SQLite's balances file, PostgreSQL's accounts.
    db.execute_on_balances(match backend {
        Backend::Sqlite => "UPDATE balances SET credits_posted = credits_posted + 1",
        Backend::Postgres => "UPDATE accounts SET credits_posted = credits_posted + 1",
    });
    let tampered = books.store.trial_balance().expect("trial balance");
    assert!(!tampered.holds());
    assert!(!tampered.ledgers[&1].balanced());
    let mut mismatched: Vec<u128> = tampered
        .mismatched_accounts
        .iter()
        .map(|m| m.account_id)
        .collect();
    mismatched.sort_unstable();
    let mut accounts: Vec<u128> = books.core.ledger().accounts().map(|a| a.id).collect();
    accounts.sort_unstable();
    assert_eq!(mismatched, accounts, "every account was tampered with");
    for mismatch in &tampered.mismatched_accounts {
        assert_eq!(mismatch.stored[3], mismatch.from_transfers[3] + 1);
        assert_eq!(mismatch.stored[..3], mismatch.from_transfers[..3]);
    }
}

fn amount_above_i64_max_is_rejected_and_nothing_is_written(backend: Backend) {
    let db = backend.fresh();
    let mut books = Books::new(db.open());
    workload(&mut books);
    let _ = books.store.load().expect("load").snapshot;
    let storable = i64::MAX as u128;

    // Every amount fits, but two together would overflow the debit account's balance
    // column: the core refuses the second with a result, and the batch still commits.
    let [rich, poor] = [account_id(100), account_id(101)];
    let overflow = vec![
        Command::CreateAccounts(vec![Account::new(rich, 1, 1), Account::new(poor, 1, 1)]),
        Command::CreateTransfers(vec![
            Transfer::new(transfer_id(100), rich, poor, storable, 1, 1),
            Transfer::new(transfer_id(101), rich, poor, storable, 1, 1),
        ]),
    ];
    let replies = books.commit(SECOND, overflow).expect("the batch commits");
    assert_eq!(
        replies[1],
        Reply::Transfers(vec![
            formica_ledger::CreateTransferResult::Ok,
            formica_ledger::CreateTransferResult::OverflowsDebitsPosted
        ])
    );
    books.check();
    let before = books.store.load().expect("load").snapshot;

    // Effects no core would make (the core refuses such amounts), written row by row by
    // SQLite: the valid rows before the bad one must go too.
    let good = Transfer {
        timestamp: before.timestamp + 1,
        ..Transfer::new(transfer_id(102), account_id(1), account_id(2), 1, 1, 1)
    };
    let bad = Transfer {
        id: transfer_id(103),
        amount: storable + 1,
        timestamp: before.timestamp + 2,
        ..good
    };
    let effects = Effects {
        timestamp: bad.timestamp,
        transfer_id_max: before.transfer_id_max.max(bad.id),
        accounts: vec![Account {
            timestamp: before.timestamp + 3,
            ..Account::new(account_id(102), 1, 1)
        }],
        transfers: vec![
            TransferRow {
                transfer: good,
                ..TransferRow::default()
            },
            TransferRow {
                transfer: bad,
                ..TransferRow::default()
            },
        ],
        pending_status: Vec::new(),
        products: Default::default(),
    };
    match books.store.commit(&effects) {
        Err(StoreError::TooLarge {
            what: "amount",
            value,
        }) => assert_eq!(value, storable + 1),
        other => panic!("an amount above i64::MAX is refused, got {other:?}"),
    }
    assert_eq!(books.store.load().expect("load").snapshot, before);
    assert!(
        books
            .store
            .lookup_transfers(&[good.id])
            .expect("lookup")
            .is_empty()
    );
    assert_eq!(db.query_i64("SELECT COUNT(*) FROM accounts"), 8);

    // The store is still usable, and the largest storable amount is stored.
    let [rich, poor] = [account_id(103), account_id(104)];
    books.commit_ok(
        SECOND,
        vec![
            Command::CreateAccounts(vec![Account::new(rich, 1, 1), Account::new(poor, 1, 1)]),
            Command::CreateTransfers(vec![Transfer::new(
                transfer_id(104),
                rich,
                poor,
                storable,
                1,
                1,
            )]),
        ],
    );
    books.check();
}

fn a_full_command_commits_in_one_batch(backend: Backend) {
    let db = backend.fresh();
    let mut books = Books::new(db.open());
    let [a, b] = [account_id(1), account_id(2)];
    books.commit_ok(
        0,
        vec![Command::CreateAccounts(vec![
            Account::new(a, 1, 1),
            Account::new(b, 1, 1),
        ])],
    );
    let transfers: Vec<Transfer> = (1..=COMMAND_EVENTS_MAX as u64)
        .map(|n| {
            let transfer = Transfer::new(transfer_id(n), a, b, n.into(), 1, 1);
            if n % 3 == 0 {
                transfer.with_flags(TransferFlags::PENDING)
            } else {
                transfer
            }
        })
        .collect();
    books.commit_ok(SECOND, vec![Command::CreateTransfers(transfers)]);
    books.check();
    assert_eq!(
        books.store.load().expect("load").snapshot.pending.len(),
        COMMAND_EVENTS_MAX / 3
    );
    assert!(books.store.trial_balance().expect("trial balance").holds());
    assert_eq!(
        db.query_i64("SELECT COUNT(*) FROM transfers"),
        COMMAND_EVENTS_MAX as i64
    );
}

fn random_workloads_load_back_as_the_ledger_export(backend: Backend) {
    // Few cases: each one builds a fresh database, which is a server round trip for PostgreSQL.
    let config = Config {
        cases: 16,
        failure_persistence: None,
        ..Config::default()
    };
    let mut runner = TestRunner::new(config);
    let result = runner.run(&workload_strategy(), |batches| {
        let db = backend.fresh();
        let mut books = Books::new(db.open());
        let mut random = RandomBooks::default();
        books.commit_ok(0, random.seed());
        for batch in &batches {
            let commands = random.commands(batch, &books.reference);
            // Events may be refused (that is part of the workload); the commit may not.
            books
                .commit(batch.advance_seconds * SECOND, commands)
                .expect("commit");
            books.check();
        }
        let balance = books.store.trial_balance().expect("trial balance");
        prop_assert!(balance.holds(), "{balance:?}");
        Ok(())
    });
    if let Err(error) = result {
        panic!("{error}");
    }
}

/// Regression (issue 3): a checkpoint taken after a batch that only expired a hold was
/// dated at the last transfer, before the expiry; a load then applied the expiry twice.
fn an_expiry_after_the_last_event_is_inside_the_next_checkpoint(backend: Backend) {
    let db = backend.fresh();
    let mut books = Books::new(db.open());
    let [a, b] = [account_id(1), account_id(2)];
    books.commit_ok(
        0,
        vec![
            Command::CreateAccounts(vec![Account::new(a, 1, 1), Account::new(b, 1, 1)]),
            Command::CreateTransfers(vec![Transfer::new(transfer_id(1), a, b, 1_000, 1, 1)]),
        ],
    );
    let hold = Transfer::new(transfer_id(2), a, b, 860, 1, 1)
        .with_flags(TransferFlags::PENDING)
        .with_timeout(1);
    // The second batch is followed by a checkpoint, the fourth too.
    books.commit_ok(0, vec![Command::CreateTransfers(vec![hold])]);
    books.commit_ok(2 * SECOND, Vec::new());
    books.commit_ok(0, Vec::new());
    books.check();
    let statuses = books.store.lookup_transfers(&[hold.id]).expect("lookup");
    assert_eq!(statuses[0].1, Some(PendingStatus::Expired));
    assert!(books.store.trial_balance().expect("trial balance").holds());
}

// The fixed workload.

const SECOND: u64 = 1_000_000_000;
/// The widest ledger number: it must survive the round trip through a signed column.
const LEDGER_MAX: u32 = u32::MAX;

/// The transfers of `workload` whose fate the tests check.
struct WorkloadIds {
    single: u128,
    posted: u128,
    voided: u128,
    expired: u128,
    open: u128,
    post: u128,
}

/// A small set of books with one pending transfer of each fate (open, posted, voided,
/// expired), two ledgers, limits, and every opaque field at its extremes.
fn workload(books: &mut Books) -> WorkloadIds {
    let [a, b, c, d, e, f] = [1, 2, 3, 4, 5, 6].map(account_id);
    let extreme = |account: Account| Account {
        user_data_128: u128::MAX - 1,
        user_data_64: u64::MAX,
        user_data_32: u32::MAX,
        ..account
    };
    books.commit_ok(
        0,
        vec![Command::CreateAccounts(vec![
            extreme(Account::new(a, 1, u16::MAX)),
            Account::new(b, 1, 1).with_flags(AccountFlags::DEBITS_MUST_NOT_EXCEED_CREDITS),
            Account::new(c, 1, 2),
            Account::new(d, LEDGER_MAX, 1),
            Account::new(e, LEDGER_MAX, 1).with_flags(AccountFlags::CREDITS_MUST_NOT_EXCEED_DEBITS),
        ])],
    );

    let [single, posted, expired, voided, partly, open] = [1, 2, 3, 4, 5, 6].map(transfer_id);
    let [post, void, partial_post, back] = [7, 8, 9, 10].map(transfer_id);
    let pending = TransferFlags::PENDING;
    books.commit_ok(
        SECOND,
        vec![Command::CreateTransfers(vec![
            Transfer {
                user_data_128: u128::MAX - 1,
                user_data_64: u64::MAX,
                user_data_32: u32::MAX,
                ..Transfer::new(single, a, b, 100, 1, u16::MAX)
            },
            Transfer::new(posted, a, b, 50, 1, 1).with_flags(pending),
            Transfer::new(expired, a, c, 30, 1, 1)
                .with_flags(pending)
                .with_timeout(1),
            Transfer::new(voided, b, c, 10, 1, 1).with_flags(pending),
            // E's credits may not exceed its debits: it must be debited first.
            Transfer::new(transfer_id(11), e, d, 9, LEDGER_MAX, 1),
            Transfer::new(partly, d, e, 7, LEDGER_MAX, 1)
                .with_flags(pending)
                .with_timeout(u32::MAX),
        ])],
    );
    // Two seconds on: the 1-second pending transfer expires before the batch is applied.
    books.commit_ok(
        2 * SECOND,
        vec![Command::CreateTransfers(vec![
            Transfer::post(post, posted, AMOUNT_MAX),
            Transfer::void(void, voided),
            Transfer::post(partial_post, partly, 3),
        ])],
    );
    books.commit_ok(
        SECOND,
        vec![
            Command::CreateAccounts(vec![Account::new(f, 1, 1)]),
            Command::CreateTransfers(vec![
                Transfer::new(open, a, c, 20, 1, 1).with_flags(pending),
                Transfer::new(back, c, f, 1, 1, 1),
            ]),
        ],
    );
    // A batch that changes nothing but may expire something: only the clock row is written.
    books.commit_ok(SECOND, Vec::new());
    for (id, status) in [
        (posted, PendingStatus::Posted),
        (expired, PendingStatus::Expired),
        (voided, PendingStatus::Voided),
        (partly, PendingStatus::Posted),
        (open, PendingStatus::Pending),
    ] {
        assert_eq!(books.reference.pending_status(id), Some(status));
    }
    WorkloadIds {
        single,
        posted,
        voided,
        expired,
        open,
        post,
    }
}

/// Account ids spread over all 128 bits, so that an id stored with the wrong byte order
/// would sort differently.
fn account_id(n: u64) -> u128 {
    spread(0xA000 + u128::from(n))
}

fn transfer_id(n: u64) -> u128 {
    spread(0x7000_0000 + u128::from(n))
}

/// A bijection on u128 (odd multiplier), nonzero and not `u128::MAX` for the small inputs
/// used here.
fn spread(n: u128) -> u128 {
    let id = n.wrapping_mul(0x9E37_79B9_7F4A_7C15_F39C_C060_5CED_C835);
    assert!(id != 0 && id != u128::MAX, "a valid id");
    id
}

// The harness.

/// A core and its store, driven as the engine's writer drives them, plus a plain ledger
/// given the same commands (it never evicts and has no store) to compare against.
struct Books {
    core: Core,
    store: Store,
    reference: Ledger,
    now: u64,
    /// Every transfer the store committed, in order.
    committed: Vec<Transfer>,
    /// Batches committed.
    batches: u64,
}

impl Books {
    fn new(mut store: Store) -> Self {
        let loaded = store.load().expect("load a fresh store");
        let snapshot = loaded.snapshot.clone();
        let core = Core::from_loaded(loaded).expect("a fresh store is consistent");
        let mut reference = Ledger::import(snapshot).expect("a fresh store is consistent");
        reference.set_balance_max(formica_core::STORED_AMOUNT_MAX);
        Books {
            core,
            store,
            reference,
            now: 1_700_000_000 * SECOND,
            committed: Vec::new(),
            batches: 0,
        }
    }

    /// Closes the store, runs `while_closed`, opens it again and rebuilds the core from what
    /// it loads, as a restarted engine does (the core then knows which accounts the store's
    /// checkpoint lacks).
    fn reopen(self, db: &formica_testkit::TestDb, while_closed: impl FnOnce()) -> Books {
        drop(self.store);
        while_closed();
        let mut store = db.open();
        let loaded = store.load().expect("load");
        Books {
            core: Core::from_loaded(loaded).expect("the stored books are consistent"),
            store,
            ..self
        }
    }

    /// One batch, `advance` nanoseconds after the previous one.
    fn commit(&mut self, advance: u64, commands: Vec<Command>) -> Result<Vec<Reply>, StoreError> {
        let now = self.now + advance;
        let ids = self.core.uncached_ids(&commands);
        if !ids.is_empty() {
            for (transfer, status) in self.store.lookup_transfers(&ids)? {
                self.core.cache(transfer, status);
            }
        }
        self.core.begin_batch();
        self.core.expire(now);
        let replies: Vec<Reply> = commands
            .iter()
            .map(|command| {
                self.core
                    .apply(now, command)
                    .expect("the test's commands are valid")
            })
            .collect();
        let effects = self.core.effects();
        if let Err(error) = self.store.commit(&effects) {
            self.core.rollback_batch();
            return Err(error);
        }
        self.core.commit_batch();
        self.now = now;
        self.committed
            .extend(effects.transfers.iter().map(|row| row.transfer));
        // Every other batch is followed by a checkpoint, so that loads bring balances forward
        // from a checkpoint both right after one and with transfers since.
        self.batches += 1;
        if self.batches.is_multiple_of(2) {
            let checkpoint = self.core.take_checkpoint();
            if let Err(error) = self.store.checkpoint(&checkpoint) {
                self.core.checkpoint_failed(&checkpoint);
                return Err(error);
            }
        }

        self.reference.expire(now);
        for (command, reply) in commands.iter().zip(&replies) {
            let expected = match command {
                Command::CreateAccounts(accounts) => {
                    Reply::Accounts(self.reference.create_accounts(now, accounts))
                }
                Command::CreateTransfers(transfers) => {
                    Reply::Transfers(self.reference.create_transfers(now, transfers))
                }
                Command::Product(_) => panic!("the books tests send no product commands"),
            };
            assert_eq!(
                reply, &expected,
                "the store-backed core answers as the plain ledger does"
            );
        }
        Ok(replies)
    }

    /// A batch whose every event must succeed.
    fn commit_ok(&mut self, advance: u64, commands: Vec<Command>) {
        let replies = self.commit(advance, commands).expect("commit");
        for reply in replies {
            match reply {
                Reply::Accounts(results) => {
                    assert!(
                        results.iter().all(|r| *r == CreateAccountResult::Ok),
                        "{results:?}"
                    );
                }
                Reply::Transfers(results) => {
                    assert!(
                        results.iter().all(|r| *r == CreateTransferResult::Ok),
                        "{results:?}"
                    );
                }
                Reply::Product(outcome) => panic!("no product commands here: {outcome:?}"),
            }
        }
    }

    /// The store loads back what memory holds, and the loaded books import to the same state.
    fn check(&mut self) {
        let loaded = self.store.load().expect("load");
        for (account, head) in &loaded.heads {
            assert_eq!(
                self.core.head(*account),
                Some(*head),
                "the history heads load back"
            );
        }
        let heads = self
            .core
            .ledger()
            .accounts()
            .filter(|a| self.core.head(a.id).is_some());
        assert_eq!(
            loaded.heads.len(),
            heads.count(),
            "every history head loads back"
        );
        let loaded = loaded.snapshot;
        let export = self.core.ledger().export();
        assert_eq!(loaded, export, "the store loads back the core's books");
        for account in &export.accounts {
            assert_eq!(
                self.store.account(account.id).expect("reads").as_ref(),
                Some(account),
                "an account read brings its balances forward"
            );
        }
        assert_eq!(
            export,
            self.reference.export(),
            "the core agrees with the plain ledger"
        );
        let imported = Ledger::import(loaded).expect("the loaded books are consistent");
        assert_eq!(imported.digest(), self.core.ledger().digest());
    }

    /// The committed transfer with this id.
    fn committed(&self, id: u128) -> Transfer {
        *self
            .committed
            .iter()
            .find(|t| t.id == id)
            .expect("the transfer was committed")
    }
}

// Random workloads.

#[derive(Clone, Debug)]
struct RandomBatch {
    advance_seconds: u64,
    ops: Vec<Op>,
}

/// One event of a random batch. Indexes pick among what earlier ops created (modulo their
/// count), so most events are valid and the rest exercise the ledger's refusals.
#[derive(Clone, Debug)]
enum Op {
    Account {
        ledger: u32,
        limit: u8,
    },
    Transfer {
        debit: usize,
        credit: usize,
        amount: u64,
        timeout: Option<u32>,
        linked: bool,
    },
    Post {
        pending: usize,
        amount: Option<u64>,
    },
    Void {
        pending: usize,
    },
    /// Sends an earlier transfer again: the core must find it (via the store) and answer
    /// `exists` rather than move money twice.
    Repeat {
        transfer: usize,
    },
}

fn op_strategy() -> impl Strategy<Value = Op> {
    prop_oneof![
        1 => (prop_oneof![4 => Just(1u32), 1 => Just(2u32)], 0..3u8).prop_map(|(ledger, limit)| Op::Account { ledger, limit }),
        6 => (
            any::<usize>(),
            any::<usize>(),
            1..1_000u64,
            prop_oneof![Just(None), (0..3u32).prop_map(Some)],
            proptest::bool::weighted(0.1),
        )
            .prop_map(|(debit, credit, amount, timeout, linked)| Op::Transfer {
                debit,
                credit,
                amount,
                timeout,
                linked,
            }),
        2 => (any::<usize>(), proptest::option::of(1..1_000u64))
            .prop_map(|(pending, amount)| Op::Post { pending, amount }),
        1 => any::<usize>().prop_map(|pending| Op::Void { pending }),
        1 => any::<usize>().prop_map(|transfer| Op::Repeat { transfer }),
    ]
}

fn workload_strategy() -> impl Strategy<Value = Vec<RandomBatch>> {
    let batch = (0..3u64, proptest::collection::vec(op_strategy(), 0..12)).prop_map(
        |(advance_seconds, ops)| RandomBatch {
            advance_seconds,
            ops,
        },
    );
    proptest::collection::vec(batch, 1..6)
}

/// Turns random ops into commands, remembering the ids it handed out.
#[derive(Default)]
struct RandomBooks {
    /// Every account created, with its ledger.
    accounts: Vec<(u128, u32)>,
    transfers: Vec<Transfer>,
    pending: Vec<u128>,
    next_id: u64,
}

impl RandomBooks {
    /// A first batch of plain and limited accounts in two ledgers, so that most random
    /// transfers have somewhere to go.
    fn seed(&mut self) -> Vec<Command> {
        let accounts = [
            (1, AccountFlags::empty()),
            (1, AccountFlags::empty()),
            (1, AccountFlags::DEBITS_MUST_NOT_EXCEED_CREDITS),
            (1, AccountFlags::CREDITS_MUST_NOT_EXCEED_DEBITS),
            (2, AccountFlags::empty()),
            (2, AccountFlags::empty()),
        ]
        .map(|(ledger, flags)| self.account(ledger, flags));
        vec![Command::CreateAccounts(accounts.to_vec())]
    }

    fn account(&mut self, ledger: u32, flags: AccountFlags) -> Account {
        self.next_id += 1;
        let id = account_id(self.next_id);
        self.accounts.push((id, ledger));
        Account::new(id, ledger, 1).with_flags(flags)
    }

    /// The pending transfer a post or void names: an open one when there is one (so that most
    /// settle something), else any, which the ledger refuses.
    fn pending(&self, pick: usize, books: &Ledger) -> Option<u128> {
        let open: Vec<u128> = self
            .pending
            .iter()
            .copied()
            .filter(|id| books.pending_status(*id) == Some(PendingStatus::Pending))
            .collect();
        let among = if open.is_empty() {
            &self.pending
        } else {
            &open
        };
        (!among.is_empty()).then(|| among[pick % among.len()])
    }

    /// The commands for `batch`; `books` is the ledger as of the previous batch.
    fn commands(&mut self, batch: &RandomBatch, books: &Ledger) -> Vec<Command> {
        let mut accounts = Vec::new();
        let mut transfers = Vec::new();
        for op in &batch.ops {
            self.next_id += 1;
            let id = transfer_id(self.next_id);
            let transfer = match *op {
                Op::Account { ledger, limit } => {
                    let flags = match limit {
                        0 => AccountFlags::empty(),
                        1 => AccountFlags::DEBITS_MUST_NOT_EXCEED_CREDITS,
                        _ => AccountFlags::CREDITS_MUST_NOT_EXCEED_DEBITS,
                    };
                    accounts.push(self.account(ledger, flags));
                    continue;
                }
                Op::Transfer {
                    debit,
                    credit,
                    amount,
                    timeout,
                    linked,
                } => {
                    let (debit, ledger) = self.accounts[debit % self.accounts.len()];
                    // Another account of the same ledger (the seed has two in each), so that
                    // most transfers are valid.
                    let partners: Vec<u128> = self
                        .accounts
                        .iter()
                        .filter(|(id, other)| *other == ledger && *id != debit)
                        .map(|(id, _)| *id)
                        .collect();
                    let credit = partners[credit % partners.len()];
                    let mut transfer = Transfer::new(id, debit, credit, amount.into(), ledger, 1);
                    if let Some(timeout) = timeout {
                        transfer = transfer
                            .with_flags(TransferFlags::PENDING)
                            .with_timeout(timeout);
                        self.pending.push(id);
                    }
                    if linked {
                        transfer.flags |= TransferFlags::LINKED;
                    }
                    transfer
                }
                Op::Post { pending, amount } => {
                    let Some(pending) = self.pending(pending, books) else {
                        continue;
                    };
                    Transfer::post(id, pending, amount.map_or(AMOUNT_MAX, u128::from))
                }
                Op::Void { pending } => {
                    let Some(pending) = self.pending(pending, books) else {
                        continue;
                    };
                    Transfer::void(id, pending)
                }
                Op::Repeat { transfer } => {
                    if self.transfers.is_empty() {
                        continue;
                    }
                    self.transfers[transfer % self.transfers.len()]
                }
            };
            self.transfers.push(transfer);
            transfers.push(transfer);
        }
        let mut commands = Vec::new();
        if !accounts.is_empty() {
            commands.push(Command::CreateAccounts(accounts));
        }
        if !transfers.is_empty() {
            commands.push(Command::CreateTransfers(transfers));
        }
        commands
    }
}

// The products.

/// Applies product commands one batch each, as the engine's writer does, and after every
/// batch checks that the store loads back exactly the people, open trades and open movements
/// memory holds (and the same books).
struct ProductBooks {
    core: Core,
    store: Store,
    now: u64,
}

impl ProductBooks {
    fn run(&mut self, advance: u64, command: formica_core::ProductCommand) -> Option<Outcome> {
        self.try_run(advance, command).ok()
    }

    /// `run`, with the refusal if the command was refused.
    fn try_run(
        &mut self,
        advance: u64,
        command: formica_core::ProductCommand,
    ) -> Result<Outcome, formica_core::Refusal> {
        self.now += advance;
        let command = Command::Product(formica_core::ProductRequest {
            command,
            idempotency: None,
        });
        // As the writer does: the trades the command names that memory does not hold.
        let recall = self.core.trades_to_recall([&command]);
        let trades = self
            .store
            .read_sql(|sql| formica_store::trade::trades_by_id(sql, &recall))
            .expect("recall");
        for trade in trades {
            self.core.recall_trade(trade);
        }
        let numbers = self.core.numbers_to_check([&command]);
        let taken = self
            .store
            .read_sql(|sql| formica_store::trade::numbers_taken(sql, &numbers))
            .expect("numbers");
        for (seller, number) in taken {
            self.core.recall_number(seller, number);
        }
        self.core.begin_batch();
        self.core.expire(self.now);
        let reply = self.core.apply(self.now, &command);
        let effects = self.core.effects();
        self.store.commit(&effects).expect("commit");
        self.core.commit_batch();
        let mut loaded = self.store.load().expect("load");
        let mut held = self.core.export_products();
        // A refused command may hand out an id it never writes; only the rows must agree.
        assert!(loaded.products.id_last <= held.id_last);
        loaded.products.id_last = 0;
        held.id_last = 0;
        assert_eq!(
            loaded.products, held,
            "the store loads the products memory holds"
        );
        assert_eq!(loaded.snapshot, self.core.ledger().export());
        match reply {
            Ok(Reply::Product(outcome)) => Ok(outcome),
            Err(formica_core::CommandError::Refused(refusal)) => Err(refusal),
            other => panic!("a product's answer: {other:?}"),
        }
    }
}

use formica_core::Outcome;

impl ProductBooks {
    /// The settings of the crash tests: chunks of two, so a run spans batches.
    fn settings() -> formica_core::Settings {
        formica_core::Settings {
            accrual_chunk: 2,
            ..formica_core::Settings::default()
        }
    }

    /// A writer on a fresh store, at Friday 16:00 in the platform's zone.
    fn start(db: &formica_testkit::TestDb) -> ProductBooks {
        let mut store = db.open();
        let mut core = Core::from_loaded(store.load().expect("load")).expect("fresh");
        core.configure(Self::settings());
        ProductBooks {
            core,
            store,
            now: 1_800_000_000 * SECOND,
        }
    }

    /// The writer dies and starts again on what the store holds.
    fn restart(self, db: &formica_testkit::TestDb) -> ProductBooks {
        let ProductBooks { store, now, .. } = self;
        drop(store);
        let mut store = db.open();
        let mut core = Core::from_loaded(store.load().expect("load")).expect("loads");
        core.configure(Self::settings());
        ProductBooks { core, store, now }
    }

    /// A rental shop run by person 1 (who must exist), in CNY.
    fn rental_shop(&mut self, name: &str) -> formica_core::merchant::Merchant {
        use formica_core::merchant::{MerchantCommand, MerchantProfile};
        use formica_core::{Currency, Id, ProductCommand};
        let profile = MerchantProfile {
            owner_id: Id(1),
            name: name.into(),
            contact: "rentals@example.com".into(),
            category: "rental".into(),
            country: "CN".into(),
            currency: Currency::CNY,
            card_id: Id(7),
        };
        match self.run(
            SECOND,
            ProductCommand::Merchant(MerchantCommand::Open(Box::new(profile))),
        ) {
            Some(Outcome::Merchant(shop)) => shop,
            other => panic!("a merchant: {other:?}"),
        }
    }

    /// A person with a wallet, and `minor` fen in it through a settled top-up.
    fn person(&mut self, user: formica_core::Id, minor: u64) {
        use formica_core::wallet::WalletCommand;
        use formica_core::{Currency, Id, Money, ProductCommand};
        self.run(
            SECOND,
            ProductCommand::Wallet(WalletCommand::OpenWallet {
                user_id: user,
                currency: Currency::CNY,
            }),
        );
        if minor == 0 {
            return;
        }
        let Some(Outcome::Movement(top_up)) = self.run(
            SECOND,
            ProductCommand::Wallet(WalletCommand::StartTopUp {
                user_id: user,
                amount: Money::new(minor, Currency::CNY),
                card_id: Id(9),
            }),
        ) else {
            panic!("a movement")
        };
        self.run(
            SECOND,
            ProductCommand::Wallet(WalletCommand::SettleMovement {
                movement_id: top_up.id,
                succeeded: true,
                failure: None,
            }),
        );
    }

    /// A batch of timers alone, checked like a command's.
    fn tick(&mut self, advance: u64) {
        self.now += advance;
        self.core.begin_batch();
        self.core.expire(self.now);
        let effects = self.core.effects();
        self.store.commit(&effects).expect("commit");
        self.core.commit_batch();
        let mut loaded = self.store.load().expect("load");
        let mut held = self.core.export_products();
        loaded.products.id_last = 0;
        held.id_last = 0;
        assert_eq!(loaded.products, held, "the store loads what memory holds");
    }
}

#[allow(
    clippy::inconsistent_digit_grouping,
    reason = "amounts in fen read as yuan_fen: 100_00 is 100.00 yuan"
)]
fn a_crash_in_the_middle_of_an_accrual_credits_each_holder_once(backend: Backend) {
    use formica_core::fund::{FundCommand, Income, fund_account, issuer_account, units_account};
    use formica_core::{Currency, Id, Money, ProductCommand};
    const DAY: u64 = 24 * 3600 * SECOND;
    let db = backend.fresh();
    let mut books = ProductBooks::start(&db);
    let cny = |minor| Money::new(minor, Currency::CNY);
    let people: Vec<Id> = (1..=6).map(Id).collect();
    for user in &people {
        books.person(*user, 100_000_00);
    }
    let manager = people[0];
    let Some(Outcome::Fund(fund)) = books.run(
        SECOND,
        ProductCommand::Fund(FundCommand::Create {
            name: "Pocket".into(),
            currency: Currency::CNY,
            manager_id: manager,
            cutoff_second: 15 * 3600,
            instant_limit: cny(10_000_00),
        }),
    ) else {
        panic!("a fund")
    };
    for (n, holder) in people[1..].iter().enumerate() {
        books.run(
            SECOND,
            ProductCommand::Fund(FundCommand::Subscribe {
                fund_id: fund.id,
                holder_id: *holder,
                amount: cny(50_000_00 + n as u64),
            }),
        );
    }
    // Tuesday: confirmed. Friday to Monday earn nothing (not confirmed yet).
    books.tick(4 * DAY);
    let friday = 20_833;
    let post = |books: &mut ProductBooks, day| {
        books.run(
            SECOND,
            ProductCommand::Fund(FundCommand::PostIncome {
                fund_id: fund.id,
                day,
                income: Income::parse("0.9312").expect("an income"),
            }),
        )
    };
    for day in friday..friday + 4 {
        post(&mut books, day);
        books.tick(SECOND);
        books.tick(SECOND);
    }
    books.tick(DAY);
    // Tuesday's income: the first two holders are credited in the posting batch; then the
    // writer dies.
    post(&mut books, friday + 4);
    let credited = |books: &ProductBooks| -> Vec<u128> {
        people[1..]
            .iter()
            .map(|h| {
                books
                    .core
                    .ledger()
                    .account(units_account(*h, &fund))
                    .map_or(0, |a| a.credits_posted - a.debits_posted)
            })
            .collect()
    };
    let before = credited(&books);
    let earned = |units: &[u128]| -> Vec<u128> {
        units
            .iter()
            .enumerate()
            .map(|(n, u)| u - (50_000_00 + n as u128))
            .collect()
    };
    assert_eq!(
        earned(&before),
        [4_65, 4_65, 0, 0, 0],
        "two holders credited before the crash"
    );
    let mut books = books.restart(&db);
    // The restarted writer picks the accrual up where it stopped.
    books.tick(SECOND);
    books.tick(SECOND);
    // 50,000.0n units earn 4.65 each, once.
    assert_eq!(earned(&credited(&books)), [4_65; 5]);
    let fund_now = books.core.fund(fund.id).expect("the fund");
    assert_eq!(fund_now.accrued_through, friday + 4);
    assert!(fund_now.accrual.is_none());
    let issuer = books
        .core
        .ledger()
        .account(issuer_account(&fund))
        .expect("issuer");
    let money = books
        .core
        .ledger()
        .account(fund_account(fund.id, Currency::CNY))
        .expect("fund");
    assert_eq!(
        i128::try_from(issuer.debits_posted - issuer.credits_posted).expect("fits"),
        money.available(),
        "units outstanding equal the fund's money"
    );
    assert!(books.store.trial_balance().expect("trial balance").holds());
    // A holiday calendar set while a subscription and a payout are open moves their days,
    // in the store as in memory (each run checks that the store loads what memory holds).
    let holder = people[1];
    let Some(Outcome::Subscription(bought)) = books.run(
        SECOND,
        ProductCommand::Fund(FundCommand::Subscribe {
            fund_id: fund.id,
            holder_id: holder,
            amount: cny(1_000_00),
        }),
    ) else {
        panic!("a subscription")
    };
    let Some(Outcome::Redemption(redeemed)) = books.run(
        SECOND,
        ProductCommand::Fund(FundCommand::Redeem {
            fund_id: fund.id,
            holder_id: holder,
            amount: cny(1_000_00),
            instant: false,
        }),
    ) else {
        panic!("a redemption")
    };
    let holidays: Vec<i64> = (bought.confirm_day..bought.confirm_day + 3).collect();
    books.run(
        SECOND,
        ProductCommand::Fund(FundCommand::SetHolidays { days: holidays }),
    );
    let later = |day: Option<i64>| day.is_some_and(|d| d > bought.confirm_day);
    assert!(later(
        books.core.subscription(bought.id).map(|s| s.confirm_day)
    ));
    assert!(later(books.core.redemption(redeemed.id).map(|r| r.pay_day)));
}

fn products_load_back_as_memory_holds_them(backend: Backend) {
    use formica_core::merchant::{MerchantCommand, MerchantProfile};
    use formica_core::trade::{NewTrade, TradeCommand};
    use formica_core::wallet::{Level, WalletCommand};
    use formica_core::{Currency, Id, Money, ProductCommand};
    let db = backend.fresh();
    let mut store = db.open();
    let core = Core::from_loaded(store.load().expect("load")).expect("fresh");
    let mut books = ProductBooks {
        core,
        store,
        now: 1_800_000_000 * SECOND,
    };
    let cny = |minor| Money::new(minor, Currency::CNY);
    let wallet = |command| ProductCommand::Wallet(command);
    let trade = |command| ProductCommand::Trade(command);
    let (alice, bob, shop) = (Id(1), Id(2), Id(3));
    for user in [alice, bob, shop] {
        books.run(
            SECOND,
            wallet(WalletCommand::OpenWallet {
                user_id: user,
                currency: Currency::CNY,
            }),
        );
    }
    books.run(
        SECOND,
        wallet(WalletCommand::SetLevel {
            user_id: bob,
            level: Level::Verified,
        }),
    );
    for user in [alice, bob] {
        let Some(Outcome::Movement(top_up)) = books.run(
            SECOND,
            wallet(WalletCommand::StartTopUp {
                user_id: user,
                amount: cny(100_000),
                card_id: Id(9),
            }),
        ) else {
            panic!("a movement")
        };
        books.run(
            SECOND,
            wallet(WalletCommand::SettleMovement {
                movement_id: top_up.id,
                succeeded: true,
                failure: None,
            }),
        );
    }
    // A withdrawal left waiting for the bank, and a transfer that counts against a limit.
    books.run(
        SECOND,
        wallet(WalletCommand::StartWithdrawal {
            user_id: alice,
            amount: cny(5_000),
            card_id: Id(9),
        }),
    );
    books.run(
        SECOND,
        wallet(WalletCommand::Transfer {
            from_user_id: bob,
            to_user_id: alice,
            amount: cny(700),
            note: "tea".into(),
        }),
    );
    // Trades in every open state, one closed and one finished.
    let mut ids = Vec::new();
    for n in 0..6 {
        let Some(Outcome::Trade(t)) = books.run(
            SECOND,
            trade(TradeCommand::Create {
                seller_id: shop,
                buyer_id: None,
                out_trade_no: format!("N-{n}"),
                subject: "pot".into(),
                amount: cny(1_000 + n),
            }),
        ) else {
            panic!("a trade")
        };
        ids.push(t.id);
    }
    for id in &ids[1..] {
        books.run(
            SECOND,
            trade(TradeCommand::Pay {
                trade_id: *id,
                buyer_id: alice,
            }),
        );
    }
    for id in &ids[2..] {
        books.run(
            SECOND,
            trade(TradeCommand::Ship {
                trade_id: *id,
                seller_id: shop,
                tracking: "SF".into(),
            }),
        );
    }
    for id in &ids[3..] {
        books.run(
            SECOND,
            trade(TradeCommand::RequestRefund {
                trade_id: *id,
                buyer_id: alice,
                amount: cny(100),
                reason: "dent".into(),
            }),
        );
    }
    books.run(
        SECOND,
        trade(TradeCommand::AnswerRefund {
            trade_id: ids[4],
            seller_id: shop,
            agree: false,
        }),
    );
    books.run(
        SECOND,
        trade(TradeCommand::AnswerRefund {
            trade_id: ids[5],
            seller_id: shop,
            agree: true,
        }),
    );
    books.run(
        SECOND,
        trade(TradeCommand::ConfirmReceipt {
            trade_id: ids[5],
            buyer_id: alice,
        }),
    );
    books.run(
        SECOND,
        trade(TradeCommand::Close {
            trade_id: ids[0],
            seller_id: shop,
        }),
    );
    // A merchant: an unpaid trade, a till payment partly refunded, a payout; its takings are
    // settled by the long timer below.
    let merchant = |command| ProductCommand::Merchant(command);
    let Some(Outcome::Merchant(m)) = books.run(
        SECOND,
        merchant(MerchantCommand::Open(Box::new(MerchantProfile {
            owner_id: shop,
            name: "Tea House".into(),
            contact: "tea@example.com".into(),
            category: "food".into(),
            country: "CN".into(),
            currency: Currency::CNY,
            card_id: Id(9),
        }))),
    ) else {
        panic!("a merchant")
    };
    let gateway_trade = |n: &str, amount| {
        let mut new = NewTrade::escrow(m.id, None, n, "tea", cny(amount));
        new.escrow = false;
        new.app_id = Some("2021000000000001".into());
        new.notify_url = Some("http://127.0.0.1:9/notify".into());
        Box::new(new)
    };
    books.run(
        SECOND,
        merchant(MerchantCommand::CreateTrade(gateway_trade("G-1", 880))),
    );
    let Some(Outcome::Trade(paid)) = books.run(
        SECOND,
        merchant(MerchantCommand::Charge {
            trade: gateway_trade("G-2", 10_000),
            buyer_id: alice,
            code: Some(formica_core::merchant::CodeUse {
                code: "281234567890123456".into(),
                expires_at: u64::MAX,
            }),
        }),
    ) else {
        panic!("a paid trade")
    };
    books.run(
        SECOND,
        merchant(MerchantCommand::Refund {
            merchant_id: m.id,
            trade_id: paid.id,
            out_request_no: "R-1".into(),
            amount: cny(2_500),
            reason: "one cup".into(),
        }),
    );
    books.run(
        SECOND,
        merchant(MerchantCommand::Payout {
            merchant_id: m.id,
            to_user_id: bob,
            amount: cny(100),
            note: "prize".into(),
        }),
    );
    // Refused commands change nothing, in memory or in the store.
    books.run(
        SECOND,
        wallet(WalletCommand::Transfer {
            from_user_id: alice,
            to_user_id: bob,
            amount: cny(10_000_000),
            note: String::new(),
        }),
    );
    books.run(
        SECOND,
        trade(TradeCommand::Pay {
            trade_id: ids[0],
            buyer_id: bob,
        }),
    );
    // Timers: the refund answer of ids[3] and the confirmation of ids[2], and the bank timeout.
    books.run(
        30 * 24 * 3600 * SECOND,
        wallet(WalletCommand::OpenWallet {
            user_id: bob,
            currency: Currency::CNY,
        }),
    );
    // Still open: the paid trade never shipped, the one whose partial refund was agreed by its
    // timer (its confirmation timer resumed), and the dispute.
    use formica_core::trade::TradeStatus;
    let open: Vec<_> = books
        .core
        .export_products()
        .open_trades
        .iter()
        .map(|t| (t.id, t.status))
        .collect();
    assert_eq!(
        open,
        [
            (ids[1], TradeStatus::WaitSellerSend),
            (ids[3], TradeStatus::WaitBuyerConfirm),
            (ids[4], TradeStatus::Dispute),
        ]
    );
    // The merchant's paid trade is in the store, not in memory, until something names it.
    let stored = books
        .store
        .read_sql(|sql| formica_store::trade::trades_by_id(sql, &[paid.id, Id(42)]))
        .expect("read");
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].status, TradeStatus::TradeSuccess);
    assert_eq!(stored[0].refunded, cny(2_500));
    // The merchant's takings were settled: one payout waits for the bank.
    let movements = books.core.export_products().open_movements;
    assert_eq!(movements.len(), 1);
    assert_eq!(movements[0].user_id, m.id);
    // Paid 100.00, refunded 25.00, fees 0.60 - 0.15, paid out 1.00.
    assert_eq!(movements[0].amount, cny(10_000 - 2_500 - 45 - 100));
}

/// The daily credit run saves its cursor with every chunk: a writer that dies half way
/// resumes after the last person scored, and the scores come out as an uninterrupted run's.
/// Consents (granted, checked, withdrawn) load back as memory holds them.
fn a_crash_in_the_middle_of_the_credit_run_resumes_it_and_consents_persist(backend: Backend) {
    use formica_core::credit::{CreditCommand, Dimension};
    use formica_core::merchant::{MerchantCommand, MerchantProfile};
    use formica_core::{Currency, Id, ProductCommand};
    const DAY: u64 = 24 * 3600 * SECOND;
    let db = backend.fresh();
    let mut books = ProductBooks::start(&db);
    let people: Vec<Id> = (1..=5).map(Id).collect();
    for user in &people {
        books.person(*user, 0);
    }
    let Some(Outcome::Merchant(shop)) = books.run(
        SECOND,
        ProductCommand::Merchant(MerchantCommand::Open(Box::new(MerchantProfile {
            owner_id: people[0],
            name: "Bikes".into(),
            contact: "bikes@example.com".into(),
            category: "rental".into(),
            country: "CN".into(),
            currency: Currency::CNY,
            card_id: Id(7),
        }))),
    ) else {
        panic!("a merchant")
    };
    for person in &people[1..3] {
        books.run(
            SECOND,
            ProductCommand::Credit(CreditCommand::Grant {
                person_id: *person,
                merchant_id: shop.id,
            }),
        );
    }
    books.run(
        SECOND,
        ProductCommand::Credit(CreditCommand::Check {
            merchant_id: shop.id,
            person_id: people[1],
            threshold: 500,
        }),
    );
    books.run(
        SECOND,
        ProductCommand::Credit(CreditCommand::Withdraw {
            person_id: people[2],
            merchant_id: shop.id,
        }),
    );
    let identity = |books: &ProductBooks| -> Vec<u16> {
        people
            .iter()
            .map(|p| {
                books.core.credit(*p).expect("a record").score().dimensions
                    [Dimension::Identity as usize]
                    .points
            })
            .collect()
    };
    // Forty days on: the run's first chunk scores two people, then the writer dies.
    books.tick(40 * DAY);
    assert_eq!(identity(&books), [15, 15, 0, 0, 0]);
    let mut books = books.restart(&db);
    assert_eq!(identity(&books), [15, 15, 0, 0, 0], "as written");
    assert!(books.core.credit_run().running);
    books.tick(SECOND);
    books.tick(SECOND);
    assert_eq!(identity(&books), [15; 5]);
    assert!(!books.core.credit_run().running);
    let checked = books.core.consent(people[1], shop.id).expect("a consent");
    assert_eq!((checked.checks, checked.stands()), (1, true));
    let withdrawn = books.core.consent(people[2], shop.id).expect("a consent");
    assert!(!withdrawn.stands());
    let read = books
        .store
        .read_sql(|sql| formica_store::credit::consents_to_merchant(sql, shop.id))
        .expect("read");
    assert_eq!(read.len(), 2);
}

/// Regression (found by `formica sim`): a payment code used by a batch stays used after a
/// restart until it expires, so a request that read it as valid before that batch is refused
/// after the reload (a commit written but reported failed, a reload, and the same code paid
/// twice).
#[allow(
    clippy::inconsistent_digit_grouping,
    reason = "amounts in fen read as yuan_fen: 100_00 is 100.00 yuan"
)]
fn a_used_payment_code_stays_used_after_a_restart(backend: Backend) {
    use formica_core::deposit::{HoldCommand, NewFreeze};
    use formica_core::merchant::CodeUse;
    use formica_core::{Currency, Id, Money, ProductCommand, Refusal};
    let db = backend.fresh();
    let mut books = ProductBooks::start(&db);
    books.person(Id(1), 0);
    books.person(Id(2), 500_00);
    let shop = books.rental_shop("Power banks");
    let expires_at = books.now + 60 * SECOND;
    let freeze = |no: &str| {
        ProductCommand::Hold(HoldCommand::Freeze(Box::new(NewFreeze {
            merchant_id: shop.id,
            person_id: Id(2),
            code: Some(CodeUse {
                code: "281234567890123456".into(),
                expires_at,
            }),
            out_order_no: no.into(),
            out_request_no: no.into(),
            title: "a power bank".into(),
            amount: Money::new(99_00, Currency::CNY),
            threshold: None,
            notify: None,
        })))
    };
    let Some(Outcome::Hold(_)) = books.run(SECOND, freeze("P-1")) else {
        panic!("frozen")
    };
    let mut books = books.restart(&db);
    assert_eq!(
        books.try_run(SECOND, freeze("P-2")),
        Err(Refusal::PaymentCodeUsed)
    );
    // Once expired it is forgotten, by memory and by the store alike.
    books.now += 120 * SECOND;
    let mut books = books.restart(&db);
    assert_eq!(
        books.try_run(SECOND, freeze("P-3")),
        Err(Refusal::PaymentCodeUsed)
    );
}

/// Regression (found by `formica sim`): a frozen hold's pending transfer was not saved, so a
/// writer started again could not charge or release it.
#[allow(
    clippy::inconsistent_digit_grouping,
    reason = "amounts in fen read as yuan_fen: 100_00 is 100.00 yuan"
)]
fn a_frozen_deposit_is_charged_after_a_restart(backend: Backend) {
    use formica_core::deposit::{HoldCommand, HoldStatus};
    use formica_core::{Currency, Id, Money, ProductCommand};
    let db = backend.fresh();
    let mut books = ProductBooks::start(&db);
    let cny = |minor| Money::new(minor, Currency::CNY);
    books.person(Id(1), 0);
    books.person(Id(2), 500_00);
    let shop = books.rental_shop("Cars");
    let Some(Outcome::Hold(hold)) = books.run(
        SECOND,
        ProductCommand::Hold(HoldCommand::Request {
            merchant_id: shop.id,
            person_id: Id(2),
            out_order_no: "C-1".into(),
            title: "a car".into(),
            amount: cny(300_00),
            threshold: None,
        }),
    ) else {
        panic!("a hold")
    };
    let Some(Outcome::Hold(frozen)) = books.run(
        SECOND,
        ProductCommand::Hold(HoldCommand::Authorize {
            hold_id: hold.id,
            person_id: Id(2),
        }),
    ) else {
        panic!("authorized")
    };
    assert_eq!(frozen.status, HoldStatus::Frozen);
    let mut books = books.restart(&db);
    let Some(Outcome::Hold(charged)) = books.run(
        SECOND,
        ProductCommand::Hold(HoldCommand::Charge {
            hold_id: hold.id,
            merchant_id: shop.id,
            amount: cny(120_00),
            out_trade_no: Some("RENT-7".into()),
        }),
    ) else {
        panic!("charged after the restart")
    };
    assert_eq!(charged.status, HoldStatus::Closed);
    assert_eq!(charged.charge_no.as_deref(), Some("RENT-7"));
    let stored = books
        .store
        .read_sql(|sql| formica_store::credit::hold(sql, hold.id))
        .expect("read")
        .expect("the hold");
    assert_eq!(
        stored, charged,
        "the hold's row is the hold, charge number and all"
    );
    let wallet = books
        .core
        .ledger()
        .account(formica_core::wallet::wallet_account(Id(2), Currency::CNY))
        .expect("a wallet");
    assert_eq!((wallet.available(), wallet.debits_pending), (380_00, 0));
}

/// A credit line, a trade paid from it, a statement: each loads back as memory holds it
/// (`ProductBooks::run` compares after every command), and after a restart a refund of the
/// trade still goes back to the line.
#[allow(
    clippy::inconsistent_digit_grouping,
    reason = "amounts in fen read as yuan_fen: 100_00 is 100.00 yuan"
)]
fn a_credit_line_its_purchases_and_the_policy_survive_a_restart(backend: Backend) {
    use formica_core::credit_line::CreditLineCommand;
    use formica_core::deposit::HoldCommand;
    use formica_core::trade::TradeCommand;
    use formica_core::wallet::{Level, WalletCommand};
    use formica_core::{Currency, Id, Money, ProductCommand};
    const DAY: u64 = 24 * 3600 * SECOND;
    let db = backend.fresh();
    let mut books = ProductBooks::start(&db);
    let cny = |minor| Money::new(minor, Currency::CNY);
    let (seller, buyer) = (Id(1), Id(2));
    books.person(seller, 0);
    books.person(buyer, 20_000_00);
    books.run(
        SECOND,
        ProductCommand::Wallet(WalletCommand::SetLevel {
            user_id: buyer,
            level: Level::Verified,
        }),
    );
    books.run(
        SECOND,
        ProductCommand::Hold(HoldCommand::AddFunding {
            amount: cny(10_000_00),
        }),
    );
    // The daily run counts the balance (chunks of two: a few batches).
    books.tick(DAY);
    for _ in 0..3 {
        books.tick(SECOND);
    }
    let Some(Outcome::CreditLine(_)) = books.run(
        SECOND,
        ProductCommand::CreditLine(CreditLineCommand::Open {
            person_id: buyer,
            due_day: 9,
        }),
    ) else {
        panic!(
            "a line, with a score of {:?}",
            books.core.credit(buyer).map(|c| c.total())
        )
    };
    let Some(Outcome::Trade(trade)) = books.run(
        SECOND,
        ProductCommand::Trade(TradeCommand::Create {
            seller_id: seller,
            buyer_id: None,
            out_trade_no: "L1".into(),
            subject: "a lamp".into(),
            amount: cny(300_00),
        }),
    ) else {
        panic!("a trade")
    };
    let Some(Outcome::Trade(paid)) = books.run(
        SECOND,
        ProductCommand::CreditLine(CreditLineCommand::PayTrade {
            trade_id: trade.id,
            buyer_id: buyer,
        }),
    ) else {
        panic!("paid from the line")
    };
    assert!(paid.credit.is_some());
    // The operator's rules too.
    let policy = formica_core::credit_line::CreditPolicy {
        minimum_per_mille: 150,
        debt_days: 10,
        ..Default::default()
    };
    let Some(Outcome::CreditPolicy(_)) = books.run(
        SECOND,
        ProductCommand::CreditLine(CreditLineCommand::SetPolicy(Box::new(policy.clone()))),
    ) else {
        panic!("the policy set")
    };
    let mut books = books.restart(&db);
    assert_eq!(
        books.core.credit_line(buyer).expect("a line").escrowed,
        cny(300_00)
    );
    assert_eq!(books.core.credit_policy(), &policy);
    books.run(
        SECOND,
        ProductCommand::Trade(TradeCommand::RequestRefund {
            trade_id: trade.id,
            buyer_id: buyer,
            amount: cny(100_00),
            reason: "scratched".into(),
        }),
    );
    books.run(
        SECOND,
        ProductCommand::Trade(TradeCommand::AnswerRefund {
            trade_id: trade.id,
            seller_id: seller,
            agree: true,
        }),
    );
    let line = books.core.credit_line(buyer).expect("a line").clone();
    assert_eq!((line.escrowed, line.unbilled), (cny(200_00), cny(0)));
    books.run(
        SECOND,
        ProductCommand::Trade(TradeCommand::Ship {
            trade_id: trade.id,
            seller_id: seller,
            tracking: "SF2".into(),
        }),
    );
    books.run(
        SECOND,
        ProductCommand::Trade(TradeCommand::ConfirmReceipt {
            trade_id: trade.id,
            buyer_id: buyer,
        }),
    );
    let line = books.core.credit_line(buyer).expect("a line").clone();
    assert_eq!(
        (line.escrowed, line.unbilled),
        (cny(0), cny(200_00)),
        "received"
    );
    let wallet = books
        .core
        .ledger()
        .account(formica_core::wallet::wallet_account(buyer, Currency::CNY))
        .expect("a wallet");
    assert_eq!(wallet.available(), 20_000_00, "the refund went to the line");
    // To the next month's statement, then a restart: it reads back.
    books.tick(40 * DAY);
    books.tick(SECOND);
    let mut books = books.restart(&db);
    books.tick(SECOND);
    let statements = books
        .store
        .read_sql(|sql| formica_store::credit::statements(sql, buyer, 10))
        .expect("read");
    assert_eq!(statements.len(), 1);
    assert_eq!(statements[0].principal, cny(200_00));
    let line = books.core.credit_line(buyer).expect("a line");
    assert_eq!(line.statement.as_ref(), Some(&statements[0]));
}
