//! The credit line through the core, a year of it driven by the clock: purchases at a shop and
//! into escrow, statements on the 1st, repaying in full, the minimum, instalments, an overdue
//! statement with its daily interest, refunds going back to the line; every day with the
//! books balanced, the line's account equal to what it says is owed and the platform's lent
//! money equal to the principal owed. And a property test over random days of it.

use formica_core::credit_line::{
    CreditLine, CreditLineCommand, CreditPolicy, InstalmentFee, civil, days_from_civil,
    line_account,
};
use formica_core::deposit::{HoldCommand, credit_funding};
use formica_core::merchant::MerchantCommand;
use formica_core::trade::NewTrade;

use super::merchant::open_merchant;
use super::*;

const DAY: u64 = 24 * 3600 * SECOND;
/// The platform's zone, as the default settings have it.
const OFFSET: i64 = 8 * 3600;

fn line_command(w: &mut World, command: CreditLineCommand) -> Result<Outcome, Refusal> {
    w.run(ProductCommand::CreditLine(command))
}

fn line(w: &World, person: Id) -> CreditLine {
    w.core.credit_line(person).expect("a line").clone()
}

/// Today in the platform's zone.
fn today(w: &World) -> (i64, u32, u32) {
    civil(Settings::default().day(w.now))
}

/// Runs the clock a day at a time (every midnight's timers) to 10:00 on this date.
fn to_date(w: &mut World, year: i64, month: u32, day: u32) {
    let target = days_from_civil(year, month, day);
    let at = u64::try_from(target * 86_400 - OFFSET + 10 * 3600).expect("after 1970") * SECOND;
    assert!(at > w.now, "the clock only goes forward");
    while w.now + DAY < at {
        w.advance(DAY);
        check(w);
    }
    w.advance(at - w.now);
    check(w);
}

/// The books balance; every line's account is what the line says is owed; lent money is
/// the principal owed on lines and debts.
fn check(w: &World) {
    w.assert_balanced();
    let ledger = w.core.ledger();
    let balance = |id| {
        ledger
            .account(id)
            .map_or(0, |a| a.debits_posted as i128 - a.credits_posted as i128)
    };
    let mut principal = 0u64;
    for person in [Id(2)] {
        if let Some(line) = w.core.credit_line(person) {
            assert_eq!(
                balance(line_account(person, Currency::CNY)),
                i128::from(line.owed()),
                "the line's account is what it owes: {line:?}"
            );
            assert!(
                line.used() <= line.limit.amount_minor,
                "principal within the limit"
            );
            principal += line.used();
        }
    }
    assert_eq!(
        credit_funding(&w.core, Currency::CNY).lent.amount_minor,
        principal,
        "lent is the principal owed"
    );
}

/// A shop, a verified borrower holding 20,000.00 whose score the daily run has counted,
/// funding for credit, and the borrower's line (due on the 10th).
fn borrower(w: &mut World) -> (Id, Id) {
    let owner = w.person(1, 0);
    let person = w.person(2, 20_000_00);
    w.wallet(WalletCommand::SetLevel {
        user_id: person,
        level: Level::Verified,
    })
    .expect("verified");
    let shop = open_merchant(w, owner);
    w.run(ProductCommand::Hold(HoldCommand::AddFunding {
        amount: cny(1_000_000_00),
    }))
    .expect("funded");
    let (y, m, d) = today(w);
    let next = civil(days_from_civil(y, m, d) + 1);
    to_date(w, next.0, next.1, next.2);
    let score = w.core.credit(person).expect("scored").total();
    assert!(score >= 600, "a score of {score} earns a line");
    match line_command(
        w,
        CreditLineCommand::Open {
            person_id: person,
            due_day: 10,
        },
    ) {
        Ok(Outcome::CreditLine(line)) => {
            assert_eq!(line.limit.amount_minor, w.core.credit_policy().limit(score));
        }
        other => panic!("opened: {other:?}"),
    }
    (shop, person)
}

