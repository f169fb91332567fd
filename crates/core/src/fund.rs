//! The pocket-money fund's arithmetic (a money-market fund: units worth 1.00 each, earnings
//! credited daily as new units): the business-day calendar and when a subscription starts
//! earning, the income per 10,000 units as an exact decimal, each holder's earnings rounded
//! down to the cent with the remainder left to the fund, and the 7-day annualised yield.
//! Pure functions over integers; the fund's state machine (below) builds on them.
//!
//! Days are numbered from 1970-01-01 in the platform's time zone (`Settings::day`).
//!
//! **The books.** A fund's money is an account in its currency's ledger; its units are a
//! ledger of their own (one per fund), where the fund's issuer account issues units to each
//! holder's units account. A subscription moves money from the wallet to the fund and issues
//! units as a pending transfer, posted on the confirmation day; a redemption retires units and
//! pays the money back (at once up to the daily instant limit, else on the next business
//! day). So the units outstanding always equal the fund's money.
//!
//! **The daily income.** The operator (or the fund's manager) posts a day's income per 10,000
//! units once the day is over, days in order. The manager's wallet pays the day's income into
//! the fund's income account at once (the fund's confirmed units times the income, rounded
//! down to the cent); the engine then credits the holders in chunks, one chunk per batch so
//! that payments keep flowing, each holder's earnings rounded down and issued as new units,
//! with a cursor saved in the same batch: a crash half way resumes after the last holder
//! credited, and nobody is credited twice. What rounding leaves goes to the fund's residual
//! account when the last chunk is done.

use std::collections::BTreeSet;
use std::fmt;

use formica_ledger::{AccountFlags, Transfer, TransferFlags};
use serde::{Deserialize, Serialize};

use crate::Core;
use crate::money::{Currency, Money};
use crate::products::{Id, Outcome, Refusal, account_kind, transfer_kind};
use crate::wallet::wallet_account;

/// Digits after the point of an income per 10,000 units (Yu'e Bao publishes four).
pub const INCOME_DECIMALS: u32 = 4;

/// Which days are business days: Monday to Friday, except the operator's holidays.
/// Confirmed units earn every calendar day; only the confirmation of a subscription waits for
/// business days.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Calendar {
    /// Days that are not business days though they fall on a weekday.
    pub holidays: BTreeSet<i64>,
}

/// 0 = Sunday … 6 = Saturday. 1970-01-01 was a Thursday.
pub fn weekday(day: i64) -> i64 {
    (day + 4).rem_euclid(7)
}

impl Calendar {
    /// Whether `day` is a business day.
    pub fn is_business_day(&self, day: i64) -> bool {
        !matches!(weekday(day), 0 | 6) && !self.holidays.contains(&day)
    }

    /// The first business day after `day`.
    pub fn next_business_day(&self, day: i64) -> i64 {
        let mut next = day + 1;
        // A year of holidays in a row is a calendar error; stop rather than loop for ever.
        while !self.is_business_day(next) && next - day < 366 {
            next += 1;
        }
        next
    }

    /// The business day a subscription made at `second_of_day` of `day` counts for: that day
    /// if it is a business day and the subscription came before the cut-off, else the next
    /// business day.
    pub fn trade_day(&self, day: i64, second_of_day: u32, cutoff_second: u32) -> i64 {
        if self.is_business_day(day) && second_of_day < cutoff_second {
            day
        } else {
            self.next_business_day(day)
        }
    }

    /// The day a subscription's units are confirmed and start earning: the business day after
    /// its trade day. Its first earnings are those of that day, credited the day after.
    pub fn confirm_day(&self, day: i64, second_of_day: u32, cutoff_second: u32) -> i64 {
        self.next_business_day(self.trade_day(day, second_of_day, cutoff_second))
    }
}

/// A day's income per 10,000 units, in ten-thousandths of the currency's major unit
/// (`0.9312` yuan per 10,000 units is 9312).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Income(pub u64);

impl Serialize for Income {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Income {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Income::parse(&text).map_err(serde::de::Error::custom)
    }
}

impl utoipa::PartialSchema for Income {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .pattern(Some("^[0-9]{1,3}(\\.[0-9]{1,4})?$"))
            .description(Some(
                "Income per 10,000 units for a day, in the fund's currency.",
            ))
            .examples([serde_json::json!("0.9312")])
            .into()
    }
}

impl utoipa::ToSchema for Income {}

/// Why an income figure was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IncomeError {
    /// Not a plain decimal number.
    NotANumber,
    /// More than four decimals.
    TooPrecise,
    /// Larger than any fund pays (100.0000 per 10,000 units a day: 1% a day).
    TooLarge,
}

impl fmt::Display for IncomeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            IncomeError::NotANumber => "an income per 10,000 units is a decimal number",
            IncomeError::TooPrecise => "an income per 10,000 units has at most 4 decimals",
            IncomeError::TooLarge => "an income per 10,000 units is at most 100.0000",
        })
    }
}

impl std::error::Error for IncomeError {}

impl Income {
    /// The largest income accepted: 1% a day.
    pub const MAX: Income = Income(100 * 10_000);

