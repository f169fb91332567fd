//! The embedded store: the books in one SQLite file in WAL mode with `synchronous=FULL`, so
//! that a commit that returned survives a power cut, and the balances the checkpoints write in
//! a second file beside it, so that a checkpoint thread writes them while the writer commits
//! (SQLite takes one writer per file). Ids are 16-byte big-endian blobs.

use std::path::Path;

use formica_core::{Checkpoint, Effects, TransferRow};
use formica_ledger::{Account, AccountFlags, PendingStatus, Transfer, TransferFlags};
use rusqlite::{Connection, OptionalExtension, Row, params};

use crate::column::{amount, amount_back, bits, bits_back, narrow, status, total};
use crate::replay::{BooksRow, Reader};
use crate::sql::{Sql, SqliteSql};
use crate::{ACCOUNT_COLUMNS, TRANSFER_COLUMNS, prefixed};
use crate::{Location, StoreError, TRANSFER_SUMS_SQL, TransferSums};

const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("../migrations/sqlite/0001_books.sql")),
    (2, include_str!("../migrations/sqlite/0002_products.sql")),
    (3, include_str!("../migrations/sqlite/0003_merchants.sql")),
    (4, include_str!("../migrations/sqlite/0004_funds.sql")),
    (5, include_str!("../migrations/sqlite/0005_credit.sql")),
    (6, include_str!("../migrations/sqlite/0006_credit_line.sql")),
    (
        7,
        include_str!("../migrations/sqlite/0007_credit_policy.sql"),
    ),
    (8, include_str!("../migrations/sqlite/0008_used_codes.sql")),
];

/// The balances file's schema, by `user_version`.
const BALANCES_MIGRATIONS: &[(i64, &str)] = &[(
    1,
    include_str!("../migrations/sqlite-balances/0001_balances.sql"),
)];

/// Page cache of the connection that writes checkpoints, in KiB: a million changed accounts
/// touch most pages of the balances table.
const BALANCES_CACHE_KIB: i64 = 256 * 1024;

/// Accounts per multi-row upsert of a checkpoint.
const BALANCES_PER_UPSERT: usize = 64;

const _: () = assert!(
    MIGRATIONS[MIGRATIONS.len() - 1].0 == crate::SCHEMA_VERSION,
    "SCHEMA_VERSION is the last migration"
);

/// SQLite page cache per connection, in KiB.
const CACHE_KIB: i64 = 512 * 1024;

/// SQLite page cache of each of the API's reader connections, in KiB.
const READER_CACHE_KIB: i64 = 16 * 1024;

/// WAL pages between automatic checkpoints (SQLite's default is 1,000).
const WAL_CHECKPOINT_PAGES: i64 = 16_384;

/// The books' writer's automatic checkpoints: a backstop, as the checkpoint thread copies the
/// log (`copy_log`) every 100 ms except while it writes balances.
const BOOKS_WAL_CHECKPOINT_PAGES: i64 = 65_536;

/// How long a writer waits for a lock held by another connection before the commit fails.
const BUSY_TIMEOUT_MS: u64 = 5_000;

/// The SQLite store.
#[derive(Debug)]
pub struct SqliteStore {
    connection: Connection,
    /// `balances.sqlite3`: the balances as of the last checkpoint.
    balances: Connection,
    dir: std::path::PathBuf,
    /// Held while this store is the books' writer (the OS releases it if the process dies).
    writer_lock: Option<std::fs::File>,
}

impl SqliteStore {
    /// A connection for reads and plain writes beside the engine (the API's pool): a small
    /// page cache (many of them are open), and the schema must already be there (the engine
    /// migrated it when it started).
    pub fn open_reader(dir: &Path) -> Result<Self, StoreError> {
        Self::open_existing(dir, READER_CACHE_KIB)
    }

