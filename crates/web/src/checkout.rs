//! The hosted checkout (gateway §7) and the shop's counter page. `alipay.trade.page.pay` and
//! `wap.pay` send the buyer's browser to `/checkout/{trade}`; a precreated QR code opens
//! `/qr/{trade}`. The buyer sees the shop, subject and amount, pays with the PIN (signing in on
//! the same form if the browser has no session), and is sent back to the shop's `return_url`
//! with signed parameters. A shop's printed counter QR code opens `/pay/{merchant}`, where the
//! buyer types the amount.

use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use formica_api::AppState;
use formica_api::auth;
use formica_core::merchant::{Merchant, MerchantCommand};
use formica_core::trade::{NewTrade, Trade, TradeCommand, TradeStatus};
use formica_core::{Id, Money, Outcome, ProductCommand};
use formica_store::people::{Secret, User};
use serde::Deserialize;

use crate::form::{Field, FormPage};
use crate::session::{Ctx, Posted, Signed};
use crate::view::{self, Chrome};

#[derive(Template)]
#[template(path = "checkout.html")]
struct Checkout {
    chrome: Chrome,
    /// A payment that is over is shown only to its buyer and its shop (trade ids can be
    /// guessed; what someone paid is theirs).
    hidden: bool,
    id: String,
    shop: String,
    subject: String,
    amount: String,
    open: bool,
    closed: bool,
    signed_in: bool,
    /// Pocket funds the signed-in buyer can pay from.
    sources: Vec<(String, String)>,
    login: String,
    key: String,
    error: Option<String>,
}

async fn merchant(state: &AppState, id: Id) -> Option<Merchant> {
    state
        .pool()
        .read(move |sql| formica_store::merchant::merchant(sql, id))
        .await
        .ok()
        .flatten()
}

async fn page(
    state: &AppState,
    ctx: &Ctx,
    trade: &Trade,
    login: &str,
    error: Option<(StatusCode, String)>,
) -> Response {
    let merchant = merchant(state, trade.seller_id).await;
    let open = trade.status == TradeStatus::WaitBuyerPay;
    let viewer = ctx.user.as_ref().map(|u| u.id);
    let party = viewer.is_some()
        && (viewer == trade.buyer_id || viewer == merchant.as_ref().map(|m| m.owner_id));
    let shop = merchant.map_or_else(|| "a Formica user".to_owned(), |m| m.name);
    let sources = match viewer {
        Some(viewer) if open => crate::fund::sources(state, viewer, trade.amount.currency).await,
        _ => Vec::new(),
    };
    let page = Checkout {
        sources,
        chrome: Chrome::new(ctx, "checkout", format!("Pay {shop}")),
        hidden: !open && !party,
        id: trade.id.to_string(),
        shop,
        subject: trade.subject.clone(),
        amount: view::money(&trade.amount),
        open: trade.status == TradeStatus::WaitBuyerPay,
        closed: trade.status == TradeStatus::TradeClosed,
        signed_in: ctx.user.is_some(),
        login: login.to_owned(),
        key: view::form_key(),
        error: error.as_ref().map(|(_, e)| e.clone()),
    };
    view::render(ctx, error.map_or(StatusCode::OK, |(s, _)| s), &page)
}

/// `GET /qr/{trade}` and `GET /checkout/{trade}`.
pub async fn show(State(state): State<AppState>, ctx: Ctx, Path(id): Path<String>) -> Response {
    match formica_api::gateway::checkout::trade(&state, &id).await {
        Some(trade) => page(&state, &ctx, &trade, "", None).await,
        None => view::not_found(&ctx),
    }
}

/// The checkout form: the PIN, and the sign-in when the browser has no session.
#[derive(Debug, Deserialize)]
pub struct PayForm {
    key: String,
    #[serde(default)]
    login: String,
    #[serde(default)]
    password: String,
    pin: String,
    /// `wallet`, or a pocket fund's id.
    #[serde(default)]
    source: String,
}

/// Who pays: the session's person, or the one the form signs in.
async fn payer(state: &AppState, ctx: &Ctx, form: &PayForm) -> Result<User, String> {
    if let Some(user) = &ctx.user {
        return Ok(user.clone());
    }
    let wrong = || "Wrong phone, email or password.".to_owned();
    let login = formica_api::normalize_login(&form.login).map_err(|_| wrong())?;
    let user = state
        .pool()
        .read(move |sql| formica_store::people::user_by_login(sql, &login))
        .await
        .map_err(|e| view::say(&e))?
        .ok_or_else(wrong)?;
    auth::check_secret(state, &user, Secret::Password, &form.password)
        .await
        .map_err(|e| view::say(&e))?;
    Ok(user)
}

