//! The pocket-money fund: subscriptions confirmed on the next business day, instant and
//! normal redemptions, the daily income credited in chunks with each holder's earnings
//! rounded down and the rest kept, and a property test that the units outstanding always
//! equal the fund's money.

use formica_core::fund::{
    Fund, FundCommand, Income, Redemption, Subscription, fund_account, income_account,
    issuer_account, residual_account, units_account,
};

use super::*;

const DAY: u64 = 24 * 3600 * SECOND;

/// START is Friday 2027-01-15 16:00 in the platform's zone (UTC+8): after the cut-off.
const FRIDAY: i64 = 20_833;

fn open_fund(w: &mut World, manager: Id) -> Fund {
    match w.run(ProductCommand::Fund(FundCommand::Create {
        name: "Pocket".into(),
        currency: Currency::CNY,
        manager_id: manager,
        cutoff_second: 15 * 3600,
        instant_limit: cny(10_000_00),
    })) {
        Ok(Outcome::Fund(fund)) => fund,
        other => panic!("a fund: {other:?}"),
    }
}

fn subscribe(w: &mut World, fund: Id, holder: Id, minor: u64) -> Result<Subscription, Refusal> {
    match w.run(ProductCommand::Fund(FundCommand::Subscribe {
        fund_id: fund,
        holder_id: holder,
        amount: cny(minor),
    }))? {
        Outcome::Subscription(s) => Ok(s),
        other => panic!("a subscription: {other:?}"),
    }
}

fn redeem(
    w: &mut World,
    fund: Id,
    holder: Id,
    minor: u64,
    instant: bool,
) -> Result<Redemption, Refusal> {
    match w.run(ProductCommand::Fund(FundCommand::Redeem {
        fund_id: fund,
        holder_id: holder,
        amount: cny(minor),
        instant,
    }))? {
        Outcome::Redemption(r) => Ok(r),
        other => panic!("a redemption: {other:?}"),
    }
}

fn post(w: &mut World, fund: Id, day: i64, income: &str) -> Result<Fund, Refusal> {
    match w.run(ProductCommand::Fund(FundCommand::PostIncome {
        fund_id: fund,
        day,
        income: Income::parse(income).expect("an income"),
    }))? {
        Outcome::Fund(f) => Ok(f),
        other => panic!("a fund: {other:?}"),
    }
}

fn account(w: &World, id: u128) -> (i128, u128, u128, u128, u128) {
    w.core.ledger().account(id).map_or((0, 0, 0, 0, 0), |a| {
        (
            a.available(),
            a.debits_pending,
            a.debits_posted,
            a.credits_pending,
            a.credits_posted,
        )
    })
}

/// A holder's confirmed units.
fn units(w: &World, fund: &Fund, holder: Id) -> u128 {
    let (_, _, debits, _, credits) = account(w, units_account(holder, fund));
    credits - debits
}

/// (units outstanding, confirmed or not; the fund's money not promised to anyone).
fn reconcile(w: &World, fund: &Fund) -> (u128, i128) {
    let (_, pending, debits, _, credits) = account(w, issuer_account(fund));
    let outstanding = debits + pending - credits;
    let (money, ..) = account(w, fund_account(fund.id, Currency::CNY));
    (outstanding, money)
}

fn assert_reconciled(w: &World, fund: &Fund) {
    let (outstanding, money) = reconcile(w, fund);
    assert_eq!(i128::try_from(outstanding).expect("fits"), money);
    w.assert_balanced();
}

