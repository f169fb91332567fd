-- Merchants, their gateway apps and keys, settlements, payment codes and the gateway's
-- notifications.
--
-- Written by the engine's batches: merchants, settlements, the new trade columns. Written by
-- plain transactions (no money moves): apps, payment_codes, notify_deliveries.

CREATE TABLE merchants (
    id bigint PRIMARY KEY,
    owner_id bigint NOT NULL,
    name text NOT NULL,
    contact text NOT NULL,
    category text NOT NULL,
    country text NOT NULL,
    currency text NOT NULL,
    card_id bigint NOT NULL,
    fee_ppm bigint NOT NULL,
    created_at bigint NOT NULL,
    -- Unsettled takings per business day, as JSON (the core's DayTotals).
    days text NOT NULL
);
CREATE INDEX merchants_owner ON merchants (owner_id, id);

CREATE TABLE apps (
    app_id text PRIMARY KEY,
    merchant_id bigint NOT NULL REFERENCES merchants (id),
    name text NOT NULL,
    -- The merchant's RSA public key (bare base64 SPKI), once uploaded.
    public_key text,
    -- The platform's key pair for this app: the private key never leaves the server.
    platform_private_key text NOT NULL,
    platform_public_key text NOT NULL,
    -- 1: the app's trades wait in escrow for the buyer's confirmation.
    escrow bigint NOT NULL,
    -- 'RSA2' or 'RSA': how the platform signs the app's notifications and returns.
    sign_type text NOT NULL DEFAULT 'RSA2',
    created_at bigint NOT NULL
);
CREATE INDEX apps_merchant ON apps (merchant_id);

CREATE TABLE settlements (
    id bigint PRIMARY KEY,
    merchant_id bigint NOT NULL,
    from_day bigint NOT NULL,
    to_day bigint NOT NULL,
    payments_minor bigint NOT NULL,
    refunds_minor bigint NOT NULL,
    fees_minor bigint NOT NULL,
    transfers_minor bigint NOT NULL,
    amount_minor bigint NOT NULL,
    currency text NOT NULL,
    movement_id bigint NOT NULL,
    created_at bigint NOT NULL
);
CREATE INDEX settlements_merchant ON settlements (merchant_id, id);

CREATE TABLE payment_codes (
    code text PRIMARY KEY,
    user_id bigint NOT NULL,
    expires_at bigint NOT NULL
);
CREATE INDEX payment_codes_user ON payment_codes (user_id);

CREATE TABLE notify_deliveries (
    id bigserial PRIMARY KEY,
    outbox_id bigint NOT NULL UNIQUE,
    merchant_id bigint NOT NULL,
    url text NOT NULL,
    -- The trade as it stood, as JSON.
    payload text NOT NULL,
    -- Stays the same across retries: merchants de-duplicate on it.
    notify_id text NOT NULL,
    status text NOT NULL,
    attempts bigint NOT NULL DEFAULT 0,
    next_attempt_at bigint NOT NULL,
    last_status bigint,
    last_error text,
    created_at bigint NOT NULL,
    delivered_at bigint
);
CREATE INDEX notify_deliveries_due ON notify_deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX notify_deliveries_merchant ON notify_deliveries (merchant_id, id);

ALTER TABLE trades ADD COLUMN escrow bigint NOT NULL DEFAULT 1;
ALTER TABLE trades ADD COLUMN app_id text;
ALTER TABLE trades ADD COLUMN fee_minor bigint;
-- Refunds of a merchant's trade, as JSON (the core's TradeRefund list).
ALTER TABLE trades ADD COLUMN refunds text;
ALTER TABLE trades ADD COLUMN notify_url text;
ALTER TABLE trades ADD COLUMN return_url text;
ALTER TABLE trades ADD COLUMN passback_params text;
CREATE INDEX trades_seller_updated ON trades (seller_id, updated_at);
-- The trades the writer loads at start: paid merchant trades stay in the store (the writer
-- recalls them when a command names them), so the index of open trades leaves them out.
DROP INDEX trades_open;
CREATE INDEX trades_live ON trades (id)
    WHERE status NOT IN ('TRADE_FINISHED', 'TRADE_CLOSED', 'TRADE_SUCCESS');
-- Paid merchant trades, for the sweep that finishes them when their refund window is over.
CREATE INDEX trades_success_paid ON trades (paid_at) WHERE status = 'TRADE_SUCCESS';
