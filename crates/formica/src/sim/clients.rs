//! The simulated clients: people who top up, withdraw, pay each other, trade through escrow,
//! refund and dispute, and keep pocket money in the fund; a shop that charges at its till,
//! refunds, cancels, pays people out, checks the credit of people who let it (who grant
//! and withdraw that consent) and holds deposits (authorised by the person, charged or
//! released; people repay the debts a charge leaves); an operator who decides disputes,
//! posts the fund's daily income and sets holidays. Every command carries an idempotency key,
//! and a client whose command got no answer sends it again with the same key until it does,
//! as a well-behaved client of the API would.

#![allow(
    clippy::inconsistent_digit_grouping,
    reason = "amounts in fen read as yuan_fen: 100_00 is 100.00 yuan"
)]

use formica_core::credit::CreditCommand;
use formica_core::deposit::{HoldCommand, HoldStatus, NewFreeze};
use formica_core::fund::{FundCommand, Income};
use formica_core::merchant::{CodeUse, MerchantCommand, MerchantProfile};
use formica_core::products::PLATFORM;
use formica_core::trade::{Decision, NewTrade, TradeCommand, TradeStatus};
use formica_core::wallet::{Level, MovementStatus, WalletCommand};
use formica_core::{
    Command, CommandError, Core, Currency, Id, IdempotencyKey, Money, Outcome, ProductCommand,
    ProductRequest, Refusal, Reply,
};
use rand::Rng;
use rand::rngs::SmallRng;

/// People 1..=PEOPLE; the last one manages the fund.
pub const PEOPLE: u64 = 6;
const MANAGER: Id = Id(PEOPLE);
/// The person who owns the shop.
const SHOP_OWNER: Id = Id(PEOPLE - 1);

/// What the clients know: the objects their acknowledged commands made.
#[derive(Debug, Default)]
pub struct Clients {
    /// Keys handed out so far.
    keys: u64,
    /// Trades, as their last answer showed them.
    pub trades: Vec<TradeView>,
    /// Bank movements waiting for the bank.
    pub movements: Vec<Id>,
    /// The fund, once the operator opened it.
    pub fund: Option<Id>,
    /// The shop, once its owner opened it.
    pub merchant: Option<Id>,
    /// The shop's paid till trades.
    pub till_trades: Vec<Id>,
    /// The out_trade_no handed out last.
    numbers: u64,
    /// Open holds: (hold, person, status).
    pub holds: Vec<(Id, Id, HoldStatus)>,
    /// Debts not yet repaid: (debt, person).
    pub debts: Vec<(Id, Id)>,
}

/// A trade as a client last saw it.
#[derive(Clone, Copy, Debug)]
pub struct TradeView {
    id: Id,
    seller: Id,
    buyer: Option<Id>,
    status: TradeStatus,
}

fn cny(minor: u64) -> Money {
    Money::new(minor, Currency::CNY)
}

impl Clients {
    /// The commands that open the world: wallets, levels, a first top-up each, the fund.
    pub fn setup(&mut self) -> Vec<Command> {
        let mut commands = Vec::new();
        for person in 1..=PEOPLE {
            let user_id = Id(person);
            commands.push(self.keyed(
                user_id,
                ProductCommand::Wallet(WalletCommand::OpenWallet {
                    user_id,
                    currency: Currency::CNY,
                }),
            ));
            if person % 2 == 0 {
                commands.push(self.keyed(
                    PLATFORM,
                    ProductCommand::Wallet(WalletCommand::SetLevel {
                        user_id,
                        level: Level::Verified,
                    }),
                ));
            }
        }
        commands.push(self.keyed(
            SHOP_OWNER,
            ProductCommand::Merchant(MerchantCommand::Open(Box::new(MerchantProfile {
                owner_id: SHOP_OWNER,
                name: "Tea House".into(),
                contact: "tea@example.com".into(),
                category: "food".into(),
                country: "CN".into(),
                currency: Currency::CNY,
                card_id: Id(7),
            }))),
        ));
        commands.push(self.keyed(
            PLATFORM,
            ProductCommand::Hold(HoldCommand::AddFunding {
                amount: cny(1_000_000_00),
            }),
        ));
        commands.push(self.keyed(
            PLATFORM,
            ProductCommand::Fund(FundCommand::Create {
                name: "Pocket".into(),
                currency: Currency::CNY,
                manager_id: MANAGER,
                cutoff_second: 15 * 3600,
                instant_limit: cny(10_000_00),
            }),
        ));
        commands
    }