#[test]
fn a_subscription_earns_from_its_confirmation_day() {
    let mut w = World::new();
    let manager = w.person(9, 1_000_00);
    let alice = w.person(1, 20_000_00);
    let fund = open_fund(&mut w, manager);
    // Friday 16:00 is after the cut-off: Monday's trade, confirmed Tuesday.
    let bought = subscribe(&mut w, fund.id, alice, 10_000_00).expect("subscribes");
    assert_eq!(bought.confirm_day, FRIDAY + 4);
    assert_eq!(w.balance(alice).0, 10_000_00);
    assert_eq!(units(&w, &fund, alice), 0, "pending until confirmed");
    assert_reconciled(&w, &fund);
    // Unconfirmed units cannot be redeemed.
    assert!(matches!(
        redeem(&mut w, fund.id, alice, 1_00, true),
        Err(Refusal::UnitsInsufficient { .. })
    ));
    // Saturday: Friday's income is posted; nothing is confirmed yet, so nothing earns, and
    // the manager pays nothing in.
    w.advance(DAY);
    let posted = post(&mut w, fund.id, FRIDAY, "0.9312").expect("posts");
    assert_eq!(posted.accrued_through, FRIDAY);
    assert_eq!(w.balance(manager).0, 1_000_00);
    // The same day again, or a day not over yet, is refused.
    assert_eq!(
        post(&mut w, fund.id, FRIDAY, "0.9312").map(|_| ()),
        Err(Refusal::IncomeDayInvalid {
            expected: FRIDAY + 1
        })
    );
    assert_eq!(
        post(&mut w, fund.id, FRIDAY + 2, "0.9").map(|_| ()),
        Err(Refusal::IncomeDayInvalid {
            expected: FRIDAY + 1
        })
    );
    // Tuesday midnight confirms the units; Tuesday's income is their first.
    w.advance(3 * DAY);
    assert_eq!(units(&w, &fund, alice), 10_000_00);
    for day in FRIDAY + 1..FRIDAY + 4 {
        post(&mut w, fund.id, day, "0.9312").expect("posts");
    }
    assert_eq!(
        units(&w, &fund, alice),
        10_000_00,
        "no earnings before Tuesday"
    );
    w.advance(DAY);
    post(&mut w, fund.id, FRIDAY + 4, "0.9312").expect("posts");
    // 10,000.00 units × 0.9312 / 10,000 = 0.9312: 0.93 credited as units.
    assert_eq!(units(&w, &fund, alice), 10_000_93);
    assert_eq!(w.balance(manager).0, 1_000_00 - 93);
    assert_reconciled(&w, &fund);
}

/// A fund credited two holders a batch, with holders 1, 2, … (100,000.00 each in their
/// wallets) subscribing `amounts` on Friday after the cut-off (confirmed on Tuesday), and the
/// incomes of Friday to Monday posted and accrued: it is Tuesday, 16:00 and a few seconds.
/// Returns the manager, the fund and the holders.
fn holders_through_monday(w: &mut World, amounts: &[u64]) -> (Id, Fund, Vec<Id>) {
    w.core.configure(Settings {
        accrual_chunk: 2,
        ..Settings::default()
    });
    let manager = w.person(9, 1_000_00);
    let fund = open_fund(w, manager);
    let holders: Vec<Id> = (1..=amounts.len() as u64)
        .map(|n| w.person(n, 100_000_00))
        .collect();
    for (holder, amount) in holders.iter().zip(amounts) {
        subscribe(w, fund.id, *holder, *amount).expect("subscribes");
    }
    w.advance(4 * DAY);
    for day in FRIDAY..FRIDAY + 4 {
        post(w, fund.id, day, "0.9312").expect("posts");
        // Each day's chunks (nothing earns before Tuesday, but every holder is visited).
        w.advance(SECOND);
        w.advance(SECOND);
    }
    (manager, fund, holders)
}

