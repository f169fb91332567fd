-- The books. Ids are uuids holding the 128-bit id's big-endian bytes (so uuid order is id
-- order); amounts and balances are BIGINT minor units; u64 timestamps and user data keep their
-- bits in BIGINT.
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
    timestamp bigint NOT NULL
);

-- Every event has its own timestamp, strictly increasing. The account indexes are ordered by
-- (account, timestamp) so that a history page walks one index backwards per side.
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
    flags integer NOT NULL
);
CREATE INDEX transfers_debit_account ON transfers (debit_account_id, timestamp);
CREATE INDEX transfers_credit_account ON transfers (credit_account_id, timestamp);

-- Where each pending transfer stands: pending, posted, voided or expired.
CREATE TABLE pending_transfers (
    id uuid PRIMARY KEY,
    status text NOT NULL
);

-- The books' clock and largest transfer id, written with every batch.
CREATE TABLE books (
    singleton integer PRIMARY KEY CHECK (singleton = 1),
    timestamp bigint NOT NULL,
    transfer_id_max uuid NOT NULL
);

-- Messages to deliver (webhooks, notifications), written in the same transaction as the
-- change they announce; products add their topics.
CREATE TABLE outbox (
    id bigserial PRIMARY KEY,
    timestamp bigint NOT NULL,
    topic text NOT NULL,
    payload text NOT NULL,
    delivered_at bigint
);
