//! Merchants: till payments with fees, refunds that return the fee in proportion, cancels,
//! payouts, T+1 settlement with carried shortfalls and returned payouts, and a property test
//! that the merchant's balance is always the sum of its unsettled days and the platform keeps
//! exactly the fees of what was not refunded.

use formica_core::merchant::{MerchantCommand, MerchantProfile, merchant_account, revenue_account};
use formica_core::trade::NewTrade;
use formica_core::wallet::MovementKind;

use super::*;

const DAY: u64 = 24 * 3600 * SECOND;

pub(super) fn open_merchant(w: &mut World, owner: Id) -> Id {
    let profile = MerchantProfile {
        owner_id: owner,
        name: "Tea House".into(),
        contact: "tea@example.com".into(),
        category: "food".into(),
        country: "CN".into(),
        currency: Currency::CNY,
        card_id: Id(7),
    };
    match w.run(ProductCommand::Merchant(MerchantCommand::Open(Box::new(
        profile,
    )))) {
        Ok(Outcome::Merchant(m)) => m.id,
        other => panic!("opened: {other:?}"),
    }
}

fn till_trade(merchant: Id, no: &str, minor: u64) -> Box<NewTrade> {
    let mut new = NewTrade::escrow(merchant, None, no, "tea", cny(minor));
    new.escrow = false;
    Box::new(new)
}

fn charge(w: &mut World, merchant: Id, buyer: Id, no: &str, minor: u64) -> Result<Id, Refusal> {
    match w.run(ProductCommand::Merchant(MerchantCommand::Charge {
        trade: till_trade(merchant, no, minor),
        buyer_id: buyer,
        code: None,
    }))? {
        Outcome::Trade(trade) => {
            assert_eq!(trade.status, TradeStatus::TradeSuccess);
            Ok(trade.id)
        }
        other => panic!("a trade: {other:?}"),
    }
}

fn refund(
    w: &mut World,
    merchant: Id,
    trade: Id,
    no: &str,
    minor: u64,
) -> Result<formica_core::merchant::RefundReceipt, Refusal> {
    match w.run(ProductCommand::Merchant(MerchantCommand::Refund {
        merchant_id: merchant,
        trade_id: trade,
        out_request_no: no.into(),
        amount: cny(minor),
        reason: String::new(),
    }))? {
        Outcome::Refund(receipt) => Ok(receipt),
        other => panic!("a refund: {other:?}"),
    }
}

fn available(w: &World, account: u128) -> i128 {
    w.core
        .ledger()
        .account(account)
        .map_or(0, |a| a.available())
}

fn merchant_balance(w: &World, merchant: Id) -> i128 {
    available(w, merchant_account(merchant, Currency::CNY))
}

fn revenue(w: &World) -> i128 {
    available(w, revenue_account(Currency::CNY))
}

/// The merchant's unsettled days, summed.
fn unsettled(w: &World, merchant: Id) -> i128 {
    w.core
        .export_products()
        .merchants
        .iter()
        .find(|m| m.id == merchant)
        .expect("the merchant")
        .days
        .iter()
        .map(|d| d.net())
        .sum()
}

#[test]
fn a_till_payment_pays_the_merchant_less_the_fee() {
    let mut w = World::new();
    let owner = w.person(1, 0);
    let buyer = w.person(2, 100_00);
    let shop = open_merchant(&mut w, owner);
    charge(&mut w, shop, buyer, "T1", 30_00).expect("paid");
    assert_eq!(w.balance(buyer).0, 70_00);
    // 0.6% of 30.00 is 0.18.
    assert_eq!(merchant_balance(&w, shop), 30_00 - 18);
    assert_eq!(revenue(&w), 18);
    assert_eq!(unsettled(&w, shop), 30_00 - 18);
    // The owner's own wallet is not the shop's.
    assert_eq!(w.balance(owner).0, 0);
}

