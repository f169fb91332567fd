-- The pocket-money fund: funds, holdings, subscriptions, redemptions, daily incomes and the
-- operator's holiday calendar. All written by the engine's batches. Each holder's daily
-- earnings are the transfers of kind FUND_EARNINGS (13) to their units account, the day in
-- user_data_64.

CREATE TABLE funds (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    currency TEXT NOT NULL,
    -- The core's Fund as JSON: rules, the accrual in progress (its cursor), the last incomes.
    state TEXT NOT NULL
);

-- A holder's units are their units account's (the books): not kept here, so that a day's
-- earnings write nothing but their transfers.
CREATE TABLE fund_holdings (
    fund_id INTEGER NOT NULL REFERENCES funds (id),
    holder_id INTEGER NOT NULL,
    pending INTEGER NOT NULL,
    -- Changes dated after the last accrued day when written, as JSON [[day, delta], ...].
    recent TEXT NOT NULL,
    instant_day INTEGER NOT NULL,
    instant_used INTEGER NOT NULL,
    PRIMARY KEY (fund_id, holder_id)
);
CREATE INDEX fund_holdings_holder ON fund_holdings (holder_id);

CREATE TABLE fund_subscriptions (
    id INTEGER PRIMARY KEY,
    fund_id INTEGER NOT NULL,
    holder_id INTEGER NOT NULL,
    amount_minor INTEGER NOT NULL,
    currency TEXT NOT NULL,
    confirm_day INTEGER NOT NULL,
    confirmed INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    -- The pending units transfer (a 128-bit id, as decimal text).
    units_transfer TEXT NOT NULL
);
CREATE INDEX fund_subscriptions_holder ON fund_subscriptions (holder_id, id);
CREATE INDEX fund_subscriptions_open ON fund_subscriptions (confirmed, id);

CREATE TABLE fund_redemptions (
    id INTEGER PRIMARY KEY,
    fund_id INTEGER NOT NULL,
    holder_id INTEGER NOT NULL,
    amount_minor INTEGER NOT NULL,
    currency TEXT NOT NULL,
    instant INTEGER NOT NULL,
    pay_day INTEGER NOT NULL,
    paid INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    money_transfer TEXT NOT NULL
);
CREATE INDEX fund_redemptions_holder ON fund_redemptions (holder_id, id);
CREATE INDEX fund_redemptions_open ON fund_redemptions (paid, id);

CREATE TABLE fund_incomes (
    fund_id INTEGER NOT NULL,
    day INTEGER NOT NULL,
    -- Per 10,000 units, as a decimal string ("0.9312").
    income TEXT NOT NULL,
    PRIMARY KEY (fund_id, day)
);

CREATE TABLE holidays (
    day INTEGER PRIMARY KEY
);
