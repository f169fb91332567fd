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
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
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

/// Every factor of a score, with its points (zero-point factors left out).
fn factors(facts: &Facts, level: Level, means: &Means, now: u64) -> Vec<Reason> {
    use Dimension::*;
    let mut out = Vec::new();
    let mut add = |dimension, points: i32, text: String| {
        if points != 0 {
            out.push(Reason {
                dimension,
                points,
                text,
            });
        }
    };
    add(
        History,
        per(facts.repaid_on_time, 15, 105),
        plural(
            facts.repaid_on_time,
            "bill repaid on time",
            "bills repaid on time",
        ),
    );
    add(
        History,
        -per(facts.repaid_late, 30, 1_000),
        plural(facts.repaid_late, "bill repaid late", "bills repaid late"),
    );
    add(
        History,
        -per(facts.overdue, 70, 1_000),
        plural(facts.overdue, "bill overdue now", "bills overdue now"),
    );
    let trades = facts.trades_bought.saturating_add(facts.trades_sold);
    add(
        Behaviour,
        per(trades, 3, 45),
        plural(trades, "escrow trade completed", "escrow trades completed"),
    );
    add(
        Behaviour,
        stepped(means.spent_major, &[(100, 10), (1_000, 25), (10_000, 45)]),
        format!(
            "{} {} paid through the wallet",
            means.spent_major, CREDIT_CURRENCY
        ),
    );
    add(
        Behaviour,
        -per(facts.disputes_lost, 30, 1_000),
        plural(facts.disputes_lost, "dispute lost", "disputes lost"),
    );
    add(
        Ability,
        stepped(
            means.assets_major,
            &[(100, 10), (1_000, 25), (10_000, 45), (100_000, 60)],
        ),
        format!(
            "{} {} in the wallet and funds",
            means.assets_major, CREDIT_CURRENCY
        ),
    );
    add(
        Ability,
        stepped(
            means.received_major,
            &[(1_000, 15), (10_000, 35), (100_000, 60)],
        ),
        format!(
            "{} {} received into the wallet",
            means.received_major, CREDIT_CURRENCY
        ),
    );
    add(
        Identity,
        if level == Level::Verified { 45 } else { 0 },
        "identity verified".to_owned(),
    );
    let age_days = now.saturating_sub(facts.since) / DAY_NS;
    add(
        Identity,
        stepped(age_days, &[(30, 15), (180, 30), (365, 45)]),
        format!("account {age_days} days old"),
    );
    add(
        Connections,
        per(facts.good_transfers, 3, 30),
        plural(
            facts.good_transfers,
            "transfer with people in good standing",
            "transfers with people in good standing",
        ),
    );
    out
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
    let mut reasons = factors(facts, level, means, now);
    let mut raw = Dimension::ALL.map(Dimension::base);
    for reason in &reasons {
        raw[reason.dimension.index()] += reason.points;
    }
    let dimensions: Vec<DimensionScore> = Dimension::ALL
        .iter()
        .map(|dimension| {
            let points = raw[dimension.index()].clamp(0, i32::from(dimension.max()));
            let points = u16::try_from(points).expect("clamped to the dimension's max");
            let before = previous
                .and_then(|p| p.dimensions.get(dimension.index()))
                .map_or(points, |d| d.points);
            DimensionScore {
                dimension: *dimension,
                points,
                max: dimension.max(),
                change: i32::from(points) - i32::from(before),
            }
        })
        .collect();
    let total = SCORE_MIN + dimensions.iter().map(|d| d.points).sum::<u16>();
    // The heaviest first; ties in the dimensions' order (the sort is stable).
    reasons.sort_by_key(|r| std::cmp::Reverse(r.points.abs()));
    reasons.truncate(REASONS_MAX);
    Score {
        score: total,
        change: previous.map_or(0, |p| i32::from(total) - i32::from(p.score)),
        computed_at: now,
        dimensions,
        reasons,
    }
}

/// A person's credit as the core keeps it: the facts and the last score.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credit {
    /// The person.
    pub person_id: Id,
    /// What the score is computed from.
    pub facts: Facts,
    /// The score as last computed.
    pub score: Score,
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
                    .map(|c| c.score.score)
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

    /// Computes a person's score again, and keeps it if it changed.
    pub(crate) fn rescore(&mut self, now: u64, person: Id) {
        let Some(credit) = self.products.credit.get(&person) else {
            return;
        };
        let level = self
            .products
            .people
            .get(&person)
            .map_or(Level::Unverified, |p| p.level);
        let means = self.means(person);
        let fresh = score(&credit.facts, level, &means, now, Some(&credit.score));
        if fresh.dimensions != credit.score.dimensions || fresh.reasons != credit.score.reasons {
            let credit = Credit {
                score: fresh,
                ..credit.clone()
            };
            self.products.put_credit(credit);
        }
    }

    /// Changes a person's facts and computes their score again.
    pub(crate) fn credit_event(&mut self, now: u64, person: Id, change: impl FnOnce(&mut Facts)) {
        let Some(credit) = self.products.credit.get(&person) else {
            return;
        };
        let mut credit = credit.clone();
        change(&mut credit.facts);
        self.products.put_credit(credit);
        self.rescore(now, person);
    }

    /// Starts a person's credit record (with their first wallet).
    pub(crate) fn open_credit(&mut self, now: u64, person: Id) {
        if self.products.credit.contains_key(&person) {
            return;
        }
        let facts = Facts {
            since: now,
            ..Facts::default()
        };
        let level = self
            .products
            .people
            .get(&person)
            .map_or(Level::Unverified, |p| p.level);
        let score = score(&facts, level, &Means::default(), now, None);
        self.products.put_credit(Credit {
            person_id: person,
            facts,
            score,
        });
    }

    /// Whether a person is in good standing now.
    pub(crate) fn in_good_standing(&self, person: Id) -> bool {
        self.products
            .credit
            .get(&person)
            .is_some_and(|c| c.score.score >= GOOD_STANDING)
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
