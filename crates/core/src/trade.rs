//! Escrow ("guarantee") trades: the buyer's money is held by the platform until the buyer
//! confirms that the goods arrived.
//!
//! The money held is one pending transfer from the buyer's wallet to the seller's: the buyer
//! can no longer spend it and the seller cannot spend it yet. Release posts it (once: the books
//! refuse a second post), a full refund voids it, and a partial refund voids it and holds the
//! rest again in the same linked chain, so the money is in exactly one place at every instant.
//!
//! ```text
//! WAIT_BUYER_PAY --pay--> WAIT_SELLER_SEND --ship--> WAIT_BUYER_CONFIRM --confirm--> TRADE_FINISHED
//!      | close/timeout         |  refund request        | (or after confirm_timeout)
//!      v                       v                        v
//! TRADE_CLOSED          REFUND_REQUESTED --agree (all)--> TRADE_CLOSED
//!                         |  agree (part): back where it was, holding the rest
//!                         |  refuse --> DISPUTE --operator: refund | release | split
//! ```

use formica_ledger::{Transfer, TransferFlags};
use serde::{Deserialize, Serialize};

use crate::Core;
use crate::money::Money;
use crate::products::{Id, Outcome, Refusal, transfer_kind};
use crate::wallet::{positive, wallet_account};

/// The outbox topic of the gateway's notifications to a merchant's notify_url.
pub const NOTIFY_TOPIC: &str = "gateway.notify";

/// Longest out_trade_no, subject, note or reason the core keeps (in bytes).
pub const TEXT_MAX: usize = 256;

/// Where a trade stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TradeStatus {
    /// Created, waiting for the buyer to pay.
    WaitBuyerPay,
    /// Paid straight to a merchant (no escrow); refundable until the refund window ends.
    TradeSuccess,
    /// Paid into escrow, waiting for the seller to ship.
    WaitSellerSend,
    /// Shipped, waiting for the buyer to confirm receipt.
    WaitBuyerConfirm,
    /// The buyer asked for a refund; the seller has to answer.
    RefundRequested,
    /// The seller refused a refund; an operator decides.
    Dispute,
    /// Over: the money went to the seller (less any refund).
    TradeFinished,
    /// Over: never paid, or refunded in full.
    TradeClosed,
}

impl TradeStatus {
    /// Every status, for tables and tests.
    pub const ALL: [TradeStatus; 8] = [
        TradeStatus::WaitBuyerPay,
        TradeStatus::TradeSuccess,
        TradeStatus::WaitSellerSend,
        TradeStatus::WaitBuyerConfirm,
        TradeStatus::RefundRequested,
        TradeStatus::Dispute,
        TradeStatus::TradeFinished,
        TradeStatus::TradeClosed,
    ];

    /// The stored and shown name (`WAIT_BUYER_PAY`).
    pub fn as_str(self) -> &'static str {
        match self {
            TradeStatus::WaitBuyerPay => "WAIT_BUYER_PAY",
            TradeStatus::TradeSuccess => "TRADE_SUCCESS",
            TradeStatus::WaitSellerSend => "WAIT_SELLER_SEND",
            TradeStatus::WaitBuyerConfirm => "WAIT_BUYER_CONFIRM",
            TradeStatus::RefundRequested => "REFUND_REQUESTED",
            TradeStatus::Dispute => "DISPUTE",
            TradeStatus::TradeFinished => "TRADE_FINISHED",
            TradeStatus::TradeClosed => "TRADE_CLOSED",
        }
    }

    /// The inverse of `as_str`.
    pub fn parse(name: &str) -> Option<TradeStatus> {
        TradeStatus::ALL.into_iter().find(|s| s.as_str() == name)
    }

    /// Whether the trade is over.
    pub fn is_final(self) -> bool {
        matches!(self, TradeStatus::TradeFinished | TradeStatus::TradeClosed)
    }
}

impl std::fmt::Display for TradeStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A buyer's open request for a refund.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RefundRequest {
    /// How much.
    pub amount: Money,
    /// Why.
    pub reason: String,
    /// When it was asked for.
    pub requested_at: u64,
    /// Where the trade goes back to if a part is refunded.
    pub resume: TradeStatus,
    /// Time that was left on the trade's timer when the request paused it.
    pub paused_ns: Option<u64>,
}

