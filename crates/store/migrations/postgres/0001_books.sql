-- The books. Ids are uuids (the 128-bit id's bytes); amounts and balances are BIGINT minor units.
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

CREATE TABLE pending_transfers (
    id uuid PRIMARY KEY,
    status text NOT NULL
);

CREATE TABLE books (
    singleton integer PRIMARY KEY CHECK (singleton = 1),
    timestamp bigint NOT NULL,
    transfer_id_max uuid NOT NULL
);

CREATE TABLE outbox (
    id bigserial PRIMARY KEY,
    timestamp bigint NOT NULL,
    topic text NOT NULL,
    payload text NOT NULL,
    delivered_at bigint
);
