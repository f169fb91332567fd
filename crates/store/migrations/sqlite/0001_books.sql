-- The books. Ids are 16-byte big-endian blobs; amounts and balances are INTEGER minor units.
CREATE TABLE accounts (
    id BLOB PRIMARY KEY,
    debits_pending INTEGER NOT NULL,
    debits_posted INTEGER NOT NULL,
    credits_pending INTEGER NOT NULL,
    credits_posted INTEGER NOT NULL,
    user_data_128 BLOB NOT NULL,
    user_data_64 INTEGER NOT NULL,
    user_data_32 INTEGER NOT NULL,
    ledger INTEGER NOT NULL,
    code INTEGER NOT NULL,
    flags INTEGER NOT NULL,
    timestamp INTEGER NOT NULL
) WITHOUT ROWID;

-- Every event has its own timestamp, strictly increasing: it is the row id, so inserts append
-- and the account indexes below are ordered by (account, timestamp) for history pages.
CREATE TABLE transfers (
    timestamp INTEGER PRIMARY KEY,
    id BLOB NOT NULL UNIQUE,
    debit_account_id BLOB NOT NULL,
    credit_account_id BLOB NOT NULL,
    amount INTEGER NOT NULL,
    pending_id BLOB NOT NULL,
    user_data_128 BLOB NOT NULL,
    user_data_64 INTEGER NOT NULL,
    user_data_32 INTEGER NOT NULL,
    timeout INTEGER NOT NULL,
    ledger INTEGER NOT NULL,
    code INTEGER NOT NULL,
    flags INTEGER NOT NULL
);
CREATE INDEX transfers_debit_account ON transfers (debit_account_id);
CREATE INDEX transfers_credit_account ON transfers (credit_account_id);

-- Where each pending transfer stands: pending, posted, voided or expired.
CREATE TABLE pending_transfers (
    id BLOB PRIMARY KEY,
    status TEXT NOT NULL
) WITHOUT ROWID;

-- The books' clock and largest transfer id, written with every batch.
CREATE TABLE books (
    singleton INTEGER PRIMARY KEY CHECK (singleton = 1),
    timestamp INTEGER NOT NULL,
    transfer_id_max BLOB NOT NULL
);

-- Messages to deliver (webhooks, notifications), written in the same transaction as the
-- change they announce; products add their topics.
CREATE TABLE outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    timestamp INTEGER NOT NULL,
    topic TEXT NOT NULL,
    payload TEXT NOT NULL,
    delivered_at INTEGER
);
