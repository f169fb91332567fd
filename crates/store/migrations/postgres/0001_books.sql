-- The books. Ids are uuids holding the 128-bit id's big-endian bytes (so uuid order is id
-- order); amounts and balances are BIGINT minor units; u64 timestamps and user data keep their
-- bits in BIGINT.
--
-- Account balances are written by checkpoints, as of balance_checkpoint: the current balance of
-- an account is its row plus the transfers after the checkpoint (formica_store::Store::account
-- adds them up). A batch writes only new rows, so a hot account costs one append per payment.
CREATE TABLE accounts (
    id uuid PRIMARY KEY,
    debits_pending bigint NOT NULL,
    debits_posted bigint NOT NULL,
    credits_pending bigint NOT NULL,
    credits_posted bigint NOT NULL,
    user_data_128 uuid NOT NULL,
    user_data_64 bigint NOT NULL,
    user_data_32 bigint NOT NULL,
    ledger bigint NOT NULL,
    code integer NOT NULL,
    flags integer NOT NULL,
    timestamp bigint NOT NULL,
    -- Timestamp of the account's latest transfer as of the checkpoint (0 for none).
    last_transfer bigint NOT NULL DEFAULT 0
) WITH (fillfactor = 50);
-- Half-full pages leave room for a checkpoint's new row versions on the same page (HOT
-- updates: no index entry per update).

-- Every event has its own timestamp, strictly increasing. An account's history is a chain:
-- each row names the timestamp of the previous transfer of its debit and of its credit account
-- (0 for none), so a page of history is a walk of primary-key look-ups and no index on the
-- accounts has to take a random insert per payment.
CREATE TABLE transfers (
    timestamp bigint PRIMARY KEY,
    id uuid NOT NULL UNIQUE,
    debit_account_id uuid NOT NULL,
    credit_account_id uuid NOT NULL,
    amount bigint NOT NULL,
    pending_id uuid NOT NULL,
    user_data_128 uuid NOT NULL,
    user_data_64 bigint NOT NULL,
    user_data_32 bigint NOT NULL,
    timeout bigint NOT NULL,
    ledger bigint NOT NULL,
    code integer NOT NULL,
    flags integer NOT NULL,
    debit_previous bigint NOT NULL,
    credit_previous bigint NOT NULL
);

-- Where each pending transfer stands: pending, posted, voided or expired.
CREATE TABLE pending_transfers (
    id uuid PRIMARY KEY,
    status text NOT NULL,
    -- When it was posted, voided or expired.
    settled_at bigint
);

-- The books' clock and largest transfer id, written with every batch.
CREATE TABLE books (
    singleton integer PRIMARY KEY CHECK (singleton = 1),
    timestamp bigint NOT NULL,
    transfer_id_max uuid NOT NULL
);

-- The timestamp the account balances are written as of, by every checkpoint. A row of its
-- own, so that a checkpoint written beside the batches never waits on the books row.
CREATE TABLE balance_checkpoint (
    singleton integer PRIMARY KEY CHECK (singleton = 1),
    timestamp bigint NOT NULL
);
INSERT INTO balance_checkpoint (singleton, timestamp) VALUES (1, 0);

-- Messages to deliver (webhooks, notifications), written in the same transaction as the
-- change they announce; products add their topics.
CREATE TABLE outbox (
    id bigserial PRIMARY KEY,
    timestamp bigint NOT NULL,
    topic text NOT NULL,
    payload text NOT NULL,
    delivered_at bigint
);
