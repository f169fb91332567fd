//! What the products share: their commands, outcomes and refusals, the open objects the core
//! holds for them (people's limits, open trades, bank movements in flight), timers, ids, and
//! the rows a batch writes for them.
//!
//! Every product command checks first and changes afterwards; what it changed is recorded in an
//! undo log so that a batch whose commit fails leaves memory exactly as before.

use std::collections::BTreeSet;

use formica_ledger::{Account, AccountFlags, CreateTransferResult, Ledger, Transfer};
use hashbrown::HashMap;
use serde::{Deserialize, Serialize};

use crate::credit::{Consent, Credit, CreditCheck, CreditCommand, CreditRun};
use crate::credit_line::{CreditLine, CreditLineCommand};
use crate::deposit::{Debt, Hold, HoldCommand, HoldStatus};
use crate::fund::{Calendar, Fund, FundCommand, Holding, Income, Redemption, Subscription};
use crate::merchant::{Merchant, MerchantCommand, RefundReceipt, Settlement};
use crate::money::{Currency, Money};
use crate::trade::{Trade, TradeCommand, TradeStatus};
use crate::wallet::{Level, Movement, Person, WalletCommand};

/// An id of a person, trade or movement: time-ordered (milliseconds of the batch that made it,
/// then a sequence), shown as a decimal string in JSON so that JavaScript keeps every digit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Id(pub u64);

impl std::fmt::Display for Id {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::str::FromStr for Id {
    type Err = std::num::ParseIntError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        text.parse().map(Id)
    }
}

impl Serialize for Id {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&self.0)
    }
}

impl utoipa::PartialSchema for Id {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .pattern(Some("^[0-9]{1,20}$"))
            .description(Some("A time-ordered 64-bit id, as a decimal string."))
            .examples([serde_json::json!("1945361817280512000")])
            .into()
    }
}

impl utoipa::ToSchema for Id {}

impl<'de> Deserialize<'de> for Id {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Bits of an id below the millisecond: a million ids per millisecond before the sequence
/// borrows from the next one (it never goes back).
const ID_SEQUENCE_BITS: u32 = 20;

/// Product transfers carry this in the top half of their 128-bit ids, apart from transfers
/// clients create directly on the books.
const PRODUCT_TRANSFER_TAG: u128 = 1 << 64;

/// The books' id of the transfer a product made with this id.
pub(crate) fn transfer_id(id: Id) -> u128 {
    PRODUCT_TRANSFER_TAG | u128::from(id.0)
}

/// Account kinds (the ledger's account `code`): a wallet, or one of the platform's own.
pub mod account_kind {
    /// A person's (or shop's) wallet in one currency.
    pub const WALLET: u16 = 1;
    /// Money held at the bank on the platform's behalf: debited when money comes in from a
    /// card, credited when it goes out to one.
    pub const BANK_CLEARING: u16 = 2;
    /// A merchant's balance: takings not yet settled to its bank card.
    pub const MERCHANT: u16 = 3;
    /// The platform's fee revenue.
    pub const REVENUE: u16 = 4;
    /// A fund's money: equal to its units outstanding.
    pub const FUND: u16 = 5;
    /// A fund's daily income, paid in by its manager, while the holders are credited.
    pub const FUND_INCOME: u16 = 6;
    /// What rounding each holder's earnings down left of a fund's daily incomes.
    pub const FUND_RESIDUAL: u16 = 7;
    /// A holder's units of a fund (in the fund's unit ledger).
    pub const FUND_UNITS: u16 = 8;
    /// A fund's issuer of units (in its unit ledger): debited for every unit outstanding.
    pub const FUND_ISSUER: u16 = 9;
    /// What a person owes the platform (debits less credits): the platform's claim.
    pub const RECEIVABLE: u16 = 10;
    /// The platform's money set aside for credit and not lent out.
    pub const CREDIT_FUNDING: u16 = 11;
    /// The platform's money lent out: the sum of every receivable.
    pub const CREDIT_LENT: u16 = 12;
    /// What a person owes on their credit line (debits less credits).
    pub const CREDIT_LINE: u16 = 13;
    /// The platform's interest income from credit lines.
    pub const CREDIT_INTEREST: u16 = 14;
    /// The platform's instalment fee income.
    pub const CREDIT_FEES: u16 = 15;
}

/// Why money moved (the ledger's transfer `code`).
pub mod transfer_kind {
    /// Money in from a bank card.
    pub const TOP_UP: u16 = 1;
    /// Money out to a bank card.
    pub const WITHDRAWAL: u16 = 2;
    /// A transfer between two people.
    pub const TRANSFER: u16 = 3;
    /// A buyer's payment into escrow.
    pub const TRADE_PAYMENT: u16 = 4;
    /// A merchant's fee to the platform.
    pub const FEE: u16 = 5;
    /// A fee's share returned with a refund.
    pub const FEE_REFUND: u16 = 6;
    /// A merchant's refund to a buyer.
    pub const REFUND: u16 = 7;
    /// A merchant's takings paid out to its bank card.
    pub const SETTLEMENT: u16 = 8;
    /// A merchant's payment to a person (the gateway's transfer).
    pub const MERCHANT_PAYOUT: u16 = 9;
    /// Money from a wallet into a fund.
    pub const FUND_SUBSCRIPTION: u16 = 10;
    /// Money from a fund back to a wallet.
    pub const FUND_REDEMPTION: u16 = 11;
    /// A fund's daily income: from the manager, then to the fund (or its residual).
    pub const FUND_INCOME: u16 = 12;
    /// Units issued to a holder as a day's earnings.
    pub const FUND_EARNINGS: u16 = 13;
    /// Units issued for a subscription or retired for a redemption.
    pub const FUND_UNITS: u16 = 14;
    /// What rounding left of a day's income, to the fund's residual account.
    pub const FUND_RESIDUAL: u16 = 15;
    /// A deposit frozen, charged or paid to a merchant.
    pub const DEPOSIT: u16 = 16;
    /// A charged deposit the platform paid on a person's behalf: their debt.
    pub const DEPOSIT_DEBT: u16 = 17;
    /// A person repaying a debt.
    pub const DEBT_REPAYMENT: u16 = 18;
    /// The platform's money set aside for credit, from its bank account.
    pub const CREDIT_FUNDING: u16 = 19;
    /// Funding lent out, or coming back with a repayment.
    pub const CREDIT_LENDING: u16 = 20;
    /// The platform lends a purchase from a person's credit line into their wallet.
    pub const CREDIT_PURCHASE: u16 = 21;
    /// Interest on a credit line.
    pub const CREDIT_INTEREST: u16 = 22;
    /// An instalment fee on a credit line.
    pub const CREDIT_FEE: u16 = 23;
    /// A person repays their credit line.
    pub const CREDIT_REPAYMENT: u16 = 24;
    /// A refund of a purchase from the line goes back to it.
    pub const CREDIT_REFUND: u16 = 25;
}

/// The account id of `owner`'s account of `kind` in `currency` (owner zero is the platform):
/// the owner in the top 64 bits, then the kind and the currency's numeric code, so every
/// account is found without a lookup table.
pub fn account_id(owner: Id, kind: u16, currency: Currency) -> u128 {
    (u128::from(owner.0) << 64) | (u128::from(kind) << 32) | u128::from(currency.ledger())
}

/// The platform itself, as an owner of accounts.
pub const PLATFORM: Id = Id(0);

/// Rules the products run by, chosen by the operator.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    /// How long a trade waits for the buyer's payment before it closes.
    pub pay_timeout_ns: u64,
    /// How long after shipping the buyer's receipt is confirmed on their behalf.
    pub confirm_timeout_ns: u64,
    /// How long a seller has to answer a refund request before it is agreed on their behalf.
    pub refund_answer_timeout_ns: u64,
    /// How long a bank movement may wait for the bank before it is failed.
    pub bank_timeout_ns: u64,
    /// The platform's time zone as seconds east of UTC: daily limits reset at its midnight.
    pub day_offset_seconds: i64,
    /// Daily outgoing limit of an unverified person, in major units of each currency.
    pub unverified_daily_major: u64,
    /// Daily outgoing limit of a verified person, in major units of each currency.
    pub verified_daily_major: u64,
    /// Days (calendar days in the platform's zone) after which a merchant's takings are paid
    /// out (1 = T+1).
    pub settle_delay_days: u32,
    /// How long a paid merchant trade can be refunded before it is finished.
    pub refund_window_ns: u64,
    /// Fund holders credited per batch while a day's income is accrued.
    pub accrual_chunk: usize,
    /// Settled transfers the books keep in memory beyond twice the open ones before they are
    /// swept (the store has them all). Bounds the writer's memory; smaller sweeps more often.
    pub transfer_cache_slack: usize,
}

