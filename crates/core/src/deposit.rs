//! Deposit-free holds (Alipay's fund authorisation with a credit leg, `products.md` §9): a
//! merchant asks to hold a deposit for a rental; the person authorises it; if their credit
//! score reaches the merchant's threshold the deposit is waived (nothing is held, the
//! obligation is recorded), otherwise the amount is frozen in their wallet with a pending
//! transfer to the merchant. At the end the merchant unfreezes it (the pending transfer is
//! voided) or charges part or all of it (posted; the rest goes back in the same step).
//!
//! Charging a waived deposit takes what the person's wallet can pay; the rest the platform
//! pays the merchant on the person's behalf and the person owes it: a **debt**, an entry of
//! the person's receivable account (the platform's claim on them), due `DEBT_DAYS` later.
//!
//! **The platform's money.** What the platform lends is its own: an operator sets money aside
//! from the platform's bank account into the credit funding account (`AddFunding`). Lending
//! moves funding to the lent account in the same linked step that pays the merchant from the
//! person's receivable; a repayment moves it back. So the funding never goes below zero, the
//! lent account always equals the sum of the receivables, and a loan the funding cannot cover
//! is refused (`credit_funding_insufficient`).
//! Repaid by the due day it counts as repaid on time in the credit score; past it, the debt
//! is overdue (the score counts it at once) until repaid, late. A person with an overdue debt
//! is not waived a deposit.

use formica_ledger::{AccountFlags, Transfer, TransferFlags};
use serde::{Deserialize, Serialize};

use crate::Core;
use crate::credit::{CREDIT_CURRENCY, Facts};
use crate::merchant::merchant_account;
use crate::money::{Currency, Money};
use crate::products::{Id, Outcome, Refusal, account_id, account_kind, transfer_kind};
use crate::wallet::{positive, wallet_account};

/// Days a debt from a charged waived deposit may wait before it is overdue, unless the
/// operator's credit policy says otherwise (`CreditPolicy::debt_days`).
pub const DEBT_DAYS: u64 = 7;

const DAY_NS: u64 = 86_400 * crate::products::NANOS_PER_SECOND;

/// A person's receivable account: what they owe the platform (debits less credits).
pub fn receivable_account(person: Id, currency: Currency) -> u128 {
    account_id(person, account_kind::RECEIVABLE, currency)
}

/// The platform's credit funding account in `currency`.
pub fn funding_account(currency: Currency) -> u128 {
    account_id(
        crate::products::PLATFORM,
        account_kind::CREDIT_FUNDING,
        currency,
    )
}

/// The platform's lent account in `currency`: the sum of its receivables.
pub fn lent_account(currency: Currency) -> u128 {
    account_id(
        crate::products::PLATFORM,
        account_kind::CREDIT_LENT,
        currency,
    )
}

/// The platform's credit money in one currency.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CreditFunding {
    /// Set aside and not lent: what can still be lent.
    pub available: Money,
    /// Lent out and not yet repaid.
    pub lent: Money,
}

/// Where a hold stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum HoldStatus {
    /// Asked for; waiting for the person to authorise it.
    Requested,
    /// Authorised and waived by the person's credit: nothing held.
    Waived,
    /// Authorised and frozen in the person's wallet.
    Frozen,
    /// Over: charged (in part or all), unfrozen, or never authorised in time.
    Closed,
}

