//! Merchants over REST: open a shop, create its gateway apps and exchange keys, read its
//! settlements, statements and notification log; the operator sets fee rates. And the
//! wallet's one-time payment code, which a till scans for `alipay.trade.pay`.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use formica_core::merchant::{Merchant, MerchantCommand, MerchantProfile};
use formica_core::{Currency, Id, Outcome, ProductCommand};
use formica_store::merchant::{App, Notification, SettlementView};
use serde::{Deserialize, Serialize};

use crate::AppState;
use crate::auth::Caller;
use crate::body::Body;
use crate::error::{ApiError, ErrorBody, money_error};
use crate::gateway::sign;
use crate::idempotency;
use crate::page::{Page, PageQuery};
use formica_core::trade::{Trade, TradeStatus};
use formica_store::trade::{Role, TradeQuery};

/// How long a payment code works.
pub const PAYMENT_CODE_TTL_NS: u64 = 60 * 1_000_000_000;

/// Whether `code` has the shape of a payment code: 16 to 24 digits starting 25 to 30, as
/// Alipay's do (so tills that check the prefix accept ours).
pub fn looks_like_payment_code(code: &str) -> bool {
    (16..=24).contains(&code.len())
        && code.bytes().all(|b| b.is_ascii_digit())
        && matches!(&code[..2], "25" | "26" | "27" | "28" | "29" | "30")
}

/// A new payment code: `28` and 16 random digits.
pub fn new_payment_code() -> String {
    let mut bytes = [0u8; 8];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut bytes);
    format!(
        "28{:016}",
        u64::from_le_bytes(bytes) % 10_000_000_000_000_000
    )
}

/// A fresh one-time payment code.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PaymentCode {
    /// The digits a till scans.
    pub code: String,
    /// When it stops working (nanoseconds since the epoch).
    pub expires_at: u64,
}

/// Issues the caller a one-time payment code, valid for a minute; it replaces the last one.
#[utoipa::path(post, path = "/v1/wallet/payment-code", tag = "merchants",
    responses((status = 201, body = PaymentCode)), security(("bearer" = [])))]
pub async fn payment_code(
    State(state): State<AppState>,
    Caller(user): Caller,
) -> Result<(StatusCode, Json<PaymentCode>), ApiError> {
    let code = issue_payment_code(&state, user.id).await?;
    Ok((StatusCode::CREATED, Json(code)))
}

/// Issues a payment code for `user` (the wallet, `formica admin payment-code`).
pub async fn issue_payment_code(state: &AppState, user: Id) -> Result<PaymentCode, ApiError> {
    let code = new_payment_code();
    let expires_at = state.now() + PAYMENT_CODE_TTL_NS;
    let stored = code.clone();
    state
        .pool()
        .write(move |sql| {
            formica_store::merchant::issue_payment_code(sql, user, &stored, expires_at)
        })
        .await?;
    Ok(PaymentCode { code, expires_at })
}

/// A shop to open.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewMerchant {
    /// The business name buyers see.
    pub name: String,
    /// Phone or email of the business.
    pub contact: String,
    /// What it sells.
    pub category: String,
    /// ISO 3166 alpha-2 country.
    pub country: String,
    /// The currency it is paid and settled in.
    pub currency: String,
    /// One of the caller's bank cards, for settlements.
    pub card_id: Id,
}

impl NewMerchant {
    /// The shop `owner` asks to open, its fields checked (the card is the caller's to check).
    pub fn profile(&self, owner: Id) -> Result<MerchantProfile, ApiError> {
        let name = text(&self.name, "name", 128)?;
        let contact = text(&self.contact, "contact", 128)?;
        let category = text(&self.category, "category", 64)?;
        let country = text(&self.country, "country", 2)?.to_ascii_uppercase();
        if country.len() != 2 || !country.bytes().all(|b| b.is_ascii_alphabetic()) {
            return Err(
                ApiError::new("invalid_field", "country must be two letters").field("country"),
            );
        }
        let currency: Currency = self
            .currency
            .parse()
            .map_err(|error| money_error(error, "currency"))?;
        Ok(MerchantProfile {
            owner_id: owner,
            name,
            contact,
            category,
            country,
            currency,
            card_id: self.card_id,
        })
    }
}

fn text(value: &str, field: &str, max: usize) -> Result<String, ApiError> {
    let value = value.trim();
    if value.is_empty() || value.len() > max {
        return Err(
            ApiError::new("invalid_field", format!("{field} must be 1 to {max} bytes"))
                .field(field),
        );
    }
    Ok(value.to_owned())
}