/// An operator's decision on a dispute.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Everything held goes back to the buyer.
    Refund,
    /// Everything held goes to the seller.
    Release,
    /// This much goes back to the buyer; the rest to the seller.
    Split {
        /// The buyer's part.
        refund: Money,
    },
}

/// An escrow trade.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Trade {
    /// Its id.
    pub id: Id,
    /// Who sells.
    pub seller_id: Id,
    /// Who pays: named at creation, or whoever pays first.
    pub buyer_id: Option<Id>,
    /// The seller's own reference, unique per seller.
    pub out_trade_no: String,
    /// What is sold.
    pub subject: String,
    /// The price.
    pub amount: Money,
    /// Where it stands.
    pub status: TradeStatus,
    /// Refunded to the buyer so far.
    pub refunded: Money,
    /// The seller's shipping note.
    pub tracking: Option<String>,
    /// The open refund request.
    pub refund_request: Option<RefundRequest>,
    /// Why it closed, when it did.
    pub close_reason: Option<String>,
    /// When the trade moves on by itself (closes unpaid, confirms receipt, agrees a refund).
    pub deadline: Option<u64>,
    /// When it was created (nanoseconds).
    pub created_at: u64,
    /// When it was paid.
    pub paid_at: Option<u64>,
    /// When it last changed.
    pub updated_at: u64,
    /// The pending transfer holding the buyer's money.
    #[serde(skip)]
    pub hold: Option<u128>,
    /// Whether the money waits in escrow for the buyer's confirmation (every trade between
    /// people; a merchant's when its app asks for it). Otherwise it goes to the merchant at
    /// payment.
    #[serde(default = "escrow_default")]
    pub escrow: bool,
    /// The gateway app the trade came through.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_id: Option<String>,
    /// The platform's fee on a merchant's trade, once paid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fee: Option<Money>,
    /// Refunds of a merchant's trade, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub refunds: Vec<TradeRefund>,
    /// Where the gateway notifies the merchant of status changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify_url: Option<String>,
    /// Where a hosted checkout sends the buyer back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub return_url: Option<String>,
    /// The merchant's own data, echoed in notifications.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub passback_params: Option<String>,
    /// Paid from the buyer's credit line: what of it went back to the line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credit: Option<TradeCredit>,
}

/// A trade paid from the buyer's credit line.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TradeCredit {
    /// Refunds that went back to the line so far.
    pub returned: Money,
    /// Whether the purchase is on the line's statements (at payment for a straight payment,
    /// at receipt for escrow).
    pub billed: bool,
}

fn escrow_default() -> bool {
    true
}

/// One refund of a merchant's trade.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TradeRefund {
    /// The merchant's id for the refund (its idempotency key).
    pub out_request_no: String,
    /// How much went back to the buyer.
    pub amount: Money,
    /// How much of the fee went back to the merchant.
    pub fee_back: Money,
    /// Why.
    pub reason: String,
    /// When.
    pub at: u64,
}

/// A trade to create: a person's (through REST) or a merchant's (through the gateway).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewTrade {
    /// The seller: a person, or a merchant.
    pub seller_id: Id,
    /// The buyer, if named.
    pub buyer_id: Option<Id>,
    /// The seller's reference.
    pub out_trade_no: String,
    /// What is sold.
    pub subject: String,
    /// The price.
    pub amount: Money,
    /// Escrow or straight payment.
    pub escrow: bool,
    /// The gateway app.
    pub app_id: Option<String>,
    /// Notification URL.
    pub notify_url: Option<String>,
    /// Hosted checkout return URL.
    pub return_url: Option<String>,
    /// Echoed to the merchant.
    pub passback_params: Option<String>,
    /// When it closes unpaid (default: the pay timeout).
    pub pay_by: Option<u64>,
}

impl NewTrade {
    /// A person's escrow trade with the default timeout.
    pub fn escrow(
        seller_id: Id,
        buyer_id: Option<Id>,
        out_trade_no: &str,
        subject: &str,
        amount: Money,
    ) -> Self {
        NewTrade {
            seller_id,
            buyer_id,
            out_trade_no: out_trade_no.to_owned(),
            subject: subject.to_owned(),
            amount,
            escrow: true,
            app_id: None,
            notify_url: None,
            return_url: None,
            passback_params: None,
            pay_by: None,
        }
    }
}

