//! Transfers: the only way money moves. Single-phase, two-phase (pending, then post or void),
//! linked into chains, balancing (move at most what an account holds) and closing.

use bitflags::bitflags;

bitflags! {
    /// What kind of transfer this is.
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
    pub struct TransferFlags: u16 {
        /// This event is linked to the next one in the batch: they succeed or fail together.
        const LINKED = 1 << 0;
        /// Reserve the amount (phase one); a later post or void settles it.
        const PENDING = 1 << 1;
        /// Post (part of) the pending transfer named by `pending_id`.
        const POST_PENDING_TRANSFER = 1 << 2;
        /// Void the pending transfer named by `pending_id`, releasing what it reserved.
        const VOID_PENDING_TRANSFER = 1 << 3;
        /// Move at most what the debit account holds (`amount` is the cap).
        const BALANCING_DEBIT = 1 << 4;
        /// Move at most what the credit account is owed (`amount` is the cap).
        const BALANCING_CREDIT = 1 << 5;
        /// A pending transfer that closes its debit account until it is voided or expires.
        const CLOSING_DEBIT = 1 << 6;
        /// A pending transfer that closes its credit account until it is voided or expires.
        const CLOSING_CREDIT = 1 << 7;
    }
}

/// `amount` of a post that settles the whole pending amount, or of a balancing transfer with
/// no cap.
pub const AMOUNT_MAX: u128 = u128::MAX;

/// Nanoseconds in one second: pending timeouts are in seconds, timestamps in nanoseconds.
pub const NANOS_PER_SECOND: u64 = 1_000_000_000;

/// A movement of `amount` from the debit account to the credit account, in one ledger.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Transfer {
    /// Unique, non-zero, not `u128::MAX`; the idempotency key of the movement.
    pub id: u128,
    /// The account debited. For post and void it may be zero (taken from the pending transfer).
    pub debit_account_id: u128,
    /// The account credited. For post and void it may be zero (taken from the pending transfer).
    pub credit_account_id: u128,
    /// Minor units. Stored transfers hold the amount actually moved (after balancing or a
    /// full post with `AMOUNT_MAX`).
    pub amount: u128,
    /// For post and void: the pending transfer settled. Zero otherwise.
    pub pending_id: u128,
    /// Opaque to the ledger (for example the business object this movement belongs to).
    pub user_data_128: u128,
    /// Opaque to the ledger.
    pub user_data_64: u64,
    /// Opaque to the ledger.
    pub user_data_32: u32,
    /// For pending transfers: seconds after which the reservation expires; zero for never.
    pub timeout: u32,
    /// The ledger of both accounts. For post and void it may be zero.
    pub ledger: u32,
    /// Why the money moved, chosen by the products (payment, refund, fee, ...).
    pub code: u16,
    /// The kind of transfer.
    pub flags: TransferFlags,
    /// Set by the ledger when the transfer is created (nanoseconds); must be zero on input.
    pub timestamp: u64,
}

impl Transfer {
    /// A single-phase transfer of `amount` from `debit` to `credit`.
    pub fn new(id: u128, debit: u128, credit: u128, amount: u128, ledger: u32, code: u16) -> Self {
        Transfer {
            id,
            debit_account_id: debit,
            credit_account_id: credit,
            amount,
            ledger,
            code,
            ..Transfer::default()
        }
    }

    /// A transfer that posts `amount` of the pending transfer `pending_id`
    /// (`AMOUNT_MAX` for all of it).
    pub fn post(id: u128, pending_id: u128, amount: u128) -> Self {
        Transfer {
            id,
            pending_id,
            amount,
            flags: TransferFlags::POST_PENDING_TRANSFER,
            ..Transfer::default()
        }
    }

    /// A transfer that voids the pending transfer `pending_id`.
    pub fn void(id: u128, pending_id: u128) -> Self {
        Transfer {
            id,
            pending_id,
            flags: TransferFlags::VOID_PENDING_TRANSFER,
            ..Transfer::default()
        }
    }

    /// The same transfer with these flags.
    pub fn with_flags(mut self, flags: TransferFlags) -> Self {
        self.flags = flags;
        self
    }

    /// The same transfer with this timeout in seconds (pending transfers only).
    pub fn with_timeout(mut self, timeout_seconds: u32) -> Self {
        self.timeout = timeout_seconds;
        self
    }

    /// Whether this transfer settles a pending one.
    pub fn is_post_or_void(&self) -> bool {
        self.flags
            .intersects(TransferFlags::POST_PENDING_TRANSFER | TransferFlags::VOID_PENDING_TRANSFER)
    }

    /// When a pending transfer stops reserving its amount, if it has a timeout.
    pub fn expires_at(&self) -> Option<u64> {
        if self.timeout == 0 {
            return None;
        }
        let timeout_nanos = u64::from(self.timeout) * NANOS_PER_SECOND;
        Some(self.timestamp.saturating_add(timeout_nanos))
    }
}

/// Where a pending transfer stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PendingStatus {
    /// Still reserving its amount.
    Pending,
    /// Settled by a post (of all or part of the amount).
    Posted,
    /// Released by a void.
    Voided,
    /// Released because its timeout passed.
    Expired,
}

impl PendingStatus {
    /// A stable lower-case name, for storage and display.
    pub fn as_str(self) -> &'static str {
        match self {
            PendingStatus::Pending => "pending",
            PendingStatus::Posted => "posted",
            PendingStatus::Voided => "voided",
            PendingStatus::Expired => "expired",
        }
    }

    /// The inverse of `as_str`.
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "pending" => PendingStatus::Pending,
            "posted" => PendingStatus::Posted,
            "voided" => PendingStatus::Voided,
            "expired" => PendingStatus::Expired,
            _ => return None,
        })
    }
}
