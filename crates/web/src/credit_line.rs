//! The credit line in the wallet: open one with the limit the score earns; what is used and
//! left; the current statement with its due date and minimum; repay; turn a statement into
//! instalments; past statements.

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use formica_api::AppState;
use formica_api::auth::Caller;
use formica_api::body::Body;
use formica_api::credit_line::{LineRepayment, NewInstalments, NewLine};
use formica_api::wallet::AmountInput;
use formica_core::Money;
use formica_core::credit_line::{CreditLine, Statement};
use serde::Deserialize;

use crate::session::{Ctx, Posted, Signed, keyed};
use crate::view::{self, Chrome};

/// One statement, for people.
struct StatementLine {
    month: String,
    total: String,
    minimum: String,
    left: String,
    left_plain: String,
    due: String,
    state: &'static str,
}

#[derive(Template)]
#[template(path = "wallet/credit_line.html")]
struct LinePage {
    chrome: Chrome,
    key: String,
    score: u16,
    /// What opening would give (none: the score earns no line).
    would_get: Option<String>,
    line: Option<LineView>,
    current: Option<StatementLine>,
    past: Vec<StatementLine>,
    /// (periods, fee in percent) a statement can be turned into now.
    instalments: Vec<(u8, String)>,
    error: Option<String>,
}

struct LineView {
    limit: String,
    used: String,
    available: String,
    owed: String,
    owed_plain: String,
    owes: bool,
    unbilled: String,
    escrowed: String,
    overdue: bool,
    due_day: u8,
    plan: Option<String>,
    interest: String,
    fees: String,
    used_percent: u64,
}

fn statement_line(s: &Statement, offset: i64) -> StatementLine {
    let currency = s.principal.currency;
    let money = |minor| view::money(&Money::new(minor, currency));
    let (year, month, _) = formica_core::credit_line::civil(s.day);
    StatementLine {
        month: format!("{year}-{month:02}"),
        total: money(s.principal.amount_minor + s.charges.amount_minor),
        minimum: view::money(&s.minimum_left),
        left: money(s.left()),
        left_plain: Money::new(s.left(), currency).decimal(),
        // The last moment to repay is the end of the due day.
        due: view::time(s.due_at.saturating_sub(1), offset),
        state: if s.left() == 0 {
            "repaid"
        } else if s.due_passed && s.minimum_left.amount_minor > 0 {
            "overdue"
        } else if s.due_passed {
            "minimum paid; interest on the rest"
        } else {
            "to repay"
        },
    }
}

fn line_view(line: &CreditLine) -> LineView {
    let currency = line.limit.currency;
    let money = |minor| view::money(&Money::new(minor, currency));
    LineView {
        limit: view::money(&line.limit),
        used: money(line.used()),
        available: money(line.available()),
        owed: money(line.owed()),
        owed_plain: Money::new(line.owed(), currency).decimal(),
        owes: line.owed() > 0,
        unbilled: money(line.unbilled.amount_minor + line.unbilled_charges.amount_minor),
        escrowed: view::money(&line.escrowed),
        overdue: line.overdue,
        due_day: line.due_day,
        plan: line.plan.as_ref().map(|p| {
            format!(
                "{} of {} instalments left: {} and {} of fee",
                p.periods_left,
                p.periods,
                view::money(&p.principal_left),
                view::money(&p.fee_left)
            )
        }),
        interest: view::money(&line.interest_total),
        fees: view::money(&line.fees_total),
        used_percent: (line.used() * 100)
            .checked_div(line.limit.amount_minor)
            .unwrap_or(0)
            .min(100),
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
            let line = formica_store::credit::credit_line(sql, person)?;
            let statements = formica_store::credit::statements(sql, person, 24)?;
            let score = formica_store::credit::credit(sql, person)?.map_or(0, |c| c.total());
            let policy = formica_store::credit::credit_policy(sql)?;
            Ok((line, statements, score, policy))
        })
        .await;
    let (line, statements, score, policy) = match read {
        Ok(found) => found,
        Err(error) => return view::failure(&error),
    };
    let offset = state.engine().settings().day_offset_seconds;
    let current_id = line
        .as_ref()
        .and_then(|l| l.statement.as_ref())
        .map(|s| s.id);
    let current = line
        .as_ref()
        .and_then(|l| l.statement.as_ref())
        .filter(|s| s.left() > 0)
        .map(|s| statement_line(s, offset));
    let instalments = match line
        .as_ref()
        .and_then(|l| l.statement.as_ref().map(|s| (l, s)))
    {
        Some((l, s))
            if !s.due_passed
                && s.left() > 0
                && s.instalments.is_none()
                && l.plan.is_none()
                && s.principal_left.amount_minor > 0 =>
        {
            policy
                .instalments
                .iter()
                .map(|plan| (plan.periods, view::per_mille(plan.fee_per_mille)))
                .collect()
        }
        _ => Vec::new(),
    };
    let past = statements
        .iter()
        .filter(|s| Some(s.id) != current_id || s.left() == 0)
        .map(|s| statement_line(s, offset))
        .collect();
    let would_get = (line.is_none() && score >= policy.line_score_min).then(|| {
        view::money(&Money::new(
            policy.limit(score),
            formica_core::credit::CREDIT_CURRENCY,
        ))
    });
    let status = error.as_ref().map_or(StatusCode::OK, |(s, _)| *s);
    let page = LinePage {
        chrome: Chrome::new(ctx, "wallet", "Credit line"),
        key: view::form_key(),
        score,
        would_get,
        line: line.as_ref().map(line_view),
        current,
        past,
        instalments,
        error: error.map(|(_, e)| e),
    };
    view::render(ctx, status, &page)
}

