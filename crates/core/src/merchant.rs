//! Merchants: shops paid by QR code, payment code and the open gateway.
//!
//! A merchant is its own owner of accounts: its balance (what buyers paid it, less fees,
//! refunds and payouts) and nothing else. Each payment to a merchant is two linked transfers,
//! the buyer's money to the merchant and the fee to the platform's revenue account; a refund
//! returns the fee in proportion, so that after a trade is refunded in full the platform has
//! kept nothing of it.
//!
//! Settlement: every business day's takings are counted per merchant (`DayTotals`). Once a
//! day is `settle_delay_days` old (T+1 by default) the merchant's settlement timer pays the
//! day's net out to the merchant's bank card, as a bank movement like a wallet withdrawal,
//! and writes a settlement record. A day that nets to nothing or less (refunds of earlier
//! days' trades) is carried into the next one, so the balance always equals the sum of the
//! unsettled days.

use formica_ledger::{AccountFlags, Transfer, TransferFlags};
use serde::{Deserialize, Serialize};

use crate::Core;
use crate::money::{Currency, Money};
use crate::products::{Id, Outcome, PLATFORM, Refusal, TransferReceipt, account_id, account_kind};
use crate::products::{NANOS_PER_SECOND, transfer_kind};
use crate::trade::{NewTrade, Trade, TradeRefund, TradeStatus};
use crate::wallet::{MovementKind, positive, wallet_account};

/// The fee rate a merchant pays unless an operator sets another: 0.6%, in millionths.
pub const FEE_PPM_DEFAULT: u32 = 6_000;

/// The highest fee rate an operator can set: 10%.
pub const FEE_PPM_MAX: u32 = 100_000;

/// How long after payment a till may still cancel (refund) a paid trade.
pub const CANCEL_WINDOW_NS: u64 = 24 * 3600 * NANOS_PER_SECOND;

/// A shop.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Merchant {
    /// Its id.
    pub id: Id,
    /// The person who runs it.
    pub owner_id: Id,
    /// The business name buyers see.
    pub name: String,
    /// How to reach the business.
    pub contact: String,
    /// What it sells (a merchant category, free text).
    pub category: String,
    /// Where it is registered (ISO 3166 alpha-2).
    pub country: String,
    /// The currency it is paid and settled in.
    pub currency: Currency,
    /// The owner's bank card settlements are paid to.
    pub card_id: Id,
    /// The fee on each payment, in millionths (6000 = 0.6%).
    pub fee_ppm: u32,
    /// When it was opened.
    pub created_at: u64,
    /// Takings per business day not yet paid out, oldest first.
    #[serde(skip)]
    pub days: Vec<DayTotals>,
}

/// One business day's takings of a merchant, in minor units of its currency.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DayTotals {
    /// The day (since 1970-01-01 in the platform's time zone).
    pub day: i64,
    /// Paid in by buyers.
    pub payments: u64,
    /// Refunded to buyers.
    pub refunds: u64,
    /// Fees charged, less fees returned with refunds.
    pub fees: i64,
    /// Paid out to people through the gateway.
    pub transfers: u64,
    /// Settlements the bank sent back, and earlier days' shortfall carried in (negative).
    pub carried: i64,
}

impl DayTotals {
    /// What the day adds to the balance.
    pub fn net(&self) -> i128 {
        i128::from(self.payments)
            - i128::from(self.refunds)
            - i128::from(self.fees)
            - i128::from(self.transfers)
            + i128::from(self.carried)
    }
}

/// A payout of settled takings to the merchant's bank card.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Settlement {
    /// Its id.
    pub id: Id,
    /// Whose.
    pub merchant_id: Id,
    /// The first business day it covers.
    pub from_day: i64,
    /// The last business day it covers.
    pub to_day: i64,
    /// Paid in by buyers on those days.
    pub payments: Money,
    /// Refunded on those days.
    pub refunds: Money,
    /// Net fees of those days.
    pub fees: Money,
    /// Paid out to people on those days.
    pub transfers: Money,
    /// What was paid to the bank card: the days' net.
    pub amount: Money,
    /// The bank movement paying it.
    pub movement_id: Id,
    /// When it was made.
    pub created_at: u64,
}

