//! Escrow trades in the wallet: the buyer's and the seller's lists, offering a trade, and one
//! trade's page with the steps its party can take now (pay, ship, confirm receipt, ask for a
//! refund, answer one) and where a dispute stands.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use formica_api::AppState;
use formica_api::auth::Caller;
use formica_api::body::Body;
use formica_api::trade::{Empty, PinConfirmation, RefundAsk, Shipment, TradesQuery};
use formica_api::wallet::{AmountInput, PersonRef};
use formica_core::trade::{Trade, TradeStatus};
use serde::Deserialize;

use crate::form::{Field, FormPage};
use crate::session::{Ctx, Posted, Signed, keyed};
use crate::view::{self, Chrome};

/// A trade's status in words.
pub fn status_words(status: TradeStatus) -> &'static str {
    match status {
        TradeStatus::WaitBuyerPay => "Waiting for payment",
        TradeStatus::TradeSuccess => "Paid",
        TradeStatus::WaitSellerSend => "Paid, waiting for the seller to ship",
        TradeStatus::WaitBuyerConfirm => "Shipped, waiting for the buyer to confirm receipt",
        TradeStatus::RefundRequested => "Refund requested",
        TradeStatus::Dispute => "In dispute: the platform decides",
        TradeStatus::TradeFinished => "Finished",
        TradeStatus::TradeClosed => "Closed",
    }
}

/// A trade as a line of a list.
pub struct TradeLine {
    /// Its id.
    pub id: String,
    /// What is sold.
    pub subject: String,
    /// The seller's reference.
    pub out_trade_no: String,
    /// The price.
    pub amount: String,
    /// Refunded so far, if anything.
    pub refunded: String,
    /// Status in words.
    pub status: &'static str,
    /// The status code.
    pub code: &'static str,
    /// When it was opened.
    pub at: String,
    /// `buying` or `selling`, from the viewer's side.
    pub side: &'static str,
}

/// `trade` as a list line for `viewer`.
pub fn line(trade: &Trade, viewer: formica_core::Id, offset: i64) -> TradeLine {
    TradeLine {
        id: trade.id.to_string(),
        subject: trade.subject.clone(),
        out_trade_no: trade.out_trade_no.clone(),
        amount: view::money(&trade.amount),
        refunded: if trade.refunded.amount_minor == 0 {
            String::new()
        } else {
            view::money(&trade.refunded)
        },
        status: status_words(trade.status),
        code: trade.status.as_str(),
        at: view::time(trade.created_at, offset),
        side: if trade.seller_id == viewer {
            "selling"
        } else {
            "buying"
        },
    }
}

#[derive(Template)]
#[template(path = "wallet/trades.html")]
struct Trades {
    chrome: Chrome,
    role: String,
    trades: Vec<TradeLine>,
}

/// `?role=buyer|seller`.
#[derive(Debug, Deserialize)]
pub struct RoleFilter {
    #[serde(default)]
    role: String,
    done: Option<String>,
}

/// `GET /wallet/trades`.
pub async fn list(
    State(state): State<AppState>,
    Signed(ctx, caller): Signed,
    Query(filter): Query<RoleFilter>,
) -> Response {
    let role = Some(filter.role.clone()).filter(|r| r == "buyer" || r == "seller");
    let query = TradesQuery {
        role,
        status: None,
        out_trade_no: None,
        cursor: None,
        limit: Some(100),
    };
    let viewer = caller.0.id;
    let page = match formica_api::trade::list(State(state.clone()), caller, Query(query)).await {
        Ok(page) => page.0,
        Err(error) => return view::api_error(&ctx, &error),
    };
    let offset = state.engine().settings().day_offset_seconds;
    let page = Trades {
        chrome: Chrome::new(&ctx, "wallet", "Trades").notice(filter.done.as_deref()),
        role: filter.role,
        trades: page.data.iter().map(|t| line(t, viewer, offset)).collect(),
    };
    view::render(&ctx, StatusCode::OK, &page)
}

fn sell_form(ctx: &Ctx, subject: &str, amount: &str, buyer: &str) -> FormPage {
    FormPage::new(
        ctx,
        "wallet",
        "Sell with escrow",
        "/wallet/trades/new",
        "Offer trade",
        vec![
            Field::text("subject", "What you sell", subject),
            Field::text("amount", "Price", amount).hint("CNY"),
            Field::text("buyer", "Buyer", buyer)
                .hint("their phone or email; empty for anyone with the link")
                .optional(),
        ],
    )
    .lead(
        "The buyer's money is held by Formica until they confirm they received the goods; \
         then it is yours.",
    )
}