    /// A command under a key of its own.
    fn keyed(&mut self, owner: Id, command: ProductCommand) -> Command {
        self.keys += 1;
        Command::Product(ProductRequest {
            idempotency: Some(IdempotencyKey {
                owner,
                key: format!("sim-{}", self.keys),
                fingerprint: format!("{command:?}"),
            }),
            command,
        })
    }

    /// Learns from the answer to a command.
    pub fn learn(&mut self, command: &Command, answer: &Result<Reply, CommandError>) {
        let outcome = match answer {
            Ok(Reply::Product(outcome)) => outcome,
            Err(CommandError::Refused(Refusal::MovementNotFound)) => {
                // The bank's timeout failed it first.
                if let Command::Product(ProductRequest {
                    command:
                        ProductCommand::Wallet(WalletCommand::SettleMovement { movement_id, .. }),
                    ..
                }) = command
                {
                    self.movements.retain(|id| id != movement_id);
                }
                return;
            }
            Err(CommandError::Refused(Refusal::HoldNotFound)) => {
                // Closed by its timer: forgotten.
                if let Command::Product(ProductRequest {
                    command:
                        ProductCommand::Hold(
                            HoldCommand::Authorize { hold_id, .. }
                            | HoldCommand::Charge { hold_id, .. }
                            | HoldCommand::Unfreeze { hold_id, .. },
                        ),
                    ..
                }) = command
                {
                    self.holds.retain(|(id, ..)| id != hold_id);
                }
                return;
            }
            Err(CommandError::Refused(Refusal::TradeNotFound)) => {
                // Closed by its timer (or never this client's): forgotten.
                if let Command::Product(ProductRequest {
                    command: ProductCommand::Trade(trade),
                    ..
                }) = command
                {
                    let id = trade.trade_id();
                    self.trades.retain(|t| Some(t.id) != id);
                }
                return;
            }
            _ => return,
        };
        match outcome {
            Outcome::Trade(trade) if trade.status == TradeStatus::TradeSuccess => {
                self.till_trades.retain(|id| *id != trade.id);
                self.till_trades.push(trade.id);
            }
            Outcome::Trade(trade) => {
                self.till_trades.retain(|id| *id != trade.id);
                let view = TradeView {
                    id: trade.id,
                    seller: trade.seller_id,
                    buyer: trade.buyer_id,
                    status: trade.status,
                };
                // Over is over: clients move on to the open ones.
                self.trades.retain(|t| t.id != trade.id);
                if !matches!(
                    trade.status,
                    TradeStatus::TradeFinished | TradeStatus::TradeClosed
                ) {
                    self.trades.push(view);
                }
            }
            Outcome::Movement(movement) => {
                if movement.status == MovementStatus::Pending {
                    if !self.movements.contains(&movement.id) {
                        self.movements.push(movement.id);
                    }
                } else {
                    self.movements.retain(|id| *id != movement.id);
                }
            }
            Outcome::Fund(fund) => self.fund = Some(fund.id),
            Outcome::Merchant(merchant) => self.merchant = Some(merchant.id),
            Outcome::Refund(receipt) if receipt.trade.status != TradeStatus::TradeSuccess => {
                self.till_trades.retain(|id| *id != receipt.trade.id);
            }
            Outcome::Hold(hold) => {
                self.holds.retain(|(id, ..)| *id != hold.id);
                if hold.status != HoldStatus::Closed {
                    self.holds.push((hold.id, hold.person_id, hold.status));
                }
                if let Some(debt) = hold.debt_id
                    && !self.debts.iter().any(|(id, _)| *id == debt)
                {
                    self.debts.push((debt, hold.person_id));
                }
            }
            Outcome::Debt(debt) if debt.repaid_at.is_some() => {
                self.debts.retain(|(id, _)| *id != debt.id);
            }
            _ => {}
        }
    }

