//! The products through the core's public interface: every transition of an escrow trade,
//! wallets and their limits, bank movements, timers, and a property test that random product
//! commands never lose or invent money.

#![allow(
    clippy::inconsistent_digit_grouping,
    reason = "amounts in fen read as yuan_fen: 100_00 is 100.00 yuan"
)]

use formica_core::trade::{Decision, TradeCommand, TradeStatus};
use formica_core::wallet::{
    Level, MovementStatus, WalletCommand, clearing_account, wallet_account,
};
use formica_core::{
    Command, CommandError, Core, Currency, Id, Outcome, ProductCommand, ProductRequest, Refusal,
    Reply, Settings,
};
use proptest::prelude::*;

mod credit;
mod credit_line;
mod deposit;
mod fund;
mod merchant;

const SECOND: u64 = 1_000_000_000;
const START: u64 = 1_800_000_000 * SECOND;

fn cny(minor: u64) -> formica_core::Money {
    formica_core::Money::new(minor, Currency::CNY)
}

struct World {
    core: Core,
    now: u64,
    /// Every trade as the batches wrote it: the store, for the trades the writer recalls.
    trades: std::collections::HashMap<Id, formica_core::trade::Trade>,
}

impl World {
    fn new() -> Self {
        World {
            core: Core::default(),
            now: START,
            trades: std::collections::HashMap::new(),
        }
    }

    /// Keeps the batch's trades, as the store would.
    fn keep(&mut self) {
        for trade in self.core.effects().products.trades {
            self.trades.insert(trade.id, trade);
        }
    }

    fn run(&mut self, command: ProductCommand) -> Result<Outcome, Refusal> {
        self.now += SECOND;
        let command = Command::Product(ProductRequest {
            command,
            idempotency: None,
        });
        // What the writer does: the store loads the trades the command names, and says
        // which of the numbers it creates are taken.
        for id in self.core.trades_to_recall([&command]) {
            if let Some(trade) = self.trades.get(&id) {
                self.core.recall_trade(trade.clone());
            }
        }
        for (seller, number) in self.core.numbers_to_check([&command]) {
            if self
                .trades
                .values()
                .any(|t| t.seller_id == seller && t.out_trade_no == number)
            {
                self.core.recall_number(seller, number);
            }
        }
        self.core.begin_batch();
        self.core.expire(self.now);
        let reply = self.core.apply(self.now, &command);
        self.keep();
        self.core.commit_batch();
        match reply {
            Ok(Reply::Product(outcome)) => Ok(outcome),
            Err(CommandError::Refused(refusal)) => Err(refusal),
            other => panic!("unexpected reply {other:?}"),
        }
    }

    fn wallet(&mut self, command: WalletCommand) -> Result<Outcome, Refusal> {
        self.run(ProductCommand::Wallet(command))
    }

    fn trade(&mut self, command: TradeCommand) -> Result<Outcome, Refusal> {
        self.run(ProductCommand::Trade(command))
    }

    /// Moves the clock and runs the timers.
    fn advance(&mut self, nanos: u64) {
        self.now += nanos;
        self.core.begin_batch();
        self.core.expire(self.now);
        self.keep();
        self.core.commit_batch();
    }

    fn person(&mut self, user: u64, balance_minor: u64) -> Id {
        let id = Id(user);
        self.wallet(WalletCommand::OpenWallet {
            user_id: id,
            currency: Currency::CNY,
        })
        .expect("opens");
        if balance_minor > 0 {
            let Outcome::Movement(movement) = self
                .wallet(WalletCommand::StartTopUp {
                    user_id: id,
                    amount: cny(balance_minor),
                    card_id: Id(1),
                })
                .expect("starts")
            else {
                panic!("a movement")
            };
            self.wallet(WalletCommand::SettleMovement {
                movement_id: movement.id,
                succeeded: true,
                failure: None,
            })
            .expect("settles");
        }
        id
    }

    /// (available, pending out) of a wallet.
    fn balance(&self, user: Id) -> (i128, u128) {
        let account = self
            .core
            .ledger()
            .account(wallet_account(user, Currency::CNY))
            .expect("has a wallet");
        (account.available(), account.debits_pending)
    }

