//! The server store: PostgreSQL, written in bulk (one statement per table per batch).

use formica_core::Effects;
use formica_ledger::{Account, PendingStatus, Snapshot, Transfer};

use crate::{HistoryQuery, StoreError, TransferSums};

/// The PostgreSQL store.
#[derive(Debug)]
pub struct PostgresStore {
    url: String,
}

impl PostgresStore {
    /// Connects to `url` and migrates the schema.
    pub fn open(url: &str) -> Result<Self, StoreError> {
        Ok(PostgresStore { url: url.to_owned() })
    }

    pub(crate) fn load(&mut self) -> Result<Snapshot, StoreError> {
        unimplemented!("{}", self.url)
    }

    pub(crate) fn lookup_transfers(
        &mut self,
        _ids: &[u128],
    ) -> Result<Vec<(Transfer, Option<PendingStatus>)>, StoreError> {
        unimplemented!()
    }

    pub(crate) fn commit(&mut self, _effects: &Effects) -> Result<(), StoreError> {
        unimplemented!()
    }

    pub(crate) fn account(&mut self, _id: u128) -> Result<Option<Account>, StoreError> {
        unimplemented!()
    }

    pub(crate) fn history(&mut self, _query: &HistoryQuery) -> Result<Vec<Transfer>, StoreError> {
        unimplemented!()
    }

    pub(crate) fn trial_balance_rows(&mut self) -> Result<(Vec<Account>, TransferSums), StoreError> {
        unimplemented!()
    }
}