    /// Connections to a data directory the writer has opened (and migrated).
    fn open_existing(dir: &Path, balances_cache_kib: i64) -> Result<Self, StoreError> {
        let connection = Connection::open_with_flags(
            Location::sqlite_file(dir),
            rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        connection.busy_timeout(std::time::Duration::from_millis(BUSY_TIMEOUT_MS))?;
        connection.pragma_update(None, "synchronous", "FULL")?;
        connection.pragma_update(None, "cache_size", -READER_CACHE_KIB)?;
        connection.set_prepared_statement_cache_capacity(64);
        let balances = Connection::open_with_flags(
            Location::sqlite_balances_file(dir),
            rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        configure_balances(&balances, balances_cache_kib)?;
        Ok(SqliteStore {
            connection,
            balances,
            dir: dir.to_path_buf(),
            writer_lock: None,
        })
    }

    /// Another store on the same directory, for the thread that writes checkpoints.
    pub(crate) fn connect_again(&self) -> Result<Self, StoreError> {
        Self::open_existing(&self.dir, BALANCES_CACHE_KIB)
    }

    /// Opens `DIR/formica.sqlite3`, creating the directory and the schema as needed.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::DataDir {
            path: dir.to_path_buf(),
            source,
        })?;
        let mut connection = Connection::open(Location::sqlite_file(dir))?;
        connection.busy_timeout(std::time::Duration::from_millis(BUSY_TIMEOUT_MS))?;
        connection.pragma_update(None, "journal_mode", "WAL")?;
        connection.pragma_update(None, "synchronous", "FULL")?;
        // The account and transfer indexes take random inserts; a page cache that holds
        // them keeps commits from re-reading pages (SQLite's default is 2 MiB).
        connection.pragma_update(None, "cache_size", -CACHE_KIB)?;
        // Checkpoint the WAL into the database less often: a hot page (a busy account, the
        // tail of a table) is then copied once per checkpoint instead of once per 4 MiB.
        connection.pragma_update(None, "wal_autocheckpoint", BOOKS_WAL_CHECKPOINT_PAGES)?;
        connection.set_prepared_statement_cache_capacity(64);
        migrate(&mut connection)?;
        let mut balances = Connection::open(Location::sqlite_balances_file(dir))?;
        balances.pragma_update(None, "journal_mode", "WAL")?;
        configure_balances(&balances, BALANCES_CACHE_KIB)?;
        migrate_balances(&mut balances, &connection)?;
        Ok(SqliteStore {
            connection,
            balances,
            dir: dir.to_path_buf(),
            writer_lock: None,
        })
    }

    /// Makes this store the only writer of the books: an exclusive lock on `DIR/formica.lock`.
    pub(crate) fn claim_writer(&mut self) -> Result<(), StoreError> {
        let path = self.dir.join("formica.lock");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|source| StoreError::DataDir {
                path: path.clone(),
                source,
            })?;
        match file.try_lock() {
            Ok(()) => {
                self.writer_lock = Some(file);
                Ok(())
            }
            Err(std::fs::TryLockError::WouldBlock) => Err(StoreError::AnotherWriter),
            Err(std::fs::TryLockError::Error(source)) => Err(StoreError::DataDir { path, source }),
        }
    }

    /// How long a commit waits for a lock another connection holds before it fails.
    pub fn set_busy_timeout(&self, timeout: std::time::Duration) -> Result<(), StoreError> {
        Ok(self.connection.busy_timeout(timeout)?)
    }

    /// Runs `read` inside one read transaction: every query sees the same commit.
    /// The balances file's snapshot is taken first: a checkpoint is written only after its
    /// transfers are committed, so the books read after it hold every transfer it counts.
    pub(crate) fn read<T>(
        &mut self,
        read: impl FnOnce(&mut dyn Reader) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let balances = self.balances.transaction()?;
        let checkpoint: i64 = balances
            .prepare_cached("SELECT timestamp FROM balance_checkpoint")?
            .query_row([], |row| row.get(0))?;
        let tx = self.connection.transaction()?;
        let result = read(&mut SqliteReader {
            tx: &tx,
            balances: &balances,
            checkpoint: bits_back(checkpoint),
        });
        tx.finish()?;
        balances.finish()?;
        result
    }

    /// Runs `work` in one transaction that reads a single snapshot and writes nothing.
    pub(crate) fn read_sql<T>(
        &mut self,
        work: impl FnOnce(&mut dyn Sql) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let tx = self.connection.transaction()?;
        let result = work(&mut SqliteSql(&tx));
        tx.finish()?;
        result
    }

    /// Runs `work` in one write transaction, committed if it returns `Ok`.
    pub(crate) fn write_sql<T>(
        &mut self,
        work: impl FnOnce(&mut dyn Sql) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let tx = self
            .connection
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let result = work(&mut SqliteSql(&tx))?;
        tx.commit()?;
        Ok(result)
    }

    pub(crate) fn commit(&mut self, effects: &Effects) -> Result<(), StoreError> {
        let tx = self
            .connection
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        {
            // Many rows per statement: SQLite's cost is per statement step as much as per row.
            let mut rows = effects.transfers.chunks_exact(TRANSFERS_PER_INSERT);
            let mut insert_many = tx.prepare_cached(&insert_transfers_sql(TRANSFERS_PER_INSERT))?;
            for chunk in rows.by_ref() {
                for (index, row) in chunk.iter().enumerate() {
                    bind_transfer(&mut insert_many, index * TRANSFER_PARAMS, row)?;
                }
                insert_many.raw_execute()?;
            }
            let mut insert_one = tx.prepare_cached(&insert_transfers_sql(1))?;
            for row in rows.remainder() {
                bind_transfer(&mut insert_one, 0, row)?;
                insert_one.raw_execute()?;
            }
            let mut create = tx.prepare_cached(&format!(
                "INSERT INTO accounts ({ACCOUNT_COLUMNS}, last_transfer) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, 0)"
            ))?;
            for a in &effects.accounts {
                create.execute(rusqlite::params_from_iter(account_params(a)?))?;
            }
            let mut pending = tx.prepare_cached(
                "INSERT INTO pending_transfers (id, status, settled_at) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (id) DO UPDATE SET status = excluded.status, \
                 settled_at = excluded.settled_at",
            )?;
            for change in &effects.pending_status {
                pending.execute(params![
                    &change.id.to_be_bytes()[..],
                    change.status.as_str(),
                    change.settled_at.map(bits),
                ])?;
            }
            tx.prepare_cached(
                "INSERT INTO books (singleton, timestamp, transfer_id_max) VALUES (1, ?1, ?2) \
                 ON CONFLICT (singleton) DO UPDATE SET timestamp = excluded.timestamp, \
                 transfer_id_max = excluded.transfer_id_max",
            )?
            .execute(params![
                bits(effects.timestamp),
                &effects.transfer_id_max.to_be_bytes()[..]
            ])?;
            crate::products::write(&mut SqliteSql(&tx), &effects.products)?;
        }
        tx.commit()?;
        Ok(())
    }

    /// `PRAGMA wal_checkpoint(PASSIVE)` of the books' file: (frames in the log, frames
    /// copied into the file).
    pub(crate) fn copy_log(&mut self) -> Result<(u64, u64), StoreError> {
        let (_busy, frames, copied): (i64, i64, i64) =
            self.connection
                .query_row("PRAGMA main.wal_checkpoint(PASSIVE)", [], |row| {
                    Ok((row.get(0)?, row.get(1)?, row.get(2)?))
                })?;
        // -1 where the file is not in WAL mode.
        let count = |frames: i64| u64::try_from(frames).unwrap_or(0);
        Ok((count(frames), count(copied)))
    }

    /// Writes a checkpoint into the balances file, in one transaction of that file: it takes
    /// no lock of the books' file, so batches commit meanwhile.
    pub(crate) fn checkpoint(&mut self, checkpoint: &Checkpoint) -> Result<(), StoreError> {
        let tx = self
            .balances
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        {
            // Sorted by id, so each page of the table is written once; many rows per statement,
            // as for transfers.
            let mut rows = checkpoint.accounts.chunks_exact(BALANCES_PER_UPSERT);
            let mut upsert_many = tx.prepare_cached(&upsert_balances_sql(BALANCES_PER_UPSERT))?;
            for chunk in rows.by_ref() {
                for (index, (account, head)) in chunk.iter().enumerate() {
                    bind_balance(&mut upsert_many, index * BALANCE_PARAMS, account, *head)?;
                }
                upsert_many.raw_execute()?;
            }
            let mut upsert_one = tx.prepare_cached(&upsert_balances_sql(1))?;
            for (account, head) in rows.remainder() {
                bind_balance(&mut upsert_one, 0, account, *head)?;
                upsert_one.raw_execute()?;
            }
            tx.prepare_cached("UPDATE balance_checkpoint SET timestamp = ?1 WHERE timestamp < ?1")?
                .execute([bits(checkpoint.timestamp)])?;
        }
        tx.commit()?;
        Ok(())
    }
}