/// Settled transfers kept in memory before a sweep, by default: a sweep walks the whole
/// cache, so it runs once per this many transfers (a tenth of a millisecond's walk every
/// 16,384 transfers), and the cache stays within some 3 MiB beyond the open transfers. At
/// 131,072 an hour's soak at 50 requests a second never reached the sweep, and the server's
/// memory grew by a quarter.
pub const TRANSFER_CACHE_SLACK: usize = 1 << 14;

/// Nanoseconds per second.
pub(crate) const NANOS_PER_SECOND: u64 = SECOND_NS;

/// Nanoseconds per second, minute and day.
const SECOND_NS: u64 = 1_000_000_000;
const MINUTE_NS: u64 = 60 * SECOND_NS;
const DAY_NS: u64 = 24 * 60 * MINUTE_NS;

impl Default for Settings {
    fn default() -> Self {
        Settings {
            pay_timeout_ns: 15 * MINUTE_NS,
            confirm_timeout_ns: 10 * DAY_NS,
            refund_answer_timeout_ns: 5 * DAY_NS,
            bank_timeout_ns: DAY_NS,
            day_offset_seconds: 8 * 3600,
            unverified_daily_major: 5_000,
            verified_daily_major: 200_000,
            settle_delay_days: 1,
            refund_window_ns: 90 * DAY_NS,
            accrual_chunk: crate::fund::ACCRUAL_CHUNK,
            transfer_cache_slack: TRANSFER_CACHE_SLACK,
        }
    }
}

impl Settings {
    /// The day (since 1970-01-01 in the platform's time zone) that `now` falls on.
    pub fn day(&self, now: u64) -> i64 {
        let seconds = i64::try_from(now / SECOND_NS).unwrap_or(i64::MAX);
        seconds
            .saturating_add(self.day_offset_seconds)
            .div_euclid(86_400)
    }

    /// The daily outgoing limit of a person at `level`, in minor units of `currency`.
    pub fn daily_limit_minor(&self, level: Level, currency: Currency) -> u64 {
        let major = match level {
            Level::Unverified => self.unverified_daily_major,
            Level::Verified => self.verified_daily_major,
        };
        major.saturating_mul(10u64.pow(u32::from(currency.exponent())))
    }
}

/// A command for the products, with the caller's idempotency key if it gave one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProductRequest {
    /// What to do.
    pub command: ProductCommand,
    /// Saved with the outcome in the batch that applies the command.
    pub idempotency: Option<IdempotencyKey>,
}

/// A client's idempotency key: the same key with the same request returns the saved outcome.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdempotencyKey {
    /// Whose key (keys are per person).
    pub owner: Id,
    /// The key as the client sent it.
    pub key: String,
    /// A digest of the request, to tell a retry from a different request with the same key.
    pub fingerprint: String,
}

/// A product command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProductCommand {
    /// Wallets, money in and out, transfers.
    Wallet(WalletCommand),
    /// Escrow trades.
    Trade(TradeCommand),
    /// Merchants and their trades.
    Merchant(MerchantCommand),
    /// The pocket-money fund.
    Fund(FundCommand),
    /// The credit score and consents to check it.
    Credit(CreditCommand),
    /// Deposit-free holds and the debts they leave.
    Hold(HoldCommand),
    /// The credit line: paying from it, statements, repaying.
    CreditLine(CreditLineCommand),
}

/// What a product command did.
#[allow(
    clippy::large_enum_variant,
    reason = "built once per command and moved to its caller; a box would allocate per command"
)]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "object", rename_all = "snake_case")]
pub enum Outcome {
    /// A person's wallet standing.
    Person(PersonView),
    /// A bank movement (top-up or withdrawal).
    Movement(Movement),
    /// A transfer between two people.
    Transfer(TransferReceipt),
    /// A trade, as it stands after the command.
    Trade(Trade),
    /// A merchant.
    Merchant(Merchant),
    /// A refund of a merchant's trade.
    Refund(RefundReceipt),
    /// A fund.
    Fund(Fund),
    /// A subscription to a fund.
    Subscription(Subscription),
    /// A redemption from a fund.
    Redemption(Redemption),
    /// The holiday calendar. (A struct variant: the outcome is saved as JSON tagged with
    /// `object`, which a bare sequence cannot carry.)
    Holidays {
        /// Its days (since 1970-01-01 in the platform's zone).
        days: Vec<i64>,
    },
    /// A person's consent to a merchant's credit checks.
    Consent(Consent),
    /// A merchant's credit check: whether the score passes.
    CreditCheck(CreditCheck),
    /// The platform's credit funding.
    CreditFunding(crate::deposit::CreditFunding),
    /// A deposit hold.
    Hold(Hold),
    /// A debt from a charged waived deposit.
    Debt(Debt),
    /// A person's credit line.
    CreditLine(CreditLine),
    /// The credit line's rules.
    CreditPolicy(crate::credit_line::CreditPolicy),
}

/// A person's level and wallets, as the core knows them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PersonView {
    /// The person.
    pub user_id: Id,
    /// Their identity level.
    pub level: Level,
}

/// A transfer between two people, as done.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TransferReceipt {
    /// The transfer's id.
    pub id: Id,
    /// Who paid.
    pub from_user_id: Id,
    /// Who was paid.
    pub to_user_id: Id,
    /// How much.
    pub amount: Money,
    /// The payer's note.
    pub note: String,
    /// When (nanoseconds since the epoch).
    pub created_at: u64,
}

