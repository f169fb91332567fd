-- Merchants, their gateway apps and keys, settlements, payment codes and the gateway's
-- notifications.
--
-- Written by the engine's batches: merchants, settlements, the new trade columns. Written by
-- plain transactions (no money moves): apps, payment_codes, notify_deliveries.

CREATE TABLE merchants (
    id INTEGER PRIMARY KEY,
    owner_id INTEGER NOT NULL,
    name TEXT NOT NULL,
    contact TEXT NOT NULL,
    category TEXT NOT NULL,
    country TEXT NOT NULL,
    currency TEXT NOT NULL,
    card_id INTEGER NOT NULL,
    fee_ppm INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    -- Unsettled takings per business day, as JSON (the core's DayTotals).
    days TEXT NOT NULL
);
CREATE INDEX merchants_owner ON merchants (owner_id, id);

CREATE TABLE apps (
    app_id TEXT PRIMARY KEY,
    merchant_id INTEGER NOT NULL REFERENCES merchants (id),
    name TEXT NOT NULL,
    -- The merchant's RSA public key (bare base64 SPKI), once uploaded.
    public_key TEXT,
    -- The platform's key pair for this app: the private key never leaves the server.
    platform_private_key TEXT NOT NULL,
    platform_public_key TEXT NOT NULL,
    -- 1: the app's trades wait in escrow for the buyer's confirmation.
    escrow INTEGER NOT NULL,
    -- 'RSA2' or 'RSA': how the platform signs the app's notifications and returns.
    sign_type TEXT NOT NULL DEFAULT 'RSA2',
    created_at INTEGER NOT NULL
);
CREATE INDEX apps_merchant ON apps (merchant_id);

CREATE TABLE settlements (
    id INTEGER PRIMARY KEY,
    merchant_id INTEGER NOT NULL,
    from_day INTEGER NOT NULL,
    to_day INTEGER NOT NULL,
    payments_minor INTEGER NOT NULL,
    refunds_minor INTEGER NOT NULL,
    fees_minor INTEGER NOT NULL,
    transfers_minor INTEGER NOT NULL,
    amount_minor INTEGER NOT NULL,
    currency TEXT NOT NULL,
    movement_id INTEGER NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX settlements_merchant ON settlements (merchant_id, id);

CREATE TABLE payment_codes (
    code TEXT PRIMARY KEY,
    user_id INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX payment_codes_user ON payment_codes (user_id);

CREATE TABLE notify_deliveries (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    outbox_id INTEGER NOT NULL UNIQUE,
    merchant_id INTEGER NOT NULL,
    url TEXT NOT NULL,
    -- The trade as it stood, as JSON.
    payload TEXT NOT NULL,
    -- Stays the same across retries: merchants de-duplicate on it.
    notify_id TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    last_status INTEGER,
    last_error TEXT,
    created_at INTEGER NOT NULL,
    delivered_at INTEGER
);
CREATE INDEX notify_deliveries_due ON notify_deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX notify_deliveries_merchant ON notify_deliveries (merchant_id, id);

ALTER TABLE trades ADD COLUMN escrow INTEGER NOT NULL DEFAULT 1;
ALTER TABLE trades ADD COLUMN app_id TEXT;
ALTER TABLE trades ADD COLUMN fee_minor INTEGER;
-- Refunds of a merchant's trade, as JSON (the core's TradeRefund list).
ALTER TABLE trades ADD COLUMN refunds TEXT;
ALTER TABLE trades ADD COLUMN notify_url TEXT;
ALTER TABLE trades ADD COLUMN return_url TEXT;
ALTER TABLE trades ADD COLUMN passback_params TEXT;
CREATE INDEX trades_seller_updated ON trades (seller_id, updated_at);
-- The trades the writer loads at start: paid merchant trades stay in the store (the writer
-- recalls them when a command names them), so the index of open trades leaves them out.
DROP INDEX trades_open;
CREATE INDEX trades_live ON trades (id)
    WHERE status NOT IN ('TRADE_FINISHED', 'TRADE_CLOSED', 'TRADE_SUCCESS');
-- Paid merchant trades, for the sweep that finishes them when their refund window is over.
CREATE INDEX trades_success_paid ON trades (paid_at) WHERE status = 'TRADE_SUCCESS';
