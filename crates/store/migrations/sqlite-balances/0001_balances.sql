-- balances.sqlite3: the account balances as of the last checkpoint, in a file of their own so
-- that the checkpoint thread writes them without taking formica.sqlite3's write lock (SQLite
-- has one writer per file). The books' file only appends; an account with no row here has the
-- balances of its row in formica.sqlite3's accounts table (what a checkpoint wrote there
-- before this file existed, or nothing since its creation).
CREATE TABLE balances (
    id BLOB PRIMARY KEY,
    debits_pending INTEGER NOT NULL,
    debits_posted INTEGER NOT NULL,
    credits_pending INTEGER NOT NULL,
    credits_posted INTEGER NOT NULL,
    flags INTEGER NOT NULL,
    -- Timestamp of the account's latest transfer as of the checkpoint (0 for none).
    last_transfer INTEGER NOT NULL
) WITHOUT ROWID;

-- The timestamp the balances are written as of. Every transfer up to it is in the books' file
-- before a checkpoint is written, so this file is never ahead of the books.
CREATE TABLE balance_checkpoint (
    singleton INTEGER PRIMARY KEY CHECK (singleton = 1),
    timestamp INTEGER NOT NULL
);
