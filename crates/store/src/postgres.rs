//! The server store: PostgreSQL, written in bulk (one statement per table per batch).
//!
//! A batch's rows go to the server as arrays, one per column, and `UNNEST` turns them back into
//! rows: a batch of thousands of transfers costs four round trips, not thousands. Ids are
//! uuids holding the 128-bit id's bytes (big-endian, so uuid order is id order). The
//! statements are prepared once per connection; when the connection breaks, the call that hit
//! the break fails and the next one connects again, so the engine keeps serving after a
//! database restart or a failover.

use formica_core::{Checkpoint, Effects, TransferRow};
use formica_ledger::{Account, AccountFlags, PendingStatus, Transfer, TransferFlags};
use postgres::binary_copy::BinaryCopyInWriter;
use postgres::types::Type;
use postgres::{Client, NoTls, Row, Statement};
use uuid::Uuid;

use crate::column::{amount, amount_back, bits, bits_back, narrow, status, total};
use crate::replay::{BooksRow, Reader};
use crate::sql::{PostgresSql, Sql};
use crate::{ACCOUNT_COLUMNS, TRANSFER_COLUMNS, prefixed};
use crate::{StoreError, TRANSFER_SUMS_SQL, TransferSums};

const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("../migrations/postgres/0001_books.sql")),
    (2, include_str!("../migrations/postgres/0002_products.sql")),
    (3, include_str!("../migrations/postgres/0003_merchants.sql")),
    (4, include_str!("../migrations/postgres/0004_funds.sql")),
    (5, include_str!("../migrations/postgres/0005_credit.sql")),
    (
        6,
        include_str!("../migrations/postgres/0006_credit_line.sql"),
    ),
    (
        7,
        include_str!("../migrations/postgres/0007_credit_policy.sql"),
    ),
    (
        8,
        include_str!("../migrations/postgres/0008_used_codes.sql"),
    ),
];

const _: () = assert!(
    MIGRATIONS[MIGRATIONS.len() - 1].0 == crate::SCHEMA_VERSION,
    "SCHEMA_VERSION is the last migration"
);

/// The advisory lock migrations hold, so that two processes opening a fresh database at once
/// migrate it one after the other ("formica" in ASCII: any constant works, it only has to be
/// the same in every Formica).
const MIGRATION_LOCK: i64 = 0x0066_6f72_6d69_6361;

/// Column types of the transfers COPY, in `TRANSFER_COLUMNS` order then the two links.
const TRANSFER_COPY_TYPES: [Type; 15] = [
    Type::UUID,
    Type::UUID,
    Type::UUID,
    Type::INT8,
    Type::UUID,
    Type::UUID,
    Type::INT8,
    Type::INT8,
    Type::INT8,
    Type::INT8,
    Type::INT4,
    Type::INT4,
    Type::INT8,
    Type::INT8,
    Type::INT8,
];

/// The PostgreSQL store.
pub struct PostgresStore {
    // Both boxed: a client and its configuration are several hundred bytes, and `Store` is an
    // enum that would otherwise carry them for SQLite too.
    config: Box<postgres::Config>,
    /// `None` after the connection broke, until the next call connects again.
    connection: Option<Box<Connection>>,
    /// Whether every session must hold the writer lock.
    writer: bool,
}

/// The advisory lock the books' single writer holds ("formica writer"; migrations use
/// another key).
const WRITER_LOCK: i64 = 0x0066_6f72_6d69_6377;

/// How long a starting writer waits for a previous writer's session to end.
const WRITER_LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(3);

/// One session with the server and the statements prepared on it (a statement belongs to the
/// session that prepared it, so they are dropped and prepared again together).
struct Connection {
    client: Client,
    statements: Statements,
}

struct Statements {
    insert_accounts: Statement,
    checkpoint_accounts: Statement,
    upsert_pending: Statement,
    upsert_books: Statement,
    lookup_transfers: Statement,
    transfer_at: Statement,
}

// By hand: `postgres::Client` is not `Debug`, and the URL may hold a password (the config's
// own `Debug` redacts it).
impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore")
            .field("config", &self.config)
            .field("connected", &self.connection.is_some())
            .finish()
    }
}

