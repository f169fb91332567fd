-- The credit score and the consents that let merchants check it. Written by the engine's
-- batches: a person's record when their facts or score change, a consent when it is
-- granted, withdrawn or used, the daily run's cursor with each of its chunks.

CREATE TABLE credit (
    person_id bigint PRIMARY KEY,
    score bigint NOT NULL,
    -- The core's Credit as JSON: the facts and the score with its dimensions and reasons.
    state text NOT NULL
);

CREATE TABLE credit_consents (
    person_id bigint NOT NULL,
    merchant_id bigint NOT NULL,
    granted_at bigint NOT NULL,
    withdrawn_at bigint,
    checks bigint NOT NULL,
    last_checked_at bigint,
    PRIMARY KEY (person_id, merchant_id)
);
CREATE INDEX credit_consents_merchant ON credit_consents (merchant_id, person_id);

-- One row: where the daily credit run stands (the core's CreditRun as JSON).
CREATE TABLE credit_run (
    id bigint PRIMARY KEY CHECK (id = 1),
    state text NOT NULL
);

-- Deposit holds (fund authorisations): every hold, open or closed, as the core's Hold JSON.
CREATE TABLE holds (
    id bigint PRIMARY KEY,
    merchant_id bigint NOT NULL,
    person_id bigint NOT NULL,
    out_order_no text NOT NULL,
    status text NOT NULL,
    state text NOT NULL
);
CREATE INDEX holds_merchant ON holds (merchant_id, id);
CREATE INDEX holds_person ON holds (person_id, id);
CREATE INDEX holds_open ON holds (status, id);

-- Debts from charged waived deposits, as the core's Debt JSON; open until repaid.
CREATE TABLE debts (
    id bigint PRIMARY KEY,
    person_id bigint NOT NULL,
    open bigint NOT NULL,
    state text NOT NULL
);
CREATE INDEX debts_person ON debts (person_id, id);
CREATE INDEX debts_open ON debts (open, id);