/// A deposit hold.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Hold {
    /// Its id.
    pub id: Id,
    /// The merchant holding it.
    pub merchant_id: Id,
    /// The person whose deposit it is.
    pub person_id: Id,
    /// The merchant's order number.
    pub out_order_no: String,
    /// What it is for.
    pub title: String,
    /// The deposit.
    pub amount: Money,
    /// The score at or above which the merchant waives the deposit (none: never waived).
    pub threshold: Option<u16>,
    /// Where it stands.
    pub status: HoldStatus,
    /// The part waived by credit (all or nothing).
    pub credit_amount: Money,
    /// The part really frozen.
    pub fund_amount: Money,
    /// Charged to the person in the end.
    pub charged: Money,
    /// Of the charge, what the person's wallet could not pay: their debt.
    pub debt_id: Option<Id>,
    /// The books' pending transfer that freezes the money (a 128-bit id, in decimal).
    #[serde(with = "decimal_id", default)]
    #[schema(value_type = Option<String>)]
    pub pending: Option<u128>,
    /// Why it closed: `charged`, `unfrozen` or `expired`.
    pub close_reason: Option<String>,
    /// When it was asked for.
    pub created_at: u64,
    /// Changed last.
    pub updated_at: u64,
    /// A requested hold not authorised by then is closed.
    pub deadline: Option<u64>,
    /// The merchant's number for the freeze, when it came through the gateway's
    /// `alipay.fund.auth.order.freeze` (a retry with it gets the same answer).
    #[serde(default)]
    pub out_request_no: Option<String>,
    /// The gateway app that froze it, when one did.
    #[serde(default)]
    pub app_id: Option<String>,
    /// Where the gateway notifies the merchant that the person authorised it.
    #[serde(default)]
    pub notify_url: Option<String>,
    /// The merchant's number for the charge, when it gave one (the gateway's `out_trade_no`).
    #[serde(default)]
    pub charge_no: Option<String>,
    /// Given back while the hold stayed open (partial unfreezes); none for nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unfrozen: Option<Money>,
}

impl Hold {
    /// What is still authorised: the deposit less what was given back in part.
    pub fn rest(&self) -> u64 {
        self.amount.amount_minor - self.unfrozen.map_or(0, |m| m.amount_minor)
    }
}

/// What a person owes the platform for a charged deposit their wallet could not pay.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Debt {
    /// Its id.
    pub id: Id,
    /// Who owes it.
    pub person_id: Id,
    /// The hold it came from.
    pub hold_id: Id,
    /// How much was owed.
    pub amount: Money,
    /// Repaid so far.
    pub repaid: Money,
    /// When it is due.
    pub due_at: u64,
    /// Whether the due day passed before it was repaid.
    pub overdue: bool,
    /// When it was repaid in full.
    pub repaid_at: Option<u64>,
    /// When it arose.
    pub created_at: u64,
}

impl Debt {
    /// What is left to repay.
    pub fn outstanding(&self) -> u64 {
        self.amount.amount_minor - self.repaid.amount_minor
    }
}

/// A deposit a merchant holds and the person authorises in the same step
/// (`HoldCommand::Freeze`): with their payment code at a counter, or with their PIN on the
/// platform's page for an online order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewFreeze {
    /// The merchant.
    pub merchant_id: Id,
    /// The person.
    pub person_id: Id,
    /// The payment code the counter scanned, used up by this hold; none when the person
    /// approved on the platform's page (the edge checked their PIN).
    pub code: Option<crate::merchant::CodeUse>,
    /// The merchant's order number.
    pub out_order_no: String,
    /// The merchant's number for this freeze.
    pub out_request_no: String,
    /// What it is for.
    pub title: String,
    /// The deposit.
    pub amount: Money,
    /// Waived at or above this score.
    pub threshold: Option<u16>,
    /// The gateway app that asked, and where it hears of the authorisation.
    pub notify: Option<(String, String)>,
}

