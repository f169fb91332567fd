//! The credit score (Sesame Credit's idea: payment data turned into trust) and the consents
//! that let a merchant ask about it.
//!
//! **The score** runs from 350 to 950: 350 plus the points of five dimensions, weighted as the
//! real product is said to weigh them (35/25/20/15/5 of the 600 points above the floor):
//!
//! | dimension | max | from |
//! |---|---|---|
//! | history | 210 | bills and debts repaid on time, late, or overdue now (105 with none) |
//! | behaviour | 150 | escrow trades completed, money spent, disputes lost (60 to start) |
//! | ability | 120 | wallet balance and fund holdings, money received over the wallet's life |
//! | identity | 90 | a verified identity, the account's age |
//! | connections | 30 | transfers with people in good standing (a score of 650 or more) |
//!
//! Every factor's points are integers from integers (money in whole major units of the
//! platform's credit currency), so the score is a pure, deterministic function of the facts
//! and explains itself: each dimension's points, its change since the previous computation,
//! and the factors that weigh most, up or down.
//!
//! **When.** The core keeps each person's facts as counters, updated by the events that
//! make them (a trade completed, a dispute lost, a transfer with someone in good standing).
//! A person's score is computed again after such an event and once a day for everyone (the
//! daily run, in chunks of `accrual_chunk` people per batch, so payments keep flowing); a
//! score is written only when it changed.
//!
//! **Consent.** A merchant learns nothing of a score but whether it passes a threshold the
//! merchant names, and only while the person's consent to that merchant stands. The person
//! grants and withdraws consent; every check is counted on the consent, which the person sees.

use serde::{Deserialize, Serialize};

use crate::Core;
use crate::money::Currency;
use crate::products::{Id, Outcome, Refusal};
use crate::wallet::{Level, wallet_account};

/// The lowest score.
pub const SCORE_MIN: u16 = 350;
/// The highest score.
pub const SCORE_MAX: u16 = 950;
/// A score at or above this is in good standing: transfers with such people count in the
/// connections dimension.
pub const GOOD_STANDING: u16 = 650;
/// The currency whose balances and flows the ability and behaviour dimensions weigh (the
/// platform's home currency; amounts in other currencies are not converted).
pub const CREDIT_CURRENCY: Currency = Currency::CNY;

/// Nanoseconds in a day, for the account's age.
const DAY_NS: u64 = 86_400 * crate::products::NANOS_PER_SECOND;

/// The five dimensions, in the order scores list them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Dimension {
    /// Repaying on time.
    History,
    /// Payment and trade behaviour.
    Behaviour,
    /// Ability to pay: balances, fund holdings, income into the wallet.
    Ability,
    /// Identity: verification and the account's age.
    Identity,
    /// Connections: transfers with people in good standing.
    Connections,
}

impl Dimension {
    /// Every dimension, in order.
    pub const ALL: [Dimension; 5] = [
        Dimension::History,
        Dimension::Behaviour,
        Dimension::Ability,
        Dimension::Identity,
        Dimension::Connections,
    ];

    /// The most points the dimension gives.
    pub fn max(self) -> u16 {
        match self {
            Dimension::History => 210,
            Dimension::Behaviour => 150,
            Dimension::Ability => 120,
            Dimension::Identity => 90,
            Dimension::Connections => 30,
        }
    }