/// Merchant commands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MerchantCommand {
    /// Opens a merchant for a person.
    Open(Box<MerchantProfile>),
    /// An operator sets a merchant's fee rate.
    SetFeeRate {
        /// The merchant.
        merchant_id: Id,
        /// Millionths.
        fee_ppm: u32,
    },
    /// Creates an unpaid trade (gateway `create`, `precreate`, `page.pay`).
    CreateTrade(Box<NewTrade>),
    /// Creates a trade and takes the buyer's payment at once (a payment code at the till).
    Charge {
        /// The trade.
        trade: Box<NewTrade>,
        /// The buyer whose payment code was scanned.
        buyer_id: Id,
        /// The code, used up by this payment.
        code: Option<CodeUse>,
    },
    /// Pays an open unpaid trade of the merchant with the buyer's payment code.
    PayWithCode {
        /// The merchant.
        merchant_id: Id,
        /// The trade.
        trade_id: Id,
        /// The buyer whose payment code was scanned.
        buyer_id: Id,
        /// The code.
        code: CodeUse,
    },
    /// Refunds part or all of a paid trade, once per `out_request_no`.
    Refund {
        /// The merchant.
        merchant_id: Id,
        /// The trade.
        trade_id: Id,
        /// The merchant's id for this refund.
        out_request_no: String,
        /// How much.
        amount: Money,
        /// Why.
        reason: String,
    },
    /// Undoes a till payment: closes it unpaid, or refunds it in full within a day.
    Cancel {
        /// The merchant.
        merchant_id: Id,
        /// The trade.
        trade_id: Id,
    },
    /// Ends a paid trade whose refund window is over (a sweep of the store finds them).
    Finish {
        /// The merchant.
        merchant_id: Id,
        /// The trade.
        trade_id: Id,
    },
    /// Pays a person from the merchant's balance.
    Payout {
        /// The merchant.
        merchant_id: Id,
        /// The person paid.
        to_user_id: Id,
        /// How much.
        amount: Money,
        /// A note the person sees.
        note: String,
    },
}

/// A one-time payment code a payment uses up. The edge found it issued and unexpired; the
/// writer makes sure it pays once, and the batch that pays deletes it from the store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CodeUse {
    /// The digits.
    pub code: String,
    /// When it stops working.
    pub expires_at: u64,
}

/// What a merchant is opened with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MerchantProfile {
    /// The person who runs it.
    pub owner_id: Id,
    /// Business name.
    pub name: String,
    /// Contact.
    pub contact: String,
    /// Category.
    pub category: String,
    /// Country.
    pub country: String,
    /// Settlement currency.
    pub currency: Currency,
    /// The owner's card settlements go to (the edge checks it is theirs).
    pub card_id: Id,
}

/// A refund as done (or found done already, `fund_change` false).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RefundReceipt {
    /// The trade after the refund.
    pub trade: Trade,
    /// The refund.
    pub refund: TradeRefund,
    /// Whether this command moved money (false for a repeated `out_request_no`).
    pub fund_change: bool,
}

/// What a cancel did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CancelAction {
    /// The trade was unpaid and is closed.
    Close,
    /// The trade was paid and is refunded in full.
    Refund,
}

/// The merchant's balance account in `currency`.
pub fn merchant_account(merchant: Id, currency: Currency) -> u128 {
    account_id(merchant, account_kind::MERCHANT, currency)
}

/// The platform's fee revenue account in `currency`.
pub fn revenue_account(currency: Currency) -> u128 {
    account_id(PLATFORM, account_kind::REVENUE, currency)
}

/// The fee on `amount` at `fee_ppm`, rounded half up to the minor unit.
pub fn fee_for(amount: u64, fee_ppm: u32) -> u64 {
    let fee = (u128::from(amount) * u128::from(fee_ppm) + 500_000) / 1_000_000;
    u64::try_from(fee).unwrap_or(u64::MAX)
}

/// The part of `fee` that goes back when `refunded` of `amount` has been refunded in all:
/// proportional, and all of it once everything is refunded.
pub fn fee_back_total(fee: u64, refunded: u64, amount: u64) -> u64 {
    if amount == 0 {
        return 0;
    }
    let back = u128::from(fee) * u128::from(refunded) / u128::from(amount);
    u64::try_from(back).unwrap_or(fee)
}