/// `GET /wallet/trades/new`.
pub async fn sell_page(Signed(ctx, _): Signed) -> Response {
    sell_form(&ctx, "", "", "").show(&ctx, None)
}

/// The offer form.
#[derive(Debug, Deserialize)]
pub struct SellForm {
    key: String,
    subject: String,
    amount: String,
    #[serde(default)]
    buyer: String,
}

/// `POST /wallet/trades/new`.
pub async fn sell(State(state): State<AppState>, form: Posted<SellForm>) -> Response {
    let Posted { ctx, value, digest } = form;
    let Some(caller) = ctx.caller() else {
        return crate::session::to_sign_in("/wallet/trades/new");
    };
    let buyer = value.buyer.trim();
    // The form's key is unique per rendering: a good out_trade_no for a person's offer.
    let out_trade_no = format!("W{}", value.key.get(..16).unwrap_or(&value.key));
    let body = Body {
        value: formica_api::trade::NewTrade {
            out_trade_no,
            subject: value.subject.clone(),
            amount: AmountInput {
                amount: value.amount.trim().to_owned(),
                currency: "CNY".to_owned(),
            },
            buyer: (!buyer.is_empty()).then(|| PersonRef {
                user_id: None,
                login: Some(buyer.to_owned()),
            }),
        },
        digest,
    };
    match formica_api::trade::create(State(state), caller, keyed(&value.key), body).await {
        Ok((_, trade)) => view::done(&format!("/wallet/trades/{}?done=offered", trade.0.id)),
        Err(error) => sell_form(&ctx, &value.subject, &value.amount, &value.buyer)
            .show(&ctx, Some((error.status, view::say(&error)))),
    }
}

#[derive(Template)]
#[template(path = "wallet/trade.html")]
struct TradePage {
    chrome: Chrome,
    /// Pocket funds the buyer can pay from.
    sources: Vec<(String, String)>,
    t: TradeLine,
    seller: bool,
    can_pay: bool,
    can_ship: bool,
    can_confirm: bool,
    can_ask_refund: bool,
    can_answer: bool,
    can_close: bool,
    tracking: String,
    request: Option<(String, String)>,
    deadline: String,
    /// Where the seller's steps post.
    steps: String,
    link: String,
    key: String,
    error: Option<String>,
}

async fn trade_page(
    state: &AppState,
    ctx: &Ctx,
    caller: &Caller,
    id: &str,
    done: Option<&str>,
    error: Option<(StatusCode, String)>,
) -> Response {
    let trade =
        match formica_api::trade::get_one(State(state.clone()), caller.clone(), Path(id.into()))
            .await
        {
            Ok(trade) => trade.0,
            Err(error) => return view::api_error(ctx, &error),
        };
    let viewer = caller.0.id;
    let seller = trade.seller_id == viewer;
    let buyer = trade.buyer_id == Some(viewer) || (!seller && trade.buyer_id.is_none());
    let offset = state.engine().settings().day_offset_seconds;
    let status = trade.status;
    let sources = if buyer && status == TradeStatus::WaitBuyerPay {
        crate::fund::sources(state, viewer, trade.amount.currency).await
    } else {
        Vec::new()
    };
    let page = TradePage {
        sources,
        chrome: Chrome::new(ctx, "wallet", trade.subject.clone()).notice(done),
        seller,
        can_pay: buyer && status == TradeStatus::WaitBuyerPay,
        can_ship: seller && status == TradeStatus::WaitSellerSend,
        // Receipt is confirmed once the goods are on their way, not before.
        can_confirm: buyer && status == TradeStatus::WaitBuyerConfirm,
        can_ask_refund: buyer
            && matches!(
                status,
                TradeStatus::WaitSellerSend | TradeStatus::WaitBuyerConfirm
            ),
        can_answer: seller && status == TradeStatus::RefundRequested,
        can_close: seller && status == TradeStatus::WaitBuyerPay,
        tracking: trade.tracking.clone().unwrap_or_default(),
        request: trade
            .refund_request
            .as_ref()
            .map(|r| (view::money(&r.amount), r.reason.clone())),
        deadline: trade
            .deadline
            .map(|at| view::time(at, offset))
            .unwrap_or_default(),
        link: format!("{}/wallet/trades/{}", ctx.base_url, trade.id),
        steps: format!("/wallet/trades/{}", trade.id),
        key: view::form_key(),
        t: line(&trade, viewer, offset),
        error: error.as_ref().map(|(_, e)| e.clone()),
    };
    let code = error.map_or(StatusCode::OK, |(code, _)| code);
    view::render(ctx, code, &page)
}

