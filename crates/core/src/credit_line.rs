//! The credit line (Huabei, `products.md` §10): credit at checkout, repaid monthly.
//!
//! **The limit.** A person opens a line when their credit score reaches the policy's
//! `line_score_min` and nothing of theirs is overdue; the limit is `CreditPolicy::limit`, and it is set again from
//! the score on every statement day (never below what is already used: a lower score stops
//! new purchases until repayments bring the use under it).
//!
//! **Drawing.** A trade is paid from the line (`PayTrade`): the platform lends the price into
//! the person's wallet and the wallet pays the trade, in one command, so that every rule of
//! paying (daily limits, escrow, fees) is the wallet's own. A purchase into escrow joins the
//! line's next statement when the buyer confirms receipt (as Taobao purchases do); a
//! merchant's straight payment joins it at once. Refunds of a trade paid from the line go
//! back to the line, not the wallet (only what was already repaid stays in the wallet).
//!
//! **Statements.** On the 1st of each month (the platform's time zone) what was bought since
//! the last statement, the interest since, an instalment period and whatever of the last
//! statement is unpaid make the new statement, due at the end of the person's due day (the
//! 8th, 9th or 10th). Its minimum is 10% of it (rounded up to the cent) plus the instalment
//! period and any minimum left unpaid before. Paid in full by the due day: no interest.
//! Otherwise, from the day after the due day, the unpaid principal accrues 0.05% a day until
//! it is repaid; interest joins the next statement. If not even the minimum was paid, the
//! line is **overdue**: the interest counts on the unpaid charges too, the person cannot draw,
//! and the credit score counts it until the minimum is paid.
//!
//! **Instalments.** Before its due day, a statement's principal can become 3, 6, 9 or 12
//! instalments with a fee of 2.5%, 4.5%, 6.5% or 8.8% of it; each statement bills one period
//! (the principal and the fee divided by the periods, the last taking what division left),
//! the first at once. Repaying more than the statements ask pays the plan's principal off
//! early; the fee of the periods not yet billed is then not charged.
//!
//! **The books.** The line is the person's credit-line account (debit-normal: what they owe).
//! A purchase is line → wallet, linked with funding → lent as a deposit debt's loan is, so
//! lent stays the sum of the principal owed. Interest is line → interest income and a fee
//! line → fee income: owed, not lent. A repayment is wallet → line, and its principal part
//! lent → funding. The line's account always equals its principal owed plus charges owed.

use formica_ledger::{AccountFlags, Transfer};
use serde::{Deserialize, Serialize};

use crate::Core;
use crate::credit::{CREDIT_CURRENCY, Facts};
use crate::deposit::{funding_account, lent_account};
use crate::money::{Currency, Money};
use crate::products::{Id, Outcome, Refusal, account_id, account_kind, transfer_kind};
use crate::trade::{Trade, TradeStatus};
use crate::wallet::{positive, wallet_account};

/// Days of the month a person may choose to repay by.
pub const DUE_DAYS: [u8; 3] = [8, 9, 10];

/// The line's rules, which an operator sets (`CreditLineCommand::SetPolicy`); the defaults are
/// Huabei's (§10). A change applies from then on: to limits when they are next set (opening a
/// line, each statement day), to interest from the next day's, to the minimum of the next
/// statement, to fees of plans made after it, and to debts made after it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreditPolicy {
    /// The score a person needs to open a line (600).
    pub line_score_min: u16,
    /// The limit at that score (500.00).
    pub line_base: Money,
    /// How much more each point above it earns (140.00).
    pub line_per_point: Money,
    /// The highest limit (50,000.00).
    pub line_cap: Money,
    /// The minimum repayment, in per mille of a statement (100: 10%).
    pub minimum_per_mille: u64,
    /// Interest a day on what is late, in parts per 10,000 (5: 0.05%).
    pub daily_interest_per_10k: u64,
    /// The instalment plans a statement may become, and each one's whole fee.
    pub instalments: Vec<InstalmentFee>,
    /// Days a debt from a charged waived deposit may wait before it is overdue (7).
    pub debt_days: u64,
}

/// An instalment plan's periods and its whole fee.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InstalmentFee {
    /// How many monthly periods.
    pub periods: u8,
    /// The fee, in per mille of the principal (25: 2.5%).
    pub fee_per_mille: u64,
}

impl Default for CreditPolicy {
    fn default() -> Self {
        let cny = |yuan: u64| Money::new(yuan * 100, CREDIT_CURRENCY);
        CreditPolicy {
            line_score_min: 600,
            line_base: cny(500),
            line_per_point: cny(140),
            line_cap: cny(50_000),
            minimum_per_mille: 100,
            daily_interest_per_10k: 5,
            instalments: [(3, 25), (6, 45), (9, 65), (12, 88)]
                .map(|(periods, fee_per_mille)| InstalmentFee {
                    periods,
                    fee_per_mille,
                })
                .to_vec(),
            debt_days: crate::deposit::DEBT_DAYS,
        }
    }
}

