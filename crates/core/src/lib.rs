//! Formica's core: the deterministic state machine the engine drives. It owns the books (the
//! ledger) and, as products arrive, every open business object that money depends on.
//! Commands go in with a timestamp chosen by the engine; results and the batch's effects (the
//! rows the store must write) come out. The core never reads a clock and does no IO.

// Money is integers: no float may creep into the core.
#![deny(clippy::float_arithmetic)]

mod command;
mod effects;

pub use command::{COMMAND_EVENTS_MAX, Command, CommandError, Reply, STORED_AMOUNT_MAX};
pub use effects::Effects;

use formica_ledger::{Ledger, PendingStatus, Snapshot, Transfer, TransferFlags};

/// Settled transfers the cache may hold before it is swept.
const EVICT_SLACK_TRANSFERS: usize = 1 << 17;

/// The state machine: the books plus the effects of the batch being applied.
#[derive(Debug, Default)]
pub struct Core {
    ledger: Ledger,
    touched_accounts: Vec<u128>,
    created_transfers: Vec<u128>,
    settled_pending: Vec<u128>,
    in_batch: bool,
}

impl Core {
    /// A core over these books. Balances are bounded by what the store keeps.
    pub fn new(mut ledger: Ledger) -> Self {
        ledger.set_balance_max(STORED_AMOUNT_MAX);
        Core {
            ledger,
            ..Core::default()
        }
    }

    /// Rebuilds the core from what the store loaded, checking every invariant.
    pub fn from_snapshot(snapshot: Snapshot) -> Result<Self, formica_ledger::InvariantViolation> {
        Ok(Core::new(Ledger::import(snapshot)?))
    }

    /// The books, for reads and checks.
    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    /// The transfer ids these commands name that the store must bring into the cache first.
    pub fn uncached_ids<'a>(&self, commands: impl IntoIterator<Item = &'a Command>) -> Vec<u128> {
        let mut ids = Vec::new();
        for command in commands {
            if let Command::CreateTransfers(transfers) = command {
                ids.extend(self.ledger.uncached_ids(transfers));
            }
        }
        ids.sort_unstable();
        ids.dedup();
        ids
    }

    /// Puts a transfer the store holds back in the cache.
    pub fn cache(&mut self, transfer: Transfer, status: Option<PendingStatus>) {
        self.ledger.cache(transfer, status);
    }

    /// Starts a batch: until `commit_batch` or `rollback_batch`, everything applied can be
    /// undone, and its effects are collected.
    pub fn begin_batch(&mut self) {
        assert!(!self.in_batch, "batches do not nest");
        self.in_batch = true;
        self.ledger.begin_scope();
    }

    /// Applies one command of the batch. A command refused as a whole changes nothing.
    pub fn apply(&mut self, now: u64, command: &Command) -> Result<Reply, CommandError> {
        assert!(self.in_batch, "commands are applied inside a batch");
        command.validate()?;
        Ok(match command {
            Command::CreateAccounts(accounts) => {
                let results = self.ledger.create_accounts(now, accounts);
                for (account, result) in accounts.iter().zip(&results) {
                    if result.is_ok() {
                        self.touched_accounts.push(account.id);
                    }
                }
                Reply::Accounts(results)
            }
            Command::CreateTransfers(transfers) => {
                let results = self.ledger.create_transfers(now, transfers);
                for (transfer, result) in transfers.iter().zip(&results) {
                    if result.is_ok() {
                        self.record_transfer(transfer.id);
                    }
                }
                Reply::Transfers(results)
            }
        })
    }

    /// Releases the pending transfers whose timeout has passed at `now` (a timer the engine
    /// runs as part of a batch).
    pub fn expire(&mut self, now: u64) -> Vec<u128> {
        assert!(self.in_batch, "timers run inside a batch");
        let expired = self.ledger.expire(now);
        for id in &expired {
            let pending = self
                .ledger
                .transfer(*id)
                .expect("an expired transfer is cached");
            self.touched_accounts.push(pending.debit_account_id);
            self.touched_accounts.push(pending.credit_account_id);
            self.settled_pending.push(*id);
        }
        expired
    }

    /// The rows the store must write for everything applied since `begin_batch`.
    pub fn effects(&mut self) -> Effects {
        assert!(self.in_batch, "effects belong to a batch");
        self.touched_accounts.sort_unstable();
        self.touched_accounts.dedup();
        self.settled_pending.sort_unstable();
        self.settled_pending.dedup();
        let ledger = &self.ledger;
        Effects {
            timestamp: ledger.timestamp(),
            transfer_id_max: ledger.transfer_id_max(),
            accounts: self
                .touched_accounts
                .iter()
                .map(|id| *ledger.account(*id).expect("a touched account exists"))
                .collect(),
            transfers: self
                .created_transfers
                .iter()
                .map(|id| *ledger.transfer(*id).expect("a created transfer is cached"))
                .collect(),
            pending_status: self
                .settled_pending
                .iter()
                .map(|id| {
                    let status = ledger
                        .pending_status(*id)
                        .expect("a pending transfer has a status");
                    (*id, status)
                })
                .collect(),
        }
    }

    /// Keeps the batch (it is durable). Settled transfers leave the cache: the store has them.
    pub fn commit_batch(&mut self) {
        self.end_batch();
        self.ledger.commit_scope();
        // Settled transfers leave memory once enough have gathered: the store has them, and
        // sweeping after every batch would walk the open holds each time.
        let open_or_recent = self.ledger.pending_status_count();
        if self.ledger.cached_transfer_count() > 2 * open_or_recent + EVICT_SLACK_TRANSFERS {
            self.ledger.evict_settled();
        }
    }

    /// Undoes the batch (its commit failed): memory is as it was before `begin_batch`.
    pub fn rollback_batch(&mut self) {
        self.end_batch();
        self.ledger.rollback_scope();
    }

    fn end_batch(&mut self) {
        assert!(self.in_batch, "a batch is open");
        self.in_batch = false;
        self.touched_accounts.clear();
        self.created_transfers.clear();
        self.settled_pending.clear();
    }

    fn record_transfer(&mut self, id: u128) {
        let stored = self
            .ledger
            .transfer(id)
            .expect("a created transfer is cached");
        self.touched_accounts.push(stored.debit_account_id);
        self.touched_accounts.push(stored.credit_account_id);
        self.created_transfers.push(id);
        if stored.flags.contains(TransferFlags::PENDING) {
            self.settled_pending.push(id);
        }
        if stored.is_post_or_void() {
            self.settled_pending.push(stored.pending_id);
        }
    }
}