    fn incoming(&self, user: Id) -> u128 {
        self.core
            .ledger()
            .account(wallet_account(user, Currency::CNY))
            .expect("has a wallet")
            .credits_pending
    }

    fn create(&mut self, seller: Id, no: &str, minor: u64) -> Id {
        match self.trade(TradeCommand::Create {
            seller_id: seller,
            buyer_id: None,
            out_trade_no: no.into(),
            subject: "a teapot".into(),
            amount: cny(minor),
        }) {
            Ok(Outcome::Trade(trade)) => trade.id,
            other => panic!("created: {other:?}"),
        }
    }

    /// A seller, a buyer holding 100.00, and a 30.00 trade the buyer has paid.
    fn paid_trade(&mut self) -> (Id, Id, Id) {
        let seller = self.person(1, 0);
        let buyer = self.person(2, 100_00);
        let trade = self.create(seller, "A1", 30_00);
        self.trade(TradeCommand::Pay {
            trade_id: trade,
            buyer_id: buyer,
        })
        .expect("pays");
        (seller, buyer, trade)
    }

    fn status(&mut self, outcome: Result<Outcome, Refusal>) -> TradeStatus {
        match outcome {
            Ok(Outcome::Trade(trade)) => trade.status,
            other => panic!("a trade: {other:?}"),
        }
    }

    fn assert_balanced(&self) {
        self.core.ledger().verify().expect("the books hold");
        for totals in self.core.ledger().totals().values() {
            assert!(totals.balanced(), "debits equal credits");
        }
    }
}

#[test]
fn escrow_holds_the_money_until_the_buyer_confirms() {
    let mut w = World::new();
    let seller = w.person(1, 0);
    let buyer = w.person(2, 100_00);
    let trade = w.create(seller, "A1", 30_00);
    let paid = w.trade(TradeCommand::Pay {
        trade_id: trade,
        buyer_id: buyer,
    });
    assert_eq!(w.status(paid), TradeStatus::WaitSellerSend);
    assert_eq!(w.balance(buyer), (70_00, 30_00));
    assert_eq!(w.incoming(seller), 30_00);
    assert_eq!(w.balance(seller).0, 0, "the seller cannot spend it yet");
    let shipped = w.trade(TradeCommand::Ship {
        trade_id: trade,
        seller_id: seller,
        tracking: "SF123".into(),
    });
    assert_eq!(w.status(shipped), TradeStatus::WaitBuyerConfirm);
    let confirmed = w.trade(TradeCommand::ConfirmReceipt {
        trade_id: trade,
        buyer_id: buyer,
    });
    assert_eq!(w.status(confirmed), TradeStatus::TradeFinished);
    assert_eq!(w.balance(buyer), (70_00, 0));
    assert_eq!(w.balance(seller), (30_00, 0));
    // Released once: a second confirmation finds no open trade.
    assert_eq!(
        w.trade(TradeCommand::ConfirmReceipt {
            trade_id: trade,
            buyer_id: buyer
        }),
        Err(Refusal::TradeNotFound)
    );
    w.assert_balanced();
}

#[test]
fn receipt_is_confirmed_automatically_after_the_confirm_period() {
    let mut w = World::new();
    let (seller, _buyer, trade) = w.paid_trade();
    w.trade(TradeCommand::Ship {
        trade_id: trade,
        seller_id: seller,
        tracking: "SF".into(),
    })
    .expect("ships");
    let period = Settings::default().confirm_timeout_ns;
    w.advance(period - 10 * SECOND);
    assert_eq!(w.balance(seller).0, 0, "not yet");
    w.advance(20 * SECOND);
    assert_eq!(w.balance(seller), (30_00, 0));
    assert!(w.core.open_trade(trade).is_none());
    w.assert_balanced();
}