/// `GET /wallet/trades/{id}`; another person's trade is not found.
pub async fn show(
    State(state): State<AppState>,
    Signed(ctx, caller): Signed,
    Path(id): Path<String>,
    Query(filter): Query<RoleFilter>,
) -> Response {
    trade_page(&state, &ctx, &caller, &id, filter.done.as_deref(), None).await
}

/// Every step's form: the fields a step needs.
#[derive(Debug, Deserialize)]
pub struct StepForm {
    key: String,
    #[serde(default)]
    pin: String,
    #[serde(default)]
    tracking: String,
    #[serde(default)]
    amount: String,
    #[serde(default)]
    reason: String,
    /// `wallet`, or the id of a pocket fund to pay from.
    #[serde(default)]
    source: String,
}

/// Runs one step of trade `id` for `caller` through the API's handler for it: the trade after
/// it and the `?done=` notice to show, or None for a step there is none of.
pub async fn run_step(
    state: &AppState,
    caller: &Caller,
    id: &str,
    step: &str,
    value: &StepForm,
    digest: &str,
) -> Option<(Result<Trade, formica_api::ApiError>, &'static str)> {
    let (st, c, p, h) = (
        State(state.clone()),
        caller.clone(),
        Path(id.to_owned()),
        keyed(&value.key),
    );
    let body = |v| Body {
        value: v,
        digest: digest.to_owned(),
    };
    let pin = || PinConfirmation {
        pin: value.pin.clone(),
    };
    let (result, done) = match step {
        "pay" => {
            // The wallet, a pocket fund the form names, or the credit line.
            let pay = Body {
                value: formica_api::trade::PayInput {
                    pin: value.pin.clone(),
                    fund_id: value.source.parse().ok(),
                    credit_line: value.source == "credit",
                },
                digest: digest.to_owned(),
            };
            (formica_api::trade::pay(st, c, p, h, pay).await, "paid")
        }
        "confirm" => (
            formica_api::trade::confirm(st, c, p, h, body(pin())).await,
            "confirmed",
        ),
        "ship" => {
            let shipment = Body {
                value: Shipment {
                    tracking: value.tracking.clone(),
                },
                digest: digest.to_owned(),
            };
            (
                formica_api::trade::ship(st, c, p, h, shipment).await,
                "shipped",
            )
        }
        "refund" => {
            let currency = current_currency(state, caller, id).await;
            let ask = Body {
                value: RefundAsk {
                    amount: AmountInput {
                        amount: value.amount.trim().to_owned(),
                        currency,
                    },
                    reason: value.reason.clone(),
                },
                digest: digest.to_owned(),
            };
            (
                formica_api::trade::request_refund(st, c, p, h, ask).await,
                "refund-asked",
            )
        }
        "agree" | "refuse" | "close" => {
            let empty = Body {
                value: Empty::default(),
                digest: digest.to_owned(),
            };
            match step {
                "agree" => (
                    formica_api::trade::agree_refund(st, c, p, h, empty).await,
                    "answered",
                ),
                "refuse" => (
                    formica_api::trade::refuse_refund(st, c, p, h, empty).await,
                    "answered",
                ),
                _ => (
                    formica_api::trade::close(st, c, p, h, empty).await,
                    "closed",
                ),
            }
        }
        _ => return None,
    };
    Some((result.map(|trade| trade.0), done))
}

/// `POST /wallet/trades/{id}/{step}`.
pub async fn step(
    State(state): State<AppState>,
    Path((id, step)): Path<(String, String)>,
    form: Posted<StepForm>,
) -> Response {
    let Posted { ctx, value, digest } = form;
    let Some(caller) = ctx.caller() else {
        return crate::session::to_sign_in(&format!("/wallet/trades/{id}"));
    };
    let Some((result, done)) = run_step(&state, &caller, &id, &step, &value, &digest).await else {
        return view::not_found(&ctx);
    };
    match result {
        Ok(trade) => view::done(&format!("/wallet/trades/{}?done={done}", trade.id)),
        Err(error) if error.status == StatusCode::NOT_FOUND && error.field.is_none() => {
            view::not_found(&ctx)
        }
        Err(error) => {
            let said = (error.status, view::say(&error));
            trade_page(&state, &ctx, &caller, &id, None, Some(said)).await
        }
    }
}

/// The trade's currency (what a refund is asked in).
async fn current_currency(state: &AppState, caller: &Caller, id: &str) -> String {
    formica_api::trade::get_one(State(state.clone()), caller.clone(), Path(id.to_owned()))
        .await
        .map_or_else(
            |_| "CNY".to_owned(),
            |t| t.0.amount.currency.code().to_owned(),
        )
}