impl PostgresStore {
    /// Connects to `url` and migrates the schema.
    pub fn open(url: &str) -> Result<Self, StoreError> {
        let config: postgres::Config = url.parse()?;
        let mut client = config.connect(NoTls)?;
        migrate(&mut client)?;
        let statements = Statements::prepare(&mut client)?;
        Ok(PostgresStore {
            config: Box::new(config),
            connection: Some(Box::new(Connection { client, statements })),
            writer: false,
        })
    }

    /// Makes this store the only writer of the books: a session-level advisory lock, taken
    /// again by every new session after a reconnect (the server releases it when a session
    /// ends, also when the process dies). A writer restarted right after a crash waits a
    /// moment for the server to notice the old session is gone.
    pub(crate) fn claim_writer(&mut self) -> Result<(), StoreError> {
        self.writer = true;
        let deadline = std::time::Instant::now() + WRITER_LOCK_WAIT;
        loop {
            self.connection = None;
            match self.with_connection(|_| Ok(())) {
                Err(StoreError::AnotherWriter) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
                result => return result,
            }
        }
    }

    /// The server process serving this store's session (connecting first if needed), so that
    /// tests can terminate it and watch the store reconnect.
    #[doc(hidden)]
    pub fn backend_pid(&mut self) -> Result<i32, StoreError> {
        self.with_connection(|connection| {
            Ok(connection
                .client
                .query_one("SELECT pg_backend_pid()", &[])?
                .try_get(0)?)
        })
    }

    /// Runs `read` in one read-only repeatable-read transaction: every query sees the same
    /// commit, even while another process writes.
    /// A new session on the same database.
    pub(crate) fn connect_again(&self) -> Result<Self, StoreError> {
        Ok(PostgresStore {
            config: self.config.clone(),
            connection: Some(Box::new(Connection::open(&self.config, false)?)),
            writer: false,
        })
    }

    pub(crate) fn read<T>(
        &mut self,
        read: impl FnOnce(&mut dyn Reader) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.with_connection(|connection| {
            let Connection { client, statements } = connection;
            let tx = client
                .build_transaction()
                .isolation_level(postgres::IsolationLevel::RepeatableRead)
                .read_only(true)
                .start()?;
            let mut reader = PostgresReader { tx, statements };
            let result = read(&mut reader)?;
            reader.tx.commit()?;
            Ok(result)
        })
    }

    /// Runs `work` in one read-only repeatable-read transaction.
    pub(crate) fn read_sql<T>(
        &mut self,
        work: impl FnOnce(&mut dyn Sql) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.with_connection(|connection| {
            let mut tx = connection
                .client
                .build_transaction()
                .isolation_level(postgres::IsolationLevel::RepeatableRead)
                .read_only(true)
                .start()?;
            let result = work(&mut PostgresSql(&mut tx))?;
            tx.commit()?;
            Ok(result)
        })
    }

    /// Runs `work` in one write transaction, committed if it returns `Ok`.
    pub(crate) fn write_sql<T>(
        &mut self,
        work: impl FnOnce(&mut dyn Sql) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.with_connection(|connection| {
            let mut tx = connection.client.transaction()?;
            let result = work(&mut PostgresSql(&mut tx))?;
            tx.commit()?;
            Ok(result)
        })
    }