    /// Parses `"0.9312"` exactly.
    pub fn parse(text: &str) -> Result<Income, IncomeError> {
        let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if !digits(whole) || !(fraction.is_empty() || digits(fraction)) {
            return Err(IncomeError::NotANumber);
        }
        if fraction.len() > INCOME_DECIMALS as usize {
            return Err(IncomeError::TooPrecise);
        }
        let whole: u64 = whole.parse().map_err(|_| IncomeError::TooLarge)?;
        let fraction: u64 = if fraction.is_empty() {
            0
        } else {
            fraction
                .parse::<u64>()
                .map_err(|_| IncomeError::NotANumber)?
                * 10u64.pow(INCOME_DECIMALS - fraction.len() as u32)
        };
        let income = whole
            .checked_mul(10_000)
            .and_then(|w| w.checked_add(fraction))
            .ok_or(IncomeError::TooLarge)?;
        if income > Income::MAX.0 {
            return Err(IncomeError::TooLarge);
        }
        Ok(Income(income))
    }
}

impl fmt::Display for Income {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:04}", self.0 / 10_000, self.0 % 10_000)
    }
}

/// What `units` (in minor units: 1.00 unit = 100 for a currency of two decimals) earn in a
/// day of `income`, in minor units, rounded down. `exponent` is the currency's decimals.
///
/// earnings = units / 10^exponent / 10,000 × income / 10^4 × 10^exponent
///          = units × income / 10^8, whatever the exponent.
pub fn earnings(units: u64, income: Income) -> u64 {
    let exact = u128::from(units) * u128::from(income.0);
    u64::try_from(exact / 100_000_000).unwrap_or(u64::MAX)
}

/// A day's income of a whole fund: what the fund manager pays in (`total`, the fund's units
/// times the income, rounded down) and what each holder gets (their `earnings`, each rounded
/// down); the difference stays with the fund, so nothing is invented and nothing lost.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DayIncome {
    /// Paid in for the day, in minor units.
    pub total: u64,
    /// Credited to holders.
    pub credited: u64,
}

impl DayIncome {
    /// What rounding left with the fund.
    pub fn remainder(&self) -> u64 {
        self.total - self.credited
    }
}

/// The day's income of holders with these confirmed units.
pub fn day_income(holdings: impl IntoIterator<Item = u64>, income: Income) -> DayIncome {
    let mut units: u128 = 0;
    let mut credited: u64 = 0;
    for held in holdings {
        units += u128::from(held);
        credited += earnings(held, income);
    }
    let total = u64::try_from(units * u128::from(income.0) / 100_000_000).unwrap_or(u64::MAX);
    DayIncome { total, credited }
}

/// The 7-day annualised yield in millionths (`39_000` is 3.9%), from the last seven days'
/// incomes per 10,000 units: compounded daily, `(Π (1 + Rᵢ/10,000))^(365/7) − 1`, the
/// regulator's formula for a daily carry-forward fund. A display figure (nobody is paid by
/// it), computed in fixed point (18 decimals) and rounded down to the millionth.
pub fn seven_day_yield(last_seven: &[Income; 7]) -> u64 {
    const ONE: u128 = 1_000_000_000_000_000_000;
    let mul = |a: u128, b: u128| a * b / ONE;
    // Growth over the seven days; each day's income per unit is Rᵢ / 10^8.
    let growth = last_seven.iter().fold(ONE, |g, income| {
        mul(g, ONE + u128::from(income.0) * 10_000_000_000)
    });
    // The mean daily growth: the seventh root, by bisection (growth is at most 1.01^7).
    let (mut low, mut high) = (ONE, 2 * ONE);
    while high - low > 1 {
        let mid = low + (high - low) / 2;
        let seventh = (0..6).fold(mid, |p, _| mul(p, mid));
        if seventh <= growth {
            low = mid;
        } else {
            high = mid;
        }
    }
    // A year of it: the daily growth to the 365th power, by squaring.
    let (mut result, mut base, mut exponent) = (ONE, low, 365u32);
    while exponent > 0 {
        if exponent & 1 == 1 {
            result = mul(result, base);
        }
        base = mul(base, base);
        exponent >>= 1;
    }
    u64::try_from((result - ONE) / 1_000_000_000_000).unwrap_or(u64::MAX)
}

/// Holders credited per batch while a day's income is accrued: small enough that the
/// payments queued behind a chunk wait milliseconds, not seconds. `formica bench
/// fund-accrual` measured the trade (1,000,000 holders on SQLite, with the writer's commit
/// overlapping the next batch): 10,000 credit them in about 5 s with payments at about 0.5x
/// their rate alone, 5,000 in 7-9 s at about 0.6x.
pub const ACCRUAL_CHUNK: usize = 5_000;

/// The default cut-off: 15:00 in the platform's time zone.
pub const CUTOFF_DEFAULT: u32 = 15 * 3600;

/// The default instant redemption limit per person per fund per day, in major units.
pub const INSTANT_LIMIT_MAJOR: u64 = 10_000;

/// Unit ledgers are numbered from here, one per fund (currencies use their ISO numbers,
/// all below 1,000).
pub const UNIT_LEDGER_BASE: u32 = 1 << 24;

