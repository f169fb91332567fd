//! The commands the core takes and its answers.

use formica_ledger::{
    AMOUNT_MAX, Account, CreateAccountResult, CreateTransferResult, Transfer, TransferFlags,
};

/// Largest amount a transfer may carry, and largest balance an account may reach: the store
/// keeps amounts and balances as signed 64-bit integers (SQLite INTEGER, PostgreSQL BIGINT) so
/// that operators can sum them in plain SQL. That is 92 quadrillion yuan in fen.
pub const STORED_AMOUNT_MAX: u128 = i64::MAX as u128;

/// Largest number of events one command carries.
pub const COMMAND_EVENTS_MAX: usize = 8190;

/// A command for the core.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// Create these accounts (a batch of ledger events, chains allowed).
    CreateAccounts(Vec<Account>),
    /// Create these transfers (a batch of ledger events, chains allowed).
    CreateTransfers(Vec<Transfer>),
    /// A product command (one event).
    Product(crate::ProductRequest),
}

/// The answer to a command: one result per event.
#[allow(
    clippy::large_enum_variant,
    reason = "a reply is built once and moved to its caller; boxing would allocate per command"
)]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    /// Results of `CreateAccounts`, in order.
    Accounts(Vec<CreateAccountResult>),
    /// Results of `CreateTransfers`, in order.
    Transfers(Vec<CreateTransferResult>),
    /// What a product command did.
    Product(crate::Outcome),
}

/// Why a command was refused as a whole, before anything was applied.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    /// The command carries no events.
    #[error("the command carries no events")]
    Empty,
    /// The command carries more events than one command may.
    #[error("the command carries {0} events; at most {COMMAND_EVENTS_MAX} are allowed")]
    TooManyEvents(usize),
    /// An amount is larger than the store can keep.
    #[error(
        "event {index}: amount {amount} is above the largest storable amount {STORED_AMOUNT_MAX}"
    )]
    AmountTooLarge {
        /// Position of the event in the command.
        index: usize,
        /// The amount given.
        amount: u128,
    },
    /// A product refused the command; nothing changed.
    #[error(transparent)]
    Refused(#[from] crate::Refusal),
    /// The idempotency key was saved with a different request.
    #[error("this idempotency key was used for a different request")]
    IdempotencyKeyReused,
}

impl Command {
    /// Number of ledger events the command carries.
    pub fn events(&self) -> usize {
        match self {
            Command::CreateAccounts(accounts) => accounts.len(),
            Command::CreateTransfers(transfers) => transfers.len(),
            Command::Product(_) => 1,
        }
    }

    pub(crate) fn validate(&self) -> Result<(), CommandError> {
        match self.events() {
            0 => return Err(CommandError::Empty),
            n if n > COMMAND_EVENTS_MAX => return Err(CommandError::TooManyEvents(n)),
            _ => {}
        }
        if let Command::CreateTransfers(transfers) = self {
            for (index, transfer) in transfers.iter().enumerate() {
                // AMOUNT_MAX is a sentinel ("all of it") for posts, voids and balancing
                // transfers: the ledger resolves it to an amount the accounts hold.
                let sentinel_allowed = transfer.is_post_or_void()
                    || transfer.flags.intersects(
                        TransferFlags::BALANCING_DEBIT | TransferFlags::BALANCING_CREDIT,
                    );
                let sentinel = sentinel_allowed && transfer.amount == AMOUNT_MAX;
                if transfer.amount > STORED_AMOUNT_MAX && !sentinel {
                    return Err(CommandError::AmountTooLarge {
                        index,
                        amount: transfer.amount,
                    });
                }
            }
        }
        Ok(())
    }
}
