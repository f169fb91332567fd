//! The credit line over REST: a person opens one (the limit their score earns), pays trades
//! from it (`POST /v1/trades/{id}/pay` with `credit_line`), reads it and its statements,
//! repays, and turns a statement into instalments. Operators list the overdue lines and set
//! the line's rules (the credit policy).

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use formica_core::Outcome;
use formica_core::credit_line::{CreditLine, CreditLineCommand, CreditPolicy, Statement};
use formica_core::{Money, ProductCommand};
use serde::{Deserialize, Serialize};

use crate::AppState;
use crate::auth::Caller;
use crate::body::Body;
use crate::error::{ApiError, ErrorBody};
use crate::idempotency;
use crate::wallet::{AmountInput, check_pin, fingerprint};

/// A credit line with what it leaves to draw and what is owed on it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CreditLineView {
    /// The line.
    #[serde(flatten)]
    pub line: CreditLine,
    /// Principal owed: what counts against the limit.
    pub used: Money,
    /// What can still be drawn.
    pub available: Money,
    /// Everything owed: principal, interest and fees.
    pub owed: Money,
}

impl From<CreditLine> for CreditLineView {
    fn from(line: CreditLine) -> Self {
        let money = |minor| Money::new(minor, line.limit.currency);
        CreditLineView {
            used: money(line.used()),
            available: money(line.available()),
            owed: money(line.owed()),
            line,
        }
    }
}

async fn submit(
    state: &AppState,
    caller: &Caller,
    key: Option<String>,
    (path, digest): (&str, &str),
    command: CreditLineCommand,
) -> Result<CreditLineView, ApiError> {
    match idempotency::submit(
        state,
        caller.0.id,
        key,
        fingerprint("POST", path, digest),
        ProductCommand::CreditLine(command),
    )
    .await?
    {
        Outcome::CreditLine(line) => Ok(line.into()),
        other => Err(ApiError::internal(&format!("unexpected outcome {other:?}"))),
    }
}

/// Opening a line.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewLine {
    /// The day of the month to repay statements by: 8, 9 or 10.
    pub due_day: u8,
}