/// The parameters of one account's row in the balances file.
const BALANCE_PARAMS: usize = 7;

fn upsert_balances_sql(rows: usize) -> String {
    format!(
        "INSERT INTO balances (id, debits_pending, debits_posted, credits_pending, \
         credits_posted, flags, last_transfer) VALUES {} \
         ON CONFLICT (id) DO UPDATE SET debits_pending = excluded.debits_pending, \
         debits_posted = excluded.debits_posted, credits_pending = excluded.credits_pending, \
         credits_posted = excluded.credits_posted, flags = excluded.flags, \
         last_transfer = excluded.last_transfer",
        values_list(rows, BALANCE_PARAMS)
    )
}

/// Binds one account's balances after the first `offset` parameters.
fn bind_balance(
    statement: &mut rusqlite::CachedStatement<'_>,
    offset: usize,
    a: &Account,
    head: u64,
) -> Result<(), StoreError> {
    let at = |param: usize| offset + param;
    statement.raw_bind_parameter(at(1), &a.id.to_be_bytes()[..])?;
    statement.raw_bind_parameter(at(2), amount("debits_pending", a.debits_pending)?)?;
    statement.raw_bind_parameter(at(3), amount("debits_posted", a.debits_posted)?)?;
    statement.raw_bind_parameter(at(4), amount("credits_pending", a.credits_pending)?)?;
    statement.raw_bind_parameter(at(5), amount("credits_posted", a.credits_posted)?)?;
    statement.raw_bind_parameter(at(6), a.flags.bits())?;
    statement.raw_bind_parameter(at(7), bits(head))?;
    Ok(())
}