    pub(crate) fn commit(&mut self, effects: &Effects) -> Result<(), StoreError> {
        // Every value is converted before the transaction opens: a batch that does not fit
        // the columns fails without a round trip and writes nothing.
        let transfers = TransferColumns::new(&effects.transfers)?;
        let accounts = AccountColumns::new(effects.accounts.iter().map(|a| (a, 0)))?;
        let pending_ids: Vec<Uuid> = effects
            .pending_status
            .iter()
            .map(|change| Uuid::from_u128(change.id))
            .collect();
        let pending_statuses: Vec<&str> = effects
            .pending_status
            .iter()
            .map(|change| change.status.as_str())
            .collect();
        let pending_settled: Vec<Option<i64>> = effects
            .pending_status
            .iter()
            .map(|change| change.settled_at.map(bits))
            .collect();
        let timestamp = bits(effects.timestamp);
        let transfer_id_max = Uuid::from_u128(effects.transfer_id_max);
        self.with_connection(|connection| {
            let statements = &connection.statements;
            let mut tx = connection.client.transaction()?;
            // Transfers go in by binary COPY: the server parses no text and builds no
            // intermediate rows (an UNNEST of fifteen arrays materializes them first).
            if !effects.transfers.is_empty() {
                let sink = tx.copy_in(&format!(
                    "COPY transfers ({TRANSFER_COLUMNS}, debit_previous, credit_previous) \
                     FROM STDIN BINARY"
                ))?;
                let mut writer = BinaryCopyInWriter::new(sink, &TRANSFER_COPY_TYPES);
                for index in 0..transfers.id.len() {
                    writer.write(&[
                        &transfers.id[index],
                        &transfers.debit_account_id[index],
                        &transfers.credit_account_id[index],
                        &transfers.amount[index],
                        &transfers.pending_id[index],
                        &transfers.user_data_128[index],
                        &transfers.user_data_64[index],
                        &transfers.user_data_32[index],
                        &transfers.timeout[index],
                        &transfers.ledger[index],
                        &transfers.code[index],
                        &transfers.flags[index],
                        &transfers.timestamp[index],
                        &transfers.debit_previous[index],
                        &transfers.credit_previous[index],
                    ])?;
                }
                writer.finish()?;
            }
            if !accounts.id.is_empty() {
                tx.execute(&statements.insert_accounts, &accounts.params())?;
            }
            if !pending_ids.is_empty() {
                tx.execute(
                    &statements.upsert_pending,
                    &[&pending_ids, &pending_statuses, &pending_settled],
                )?;
            }
            tx.execute(&statements.upsert_books, &[&timestamp, &transfer_id_max])?;
            crate::products::write(&mut PostgresSql(&mut tx), &effects.products)?;
            tx.commit()?;
            Ok(())
        })
    }

    pub(crate) fn checkpoint(&mut self, checkpoint: &Checkpoint) -> Result<(), StoreError> {
        let accounts = AccountColumns::new(checkpoint.accounts.iter().map(|(a, head)| (a, *head)))?;
        let timestamp = bits(checkpoint.timestamp);
        self.with_connection(|connection| {
            let statements = &connection.statements;
            let mut tx = connection.client.transaction()?;
            if !accounts.id.is_empty() {
                let updated = tx.execute(
                    &statements.checkpoint_accounts,
                    &[
                        &accounts.id,
                        &accounts.debits_pending,
                        &accounts.debits_posted,
                        &accounts.credits_pending,
                        &accounts.credits_posted,
                        &accounts.flags,
                        &accounts.last_transfer,
                    ],
                )?;
                if updated != accounts.id.len() as u64 {
                    return Err(StoreError::Corrupt(
                        "a checkpointed account has no row".into(),
                    ));
                }
            }
            tx.execute(
                "UPDATE balance_checkpoint SET timestamp = $1 WHERE timestamp < $1",
                &[&timestamp],
            )?;
            tx.commit()?;
            Ok(())
        })
    }