/// 100.00 in minor units: limits are whole hundreds.
const HUNDRED_YUAN: u64 = 10_000;

/// The largest limit a policy may give (1,000,000.00).
const LINE_CAP_MAX_MINOR: u64 = 1_000_000 * 100;

impl CreditPolicy {
    /// The limit a score earns, in minor units of CNY: none below `line_score_min`;
    /// `line_base` at it, `line_per_point` more per point above, rounded down to the hundred,
    /// at most `line_cap` (by default the product's 500-50,000 range, reached near the top of
    /// the score's).
    pub fn limit(&self, score: u16) -> u64 {
        if score < self.line_score_min {
            return 0;
        }
        let points = u64::from(score - self.line_score_min);
        let raw = self.line_base.amount_minor + points * self.line_per_point.amount_minor;
        (raw / HUNDRED_YUAN * HUNDRED_YUAN).min(self.line_cap.amount_minor)
    }

    /// The whole fee of a plan of `periods`, if the policy offers it.
    pub fn instalment_fee(&self, periods: u8) -> Option<u64> {
        self.instalments
            .iter()
            .find(|plan| plan.periods == periods)
            .map(|plan| plan.fee_per_mille)
    }

    /// Why the policy cannot be used, if it cannot.
    pub fn check(&self) -> Result<(), &'static str> {
        let scores = crate::credit::SCORE_MIN..=crate::credit::SCORE_MAX;
        let money = [self.line_base, self.line_per_point, self.line_cap];
        if !scores.contains(&self.line_score_min) {
            return Err("line_score_min must be a score from 350 to 950");
        }
        if money.iter().any(|m| m.currency != CREDIT_CURRENCY) {
            return Err("the line's amounts are in CNY");
        }
        if self.line_base.amount_minor < HUNDRED_YUAN
            || self.line_cap.amount_minor > LINE_CAP_MAX_MINOR
        {
            return Err("line_base must be at least 100.00 and line_cap at most 1000000.00");
        }
        if self.line_base.amount_minor > self.line_cap.amount_minor
            || self.line_per_point.amount_minor > self.line_cap.amount_minor
        {
            return Err("line_base and line_per_point must not exceed line_cap");
        }
        if !(1..=1000).contains(&self.minimum_per_mille) {
            return Err("minimum_per_mille must be from 1 to 1000");
        }
        if self.daily_interest_per_10k > 10 {
            return Err("daily_interest_per_10k must be at most 10 (0.1% a day)");
        }
        let mut periods: Vec<u8> = self.instalments.iter().map(|p| p.periods).collect();
        periods.sort_unstable();
        periods.dedup();
        if periods.len() != self.instalments.len()
            || self.instalments.len() > 12
            || self
                .instalments
                .iter()
                .any(|p| !(2..=36).contains(&p.periods) || p.fee_per_mille > 300)
        {
            return Err(
                "instalments: each plan 2 to 36 periods, once, with a fee of at most 300 per mille",
            );
        }
        if !(1..=90).contains(&self.debt_days) {
            return Err("debt_days must be from 1 to 90");
        }
        Ok(())
    }
}

/// A person's credit-line account: what they owe on the line (debits less credits).
pub fn line_account(person: Id, currency: Currency) -> u128 {
    account_id(person, account_kind::CREDIT_LINE, currency)
}

/// The platform's interest income in `currency`.
pub fn interest_account(currency: Currency) -> u128 {
    account_id(
        crate::products::PLATFORM,
        account_kind::CREDIT_INTEREST,
        currency,
    )
}

/// The platform's instalment fee income in `currency`.
pub fn fee_income_account(currency: Currency) -> u128 {
    account_id(
        crate::products::PLATFORM,
        account_kind::CREDIT_FEES,
        currency,
    )
}