impl Core {
    pub(crate) fn apply_merchant(
        &mut self,
        now: u64,
        command: &MerchantCommand,
    ) -> Result<Outcome, Refusal> {
        match command {
            MerchantCommand::Open(profile) => {
                let MerchantProfile {
                    owner_id,
                    name,
                    contact,
                    category,
                    country,
                    currency,
                    card_id,
                } = &**profile;
                self.person(*owner_id, None)?;
                let id = self.products.next_id(now);
                self.ensure_merchant_accounts(now, id, *currency);
                let merchant = Merchant {
                    id,
                    owner_id: *owner_id,
                    name: crate::trade::clip(name),
                    contact: crate::trade::clip(contact),
                    category: crate::trade::clip(category),
                    country: crate::trade::clip(country),
                    currency: *currency,
                    card_id: *card_id,
                    fee_ppm: FEE_PPM_DEFAULT,
                    created_at: now,
                    days: Vec::new(),
                };
                self.products.put_merchant(merchant.clone());
                Ok(Outcome::Merchant(merchant))
            }
            MerchantCommand::SetFeeRate {
                merchant_id,
                fee_ppm,
            } => {
                if *fee_ppm > FEE_PPM_MAX {
                    return Err(Refusal::FeeRateTooHigh);
                }
                let mut merchant = self.merchant(*merchant_id)?.clone();
                merchant.fee_ppm = *fee_ppm;
                self.products.put_merchant(merchant.clone());
                Ok(Outcome::Merchant(merchant))
            }
            MerchantCommand::CreateTrade(new) => {
                self.check_new_trade(new)?;
                self.create_trade(now, (**new).clone())
            }
            MerchantCommand::Charge {
                trade,
                buyer_id,
                code,
            } => {
                self.check_new_trade(trade)?;
                // The number first: a retry of a payment that went through is told so, not
                // that its code was used.
                if self
                    .products
                    .number_taken(trade.seller_id, &crate::trade::clip(&trade.out_trade_no))
                {
                    return Err(Refusal::DuplicateOutTradeNo);
                }
                if let Some(code) = code {
                    self.check_code(now, code)?;
                }
                // Every check of the payment comes before the trade exists, so a refused
                // payment leaves no trade behind.
                if *buyer_id == trade.seller_id {
                    return Err(Refusal::BuyerIsSeller);
                }
                if trade.buyer_id.is_some_and(|named| named != *buyer_id) {
                    return Err(Refusal::NotTheBuyer);
                }
                self.check_limit(now, *buyer_id, trade.amount)?;
                if self.available(wallet_account(*buyer_id, trade.amount.currency))
                    < u128::from(trade.amount.amount_minor)
                {
                    return Err(Refusal::InsufficientFunds);
                }
                let Outcome::Trade(created) = self.create_trade(now, (**trade).clone())? else {
                    unreachable!("creating a trade gives the trade")
                };
                let paid = self.pay_trade(now, created.id, *buyer_id)?;
                if let Some(code) = code {
                    self.products.use_code(code);
                }
                Ok(paid)
            }
            MerchantCommand::PayWithCode {
                merchant_id,
                trade_id,
                buyer_id,
                code,
            } => {
                self.check_code(now, code)?;
                self.merchant_trade(*merchant_id, *trade_id)?;
                let paid = self.pay_trade(now, *trade_id, *buyer_id)?;
                self.products.use_code(code);
                Ok(paid)
            }
            MerchantCommand::Refund {
                merchant_id,
                trade_id,
                out_request_no,
                amount,
                reason,
            } => self.refund_trade(
                now,
                *merchant_id,
                *trade_id,
                out_request_no,
                *amount,
                reason,
            ),
            MerchantCommand::Cancel {
                merchant_id,
                trade_id,
            } => self.cancel_trade(now, *merchant_id, *trade_id),
            MerchantCommand::Finish {
                merchant_id,
                trade_id,
            } => self.finish(now, *merchant_id, *trade_id),
            MerchantCommand::Payout {
                merchant_id,
                to_user_id,
                amount,
                note,
            } => {
                let merchant = self.merchant(*merchant_id)?.clone();
                positive(*amount)?;
                if amount.currency != merchant.currency {
                    return Err(Refusal::CurrencyMismatch {
                        expected: merchant.currency,
                    });
                }
                if *to_user_id == merchant.id {
                    return Err(Refusal::SamePerson);
                }
                self.person(*to_user_id, Some(amount.currency))
                    .map_err(|_| Refusal::PayeeNotFound)?;
                let id = self.products.next_id(now);
                let transfer = Transfer::new(
                    crate::products::transfer_id(id),
                    merchant_account(merchant.id, amount.currency),
                    wallet_account(*to_user_id, amount.currency),
                    u128::from(amount.amount_minor),
                    amount.currency.ledger(),
                    transfer_kind::MERCHANT_PAYOUT,
                );
                self.transfer(now, transfer)?;
                self.count_day(now, merchant.id, |day| day.transfers += amount.amount_minor);
                let receipt = TransferReceipt {
                    id,
                    from_user_id: merchant.id,
                    to_user_id: *to_user_id,
                    amount: *amount,
                    note: crate::trade::clip(note),
                    created_at: now,
                };
                self.products.record_transfer(receipt.clone());
                let outcome = Outcome::Transfer(receipt);
                self.products
                    .announce(*to_user_id, "transfer.received", &outcome, now);
                Ok(outcome)
            }
        }
    }