    /// The points everybody starts with (no history is neither good nor bad).
    fn base(self) -> i32 {
        match self {
            Dimension::History => 105,
            Dimension::Behaviour => 60,
            _ => 0,
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// What the platform knows of a person's conduct: counters the core keeps, and when the
/// person joined.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Facts {
    /// When the person opened their first wallet (nanoseconds since the epoch).
    pub since: u64,
    /// Escrow trades completed as the buyer.
    pub trades_bought: u32,
    /// Escrow trades completed as the seller.
    pub trades_sold: u32,
    /// Disputes an operator decided against the person.
    pub disputes_lost: u32,
    /// Bills and debts repaid by their due day.
    pub repaid_on_time: u32,
    /// Bills and debts repaid after their due day.
    pub repaid_late: u32,
    /// Bills and debts overdue now.
    pub overdue: u32,
    /// Transfers, sent or received, with people in good standing at the time.
    pub good_transfers: u32,
}

/// The books' figures a score weighs, in whole major units of the credit currency.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Means {
    /// Wallet balance plus fund holdings.
    pub assets_major: u64,
    /// Everything ever paid into the wallet.
    pub received_major: u64,
    /// Everything ever paid out of the wallet.
    pub spent_major: u64,
}

/// One dimension's part of a score.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DimensionScore {
    /// Which.
    pub dimension: Dimension,
    /// Its points now.
    pub points: u16,
    /// The most it gives.
    pub max: u16,
    /// Points gained (or lost, if negative) since the previous computation.
    pub change: i32,
}

/// A factor that moved a score: its points against a newcomer's, and what it is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Reason {
    /// The dimension it counts in.
    pub dimension: Dimension,
    /// Points it adds (or takes away, if negative).
    pub points: i32,
    /// What it is, for the person.
    pub text: String,
}

/// A person's credit score, as computed on a day.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Score {
    /// 350 to 950.
    pub score: u16,
    /// Change since the previous computation.
    pub change: i32,
    /// When it was computed (nanoseconds since the epoch).
    pub computed_at: u64,
    /// The five dimensions, in order.
    pub dimensions: Vec<DimensionScore>,
    /// The factors that weigh most, heaviest first (at most five).
    pub reasons: Vec<Reason>,
}

/// The most reasons a score lists.
const REASONS_MAX: usize = 5;

/// Points for the first step of `steps` (threshold, points) that `value` reaches, from the top.
fn stepped(value: u64, steps: &[(u64, i32)]) -> i32 {
    steps
        .iter()
        .rev()
        .find(|(at_least, _)| value >= *at_least)
        .map_or(0, |(_, points)| *points)
}

fn per(count: u32, each: i32, cap: i32) -> i32 {
    i32::try_from(count)
        .unwrap_or(i32::MAX)
        .saturating_mul(each)
        .min(cap)
}

fn plural(count: u32, one: &str, many: &str) -> String {
    if count == 1 {
        format!("1 {one}")
    } else {
        format!("{count} {many}")
    }
}

/// What a factor is, with its figure: the text is made only when a score is shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum What {
    RepaidOnTime(u32),
    RepaidLate(u32),
    Overdue(u32),
    Trades(u32),
    Spent(u64),
    DisputesLost(u32),
    Assets(u64),
    Received(u64),
    Verified,
    AgeDays(u64),
    GoodTransfers(u32),
}

impl What {
    fn text(self) -> String {
        match self {
            What::RepaidOnTime(n) => plural(n, "bill repaid on time", "bills repaid on time"),
            What::RepaidLate(n) => plural(n, "bill repaid late", "bills repaid late"),
            What::Overdue(n) => plural(n, "bill overdue now", "bills overdue now"),
            What::Trades(n) => plural(n, "escrow trade completed", "escrow trades completed"),
            What::Spent(major) => format!("{major} {CREDIT_CURRENCY} paid through the wallet"),
            What::DisputesLost(n) => plural(n, "dispute lost", "disputes lost"),
            What::Assets(major) => format!("{major} {CREDIT_CURRENCY} in the wallet and funds"),
            What::Received(major) => {
                format!("{major} {CREDIT_CURRENCY} received into the wallet")
            }
            What::Verified => "identity verified".to_owned(),
            What::AgeDays(days) => format!("account {days} days old"),
            What::GoodTransfers(n) => plural(
                n,
                "transfer with people in good standing",
                "transfers with people in good standing",
            ),
        }
    }
}

/// One factor of a score: the dimension it counts in and its points (zero: it does not count).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Factor {
    dimension: Dimension,
    points: i32,
    what: What,
}

