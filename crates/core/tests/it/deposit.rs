//! Deposit-free holds through the core: waived by a good enough score, frozen otherwise;
//! unfrozen, charged in part, charged beyond what the wallet holds (a debt, overdue after its
//! due day, repaid late); every step with the books balanced and the score moving.

use formica_core::deposit::{
    DEBT_DAYS, Debt, Hold, HoldCommand, HoldStatus, NewFreeze, credit_funding, owed,
};

use super::merchant::open_merchant;
use super::*;

const DAY: u64 = 24 * 3600 * SECOND;

fn hold(w: &mut World, command: HoldCommand) -> Result<Hold, Refusal> {
    match w.run(ProductCommand::Hold(command))? {
        Outcome::Hold(hold) => Ok(hold),
        other => panic!("a hold: {other:?}"),
    }
}

fn request(w: &mut World, shop: Id, person: Id, no: &str, minor: u64, threshold: u16) -> Hold {
    hold(
        w,
        HoldCommand::Request {
            merchant_id: shop,
            person_id: person,
            out_order_no: no.into(),
            title: "a bike".into(),
            amount: cny(minor),
            threshold: Some(threshold),
        },
    )
    .expect("requested")
}

fn authorize(w: &mut World, id: Id, person: Id) -> Result<Hold, Refusal> {
    hold(
        w,
        HoldCommand::Authorize {
            hold_id: id,
            person_id: person,
        },
    )
}

fn charge(w: &mut World, id: Id, shop: Id, minor: u64) -> Result<Hold, Refusal> {
    hold(
        w,
        HoldCommand::Charge {
            hold_id: id,
            merchant_id: shop,
            amount: cny(minor),
            out_trade_no: None,
        },
    )
}

/// What the shop was paid: its balance and the fee the platform took of it.
fn merchant_money(w: &World, shop: Id) -> i128 {
    let available = |id| w.core.ledger().account(id).map_or(0, |a| a.available());
    available(formica_core::merchant::merchant_account(
        shop,
        Currency::CNY,
    )) + available(formica_core::merchant::revenue_account(Currency::CNY))
}

/// A shop and a renter: verified (a score of 560 and more) with `balance` in the wallet.
fn rental(w: &mut World, balance: u64) -> (Id, Id) {
    let owner = w.person(1, 0);
    let renter = w.person(2, balance);
    w.wallet(WalletCommand::SetLevel {
        user_id: renter,
        level: Level::Verified,
    })
    .expect("verified");
    let shop = open_merchant(w, owner);
    (shop, renter)
}

/// The operator sets the platform's money aside for credit.
fn add_funding(w: &mut World, minor: u64) {
    w.run(ProductCommand::Hold(HoldCommand::AddFunding {
        amount: cny(minor),
    }))
    .expect("funded");
}

#[test]
fn a_good_score_waives_the_deposit_and_unfreezing_moves_nothing() {
    let mut w = World::new();
    let (shop, renter) = rental(&mut w, 100_00);
    let score = w.core.credit(renter).expect("a record").score().score;
    assert!((550..650).contains(&score), "{score}");
    let asked = request(&mut w, shop, renter, "B1", 99_00, 550);
    assert_eq!(asked.status, HoldStatus::Requested);
    let waived = authorize(&mut w, asked.id, renter).expect("authorized");
    assert_eq!(waived.status, HoldStatus::Waived);
    assert_eq!(waived.credit_amount, cny(99_00));
    assert_eq!(waived.fund_amount, cny(0));
    assert_eq!(w.balance(renter), (100_00, 0), "nothing held");
    let closed = hold(
        &mut w,
        HoldCommand::Unfreeze {
            hold_id: asked.id,
            merchant_id: shop,
            amount: None,
        },
    )
    .expect("unfrozen");
    assert_eq!(
        (closed.status, closed.close_reason.as_deref()),
        (HoldStatus::Closed, Some("unfrozen"))
    );
    assert!(
        w.core.hold(asked.id).is_none(),
        "a closed hold leaves memory"
    );
    assert_eq!(w.balance(renter), (100_00, 0));
    w.assert_balanced();
}