    /// Refuses a code that expired or already paid.
    pub(crate) fn check_code(&self, now: u64, code: &CodeUse) -> Result<(), Refusal> {
        if code.expires_at <= now || self.products.code_used(&code.code, now) {
            return Err(Refusal::PaymentCodeUsed);
        }
        Ok(())
    }

    /// The merchant with this id.
    pub(crate) fn merchant(&self, id: Id) -> Result<&Merchant, Refusal> {
        self.products
            .merchants
            .get(&id)
            .ok_or(Refusal::MerchantNotFound)
    }

    /// What an account can pay now: credits less debits, posted and pending.
    pub(crate) fn available(&self, account: u128) -> u128 {
        self.ledger.account(account).map_or(0, |a| {
            a.credits_posted
                .saturating_sub(a.debits_posted)
                .saturating_sub(a.debits_pending)
        })
    }

    fn check_new_trade(&self, new: &NewTrade) -> Result<(), Refusal> {
        let merchant = self.merchant(new.seller_id)?;
        if new.amount.currency != merchant.currency {
            return Err(Refusal::CurrencyMismatch {
                expected: merchant.currency,
            });
        }
        Ok(())
    }

    fn ensure_merchant_accounts(&mut self, now: u64, merchant: Id, currency: Currency) {
        let mut books = self.books();
        books.ensure_account(
            now,
            revenue_account(currency),
            currency,
            account_kind::REVENUE,
            AccountFlags::DEBITS_MUST_NOT_EXCEED_CREDITS,
        );
        books.ensure_account(
            now,
            merchant_account(merchant, currency),
            currency,
            account_kind::MERCHANT,
            AccountFlags::DEBITS_MUST_NOT_EXCEED_CREDITS,
        );
        // Settlements leave through the bank clearing account, like withdrawals.
        books.ensure_account(
            now,
            crate::wallet::clearing_account(currency),
            currency,
            account_kind::BANK_CLEARING,
            AccountFlags::CREDITS_MUST_NOT_EXCEED_DEBITS,
        );
    }

    /// Adds to the merchant's takings of the day of `now`.
    pub(crate) fn count_day(&mut self, now: u64, merchant: Id, add: impl FnOnce(&mut DayTotals)) {
        let day = self.products.settings.day(now);
        let mut merchant = self.products.merchants[&merchant].clone();
        match merchant.days.iter_mut().find(|d| d.day == day) {
            Some(totals) => add(totals),
            None => {
                let mut totals = DayTotals {
                    day,
                    ..DayTotals::default()
                };
                add(&mut totals);
                merchant.days.push(totals);
                merchant.days.sort_unstable_by_key(|d| d.day);
            }
        }
        self.products.put_merchant(merchant);
    }

    /// The money of a paid merchant trade arrives: the buyer's payment (posting `hold` if the
    /// trade was escrow, else moving `amount` from the buyer) and the fee, linked.
    pub(crate) fn take_payment(
        &mut self,
        now: u64,
        trade: &mut Trade,
        first: Transfer,
        amount: u64,
    ) -> Result<(), Refusal> {
        let currency = trade.amount.currency;
        let fee = self.take_takings(now, trade.seller_id, currency, vec![first], amount)?;
        trade.fee = Some(Money::new(fee, currency));
        Ok(())
    }

