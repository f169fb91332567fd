//! Accounts: a balance sheet line with four balances and the limits a transfer must respect.

use bitflags::bitflags;

bitflags! {
    /// Flags an account is created with. `CLOSED` is set and cleared by closing transfers only.
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
    pub struct AccountFlags: u16 {
        /// This event is linked to the next one in the batch: they succeed or fail together.
        const LINKED = 1 << 0;
        /// `debits_pending + debits_posted` may never exceed `credits_posted` (an asset the
        /// holder owns, such as a wallet: it cannot go negative).
        const DEBITS_MUST_NOT_EXCEED_CREDITS = 1 << 1;
        /// `credits_pending + credits_posted` may never exceed `debits_posted` (for example a
        /// credit line that must not be repaid beyond what was drawn).
        const CREDITS_MUST_NOT_EXCEED_DEBITS = 1 << 2;
        /// The account takes no new transfers. Only a closing transfer sets it; voiding or
        /// expiring that transfer clears it again.
        const CLOSED = 1 << 3;
    }
}

/// One account of the books. Balances are in the minor units of the account's ledger.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Account {
    /// Unique, non-zero, not `u128::MAX`; chosen by the caller (time-ordered by convention).
    pub id: u128,
    /// Amounts reserved by pending transfers that debit this account.
    pub debits_pending: u128,
    /// Amounts debited for good.
    pub debits_posted: u128,
    /// Amounts reserved by pending transfers that credit this account.
    pub credits_pending: u128,
    /// Amounts credited for good.
    pub credits_posted: u128,
    /// Opaque to the ledger: for the products built on it (for example an owner id).
    pub user_data_128: u128,
    /// Opaque to the ledger.
    pub user_data_64: u64,
    /// Opaque to the ledger.
    pub user_data_32: u32,
    /// The ledger (one per currency or asset) this account belongs to; never zero.
    pub ledger: u32,
    /// The account's kind, chosen by the products (wallet, escrow, revenue, ...); never zero.
    pub code: u16,
    /// Limits and link flag.
    pub flags: AccountFlags,
    /// Set by the ledger when the account is created (nanoseconds); must be zero on input.
    pub timestamp: u64,
}

impl Account {
    /// A new account with zero balances, ready to be created.
    pub fn new(id: u128, ledger: u32, code: u16) -> Self {
        Account {
            id,
            ledger,
            code,
            ..Account::default()
        }
    }

    /// The same account with these flags.
    pub fn with_flags(mut self, flags: AccountFlags) -> Self {
        self.flags = flags;
        self
    }

    /// Credits minus debits, counting what pending transfers reserve against the holder:
    /// what the holder of a wallet-like account can still spend.
    pub fn available(&self) -> i128 {
        signed(self.credits_posted)
            .saturating_sub(signed(self.debits_posted))
            .saturating_sub(signed(self.debits_pending))
    }

    /// Whether adding `amount` to this account's debits would break its
    /// `DEBITS_MUST_NOT_EXCEED_CREDITS` limit. The sum cannot overflow: the caller has checked.
    pub(crate) fn debits_exceed_credits(&self, amount: u128) -> bool {
        self.flags
            .contains(AccountFlags::DEBITS_MUST_NOT_EXCEED_CREDITS)
            && self.debits_pending + self.debits_posted + amount > self.credits_posted
    }

    /// Whether adding `amount` to this account's credits would break its
    /// `CREDITS_MUST_NOT_EXCEED_DEBITS` limit. The sum cannot overflow: the caller has checked.
    pub(crate) fn credits_exceed_debits(&self, amount: u128) -> bool {
        self.flags
            .contains(AccountFlags::CREDITS_MUST_NOT_EXCEED_DEBITS)
            && self.credits_pending + self.credits_posted + amount > self.debits_posted
    }
}

/// Saturating conversion for the display helper `available`: real balances are far below
/// `i128::MAX`, and saturated figures (subtracted with saturation too) keep the right sign.
fn signed(value: u128) -> i128 {
    i128::try_from(value).unwrap_or(i128::MAX)
}
