-- The first products: people and their wallets' limits, bank movements, transfers between
-- people, escrow trades, idempotency keys, and webhooks. Ids are time-ordered 64-bit integers
-- made by the core; amounts are minor units with an ISO 4217 code; times are nanoseconds
-- since the epoch.
--
-- Written by the engine's batches (the core's rows): people, spending, movements,
-- person_transfers, trades, idempotency_keys, outbox. Written by plain transactions (no money
-- moves): users, sessions, bank_cards, webhook_endpoints, webhook_deliveries.

ALTER TABLE books ADD COLUMN id_last bigint NOT NULL DEFAULT 0;
ALTER TABLE outbox ADD COLUMN user_id bigint;
CREATE INDEX outbox_waiting ON outbox (id) WHERE delivered_at IS NULL;

CREATE TABLE users (
    id bigint PRIMARY KEY,
    -- A phone number or a lower-cased email address.
    login text NOT NULL UNIQUE,
    display_name text NOT NULL,
    password_hash text NOT NULL,
    pin_hash text,
    pin_failures integer NOT NULL DEFAULT 0,
    pin_locked_until bigint NOT NULL DEFAULT 0,
    signin_failures integer NOT NULL DEFAULT 0,
    signin_locked_until bigint NOT NULL DEFAULT 0,
    -- 'person' or 'operator'.
    role text NOT NULL,
    created_at bigint NOT NULL
);

CREATE TABLE sessions (
    -- SHA-256 of the bearer token: a stolen database holds no usable token.
    token_hash text PRIMARY KEY,
    user_id bigint NOT NULL REFERENCES users (id),
    created_at bigint NOT NULL,
    expires_at bigint NOT NULL
);

CREATE TABLE bank_cards (
    id bigint PRIMARY KEY,
    user_id bigint NOT NULL REFERENCES users (id),
    bank text NOT NULL,
    last4 text NOT NULL,
    holder text NOT NULL,
    created_at bigint NOT NULL
);
CREATE INDEX bank_cards_user ON bank_cards (user_id, id);

CREATE TABLE people (
    user_id bigint PRIMARY KEY,
    level text NOT NULL
);

CREATE TABLE spending (
    user_id bigint NOT NULL,
    currency text NOT NULL,
    day bigint NOT NULL,
    spent_minor bigint NOT NULL,
    PRIMARY KEY (user_id, currency)
);

CREATE TABLE movements (
    id bigint PRIMARY KEY,
    user_id bigint NOT NULL,
    kind text NOT NULL,
    amount_minor bigint NOT NULL,
    currency text NOT NULL,
    card_id bigint NOT NULL,
    status text NOT NULL,
    failure text,
    created_at bigint NOT NULL,
    settled_at bigint,
    deadline bigint NOT NULL,
    hold uuid
);
CREATE INDEX movements_user ON movements (user_id, id);
CREATE INDEX movements_open ON movements (id) WHERE status = 'pending';

CREATE TABLE person_transfers (
    id bigint PRIMARY KEY,
    from_user_id bigint NOT NULL,
    to_user_id bigint NOT NULL,
    amount_minor bigint NOT NULL,
    currency text NOT NULL,
    note text NOT NULL,
    created_at bigint NOT NULL
);
CREATE INDEX person_transfers_from ON person_transfers (from_user_id, id);
CREATE INDEX person_transfers_to ON person_transfers (to_user_id, id);

CREATE TABLE trades (
    id bigint PRIMARY KEY,
    seller_id bigint NOT NULL,
    buyer_id bigint,
    out_trade_no text NOT NULL,
    subject text NOT NULL,
    amount_minor bigint NOT NULL,
    currency text NOT NULL,
    status text NOT NULL,
    refunded_minor bigint NOT NULL,
    tracking text,
    refund_amount_minor bigint,
    refund_reason text,
    refund_requested_at bigint,
    refund_resume text,
    refund_paused_ns bigint,
    close_reason text,
    deadline bigint,
    created_at bigint NOT NULL,
    paid_at bigint,
    updated_at bigint NOT NULL,
    hold uuid,
    UNIQUE (seller_id, out_trade_no)
);
CREATE INDEX trades_buyer ON trades (buyer_id, id);
CREATE INDEX trades_open ON trades (id) WHERE status NOT IN ('TRADE_FINISHED', 'TRADE_CLOSED');

CREATE TABLE idempotency_keys (
    owner bigint NOT NULL,
    key text NOT NULL,
    fingerprint text NOT NULL,
    -- The core's answer as JSON: Ok(outcome) or Err(refusal).
    outcome text NOT NULL,
    created_at bigint NOT NULL,
    PRIMARY KEY (owner, key)
);

CREATE TABLE webhook_endpoints (
    id bigint PRIMARY KEY,
    user_id bigint NOT NULL REFERENCES users (id),
    url text NOT NULL,
    secret text NOT NULL,
    created_at bigint NOT NULL
);
CREATE INDEX webhook_endpoints_user ON webhook_endpoints (user_id, id);

CREATE TABLE webhook_deliveries (
    id bigserial PRIMARY KEY,
    endpoint_id bigint NOT NULL REFERENCES webhook_endpoints (id),
    outbox_id bigint NOT NULL,
    user_id bigint NOT NULL,
    topic text NOT NULL,
    payload text NOT NULL,
    -- 'pending', 'delivered' or 'failed' (gave up after a day of retries).
    status text NOT NULL,
    attempts integer NOT NULL DEFAULT 0,
    next_attempt_at bigint NOT NULL,
    last_status integer,
    last_error text,
    created_at bigint NOT NULL,
    delivered_at bigint,
    UNIQUE (outbox_id, endpoint_id)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_endpoint ON webhook_deliveries (endpoint_id, id);