/// Opens the caller's credit line, with the limit their score earns: none below 600 or
/// while anything of theirs is overdue; 500.00 at 600 and 140.00 more a point, at most
/// 50,000.00. Statements are made on the 1st of each month.
#[utoipa::path(post, path = "/v1/credit/line", tag = "credit", request_body = NewLine,
    responses((status = 201, body = CreditLineView), (status = 400, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn open(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Body<NewLine>,
) -> Result<(StatusCode, Json<CreditLineView>), ApiError> {
    let key = idempotency::key(&headers, false)?;
    let command = CreditLineCommand::Open {
        person_id: caller.0.id,
        due_day: body.value.due_day,
    };
    let line = submit(
        &state,
        &caller,
        key,
        ("/v1/credit/line", &body.digest),
        command,
    )
    .await?;
    Ok((StatusCode::CREATED, Json(line)))
}

/// The caller's credit line: limit, what is used and available, the current statement, the
/// instalment plan, and whether it is overdue.
#[utoipa::path(get, path = "/v1/credit/line", tag = "credit",
    responses((status = 200, body = CreditLineView), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn get_line(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<CreditLineView>, ApiError> {
    let person = caller.0.id;
    let line = state
        .pool()
        .read(move |sql| formica_store::credit::credit_line(sql, person))
        .await?
        .ok_or_else(|| ApiError::not_found("credit_line_not_found"))?;
    Ok(Json(line.into()))
}

/// The caller's statements, newest first (the latest 24).
#[utoipa::path(get, path = "/v1/credit/line/statements", tag = "credit",
    responses((status = 200, body = Vec<Statement>), (status = 401, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn statements(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<Statement>>, ApiError> {
    let person = caller.0.id;
    let list = state
        .pool()
        .read(move |sql| formica_store::credit::statements(sql, person, 24))
        .await?;
    Ok(Json(list))
}

/// A repayment of the line.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LineRepayment {
    /// Up to everything owed: the statement's minimum, all of it, or more (paying what was
    /// bought since, and an instalment plan off early).
    pub amount: AmountInput,
    /// The payment PIN.
    pub pin: String,
}

/// Repays from the wallet: the statement's interest and fees first, then its principal,
/// then what was bought since, then an instalment plan's principal.
#[utoipa::path(post, path = "/v1/credit/line/repay", tag = "credit", request_body = LineRepayment,
    params(("Idempotency-Key" = String, Header, description = "Required: makes a retry safe")),
    responses((status = 200, body = CreditLineView), (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn repay(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Body<LineRepayment>,
) -> Result<Json<CreditLineView>, ApiError> {
    let key = idempotency::key(&headers, true)?;
    let amount = body.value.amount.money("amount")?;
    check_pin(&state, &caller, &body.value.pin).await?;
    let command = CreditLineCommand::Repay {
        person_id: caller.0.id,
        amount,
    };
    let path = "/v1/credit/line/repay";
    Ok(Json(
        submit(&state, &caller, key, (path, &body.digest), command).await?,
    ))
}

/// Turning the current statement into instalments.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewInstalments {
    /// 3, 6, 9 or 12 (fees 2.5%, 4.5%, 6.5%, 8.8% of the principal).
    pub periods: u8,
    /// The payment PIN.
    pub pin: String,
}

/// Turns the current statement's principal into instalments, before its due day: each
/// month's statement bills one period (principal and fee divided by the periods), the
/// first at once.
#[utoipa::path(post, path = "/v1/credit/line/instalments", tag = "credit",
    request_body = NewInstalments,
    params(("Idempotency-Key" = String, Header, description = "Required: makes a retry safe")),
    responses((status = 200, body = CreditLineView), (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn instalments(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Body<NewInstalments>,
) -> Result<Json<CreditLineView>, ApiError> {
    let key = idempotency::key(&headers, true)?;
    check_pin(&state, &caller, &body.value.pin).await?;
    let command = CreditLineCommand::Instalments {
        person_id: caller.0.id,
        periods: body.value.periods,
    };
    let path = "/v1/credit/line/instalments";
    Ok(Json(
        submit(&state, &caller, key, (path, &body.digest), command).await?,
    ))
}

/// Credit lines whose statement's minimum was not paid by its due day (operators only).
#[utoipa::path(get, path = "/v1/credit/lines/overdue", tag = "operator",
    responses((status = 200, body = Vec<CreditLineView>), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn overdue(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<CreditLineView>>, ApiError> {
    caller.operator()?;
    let list = state
        .pool()
        .read(formica_store::credit::overdue_lines)
        .await?;
    Ok(Json(list.into_iter().map(CreditLineView::from).collect()))
}

/// The credit line's rules: the score to open a line, how the limit follows the score, the
/// minimum repayment, daily interest, the instalment plans and their fees, and how long a
/// deposit's debt may wait.
#[utoipa::path(get, path = "/v1/credit/policy", tag = "credit",
    responses((status = 200, body = CreditPolicy)), security(("bearer" = [])))]
pub async fn policy(
    State(state): State<AppState>,
    _caller: Caller,
) -> Result<Json<CreditPolicy>, ApiError> {
    Ok(Json(
        state
            .pool()
            .read(formica_store::credit::credit_policy)
            .await?,
    ))
}

/// Replaces the credit line's rules (operators only). They apply from then on: limits when
/// next set (on opening, on each statement day), interest from the next day, the minimum of
/// the next statement, fees of plans made after, the due day of debts made after.
#[utoipa::path(put, path = "/v1/credit/policy", tag = "operator", request_body = CreditPolicy,
    responses((status = 200, body = CreditPolicy), (status = 400, body = ErrorBody),
        (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn set_policy(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Body<CreditPolicy>,
) -> Result<Json<CreditPolicy>, ApiError> {
    caller.operator()?;
    let key = idempotency::key(&headers, false)?;
    let command = CreditLineCommand::SetPolicy(Box::new(body.value));
    match idempotency::submit(
        &state,
        caller.0.id,
        key,
        fingerprint("PUT", "/v1/credit/policy", &body.digest),
        ProductCommand::CreditLine(command),
    )
    .await?
    {
        Outcome::CreditPolicy(policy) => Ok(Json(policy)),
        other => Err(ApiError::internal(&format!("unexpected outcome {other:?}"))),
    }
}