/// A money-market fund.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Fund {
    /// The fund's id.
    pub id: Id,
    /// Its name.
    pub name: String,
    /// The currency of its units (one unit is 1.00 of it).
    pub currency: Currency,
    /// The person whose wallet pays the daily income in (the fund company's account).
    pub manager_id: Id,
    /// Seconds after midnight (platform time) of the daily cut-off.
    pub cutoff_second: u32,
    /// The most a person may redeem instantly in a day.
    pub instant_limit: Money,
    /// The ledger of its units.
    pub unit_ledger: u32,
    /// The last day whose income is fully credited.
    pub accrued_through: i64,
    /// The day being credited now, if one is.
    pub accrual: Option<Accrual>,
    /// The last seven days' income per 10,000 units, oldest first.
    pub incomes: Vec<(i64, Income)>,
    /// The 7-day annualised yield in millionths, once seven days are posted.
    pub yield_7d_ppm: Option<u64>,
    /// When it was made.
    pub created_at: u64,
}

/// A day's income being credited to the holders.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Accrual {
    /// The day.
    pub day: i64,
    /// Its income per 10,000 units.
    pub income: Income,
    /// Paid in by the manager for the day (minor units).
    pub total: u64,
    /// Credited so far.
    pub credited: u64,
    /// The last holder credited (holders are credited in id order).
    pub after: Option<Id>,
    /// Stopped because a chunk would have credited more than was paid in: a bug to look
    /// into, not a reason to stop the writer (the operator's fund page shows it).
    #[serde(default)]
    pub stalled: bool,
}

/// A person's holding of a fund.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Holding {
    /// The fund.
    pub fund_id: Id,
    /// The holder.
    pub holder_id: Id,
    /// Units held, confirmed or not, in minor units: the holder's units account says the
    /// same, so the store does not keep it (the core fills it in from the books at load, and
    /// a day's earnings need write nothing but their transfers).
    pub units: u64,
    /// Of which not yet confirmed.
    pub pending: u64,
    /// Changes dated after the last accrued day, when last written: (day, +units confirmed
    /// that day, or −units redeemed that day). The units that earn for day `d` are `units`
    /// less those dated after `d`; older entries count for no day still to accrue, and are
    /// dropped when the holding is next written.
    pub recent: Vec<(i64, i64)>,
    /// The day of `instant_used`.
    pub instant_day: i64,
    /// Redeemed instantly that day.
    pub instant_used: u64,
}

impl Holding {
    /// The units that earn for day `day`.
    pub fn earning_units(&self, day: i64) -> u64 {
        let later: i64 = self
            .recent
            .iter()
            .filter(|(at, _)| *at > day)
            .map(|(_, delta)| *delta)
            .sum();
        u64::try_from(i128::from(self.units) - i128::from(later)).unwrap_or(0)
    }
}

/// A subscription waiting for its confirmation day, or confirmed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Subscription {
    /// Its id.
    pub id: Id,
    /// The fund.
    pub fund_id: Id,
    /// The holder.
    pub holder_id: Id,
    /// Money in, units issued.
    pub amount: Money,
    /// The day its units are confirmed and start earning.
    pub confirm_day: i64,
    /// Whether they are.
    pub confirmed: bool,
    /// When it was made.
    pub created_at: u64,
    /// The pending transfer of its units.
    #[serde(skip)]
    pub units_transfer: u128,
}

/// A redemption: units retired, money back to the wallet.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Redemption {
    /// Its id.
    pub id: Id,
    /// The fund.
    pub fund_id: Id,
    /// The holder.
    pub holder_id: Id,
    /// Units retired, money paid.
    pub amount: Money,
    /// Paid at once (within the instant limit) or on `pay_day`.
    pub instant: bool,
    /// The day the money arrives.
    pub pay_day: i64,
    /// Whether it has.
    pub paid: bool,
    /// When it was asked.
    pub created_at: u64,
    /// The pending transfer of its money (a normal redemption).
    #[serde(skip)]
    pub money_transfer: u128,
}

/// One holder's earnings for one day: a units transfer of kind `FUND_EARNINGS` whose
/// `user_data_64` is the day.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Earning {
    /// The fund.
    pub fund_id: Id,
    /// The holder.
    pub holder_id: Id,
    /// The day earned for.
    pub day: i64,
    /// Minor units credited as new units.
    pub amount: u64,
}

/// A fund command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FundCommand {
    /// An operator defines a fund.
    Create {
        /// Its name.
        name: String,
        /// The currency of its units.
        currency: Currency,
        /// Whose wallet pays the daily income in.
        manager_id: Id,
        /// The cut-off, seconds after midnight.
        cutoff_second: u32,
        /// The instant redemption limit per person per day.
        instant_limit: Money,
    },
    /// The operator's holiday calendar: the days (besides weekends) that are not business
    /// days, replacing the last list.
    SetHolidays {
        /// The days.
        days: Vec<i64>,
    },
    /// Buys units with money from the wallet.
    Subscribe {
        /// The fund.
        fund_id: Id,
        /// The buyer.
        holder_id: Id,
        /// How much.
        amount: Money,
    },
    /// Sells units back.
    Redeem {
        /// The fund.
        fund_id: Id,
        /// The holder.
        holder_id: Id,
        /// How much.
        amount: Money,
        /// At once (within the daily limit) or on the next business day.
        instant: bool,
    },
    /// Pays an open trade from the buyer's units: exactly the trade's amount is redeemed to
    /// the wallet and paid on, in this one command (and not counted against the instant
    /// redemption limit, which is for cash taken out).
    PayTrade {
        /// The fund.
        fund_id: Id,
        /// The trade.
        trade_id: Id,
        /// The buyer.
        buyer_id: Id,
    },
    /// Posts a finished day's income per 10,000 units; the holders are credited in the
    /// batches that follow.
    PostIncome {
        /// The fund.
        fund_id: Id,
        /// The day (days are posted in order).
        day: i64,
        /// Income per 10,000 units.
        income: Income,
    },
}