/// A person's credit line.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CreditLine {
    /// Whose.
    pub person_id: Id,
    /// How much principal may be owed at once.
    pub limit: Money,
    /// The day of the month statements are due (8, 9 or 10).
    pub due_day: u8,
    /// Paid into escrow trades not yet confirmed: on no statement yet.
    pub escrowed: Money,
    /// Bought since the last statement.
    pub unbilled: Money,
    /// Interest and fees since the last statement.
    pub unbilled_charges: Money,
    /// The last statement, while anything of it is unpaid.
    pub statement: Option<Statement>,
    /// The instalment plan, while periods are left.
    pub plan: Option<Plan>,
    /// Principal past a due day unpaid: it accrues interest daily.
    pub late: Money,
    /// Interest is counted up to (not including) this day (days since 1970-01-01).
    pub interest_through: i64,
    /// Whether a statement's minimum was not paid by its due day.
    pub overdue: bool,
    /// The day of the last statement.
    pub statement_day: i64,
    /// Interest charged so far, in all.
    pub interest_total: Money,
    /// Instalment fees charged so far, in all.
    pub fees_total: Money,
    /// When it was opened.
    pub opened_at: u64,
    /// Changed last.
    pub updated_at: u64,
    /// When the line next has something to do (a statement, a due day, a day's interest).
    pub next_at: Option<u64>,
}

/// A monthly statement.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Statement {
    /// Its id.
    pub id: Id,
    /// Whose.
    pub person_id: Id,
    /// The statement day (days since 1970-01-01, the 1st of a month).
    pub day: i64,
    /// Repay by then (the end of the due day) to pay no interest.
    pub due_at: u64,
    /// Principal billed (including any carried from the statement before).
    pub principal: Money,
    /// Interest and fees billed.
    pub charges: Money,
    /// The least to repay by the due day not to be overdue.
    pub minimum: Money,
    /// Principal not yet repaid.
    pub principal_left: Money,
    /// Charges not yet repaid.
    pub charges_left: Money,
    /// Of the minimum, what is not yet repaid.
    pub minimum_left: Money,
    /// Whether its due day has passed.
    pub due_passed: bool,
    /// Turned into this many instalments.
    pub instalments: Option<u8>,
    /// When it was repaid in full.
    pub paid_at: Option<u64>,
}

impl Statement {
    /// What is left to repay.
    pub fn left(&self) -> u64 {
        self.principal_left.amount_minor + self.charges_left.amount_minor
    }
}

/// A statement turned into instalments: the periods not yet billed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Plan {
    /// Periods in all.
    pub periods: u8,
    /// Periods not yet billed.
    pub periods_left: u8,
    /// Principal not yet billed.
    pub principal_left: Money,
    /// Fee not yet billed.
    pub fee_left: Money,
}

impl Plan {
    /// The next period's principal and fee: an equal share, the last taking the rest.
    fn period(&self) -> (u64, u64) {
        match u64::from(self.periods_left) {
            0 | 1 => (self.principal_left.amount_minor, self.fee_left.amount_minor),
            n => (
                self.principal_left.amount_minor / n,
                self.fee_left.amount_minor / n,
            ),
        }
    }
}

impl CreditLine {
    /// Principal owed: what counts against the limit.
    pub fn used(&self) -> u64 {
        self.escrowed.amount_minor
            + self.unbilled.amount_minor
            + self
                .statement
                .as_ref()
                .map_or(0, |s| s.principal_left.amount_minor)
            + self
                .plan
                .as_ref()
                .map_or(0, |p| p.principal_left.amount_minor)
    }

    /// What can still be drawn.
    pub fn available(&self) -> u64 {
        self.limit.amount_minor.saturating_sub(self.used())
    }

    /// Interest and fees owed.
    pub fn charges(&self) -> u64 {
        self.unbilled_charges.amount_minor
            + self
                .statement
                .as_ref()
                .map_or(0, |s| s.charges_left.amount_minor)
    }

    /// Everything owed: the line account's balance.
    pub fn owed(&self) -> u64 {
        self.used() + self.charges()
    }

    fn money(&self, minor: u64) -> Money {
        Money::new(minor, self.limit.currency)
    }
}

/// What people do with their credit line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CreditLineCommand {
    /// Opens a line with the limit the person's score earns.
    Open {
        /// The person.
        person_id: Id,
        /// The day of the month to repay by: 8, 9 or 10.
        due_day: u8,
    },
    /// Pays a trade from the line.
    PayTrade {
        /// The trade.
        trade_id: Id,
        /// The buyer.
        buyer_id: Id,
    },
    /// Repays from the wallet: the statement's charges and principal first, then what was
    /// bought since, then the plan's principal.
    Repay {
        /// The person.
        person_id: Id,
        /// How much.
        amount: Money,
    },
    /// Turns the current statement's principal into instalments.
    Instalments {
        /// The person.
        person_id: Id,
        /// 3, 6, 9 or 12.
        periods: u8,
    },
    /// An operator sets the line's rules.
    SetPolicy(Box<CreditPolicy>),
}