/// What merchants and people do with holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HoldCommand {
    /// A merchant asks to hold a deposit.
    Request {
        /// The merchant.
        merchant_id: Id,
        /// The person.
        person_id: Id,
        /// The merchant's order number.
        out_order_no: String,
        /// What it is for.
        title: String,
        /// The deposit.
        amount: Money,
        /// Waived at or above this score.
        threshold: Option<u16>,
    },
    /// A merchant holds a deposit that the person authorises in the same step (the gateway's
    /// `alipay.fund.auth.order.freeze` at a counter, `app.freeze` online).
    Freeze(Box<NewFreeze>),
    /// The person authorises it: waived or frozen.
    Authorize {
        /// The hold.
        hold_id: Id,
        /// The person.
        person_id: Id,
    },
    /// The merchant charges part or all of it; the rest is released. The hold closes.
    Charge {
        /// The hold.
        hold_id: Id,
        /// The merchant.
        merchant_id: Id,
        /// How much.
        amount: Money,
        /// The merchant's number for the charge (the gateway's `out_trade_no`), if it has one.
        out_trade_no: Option<String>,
    },
    /// The merchant releases all of it (or withdraws a request), and the hold closes; or
    /// releases part of an authorised deposit, and the rest stays held.
    Unfreeze {
        /// The hold.
        hold_id: Id,
        /// The merchant.
        merchant_id: Id,
        /// How much: none for all of it.
        amount: Option<Money>,
    },
    /// An operator sets the platform's money aside for credit, from its bank account.
    AddFunding {
        /// How much.
        amount: Money,
    },
    /// The person repays (part of) a debt from their wallet.
    Repay {
        /// The debt.
        debt_id: Id,
        /// The person.
        person_id: Id,
        /// How much.
        amount: Money,
    },
}

impl Core {
    pub(crate) fn apply_hold(
        &mut self,
        now: u64,
        command: &HoldCommand,
    ) -> Result<Outcome, Refusal> {
        match command {
            HoldCommand::Request {
                merchant_id,
                person_id,
                out_order_no,
                title,
                amount,
                threshold,
            } => {
                let hold = self.new_hold(
                    now,
                    (*merchant_id, *person_id),
                    (out_order_no, title),
                    *amount,
                    *threshold,
                )?;
                Ok(self.save_hold(now, hold, "hold.requested"))
            }
            HoldCommand::Freeze(freeze) => {
                let NewFreeze {
                    merchant_id,
                    person_id,
                    code,
                    out_order_no,
                    out_request_no,
                    title,
                    amount,
                    threshold,
                    notify,
                } = freeze.as_ref();
                if let Some(code) = code {
                    self.check_code(now, code)?;
                }
                let mut hold = self.new_hold(
                    now,
                    (*merchant_id, *person_id),
                    (out_order_no, title),
                    *amount,
                    *threshold,
                )?;
                hold.out_request_no = Some(crate::trade::clip(out_request_no));
                if let Some((app_id, url)) = notify {
                    hold.app_id = Some(crate::trade::clip(app_id));
                    hold.notify_url = Some(url.clone());
                }
                self.authorize_hold(now, &mut hold)?;
                if let Some(code) = code {
                    self.products.use_code(code);
                }
                Ok(self.save_hold(now, hold, "hold.authorized"))
            }
            HoldCommand::Authorize { hold_id, person_id } => {
                let mut hold = self.hold_for(*hold_id, |h| h.person_id == *person_id)?;
                expect(&hold, HoldStatus::Requested)?;
                self.authorize_hold(now, &mut hold)?;
                Ok(self.save_hold(now, hold, "hold.authorized"))
            }
            HoldCommand::Charge {
                hold_id,
                merchant_id,
                amount,
                out_trade_no,
            } => {
                let mut hold = self.hold_for(*hold_id, |h| h.merchant_id == *merchant_id)?;
                positive(*amount)?;
                if amount.currency != hold.amount.currency {
                    return Err(Refusal::CurrencyMismatch {
                        expected: hold.amount.currency,
                    });
                }
                if amount.amount_minor > hold.rest() {
                    return Err(Refusal::ChargeTooLarge {
                        deposit: Money::new(hold.rest(), hold.amount.currency),
                    });
                }
                match hold.status {
                    HoldStatus::Frozen => self.charge_frozen(now, &mut hold, *amount)?,
                    HoldStatus::Waived => self.charge_waived(now, &mut hold, *amount)?,
                    _ => {
                        return Err(Refusal::HoldStatusInvalid {
                            status: hold.status,
                        });
                    }
                }
                hold.charged = *amount;
                hold.charge_no = out_trade_no.as_deref().map(crate::trade::clip);
                hold.status = HoldStatus::Closed;
                hold.close_reason = Some("charged".to_owned());
                Ok(self.save_hold(now, hold, "hold.charged"))
            }
            HoldCommand::Unfreeze {
                hold_id,
                merchant_id,
                amount,
            } => {
                let mut hold = self.hold_for(*hold_id, |h| h.merchant_id == *merchant_id)?;
                if let Some(part) = amount {
                    if part.currency != hold.amount.currency {
                        return Err(Refusal::CurrencyMismatch {
                            expected: hold.amount.currency,
                        });
                    }
                    if part.amount_minor > hold.rest() {
                        return Err(Refusal::ChargeTooLarge {
                            deposit: Money::new(hold.rest(), hold.amount.currency),
                        });
                    }
                    if part.amount_minor < hold.rest() {
                        self.unfreeze_part(now, &mut hold, *part)?;
                        return Ok(self.save_hold(now, hold, "hold.unfrozen_in_part"));
                    }
                    // All that is left: as a whole unfreeze.
                }
                if let Some(pending) = hold.pending {
                    let id = self.products.next_transfer_id(now);
                    self.transfer(now, Transfer::void(id, pending))?;
                }
                hold.status = HoldStatus::Closed;
                hold.close_reason = Some("unfrozen".to_owned());
                hold.deadline = None;
                Ok(self.save_hold(now, hold, "hold.unfrozen"))
            }
            HoldCommand::Repay {
                debt_id,
                person_id,
                amount,
            } => self.repay(now, *debt_id, *person_id, *amount),
            HoldCommand::AddFunding { amount } => {
                positive(*amount)?;
                let currency = amount.currency;
                self.ensure_credit_accounts(now, currency);
                let id = self.products.next_transfer_id(now);
                self.transfer(
                    now,
                    Transfer::new(
                        id,
                        crate::wallet::clearing_account(currency),
                        funding_account(currency),
                        u128::from(amount.amount_minor),
                        currency.ledger(),
                        transfer_kind::CREDIT_FUNDING,
                    ),
                )?;
                Ok(Outcome::CreditFunding(credit_funding(self, currency)))
            }
        }
    }

