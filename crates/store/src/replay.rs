//! The reads both stores share, written once over `Reader`: balances are the last checkpoint
//! plus the transfers (and expiries) after it; an account's history is a chain through the
//! transfers table, each row naming the previous transfer of its two accounts.

use std::collections::{BTreeMap, HashMap, HashSet};

use formica_core::{Loaded, TransferRow};
use formica_ledger::{Account, AccountFlags, PendingStatus, Snapshot, Transfer, TransferFlags};

use crate::{HistoryQuery, StoreError, TransferSums, TrialBalance};

/// The books' row: clock, largest transfer id, and the timestamp the account balances are
/// written as of.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct BooksRow {
    pub timestamp: u64,
    pub transfer_id_max: u128,
    pub checkpoint: u64,
}

/// The raw reads a store answers, all inside one read snapshot.
pub(crate) trait Reader {
    fn books(&mut self) -> Result<BooksRow, StoreError>;
    /// Accounts as of the checkpoint, each with the timestamp of its latest transfer then;
    /// one account, or all.
    fn checkpoint_accounts(
        &mut self,
        account: Option<u128>,
    ) -> Result<Vec<(Account, u64)>, StoreError>;
    /// Transfers after `after`, in timestamp order; only those of `account` if given.
    fn transfers_after(
        &mut self,
        after: u64,
        account: Option<u128>,
    ) -> Result<Vec<Transfer>, StoreError>;
    /// (settled_at, id) of pending transfers that expired after `after`.
    fn expiries_after(&mut self, after: u64) -> Result<Vec<(u64, u128)>, StoreError>;
    /// Stored transfers with these ids, with their status when pending.
    fn transfers_by_id(
        &mut self,
        ids: &[u128],
    ) -> Result<Vec<(Transfer, Option<PendingStatus>)>, StoreError>;
    /// Pending transfers still pending.
    fn open_pending(&mut self) -> Result<Vec<Transfer>, StoreError>;
    /// The transfer row with this timestamp.
    fn transfer_at(&mut self, timestamp: u64) -> Result<Option<TransferRow>, StoreError>;
    /// Per account, the four balances of the transfers up to `as_of` (pending ones counted
    /// if they were still pending then).
    fn transfer_sums(&mut self, as_of: u64) -> Result<TransferSums, StoreError>;
}

/// The books as stored: the checkpoint brought forward by the transfers after it.
pub(crate) fn load(reader: &mut dyn Reader) -> Result<Loaded, StoreError> {
    let books = reader.books()?;
    let mut accounts = HashMap::new();
    let mut heads = HashMap::new();
    for (account, head) in reader.checkpoint_accounts(None)? {
        if head != 0 {
            heads.insert(account.id, head);
        }
        accounts.insert(account.id, account);
    }
    let mut changed: Vec<u128> =
        bring_forward(reader, books.checkpoint, None, &mut accounts, &mut heads)?
            .into_iter()
            .collect();
    changed.sort_unstable();
    let mut accounts: Vec<Account> = accounts.into_values().collect();
    accounts.sort_unstable_by_key(|a| a.id);
    let mut heads: Vec<(u128, u64)> = heads.into_iter().collect();
    heads.sort_unstable();
    Ok(Loaded {
        snapshot: Snapshot {
            timestamp: books.timestamp,
            transfer_id_max: books.transfer_id_max,
            accounts,
            pending: reader.open_pending()?,
        },
        heads,
        changed_since_checkpoint: changed,
        // The store adds the products' open objects, read in their own transaction.
        products: Default::default(),
    })
}

/// One account as it stands now.
pub(crate) fn account(reader: &mut dyn Reader, id: u128) -> Result<Option<Account>, StoreError> {
    let books = reader.books()?;
    let mut accounts = HashMap::new();
    let mut heads = HashMap::new();
    for (account, _) in reader.checkpoint_accounts(Some(id))? {
        accounts.insert(account.id, account);
    }
    if accounts.is_empty() {
        return Ok(None);
    }
    bring_forward(
        reader,
        books.checkpoint,
        Some(id),
        &mut accounts,
        &mut heads,
    )?;
    Ok(accounts.remove(&id))
}