    /// Money a merchant is paid (`transfers` bring `amount` into its balance, linked): the
    /// merchant's fee joins them, and the day's takings count both. Returns the fee.
    pub(crate) fn take_takings(
        &mut self,
        now: u64,
        merchant: Id,
        currency: Currency,
        mut transfers: Vec<Transfer>,
        amount: u64,
    ) -> Result<u64, Refusal> {
        let merchant = self.merchant(merchant)?.clone();
        let fee = fee_for(amount, merchant.fee_ppm);
        if fee > 0 {
            transfers.push(Transfer::new(
                self.products.next_transfer_id(now),
                merchant_account(merchant.id, currency),
                revenue_account(currency),
                u128::from(fee),
                currency.ledger(),
                transfer_kind::FEE,
            ));
        }
        self.transfer_all(now, transfers)?;
        self.count_day(now, merchant.id, |day| {
            day.payments += amount;
            day.fees += i64::try_from(fee).unwrap_or(i64::MAX);
        });
        Ok(fee)
    }

    fn refund_trade(
        &mut self,
        now: u64,
        merchant: Id,
        trade_id: Id,
        out_request_no: &str,
        amount: Money,
        reason: &str,
    ) -> Result<Outcome, Refusal> {
        let mut trade = self.merchant_trade(merchant, trade_id)?;
        let out_request_no = crate::trade::clip(out_request_no);
        if let Some(done) = trade
            .refunds
            .iter()
            .find(|r| r.out_request_no == out_request_no)
        {
            if done.amount != amount {
                return Err(Refusal::DiscordantRepeat);
            }
            let refund = done.clone();
            return Ok(Outcome::Refund(RefundReceipt {
                trade,
                refund,
                fund_change: false,
            }));
        }
        positive(amount)?;
        if amount.currency != trade.amount.currency {
            return Err(Refusal::CurrencyMismatch {
                expected: trade.amount.currency,
            });
        }
        if self.window_over(now, &trade) {
            return Err(Refusal::TradeStatusInvalid {
                status: TradeStatus::TradeFinished,
            });
        }
        let refundable = trade.amount.amount_minor - trade.refunded.amount_minor;
        if amount.amount_minor > refundable {
            return Err(Refusal::RefundTooLarge {
                held: Money::new(refundable, amount.currency),
            });
        }
        let refund = match trade.status {
            TradeStatus::TradeSuccess => self.refund_paid(now, &mut trade, amount)?,
            TradeStatus::WaitSellerSend | TradeStatus::WaitBuyerConfirm => {
                // Escrow still holds the money: nothing reached the merchant, so no fee.
                self.refund_held(now, &mut trade, amount)?;
                Money::new(0, amount.currency)
            }
            status => return Err(Refusal::TradeStatusInvalid { status }),
        };
        let refund = TradeRefund {
            out_request_no,
            amount,
            fee_back: refund,
            reason: crate::trade::clip(reason),
            at: now,
        };
        trade.refunds.push(refund.clone());
        let topic = if trade.refunded == trade.amount {
            trade.status = TradeStatus::TradeClosed;
            trade.close_reason = Some("refunded".to_owned());
            trade.deadline = None;
            "trade.closed"
        } else {
            "trade.refunded"
        };
        let Outcome::Trade(trade) = self.save_trade(now, trade, topic) else {
            unreachable!("saving a trade gives the trade")
        };
        Ok(Outcome::Refund(RefundReceipt {
            trade,
            refund,
            fund_change: true,
        }))
    }

