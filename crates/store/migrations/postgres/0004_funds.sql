-- The pocket-money fund: funds, holdings, subscriptions, redemptions, daily incomes and the
-- operator's holiday calendar. All written by the engine's batches. Each holder's daily
-- earnings are the transfers of kind FUND_EARNINGS (13) to their units account, the day in
-- user_data_64.

CREATE TABLE funds (
    id bigint PRIMARY KEY,
    name text NOT NULL,
    currency text NOT NULL,
    -- The core's Fund as JSON: rules, the accrual in progress (its cursor), the last incomes.
    state text NOT NULL
);

-- A holder's units are their units account's (the books): not kept here, so that a day's
-- earnings write nothing but their transfers.
CREATE TABLE fund_holdings (
    fund_id bigint NOT NULL REFERENCES funds (id),
    holder_id bigint NOT NULL,
    pending bigint NOT NULL,
    -- Changes dated after the last accrued day when written, as JSON [[day, delta], ...].
    recent text NOT NULL,
    instant_day bigint NOT NULL,
    instant_used bigint NOT NULL,
    PRIMARY KEY (fund_id, holder_id)
);
CREATE INDEX fund_holdings_holder ON fund_holdings (holder_id);

CREATE TABLE fund_subscriptions (
    id bigint PRIMARY KEY,
    fund_id bigint NOT NULL,
    holder_id bigint NOT NULL,
    amount_minor bigint NOT NULL,
    currency text NOT NULL,
    confirm_day bigint NOT NULL,
    confirmed bigint NOT NULL,
    created_at bigint NOT NULL,
    -- The pending units transfer (a 128-bit id, as decimal text).
    units_transfer text NOT NULL
);
CREATE INDEX fund_subscriptions_holder ON fund_subscriptions (holder_id, id);
CREATE INDEX fund_subscriptions_open ON fund_subscriptions (confirmed, id);

CREATE TABLE fund_redemptions (
    id bigint PRIMARY KEY,
    fund_id bigint NOT NULL,
    holder_id bigint NOT NULL,
    amount_minor bigint NOT NULL,
    currency text NOT NULL,
    instant bigint NOT NULL,
    pay_day bigint NOT NULL,
    paid bigint NOT NULL,
    created_at bigint NOT NULL,
    money_transfer text NOT NULL
);
CREATE INDEX fund_redemptions_holder ON fund_redemptions (holder_id, id);
CREATE INDEX fund_redemptions_open ON fund_redemptions (paid, id);

CREATE TABLE fund_incomes (
    fund_id bigint NOT NULL,
    day bigint NOT NULL,
    -- Per 10,000 units, as a decimal string ("0.9312").
    income text NOT NULL,
    PRIMARY KEY (fund_id, day)
);

CREATE TABLE holidays (
    day bigint PRIMARY KEY
);