/// A page of an account's transfers, newest first, walking its chain.
pub(crate) fn history(
    reader: &mut dyn Reader,
    query: &HistoryQuery,
) -> Result<Vec<Transfer>, StoreError> {
    let account = query.account_id;
    let from = query.from.unwrap_or(0);
    let mut next = match query.before {
        // The cursor a previous page ended on: continue from that row's link.
        Some(before) => match reader.transfer_at(before)? {
            Some(row) if touches(&row.transfer, account) => row.previous_of(account),
            _ => first_before(reader, account, before)?,
        },
        None => head(reader, account)?,
    };
    let mut page = Vec::new();
    while next != 0 && next >= from && page.len() < query.limit as usize {
        let row = reader
            .transfer_at(next)?
            .ok_or_else(|| StoreError::Corrupt(format!("history link to missing row {next}")))?;
        next = row.previous_of(account);
        page.push(row.transfer);
    }
    Ok(page)
}

/// The trial balance: the checkpointed balances against the transfers up to the checkpoint,
/// and the books brought forward checked for every invariant.
pub(crate) fn trial_balance(reader: &mut dyn Reader) -> Result<TrialBalance, StoreError> {
    let books = reader.books()?;
    let checkpointed: Vec<Account> = reader
        .checkpoint_accounts(None)?
        .into_iter()
        .map(|(account, _)| account)
        .collect();
    let sums = reader.transfer_sums(books.checkpoint)?;
    let loaded = load(reader)?;
    let mut balance = crate::compare(&checkpointed, &sums);
    balance.ledgers = BTreeMap::new();
    for account in &loaded.snapshot.accounts {
        let totals = balance.ledgers.entry(account.ledger).or_default();
        totals.accounts += 1;
        totals.debits_pending.add(account.debits_pending);
        totals.debits_posted.add(account.debits_posted);
        totals.credits_pending.add(account.credits_pending);
        totals.credits_posted.add(account.credits_posted);
    }
    balance.books_error = formica_ledger::Ledger::import(loaded.snapshot)
        .err()
        .map(|violation| violation.to_string());
    Ok(balance)
}

/// Applies the transfers and expiries after `checkpoint` to checkpointed balances, in time
/// order (closing flags depend on it; sums do not). Only `account`'s if given. Returns the
/// accounts whose rows are older than what it brought forward.
fn bring_forward(
    reader: &mut dyn Reader,
    checkpoint: u64,
    account: Option<u128>,
    accounts: &mut HashMap<u128, Account>,
    heads: &mut HashMap<u128, u64>,
) -> Result<HashSet<u128>, StoreError> {
    let transfers = reader.transfers_after(checkpoint, account)?;
    let expiries = reader.expiries_after(checkpoint)?;
    let mut wanted: HashSet<u128> = transfers
        .iter()
        .filter(|t| t.is_post_or_void())
        .map(|t| t.pending_id)
        .collect();
    wanted.extend(expiries.iter().map(|(_, id)| *id));
    let wanted: Vec<u128> = wanted.into_iter().collect();
    let pendings: HashMap<u128, Transfer> = reader
        .transfers_by_id(&wanted)?
        .into_iter()
        .map(|(t, _)| (t.id, t))
        .collect();
    let pending_of = |id: u128| {
        pendings
            .get(&id)
            .copied()
            .ok_or_else(|| StoreError::Corrupt(format!("pending transfer {id} is missing")))
    };
    // Expiries run at the start of their batch, before its transfers.
    let mut events: Vec<(u64, u8, Event)> = Vec::new();
    for (at, id) in expiries {
        let pending = pending_of(id)?;
        if account.is_none_or(|a| touches(&pending, a)) {
            events.push((at, 0, Event::Expiry(pending)));
        }
    }
    for transfer in transfers {
        let pending = if transfer.is_post_or_void() {
            Some(pending_of(transfer.pending_id)?)
        } else {
            None
        };
        events.push((transfer.timestamp, 1, Event::Transfer(transfer, pending)));
    }
    events.sort_by_key(|(at, order, _)| (*at, *order));
    let mut changed = HashSet::new();
    for (_, _, event) in events {
        changed.extend(event.accounts());
        event.apply(accounts, heads)?;
    }
    Ok(changed)
}

enum Event {
    Transfer(Transfer, Option<Transfer>),
    Expiry(Transfer),
}

impl Event {
    /// The two accounts the event changes.
    fn accounts(&self) -> [u128; 2] {
        let transfer = match self {
            Event::Transfer(transfer, None) => transfer,
            Event::Transfer(_, Some(pending)) | Event::Expiry(pending) => pending,
        };
        [transfer.debit_account_id, transfer.credit_account_id]
    }