#[test]
fn an_unpaid_trade_closes_after_the_pay_timeout_and_cannot_be_paid() {
    let mut w = World::new();
    let seller = w.person(1, 0);
    let buyer = w.person(2, 100_00);
    let trade = w.create(seller, "A1", 30_00);
    w.advance(Settings::default().pay_timeout_ns + SECOND);
    assert_eq!(
        w.trade(TradeCommand::Pay {
            trade_id: trade,
            buyer_id: buyer
        }),
        Err(Refusal::TradeNotFound)
    );
    assert_eq!(w.balance(buyer), (100_00, 0));
}

#[test]
fn a_partial_refund_returns_its_part_and_keeps_holding_the_rest() {
    let mut w = World::new();
    let (seller, buyer, trade) = w.paid_trade();
    let asked = w.trade(TradeCommand::RequestRefund {
        trade_id: trade,
        buyer_id: buyer,
        amount: cny(10_00),
        reason: "one cup broken".into(),
    });
    assert_eq!(w.status(asked), TradeStatus::RefundRequested);
    let agreed = w.trade(TradeCommand::AnswerRefund {
        trade_id: trade,
        seller_id: seller,
        agree: true,
    });
    assert_eq!(w.status(agreed), TradeStatus::WaitSellerSend);
    assert_eq!(w.balance(buyer), (80_00, 20_00));
    assert_eq!(w.incoming(seller), 20_00);
    w.trade(TradeCommand::Ship {
        trade_id: trade,
        seller_id: seller,
        tracking: "SF".into(),
    })
    .expect("ships");
    w.trade(TradeCommand::ConfirmReceipt {
        trade_id: trade,
        buyer_id: buyer,
    })
    .expect("confirms");
    assert_eq!(w.balance(buyer), (80_00, 0));
    assert_eq!(w.balance(seller), (20_00, 0));
    w.assert_balanced();
}

#[test]
fn a_refused_refund_goes_to_dispute_and_the_operator_splits_it() {
    let mut w = World::new();
    let (seller, buyer, trade) = w.paid_trade();
    w.trade(TradeCommand::RequestRefund {
        trade_id: trade,
        buyer_id: buyer,
        amount: cny(30_00),
        reason: "never arrived".into(),
    })
    .expect("asks");
    let refused = w.trade(TradeCommand::AnswerRefund {
        trade_id: trade,
        seller_id: seller,
        agree: false,
    });
    assert_eq!(w.status(refused), TradeStatus::Dispute);
    // Disputes wait for the operator, however long.
    w.advance(30 * Settings::default().confirm_timeout_ns);
    assert_eq!(w.balance(buyer), (70_00, 30_00));
    assert_eq!(
        w.trade(TradeCommand::Decide {
            trade_id: trade,
            decision: Decision::Split { refund: cny(30_00) }
        }),
        Err(Refusal::RefundTooLarge { held: cny(30_00) }),
        "a split leaves the seller something"
    );
    let decided = w.trade(TradeCommand::Decide {
        trade_id: trade,
        decision: Decision::Split { refund: cny(12_00) },
    });
    assert_eq!(w.status(decided), TradeStatus::TradeFinished);
    assert_eq!(w.balance(buyer), (82_00, 0));
    assert_eq!(w.balance(seller), (18_00, 0));
    w.assert_balanced();
}

#[test]
fn a_full_refund_agreed_closes_the_trade_and_returns_everything() {
    let mut w = World::new();
    let (seller, buyer, trade) = w.paid_trade();
    w.trade(TradeCommand::RequestRefund {
        trade_id: trade,
        buyer_id: buyer,
        amount: cny(30_00),
        reason: "changed my mind".into(),
    })
    .expect("asks");
    // The seller never answers: the refund is agreed on their behalf.
    w.advance(Settings::default().refund_answer_timeout_ns + SECOND);
    assert_eq!(w.balance(buyer), (100_00, 0));
    assert_eq!(w.incoming(seller), 0);
    w.assert_balanced();
}