/// A shop's trade for `minor`, paid from the line.
fn buy_at_shop(w: &mut World, shop: Id, person: Id, no: &str, minor: u64) -> Result<Id, Refusal> {
    let mut new = NewTrade::escrow(shop, None, no, "tea", cny(minor));
    new.escrow = false;
    let Ok(Outcome::Trade(trade)) = w.run(ProductCommand::Merchant(MerchantCommand::CreateTrade(
        Box::new(new),
    ))) else {
        panic!("created")
    };
    line_command(
        w,
        CreditLineCommand::PayTrade {
            trade_id: trade.id,
            buyer_id: person,
        },
    )
    .map(|_| trade.id)
}

fn repay(w: &mut World, person: Id, minor: u64) -> Result<CreditLine, Refusal> {
    match line_command(
        w,
        CreditLineCommand::Repay {
            person_id: person,
            amount: cny(minor),
        },
    )? {
        Outcome::CreditLine(line) => Ok(line),
        other => panic!("a line: {other:?}"),
    }
}

fn wallet(w: &World, person: Id) -> i128 {
    w.balance(person).0
}

#[test]
fn a_year_on_the_credit_line() {
    let mut w = World::new();
    assert_eq!(
        today(&w),
        (2027, 1, 15),
        "the test's clock starts on 2027-01-15"
    );
    let (shop, person) = borrower(&mut w);
    let seller = w.person(3, 0);
    let start_wallet = wallet(&w, person);

    // January: a shop's trade (billed at once) and an escrow trade (billed at receipt).
    buy_at_shop(&mut w, shop, person, "J1", 300_00).expect("paid from the line");
    let escrow = w.create(seller, "J2", 200_00);
    line_command(
        &mut w,
        CreditLineCommand::PayTrade {
            trade_id: escrow,
            buyer_id: person,
        },
    )
    .expect("paid into escrow from the line");
    assert_eq!(wallet(&w, person), start_wallet, "the wallet paid nothing");
    let l = line(&w, person);
    assert_eq!(
        (l.unbilled.amount_minor, l.escrowed.amount_minor),
        (300_00, 200_00)
    );
    w.trade(TradeCommand::Ship {
        trade_id: escrow,
        seller_id: seller,
        tracking: "SF1".into(),
    })
    .expect("shipped");
    to_date(&mut w, 2027, 1, 20);
    w.trade(TradeCommand::ConfirmReceipt {
        trade_id: escrow,
        buyer_id: person,
    })
    .expect("received");
    assert_eq!(
        line(&w, person).unbilled.amount_minor,
        500_00,
        "received: billed"
    );

    // February 1st: the statement; repaid in full by the 10th: no interest.
    to_date(&mut w, 2027, 2, 1);
    let statement = line(&w, person).statement.expect("a statement");
    assert_eq!(statement.principal.amount_minor, 500_00);
    assert_eq!(statement.minimum.amount_minor, 50_00, "10%");
    assert_eq!(
        civil(Settings::default().day(statement.due_at) - 1),
        (2027, 2, 10)
    );
    let on_time = w.core.credit(person).expect("scored").facts.repaid_on_time;
    to_date(&mut w, 2027, 2, 9);
    let l = repay(&mut w, person, 500_00).expect("repaid");
    assert_eq!(l.owed(), 0);
    assert_eq!(
        w.core.credit(person).expect("scored").facts.repaid_on_time,
        on_time + 1
    );
    to_date(&mut w, 2027, 2, 20);
    assert_eq!(
        line(&w, person).interest_total.amount_minor,
        0,
        "no interest"
    );

    // A purchase, the minimum repaid: interest on the rest from the day after the due day.
    buy_at_shop(&mut w, shop, person, "F1", 1_000_00).expect("paid");
    to_date(&mut w, 2027, 3, 5);
    assert_eq!(
        line(&w, person)
            .statement
            .expect("billed")
            .minimum
            .amount_minor,
        100_00
    );
    repay(&mut w, person, 100_00).expect("the minimum");
    to_date(&mut w, 2027, 4, 1);
    let l = line(&w, person);
    assert!(!l.overdue, "the minimum was paid: not overdue");
    // 900.00 × 0.05% = 0.45 a day, March 11th to 31st.
    assert_eq!(l.interest_total.amount_minor, 21 * 45);
    let statement = l.statement.clone().expect("April's statement");
    assert_eq!(statement.principal.amount_minor, 900_00, "the rest carried");
    assert_eq!(statement.charges.amount_minor, 21 * 45, "with its interest");
    to_date(&mut w, 2027, 4, 5);
    let owed = line(&w, person).owed();
    repay(&mut w, person, owed).expect("all of it");
    let l = line(&w, person);
    assert_eq!((l.owed(), l.late.amount_minor), (0, 0));

    // Instalments: April's purchase, billed in May, in three periods.
    buy_at_shop(&mut w, shop, person, "A1", 1_200_00).expect("paid");
    to_date(&mut w, 2027, 5, 2);
    let Ok(Outcome::CreditLine(l)) = line_command(
        &mut w,
        CreditLineCommand::Instalments {
            person_id: person,
            periods: 3,
        },
    ) else {
        panic!("in instalments")
    };
    let statement = l.statement.clone().expect("May's");
    assert_eq!(statement.principal_left.amount_minor, 400_00, "a third");
    assert_eq!(
        statement.charges_left.amount_minor, 10_00,
        "a third of 2.5%"
    );
    assert_eq!(l.plan.as_ref().expect("a plan").periods_left, 2);
    assert_eq!(
        line_command(
            &mut w,
            CreditLineCommand::Instalments {
                person_id: person,
                periods: 6,
            }
        ),
        Err(Refusal::InstalmentsInvalid),
        "one plan at a time"
    );
    for month in [5, 6, 7] {
        to_date(&mut w, 2027, month, 8);
        let owed = line(&w, person).statement.expect("a period").left();
        assert_eq!(owed, 410_00, "a period: 400.00 and 10.00 of fee");
        repay(&mut w, person, owed).expect("the period");
    }
    to_date(&mut w, 2027, 8, 1);
    let l = line(&w, person);
    assert_eq!(l.fees_total.amount_minor, 30_00, "2.5% of 1,200.00");
    assert_eq!((l.owed(), l.plan.is_some()), (0, false), "the plan is paid");

    // A refund of a purchase from the line goes back to the line, not the wallet.
    let wallet_before = wallet(&w, person);
    let trade = buy_at_shop(&mut w, shop, person, "G1", 500_00).expect("paid");
    w.run(ProductCommand::Merchant(MerchantCommand::Refund {
        merchant_id: shop,
        trade_id: trade,
        out_request_no: "R1".into(),
        amount: cny(100_00),
        reason: "one cup broken".into(),
    }))
    .expect("refunded");
    assert_eq!(line(&w, person).unbilled.amount_minor, 400_00);
    assert_eq!(wallet(&w, person), wallet_before, "the wallet is as it was");
    let escrow = w.create(seller, "G2", 50_00);
    line_command(
        &mut w,
        CreditLineCommand::PayTrade {
            trade_id: escrow,
            buyer_id: person,
        },
    )
    .expect("paid into escrow");
    w.trade(TradeCommand::RequestRefund {
        trade_id: escrow,
        buyer_id: person,
        amount: cny(50_00),
        reason: "never sent".into(),
    })
    .expect("asked");
    w.trade(TradeCommand::AnswerRefund {
        trade_id: escrow,
        seller_id: seller,
        agree: true,
    })
    .expect("agreed");
    let l = line(&w, person);
    assert_eq!(
        (l.escrowed.amount_minor, l.unbilled.amount_minor),
        (0, 400_00)
    );
    assert_eq!(wallet(&w, person), wallet_before);

    // Not even the minimum by the due day: overdue, no drawing, 0.05% a day on it.
    let score_before = w.core.credit(person).expect("scored").total();
    to_date(&mut w, 2027, 9, 10);
    assert!(!line(&w, person).overdue, "due at the end of the 10th");
    to_date(&mut w, 2027, 9, 11);
    let l = line(&w, person);
    assert!(l.overdue);
    assert!(w.core.credit(person).expect("scored").total() < score_before);
    assert_eq!(
        buy_at_shop(&mut w, shop, person, "S1", 10_00),
        Err(Refusal::CreditLineOverdue)
    );
    let interest_before = l.interest_total.amount_minor;
    to_date(&mut w, 2027, 9, 16);
    // 400.00 × 0.05% × 5 days = 1.00.
    assert_eq!(
        line(&w, person).interest_total.amount_minor - interest_before,
        1_00
    );
    let minimum = line(&w, person)
        .statement
        .expect("September's")
        .minimum_left;
    repay(&mut w, person, minimum.amount_minor).expect("the minimum, late");
    let l = line(&w, person);
    assert!(!l.overdue, "the minimum is paid");
    assert_eq!(w.core.credit(person).expect("scored").facts.repaid_late, 1);
    buy_at_shop(&mut w, shop, person, "S2", 10_00).expect("drawing again");

    // To the year's end: everything repaid.
    to_date(&mut w, 2027, 12, 2);
    let owed = line(&w, person).owed();
    repay(&mut w, person, owed).expect("all of it");
    to_date(&mut w, 2028, 1, 16);
    let l = line(&w, person);
    assert_eq!(l.owed(), 0);
    assert_eq!(l.next_at, None, "nothing owed: no timer");
    let income = |id| {
        w.core
            .ledger()
            .account(id)
            .map_or(0, |a| a.credits_posted - a.debits_posted)
    };
    assert_eq!(
        income(formica_core::credit_line::interest_account(Currency::CNY)),
        u128::from(l.interest_total.amount_minor)
    );
    assert_eq!(
        income(formica_core::credit_line::fee_income_account(Currency::CNY)),
        30_00
    );
}