impl Trade {
    /// What escrow holds for this trade now.
    pub fn held(&self) -> Money {
        let held = match self.status {
            TradeStatus::WaitSellerSend
            | TradeStatus::WaitBuyerConfirm
            | TradeStatus::RefundRequested
            | TradeStatus::Dispute => self.amount.amount_minor - self.refunded.amount_minor,
            _ => 0,
        };
        Money::new(held, self.amount.currency)
    }
}

/// Trade commands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TradeCommand {
    /// A seller offers a trade.
    Create {
        /// The seller.
        seller_id: Id,
        /// The buyer, if the seller names one.
        buyer_id: Option<Id>,
        /// The seller's reference.
        out_trade_no: String,
        /// What is sold.
        subject: String,
        /// The price.
        amount: Money,
    },
    /// The buyer pays into escrow.
    Pay {
        /// The trade.
        trade_id: Id,
        /// The buyer.
        buyer_id: Id,
    },
    /// The seller ships.
    Ship {
        /// The trade.
        trade_id: Id,
        /// The seller.
        seller_id: Id,
        /// The shipping note.
        tracking: String,
    },
    /// The buyer confirms receipt: the money goes to the seller.
    ConfirmReceipt {
        /// The trade.
        trade_id: Id,
        /// The buyer.
        buyer_id: Id,
    },
    /// The seller closes an unpaid trade.
    Close {
        /// The trade.
        trade_id: Id,
        /// The seller.
        seller_id: Id,
    },
    /// The buyer asks for money back.
    RequestRefund {
        /// The trade.
        trade_id: Id,
        /// The buyer.
        buyer_id: Id,
        /// How much.
        amount: Money,
        /// Why.
        reason: String,
    },
    /// The seller answers a refund request.
    AnswerRefund {
        /// The trade.
        trade_id: Id,
        /// The seller.
        seller_id: Id,
        /// Agree (refund now) or refuse (dispute).
        agree: bool,
    },
    /// An operator decides a dispute.
    Decide {
        /// The trade.
        trade_id: Id,
        /// The decision.
        decision: Decision,
    },
}

impl TradeCommand {
    /// The trade the command names (none for a new one).
    pub fn trade_id(&self) -> Option<Id> {
        match self {
            TradeCommand::Create { .. } => None,
            TradeCommand::Pay { trade_id, .. }
            | TradeCommand::Ship { trade_id, .. }
            | TradeCommand::ConfirmReceipt { trade_id, .. }
            | TradeCommand::Close { trade_id, .. }
            | TradeCommand::RequestRefund { trade_id, .. }
            | TradeCommand::AnswerRefund { trade_id, .. }
            | TradeCommand::Decide { trade_id, .. } => Some(*trade_id),
        }
    }
}

/// Who is asking: the trade is found only for its parties (others get `TradeNotFound`, so that
/// nobody learns of another person's trade).
#[derive(Clone, Copy)]
enum Party {
    Seller(Id),
    Buyer(Id),
    Operator,
}