/// Why a product command was refused. Nothing changed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[serde(tag = "refusal", rename_all = "snake_case")]
pub enum Refusal {
    /// Amounts must be above zero.
    #[error("the amount must be above zero")]
    AmountNotPositive,
    /// The amount would take a balance past what the books hold.
    #[error("the amount is too large")]
    AmountTooLarge,
    /// The person has no wallet (they never signed up, or not in this currency).
    #[error("no wallet for this person in {currency}")]
    WalletNotFound {
        /// The currency asked for.
        currency: Currency,
    },
    /// The payee is not a person Formica knows.
    #[error("the payee was not found")]
    PayeeNotFound,
    /// A person cannot pay themselves.
    #[error("payer and payee are the same person")]
    SamePerson,
    /// The wallet does not hold enough.
    #[error("insufficient funds")]
    InsufficientFunds,
    /// The amount would take the person past their daily outgoing limit.
    #[error("the daily limit of {limit} would be exceeded ({spent} already spent today)")]
    DailyLimitExceeded {
        /// The limit.
        limit: Money,
        /// Spent today before this.
        spent: Money,
    },
    /// No movement with this id is waiting for the bank.
    #[error("no bank movement with this id is waiting")]
    MovementNotFound,
    /// No trade with this id that the caller is a party to.
    #[error("trade not found")]
    TradeNotFound,
    /// The seller already has a trade with this out_trade_no.
    #[error("the seller already has a trade with this out_trade_no")]
    DuplicateOutTradeNo,
    /// The trade is not in a state that allows this.
    #[error("the trade is {status}, which does not allow this")]
    TradeStatusInvalid {
        /// Where the trade stands.
        status: crate::trade::TradeStatus,
    },
    /// A trade's seller cannot be its buyer.
    #[error("the buyer cannot be the seller")]
    BuyerIsSeller,
    /// The trade is for another buyer.
    #[error("this trade is for another buyer")]
    NotTheBuyer,
    /// A refund larger than what is held.
    #[error("the refund is larger than the {held} held")]
    RefundTooLarge {
        /// What escrow holds.
        held: Money,
    },
    /// The books refused a transfer a product built (a bug in the product, reported rather
    /// than crashing the writer).
    #[error("the books refused the transfer: {result}")]
    BooksRefused {
        /// The ledger's result code.
        result: String,
    },
    /// No such merchant.
    #[error("merchant not found")]
    MerchantNotFound,
    /// A fee rate above the maximum.
    #[error("the fee rate is above the maximum of 10%")]
    FeeRateTooHigh,
    /// The refund's out_request_no was used for another amount.
    #[error("this out_request_no was already used for another amount")]
    DiscordantRepeat,
    /// A partly refunded trade cannot be cancelled.
    #[error("the trade was partly refunded; refund the rest instead")]
    RefundedAlready,
    /// A paid trade can only be cancelled within a day of payment.
    #[error("too late to cancel; refund instead")]
    CancelTooLate,
    /// The payment code expired or was used.
    #[error("the payment code is expired or used")]
    PaymentCodeUsed,
    /// The merchant's balance does not cover the refund.
    #[error("the merchant's balance does not cover this")]
    MerchantBalanceTooLow,
    /// The currency differs from the one the object is in.
    #[error("wrong currency: expected {expected}")]
    CurrencyMismatch {
        /// The currency expected.
        expected: Currency,
    },
    /// No such fund.
    #[error("fund not found")]
    FundNotFound,
    /// A cut-off outside the day.
    #[error("the cut-off must be a time of day")]
    CutoffInvalid,
    /// Fewer confirmed units than asked to redeem.
    #[error("only {confirmed} of units are confirmed and can be redeemed")]
    UnitsInsufficient {
        /// Confirmed units held.
        confirmed: Money,
    },
    /// An instant redemption past the daily limit.
    #[error(
        "the instant redemption limit is {limit} a day ({used} used today); redeem the rest normally"
    )]
    InstantLimitExceeded {
        /// The limit.
        limit: Money,
        /// Redeemed instantly today.
        used: Money,
    },
    /// A day's income is still being credited.
    #[error("the last income posted is still being credited; try again shortly")]
    AccrualInProgress,
    /// Incomes are posted for finished days, in order.
    #[error("the next income to post is for day {expected}, once it is over")]
    IncomeDayInvalid {
        /// The day expected (days since 1970-01-01, platform time).
        expected: i64,
    },
    /// No standing consent of this person to this merchant (or no such person).
    #[error("the person has not consented to this merchant's credit checks")]
    ConsentNotFound,
    /// A credit threshold outside the score's range.
    #[error("a credit threshold is between 350 and 950")]
    ThresholdInvalid,
    /// No such hold (or not the caller's).
    #[error("hold not found")]
    HoldNotFound,
    /// The hold is not in a status that allows this.
    #[error("the hold is {status:?}")]
    HoldStatusInvalid {
        /// Where it stands.
        status: HoldStatus,
    },
    /// A charge (or an unfreeze) above the deposit, or what is left of it after part of it
    /// was given back.
    #[error("at most the deposit left, {deposit}, can be charged or given back")]
    ChargeTooLarge {
        /// The deposit left.
        deposit: Money,
    },
    /// No such debt (or not the caller's, or repaid).
    #[error("debt not found")]
    DebtNotFound,
    /// The platform has not set aside enough money to lend this.
    #[error("the platform's credit funding cannot cover this; an operator must add funding")]
    CreditFundingInsufficient,
    /// A repayment above what is owed.
    #[error("only {outstanding} is owed")]
    RepayTooLarge {
        /// What is owed.
        outstanding: Money,
    },
    /// A due day other than the 8th, 9th or 10th.
    #[error("the due day is the 8th, 9th or 10th")]
    DueDayInvalid,
    /// The person has a credit line already.
    #[error("a credit line is open already")]
    CreditLineExists,
    /// The person's score earns no line (below 600, none yet, or something overdue).
    #[error("a credit line needs a score of 600 and nothing overdue")]
    CreditLineNotEligible {
        /// The score now, if there is one.
        score: Option<u16>,
    },
    /// The person has no credit line.
    #[error("no credit line")]
    CreditLineNotFound,
    /// More than the line has left.
    #[error("the credit line has {available} left")]
    CreditLineInsufficient {
        /// What can still be drawn.
        available: Money,
    },
    /// A statement's minimum was not paid by its due day: no more drawing until it is.
    #[error("the credit line is overdue")]
    CreditLineOverdue,
    /// Instalments are 3, 6, 9 or 12, of a statement before its due day, one plan at a time.
    #[error(
        "instalments are 3, 6, 9 or 12 periods of a statement before its due day, one plan at a time"
    )]
    InstalmentsInvalid,
    /// A credit policy out of bounds.
    #[error("the credit policy is refused: {why}")]
    CreditPolicyInvalid {
        /// Which rule and its bounds.
        why: String,
    },
}

/// A message for the outbox, delivered to the person's webhook endpoints.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutboxRow {
    /// To whom.
    pub user_id: Id,
    /// What happened (`trade.paid`, `transfer.received`, ...).
    pub topic: String,
    /// The object as JSON.
    pub payload: String,
    /// When.
    pub timestamp: u64,
}

/// An idempotency key and the outcome it saves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdempotencyRow {
    /// The key.
    pub key: IdempotencyKey,
    /// `Result<Outcome, Refusal>` as JSON.
    pub outcome: String,
    /// When.
    pub timestamp: u64,
}

/// The product rows one batch writes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProductEffects {
    /// The last id handed out.
    pub id_last: u64,
    /// People who are new or whose level changed, as they stand.
    pub people: Vec<(Id, Person)>,
    /// People whose spending changed (their `spending` rows are rewritten).
    pub spenders: Vec<(Id, Person)>,
    /// Trades created or changed, as they stand.
    pub trades: Vec<Trade>,
    /// Bank movements created or changed, as they stand.
    pub movements: Vec<Movement>,
    /// Transfers between people.
    pub transfers: Vec<TransferReceipt>,
    /// Messages for the outbox.
    pub outbox: Vec<OutboxRow>,
    /// Idempotency keys with their outcomes.
    pub idempotency: Vec<IdempotencyRow>,
    /// Merchants created or changed, as they stand.
    pub merchants: Vec<Merchant>,
    /// Settlements made.
    pub settlements: Vec<Settlement>,
    /// Payment codes used up, with when they expire.
    pub codes_used: Vec<(String, u64)>,
    /// Funds created or changed, as they stand.
    pub funds: Vec<Fund>,
    /// Fund holdings changed, as they stand.
    pub holdings: Vec<Holding>,
    /// Subscriptions made or confirmed.
    pub subscriptions: Vec<Subscription>,
    /// Redemptions made or paid.
    pub redemptions: Vec<Redemption>,
    /// Daily incomes posted: (fund, day, income per 10,000 units).
    pub incomes: Vec<(Id, i64, Income)>,
    /// The holiday calendar, if it changed.
    pub holidays: Option<Vec<i64>>,
    /// Credit records changed, as they stand.
    pub credit: Vec<Credit>,
    /// Consents granted, withdrawn or checked, as they stand.
    pub consents: Vec<Consent>,
    /// The daily credit run, if it moved.
    pub credit_run: Option<CreditRun>,
    /// Holds created or changed, as they stand.
    pub holds: Vec<Hold>,
    /// Debts created or changed, as they stand.
    pub debts: Vec<Debt>,
    /// Credit lines opened or changed, as they stand.
    pub credit_lines: Vec<CreditLine>,
    /// The credit policy, if it changed.
    pub credit_policy: Option<crate::credit_line::CreditPolicy>,
}

impl ProductEffects {
    /// Whether the batch made no product rows.
    pub fn is_empty(&self) -> bool {
        self.people.is_empty()
            && self.spenders.is_empty()
            && self.trades.is_empty()
            && self.movements.is_empty()
            && self.transfers.is_empty()
            && self.outbox.is_empty()
            && self.idempotency.is_empty()
            && self.merchants.is_empty()
            && self.settlements.is_empty()
            && self.codes_used.is_empty()
            && self.funds.is_empty()
            && self.holdings.is_empty()
            && self.subscriptions.is_empty()
            && self.redemptions.is_empty()
            && self.incomes.is_empty()
            && self.holidays.is_none()
            && self.credit.is_empty()
            && self.consents.is_empty()
            && self.credit_run.is_none()
            && self.holds.is_empty()
            && self.debts.is_empty()
            && self.credit_lines.is_empty()
            && self.credit_policy.is_none()
    }
}