#[test]
fn a_score_below_the_threshold_freezes_the_money_and_a_charge_takes_part_of_it() {
    let mut w = World::new();
    let (shop, renter) = rental(&mut w, 300_00);
    let asked = request(&mut w, shop, renter, "C1", 200_00, 650);
    let frozen = authorize(&mut w, asked.id, renter).expect("authorized");
    assert_eq!(frozen.status, HoldStatus::Frozen);
    assert_eq!(frozen.fund_amount, cny(200_00));
    assert_eq!(w.balance(renter), (100_00, 200_00), "200.00 held");
    // Only a party may act; more than the deposit is refused and changes nothing.
    assert_eq!(
        charge(&mut w, asked.id, Id(999), 1_00),
        Err(Refusal::HoldNotFound)
    );
    assert!(matches!(
        charge(&mut w, asked.id, shop, 200_01),
        Err(Refusal::ChargeTooLarge { .. })
    ));
    assert_eq!(w.balance(renter), (100_00, 200_00));
    let charged = charge(&mut w, asked.id, shop, 35_50).expect("charged");
    assert_eq!(charged.charged, cny(35_50));
    assert_eq!(charged.status, HoldStatus::Closed);
    assert_eq!(w.balance(renter), (264_50, 0), "the rest came back");
    assert_eq!(merchant_money(&w, shop), 35_50);
    assert_eq!(charged.debt_id, None);
    w.assert_balanced();
}

#[test]
fn freezing_more_than_the_wallet_holds_is_refused_and_changes_nothing() {
    let mut w = World::new();
    let (shop, renter) = rental(&mut w, 50_00);
    let asked = request(&mut w, shop, renter, "C2", 200_00, 900);
    assert_eq!(
        authorize(&mut w, asked.id, renter),
        Err(Refusal::InsufficientFunds)
    );
    assert_eq!(
        w.core.hold(asked.id).map(|h| h.status),
        Some(HoldStatus::Requested)
    );
    assert_eq!(w.balance(renter), (50_00, 0));
    // Not authorised in time: closed.
    w.advance(16 * 60 * SECOND);
    assert!(w.core.hold(asked.id).is_none());
}

/// Part of a deposit given back: frozen money is re-frozen for what stays, a waived one just
/// owes less; a charge or a second part can take at most what is left; the last of it closes
/// the hold as a whole unfreeze would.
#[test]
fn part_of_a_deposit_given_back_leaves_the_rest_held() {
    let mut w = World::new();
    let (shop, renter) = rental(&mut w, 300_00);
    let unfreeze = |w: &mut World, id: Id, minor: Option<u64>| {
        hold(
            w,
            HoldCommand::Unfreeze {
                hold_id: id,
                merchant_id: shop,
                amount: minor.map(cny),
            },
        )
    };
    let asked = request(&mut w, shop, renter, "U1", 200_00, 900);
    // Nothing authorised yet: only a whole withdrawal.
    assert!(matches!(
        unfreeze(&mut w, asked.id, Some(50_00)),
        Err(Refusal::HoldStatusInvalid { .. })
    ));
    authorize(&mut w, asked.id, renter).expect("frozen");
    assert_eq!(w.balance(renter), (100_00, 200_00));
    let part = unfreeze(&mut w, asked.id, Some(50_00)).expect("a part back");
    assert_eq!(
        (part.status, part.rest(), part.unfrozen),
        (HoldStatus::Frozen, 150_00, Some(cny(50_00)))
    );
    assert_eq!(
        w.balance(renter),
        (150_00, 150_00),
        "50.00 back, 150.00 held"
    );
    w.assert_balanced();
    // More than is left: refused, nothing moves.
    assert!(matches!(
        unfreeze(&mut w, asked.id, Some(150_01)),
        Err(Refusal::ChargeTooLarge { .. })
    ));
    assert!(matches!(
        charge(&mut w, asked.id, shop, 150_01),
        Err(Refusal::ChargeTooLarge { .. })
    ));
    assert_eq!(w.balance(renter), (150_00, 150_00));
    let charged = charge(&mut w, asked.id, shop, 100_00).expect("charged");
    assert_eq!((charged.charged, charged.rest()), (cny(100_00), 150_00));
    assert_eq!(w.balance(renter), (200_00, 0), "the rest came back");
    assert_eq!(merchant_money(&w, shop), 100_00);
    w.assert_balanced();

    // Waived: nothing held, the rest owed shrinks; the last of it closes the hold.
    let waived = request(&mut w, shop, renter, "U2", 99_00, 550);
    authorize(&mut w, waived.id, renter).expect("waived");
    let part = unfreeze(&mut w, waived.id, Some(9_00)).expect("a part");
    assert_eq!((part.status, part.rest()), (HoldStatus::Waived, 90_00));
    let closed = unfreeze(&mut w, waived.id, Some(90_00)).expect("the rest");
    assert_eq!(
        (closed.status, closed.close_reason.as_deref()),
        (HoldStatus::Closed, Some("unfrozen"))
    );
    assert_eq!(w.balance(renter), (200_00, 0));
    w.assert_balanced();
}