#[test]
fn refunds_return_the_fee_in_proportion_once_per_request_number() {
    let mut w = World::new();
    let owner = w.person(1, 0);
    let buyer = w.person(2, 100_00);
    let shop = open_merchant(&mut w, owner);
    let trade = charge(&mut w, shop, buyer, "T1", 30_00).expect("paid");

    let first = refund(&mut w, shop, trade, "R1", 10_00).expect("refunded");
    assert!(first.fund_change);
    assert_eq!(first.refund.fee_back, cny(6));
    assert_eq!(first.trade.refunded, cny(10_00));
    assert_eq!(w.balance(buyer).0, 80_00);

    // The same request again moves nothing and answers the same; another amount is refused.
    let again = refund(&mut w, shop, trade, "R1", 10_00).expect("a retry");
    assert!(!again.fund_change);
    assert_eq!(again.trade.refunded, cny(10_00));
    assert_eq!(w.balance(buyer).0, 80_00);
    assert_eq!(
        refund(&mut w, shop, trade, "R1", 5_00).unwrap_err(),
        Refusal::DiscordantRepeat
    );
    assert!(matches!(
        refund(&mut w, shop, trade, "R2", 20_01).unwrap_err(),
        Refusal::RefundTooLarge { .. }
    ));

    let last = refund(&mut w, shop, trade, "R2", 20_00).expect("the rest");
    assert_eq!(last.trade.status, TradeStatus::TradeClosed);
    // Refunded in full: the platform kept nothing, the merchant has nothing, the buyer all.
    assert_eq!(revenue(&w), 0);
    assert_eq!(merchant_balance(&w, shop), 0);
    assert_eq!(w.balance(buyer).0, 100_00);
    assert_eq!(unsettled(&w, shop), 0);
}

#[test]
fn a_payment_code_pays_once_and_not_after_it_expires() {
    let mut w = World::new();
    let owner = w.person(1, 0);
    let buyer = w.person(2, 100_00);
    let shop = open_merchant(&mut w, owner);
    let code = |expires_at| formica_core::merchant::CodeUse {
        code: "281234567890123456".into(),
        expires_at,
    };
    let with_code = |w: &mut World, no: &str, minor, expires_at| {
        w.run(ProductCommand::Merchant(MerchantCommand::Charge {
            trade: till_trade(shop, no, minor),
            buyer_id: buyer,
            code: Some(code(expires_at)),
        }))
    };
    let expires_at = w.now + 60 * SECOND;
    // A payment that is refused does not use the code up.
    assert_eq!(
        with_code(&mut w, "T0", 500_00, expires_at).unwrap_err(),
        Refusal::InsufficientFunds
    );
    with_code(&mut w, "T1", 10_00, expires_at).expect("paid");
    // A till's retry of that payment hears of the number, so the edge can answer it as paid.
    assert_eq!(
        with_code(&mut w, "T1", 10_00, expires_at).unwrap_err(),
        Refusal::DuplicateOutTradeNo
    );
    assert_eq!(
        with_code(&mut w, "T2", 10_00, expires_at).unwrap_err(),
        Refusal::PaymentCodeUsed
    );
    let Ok(Outcome::Trade(unpaid)) = w.run(ProductCommand::Merchant(MerchantCommand::CreateTrade(
        till_trade(shop, "T3", 5_00),
    ))) else {
        panic!("created")
    };
    let pay_open = |w: &mut World, expires_at| {
        w.run(ProductCommand::Merchant(MerchantCommand::PayWithCode {
            merchant_id: shop,
            trade_id: unpaid.id,
            buyer_id: buyer,
            code: code(expires_at),
        }))
    };
    assert_eq!(
        pay_open(&mut w, expires_at).unwrap_err(),
        Refusal::PaymentCodeUsed
    );
    // Long after, the used code is forgotten: its expiry refuses it on its own.
    w.advance(120 * SECOND);
    assert_eq!(
        pay_open(&mut w, expires_at).unwrap_err(),
        Refusal::PaymentCodeUsed
    );
    let fresh = w.now + 60 * SECOND;
    assert!(
        matches!(pay_open(&mut w, fresh), Ok(Outcome::Trade(t)) if t.status == TradeStatus::TradeSuccess)
    );
    assert_eq!(w.balance(buyer).0, 100_00 - 10_00 - 5_00);
    // Paying it again (it has left memory for the store) is refused for its status, so the
    // edge can answer a till's retry as paid.
    let again = w.run(ProductCommand::Merchant(MerchantCommand::PayWithCode {
        merchant_id: shop,
        trade_id: unpaid.id,
        buyer_id: buyer,
        code: formica_core::merchant::CodeUse {
            code: "281234567890123457".into(),
            expires_at: fresh,
        },
    }));
    assert_eq!(
        again.unwrap_err(),
        Refusal::TradeStatusInvalid {
            status: TradeStatus::TradeSuccess
        }
    );
}