#[test]
fn holders_are_credited_rounded_down_and_the_rest_is_kept() {
    let mut w = World::new();
    // 50,000.00, 50,000.01, …: each earns 4.656 and a bit, rounded down to 4.65.
    let amounts: Vec<u64> = (0..5).map(|n| 50_000_00 + n).collect();
    let (manager, fund, holders) = holders_through_monday(&mut w, &amounts);
    w.advance(DAY);
    // Five holders, two a batch: the posting batch credits two, the next two batches the rest.
    let posted = post(&mut w, fund.id, FRIDAY + 4, "0.9312").expect("posts");
    let accrual = posted.accrual.expect("in progress");
    assert_eq!(accrual.credited, 2 * 4_65);
    // 250,000.10 units × 0.9312 / 10,000 = 23.28: the manager pays 23.28 in at once.
    assert_eq!(accrual.total, 23_28);
    assert_eq!(
        post(&mut w, fund.id, FRIDAY + 5, "0.9").map(|_| ()),
        Err(Refusal::AccrualInProgress)
    );
    w.advance(SECOND);
    w.advance(SECOND);
    for holder in &holders {
        assert_eq!(
            units(&w, &fund, *holder) % 100_00,
            4_65 + (holder.0 - 1) as u128
        );
    }
    // 5 × 4.65 = 23.25 credited; the 0.03 rounding left is the fund's, not invented or lost.
    assert_eq!(account(&w, residual_account(fund.id, Currency::CNY)).0, 3);
    assert_eq!(account(&w, income_account(fund.id, Currency::CNY)).0, 0);
    assert_eq!(w.balance(manager).0, 1_000_00 - 23_28);
    assert_reconciled(&w, &fund);
    // Wednesday's income waits until Wednesday is over.
    assert_eq!(
        post(&mut w, fund.id, FRIDAY + 5, "0.9").map(|_| ()),
        Err(Refusal::IncomeDayInvalid {
            expected: FRIDAY + 5
        })
    );
}

/// A batch whose commit failed takes an accrual chunk back whole: the holders' units in
/// memory and in the books are as before, and the retry credits each holder once.
#[test]
fn an_accrual_chunk_rolled_back_is_credited_once_on_the_retry() {
    let mut w = World::new();
    let (_, fund, holders) = holders_through_monday(&mut w, &[50_000_00; 3]);
    w.advance(DAY);
    post(&mut w, fund.id, FRIDAY + 4, "0.9312").expect("posts");
    let held = |w: &World| {
        holders
            .iter()
            .map(|h| w.core.holding(fund.id, *h).expect("a holding").units)
            .collect::<Vec<_>>()
    };
    let (before, digest) = (held(&w), w.core.ledger().digest());
    // The third holder's chunk, applied and then rolled back as after a failed commit.
    w.now += SECOND;
    w.core.begin_batch();
    w.core.expire(w.now);
    assert_ne!(held(&w), before, "the chunk credits the last holder");
    let _ = w.core.effects();
    w.core.rollback_batch();
    assert_eq!(held(&w), before);
    assert_eq!(w.core.ledger().digest(), digest);
    w.advance(SECOND);
    for holder in &holders {
        assert_eq!(units(&w, &fund, *holder), 50_004_65);
        assert_eq!(
            w.core.holding(fund.id, *holder).expect("a holding").units,
            50_004_65
        );
    }
    assert_reconciled(&w, &fund);
}

/// A day's credit run that falls due while a fund's earnings are being credited waits for
/// them: one chunk of holders a batch, not a chunk of both, and the scores then count the
/// earnings.
#[test]
fn the_daily_credit_run_waits_for_an_accrual_in_progress() {
    let mut w = World::new();
    let (_, fund, holders) = holders_through_monday(&mut w, &[50_000_00; 5]);
    // Wednesday 16:00: that day's credit run (two people a batch) is done before the income
    // is posted.
    w.advance(DAY);
    while w.core.credit_run().running {
        w.advance(SECOND);
    }
    let wednesday = FRIDAY + 5;
    assert_eq!(w.core.credit_run().day, wednesday);
    assert!(!w.core.credit_run().running);
    // Tuesday's income, posted late: five holders, the posting batch credits two, and the
    // next batch is past midnight, when Thursday's run falls due.
    post(&mut w, fund.id, FRIDAY + 4, "0.9312").expect("posts");
    w.advance(8 * 3600 * SECOND);
    assert!(w.core.fund(fund.id).expect("the fund").accrual.is_some());
    assert_eq!(w.core.credit_run().day, wednesday, "the run waits");
    assert!(!w.core.credit_run().running);
    // The last holder's chunk ends the accrual; the batch after it starts the run.
    w.advance(SECOND);
    assert!(w.core.fund(fund.id).expect("the fund").accrual.is_none());
    assert_eq!(w.core.credit_run().day, wednesday);
    w.advance(SECOND);
    assert_eq!(w.core.credit_run().day, wednesday + 1);
    assert!(w.core.credit_run().running);
    for holder in &holders {
        assert_eq!(units(&w, &fund, *holder), 50_004_65);
    }
    assert_reconciled(&w, &fund);
}