#[test]
fn wrong_parties_and_states_are_refused_and_change_nothing() {
    let mut w = World::new();
    let seller = w.person(1, 0);
    let buyer = w.person(2, 100_00);
    let stranger = w.person(3, 100_00);
    let trade = w.create(seller, "A1", 30_00);
    assert_eq!(
        w.trade(TradeCommand::Pay {
            trade_id: trade,
            buyer_id: seller
        }),
        Err(Refusal::BuyerIsSeller)
    );
    assert_eq!(
        w.trade(TradeCommand::Ship {
            trade_id: trade,
            seller_id: seller,
            tracking: "x".into()
        }),
        Err(Refusal::TradeStatusInvalid {
            status: TradeStatus::WaitBuyerPay
        })
    );
    w.trade(TradeCommand::Pay {
        trade_id: trade,
        buyer_id: buyer,
    })
    .expect("pays");
    for command in [
        TradeCommand::ConfirmReceipt {
            trade_id: trade,
            buyer_id: stranger,
        },
        TradeCommand::Ship {
            trade_id: trade,
            seller_id: stranger,
            tracking: "x".into(),
        },
        TradeCommand::Pay {
            trade_id: trade,
            buyer_id: stranger,
        },
    ] {
        let refused = w.trade(command);
        assert!(
            matches!(
                refused,
                Err(Refusal::TradeNotFound | Refusal::TradeStatusInvalid { .. })
            ),
            "{refused:?}"
        );
    }
    assert_eq!(
        w.trade(TradeCommand::Create {
            seller_id: seller,
            buyer_id: None,
            out_trade_no: "A1".into(),
            subject: "again".into(),
            amount: cny(1),
        }),
        Err(Refusal::DuplicateOutTradeNo)
    );
    assert_eq!(w.balance(stranger), (100_00, 0));
    assert_eq!(w.balance(buyer), (70_00, 30_00));
}

#[test]
fn transfers_respect_funds_and_the_daily_limit_of_the_level() {
    let mut w = World::new();
    let alice = w.person(1, 10_000_00);
    let bob = w.person(2, 0);
    let limit = Settings::default().unverified_daily_major * 100;
    let send = |w: &mut World, minor: u64| {
        w.wallet(WalletCommand::Transfer {
            from_user_id: alice,
            to_user_id: bob,
            amount: cny(minor),
            note: "lunch".into(),
        })
    };
    assert!(send(&mut w, limit - 1_00).is_ok());
    assert!(matches!(
        send(&mut w, 2_00),
        Err(Refusal::DailyLimitExceeded { .. })
    ));
    w.wallet(WalletCommand::SetLevel {
        user_id: alice,
        level: Level::Verified,
    })
    .expect("verified");
    assert!(send(&mut w, 2_00).is_ok());
    assert_eq!(
        send(&mut w, 10_000_00),
        Err(Refusal::InsufficientFunds),
        "more than the wallet holds"
    );
    assert_eq!(send(&mut w, 0), Err(Refusal::AmountNotPositive));
    assert_eq!(
        w.wallet(WalletCommand::Transfer {
            from_user_id: alice,
            to_user_id: Id(99),
            amount: cny(1),
            note: String::new()
        }),
        Err(Refusal::PayeeNotFound)
    );
    assert_eq!(w.balance(bob).0, i128::from(limit + 1_00));
    // A new day resets the limit.
    w.advance(24 * 3600 * SECOND);
    w.wallet(WalletCommand::SetLevel {
        user_id: alice,
        level: Level::Unverified,
    })
    .expect("back");
    assert!(send(&mut w, limit - 1_00).is_ok());
    w.assert_balanced();
}

#[test]
fn settled_transfers_leave_memory_once_the_slack_is_used() {
    let mut w = World::new();
    let slack = 64;
    w.core.configure(Settings {
        transfer_cache_slack: slack,
        ..Settings::default()
    });
    let alice = w.person(1, 10_000_00);
    let bob = w.person(2, 0);
    let mut most = 0;
    for _ in 0..1_000 {
        w.wallet(WalletCommand::Transfer {
            from_user_id: alice,
            to_user_id: bob,
            amount: cny(1),
            note: "change".into(),
        })
        .expect("sends");
        most = most.max(w.core.ledger().cached_transfer_count());
    }
    // A batch adds a transfer past the slack before it is swept; nothing here stays open.
    assert!(most <= slack + 1, "the cache held {most} settled transfers");
    assert_eq!(w.balance(bob).0, 10_00, "the sweep forgets no money");
    w.assert_balanced();
}

