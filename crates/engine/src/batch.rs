//! One batch, start to finish: what the commands name is fetched from the store, the core
//! applies the commands, and the batch's effects are committed in one transaction. The
//! writer thread runs every batch through here, and so does the simulator (`formica sim`),
//! against a store that fails on purpose: the code under test is the code that runs.

use std::time::{Duration, Instant};

use formica_core::{Command, CommandError, Core, Effects, Id, Reply};
use formica_ledger::{PendingStatus, Transfer};
use formica_store::{Store, StoreError};

/// What a batch needs of the store. `Store` is the real one; the simulator wraps it to fail
/// reads and commits when its seed says so.
pub trait BatchStore {
    /// Stored transfers with these ids, with their status when pending.
    fn lookup_transfers(
        &mut self,
        ids: &[u128],
    ) -> Result<Vec<(Transfer, Option<PendingStatus>)>, StoreError>;

    /// The saved idempotency keys among `keys`.
    fn saved_keys(
        &mut self,
        keys: &[(Id, String)],
    ) -> Result<Vec<formica_store::wallet::SavedKey>, StoreError>;

    /// The stored trades with these ids, and which of these (seller, number) pairs are taken.
    fn recall(&mut self, trades: &[Id], numbers: &[(Id, String)]) -> Result<Recalled, StoreError>;

    /// Writes one batch's effects in one transaction; durable when this returns `Ok`.
    fn commit(&mut self, effects: &Effects) -> Result<(), StoreError>;
}

/// Trades and taken numbers read from the store for a batch.
pub type Recalled = (Vec<formica_core::trade::Trade>, Vec<(Id, String)>);

impl BatchStore for Store {
    fn lookup_transfers(
        &mut self,
        ids: &[u128],
    ) -> Result<Vec<(Transfer, Option<PendingStatus>)>, StoreError> {
        Store::lookup_transfers(self, ids)
    }

    fn saved_keys(
        &mut self,
        keys: &[(Id, String)],
    ) -> Result<Vec<formica_store::wallet::SavedKey>, StoreError> {
        Store::saved_keys(self, keys)
    }

    fn recall(&mut self, trades: &[Id], numbers: &[(Id, String)]) -> Result<Recalled, StoreError> {
        self.read_sql(|sql| {
            Ok((
                formica_store::trade::trades_by_id(sql, trades)?,
                formica_store::trade::numbers_taken(sql, numbers)?,
            ))
        })
    }

    fn commit(&mut self, effects: &Effects) -> Result<(), StoreError> {
        Store::commit(self, effects)
    }
}

/// A committed batch.
#[derive(Debug)]
pub struct Done {
    /// The commands' replies, in order.
    pub replies: Vec<Result<Reply, CommandError>>,
    /// How long the store took to commit it.
    pub commit_time: Duration,
}

/// Why a batch was not committed. Nothing of it is in memory; `reload` says whether the
/// database may nevertheless hold it (a commit that failed may have reached the database, a
/// connection lost after COMMIT was sent), in which case memory must be rebuilt from the
/// database before the next batch.
#[derive(Debug)]
pub struct Failed {
    /// What the store said.
    pub error: StoreError,
    /// Whether the commit was attempted.
    pub reload: bool,
}

/// Runs `commands` (and the timers due at `now`) as one batch: their replies, in order, once
/// the batch is durable. On `Err` the core is as it was before the batch.
pub fn run(
    core: &mut Core,
    store: &mut impl BatchStore,
    now: u64,
    commands: &[&Command],
) -> Result<Done, Failed> {
    let read_failed = |error| Failed {
        error,
        reload: false,
    };
    let ids = core.uncached_ids(commands.iter().copied());
    if !ids.is_empty() {
        for (transfer, status) in store.lookup_transfers(&ids).map_err(read_failed)? {
            core.cache(transfer, status);
        }
    }
    let keys = core.idempotency_keys(commands.iter().copied());
    if !keys.is_empty() {
        for (owner, key, fingerprint, outcome) in store.saved_keys(&keys).map_err(read_failed)? {
            core.recall_idempotency(owner, key, fingerprint, outcome);
        }
    }
    // Trades and numbers the commands name that memory does not hold: paid merchant trades
    // live in the store, and a number may be taken by one.
    let recall = core.trades_to_recall(commands.iter().copied());
    let numbers = core.numbers_to_check(commands.iter().copied());
    if !recall.is_empty() || !numbers.is_empty() {
        let (trades, taken) = store.recall(&recall, &numbers).map_err(read_failed)?;
        for trade in trades {
            core.recall_trade(trade);
        }
        for (seller, number) in taken {
            core.recall_number(seller, number);
        }
    }
    core.begin_batch();
    core.expire(now);
    let replies: Vec<_> = commands
        .iter()
        .map(|command| core.apply(now, command))
        .collect();
    let effects = core.effects();
    let committing = Instant::now();
    match store.commit(&effects) {
        Ok(()) => {
            core.commit_batch();
            Ok(Done {
                replies,
                commit_time: committing.elapsed(),
            })
        }
        Err(error) => {
            core.rollback_batch();
            Err(Failed {
                error,
                reload: true,
            })
        }
    }
}
