//! The books: every account, the transfers the ledger has seen, and the rules that move money
//! between them. `Ledger` is a deterministic state machine: the same state and the same batch
//! always give the same results and the same new state.

use std::collections::{BTreeMap, BTreeSet};

use hashbrown::HashMap;

use crate::account::{Account, AccountFlags};
use crate::cache::TransferCache;
use crate::result::{CreateAccountResult, CreateTransferResult};
use crate::transfer::{AMOUNT_MAX, PendingStatus, Transfer, TransferFlags};

/// Latest time the books accept (nanoseconds since the Unix epoch, in the year 2262): the
/// store keeps timestamps in signed 64-bit columns, and batches never run past the clock's end.
pub const TIMESTAMP_MAX: u64 = i64::MAX as u64;

/// Largest number of events one `create_*` call takes. It bounds the timestamps a batch
/// consumes and the journal a linked chain can build up.
pub const BATCH_EVENTS_MAX: usize = 1 << 20;

/// The state of the books.
///
/// Transfers are kept in a cache: a pure in-memory ledger keeps all of them, while a ledger
/// backed by a store keeps the open pending transfers and whatever the store `cache`s into it
/// before a batch. Idempotency and settlement checks look a transfer up only when its id is not
/// above `transfer_id_max`, so a caller that evicts must `cache` the ids a batch names first
/// (see [`Ledger::uncached_ids`]).
#[derive(Clone, Debug)]
pub struct Ledger {
    accounts: HashMap<u128, Account>,
    transfers: TransferCache,
    pending_status: HashMap<u128, PendingStatus>,
    expiries: BTreeSet<(u64, u128)>,
    /// Timestamp of the last event applied; every later event gets a larger one.
    timestamp: u64,
    /// The largest transfer id ever created: any larger id is new without a lookup.
    transfer_id_max: u128,
    /// The largest balance any account may reach (`u128::MAX` unless a store needs less).
    balance_max: u128,
    journal: Vec<Undo>,
    journaling: bool,
    scope: Option<Scope>,
}

impl Default for Ledger {
    fn default() -> Self {
        Ledger {
            accounts: HashMap::new(),
            transfers: TransferCache::default(),
            pending_status: HashMap::new(),
            expiries: BTreeSet::new(),
            timestamp: 0,
            transfer_id_max: 0,
            balance_max: u128::MAX,
            journal: Vec::new(),
            journaling: false,
            scope: None,
        }
    }
}

/// What an open scope must restore on rollback besides the journal.
#[derive(Clone, Copy, Debug)]
struct Scope {
    timestamp: u64,
    transfer_id_max: u128,
}

/// One step to take back when a linked chain fails or a scope is rolled back.
#[derive(Clone, Debug)]
enum Undo {
    AccountCreated(u128),
    Account(Account),
    TransferCreated(u128),
    PendingStatus(u128, Option<PendingStatus>),
    ExpiryAdded(u64, u128),
    ExpiryRemoved(u64, u128),
}

/// Everything needed to rebuild a ledger: balances, open pending transfers and the clock.
/// Settled transfers are not part of it; a store keeps them and `cache`s them on demand.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// Timestamp of the last event applied.
    pub timestamp: u64,
    /// The largest transfer id ever created.
    pub transfer_id_max: u128,
    /// Every account, sorted by id.
    pub accounts: Vec<Account>,
    /// Every pending transfer still reserving its amount, sorted by id.
    pub pending: Vec<Transfer>,
}

/// Why a snapshot cannot be imported or the books fail a check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InvariantViolation {
    /// Two accounts share an id.
    DuplicateAccount(u128),
    /// A pending transfer is listed twice or is not pending.
    BadPendingTransfer(u128),
    /// A pending transfer names an account that does not exist.
    MissingAccount(u128),
    /// An account's pending balances differ from the sum of its open pending transfers.
    PendingBalanceMismatch(u128),
    /// An account crosses its balance limit.
    LimitCrossed(u128),
    /// An account's pending plus posted debits, or credits, pass `u128::MAX`.
    BalanceOverflow(u128),
    /// An account has an id or flags no account can be created with.
    BadAccount(u128),
    /// In this ledger total debits differ from total credits.
    Unbalanced(u32),
}

impl std::fmt::Display for InvariantViolation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            InvariantViolation::DuplicateAccount(id) => write!(f, "account {id} is listed twice"),
            InvariantViolation::BadPendingTransfer(id) => {
                write!(f, "transfer {id} is not a single open pending transfer")
            }
            InvariantViolation::MissingAccount(id) => write!(f, "account {id} does not exist"),
            InvariantViolation::PendingBalanceMismatch(id) => write!(
                f,
                "account {id}: pending balances differ from its open pending transfers"
            ),
            InvariantViolation::LimitCrossed(id) => write!(f, "account {id} crosses its limit"),
            InvariantViolation::BalanceOverflow(id) => {
                write!(f, "account {id}: balances add up past u128::MAX")
            }
            InvariantViolation::BadAccount(id) => {
                write!(
                    f,
                    "account {id} has an id or flags no account is created with"
                )
            }
            InvariantViolation::Unbalanced(ledger) => {
                write!(f, "ledger {ledger}: debits differ from credits")
            }
        }
    }
}

impl std::error::Error for InvariantViolation {}

/// An exact 256-bit sum, so that adding up every account of a ledger cannot overflow.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Sum {
    /// How many times the low part wrapped around.
    pub high: u128,
    /// The sum modulo 2^128.
    pub low: u128,
}

impl Sum {
    /// Adds `value` exactly.
    pub fn add(&mut self, value: u128) {
        let (low, carried) = self.low.overflowing_add(value);
        self.low = low;
        self.high += u128::from(carried);
    }

