//! The credit score's page in the wallet: the score, its five dimensions with their changes,
//! the reasons that weigh most, and the shops the person lets check it (allow, stop).

use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use formica_api::AppState;
use formica_api::auth::Caller;
use formica_api::body::Body;
use formica_api::credit::NewConsent;
use formica_core::Id;
use formica_core::credit::{Consent, Dimension, Score};
use formica_core::credit_line::{CreditPolicy, InstalmentFee};
use serde::Deserialize;

use crate::session::{Ctx, Posted, Signed};
use crate::view::{self, Chrome};

struct DimensionLine {
    name: &'static str,
    about: &'static str,
    points: u16,
    max: u16,
    change: i32,
}

struct ConsentLine {
    merchant_id: String,
    merchant: String,
    standing: bool,
    since: String,
    checks: u64,
}

#[derive(Template)]
#[template(path = "wallet/credit.html")]
struct CreditPage {
    chrome: Chrome,
    score: u16,
    band: &'static str,
    change: i32,
    computed: String,
    dimensions: Vec<DimensionLine>,
    reasons: Vec<(String, i32)>,
    consents: Vec<ConsentLine>,
    error: Option<String>,
}

/// The dimension's name and what it weighs, for people.
fn describe(dimension: Dimension) -> (&'static str, &'static str) {
    match dimension {
        Dimension::History => ("Repaying on time", "Bills and debts repaid by their day"),
        Dimension::Behaviour => (
            "Paying and trading",
            "Escrow trades completed, money spent, disputes",
        ),
        Dimension::Ability => ("Means", "Wallet and pocket fund, money received over time"),
        Dimension::Identity => ("Identity", "A verified identity, the account's age"),
        Dimension::Connections => ("Connections", "Transfers with people in good standing"),
    }
}

/// A word for where a score stands (the bands the real product is said to use).
fn band(score: u16) -> &'static str {
    match score {
        ..550 => "Fair",
        550..600 => "Medium",
        600..650 => "Good",
        650..700 => "Very good",
        _ => "Excellent",
    }
}

async fn page(
    state: &AppState,
    ctx: &Ctx,
    caller: &Caller,
    error: Option<(StatusCode, String)>,
) -> Response {
    let person = caller.0.id;
    let read = state
        .pool()
        .read(move |sql| {
            let credit = formica_store::credit::credit(sql, person)?;
            let consents = formica_store::credit::consents_of_person(sql, person)?;
            let ids: Vec<_> = consents.iter().map(|c| c.merchant_id).collect();
            let names = formica_store::merchant::names(sql, &ids)?;
            let named = consents
                .into_iter()
                .map(|c| {
                    let name = names
                        .get(&c.merchant_id)
                        .cloned()
                        .unwrap_or_else(|| c.merchant_id.to_string());
                    (c, name)
                })
                .collect::<Vec<_>>();
            Ok((credit, named))
        })
        .await;
    let (credit, consents) = match read {
        Ok(found) => found,
        Err(error) => return view::failure(&error),
    };
    let Some(credit) = credit else {
        return view::not_found(ctx);
    };
    let offset = state.engine().settings().day_offset_seconds;
    let Score {
        score,
        change,
        computed_at,
        dimensions,
        reasons,
    } = credit.score();
    let status = error.as_ref().map_or(StatusCode::OK, |(s, _)| *s);
    let page = CreditPage {
        chrome: Chrome::new(ctx, "wallet", "Credit score"),
        score,
        band: band(score),
        change,
        computed: view::time(computed_at, offset),
        dimensions: dimensions
            .iter()
            .map(|d| {
                let (name, about) = describe(d.dimension);
                DimensionLine {
                    name,
                    about,
                    points: d.points,
                    max: d.max,
                    change: d.change,
                }
            })
            .collect(),
        reasons: reasons.into_iter().map(|r| (r.text, r.points)).collect(),
        consents: consents
            .into_iter()
            .map(|(c, merchant): (Consent, String)| ConsentLine {
                merchant_id: c.merchant_id.to_string(),
                merchant,
                standing: c.stands(),
                since: view::time(c.withdrawn_at.unwrap_or(c.granted_at), offset),
                checks: c.checks,
            })
            .collect(),
        error: error.map(|(_, e)| e),
    };
    view::render(ctx, status, &page)
}