#[test]
fn instant_redemption_is_capped_per_day_and_normal_arrives_next_business_day() {
    let mut w = World::new();
    let manager = w.person(9, 0);
    let alice = w.person(1, 30_000_00);
    let fund = open_fund(&mut w, manager);
    subscribe(&mut w, fund.id, alice, 30_000_00).expect("subscribes");
    w.advance(4 * DAY - 6 * 3600 * SECOND);
    // Tuesday 10:00: confirmed.
    assert_eq!(units(&w, &fund, alice), 30_000_00);
    redeem(&mut w, fund.id, alice, 6_000_00, true).expect("instant");
    assert_eq!(w.balance(alice).0, 6_000_00);
    // 6,000 + 5,000 passes the 10,000 a day: refused, nothing changed.
    assert_eq!(
        redeem(&mut w, fund.id, alice, 5_000_00, true).map(|_| ()),
        Err(Refusal::InstantLimitExceeded {
            limit: cny(10_000_00),
            used: cny(6_000_00)
        })
    );
    assert_eq!(units(&w, &fund, alice), 24_000_00);
    assert_eq!(w.balance(alice).0, 6_000_00);
    // A normal redemption: units retired now, money on Wednesday.
    let normal = redeem(&mut w, fund.id, alice, 5_000_00, false).expect("normal");
    assert_eq!(normal.pay_day, FRIDAY + 5);
    assert_eq!(units(&w, &fund, alice), 19_000_00);
    assert_eq!(w.balance(alice).0, 6_000_00);
    assert_reconciled(&w, &fund);
    // The next day the limit is fresh and the normal redemption has arrived.
    w.advance(DAY);
    assert_eq!(w.balance(alice).0, 11_000_00);
    redeem(&mut w, fund.id, alice, 10_000_00, true).expect("a new day's limit");
    assert_eq!(w.balance(alice).0, 21_000_00);
    // More than is held is refused.
    assert!(matches!(
        redeem(&mut w, fund.id, alice, 9_000_01, false),
        Err(Refusal::UnitsInsufficient { .. })
    ));
    assert_reconciled(&w, &fund);
}

#[test]
fn units_redeemed_stop_earning_that_day() {
    let mut w = World::new();
    let manager = w.person(9, 100_00);
    let alice = w.person(1, 20_000_00);
    let fund = open_fund(&mut w, manager);
    subscribe(&mut w, fund.id, alice, 20_000_00).expect("subscribes");
    w.advance(4 * DAY);
    for day in FRIDAY..FRIDAY + 4 {
        post(&mut w, fund.id, day, "1").expect("posts");
    }
    // Wednesday: half is redeemed before Tuesday's income is posted. Tuesday still earns on
    // all 20,000.00 (2.00); Wednesday on the 10,000.00 left (1.00).
    w.advance(DAY);
    redeem(&mut w, fund.id, alice, 10_000_00, true).expect("redeems");
    post(&mut w, fund.id, FRIDAY + 4, "1").expect("posts");
    assert_eq!(units(&w, &fund, alice), 10_002_00);
    w.advance(DAY);
    post(&mut w, fund.id, FRIDAY + 5, "1").expect("posts");
    assert_eq!(units(&w, &fund, alice), 10_003_00);
    assert_reconciled(&w, &fund);
}