    /// A random command of a random client. `core` is the platform as it stands (the
    /// operator reads the fund's progress from it, as from its report page).
    pub fn next(&mut self, rng: &mut SmallRng, core: &Core) -> Command {
        let person = |rng: &mut SmallRng| Id(rng.random_range(1..=PEOPLE));
        let amount = |rng: &mut SmallRng| cny(rng.random_range(1..=3_000_00));
        let trade = |rng: &mut SmallRng, trades: &[TradeView]| {
            // Mostly the recent trades, which are the ones still open.
            let recent = trades.len().saturating_sub(8);
            (!trades.is_empty()).then(|| trades[rng.random_range(recent..trades.len())])
        };
        loop {
            let (owner, command) = match rng.random_range(0..140) {
                0..12 => {
                    let user_id = person(rng);
                    let command = if rng.random_bool(0.7) {
                        WalletCommand::StartTopUp {
                            user_id,
                            amount: cny(rng.random_range(100_00..=20_000_00)),
                            card_id: Id(1),
                        }
                    } else {
                        WalletCommand::StartWithdrawal {
                            user_id,
                            amount: amount(rng),
                            card_id: Id(1),
                        }
                    };
                    (user_id, ProductCommand::Wallet(command))
                }
                12..20 => {
                    if self.movements.is_empty() {
                        continue;
                    }
                    let movement_id = self.movements[rng.random_range(0..self.movements.len())];
                    let succeeded = rng.random_bool(0.85);
                    (
                        PLATFORM,
                        ProductCommand::Wallet(WalletCommand::SettleMovement {
                            movement_id,
                            succeeded,
                            failure: (!succeeded).then(|| "declined".into()),
                        }),
                    )
                }
                20..30 => {
                    let from_user_id = person(rng);
                    (
                        from_user_id,
                        ProductCommand::Wallet(WalletCommand::Transfer {
                            from_user_id,
                            to_user_id: person(rng),
                            amount: amount(rng),
                            note: String::new(),
                        }),
                    )
                }
                30..40 => {
                    let seller_id = person(rng);
                    self.numbers += 1;
                    let buyer_id = rng.random_bool(0.5).then(|| person(rng));
                    (
                        seller_id,
                        ProductCommand::Trade(TradeCommand::Create {
                            seller_id,
                            buyer_id,
                            out_trade_no: format!("T{}", self.numbers),
                            subject: "a teapot".into(),
                            amount: amount(rng),
                        }),
                    )
                }
                40..75 => {
                    let Some(trade) = trade(rng, &self.trades) else {
                        continue;
                    };
                    return self.trade_command(rng, trade);
                }
                75..98 => {
                    let Some(fund_id) = self.fund else {
                        continue;
                    };
                    let holder_id = person(rng);
                    let command = match rng.random_range(0..10) {
                        0..4 => FundCommand::Subscribe {
                            fund_id,
                            holder_id,
                            amount: amount(rng),
                        },
                        4..7 => FundCommand::Redeem {
                            fund_id,
                            holder_id,
                            amount: amount(rng),
                            instant: rng.random_bool(0.6),
                        },
                        7 => {
                            let Some(trade) = trade(rng, &self.trades) else {
                                continue;
                            };
                            FundCommand::PayTrade {
                                fund_id,
                                trade_id: trade.id,
                                buyer_id: trade.buyer.unwrap_or(holder_id),
                            }
                        }
                        _ => {
                            let Some(fund) = core.fund(fund_id) else {
                                continue;
                            };
                            let income = Income(rng.random_range(0..30_000));
                            return self.keyed(
                                MANAGER,
                                ProductCommand::Fund(FundCommand::PostIncome {
                                    fund_id,
                                    day: fund.accrued_through + 1,
                                    income,
                                }),
                            );
                        }
                    };
                    (holder_id, ProductCommand::Fund(command))
                }
                98..108 => {
                    let Some(merchant_id) = self.merchant else {
                        continue;
                    };
                    let paid = (!self.till_trades.is_empty()).then(|| {
                        let recent = self.till_trades.len().saturating_sub(6);
                        self.till_trades[rng.random_range(recent..self.till_trades.len())]
                    });
                    self.numbers += 1;
                    let command = match (rng.random_range(0..10), paid) {
                        (0..5, _) | (_, None) => {
                            let mut trade = NewTrade::escrow(
                                merchant_id,
                                None,
                                &format!("M{}", self.numbers),
                                "tea",
                                amount(rng),
                            );
                            trade.escrow = false;
                            MerchantCommand::Charge {
                                trade: Box::new(trade),
                                buyer_id: person(rng),
                                code: None,
                            }
                        }
                        (5..8, Some(trade_id)) => MerchantCommand::Refund {
                            merchant_id,
                            trade_id,
                            out_request_no: format!("R{}", self.numbers),
                            amount: amount(rng),
                            reason: "returned".into(),
                        },
                        (8, Some(trade_id)) => MerchantCommand::Cancel {
                            merchant_id,
                            trade_id,
                        },
                        _ => MerchantCommand::Payout {
                            merchant_id,
                            to_user_id: person(rng),
                            amount: amount(rng),
                            note: "prize".into(),
                        },
                    };
                    (SHOP_OWNER, ProductCommand::Merchant(command))
                }
                108..116 => {
                    let Some(merchant_id) = self.merchant else {
                        continue;
                    };
                    let person_id = person(rng);
                    match rng.random_range(0..4) {
                        0 => (
                            person_id,
                            ProductCommand::Credit(CreditCommand::Grant {
                                person_id,
                                merchant_id,
                            }),
                        ),
                        1 => (
                            person_id,
                            ProductCommand::Credit(CreditCommand::Withdraw {
                                person_id,
                                merchant_id,
                            }),
                        ),
                        // Now and then a threshold out of range.
                        _ => (
                            SHOP_OWNER,
                            ProductCommand::Credit(CreditCommand::Check {
                                merchant_id,
                                person_id,
                                threshold: rng.random_range(340..=960),
                            }),
                        ),
                    }
                }
                116..126 => {
                    let Some(merchant_id) = self.merchant else {
                        continue;
                    };
                    let open = (!self.holds.is_empty())
                        .then(|| self.holds[rng.random_range(0..self.holds.len())]);
                    let debt = (!self.debts.is_empty())
                        .then(|| self.debts[rng.random_range(0..self.debts.len())]);
                    match (rng.random_range(0..8), open, debt) {
                        (0..2, ..) | (_, None, None) => {
                            self.numbers += 1;
                            let threshold =
                                rng.random_bool(0.8).then(|| rng.random_range(450..=700));
                            let (person_id, out_order_no) =
                                (person(rng), format!("H{}", self.numbers));
                            let (title, amount) =
                                ("a car".to_owned(), cny(rng.random_range(1..=20_000_00)));
                            let command = if rng.random_bool(0.5) {
                                HoldCommand::Request {
                                    merchant_id,
                                    person_id,
                                    out_order_no,
                                    title,
                                    amount,
                                    threshold,
                                }
                            } else {
                                // At a counter, with the person's payment code (now and then
                                // one already used: refused).
                                let code =
                                    format!("28{:016}", self.numbers - rng.random_range(0..2));
                                HoldCommand::Freeze(Box::new(NewFreeze {
                                    merchant_id,
                                    person_id,
                                    code: Some(CodeUse {
                                        code,
                                        expires_at: core.ledger().timestamp() + 60 * 1_000_000_000,
                                    }),
                                    out_request_no: out_order_no.clone(),
                                    out_order_no,
                                    title,
                                    amount,
                                    threshold,
                                    notify: None,
                                }))
                            };
                            (SHOP_OWNER, ProductCommand::Hold(command))
                        }
                        (2..4, Some((hold_id, person_id, _)), _) => (
                            person_id,
                            ProductCommand::Hold(HoldCommand::Authorize { hold_id, person_id }),
                        ),
                        (4..6, Some((hold_id, ..)), _) => (
                            SHOP_OWNER,
                            ProductCommand::Hold(HoldCommand::Charge {
                                hold_id,
                                merchant_id,
                                // Now and then more than the wallet holds: a debt.
                                amount: cny(rng.random_range(1..=20_000_00)),
                                out_trade_no: None,
                            }),
                        ),
                        (6, Some((hold_id, ..)), _) => (
                            SHOP_OWNER,
                            ProductCommand::Hold(HoldCommand::Unfreeze {
                                hold_id,
                                merchant_id,
                                // Now and then a part: the rest stays held.
                                amount: rng
                                    .random_bool(0.5)
                                    .then(|| cny(rng.random_range(1..=20_000_00))),
                            }),
                        ),
                        (_, _, Some((debt_id, person_id))) => (
                            person_id,
                            ProductCommand::Hold(HoldCommand::Repay {
                                debt_id,
                                person_id,
                                amount: amount(rng),
                            }),
                        ),
                        _ => continue,
                    }
                }
                128..140 => {
                    use formica_core::credit_line::CreditLineCommand as Line;
                    if rng.random_ratio(1, 30) {
                        // The operator changes the line's rules (now and then out of bounds).
                        return self.keyed(
                            PLATFORM,
                            ProductCommand::CreditLine(Line::SetPolicy(Box::new(policy(rng)))),
                        );
                    }
                    let person_id = person(rng);
                    let command = match rng.random_range(0..10) {
                        // Now and then a due day that is refused.
                        0 => Line::Open {
                            person_id,
                            due_day: rng.random_range(8..=11),
                        },
                        1..5 => {
                            let Some(trade) = trade(rng, &self.trades) else {
                                continue;
                            };
                            let buyer_id = trade.buyer.unwrap_or(person_id);
                            return self.keyed(
                                buyer_id,
                                ProductCommand::CreditLine(Line::PayTrade {
                                    trade_id: trade.id,
                                    buyer_id,
                                }),
                            );
                        }
                        5..9 => Line::Repay {
                            person_id,
                            amount: amount(rng),
                        },
                        _ => Line::Instalments {
                            person_id,
                            periods: [2, 3, 6, 9, 12][rng.random_range(0..5)],
                        },
                    };
                    (person_id, ProductCommand::CreditLine(command))
                }
                _ => {
                    // A holiday or two around today, as an operator declares them.
                    let today = core.settings().day(core.ledger().timestamp());
                    let days = (0..rng.random_range(0..3))
                        .map(|_| today + rng.random_range(-2..10))
                        .collect();
                    (
                        PLATFORM,
                        ProductCommand::Fund(FundCommand::SetHolidays { days }),
                    )
                }
            };
            return self.keyed(owner, command);
        }
    }