    /// A new requested hold, checked, not yet saved.
    fn new_hold(
        &mut self,
        now: u64,
        (merchant_id, person_id): (Id, Id),
        (out_order_no, title): (&str, &str),
        amount: Money,
        threshold: Option<u16>,
    ) -> Result<Hold, Refusal> {
        positive(amount)?;
        let merchant = self.merchant(merchant_id)?;
        if amount.currency != merchant.currency {
            return Err(Refusal::CurrencyMismatch {
                expected: merchant.currency,
            });
        }
        if threshold
            .is_some_and(|t| !(crate::credit::SCORE_MIN..=crate::credit::SCORE_MAX).contains(&t))
        {
            return Err(Refusal::ThresholdInvalid);
        }
        if !self.products.people.contains_key(&person_id) {
            return Err(Refusal::PayeeNotFound);
        }
        let out_order_no = crate::trade::clip(out_order_no);
        if self
            .products
            .hold_numbers
            .contains_key(&(merchant_id, out_order_no.clone()))
        {
            return Err(Refusal::DuplicateOutTradeNo);
        }
        let id = self.products.next_id(now);
        let zero = Money::new(0, amount.currency);
        let hold = Hold {
            id,
            merchant_id,
            person_id,
            out_order_no,
            title: crate::trade::clip(title),
            amount,
            threshold,
            status: HoldStatus::Requested,
            credit_amount: zero,
            fund_amount: zero,
            charged: zero,
            debt_id: None,
            pending: None,
            close_reason: None,
            created_at: now,
            updated_at: now,
            deadline: Some(now.saturating_add(self.products.settings.pay_timeout_ns)),
            out_request_no: None,
            app_id: None,
            notify_url: None,
            charge_no: None,
            unfrozen: None,
        };
        Ok(hold)
    }

