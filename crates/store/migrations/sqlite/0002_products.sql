-- The first products: people and their wallets' limits, bank movements, transfers between
-- people, escrow trades, idempotency keys, and webhooks. Ids are time-ordered 64-bit integers
-- made by the core; amounts are minor units with an ISO 4217 code; times are nanoseconds
-- since the epoch.
--
-- Written by the engine's batches (the core's rows): people, spending, movements,
-- person_transfers, trades, idempotency_keys, outbox. Written by plain transactions (no money
-- moves): users, sessions, bank_cards, webhook_endpoints, webhook_deliveries.

ALTER TABLE books ADD COLUMN id_last INTEGER NOT NULL DEFAULT 0;
ALTER TABLE outbox ADD COLUMN user_id INTEGER;
CREATE INDEX outbox_waiting ON outbox (id) WHERE delivered_at IS NULL;

CREATE TABLE users (
    id INTEGER PRIMARY KEY,
    -- A phone number or a lower-cased email address.
    login TEXT NOT NULL UNIQUE,
    display_name TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    pin_hash TEXT,
    pin_failures INTEGER NOT NULL DEFAULT 0,
    pin_locked_until INTEGER NOT NULL DEFAULT 0,
    signin_failures INTEGER NOT NULL DEFAULT 0,
    signin_locked_until INTEGER NOT NULL DEFAULT 0,
    -- 'person' or 'operator'.
    role TEXT NOT NULL,
    created_at INTEGER NOT NULL
);

CREATE TABLE sessions (
    -- SHA-256 of the bearer token: a stolen database holds no usable token.
    token_hash TEXT PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users (id),
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);

CREATE TABLE bank_cards (
    id INTEGER PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users (id),
    bank TEXT NOT NULL,
    last4 TEXT NOT NULL,
    holder TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX bank_cards_user ON bank_cards (user_id, id);

CREATE TABLE people (
    user_id INTEGER PRIMARY KEY,
    level TEXT NOT NULL
);

CREATE TABLE spending (
    user_id INTEGER NOT NULL,
    currency TEXT NOT NULL,
    day INTEGER NOT NULL,
    spent_minor INTEGER NOT NULL,
    PRIMARY KEY (user_id, currency)
);

CREATE TABLE movements (
    id INTEGER PRIMARY KEY,
    user_id INTEGER NOT NULL,
    kind TEXT NOT NULL,
    amount_minor INTEGER NOT NULL,
    currency TEXT NOT NULL,
    card_id INTEGER NOT NULL,
    status TEXT NOT NULL,
    failure TEXT,
    created_at INTEGER NOT NULL,
    settled_at INTEGER,
    deadline INTEGER NOT NULL,
    hold BLOB
);
CREATE INDEX movements_user ON movements (user_id, id);
CREATE INDEX movements_open ON movements (id) WHERE status = 'pending';

CREATE TABLE person_transfers (
    id INTEGER PRIMARY KEY,
    from_user_id INTEGER NOT NULL,
    to_user_id INTEGER NOT NULL,
    amount_minor INTEGER NOT NULL,
    currency TEXT NOT NULL,
    note TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX person_transfers_from ON person_transfers (from_user_id, id);
CREATE INDEX person_transfers_to ON person_transfers (to_user_id, id);

CREATE TABLE trades (
    id INTEGER PRIMARY KEY,
    seller_id INTEGER NOT NULL,
    buyer_id INTEGER,
    out_trade_no TEXT NOT NULL,
    subject TEXT NOT NULL,
    amount_minor INTEGER NOT NULL,
    currency TEXT NOT NULL,
    status TEXT NOT NULL,
    refunded_minor INTEGER NOT NULL,
    tracking TEXT,
    refund_amount_minor INTEGER,
    refund_reason TEXT,
    refund_requested_at INTEGER,
    refund_resume TEXT,
    refund_paused_ns INTEGER,
    close_reason TEXT,
    deadline INTEGER,
    created_at INTEGER NOT NULL,
    paid_at INTEGER,
    updated_at INTEGER NOT NULL,
    hold BLOB,
    UNIQUE (seller_id, out_trade_no)
);
CREATE INDEX trades_buyer ON trades (buyer_id, id);
CREATE INDEX trades_open ON trades (id) WHERE status NOT IN ('TRADE_FINISHED', 'TRADE_CLOSED');

CREATE TABLE idempotency_keys (
    owner INTEGER NOT NULL,
    key TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    -- The core's answer as JSON: Ok(outcome) or Err(refusal).
    outcome TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (owner, key)
);

CREATE TABLE webhook_endpoints (
    id INTEGER PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users (id),
    url TEXT NOT NULL,
    secret TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX webhook_endpoints_user ON webhook_endpoints (user_id, id);

CREATE TABLE webhook_deliveries (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    endpoint_id INTEGER NOT NULL REFERENCES webhook_endpoints (id),
    outbox_id INTEGER NOT NULL,
    user_id INTEGER NOT NULL,
    topic TEXT NOT NULL,
    payload TEXT NOT NULL,
    -- 'pending', 'delivered' or 'failed' (gave up after a day of retries).
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    last_status INTEGER,
    last_error TEXT,
    created_at INTEGER NOT NULL,
    delivered_at INTEGER,
    UNIQUE (outbox_id, endpoint_id)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_endpoint ON webhook_deliveries (endpoint_id, id);