#[test]
fn a_withdrawal_holds_the_money_until_the_bank_answers() {
    let mut w = World::new();
    let alice = w.person(1, 100_00);
    let start = |w: &mut World| match w.wallet(WalletCommand::StartWithdrawal {
        user_id: alice,
        amount: cny(40_00),
        card_id: Id(7),
    }) {
        Ok(Outcome::Movement(m)) => m.id,
        other => panic!("{other:?}"),
    };
    let failed = start(&mut w);
    assert_eq!(w.balance(alice), (60_00, 40_00));
    w.wallet(WalletCommand::SettleMovement {
        movement_id: failed,
        succeeded: false,
        failure: Some("card closed".into()),
    })
    .expect("settles");
    assert_eq!(w.balance(alice), (100_00, 0));
    let paid = start(&mut w);
    match w.wallet(WalletCommand::SettleMovement {
        movement_id: paid,
        succeeded: true,
        failure: None,
    }) {
        Ok(Outcome::Movement(m)) => assert_eq!(m.status, MovementStatus::Succeeded),
        other => panic!("{other:?}"),
    }
    assert_eq!(w.balance(alice), (60_00, 0));
    assert_eq!(
        w.wallet(WalletCommand::SettleMovement {
            movement_id: paid,
            succeeded: true,
            failure: None
        }),
        Err(Refusal::MovementNotFound),
        "the bank's second answer moves nothing"
    );
    // The bank never answers: the withdrawal fails at the bank timeout.
    start(&mut w);
    w.advance(Settings::default().bank_timeout_ns + SECOND);
    assert_eq!(w.balance(alice), (60_00, 0));
    let clearing = w
        .core
        .ledger()
        .account(clearing_account(Currency::CNY))
        .expect("exists");
    assert_eq!(clearing.debits_posted - clearing.credits_posted, 60_00);
    w.assert_balanced();
}

#[test]
fn a_failed_commit_rolls_the_products_back() {
    let mut w = World::new();
    let seller = w.person(1, 0);
    let buyer = w.person(2, 100_00);
    let trade = w.create(seller, "A1", 30_00);
    let digest = w.core.ledger().digest();
    w.core.begin_batch();
    let reply = w.core.apply(
        w.now + SECOND,
        &Command::Product(ProductRequest {
            command: ProductCommand::Trade(TradeCommand::Pay {
                trade_id: trade,
                buyer_id: buyer,
            }),
            idempotency: None,
        }),
    );
    assert!(reply.is_ok());
    let _ = w.core.effects();
    w.core.rollback_batch();
    assert_eq!(w.core.ledger().digest(), digest);
    assert_eq!(
        w.core.open_trade(trade).map(|t| t.status),
        Some(TradeStatus::WaitBuyerPay)
    );
    let paid = w.trade(TradeCommand::Pay {
        trade_id: trade,
        buyer_id: buyer,
    });
    assert_eq!(w.status(paid), TradeStatus::WaitSellerSend);
}