/// The fund's money account.
pub fn fund_account(fund: Id, currency: Currency) -> u128 {
    crate::products::account_id(fund, account_kind::FUND, currency)
}

/// Where the manager's daily income waits while the holders are credited.
pub fn income_account(fund: Id, currency: Currency) -> u128 {
    crate::products::account_id(fund, account_kind::FUND_INCOME, currency)
}

/// What rounding left of the daily incomes.
pub fn residual_account(fund: Id, currency: Currency) -> u128 {
    crate::products::account_id(fund, account_kind::FUND_RESIDUAL, currency)
}

fn ledger_account(owner: Id, kind: u16, ledger: u32) -> u128 {
    (u128::from(owner.0) << 64) | (u128::from(kind) << 32) | u128::from(ledger)
}

/// A holder's units account in the fund's unit ledger.
pub fn units_account(holder: Id, fund: &Fund) -> u128 {
    ledger_account(holder, account_kind::FUND_UNITS, fund.unit_ledger)
}

/// The fund's issuer account in its unit ledger: its debits less its credits are the units
/// outstanding.
pub fn issuer_account(fund: &Fund) -> u128 {
    ledger_account(fund.id, account_kind::FUND_ISSUER, fund.unit_ledger)
}

impl Core {
    pub(crate) fn apply_fund(
        &mut self,
        now: u64,
        command: &FundCommand,
    ) -> Result<Outcome, Refusal> {
        match command {
            FundCommand::Create {
                name,
                currency,
                manager_id,
                cutoff_second,
                instant_limit,
            } => {
                self.person(*manager_id, Some(*currency))?;
                if *cutoff_second >= 86_400 {
                    return Err(Refusal::CutoffInvalid);
                }
                if instant_limit.currency != *currency {
                    return Err(Refusal::CurrencyMismatch {
                        expected: *currency,
                    });
                }
                let id = self.products.next_id(now);
                let fund = Fund {
                    id,
                    name: crate::trade::clip(name),
                    currency: *currency,
                    manager_id: *manager_id,
                    cutoff_second: *cutoff_second,
                    instant_limit: *instant_limit,
                    unit_ledger: UNIT_LEDGER_BASE
                        + u32::try_from(self.products.funds.len()).unwrap_or(u32::MAX - 1)
                        + 1,
                    accrued_through: self.products.settings.day(now) - 1,
                    accrual: None,
                    incomes: Vec::new(),
                    yield_7d_ppm: None,
                    created_at: now,
                };
                self.ensure_fund_accounts(now, &fund);
                self.products.put_fund(fund.clone());
                Ok(Outcome::Fund(fund))
            }
            FundCommand::SetHolidays { days } => {
                let calendar = Calendar {
                    holidays: days.iter().copied().collect(),
                };
                self.products.put_calendar(calendar);
                self.follow_calendar(now);
                Ok(Outcome::Holidays { days: days.clone() })
            }
            FundCommand::Subscribe {
                fund_id,
                holder_id,
                amount,
            } => self.subscribe(now, *fund_id, *holder_id, *amount),
            FundCommand::Redeem {
                fund_id,
                holder_id,
                amount,
                instant,
            } => self.redeem(now, *fund_id, *holder_id, *amount, *instant, false),
            FundCommand::PayTrade {
                fund_id,
                trade_id,
                buyer_id,
            } => self.pay_from_fund(now, *fund_id, *trade_id, *buyer_id),
            FundCommand::PostIncome {
                fund_id,
                day,
                income,
            } => self.post_income(now, *fund_id, *day, *income),
        }
    }

    fn fund_of(&self, id: Id) -> Result<Fund, Refusal> {
        self.products
            .funds
            .get(&id)
            .cloned()
            .ok_or(Refusal::FundNotFound)
    }

    fn ensure_fund_accounts(&mut self, now: u64, fund: &Fund) {
        let mut books = self.books();
        for (id, kind) in [
            (fund_account(fund.id, fund.currency), account_kind::FUND),
            (
                income_account(fund.id, fund.currency),
                account_kind::FUND_INCOME,
            ),
            (
                residual_account(fund.id, fund.currency),
                account_kind::FUND_RESIDUAL,
            ),
        ] {
            books.ensure_account(
                now,
                id,
                fund.currency,
                kind,
                AccountFlags::DEBITS_MUST_NOT_EXCEED_CREDITS,
            );
        }
        // The issuer's balance is the units outstanding, on the debit side.
        books.ensure_ledger_account(
            now,
            issuer_account(fund),
            fund.unit_ledger,
            account_kind::FUND_ISSUER,
            AccountFlags::CREDITS_MUST_NOT_EXCEED_DEBITS,
        );
    }