/// Settings of a connection to the balances file. A checkpoint need not survive a power cut
/// (the transfers it sums are durable in the books' file, and an older checkpoint only means
/// more of them to bring forward), so `synchronous=NORMAL`: WAL mode still keeps the file
/// consistent, and the checkpoint thread saves a sync per checkpoint.
fn configure_balances(connection: &Connection, cache_kib: i64) -> Result<(), StoreError> {
    connection.busy_timeout(std::time::Duration::from_millis(BUSY_TIMEOUT_MS))?;
    connection.pragma_update(None, "synchronous", "NORMAL")?;
    connection.pragma_update(None, "cache_size", -cache_kib)?;
    connection.pragma_update(None, "wal_autocheckpoint", WAL_CHECKPOINT_PAGES)?;
    connection.set_prepared_statement_cache_capacity(16);
    Ok(())
}

/// Creates the balances file's schema. A new file starts as of the books' file's own last
/// checkpoint (0 for new books; for books from before the balances file, the balances its
/// accounts table holds), so it can also be deleted: the books then load from the transfers.
fn migrate_balances(balances: &mut Connection, books: &Connection) -> Result<(), StoreError> {
    let tx = balances.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let current: i64 = tx.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    let known = BALANCES_MIGRATIONS[BALANCES_MIGRATIONS.len() - 1].0;
    if current > known {
        return Err(StoreError::SchemaTooNew {
            found: current,
            known,
        });
    }
    for (version, sql) in BALANCES_MIGRATIONS
        .iter()
        .filter(|(version, _)| *version > current)
    {
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", version)?;
    }
    let books_checkpoint: i64 =
        books.query_row("SELECT timestamp FROM balance_checkpoint", [], |row| {
            row.get(0)
        })?;
    tx.execute(
        "INSERT INTO balance_checkpoint (singleton, timestamp) VALUES (1, ?1) \
         ON CONFLICT (singleton) DO NOTHING",
        [books_checkpoint],
    )?;
    tx.commit()?;
    Ok(())
}

