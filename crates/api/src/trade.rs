//! Escrow trades: a seller offers, a buyer pays into escrow, the seller ships, the buyer
//! confirms receipt and the money is released; refunds, disputes and operators' decisions.
//! Every transition is a core command; a trade is shown only to its parties (and operators),
//! except an unpaid one offered to anyone, which works as a payment link (and still shows, to
//! whoever holds the link, that it closed).

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use formica_core::trade::{Decision, Trade, TradeCommand, TradeStatus};
use formica_core::{Id, Outcome, ProductCommand};
use formica_store::trade::{Role, TradeQuery};
use serde::Deserialize;

use crate::AppState;
use crate::auth::Caller;
use crate::body::Body;
use crate::error::{ApiError, ErrorBody};
use crate::idempotency;
use crate::page::{Page, PageQuery};
use crate::wallet::{AmountInput, PersonRef, check_pin, fingerprint};

/// Longest out_trade_no, subject, tracking note or reason accepted, in bytes of UTF-8 (the
/// core keeps up to `formica_core::trade::TEXT_MAX`, so what is accepted is kept whole).
const TEXT_MAX_BYTES: usize = 128;

const _: () = assert!(TEXT_MAX_BYTES <= formica_core::trade::TEXT_MAX);

pub(crate) fn text(value: &str, field: &str, required: bool) -> Result<String, ApiError> {
    let trimmed = value.trim();
    if (required && trimmed.is_empty()) || trimmed.len() > TEXT_MAX_BYTES {
        return Err(ApiError::new(
            "invalid_field",
            format!("1 to {TEXT_MAX_BYTES} bytes of UTF-8"),
        )
        .field(field));
    }
    Ok(trimmed.to_owned())
}

fn trade_id(id: &str) -> Result<Id, ApiError> {
    id.parse()
        .map_err(|_| ApiError::not_found("trade_not_found"))
}

/// Whether `caller` may see `trade`.
fn visible(trade: &Trade, caller: &Caller) -> bool {
    let who = caller.0.id;
    trade.seller_id == who
        || trade.buyer_id == Some(who)
        || caller.0.role == "operator"
        || (trade.buyer_id.is_none()
            && matches!(
                trade.status,
                TradeStatus::WaitBuyerPay | TradeStatus::TradeClosed
            ))
}

/// A trade to offer.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTrade {
    /// The seller's own reference, unique per seller.
    pub out_trade_no: String,
    /// What is sold.
    pub subject: String,
    /// The price.
    pub amount: AmountInput,
    /// The buyer, if only one person may pay.
    pub buyer: Option<PersonRef>,
}