    fn ensure_units_account(&mut self, now: u64, fund: &Fund, holder: Id) {
        self.books().ensure_ledger_account(
            now,
            units_account(holder, fund),
            fund.unit_ledger,
            account_kind::FUND_UNITS,
            AccountFlags::DEBITS_MUST_NOT_EXCEED_CREDITS,
        );
    }

    fn holding_of(&self, fund: Id, holder: Id) -> Holding {
        self.products
            .holdings
            .get(&(fund, holder))
            .cloned()
            .unwrap_or(Holding {
                fund_id: fund,
                holder_id: holder,
                ..Holding::default()
            })
    }

    fn subscribe(
        &mut self,
        now: u64,
        fund_id: Id,
        holder: Id,
        amount: Money,
    ) -> Result<Outcome, Refusal> {
        let fund = self.fund_of(fund_id)?;
        crate::wallet::positive(amount)?;
        if amount.currency != fund.currency {
            return Err(Refusal::CurrencyMismatch {
                expected: fund.currency,
            });
        }
        self.person(holder, Some(fund.currency))?;
        // Refused before anything is made (the units account) when the wallet is short.
        let available = self
            .ledger
            .account(wallet_account(holder, fund.currency))
            .map_or(0, |a| a.available());
        if available < i128::from(amount.amount_minor) {
            return Err(Refusal::InsufficientFunds);
        }
        let (day, second) = self.day_and_second(now);
        let confirm_day = self
            .products
            .calendar
            .confirm_day(day, second, fund.cutoff_second);
        self.ensure_units_account(now, &fund, holder);
        let money_id = self.products.next_transfer_id(now);
        let units_id = self.products.next_transfer_id(now);
        let minor = u128::from(amount.amount_minor);
        self.transfer_all(
            now,
            vec![
                Transfer::new(
                    money_id,
                    wallet_account(holder, fund.currency),
                    fund_account(fund.id, fund.currency),
                    minor,
                    fund.currency.ledger(),
                    transfer_kind::FUND_SUBSCRIPTION,
                ),
                Transfer::new(
                    units_id,
                    issuer_account(&fund),
                    units_account(holder, &fund),
                    minor,
                    fund.unit_ledger,
                    transfer_kind::FUND_UNITS,
                )
                .with_flags(TransferFlags::PENDING),
            ],
        )?;
        let mut holding = self.holding_of(fund_id, holder);
        holding.recent.retain(|(at, _)| *at > fund.accrued_through);
        holding.units += amount.amount_minor;
        holding.pending += amount.amount_minor;
        holding.recent.push((
            confirm_day,
            i64::try_from(amount.amount_minor).unwrap_or(i64::MAX),
        ));
        self.products.put_holding(holding);
        let subscription = Subscription {
            id: self.products.next_id(now),
            fund_id,
            holder_id: holder,
            amount,
            confirm_day,
            confirmed: false,
            created_at: now,
            units_transfer: units_id,
        };
        self.products.put_subscription(subscription.clone());
        Ok(Outcome::Subscription(subscription))
    }

    /// Sells units back; `for_payment` redemptions pay at once and do not count against
    /// the instant limit.
    fn redeem(
        &mut self,
        now: u64,
        fund_id: Id,
        holder: Id,
        amount: Money,
        instant: bool,
        for_payment: bool,
    ) -> Result<Outcome, Refusal> {
        let fund = self.fund_of(fund_id)?;
        crate::wallet::positive(amount)?;
        if amount.currency != fund.currency {
            return Err(Refusal::CurrencyMismatch {
                expected: fund.currency,
            });
        }
        let (day, second) = self.day_and_second(now);
        let mut holding = self.holding_of(fund_id, holder);
        if holding.units - holding.pending < amount.amount_minor {
            return Err(Refusal::UnitsInsufficient {
                confirmed: Money::new(holding.units - holding.pending, fund.currency),
            });
        }
        let used = if holding.instant_day == day {
            holding.instant_used
        } else {
            0
        };
        if instant && !for_payment && used + amount.amount_minor > fund.instant_limit.amount_minor {
            return Err(Refusal::InstantLimitExceeded {
                limit: fund.instant_limit,
                used: Money::new(used, fund.currency),
            });
        }
        let units_id = self.products.next_transfer_id(now);
        let money_id = self.products.next_transfer_id(now);
        let minor = u128::from(amount.amount_minor);
        let money = Transfer::new(
            money_id,
            fund_account(fund.id, fund.currency),
            wallet_account(holder, fund.currency),
            minor,
            fund.currency.ledger(),
            transfer_kind::FUND_REDEMPTION,
        );
        self.transfer_all(
            now,
            vec![
                Transfer::new(
                    units_id,
                    units_account(holder, &fund),
                    issuer_account(&fund),
                    minor,
                    fund.unit_ledger,
                    transfer_kind::FUND_UNITS,
                ),
                if instant {
                    money
                } else {
                    money.with_flags(TransferFlags::PENDING)
                },
            ],
        )?;
        // The units stop earning today.
        holding.recent.retain(|(at, _)| *at > fund.accrued_through);
        holding.units -= amount.amount_minor;
        holding
            .recent
            .push((day, -i64::try_from(amount.amount_minor).unwrap_or(i64::MAX)));
        if instant && !for_payment {
            holding.instant_day = day;
            holding.instant_used = used + amount.amount_minor;
        }
        self.products.put_holding(holding);
        let pay_day = if instant {
            day
        } else {
            self.products
                .calendar
                .confirm_day(day, second, fund.cutoff_second)
        };
        let redemption = Redemption {
            id: self.products.next_id(now),
            fund_id,
            holder_id: holder,
            amount,
            instant,
            pay_day,
            paid: instant,
            created_at: now,
            money_transfer: money_id,
        };
        self.products.put_redemption(redemption.clone());
        Ok(Outcome::Redemption(redemption))
    }