    /// The sum as a `u128`, if it fits.
    pub fn to_u128(self) -> Option<u128> {
        (self.high == 0).then_some(self.low)
    }
}

/// Per ledger: the four balances summed over every account.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LedgerTotals {
    /// Number of accounts in the ledger.
    pub accounts: u64,
    /// Sum of `debits_pending`.
    pub debits_pending: Sum,
    /// Sum of `debits_posted`.
    pub debits_posted: Sum,
    /// Sum of `credits_pending`.
    pub credits_pending: Sum,
    /// Sum of `credits_posted`.
    pub credits_posted: Sum,
}

impl LedgerTotals {
    /// Double entry holds: debits equal credits, posted and pending alike.
    pub fn balanced(&self) -> bool {
        self.debits_posted == self.credits_posted && self.debits_pending == self.credits_pending
    }
}

impl Ledger {
    /// Empty books.
    pub fn new() -> Self {
        Ledger::default()
    }

    /// Lowers the largest balance an account may reach: a transfer that would take any of an
    /// account's balances (or pending plus posted) past it answers `overflows_*`. A store whose
    /// columns are narrower than 128 bits sets this, so that it never meets a balance it
    /// cannot keep.
    pub fn set_balance_max(&mut self, balance_max: u128) {
        self.balance_max = balance_max;
    }

    /// Empty books with memory for `accounts` accounts and `transfers` transfers allocated
    /// now, so that applying batches never waits for the allocator or the kernel.
    pub fn with_capacity(accounts: usize, transfers: usize) -> Self {
        let mut ledger = Ledger {
            transfers: TransferCache::with_capacity(transfers),
            ..Ledger::default()
        };
        ledger.accounts.reserve(accounts);
        ledger
    }

    /// Creates accounts. `results` is cleared and gets one result per event, in order.
    /// Every event gets a timestamp at or after `now`, strictly after any earlier event.
    pub fn apply_accounts(
        &mut self,
        now: u64,
        events: &[Account],
        results: &mut Vec<CreateAccountResult>,
    ) {
        let outcome = ChainResults {
            ok: CreateAccountResult::Ok,
            failed: CreateAccountResult::LinkedEventFailed,
            open: CreateAccountResult::LinkedEventChainOpen,
        };
        self.apply_batch(
            now,
            events,
            results,
            |a| a.flags.contains(AccountFlags::LINKED),
            outcome,
            |ledger, timestamp, index| ledger.create_account(timestamp, &events[index]),
        );
    }

    /// Creates transfers. `results` is cleared and gets one result per event, in order.
    /// Every event gets a timestamp at or after `now`, strictly after any earlier event.
    pub fn apply_transfers(
        &mut self,
        now: u64,
        events: &[Transfer],
        results: &mut Vec<CreateTransferResult>,
    ) {
        let outcome = ChainResults {
            ok: CreateTransferResult::Ok,
            failed: CreateTransferResult::LinkedEventFailed,
            open: CreateTransferResult::LinkedEventChainOpen,
        };
        self.apply_batch(
            now,
            events,
            results,
            |t| t.flags.contains(TransferFlags::LINKED),
            outcome,
            |ledger, timestamp, index| ledger.create_transfer(timestamp, &events[index]),
        );
    }

    /// `apply_accounts`, returning the results.
    pub fn create_accounts(&mut self, now: u64, events: &[Account]) -> Vec<CreateAccountResult> {
        let mut results = Vec::with_capacity(events.len());
        self.apply_accounts(now, events, &mut results);
        results
    }

    /// `apply_transfers`, returning the results.
    pub fn create_transfers(&mut self, now: u64, events: &[Transfer]) -> Vec<CreateTransferResult> {
        let mut results = Vec::with_capacity(events.len());
        self.apply_transfers(now, events, &mut results);
        results
    }

    /// Releases every pending transfer whose timeout has passed at `now`. Returns their ids in
    /// order of expiry. Expiring is an event: when anything expires, the books' clock moves to
    /// `now` (or just past the last event), so that the expiries are ordered after every
    /// earlier event and before every later one.
    pub fn expire(&mut self, now: u64) -> Vec<u128> {
        assert!(
            now <= TIMESTAMP_MAX,
            "the caller's clock is before TIMESTAMP_MAX"
        );
        self.journaling = self.scope.is_some();
        let mut expired = Vec::new();
        while let Some(&(at, id)) = self.expiries.first() {
            if at > now {
                break;
            }
            self.expiries.pop_first();
            self.record(Undo::ExpiryRemoved(at, id));
            let pending = *self
                .transfers
                .get(id)
                .expect("an expiry entry belongs to a cached open pending transfer");
            self.settle_pending(&pending, 0, PendingStatus::Expired);
            expired.push(id);
        }
        if !expired.is_empty() {
            self.timestamp = now.max(self.timestamp + 1);
        }
        self.journaling = false;
        expired
    }

    /// The account with this id.
    pub fn account(&self, id: u128) -> Option<&Account> {
        self.accounts.get(&id)
    }

    /// Every account, in no particular order.
    pub fn accounts(&self) -> impl Iterator<Item = &Account> {
        self.accounts.values()
    }

    /// Number of accounts.
    pub fn account_count(&self) -> usize {
        self.accounts.len()
    }

    /// The transfer with this id, if it is in the cache.
    pub fn transfer(&self, id: u128) -> Option<&Transfer> {
        self.transfers.get(id)
    }

    /// Where the pending transfer with this id stands, if it is in the cache.
    pub fn pending_status(&self, id: u128) -> Option<PendingStatus> {
        self.pending_status.get(&id).copied()
    }