    /// What a party of `trade` does next, as its status allows; now and then something it
    /// does not allow, or by someone who is not a party.
    fn trade_command(&mut self, rng: &mut SmallRng, trade: TradeView) -> Command {
        let person = Id(rng.random_range(1..=PEOPLE));
        let stray = rng.random_bool(0.15);
        let seller_id = if stray { person } else { trade.seller };
        let buyer_id = match trade.buyer {
            Some(buyer) if !stray => buyer,
            _ => person,
        };
        let most = trade_amount_hint(rng);
        let amount = cny(rng.random_range(1..=most));
        let trade_id = trade.id;
        let status = if stray {
            TradeStatus::ALL[rng.random_range(0..TradeStatus::ALL.len())]
        } else {
            trade.status
        };
        let command = match status {
            TradeStatus::WaitBuyerPay if rng.random_bool(0.85) => {
                TradeCommand::Pay { trade_id, buyer_id }
            }
            TradeStatus::WaitBuyerPay => TradeCommand::Close {
                trade_id,
                seller_id,
            },
            TradeStatus::WaitSellerSend if rng.random_bool(0.75) => TradeCommand::Ship {
                trade_id,
                seller_id,
                tracking: "SF123".into(),
            },
            TradeStatus::WaitBuyerConfirm if rng.random_bool(0.7) => {
                TradeCommand::ConfirmReceipt { trade_id, buyer_id }
            }
            TradeStatus::WaitSellerSend
            | TradeStatus::WaitBuyerConfirm
            | TradeStatus::TradeSuccess
            | TradeStatus::TradeFinished
            | TradeStatus::TradeClosed => TradeCommand::RequestRefund {
                trade_id,
                buyer_id,
                amount,
                reason: "broken".into(),
            },
            TradeStatus::RefundRequested => TradeCommand::AnswerRefund {
                trade_id,
                seller_id,
                agree: rng.random_bool(0.5),
            },
            TradeStatus::Dispute => {
                let decision = match rng.random_range(0..3) {
                    0 => Decision::Refund,
                    1 => Decision::Release,
                    _ => Decision::Split { refund: amount },
                };
                return self.keyed(
                    PLATFORM,
                    ProductCommand::Trade(TradeCommand::Decide { trade_id, decision }),
                );
            }
        };
        let owner = match command {
            TradeCommand::Ship { .. }
            | TradeCommand::AnswerRefund { .. }
            | TradeCommand::Close { .. } => seller_id,
            _ => buyer_id,
        };
        self.keyed(owner, ProductCommand::Trade(command))
    }
}

/// The largest refund a buyer asks for: mostly small, sometimes more than the price.
/// Credit line rules an operator might set: mostly within bounds, now and then not.
fn policy(rng: &mut SmallRng) -> formica_core::credit_line::CreditPolicy {
    use formica_core::credit_line::{CreditPolicy, InstalmentFee};
    let mut instalments = Vec::new();
    for (periods, fee) in [(3, 25), (6, 45), (9, 65), (12, 88)] {
        if rng.random_bool(0.7) {
            instalments.push(InstalmentFee {
                periods,
                fee_per_mille: fee + rng.random_range(0..20),
            });
        }
    }
    CreditPolicy {
        line_score_min: rng.random_range(340..=700),
        line_per_point: cny(rng.random_range(50..=300) * 100),
        minimum_per_mille: rng.random_range(50..=300),
        daily_interest_per_10k: rng.random_range(0..=11),
        instalments,
        debt_days: rng.random_range(1..=14),
        ..CreditPolicy::default()
    }
}

fn trade_amount_hint(rng: &mut SmallRng) -> u64 {
    if rng.random_bool(0.8) {
        500_00
    } else {
        5_000_00
    }
}