#[test]
fn a_refused_charge_leaves_no_trade_and_no_number_taken() {
    let mut w = World::new();
    let owner = w.person(1, 0);
    let poor = w.person(2, 10_00);
    let rich = w.person(3, 100_00);
    let shop = open_merchant(&mut w, owner);
    assert_eq!(
        charge(&mut w, shop, poor, "T1", 30_00).unwrap_err(),
        Refusal::InsufficientFunds
    );
    assert!(w.core.export_products().open_trades.is_empty());
    assert_eq!(w.balance(poor).0, 10_00);
    charge(&mut w, shop, rich, "T1", 30_00).expect("the number is free");
    assert_eq!(
        charge(&mut w, shop, owner, "T2", 1_00).unwrap_err(),
        Refusal::InsufficientFunds,
        "the owner pays from their own wallet, which is empty"
    );
}

#[test]
fn a_refund_the_merchant_cannot_cover_is_refused_and_changes_nothing() {
    let mut w = World::new();
    let owner = w.person(1, 0);
    let buyer = w.person(2, 100_00);
    let friend = w.person(3, 0);
    let shop = open_merchant(&mut w, owner);
    let trade = charge(&mut w, shop, buyer, "T1", 50_00).expect("paid");
    w.run(ProductCommand::Merchant(MerchantCommand::Payout {
        merchant_id: shop,
        to_user_id: friend,
        amount: cny(45_00),
        note: "wages".into(),
    }))
    .expect("paid out");
    assert_eq!(w.balance(friend).0, 45_00);
    let before = (merchant_balance(&w, shop), revenue(&w), w.balance(buyer).0);
    assert_eq!(
        refund(&mut w, shop, trade, "R1", 20_00).unwrap_err(),
        Refusal::MerchantBalanceTooLow
    );
    assert_eq!(
        (merchant_balance(&w, shop), revenue(&w), w.balance(buyer).0),
        before
    );
    assert_eq!(unsettled(&w, shop), merchant_balance(&w, shop));
}

#[test]
fn cancel_closes_an_unpaid_trade_and_refunds_a_paid_one_within_a_day() {
    let mut w = World::new();
    let owner = w.person(1, 0);
    let buyer = w.person(2, 100_00);
    let shop = open_merchant(&mut w, owner);
    let cancel = |w: &mut World, trade| {
        w.run(ProductCommand::Merchant(MerchantCommand::Cancel {
            merchant_id: shop,
            trade_id: trade,
        }))
    };
    let Ok(Outcome::Trade(unpaid)) = w.run(ProductCommand::Merchant(MerchantCommand::CreateTrade(
        till_trade(shop, "T0", 5_00),
    ))) else {
        panic!("created")
    };
    let Ok(Outcome::Trade(closed)) = cancel(&mut w, unpaid.id) else {
        panic!("cancelled")
    };
    assert_eq!(closed.status, TradeStatus::TradeClosed);

    let paid = charge(&mut w, shop, buyer, "T1", 30_00).expect("paid");
    let Ok(Outcome::Trade(refunded)) = cancel(&mut w, paid) else {
        panic!("cancelled")
    };
    assert_eq!(refunded.status, TradeStatus::TradeClosed);
    assert_eq!(w.balance(buyer).0, 100_00);
    assert_eq!(revenue(&w), 0);

    let late = charge(&mut w, shop, buyer, "T2", 30_00).expect("paid");
    w.advance(DAY + SECOND);
    assert_eq!(cancel(&mut w, late).unwrap_err(), Refusal::CancelTooLate);
    let partly = charge(&mut w, shop, buyer, "T3", 30_00).expect("paid");
    refund(&mut w, shop, partly, "R1", 1_00).expect("refunded");
    assert_eq!(
        cancel(&mut w, partly).unwrap_err(),
        Refusal::RefundedAlready
    );
}