    /// Every pending transfer still reserving its amount, in no particular order.
    pub fn open_pending(&self) -> impl Iterator<Item = &Transfer> {
        self.pending_status
            .iter()
            .filter(|(_, status)| **status == PendingStatus::Pending)
            .map(|(id, _)| {
                self.transfers
                    .get(*id)
                    .expect("open pending transfers are never evicted")
            })
    }

    /// Timestamp of the last event applied.
    pub fn timestamp(&self) -> u64 {
        self.timestamp
    }

    /// Number of transfers in the cache.
    pub fn cached_transfer_count(&self) -> usize {
        self.transfers.len()
    }

    /// Number of pending transfers whose status is cached (open ones and recently settled).
    pub fn pending_status_count(&self) -> usize {
        self.pending_status.len()
    }

    /// The largest transfer id ever created.
    pub fn transfer_id_max(&self) -> u128 {
        self.transfer_id_max
    }

    /// When the next pending transfer expires, if any has a timeout.
    pub fn next_expiry(&self) -> Option<u64> {
        self.expiries.first().map(|(at, _)| *at)
    }

    /// The transfer ids a batch names (its own ids and the pending ids it settles) that may
    /// exist but are not in the cache. A store looks them up and `cache`s what it finds
    /// before the batch is applied; ids above `transfer_id_max` never need a look-up.
    pub fn uncached_ids(&self, events: &[Transfer]) -> Vec<u128> {
        let mut ids = Vec::new();
        for event in events {
            for id in [event.id, event.pending_id] {
                if id != 0 && id <= self.transfer_id_max && !self.transfers.contains(id) {
                    ids.push(id);
                }
            }
        }
        ids.sort_unstable();
        ids.dedup();
        ids
    }

    /// Puts a transfer the store holds back in the cache, with its status if it is pending.
    pub fn cache(&mut self, transfer: Transfer, status: Option<PendingStatus>) {
        // Inside a scope a cached transfer could land among the scope's own inserts, which
        // the journal undoes by position.
        assert!(
            self.scope.is_none(),
            "cache between scopes, before the batch"
        );
        assert!(
            transfer.id <= self.transfer_id_max,
            "a cached transfer was created before"
        );
        assert_eq!(
            status.is_some(),
            transfer.flags.contains(TransferFlags::PENDING),
            "pending transfers, and only they, have a status"
        );
        if !self.transfers.contains(transfer.id) {
            self.transfers.insert(transfer);
        }
        if let Some(status) = status {
            let known = self.pending_status.insert(transfer.id, status);
            assert!(
                known.is_none_or(|known| known == status),
                "a cached status never contradicts the books"
            );
        }
    }

    /// Drops every settled transfer from the cache, keeping the open pending ones. A store
    /// calls it once a batch is durable, so memory holds only what future batches need.
    pub fn evict_settled(&mut self) {
        assert!(self.scope.is_none(), "evict only between scopes");
        let status = &self.pending_status;
        self.transfers
            .retain(|transfer| status.get(&transfer.id) == Some(&PendingStatus::Pending));
        self.pending_status
            .retain(|_, status| *status == PendingStatus::Pending);
    }

    /// Starts a scope: everything applied until `commit_scope` can be undone by
    /// `rollback_scope`. The engine opens one per batch so that a failed commit leaves memory
    /// as it was before the batch.
    pub fn begin_scope(&mut self) {
        assert!(self.scope.is_none(), "scopes do not nest");
        assert!(
            self.journal.is_empty(),
            "no journal is left outside a scope"
        );
        self.scope = Some(Scope {
            timestamp: self.timestamp,
            transfer_id_max: self.transfer_id_max,
        });
    }

    /// Keeps what the scope applied.
    pub fn commit_scope(&mut self) {
        assert!(self.scope.take().is_some(), "a scope is open");
        self.journal.clear();
    }

    /// Undoes everything the scope applied.
    pub fn rollback_scope(&mut self) {
        let scope = self.scope.take().expect("a scope is open");
        self.undo_to(0);
        self.timestamp = scope.timestamp;
        self.transfer_id_max = scope.transfer_id_max;
    }

    /// Per ledger, the balances summed over every account.
    pub fn totals(&self) -> BTreeMap<u32, LedgerTotals> {
        let mut totals: BTreeMap<u32, LedgerTotals> = BTreeMap::new();
        for account in self.accounts.values() {
            let entry = totals.entry(account.ledger).or_default();
            entry.accounts += 1;
            entry.debits_pending.add(account.debits_pending);
            entry.debits_posted.add(account.debits_posted);
            entry.credits_pending.add(account.credits_pending);
            entry.credits_posted.add(account.credits_posted);
        }
        totals
    }