/// Offers a trade (the caller sells). It closes if unpaid within the pay timeout (15 minutes
/// by default).
#[utoipa::path(post, path = "/v1/trades", tag = "trades", request_body = NewTrade,
    responses((status = 201, body = Trade), (status = 400, body = ErrorBody),
        (status = 409, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Body<NewTrade>,
) -> Result<(StatusCode, Json<Trade>), ApiError> {
    let key = idempotency::key(&headers, false)?;
    let out_trade_no = text(&body.value.out_trade_no, "out_trade_no", true)?;
    let subject = text(&body.value.subject, "subject", true)?;
    let amount = body.value.amount.money("amount")?;
    let buyer = match &body.value.buyer {
        Some(buyer) => Some(buyer.resolve(&state, "buyer").await?),
        None => None,
    };
    let seller = caller.0.id;
    // The core knows the open trades' numbers; the store knows the ones that are over.
    let number = out_trade_no.clone();
    let taken = state
        .pool()
        .read(move |sql| formica_store::trade::by_out_trade_no(sql, seller, &number))
        .await?;
    // A retry of the request that made the trade gets its saved answer from the key; any
    // other request for a number already used is a duplicate, whether or not it has a key.
    let retry = match (&taken, &key) {
        (Some(_), Some(key)) => {
            let key = key.clone();
            state
                .pool()
                .read(move |sql| formica_store::wallet::idempotency(sql, seller, &key))
                .await?
                .is_some()
        }
        _ => false,
    };
    if taken.is_some() && !retry {
        return Err(ApiError::new(
            "duplicate_out_trade_no",
            "you already have a trade with this out_trade_no",
        )
        .field("out_trade_no"));
    }
    let command = TradeCommand::Create {
        seller_id: seller,
        buyer_id: buyer,
        out_trade_no,
        subject,
        amount,
    };
    let trade = submit(&state, &caller, key, "/v1/trades", &body.digest, command).await?;
    Ok((StatusCode::CREATED, Json(trade)))
}

/// Runs one step of a trade at `/v1/trades/{id}/{verb}`: the Idempotency-Key (required for
/// steps that move money), the PIN if the step needs one, then the command, built from the
/// trade id and the caller's id.
#[allow(clippy::too_many_arguments, reason = "each is one part of the request")]
async fn act(
    state: &AppState,
    caller: &Caller,
    id: &str,
    headers: &HeaderMap,
    digest: &str,
    verb: &str,
    pin: Option<&str>,
    command: impl FnOnce(Id, Id) -> Result<TradeCommand, ApiError>,
) -> Result<Json<Trade>, ApiError> {
    let moves_money = pin.is_some() || matches!(verb, "refund-request/agree" | "decision");
    let key = idempotency::key(headers, moves_money)?;
    let trade_id = trade_id(id)?;
    if let Some(pin) = pin {
        check_pin(state, caller, pin).await?;
    }
    let command = command(trade_id, caller.0.id)?;
    let path = format!("/v1/trades/{trade_id}/{verb}");
    Ok(Json(
        submit(state, caller, key, &path, digest, command).await?,
    ))
}

async fn submit(
    state: &AppState,
    caller: &Caller,
    key: Option<String>,
    path: &str,
    digest: &str,
    command: TradeCommand,
) -> Result<Trade, ApiError> {
    let fingerprint = fingerprint("POST", path, digest);
    let trade_id = command.trade_id();
    let submitted = idempotency::submit(
        state,
        caller.0.id,
        key,
        fingerprint,
        ProductCommand::Trade(command),
    )
    .await;
    match submitted {
        Ok(Outcome::Trade(trade)) => Ok(trade),
        Ok(_) => Err(ApiError::internal(&"a trade command answers a trade")),
        // The core holds only open trades: one that is over is not found there. Its parties
        // are told where it stands instead.
        Err(error) if error.code == "trade_not_found" => {
            let Some(id) = trade_id else {
                return Err(error);
            };
            let stored = state
                .pool()
                .read(move |sql| formica_store::trade::trade(sql, id))
                .await?;
            match stored {
                Some(trade) if trade.status.is_final() && visible(&trade, caller) => {
                    Err(formica_core::Refusal::TradeStatusInvalid {
                        status: trade.status,
                    }
                    .into())
                }
                _ => Err(error),
            }
        }
        Err(error) => Err(error),
    }
}

/// `?role=buyer|seller&status=...&out_trade_no=...&cursor=...&limit=...`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct TradesQuery {
    /// `buyer` or `seller` (default: either).
    pub role: Option<String>,
    /// Only trades in this status.
    pub status: Option<TradeStatus>,
    /// Only the trade with this out_trade_no.
    pub out_trade_no: Option<String>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Items per page, 1 to 100.
    pub limit: Option<u32>,
}