impl Core {
    pub(crate) fn apply_credit_line(
        &mut self,
        now: u64,
        command: &CreditLineCommand,
    ) -> Result<Outcome, Refusal> {
        match command {
            CreditLineCommand::Open { person_id, due_day } => {
                self.open_line(now, *person_id, *due_day)
            }
            CreditLineCommand::PayTrade { trade_id, buyer_id } => {
                self.pay_from_line(now, *trade_id, *buyer_id)
            }
            CreditLineCommand::Repay { person_id, amount } => {
                self.repay_line(now, *person_id, *amount)
            }
            CreditLineCommand::Instalments { person_id, periods } => {
                self.instalments(now, *person_id, *periods)
            }
            CreditLineCommand::SetPolicy(policy) => {
                policy.check().map_err(|why| Refusal::CreditPolicyInvalid {
                    why: why.to_owned(),
                })?;
                self.products.put_credit_policy(policy.as_ref().clone());
                Ok(Outcome::CreditPolicy(policy.as_ref().clone()))
            }
        }
    }

    fn open_line(&mut self, now: u64, person: Id, due_day: u8) -> Result<Outcome, Refusal> {
        if !DUE_DAYS.contains(&due_day) {
            return Err(Refusal::DueDayInvalid);
        }
        self.person(person, Some(CREDIT_CURRENCY))?;
        if self.products.credit_lines.contains_key(&person) {
            return Err(Refusal::CreditLineExists);
        }
        let score = self.credit(person).map(|c| c.total());
        let limit = self.earned_limit(person);
        if limit == 0 {
            return Err(Refusal::CreditLineNotEligible { score });
        }
        let currency = CREDIT_CURRENCY;
        self.ensure_line_accounts(now, person, currency);
        let zero = Money::new(0, currency);
        let today = self.products.settings.day(now);
        let line = CreditLine {
            person_id: person,
            limit: Money::new(limit, currency),
            due_day,
            escrowed: zero,
            unbilled: zero,
            unbilled_charges: zero,
            statement: None,
            plan: None,
            late: zero,
            interest_through: today,
            overdue: false,
            statement_day: today,
            interest_total: zero,
            fees_total: zero,
            opened_at: now,
            updated_at: now,
            next_at: None,
        };
        Ok(self.save_line(now, line, Some("credit_line.opened")))
    }

    /// The limit the person's score earns now: none while anything of theirs is overdue.
    fn earned_limit(&self, person: Id) -> u64 {
        let overdue = self
            .products
            .debts
            .values()
            .any(|d| d.person_id == person && d.overdue)
            || self
                .products
                .credit_lines
                .get(&person)
                .is_some_and(|l| l.overdue);
        match self.credit(person) {
            Some(credit) if !overdue => self.products.credit_policy.limit(credit.total()),
            _ => 0,
        }
    }

    fn ensure_line_accounts(&mut self, now: u64, person: Id, currency: Currency) {
        self.ensure_credit_accounts(now, currency);
        let mut books = self.books();
        books.ensure_account(
            now,
            line_account(person, currency),
            currency,
            account_kind::CREDIT_LINE,
            AccountFlags::CREDITS_MUST_NOT_EXCEED_DEBITS,
        );
        books.ensure_account(
            now,
            interest_account(currency),
            currency,
            account_kind::CREDIT_INTEREST,
            AccountFlags::DEBITS_MUST_NOT_EXCEED_CREDITS,
        );
        books.ensure_account(
            now,
            fee_income_account(currency),
            currency,
            account_kind::CREDIT_FEES,
            AccountFlags::DEBITS_MUST_NOT_EXCEED_CREDITS,
        );
    }

    /// Pays a trade from the line: every check first (the trade's, the line's, the
    /// funding's), so that a refusal changes nothing; then the loan into the wallet and the
    /// wallet's payment.
    fn pay_from_line(&mut self, now: u64, trade_id: Id, buyer: Id) -> Result<Outcome, Refusal> {
        let mut line = self
            .products
            .credit_lines
            .get(&buyer)
            .cloned()
            .ok_or(Refusal::CreditLineNotFound)?;
        let trade = self.payable(now, trade_id, buyer, line.limit.currency)?;
        if line.overdue {
            return Err(Refusal::CreditLineOverdue);
        }
        let amount = trade.amount.amount_minor;
        if amount > line.available() {
            return Err(Refusal::CreditLineInsufficient {
                available: line.money(line.available()),
            });
        }
        let currency = trade.amount.currency;
        if self.available(funding_account(currency)) < u128::from(amount) {
            return Err(Refusal::CreditFundingInsufficient);
        }
        let loan = Transfer::new(
            self.products.next_transfer_id(now),
            line_account(buyer, currency),
            wallet_account(buyer, currency),
            u128::from(amount),
            currency.ledger(),
            transfer_kind::CREDIT_PURCHASE,
        );
        let lent = Transfer::new(
            self.products.next_transfer_id(now),
            funding_account(currency),
            lent_account(currency),
            u128::from(amount),
            currency.ledger(),
            transfer_kind::CREDIT_LENDING,
        );
        self.transfer_all(now, vec![loan, lent])?;
        if line.owed() == 0 && line.plan.is_none() {
            // A line that owed nothing had no timer: the months since had no statement, and
            // this purchase is on next month's.
            let (year, month, _) = civil(self.products.settings.day(now));
            line.statement_day = line.statement_day.max(days_from_civil(year, month, 1));
        }
        let paid = self.pay_trade_from(now, trade_id, buyer, true);
        debug_assert!(paid.is_ok(), "a checked payment from the line: {paid:?}");
        let paid = paid?;
        if trade.escrow {
            line.escrowed.amount_minor += amount;
        } else {
            line.unbilled.amount_minor += amount;
        }
        self.save_line(now, line, None);
        Ok(paid)
    }