    /// Pays a trade from the fund: the trade's own checks first, so that nothing is redeemed
    /// for a payment that would be refused; then the redemption and the payment.
    fn pay_from_fund(
        &mut self,
        now: u64,
        fund_id: Id,
        trade_id: Id,
        buyer: Id,
    ) -> Result<Outcome, Refusal> {
        let fund = self.fund_of(fund_id)?;
        let trade = self.payable(now, trade_id, buyer, fund.currency)?;
        self.redeem(now, fund_id, buyer, trade.amount, true, true)?;
        // The money is in the wallet and the trade was checked: the payment goes through.
        let paid = self.pay_trade(now, trade_id, buyer);
        debug_assert!(paid.is_ok(), "a checked payment from the fund: {paid:?}");
        paid
    }

    fn post_income(
        &mut self,
        now: u64,
        fund_id: Id,
        day: i64,
        income: Income,
    ) -> Result<Outcome, Refusal> {
        let mut fund = self.fund_of(fund_id)?;
        if fund.accrual.is_some() {
            return Err(Refusal::AccrualInProgress);
        }
        let today = self.products.settings.day(now);
        let expected = fund.accrued_through + 1;
        if day != expected || day >= today {
            return Err(Refusal::IncomeDayInvalid { expected });
        }
        let total = day_income(
            self.products
                .holdings_of(fund_id)
                .map(|h| h.earning_units(day)),
            income,
        )
        .total;
        if total > 0 {
            let id = self.products.next_transfer_id(now);
            self.transfer(
                now,
                Transfer::new(
                    id,
                    wallet_account(fund.manager_id, fund.currency),
                    income_account(fund.id, fund.currency),
                    u128::from(total),
                    fund.currency.ledger(),
                    transfer_kind::FUND_INCOME,
                ),
            )?;
        }
        fund.incomes.push((day, income));
        if fund.incomes.len() > 7 {
            fund.incomes.remove(0);
        }
        if let Ok(last_seven) =
            <[Income; 7]>::try_from(fund.incomes.iter().map(|(_, i)| *i).collect::<Vec<_>>())
        {
            fund.yield_7d_ppm = Some(seven_day_yield(&last_seven));
        }
        fund.accrual = Some(Accrual {
            day,
            income,
            total,
            credited: 0,
            after: None,
            stalled: false,
        });
        self.products.record_income(fund.id, day, income);
        self.products.put_fund(fund.clone());
        // The first chunk runs in this batch's timers.
        self.accrue(now, fund_id);
        Ok(Outcome::Fund(self.fund_of(fund_id)?))
    }