/// What the store loads for the products: people and every object still open.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProductsLoaded {
    /// The last id handed out.
    pub id_last: u64,
    /// Every person.
    pub people: Vec<(Id, Person)>,
    /// Trades not yet finished or closed.
    pub open_trades: Vec<Trade>,
    /// Bank movements still waiting for the bank.
    pub open_movements: Vec<Movement>,
    /// Every merchant, with its unsettled days.
    pub merchants: Vec<Merchant>,
    /// Every fund.
    pub funds: Vec<Fund>,
    /// Every fund holding.
    pub holdings: Vec<Holding>,
    /// Subscriptions not yet confirmed.
    pub open_subscriptions: Vec<Subscription>,
    /// Normal redemptions not yet paid.
    pub open_redemptions: Vec<Redemption>,
    /// The holiday calendar.
    pub holidays: Vec<i64>,
    /// Every person's credit record.
    pub credit: Vec<Credit>,
    /// Every consent, standing or withdrawn.
    pub consents: Vec<Consent>,
    /// Where the daily credit run stands.
    pub credit_run: CreditRun,
    /// Holds requested, waived or frozen.
    pub open_holds: Vec<Hold>,
    /// Debts not yet repaid.
    pub open_debts: Vec<Debt>,
    /// Every credit line.
    pub credit_lines: Vec<CreditLine>,
    /// The credit policy (the defaults until an operator sets one).
    pub credit_policy: crate::credit_line::CreditPolicy,
    /// Payment codes used and not yet expired, by code, with when they expire: a reload
    /// must still refuse a code a request read as valid before the batch that used it.
    pub codes_used: Vec<(String, u64)>,
}

/// Something to do at a time: an open trade's or movement's deadline.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Due {
    /// A fund's accrual in progress: a chunk every batch until done (due at time zero).
    FundAccrual(Id),
    Trade(Id),
    Movement(Id),
    Settlement(Id),
    FundConfirm(Id),
    FundPayout(Id),
    /// The daily credit run: due at its day's midnight, then a chunk every batch until done.
    CreditRun,
    /// A requested hold not authorised in time.
    Hold(Id),
    /// A debt's due day.
    Debt(Id),
    /// A credit line's next statement, due day or day of interest (by person).
    CreditLine(Id),
}

/// The products' state in memory.
#[derive(Debug, Default)]
pub(crate) struct Products {
    pub(crate) settings: Settings,
    pub(crate) id_last: u64,
    pub(crate) people: HashMap<Id, Person>,
    pub(crate) trades: HashMap<Id, Trade>,
    /// Open trades by (seller, out_trade_no).
    pub(crate) out_trade_nos: HashMap<(Id, String), Id>,
    pub(crate) movements: HashMap<Id, Movement>,
    pub(crate) merchants: HashMap<Id, Merchant>,
    pub(crate) funds: HashMap<Id, Fund>,
    /// Holdings by (fund, holder): in holder order within a fund, as accruals credit them.
    pub(crate) holdings: std::collections::BTreeMap<(Id, Id), Holding>,
    /// Subscriptions waiting for their confirmation day.
    pub(crate) subscriptions: HashMap<Id, Subscription>,
    /// Normal redemptions waiting for their day.
    pub(crate) redemptions: HashMap<Id, Redemption>,
    pub(crate) calendar: Calendar,
    pub(crate) credit_policy: crate::credit_line::CreditPolicy,
    /// Credit records by person, in id order (the daily run walks them).
    pub(crate) credit: std::collections::BTreeMap<Id, Credit>,
    /// Consents by (person, merchant).
    pub(crate) consents: HashMap<(Id, Id), Consent>,
    pub(crate) credit_run: CreditRun,
    /// Open holds, and their numbers by (merchant, out_order_no).
    pub(crate) holds: HashMap<Id, Hold>,
    pub(crate) hold_numbers: HashMap<(Id, String), Id>,
    /// Debts not yet repaid.
    pub(crate) debts: HashMap<Id, Debt>,
    /// Credit lines by person.
    pub(crate) credit_lines: HashMap<Id, CreditLine>,
    /// When each merchant's settlement timer is set for.
    settle_timers: HashMap<Id, u64>,
    /// When each subscription's confirmation and each redemption's payout is set for (the
    /// time zone may change between the load and the engine's settings).
    fund_timers: HashMap<Due, u64>,
    /// Payment codes that paid, until they expire (by code, and in the order used).
    pub(crate) codes_used: HashMap<String, u64>,
    codes_by_age: std::collections::VecDeque<(u64, String)>,
    pub(crate) timers: BTreeSet<(u64, Due)>,
    pub(crate) batch: ProductBatch,
}

/// What the open batch changed, to write on commit or undo on rollback.
#[derive(Debug, Default)]
pub(crate) struct ProductBatch {
    undo: Vec<Undo>,
    people: HashMap<Id, Person>,
    /// People whose level is new or changed in this batch.
    levels: hashbrown::HashSet<Id>,
    trades: HashMap<Id, Trade>,
    movements: HashMap<Id, Movement>,
    merchants: HashMap<Id, Merchant>,
    settlements: Vec<Settlement>,
    codes_used: Vec<(String, u64)>,
    funds: HashMap<Id, Fund>,
    holdings: HashMap<(Id, Id), Holding>,
    subscriptions: HashMap<Id, Subscription>,
    redemptions: HashMap<Id, Redemption>,
    incomes: Vec<(Id, i64, Income)>,
    holidays: Option<Vec<i64>>,
    credit_policy: bool,
    credit: HashMap<Id, Credit>,
    consents: HashMap<(Id, Id), Consent>,
    credit_run: bool,
    holds: HashMap<Id, Hold>,
    debts: HashMap<Id, Debt>,
    credit_lines: HashMap<Id, CreditLine>,
    /// Paid merchant trades the store loaded for this batch.
    recalled: HashMap<Id, Trade>,
    /// Numbers taken by trades not in memory: found in the store before the batch, or gone
    /// from memory during it.
    taken_numbers: hashbrown::HashSet<(Id, String)>,
    /// Idempotency keys known to this batch (recalled from the store, or saved by its own
    /// commands): the request's fingerprint and the answer.
    saved: HashMap<(Id, String), (String, Result<Outcome, Refusal>)>,
    transfers: Vec<TransferReceipt>,
    outbox: Vec<OutboxRow>,
    idempotency: Vec<IdempotencyRow>,
}

#[allow(
    clippy::large_enum_variant,
    reason = "the log is cleared every batch; boxing the trade would allocate per change"
)]
#[derive(Debug)]
enum Undo {
    IdLast(u64),
    Person(Id, Option<Person>),
    Trade(Id, Option<Trade>),
    Movement(Id, Option<Movement>),
    Merchant(Id, Option<Merchant>),
    CodeUsed(String),
    Fund(Id, Option<Fund>),
    Holding((Id, Id), Option<Holding>),
    Units((Id, Id), u64),
    Subscription(Id, Option<Subscription>),
    Redemption(Id, Option<Redemption>),
    Calendar(Calendar),
    CreditPolicy(Box<crate::credit_line::CreditPolicy>),
    Credit(Id, Option<Credit>),
    Consent((Id, Id), Option<Consent>),
    CreditRun(CreditRun),
    Hold(Id, Option<Hold>),
    Debt(Id, Option<Debt>),
    CreditLine(Id, Option<CreditLine>),
}

impl Products {
    pub(crate) fn from_loaded(loaded: ProductsLoaded) -> Self {
        let mut products = Products {
            id_last: loaded.id_last,
            people: loaded.people.into_iter().collect(),
            ..Products::default()
        };
        for trade in loaded.open_trades {
            products.set_trade(trade.id, Some(trade));
        }
        for movement in loaded.open_movements {
            products.set_movement(movement.id, Some(movement));
        }
        for merchant in loaded.merchants {
            products.set_merchant(merchant.id, Some(merchant));
        }
        for fund in loaded.funds {
            products.set_fund(fund.id, Some(fund));
        }
        for holding in loaded.holdings {
            products
                .holdings
                .insert((holding.fund_id, holding.holder_id), holding);
        }
        for subscription in loaded.open_subscriptions {
            products.set_subscription(subscription.id, Some(subscription));
        }
        for redemption in loaded.open_redemptions {
            products.set_redemption(redemption.id, Some(redemption));
        }
        products.credit_policy = loaded.credit_policy;
        let mut codes = loaded.codes_used;
        codes.sort_unstable_by_key(|(_, expires_at)| *expires_at);
        for (code, expires_at) in codes {
            products.codes_used.insert(code.clone(), expires_at);
            products.codes_by_age.push_back((expires_at, code));
        }
        products.calendar = Calendar {
            holidays: loaded.holidays.into_iter().collect(),
        };
        products.credit = loaded
            .credit
            .into_iter()
            .map(|c| (c.person_id, c))
            .collect();
        products.consents = loaded
            .consents
            .into_iter()
            .map(|c| ((c.person_id, c.merchant_id), c))
            .collect();
        products.set_credit_run(loaded.credit_run);
        for hold in loaded.open_holds {
            products.set_hold(hold.id, Some(hold));
        }
        for debt in loaded.open_debts {
            products.set_debt(debt.id, Some(debt));
        }
        for line in loaded.credit_lines {
            products.set_credit_line(line.person_id, Some(line));
        }
        products
    }