/// Every factor of a score, in a fixed order: integers only, nothing allocated, so that the
/// daily run can compare a fresh computation with the last one cheaply.
fn factors(facts: &Facts, level: Level, means: &Means, now: u64) -> [Factor; 11] {
    use Dimension::*;
    let factor = |dimension, points, what| Factor {
        dimension,
        points,
        what,
    };
    let trades = facts.trades_bought.saturating_add(facts.trades_sold);
    let age_days = now.saturating_sub(facts.since) / DAY_NS;
    [
        factor(
            History,
            per(facts.repaid_on_time, 15, 105),
            What::RepaidOnTime(facts.repaid_on_time),
        ),
        factor(
            History,
            -per(facts.repaid_late, 30, 1_000),
            What::RepaidLate(facts.repaid_late),
        ),
        factor(
            History,
            -per(facts.overdue, 70, 1_000),
            What::Overdue(facts.overdue),
        ),
        factor(Behaviour, per(trades, 3, 45), What::Trades(trades)),
        factor(
            Behaviour,
            stepped(means.spent_major, &[(100, 10), (1_000, 25), (10_000, 45)]),
            What::Spent(means.spent_major),
        ),
        factor(
            Behaviour,
            -per(facts.disputes_lost, 30, 1_000),
            What::DisputesLost(facts.disputes_lost),
        ),
        factor(
            Ability,
            stepped(
                means.assets_major,
                &[(100, 10), (1_000, 25), (10_000, 45), (100_000, 60)],
            ),
            What::Assets(means.assets_major),
        ),
        factor(
            Ability,
            stepped(
                means.received_major,
                &[(1_000, 15), (10_000, 35), (100_000, 60)],
            ),
            What::Received(means.received_major),
        ),
        factor(
            Identity,
            if level == Level::Verified { 45 } else { 0 },
            What::Verified,
        ),
        factor(
            Identity,
            stepped(age_days, &[(30, 15), (180, 30), (365, 45)]),
            What::AgeDays(age_days),
        ),
        factor(
            Connections,
            per(facts.good_transfers, 3, 30),
            What::GoodTransfers(facts.good_transfers),
        ),
    ]
}

/// Each dimension's points from the factors: its base plus theirs, within its bounds.
fn points_of(factors: &[Factor]) -> [u16; 5] {
    let mut raw = Dimension::ALL.map(Dimension::base);
    for factor in factors {
        raw[factor.dimension.index()] += factor.points;
    }
    Dimension::ALL.map(|dimension| {
        let points = raw[dimension.index()].clamp(0, i32::from(dimension.max()));
        u16::try_from(points).expect("clamped to the dimension's max")
    })
}

fn total_of(points: &[u16; 5]) -> u16 {
    SCORE_MIN + points.iter().sum::<u16>()
}

/// The score to show: its points, the change from `before` (the points computed before,
/// if any) and the heaviest factors as reasons.
fn view(factors: &[Factor; 11], now: u64, before: Option<&[u16; 5]>) -> Score {
    let points = points_of(factors);
    let dimensions = Dimension::ALL
        .iter()
        .map(|dimension| {
            let now = points[dimension.index()];
            let before = before.map_or(now, |b| b[dimension.index()]);
            DimensionScore {
                dimension: *dimension,
                points: now,
                max: dimension.max(),
                change: i32::from(now) - i32::from(before),
            }
        })
        .collect();
    let mut weighing: Vec<&Factor> = factors.iter().filter(|f| f.points != 0).collect();
    // The heaviest first; ties in the factors' order (the sort is stable).
    weighing.sort_by_key(|f| std::cmp::Reverse(f.points.abs()));
    let total = total_of(&points);
    Score {
        score: total,
        change: before.map_or(0, |b| i32::from(total) - i32::from(total_of(b))),
        computed_at: now,
        dimensions,
        reasons: weighing
            .into_iter()
            .take(REASONS_MAX)
            .map(|f| Reason {
                dimension: f.dimension,
                points: f.points,
                text: f.what.text(),
            })
            .collect(),
    }
}

/// A person's score from their facts, identity level and means, at `now`; `previous` (the
/// score computed before, if any) gives each dimension's change.
pub fn score(
    facts: &Facts,
    level: Level,
    means: &Means,
    now: u64,
    previous: Option<&Score>,
) -> Score {
    let before = previous.map(|p| Dimension::ALL.map(|d| p.dimensions[d.index()].points));
    view(&factors(facts, level, means, now), now, before.as_ref())
}

