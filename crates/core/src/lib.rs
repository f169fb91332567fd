//! Formica's core: the deterministic state machine the engine drives. It owns the books (the
//! ledger) and, as products arrive, every open business object that money depends on.
//! Commands go in with a timestamp chosen by the engine; results and the batch's effects (the
//! rows the store must write) come out. The core never reads a clock and does no IO.

// Money is integers: no float may creep into the core.
#![deny(clippy::float_arithmetic)]

mod command;
pub mod credit;
pub mod credit_line;
pub mod deposit;
mod effects;
pub mod fund;
pub mod merchant;
mod money;
pub mod products;
pub mod trade;
pub mod wallet;

pub use command::{COMMAND_EVENTS_MAX, Command, CommandError, Reply, STORED_AMOUNT_MAX};
pub use effects::{Checkpoint, Effects, Loaded, PendingChange, TransferRow};
pub use money::{Currency, Money, MoneyError};
pub use products::{
    Id, IdempotencyKey, Outcome, ProductCommand, ProductEffects, ProductRequest, ProductsLoaded,
    Refusal, Settings,
};

use products::{Due, Products};

// foldhash (hashbrown's default): the writer updates these for every transfer, and SipHash
// would cost more than the ledger's own work.
use hashbrown::{HashMap, HashSet};

use formica_ledger::{Account, AccountFlags, InvariantViolation, Ledger, Transfer, TransferFlags};

/// The state machine: the books, the head of each account's history chain, and what the
/// batch being applied and the next checkpoint must write.
#[derive(Debug, Default)]
pub struct Core {
    ledger: Ledger,
    /// Per account, the timestamp of its latest transfer.
    heads: HashMap<u128, u64>,
    /// Accounts changed since the last checkpoint.
    dirty: HashSet<u128>,
    batch: Batch,
    /// People, open trades and bank movements.
    products: Products,
}

/// What the open batch did, to write on commit or undo on rollback.
#[derive(Debug, Default)]
struct Batch {
    open: bool,
    pub(crate) created_accounts: Vec<u128>,
    transfers: Vec<TransferRow>,
    /// (pending transfer, when it was settled, if it was).
    pending: Vec<(u128, Option<u64>)>,
    touched: Vec<u128>,
    /// (account, its head before the batch), in the order changed.
    heads_before: Vec<(u128, Option<u64>)>,
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
    pub fn from_loaded(loaded: Loaded) -> Result<Self, InvariantViolation> {
        let mut core = Core::new(Ledger::import(loaded.snapshot)?);
        core.heads = loaded.heads.into_iter().collect();
        core.dirty = loaded.changed_since_checkpoint.into_iter().collect();
        core.products = Products::from_loaded(loaded.products);
        // A holding's units are its units account's: confirmed and earned (posted credits),
        // bought and not yet confirmed (pending credits), less what was sold.
        let Core {
            ledger, products, ..
        } = &mut core;
        for holding in products.holdings.values_mut() {
            if let Some(fund) = products.funds.get(&holding.fund_id)
                && let Some(account) = ledger.account(fund::units_account(holding.holder_id, fund))
            {
                let units =
                    account.credits_posted + account.credits_pending - account.debits_posted;
                holding.units = u64::try_from(units).unwrap_or(u64::MAX);
            }
        }
        Ok(core)
    }

    /// Sets the rules the products run by.
    pub fn configure(&mut self, settings: Settings) {
        self.products.settings = settings;
        self.products.retime_merchants();
        self.products.retime_funds();
        self.products.retime_credit();
    }

    /// The rules the products run by.
    pub fn settings(&self) -> &Settings {
        &self.products.settings
    }