    /// Runs `call` on a live connection, connecting first if there is none (the previous one
    /// broke). Any PostgreSQL error drops the connection: after a failure mid-call the session
    /// may be closed, or in a state (an open transaction, a half-read result) that a fresh
    /// session is the simplest way out of, and errors are rare enough that reconnecting
    /// costs nothing worth saving.
    fn with_connection<T>(
        &mut self,
        call: impl FnOnce(&mut Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut connection = match self.connection.take() {
            Some(connection) if !connection.client.is_closed() => connection,
            _ => Box::new(Connection::open(&self.config, self.writer)?),
        };
        let result = call(&mut connection);
        let broken =
            matches!(result, Err(StoreError::Postgres(_))) || connection.client.is_closed();
        if !broken {
            self.connection = Some(connection);
        }
        result
    }
}

impl Connection {
    /// A new session on an already migrated database; a writer's takes the writer lock.
    fn open(config: &postgres::Config, writer: bool) -> Result<Self, StoreError> {
        let mut client = config.connect(NoTls)?;
        if writer {
            let locked: bool = client
                .query_one("SELECT pg_try_advisory_lock($1)", &[&WRITER_LOCK])?
                .try_get(0)?;
            if !locked {
                return Err(StoreError::AnotherWriter);
            }
        }
        let statements = Statements::prepare(&mut client)?;
        Ok(Connection { client, statements })
    }
}

impl Statements {
    fn prepare(client: &mut Client) -> Result<Self, StoreError> {
        let columns = prefixed(TRANSFER_COLUMNS, "t.");
        let account_arrays = "$1::uuid[], $2::bigint[], $3::bigint[], $4::bigint[], \
            $5::bigint[], $6::uuid[], $7::bigint[], $8::bigint[], $9::bigint[], \
            $10::integer[], $11::integer[], $12::bigint[], $13::bigint[]";
        Ok(Statements {
            insert_accounts: client.prepare(&format!(
                "INSERT INTO accounts ({ACCOUNT_COLUMNS}, last_transfer) \
                 SELECT * FROM UNNEST({account_arrays})"
            ))?,
            // Every row exists: a batch inserts the accounts it creates.
            checkpoint_accounts: client.prepare(
                "UPDATE accounts a SET debits_pending = c.debits_pending, \
                 debits_posted = c.debits_posted, credits_pending = c.credits_pending, \
                 credits_posted = c.credits_posted, flags = c.flags, \
                 last_transfer = c.last_transfer \
                 FROM UNNEST($1::uuid[], $2::bigint[], $3::bigint[], $4::bigint[], \
                 $5::bigint[], $6::integer[], $7::bigint[]) \
                 AS c(id, debits_pending, debits_posted, credits_pending, credits_posted, \
                 flags, last_transfer) \
                 WHERE a.id = c.id",
            )?,
            upsert_pending: client.prepare(
                "INSERT INTO pending_transfers (id, status, settled_at) \
                 SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::bigint[]) \
                 ON CONFLICT (id) DO UPDATE SET status = excluded.status, \
                 settled_at = excluded.settled_at",
            )?,
            upsert_books: client.prepare(
                "INSERT INTO books (singleton, timestamp, transfer_id_max) VALUES (1, $1, $2) \
                 ON CONFLICT (singleton) DO UPDATE SET timestamp = excluded.timestamp, \
                 transfer_id_max = excluded.transfer_id_max",
            )?,
            lookup_transfers: client.prepare(&format!(
                "SELECT {columns}, p.status FROM transfers t \
                 LEFT JOIN pending_transfers p ON p.id = t.id \
                 WHERE t.id = ANY($1::uuid[]) ORDER BY t.id"
            ))?,
            transfer_at: client.prepare(&format!(
                "SELECT {TRANSFER_COLUMNS}, debit_previous, credit_previous FROM transfers \
                 WHERE timestamp = $1"
            ))?,
        })
    }
}

/// The reads of one read transaction.
struct PostgresReader<'a> {
    tx: postgres::Transaction<'a>,
    statements: &'a Statements,
}