/// A person's credit as the core keeps it: the facts, and what the last computation weighed
/// (the identity level and the books' figures then, and when), from which the score is shown
/// again exactly. About a hundred bytes and nothing on the heap: the writer keeps one for
/// every person.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credit {
    /// The person.
    pub person_id: Id,
    /// What the score is computed from.
    pub facts: Facts,
    /// The identity level the last computation weighed.
    pub level: Level,
    /// The books' figures the last computation weighed.
    pub means: Means,
    /// When the score was last computed.
    pub computed_at: u64,
    /// Each dimension's points as computed before the last computation (none at first).
    pub previous: Option<[u16; 5]>,
}

impl Credit {
    fn factors(&self) -> [Factor; 11] {
        factors(&self.facts, self.level, &self.means, self.computed_at)
    }

    /// Each dimension's points.
    pub fn points(&self) -> [u16; 5] {
        points_of(&self.factors())
    }

    /// The score, 350 to 950.
    pub fn total(&self) -> u16 {
        total_of(&self.points())
    }

    /// The score as the person sees it: dimensions, changes and reasons.
    pub fn score(&self) -> Score {
        view(&self.factors(), self.computed_at, self.previous.as_ref())
    }
}

/// A person's consent that a merchant may check their score against thresholds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Consent {
    /// The person.
    pub person_id: Id,
    /// The merchant.
    pub merchant_id: Id,
    /// When it was granted (the latest grant).
    pub granted_at: u64,
    /// When it was withdrawn, if it was (after the latest grant).
    pub withdrawn_at: Option<u64>,
    /// How many checks the merchant made under it.
    pub checks: u64,
    /// When the merchant last checked.
    pub last_checked_at: Option<u64>,
}

impl Consent {
    /// Whether the merchant may check now.
    pub fn stands(&self) -> bool {
        self.withdrawn_at.is_none()
    }
}

/// A merchant's answer about a person's score: nothing but whether it passes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CreditCheck {
    /// The person asked about.
    pub person_id: Id,
    /// The threshold the merchant asked about.
    pub threshold: u16,
    /// Whether the person's score is at or above it.
    pub passes: bool,
    /// When it was checked.
    pub checked_at: u64,
}

/// What people and merchants ask of credit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CreditCommand {
    /// A person lets a merchant check their score.
    Grant {
        /// The person.
        person_id: Id,
        /// The merchant.
        merchant_id: Id,
    },
    /// A person takes their consent back.
    Withdraw {
        /// The person.
        person_id: Id,
        /// The merchant.
        merchant_id: Id,
    },
    /// A merchant asks whether a person's score reaches a threshold.
    Check {
        /// The merchant.
        merchant_id: Id,
        /// The person.
        person_id: Id,
        /// 350 to 950.
        threshold: u16,
    },
}

