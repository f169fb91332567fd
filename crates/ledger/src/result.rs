//! The answer to each event of a batch. Results are data, not errors: a batch of 8,190 events
//! gets 8,190 results. Within each enum the variants are in order of precedence: when an event
//! is wrong in several ways, the first applicable variant is the one reported.

/// Declares a result enum whose variants carry stable snake_case names.
macro_rules! result_codes {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $text:literal,)* }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $($(#[$vmeta])* $variant,)*
        }

        impl $name {
            /// Every variant, in order of precedence.
            pub const ALL: &'static [$name] = &[$($name::$variant,)*];

            /// A stable snake_case name, for storage, logs and APIs.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)*
                }
            }

            /// The inverse of `as_str`.
            pub fn parse(text: &str) -> Option<Self> {
                match text {
                    $($text => Some($name::$variant),)*
                    _ => None,
                }
            }

            /// Whether the event was applied.
            pub fn is_ok(self) -> bool {
                self == $name::Ok
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

result_codes! {
    /// The result of creating one account.
    CreateAccountResult {
        /// Created.
        Ok = "ok",
        /// Another event of its linked chain failed; this one was not applied or was undone.
        LinkedEventFailed = "linked_event_failed",
        /// The last event of the batch has the linked flag: the chain never closes.
        LinkedEventChainOpen = "linked_event_chain_open",
        /// Timestamps are assigned by the ledger.
        TimestampMustBeZero = "timestamp_must_be_zero",
        /// An unknown flag, or the closed flag (set only by closing transfers).
        ReservedFlag = "reserved_flag",
        /// Zero is not an id.
        IdMustNotBeZero = "id_must_not_be_zero",
        /// `u128::MAX` is reserved.
        IdMustNotBeIntMax = "id_must_not_be_int_max",
        /// An account with this id exists with other flags.
        ExistsWithDifferentFlags = "exists_with_different_flags",
        /// An account with this id exists with another `user_data_128`.
        ExistsWithDifferentUserData128 = "exists_with_different_user_data_128",
        /// An account with this id exists with another `user_data_64`.
        ExistsWithDifferentUserData64 = "exists_with_different_user_data_64",
        /// An account with this id exists with another `user_data_32`.
        ExistsWithDifferentUserData32 = "exists_with_different_user_data_32",
        /// An account with this id exists in another ledger.
        ExistsWithDifferentLedger = "exists_with_different_ledger",
        /// An account with this id exists with another code.
        ExistsWithDifferentCode = "exists_with_different_code",
        /// The same account was created before: nothing changes.
        Exists = "exists",
        /// Both balance limits at once would freeze the account.
        FlagsAreMutuallyExclusive = "flags_are_mutually_exclusive",
        /// Balances start at zero; money arrives by transfers.
        DebitsPendingMustBeZero = "debits_pending_must_be_zero",
        /// Balances start at zero; money arrives by transfers.
        DebitsPostedMustBeZero = "debits_posted_must_be_zero",
        /// Balances start at zero; money arrives by transfers.
        CreditsPendingMustBeZero = "credits_pending_must_be_zero",
        /// Balances start at zero; money arrives by transfers.
        CreditsPostedMustBeZero = "credits_posted_must_be_zero",
        /// Every account belongs to a ledger.
        LedgerMustNotBeZero = "ledger_must_not_be_zero",
        /// Every account has a kind.
        CodeMustNotBeZero = "code_must_not_be_zero",
    }
}

result_codes! {
    /// The result of creating one transfer.
    CreateTransferResult {
        /// Applied.
        Ok = "ok",
        /// Another event of its linked chain failed; this one was not applied or was undone.
        LinkedEventFailed = "linked_event_failed",
        /// The last event of the batch has the linked flag: the chain never closes.
        LinkedEventChainOpen = "linked_event_chain_open",
        /// Timestamps are assigned by the ledger.
        TimestampMustBeZero = "timestamp_must_be_zero",
        /// A flag this version does not know.
        ReservedFlag = "reserved_flag",
        /// Zero is not an id.
        IdMustNotBeZero = "id_must_not_be_zero",
        /// `u128::MAX` is reserved.
        IdMustNotBeIntMax = "id_must_not_be_int_max",
        /// The same id was used before for a transfer with other flags.
        ExistsWithDifferentFlags = "exists_with_different_flags",
        /// The same id was used before with another `pending_id`.
        ExistsWithDifferentPendingId = "exists_with_different_pending_id",
        /// The same id was used before with another timeout.
        ExistsWithDifferentTimeout = "exists_with_different_timeout",
        /// The same id was used before with another debit account.
        ExistsWithDifferentDebitAccountId = "exists_with_different_debit_account_id",
        /// The same id was used before with another credit account.
        ExistsWithDifferentCreditAccountId = "exists_with_different_credit_account_id",
        /// The same id was used before with another amount.
        ExistsWithDifferentAmount = "exists_with_different_amount",
        /// The same id was used before with another `user_data_128`.
        ExistsWithDifferentUserData128 = "exists_with_different_user_data_128",
        /// The same id was used before with another `user_data_64`.
        ExistsWithDifferentUserData64 = "exists_with_different_user_data_64",
        /// The same id was used before with another `user_data_32`.
        ExistsWithDifferentUserData32 = "exists_with_different_user_data_32",
        /// The same id was used before in another ledger.
        ExistsWithDifferentLedger = "exists_with_different_ledger",
        /// The same id was used before with another code.
        ExistsWithDifferentCode = "exists_with_different_code",
        /// The same transfer was applied before: nothing moves again.
        Exists = "exists",
        /// Flags that cannot go together (post and void, post and pending, balancing a post...).
        FlagsAreMutuallyExclusive = "flags_are_mutually_exclusive",
        /// Zero is not an account id.
        DebitAccountIdMustNotBeZero = "debit_account_id_must_not_be_zero",
        /// `u128::MAX` is not an account id.
        DebitAccountIdMustNotBeIntMax = "debit_account_id_must_not_be_int_max",
        /// Zero is not an account id.
        CreditAccountIdMustNotBeZero = "credit_account_id_must_not_be_zero",
        /// `u128::MAX` is not an account id.
        CreditAccountIdMustNotBeIntMax = "credit_account_id_must_not_be_int_max",
        /// A transfer from an account to itself moves nothing and is refused.
        AccountsMustBeDifferent = "accounts_must_be_different",
        /// Only post and void name a pending transfer.
        PendingIdMustBeZero = "pending_id_must_be_zero",
        /// Post and void must name the pending transfer.
        PendingIdMustNotBeZero = "pending_id_must_not_be_zero",
        /// `u128::MAX` is not a transfer id.
        PendingIdMustNotBeIntMax = "pending_id_must_not_be_int_max",
        /// A transfer cannot settle itself.
        PendingIdMustBeDifferent = "pending_id_must_be_different",
        /// Only pending transfers expire.
        TimeoutReservedForPendingTransfer = "timeout_reserved_for_pending_transfer",
        /// Closing flags close an account until voided: they need a pending transfer.
        ClosingTransferMustBePending = "closing_transfer_must_be_pending",
        /// Zero moves nothing (closing transfers excepted).
        AmountMustNotBeZero = "amount_must_not_be_zero",
        /// Every transfer belongs to a ledger.
        LedgerMustNotBeZero = "ledger_must_not_be_zero",
        /// Every transfer has a reason code.
        CodeMustNotBeZero = "code_must_not_be_zero",
        /// No account with the debit account id.
        DebitAccountNotFound = "debit_account_not_found",
        /// No account with the credit account id.
        CreditAccountNotFound = "credit_account_not_found",
        /// The two accounts are in different ledgers (currencies): convert through liquidity
        /// accounts with a linked pair instead.
        AccountsMustHaveTheSameLedger = "accounts_must_have_the_same_ledger",
        /// The transfer names a ledger other than its accounts'.
        TransferMustHaveTheSameLedgerAsAccounts = "transfer_must_have_the_same_ledger_as_accounts",
        /// No pending transfer with `pending_id`.
        PendingTransferNotFound = "pending_transfer_not_found",
        /// The transfer named by `pending_id` is not a pending transfer.
        PendingTransferNotPending = "pending_transfer_not_pending",
        /// The post or void names another debit account than the pending transfer.
        PendingTransferHasDifferentDebitAccountId = "pending_transfer_has_different_debit_account_id",
        /// The post or void names another credit account than the pending transfer.
        PendingTransferHasDifferentCreditAccountId = "pending_transfer_has_different_credit_account_id",
        /// The post or void names another ledger than the pending transfer.
        PendingTransferHasDifferentLedger = "pending_transfer_has_different_ledger",
        /// The post or void names another code than the pending transfer.
        PendingTransferHasDifferentCode = "pending_transfer_has_different_code",
        /// A post cannot move more than was reserved.
        ExceedsPendingTransferAmount = "exceeds_pending_transfer_amount",
        /// A void names an amount other than the reserved one.
        PendingTransferHasDifferentAmount = "pending_transfer_has_different_amount",
        /// The pending transfer was posted already.
        PendingTransferAlreadyPosted = "pending_transfer_already_posted",
        /// The pending transfer was voided already.
        PendingTransferAlreadyVoided = "pending_transfer_already_voided",
        /// The pending transfer's timeout has passed.
        PendingTransferExpired = "pending_transfer_expired",
        /// The debit account is closed.
        DebitAccountAlreadyClosed = "debit_account_already_closed",
        /// The credit account is closed.
        CreditAccountAlreadyClosed = "credit_account_already_closed",
        /// The debit account's pending debits would pass `u128::MAX`.
        OverflowsDebitsPending = "overflows_debits_pending",
        /// The credit account's pending credits would pass `u128::MAX`.
        OverflowsCreditsPending = "overflows_credits_pending",
        /// The debit account's posted debits would pass `u128::MAX`.
        OverflowsDebitsPosted = "overflows_debits_posted",
        /// The credit account's posted credits would pass `u128::MAX`.
        OverflowsCreditsPosted = "overflows_credits_posted",
        /// The debit account's pending plus posted debits would pass `u128::MAX`.
        OverflowsDebits = "overflows_debits",
        /// The credit account's pending plus posted credits would pass `u128::MAX`.
        OverflowsCredits = "overflows_credits",
        /// The expiry time would pass the end of the clock (`TIMESTAMP_MAX`).
        OverflowsTimeout = "overflows_timeout",
        /// The debit account would spend more than it holds.
        ExceedsCredits = "exceeds_credits",
        /// The credit account would be owed more than it lent.
        ExceedsDebits = "exceeds_debits",
    }
}