impl Reader for PostgresReader<'_> {
    fn books(&mut self) -> Result<BooksRow, StoreError> {
        let row = self.tx.query_opt(
            "SELECT b.timestamp, b.transfer_id_max, c.timestamp \
             FROM books b, balance_checkpoint c",
            &[],
        )?;
        Ok(match row {
            Some(row) => BooksRow {
                timestamp: bits_back(row.try_get(0)?),
                transfer_id_max: row.try_get::<_, Uuid>(1)?.as_u128(),
                checkpoint: bits_back(row.try_get(2)?),
            },
            None => BooksRow::default(),
        })
    }

    fn checkpoint_accounts(
        &mut self,
        account: Option<u128>,
    ) -> Result<Vec<(Account, u64)>, StoreError> {
        let account = account.map(Uuid::from_u128);
        self.tx
            .query(
                &format!(
                    "SELECT {ACCOUNT_COLUMNS}, last_transfer FROM accounts \
                     WHERE $1::uuid IS NULL OR id = $1 ORDER BY id"
                ),
                &[&account],
            )?
            .iter()
            .map(|row| Ok((account_from(row)?, bits_back(row.try_get(12)?))))
            .collect()
    }

    fn transfers_after(
        &mut self,
        after: u64,
        account: Option<u128>,
    ) -> Result<Vec<Transfer>, StoreError> {
        let account = account.map(Uuid::from_u128);
        self.tx
            .query(
                &format!(
                    "SELECT {TRANSFER_COLUMNS} FROM transfers WHERE timestamp > $1 \
                     AND ($2::uuid IS NULL OR debit_account_id = $2 OR credit_account_id = $2) \
                     ORDER BY timestamp"
                ),
                &[&bits(after), &account],
            )?
            .iter()
            .map(|row| transfer_from(row, 0))
            .collect()
    }

    fn expiries_after(&mut self, after: u64) -> Result<Vec<(u64, u128)>, StoreError> {
        self.tx
            .query(
                "SELECT settled_at, id FROM pending_transfers \
                 WHERE status = 'expired' AND settled_at > $1",
                &[&bits(after)],
            )?
            .iter()
            .map(|row| Ok((bits_back(row.try_get(0)?), id_at(row, 1)?)))
            .collect()
    }

    fn transfers_by_id(
        &mut self,
        ids: &[u128],
    ) -> Result<Vec<(Transfer, Option<PendingStatus>)>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<Uuid> = ids.iter().map(|id| Uuid::from_u128(*id)).collect();
        self.tx
            .query(&self.statements.lookup_transfers, &[&ids])?
            .iter()
            .map(|row| {
                let transfer = transfer_from(row, 0)?;
                let pending: Option<&str> = row.try_get(13)?;
                Ok((transfer, pending.map(status).transpose()?))
            })
            .collect()
    }

    fn open_pending(&mut self) -> Result<Vec<Transfer>, StoreError> {
        let columns = prefixed(TRANSFER_COLUMNS, "t.");
        self.tx
            .query(
                &format!(
                    "SELECT {columns} FROM transfers t JOIN pending_transfers p ON p.id = t.id \
                     WHERE p.status = 'pending' ORDER BY t.id"
                ),
                &[],
            )?
            .iter()
            .map(|row| transfer_from(row, 0))
            .collect()
    }

    fn transfer_at(&mut self, timestamp: u64) -> Result<Option<TransferRow>, StoreError> {
        self.tx
            .query_opt(&self.statements.transfer_at, &[&bits(timestamp)])?
            .map(|row| {
                Ok(TransferRow {
                    transfer: transfer_from(&row, 0)?,
                    debit_previous: bits_back(row.try_get(13)?),
                    credit_previous: bits_back(row.try_get(14)?),
                })
            })
            .transpose()
    }

    fn transfer_sums(&mut self, as_of: u64) -> Result<TransferSums, StoreError> {
        let sql = TRANSFER_SUMS_SQL.replace("{as_of}", "$1");
        let mut sums = TransferSums::new();
        for row in self.tx.query(&sql, &[&bits(as_of)])? {
            let id = row.try_get::<_, Uuid>(0)?.as_u128();
            let mut balances = [0u128; 4];
            for (index, balance) in balances.iter_mut().enumerate() {
                *balance = total("balance", row.try_get(index + 1)?)?;
            }
            sums.insert(id, balances);
        }
        Ok(sums)
    }
}

/// A batch's transfers as one array per column, in `TRANSFER_COLUMNS` order.
struct TransferColumns {
    id: Vec<Uuid>,
    debit_account_id: Vec<Uuid>,
    credit_account_id: Vec<Uuid>,
    amount: Vec<i64>,
    pending_id: Vec<Uuid>,
    user_data_128: Vec<Uuid>,
    user_data_64: Vec<i64>,
    user_data_32: Vec<i64>,
    timeout: Vec<i64>,
    ledger: Vec<i64>,
    code: Vec<i32>,
    flags: Vec<i32>,
    timestamp: Vec<i64>,
    debit_previous: Vec<i64>,
    credit_previous: Vec<i64>,
}