/// An operator's new rules: refused out of bounds with nothing changed; once set, the next
/// statement's minimum, the plans on offer and their fees, and the next limit follow them.
#[test]
fn an_operators_policy_sets_the_minimum_the_plans_and_the_limit() {
    let mut w = World::new();
    let (shop, person) = borrower(&mut w);
    let first_limit = line(&w, person).limit.amount_minor;
    let policy = CreditPolicy {
        line_score_min: 300,
        ..CreditPolicy::default()
    };
    let refused = line_command(&mut w, CreditLineCommand::SetPolicy(Box::new(policy)));
    assert!(
        matches!(refused, Err(Refusal::CreditPolicyInvalid { ref why }) if why.contains("line_score_min")),
        "{refused:?}"
    );
    assert_eq!(w.core.credit_policy(), &CreditPolicy::default());

    let policy = CreditPolicy {
        line_per_point: cny(200_00),
        minimum_per_mille: 200,
        instalments: vec![InstalmentFee {
            periods: 6,
            fee_per_mille: 30,
        }],
        ..CreditPolicy::default()
    };
    let set = line_command(
        &mut w,
        CreditLineCommand::SetPolicy(Box::new(policy.clone())),
    );
    assert_eq!(set, Ok(Outcome::CreditPolicy(policy.clone())));
    assert_eq!(w.core.credit_policy(), &policy);
    assert_eq!(
        line(&w, person).limit.amount_minor,
        first_limit,
        "the limit is set again on the statement day, not at once"
    );

    buy_at_shop(&mut w, shop, person, "P1", 1_000_00).expect("paid from the line");
    to_date(&mut w, 2027, 2, 1);
    let l = line(&w, person);
    let statement = l.statement.clone().expect("a statement");
    assert_eq!(statement.minimum.amount_minor, 200_00, "20% now");
    let score = w.core.credit(person).expect("scored").total();
    assert_eq!(l.limit.amount_minor, policy.limit(score));
    assert!(l.limit.amount_minor > first_limit, "200.00 a point");
    // The plans on offer are the policy's.
    assert_eq!(
        line_command(
            &mut w,
            CreditLineCommand::Instalments {
                person_id: person,
                periods: 3,
            },
        ),
        Err(Refusal::InstalmentsInvalid)
    );
    line_command(
        &mut w,
        CreditLineCommand::Instalments {
            person_id: person,
            periods: 6,
        },
    )
    .expect("six periods");
    let plan = line(&w, person).plan.expect("a plan");
    assert_eq!(
        (plan.periods, plan.fee_left.amount_minor),
        (6, 25_00),
        "3.0% of 1,000.00 is 30.00, a sixth of it billed at once"
    );
    check(&w);
}