impl Core {
    pub(crate) fn apply_trade(
        &mut self,
        now: u64,
        command: &TradeCommand,
    ) -> Result<Outcome, Refusal> {
        match command {
            TradeCommand::Create {
                seller_id,
                buyer_id,
                out_trade_no,
                subject,
                amount,
            } => self.create_trade(
                now,
                NewTrade::escrow(*seller_id, *buyer_id, out_trade_no, subject, *amount),
            ),
            TradeCommand::Pay { trade_id, buyer_id } => self.pay_trade(now, *trade_id, *buyer_id),
            TradeCommand::Ship {
                trade_id,
                seller_id,
                tracking,
            } => {
                let mut trade = self.trade_for(*trade_id, Party::Seller(*seller_id))?;
                expect_status(&trade, &[TradeStatus::WaitSellerSend])?;
                trade.status = TradeStatus::WaitBuyerConfirm;
                trade.tracking = Some(clip(tracking));
                trade.deadline =
                    Some(now.saturating_add(self.products.settings.confirm_timeout_ns));
                Ok(self.save_trade(now, trade, "trade.shipped"))
            }
            TradeCommand::ConfirmReceipt { trade_id, buyer_id } => {
                let trade = self.trade_for(*trade_id, Party::Buyer(*buyer_id))?;
                expect_status(&trade, &[TradeStatus::WaitBuyerConfirm])?;
                let outcome = self.release(now, trade, "trade.finished")?;
                self.credit_trade_completed(&outcome, now);
                Ok(outcome)
            }
            TradeCommand::Close {
                trade_id,
                seller_id,
            } => {
                let trade = self.trade_for(*trade_id, Party::Seller(*seller_id))?;
                expect_status(&trade, &[TradeStatus::WaitBuyerPay])?;
                Ok(self.close_unpaid(now, trade, "closed by the seller"))
            }
            TradeCommand::RequestRefund {
                trade_id,
                buyer_id,
                amount,
                reason,
            } => {
                let mut trade = self.trade_for(*trade_id, Party::Buyer(*buyer_id))?;
                expect_status(
                    &trade,
                    &[TradeStatus::WaitSellerSend, TradeStatus::WaitBuyerConfirm],
                )?;
                check_refund(&trade, *amount, false)?;
                let paused_ns = trade.deadline.map(|at| at.saturating_sub(now));
                trade.refund_request = Some(RefundRequest {
                    amount: *amount,
                    reason: clip(reason),
                    requested_at: now,
                    resume: trade.status,
                    paused_ns,
                });
                trade.status = TradeStatus::RefundRequested;
                trade.deadline =
                    Some(now.saturating_add(self.products.settings.refund_answer_timeout_ns));
                Ok(self.save_trade(now, trade, "trade.refund_requested"))
            }
            TradeCommand::AnswerRefund {
                trade_id,
                seller_id,
                agree,
            } => {
                let mut trade = self.trade_for(*trade_id, Party::Seller(*seller_id))?;
                expect_status(&trade, &[TradeStatus::RefundRequested])?;
                if *agree {
                    self.agree_refund(now, trade)
                } else {
                    trade.status = TradeStatus::Dispute;
                    trade.deadline = None;
                    Ok(self.save_trade(now, trade, "trade.disputed"))
                }
            }
            TradeCommand::Decide { trade_id, decision } => {
                let trade = self.trade_for(*trade_id, Party::Operator)?;
                expect_status(&trade, &[TradeStatus::Dispute])?;
                // The side the operator decides against has lost the dispute (a split is
                // nobody's loss).
                let loser = match decision {
                    Decision::Refund => Some(trade.seller_id),
                    Decision::Release => trade.buyer_id,
                    Decision::Split { .. } => None,
                };
                let outcome = match decision {
                    Decision::Refund => {
                        let held = trade.held();
                        self.refund_all(now, trade, held)
                    }
                    Decision::Release => self.release(now, trade, "trade.finished"),
                    Decision::Split { refund } => {
                        check_refund(&trade, *refund, true)?;
                        let mut trade = trade;
                        trade.refunded.amount_minor += refund.amount_minor;
                        self.release(now, trade, "trade.finished")
                    }
                }?;
                if let Some(loser) = loser {
                    self.credit_event(now, loser, |f| f.disputes_lost += 1);
                }
                Ok(outcome)
            }
        }
    }

    /// An escrow trade completed without a dispute: it counts for both sides' credit.
    fn credit_trade_completed(&mut self, outcome: &Outcome, now: u64) {
        let Outcome::Trade(trade) = outcome else {
            return;
        };
        if let Some(buyer) = trade.buyer_id {
            self.credit_event(now, buyer, |f| f.trades_bought += 1);
        }
        self.credit_event(now, trade.seller_id, |f| f.trades_sold += 1);
    }

    /// Moves a trade whose deadline passed: closes it unpaid, confirms receipt on the buyer's
    /// behalf, or agrees to a refund the seller did not answer.
    pub(crate) fn trade_due(&mut self, now: u64, id: Id) {
        let trade = self.products.trades[&id].clone();
        let moved = match trade.status {
            TradeStatus::WaitBuyerPay => Ok(self.close_unpaid(now, trade, "not paid in time")),
            TradeStatus::WaitBuyerConfirm => self
                .release(now, trade, "trade.finished")
                .inspect(|outcome| self.credit_trade_completed(outcome, now)),
            TradeStatus::RefundRequested => self.agree_refund(now, trade),
            status => panic!("a {status} trade has no timer"),
        };
        // Releasing posts a hold the books keep open for the trade: it cannot be refused.
        moved.expect("a trade's timer moves it on");
    }

