//! The credit score through the core: events move it (an escrow trade completed, a dispute
//! lost, a verified identity, transfers with people in good standing), the daily run scores
//! everyone again in chunks, a merchant learns only pass or fail and only with consent, and a
//! failed batch leaves credit as it was.

use formica_core::credit::{CreditCommand, Dimension, GOOD_STANDING, SCORE_MIN};

use super::merchant::open_merchant;
use super::*;

const DAY: u64 = 24 * 3600 * SECOND;

fn score(w: &World, person: Id) -> u16 {
    w.core
        .credit(person)
        .expect("a credit record")
        .score()
        .score
}

fn points(w: &World, person: Id, dimension: Dimension) -> u16 {
    w.core
        .credit(person)
        .expect("a credit record")
        .score()
        .dimensions[dimension as usize]
        .points
}

fn credit(w: &mut World, command: CreditCommand) -> Result<Outcome, Refusal> {
    w.run(ProductCommand::Credit(command))
}

fn check(w: &mut World, merchant: Id, person: Id, threshold: u16) -> Result<bool, Refusal> {
    match credit(
        w,
        CreditCommand::Check {
            merchant_id: merchant,
            person_id: person,
            threshold,
        },
    )? {
        Outcome::CreditCheck(check) => Ok(check.passes),
        other => panic!("a check: {other:?}"),
    }
}

#[test]
fn a_new_person_has_a_score_from_their_first_wallet() {
    let mut w = World::new();
    let alice = w.person(1, 0);
    assert_eq!(score(&w, alice), 350 + 105 + 60);
    let record = w.core.credit(alice).expect("a record");
    assert_eq!(record.facts.since, START + SECOND, "joined with the wallet");
    assert!(score(&w, alice) >= SCORE_MIN);
}

#[test]
fn a_completed_escrow_trade_raises_both_sides_and_a_lost_dispute_lowers_the_loser() {
    let mut w = World::new();
    let (seller, buyer, trade) = w.paid_trade();
    let (seller_before, buyer_before) = (score(&w, seller), score(&w, buyer));
    w.trade(TradeCommand::Ship {
        trade_id: trade,
        seller_id: seller,
        tracking: "SF1".into(),
    })
    .expect("ships");
    w.trade(TradeCommand::ConfirmReceipt {
        trade_id: trade,
        buyer_id: buyer,
    })
    .expect("confirms");
    assert!(score(&w, seller) > seller_before, "the seller sold one");
    assert!(score(&w, buyer) > buyer_before, "the buyer bought one");
    let buyer_record = w.core.credit(buyer).expect("a record");
    assert_eq!(buyer_record.facts.trades_bought, 1);
    assert_eq!(
        w.core.credit(seller).expect("a record").facts.trades_sold,
        1
    );
    assert!(
        buyer_record
            .score()
            .reasons
            .iter()
            .any(|r| r.text == "1 escrow trade completed" && r.points > 0),
        "{:?}",
        buyer_record.score().reasons
    );

    // A second trade goes to a dispute the operator decides for the buyer: the seller lost.
    let second = w.create(seller, "A2", 10_00);
    w.trade(TradeCommand::Pay {
        trade_id: second,
        buyer_id: buyer,
    })
    .expect("pays");
    w.trade(TradeCommand::RequestRefund {
        trade_id: second,
        buyer_id: buyer,
        amount: cny(10_00),
        reason: "never came".into(),
    })
    .expect("asks");
    w.trade(TradeCommand::AnswerRefund {
        trade_id: second,
        seller_id: seller,
        agree: false,
    })
    .expect("refuses");
    let (seller_before, buyer_before) = (score(&w, seller), score(&w, buyer));
    w.trade(TradeCommand::Decide {
        trade_id: second,
        decision: Decision::Refund,
    })
    .expect("decided");
    assert!(
        score(&w, seller) < seller_before,
        "the seller lost the dispute"
    );
    assert_eq!(score(&w, buyer), buyer_before, "the buyer did not");
    let seller_record = w.core.credit(seller).expect("a record");
    assert_eq!(seller_record.facts.disputes_lost, 1);
    assert_eq!(seller_record.score().change, -30);
    assert_eq!(
        seller_record.score().dimensions[Dimension::Behaviour as usize].change,
        -30
    );
    w.assert_balanced();
}

#[test]
fn verifying_identity_raises_the_score_at_once() {
    let mut w = World::new();
    let alice = w.person(1, 0);
    let before = points(&w, alice, Dimension::Identity);
    w.wallet(WalletCommand::SetLevel {
        user_id: alice,
        level: Level::Verified,
    })
    .expect("verified");
    assert_eq!(points(&w, alice, Dimension::Identity), before + 45);
}

