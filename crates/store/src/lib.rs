//! Formica's system of record: the SQL schema and its migrations, the write of one batch's
//! effects in one transaction, `load()` of the core's state at start, and the read queries.
//! SQLite (one file, embedded default) and PostgreSQL (servers) sit behind one interface and
//! pass one conformance suite.
//!
//! The interface is synchronous: the engine's writer is one thread that owns its store, and
//! blocking there is what makes "answered only after the commit" simple and exact.

pub mod credit;
pub mod fund;
pub mod merchant;
pub mod people;
mod postgres;
mod products;
mod replay;
pub mod sql;
mod sqlite;
mod temporary;
pub mod trade;
pub mod wallet;
pub mod webhook;

use std::collections::BTreeMap;
use std::path::PathBuf;

use formica_core::{Checkpoint, Effects, Loaded};
use formica_ledger::{Account, InvariantViolation, LedgerTotals, PendingStatus, Transfer};

/// The schema version this build migrates to (the last migration of each database).
pub const SCHEMA_VERSION: i64 = 8;

pub use crate::postgres::PostgresStore;
pub use crate::sqlite::SqliteStore;
pub use crate::temporary::{TemporaryDatabase, with_database};

/// Largest page of a history query.
pub const HISTORY_PAGE_MAX: u32 = 1000;

/// Where the books are kept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Location {
    /// A directory holding `formica.sqlite3` and `balances.sqlite3` (created if missing).
    Sqlite(PathBuf),
    /// A PostgreSQL connection URL.
    Postgres(String),
}

impl Location {
    /// The file the SQLite store uses inside a data directory.
    pub fn sqlite_file(data_dir: &std::path::Path) -> PathBuf {
        data_dir.join("formica.sqlite3")
    }

    /// The SQLite file the checkpoints write account balances to: a file of their own, so
    /// that a thread beside the writer can write them without taking the books' write lock.
    pub fn sqlite_balances_file(data_dir: &std::path::Path) -> PathBuf {
        data_dir.join("balances.sqlite3")
    }
}

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite reported an error.
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// PostgreSQL reported an error or the connection failed.
    #[error("postgres: {0}")]
    Postgres(#[from] ::postgres::Error),
    /// The data directory could not be created.
    #[error("data directory {path}: {source}")]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// What went wrong.
        source: std::io::Error,
    },
    /// A value does not fit the column that keeps it (amounts and balances are 64-bit).
    #[error("{what} {value} does not fit in a signed 64-bit column")]
    TooLarge {
        /// Which value.
        what: &'static str,
        /// The value.
        value: u128,
    },
    /// A row holds something no Formica version writes.
    #[error("corrupt row: {0}")]
    Corrupt(String),
    /// The loaded books break an invariant.
    #[error("the stored books are inconsistent: {0}")]
    Inconsistent(#[from] InvariantViolation),
    /// Another process is the books' writer (one writer per database, by design).
    #[error("another process is already the writer of these books")]
    AnotherWriter,
    /// A row with this key already exists (a unique constraint).
    #[error("already exists: {0}")]
    Conflict(String),
    /// The database was written by a newer Formica.
    #[error("the database schema is at version {found}, newer than this Formica ({known})")]
    SchemaTooNew {
        /// Version found in the database.
        found: i64,
        /// Newest version this build knows.
        known: i64,
    },
}

/// A page of an account's transfer history, newest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HistoryQuery {
    /// The account.
    pub account_id: u128,
    /// Only transfers at or after this timestamp (nanoseconds).
    pub from: Option<u64>,
    /// Only transfers before this timestamp; also the cursor: pass the last timestamp of the
    /// previous page to get the next one.
    pub before: Option<u64>,
    /// Page size, 1 to `HISTORY_PAGE_MAX`.
    pub limit: u32,
}

/// The trial balance of the stored books.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrialBalance {
    /// Per ledger, the four balances summed over every account.
    pub ledgers: BTreeMap<u32, LedgerTotals>,
    /// Accounts whose balance row (as of the last checkpoint) differs from the sum of their
    /// transfers up to it.
    pub mismatched_accounts: Vec<AccountMismatch>,
    /// Why the books brought forward from the checkpoint break an invariant, if they do.
    pub books_error: Option<String>,
}

