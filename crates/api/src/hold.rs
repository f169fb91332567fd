//! Deposit-free holds over REST: a merchant asks to hold a deposit, the person authorises it
//! (waived by a good enough score, else frozen in their wallet), the merchant charges part or
//! all of it or unfreezes it; a charge the wallet could not pay is a debt the person repays.
//! Operators set the platform's money aside for credit.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use formica_core::deposit::{CreditFunding, Debt, Hold, HoldCommand};
use formica_core::{Id, Outcome, ProductCommand};
use serde::Deserialize;

use crate::AppState;
use crate::auth::Caller;
use crate::body::Body;
use crate::error::{ApiError, ErrorBody};
use crate::idempotency;
use crate::wallet::{AmountInput, PersonRef, check_pin, fingerprint};

async fn submit(
    state: &AppState,
    caller: &Caller,
    key: Option<String>,
    (path, digest): (&str, &str),
    command: HoldCommand,
) -> Result<Outcome, ApiError> {
    idempotency::submit(
        state,
        caller.0.id,
        key,
        fingerprint("POST", path, digest),
        ProductCommand::Hold(command),
    )
    .await
}

fn hold_of(outcome: Outcome) -> Result<Json<Hold>, ApiError> {
    match outcome {
        Outcome::Hold(hold) => Ok(Json(hold)),
        other => Err(ApiError::internal(&format!("unexpected outcome {other:?}"))),
    }
}

/// A merchant's request to hold a deposit.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewHold {
    /// The person whose deposit it is.
    pub person: PersonRef,
    /// The merchant's order number (one open hold per number).
    pub out_order_no: String,
    /// What it is for (shown to the person).
    pub title: String,
    /// The deposit.
    pub amount: AmountInput,
    /// The score, 350 to 950, at or above which the deposit is waived (for example 550 for a
    /// bike, 650 for a car); without it the deposit is always frozen.
    pub threshold: Option<u16>,
}