#[test]
fn takings_are_settled_after_t_plus_1_and_a_shortfall_is_carried() {
    let mut w = World::new();
    let owner = w.person(1, 0);
    let buyer = w.person(2, 1_000_00);
    let shop = open_merchant(&mut w, owner);
    let big = charge(&mut w, shop, buyer, "D1", 100_00).expect("paid");
    // The next day: a small payment and a large refund of yesterday's trade.
    w.advance(DAY);
    let settlements = |w: &World| {
        w.core
            .export_products()
            .open_movements
            .into_iter()
            .filter(|m| m.user_id == shop && m.kind == MovementKind::Withdrawal)
            .collect::<Vec<_>>()
    };
    // Day one was settled at the start of day two: 100.00 less the 0.60 fee.
    let first = settlements(&w);
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].amount, cny(100_00 - 60));
    assert_eq!(first[0].card_id, Id(7));
    charge(&mut w, shop, buyer, "D2", 10_00).expect("paid");
    assert_eq!(
        refund(&mut w, shop, big, "R1", 50_00).unwrap_err(),
        Refusal::MerchantBalanceTooLow,
        "yesterday's money is on its way to the bank"
    );
    refund(&mut w, shop, big, "R1", 5_00).expect("refunded");
    assert_eq!(unsettled(&w, shop), merchant_balance(&w, shop));
    // The bank declines the first payout: the money is the merchant's again and goes out
    // with the next settlement.
    w.wallet(WalletCommand::SettleMovement {
        movement_id: first[0].id,
        succeeded: false,
        failure: Some("declined".into()),
    })
    .expect("settled");
    assert_eq!(unsettled(&w, shop), merchant_balance(&w, shop));
    w.advance(DAY);
    let second = settlements(&w);
    assert_eq!(second.len(), 1);
    // 99.40 returned + 10.00 - 0.06 fee - 5.00 refund + 0.03 fee back.
    assert_eq!(second[0].amount, cny(99_40 + 10_00 - 6 - 5_00 + 3));
    assert_eq!(merchant_balance(&w, shop), 0);
    assert_eq!(unsettled(&w, shop), 0);
}

#[test]
fn a_refund_before_an_earlier_day_is_settled_is_carried_not_a_crash() {
    // Regression: with T+2, a refund on day two of day one's trade left the balance short of
    // day one's net, and paying that net out panicked the writer.
    let mut w = World::new();
    w.core.configure(Settings {
        settle_delay_days: 2,
        ..Settings::default()
    });
    let owner = w.person(1, 0);
    let buyer = w.person(2, 1_000_00);
    let shop = open_merchant(&mut w, owner);
    let trade = charge(&mut w, shop, buyer, "D1", 100_00).expect("paid");
    w.advance(DAY);
    refund(&mut w, shop, trade, "R1", 50_00).expect("refunded");
    assert_eq!(merchant_balance(&w, shop), 100_00 - 60 - 50_00 + 30);
    w.advance(DAY);
    let payouts: Vec<_> = w
        .core
        .export_products()
        .open_movements
        .into_iter()
        .filter(|m| m.user_id == shop)
        .collect();
    assert_eq!(payouts.len(), 1);
    assert_eq!(payouts[0].amount, cny(49_70), "what the balance held");
    assert_eq!(merchant_balance(&w, shop), 0);
    assert_eq!(unsettled(&w, shop), 0);
}