    /// Refunds `amount` of a paid (non-escrow) merchant trade from the merchant's balance,
    /// with the fee's share back from the platform. The fee returned.
    fn refund_paid(
        &mut self,
        now: u64,
        trade: &mut Trade,
        amount: Money,
    ) -> Result<Money, Refusal> {
        let currency = amount.currency;
        let fee = trade.fee.map_or(0, |f| f.amount_minor);
        let refunded_after = trade.refunded.amount_minor + amount.amount_minor;
        let fee_back = fee_back_total(fee, refunded_after, trade.amount.amount_minor)
            - fee_back_total(fee, trade.refunded.amount_minor, trade.amount.amount_minor);
        let buyer = trade.buyer_id.expect("a paid trade has a buyer");
        let mut transfers = Vec::with_capacity(2);
        if fee_back > 0 {
            transfers.push(Transfer::new(
                self.products.next_transfer_id(now),
                revenue_account(currency),
                merchant_account(trade.seller_id, currency),
                u128::from(fee_back),
                currency.ledger(),
                transfer_kind::FEE_REFUND,
            ));
        }
        transfers.push(Transfer::new(
            self.products.next_transfer_id(now),
            merchant_account(trade.seller_id, currency),
            wallet_account(buyer, currency),
            u128::from(amount.amount_minor),
            currency.ledger(),
            transfer_kind::REFUND,
        ));
        self.transfer_all(now, transfers)
            .map_err(|refusal| match refusal {
                Refusal::InsufficientFunds => Refusal::MerchantBalanceTooLow,
                other => other,
            })?;
        trade.refunded.amount_minor = refunded_after;
        self.count_day(now, trade.seller_id, |day| {
            day.refunds += amount.amount_minor;
            day.fees -= i64::try_from(fee_back).unwrap_or(i64::MAX);
        });
        Ok(Money::new(fee_back, currency))
    }

    fn cancel_trade(&mut self, now: u64, merchant: Id, trade_id: Id) -> Result<Outcome, Refusal> {
        let trade = self.merchant_trade(merchant, trade_id)?;
        match trade.status {
            TradeStatus::WaitBuyerPay => {
                let mut trade = trade;
                trade.status = TradeStatus::TradeClosed;
                trade.close_reason = Some("cancelled".to_owned());
                trade.deadline = None;
                Ok(self.save_trade(now, trade, "trade.closed"))
            }
            TradeStatus::TradeSuccess => {
                if trade.refunded.amount_minor > 0 {
                    return Err(Refusal::RefundedAlready);
                }
                let paid_at = trade.paid_at.unwrap_or(trade.created_at);
                if now.saturating_sub(paid_at) > CANCEL_WINDOW_NS {
                    return Err(Refusal::CancelTooLate);
                }
                let number = trade.out_trade_no.clone();
                let amount = trade.amount;
                let outcome =
                    self.refund_trade(now, merchant, trade_id, &number, amount, "cancel")?;
                let Outcome::Refund(mut receipt) = outcome else {
                    unreachable!("a refund gives a refund receipt")
                };
                receipt.trade.close_reason = Some("cancelled".to_owned());
                self.products.put_trade(receipt.trade.clone());
                Ok(Outcome::Trade(receipt.trade))
            }
            status => Err(Refusal::TradeStatusInvalid { status }),
        }
    }

    /// An open trade of this merchant.
    fn merchant_trade(&self, merchant: Id, id: Id) -> Result<Trade, Refusal> {
        self.merchant(merchant)?;
        match self.products.trade(id) {
            Some(trade) if trade.seller_id == merchant && !trade.status.is_final() => {
                Ok(trade.clone())
            }
            _ => Err(Refusal::TradeNotFound),
        }
    }

    /// Whether a paid trade's refund window is over.
    fn window_over(&self, now: u64, trade: &Trade) -> bool {
        trade.status == TradeStatus::TradeSuccess
            && trade.paid_at.is_some_and(|paid| {
                now >= paid.saturating_add(self.products.settings.refund_window_ns)
            })
    }

    /// Finishes a paid trade whose refund window is over: no more refunds.
    fn finish(&mut self, now: u64, merchant: Id, id: Id) -> Result<Outcome, Refusal> {
        let mut trade = self.merchant_trade(merchant, id)?;
        if !self.window_over(now, &trade) {
            return Err(Refusal::TradeStatusInvalid {
                status: trade.status,
            });
        }
        trade.status = TradeStatus::TradeFinished;
        trade.deadline = None;
        Ok(self.save_trade(now, trade, "trade.finished"))
    }