#[test]
fn refusals_change_nothing() {
    let mut w = World::new();
    let (shop, person) = borrower(&mut w);
    let stranger = w.person(4, 100_00);
    assert_eq!(
        line_command(
            &mut w,
            CreditLineCommand::Open {
                person_id: stranger,
                due_day: 10,
            }
        ),
        Err(Refusal::CreditLineNotEligible { score: Some(515) })
    );
    assert_eq!(
        line_command(
            &mut w,
            CreditLineCommand::Open {
                person_id: person,
                due_day: 11,
            }
        ),
        Err(Refusal::DueDayInvalid)
    );
    assert_eq!(
        line_command(
            &mut w,
            CreditLineCommand::Open {
                person_id: person,
                due_day: 9,
            }
        ),
        Err(Refusal::CreditLineExists)
    );
    let limit = line(&w, person).limit.amount_minor;
    let before = line(&w, person);
    assert_eq!(
        buy_at_shop(&mut w, shop, person, "BIG", limit + 1),
        Err(Refusal::CreditLineInsufficient {
            available: cny(limit)
        })
    );
    assert_eq!(
        repay(&mut w, person, 1),
        Err(Refusal::RepayTooLarge {
            outstanding: cny(0)
        })
    );
    assert_eq!(line(&w, person), before);
    check(&w);
}