impl Core {
    pub(crate) fn apply_credit(
        &mut self,
        now: u64,
        command: &CreditCommand,
    ) -> Result<Outcome, Refusal> {
        match command {
            CreditCommand::Grant {
                person_id,
                merchant_id,
            } => {
                self.credit_person(*person_id)?;
                if !self.products.merchants.contains_key(merchant_id) {
                    return Err(Refusal::MerchantNotFound);
                }
                let consent = match self.products.consents.get(&(*person_id, *merchant_id)) {
                    Some(c) if c.stands() => c.clone(),
                    Some(c) => Consent {
                        granted_at: now,
                        withdrawn_at: None,
                        ..c.clone()
                    },
                    None => Consent {
                        person_id: *person_id,
                        merchant_id: *merchant_id,
                        granted_at: now,
                        withdrawn_at: None,
                        checks: 0,
                        last_checked_at: None,
                    },
                };
                self.products.put_consent(consent.clone());
                Ok(Outcome::Consent(consent))
            }
            CreditCommand::Withdraw {
                person_id,
                merchant_id,
            } => {
                let mut consent = self
                    .products
                    .consents
                    .get(&(*person_id, *merchant_id))
                    .cloned()
                    .ok_or(Refusal::ConsentNotFound)?;
                if consent.stands() {
                    consent.withdrawn_at = Some(now);
                    self.products.put_consent(consent.clone());
                }
                Ok(Outcome::Consent(consent))
            }
            CreditCommand::Check {
                merchant_id,
                person_id,
                threshold,
            } => {
                if !(SCORE_MIN..=SCORE_MAX).contains(threshold) {
                    return Err(Refusal::ThresholdInvalid);
                }
                if !self.products.merchants.contains_key(merchant_id) {
                    return Err(Refusal::MerchantNotFound);
                }
                // Without consent the merchant learns nothing, not even whether the person
                // exists: one refusal for both.
                let mut consent = self
                    .products
                    .consents
                    .get(&(*person_id, *merchant_id))
                    .filter(|c| c.stands())
                    .cloned()
                    .ok_or(Refusal::ConsentNotFound)?;
                let score = self
                    .products
                    .credit
                    .get(person_id)
                    .map(Credit::total)
                    .ok_or(Refusal::ConsentNotFound)?;
                consent.checks += 1;
                consent.last_checked_at = Some(now);
                self.products.put_consent(consent);
                Ok(Outcome::CreditCheck(CreditCheck {
                    person_id: *person_id,
                    threshold: *threshold,
                    passes: score >= *threshold,
                    checked_at: now,
                }))
            }
        }
    }

    /// The person's credit record, or a refusal if there is no such person.
    fn credit_person(&self, person: Id) -> Result<&Credit, Refusal> {
        self.products
            .credit
            .get(&person)
            .ok_or(Refusal::WalletNotFound {
                currency: CREDIT_CURRENCY,
            })
    }

    /// The books' figures for a person's score.
    fn means(&self, person: Id) -> Means {
        let major = |minor: u128| {
            let per_major = 10u128.pow(u32::from(CREDIT_CURRENCY.exponent()));
            u64::try_from(minor / per_major).unwrap_or(u64::MAX)
        };
        let mut means = Means::default();
        if let Some(wallet) = self.ledger.account(wallet_account(person, CREDIT_CURRENCY)) {
            let balance = wallet.credits_posted.saturating_sub(wallet.debits_posted);
            let held = wallet.debits_pending;
            means.assets_major = major(balance.saturating_sub(held));
            means.received_major = major(wallet.credits_posted);
            means.spent_major = major(wallet.debits_posted);
        }
        let units: u64 = self
            .products
            .holdings_of_holder(person)
            .filter(|h| {
                self.products
                    .funds
                    .get(&h.fund_id)
                    .is_some_and(|f| f.currency == CREDIT_CURRENCY)
            })
            .map(|h| h.units)
            .sum();
        means.assets_major = means.assets_major.saturating_add(major(u128::from(units)));
        means
    }

    /// A person's credit computed again at `now` with `facts`, today's books and level; the
    /// points it had become the ones its changes are counted from.
    fn recomputed(&self, now: u64, credit: &Credit, facts: Facts) -> Credit {
        let level = self
            .products
            .people
            .get(&credit.person_id)
            .map_or(Level::Unverified, |p| p.level);
        Credit {
            person_id: credit.person_id,
            facts,
            level,
            means: self.means(credit.person_id),
            computed_at: now,
            previous: Some(credit.points()),
        }
    }

    /// Computes a person's score again, and keeps it if what it shows changed (its points or
    /// a factor's figure); otherwise the last one stands, with its date.
    pub(crate) fn rescore(&mut self, now: u64, person: Id) {
        let Some(credit) = self.products.credit.get(&person) else {
            return;
        };
        let fresh = self.recomputed(now, credit, credit.facts);
        if fresh.factors() != credit.factors() {
            self.products.put_credit(fresh);
        }
    }