    /// Pays out the merchant's days that are old enough. What they net is paid out as far
    /// as the balance holds it (a later day may already have refunded an earlier day's trade);
    /// the rest, or a shortfall, is carried into today.
    pub(crate) fn settle_merchant(&mut self, now: u64, id: Id) {
        let settings = &self.products.settings;
        let today = settings.day(now);
        let last = today - i64::from(settings.settle_delay_days);
        let mut merchant = self.products.merchants[&id].clone();
        let (due, rest): (Vec<_>, Vec<_>) = merchant.days.drain(..).partition(|d| d.day <= last);
        merchant.days = rest;
        let net: i128 = due.iter().map(DayTotals::net).sum();
        let currency = merchant.currency;
        let card = merchant.card_id;
        let available =
            i128::try_from(self.available(merchant_account(id, currency))).unwrap_or(i128::MAX);
        let paid = net.clamp(0, available.max(0));
        let carried = net - paid;
        // Always put back: that also moves the merchant's timer on.
        self.products.put_merchant(merchant);
        if carried != 0 {
            let carried =
                i64::try_from(carried).unwrap_or(if carried < 0 { i64::MIN } else { i64::MAX });
            self.count_day(now, id, |day| day.carried += carried);
        }
        if paid == 0 {
            return;
        }
        let amount = u64::try_from(paid).expect("a payout within the balance fits the books");
        let hold = self.products.next_transfer_id(now);
        let payout = Transfer::new(
            hold,
            merchant_account(id, currency),
            crate::wallet::clearing_account(currency),
            u128::from(amount),
            currency.ledger(),
            transfer_kind::SETTLEMENT,
        )
        .with_flags(TransferFlags::PENDING);
        self.transfer(now, payout)
            .expect("a payout within the merchant's available balance is accepted");
        let mut movement = self.new_movement(
            now,
            id,
            MovementKind::Withdrawal,
            Money::new(amount, currency),
        );
        movement.card_id = card;
        movement.hold = Some(hold);
        self.products.put_movement(movement.clone());
        let sum = |f: fn(&DayTotals) -> i128| {
            let total: i128 = due.iter().map(f).sum();
            Money::new(u64::try_from(total.max(0)).unwrap_or(u64::MAX), currency)
        };
        let settlement = Settlement {
            id: self.products.next_id(now),
            merchant_id: id,
            from_day: due.first().map_or(last, |d| d.day),
            to_day: due.last().map_or(last, |d| d.day),
            payments: sum(|d| i128::from(d.payments)),
            refunds: sum(|d| i128::from(d.refunds)),
            fees: sum(|d| i128::from(d.fees)),
            transfers: sum(|d| i128::from(d.transfers)),
            amount: Money::new(amount, currency),
            movement_id: movement.id,
            created_at: now,
        };
        self.products.record_settlement(settlement);
    }

    /// A settlement the bank sent back: the money is in the balance again and is paid out
    /// with the next day's.
    pub(crate) fn settlement_returned(&mut self, now: u64, merchant: Id, amount: u64) {
        if self.products.merchants.contains_key(&merchant) {
            let amount = i64::try_from(amount).unwrap_or(i64::MAX);
            self.count_day(now, merchant, |day| day.carried += amount);
        }
    }

    /// Whether `who` may act as the trade's seller: the seller, or the person who runs the
    /// selling merchant.
    pub(crate) fn sells(&self, trade: &Trade, who: Id) -> bool {
        trade.seller_id == who
            || self
                .products
                .merchants
                .get(&trade.seller_id)
                .is_some_and(|m| m.owner_id == who)
    }
}

/// The start (nanoseconds since the epoch) of `day` in the platform's time zone.
pub(crate) fn day_start(day: i64, day_offset_seconds: i64) -> u64 {
    let seconds = day
        .saturating_mul(86_400)
        .saturating_sub(day_offset_seconds);
    u64::try_from(seconds)
        .unwrap_or(0)
        .saturating_mul(NANOS_PER_SECOND)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fees_round_half_up_and_come_back_in_proportion_then_whole() {
        assert_eq!(fee_for(10_000, 6_000), 60);
        assert_eq!(fee_for(83, 6_000), 0); // 0.498 rounds down
        assert_eq!(fee_for(84, 6_000), 1); // 0.504 rounds up
        let fee = fee_for(9_999, 6_000); // 59.994 -> 60
        assert_eq!(fee, 60);
        let first = fee_back_total(fee, 3_333, 9_999);
        let second = fee_back_total(fee, 6_666, 9_999) - first;
        let third = fee_back_total(fee, 9_999, 9_999) - first - second;
        assert_eq!(first + second + third, fee);
    }

    #[test]
    fn a_day_starts_at_local_midnight() {
        // Day 1 in UTC+8 starts at 1970-01-01 16:00 UTC.
        assert_eq!(day_start(1, 8 * 3600), 16 * 3600 * NANOS_PER_SECOND);
    }
}