/// `POST /checkout/{trade}`: pays and returns to the shop.
pub async fn pay(
    State(state): State<AppState>,
    Path(id): Path<String>,
    form: Posted<PayForm>,
) -> Response {
    let Posted { ctx, value, digest } = form;
    let Some(trade) = formica_api::gateway::checkout::trade(&state, &id).await else {
        return view::not_found(&ctx);
    };
    let paid = async {
        let user = payer(&state, &ctx, &value).await?;
        auth::check_secret(&state, &user, Secret::Pin, &value.pin)
            .await
            .map_err(|e| view::say(&e))?;
        let command = match value.source.parse() {
            Ok(fund_id) => ProductCommand::Fund(formica_core::fund::FundCommand::PayTrade {
                fund_id,
                trade_id: trade.id,
                buyer_id: user.id,
            }),
            Err(_) if value.source == "credit" => {
                ProductCommand::CreditLine(formica_core::credit_line::CreditLineCommand::PayTrade {
                    trade_id: trade.id,
                    buyer_id: user.id,
                })
            }
            Err(_) => ProductCommand::Trade(TradeCommand::Pay {
                trade_id: trade.id,
                buyer_id: user.id,
            }),
        };
        let fingerprint = format!("POST /checkout/{} {digest}", trade.id);
        let key = crate::session::form_key(&value.key).map_err(|e| view::say(&e))?;
        match formica_api::idempotency::submit(&state, user.id, Some(key), fingerprint, command)
            .await
        {
            Ok(Outcome::Trade(paid)) => Ok(paid),
            Ok(other) => Err(format!("Unexpected answer: {other:?}")),
            Err(error) => Err(view::say(&error)),
        }
    };
    match paid.await {
        Ok(paid) => match formica_api::gateway::checkout::return_location(&state, &paid).await {
            Some(location) => view::done(&location),
            None => receipt(&ctx, &paid, &state).await,
        },
        Err(error) => {
            page(
                &state,
                &ctx,
                &trade,
                &value.login,
                Some((StatusCode::UNPROCESSABLE_ENTITY, error)),
            )
            .await
        }
    }
}

#[derive(Template)]
#[template(path = "paid.html")]
struct Paid {
    chrome: Chrome,
    shop: String,
    subject: String,
    amount: String,
}

async fn receipt(ctx: &Ctx, trade: &Trade, state: &AppState) -> Response {
    let shop = merchant(state, trade.seller_id)
        .await
        .map_or_else(|| "the seller".to_owned(), |m| m.name);
    let page = Paid {
        chrome: Chrome::new(ctx, "checkout", "Paid"),
        shop,
        subject: trade.subject.clone(),
        amount: view::money(&trade.amount),
    };
    view::render(ctx, StatusCode::OK, &page)
}

fn counter_form(ctx: &Ctx, shop: &Merchant, amount: &str) -> FormPage {
    FormPage::new(
        ctx,
        "checkout",
        format!("Pay {}", shop.name),
        format!("/pay/{}", shop.id),
        "Pay",
        vec![
            Field::text("amount", "Amount", amount).hint(shop.currency.code()),
            Field::pin(),
        ],
    )
    .lead(format!("{} · {}", shop.category, shop.country))
}

/// `GET /pay/{merchant}`: the counter's printed QR code. Paying needs a session.
pub async fn counter(
    State(state): State<AppState>,
    Signed(ctx, _): Signed,
    Path(id): Path<String>,
) -> Response {
    let shop = match id.parse() {
        Ok(id) => merchant(&state, id).await,
        Err(_) => None,
    };
    match shop {
        Some(shop) => counter_form(&ctx, &shop, "").show(&ctx, None),
        None => view::not_found(&ctx),
    }
}

/// The counter form.
#[derive(Debug, Deserialize)]
pub struct CounterForm {
    key: String,
    amount: String,
    pin: String,
}

/// `POST /pay/{merchant}`: a trade for the typed amount, paid in the same command.
pub async fn counter_pay(
    State(state): State<AppState>,
    Path(id): Path<String>,
    form: Posted<CounterForm>,
) -> Response {
    let Posted { ctx, value, digest } = form;
    let Some(caller) = ctx.caller() else {
        return crate::session::to_sign_in(&format!("/pay/{id}"));
    };
    let shop = match id.parse() {
        Ok(id) => merchant(&state, id).await,
        Err(_) => None,
    };
    let Some(shop) = shop else {
        return view::not_found(&ctx);
    };
    let charged = async {
        let key = crate::session::form_key(&value.key).map_err(|e| view::say(&e))?;
        let amount = Money::parse(value.amount.trim(), shop.currency)
            .map_err(|e| view::say(&formica_api::error::money_error(e, "amount")))?;
        if amount.amount_minor == 0 {
            return Err("Amount: must be above zero.".to_owned());
        }
        formica_api::wallet::check_pin(&state, &caller, &value.pin)
            .await
            .map_err(|e| view::say(&e))?;
        let trade = NewTrade {
            seller_id: shop.id,
            buyer_id: Some(caller.0.id),
            // Unique per form rendering, so a double submit pays once.
            out_trade_no: format!("C{}", value.key.get(..16).unwrap_or(&value.key)),
            subject: format!("Payment to {}", shop.name),
            amount,
            escrow: false,
            app_id: None,
            notify_url: None,
            return_url: None,
            passback_params: None,
            pay_by: None,
        };
        let command = ProductCommand::Merchant(MerchantCommand::Charge {
            trade: Box::new(trade),
            buyer_id: caller.0.id,
            code: None,
        });
        let fingerprint = format!("POST /pay/{} {digest}", shop.id);
        match formica_api::idempotency::submit(&state, caller.0.id, Some(key), fingerprint, command)
            .await
        {
            Ok(Outcome::Trade(trade)) => Ok(trade),
            Ok(other) => Err(format!("Unexpected answer: {other:?}")),
            Err(error) => Err(view::say(&error)),
        }
    };
    match charged.await {
        Ok(trade) => receipt(&ctx, &trade, &state).await,
        Err(error) => counter_form(&ctx, &shop, &value.amount)
            .show(&ctx, Some((StatusCode::UNPROCESSABLE_ENTITY, error))),
    }
}
