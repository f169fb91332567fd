-- Credit lines (Huabei) and their monthly statements. Written by the engine's batches: a
-- line whenever it changes (the core's CreditLine as JSON, its current statement inside),
-- and that statement as its own row, so that past statements stay readable.

CREATE TABLE credit_lines (
    person_id bigint PRIMARY KEY,
    overdue bigint NOT NULL,
    state text NOT NULL
);
CREATE INDEX credit_lines_overdue ON credit_lines (overdue, person_id);

CREATE TABLE credit_statements (
    id bigint PRIMARY KEY,
    person_id bigint NOT NULL,
    state text NOT NULL
);
CREATE INDEX credit_statements_person ON credit_statements (person_id, id);

-- A trade paid from a credit line: what of it went back to the line (the core's
-- TradeCredit as JSON).
ALTER TABLE trades ADD COLUMN credit text;