    /// A fresh id, later than every id before it and than `now`'s millisecond.
    pub(crate) fn next_id(&mut self, now: u64) -> Id {
        self.batch.undo.push(Undo::IdLast(self.id_last));
        let floor = (now / 1_000_000) << ID_SEQUENCE_BITS;
        self.id_last = floor.max(self.id_last + 1);
        Id(self.id_last)
    }

    /// A fresh transfer id for the books.
    pub(crate) fn next_transfer_id(&mut self, now: u64) -> u128 {
        let id = self.next_id(now);
        transfer_id(id)
    }

    /// The earliest deadline of an open object.
    pub(crate) fn next_due(&self) -> Option<u64> {
        self.timers.first().map(|(at, _)| *at)
    }

    /// The objects whose deadline has passed at `now`, earliest first.
    ///
    /// A business day's fund confirmations and payouts fall due at one midnight, a million
    /// at a time on a big fund, and every credit line's statement on the 1st: at most
    /// `accrual_chunk` of them are taken per batch, as
    /// accruals are, so that no batch grows without bound and payments keep flowing. The
    /// rest (and anything ordered after them) stay due for the next batches.
    ///
    /// The daily credit run waits while a fund's earnings are being credited: the money
    /// first (two chunks a batch would halve the accrual's pace), and the scores then count
    /// the day's earnings.
    pub(crate) fn due(&self, now: u64) -> Vec<Due> {
        let mut fund_steps = self.settings.accrual_chunk.max(1);
        let accruing = self
            .timers
            .iter()
            .take_while(|(at, _)| *at == 0)
            .any(|(_, timer)| matches!(timer, Due::FundAccrual(_)));
        let mut due = Vec::new();
        for (at, timer) in &self.timers {
            if *at > now {
                break;
            }
            if accruing && *timer == Due::CreditRun {
                continue;
            }
            if matches!(
                timer,
                Due::FundConfirm(_) | Due::FundPayout(_) | Due::CreditLine(_)
            ) {
                if fund_steps == 0 {
                    break;
                }
                fund_steps -= 1;
            }
            due.push(*timer);
        }
        due
    }

    pub(crate) fn put_person(&mut self, id: Id, person: Person) {
        let before = self.people.insert(id, person.clone());
        if before.as_ref().is_none_or(|b| b.level != person.level) {
            self.batch.levels.insert(id);
        }
        self.batch.undo.push(Undo::Person(id, before));
        self.batch.people.insert(id, person);
    }

    /// Whether the seller has a trade with this number: open in memory, gone from memory in
    /// this batch, or found in the store before the batch (the writer looks up the numbers of
    /// every create, so that a number taken by a trade no longer in memory is refused here
    /// rather than by the store's unique index, which would fail everyone's batch).
    pub(crate) fn number_taken(&self, seller: Id, out_trade_no: &str) -> bool {
        let key = (seller, out_trade_no.to_owned());
        self.out_trade_nos.contains_key(&key) || self.batch.taken_numbers.contains(&key)
    }

    /// A number the store holds, for the batch about to be applied.
    pub(crate) fn recall_number(&mut self, seller: Id, out_trade_no: String) {
        self.batch.taken_numbers.insert((seller, out_trade_no));
    }

    /// The trade with this id if memory has it: open, changed in this batch, or recalled
    /// from the store for this batch.
    pub(crate) fn trade(&self, id: Id) -> Option<&Trade> {
        self.trades
            .get(&id)
            .or_else(|| self.batch.trades.get(&id))
            .or_else(|| self.batch.recalled.get(&id))
    }

    /// A paid merchant trade the store loaded for the batch about to be applied.
    pub(crate) fn recall_trade(&mut self, trade: Trade) {
        self.batch.recalled.insert(trade.id, trade);
    }

    /// Records the trade as it now stands. A trade that is over leaves memory, and so does a
    /// merchant's paid trade: only the store keeps it while it can be refunded (for months),
    /// and the writer recalls it for the commands that name it.
    pub(crate) fn put_trade(&mut self, trade: Trade) {
        let id = trade.id;
        let keep = !trade.status.is_final() && trade.status != TradeStatus::TradeSuccess;
        if !keep {
            // Taken until the batch is written; the store answers for it after that.
            self.batch
                .taken_numbers
                .insert((trade.seller_id, trade.out_trade_no.clone()));
        }
        self.batch.trades.insert(id, trade.clone());
        let before = self.set_trade(id, keep.then_some(trade));
        self.batch.undo.push(Undo::Trade(id, before));
    }

    /// Records the movement as it now stands; a settled one leaves memory.
    pub(crate) fn put_movement(&mut self, movement: Movement) {
        let id = movement.id;
        self.batch.movements.insert(id, movement.clone());
        let keep = movement.is_open().then_some(movement);
        let before = self.set_movement(id, keep);
        self.batch.undo.push(Undo::Movement(id, before));
    }

    /// Records the merchant as it now stands.
    pub(crate) fn put_merchant(&mut self, merchant: Merchant) {
        let id = merchant.id;
        self.batch.merchants.insert(id, merchant.clone());
        let before = self.set_merchant(id, Some(merchant));
        self.batch.undo.push(Undo::Merchant(id, before));
    }

    /// Records the fund as it now stands.
    pub(crate) fn put_fund(&mut self, fund: Fund) {
        let id = fund.id;
        self.batch.funds.insert(id, fund.clone());
        let before = self.set_fund(id, Some(fund));
        self.batch.undo.push(Undo::Fund(id, before));
    }

    /// Records the holding as it now stands.
    pub(crate) fn put_holding(&mut self, holding: Holding) {
        let key = (holding.fund_id, holding.holder_id);
        self.batch.holdings.insert(key, holding.clone());
        let before = self.holdings.insert(key, holding);
        self.batch.undo.push(Undo::Holding(key, before));
    }

    /// Records the subscription; a confirmed one leaves memory.
    pub(crate) fn put_subscription(&mut self, subscription: Subscription) {
        let id = subscription.id;
        self.batch.subscriptions.insert(id, subscription.clone());
        let keep = (!subscription.confirmed).then_some(subscription);
        let before = self.set_subscription(id, keep);
        self.batch.undo.push(Undo::Subscription(id, before));
    }

    /// Records the redemption; a paid one leaves memory.
    pub(crate) fn put_redemption(&mut self, redemption: Redemption) {
        let id = redemption.id;
        self.batch.redemptions.insert(id, redemption.clone());
        let keep = (!redemption.paid).then_some(redemption);
        let before = self.set_redemption(id, keep);
        self.batch.undo.push(Undo::Redemption(id, before));
    }

    /// Replaces the credit policy.
    pub(crate) fn put_credit_policy(&mut self, policy: crate::credit_line::CreditPolicy) {
        self.batch.credit_policy = true;
        let before = std::mem::replace(&mut self.credit_policy, policy);
        self.batch.undo.push(Undo::CreditPolicy(Box::new(before)));
    }

    /// Replaces the holiday calendar.
    pub(crate) fn put_calendar(&mut self, calendar: Calendar) {
        self.batch.holidays = Some(calendar.holidays.iter().copied().collect());
        let before = std::mem::replace(&mut self.calendar, calendar);
        self.batch.undo.push(Undo::Calendar(before));
    }