/// Rows per multi-row transfer insert, and the parameters each row takes.
const TRANSFERS_PER_INSERT: usize = 32;
const TRANSFER_PARAMS: usize = 15;

fn insert_transfers_sql(rows: usize) -> String {
    format!(
        "INSERT INTO transfers ({TRANSFER_COLUMNS}, debit_previous, credit_previous) VALUES {}",
        values_list(rows, TRANSFER_PARAMS)
    )
}

/// `(?1, ?2), (?3, ?4)` for `rows` rows of `params` parameters each.
fn values_list(rows: usize, params: usize) -> String {
    let values: Vec<String> = (0..rows)
        .map(|row| {
            let row: Vec<String> = (1..=params)
                .map(|param| format!("?{}", row * params + param))
                .collect();
            format!("({})", row.join(", "))
        })
        .collect();
    values.join(", ")
}

/// Binds one transfer row's parameters after the first `offset` ones.
fn bind_transfer(
    statement: &mut rusqlite::CachedStatement<'_>,
    offset: usize,
    row: &TransferRow,
) -> Result<(), StoreError> {
    let t = &row.transfer;
    let at = |param: usize| offset + param;
    statement.raw_bind_parameter(at(1), &t.id.to_be_bytes()[..])?;
    statement.raw_bind_parameter(at(2), &t.debit_account_id.to_be_bytes()[..])?;
    statement.raw_bind_parameter(at(3), &t.credit_account_id.to_be_bytes()[..])?;
    statement.raw_bind_parameter(at(4), amount("amount", t.amount)?)?;
    statement.raw_bind_parameter(at(5), &t.pending_id.to_be_bytes()[..])?;
    statement.raw_bind_parameter(at(6), &t.user_data_128.to_be_bytes()[..])?;
    statement.raw_bind_parameter(at(7), bits(t.user_data_64))?;
    statement.raw_bind_parameter(at(8), t.user_data_32)?;
    statement.raw_bind_parameter(at(9), t.timeout)?;
    statement.raw_bind_parameter(at(10), t.ledger)?;
    statement.raw_bind_parameter(at(11), t.code)?;
    statement.raw_bind_parameter(at(12), t.flags.bits())?;
    statement.raw_bind_parameter(at(13), bits(t.timestamp))?;
    statement.raw_bind_parameter(at(14), bits(row.debit_previous))?;
    statement.raw_bind_parameter(at(15), bits(row.credit_previous))?;
    Ok(())
}

/// The account columns as parameters, in `ACCOUNT_COLUMNS` order.
fn account_params(a: &Account) -> Result<Vec<Box<dyn rusqlite::ToSql>>, StoreError> {
    Ok(vec![
        Box::new(a.id.to_be_bytes().to_vec()),
        Box::new(amount("debits_pending", a.debits_pending)?),
        Box::new(amount("debits_posted", a.debits_posted)?),
        Box::new(amount("credits_pending", a.credits_pending)?),
        Box::new(amount("credits_posted", a.credits_posted)?),
        Box::new(a.user_data_128.to_be_bytes().to_vec()),
        Box::new(bits(a.user_data_64)),
        Box::new(a.user_data_32),
        Box::new(a.ledger),
        Box::new(a.code),
        Box::new(a.flags.bits()),
        Box::new(bits(a.timestamp)),
    ])
}

