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

/// Longest out_trade_no, subject, note or reason the core keeps (in bytes).
pub const TEXT_MAX: usize = 256;

/// Where a trade stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TradeStatus {
    /// Created, waiting for the buyer to pay.
    WaitBuyerPay,
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
    pub const ALL: [TradeStatus; 7] = [
        TradeStatus::WaitBuyerPay,
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
            } => self.create_trade(now, *seller_id, *buyer_id, out_trade_no, subject, *amount),
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
                self.release(now, trade, "trade.finished")
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
                match decision {
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
                }
            }
        }
    }

    /// Moves a trade whose deadline passed: closes it unpaid, confirms receipt on the buyer's
    /// behalf, or agrees to a refund the seller did not answer.
    pub(crate) fn trade_due(&mut self, now: u64, id: Id) {
        let trade = self.products.trades[&id].clone();
        let moved = match trade.status {
            TradeStatus::WaitBuyerPay => Ok(self.close_unpaid(now, trade, "not paid in time")),
            TradeStatus::WaitBuyerConfirm => self.release(now, trade, "trade.finished"),
            TradeStatus::RefundRequested => self.agree_refund(now, trade),
            status => panic!("a {status} trade has no timer"),
        };
        // Releasing posts a hold the books keep open for the trade: it cannot be refused.
        moved.expect("a trade's timer moves it on");
    }

    fn create_trade(
        &mut self,
        now: u64,
        seller: Id,
        buyer: Option<Id>,
        out_trade_no: &str,
        subject: &str,
        amount: Money,
    ) -> Result<Outcome, Refusal> {
        positive(amount)?;
        self.person(seller, None)?;
        if buyer == Some(seller) {
            return Err(Refusal::BuyerIsSeller);
        }
        if let Some(buyer) = buyer
            && !self.products.people.contains_key(&buyer)
        {
            return Err(Refusal::PayeeNotFound);
        }
        // The number as it is kept: two numbers that differ only past `TEXT_MAX` are one.
        let out_trade_no = clip(out_trade_no);
        if self.products.number_taken(seller, &out_trade_no) {
            return Err(Refusal::DuplicateOutTradeNo);
        }
        let currency = amount.currency;
        self.ensure_wallet(now, seller, currency);
        let trade = Trade {
            id: self.products.next_id(now),
            seller_id: seller,
            buyer_id: buyer,
            out_trade_no,
            subject: clip(subject),
            amount,
            status: TradeStatus::WaitBuyerPay,
            refunded: Money::new(0, currency),
            tracking: None,
            refund_request: None,
            close_reason: None,
            deadline: Some(now.saturating_add(self.products.settings.pay_timeout_ns)),
            created_at: now,
            paid_at: None,
            updated_at: now,
            hold: None,
        };
        Ok(self.save_trade(now, trade, "trade.created"))
    }

    fn pay_trade(&mut self, now: u64, id: Id, buyer: Id) -> Result<Outcome, Refusal> {
        let mut trade = self
            .products
            .trades
            .get(&id)
            .cloned()
            .ok_or(Refusal::TradeNotFound)?;
        if trade.buyer_id.is_some_and(|named| named != buyer) {
            return Err(Refusal::TradeNotFound);
        }
        expect_status(&trade, &[TradeStatus::WaitBuyerPay])?;
        if trade.seller_id == buyer {
            return Err(Refusal::BuyerIsSeller);
        }
        self.check_limit(now, buyer, trade.amount)?;
        let hold = self.products.next_transfer_id(now);
        let currency = trade.amount.currency;
        let pending = Transfer::new(
            hold,
            wallet_account(buyer, currency),
            wallet_account(trade.seller_id, currency),
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
        let hold = trade.hold.expect("a paid trade holds its money");
        let void = Transfer::void(self.products.next_transfer_id(now), hold);
        let new_hold = self.products.next_transfer_id(now);
        let currency = trade.amount.currency;
        let rest = Transfer::new(
            new_hold,
            wallet_account(trade.buyer_id.expect("a paid trade has a buyer"), currency),
            wallet_account(trade.seller_id, currency),
            u128::from(held.amount_minor - request.amount.amount_minor),
            currency.ledger(),
            transfer_kind::TRADE_PAYMENT,
        )
        .with_flags(TransferFlags::PENDING);
        self.transfer_all(now, vec![void, rest])?;
        trade.hold = Some(new_hold);
        trade.refunded.amount_minor += request.amount.amount_minor;
        trade.status = request.resume;
        trade.deadline = request.paused_ns.map(|left| now.saturating_add(left));
        Ok(self.save_trade(now, trade, "trade.refunded"))
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
            Party::Seller(who) => trade.seller_id == who,
            Party::Buyer(who) => trade.buyer_id == Some(who),
            Party::Operator => true,
        };
        if !allowed {
            return Err(Refusal::TradeNotFound);
        }
        Ok(trade.clone())
    }

    fn save_trade(&mut self, now: u64, mut trade: Trade, topic: &str) -> Outcome {
        trade.updated_at = now;
        self.products.put_trade(trade.clone());
        let outcome = Outcome::Trade(trade);
        let Outcome::Trade(trade) = &outcome else {
            unreachable!("just built")
        };
        let mut to = vec![(trade.seller_id, topic)];
        to.extend(trade.buyer_id.map(|buyer| (buyer, topic)));
        self.products.announce_to(&to, &outcome, now);
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
fn clip(text: &str) -> String {
    let mut end = text.len().min(TEXT_MAX);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_owned()
}