    /// Records a person's credit as it now stands.
    pub(crate) fn put_credit(&mut self, credit: Credit) {
        let id = credit.person_id;
        self.batch.credit.insert(id, credit.clone());
        let before = self.credit.insert(id, credit);
        self.batch.undo.push(Undo::Credit(id, before));
    }

    /// Records a consent as it now stands.
    pub(crate) fn put_consent(&mut self, consent: Consent) {
        let key = (consent.person_id, consent.merchant_id);
        self.batch.consents.insert(key, consent.clone());
        let before = self.consents.insert(key, consent);
        self.batch.undo.push(Undo::Consent(key, before));
    }

    /// Records the hold as it now stands; a closed one leaves memory.
    pub(crate) fn put_hold(&mut self, hold: Hold) {
        let id = hold.id;
        self.batch.holds.insert(id, hold.clone());
        let keep = (hold.status != HoldStatus::Closed).then_some(hold);
        let before = self.set_hold(id, keep);
        self.batch.undo.push(Undo::Hold(id, before));
    }

    /// Records the debt as it now stands; a repaid one leaves memory.
    pub(crate) fn put_debt(&mut self, debt: Debt) {
        let id = debt.id;
        self.batch.debts.insert(id, debt.clone());
        let keep = debt.repaid_at.is_none().then_some(debt);
        let before = self.set_debt(id, keep);
        self.batch.undo.push(Undo::Debt(id, before));
    }

    /// Records a credit line as it now stands.
    pub(crate) fn put_credit_line(&mut self, line: CreditLine) {
        let id = line.person_id;
        self.batch.credit_lines.insert(id, line.clone());
        let before = self.set_credit_line(id, Some(line));
        self.batch.undo.push(Undo::CreditLine(id, before));
    }

    /// Replaces a credit line (or removes it), keeping its timer in step.
    fn set_credit_line(&mut self, id: Id, line: Option<CreditLine>) -> Option<CreditLine> {
        let before = self.credit_lines.remove(&id);
        if let Some(at) = before.as_ref().and_then(|l| l.next_at) {
            self.timers.remove(&(at, Due::CreditLine(id)));
        }
        if let Some(line) = line {
            if let Some(at) = line.next_at {
                self.timers.insert((at, Due::CreditLine(id)));
            }
            self.credit_lines.insert(id, line);
        }
        before
    }

    /// Replaces an open hold (or removes it), keeping its timer and number in step.
    fn set_hold(&mut self, id: Id, hold: Option<Hold>) -> Option<Hold> {
        let before = self.holds.remove(&id);
        if let Some(old) = &before {
            if let Some(at) = old.deadline {
                self.timers.remove(&(at, Due::Hold(id)));
            }
            self.hold_numbers
                .remove(&(old.merchant_id, old.out_order_no.clone()));
        }
        if let Some(hold) = hold {
            if let Some(at) = hold.deadline {
                self.timers.insert((at, Due::Hold(id)));
            }
            self.hold_numbers
                .insert((hold.merchant_id, hold.out_order_no.clone()), id);
            self.holds.insert(id, hold);
        }
        before
    }

    /// Replaces an open debt (or removes it), keeping its due timer in step (an overdue debt
    /// has none).
    fn set_debt(&mut self, id: Id, debt: Option<Debt>) -> Option<Debt> {
        let before = self.debts.remove(&id);
        if let Some(old) = &before
            && !old.overdue
        {
            self.timers.remove(&(old.due_at, Due::Debt(id)));
        }
        if let Some(debt) = debt {
            if !debt.overdue {
                self.timers.insert((debt.due_at, Due::Debt(id)));
            }
            self.debts.insert(id, debt);
        }
        before
    }

    /// Records where the daily credit run stands.
    pub(crate) fn put_credit_run(&mut self, run: CreditRun) {
        self.batch.credit_run = true;
        let before = self.set_credit_run(run);
        self.batch.undo.push(Undo::CreditRun(before));
    }

    /// Replaces the credit run, keeping its timer in step.
    fn set_credit_run(&mut self, run: CreditRun) -> CreditRun {
        let before = std::mem::replace(&mut self.credit_run, run);
        self.timers
            .remove(&(self.credit_run_due(&before), Due::CreditRun));
        self.timers
            .insert((self.credit_run_due(&self.credit_run), Due::CreditRun));
        before
    }

    /// When the credit run is due: at once while it runs, else at the next day's start.
    fn credit_run_due(&self, run: &CreditRun) -> u64 {
        if run.running {
            0
        } else {
            crate::merchant::day_start(run.day + 1, self.settings.day_offset_seconds)
        }
    }

    /// Sets the credit run's timer again (the time zone may have changed).
    pub(crate) fn retime_credit(&mut self) {
        self.timers.retain(|(_, due)| *due != Due::CreditRun);
        self.timers
            .insert((self.credit_run_due(&self.credit_run), Due::CreditRun));
    }