    /// The person's authorisation: waived by their score, or frozen in their wallet.
    fn authorize_hold(&mut self, now: u64, hold: &mut Hold) -> Result<(), Refusal> {
        let person_id = hold.person_id;
        let score = self.credit(person_id).map(|c| c.total());
        let overdue = self
            .products
            .debts
            .values()
            .any(|d| d.person_id == person_id && d.overdue);
        let waived = !overdue && matches!((hold.threshold, score), (Some(t), Some(s)) if s >= t);
        if waived {
            hold.status = HoldStatus::Waived;
            hold.credit_amount = hold.amount;
        } else {
            let currency = hold.amount.currency;
            let id = self.products.next_transfer_id(now);
            let freeze = Transfer::new(
                id,
                wallet_account(person_id, currency),
                merchant_account(hold.merchant_id, currency),
                u128::from(hold.amount.amount_minor),
                currency.ledger(),
                transfer_kind::DEPOSIT,
            )
            .with_flags(TransferFlags::PENDING);
            self.person(person_id, Some(currency))?;
            self.transfer(now, freeze)?;
            hold.status = HoldStatus::Frozen;
            hold.fund_amount = hold.amount;
            hold.pending = Some(id);
        }
        hold.deadline = None;
        Ok(())
    }

    /// Gives back `part` (less than the rest) of an authorised deposit. Frozen money is
    /// re-frozen as one pending transfer for what stays: the old one voided and a new one made
    /// in the same command (the books have no partial void).
    fn unfreeze_part(&mut self, now: u64, hold: &mut Hold, part: Money) -> Result<(), Refusal> {
        positive(part)?;
        if !matches!(hold.status, HoldStatus::Frozen | HoldStatus::Waived) {
            return Err(Refusal::HoldStatusInvalid {
                status: hold.status,
            });
        }
        if let Some(pending) = hold.pending {
            let currency = hold.amount.currency;
            let stays = hold.rest() - part.amount_minor;
            let void = Transfer::void(self.products.next_transfer_id(now), pending);
            let id = self.products.next_transfer_id(now);
            let freeze = Transfer::new(
                id,
                wallet_account(hold.person_id, currency),
                merchant_account(hold.merchant_id, currency),
                u128::from(stays),
                currency.ledger(),
                transfer_kind::DEPOSIT,
            )
            .with_flags(TransferFlags::PENDING);
            // Linked: both or neither, so a refusal changes nothing.
            self.transfer_all(now, vec![void, freeze])?;
            hold.pending = Some(id);
        }
        let before = hold.unfrozen.map_or(0, |m| m.amount_minor);
        hold.unfrozen = Some(Money::new(before + part.amount_minor, part.currency));
        Ok(())
    }

    /// The platform's funding and lent accounts (and the bank's clearing account).
    pub(crate) fn ensure_credit_accounts(&mut self, now: u64, currency: Currency) {
        let mut books = self.books();
        books.ensure_account(
            now,
            crate::wallet::clearing_account(currency),
            currency,
            account_kind::BANK_CLEARING,
            AccountFlags::CREDITS_MUST_NOT_EXCEED_DEBITS,
        );
        books.ensure_account(
            now,
            funding_account(currency),
            currency,
            account_kind::CREDIT_FUNDING,
            AccountFlags::DEBITS_MUST_NOT_EXCEED_CREDITS,
        );
        books.ensure_account(
            now,
            lent_account(currency),
            currency,
            account_kind::CREDIT_LENT,
            AccountFlags::DEBITS_MUST_NOT_EXCEED_CREDITS,
        );
    }

    /// Posts `amount` of the frozen deposit to the merchant; the rest returns to the wallet.
    fn charge_frozen(&mut self, now: u64, hold: &mut Hold, amount: Money) -> Result<(), Refusal> {
        let pending = hold
            .pending
            .expect("a frozen hold has its pending transfer");
        let post = Transfer::post(
            self.products.next_transfer_id(now),
            pending,
            u128::from(amount.amount_minor),
        );
        self.take_takings(
            now,
            hold.merchant_id,
            amount.currency,
            vec![post],
            amount.amount_minor,
        )?;
        Ok(())
    }