/// The reads of one read transaction.
struct SqliteReader<'a> {
    tx: &'a rusqlite::Transaction<'a>,
    balances: &'a rusqlite::Transaction<'a>,
    /// The balances file's checkpoint timestamp, read first.
    checkpoint: u64,
}

impl Reader for SqliteReader<'_> {
    fn books(&mut self) -> Result<BooksRow, StoreError> {
        let row: Option<(i64, Vec<u8>)> = self
            .tx
            .prepare_cached("SELECT timestamp, transfer_id_max FROM books")?
            .query_row([], |row| Ok((row.get(0)?, row.get(1)?)))
            .optional()?;
        Ok(match row {
            Some((timestamp, id_max)) => BooksRow {
                timestamp: bits_back(timestamp),
                transfer_id_max: id_back(&id_max)?,
                checkpoint: self.checkpoint,
            },
            None => BooksRow::default(),
        })
    }

    /// The accounts table, each row's balances replaced by the balances file's where it has
    /// them: both read in id order and merged.
    fn checkpoint_accounts(
        &mut self,
        account: Option<u128>,
    ) -> Result<Vec<(Account, u64)>, StoreError> {
        let id = account.map(|id| id.to_be_bytes().to_vec());
        let (accounts_sql, balances_sql) = match account {
            Some(_) => (
                format!("SELECT {ACCOUNT_COLUMNS}, last_transfer FROM accounts WHERE id = ?1"),
                format!("SELECT {BALANCE_COLUMNS} FROM balances WHERE id = ?1"),
            ),
            None => (
                format!("SELECT {ACCOUNT_COLUMNS}, last_transfer FROM accounts ORDER BY id"),
                format!("SELECT {BALANCE_COLUMNS} FROM balances ORDER BY id"),
            ),
        };
        let mut accounts_statement = self.tx.prepare_cached(&accounts_sql)?;
        let mut balances_statement = self.balances.prepare_cached(&balances_sql)?;
        let (mut rows, mut balance_rows) = match &id {
            Some(id) => (
                accounts_statement.query([id])?,
                balances_statement.query([id])?,
            ),
            None => (accounts_statement.query([])?, balances_statement.query([])?),
        };
        let mut next_balance = balance_rows.next()?.map(balance_from).transpose()?;
        let mut accounts = Vec::new();
        while let Some(row) = rows.next()? {
            let mut account = account_from(row)?;
            let mut head = bits_back(row.get(12)?);
            while let Some((balance, balance_head)) = next_balance
                && balance.id <= account.id
            {
                if balance.id < account.id {
                    return Err(StoreError::Corrupt(format!(
                        "account {} has balances but no row",
                        balance.id
                    )));
                }
                account.debits_pending = balance.debits_pending;
                account.debits_posted = balance.debits_posted;
                account.credits_pending = balance.credits_pending;
                account.credits_posted = balance.credits_posted;
                account.flags = balance.flags;
                head = balance_head;
                next_balance = balance_rows.next()?.map(balance_from).transpose()?;
            }
            accounts.push((account, head));
        }
        if let Some((balance, _)) = next_balance {
            return Err(StoreError::Corrupt(format!(
                "account {} has balances but no row",
                balance.id
            )));
        }
        Ok(accounts)
    }

    fn transfers_after(
        &mut self,
        after: u64,
        account: Option<u128>,
    ) -> Result<Vec<Transfer>, StoreError> {
        let mut statement = self.tx.prepare_cached(&format!(
            "SELECT {TRANSFER_COLUMNS} FROM transfers WHERE timestamp > ?1 \
             AND (?2 IS NULL OR debit_account_id = ?2 OR credit_account_id = ?2) \
             ORDER BY timestamp"
        ))?;
        let mut rows = statement.query(params![
            bits(after),
            account.map(|id| id.to_be_bytes().to_vec())
        ])?;
        let mut transfers = Vec::new();
        while let Some(row) = rows.next()? {
            transfers.push(transfer_from(row, 0)?);
        }
        Ok(transfers)
    }

    fn expiries_after(&mut self, after: u64) -> Result<Vec<(u64, u128)>, StoreError> {
        let mut statement = self.tx.prepare_cached(
            "SELECT settled_at, id FROM pending_transfers \
             WHERE status = 'expired' AND settled_at > ?1",
        )?;
        let mut rows = statement.query([bits(after)])?;
        let mut expiries = Vec::new();
        while let Some(row) = rows.next()? {
            expiries.push((bits_back(row.get(0)?), id_at(row, 1)?));
        }
        Ok(expiries)
    }

    fn transfers_by_id(
        &mut self,
        ids: &[u128],
    ) -> Result<Vec<(Transfer, Option<PendingStatus>)>, StoreError> {
        let columns = prefixed(TRANSFER_COLUMNS, "t.");
        let mut statement = self.tx.prepare_cached(&format!(
            "SELECT {columns}, p.status FROM transfers t \
             LEFT JOIN pending_transfers p ON p.id = t.id WHERE t.id = ?1"
        ))?;
        let mut found = Vec::with_capacity(ids.len());
        for id in ids {
            let mut rows = statement.query([&id.to_be_bytes()[..]])?;
            if let Some(row) = rows.next()? {
                let transfer = transfer_from(row, 0)?;
                let pending: Option<String> = row.get(13)?;
                found.push((transfer, pending.as_deref().map(status).transpose()?));
            }
        }
        Ok(found)
    }

    fn open_pending(&mut self) -> Result<Vec<Transfer>, StoreError> {
        let columns = prefixed(TRANSFER_COLUMNS, "t.");
        let mut statement = self.tx.prepare_cached(&format!(
            "SELECT {columns} FROM transfers t JOIN pending_transfers p ON p.id = t.id \
             WHERE p.status = 'pending' ORDER BY t.id"
        ))?;
        let mut rows = statement.query([])?;
        let mut pending = Vec::new();
        while let Some(row) = rows.next()? {
            pending.push(transfer_from(row, 0)?);
        }
        Ok(pending)
    }

    fn transfer_at(&mut self, timestamp: u64) -> Result<Option<TransferRow>, StoreError> {
        let mut statement = self.tx.prepare_cached(&format!(
            "SELECT {TRANSFER_COLUMNS}, debit_previous, credit_previous FROM transfers \
             WHERE timestamp = ?1"
        ))?;
        let mut rows = statement.query([bits(timestamp)])?;
        rows.next()?
            .map(|row| {
                Ok(TransferRow {
                    transfer: transfer_from(row, 0)?,
                    debit_previous: bits_back(row.get(13)?),
                    credit_previous: bits_back(row.get(14)?),
                })
            })
            .transpose()
    }

    fn transfer_sums(&mut self, as_of: u64) -> Result<TransferSums, StoreError> {
        let sql = TRANSFER_SUMS_SQL.replace("{as_of}", "?1");
        let mut statement = self.tx.prepare(&sql)?;
        let mut rows = statement.query([bits(as_of)])?;
        let mut sums = TransferSums::new();
        while let Some(row) = rows.next()? {
            let id = id_at(row, 0)?;
            let mut balances = [0u128; 4];
            for (index, balance) in balances.iter_mut().enumerate() {
                *balance = total("balance", row.get(index + 1)?)?;
            }
            sums.insert(id, balances);
        }
        Ok(sums)
    }
}