    /// The people with a credit record after `after`, in id order.
    pub(crate) fn credit_after(&self, after: Option<Id>) -> impl Iterator<Item = Id> + '_ {
        use std::ops::Bound;
        let start = after.map_or(Bound::Unbounded, Bound::Excluded);
        self.credit
            .range((start, Bound::Unbounded))
            .map(|(id, _)| *id)
    }

    /// A person's holdings of every fund.
    pub(crate) fn holdings_of_holder(&self, holder: Id) -> impl Iterator<Item = &Holding> {
        self.funds
            .keys()
            .filter_map(move |fund| self.holdings.get(&(*fund, holder)))
    }

    pub(crate) fn record_income(&mut self, fund: Id, day: i64, income: Income) {
        self.batch.incomes.push((fund, day, income));
    }

    /// Adds a day's earnings to a holding's units in memory (the store has them as the
    /// units account's transfers).
    pub(crate) fn credit_units(&mut self, key: (Id, Id), earned: u64) {
        if let Some(holding) = self.holdings.get_mut(&key) {
            holding.units += earned;
            // Only the units change: undoing takes them back (no copy of the holding, which a
            // day's accrual would make a million times).
            self.batch.undo.push(Undo::Units(key, earned));
        }
    }

    /// A fund's holdings, in holder order.
    pub(crate) fn holdings_of(&self, fund: Id) -> impl Iterator<Item = &Holding> {
        self.holdings
            .range((fund, Id(0))..=(fund, Id(u64::MAX)))
            .map(|(_, h)| h)
    }

    /// A fund's holdings after holder `after`, in holder order.
    pub(crate) fn holdings_after(
        &self,
        fund: Id,
        after: Option<Id>,
    ) -> impl Iterator<Item = &Holding> {
        use std::ops::Bound;
        let start = match after {
            Some(holder) => Bound::Excluded((fund, holder)),
            None => Bound::Included((fund, Id(0))),
        };
        self.holdings
            .range((start, Bound::Included((fund, Id(u64::MAX)))))
            .map(|(_, h)| h)
    }

    /// Whether a payment code already paid and has not expired (digits that paid once may
    /// come round again in a later code).
    pub(crate) fn code_used(&self, code: &str, now: u64) -> bool {
        self.codes_used
            .get(code)
            .is_some_and(|expires_at| *expires_at > now)
    }

    /// Marks a payment code used.
    pub(crate) fn use_code(&mut self, code: &crate::merchant::CodeUse) {
        // The store keeps times as signed 64-bit numbers (to the year 2262).
        let expires_at = code.expires_at.min(i64::MAX as u64);
        self.codes_used.insert(code.code.clone(), expires_at);
        self.codes_by_age.push_back((expires_at, code.code.clone()));
        self.batch.codes_used.push((code.code.clone(), expires_at));
        self.batch.undo.push(Undo::CodeUsed(code.code.clone()));
    }

    /// Forgets used codes that have expired (an expired code is refused for its age).
    pub(crate) fn forget_codes(&mut self, now: u64) {
        while let Some((expires_at, _)) = self.codes_by_age.front()
            && *expires_at <= now
        {
            if let Some((expires_at, code)) = self.codes_by_age.pop_front()
                && self.codes_used.get(&code) == Some(&expires_at)
            {
                // Not a later use of the same digits.
                self.codes_used.remove(&code);
            }
        }
    }

    pub(crate) fn record_settlement(&mut self, settlement: Settlement) {
        self.batch.settlements.push(settlement);
    }

    pub(crate) fn record_transfer(&mut self, receipt: TransferReceipt) {
        self.batch.transfers.push(receipt);
    }

    /// Queues a message for `user`'s webhooks.
    pub(crate) fn announce(&mut self, user: Id, topic: &str, payload: &impl Serialize, at: u64) {
        self.announce_to(&[(user, topic)], payload, at);
    }

    /// Queues one message per (person, topic), serializing the object once: the writer
    /// thread does this for every payment.
    pub(crate) fn announce_to(&mut self, to: &[(Id, &str)], payload: &impl Serialize, at: u64) {
        let payload = serde_json::to_string(payload).expect("product objects serialize");
        for (user, topic) in to {
            self.batch.outbox.push(OutboxRow {
                user_id: *user,
                topic: (*topic).to_owned(),
                payload: payload.clone(),
                timestamp: at,
            });
        }
    }

    pub(crate) fn save_idempotency(
        &mut self,
        key: IdempotencyKey,
        outcome: &Result<Outcome, Refusal>,
        at: u64,
    ) {
        let json = serde_json::to_string(outcome).expect("outcomes serialize");
        // A second command with this key in the same batch gets this answer too.
        self.batch.saved.insert(
            (key.owner, key.key.clone()),
            (key.fingerprint.clone(), outcome.clone()),
        );
        self.batch.idempotency.push(IdempotencyRow {
            key,
            outcome: json,
            timestamp: at,
        });
    }

    /// A key saved by an earlier batch, for the batch about to be applied.
    pub(crate) fn recall(&mut self, owner: Id, key: String, fingerprint: String, outcome: String) {
        let outcome: Result<Outcome, Refusal> =
            serde_json::from_str(&outcome).unwrap_or(Err(Refusal::BooksRefused {
                result: "unreadable saved outcome".to_owned(),
            }));
        self.batch
            .saved
            .insert((owner, key), (fingerprint, outcome));
    }

    /// The answer saved under this key, if there is one: the saved outcome for the same
    /// request, a refusal for another request under the same key.
    pub(crate) fn saved_answer(
        &self,
        key: &IdempotencyKey,
    ) -> Option<Result<Outcome, crate::CommandError>> {
        let (fingerprint, outcome) = self.batch.saved.get(&(key.owner, key.key.clone()))?;
        if *fingerprint != key.fingerprint {
            return Some(Err(crate::CommandError::IdempotencyKeyReused));
        }
        Some(outcome.clone().map_err(crate::CommandError::Refused))
    }

    /// Takes the rows the batch must write.
    pub(crate) fn effects(&mut self) -> ProductEffects {
        let batch = &mut self.batch;
        let mut spenders: Vec<_> = batch.people.drain().collect();
        spenders.sort_unstable_by_key(|(id, _)| *id);
        // Only a new person or a new level rewrites the person's row; spending alone (every
        // payment) rewrites only the spending row.
        let people: Vec<_> = spenders
            .iter()
            .filter(|(id, _)| batch.levels.contains(id))
            .cloned()
            .collect();
        batch.levels.clear();
        let mut trades: Vec<_> = batch.trades.drain().map(|(_, t)| t).collect();
        trades.sort_unstable_by_key(|t| t.id);
        let mut movements: Vec<_> = batch.movements.drain().map(|(_, m)| m).collect();
        movements.sort_unstable_by_key(|m| m.id);
        let mut merchants: Vec<_> = batch.merchants.drain().map(|(_, m)| m).collect();
        merchants.sort_unstable_by_key(|m| m.id);
        let mut funds: Vec<_> = batch.funds.drain().map(|(_, f)| f).collect();
        funds.sort_unstable_by_key(|f| f.id);
        let mut holdings: Vec<_> = batch.holdings.drain().map(|(_, h)| h).collect();
        holdings.sort_unstable_by_key(|h| (h.fund_id, h.holder_id));
        let mut subscriptions: Vec<_> = batch.subscriptions.drain().map(|(_, s)| s).collect();
        subscriptions.sort_unstable_by_key(|s| s.id);
        let mut redemptions: Vec<_> = batch.redemptions.drain().map(|(_, r)| r).collect();
        redemptions.sort_unstable_by_key(|r| r.id);
        ProductEffects {
            funds,
            holdings,
            subscriptions,
            redemptions,
            incomes: std::mem::take(&mut batch.incomes),
            holidays: batch.holidays.take(),
            credit_policy: std::mem::take(&mut batch.credit_policy)
                .then(|| self.credit_policy.clone()),
            credit: {
                let mut credit: Vec<_> = batch.credit.drain().map(|(_, c)| c).collect();
                credit.sort_unstable_by_key(|c| c.person_id);
                credit
            },
            consents: {
                let mut consents: Vec<_> = batch.consents.drain().map(|(_, c)| c).collect();
                consents.sort_unstable_by_key(|c| (c.person_id, c.merchant_id));
                consents
            },
            credit_run: std::mem::take(&mut batch.credit_run).then_some(self.credit_run),
            holds: {
                let mut holds: Vec<_> = batch.holds.drain().map(|(_, h)| h).collect();
                holds.sort_unstable_by_key(|h| h.id);
                holds
            },
            debts: {
                let mut debts: Vec<_> = batch.debts.drain().map(|(_, d)| d).collect();
                debts.sort_unstable_by_key(|d| d.id);
                debts
            },
            credit_lines: {
                let mut lines: Vec<_> = batch.credit_lines.drain().map(|(_, l)| l).collect();
                lines.sort_unstable_by_key(|l| l.person_id);
                lines
            },
            merchants,
            settlements: std::mem::take(&mut batch.settlements),
            codes_used: std::mem::take(&mut batch.codes_used),
            id_last: self.id_last,
            people,
            spenders,
            trades,
            movements,
            transfers: std::mem::take(&mut batch.transfers),
            outbox: std::mem::take(&mut batch.outbox),
            idempotency: std::mem::take(&mut batch.idempotency),
        }
    }

    pub(crate) fn commit_batch(&mut self) {
        self.new_batch();
    }

    /// Starts the next batch's record, keeping the undo log's memory: an accrual chunk logs
    /// tens of thousands of steps a batch, and growing the log again each time (copying it,
    /// and the kernel zeroing fresh pages) was a sixth of the writer's time.
    fn new_batch(&mut self) {
        let mut undo = std::mem::take(&mut self.batch.undo);
        undo.clear();
        self.batch = ProductBatch {
            undo,
            ..ProductBatch::default()
        };
    }

    pub(crate) fn rollback_batch(&mut self) {
        let mut undo = std::mem::take(&mut self.batch.undo);
        for step in undo.drain(..).rev() {
            match step {
                Undo::IdLast(id) => self.id_last = id,
                Undo::Person(id, before) => {
                    match before {
                        Some(person) => self.people.insert(id, person),
                        None => self.people.remove(&id),
                    };
                }
                Undo::Trade(id, before) => {
                    self.set_trade(id, before);
                }
                Undo::Movement(id, before) => {
                    self.set_movement(id, before);
                }
                Undo::Merchant(id, before) => {
                    self.set_merchant(id, before);
                }
                Undo::CodeUsed(code) => {
                    self.codes_used.remove(&code);
                }
                Undo::Fund(id, before) => {
                    self.set_fund(id, before);
                }
                Undo::Holding(key, before) => {
                    match before {
                        Some(holding) => self.holdings.insert(key, holding),
                        None => self.holdings.remove(&key),
                    };
                }
                Undo::Units(key, earned) => {
                    if let Some(holding) = self.holdings.get_mut(&key) {
                        holding.units -= earned;
                    }
                }
                Undo::Subscription(id, before) => {
                    self.set_subscription(id, before);
                }
                Undo::Redemption(id, before) => {
                    self.set_redemption(id, before);
                }
                Undo::Calendar(before) => self.calendar = before,
                Undo::CreditPolicy(before) => self.credit_policy = *before,
                Undo::Credit(id, before) => {
                    match before {
                        Some(credit) => self.credit.insert(id, credit),
                        None => self.credit.remove(&id),
                    };
                }
                Undo::Consent(key, before) => {
                    match before {
                        Some(consent) => self.consents.insert(key, consent),
                        None => self.consents.remove(&key),
                    };
                }
                Undo::CreditRun(before) => {
                    self.set_credit_run(before);
                }
                Undo::Hold(id, before) => {
                    self.set_hold(id, before);
                }
                Undo::Debt(id, before) => {
                    self.set_debt(id, before);
                }
                Undo::CreditLine(id, before) => {
                    self.set_credit_line(id, before);
                }
            }
        }
        self.batch.undo = undo;
        self.new_batch();
    }

    /// Replaces an open trade (or removes it), keeping its timer and out_trade_no in step.
    fn set_trade(&mut self, id: Id, trade: Option<Trade>) -> Option<Trade> {
        let before = self.trades.remove(&id);
        if let Some(old) = &before {
            if let Some(at) = old.deadline {
                self.timers.remove(&(at, Due::Trade(id)));
            }
            self.out_trade_nos
                .remove(&(old.seller_id, old.out_trade_no.clone()));
        }
        if let Some(trade) = trade {
            if let Some(at) = trade.deadline {
                self.timers.insert((at, Due::Trade(id)));
            }
            self.out_trade_nos
                .insert((trade.seller_id, trade.out_trade_no.clone()), id);
            self.trades.insert(id, trade);
        }
        before
    }

    /// Replaces a merchant (or removes it), keeping its settlement timer in step: due when
    /// its oldest unsettled day is old enough.
    fn set_merchant(&mut self, id: Id, merchant: Option<Merchant>) -> Option<Merchant> {
        let before = self.merchants.remove(&id);
        // The timer as it was set (the settings may have changed since).
        if let Some(at) = self.settle_timers.remove(&id) {
            self.timers.remove(&(at, Due::Settlement(id)));
        }
        if let Some(merchant) = merchant {
            if let Some(at) = self.settle_at(&merchant) {
                self.timers.insert((at, Due::Settlement(id)));
                self.settle_timers.insert(id, at);
            }
            self.merchants.insert(id, merchant);
        }
        before
    }

    /// Sets every merchant's settlement timer again, for settings that changed (the store
    /// loads the merchants before the engine configures the core).
    pub(crate) fn retime_merchants(&mut self) {
        let ids: Vec<Id> = self.merchants.keys().copied().collect();
        for id in ids {
            let merchant = self.merchants.get(&id).cloned();
            self.set_merchant(id, merchant);
        }
    }

    fn settle_at(&self, merchant: &Merchant) -> Option<u64> {
        let first = merchant.days.first()?;
        let day = first.day + i64::from(self.settings.settle_delay_days);
        Some(crate::merchant::day_start(
            day,
            self.settings.day_offset_seconds,
        ))
    }

    /// Replaces a fund, keeping its accrual timer in step: due at once while a day's income
    /// is being credited.
    fn set_fund(&mut self, id: Id, fund: Option<Fund>) -> Option<Fund> {
        let before = self.funds.remove(&id);
        self.timers.remove(&(0, Due::FundAccrual(id)));
        if let Some(fund) = fund {
            if fund.accrual.as_ref().is_some_and(|a| !a.stalled) {
                self.timers.insert((0, Due::FundAccrual(id)));
            }
            self.funds.insert(id, fund);
        }
        before
    }

    fn set_subscription(
        &mut self,
        id: Id,
        subscription: Option<Subscription>,
    ) -> Option<Subscription> {
        let before = self.subscriptions.remove(&id);
        let due = Due::FundConfirm(id);
        if let Some(at) = self.fund_timers.remove(&due) {
            self.timers.remove(&(at, due));
        }
        if let Some(subscription) = subscription {
            let at = crate::merchant::day_start(
                subscription.confirm_day,
                self.settings.day_offset_seconds,
            );
            self.timers.insert((at, due));
            self.fund_timers.insert(due, at);
            self.subscriptions.insert(id, subscription);
        }
        before
    }

    fn set_redemption(&mut self, id: Id, redemption: Option<Redemption>) -> Option<Redemption> {
        let before = self.redemptions.remove(&id);
        let due = Due::FundPayout(id);
        if let Some(at) = self.fund_timers.remove(&due) {
            self.timers.remove(&(at, due));
        }
        if let Some(redemption) = redemption {
            let at =
                crate::merchant::day_start(redemption.pay_day, self.settings.day_offset_seconds);
            self.timers.insert((at, due));
            self.fund_timers.insert(due, at);
            self.redemptions.insert(id, redemption);
        }
        before
    }

    /// Sets every confirmation and payout timer again, for settings that changed (the store
    /// loads them before the engine configures the core).
    pub(crate) fn retime_funds(&mut self) {
        let subscriptions: Vec<Subscription> = self.subscriptions.values().cloned().collect();
        for subscription in subscriptions {
            self.set_subscription(subscription.id, Some(subscription));
        }
        let redemptions: Vec<Redemption> = self.redemptions.values().cloned().collect();
        for redemption in redemptions {
            self.set_redemption(redemption.id, Some(redemption));
        }
    }

    fn set_movement(&mut self, id: Id, movement: Option<Movement>) -> Option<Movement> {
        let before = self.movements.remove(&id);
        if let Some(old) = &before {
            self.timers.remove(&(old.deadline, Due::Movement(id)));
        }
        if let Some(movement) = movement {
            self.timers.insert((movement.deadline, Due::Movement(id)));
            self.movements.insert(id, movement);
        }
        before
    }
}