#[test]
fn transfers_count_only_with_people_in_good_standing() {
    let mut w = World::new();
    w.core.configure(Settings::default());
    // Bob: verified, rich and a year old reaches good standing; Carol is new.
    let bob = w.person(2, 200_000_00);
    let carol = w.person(3, 1_000_00);
    w.wallet(WalletCommand::SetLevel {
        user_id: bob,
        level: Level::Verified,
    })
    .expect("verified");
    w.advance(400 * DAY);
    assert!(score(&w, bob) >= GOOD_STANDING, "bob: {}", score(&w, bob));
    assert!(
        score(&w, carol) < GOOD_STANDING,
        "carol: {}",
        score(&w, carol)
    );
    let transfer = |w: &mut World, from: Id, to: Id| {
        w.wallet(WalletCommand::Transfer {
            from_user_id: from,
            to_user_id: to,
            amount: cny(1_00),
            note: String::new(),
        })
        .expect("sent");
    };
    transfer(&mut w, carol, bob);
    transfer(&mut w, bob, carol);
    assert_eq!(
        w.core.credit(carol).expect("a record").facts.good_transfers,
        2
    );
    assert_eq!(
        w.core.credit(bob).expect("a record").facts.good_transfers,
        0,
        "carol is not in good standing"
    );
    assert_eq!(points(&w, carol, Dimension::Connections), 6);
}

#[test]
fn the_daily_run_scores_everyone_again_in_chunks_and_resumes_where_it_stood() {
    let mut w = World::new();
    w.core.configure(Settings {
        accrual_chunk: 2,
        ..Settings::default()
    });
    let people: Vec<Id> = (1..=5).map(|n| w.person(n, 0)).collect();
    let identity = |w: &World| {
        people
            .iter()
            .map(|p| points(w, *p, Dimension::Identity))
            .collect::<Vec<_>>()
    };
    assert_eq!(identity(&w), vec![0; 5]);
    // Thirty-one days on, the first midnight's batch scores two people, the next two
    // more, the last one the rest: the account's age counts from then.
    w.advance(31 * DAY);
    assert_eq!(identity(&w), vec![15, 15, 0, 0, 0]);
    assert!(w.core.credit_run().running);
    assert_eq!(w.core.credit_run().after, Some(people[1]));
    w.advance(SECOND);
    assert_eq!(identity(&w), vec![15, 15, 15, 15, 0]);
    w.advance(SECOND);
    assert_eq!(identity(&w), vec![15; 5]);
    assert!(!w.core.credit_run().running);
    // Nothing changes until the next day's run.
    let before = w.core.credit(people[0]).cloned();
    w.advance(SECOND);
    assert_eq!(w.core.credit(people[0]).cloned(), before);
}

#[test]
fn a_merchant_learns_only_pass_or_fail_and_only_with_consent() {
    let mut w = World::new();
    let owner = w.person(1, 0);
    let alice = w.person(2, 0);
    let shop = open_merchant(&mut w, owner);
    let alice_score = score(&w, alice);
    assert_eq!(
        check(&mut w, shop, alice, 550),
        Err(Refusal::ConsentNotFound)
    );
    // Nobody and somebody without consent look the same.
    assert_eq!(
        check(&mut w, shop, Id(999), 550),
        Err(Refusal::ConsentNotFound)
    );
    let Ok(Outcome::Consent(granted)) = credit(
        &mut w,
        CreditCommand::Grant {
            person_id: alice,
            merchant_id: shop,
        },
    ) else {
        panic!("granted")
    };
    assert!(granted.stands());
    assert_eq!(check(&mut w, shop, alice, alice_score), Ok(true));
    assert_eq!(check(&mut w, shop, alice, alice_score + 1), Ok(false));
    assert_eq!(
        check(&mut w, shop, alice, 349),
        Err(Refusal::ThresholdInvalid)
    );
    assert_eq!(
        check(&mut w, shop, alice, 951),
        Err(Refusal::ThresholdInvalid)
    );
    let consent = w.core.consent(alice, shop).expect("a consent");
    assert_eq!(consent.checks, 2, "refused checks are not counted");
    credit(
        &mut w,
        CreditCommand::Withdraw {
            person_id: alice,
            merchant_id: shop,
        },
    )
    .expect("withdrawn");
    assert_eq!(
        check(&mut w, shop, alice, 350),
        Err(Refusal::ConsentNotFound)
    );
    assert_eq!(
        credit(
            &mut w,
            CreditCommand::Grant {
                person_id: alice,
                merchant_id: Id(12345),
            },
        ),
        Err(Refusal::MerchantNotFound)
    );
    assert_eq!(
        credit(
            &mut w,
            CreditCommand::Withdraw {
                person_id: alice,
                merchant_id: Id(12345),
            },
        ),
        Err(Refusal::ConsentNotFound)
    );
}

#[test]
fn a_rolled_back_batch_leaves_credit_as_it_was() {
    let mut w = World::new();
    let owner = w.person(1, 0);
    let alice = w.person(2, 0);
    let shop = open_merchant(&mut w, owner);
    let before = w.core.export_products();
    w.core.begin_batch();
    for command in [
        CreditCommand::Grant {
            person_id: alice,
            merchant_id: shop,
        },
        CreditCommand::Check {
            merchant_id: shop,
            person_id: alice,
            threshold: 400,
        },
    ] {
        w.core
            .apply(
                w.now,
                &Command::Product(ProductRequest {
                    command: ProductCommand::Credit(command),
                    idempotency: None,
                }),
            )
            .expect("applied");
    }
    w.core
        .apply(
            w.now,
            &Command::Product(ProductRequest {
                command: ProductCommand::Wallet(WalletCommand::SetLevel {
                    user_id: alice,
                    level: Level::Verified,
                }),
                idempotency: None,
            }),
        )
        .expect("applied");
    w.core.rollback_batch();
    assert_eq!(w.core.export_products(), before);
    assert!(w.core.consent(alice, shop).is_none());
}