/// A counter scans the person's payment code: the hold is requested and authorised in one
/// step, the code is used up, and a freeze the wallet cannot cover changes nothing at all.
#[test]
fn a_freeze_with_a_payment_code_authorises_at_once_and_uses_the_code() {
    let mut w = World::new();
    let (shop, renter) = rental(&mut w, 100_00);
    let expires_at = w.now + 60 * SECOND;
    let freeze = |w: &mut World, code: &str, no: &str, minor: u64, threshold: u16| {
        hold(
            w,
            HoldCommand::Freeze(Box::new(NewFreeze {
                merchant_id: shop,
                person_id: renter,
                code: Some(formica_core::merchant::CodeUse {
                    code: code.into(),
                    expires_at,
                }),
                out_order_no: no.into(),
                out_request_no: format!("{no}-1"),
                title: "a power bank".into(),
                amount: cny(minor),
                threshold: Some(threshold),
                notify: None,
            })),
        )
    };
    // More than the wallet holds and above the score: refused, and the code still works.
    assert_eq!(
        freeze(&mut w, "281111111111111111", "P1", 500_00, 900),
        Err(Refusal::InsufficientFunds)
    );
    assert_eq!(w.balance(renter), (100_00, 0));
    let frozen = freeze(&mut w, "281111111111111111", "P1", 60_00, 900).expect("frozen");
    assert_eq!(
        (frozen.status, frozen.fund_amount, frozen.deadline),
        (HoldStatus::Frozen, cny(60_00), None)
    );
    assert_eq!(frozen.out_request_no.as_deref(), Some("P1-1"));
    assert_eq!(w.balance(renter), (40_00, 60_00));
    // The code paid once; the same order number is taken while the hold is open.
    assert_eq!(
        freeze(&mut w, "281111111111111111", "P2", 10_00, 900),
        Err(Refusal::PaymentCodeUsed)
    );
    assert_eq!(
        freeze(&mut w, "282222222222222222", "P1", 10_00, 900),
        Err(Refusal::DuplicateOutTradeNo)
    );
    // A score at the threshold: waived, nothing held.
    let waived = freeze(&mut w, "282222222222222222", "P3", 99_00, 550).expect("waived");
    assert_eq!(
        (waived.status, waived.credit_amount),
        (HoldStatus::Waived, cny(99_00))
    );
    assert_eq!(w.balance(renter), (40_00, 60_00));
    w.assert_balanced();
}