impl TrialBalance {
    /// Whether every ledger balances and every account agrees with its transfers.
    pub fn holds(&self) -> bool {
        self.ledgers.values().all(LedgerTotals::balanced)
            && self.mismatched_accounts.is_empty()
            && self.books_error.is_none()
    }
}

/// An account whose stored balances differ from what its transfers add up to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccountMismatch {
    /// The account id.
    pub account_id: u128,
    /// Balances in the accounts table (zero if the account row is missing), in the order
    /// debits_pending, debits_posted, credits_pending, credits_posted.
    pub stored: [u128; 4],
    /// The same four balances summed from the transfers.
    pub from_transfers: [u128; 4],
}

/// An open store of either kind.
#[derive(Debug)]
pub enum Store {
    /// The embedded default (boxed: its connections make it ten times the other's size).
    Sqlite(Box<SqliteStore>),
    /// The server database.
    Postgres(PostgresStore),
}

/// Calls the same method on whichever store this is.
macro_rules! dispatch {
    ($self:ident, $store:ident => $call:expr) => {
        match $self {
            Store::Sqlite($store) => $call,
            Store::Postgres($store) => $call,
        }
    };
}

impl Store {
    /// Opens (creating if needed) and migrates the store at `location`.
    pub fn open(location: &Location) -> Result<Store, StoreError> {
        Ok(match location {
            Location::Sqlite(dir) => Store::Sqlite(Box::new(SqliteStore::open(dir)?)),
            Location::Postgres(url) => Store::Postgres(PostgresStore::open(url)?),
        })
    }

    /// A connection for reads and plain writes beside the running engine, which has already
    /// created and migrated the schema (for SQLite: with a small page cache, since a server
    /// keeps many of them).
    pub fn open_reader(location: &Location) -> Result<Store, StoreError> {
        Ok(match location {
            Location::Sqlite(dir) => Store::Sqlite(Box::new(SqliteStore::open_reader(dir)?)),
            Location::Postgres(url) => Store::Postgres(PostgresStore::open(url)?),
        })
    }

    /// The books as stored (the last checkpoint brought forward by the transfers after it)
    /// and the head of every account's history. Checked when imported into a ledger.
    pub fn load(&mut self) -> Result<Loaded, StoreError> {
        let mut loaded = dispatch!(self, store => store.read(replay::load))?;
        loaded.products = self.read_sql(products::load)?;
        Ok(loaded)
    }

    /// Runs `work` in one read transaction: every query sees the same commit.
    pub fn read_sql<T>(
        &mut self,
        work: impl FnOnce(&mut dyn sql::Sql) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        dispatch!(self, store => store.read_sql(work))
    }

    /// Runs `work` in one write transaction, committed if it returns `Ok`. For what moves no
    /// money (people's credentials, sessions, cards, webhooks); money moves through the engine.
    pub fn write_sql<T>(
        &mut self,
        work: impl FnOnce(&mut dyn sql::Sql) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        dispatch!(self, store => store.write_sql(work))
    }

    /// Stored transfers with these ids, with their status when pending.
    pub fn lookup_transfers(
        &mut self,
        ids: &[u128],
    ) -> Result<Vec<(Transfer, Option<PendingStatus>)>, StoreError> {
        dispatch!(self, store => store.read(|reader| reader.transfers_by_id(ids)))
    }

    /// The idempotency keys among `keys` that earlier batches saved, with their requests'
    /// fingerprints and outcomes.
    pub fn saved_keys(
        &mut self,
        keys: &[(formica_core::Id, String)],
    ) -> Result<Vec<wallet::SavedKey>, StoreError> {
        self.read_sql(|sql| wallet::saved_keys(sql, keys))
    }

    /// Writes one batch's effects in one transaction; durable when this returns `Ok`.
    pub fn commit(&mut self, effects: &Effects) -> Result<(), StoreError> {
        dispatch!(self, store => store.commit(effects))
    }

    /// Writes the balances of a checkpoint in one transaction. Until it returns `Ok`, the
    /// balances after the previous checkpoint come from the transfers.
    pub fn checkpoint(&mut self, checkpoint: &Checkpoint) -> Result<(), StoreError> {
        dispatch!(self, store => store.checkpoint(checkpoint))
    }