    /// The person's wallet pays what it can of a waived deposit's charge; the platform pays
    /// the rest on their behalf, and the person owes it.
    fn charge_waived(&mut self, now: u64, hold: &mut Hold, amount: Money) -> Result<(), Refusal> {
        let currency = amount.currency;
        let wallet = wallet_account(hold.person_id, currency);
        let from_wallet = u64::try_from(self.available(wallet))
            .unwrap_or(u64::MAX)
            .min(amount.amount_minor);
        let owed = amount.amount_minor - from_wallet;
        let merchant = merchant_account(hold.merchant_id, currency);
        let mut transfers = Vec::new();
        if from_wallet > 0 {
            transfers.push(Transfer::new(
                self.products.next_transfer_id(now),
                wallet,
                merchant,
                u128::from(from_wallet),
                currency.ledger(),
                transfer_kind::DEPOSIT,
            ));
        }
        if owed > 0 {
            let receivable = receivable_account(hold.person_id, currency);
            // Refused before anything is created, so that a refusal changes nothing.
            if self.available(funding_account(currency)) < u128::from(owed) {
                return Err(Refusal::CreditFundingInsufficient);
            }
            self.books().ensure_account(
                now,
                receivable,
                currency,
                account_kind::RECEIVABLE,
                AccountFlags::CREDITS_MUST_NOT_EXCEED_DEBITS,
            );
            transfers.push(Transfer::new(
                self.products.next_transfer_id(now),
                receivable,
                merchant,
                u128::from(owed),
                currency.ledger(),
                transfer_kind::DEPOSIT_DEBT,
            ));
            transfers.push(Transfer::new(
                self.products.next_transfer_id(now),
                funding_account(currency),
                lent_account(currency),
                u128::from(owed),
                currency.ledger(),
                transfer_kind::CREDIT_LENDING,
            ));
        }
        self.take_takings(
            now,
            hold.merchant_id,
            currency,
            transfers,
            amount.amount_minor,
        )?;
        if owed > 0 {
            let id = self.products.next_id(now);
            let debt = Debt {
                id,
                person_id: hold.person_id,
                hold_id: hold.id,
                amount: Money::new(owed, currency),
                repaid: Money::new(0, currency),
                due_at: now.saturating_add(self.products.credit_policy.debt_days * DAY_NS),
                overdue: false,
                repaid_at: None,
                created_at: now,
            };
            hold.debt_id = Some(id);
            self.products.put_debt(debt.clone());
            self.products
                .announce(hold.person_id, "debt.created", &Outcome::Debt(debt), now);
        }
        Ok(())
    }

    fn repay(&mut self, now: u64, id: Id, person: Id, amount: Money) -> Result<Outcome, Refusal> {
        let mut debt = self
            .products
            .debts
            .get(&id)
            .filter(|d| d.person_id == person)
            .cloned()
            .ok_or(Refusal::DebtNotFound)?;
        positive(amount)?;
        if amount.currency != debt.amount.currency {
            return Err(Refusal::CurrencyMismatch {
                expected: debt.amount.currency,
            });
        }
        if amount.amount_minor > debt.outstanding() {
            return Err(Refusal::RepayTooLarge {
                outstanding: Money::new(debt.outstanding(), amount.currency),
            });
        }
        let currency = amount.currency;
        let repayment = Transfer::new(
            self.products.next_transfer_id(now),
            wallet_account(person, currency),
            receivable_account(person, currency),
            u128::from(amount.amount_minor),
            currency.ledger(),
            transfer_kind::DEBT_REPAYMENT,
        );
        let back = Transfer::new(
            self.products.next_transfer_id(now),
            lent_account(currency),
            funding_account(currency),
            u128::from(amount.amount_minor),
            currency.ledger(),
            transfer_kind::CREDIT_LENDING,
        );
        self.transfer_all(now, vec![repayment, back])?;
        debt.repaid.amount_minor += amount.amount_minor;
        if debt.outstanding() == 0 {
            debt.repaid_at = Some(now);
            let overdue = debt.overdue;
            self.credit_event(now, person, |f: &mut Facts| {
                if overdue {
                    f.overdue = f.overdue.saturating_sub(1);
                    f.repaid_late += 1;
                } else {
                    f.repaid_on_time += 1;
                }
            });
        }
        self.products.put_debt(debt.clone());
        Ok(Outcome::Debt(debt))
    }

