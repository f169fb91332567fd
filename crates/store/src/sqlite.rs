//! The embedded store: one SQLite file in WAL mode with `synchronous=FULL`, so that a commit
//! that returned survives a power cut. Ids are 16-byte big-endian blobs.

use std::path::Path;

use formica_core::Effects;
use formica_ledger::{Account, AccountFlags, PendingStatus, Snapshot, Transfer, TransferFlags};
use rusqlite::{Connection, OptionalExtension, Row, params};

use crate::column::{amount, amount_back, bits, bits_back, narrow, status, total};
use crate::{HistoryQuery, Location, StoreError, TRANSFER_SUMS_SQL, TransferSums};

const MIGRATIONS: &[(i64, &str)] = &[(1, include_str!("../migrations/sqlite/0001_books.sql"))];

const ACCOUNT_COLUMNS: &str = "id, debits_pending, debits_posted, credits_pending, \
    credits_posted, user_data_128, user_data_64, user_data_32, ledger, code, flags, timestamp";
const TRANSFER_COLUMNS: &str = "id, debit_account_id, credit_account_id, amount, pending_id, \
    user_data_128, user_data_64, user_data_32, timeout, ledger, code, flags, timestamp";

/// SQLite page cache per connection, in KiB.
const CACHE_KIB: i64 = 512 * 1024;

/// WAL pages between automatic checkpoints (SQLite's default is 1,000).
const WAL_CHECKPOINT_PAGES: i64 = 16_384;

/// How long a writer waits for a lock held by another connection before the commit fails.
const BUSY_TIMEOUT_MS: u64 = 5_000;

/// The SQLite store.
#[derive(Debug)]
pub struct SqliteStore {
    connection: Connection,
}

