//! What a batch changed, as rows for the store to write in one transaction.

use formica_ledger::{Account, PendingStatus, Transfer};

/// The effects of one batch.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Effects {
    /// Timestamp of the last event applied (the books' clock after the batch).
    pub timestamp: u64,
    /// The largest transfer id ever created.
    pub transfer_id_max: u128,
    /// Every account created or changed, in its final state, sorted by id, once each.
    pub accounts: Vec<Account>,
    /// Every transfer created, in the order applied.
    pub transfers: Vec<Transfer>,
    /// Every pending transfer created or settled, with its final status, sorted by id.
    pub pending_status: Vec<(u128, PendingStatus)>,
}

impl Effects {
    /// Whether the batch changed nothing the store keeps (besides the clock).
    pub fn is_empty(&self) -> bool {
        self.accounts.is_empty() && self.transfers.is_empty() && self.pending_status.is_empty()
    }
}