    /// A requested hold not authorised in time closes; a debt past its due day is overdue.
    pub(crate) fn hold_due(&mut self, now: u64, id: Id) {
        let mut hold = self.products.holds[&id].clone();
        hold.status = HoldStatus::Closed;
        hold.close_reason = Some("expired".to_owned());
        hold.deadline = None;
        self.save_hold(now, hold, "hold.closed");
    }

    pub(crate) fn debt_due(&mut self, now: u64, id: Id) {
        let mut debt = self.products.debts[&id].clone();
        debt.overdue = true;
        let person = debt.person_id;
        self.products.put_debt(debt);
        self.credit_event(now, person, |f| f.overdue += 1);
    }

    fn hold_for(&self, id: Id, party: impl Fn(&Hold) -> bool) -> Result<Hold, Refusal> {
        self.products
            .holds
            .get(&id)
            .filter(|h| party(h))
            .cloned()
            .ok_or(Refusal::HoldNotFound)
    }

    fn save_hold(&mut self, now: u64, mut hold: Hold, topic: &str) -> Outcome {
        hold.updated_at = now;
        self.products.put_hold(hold.clone());
        let owner = self
            .products
            .merchants
            .get(&hold.merchant_id)
            .map_or(hold.merchant_id, |m| m.owner_id);
        let outcome = Outcome::Hold(hold);
        let Outcome::Hold(hold) = &outcome else {
            unreachable!("just built")
        };
        self.products
            .announce_to(&[(owner, topic), (hold.person_id, topic)], &outcome, now);
        // The gateway's asynchronous notification that the person authorised it.
        if hold.notify_url.is_some() && topic == "hold.authorized" {
            self.products
                .announce(hold.merchant_id, crate::trade::NOTIFY_TOPIC, &outcome, now);
        }
        outcome
    }
}

fn expect(hold: &Hold, status: HoldStatus) -> Result<(), Refusal> {
    if hold.status == status {
        Ok(())
    } else {
        Err(Refusal::HoldStatusInvalid {
            status: hold.status,
        })
    }
}

/// What a person owes in all, in the credit currency: their receivable's balance.
pub fn owed(core: &Core, person: Id) -> u128 {
    core.ledger()
        .account(receivable_account(person, CREDIT_CURRENCY))
        .map_or(0, |a| a.debits_posted.saturating_sub(a.credits_posted))
}

/// The platform's credit funding in `currency`, from the books.
pub fn credit_funding(core: &Core, currency: Currency) -> CreditFunding {
    let ledger = core.ledger();
    CreditFunding::from_accounts(
        currency,
        ledger.account(funding_account(currency)),
        ledger.account(lent_account(currency)),
    )
}

impl CreditFunding {
    /// From the funding and lent accounts (None where one was never made), wherever they
    /// were read: the core's books or the store.
    pub fn from_accounts(
        currency: Currency,
        funding: Option<&formica_ledger::Account>,
        lent: Option<&formica_ledger::Account>,
    ) -> CreditFunding {
        let balance = |account: Option<&formica_ledger::Account>| {
            account.map_or(0, |a| {
                u64::try_from(a.credits_posted.saturating_sub(a.debits_posted)).unwrap_or(u64::MAX)
            })
        };
        CreditFunding {
            available: Money::new(balance(funding), currency),
            lent: Money::new(balance(lent), currency),
        }
    }
}

/// A 128-bit transfer id as a decimal string (JSON numbers lose digits past 2^53).
mod decimal_id {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(id: &Option<u128>, serializer: S) -> Result<S::Ok, S::Error> {
        match id {
            Some(id) => serializer.collect_str(id),
            None => serializer.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<u128>, D::Error> {
        Option::<String>::deserialize(deserializer)?
            .map(|text| text.parse().map_err(serde::de::Error::custom))
            .transpose()
    }
}