    /// When the next timer is due: a pending transfer's expiry or an open object's deadline.
    pub fn next_deadline(&self) -> Option<u64> {
        match (self.ledger.next_expiry(), self.products.next_due()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// People and the open objects as a store loads them back (sorted by id, spending by
    /// currency), for checks that memory equals what the store rebuilds.
    pub fn export_products(&self) -> ProductsLoaded {
        let mut people: Vec<_> = self
            .products
            .people
            .iter()
            .map(|(id, person)| {
                let mut person = person.clone();
                person.spending.sort_unstable_by_key(|s| s.currency);
                (*id, person)
            })
            .collect();
        people.sort_unstable_by_key(|(id, _)| *id);
        let mut open_trades: Vec<_> = self.products.trades.values().cloned().collect();
        open_trades.sort_unstable_by_key(|t| t.id);
        let mut open_movements: Vec<_> = self.products.movements.values().cloned().collect();
        open_movements.sort_unstable_by_key(|m| m.id);
        let mut merchants: Vec<_> = self.products.merchants.values().cloned().collect();
        merchants.sort_unstable_by_key(|m| m.id);
        let mut funds: Vec<_> = self.products.funds.values().cloned().collect();
        funds.sort_unstable_by_key(|f| f.id);
        let mut open_subscriptions: Vec<_> =
            self.products.subscriptions.values().cloned().collect();
        open_subscriptions.sort_unstable_by_key(|s| s.id);
        let mut open_redemptions: Vec<_> = self.products.redemptions.values().cloned().collect();
        open_redemptions.sort_unstable_by_key(|r| r.id);
        ProductsLoaded {
            id_last: self.products.id_last,
            people,
            open_trades,
            open_movements,
            merchants,
            funds,
            // As the store keeps them: units are the books'.
            holdings: self
                .products
                .holdings
                .values()
                .map(|h| fund::Holding {
                    units: 0,
                    ..h.clone()
                })
                .collect(),
            open_subscriptions,
            open_redemptions,
            holidays: self.products.calendar.holidays.iter().copied().collect(),
            credit: self.products.credit.values().cloned().collect(),
            consents: {
                let mut consents: Vec<_> = self.products.consents.values().cloned().collect();
                consents.sort_unstable_by_key(|c| (c.person_id, c.merchant_id));
                consents
            },
            credit_run: self.products.credit_run,
            credit_policy: self.products.credit_policy.clone(),
            codes_used: {
                // As the store loads them: those not expired at the books' clock.
                let now = self.ledger.timestamp();
                let mut codes: Vec<_> = self
                    .products
                    .codes_used
                    .iter()
                    .filter(|(_, expires_at)| **expires_at > now)
                    .map(|(code, expires_at)| (code.clone(), *expires_at))
                    .collect();
                codes.sort_unstable();
                codes
            },
            open_holds: {
                let mut holds: Vec<_> = self.products.holds.values().cloned().collect();
                holds.sort_unstable_by_key(|h| h.id);
                holds
            },
            open_debts: {
                let mut debts: Vec<_> = self.products.debts.values().cloned().collect();
                debts.sort_unstable_by_key(|d| d.id);
                debts
            },
            credit_lines: {
                let mut lines: Vec<_> = self.products.credit_lines.values().cloned().collect();
                lines.sort_unstable_by_key(|l| l.person_id);
                lines
            },
        }
    }

    /// The fund with this id.
    pub fn fund(&self, id: Id) -> Option<&fund::Fund> {
        self.products.funds.get(&id)
    }

    /// A person's holding of a fund.
    pub fn holding(&self, fund: Id, holder: Id) -> Option<&fund::Holding> {
        self.products.holdings.get(&(fund, holder))
    }

    /// The subscription with this id, while it waits for its confirmation day.
    pub fn subscription(&self, id: Id) -> Option<&fund::Subscription> {
        self.products.subscriptions.get(&id)
    }

    /// The normal redemption with this id, while its money waits for its day.
    pub fn redemption(&self, id: Id) -> Option<&fund::Redemption> {
        self.products.redemptions.get(&id)
    }

    /// A person's credit record: the facts and the last score.
    pub fn credit(&self, person: Id) -> Option<&credit::Credit> {
        self.products.credit.get(&person)
    }

    /// A person's consent to a merchant's credit checks.
    pub fn consent(&self, person: Id, merchant: Id) -> Option<&credit::Consent> {
        self.products.consents.get(&(person, merchant))
    }

    /// An open hold (requested, waived or frozen).
    pub fn hold(&self, id: Id) -> Option<&deposit::Hold> {
        self.products.holds.get(&id)
    }

    /// The credit line's rules.
    pub fn credit_policy(&self) -> &credit_line::CreditPolicy {
        &self.products.credit_policy
    }

    /// A person's credit line.
    pub fn credit_line(&self, person: Id) -> Option<&credit_line::CreditLine> {
        self.products.credit_lines.get(&person)
    }

    /// A debt not yet repaid.
    pub fn debt(&self, id: Id) -> Option<&deposit::Debt> {
        self.products.debts.get(&id)
    }

    /// Like `next_deadline`, the daily credit run aside (it is always due some day): when
    /// the next pending transfer expires or open object falls due.
    pub fn next_object_deadline(&self) -> Option<u64> {
        let objects = self
            .products
            .timers
            .iter()
            .find(|(_, due)| *due != Due::CreditRun)
            .map(|(at, _)| *at);
        match (self.ledger.next_expiry(), objects) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Where the daily credit run stands.
    pub fn credit_run(&self) -> credit::CreditRun {
        self.products.credit_run
    }

    /// The open trade with this id.
    pub fn open_trade(&self, id: Id) -> Option<&trade::Trade> {
        self.products.trades.get(&id)
    }

    /// The books, for reads and checks.
    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    /// The timestamp of this account's latest transfer.
    pub fn head(&self, account: u128) -> Option<u64> {
        self.heads.get(&account).copied()
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

    /// The idempotency keys these commands carry, which the store must look up first (a key
    /// saved by an earlier batch answers with its saved outcome, at any age).
    pub fn idempotency_keys<'a>(
        &self,
        commands: impl IntoIterator<Item = &'a Command>,
    ) -> Vec<(Id, String)> {
        let mut keys: Vec<(Id, String)> = commands
            .into_iter()
            .filter_map(|command| match command {
                Command::Product(ProductRequest {
                    idempotency: Some(key),
                    ..
                }) => Some((key.owner, key.key.clone())),
                _ => None,
            })
            .collect();
        keys.sort_unstable();
        keys.dedup();
        keys
    }

    /// The trades these commands name that memory does not hold: a merchant's paid trades
    /// live in the store while they can be refunded, and the store must load them before the
    /// batch (`recall_trade`).
    pub fn trades_to_recall<'a>(&self, commands: impl IntoIterator<Item = &'a Command>) -> Vec<Id> {
        use merchant::MerchantCommand as M;
        let mut ids: Vec<Id> = commands
            .into_iter()
            .filter_map(|command| match command {
                Command::Product(ProductRequest {
                    command:
                        ProductCommand::Merchant(
                            M::Refund { trade_id, .. }
                            | M::Cancel { trade_id, .. }
                            | M::Finish { trade_id, .. }
                            | M::PayWithCode { trade_id, .. },
                        )
                        | ProductCommand::Trade(trade::TradeCommand::Pay { trade_id, .. })
                        | ProductCommand::CreditLine(credit_line::CreditLineCommand::PayTrade {
                            trade_id,
                            ..
                        }),
                    ..
                }) => Some(*trade_id),
                _ => None,
            })
            .filter(|id| !self.products.trades.contains_key(id))
            .collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    }

    /// The (seller, out_trade_no) of every trade these commands create that memory does not
    /// know taken: the store must say which it holds (`recall_number`).
    pub fn numbers_to_check<'a>(
        &self,
        commands: impl IntoIterator<Item = &'a Command>,
    ) -> Vec<(Id, String)> {
        use merchant::MerchantCommand as M;
        let mut numbers: Vec<(Id, String)> = commands
            .into_iter()
            .filter_map(|command| match command {
                Command::Product(ProductRequest {
                    command: ProductCommand::Trade(trade::TradeCommand::Create {
                        seller_id,
                        out_trade_no,
                        ..
                    }),
                    ..
                }) => Some((*seller_id, trade::clip(out_trade_no))),
                Command::Product(ProductRequest {
                    command:
                        ProductCommand::Merchant(M::CreateTrade(new) | M::Charge { trade: new, .. }),
                    ..
                }) => Some((new.seller_id, trade::clip(&new.out_trade_no))),
                _ => None,
            })
            .filter(|(seller, number)| !self.products.number_taken(*seller, number))
            .collect();
        numbers.sort_unstable();
        numbers.dedup();
        numbers
    }

    /// Tells the batch about to be applied that the store holds a trade with this number.
    pub fn recall_number(&mut self, seller: Id, out_trade_no: String) {
        self.products.recall_number(seller, out_trade_no);
    }

    /// Gives the batch about to be applied a paid merchant trade the store holds. Only a
    /// paid, refundable trade is taken: anything else memory knows better.
    pub fn recall_trade(&mut self, trade: trade::Trade) {
        if trade.status == trade::TradeStatus::TradeSuccess
            && !self.products.trades.contains_key(&trade.id)
        {
            self.products.recall_trade(trade);
        }
    }

    /// Gives the batch about to be applied a key the store had saved: its request's
    /// fingerprint and its outcome as saved (`Result<Outcome, Refusal>` as JSON).
    pub fn recall_idempotency(
        &mut self,
        owner: Id,
        key: String,
        fingerprint: String,
        outcome: String,
    ) {
        self.products.recall(owner, key, fingerprint, outcome);
    }

    /// Puts a transfer the store holds back in the cache.
    pub fn cache(&mut self, transfer: Transfer, status: Option<formica_ledger::PendingStatus>) {
        self.ledger.cache(transfer, status);
    }

    /// Starts a batch: until `commit_batch` or `rollback_batch`, everything applied can be
    /// undone, and its effects are collected.
    pub fn begin_batch(&mut self) {
        assert!(!self.batch.open, "batches do not nest");
        self.batch.open = true;
        self.ledger.begin_scope();
    }

    /// Applies one command of the batch. A command refused as a whole changes nothing.
    pub fn apply(&mut self, now: u64, command: &Command) -> Result<Reply, CommandError> {
        assert!(self.batch.open, "commands are applied inside a batch");
        command.validate()?;
        Ok(match command {
            Command::CreateAccounts(accounts) => {
                let results = self.ledger.create_accounts(now, accounts);
                for (account, result) in accounts.iter().zip(&results) {
                    if result.is_ok() {
                        self.batch.created_accounts.push(account.id);
                        self.batch.touched.push(account.id);
                    }
                }
                Reply::Accounts(results)
            }
            Command::CreateTransfers(transfers) => {
                let results = self.ledger.create_transfers(now, transfers);
                for (transfer, result) in transfers.iter().zip(&results) {
                    if result.is_ok() {
                        self.record_ledger_transfer(transfer.id);
                    }
                }
                Reply::Transfers(results)
            }
            Command::Product(request) => {
                if let Some(key) = &request.idempotency
                    && let Some(saved) = self.products.saved_answer(key)
                {
                    // A retry: the saved answer, and nothing applied again.
                    return saved.map(Reply::Product);
                }
                let outcome = match &request.command {
                    ProductCommand::Wallet(command) => self.apply_wallet(now, command),
                    ProductCommand::Trade(command) => self.apply_trade(now, command),
                    ProductCommand::Merchant(command) => self.apply_merchant(now, command),
                    ProductCommand::Fund(command) => self.apply_fund(now, command),
                    ProductCommand::Credit(command) => self.apply_credit(now, command),
                    ProductCommand::Hold(command) => self.apply_hold(now, command),
                    ProductCommand::CreditLine(command) => self.apply_credit_line(now, command),
                };
                if let Some(key) = &request.idempotency {
                    self.products.save_idempotency(key.clone(), &outcome, now);
                }
                Reply::Product(outcome?)
            }
        })
    }

    /// Releases the pending transfers whose timeout has passed at `now` (a timer the engine
    /// runs as part of a batch).
    pub fn expire(&mut self, now: u64) -> Vec<u128> {
        assert!(self.batch.open, "timers run inside a batch");
        // By the books' clock, not `now`: memory then keeps exactly the used codes the store
        // loads back (those not expired at the last event), and an expired code is refused
        // for its age anyway.
        self.products.forget_codes(self.ledger.timestamp());
        for due in self.products.due(now) {
            match due {
                Due::Trade(id) => self.trade_due(now, id),
                Due::Settlement(id) => self.settle_merchant(now, id),
                Due::FundAccrual(id) => self.accrue(now, id),
                Due::FundConfirm(id) => self.confirm_subscription(now, id),
                Due::FundPayout(id) => self.pay_redemption(now, id),
                Due::CreditRun => self.run_credit(now),
                Due::Hold(id) => self.hold_due(now, id),
                Due::Debt(id) => self.debt_due(now, id),
                Due::CreditLine(person) => self.credit_line_due(now, person),
                Due::Movement(id) => {
                    let movement = self.products.movements[&id].clone();
                    let failure = Some("the bank did not answer in time".to_owned());
                    self.settle_movement(now, movement, failure)
                        .expect("failing a movement gives its money back");
                }
            }
        }
        let expired = self.ledger.expire(now);
        // The expiries happened at the books' clock, which expiring moved past every earlier
        // event: a checkpoint taken later covers them, one taken earlier does not.
        let at = self.ledger.timestamp();
        for id in &expired {
            let pending = self
                .ledger
                .transfer(*id)
                .expect("an expired transfer is cached");
            self.batch.touched.push(pending.debit_account_id);
            self.batch.touched.push(pending.credit_account_id);
            self.batch.pending.push((*id, Some(at)));
        }
        expired
    }

    /// The rows the store must write for everything applied since `begin_batch`. Called once
    /// per batch: the transfer rows move out of the batch (it keeps what rollback needs).
    pub fn effects(&mut self) -> Effects {
        assert!(self.batch.open, "effects belong to a batch");
        let ledger = &self.ledger;
        let batch = &mut self.batch;
        batch.created_accounts.sort_unstable();
        let accounts = batch
            .created_accounts
            .iter()
            .map(|id| {
                let account = ledger.account(*id).expect("a created account exists");
                // As created: later transfers of the batch reach the balances through the
                // transfers (and the next checkpoint).
                Account {
                    debits_pending: 0,
                    debits_posted: 0,
                    credits_pending: 0,
                    credits_posted: 0,
                    flags: account.flags - AccountFlags::CLOSED,
                    ..*account
                }
            })
            .collect();
        // The last change of each pending transfer wins.
        let mut pending: HashMap<u128, Option<u64>> = HashMap::new();
        for (id, settled_at) in &batch.pending {
            pending.insert(*id, *settled_at);
        }
        let mut pending_status: Vec<PendingChange> = pending
            .into_iter()
            .map(|(id, settled_at)| PendingChange {
                id,
                status: ledger
                    .pending_status(id)
                    .expect("a pending transfer has a status"),
                settled_at,
            })
            .collect();
        pending_status.sort_unstable_by_key(|change| change.id);
        Effects {
            timestamp: ledger.timestamp(),
            transfer_id_max: ledger.transfer_id_max(),
            accounts,
            transfers: std::mem::take(&mut batch.transfers),
            pending_status,
            products: self.products.effects(),
        }
    }

    /// Keeps the batch (it is durable). Settled transfers leave the cache once enough have
    /// gathered: the store has them, and sweeping after every batch would walk the open holds.
    pub fn commit_batch(&mut self) {
        let batch = self.end_batch();
        self.dirty.extend(batch.touched);
        self.dirty.extend(batch.created_accounts);
        self.ledger.commit_scope();
        self.products.commit_batch();
        let open_or_recent = self.ledger.pending_status_count();
        let slack = self.products.settings.transfer_cache_slack;
        if self.ledger.cached_transfer_count() > 2 * open_or_recent + slack {
            self.ledger.evict_settled();
        }
    }

    /// Undoes the batch (its commit failed): memory is as it was before `begin_batch`.
    pub fn rollback_batch(&mut self) {
        let batch = self.end_batch();
        for (account, head) in batch.heads_before.into_iter().rev() {
            match head {
                Some(head) => self.heads.insert(account, head),
                None => self.heads.remove(&account),
            };
        }
        self.ledger.rollback_scope();
        self.products.rollback_batch();
    }

    /// Accounts changed since the last checkpoint.
    pub fn dirty_accounts(&self) -> usize {
        self.dirty.len()
    }

    /// Takes the balances a checkpoint must write now (between batches): every account
    /// changed since the last checkpoint, which is clean from here on. If writing the
    /// checkpoint fails, `checkpoint_failed` makes them dirty again.
    pub fn take_checkpoint(&mut self) -> Checkpoint {
        assert!(!self.batch.open, "checkpoints are taken between batches");
        let mut accounts: Vec<(Account, u64)> = self
            .dirty
            .drain()
            .map(|id| {
                let account = *self.ledger.account(id).expect("a dirty account exists");
                (account, self.heads.get(&id).copied().unwrap_or(0))
            })
            .collect();
        accounts.sort_unstable_by_key(|(account, _)| account.id);
        Checkpoint {
            timestamp: self.ledger.timestamp(),
            accounts,
        }
    }

    /// The checkpoint was not written: its accounts go into the next one.
    pub fn checkpoint_failed(&mut self, checkpoint: &Checkpoint) {
        self.dirty
            .extend(checkpoint.accounts.iter().map(|(account, _)| account.id));
    }

    fn end_batch(&mut self) -> Batch {
        assert!(self.batch.open, "a batch is open");
        std::mem::take(&mut self.batch)
    }

    fn record_ledger_transfer(&mut self, id: u128) {
        let stored = *self
            .ledger
            .transfer(id)
            .expect("a created transfer is cached");
        let mut previous = [0u64; 2];
        for (side, account) in [stored.debit_account_id, stored.credit_account_id]
            .into_iter()
            .enumerate()
        {
            let before = self.heads.insert(account, stored.timestamp);
            self.batch.heads_before.push((account, before));
            previous[side] = before.unwrap_or(0);
            self.batch.touched.push(account);
        }
        self.batch.transfers.push(TransferRow {
            transfer: stored,
            debit_previous: previous[0],
            credit_previous: previous[1],
        });
        if stored.flags.contains(TransferFlags::PENDING) {
            self.batch.pending.push((id, None));
        }
        if stored.is_post_or_void() {
            self.batch
                .pending
                .push((stored.pending_id, Some(stored.timestamp)));
        }
    }
}