#[test]
fn a_waived_deposit_charged_beyond_the_wallet_leaves_a_debt_that_falls_overdue() {
    let mut w = World::new();
    let (shop, renter) = rental(&mut w, 30_00);
    let asked = request(&mut w, shop, renter, "D1", 500_00, 550);
    authorize(&mut w, asked.id, renter).expect("waived");
    let before = w.core.credit(renter).expect("a record").score().score;
    // The platform has set nothing aside: it cannot lend, and nothing changes.
    assert_eq!(
        charge(&mut w, asked.id, shop, 120_00),
        Err(Refusal::CreditFundingInsufficient)
    );
    assert_eq!(w.balance(renter), (30_00, 0));
    add_funding(&mut w, 1_000_00);
    let charged = charge(&mut w, asked.id, shop, 120_00).expect("charged");
    // The wallet paid its 30.00; the platform paid 90.00 for the renter, who owes it.
    assert_eq!(w.balance(renter), (0, 0));
    assert_eq!(merchant_money(&w, shop), 120_00);
    assert_eq!(owed(&w.core, renter), 90_00);
    let funding = credit_funding(&w.core, Currency::CNY);
    assert_eq!((funding.available, funding.lent), (cny(910_00), cny(90_00)));
    let debt_id = charged.debt_id.expect("a debt");
    let debt: Debt = w.core.debt(debt_id).cloned().expect("open");
    assert_eq!(debt.amount, cny(90_00));
    w.assert_balanced();

    // Past the due day: overdue, and the score counts it.
    w.advance(DEBT_DAYS * DAY + SECOND);
    let record = w.core.credit(renter).expect("a record");
    assert_eq!(record.facts.overdue, 1);
    assert_eq!(record.score().score, before - 70);
    assert!(w.core.debt(debt_id).expect("open").overdue);
    // Overdue: the next deposit is not waived, whatever the score.
    let next = request(&mut w, shop, renter, "D2", 10_00, 350);
    assert_eq!(
        authorize(&mut w, next.id, renter),
        Err(Refusal::InsufficientFunds),
        "would be frozen, and the wallet is empty"
    );

    // Repaid late, in two parts.
    let top = w.person(2, 100_00);
    assert_eq!(top, renter);
    let repay = |w: &mut World, minor| {
        w.run(ProductCommand::Hold(HoldCommand::Repay {
            debt_id,
            person_id: renter,
            amount: cny(minor),
        }))
    };
    assert!(matches!(
        repay(&mut w, 90_01),
        Err(Refusal::RepayTooLarge { .. })
    ));
    repay(&mut w, 40_00).expect("part");
    assert_eq!(owed(&w.core, renter), 50_00);
    let Ok(Outcome::Debt(done)) = repay(&mut w, 50_00) else {
        panic!("repaid")
    };
    assert!(done.repaid_at.is_some());
    assert_eq!(owed(&w.core, renter), 0);
    assert_eq!(
        credit_funding(&w.core, Currency::CNY).available,
        cny(1_000_00)
    );
    assert!(w.core.debt(debt_id).is_none());
    let record = w.core.credit(renter).expect("a record");
    assert_eq!((record.facts.overdue, record.facts.repaid_late), (0, 1));
    let history =
        record.score().dimensions[formica_core::credit::Dimension::History as usize].points;
    assert_eq!(history, 105 - 30, "late, not overdue any more");
    assert_eq!(w.balance(renter), (10_00, 0));
    w.assert_balanced();
}

#[test]
fn a_debt_repaid_by_its_due_day_counts_as_on_time() {
    let mut w = World::new();
    let (shop, renter) = rental(&mut w, 0);
    add_funding(&mut w, 100_00);
    let asked = request(&mut w, shop, renter, "E1", 100_00, 550);
    authorize(&mut w, asked.id, renter).expect("waived");
    let debt_id = charge(&mut w, asked.id, shop, 20_00)
        .expect("charged")
        .debt_id
        .expect("a debt");
    w.person(2, 20_00);
    w.run(ProductCommand::Hold(HoldCommand::Repay {
        debt_id,
        person_id: renter,
        amount: cny(20_00),
    }))
    .expect("repaid");
    let record = w.core.credit(renter).expect("a record");
    assert_eq!(record.facts.repaid_on_time, 1);
    assert!(record.score().score > 560);
    w.advance(DEBT_DAYS * DAY + SECOND);
    assert_eq!(w.core.credit(renter).expect("a record").facts.overdue, 0);
    w.assert_balanced();
}