    /// Changes a person's facts and computes their score again.
    pub(crate) fn credit_event(&mut self, now: u64, person: Id, change: impl FnOnce(&mut Facts)) {
        let Some(credit) = self.products.credit.get(&person) else {
            return;
        };
        let mut facts = credit.facts;
        change(&mut facts);
        let fresh = self.recomputed(now, credit, facts);
        self.products.put_credit(fresh);
    }

    /// Starts a person's credit record (with their first wallet).
    pub(crate) fn open_credit(&mut self, now: u64, person: Id) {
        if self.products.credit.contains_key(&person) {
            return;
        }
        let level = self
            .products
            .people
            .get(&person)
            .map_or(Level::Unverified, |p| p.level);
        self.products.put_credit(Credit {
            person_id: person,
            facts: Facts {
                since: now,
                ..Facts::default()
            },
            level,
            means: Means::default(),
            computed_at: now,
            previous: None,
        });
    }

    /// Whether a person is in good standing now.
    pub(crate) fn in_good_standing(&self, person: Id) -> bool {
        self.products
            .credit
            .get(&person)
            .is_some_and(|c| c.total() >= GOOD_STANDING)
    }

    /// A transfer between two people: each counts one with the other if the other is in
    /// good standing (as they were before the transfer).
    pub(crate) fn credit_transfer(&mut self, now: u64, from: Id, to: Id) {
        let (from_good, to_good) = (self.in_good_standing(from), self.in_good_standing(to));
        if to_good {
            self.credit_event(now, from, |f| f.good_transfers += 1);
        }
        if from_good {
            self.credit_event(now, to, |f| f.good_transfers += 1);
        }
    }

    /// The daily credit run's step: at a day's start, begins scoring everyone again; then
    /// scores the next `accrual_chunk` people (in id order) each batch until done. The
    /// cursor is saved with each chunk, so a crash resumes where the run stood.
    pub(crate) fn run_credit(&mut self, now: u64) {
        let mut run = self.products.credit_run;
        if !run.running {
            run = CreditRun {
                day: self.products.settings.day(now),
                after: None,
                running: true,
            };
        }
        let chunk = self.products.settings.accrual_chunk.max(1);
        let people: Vec<Id> = self.products.credit_after(run.after).take(chunk).collect();
        for person in &people {
            self.rescore(now, *person);
        }
        if people.len() < chunk {
            run.running = false;
            run.after = None;
        } else {
            run.after = people.last().copied();
        }
        self.products.put_credit_run(run);
    }
}