#[test]
fn settlement_timers_follow_the_settings_and_a_day_netting_zero_is_dropped() {
    let mut w = World::new();
    let owner = w.person(1, 0);
    let buyer = w.person(2, 1_000_00);
    let shop = open_merchant(&mut w, owner);
    let trade = charge(&mut w, shop, buyer, "D1", 100_00).expect("paid");
    let due_at = |w: &World| w.core.next_object_deadline().expect("a timer");
    let t_plus_1 = due_at(&w);
    // Regression: the store loads merchants before the engine configures the core, and the
    // timers kept the default delay (a stale timer then fired every batch, forever).
    w.core.configure(Settings {
        settle_delay_days: 3,
        ..Settings::default()
    });
    assert_eq!(due_at(&w), t_plus_1 + 2 * DAY);
    w.core.configure(Settings::default());
    assert_eq!(due_at(&w), t_plus_1);
    // Refunded in full the same day: the day nets to nothing and leaves no days, no timer.
    refund(&mut w, shop, trade, "R1", 100_00).expect("refunded");
    w.advance(DAY);
    let merchant = w.core.export_products().merchants;
    assert!(merchant[0].days.is_empty(), "{:?}", merchant[0].days);
    assert_eq!(w.core.next_object_deadline(), None);
}

#[test]
fn a_number_of_a_trade_no_longer_in_memory_is_still_taken() {
    // Regression: a trade that closed in an earlier batch freed its number in memory, so a
    // create racing the edge's store check reached the store's unique index and failed the
    // whole batch, other people's payments with it. The writer now asks the store.
    let mut w = World::new();
    let owner = w.person(1, 0);
    let shop = open_merchant(&mut w, owner);
    let create = |w: &mut World, pay_by| {
        let mut new = till_trade(shop, "N1", 1_00);
        new.pay_by = pay_by;
        w.run(ProductCommand::Merchant(MerchantCommand::CreateTrade(new)))
    };
    let now = w.now;
    create(&mut w, Some(now)).expect("created");
    w.advance(SECOND);
    assert!(
        w.core.export_products().open_trades.is_empty(),
        "closed unpaid"
    );
    w.advance(SECOND);
    assert_eq!(
        create(&mut w, None).unwrap_err(),
        Refusal::DuplicateOutTradeNo
    );
    // Long after, the store still holds it.
    w.advance(90 * DAY);
    assert_eq!(
        create(&mut w, None).unwrap_err(),
        Refusal::DuplicateOutTradeNo
    );
    // A paid merchant trade leaves memory at once; its number stays taken all the same.
    let buyer = w.person(2, 10_00);
    charge(&mut w, shop, buyer, "N2", 1_00).expect("paid");
    assert_eq!(
        charge(&mut w, shop, buyer, "N2", 1_00).unwrap_err(),
        Refusal::DuplicateOutTradeNo
    );
}

#[test]
fn a_paid_trade_waits_in_the_store_until_a_refund_names_it_and_ends_after_the_window() {
    let mut w = World::new();
    let owner = w.person(1, 0);
    let buyer = w.person(2, 100_00);
    let shop = open_merchant(&mut w, owner);
    let trade = charge(&mut w, shop, buyer, "T1", 30_00).expect("paid");
    // Memory holds no paid merchant trade (months of them would not fit).
    assert!(w.core.export_products().open_trades.is_empty());
    // A refund names it: the writer recalls it from the store.
    refund(&mut w, shop, trade, "R1", 10_00).expect("refunded");
    refund(&mut w, shop, trade, "R2", 5_00).expect("refunded again");
    assert_eq!(w.trades[&trade].refunded, cny(15_00));
    assert_eq!(w.balance(buyer).0, 85_00);
    let finish = |w: &mut World| {
        w.run(ProductCommand::Merchant(MerchantCommand::Finish {
            merchant_id: shop,
            trade_id: trade,
        }))
    };
    assert!(matches!(
        finish(&mut w),
        Err(Refusal::TradeStatusInvalid { .. })
    ));
    // After the refund window no refund is taken, and the sweep's finish ends the trade.
    w.advance(90 * DAY);
    assert_eq!(
        refund(&mut w, shop, trade, "R3", 1_00).unwrap_err(),
        Refusal::TradeStatusInvalid {
            status: TradeStatus::TradeFinished
        }
    );
    let Ok(Outcome::Trade(finished)) = finish(&mut w) else {
        panic!("finished")
    };
    assert_eq!(finished.status, TradeStatus::TradeFinished);
    assert_eq!(w.balance(buyer).0, 85_00);
}