    pub(crate) fn create_trade(&mut self, now: u64, new: NewTrade) -> Result<Outcome, Refusal> {
        let NewTrade {
            seller_id: seller,
            buyer_id: buyer,
            amount,
            ..
        } = new;
        positive(amount)?;
        let merchant = self.products.merchants.contains_key(&seller);
        if !merchant {
            self.person(seller, None)?;
        }
        if buyer == Some(seller) {
            return Err(Refusal::BuyerIsSeller);
        }
        if let Some(buyer) = buyer
            && !self.products.people.contains_key(&buyer)
        {
            return Err(Refusal::PayeeNotFound);
        }
        // The number as it is kept: two numbers that differ only past `TEXT_MAX` are one.
        let out_trade_no = clip(&new.out_trade_no);
        if self.products.number_taken(seller, &out_trade_no) {
            return Err(Refusal::DuplicateOutTradeNo);
        }
        let currency = amount.currency;
        if !merchant {
            self.ensure_wallet(now, seller, currency);
        }
        let pay_by = new
            .pay_by
            .unwrap_or_else(|| now.saturating_add(self.products.settings.pay_timeout_ns));
        let trade = Trade {
            id: self.products.next_id(now),
            seller_id: seller,
            buyer_id: buyer,
            out_trade_no,
            subject: clip(&new.subject),
            amount,
            status: TradeStatus::WaitBuyerPay,
            refunded: Money::new(0, currency),
            tracking: None,
            refund_request: None,
            close_reason: None,
            deadline: Some(pay_by.max(now)),
            created_at: now,
            paid_at: None,
            updated_at: now,
            hold: None,
            escrow: new.escrow || !merchant,
            app_id: new.app_id.as_deref().map(clip),
            fee: None,
            refunds: Vec::new(),
            notify_url: new.notify_url.as_deref().map(clip),
            return_url: new.return_url.as_deref().map(clip),
            passback_params: new.passback_params.as_deref().map(clip),
            credit: None,
        };
        Ok(self.save_trade(now, trade, "trade.created"))
    }

    pub(crate) fn pay_trade(&mut self, now: u64, id: Id, buyer: Id) -> Result<Outcome, Refusal> {
        self.pay_trade_from(now, id, buyer, false)
    }

    /// The open trade `buyer` may pay now, checked as paying it checks (from a pocket fund
    /// or a credit line, which must refuse before they move money).
    pub(crate) fn payable(
        &self,
        now: u64,
        id: Id,
        buyer: Id,
        currency: crate::Currency,
    ) -> Result<Trade, Refusal> {
        // A paid merchant trade is recalled for this batch: paying it again is refused for its
        // status, not as unknown.
        let trade = self
            .products
            .trade(id)
            .filter(|t| !t.status.is_final())
            .cloned()
            .ok_or(Refusal::TradeNotFound)?;
        if trade.buyer_id.is_some_and(|named| named != buyer) {
            return Err(Refusal::TradeNotFound);
        }
        expect_status(&trade, &[TradeStatus::WaitBuyerPay])?;
        if trade.seller_id == buyer {
            return Err(Refusal::BuyerIsSeller);
        }
        if trade.amount.currency != currency {
            return Err(Refusal::CurrencyMismatch { expected: currency });
        }
        self.check_limit(now, buyer, trade.amount)?;
        Ok(trade)
    }