/// Books operations the products share: accounts they create join the batch's rows.
pub(crate) struct Books<'a> {
    pub(crate) ledger: &'a mut Ledger,
    pub(crate) created: &'a mut Vec<u128>,
}

impl Books<'_> {
    /// Creates the account if it does not exist yet.
    pub(crate) fn ensure_account(
        &mut self,
        now: u64,
        id: u128,
        currency: Currency,
        kind: u16,
        flags: AccountFlags,
    ) -> bool {
        if self.ledger.account(id).is_some() {
            return false;
        }
        let account = Account::new(id, currency.ledger(), kind).with_flags(flags);
        let results = self.ledger.create_accounts(now, &[account]);
        assert!(
            results[0].is_ok(),
            "a new product account is valid: {:?}",
            results[0]
        );
        self.created.push(id);
        true
    }

    /// Creates an account of a ledger that is not a currency's (a fund's units) if it does not
    /// exist yet.
    pub(crate) fn ensure_ledger_account(
        &mut self,
        now: u64,
        id: u128,
        ledger: u32,
        kind: u16,
        flags: AccountFlags,
    ) {
        if self.ledger.account(id).is_some() {
            return;
        }
        let account = Account::new(id, ledger, kind).with_flags(flags);
        let results = self.ledger.create_accounts(now, &[account]);
        assert!(
            results[0].is_ok(),
            "a new units account is valid: {:?}",
            results[0]
        );
        self.created.push(id);
    }

    /// Creates transfers that must all succeed, or none: the chain's first failure, if any.
    pub(crate) fn transfer_chain(
        &mut self,
        now: u64,
        transfers: &mut [Transfer],
    ) -> Result<(), CreateTransferResult> {
        let last = transfers.len() - 1;
        for (index, transfer) in transfers.iter_mut().enumerate() {
            if index < last {
                transfer.flags |= formica_ledger::TransferFlags::LINKED;
            }
        }
        let results = self.ledger.create_transfers(now, transfers);
        match results
            .iter()
            .find(|r| !r.is_ok() && **r != CreateTransferResult::LinkedEventFailed)
        {
            Some(failed) => Err(*failed),
            None => Ok(()),
        }
    }
}

/// The refusal for a transfer the books refused: a shortfall or an overflow. Other results
/// mean the products built a wrong transfer, which is a bug.
pub(crate) fn refusal_for(result: CreateTransferResult) -> Refusal {
    use CreateTransferResult as R;
    match result {
        // A wallet short of money, or (exceeds debits) the bank clearing account asked to pay
        // out more than ever came in.
        R::ExceedsCredits | R::ExceedsDebits => Refusal::InsufficientFunds,
        R::OverflowsDebitsPending
        | R::OverflowsCreditsPending
        | R::OverflowsDebitsPosted
        | R::OverflowsCreditsPosted
        | R::OverflowsDebits
        | R::OverflowsCredits => Refusal::AmountTooLarge,
        // A product built a transfer the books refuse: a bug, but one refused command, not a
        // writer that stops for everyone.
        other => {
            debug_assert!(
                false,
                "the products built a transfer the books refuse: {other}"
            );
            Refusal::BooksRefused {
                result: other.as_str().to_owned(),
            }
        }
    }
}