    /// Credits the next chunk of holders of the fund's accrual; the last chunk moves what
    /// rounding left to the residual account and ends it.
    pub(crate) fn accrue(&mut self, now: u64, fund_id: Id) {
        let Ok(mut fund) = self.fund_of(fund_id) else {
            return;
        };
        let Some(mut accrual) = fund.accrual.clone() else {
            return;
        };
        // First what the chunk would credit, changing nothing: it must stay within what the
        // manager paid in (it does, as each holder's earning units for a past day cannot
        // change; were that ever broken, the accrual stops rather than invent money or crash
        // the writer). Each holder's id and earnings only, not a copy of the holding.
        let chunk: Vec<(Id, u64)> = self
            .products
            .holdings_after(fund_id, accrual.after)
            .take(self.products.settings.accrual_chunk.max(1))
            .map(|h| {
                let earned = earnings(h.earning_units(accrual.day), accrual.income);
                (h.holder_id, earned)
            })
            .collect();
        let credited: u64 = chunk.iter().map(|(_, earned)| earned).sum();
        if accrual.credited + credited > accrual.total {
            debug_assert!(false, "an accrual chunk exceeds the income paid in");
            accrual.stalled = true;
            fund.accrual = Some(accrual);
            self.products.put_fund(fund);
            return;
        }
        let mut transfers = Vec::with_capacity(chunk.len() + 2);
        if credited > 0 {
            transfers.push(Transfer::new(
                self.products.next_transfer_id(now),
                income_account(fund.id, fund.currency),
                fund_account(fund.id, fund.currency),
                u128::from(credited),
                fund.currency.ledger(),
                transfer_kind::FUND_INCOME,
            ));
        }
        // Only the transfers are written: a holding's units are its account's, and its
        // dated changes are pruned when it is next written.
        for &(holder, earned) in &chunk {
            accrual.after = Some(holder);
            if earned == 0 {
                continue;
            }
            let mut transfer = Transfer::new(
                self.products.next_transfer_id(now),
                issuer_account(&fund),
                units_account(holder, &fund),
                u128::from(earned),
                fund.unit_ledger,
                transfer_kind::FUND_EARNINGS,
            );
            transfer.user_data_64 = accrual.day as u64;
            transfers.push(transfer);
            self.products.credit_units((fund_id, holder), earned);
        }
        accrual.credited += credited;
        let done = chunk.len() < self.products.settings.accrual_chunk.max(1);
        if done && accrual.total > accrual.credited {
            transfers.push(Transfer::new(
                self.products.next_transfer_id(now),
                income_account(fund.id, fund.currency),
                residual_account(fund.id, fund.currency),
                u128::from(accrual.total - accrual.credited),
                fund.currency.ledger(),
                transfer_kind::FUND_RESIDUAL,
            ));
        }
        // Within the income paid in (checked above), and each on valid accounts: the books
        // accept every one. Transfers of two ledgers cannot be linked; each stands alone.
        for transfer in transfers {
            self.transfer(now, transfer)
                .expect("an accrual's transfers are covered by the income paid in");
        }
        if done {
            fund.accrued_through = accrual.day;
            fund.accrual = None;
        } else {
            fund.accrual = Some(accrual);
        }
        self.products.put_fund(fund);
    }

    /// Confirms a subscription's units on its day.
    pub(crate) fn confirm_subscription(&mut self, now: u64, id: Id) {
        let Some(mut subscription) = self.products.subscriptions.get(&id).cloned() else {
            return;
        };
        let post = self.products.next_transfer_id(now);
        self.transfer(
            now,
            Transfer::post(
                post,
                subscription.units_transfer,
                formica_ledger::AMOUNT_MAX,
            ),
        )
        .expect("a subscription's units are pending until confirmed");
        let mut holding = self.holding_of(subscription.fund_id, subscription.holder_id);
        holding.pending -= subscription.amount.amount_minor;
        self.products.put_holding(holding);
        subscription.confirmed = true;
        self.products.put_subscription(subscription);
    }

    /// Pays a normal redemption on its day.
    pub(crate) fn pay_redemption(&mut self, now: u64, id: Id) {
        let Some(mut redemption) = self.products.redemptions.get(&id).cloned() else {
            return;
        };
        let post = self.products.next_transfer_id(now);
        self.transfer(
            now,
            Transfer::post(post, redemption.money_transfer, formica_ledger::AMOUNT_MAX),
        )
        .expect("a redemption's money is pending until its day");
        redemption.paid = true;
        self.products.put_redemption(redemption);
    }

    /// Open confirmations and normal payouts follow a new holiday calendar: each is counted
    /// again from when it was made, and never moves before today (what falls due today is
    /// done at once). Days already credited cannot change: they are all before today.
    fn follow_calendar(&mut self, now: u64) {
        let mut open: Vec<Subscription> = self.products.subscriptions.values().cloned().collect();
        open.sort_by_key(|s| s.id);
        for mut subscription in open {
            let moved = self.recounted_day(now, subscription.fund_id, subscription.created_at);
            if moved == subscription.confirm_day {
                continue;
            }
            // The holding counts the units as earning from the confirmation day.
            let delta = i64::try_from(subscription.amount.amount_minor).unwrap_or(i64::MAX);
            let mut holding = self.holding_of(subscription.fund_id, subscription.holder_id);
            if let Some(entry) = holding
                .recent
                .iter_mut()
                .find(|(at, d)| *at == subscription.confirm_day && *d == delta)
            {
                entry.0 = moved;
            }
            self.products.put_holding(holding);
            subscription.confirm_day = moved;
            self.products.put_subscription(subscription);
        }
        let mut open: Vec<Redemption> = self.products.redemptions.values().cloned().collect();
        open.sort_by_key(|r| r.id);
        for mut redemption in open {
            let moved = self.recounted_day(now, redemption.fund_id, redemption.created_at);
            if moved != redemption.pay_day {
                redemption.pay_day = moved;
                self.products.put_redemption(redemption);
            }
        }
    }

    /// The business day after the trade day of what was made at `made` in this fund, by
    /// today's calendar; today if that is earlier.
    fn recounted_day(&self, now: u64, fund_id: Id, made: u64) -> i64 {
        let (today, _) = self.day_and_second(now);
        let cutoff = self
            .products
            .funds
            .get(&fund_id)
            .map_or(CUTOFF_DEFAULT, |f| f.cutoff_second);
        let (day, second) = self.day_and_second(made);
        self.products
            .calendar
            .confirm_day(day, second, cutoff)
            .max(today)
    }