    /// Checks every invariant of the books from scratch: per ledger debits equal credits,
    /// no account crosses its limit, and pending balances equal the open pending transfers.
    pub fn verify(&self) -> Result<(), InvariantViolation> {
        for (ledger, totals) in self.totals() {
            if !totals.balanced() {
                return Err(InvariantViolation::Unbalanced(ledger));
            }
        }
        // Sorted, so that the violation reported is the same on every run.
        let mut accounts: Vec<&Account> = self.accounts.values().collect();
        accounts.sort_unstable_by_key(|a| a.id);
        for account in &accounts {
            let debits = account.debits_pending.checked_add(account.debits_posted);
            let credits = account.credits_pending.checked_add(account.credits_posted);
            let (Some(debits), Some(credits)) = (debits, credits) else {
                return Err(InvariantViolation::BalanceOverflow(account.id));
            };
            let crossed = (account
                .flags
                .contains(AccountFlags::DEBITS_MUST_NOT_EXCEED_CREDITS)
                && debits > account.credits_posted)
                || (account
                    .flags
                    .contains(AccountFlags::CREDITS_MUST_NOT_EXCEED_DEBITS)
                    && credits > account.debits_posted);
            if crossed {
                return Err(InvariantViolation::LimitCrossed(account.id));
            }
        }
        let mut reserved: HashMap<u128, (u128, u128)> = HashMap::new();
        let mut pending: Vec<&Transfer> = self.open_pending().collect();
        pending.sort_unstable_by_key(|t| t.id);
        for pending in pending {
            check_pending(
                pending,
                &self.accounts,
                self.transfer_id_max,
                self.timestamp,
            )?;
            for (id, is_debit) in [
                (pending.debit_account_id, true),
                (pending.credit_account_id, false),
            ] {
                if !self.accounts.contains_key(&id) {
                    return Err(InvariantViolation::MissingAccount(id));
                }
                let entry = reserved.entry(id).or_default();
                let side = if is_debit { &mut entry.0 } else { &mut entry.1 };
                *side = side
                    .checked_add(pending.amount)
                    .ok_or(InvariantViolation::PendingBalanceMismatch(id))?;
            }
        }
        for account in accounts {
            let (debits, credits) = reserved.get(&account.id).copied().unwrap_or_default();
            if account.debits_pending != debits || account.credits_pending != credits {
                return Err(InvariantViolation::PendingBalanceMismatch(account.id));
            }
        }
        Ok(())
    }

    /// The state to persist or compare: accounts and open pending transfers, sorted by id.
    pub fn export(&self) -> Snapshot {
        let mut accounts: Vec<Account> = self.accounts.values().copied().collect();
        accounts.sort_unstable_by_key(|a| a.id);
        let mut pending: Vec<Transfer> = self.open_pending().copied().collect();
        pending.sort_unstable_by_key(|t| t.id);
        Snapshot {
            timestamp: self.timestamp,
            transfer_id_max: self.transfer_id_max,
            accounts,
            pending,
        }
    }

    /// Rebuilds books from a snapshot, checking every invariant first.
    pub fn import(snapshot: Snapshot) -> Result<Ledger, InvariantViolation> {
        let mut ledger = Ledger {
            timestamp: snapshot.timestamp,
            transfer_id_max: snapshot.transfer_id_max,
            ..Ledger::default()
        };
        ledger.accounts.reserve(snapshot.accounts.len());
        for account in snapshot.accounts {
            let bad_flags = account.flags.contains(AccountFlags::LINKED)
                || account.flags.bits() & !AccountFlags::all().bits() != 0;
            if account.id == 0 || account.id == u128::MAX || bad_flags {
                return Err(InvariantViolation::BadAccount(account.id));
            }
            if ledger.accounts.insert(account.id, account).is_some() {
                return Err(InvariantViolation::DuplicateAccount(account.id));
            }
        }
        for pending in snapshot.pending {
            let fresh = !ledger.transfers.contains(pending.id);
            if !fresh || !pending.flags.contains(TransferFlags::PENDING) {
                return Err(InvariantViolation::BadPendingTransfer(pending.id));
            }
            ledger.transfers.insert(pending);
            ledger
                .pending_status
                .insert(pending.id, PendingStatus::Pending);
            if let Some(at) = pending.expires_at() {
                ledger.expiries.insert((at, pending.id));
            }
        }
        ledger.verify()?;
        Ok(ledger)
    }

    /// A cheap fingerprint of the whole state (accounts, open pending transfers, clock):
    /// equal states give equal digests whatever order they were built in.
    pub fn digest(&self) -> u128 {
        let mut digest = Fold::new(self.timestamp.into()).finish();
        for account in self.accounts.values() {
            digest = digest.wrapping_add(account_digest(account));
        }
        for pending in self.open_pending() {
            digest = digest.wrapping_add(transfer_digest(pending));
        }
        digest
    }

    /// Runs a batch with linked-chain semantics: a chain (events flagged linked, closed by the
    /// first event without the flag) succeeds or fails as one.
    fn apply_batch<E, R: Copy + PartialEq>(
        &mut self,
        now: u64,
        events: &[E],
        results: &mut Vec<R>,
        linked: impl Fn(&E) -> bool,
        outcome: ChainResults<R>,
        mut create: impl FnMut(&mut Self, u64, usize) -> R,
    ) {
        assert!(events.len() <= BATCH_EVENTS_MAX, "batch within its bound");
        results.clear();
        if events.is_empty() {
            return;
        }
        assert!(
            now <= TIMESTAMP_MAX,
            "the caller's clock is before TIMESTAMP_MAX"
        );
        assert!(
            self.timestamp <= TIMESTAMP_MAX,
            "timestamps stay before TIMESTAMP_MAX"
        );
        // Cannot overflow: both are at most TIMESTAMP_MAX and a batch is at most 2^20 events.
        let first = now.max(self.timestamp + 1);
        let last_index = events.len() - 1;
        let mut chain: Option<Chain> = None;
        for (index, event) in events.iter().enumerate() {
            let timestamp = first + index as u64;
            let is_linked = linked(event);
            if is_linked && chain.is_none() {
                chain = Some(Chain {
                    start: index,
                    journal: self.journal.len(),
                    broken: false,
                });
            }
            self.journaling = self.scope.is_some() || chain.is_some();
            let result = match &chain {
                _ if is_linked && index == last_index => outcome.open,
                Some(c) if c.broken => outcome.failed,
                _ => create(self, timestamp, index),
            };
            results.push(result);
            if let Some(c) = chain.as_mut() {
                if result != outcome.ok && !c.broken {
                    c.broken = true;
                    self.undo_to(c.journal);
                    for earlier in &mut results[c.start..index] {
                        *earlier = outcome.failed;
                    }
                }
                if !is_linked {
                    chain = None;
                    if self.scope.is_none() {
                        self.journal.clear();
                    }
                }
            }
        }
        self.journaling = false;
        self.timestamp = first + last_index as u64;
    }