fn migrate(connection: &mut Connection) -> Result<(), StoreError> {
    connection.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY)",
    )?;
    let tx = connection.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let current: i64 = tx.query_row(
        "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
        [],
        |row| row.get(0),
    )?;
    let known = crate::SCHEMA_VERSION;
    if current > known {
        return Err(StoreError::SchemaTooNew {
            found: current,
            known,
        });
    }
    for (version, sql) in MIGRATIONS.iter().filter(|(version, _)| *version > current) {
        tx.execute_batch(sql)?;
        tx.execute(
            "INSERT INTO schema_migrations (version) VALUES (?1)",
            [version],
        )?;
    }
    tx.commit()?;
    Ok(())
}

fn id_back(bytes: &[u8]) -> Result<u128, StoreError> {
    let bytes: [u8; 16] = bytes
        .try_into()
        .map_err(|_| StoreError::Corrupt(format!("an id of {} bytes", bytes.len())))?;
    Ok(u128::from_be_bytes(bytes))
}

fn id_at(row: &Row<'_>, index: usize) -> Result<u128, StoreError> {
    id_back(&row.get::<_, Vec<u8>>(index)?)
}

/// The columns of the balances file's rows, as `balance_from` reads them.
const BALANCE_COLUMNS: &str =
    "id, debits_pending, debits_posted, credits_pending, credits_posted, flags, last_transfer";