    /// Copies what the books' write-ahead log holds into the database file, without waiting
    /// for (or making wait) the writer or the readers, and returns the log's frames and how
    /// many of them the file now has. SQLite's writer would otherwise do the copying in its
    /// commits; the checkpoint thread calls this between checkpoints. PostgreSQL's server
    /// does its own: `(0, 0)`.
    pub fn copy_log(&mut self) -> Result<(u64, u64), StoreError> {
        match self {
            Store::Sqlite(store) => store.copy_log(),
            Store::Postgres(_) => Ok((0, 0)),
        }
    }

    /// Makes this store the books' only writer, or answers `AnotherWriter`: a lock file for
    /// SQLite, a session advisory lock for PostgreSQL, both released if the process dies.
    /// Readers (reports, the trial balance) need no claim.
    pub fn claim_writer(&mut self) -> Result<(), StoreError> {
        dispatch!(self, store => store.claim_writer())
    }

    /// Another connection to the same store, for the thread that writes checkpoints beside
    /// the batches. Its checkpoints do not wait for the books' write lock: PostgreSQL takes
    /// concurrent writers, and SQLite's balances are a file of their own.
    pub fn connect_again(&self) -> Result<Store, StoreError> {
        match self {
            Store::Sqlite(store) => Ok(Store::Sqlite(Box::new(store.connect_again()?))),
            Store::Postgres(store) => Ok(Store::Postgres(store.connect_again()?)),
        }
    }

    /// The stored account with this id, with its balances as they stand now.
    pub fn account(&mut self, id: u128) -> Result<Option<Account>, StoreError> {
        dispatch!(self, store => store.read(|reader| replay::account(reader, id)))
    }

    /// Several stored accounts, read in one transaction so that their balances are of the
    /// same moment (a fund's units against its money, say).
    pub fn accounts(&mut self, ids: &[u128]) -> Result<Vec<Option<Account>>, StoreError> {
        dispatch!(self, store => store.read(|reader| {
            ids.iter().map(|id| replay::account(reader, *id)).collect()
        }))
    }

    /// A page of an account's transfers, newest first.
    pub fn history(&mut self, query: &HistoryQuery) -> Result<Vec<Transfer>, StoreError> {
        let limit = query.limit.clamp(1, HISTORY_PAGE_MAX);
        let query = HistoryQuery { limit, ..*query };
        dispatch!(self, store => store.read(|reader| replay::history(reader, &query)))
    }

    /// Per ledger totals, every checkpointed account checked against the sum of its
    /// transfers, and the books brought forward checked for every invariant.
    pub fn trial_balance(&mut self) -> Result<TrialBalance, StoreError> {
        dispatch!(self, store => store.read(replay::trial_balance))
    }
}

/// Per account: the four balances summed from the transfers.
type TransferSums = BTreeMap<u128, [u128; 4]>;

/// Compares stored balances with what the transfers add up to.
fn compare(accounts: &[Account], sums: &TransferSums) -> TrialBalance {
    let mut balance = TrialBalance::default();
    let mut seen = std::collections::HashSet::with_capacity(accounts.len());
    for account in accounts {
        let stored = [
            account.debits_pending,
            account.debits_posted,
            account.credits_pending,
            account.credits_posted,
        ];
        let from_transfers = sums.get(&account.id).copied().unwrap_or_default();
        if stored != from_transfers {
            balance.mismatched_accounts.push(AccountMismatch {
                account_id: account.id,
                stored,
                from_transfers,
            });
        }
        seen.insert(account.id);
    }
    for (id, from_transfers) in sums {
        if !seen.contains(id) && *from_transfers != [0; 4] {
            balance.mismatched_accounts.push(AccountMismatch {
                account_id: *id,
                stored: [0; 4],
                from_transfers: *from_transfers,
            });
        }
    }
    balance
}

/// The account columns, in the order both stores read and write them.
const ACCOUNT_COLUMNS: &str = "id, debits_pending, debits_posted, credits_pending, \
    credits_posted, user_data_128, user_data_64, user_data_32, ledger, code, flags, timestamp";