    fn repay_line(&mut self, now: u64, person: Id, amount: Money) -> Result<Outcome, Refusal> {
        let mut line = self
            .products
            .credit_lines
            .get(&person)
            .cloned()
            .ok_or(Refusal::CreditLineNotFound)?;
        positive(amount)?;
        if amount.currency != line.limit.currency {
            return Err(Refusal::CurrencyMismatch {
                expected: line.limit.currency,
            });
        }
        if amount.amount_minor > line.owed() {
            return Err(Refusal::RepayTooLarge {
                outstanding: line.money(line.owed()),
            });
        }
        let principal = take(&mut line, amount.amount_minor, true);
        let transfers = self.back_to_line(
            now,
            (person, amount.currency),
            (amount.amount_minor, principal),
            transfer_kind::CREDIT_REPAYMENT,
        );
        self.transfer_all(now, transfers)?;
        self.after_repayment(now, &mut line);
        Ok(self.save_line(now, line, None))
    }

    /// Money from the wallet to the line (`amount`), and the platform's lent money back to
    /// its funding for the `principal` part of it.
    fn back_to_line(
        &mut self,
        now: u64,
        (person, currency): (Id, Currency),
        (amount, principal): (u64, u64),
        kind: u16,
    ) -> Vec<Transfer> {
        let mut transfers = vec![Transfer::new(
            self.products.next_transfer_id(now),
            wallet_account(person, currency),
            line_account(person, currency),
            u128::from(amount),
            currency.ledger(),
            kind,
        )];
        if principal > 0 {
            transfers.push(Transfer::new(
                self.products.next_transfer_id(now),
                lent_account(currency),
                funding_account(currency),
                u128::from(principal),
                currency.ledger(),
                transfer_kind::CREDIT_LENDING,
            ));
        }
        transfers
    }

    /// A statement repaid in full by its due day counts as repaid on time; an overdue line
    /// whose minimum is now paid is no longer overdue (repaid late).
    fn after_repayment(&mut self, now: u64, line: &mut CreditLine) {
        let person = line.person_id;
        let Some(statement) = &mut line.statement else {
            return;
        };
        if line.overdue && statement.minimum_left.amount_minor == 0 {
            line.overdue = false;
            self.credit_event(now, person, |f: &mut Facts| {
                f.overdue = f.overdue.saturating_sub(1);
                f.repaid_late += 1;
            });
        }
        if statement.left() == 0 {
            statement.paid_at = Some(now);
            if !statement.due_passed {
                self.credit_event(now, person, |f| f.repaid_on_time += 1);
            }
        }
    }

    fn instalments(&mut self, now: u64, person: Id, periods: u8) -> Result<Outcome, Refusal> {
        let mut line = self
            .products
            .credit_lines
            .get(&person)
            .cloned()
            .ok_or(Refusal::CreditLineNotFound)?;
        let Some(per_mille) = self.products.credit_policy.instalment_fee(periods) else {
            return Err(Refusal::InstalmentsInvalid);
        };
        let currency = line.limit.currency;
        let statement = match &line.statement {
            Some(s)
                if !s.due_passed
                    && s.instalments.is_none()
                    && s.principal_left.amount_minor > 0
                    && line.plan.is_none() =>
            {
                s
            }
            _ => return Err(Refusal::InstalmentsInvalid),
        };
        let principal = statement.principal_left.amount_minor;
        // The fee, rounded half up to the cent.
        let fee = (u128::from(principal) * u128::from(per_mille) + 500) / 1000;
        let fee = u64::try_from(fee).map_err(|_| Refusal::AmountTooLarge)?;
        let mut plan = Plan {
            periods,
            periods_left: periods,
            principal_left: Money::new(principal, currency),
            fee_left: Money::new(fee, currency),
        };
        let (first, first_fee) = plan.period();
        self.charge(now, &mut line, first_fee, transfer_kind::CREDIT_FEE)?;
        plan.periods_left -= 1;
        plan.principal_left.amount_minor -= first;
        plan.fee_left.amount_minor -= first_fee;
        let statement = line.statement.as_mut().expect("checked above");
        statement.principal_left.amount_minor = first;
        statement.charges_left.amount_minor += first_fee;
        statement.charges.amount_minor += first_fee;
        statement.instalments = Some(periods);
        // The period is due in full; what the statement asked for besides still is.
        statement.minimum_left.amount_minor = statement.left();
        statement.minimum.amount_minor = statement.minimum.amount_minor.max(statement.left());
        // The charge went to `unbilled_charges`; it is this statement's.
        line.unbilled_charges.amount_minor -= first_fee;
        line.plan = (plan.periods_left > 0).then_some(plan);
        Ok(self.save_line(now, line, Some("credit_line.instalments")))
    }