#[test]
fn the_holiday_calendar_moves_confirmation() {
    let mut w = World::new();
    let manager = w.person(9, 0);
    let alice = w.person(1, 100_00);
    let fund = open_fund(&mut w, manager);
    // Monday and Tuesday are holidays: Friday's late subscription counts as Wednesday's and
    // is confirmed Thursday.
    w.run(ProductCommand::Fund(FundCommand::SetHolidays {
        days: vec![FRIDAY + 3, FRIDAY + 4],
    }))
    .expect("sets");
    let bought = subscribe(&mut w, fund.id, alice, 100_00).expect("subscribes");
    assert_eq!(bought.confirm_day, FRIDAY + 6);
}

/// Found by fuzzing (`scripts/fuzz`, target `command`: `PUT /v1/holidays` with
/// `{"days": ["2027-01-01", "2026-12-25"]}`), and by `formica sim` the same day: the calendar's outcome did not serialize, so
/// saving it under an idempotency key panicked the writer. It is saved, and a retry with the
/// key gets it back.
#[test]
fn setting_holidays_under_an_idempotency_key_saves_the_outcome() {
    let mut w = World::new();
    let operator = w.person(9, 0);
    let command = Command::Product(ProductRequest {
        command: ProductCommand::Fund(FundCommand::SetHolidays {
            days: vec![FRIDAY + 3, FRIDAY + 4],
        }),
        idempotency: Some(formica_core::IdempotencyKey {
            owner: operator,
            key: "holidays-1".into(),
            fingerprint: "PUT /v1/holidays".into(),
        }),
    });
    w.now += SECOND;
    w.core.begin_batch();
    let first = w.core.apply(w.now, &command).expect("sets");
    let saved = w.core.effects().products.idempotency;
    w.core.commit_batch();
    let expected = Outcome::Holidays {
        days: vec![FRIDAY + 3, FRIDAY + 4],
    };
    assert_eq!(first, Reply::Product(expected.clone()));
    assert_eq!(saved.len(), 1);
    let json = &saved[0].outcome;
    assert_eq!(
        serde_json::from_str::<Result<Outcome, Refusal>>(json).expect("reads back"),
        Ok(expected)
    );
    // The next batch learns of the key from the store, as the writer does.
    w.core.recall_idempotency(
        operator,
        "holidays-1".into(),
        "PUT /v1/holidays".into(),
        json.clone(),
    );
    w.core.begin_batch();
    assert_eq!(w.core.apply(w.now + SECOND, &command), Ok(first));
    w.core.commit_batch();
}

/// Holidays declared after a subscription and a normal redemption were made move them: the
/// units are confirmed and the money paid on the business days of the new calendar, and the
/// units earn only from their new confirmation day. Taking the holidays back moves them back.
#[test]
fn holidays_declared_later_move_open_confirmations_and_payouts() {
    let mut w = World::new();
    let manager = w.person(9, 1_000_00);
    let alice = w.person(1, 200_000_00);
    let fund = open_fund(&mut w, manager);
    subscribe(&mut w, fund.id, alice, 100_000_00).expect("subscribes");
    w.advance(4 * DAY);
    // Tuesday: confirmed; a second buy after the cut-off (Tuesday 16:00) and a normal
    // redemption are both due on Thursday.
    assert_eq!(units(&w, &fund, alice), 100_000_00);
    let later = subscribe(&mut w, fund.id, alice, 50_000_00).expect("subscribes");
    assert_eq!(later.confirm_day, FRIDAY + 6);
    let normal = redeem(&mut w, fund.id, alice, 1_000_00, false).expect("redeems");
    assert_eq!(normal.pay_day, FRIDAY + 6);
    // Then Thursday and Friday are made holidays: both move to the Monday after.
    w.run(ProductCommand::Fund(FundCommand::SetHolidays {
        days: vec![FRIDAY + 6, FRIDAY + 7],
    }))
    .expect("sets");
    let monday = FRIDAY + 10;
    let moved = |w: &World| {
        (
            w.core.subscription(later.id).map(|s| s.confirm_day),
            w.core.redemption(normal.id).map(|r| r.pay_day),
        )
    };
    assert_eq!(moved(&w), (Some(monday), Some(monday)));
    // Friday to Monday's incomes: Alice's units earn from Tuesday.
    for day in FRIDAY..FRIDAY + 4 {
        post(&mut w, fund.id, day, "1.0000").expect("posts");
        w.advance(SECOND);
    }
    assert_eq!(units(&w, &fund, alice), 99_000_00);
    let cash = w.balance(alice).0;
    w.advance(2 * DAY);
    // Thursday: nothing confirmed or paid.
    assert_eq!(units(&w, &fund, alice), 99_000_00);
    assert_eq!(w.balance(alice).0, cash);
    // Taking Friday back: Friday again (not before today).
    w.run(ProductCommand::Fund(FundCommand::SetHolidays {
        days: vec![FRIDAY + 6],
    }))
    .expect("sets");
    assert_eq!(moved(&w), (Some(FRIDAY + 7), Some(FRIDAY + 7)));
    // Tuesday's and Wednesday's incomes: only the confirmed 99,000.00 earn (and what they
    // earned).
    for day in [FRIDAY + 4, FRIDAY + 5] {
        post(&mut w, fund.id, day, "1.0000").expect("posts");
        w.advance(SECOND);
    }
    assert_eq!(units(&w, &fund, alice), 99_000_00 + 2 * 9_90);
    w.advance(DAY);
    assert_eq!(units(&w, &fund, alice), 149_000_00 + 2 * 9_90);
    assert_eq!(w.balance(alice).0, cash + 1_000_00);
    assert_reconciled(&w, &fund);
}