impl TransferColumns {
    fn new(rows: &[TransferRow]) -> Result<Self, StoreError> {
        let transfers = rows;
        let n = transfers.len();
        let mut columns = TransferColumns {
            id: Vec::with_capacity(n),
            debit_account_id: Vec::with_capacity(n),
            credit_account_id: Vec::with_capacity(n),
            amount: Vec::with_capacity(n),
            pending_id: Vec::with_capacity(n),
            user_data_128: Vec::with_capacity(n),
            user_data_64: Vec::with_capacity(n),
            user_data_32: Vec::with_capacity(n),
            timeout: Vec::with_capacity(n),
            ledger: Vec::with_capacity(n),
            code: Vec::with_capacity(n),
            flags: Vec::with_capacity(n),
            timestamp: Vec::with_capacity(n),
            debit_previous: Vec::with_capacity(n),
            credit_previous: Vec::with_capacity(n),
        };
        for row in transfers {
            let t = &row.transfer;
            columns.debit_previous.push(bits(row.debit_previous));
            columns.credit_previous.push(bits(row.credit_previous));
            columns.id.push(Uuid::from_u128(t.id));
            columns
                .debit_account_id
                .push(Uuid::from_u128(t.debit_account_id));
            columns
                .credit_account_id
                .push(Uuid::from_u128(t.credit_account_id));
            columns.amount.push(amount("amount", t.amount)?);
            columns.pending_id.push(Uuid::from_u128(t.pending_id));
            columns.user_data_128.push(Uuid::from_u128(t.user_data_128));
            columns.user_data_64.push(bits(t.user_data_64));
            columns.user_data_32.push(i64::from(t.user_data_32));
            columns.timeout.push(i64::from(t.timeout));
            columns.ledger.push(i64::from(t.ledger));
            columns.code.push(i32::from(t.code));
            columns.flags.push(i32::from(t.flags.bits()));
            columns.timestamp.push(bits(t.timestamp));
        }
        Ok(columns)
    }
}

/// A batch's accounts as one array per column, in `ACCOUNT_COLUMNS` order.
struct AccountColumns {
    id: Vec<Uuid>,
    debits_pending: Vec<i64>,
    debits_posted: Vec<i64>,
    credits_pending: Vec<i64>,
    credits_posted: Vec<i64>,
    user_data_128: Vec<Uuid>,
    user_data_64: Vec<i64>,
    user_data_32: Vec<i64>,
    ledger: Vec<i64>,
    code: Vec<i32>,
    flags: Vec<i32>,
    timestamp: Vec<i64>,
    last_transfer: Vec<i64>,
}

impl AccountColumns {
    /// The arrays as statement parameters, in `ACCOUNT_COLUMNS` order then `last_transfer`.
    fn params(&self) -> [&(dyn postgres::types::ToSql + Sync); 13] {
        [
            &self.id,
            &self.debits_pending,
            &self.debits_posted,
            &self.credits_pending,
            &self.credits_posted,
            &self.user_data_128,
            &self.user_data_64,
            &self.user_data_32,
            &self.ledger,
            &self.code,
            &self.flags,
            &self.timestamp,
            &self.last_transfer,
        ]
    }

    /// Accounts, each with the timestamp of its latest transfer.
    fn new<'a>(
        accounts: impl ExactSizeIterator<Item = (&'a Account, u64)>,
    ) -> Result<Self, StoreError> {
        let n = accounts.len();
        let mut columns = AccountColumns {
            id: Vec::with_capacity(n),
            debits_pending: Vec::with_capacity(n),
            debits_posted: Vec::with_capacity(n),
            credits_pending: Vec::with_capacity(n),
            credits_posted: Vec::with_capacity(n),
            user_data_128: Vec::with_capacity(n),
            user_data_64: Vec::with_capacity(n),
            user_data_32: Vec::with_capacity(n),
            ledger: Vec::with_capacity(n),
            code: Vec::with_capacity(n),
            flags: Vec::with_capacity(n),
            timestamp: Vec::with_capacity(n),
            last_transfer: Vec::with_capacity(n),
        };
        for (a, last_transfer) in accounts {
            columns.last_transfer.push(bits(last_transfer));
            columns.id.push(Uuid::from_u128(a.id));
            columns
                .debits_pending
                .push(amount("debits_pending", a.debits_pending)?);
            columns
                .debits_posted
                .push(amount("debits_posted", a.debits_posted)?);
            columns
                .credits_pending
                .push(amount("credits_pending", a.credits_pending)?);
            columns
                .credits_posted
                .push(amount("credits_posted", a.credits_posted)?);
            columns.user_data_128.push(Uuid::from_u128(a.user_data_128));
            columns.user_data_64.push(bits(a.user_data_64));
            columns.user_data_32.push(i64::from(a.user_data_32));
            columns.ledger.push(i64::from(a.ledger));
            columns.code.push(i32::from(a.code));
            columns.flags.push(i32::from(a.flags.bits()));
            columns.timestamp.push(bits(a.timestamp));
        }
        Ok(columns)
    }
}