#[derive(Clone, Debug)]
enum Step {
    Buy(u64),
    Escrow(u64),
    Receive,
    Refund(u64),
    Repay(u64),
    Instalments(u8),
    Days(u64),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        (1u64..300_000).prop_map(Step::Buy),
        (1u64..300_000).prop_map(Step::Escrow),
        Just(Step::Receive),
        (1u64..100_000).prop_map(Step::Refund),
        (1u64..500_000).prop_map(Step::Repay),
        prop::sample::select(vec![3u8, 6, 9, 12]).prop_map(Step::Instalments),
        (1u64..40).prop_map(Step::Days),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]
    /// Whatever people do, principal never passes the limit, the line's account is what it
    /// owes, and lent money is the principal owed: checked after every step.
    #[test]
    fn the_line_never_lends_past_its_limit_and_its_account_adds_up(
        steps in prop::collection::vec(step(), 1..40)
    ) {
        let mut w = World::new();
        let (shop, person) = borrower(&mut w);
        let seller = w.person(3, 0);
        let mut shop_trades = Vec::new();
        let mut escrow_trades = Vec::new();
        for (n, step) in steps.into_iter().enumerate() {
            match step {
                Step::Buy(minor) => {
                    if let Ok(id) = buy_at_shop(&mut w, shop, person, &format!("B{n}"), minor) {
                        shop_trades.push(id);
                    }
                }
                Step::Escrow(minor) => {
                    let id = w.create(seller, &format!("E{n}"), minor);
                    if line_command(&mut w, CreditLineCommand::PayTrade {
                        trade_id: id,
                        buyer_id: person,
                    }).is_ok() {
                        escrow_trades.push(id);
                    }
                }
                Step::Receive => {
                    if let Some(id) = escrow_trades.pop() {
                        let _ = w.trade(TradeCommand::Ship {
                            trade_id: id,
                            seller_id: seller,
                            tracking: "SF".into(),
                        });
                        let _ = w.trade(TradeCommand::ConfirmReceipt {
                            trade_id: id,
                            buyer_id: person,
                        });
                    }
                }
                Step::Refund(minor) => {
                    if let Some(id) = shop_trades.last() {
                        let _ = w.run(ProductCommand::Merchant(MerchantCommand::Refund {
                            merchant_id: shop,
                            trade_id: *id,
                            out_request_no: format!("R{n}"),
                            amount: cny(minor),
                            reason: "back".into(),
                        }));
                    }
                }
                Step::Repay(minor) => {
                    let owed = line(&w, person).owed();
                    let _ = repay(&mut w, person, minor.min(owed).max(1));
                }
                Step::Instalments(periods) => {
                    let _ = line_command(&mut w, CreditLineCommand::Instalments {
                        person_id: person,
                        periods,
                    });
                }
                Step::Days(days) => {
                    for _ in 0..days {
                        w.advance(DAY);
                        check(&w);
                    }
                }
            }
            check(&w);
        }
    }
}