/// Asks to hold a deposit; the person authorises it within the payment timeout (15 minutes).
#[utoipa::path(post, path = "/v1/merchants/{id}/holds", tag = "holds", request_body = NewHold,
    params(("id" = String, Path, description = "The merchant")),
    responses((status = 201, body = Hold), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn request(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body<NewHold>,
) -> Result<(StatusCode, Json<Hold>), ApiError> {
    let key = idempotency::key(&headers, false)?;
    let merchant = crate::merchant::owned(&state, &caller, &id).await?;
    let person = body.value.person.resolve(&state, "person").await?;
    let out_order_no = crate::trade::text(&body.value.out_order_no, "out_order_no", true)?;
    let title = crate::trade::text(&body.value.title, "title", true)?;
    let command = HoldCommand::Request {
        merchant_id: merchant.id,
        person_id: person,
        out_order_no,
        title,
        amount: body.value.amount.money("amount")?,
        threshold: body.value.threshold,
    };
    let path = format!("/v1/merchants/{}/holds", merchant.id);
    let outcome = submit(&state, &caller, key, (&path, &body.digest), command).await?;
    Ok((StatusCode::CREATED, hold_of(outcome)?))
}

/// A merchant's holds, newest first (the latest 100).
#[utoipa::path(get, path = "/v1/merchants/{id}/holds", tag = "holds",
    params(("id" = String, Path, description = "The merchant")),
    responses((status = 200, body = Vec<Hold>), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn merchant_holds(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Vec<Hold>>, ApiError> {
    let merchant = crate::merchant::owned(&state, &caller, &id).await?.id;
    let list = state
        .pool()
        .read(move |sql| formica_store::credit::holds_of_merchant(sql, merchant, 100))
        .await?;
    Ok(Json(list))
}

/// The caller's holds, newest first (the latest 100).
#[utoipa::path(get, path = "/v1/holds", tag = "holds",
    responses((status = 200, body = Vec<Hold>), (status = 401, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn mine(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<Hold>>, ApiError> {
    let person = caller.0.id;
    let list = state
        .pool()
        .read(move |sql| formica_store::credit::holds_of_person(sql, person, 100))
        .await?;
    Ok(Json(list))
}

/// Which side of a hold a route acts for (a shop's owner may hold their own deposit, and
/// is then on both).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Side {
    Person,
    Merchant,
    Either,
}

/// The hold, if the caller is on `side` of it (else not found, as for a hold that does not
/// exist). The merchant is read only when the person's side does not already answer.
async fn hold_for(
    state: &AppState,
    caller: &Caller,
    id: &str,
    side: Side,
) -> Result<Hold, ApiError> {
    let not_found = || ApiError::not_found("hold_not_found");
    let id: Id = id.parse().map_err(|_| not_found())?;
    let hold = state
        .pool()
        .read(move |sql| formica_store::credit::hold(sql, id))
        .await?
        .ok_or_else(not_found)?;
    if side != Side::Merchant && hold.person_id == caller.0.id {
        return Ok(hold);
    }
    if side != Side::Person
        && crate::merchant::owned(state, caller, &hold.merchant_id.to_string())
            .await
            .is_ok()
    {
        return Ok(hold);
    }
    Err(not_found())
}

/// One hold, for its person or its merchant.
#[utoipa::path(get, path = "/v1/holds/{id}", tag = "holds",
    params(("id" = String, Path, description = "The hold")),
    responses((status = 200, body = Hold), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn get_one(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Hold>, ApiError> {
    Ok(Json(hold_for(&state, &caller, &id, Side::Either).await?))
}

/// The payment PIN.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Authorization {
    /// The payment PIN.
    pub pin: String,
}

/// The person authorises the hold: waived if their score reaches the merchant's threshold
/// (and no debt of theirs is overdue), else the deposit is frozen in their wallet.
#[utoipa::path(post, path = "/v1/holds/{id}/authorize", tag = "holds",
    request_body = Authorization,
    params(("id" = String, Path, description = "The hold"),
        ("Idempotency-Key" = String, Header, description = "Required: makes a retry safe")),
    responses((status = 200, body = Hold), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn authorize(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body<Authorization>,
) -> Result<Json<Hold>, ApiError> {
    let key = idempotency::key(&headers, true)?;
    let hold = hold_for(&state, &caller, &id, Side::Person).await?;
    check_pin(&state, &caller, &body.value.pin).await?;
    let command = HoldCommand::Authorize {
        hold_id: hold.id,
        person_id: caller.0.id,
    };
    let path = format!("/v1/holds/{}/authorize", hold.id);
    hold_of(submit(&state, &caller, key, (&path, &body.digest), command).await?)
}

/// How much to charge.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HoldCharge {
    /// Up to the deposit.
    pub amount: AmountInput,
}

/// The merchant charges part or all of the deposit; the rest is released and the hold
/// closes. A waived deposit is paid from the person's wallet as far as it goes; the platform
/// pays the rest and the person owes it (a debt, due in 7 days).
#[utoipa::path(post, path = "/v1/holds/{id}/charge", tag = "holds", request_body = HoldCharge,
    params(("id" = String, Path, description = "The hold"),
        ("Idempotency-Key" = String, Header, description = "Required: makes a retry safe")),
    responses((status = 200, body = Hold), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn charge(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body<HoldCharge>,
) -> Result<Json<Hold>, ApiError> {
    let key = idempotency::key(&headers, true)?;
    let hold = merchant_side(&state, &caller, &id).await?;
    let command = HoldCommand::Charge {
        hold_id: hold.id,
        merchant_id: hold.merchant_id,
        amount: body.value.amount.money("amount")?,
        out_trade_no: None,
    };
    let path = format!("/v1/holds/{}/charge", hold.id);
    hold_of(submit(&state, &caller, key, (&path, &body.digest), command).await?)
}

/// The merchant releases the whole deposit (or withdraws a request not yet authorised).
#[utoipa::path(post, path = "/v1/holds/{id}/unfreeze", tag = "holds",
    params(("id" = String, Path, description = "The hold")),
    responses((status = 200, body = Hold), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn unfreeze(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Hold>, ApiError> {
    let key = idempotency::key(&headers, false)?;
    let hold = merchant_side(&state, &caller, &id).await?;
    let command = HoldCommand::Unfreeze {
        hold_id: hold.id,
        merchant_id: hold.merchant_id,
        amount: None,
    };
    let path = format!("/v1/holds/{}/unfreeze", hold.id);
    hold_of(submit(&state, &caller, key, (&path, ""), command).await?)
}

/// A hold of a merchant the caller runs.
async fn merchant_side(state: &AppState, caller: &Caller, id: &str) -> Result<Hold, ApiError> {
    let hold = hold_for(state, caller, id, Side::Merchant).await?;
    if hold.status == formica_core::deposit::HoldStatus::Closed {
        // Memory forgets a closed hold; say why rather than "not found".
        return Err(formica_core::Refusal::HoldStatusInvalid {
            status: hold.status,
        }
        .into());
    }
    Ok(hold)
}

/// The caller's debts, open and repaid, newest first.
#[utoipa::path(get, path = "/v1/debts", tag = "holds",
    responses((status = 200, body = Vec<Debt>), (status = 401, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn debts(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<Debt>>, ApiError> {
    let person = caller.0.id;
    let list = state
        .pool()
        .read(move |sql| formica_store::credit::debts_of_person(sql, person))
        .await?;
    Ok(Json(list))
}

/// A repayment.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Repayment {
    /// Up to what is owed.
    pub amount: AmountInput,
    /// The payment PIN.
    pub pin: String,
}

/// Repays (part of) a debt from the wallet. Repaid in full by its due day, it counts as
/// repaid on time in the credit score; later, as repaid late.
#[utoipa::path(post, path = "/v1/debts/{id}/repay", tag = "holds", request_body = Repayment,
    params(("id" = String, Path, description = "The debt"),
        ("Idempotency-Key" = String, Header, description = "Required: makes a retry safe")),
    responses((status = 200, body = Debt), (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn repay(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body<Repayment>,
) -> Result<Json<Debt>, ApiError> {
    let key = idempotency::key(&headers, true)?;
    let debt_id: Id = id
        .parse()
        .map_err(|_| ApiError::not_found("debt_not_found"))?;
    let amount = body.value.amount.money("amount")?;
    check_pin(&state, &caller, &body.value.pin).await?;
    let command = HoldCommand::Repay {
        debt_id,
        person_id: caller.0.id,
        amount,
    };
    let path = format!("/v1/debts/{debt_id}/repay");
    match submit(&state, &caller, key, (&path, &body.digest), command).await? {
        Outcome::Debt(debt) => Ok(Json(debt)),
        other => Err(ApiError::internal(&format!("unexpected outcome {other:?}"))),
    }
}

/// Money for credit.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewFunding {
    /// How much of the platform's bank money to set aside.
    pub amount: AmountInput,
}

/// Sets the platform's own money aside for credit (operators only): what waived deposits
/// that people could not pay are lent from.
#[utoipa::path(post, path = "/v1/credit/funding", tag = "operator", request_body = NewFunding,
    params(("Idempotency-Key" = String, Header, description = "Required: makes a retry safe")),
    responses((status = 201, body = CreditFunding), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn add_funding(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Body<NewFunding>,
) -> Result<(StatusCode, Json<CreditFunding>), ApiError> {
    caller.operator()?;
    let key = idempotency::key(&headers, true)?;
    let command = HoldCommand::AddFunding {
        amount: body.value.amount.money("amount")?,
    };
    match submit(
        &state,
        &caller,
        key,
        ("/v1/credit/funding", &body.digest),
        command,
    )
    .await?
    {
        Outcome::CreditFunding(funding) => Ok((StatusCode::CREATED, Json(funding))),
        other => Err(ApiError::internal(&format!("unexpected outcome {other:?}"))),
    }
}

/// The platform's credit funding: set aside and not lent, and lent out (operators only).
#[utoipa::path(get, path = "/v1/credit/funding", tag = "operator",
    responses((status = 200, body = CreditFunding), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn funding(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<CreditFunding>, ApiError> {
    caller.operator()?;
    let currency = formica_core::credit::CREDIT_CURRENCY;
    let ids = [
        formica_core::deposit::funding_account(currency),
        formica_core::deposit::lent_account(currency),
    ];
    let accounts = state
        .pool()
        .with_store(move |store| store.accounts(&ids))
        .await?;
    // In the order asked, None where an account was never made.
    Ok(Json(CreditFunding::from_accounts(
        currency,
        accounts.first().and_then(Option::as_ref),
        accounts.get(1).and_then(Option::as_ref),
    )))
}

/// Debts past their due day, oldest first (operators only).
#[utoipa::path(get, path = "/v1/debts/overdue", tag = "operator",
    responses((status = 200, body = Vec<Debt>), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn overdue(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<Debt>>, ApiError> {
    caller.operator()?;
    let list = state
        .pool()
        .read(formica_store::credit::overdue_debts)
        .await?;
    Ok(Json(list))
}