    /// Interest or a fee: owed on the line, earned by the platform.
    fn charge(
        &mut self,
        now: u64,
        line: &mut CreditLine,
        amount: u64,
        kind: u16,
    ) -> Result<(), Refusal> {
        if amount == 0 {
            return Ok(());
        }
        let currency = line.limit.currency;
        let income = if kind == transfer_kind::CREDIT_FEE {
            line.fees_total.amount_minor += amount;
            fee_income_account(currency)
        } else {
            line.interest_total.amount_minor += amount;
            interest_account(currency)
        };
        let id = self.products.next_transfer_id(now);
        self.transfer(
            now,
            Transfer::new(
                id,
                line_account(line.person_id, currency),
                income,
                u128::from(amount),
                currency.ledger(),
                kind,
            ),
        )?;
        line.unbilled_charges.amount_minor += amount;
        Ok(())
    }

    /// The line's timer: statements due (one per month passed), a due day, interest.
    pub(crate) fn credit_line_due(&mut self, now: u64, person: Id) {
        let mut line = self.products.credit_lines[&person].clone();
        let today = self.products.settings.day(now);
        // Interest first, up to today, on what was late before today's events.
        let days = today - line.interest_through;
        if days > 0 {
            let base = line.late.amount_minor
                + if line.overdue {
                    line.statement
                        .as_ref()
                        .map_or(0, |s| s.charges_left.amount_minor)
                } else {
                    0
                };
            let interest = u128::from(base)
                * u128::from(self.products.credit_policy.daily_interest_per_10k)
                * u128::try_from(days).unwrap_or(0);
            let interest = u64::try_from((interest + 5_000) / 10_000).unwrap_or(u64::MAX);
            self.charge(now, &mut line, interest, transfer_kind::CREDIT_INTEREST)
                .expect("a line account takes any charge");
            line.interest_through = today;
        }
        let mut next_statement = first_of_next_month(line.statement_day);
        while next_statement <= today {
            self.make_statement(now, &mut line, next_statement);
            next_statement = first_of_next_month(next_statement);
        }
        if let Some(statement) = &mut line.statement
            && !statement.due_passed
            && now >= statement.due_at
        {
            statement.due_passed = true;
            if statement.left() > 0 {
                line.late = statement.principal_left;
                line.interest_through = line
                    .interest_through
                    .max(self.products.settings.day(statement.due_at));
                if statement.minimum_left.amount_minor > 0 && !line.overdue {
                    line.overdue = true;
                    self.credit_event(now, person, |f| f.overdue += 1);
                }
            }
        }
        self.save_line(now, line, None);
    }