/// Opens a merchant run by the caller.
#[utoipa::path(post, path = "/v1/merchants", tag = "merchants", request_body = NewMerchant,
    responses((status = 201, body = Merchant), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn create(
    State(state): State<AppState>,
    Caller(user): Caller,
    body: Body<NewMerchant>,
) -> Result<(StatusCode, Json<Merchant>), ApiError> {
    let profile = body.value.profile(user.id)?;
    let (owner, card) = (user.id, profile.card_id);
    state
        .pool()
        .read(move |sql| formica_store::people::card(sql, owner, card))
        .await?
        .ok_or_else(|| ApiError::not_found("card_not_found").field("card_id"))?;
    let command = MerchantCommand::Open(Box::new(profile));
    match idempotency::submit(
        &state,
        user.id,
        None,
        String::new(),
        ProductCommand::Merchant(command),
    )
    .await?
    {
        Outcome::Merchant(merchant) => Ok((StatusCode::CREATED, Json(merchant))),
        other => Err(ApiError::internal(&format!("unexpected outcome {other:?}"))),
    }
}

/// The caller's merchants.
#[utoipa::path(get, path = "/v1/merchants", tag = "merchants",
    responses((status = 200, body = Vec<Merchant>)), security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    Caller(user): Caller,
) -> Result<Json<Vec<Merchant>>, ApiError> {
    let owner = user.id;
    let merchants = state
        .pool()
        .read(move |sql| formica_store::merchant::merchants_of(sql, owner))
        .await?;
    Ok(Json(merchants))
}

/// The merchant, if the caller runs it (or is an operator); not found otherwise.
pub(crate) async fn owned(
    state: &AppState,
    caller: &Caller,
    id: &str,
) -> Result<Merchant, ApiError> {
    let id: Id = id
        .parse()
        .map_err(|_| ApiError::not_found("merchant_not_found"))?;
    let merchant = state
        .pool()
        .read(move |sql| formica_store::merchant::merchant(sql, id))
        .await?
        .ok_or_else(|| ApiError::not_found("merchant_not_found"))?;
    if merchant.owner_id != caller.0.id && caller.operator().is_err() {
        return Err(ApiError::not_found("merchant_not_found"));
    }
    Ok(merchant)
}

