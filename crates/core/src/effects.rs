//! What a batch changed, as rows for the store to write in one transaction, and what a
//! checkpoint writes between batches.
//!
//! A batch writes only what is new: transfers (each with the previous transfer of its two
//! accounts, so that an account's history is a chain through the transfers table), accounts
//! created, and pending transfers whose status changed. Balances are written by checkpoints,
//! once per account however many batches changed it; a store rebuilds the balances after its
//! last checkpoint from the transfers that follow it.

use formica_ledger::{Account, PendingStatus, Snapshot, Transfer};

/// The effects of one batch.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Effects {
    /// Timestamp of the last event applied (the books' clock after the batch).
    pub timestamp: u64,
    /// The largest transfer id ever created.
    pub transfer_id_max: u128,
    /// Every account created, as created (zero balances), sorted by id.
    pub accounts: Vec<Account>,
    /// Every transfer created, in the order applied.
    pub transfers: Vec<TransferRow>,
    /// Every pending transfer created or settled, with its final status, sorted by id.
    pub pending_status: Vec<PendingChange>,
    /// The products' rows.
    pub products: crate::ProductEffects,
}

/// A transfer as stored, linked to the previous transfer of each of its accounts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TransferRow {
    /// The transfer as the ledger stored it.
    pub transfer: Transfer,
    /// Timestamp of the debit account's previous transfer; zero if this is its first.
    pub debit_previous: u64,
    /// Timestamp of the credit account's previous transfer; zero if this is its first.
    pub credit_previous: u64,
}

impl TransferRow {
    /// The timestamp of `account`'s transfer before this one (zero for none).
    pub fn previous_of(&self, account: u128) -> u64 {
        if self.transfer.debit_account_id == account {
            self.debit_previous
        } else {
            self.credit_previous
        }
    }
}

/// Where a pending transfer stands after a batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PendingChange {
    /// The pending transfer.
    pub id: u128,
    /// Its status.
    pub status: PendingStatus,
    /// When it was posted, voided or expired; `None` while pending.
    pub settled_at: Option<u64>,
}

/// Balances to write between batches: every account changed since the last checkpoint, as
/// of `timestamp`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Checkpoint {
    /// The books' clock at the checkpoint: the balances include every event up to it.
    pub timestamp: u64,
    /// The accounts, sorted by id, each with the timestamp of its latest transfer.
    pub accounts: Vec<(Account, u64)>,
}

/// What a store loads at start: the books, and the head of every account's history chain.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Loaded {
    /// Balances (including everything after the last checkpoint), open pending transfers, clock.
    pub snapshot: Snapshot,
    /// Per account that has transfers, the timestamp of its latest one.
    pub heads: Vec<(u128, u64)>,
    /// Accounts changed after the last checkpoint: their rows are stale until the next
    /// checkpoint writes them, so the core starts with them dirty.
    pub changed_since_checkpoint: Vec<u128>,
    /// People and the products' open objects.
    pub products: crate::ProductsLoaded,
}