    /// The month's statement: the unpaid rest of the last one, what was bought and charged
    /// since, and the plan's next period.
    fn make_statement(&mut self, now: u64, line: &mut CreditLine, day: i64) {
        line.statement_day = day;
        // The limit follows the score (never below what is used).
        let earned = self.earned_limit(line.person_id);
        line.limit.amount_minor = earned.max(line.used().min(line.limit.amount_minor));
        let (carried_principal, carried_charges, carried_minimum) = match line.statement.take() {
            Some(s) => (
                s.principal_left.amount_minor,
                s.charges_left.amount_minor,
                s.minimum_left.amount_minor,
            ),
            None => (0, 0, 0),
        };
        let (mut period, mut period_fee) = (0, 0);
        if let Some(mut plan) = line.plan.take() {
            (period, period_fee) = plan.period();
            plan.periods_left -= 1;
            plan.principal_left.amount_minor -= period;
            plan.fee_left.amount_minor -= period_fee;
            line.plan = (plan.periods_left > 0).then_some(plan);
            self.charge(now, line, period_fee, transfer_kind::CREDIT_FEE)
                .expect("a line account takes any charge");
        }
        let principal = carried_principal + line.unbilled.amount_minor + period;
        let charges = carried_charges + line.unbilled_charges.amount_minor;
        line.unbilled.amount_minor = 0;
        line.unbilled_charges.amount_minor = 0;
        let total = principal + charges;
        if total == 0 {
            return;
        }
        let base = total - carried_minimum.min(total) - (period + period_fee).min(total);
        let minimum = (base * self.products.credit_policy.minimum_per_mille).div_ceil(1000)
            + period
            + period_fee;
        let minimum = (minimum + carried_minimum).min(total);
        let currency = line.limit.currency;
        let due_day = day + i64::from(line.due_day) - 1;
        let offset = self.products.settings.day_offset_seconds;
        line.statement = Some(Statement {
            id: self.products.next_id(now),
            person_id: line.person_id,
            day,
            due_at: crate::merchant::day_start(due_day + 1, offset),
            principal: Money::new(principal, currency),
            charges: Money::new(charges, currency),
            minimum: Money::new(minimum, currency),
            principal_left: Money::new(principal, currency),
            charges_left: Money::new(charges, currency),
            minimum_left: Money::new(minimum, currency),
            due_passed: false,
            instalments: None,
            paid_at: None,
        });
        self.products.announce(
            line.person_id,
            "credit_line.statement",
            &Outcome::CreditLine(line.clone()),
            now,
        );
    }

    /// A refund of a trade paid from the line reached the buyer's wallet: it goes on to the
    /// line, as far as principal for it is owed (what was repaid already stays in the
    /// wallet). A purchase from escrow that the buyer received joins the next statement.
    pub(crate) fn credit_trade_changed(&mut self, now: u64, trade: &mut Trade) {
        let Some(credit) = &mut trade.credit else {
            return;
        };
        let buyer = trade
            .buyer_id
            .expect("a trade paid from the line has a buyer");
        let Some(mut line) = self.products.credit_lines.get(&buyer).cloned() else {
            return;
        };
        let due = trade.refunded.amount_minor - credit.returned.amount_minor;
        let in_escrow = trade.escrow && !credit.billed;
        let received = in_escrow && trade.status == TradeStatus::TradeFinished;
        if due == 0 && !received {
            return;
        }
        credit.returned.amount_minor += due;
        if due > 0 {
            let principal = if in_escrow {
                let back = due.min(line.escrowed.amount_minor);
                line.escrowed.amount_minor -= back;
                back
            } else {
                take(&mut line, due, false)
            };
            if principal > 0 {
                let back = self.back_to_line(
                    now,
                    (buyer, line.limit.currency),
                    (principal, principal),
                    transfer_kind::CREDIT_REFUND,
                );
                self.transfer_all(now, back)
                    .expect("a refund just reached the wallet and the line owes it");
                self.after_repayment(now, &mut line);
            }
        }
        if received {
            let bought = trade.amount.amount_minor - trade.refunded.amount_minor;
            let bought = bought.min(line.escrowed.amount_minor);
            line.escrowed.amount_minor -= bought;
            line.unbilled.amount_minor += bought;
            credit.billed = true;
        }
        self.save_line(now, line, None);
    }

    pub(crate) fn save_line(
        &mut self,
        now: u64,
        mut line: CreditLine,
        topic: Option<&str>,
    ) -> Outcome {
        line.updated_at = now;
        line.next_at = self.next_line_event(&line, now);
        self.products.put_credit_line(line.clone());
        let outcome = Outcome::CreditLine(line);
        if let Some(topic) = topic {
            let Outcome::CreditLine(line) = &outcome else {
                unreachable!("just built")
            };
            self.products.announce(line.person_id, topic, &outcome, now);
        }
        outcome
    }

    /// The next time the line has something to do: the next day's interest while anything
    /// is late, its statement's due day, the next statement day while anything is owed.
    fn next_line_event(&self, line: &CreditLine, now: u64) -> Option<u64> {
        let settings = &self.products.settings;
        let offset = settings.day_offset_seconds;
        let tomorrow = crate::merchant::day_start(settings.day(now) + 1, offset);
        let mut next: Option<u64> = None;
        let mut at = |time: u64| next = Some(next.map_or(time, |n| n.min(time)));
        if line.late.amount_minor > 0 || line.overdue {
            at(tomorrow);
        }
        if let Some(s) = &line.statement
            && !s.due_passed
            && s.left() > 0
        {
            at(s.due_at);
        }
        if line.owed() > 0 || line.plan.is_some() {
            at(crate::merchant::day_start(
                first_of_next_month(line.statement_day),
                offset,
            ));
        }
        next
    }
}