    /// Pays from the wallet; `credit`: the money was just lent into it from the line.
    pub(crate) fn pay_trade_from(
        &mut self,
        now: u64,
        id: Id,
        buyer: Id,
        credit: bool,
    ) -> Result<Outcome, Refusal> {
        let currency = self
            .products
            .trade(id)
            .map_or(crate::credit::CREDIT_CURRENCY, |t| t.amount.currency);
        let mut trade = self.payable(now, id, buyer, currency)?;
        if credit {
            trade.credit = Some(TradeCredit {
                returned: Money::new(0, currency),
                billed: !trade.escrow,
            });
        }
        let currency = trade.amount.currency;
        if !trade.escrow {
            // Straight to the merchant, with the fee.
            let payment = Transfer::new(
                self.products.next_transfer_id(now),
                wallet_account(buyer, currency),
                crate::merchant::merchant_account(trade.seller_id, currency),
                u128::from(trade.amount.amount_minor),
                currency.ledger(),
                transfer_kind::TRADE_PAYMENT,
            );
            let amount = trade.amount.amount_minor;
            self.take_payment(now, &mut trade, payment, amount)?;
            self.spend(now, buyer, trade.amount);
            trade.buyer_id = Some(buyer);
            trade.status = TradeStatus::TradeSuccess;
            trade.paid_at = Some(now);
            // Paid and refundable for the refund window; it leaves memory now (the store
            // keeps it) and is recalled when a refund, cancel or finish names it.
            trade.deadline = None;
            return Ok(self.save_trade(now, trade, "trade.succeeded"));
        }
        let hold = self.products.next_transfer_id(now);
        let pending = Transfer::new(
            hold,
            wallet_account(buyer, currency),
            self.seller_account(trade.seller_id, currency),
            u128::from(trade.amount.amount_minor),
            currency.ledger(),
            transfer_kind::TRADE_PAYMENT,
        )
        .with_flags(TransferFlags::PENDING);
        self.transfer(now, pending)?;
        self.spend(now, buyer, trade.amount);
        trade.buyer_id = Some(buyer);
        trade.hold = Some(hold);
        trade.status = TradeStatus::WaitSellerSend;
        trade.paid_at = Some(now);
        trade.deadline = None;
        Ok(self.save_trade(now, trade, "trade.paid"))
    }

    /// Posts what escrow holds to the seller: the trade is finished.
    fn release(&mut self, now: u64, mut trade: Trade, topic: &str) -> Result<Outcome, Refusal> {
        let hold = trade.hold.expect("a paid trade holds its money");
        let id = self.products.next_transfer_id(now);
        let to_seller = trade.amount.amount_minor - trade.refunded.amount_minor;
        // Posting less than the hold returns the rest to the buyer in the same step.
        if to_seller == 0 {
            self.transfer(now, Transfer::void(id, hold))?;
        } else if self.products.merchants.contains_key(&trade.seller_id) {
            let post = Transfer::post(id, hold, u128::from(to_seller));
            self.take_payment(now, &mut trade, post, to_seller)?;
        } else {
            self.transfer(now, Transfer::post(id, hold, u128::from(to_seller)))?;
        }
        trade.status = TradeStatus::TradeFinished;
        trade.refund_request = None;
        trade.deadline = None;
        Ok(self.save_trade(now, trade, topic))
    }

    /// Refunds the requested amount: all of it closes the trade, a part holds the rest again.
    fn agree_refund(&mut self, now: u64, mut trade: Trade) -> Result<Outcome, Refusal> {
        let request = trade
            .refund_request
            .take()
            .expect("a trade waiting for a refund answer has a request");
        let held = trade.held();
        if request.amount == held {
            return self.refund_all(now, trade, held);
        }
        self.refund_held(now, &mut trade, request.amount)?;
        trade.status = request.resume;
        trade.deadline = request.paused_ns.map(|left| now.saturating_add(left));
        Ok(self.save_trade(now, trade, "trade.refunded"))
    }

    /// Gives `amount` of what escrow holds back to the buyer: the hold is voided and the rest,
    /// if any, held again in the same linked step.
    pub(crate) fn refund_held(
        &mut self,
        now: u64,
        trade: &mut Trade,
        amount: Money,
    ) -> Result<(), Refusal> {
        let held = trade.held();
        let hold = trade.hold.expect("a paid trade holds its money");
        let void = Transfer::void(self.products.next_transfer_id(now), hold);
        if amount == held {
            self.transfer(now, void)?;
        } else {
            let new_hold = self.products.next_transfer_id(now);
            let currency = trade.amount.currency;
            let rest = Transfer::new(
                new_hold,
                wallet_account(trade.buyer_id.expect("a paid trade has a buyer"), currency),
                self.seller_account(trade.seller_id, currency),
                u128::from(held.amount_minor - amount.amount_minor),
                currency.ledger(),
                transfer_kind::TRADE_PAYMENT,
            )
            .with_flags(TransferFlags::PENDING);
            self.transfer_all(now, vec![void, rest])?;
            trade.hold = Some(new_hold);
        }
        trade.refunded.amount_minor += amount.amount_minor;
        Ok(())
    }

