//! The credit score: a person reads their own score with its reasons and decides which
//! merchants may check it; a merchant learns only whether a consenting person's score passes
//! a threshold it names.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use formica_core::credit::{Consent, CreditCheck, CreditCommand, Score};
use formica_core::{Id, Outcome, ProductCommand};
use serde::{Deserialize, Serialize};

use crate::AppState;
use crate::auth::Caller;
use crate::body::Body;
use crate::error::{ApiError, ErrorBody};
use crate::idempotency;
use crate::wallet::{PersonRef, fingerprint};

async fn submit(
    state: &AppState,
    caller: &Caller,
    key: Option<String>,
    (method, path, digest): (&str, &str, &str),
    command: CreditCommand,
) -> Result<Outcome, ApiError> {
    idempotency::submit(
        state,
        caller.0.id,
        key,
        fingerprint(method, path, digest),
        ProductCommand::Credit(command),
    )
    .await
}

/// The caller's credit score: 350 to 950, each dimension's points and change, and the
/// factors that weigh most. Computed again after the events that matter and every day.
#[utoipa::path(get, path = "/v1/credit/score", tag = "credit",
    responses((status = 200, body = Score), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn score(State(state): State<AppState>, caller: Caller) -> Result<Json<Score>, ApiError> {
    let person = caller.0.id;
    state
        .pool()
        .read(move |sql| formica_store::credit::credit(sql, person))
        .await?
        .map(|credit| Json(credit.score()))
        .ok_or_else(|| ApiError::not_found("credit_not_found"))
}

/// The merchants the caller let check their score (and those the caller stopped).
#[utoipa::path(get, path = "/v1/credit/consents", tag = "credit",
    responses((status = 200, body = Vec<Consent>), (status = 401, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn consents(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<Consent>>, ApiError> {
    let person = caller.0.id;
    let list = state
        .pool()
        .read(move |sql| formica_store::credit::consents_of_person(sql, person))
        .await?;
    Ok(Json(list))
}

/// A consent to grant.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewConsent {
    /// The merchant that may check the score against its thresholds.
    pub merchant_id: Id,
}

/// Lets a merchant check the caller's score against thresholds (it never sees the score).
/// Granting again what stands changes nothing.
#[utoipa::path(post, path = "/v1/credit/consents", tag = "credit", request_body = NewConsent,
    responses((status = 201, body = Consent), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn grant(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Body<NewConsent>,
) -> Result<(StatusCode, Json<Consent>), ApiError> {
    let key = idempotency::key(&headers, false)?;
    let command = CreditCommand::Grant {
        person_id: caller.0.id,
        merchant_id: body.value.merchant_id,
    };
    let request = ("POST", "/v1/credit/consents", body.digest.as_str());
    match submit(&state, &caller, key, request, command).await? {
        Outcome::Consent(consent) => Ok((StatusCode::CREATED, Json(consent))),
        other => Err(ApiError::internal(&format!("unexpected outcome {other:?}"))),
    }
}

/// Withdraws the caller's consent to a merchant: its checks are refused from now on.
#[utoipa::path(delete, path = "/v1/credit/consents/{merchant_id}", tag = "credit",
    params(("merchant_id" = String, Path, description = "The merchant")),
    responses((status = 200, body = Consent), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn withdraw(
    State(state): State<AppState>,
    caller: Caller,
    Path(merchant_id): Path<String>,
) -> Result<Json<Consent>, ApiError> {
    let merchant_id: Id = merchant_id
        .parse()
        .map_err(|_| ApiError::not_found("consent_not_found"))?;
    let command = CreditCommand::Withdraw {
        person_id: caller.0.id,
        merchant_id,
    };
    let path = format!("/v1/credit/consents/{merchant_id}");
    match submit(&state, &caller, None, ("DELETE", &path, ""), command).await? {
        Outcome::Consent(consent) => Ok(Json(consent)),
        other => Err(ApiError::internal(&format!("unexpected outcome {other:?}"))),
    }
}

/// A merchant's question about a person.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewCreditCheck {
    /// The person (who must have consented to this merchant).
    pub person: PersonRef,
    /// The score the merchant requires, 350 to 950 (for example 650 to waive a car's deposit).
    pub threshold: u16,
}

/// Whether a person's score reaches the merchant's threshold: the only thing a merchant
/// learns, and only while the person's consent stands (each check is counted on it).
#[utoipa::path(post, path = "/v1/merchants/{id}/credit-checks", tag = "credit",
    request_body = NewCreditCheck,
    params(("id" = String, Path, description = "The merchant")),
    responses((status = 200, body = CreditCheck), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn check(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: Body<NewCreditCheck>,
) -> Result<Json<CreditCheck>, ApiError> {
    let merchant = crate::merchant::owned(&state, &caller, &id).await?;
    // Whether the person exists is for consent to reveal too.
    let person = body
        .value
        .person
        .resolve(&state, "person")
        .await
        .map_err(|_| ApiError::from(formica_core::Refusal::ConsentNotFound))?;
    let command = CreditCommand::Check {
        merchant_id: merchant.id,
        person_id: person,
        threshold: body.value.threshold,
    };
    let path = format!("/v1/merchants/{}/credit-checks", merchant.id);
    match submit(
        &state,
        &caller,
        None,
        ("POST", &path, &body.digest),
        command,
    )
    .await?
    {
        Outcome::CreditCheck(check) => Ok(Json(check)),
        other => Err(ApiError::internal(&format!("unexpected outcome {other:?}"))),
    }
}

/// A consent as its merchant sees it: who, since when, whether it stands. Never a score.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct MerchantConsent {
    /// The person.
    pub person_id: Id,
    /// When they granted it.
    pub granted_at: u64,
    /// Whether the merchant may check now.
    pub standing: bool,
    /// Checks made under it.
    pub checks: u64,
}

/// The people who let this merchant check their score.
#[utoipa::path(get, path = "/v1/merchants/{id}/consents", tag = "credit",
    params(("id" = String, Path, description = "The merchant")),
    responses((status = 200, body = Vec<MerchantConsent>), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn merchant_consents(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Vec<MerchantConsent>>, ApiError> {
    let merchant = crate::merchant::owned(&state, &caller, &id).await?.id;
    let list = state
        .pool()
        .read(move |sql| formica_store::credit::consents_to_merchant(sql, merchant))
        .await?;
    Ok(Json(
        list.into_iter()
            .map(|c| MerchantConsent {
                person_id: c.person_id,
                granted_at: c.granted_at,
                standing: c.stands(),
                checks: c.checks,
            })
            .collect(),
    ))
}