/// Takes `amount` off what the line owes: a repayment pays the statement's charges, its
/// principal, then what was charged and bought since, then the plan's principal, then what
/// is in escrow (`repayment`); a refund lowers principal only, most recent first. The
/// principal part taken.
fn take(line: &mut CreditLine, amount: u64, repayment: bool) -> u64 {
    let mut left = amount;
    let mut principal = 0;
    let mut from = |field: &mut Money, is_principal: bool| {
        let part = left.min(field.amount_minor);
        field.amount_minor -= part;
        left -= part;
        if is_principal {
            principal += part;
        }
    };
    if repayment {
        if let Some(s) = &mut line.statement {
            from(&mut s.charges_left, false);
            from(&mut s.principal_left, true);
            s.minimum_left.amount_minor = s.minimum_left.amount_minor.saturating_sub(amount);
        }
        from(&mut line.unbilled_charges, false);
        from(&mut line.unbilled, true);
        if let Some(plan) = &mut line.plan {
            from(&mut plan.principal_left, true);
            if plan.principal_left.amount_minor == 0 {
                // Paid off early: the periods not billed bring no fee.
                line.plan = None;
            }
        }
        from(&mut line.escrowed, true);
    } else {
        from(&mut line.unbilled, true);
        if let Some(plan) = &mut line.plan {
            from(&mut plan.principal_left, true);
            if plan.principal_left.amount_minor == 0 {
                line.plan = None;
            }
        }
        if let Some(s) = &mut line.statement {
            from(&mut s.principal_left, true);
            s.minimum_left.amount_minor = s.minimum_left.amount_minor.min(s.left());
        }
    }
    // Late principal is the statement's, as far as it is still owed.
    let on_statement = line
        .statement
        .as_ref()
        .map_or(0, |s| s.principal_left.amount_minor);
    line.late.amount_minor = line.late.amount_minor.min(on_statement);
    principal
}

/// The 1st of the month after the one `day` falls in.
pub fn first_of_next_month(day: i64) -> i64 {
    let (year, month, _) = civil(day);
    if month == 12 {
        days_from_civil(year + 1, 1, 1)
    } else {
        days_from_civil(year, month + 1, 1)
    }
}

/// (year, month, day of month) of a day since 1970-01-01 (Howard Hinnant's algorithm).
pub fn civil(day: i64) -> (i64, u32, u32) {
    let z = day + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m as u32, d as u32)
}

/// Days since 1970-01-01 of a date (the inverse of `civil`).
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
#[allow(
    clippy::inconsistent_digit_grouping,
    reason = "amounts in fen read as yuan_fen: 500_00 is 500.00 yuan"
)]
mod tests {
    use super::*;

    #[test]
    fn the_calendar_goes_both_ways() {
        assert_eq!(civil(0), (1970, 1, 1));
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        for day in -800_000..800_000 {
            let (y, m, d) = civil(day);
            assert_eq!(days_from_civil(y, m, d), day);
        }
        assert_eq!(
            civil(first_of_next_month(days_from_civil(2026, 12, 31))),
            (2027, 1, 1)
        );
        assert_eq!(
            civil(first_of_next_month(days_from_civil(2024, 2, 29))),
            (2024, 3, 1)
        );
    }

    #[test]
    fn the_limit_follows_the_score_within_the_range() {
        let policy = CreditPolicy::default();
        assert_eq!(policy.check(), Ok(()));
        let line_limit = |score| policy.limit(score);
        assert_eq!(line_limit(599), 0);
        assert_eq!(line_limit(600), 500_00);
        assert_eq!(line_limit(650), 7_500_00);
        assert_eq!(line_limit(950), 49_500_00);
        let mut last = 0;
        for score in 350..=950 {
            let limit = line_limit(score);
            assert!(limit >= last, "never lower for a higher score");
            assert!(limit == 0 || (500_00..=50_000_00).contains(&limit));
            last = limit;
        }
    }

    #[test]
    fn a_policy_out_of_bounds_is_refused_with_the_field_named() {
        type Edit = fn(&mut CreditPolicy);
        let cases: [(Edit, &str); 6] = [
            (|p| p.line_score_min = 300, "line_score_min"),
            (|p| p.line_base.amount_minor = 99_99, "line_base"),
            (
                |p| p.line_per_point.amount_minor = 60_000_00,
                "line_per_point",
            ),
            (|p| p.daily_interest_per_10k = 11, "daily_interest_per_10k"),
            (|p| p.instalments[1].periods = 3, "instalments"),
            (|p| p.debt_days = 0, "debt_days"),
        ];
        for (edit, field) in cases {
            let mut policy = CreditPolicy::default();
            edit(&mut policy);
            let why = policy.check().expect_err(field);
            assert!(why.contains(field), "{why}");
        }
    }
}