    fn create_account(&mut self, timestamp: u64, a: &Account) -> CreateAccountResult {
        use CreateAccountResult as R;
        if a.timestamp != 0 {
            return R::TimestampMustBeZero;
        }
        let unknown = a.flags.bits() & !AccountFlags::all().bits() != 0;
        if unknown || a.flags.contains(AccountFlags::CLOSED) {
            return R::ReservedFlag;
        }
        if a.id == 0 {
            return R::IdMustNotBeZero;
        }
        if a.id == u128::MAX {
            return R::IdMustNotBeIntMax;
        }
        if let Some(e) = self.accounts.get(&a.id) {
            return account_exists(a, e);
        }
        if a.flags.contains(
            AccountFlags::DEBITS_MUST_NOT_EXCEED_CREDITS
                | AccountFlags::CREDITS_MUST_NOT_EXCEED_DEBITS,
        ) {
            return R::FlagsAreMutuallyExclusive;
        }
        if a.debits_pending != 0 {
            return R::DebitsPendingMustBeZero;
        }
        if a.debits_posted != 0 {
            return R::DebitsPostedMustBeZero;
        }
        if a.credits_pending != 0 {
            return R::CreditsPendingMustBeZero;
        }
        if a.credits_posted != 0 {
            return R::CreditsPostedMustBeZero;
        }
        if a.ledger == 0 {
            return R::LedgerMustNotBeZero;
        }
        if a.code == 0 {
            return R::CodeMustNotBeZero;
        }
        let mut account = *a;
        account.flags.remove(AccountFlags::LINKED);
        account.timestamp = timestamp;
        self.accounts.insert(account.id, account);
        self.record(Undo::AccountCreated(account.id));
        R::Ok
    }

    fn create_transfer(&mut self, timestamp: u64, t: &Transfer) -> CreateTransferResult {
        use CreateTransferResult as R;
        if t.timestamp != 0 {
            return R::TimestampMustBeZero;
        }
        if t.flags.bits() & !TransferFlags::all().bits() != 0 {
            return R::ReservedFlag;
        }
        if t.id == 0 {
            return R::IdMustNotBeZero;
        }
        if t.id == u128::MAX {
            return R::IdMustNotBeIntMax;
        }
        if t.id <= self.transfer_id_max
            && let Some(e) = self.transfers.get(t.id)
        {
            return transfer_exists(t, e);
        }
        if t.is_post_or_void() {
            return self.post_or_void_pending(timestamp, t);
        }
        let pending = t.flags.contains(TransferFlags::PENDING);
        let closing = t
            .flags
            .intersects(TransferFlags::CLOSING_DEBIT | TransferFlags::CLOSING_CREDIT);
        if t.debit_account_id == 0 {
            return R::DebitAccountIdMustNotBeZero;
        }
        if t.debit_account_id == u128::MAX {
            return R::DebitAccountIdMustNotBeIntMax;
        }
        if t.credit_account_id == 0 {
            return R::CreditAccountIdMustNotBeZero;
        }
        if t.credit_account_id == u128::MAX {
            return R::CreditAccountIdMustNotBeIntMax;
        }
        if t.debit_account_id == t.credit_account_id {
            return R::AccountsMustBeDifferent;
        }
        if t.pending_id != 0 {
            return R::PendingIdMustBeZero;
        }
        if !pending && t.timeout != 0 {
            return R::TimeoutReservedForPendingTransfer;
        }
        if closing && !pending {
            return R::ClosingTransferMustBePending;
        }
        if t.amount == 0 && !closing {
            return R::AmountMustNotBeZero;
        }
        if t.ledger == 0 {
            return R::LedgerMustNotBeZero;
        }
        if t.code == 0 {
            return R::CodeMustNotBeZero;
        }
        // One look-up each serves the checks and the update (the ids differ: checked above).
        let [dr, cr] = self
            .accounts
            .get_many_mut([&t.debit_account_id, &t.credit_account_id]);
        let Some(dr) = dr else {
            return R::DebitAccountNotFound;
        };
        let Some(cr) = cr else {
            return R::CreditAccountNotFound;
        };
        if dr.ledger != cr.ledger {
            return R::AccountsMustHaveTheSameLedger;
        }
        if t.ledger != dr.ledger {
            return R::TransferMustHaveTheSameLedgerAsAccounts;
        }
        if dr.flags.contains(AccountFlags::CLOSED) {
            return R::DebitAccountAlreadyClosed;
        }
        if cr.flags.contains(AccountFlags::CLOSED) {
            return R::CreditAccountAlreadyClosed;
        }
        let balance_max = self.balance_max;
        let mut amount = t.amount;
        if t.flags.contains(TransferFlags::BALANCING_DEBIT) {
            let held = dr
                .credits_posted
                .saturating_sub(dr.debits_posted.saturating_add(dr.debits_pending));
            amount = amount.min(held);
        }
        if t.flags.contains(TransferFlags::BALANCING_CREDIT) {
            let owed = cr
                .debits_posted
                .saturating_sub(cr.credits_posted.saturating_add(cr.credits_pending));
            amount = amount.min(owed);
        }
        if pending && overflows(dr.debits_pending, amount, balance_max) {
            return R::OverflowsDebitsPending;
        }
        if pending && overflows(cr.credits_pending, amount, balance_max) {
            return R::OverflowsCreditsPending;
        }
        if overflows(dr.debits_posted, amount, balance_max) {
            return R::OverflowsDebitsPosted;
        }
        if overflows(cr.credits_posted, amount, balance_max) {
            return R::OverflowsCreditsPosted;
        }
        // pending + posted never overflows (each transfer checked it), so only `amount` can.
        if overflows(dr.debits_pending + dr.debits_posted, amount, balance_max) {
            return R::OverflowsDebits;
        }
        if overflows(cr.credits_pending + cr.credits_posted, amount, balance_max) {
            return R::OverflowsCredits;
        }
        let timeout_nanos = u64::from(t.timeout) * crate::transfer::NANOS_PER_SECOND;
        if timestamp
            .checked_add(timeout_nanos)
            .is_none_or(|at| at > TIMESTAMP_MAX)
        {
            return R::OverflowsTimeout;
        }
        if dr.debits_exceed_credits(amount) {
            return R::ExceedsCredits;
        }
        if cr.credits_exceed_debits(amount) {
            return R::ExceedsDebits;
        }

        // Every check passed: from here on only assertions may fail.
        if self.journaling {
            self.journal.push(Undo::Account(*dr));
            self.journal.push(Undo::Account(*cr));
        }
        if pending {
            dr.debits_pending += amount;
            cr.credits_pending += amount;
            if t.flags.contains(TransferFlags::CLOSING_DEBIT) {
                dr.flags.insert(AccountFlags::CLOSED);
            }
            if t.flags.contains(TransferFlags::CLOSING_CREDIT) {
                cr.flags.insert(AccountFlags::CLOSED);
            }
        } else {
            dr.debits_posted += amount;
            cr.credits_posted += amount;
        }
        assert!(
            !dr.debits_exceed_credits(0),
            "debit account within its limit"
        );
        assert!(
            !cr.credits_exceed_debits(0),
            "credit account within its limit"
        );

        let stored = Transfer {
            amount,
            timestamp,
            ..*t
        };
        if pending {
            self.set_pending_status(stored.id, PendingStatus::Pending);
            if let Some(at) = stored.expires_at() {
                self.expiries.insert((at, stored.id));
                self.record(Undo::ExpiryAdded(at, stored.id));
            }
        }
        self.insert_transfer(stored);
        R::Ok
    }

