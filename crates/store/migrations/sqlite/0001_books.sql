-- The books. Ids are 16-byte big-endian blobs; amounts and balances are INTEGER minor units.
--
-- Account balances are written by checkpoints, as of balance_checkpoint: the current balance of
-- an account is its row plus the transfers after the checkpoint (formica_store::Store::account
-- adds them up). A batch writes only new rows, so a hot account costs one append per payment.
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
    timestamp INTEGER NOT NULL,
    -- Timestamp of the account's latest transfer as of the checkpoint (0 for none).
    last_transfer INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;

-- Every event has its own timestamp, strictly increasing: it is the row id, so inserts append.
-- An account's history is a chain: each row names the timestamp of the previous transfer of its
-- debit and of its credit account (0 for none), so a page of history is a walk of row-id
-- look-ups and no index on the accounts has to take a random insert per payment.
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
    flags INTEGER NOT NULL,
    debit_previous INTEGER NOT NULL,
    credit_previous INTEGER NOT NULL
);

-- Where each pending transfer stands: pending, posted, voided or expired.
CREATE TABLE pending_transfers (
    id BLOB PRIMARY KEY,
    status TEXT NOT NULL,
    -- When it was posted, voided or expired.
    settled_at INTEGER
) WITHOUT ROWID;

-- The books' clock and largest transfer id, written with every batch.
CREATE TABLE books (
    singleton INTEGER PRIMARY KEY CHECK (singleton = 1),
    timestamp INTEGER NOT NULL,
    transfer_id_max BLOB NOT NULL
);

-- The timestamp the account balances are written as of, by every checkpoint. A row of its
-- own, so that a checkpoint written beside the batches never waits on the books row.
CREATE TABLE balance_checkpoint (
    singleton INTEGER PRIMARY KEY CHECK (singleton = 1),
    timestamp INTEGER NOT NULL
);
INSERT INTO balance_checkpoint (singleton, timestamp) VALUES (1, 0);

-- Messages to deliver (webhooks, notifications), written in the same transaction as the
-- change they announce; products add their topics.
CREATE TABLE outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    timestamp INTEGER NOT NULL,
    topic TEXT NOT NULL,
    payload TEXT NOT NULL,
    delivered_at INTEGER
);
