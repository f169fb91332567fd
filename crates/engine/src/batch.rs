//! One batch, start to finish: what the commands name is fetched from the store (`Reads`),
//! the core applies the commands (`apply`), and the batch's effects are committed in one
//! transaction. The simulator (`formica sim`) runs every batch through `run`, against a store
//! that fails on purpose; the writer thread runs the same steps with one batch's commit
//! overlapping the next one's applying: the code under test is the code that runs.

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
}

/// Why a batch was not committed. With `reload` false nothing of it is in memory (a read
/// failed before it was applied). With `reload` true the commit was attempted: memory holds
/// the batch and the database may hold it too (a connection lost after COMMIT was sent), so
/// memory must be rebuilt from the database before the next batch.
#[derive(Debug)]
pub struct Failed {
    /// What the store said.
    pub error: StoreError,
    /// Whether the commit was attempted.
    pub reload: bool,
}

/// What commands name that memory does not hold and the store must bring in before they
/// apply: transfers, idempotency keys, paid merchant trades and taken trade numbers.
#[derive(Debug)]
pub struct Reads {
    ids: Vec<u128>,
    keys: Vec<(Id, String)>,
    trades: Vec<Id>,
    numbers: Vec<(Id, String)>,
}

impl Reads {
    /// What `commands` need read before they apply to `core`.
    pub fn of(core: &Core, commands: &[&Command]) -> Reads {
        Reads {
            ids: core.uncached_ids(commands.iter().copied()),
            keys: core.idempotency_keys(commands.iter().copied()),
            trades: core.trades_to_recall(commands.iter().copied()),
            numbers: core.numbers_to_check(commands.iter().copied()),
        }
    }

    /// Whether nothing needs reading.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
            && self.keys.is_empty()
            && self.trades.is_empty()
            && self.numbers.is_empty()
    }

    /// Reads it all from `store` into `core`'s memory. What a read brings in is committed
    /// state, so a failure part way leaves memory correct.
    pub fn fetch(&self, core: &mut Core, store: &mut impl BatchStore) -> Result<(), StoreError> {
        if !self.ids.is_empty() {
            for (transfer, status) in store.lookup_transfers(&self.ids)? {
                core.cache(transfer, status);
            }
        }
        if !self.keys.is_empty() {
            for (owner, key, fingerprint, outcome) in store.saved_keys(&self.keys)? {
                core.recall_idempotency(owner, key, fingerprint, outcome);
            }
        }
        if !self.trades.is_empty() || !self.numbers.is_empty() {
            let (trades, taken) = store.recall(&self.trades, &self.numbers)?;
            for trade in trades {
                core.recall_trade(trade);
            }
            for (seller, number) in taken {
                core.recall_number(seller, number);
            }
        }
        Ok(())
    }
}

/// A batch applied to memory, not yet durable.
#[derive(Debug)]
pub struct Applied {
    /// The commands' replies, in order: for nobody's eyes until `effects` are committed.
    pub replies: Vec<Result<Reply, CommandError>>,
    /// What the store must write, in one transaction.
    pub effects: Effects,
}

/// Applies `commands` (and the timers due at `now`) to memory as one batch, after their
/// `Reads` are fetched. Memory keeps the batch at once, so that the next batch can apply
/// while this one commits; if the commit fails, memory is rebuilt from the store.
pub fn apply(core: &mut Core, now: u64, commands: &[&Command]) -> Applied {
    core.begin_batch();
    core.expire(now);
    let replies: Vec<_> = commands
        .iter()
        .map(|command| core.apply(now, command))
        .collect();
    let effects = core.effects();
    core.commit_batch();
    Applied { replies, effects }
}

/// Runs `commands` (and the timers due at `now`) as one batch, start to finish: their
/// replies, in order, once the batch is durable. The writer runs the same steps, with the
/// commit of one batch overlapping the applying of the next.
pub fn run(
    core: &mut Core,
    store: &mut impl BatchStore,
    now: u64,
    commands: &[&Command],
) -> Result<Done, Failed> {
    Reads::of(core, commands)
        .fetch(core, store)
        .map_err(|error| Failed {
            error,
            reload: false,
        })?;
    let Applied { replies, effects } = apply(core, now, commands);
    match store.commit(&effects) {
        Ok(()) => Ok(Done { replies }),
        Err(error) => Err(Failed {
            error,
            reload: true,
        }),
    }
}