    fn post_or_void_pending(&mut self, timestamp: u64, t: &Transfer) -> CreateTransferResult {
        use CreateTransferResult as R;
        let post = t.flags.contains(TransferFlags::POST_PENDING_TRANSFER);
        let void = t.flags.contains(TransferFlags::VOID_PENDING_TRANSFER);
        let not_with_settlement = TransferFlags::PENDING
            | TransferFlags::BALANCING_DEBIT
            | TransferFlags::BALANCING_CREDIT
            | TransferFlags::CLOSING_DEBIT
            | TransferFlags::CLOSING_CREDIT;
        if (post && void) || t.flags.intersects(not_with_settlement) {
            return R::FlagsAreMutuallyExclusive;
        }
        if t.pending_id == 0 {
            return R::PendingIdMustNotBeZero;
        }
        if t.pending_id == u128::MAX {
            return R::PendingIdMustNotBeIntMax;
        }
        if t.pending_id == t.id {
            return R::PendingIdMustBeDifferent;
        }
        if t.timeout != 0 {
            return R::TimeoutReservedForPendingTransfer;
        }
        if post && t.amount == 0 {
            return R::AmountMustNotBeZero;
        }
        let Some(p) = self.transfers.get(t.pending_id) else {
            return R::PendingTransferNotFound;
        };
        if !p.flags.contains(TransferFlags::PENDING) {
            return R::PendingTransferNotPending;
        }
        if t.debit_account_id != 0 && t.debit_account_id != p.debit_account_id {
            return R::PendingTransferHasDifferentDebitAccountId;
        }
        if t.credit_account_id != 0 && t.credit_account_id != p.credit_account_id {
            return R::PendingTransferHasDifferentCreditAccountId;
        }
        if t.ledger != 0 && t.ledger != p.ledger {
            return R::PendingTransferHasDifferentLedger;
        }
        if t.code != 0 && t.code != p.code {
            return R::PendingTransferHasDifferentCode;
        }
        let amount = if post {
            if t.amount == AMOUNT_MAX {
                p.amount
            } else if t.amount > p.amount {
                return R::ExceedsPendingTransferAmount;
            } else {
                t.amount
            }
        } else {
            if t.amount != 0 && t.amount != AMOUNT_MAX && t.amount != p.amount {
                return R::PendingTransferHasDifferentAmount;
            }
            p.amount
        };
        let status = *self
            .pending_status
            .get(&p.id)
            .expect("every cached pending transfer has a status");
        match status {
            PendingStatus::Posted => return R::PendingTransferAlreadyPosted,
            PendingStatus::Voided => return R::PendingTransferAlreadyVoided,
            PendingStatus::Expired => return R::PendingTransferExpired,
            PendingStatus::Pending => {}
        }
        if p.expires_at().is_some_and(|at| at <= timestamp) {
            return R::PendingTransferExpired;
        }
        let dr = self
            .accounts
            .get(&p.debit_account_id)
            .expect("a pending transfer's accounts exist");
        let cr = self
            .accounts
            .get(&p.credit_account_id)
            .expect("a pending transfer's accounts exist");
        let balance_max = self.balance_max;
        if post {
            // A closed account takes no postings, except the closing transfer itself.
            if dr.flags.contains(AccountFlags::CLOSED)
                && !p.flags.contains(TransferFlags::CLOSING_DEBIT)
            {
                return R::DebitAccountAlreadyClosed;
            }
            if cr.flags.contains(AccountFlags::CLOSED)
                && !p.flags.contains(TransferFlags::CLOSING_CREDIT)
            {
                return R::CreditAccountAlreadyClosed;
            }
            if overflows(dr.debits_posted, amount, balance_max) {
                return R::OverflowsDebitsPosted;
            }
            if overflows(cr.credits_posted, amount, balance_max) {
                return R::OverflowsCreditsPosted;
            }
        }

        // Every check passed: from here on only assertions may fail.
        let pending = *p;
        let stored = Transfer {
            id: t.id,
            debit_account_id: pending.debit_account_id,
            credit_account_id: pending.credit_account_id,
            amount,
            pending_id: pending.id,
            user_data_128: t.user_data_128,
            user_data_64: t.user_data_64,
            user_data_32: t.user_data_32,
            timeout: 0,
            ledger: pending.ledger,
            code: pending.code,
            flags: t.flags,
            timestamp,
        };
        let (posted, status) = if post {
            (amount, PendingStatus::Posted)
        } else {
            (0, PendingStatus::Voided)
        };
        if let Some(at) = pending.expires_at() {
            let removed = self.expiries.remove(&(at, pending.id));
            assert!(
                removed,
                "an open pending transfer with a timeout has an expiry"
            );
            self.record(Undo::ExpiryRemoved(at, pending.id));
        }
        self.settle_pending(&pending, posted, status);
        self.insert_transfer(stored);
        R::Ok
    }