/// `GET /wallet/credit-line`.
pub async fn show(State(state): State<AppState>, Signed(ctx, caller): Signed) -> Response {
    page(&state, &ctx, &caller, None).await
}

/// The page again with the API's error, or back to it.
async fn answer<T>(
    state: &AppState,
    ctx: &Ctx,
    caller: &Caller,
    done: Result<T, formica_api::ApiError>,
) -> Response {
    match done {
        Ok(_) => view::done("/wallet/credit-line"),
        Err(error) => {
            let said = (error.status, view::say(&error));
            page(state, ctx, caller, Some(said)).await
        }
    }
}

/// The open form.
#[derive(Debug, Deserialize)]
pub struct OpenForm {
    due_day: u8,
}

/// `POST /wallet/credit-line`.
pub async fn open(State(state): State<AppState>, form: Posted<OpenForm>) -> Response {
    let Posted { ctx, value, digest } = form;
    let Some(caller) = ctx.caller() else {
        return crate::session::to_sign_in("/wallet/credit-line");
    };
    let body = Body {
        value: NewLine {
            due_day: value.due_day,
        },
        digest,
    };
    let done = formica_api::credit_line::open(
        State(state.clone()),
        caller.clone(),
        axum::http::HeaderMap::new(),
        body,
    )
    .await;
    answer(&state, &ctx, &caller, done).await
}

/// The repay form.
#[derive(Debug, Deserialize)]
pub struct RepayForm {
    key: String,
    amount: String,
    pin: String,
}

/// `POST /wallet/credit-line/repay`.
pub async fn repay(State(state): State<AppState>, form: Posted<RepayForm>) -> Response {
    let Posted { ctx, value, digest } = form;
    let Some(caller) = ctx.caller() else {
        return crate::session::to_sign_in("/wallet/credit-line");
    };
    let body = Body {
        value: LineRepayment {
            amount: AmountInput {
                amount: value.amount.trim().to_owned(),
                currency: formica_core::credit::CREDIT_CURRENCY.code().to_owned(),
            },
            pin: value.pin,
        },
        digest,
    };
    let done = formica_api::credit_line::repay(
        State(state.clone()),
        caller.clone(),
        keyed(&value.key),
        body,
    )
    .await;
    answer(&state, &ctx, &caller, done).await
}

/// The instalments form.
#[derive(Debug, Deserialize)]
pub struct InstalmentsForm {
    key: String,
    periods: u8,
    pin: String,
}

/// `POST /wallet/credit-line/instalments`.
pub async fn instalments(State(state): State<AppState>, form: Posted<InstalmentsForm>) -> Response {
    let Posted { ctx, value, digest } = form;
    let Some(caller) = ctx.caller() else {
        return crate::session::to_sign_in("/wallet/credit-line");
    };
    let body = Body {
        value: NewInstalments {
            periods: value.periods,
            pin: value.pin,
        },
        digest,
    };
    let done = formica_api::credit_line::instalments(
        State(state.clone()),
        caller.clone(),
        keyed(&value.key),
        body,
    )
    .await;
    answer(&state, &ctx, &caller, done).await
}