    /// Today and the second of the day, in the platform's time zone.
    fn day_and_second(&self, now: u64) -> (i64, u32) {
        let settings = &self.products.settings;
        let day = settings.day(now);
        let start = crate::merchant::day_start(day, settings.day_offset_seconds);
        let second = u32::try_from(now.saturating_sub(start) / 1_000_000_000).unwrap_or(0);
        (day, second)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2027-03-01 is a Monday.
    const MONDAY: i64 = 20_878;
    const AT_1459: u32 = 14 * 3600 + 59 * 60;
    const AT_1501: u32 = 15 * 3600 + 60;
    const CUTOFF: u32 = 15 * 3600;

    #[test]
    fn the_calendar_knows_its_weekdays() {
        assert_eq!(weekday(0), 4, "1970-01-01 was a Thursday");
        assert_eq!(weekday(MONDAY), 1);
        let calendar = Calendar::default();
        assert!(calendar.is_business_day(MONDAY + 4));
        assert!(!calendar.is_business_day(MONDAY + 5));
        assert_eq!(calendar.next_business_day(MONDAY + 4), MONDAY + 7);
    }

    #[test]
    fn subscriptions_are_confirmed_on_the_next_business_day() {
        let calendar = Calendar::default();
        // Monday 14:59: confirmed Tuesday.
        assert_eq!(calendar.confirm_day(MONDAY, AT_1459, CUTOFF), MONDAY + 1);
        // Monday 15:01 counts as Tuesday's: confirmed Wednesday.
        assert_eq!(calendar.confirm_day(MONDAY, AT_1501, CUTOFF), MONDAY + 2);
        // Friday 14:59: confirmed Monday.
        assert_eq!(
            calendar.confirm_day(MONDAY + 4, AT_1459, CUTOFF),
            MONDAY + 7
        );
        // Thursday 15:01 behaves like Friday.
        assert_eq!(
            calendar.confirm_day(MONDAY + 3, AT_1501, CUTOFF),
            MONDAY + 7
        );
        // Saturday counts as Monday's: confirmed Tuesday.
        assert_eq!(
            calendar.confirm_day(MONDAY + 5, AT_1459, CUTOFF),
            MONDAY + 8
        );
    }

    #[test]
    fn holidays_push_confirmation_on() {
        // Tuesday and Wednesday are holidays: Monday 14:59 is confirmed Thursday, and a
        // subscription on the holiday counts as Thursday's, confirmed Friday.
        let calendar = Calendar {
            holidays: [MONDAY + 1, MONDAY + 2].into_iter().collect(),
        };
        assert_eq!(calendar.confirm_day(MONDAY, AT_1459, CUTOFF), MONDAY + 3);
        assert_eq!(
            calendar.confirm_day(MONDAY + 1, AT_1459, CUTOFF),
            MONDAY + 4
        );
    }

    #[test]
    fn income_parses_exactly() {
        assert_eq!(Income::parse("0.9312"), Ok(Income(9_312)));
        assert_eq!(Income::parse("1.2"), Ok(Income(12_000)));
        assert_eq!(Income::parse("3"), Ok(Income(30_000)));
        assert_eq!(Income(9_312).to_string(), "0.9312");
        assert_eq!(Income::parse("0.93125"), Err(IncomeError::TooPrecise));
        assert_eq!(Income::parse("-1"), Err(IncomeError::NotANumber));
        assert_eq!(Income::parse("1e3"), Err(IncomeError::NotANumber));
        assert_eq!(Income::parse("."), Err(IncomeError::NotANumber));
        assert_eq!(Income::parse("100.0001"), Err(IncomeError::TooLarge));
    }

    #[test]
    fn earnings_round_down_and_the_fund_keeps_the_rest() {
        // 100.00 units at 0.93 per 10,000: 0.0093 yuan, nothing to the cent.
        assert_eq!(earnings(10_000, Income(9_300)), 0);
        // 10,000.00 units at 0.9312: 0.9312 yuan, 93 fen credited.
        assert_eq!(earnings(1_000_000, Income(9_312)), 93);
        let day = day_income([1_000_000, 1_000_000, 550], Income(9_312));
        assert_eq!(day.credited, 93 + 93);
        assert_eq!(
            day.total, 186,
            "20,005.50 units × 0.9312 / 10,000 = 1.8629 yuan"
        );
        assert_eq!(day.remainder(), 0);
        let day = day_income(vec![5_000_000; 3], Income(9_312));
        assert_eq!((day.total, day.credited, day.remainder()), (1396, 1395, 1));
    }

    #[test]
    fn the_seven_day_yield_compounds_daily() {
        // 1.0000 per 10,000 units a day: (1.0001)^365 − 1 = 3.71724…%.
        assert_eq!(seven_day_yield(&[Income(10_000); 7]), 37_172);
        // Uneven days compound as their mean growth: 3.71724…%.
        let mixed = [9_000, 11_000, 10_000, 10_000, 10_000, 10_000, 10_000].map(Income);
        assert_eq!(seven_day_yield(&mixed), 37_172);
        // Yu'e Bao's 2017 level: 1.07 per 10,000 units a day is 3.98%.
        assert_eq!(seven_day_yield(&[Income(10_700); 7]), 39_825);
        assert_eq!(seven_day_yield(&[Income(0); 7]), 0);
    }
}