    /// Ends a pending transfer's reservation, posting `posted` of it. Voiding or expiring a
    /// closing transfer reopens the account it closed.
    fn settle_pending(&mut self, pending: &Transfer, posted: u128, status: PendingStatus) {
        assert!(
            posted <= pending.amount,
            "a post moves at most what was reserved"
        );
        let dr_before = self.accounts[&pending.debit_account_id];
        let cr_before = self.accounts[&pending.credit_account_id];
        self.record(Undo::Account(dr_before));
        self.record(Undo::Account(cr_before));
        let reopen = status != PendingStatus::Posted;
        let [Some(dr), Some(cr)] = self
            .accounts
            .get_many_mut([&pending.debit_account_id, &pending.credit_account_id])
        else {
            unreachable!("a pending transfer's accounts exist and are different");
        };
        dr.debits_pending -= pending.amount;
        cr.credits_pending -= pending.amount;
        dr.debits_posted += posted;
        cr.credits_posted += posted;
        if reopen && pending.flags.contains(TransferFlags::CLOSING_DEBIT) {
            dr.flags.remove(AccountFlags::CLOSED);
        }
        if reopen && pending.flags.contains(TransferFlags::CLOSING_CREDIT) {
            cr.flags.remove(AccountFlags::CLOSED);
        }
        assert!(
            !dr.debits_exceed_credits(0),
            "debit account within its limit"
        );
        assert!(
            !cr.credits_exceed_debits(0),
            "credit account within its limit"
        );
        self.set_pending_status(pending.id, status);
    }

    fn insert_transfer(&mut self, transfer: Transfer) {
        self.transfers.insert(transfer);
        self.transfer_id_max = self.transfer_id_max.max(transfer.id);
        self.record(Undo::TransferCreated(transfer.id));
    }

    fn set_pending_status(&mut self, id: u128, status: PendingStatus) {
        let previous = self.pending_status.insert(id, status);
        self.record(Undo::PendingStatus(id, previous));
    }

    fn record(&mut self, undo: Undo) {
        if self.journaling {
            self.journal.push(undo);
        }
    }

    fn undo_to(&mut self, mark: usize) {
        while self.journal.len() > mark {
            match self.journal.pop().expect("journal longer than mark") {
                Undo::AccountCreated(id) => {
                    self.accounts.remove(&id);
                }
                Undo::Account(account) => {
                    self.accounts.insert(account.id, account);
                }
                Undo::TransferCreated(id) => {
                    self.transfers.remove_last_inserted(id);
                }
                Undo::PendingStatus(id, Some(status)) => {
                    self.pending_status.insert(id, status);
                }
                Undo::PendingStatus(id, None) => {
                    self.pending_status.remove(&id);
                }
                Undo::ExpiryAdded(at, id) => {
                    self.expiries.remove(&(at, id));
                }
                Undo::ExpiryRemoved(at, id) => {
                    self.expiries.insert((at, id));
                }
            }
        }
    }
}

/// What `create_transfer` guarantees of every open pending transfer, checked again for one
/// that comes from outside (a snapshot).
fn check_pending(
    pending: &Transfer,
    accounts: &HashMap<u128, Account>,
    transfer_id_max: u128,
    timestamp: u64,
) -> Result<(), InvariantViolation> {
    let bad = InvariantViolation::BadPendingTransfer(pending.id);
    let settles = TransferFlags::POST_PENDING_TRANSFER | TransferFlags::VOID_PENDING_TRANSFER;
    let well_formed = pending.id != 0
        && pending.id <= transfer_id_max
        && pending.flags.contains(TransferFlags::PENDING)
        && !pending.flags.intersects(settles)
        && pending.flags.bits() & !TransferFlags::all().bits() == 0
        && pending.pending_id == 0
        && pending.timestamp != 0
        && pending.timestamp <= timestamp
        && pending.debit_account_id != pending.credit_account_id;
    if !well_formed {
        return Err(bad);
    }
    for id in [pending.debit_account_id, pending.credit_account_id] {
        let account = accounts
            .get(&id)
            .ok_or(InvariantViolation::MissingAccount(id))?;
        if account.ledger != pending.ledger {
            return Err(bad);
        }
    }
    Ok(())
}