    fn apply(
        &self,
        accounts: &mut HashMap<u128, Account>,
        heads: &mut HashMap<u128, u64>,
    ) -> Result<(), StoreError> {
        match self {
            Event::Transfer(t, pending) => {
                for side in [t.debit_account_id, t.credit_account_id] {
                    heads.insert(side, t.timestamp);
                }
                match pending {
                    None if t.flags.contains(TransferFlags::PENDING) => {
                        change(accounts, t.debit_account_id, |a| {
                            a.debits_pending = add(a.debits_pending, t.amount)?;
                            if t.flags.contains(TransferFlags::CLOSING_DEBIT) {
                                a.flags.insert(AccountFlags::CLOSED);
                            }
                            Ok(())
                        })?;
                        change(accounts, t.credit_account_id, |a| {
                            a.credits_pending = add(a.credits_pending, t.amount)?;
                            if t.flags.contains(TransferFlags::CLOSING_CREDIT) {
                                a.flags.insert(AccountFlags::CLOSED);
                            }
                            Ok(())
                        })
                    }
                    None => {
                        change(accounts, t.debit_account_id, |a| {
                            a.debits_posted = add(a.debits_posted, t.amount)?;
                            Ok(())
                        })?;
                        change(accounts, t.credit_account_id, |a| {
                            a.credits_posted = add(a.credits_posted, t.amount)?;
                            Ok(())
                        })
                    }
                    Some(pending) => {
                        let post = t.flags.contains(TransferFlags::POST_PENDING_TRANSFER);
                        let posted = if post { t.amount } else { 0 };
                        settle(accounts, pending, posted, !post)
                    }
                }
            }
            Event::Expiry(pending) => settle(accounts, pending, 0, true),
        }
    }
}

/// A pending transfer's reservation ends, `posted` of it posted; voids and expiries reopen
/// the account a closing transfer closed.
fn settle(
    accounts: &mut HashMap<u128, Account>,
    pending: &Transfer,
    posted: u128,
    reopen: bool,
) -> Result<(), StoreError> {
    change(accounts, pending.debit_account_id, |a| {
        a.debits_pending = sub(a.debits_pending, pending.amount)?;
        a.debits_posted = add(a.debits_posted, posted)?;
        if reopen && pending.flags.contains(TransferFlags::CLOSING_DEBIT) {
            a.flags.remove(AccountFlags::CLOSED);
        }
        Ok(())
    })?;
    change(accounts, pending.credit_account_id, |a| {
        a.credits_pending = sub(a.credits_pending, pending.amount)?;
        a.credits_posted = add(a.credits_posted, posted)?;
        if reopen && pending.flags.contains(TransferFlags::CLOSING_CREDIT) {
            a.flags.remove(AccountFlags::CLOSED);
        }
        Ok(())
    })
}

/// Changes an account if it is among those being brought forward (a one-account read
/// skips the other side of each transfer).
fn change(
    accounts: &mut HashMap<u128, Account>,
    id: u128,
    update: impl FnOnce(&mut Account) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    match accounts.get_mut(&id) {
        Some(account) => update(account),
        None => Ok(()),
    }
}

fn add(balance: u128, amount: u128) -> Result<u128, StoreError> {
    balance
        .checked_add(amount)
        .ok_or_else(|| StoreError::Corrupt("a balance overflows when brought forward".into()))
}

fn sub(balance: u128, amount: u128) -> Result<u128, StoreError> {
    balance.checked_sub(amount).ok_or_else(|| {
        StoreError::Corrupt("a pending balance goes negative when brought forward".into())
    })
}

fn touches(transfer: &Transfer, account: u128) -> bool {
    transfer.debit_account_id == account || transfer.credit_account_id == account
}

/// The newest transfer of `account`: after the checkpoint if it has one there, else the
/// head the checkpoint recorded.
fn head(reader: &mut dyn Reader, account: u128) -> Result<u64, StoreError> {
    let books = reader.books()?;
    let after = reader.transfers_after(books.checkpoint, Some(account))?;
    if let Some(last) = after.last() {
        return Ok(last.timestamp);
    }
    Ok(reader
        .checkpoint_accounts(Some(account))?
        .first()
        .map_or(0, |(_, head)| *head))
}

/// The newest transfer of `account` before `before`, walking back from its head.
fn first_before(reader: &mut dyn Reader, account: u128, before: u64) -> Result<u64, StoreError> {
    let mut next = head(reader, account)?;
    while next != 0 && next >= before {
        let row = reader
            .transfer_at(next)?
            .ok_or_else(|| StoreError::Corrupt(format!("history link to missing row {next}")))?;
        next = row.previous_of(account);
    }
    Ok(next)
}