/// `GET /wallet/credit`.
pub async fn show(State(state): State<AppState>, Signed(ctx, caller): Signed) -> Response {
    page(&state, &ctx, &caller, None).await
}

/// The allow form.
#[derive(Debug, Deserialize)]
pub struct AllowForm {
    merchant_id: String,
}

/// `POST /wallet/credit/consents`: lets a shop check the score.
pub async fn allow(State(state): State<AppState>, form: Posted<AllowForm>) -> Response {
    let Posted { ctx, value, digest } = form;
    let Some(caller) = ctx.caller() else {
        return crate::session::to_sign_in("/wallet/credit");
    };
    let Ok(merchant_id) = value.merchant_id.trim().parse::<Id>() else {
        let said = (
            StatusCode::BAD_REQUEST,
            "Shop: give the shop's number.".to_owned(),
        );
        return page(&state, &ctx, &caller, Some(said)).await;
    };
    let body = Body {
        value: NewConsent { merchant_id },
        digest,
    };
    let headers = axum::http::HeaderMap::new();
    match formica_api::credit::grant(State(state.clone()), caller.clone(), headers, body).await {
        Ok(_) => view::done("/wallet/credit"),
        Err(error) => {
            let said = (error.status, view::say(&error));
            page(&state, &ctx, &caller, Some(said)).await
        }
    }
}

/// The stop form (nothing but the form token).
#[derive(Debug, Deserialize)]
pub struct StopForm {}

/// `POST /wallet/credit/consents/{merchant}/withdraw`: stops a shop's checks.
pub async fn stop(
    State(state): State<AppState>,
    Path(merchant): Path<String>,
    form: Posted<StopForm>,
) -> Response {
    let ctx = form.ctx;
    let Some(caller) = ctx.caller() else {
        return crate::session::to_sign_in("/wallet/credit");
    };
    match formica_api::credit::withdraw(State(state.clone()), caller.clone(), Path(merchant)).await
    {
        Ok(_) => view::done("/wallet/credit"),
        Err(error) => view::api_error(&ctx, &error),
    }
}