/// One of the caller's merchants.
#[utoipa::path(get, path = "/v1/merchants/{id}", tag = "merchants",
    params(("id" = String, Path, description = "The merchant")),
    responses((status = 200, body = Merchant), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn get_one(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Merchant>, ApiError> {
    Ok(Json(owned(&state, &caller, &id).await?))
}

/// A gateway app to create.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewApp {
    /// A name for the merchant's own use.
    pub name: String,
    /// Whether the app's trades wait in escrow for the buyer's confirmation.
    #[serde(default)]
    pub escrow: bool,
    /// The merchant's RSA public key (SPKI or PKCS#1, PEM or bare base64); can come later.
    pub public_key: Option<String>,
    /// How the platform signs this app's notifications and returns: `RSA2` (SHA256withRSA,
    /// the default) or the legacy `RSA` (SHA1withRSA), as the merchant's SDK is configured.
    pub sign_type: Option<String>,
}

fn merchant_key(text: &str) -> Result<String, ApiError> {
    let key = sign::parse_public_key(text)
        .map_err(|e| ApiError::new("invalid_key", e.to_string()).field("public_key"))?;
    Ok(sign::public_key_base64(&key))
}

/// Creates a gateway app with a new platform key pair.
#[utoipa::path(post, path = "/v1/merchants/{id}/apps", tag = "merchants", request_body = NewApp,
    params(("id" = String, Path, description = "The merchant")),
    responses((status = 201, body = App), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn create_app(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: Body<NewApp>,
) -> Result<(StatusCode, Json<App>), ApiError> {
    let merchant = owned(&state, &caller, &id).await?;
    let name = text(&body.value.name, "name", 64)?;
    let public_key = body
        .value
        .public_key
        .as_deref()
        .map(merchant_key)
        .transpose()?;
    let sign_type = match body.value.sign_type.as_deref() {
        None | Some("RSA2") => "RSA2",
        Some("RSA") => "RSA",
        Some(_) => {
            return Err(ApiError::new("invalid_field", "RSA2 or RSA").field("sign_type"));
        }
    };
    // Key generation takes a while: off the async threads.
    let platform = tokio::task::spawn_blocking(sign::generate_key)
        .await
        .map_err(|e| ApiError::internal(&e))?;
    let mut digits = [0u8; 8];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut digits);
    let app = App {
        app_id: format!("2021{:012}", u64::from_le_bytes(digits) % 1_000_000_000_000),
        merchant_id: merchant.id,
        name,
        public_key,
        platform_private_key: sign::private_key_pkcs8_pem(&platform),
        platform_public_key: sign::public_key_base64(&platform.to_public_key()),
        escrow: body.value.escrow,
        sign_type: sign_type.to_owned(),
        created_at: state.now(),
    };
    let stored = app.clone();
    state
        .pool()
        .write(move |sql| formica_store::merchant::create_app(sql, &stored))
        .await?;
    Ok((StatusCode::CREATED, Json(app)))
}

/// A merchant's apps.
#[utoipa::path(get, path = "/v1/merchants/{id}/apps", tag = "merchants",
    params(("id" = String, Path, description = "The merchant")),
    responses((status = 200, body = Vec<App>), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn apps(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Vec<App>>, ApiError> {
    let merchant = owned(&state, &caller, &id).await?.id;
    let apps = state
        .pool()
        .read(move |sql| formica_store::merchant::apps(sql, merchant))
        .await?;
    Ok(Json(apps))
}

/// The app, if the caller runs its merchant.
async fn owned_app(state: &AppState, caller: &Caller, app_id: &str) -> Result<App, ApiError> {
    let id = app_id.to_owned();
    let app = state
        .pool()
        .read(move |sql| formica_store::merchant::app(sql, &id))
        .await?
        .ok_or_else(|| ApiError::not_found("app_not_found"))?;
    owned(state, caller, &app.merchant_id.to_string())
        .await
        .map_err(|_| ApiError::not_found("app_not_found"))?;
    Ok(app)
}

/// The merchant's public key for an app.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PublicKeyInput {
    /// SPKI or PKCS#1, PEM or bare base64; at least 2048 bits.
    pub public_key: String,
}

/// Uploads (or replaces) the merchant's public key of an app.
#[utoipa::path(put, path = "/v1/apps/{app_id}/public-key", tag = "merchants",
    request_body = PublicKeyInput,
    params(("app_id" = String, Path, description = "The app")),
    responses((status = 200, body = App), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn set_public_key(
    State(state): State<AppState>,
    caller: Caller,
    Path(app_id): Path<String>,
    body: Body<PublicKeyInput>,
) -> Result<Json<App>, ApiError> {
    let mut app = owned_app(&state, &caller, &app_id).await?;
    let key = merchant_key(&body.value.public_key)?;
    let (id, stored) = (app.app_id.clone(), key.clone());
    state
        .pool()
        .write(move |sql| formica_store::merchant::set_app_key(sql, &id, &stored))
        .await?;
    state.gateway().forget(&app.app_id);
    app.public_key = Some(key);
    Ok(Json(app))
}

/// The platform's public key of an app, for the merchant's SDK.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PlatformKey {
    /// Bare base64 SPKI (what Alipay's console shows; every SDK takes it).
    pub base64: String,
    /// The same as a PEM `PUBLIC KEY`.
    pub pem: String,
}

/// Downloads the platform's public key of an app.
#[utoipa::path(get, path = "/v1/apps/{app_id}/platform-key", tag = "merchants",
    params(("app_id" = String, Path, description = "The app")),
    responses((status = 200, body = PlatformKey), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn platform_key(
    State(state): State<AppState>,
    caller: Caller,
    Path(app_id): Path<String>,
) -> Result<Json<PlatformKey>, ApiError> {
    let app = owned_app(&state, &caller, &app_id).await?;
    let key =
        sign::parse_public_key(&app.platform_public_key).map_err(|e| ApiError::internal(&e))?;
    Ok(Json(PlatformKey {
        base64: app.platform_public_key,
        pem: sign::public_key_pem(&key),
    }))
}

/// `?status=...&out_trade_no=...&cursor=...&limit=...`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct MerchantTradesQuery {
    /// Only trades in this status.
    pub status: Option<TradeStatus>,
    /// Only the trade with this out_trade_no.
    pub out_trade_no: Option<String>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Items per page, 1 to 100.
    pub limit: Option<u32>,
}

/// A merchant's trades (gateway and REST alike), newest first.
#[utoipa::path(get, path = "/v1/merchants/{id}/trades", tag = "merchants",
    params(("id" = String, Path, description = "The merchant"), MerchantTradesQuery),
    responses((status = 200, body = Page<Trade>), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn trades(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(query): Query<MerchantTradesQuery>,
) -> Result<Json<Page<Trade>>, ApiError> {
    let merchant = owned(&state, &caller, &id).await?.id;
    let page = PageQuery {
        cursor: query.cursor,
        limit: query.limit,
    };
    let trade_query = TradeQuery {
        user: Some(merchant),
        role: Role::Seller,
        status: query.status,
        out_trade_no: query.out_trade_no,
        before: page.before()?,
        limit: page.limit(),
    };
    let limit = trade_query.limit;
    let list = state
        .pool()
        .read(move |sql| formica_store::trade::trades(sql, &trade_query))
        .await?;
    Ok(Json(Page::new(list, limit, |t: &Trade| t.id)))
}

/// A merchant's settlements, newest first.
#[utoipa::path(get, path = "/v1/merchants/{id}/settlements", tag = "merchants",
    params(("id" = String, Path, description = "The merchant")),
    responses((status = 200, body = Vec<SettlementView>), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn settlements(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Vec<SettlementView>>, ApiError> {
    let merchant = owned(&state, &caller, &id).await?.id;
    let list = state
        .pool()
        .read(move |sql| formica_store::merchant::settlements(sql, merchant, 100))
        .await?;
    Ok(Json(list))
}

/// A merchant's notifications to its notify_url, newest first.
#[utoipa::path(get, path = "/v1/merchants/{id}/notifications", tag = "merchants",
    params(("id" = String, Path, description = "The merchant")),
    responses((status = 200, body = Vec<Notification>), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn notifications(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Vec<Notification>>, ApiError> {
    let merchant = owned(&state, &caller, &id).await?.id;
    let list = state
        .pool()
        .read(move |sql| formica_store::merchant::notifications(sql, merchant, 100))
        .await?;
    Ok(Json(list))
}

/// Which day's statement.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct StatementQuery {
    /// `yyyy-MM-dd` (a day) or `yyyy-MM` (a month).
    pub date: String,
}

/// A day's or month's statement as CSV: payments, refunds, fees and the net.
#[utoipa::path(get, path = "/v1/merchants/{id}/statement", tag = "merchants",
    params(("id" = String, Path, description = "The merchant"), StatementQuery),
    responses((status = 200, content_type = "text/csv", body = String),
        (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn statement(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(query): Query<StatementQuery>,
) -> Result<Response, ApiError> {
    let merchant = owned(&state, &caller, &id).await?.id;
    let (from, to) = match crate::gateway::time::parse_day(&query.date) {
        Some(day) => (day, day + 1),
        None => crate::gateway::time::parse_month(&query.date).ok_or_else(|| {
            ApiError::new("invalid_field", "date must be yyyy-MM-dd or yyyy-MM").field("date")
        })?,
    };
    let csv = crate::gateway::bill::statement(&state, merchant, from, to).await?;
    Ok(([(header::CONTENT_TYPE, "text/csv; charset=utf-8")], csv).into_response())
}

/// A merchant's fee rate.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FeeRate {
    /// Millionths of each payment (6000 = 0.6%); at most 100000.
    pub fee_ppm: u32,
}

/// Sets a merchant's fee rate (operators).
#[utoipa::path(put, path = "/v1/merchants/{id}/fee-rate", tag = "merchants",
    request_body = FeeRate,
    params(("id" = String, Path, description = "The merchant")),
    responses((status = 200, body = Merchant), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn set_fee_rate(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: Body<FeeRate>,
) -> Result<Json<Merchant>, ApiError> {
    caller.operator()?;
    let merchant = owned(&state, &caller, &id).await?;
    let command = MerchantCommand::SetFeeRate {
        merchant_id: merchant.id,
        fee_ppm: body.value.fee_ppm,
    };
    match idempotency::submit(
        &state,
        caller.0.id,
        None,
        String::new(),
        ProductCommand::Merchant(command),
    )
    .await?
    {
        Outcome::Merchant(merchant) => Ok(Json(merchant)),
        other => Err(ApiError::internal(&format!("unexpected outcome {other:?}"))),
    }
}

/// An unpaid trade a shop opens for an amount: the dynamic QR code at the counter.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewShopTrade {
    /// The shop's own reference, unique per shop.
    pub out_trade_no: String,
    /// What is sold.
    pub subject: String,
    /// The price, in the shop's currency.
    pub amount: crate::wallet::AmountInput,
}

/// An opened trade and the link its QR code carries.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ShopTrade {
    /// The trade.
    pub trade: Trade,
    /// The path of its checkout (`/qr/{trade_no}`), for the QR code.
    pub qr_path: String,
}

/// How long a counter QR code can be paid.
pub const COUNTER_PAY_TIMEOUT_NS: u64 = 2 * 3600 * 1_000_000_000;

/// Opens an unpaid trade for an amount; the buyer scans its QR code and pays at the hosted
/// checkout. It closes unpaid after two hours.
#[utoipa::path(post, path = "/v1/merchants/{id}/trades", tag = "merchants",
    request_body = NewShopTrade,
    params(("id" = String, Path, description = "The merchant")),
    responses((status = 201, body = ShopTrade), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn create_trade(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: Body<NewShopTrade>,
) -> Result<(StatusCode, Json<ShopTrade>), ApiError> {
    let merchant = owned(&state, &caller, &id).await?;
    let amount = body.value.amount.money("amount")?;
    if amount.currency != merchant.currency {
        return Err(ApiError::new(
            "currency_mismatch",
            format!("the shop takes {}", merchant.currency),
        )
        .field("amount.currency"));
    }
    let out_trade_no = crate::trade::text(&body.value.out_trade_no, "out_trade_no", true)?;
    let subject = crate::trade::text(&body.value.subject, "subject", true)?;
    let new = formica_core::trade::NewTrade {
        seller_id: merchant.id,
        buyer_id: None,
        out_trade_no,
        subject,
        amount,
        escrow: false,
        app_id: None,
        notify_url: None,
        return_url: None,
        passback_params: None,
        pay_by: Some(state.now() + COUNTER_PAY_TIMEOUT_NS),
    };
    let command = ProductCommand::Merchant(MerchantCommand::CreateTrade(Box::new(new)));
    match idempotency::submit(&state, caller.0.id, None, String::new(), command).await? {
        Outcome::Trade(trade) => {
            let qr_path = format!("/qr/{}", trade.id);
            Ok((StatusCode::CREATED, Json(ShopTrade { trade, qr_path })))
        }
        other => Err(ApiError::internal(&format!("unexpected outcome {other:?}"))),
    }
}

/// A refund a shop makes.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefundInput {
    /// The shop's id for this refund: a repeat with the same id refunds once.
    pub out_request_no: String,
    /// How much, at most what is left of the trade.
    pub amount: crate::wallet::AmountInput,
    /// Why (the buyer sees it).
    #[serde(default)]
    pub reason: String,
}

/// Refunds part or all of a paid trade to the buyer, within the refund window; the shop's
/// fee is returned in proportion. A repeated `out_request_no` answers the first refund.
#[utoipa::path(post, path = "/v1/merchants/{id}/trades/{trade}/refunds", tag = "merchants",
    request_body = RefundInput,
    params(("id" = String, Path, description = "The merchant"),
        ("trade" = String, Path, description = "The trade")),
    responses((status = 201, body = formica_core::merchant::RefundReceipt),
        (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn refund(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, trade)): Path<(String, String)>,
    body: Body<RefundInput>,
) -> Result<(StatusCode, Json<formica_core::merchant::RefundReceipt>), ApiError> {
    let merchant = owned(&state, &caller, &id).await?;
    let amount = body.value.amount.money("amount")?;
    let out_request_no = crate::trade::text(&body.value.out_request_no, "out_request_no", true)?;
    let reason = crate::trade::text(&body.value.reason, "reason", false)?;
    let trade_id: Id = trade
        .parse()
        .map_err(|_| ApiError::not_found("trade_not_found"))?;
    let command = ProductCommand::Merchant(MerchantCommand::Refund {
        merchant_id: merchant.id,
        trade_id,
        out_request_no: out_request_no.clone(),
        amount,
        reason,
    });
    match idempotency::submit(&state, caller.0.id, None, String::new(), command).await {
        Ok(Outcome::Refund(receipt)) => Ok((StatusCode::CREATED, Json(receipt))),
        Ok(other) => Err(ApiError::internal(&format!("unexpected outcome {other:?}"))),
        // A full refund ends the trade, and the writer no longer holds it: a repeat of that
        // refund is answered from the stored trade, as the first answer was.
        Err(error) if matches!(error.code, "trade_not_found" | "trade_status_invalid") => {
            let stored = state
                .pool()
                .read(move |sql| formica_store::trade::trade(sql, trade_id))
                .await?
                .filter(|trade| trade.seller_id == merchant.id);
            let Some(trade) = stored else {
                return Err(error);
            };
            let Some(done) = trade
                .refunds
                .iter()
                .find(|r| r.out_request_no == out_request_no)
                .cloned()
            else {
                return Err(error);
            };
            if done.amount != amount {
                return Err(formica_core::Refusal::DiscordantRepeat.into());
            }
            let receipt = formica_core::merchant::RefundReceipt {
                trade,
                refund: done,
                fund_change: false,
            };
            Ok((StatusCode::OK, Json(receipt)))
        }
        Err(error) => Err(error),
    }
}