impl SqliteStore {
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
        connection.pragma_update(None, "wal_autocheckpoint", WAL_CHECKPOINT_PAGES)?;
        connection.set_prepared_statement_cache_capacity(64);
        migrate(&mut connection)?;
        Ok(SqliteStore { connection })
    }

    /// How long a commit waits for a lock another connection holds before it fails.
    pub fn set_busy_timeout(&self, timeout: std::time::Duration) -> Result<(), StoreError> {
        Ok(self.connection.busy_timeout(timeout)?)
    }

    pub(crate) fn load(&mut self) -> Result<Snapshot, StoreError> {
        // One read transaction: every query sees the same commit.
        let read = self.connection.unchecked_transaction()?;
        let snapshot = self.load_rows()?;
        read.finish()?;
        Ok(snapshot)
    }

    fn load_rows(&self) -> Result<Snapshot, StoreError> {
        let books: Option<(i64, Vec<u8>)> = self
            .connection
            .query_row("SELECT timestamp, transfer_id_max FROM books", [], |row| {
                Ok((row.get(0)?, row.get(1)?))
            })
            .optional()?;
        let (timestamp, transfer_id_max) = match books {
            Some((timestamp, id_max)) => (bits_back(timestamp), id_back(&id_max)?),
            None => (0, 0),
        };
        let mut accounts = Vec::new();
        let mut statement = self.connection.prepare(&format!(
            "SELECT {ACCOUNT_COLUMNS} FROM accounts ORDER BY id"
        ))?;
        let mut rows = statement.query([])?;
        while let Some(row) = rows.next()? {
            accounts.push(account_from(row)?);
        }
        let mut pending = Vec::new();
        let columns = prefixed(TRANSFER_COLUMNS, "t.");
        let mut statement = self.connection.prepare(&format!(
            "SELECT {columns} FROM transfers t JOIN pending_transfers p ON p.id = t.id \
             WHERE p.status = 'pending' ORDER BY t.id"
        ))?;
        let mut rows = statement.query([])?;
        while let Some(row) = rows.next()? {
            pending.push(transfer_from(row, 0)?);
        }
        Ok(Snapshot {
            timestamp,
            transfer_id_max,
            accounts,
            pending,
        })
    }

    pub(crate) fn lookup_transfers(
        &mut self,
        ids: &[u128],
    ) -> Result<Vec<(Transfer, Option<PendingStatus>)>, StoreError> {
        let columns = prefixed(TRANSFER_COLUMNS, "t.");
        let mut statement = self.connection.prepare_cached(&format!(
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

    pub(crate) fn commit(&mut self, effects: &Effects) -> Result<(), StoreError> {
        let tx = self
            .connection
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        {
            let mut insert = tx.prepare_cached(&format!(
                "INSERT INTO transfers ({TRANSFER_COLUMNS}) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)"
            ))?;
            for t in &effects.transfers {
                insert.execute(params![
                    &t.id.to_be_bytes()[..],
                    &t.debit_account_id.to_be_bytes()[..],
                    &t.credit_account_id.to_be_bytes()[..],
                    amount("amount", t.amount)?,
                    &t.pending_id.to_be_bytes()[..],
                    &t.user_data_128.to_be_bytes()[..],
                    bits(t.user_data_64),
                    t.user_data_32,
                    t.timeout,
                    t.ledger,
                    t.code,
                    t.flags.bits(),
                    bits(t.timestamp),
                ])?;
            }
            let mut upsert = tx.prepare_cached(&format!(
                "INSERT INTO accounts ({ACCOUNT_COLUMNS}) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12) \
                 ON CONFLICT (id) DO UPDATE SET debits_pending = excluded.debits_pending, \
                 debits_posted = excluded.debits_posted, credits_pending = excluded.credits_pending, \
                 credits_posted = excluded.credits_posted, flags = excluded.flags"
            ))?;
            for a in &effects.accounts {
                upsert.execute(params![
                    &a.id.to_be_bytes()[..],
                    amount("debits_pending", a.debits_pending)?,
                    amount("debits_posted", a.debits_posted)?,
                    amount("credits_pending", a.credits_pending)?,
                    amount("credits_posted", a.credits_posted)?,
                    &a.user_data_128.to_be_bytes()[..],
                    bits(a.user_data_64),
                    a.user_data_32,
                    a.ledger,
                    a.code,
                    a.flags.bits(),
                    bits(a.timestamp),
                ])?;
            }
            let mut pending = tx.prepare_cached(
                "INSERT INTO pending_transfers (id, status) VALUES (?1, ?2) \
                 ON CONFLICT (id) DO UPDATE SET status = excluded.status",
            )?;
            for (id, state) in &effects.pending_status {
                pending.execute(params![&id.to_be_bytes()[..], state.as_str()])?;
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
        }
        tx.commit()?;
        Ok(())
    }

    pub(crate) fn account(&mut self, id: u128) -> Result<Option<Account>, StoreError> {
        let mut statement = self.connection.prepare_cached(&format!(
            "SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE id = ?1"
        ))?;
        let mut rows = statement.query([&id.to_be_bytes()[..]])?;
        rows.next()?.map(account_from).transpose()
    }

    pub(crate) fn history(&mut self, query: &HistoryQuery) -> Result<Vec<Transfer>, StoreError> {
        // Each side walks its (account, timestamp) index backwards; the union is merged.
        let side = |column: &str| {
            format!(
                "SELECT * FROM (SELECT {TRANSFER_COLUMNS} FROM transfers \
                 WHERE {column} = ?1 AND timestamp >= ?2 AND timestamp < ?3 \
                 ORDER BY timestamp DESC LIMIT ?4)"
            )
        };
        let sql = format!(
            "{} UNION ALL {} ORDER BY timestamp DESC LIMIT ?4",
            side("debit_account_id"),
            side("credit_account_id")
        );
        let mut statement = self.connection.prepare_cached(&sql)?;
        let from = query.from.map_or(0, bits);
        let before = query.before.map_or(i64::MAX, bits);
        let mut rows = statement.query(params![
            &query.account_id.to_be_bytes()[..],
            from,
            before,
            query.limit
        ])?;
        let mut page = Vec::new();
        while let Some(row) = rows.next()? {
            page.push(transfer_from(row, 0)?);
        }
        Ok(page)
    }

    pub(crate) fn trial_balance_rows(
        &mut self,
    ) -> Result<(Vec<Account>, TransferSums), StoreError> {
        // One read transaction: the accounts and the sums see the same commit.
        let read = self.connection.unchecked_transaction()?;
        let rows = self.read_trial_balance_rows()?;
        read.finish()?;
        Ok(rows)
    }

    fn read_trial_balance_rows(&self) -> Result<(Vec<Account>, TransferSums), StoreError> {
        let mut accounts = Vec::new();
        let mut statement = self
            .connection
            .prepare(&format!("SELECT {ACCOUNT_COLUMNS} FROM accounts"))?;
        let mut rows = statement.query([])?;
        while let Some(row) = rows.next()? {
            accounts.push(account_from(row)?);
        }
        let mut sums = TransferSums::new();
        let mut statement = self.connection.prepare(TRANSFER_SUMS_SQL)?;
        let mut rows = statement.query([])?;
        while let Some(row) = rows.next()? {
            let id = id_back(&row.get::<_, Vec<u8>>(0)?)?;
            let mut balances = [0u128; 4];
            for (index, balance) in balances.iter_mut().enumerate() {
                *balance = total("balance", row.get(index + 1)?)?;
            }
            sums.insert(id, balances);
        }
        Ok((accounts, sums))
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
    let known = MIGRATIONS.last().map_or(0, |(version, _)| *version);
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

fn prefixed(columns: &str, prefix: &str) -> String {
    columns
        .split(", ")
        .map(|column| format!("{prefix}{column}"))
        .collect::<Vec<_>>()
        .join(", ")
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
