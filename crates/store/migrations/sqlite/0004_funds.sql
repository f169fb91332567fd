-- The pocket-money fund: funds, holdings, subscriptions, redemptions, daily incomes and each
-- holder's daily earnings, and the operator's holiday calendar. All written by the engine's
-- batches.

CREATE TABLE funds (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    currency TEXT NOT NULL,
    -- The core's Fund as JSON: rules, the accrual in progress (its cursor), the last incomes.
    state TEXT NOT NULL
);

CREATE TABLE fund_holdings (
    fund_id INTEGER NOT NULL REFERENCES funds (id),
    holder_id INTEGER NOT NULL,
    units INTEGER NOT NULL,
    pending INTEGER NOT NULL,
    -- Changes dated after the last accrued day, as JSON [[day, delta], ...].
    recent TEXT NOT NULL,
    instant_day INTEGER NOT NULL,
    instant_used INTEGER NOT NULL,
    earned_total INTEGER NOT NULL,
    last_day INTEGER NOT NULL,
    last_earned INTEGER NOT NULL,
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

CREATE TABLE fund_earnings (
    fund_id INTEGER NOT NULL,
    holder_id INTEGER NOT NULL,
    day INTEGER NOT NULL,
    amount_minor INTEGER NOT NULL,
    PRIMARY KEY (fund_id, holder_id, day)
);

CREATE TABLE holidays (
    day INTEGER PRIMARY KEY
);