/// The caller's trades, newest first.
#[utoipa::path(get, path = "/v1/trades", tag = "trades", params(TradesQuery),
    responses((status = 200, body = Page<Trade>), (status = 400, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    Caller(user): Caller,
    Query(query): Query<TradesQuery>,
) -> Result<Json<Page<Trade>>, ApiError> {
    let role = match query.role.as_deref() {
        None => Role::Any,
        Some("buyer") => Role::Buyer,
        Some("seller") => Role::Seller,
        Some(_) => return Err(ApiError::new("invalid_field", "buyer or seller").field("role")),
    };
    let page = PageQuery {
        cursor: query.cursor,
        limit: query.limit,
    };
    let trade_query = TradeQuery {
        user: Some(user.id),
        role,
        status: query.status,
        out_trade_no: query.out_trade_no,
        before: page.before()?,
        limit: page.limit(),
    };
    let limit = trade_query.limit;
    let trades = state
        .pool()
        .read(move |sql| formica_store::trade::trades(sql, &trade_query))
        .await?;
    Ok(Json(Page::new(trades, limit, |t: &Trade| t.id)))
}

/// One trade.
#[utoipa::path(get, path = "/v1/trades/{id}", tag = "trades",
    params(("id" = String, Path, description = "The trade")),
    responses((status = 200, body = Trade), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn get_one(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Trade>, ApiError> {
    let id = trade_id(&id)?;
    let trade = state
        .pool()
        .read(move |sql| formica_store::trade::trade(sql, id))
        .await?
        .filter(|trade| visible(trade, &caller))
        .ok_or_else(|| ApiError::not_found("trade_not_found"))?;
    Ok(Json(trade))
}

/// The payment PIN, confirming a step that moves money.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PinConfirmation {
    /// The payment PIN.
    pub pin: String,
}

/// How a trade is paid.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PayInput {
    /// The payment PIN.
    pub pin: String,
    /// Pay from this pocket fund instead of the wallet: exactly the amount is redeemed and
    /// paid on, in one step.
    pub fund_id: Option<Id>,
    /// Pay from the caller's credit line: the platform pays, the caller owes it on the
    /// line's next statement (an escrow trade's once its receipt is confirmed). Not with
    /// `fund_id`.
    #[serde(default)]
    pub credit_line: bool,
}

/// Pays a trade: the money moves from the buyer's wallet (or their pocket fund) into escrow,
/// or to the shop for a shop's trade.
#[utoipa::path(post, path = "/v1/trades/{id}/pay", tag = "trades", request_body = PayInput,
    params(("id" = String, Path, description = "The trade"),
        ("Idempotency-Key" = String, Header, description = "Required: makes a retry safe")),
    responses((status = 200, body = Trade), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn pay(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body<PayInput>,
) -> Result<Json<Trade>, ApiError> {
    let pin = Some(body.value.pin.as_str());
    let source = match (body.value.fund_id, body.value.credit_line) {
        (Some(_), true) => {
            return Err(ApiError::new(
                "invalid_field",
                "pay from a fund or from the credit line, not both",
            )
            .field("credit_line"));
        }
        (None, false) => {
            return act(
                &state,
                &caller,
                &id,
                &headers,
                &body.digest,
                "pay",
                pin,
                |trade_id, buyer_id| Ok(TradeCommand::Pay { trade_id, buyer_id }),
            )
            .await;
        }
        (fund_id, _) => fund_id,
    };
    let key = idempotency::key(&headers, true)?;
    let trade_id = trade_id(&id)?;
    check_pin(&state, &caller, &body.value.pin).await?;
    let command = match source {
        Some(fund_id) => ProductCommand::Fund(formica_core::fund::FundCommand::PayTrade {
            fund_id,
            trade_id,
            buyer_id: caller.0.id,
        }),
        None => {
            ProductCommand::CreditLine(formica_core::credit_line::CreditLineCommand::PayTrade {
                trade_id,
                buyer_id: caller.0.id,
            })
        }
    };
    let path = format!("/v1/trades/{trade_id}/pay");
    match idempotency::submit(
        &state,
        caller.0.id,
        key,
        fingerprint("POST", &path, &body.digest),
        command,
    )
    .await?
    {
        Outcome::Trade(trade) => Ok(Json(trade)),
        other => Err(ApiError::internal(&format!("unexpected outcome {other:?}"))),
    }
}

/// The seller's shipping note.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Shipment {
    /// Carrier and tracking number, or how the goods were delivered.
    pub tracking: String,
}

/// Marks a paid trade shipped; the buyer's receipt is confirmed on their behalf after the
/// confirm period (10 days by default) unless they confirm or ask for a refund first.
#[utoipa::path(post, path = "/v1/trades/{id}/ship", tag = "trades", request_body = Shipment,
    params(("id" = String, Path, description = "The trade")),
    responses((status = 200, body = Trade), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn ship(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body<Shipment>,
) -> Result<Json<Trade>, ApiError> {
    let tracking = text(&body.value.tracking, "tracking", true)?;
    act(
        &state,
        &caller,
        &id,
        &headers,
        &body.digest,
        "ship",
        None,
        |trade_id, seller_id| {
            Ok(TradeCommand::Ship {
                trade_id,
                seller_id,
                tracking,
            })
        },
    )
    .await
}

/// Confirms receipt: the money held for the trade goes to the seller.
#[utoipa::path(post, path = "/v1/trades/{id}/confirm", tag = "trades",
    request_body = PinConfirmation,
    params(("id" = String, Path, description = "The trade"),
        ("Idempotency-Key" = String, Header, description = "Required: makes a retry safe")),
    responses((status = 200, body = Trade), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn confirm(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body<PinConfirmation>,
) -> Result<Json<Trade>, ApiError> {
    let pin = Some(body.value.pin.as_str());
    act(
        &state,
        &caller,
        &id,
        &headers,
        &body.digest,
        "confirm",
        pin,
        |trade_id, buyer_id| Ok(TradeCommand::ConfirmReceipt { trade_id, buyer_id }),
    )
    .await
}

/// An empty body.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Empty {}

/// Closes an unpaid trade (the seller).
#[utoipa::path(post, path = "/v1/trades/{id}/close", tag = "trades", request_body = Empty,
    params(("id" = String, Path, description = "The trade")),
    responses((status = 200, body = Trade), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn close(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body<Empty>,
) -> Result<Json<Trade>, ApiError> {
    act(
        &state,
        &caller,
        &id,
        &headers,
        &body.digest,
        "close",
        None,
        |trade_id, seller_id| {
            Ok(TradeCommand::Close {
                trade_id,
                seller_id,
            })
        },
    )
    .await
}

/// A buyer's refund request.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefundAsk {
    /// How much (all or part of what escrow holds).
    pub amount: AmountInput,
    /// Why.
    pub reason: String,
}

/// Asks the seller for a full or partial refund (before the money is released). The seller
/// agrees or refuses; unanswered, it is agreed after the answer period (5 days by default).
#[utoipa::path(post, path = "/v1/trades/{id}/refund-request", tag = "trades",
    request_body = RefundAsk, params(("id" = String, Path, description = "The trade")),
    responses((status = 200, body = Trade), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn request_refund(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body<RefundAsk>,
) -> Result<Json<Trade>, ApiError> {
    let amount = body.value.amount.money("amount")?;
    let reason = text(&body.value.reason, "reason", true)?;
    let verb = "refund-request";
    act(
        &state,
        &caller,
        &id,
        &headers,
        &body.digest,
        verb,
        None,
        |trade_id, buyer_id| {
            Ok(TradeCommand::RequestRefund {
                trade_id,
                buyer_id,
                amount,
                reason,
            })
        },
    )
    .await
}

/// The seller agrees to the refund: the money goes back to the buyer at once.
#[utoipa::path(post, path = "/v1/trades/{id}/refund-request/agree", tag = "trades",
    request_body = Empty,
    params(("id" = String, Path, description = "The trade"),
        ("Idempotency-Key" = String, Header, description = "Required: makes a retry safe")),
    responses((status = 200, body = Trade), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn agree_refund(
    state: State<AppState>,
    caller: Caller,
    id: Path<String>,
    headers: HeaderMap,
    body: Body<Empty>,
) -> Result<Json<Trade>, ApiError> {
    answer_refund(state, caller, id, headers, body, true).await
}

/// The seller refuses the refund: the trade goes to dispute, for an operator to decide.
#[utoipa::path(post, path = "/v1/trades/{id}/refund-request/refuse", tag = "trades",
    request_body = Empty, params(("id" = String, Path, description = "The trade")),
    responses((status = 200, body = Trade), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn refuse_refund(
    state: State<AppState>,
    caller: Caller,
    id: Path<String>,
    headers: HeaderMap,
    body: Body<Empty>,
) -> Result<Json<Trade>, ApiError> {
    answer_refund(state, caller, id, headers, body, false).await
}

async fn answer_refund(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body<Empty>,
    agree: bool,
) -> Result<Json<Trade>, ApiError> {
    let verb = if agree {
        "refund-request/agree"
    } else {
        "refund-request/refuse"
    };
    act(
        &state,
        &caller,
        &id,
        &headers,
        &body.digest,
        verb,
        None,
        |trade_id, seller_id| {
            Ok(TradeCommand::AnswerRefund {
                trade_id,
                seller_id,
                agree,
            })
        },
    )
    .await
}

/// An operator's decision on a dispute.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DecisionInput {
    /// `refund` (all to the buyer), `release` (all to the seller) or `split`.
    pub decision: String,
    /// For `split`: the buyer's part.
    pub refund_amount: Option<AmountInput>,
}

impl DecisionInput {
    /// The decision asked for; a split must name the buyer's part, and only a split may.
    pub fn decision(&self) -> Result<Decision, ApiError> {
        match (self.decision.as_str(), &self.refund_amount) {
            ("refund", None) => Ok(Decision::Refund),
            ("release", None) => Ok(Decision::Release),
            ("split", Some(amount)) => Ok(Decision::Split {
                refund: amount.money("refund_amount")?,
            }),
            ("split", None) => Err(ApiError::new(
                "missing_field",
                "a split names the buyer's part",
            )
            .field("refund_amount")),
            ("refund" | "release", Some(_)) => Err(ApiError::new(
                "invalid_field",
                "only a split has a refund_amount",
            )
            .field("refund_amount")),
            _ => Err(ApiError::new("invalid_field", "refund, release or split").field("decision")),
        }
    }
}

/// Decides a dispute (operators only).
#[utoipa::path(post, path = "/v1/trades/{id}/decision", tag = "operator",
    request_body = DecisionInput,
    params(("id" = String, Path, description = "The trade"),
        ("Idempotency-Key" = String, Header, description = "Required: makes a retry safe")),
    responses((status = 200, body = Trade), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn decide(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body<DecisionInput>,
) -> Result<Json<Trade>, ApiError> {
    caller.operator()?;
    let decision = body.value.decision()?;
    act(
        &state,
        &caller,
        &id,
        &headers,
        &body.digest,
        "decision",
        None,
        |trade_id, _| Ok(TradeCommand::Decide { trade_id, decision }),
    )
    .await
}

/// Trades in dispute, newest first (operators only).
#[utoipa::path(get, path = "/v1/disputes", tag = "operator", params(PageQuery),
    responses((status = 200, body = Page<Trade>), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn disputes(
    State(state): State<AppState>,
    caller: Caller,
    Query(page): Query<PageQuery>,
) -> Result<Json<Page<Trade>>, ApiError> {
    caller.operator()?;
    let query = TradeQuery {
        status: Some(TradeStatus::Dispute),
        before: page.before()?,
        limit: page.limit(),
        ..TradeQuery::default()
    };
    let limit = query.limit;
    let trades = state
        .pool()
        .read(move |sql| formica_store::trade::trades(sql, &query))
        .await?;
    Ok(Json(Page::new(trades, limit, |t: &Trade| t.id)))
}
