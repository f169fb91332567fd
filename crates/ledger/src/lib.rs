//! Formica's books: double-entry accounts and transfers as a pure, deterministic state machine.
//!
//! The data model follows TigerBeetle's: an account has four balances (debits and credits,
//! pending and posted) and optional limits; a transfer moves an amount from a debit account to
//! a credit account in one ledger (one currency or asset). Transfers are single-phase, or
//! two-phase (a pending transfer reserves the amount and a later post or void settles it),
//! and events flagged `linked` form chains that succeed or fail as one.
//!
//! There is no IO, no async and no clock here: the caller passes the time in nanoseconds with
//! each batch, and every event gets a strictly increasing timestamp from it. Each event gets a
//! result code ([`CreateAccountResult`], [`CreateTransferResult`]); a rejected event changes
//! nothing. Ids seen before answer `exists` (or `exists_with_different_*`), never a second
//! movement of money.

// Money is integers: no float may creep into the books.
#![deny(clippy::float_arithmetic)]

mod account;
mod books;
mod cache;
mod result;
mod transfer;

pub use account::{Account, AccountFlags};
pub use books::{
    BATCH_EVENTS_MAX, InvariantViolation, Ledger, LedgerTotals, Snapshot, Sum, TIMESTAMP_MAX,
};
pub use result::{CreateAccountResult, CreateTransferResult};
pub use transfer::{AMOUNT_MAX, NANOS_PER_SECOND, PendingStatus, Transfer, TransferFlags};
