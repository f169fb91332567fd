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
    error: Option<String>,
}

/// The credit line's rules as the core applies them.
fn line_policy() -> Vec<(&'static str, String)> {
    use formica_core::credit_line as line;
    let yuan = |minor: u64| {
        view::money(&formica_core::Money::new(
            minor,
            formica_core::credit::CREDIT_CURRENCY,
        ))
    };
    vec![
        ("Score to open a line", line::LINE_SCORE_MIN.to_string()),
        (
            "Limit",
            format!(
                "{} at {}, up to {} (140.00 more a point)",
                yuan(line::line_limit(line::LINE_SCORE_MIN)),
                line::LINE_SCORE_MIN,
                yuan(line::line_limit(formica_core::credit::SCORE_MAX))
            ),
        ),
        ("Statement day", "the 1st of each month".to_owned()),
        (
            "Due days",
            "the 8th, 9th or 10th, as each person chooses".to_owned(),
        ),
        (
            "Minimum repayment",
            format!("{}% of the statement", line::MINIMUM_PER_MILLE / 10),
        ),
        (
            "Interest after the due day",
            format!("0.0{}% a day", line::DAILY_INTEREST_PER_10K),
        ),
        (
            "Instalment fees",
            line::INSTALMENT_FEES_PER_MILLE
                .iter()
                .map(|(n, f)| format!("{n}: {}.{}%", f / 10, f % 10))
                .collect::<Vec<_>>()
                .join(", "),
        ),
    ]
}

async fn operator_page(
    state: &AppState,
    ctx: &Ctx,
    caller: &Caller,
    error: Option<(StatusCode, String)>,
) -> Response {
    let funding = formica_api::hold::funding(State(state.clone()), caller.clone()).await;
    let overdue = formica_api::hold::overdue(State(state.clone()), caller.clone()).await;
    let lines = formica_api::credit_line::overdue(State(state.clone()), caller.clone()).await;
    let (funding, overdue, lines) = match (funding, overdue, lines) {
        (Ok(f), Ok(o), Ok(l)) => (f.0, o.0, l.0),
        (Err(error), _, _) | (_, Err(error), _) | (_, _, Err(error)) => {
            return view::api_error(ctx, &error);
        }
    };
    let offset = state.engine().settings().day_offset_seconds;
    let status = error.as_ref().map_or(StatusCode::OK, |(s, _)| *s);
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
        policy: line_policy(),
        error: error.map(|(_, e)| e),
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
            let said = (error.status, view::say(&error));
            operator_page(&state, &ctx, &caller, Some(said)).await
        }
    }
}