/// One random step of a small world of three people and their trades.
#[derive(Clone, Debug)]
enum Step {
    Create(u8, u16),
    Pay(u8, u8),
    Ship(u8),
    Confirm(u8),
    Refund(u8, u16),
    Answer(u8, bool),
    Decide(u8, u8, u16),
    Transfer(u8, u8, u16),
    Advance(u32),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        (0..3u8, 1..5000u16).prop_map(|(s, a)| Step::Create(s, a)),
        (0..8u8, 0..3u8).prop_map(|(t, b)| Step::Pay(t, b)),
        (0..8u8).prop_map(Step::Ship),
        (0..8u8).prop_map(Step::Confirm),
        (0..8u8, 1..5000u16).prop_map(|(t, a)| Step::Refund(t, a)),
        (0..8u8, any::<bool>()).prop_map(|(t, a)| Step::Answer(t, a)),
        (0..8u8, 0..3u8, 1..5000u16).prop_map(|(t, d, a)| Step::Decide(t, d, a)),
        (0..3u8, 0..3u8, 1..5000u16).prop_map(|(f, t, a)| Step::Transfer(f, t, a)),
        (1..2_000_000u32).prop_map(Step::Advance),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Whatever people do, money is neither lost nor invented: the books balance, every
    /// wallet's pending debits are exactly what open trades hold, and total wallet money plus
    /// what the bank holds for withdrawals equals what came in.
    #[test]
    fn random_trades_and_transfers_conserve_money(steps in prop::collection::vec(step(), 1..60)) {
        let mut w = World::new();
        let people: Vec<Id> = (1..=3).map(|i| w.person(i, 50_00)).collect();
        let mut trades: Vec<Id> = Vec::new();
        for step in steps {
            let pick = |i: u8, trades: &Vec<Id>| trades.get(usize::from(i) % trades.len().max(1)).copied();
            let result = match step {
                Step::Create(s, a) => match w.trade(TradeCommand::Create {
                    seller_id: people[usize::from(s)],
                    buyer_id: None,
                    out_trade_no: format!("N{}", trades.len()),
                    subject: "x".into(),
                    amount: cny(u64::from(a)),
                }) {
                    Ok(Outcome::Trade(t)) => { trades.push(t.id); Ok(()) }
                    other => other.map(|_| ()),
                },
                Step::Advance(seconds) => { w.advance(u64::from(seconds) * SECOND); Ok(()) }
                Step::Transfer(f, t, a) => w.wallet(WalletCommand::Transfer {
                    from_user_id: people[usize::from(f)],
                    to_user_id: people[usize::from(t)],
                    amount: cny(u64::from(a)),
                    note: String::new(),
                }).map(|_| ()),
                other => {
                    let Some(trade_id) = (match &other {
                        Step::Pay(t, _) | Step::Ship(t) | Step::Confirm(t) | Step::Refund(t, _)
                        | Step::Answer(t, _) | Step::Decide(t, _, _) => pick(*t, &trades),
                        _ => None,
                    }) else { continue };
                    let trade = w.core.open_trade(trade_id).cloned();
                    let seller = trade.as_ref().map_or(people[0], |t| t.seller_id);
                    let buyer = trade.as_ref().and_then(|t| t.buyer_id).unwrap_or(people[1]);
                    let command = match other {
                        Step::Pay(_, b) => TradeCommand::Pay { trade_id, buyer_id: people[usize::from(b)] },
                        Step::Ship(_) => TradeCommand::Ship { trade_id, seller_id: seller, tracking: "t".into() },
                        Step::Confirm(_) => TradeCommand::ConfirmReceipt { trade_id, buyer_id: buyer },
                        Step::Refund(_, a) => TradeCommand::RequestRefund { trade_id, buyer_id: buyer, amount: cny(u64::from(a)), reason: "r".into() },
                        Step::Answer(_, agree) => TradeCommand::AnswerRefund { trade_id, seller_id: seller, agree },
                        Step::Decide(_, d, a) => TradeCommand::Decide { trade_id, decision: match d {
                            0 => Decision::Refund, 1 => Decision::Release, _ => Decision::Split { refund: cny(u64::from(a)) } } },
                        _ => unreachable!("handled above"),
                    };
                    w.trade(command).map(|_| ())
                }
            };
            let _ = result;
            w.assert_balanced();
            let held: u64 = trades.iter().filter_map(|id| w.core.open_trade(*id)).map(|t| t.held().amount_minor).sum();
            let pending: u128 = people.iter().map(|p| w.balance(*p).1).sum();
            prop_assert_eq!(u128::from(held), pending, "escrow holds exactly the open trades' money");
            let total: i128 = people.iter().map(|p| {
                let (available, pending) = w.balance(*p);
                available + i128::try_from(pending).expect("small")
            }).sum();
            prop_assert_eq!(total, 150_00, "no money lost or invented");
        }
    }
}