/// Whether adding `amount` to `balance` passes `max` (or u128::MAX).
fn overflows(balance: u128, amount: u128, max: u128) -> bool {
    balance.checked_add(amount).is_none_or(|sum| sum > max)
}

/// The three results a chain needs to speak of, per kind of event.
#[derive(Clone, Copy)]
struct ChainResults<R> {
    ok: R,
    failed: R,
    open: R,
}

/// A linked chain being applied: where it began in the batch and in the journal.
struct Chain {
    start: usize,
    journal: usize,
    broken: bool,
}

fn account_exists(a: &Account, e: &Account) -> CreateAccountResult {
    use CreateAccountResult as R;
    let flags = a.flags.difference(AccountFlags::LINKED);
    let existing = e.flags.difference(AccountFlags::CLOSED);
    if flags != existing {
        R::ExistsWithDifferentFlags
    } else if a.user_data_128 != e.user_data_128 {
        R::ExistsWithDifferentUserData128
    } else if a.user_data_64 != e.user_data_64 {
        R::ExistsWithDifferentUserData64
    } else if a.user_data_32 != e.user_data_32 {
        R::ExistsWithDifferentUserData32
    } else if a.ledger != e.ledger {
        R::ExistsWithDifferentLedger
    } else if a.code != e.code {
        R::ExistsWithDifferentCode
    } else {
        R::Exists
    }
}

fn transfer_exists(t: &Transfer, e: &Transfer) -> CreateTransferResult {
    use CreateTransferResult as R;
    let settles = t.is_post_or_void();
    // Post and void may leave accounts, ledger and code zero: the stored copy has them filled.
    let differs = |given: u128, stored: u128| {
        if settles {
            given != 0 && given != stored
        } else {
            given != stored
        }
    };
    let amount_differs = if settles {
        let full = t.amount == AMOUNT_MAX
            || (t.amount == 0 && !t.flags.contains(TransferFlags::POST_PENDING_TRANSFER));
        !full && t.amount != e.amount
    } else if t
        .flags
        .intersects(TransferFlags::BALANCING_DEBIT | TransferFlags::BALANCING_CREDIT)
    {
        t.amount < e.amount
    } else {
        t.amount != e.amount
    };
    if t.flags != e.flags {
        R::ExistsWithDifferentFlags
    } else if t.pending_id != e.pending_id {
        R::ExistsWithDifferentPendingId
    } else if t.timeout != e.timeout {
        R::ExistsWithDifferentTimeout
    } else if differs(t.debit_account_id, e.debit_account_id) {
        R::ExistsWithDifferentDebitAccountId
    } else if differs(t.credit_account_id, e.credit_account_id) {
        R::ExistsWithDifferentCreditAccountId
    } else if amount_differs {
        R::ExistsWithDifferentAmount
    } else if t.user_data_128 != e.user_data_128 {
        R::ExistsWithDifferentUserData128
    } else if t.user_data_64 != e.user_data_64 {
        R::ExistsWithDifferentUserData64
    } else if t.user_data_32 != e.user_data_32 {
        R::ExistsWithDifferentUserData32
    } else if differs(t.ledger.into(), e.ledger.into()) {
        R::ExistsWithDifferentLedger
    } else if differs(t.code.into(), e.code.into()) {
        R::ExistsWithDifferentCode
    } else {
        R::Exists
    }
}

fn account_digest(a: &Account) -> u128 {
    let mut fold = Fold::new(1);
    for value in [
        a.id,
        a.debits_pending,
        a.debits_posted,
        a.credits_pending,
        a.credits_posted,
        a.user_data_128,
        a.user_data_64.into(),
        a.user_data_32.into(),
        a.ledger.into(),
        a.code.into(),
        a.flags.bits().into(),
        a.timestamp.into(),
    ] {
        fold.add(value);
    }
    fold.finish()
}

fn transfer_digest(t: &Transfer) -> u128 {
    let mut fold = Fold::new(2);
    for value in [
        t.id,
        t.debit_account_id,
        t.credit_account_id,
        t.amount,
        t.pending_id,
        t.user_data_128,
        t.user_data_64.into(),
        t.user_data_32.into(),
        t.timeout.into(),
        t.ledger.into(),
        t.code.into(),
        t.flags.bits().into(),
        t.timestamp.into(),
    ] {
        fold.add(value);
    }
    fold.finish()
}

/// A small deterministic 128-bit mixer (multiply and fold, as in wyhash): the same on every
/// machine and run, unlike the randomly seeded hashers of the maps.
struct Fold {
    state: [u64; 2],
}

impl Fold {
    const K0: u64 = 0xa076_1d64_78bd_642f;
    const K1: u64 = 0xe703_7ed1_a0b4_28db;

    fn new(seed: u128) -> Self {
        let mut fold = Fold {
            state: [Self::K0, Self::K1],
        };
        fold.add(seed);
        fold
    }

    fn add(&mut self, value: u128) {
        let (low, high) = (value as u64, (value >> 64) as u64);
        self.state[0] = mum(self.state[0] ^ low, Self::K1 ^ high);
        self.state[1] = mum(self.state[1] ^ high, Self::K0 ^ low) ^ self.state[0];
    }

    fn finish(&self) -> u128 {
        let low = mum(self.state[0], Self::K0);
        let high = mum(self.state[1], Self::K1 ^ low);
        (u128::from(high) << 64) | u128::from(low)
    }
}

fn mum(a: u64, b: u64) -> u64 {
    let product = u128::from(a) * u128::from(b);
    (product as u64) ^ ((product >> 64) as u64)
}

#[cfg(test)]
mod tests;
