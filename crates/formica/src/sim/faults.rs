//! A real store that fails when the seed says so: reads that fail, commits that fail before
//! the transaction reaches the database, and commits that reach it but whose answer is lost
//! (the connection drops after COMMIT was sent), so that the writer cannot tell which.

use formica_core::{Checkpoint, Effects, Id};
use formica_engine::batch::{BatchStore, Recalled};
use formica_ledger::{PendingStatus, Transfer};
use formica_store::{Store, StoreError};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// How often each fault happens, in parts per thousand of the calls.
#[derive(Clone, Copy, Debug)]
pub struct Rates {
    /// A read before the batch fails.
    pub read: u32,
    /// A commit fails and nothing is written.
    pub commit_before: u32,
    /// A commit is written but reported failed.
    pub commit_after: u32,
    /// A checkpoint fails (half of them after writing).
    pub checkpoint: u32,
}

impl Default for Rates {
    fn default() -> Self {
        Rates {
            read: 20,
            commit_before: 50,
            commit_after: 40,
            checkpoint: 100,
        }
    }
}

/// What became of the last commit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fate {
    /// Not attempted (a read failed first).
    NotTried,
    /// Written and reported written.
    Written,
    /// Not written, reported failed.
    FailedBefore,
    /// Written, reported failed.
    FailedAfter,
    /// Reported written, but not written: a store that lies (only to prove the checker
    /// catches it).
    Lost,
}

/// The store under test and its faults.
#[derive(Debug)]
pub struct FaultyStore {
    /// The real store.
    pub store: Store,
    rng: SmallRng,
    rates: Rates,
    /// Whether commits are sometimes acknowledged without being written.
    lying: bool,
    /// What became of the last commit.
    pub fate: Fate,
}

impl FaultyStore {
    pub fn new(store: Store, seed: u64, rates: Rates, lying: bool) -> Self {
        FaultyStore {
            store,
            rng: SmallRng::seed_from_u64(seed),
            rates,
            lying,
            fate: Fate::NotTried,
        }
    }

    fn roll(&mut self, per_mille: u32) -> bool {
        self.rng.random_range(0..1000) < per_mille
    }

    fn injected(what: &str) -> StoreError {
        StoreError::Corrupt(format!("injected fault: {what}"))
    }

    /// Writes a checkpoint, or fails to (before or after writing it).
    pub fn checkpoint(&mut self, checkpoint: &Checkpoint) -> Result<(), StoreError> {
        if self.roll(self.rates.checkpoint) {
            if self.rng.random_bool(0.5) {
                self.store.checkpoint(checkpoint)?;
            }
            return Err(Self::injected("checkpoint"));
        }
        self.store.checkpoint(checkpoint)
    }
}

impl BatchStore for FaultyStore {
    fn lookup_transfers(
        &mut self,
        ids: &[u128],
    ) -> Result<Vec<(Transfer, Option<PendingStatus>)>, StoreError> {
        if self.roll(self.rates.read) {
            return Err(Self::injected("transfer look-up"));
        }
        self.store.lookup_transfers(ids)
    }

    fn saved_keys(
        &mut self,
        keys: &[(Id, String)],
    ) -> Result<Vec<formica_store::wallet::SavedKey>, StoreError> {
        if self.roll(self.rates.read) {
            return Err(Self::injected("idempotency keys"));
        }
        self.store.saved_keys(keys)
    }

    fn recall(&mut self, trades: &[Id], numbers: &[(Id, String)]) -> Result<Recalled, StoreError> {
        if self.roll(self.rates.read) {
            return Err(Self::injected("trades"));
        }
        BatchStore::recall(&mut self.store, trades, numbers)
    }

    fn commit(&mut self, effects: &Effects) -> Result<(), StoreError> {
        if self.lying && self.roll(self.rates.commit_after) {
            self.fate = Fate::Lost;
            return Ok(());
        }
        if self.roll(self.rates.commit_before) {
            self.fate = Fate::FailedBefore;
            return Err(Self::injected("commit"));
        }
        if let Err(error) = self.store.commit(effects) {
            self.fate = Fate::FailedBefore;
            return Err(error);
        }
        if self.roll(self.rates.commit_after) {
            self.fate = Fate::FailedAfter;
            return Err(Self::injected("answer to a written commit"));
        }
        self.fate = Fate::Written;
        Ok(())
    }
}