/// The transfer columns, in the order both stores read and write them.
const TRANSFER_COLUMNS: &str = "id, debit_account_id, credit_account_id, amount, pending_id, \
    user_data_128, user_data_64, user_data_32, timeout, ledger, code, flags, timestamp";

/// `columns` with each name prefixed by a table alias (`t.id, t.amount, ...`).
fn prefixed(columns: &str, prefix: &str) -> String {
    columns
        .split(", ")
        .map(|column| format!("{prefix}{column}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Column encodings shared by both stores.
mod column {
    use super::StoreError;

    /// An amount or balance as a signed 64-bit column.
    pub fn amount(what: &'static str, value: u128) -> Result<i64, StoreError> {
        i64::try_from(value).map_err(|_| StoreError::TooLarge { what, value })
    }

    /// A stored amount back; negative values are never written.
    pub fn amount_back(what: &str, value: i64) -> Result<u128, StoreError> {
        u128::try_from(value).map_err(|_| StoreError::Corrupt(format!("negative {what}: {value}")))
    }

    /// Unsigned 64-bit values (timestamps, user data) keep their bits in a signed column.
    pub fn bits(value: u64) -> i64 {
        value as i64
    }

    /// The inverse of `bits`.
    pub fn bits_back(value: i64) -> u64 {
        value as u64
    }

    /// A narrower unsigned value from a wider column.
    pub fn narrow<T: TryFrom<i64>>(what: &str, value: i64) -> Result<T, StoreError> {
        T::try_from(value).map_err(|_| StoreError::Corrupt(format!("{what} out of range: {value}")))
    }

    /// A pending status name back.
    pub fn status(name: &str) -> Result<formica_ledger::PendingStatus, StoreError> {
        formica_ledger::PendingStatus::parse(name)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown pending status {name:?}")))
    }

    /// A total from SQL (summed as exact decimal text) back.
    pub fn total(what: &str, text: Option<String>) -> Result<u128, StoreError> {
        match text {
            None => Ok(0),
            Some(text) => text
                .parse()
                .map_err(|_| StoreError::Corrupt(format!("{what} total {text:?}"))),
        }
    }
}

/// The transfer-sums query, written once for both databases (`{as_of}` is the backend's
/// placeholder for the checkpoint): per account, the four balances its transfers up to the
/// checkpoint add up to. Posted amounts come from single-phase transfers and posts (neither
/// pending nor void); pending amounts from pending transfers still pending at the checkpoint.
const TRANSFER_SUMS_SQL: &str = "
    SELECT account,
           CAST(SUM(debits_pending) AS TEXT), CAST(SUM(debits_posted) AS TEXT),
           CAST(SUM(credits_pending) AS TEXT), CAST(SUM(credits_posted) AS TEXT)
    FROM (
        SELECT t.debit_account_id AS account,
               CASE WHEN (t.flags & 2) <> 0
                     AND (p.settled_at IS NULL OR p.settled_at > {as_of})
                    THEN t.amount ELSE 0 END AS debits_pending,
               CASE WHEN (t.flags & 10) = 0 THEN t.amount ELSE 0 END AS debits_posted,
               0 AS credits_pending, 0 AS credits_posted
        FROM transfers t LEFT JOIN pending_transfers p ON p.id = t.id
        WHERE t.timestamp <= {as_of}
        UNION ALL
        SELECT t.credit_account_id, 0, 0,
               CASE WHEN (t.flags & 2) <> 0
                     AND (p.settled_at IS NULL OR p.settled_at > {as_of})
                    THEN t.amount ELSE 0 END,
               CASE WHEN (t.flags & 10) = 0 THEN t.amount ELSE 0 END
        FROM transfers t LEFT JOIN pending_transfers p ON p.id = t.id
        WHERE t.timestamp <= {as_of}
    ) AS entries
    GROUP BY account";

/// Flags 2 (pending) and 8 (void) are what `TRANSFER_SUMS_SQL` tests with `& 2` and `& 10`.
const _: () = {
    use formica_ledger::TransferFlags;
    assert!(
        TransferFlags::PENDING.bits() == 2
            && TransferFlags::PENDING.bits() | TransferFlags::VOID_PENDING_TRANSFER.bits() == 10,
        "the trial balance query tests the pending flag as 2 and pending or void as 10"
    );
};