#[derive(Clone, Debug)]
enum FundStep {
    Subscribe(u8, u64),
    Redeem(u8, u64, bool),
    Post(u32),
    Advance(u64),
}

fn fund_step() -> impl Strategy<Value = FundStep> {
    prop_oneof![
        (0..4u8, 1..5_000_00u64).prop_map(|(h, a)| FundStep::Subscribe(h, a)),
        (0..4u8, 1..5_000_00u64, any::<bool>()).prop_map(|(h, a, i)| FundStep::Redeem(h, a, i)),
        (0..20_000u32).prop_map(FundStep::Post),
        (1..3 * DAY).prop_map(FundStep::Advance),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Whatever people do, the units outstanding equal the fund's money, nobody's units go
    /// negative, and every day's income is exactly what the holders got plus what was kept.
    #[test]
    fn units_outstanding_always_equal_the_funds_money(
        steps in proptest::collection::vec(fund_step(), 1..40)
    ) {
        let mut w = World::new();
        w.core.configure(Settings { accrual_chunk: 3, ..Settings::default() });
        let manager = w.person(9, 10_000_000_00);
        let fund = open_fund(&mut w, manager);
        let holders: Vec<Id> = (1..=4).map(|n| w.person(n, 20_000_00)).collect();
        // Money put in by subscriptions less money taken out: the rest of the units are
        // earnings.
        let mut net_in = 0i128;
        for step in steps {
            match step {
                FundStep::Subscribe(h, a) => {
                    if subscribe(&mut w, fund.id, holders[h as usize], a).is_ok() {
                        net_in += i128::from(a);
                    }
                }
                FundStep::Redeem(h, a, instant) => {
                    if redeem(&mut w, fund.id, holders[h as usize], a, instant).is_ok() {
                        net_in -= i128::from(a);
                    }
                }
                FundStep::Post(income) => {
                    let day = w.core.fund(fund.id).expect("exists").accrued_through + 1;
                    let _ = post(&mut w, fund.id, day, &Income(u64::from(income)).to_string());
                }
                FundStep::Advance(nanos) => w.advance(nanos),
            }
            let (outstanding, money) = reconcile(&w, &fund);
            prop_assert_eq!(i128::try_from(outstanding).expect("fits"), money);
            for holder in &holders {
                let (available, ..) = account(&w, units_account(*holder, &fund));
                prop_assert!(available >= 0);
            }
            w.assert_balanced();
        }
        // Let any accrual finish: what the manager paid is what the holders got plus what
        // was kept.
        w.advance(SECOND);
        w.advance(SECOND);
        w.advance(SECOND);
        let (residual, ..) = account(&w, residual_account(fund.id, Currency::CNY));
        let (waiting, ..) = account(&w, income_account(fund.id, Currency::CNY));
        let paid_in = 10_000_000_00i128 - w.balance(manager).0;
        let (outstanding, _) = reconcile(&w, &fund);
        let credited = i128::try_from(outstanding).expect("fits") - net_in;
        prop_assert_eq!(credited + residual + waiting, paid_in);
        // Each holding's units are its account's.
        for holder in &holders {
            if let Some(holding) = w.core.holding(fund.id, *holder) {
                let (_, _, debits, pending, credits) = account(&w, units_account(*holder, &fund));
                prop_assert_eq!(u128::from(holding.units), credits + pending - debits);
            }
        }
    }
}

#[test]
fn timers_loaded_before_the_settings_follow_the_settings() {
    // Regression: the store loads open subscriptions before the engine configures the core;
    // their confirmation timers were set for the default time zone and never moved, so a
    // core in another zone kept a dead timer due for ever.
    let mut w = World::new();
    let utc = Settings {
        day_offset_seconds: 0,
        ..Settings::default()
    };
    w.core.configure(utc.clone());
    let manager = w.person(9, 0);
    let alice = w.person(1, 100_00);
    let fund = open_fund(&mut w, manager);
    let bought = subscribe(&mut w, fund.id, alice, 100_00).expect("subscribes");
    let loaded = formica_core::Loaded {
        snapshot: w.core.ledger().export(),
        heads: Vec::new(),
        changed_since_checkpoint: Vec::new(),
        products: w.core.export_products(),
    };
    let mut again = World::new();
    again.now = w.now;
    again.core = Core::from_loaded(loaded).expect("loads");
    again.core.configure(utc);
    let confirm_at = (bought.confirm_day as u64) * DAY;
    assert_eq!(again.core.next_object_deadline(), Some(confirm_at));
    again.advance(confirm_at - again.now);
    assert_eq!(units(&again, &fund, alice), 100_00);
    assert_eq!(
        again.core.next_object_deadline(),
        None,
        "no timer left behind"
    );
}

#[test]
fn a_trade_is_paid_from_the_fund_in_one_command() {
    let mut w = World::new();
    let manager = w.person(9, 0);
    let seller = w.person(2, 0);
    let alice = w.person(1, 20_000_00);
    // A verified person: the daily limit is above what is paid here.
    w.wallet(WalletCommand::SetLevel {
        user_id: alice,
        level: Level::Verified,
    })
    .expect("verified");
    let fund = open_fund(&mut w, manager);
    subscribe(&mut w, fund.id, alice, 15_000_00).expect("subscribes");
    w.advance(4 * DAY);
    let trade = w.create(seller, "F1", 12_000_00);
    let pay = |w: &mut World, trade| {
        w.run(ProductCommand::Fund(FundCommand::PayTrade {
            fund_id: fund.id,
            trade_id: trade,
            buyer_id: alice,
        }))
    };
    // 12,000.00 from the fund: past the 10,000.00 instant limit, which is for cash out.
    let paid = pay(&mut w, trade);
    assert_eq!(w.status(paid), TradeStatus::WaitSellerSend);
    assert_eq!(units(&w, &fund, alice), 3_000_00);
    assert_eq!(
        w.balance(alice),
        (5_000_00, 12_000_00),
        "the wallet only passes it on"
    );
    assert_reconciled(&w, &fund);
    // More than the units: refused, nothing redeemed.
    let dear = w.create(seller, "F2", 3_000_01);
    assert!(matches!(
        pay(&mut w, dear),
        Err(Refusal::UnitsInsufficient { .. })
    ));
    // A trade that cannot be paid redeems nothing either.
    assert_eq!(
        pay(&mut w, trade).map(|_| ()),
        Err(Refusal::TradeStatusInvalid {
            status: TradeStatus::WaitSellerSend
        })
    );
    assert_eq!(units(&w, &fund, alice), 3_000_00);
    assert_eq!(w.balance(alice).0, 5_000_00);
    assert_reconciled(&w, &fund);
}