    /// Where a seller is paid: a merchant's balance, or a person's wallet.
    pub(crate) fn seller_account(&self, seller: Id, currency: crate::Currency) -> u128 {
        if self.products.merchants.contains_key(&seller) {
            crate::merchant::merchant_account(seller, currency)
        } else {
            wallet_account(seller, currency)
        }
    }

    /// Voids the hold: everything held goes back to the buyer and the trade closes.
    fn refund_all(&mut self, now: u64, mut trade: Trade, held: Money) -> Result<Outcome, Refusal> {
        let hold = trade.hold.expect("a paid trade holds its money");
        let id = self.products.next_transfer_id(now);
        self.transfer(now, Transfer::void(id, hold))?;
        trade.refunded.amount_minor += held.amount_minor;
        trade.status = TradeStatus::TradeClosed;
        trade.close_reason = Some("refunded".to_owned());
        trade.refund_request = None;
        trade.deadline = None;
        Ok(self.save_trade(now, trade, "trade.closed"))
    }

    fn close_unpaid(&mut self, now: u64, mut trade: Trade, reason: &str) -> Outcome {
        trade.status = TradeStatus::TradeClosed;
        trade.close_reason = Some(reason.to_owned());
        trade.deadline = None;
        self.save_trade(now, trade, "trade.closed")
    }

    /// An open trade the party may act on.
    fn trade_for(&self, id: Id, party: Party) -> Result<Trade, Refusal> {
        let trade = self
            .products
            .trades
            .get(&id)
            .ok_or(Refusal::TradeNotFound)?;
        let allowed = match party {
            Party::Seller(who) => self.sells(trade, who),
            Party::Buyer(who) => trade.buyer_id == Some(who),
            Party::Operator => true,
        };
        if !allowed {
            return Err(Refusal::TradeNotFound);
        }
        Ok(trade.clone())
    }

    pub(crate) fn save_trade(&mut self, now: u64, mut trade: Trade, topic: &str) -> Outcome {
        trade.updated_at = now;
        self.credit_trade_changed(now, &mut trade);
        self.products.put_trade(trade.clone());
        let outcome = Outcome::Trade(trade);
        let Outcome::Trade(trade) = &outcome else {
            unreachable!("just built")
        };
        // A merchant's webhooks go to the person who runs it.
        let seller = self
            .products
            .merchants
            .get(&trade.seller_id)
            .map_or(trade.seller_id, |m| m.owner_id);
        let mut to = vec![(seller, topic)];
        to.extend(trade.buyer_id.map(|buyer| (buyer, topic)));
        self.products.announce_to(&to, &outcome, now);
        // The gateway's asynchronous notification, for every status change a merchant hears
        // of (Alipay does not notify creation).
        if trade.notify_url.is_some() && topic != "trade.created" && topic != "trade.shipped" {
            self.products
                .announce(trade.seller_id, NOTIFY_TOPIC, &outcome, now);
        }
        outcome
    }
}

fn expect_status(trade: &Trade, allowed: &[TradeStatus]) -> Result<(), Refusal> {
    if allowed.contains(&trade.status) {
        Ok(())
    } else {
        Err(Refusal::TradeStatusInvalid {
            status: trade.status,
        })
    }
}

/// A refund must be in the trade's currency, above zero and within what is held (strictly
/// within for a split, which leaves the seller a part).
fn check_refund(trade: &Trade, amount: Money, split: bool) -> Result<(), Refusal> {
    positive(amount)?;
    let held = trade.held();
    if amount.currency != held.currency {
        return Err(Refusal::CurrencyMismatch {
            expected: held.currency,
        });
    }
    if amount.amount_minor > held.amount_minor || (split && amount == held) {
        return Err(Refusal::RefundTooLarge { held });
    }
    Ok(())
}

/// Text kept to `TEXT_MAX` bytes, cut at a character boundary (the edge refuses longer text;
/// this keeps the core's rows bounded whatever calls it).
pub(crate) fn clip(text: &str) -> String {
    let mut end = text.len().min(TEXT_MAX);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_owned()
}