#[test]
fn a_failed_withdrawal_gives_back_its_part_of_the_daily_limit() {
    let mut w = World::new();
    let alice = w.person(1, 10_000_00);
    let withdraw = |w: &mut World| {
        w.wallet(WalletCommand::StartWithdrawal {
            user_id: alice,
            amount: cny(4_000_00),
            card_id: Id(7),
        })
    };
    let Ok(Outcome::Movement(first)) = withdraw(&mut w) else {
        panic!("a withdrawal")
    };
    w.wallet(WalletCommand::SettleMovement {
        movement_id: first.id,
        succeeded: false,
        failure: None,
    })
    .expect("settles");
    assert!(
        withdraw(&mut w).is_ok(),
        "the failed 4,000 no longer counts"
    );
    assert!(matches!(
        withdraw(&mut w),
        Err(Refusal::DailyLimitExceeded { .. })
    ));
}

#[test]
fn a_wallet_made_in_a_new_currency_can_take_money_in_and_out() {
    // Regression (issue 4 review): a seller's first USD trade made a USD wallet without the
    // USD bank clearing account, and a USD withdrawal then panicked the writer.
    let mut w = World::new();
    let shop = w.person(1, 0);
    let usd = Currency::from_code("USD").expect("known");
    w.trade(TradeCommand::Create {
        seller_id: shop,
        buyer_id: None,
        out_trade_no: "U-1".into(),
        subject: "a hat".into(),
        amount: formica_core::Money::new(1_00, usd),
    })
    .expect("created");
    assert_eq!(
        w.wallet(WalletCommand::StartWithdrawal {
            user_id: shop,
            amount: formica_core::Money::new(1_00, usd),
            card_id: Id(7),
        }),
        Err(Refusal::InsufficientFunds)
    );
    let Ok(Outcome::Movement(top_up)) = w.wallet(WalletCommand::StartTopUp {
        user_id: shop,
        amount: formica_core::Money::new(5_00, usd),
        card_id: Id(7),
    }) else {
        panic!("a movement")
    };
    w.wallet(WalletCommand::SettleMovement {
        movement_id: top_up.id,
        succeeded: true,
        failure: None,
    })
    .expect("settles");
    assert!(
        w.wallet(WalletCommand::StartWithdrawal {
            user_id: shop,
            amount: formica_core::Money::new(1_00, usd),
            card_id: Id(7),
        })
        .is_ok()
    );
    w.assert_balanced();
}

#[test]
fn numbers_equal_once_kept_are_duplicates() {
    // Regression (issue 4 review): numbers differing only past the kept length passed the
    // duplicate check and failed the whole batch at the store's unique index.
    let mut w = World::new();
    let shop = w.person(1, 0);
    let long = "x".repeat(formica_core::trade::TEXT_MAX);
    let create = |w: &mut World, no: String| {
        w.trade(TradeCommand::Create {
            seller_id: shop,
            buyer_id: None,
            out_trade_no: no,
            subject: "s".into(),
            amount: cny(1),
        })
    };
    assert!(create(&mut w, format!("{long}A")).is_ok());
    assert_eq!(
        create(&mut w, format!("{long}B")),
        Err(Refusal::DuplicateOutTradeNo)
    );
}

#[test]
fn a_number_freed_in_a_batch_stays_taken_until_the_batch_is_written() {
    let mut w = World::new();
    let shop = w.person(1, 0);
    let trade = w.create(shop, "N-1", 1_00);
    w.now += SECOND;
    w.core.begin_batch();
    let apply = |w: &mut World, command: TradeCommand| {
        w.core.apply(
            w.now,
            &Command::Product(ProductRequest {
                command: ProductCommand::Trade(command),
                idempotency: None,
            }),
        )
    };
    assert!(
        apply(
            &mut w,
            TradeCommand::Close {
                trade_id: trade,
                seller_id: shop
            }
        )
        .is_ok()
    );
    let again = apply(
        &mut w,
        TradeCommand::Create {
            seller_id: shop,
            buyer_id: None,
            out_trade_no: "N-1".into(),
            subject: "s".into(),
            amount: cny(1),
        },
    );
    assert_eq!(
        again,
        Err(CommandError::Refused(Refusal::DuplicateOutTradeNo))
    );
    let _ = w.core.effects();
    w.core.commit_batch();
}