#[derive(Template)]
#[template(path = "operator/credit.html")]
struct OperatorCredit {
    chrome: Chrome,
    key: String,
    available: String,
    lent: String,
    /// (person, what, owed, due).
    overdue: Vec<(String, &'static str, String, String)>,
    /// The credit line's rules: (rule, value).
    policy: Vec<(&'static str, String)>,
    /// The rules' form, filled in.
    form: PolicyForm,
    error: Option<String>,
    /// What was wrong with the rules just sent.
    policy_error: Option<String>,
}

/// The credit line's rules as the core applies them.
fn line_policy(policy: &CreditPolicy) -> Vec<(&'static str, String)> {
    let at_top = policy.limit(formica_core::credit::SCORE_MAX);
    vec![
        ("Score to open a line", policy.line_score_min.to_string()),
        (
            "Limit",
            format!(
                "{} at {}, {} more a point, at most {} ({} at 950)",
                view::money(&policy.line_base),
                policy.line_score_min,
                view::money(&policy.line_per_point),
                view::money(&policy.line_cap),
                view::money(&formica_core::Money::new(
                    at_top,
                    formica_core::credit::CREDIT_CURRENCY
                )),
            ),
        ),
        ("Statement day", "the 1st of each month".to_owned()),
        (
            "Due days",
            "the 8th, 9th or 10th, as each person chooses".to_owned(),
        ),
        (
            "Minimum repayment",
            format!(
                "{} of the statement",
                view::per_mille(policy.minimum_per_mille)
            ),
        ),
        (
            "Interest after the due day",
            format!("{} a day", view::per_10k(policy.daily_interest_per_10k)),
        ),
        (
            "Instalment fees",
            policy
                .instalments
                .iter()
                .map(|p| format!("{}: {}", p.periods, view::per_mille(p.fee_per_mille)))
                .collect::<Vec<_>>()
                .join(", "),
        ),
        (
            "A deposit's debt is due",
            format!("{} days after the charge", policy.debt_days),
        ),
    ]
}

/// The rules form, as typed (or as the policy stands).
#[derive(Debug, Default, Deserialize)]
pub struct PolicyForm {
    #[serde(default)]
    key: String,
    line_score_min: String,
    line_base: String,
    line_per_point: String,
    line_cap: String,
    minimum_per_mille: String,
    daily_interest_per_10k: String,
    /// `periods:fee` pairs, comma separated: `3:25, 6:45`.
    instalments: String,
    debt_days: String,
}

impl PolicyForm {
    fn of(policy: &CreditPolicy) -> Self {
        PolicyForm {
            key: String::new(),
            line_score_min: policy.line_score_min.to_string(),
            line_base: policy.line_base.decimal(),
            line_per_point: policy.line_per_point.decimal(),
            line_cap: policy.line_cap.decimal(),
            minimum_per_mille: policy.minimum_per_mille.to_string(),
            daily_interest_per_10k: policy.daily_interest_per_10k.to_string(),
            instalments: policy
                .instalments
                .iter()
                .map(|p| format!("{}:{}", p.periods, p.fee_per_mille))
                .collect::<Vec<_>>()
                .join(", "),
            debt_days: policy.debt_days.to_string(),
        }
    }

    /// The policy typed, or what is wrong with it as people say it.
    fn policy(&self) -> Result<CreditPolicy, String> {
        fn whole<T: std::str::FromStr>(text: &str, what: &str) -> Result<T, String> {
            text.trim()
                .parse()
                .map_err(|_| format!("{what} must be a whole number"))
        }
        let yuan = |text: &str, what: &str| {
            formica_core::Money::parse(text.trim(), formica_core::credit::CREDIT_CURRENCY)
                .map_err(|e| format!("{what}: {e}"))
        };
        let instalments = self
            .instalments
            .split(',')
            .filter(|pair| !pair.trim().is_empty())
            .map(|pair| {
                let (periods, fee) = pair
                    .split_once(':')
                    .ok_or("instalments are periods:fee pairs, like 3:25, 6:45")?;
                Ok(InstalmentFee {
                    periods: whole(periods, "an instalment's periods")?,
                    fee_per_mille: whole(fee, "an instalment's fee")?,
                })
            })
            .collect::<Result<Vec<_>, String>>()?;
        Ok(CreditPolicy {
            line_score_min: whole(&self.line_score_min, "The score to open a line")?,
            line_base: yuan(&self.line_base, "The limit at that score")?,
            line_per_point: yuan(&self.line_per_point, "The limit per point")?,
            line_cap: yuan(&self.line_cap, "The highest limit")?,
            minimum_per_mille: whole(&self.minimum_per_mille, "The minimum repayment")?,
            daily_interest_per_10k: whole(&self.daily_interest_per_10k, "The daily interest")?,
            instalments,
            debt_days: whole(&self.debt_days, "The days a debt may wait")?,
        })
    }
}

/// What went wrong with a form on the operator's credit page: the funding's or the rules'.
enum Trouble {
    Funding(StatusCode, String),
    Policy(StatusCode, String, Box<PolicyForm>),
}

async fn operator_page(
    state: &AppState,
    ctx: &Ctx,
    caller: &Caller,
    trouble: Option<Trouble>,
) -> Response {
    let funding = formica_api::hold::funding(State(state.clone()), caller.clone()).await;
    let overdue = formica_api::hold::overdue(State(state.clone()), caller.clone()).await;
    let lines = formica_api::credit_line::overdue(State(state.clone()), caller.clone()).await;
    let policy = formica_api::credit_line::policy(State(state.clone()), caller.clone()).await;
    let (funding, overdue, lines, policy) = match (funding, overdue, lines, policy) {
        (Ok(f), Ok(o), Ok(l), Ok(p)) => (f.0, o.0, l.0, p.0),
        (Err(error), ..) | (_, Err(error), ..) | (_, _, Err(error), _) | (.., Err(error)) => {
            return view::api_error(ctx, &error);
        }
    };
    let (status, error, policy_error, form) = match trouble {
        None => (StatusCode::OK, None, None, PolicyForm::of(&policy)),
        Some(Trouble::Funding(status, said)) => (status, Some(said), None, PolicyForm::of(&policy)),
        Some(Trouble::Policy(status, said, form)) => (status, None, Some(said), *form),
    };
    let offset = state.engine().settings().day_offset_seconds;
    let page = OperatorCredit {
        chrome: Chrome::new(ctx, "operator", "Credit"),
        key: view::form_key(),
        available: view::money(&funding.available),
        lent: view::money(&funding.lent),
        overdue: overdue
            .iter()
            .map(|d| {
                (
                    d.person_id.to_string(),
                    "a charged deposit",
                    view::money(&formica_core::Money::new(
                        d.outstanding(),
                        d.amount.currency,
                    )),
                    view::time(d.due_at, offset),
                )
            })
            .chain(lines.iter().map(|l| {
                (
                    l.line.person_id.to_string(),
                    "the credit line",
                    view::money(&l.owed),
                    l.line.statement.as_ref().map_or_else(String::new, |s| {
                        view::time(s.due_at.saturating_sub(1), offset)
                    }),
                )
            }))
            .collect(),
        policy: line_policy(&policy),
        form,
        error,
        policy_error,
    };
    view::render(ctx, status, &page)
}

/// `GET /operator/credit`: the platform's credit funding and who is overdue.
pub async fn operator(
    State(state): State<AppState>,
    crate::session::Operator(ctx, caller): crate::session::Operator,
) -> Response {
    operator_page(&state, &ctx, &caller, None).await
}

/// The funding form.
#[derive(Debug, Deserialize)]
pub struct FundingForm {
    key: String,
    amount: String,
}

/// `POST /operator/credit/funding`.
pub async fn add_funding(State(state): State<AppState>, form: Posted<FundingForm>) -> Response {
    let Posted { ctx, value, digest } = form;
    let Some(caller) = ctx.caller() else {
        return crate::session::to_sign_in("/operator/credit");
    };
    let body = Body {
        value: formica_api::hold::NewFunding {
            amount: formica_api::wallet::AmountInput {
                amount: value.amount.trim().to_owned(),
                currency: formica_core::credit::CREDIT_CURRENCY.code().to_owned(),
            },
        },
        digest,
    };
    let done = formica_api::hold::add_funding(
        State(state.clone()),
        caller.clone(),
        crate::session::keyed(&value.key),
        body,
    )
    .await;
    match done {
        Ok(_) => view::done("/operator/credit"),
        Err(error) => {
            let said = Trouble::Funding(error.status, view::say(&error));
            operator_page(&state, &ctx, &caller, Some(said)).await
        }
    }
}

/// `POST /operator/credit/policy`: replaces the credit line's rules.
pub async fn set_policy(State(state): State<AppState>, form: Posted<PolicyForm>) -> Response {
    let Posted { ctx, value, digest } = form;
    let Some(caller) = ctx.caller() else {
        return crate::session::to_sign_in("/operator/credit");
    };
    let policy = match value.policy() {
        Ok(policy) => policy,
        Err(said) => {
            let trouble = Trouble::Policy(StatusCode::BAD_REQUEST, said, Box::new(value));
            return operator_page(&state, &ctx, &caller, Some(trouble)).await;
        }
    };
    let done = formica_api::credit_line::set_policy(
        State(state.clone()),
        caller.clone(),
        crate::session::keyed(&value.key),
        Body {
            value: policy,
            digest,
        },
    )
    .await;
    match done {
        Ok(_) => view::done("/operator/credit"),
        Err(error) => {
            let trouble = Trouble::Policy(error.status, view::say(&error), Box::new(value));
            operator_page(&state, &ctx, &caller, Some(trouble)).await
        }
    }
}