/// A balances row: the account's id, balances and flags (the rest zero), and its head.
fn balance_from(row: &Row<'_>) -> Result<(Account, u64), StoreError> {
    let account = Account {
        id: id_at(row, 0)?,
        debits_pending: amount_back("debits_pending", row.get(1)?)?,
        debits_posted: amount_back("debits_posted", row.get(2)?)?,
        credits_pending: amount_back("credits_pending", row.get(3)?)?,
        credits_posted: amount_back("credits_posted", row.get(4)?)?,
        flags: AccountFlags::from_bits_retain(narrow("flags", row.get(5)?)?),
        ..Account::default()
    };
    Ok((account, bits_back(row.get(6)?)))
}

fn account_from(row: &Row<'_>) -> Result<Account, StoreError> {
    Ok(Account {
        id: id_at(row, 0)?,
        debits_pending: amount_back("debits_pending", row.get(1)?)?,
        debits_posted: amount_back("debits_posted", row.get(2)?)?,
        credits_pending: amount_back("credits_pending", row.get(3)?)?,
        credits_posted: amount_back("credits_posted", row.get(4)?)?,
        user_data_128: id_at(row, 5)?,
        user_data_64: bits_back(row.get(6)?),
        user_data_32: narrow("user_data_32", row.get(7)?)?,
        ledger: narrow("ledger", row.get(8)?)?,
        code: narrow("code", row.get(9)?)?,
        flags: AccountFlags::from_bits_retain(narrow("flags", row.get(10)?)?),
        timestamp: bits_back(row.get(11)?),
    })
}

fn transfer_from(row: &Row<'_>, first: usize) -> Result<Transfer, StoreError> {
    let at = |offset: usize| first + offset;
    Ok(Transfer {
        id: id_at(row, at(0))?,
        debit_account_id: id_at(row, at(1))?,
        credit_account_id: id_at(row, at(2))?,
        amount: amount_back("amount", row.get(at(3))?)?,
        pending_id: id_at(row, at(4))?,
        user_data_128: id_at(row, at(5))?,
        user_data_64: bits_back(row.get(at(6))?),
        user_data_32: narrow("user_data_32", row.get(at(7))?)?,
        timeout: narrow("timeout", row.get(at(8))?)?,
        ledger: narrow("ledger", row.get(at(9))?)?,
        code: narrow("code", row.get(at(10))?)?,
        flags: TransferFlags::from_bits_retain(narrow("flags", row.get(at(11))?)?),
        timestamp: bits_back(row.get(at(12))?),
    })
}