fn migrate(client: &mut Client) -> Result<(), StoreError> {
    let mut tx = client.transaction()?;
    // Held until the transaction ends: a second process opening the same fresh database waits
    // here, then finds the migrations done, instead of racing to create the same tables.
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])?;
    tx.batch_execute("CREATE TABLE IF NOT EXISTS schema_migrations (version bigint PRIMARY KEY)")?;
    let current: i64 = tx
        .query_one(
            "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
            &[],
        )?
        .try_get(0)?;
    let known = crate::SCHEMA_VERSION;
    if current > known {
        return Err(StoreError::SchemaTooNew {
            found: current,
            known,
        });
    }
    for (version, sql) in MIGRATIONS.iter().filter(|(version, _)| *version > current) {
        tx.batch_execute(sql)?;
        tx.execute(
            "INSERT INTO schema_migrations (version) VALUES ($1)",
            &[version],
        )?;
    }
    tx.commit()?;
    Ok(())
}

fn id_at(row: &Row, index: usize) -> Result<u128, StoreError> {
    Ok(row.try_get::<_, Uuid>(index)?.as_u128())
}

fn account_from(row: &Row) -> Result<Account, StoreError> {
    Ok(Account {
        id: id_at(row, 0)?,
        debits_pending: amount_back("debits_pending", row.try_get(1)?)?,
        debits_posted: amount_back("debits_posted", row.try_get(2)?)?,
        credits_pending: amount_back("credits_pending", row.try_get(3)?)?,
        credits_posted: amount_back("credits_posted", row.try_get(4)?)?,
        user_data_128: id_at(row, 5)?,
        user_data_64: bits_back(row.try_get(6)?),
        user_data_32: narrow("user_data_32", row.try_get(7)?)?,
        ledger: narrow("ledger", row.try_get(8)?)?,
        code: narrow("code", i64::from(row.try_get::<_, i32>(9)?))?,
        flags: AccountFlags::from_bits_retain(narrow(
            "flags",
            i64::from(row.try_get::<_, i32>(10)?),
        )?),
        timestamp: bits_back(row.try_get(11)?),
    })
}

fn transfer_from(row: &Row, first: usize) -> Result<Transfer, StoreError> {
    let at = |offset: usize| first + offset;
    Ok(Transfer {
        id: id_at(row, at(0))?,
        debit_account_id: id_at(row, at(1))?,
        credit_account_id: id_at(row, at(2))?,
        amount: amount_back("amount", row.try_get(at(3))?)?,
        pending_id: id_at(row, at(4))?,
        user_data_128: id_at(row, at(5))?,
        user_data_64: bits_back(row.try_get(at(6))?),
        user_data_32: narrow("user_data_32", row.try_get(at(7))?)?,
        timeout: narrow("timeout", row.try_get(at(8))?)?,
        ledger: narrow("ledger", row.try_get(at(9))?)?,
        code: narrow("code", i64::from(row.try_get::<_, i32>(at(10))?))?,
        flags: TransferFlags::from_bits_retain(narrow(
            "flags",
            i64::from(row.try_get::<_, i32>(at(11))?),
        )?),
        timestamp: bits_back(row.try_get(at(12))?),
    })
}