/// Where the daily credit run stands.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreditRun {
    /// The day of the latest run (days since 1970-01-01, platform time).
    pub day: i64,
    /// The last person scored by the run in progress.
    pub after: Option<Id>,
    /// Whether a run is in progress.
    pub running: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: u64 = DAY_NS;

    fn newcomer() -> Facts {
        Facts {
            since: 0,
            ..Facts::default()
        }
    }

    fn points(score: &Score, dimension: Dimension) -> u16 {
        score.dimensions[dimension.index()].points
    }

    fn of(facts: Facts, level: Level, means: Means, now: u64) -> Score {
        score(&facts, level, &means, now, None)
    }

    #[test]
    fn a_newcomer_starts_in_the_middle_of_history_and_behaviour() {
        let s = of(newcomer(), Level::Unverified, Means::default(), 0);
        assert_eq!(s.score, 350 + 105 + 60);
        assert!(
            s.reasons.is_empty(),
            "nothing to explain yet: {:?}",
            s.reasons
        );
        assert_eq!(s.dimensions.len(), 5);
    }

    #[test]
    fn each_dimension_moves_the_score_the_right_way() {
        let base = of(newcomer(), Level::Unverified, Means::default(), 0).score;
        let better = |facts: Facts, level: Level, means: Means, now: u64| {
            let s = of(facts, level, means, now).score;
            assert!(
                s > base,
                "{facts:?} {level:?} {means:?} gave {s}, not above {base}"
            );
        };
        let worse = |facts: Facts| {
            let s = of(facts, Level::Unverified, Means::default(), 0).score;
            assert!(s < base, "{facts:?} gave {s}, not below {base}");
        };
        let m = Means::default();
        better(
            Facts {
                repaid_on_time: 2,
                ..newcomer()
            },
            Level::Unverified,
            m,
            0,
        );
        worse(Facts {
            repaid_late: 1,
            ..newcomer()
        });
        worse(Facts {
            overdue: 1,
            ..newcomer()
        });
        better(
            Facts {
                trades_bought: 3,
                ..newcomer()
            },
            Level::Unverified,
            m,
            0,
        );
        better(
            Facts {
                trades_sold: 3,
                ..newcomer()
            },
            Level::Unverified,
            m,
            0,
        );
        worse(Facts {
            disputes_lost: 1,
            ..newcomer()
        });
        let spent = Means {
            spent_major: 5_000,
            ..m
        };
        better(newcomer(), Level::Unverified, spent, 0);
        let rich = Means {
            assets_major: 20_000,
            ..m
        };
        better(newcomer(), Level::Unverified, rich, 0);
        let earner = Means {
            received_major: 20_000,
            ..m
        };
        better(newcomer(), Level::Unverified, earner, 0);
        better(newcomer(), Level::Verified, m, 0);
        better(newcomer(), Level::Unverified, m, 200 * DAY);
        better(
            Facts {
                good_transfers: 4,
                ..newcomer()
            },
            Level::Unverified,
            m,
            0,
        );
    }

    #[test]
    fn more_of_a_good_thing_never_lowers_the_score_and_bounds_hold() {
        let mut last = 0;
        for n in 0..100u32 {
            let facts = Facts {
                repaid_on_time: n,
                trades_bought: n,
                good_transfers: n,
                ..newcomer()
            };
            let means = Means {
                assets_major: u64::from(n) * 10_000,
                received_major: u64::from(n) * 10_000,
                spent_major: u64::from(n) * 10_000,
            };
            let s = of(facts, Level::Verified, means, u64::from(n) * 30 * DAY);
            assert!(s.score >= last, "{n}: {} after {last}", s.score);
            assert!((SCORE_MIN..=SCORE_MAX).contains(&s.score));
            last = s.score;
        }
        assert_eq!(last, SCORE_MAX, "everything good reaches the top");
        let ruin = Facts {
            repaid_late: u32::MAX,
            overdue: u32::MAX,
            disputes_lost: u32::MAX,
            ..newcomer()
        };
        let s = of(ruin, Level::Unverified, Means::default(), 0);
        assert_eq!(s.score, SCORE_MIN, "everything bad reaches the floor");
        for d in &s.dimensions {
            assert!(d.points <= d.max);
        }
    }

    #[test]
    fn reasons_name_the_heaviest_factors_and_changes_are_against_the_previous_score() {
        let first = of(
            Facts {
                trades_bought: 2,
                ..newcomer()
            },
            Level::Verified,
            Means::default(),
            0,
        );
        let facts = Facts {
            trades_bought: 2,
            disputes_lost: 2,
            ..newcomer()
        };
        let second = score(
            &facts,
            Level::Verified,
            &Means::default(),
            DAY,
            Some(&first),
        );
        assert_eq!(second.reasons[0].text, "2 disputes lost");
        assert_eq!(second.reasons[0].points, -60);
        assert_eq!(second.reasons[1].text, "identity verified");
        assert_eq!(points(&second, Dimension::Behaviour), 60 + 6 - 60);
        assert_eq!(second.dimensions[Dimension::Behaviour.index()].change, -60);
        assert_eq!(second.change, -60);
        assert_eq!(second.dimensions[Dimension::Identity.index()].change, 0);
    }

    #[test]
    fn the_score_is_a_pure_function() {
        let facts = Facts {
            trades_sold: 7,
            repaid_on_time: 3,
            good_transfers: 2,
            since: 5,
            ..Facts::default()
        };
        let means = Means {
            assets_major: 1_234,
            received_major: 9_999,
            spent_major: 10_000,
        };
        assert_eq!(
            score(&facts, Level::Verified, &means, 400 * DAY, None),
            score(&facts, Level::Verified, &means, 400 * DAY, None)
        );
    }
}
