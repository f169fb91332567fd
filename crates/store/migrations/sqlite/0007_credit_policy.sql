-- The credit line's rules as an operator set them (the core's CreditPolicy as JSON). No row:
-- the defaults.

CREATE TABLE credit_policy (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    state TEXT NOT NULL
);