#[test]
fn a_merchants_escrow_trade_pays_the_fee_when_released() {
    let mut w = World::new();
    let owner = w.person(1, 0);
    let buyer = w.person(2, 100_00);
    let shop = open_merchant(&mut w, owner);
    let mut new = till_trade(shop, "E1", 50_00);
    new.escrow = true;
    let Ok(Outcome::Trade(trade)) =
        w.run(ProductCommand::Merchant(MerchantCommand::CreateTrade(new)))
    else {
        panic!("created")
    };
    w.trade(TradeCommand::Pay {
        trade_id: trade.id,
        buyer_id: buyer,
    })
    .expect("paid into escrow");
    assert_eq!(merchant_balance(&w, shop), 0);
    // The person who runs the shop ships; the buyer confirms.
    w.trade(TradeCommand::Ship {
        trade_id: trade.id,
        seller_id: owner,
        tracking: "SF1".into(),
    })
    .expect("shipped");
    w.trade(TradeCommand::ConfirmReceipt {
        trade_id: trade.id,
        buyer_id: buyer,
    })
    .expect("confirmed");
    assert_eq!(merchant_balance(&w, shop), 50_00 - 30);
    assert_eq!(revenue(&w), 30);
}

#[derive(Clone, Debug)]
enum Step {
    Charge(u8, u64),
    Refund(u8, u64),
    Payout(u64),
    Bank(bool),
    Days(u8),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (0u8..3, 1u64..50_00).prop_map(|(b, a)| Step::Charge(b, a)),
        3 => (0u8..8, 1u64..30_00).prop_map(|(t, a)| Step::Refund(t, a)),
        1 => (1u64..20_00).prop_map(Step::Payout),
        1 => any::<bool>().prop_map(Step::Bank),
        1 => (0u8..3).prop_map(Step::Days),
    ]
}

proptest! {
    #[test]
    fn merchant_money_always_adds_up(steps in proptest::collection::vec(step(), 1..40)) {
        let mut w = World::new();
        let owner = w.person(1, 0);
        let buyers = [w.person(2, 500_00), w.person(3, 500_00), w.person(4, 500_00)];
        let shop = open_merchant(&mut w, owner);
        let mut trades = Vec::new();
        let mut fees = 0i128;
        for (n, step) in steps.into_iter().enumerate() {
            match step {
                Step::Charge(b, amount) => {
                    if let Ok(id) = charge(&mut w, shop, buyers[b as usize], &format!("T{n}"), amount) {
                        trades.push(id);
                        fees += i128::from(formica_core::merchant::fee_for(amount, 6_000));
                    }
                }
                Step::Refund(t, amount) => {
                    if let Some(id) = trades.get(t as usize)
                        && let Ok(receipt) = refund(&mut w, shop, *id, &format!("R{n}"), amount)
                    {
                        fees -= i128::from(receipt.refund.fee_back.amount_minor);
                    }
                }
                Step::Payout(amount) => {
                    let _ = w.run(ProductCommand::Merchant(MerchantCommand::Payout {
                        merchant_id: shop,
                        to_user_id: buyers[0],
                        amount: cny(amount),
                        note: String::new(),
                    }));
                }
                Step::Bank(ok) => {
                    for m in w.core.export_products().open_movements {
                        w.wallet(WalletCommand::SettleMovement {
                            movement_id: m.id,
                            succeeded: ok,
                            failure: (!ok).then(|| "declined".to_owned()),
                        }).expect("settles");
                    }
                }
                Step::Days(days) => w.advance(u64::from(days) * DAY + 3600 * SECOND),
            }
            prop_assert_eq!(unsettled(&w, shop), merchant_balance(&w, shop));
            prop_assert!(merchant_balance(&w, shop) >= 0);
            prop_assert_eq!(revenue(&w), fees);
            // Every trade's refunds are within what was paid, and its fee back within its fee.
            for trade in w.trades.values() {
                let back: u64 = trade.refunds.iter().map(|r| r.fee_back.amount_minor).sum();
                prop_assert!(trade.refunded.amount_minor <= trade.amount.amount_minor);
                prop_assert!(back <= trade.fee.map_or(0, |f| f.amount_minor));
            }
        }
    }
}
