//! The merchant console: open a shop; its balance and trades (search by out_trade_no, status
//! and date), a trade's refunds; the counter's printable static QR code and a dynamic one for
//! an amount; settlements and daily statements as CSV; gateway apps and keys; and the logs of
//! notifications and webhooks sent. A shop is only its owner's (and operators'): anyone else's
//! id shows not-found.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use formica_api::AppState;
use formica_api::auth::Caller;
use formica_api::body::Body;
use formica_api::merchant::MerchantTradesQuery;
use formica_api::wallet::AmountInput;
use formica_core::merchant::{Merchant, merchant_account};
use formica_core::trade::{Trade, TradeStatus};
use formica_core::{Currency, Money};
use serde::Deserialize;

use crate::form::{Field, FormPage};
use crate::session::{Ctx, Posted, Signed};
use crate::svg;
use crate::trade::{StepForm, TradeLine, line, run_step};
use crate::view::{self, Chrome};

/// The shop a console page is about.
pub struct Shop {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) currency: Currency,
}

/// The caller's shop `id`, or the response to give instead (not found for anyone else's).
pub(crate) async fn shop(
    state: &AppState,
    ctx: &Ctx,
    caller: &Caller,
    id: &str,
) -> Result<Merchant, Response> {
    formica_api::merchant::get_one(State(state.clone()), caller.clone(), Path(id.to_owned()))
        .await
        .map(|m| m.0)
        .map_err(|error| view::api_error(ctx, &error))
}

pub(crate) fn nav(merchant: &Merchant) -> Shop {
    Shop {
        id: merchant.id.to_string(),
        name: merchant.name.clone(),
        currency: merchant.currency,
    }
}

#[derive(Template)]
#[template(path = "merchant/list.html")]
struct ShopList {
    chrome: Chrome,
    shops: Vec<(String, String, String)>,
    has_cards: bool,
}

/// `?done=`.
#[derive(Debug, Default, Deserialize)]
pub struct Done {
    done: Option<String>,
}

/// `GET /merchant`: the caller's shops.
pub async fn list(
    State(state): State<AppState>,
    Signed(ctx, caller): Signed,
    Query(done): Query<Done>,
) -> Response {
    let shops = match formica_api::merchant::list(State(state.clone()), caller.clone()).await {
        Ok(shops) => shops.0,
        Err(error) => return view::api_error(&ctx, &error),
    };
    let cards = formica_api::wallet::cards(State(state), caller)
        .await
        .map(|c| c.0)
        .unwrap_or_default();
    let page = ShopList {
        chrome: Chrome::new(&ctx, "merchant", "Shops").notice(done.done.as_deref()),
        shops: shops
            .iter()
            .map(|m| (m.id.to_string(), m.name.clone(), m.category.clone()))
            .collect(),
        has_cards: !cards.is_empty(),
    };
    view::render(&ctx, StatusCode::OK, &page)
}

async fn open_form(state: &AppState, ctx: &Ctx, caller: &Caller) -> FormPage {
    let cards = formica_api::wallet::cards(State(state.clone()), caller.clone())
        .await
        .map(|c| c.0)
        .unwrap_or_default()
        .iter()
        .map(|c| (c.id.to_string(), format!("{} ·· {}", c.bank, c.last4)))
        .collect();
    let currencies = Currency::all()
        .iter()
        .map(|c| (c.code().to_owned(), c.code().to_owned()))
        .collect();
    FormPage::new(
        ctx,
        "merchant",
        "Open a shop",
        "/merchant/new",
        "Open shop",
        vec![
            Field::text("name", "Shop name", "").hint("what buyers see"),
            Field::text("contact", "Contact", "").hint("phone or email"),
            Field::text("category", "What it sells", ""),
            Field::text("country", "Country", "CN").hint("two letters"),
            Field::select("currency", "Currency", "CNY", currencies),
            Field::select("card_id", "Settlement card", "", cards),
        ],
    )
    .lead("Payments are settled to your card each day, less the fee.")
}

/// `GET /merchant/new`.
pub async fn open_page(State(state): State<AppState>, Signed(ctx, caller): Signed) -> Response {
    open_form(&state, &ctx, &caller).await.show(&ctx, None)
}

/// The shop form.
#[derive(Debug, Deserialize)]
pub struct OpenForm {
    name: String,
    contact: String,
    category: String,
    country: String,
    currency: String,
    card_id: String,
}

/// `POST /merchant/new`.
pub async fn open(State(state): State<AppState>, form: Posted<OpenForm>) -> Response {
    let Posted { ctx, value, digest } = form;
    let Some(caller) = ctx.caller() else {
        return crate::session::to_sign_in("/merchant/new");
    };
    let Ok(card_id) = value.card_id.parse() else {
        let error = formica_api::ApiError::not_found("card_not_found").field("card_id");
        return open_form(&state, &ctx, &caller)
            .await
            .show(&ctx, Some((error.status, view::say(&error))));
    };
    let body = Body {
        value: formica_api::merchant::NewMerchant {
            name: value.name,
            contact: value.contact,
            category: value.category,
            country: value.country.trim().to_uppercase(),
            currency: value.currency,
            card_id,
        },
        digest,
    };
    match formica_api::merchant::create(State(state.clone()), caller.clone(), body).await {
        Ok((_, merchant)) => view::done(&format!("/merchant/{}?done=shop", merchant.0.id)),
        Err(error) => open_form(&state, &ctx, &caller)
            .await
            .show(&ctx, Some((error.status, view::say(&error)))),
    }
}

#[derive(Template)]
#[template(path = "merchant/home.html")]
struct ShopHome {
    chrome: Chrome,
    shop: Shop,
    available: String,
    fee: String,
    trades: Vec<TradeLine>,
}

/// The shop's balance: paid in, not yet settled.
async fn balance(state: &AppState, merchant: &Merchant) -> Money {
    let account = merchant_account(merchant.id, merchant.currency);
    let found = state
        .pool()
        .with_store(move |store| store.account(account))
        .await
        .ok()
        .flatten();
    let minor = found.map_or(0, |a| {
        u64::try_from(a.available().max(0)).unwrap_or(u64::MAX)
    });
    Money::new(minor, merchant.currency)
}

async fn shop_trades(
    state: &AppState,
    caller: &Caller,
    merchant: &Merchant,
    status: Option<TradeStatus>,
    out_trade_no: Option<String>,
    limit: u32,
) -> Result<Vec<Trade>, formica_api::ApiError> {
    let query = MerchantTradesQuery {
        status,
        out_trade_no,
        cursor: None,
        limit: Some(limit),
    };
    formica_api::merchant::trades(
        State(state.clone()),
        caller.clone(),
        Path(merchant.id.to_string()),
        Query(query),
    )
    .await
    .map(|page| page.0.data)
}

/// `GET /merchant/{id}`.
pub async fn home(
    State(state): State<AppState>,
    Signed(ctx, caller): Signed,
    Path(id): Path<String>,
    Query(done): Query<Done>,
) -> Response {
    let merchant = match shop(&state, &ctx, &caller, &id).await {
        Ok(m) => m,
        Err(response) => return response,
    };
    let trades = match shop_trades(&state, &caller, &merchant, None, None, 10).await {
        Ok(trades) => trades,
        Err(error) => return view::api_error(&ctx, &error),
    };
    let offset = state.engine().settings().day_offset_seconds;
    let page = ShopHome {
        chrome: Chrome::new(&ctx, "merchant", merchant.name.clone()).notice(done.done.as_deref()),
        available: view::money(&balance(&state, &merchant).await),
        fee: format!("{:.2}%", f64::from(merchant.fee_ppm) / 10_000.0),
        trades: trades
            .iter()
            .map(|t| line(t, merchant.id, offset))
            .collect(),
        shop: nav(&merchant),
    };
    view::render(&ctx, StatusCode::OK, &page)
}

/// `?out_trade_no=&status=&from=&to=`.
#[derive(Debug, Default, Deserialize)]
pub struct TradeSearch {
    #[serde(default)]
    out_trade_no: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
}

#[derive(Template)]
#[template(path = "merchant/trades.html")]
struct ShopTrades {
    chrome: Chrome,
    shop: Shop,
    search: TradeSearch,
    statuses: Vec<(String, String)>,
    trades: Vec<TradeLine>,
}

/// `GET /merchant/{id}/trades`: search by out_trade_no, status and day.
pub async fn trades(
    State(state): State<AppState>,
    Signed(ctx, caller): Signed,
    Path(id): Path<String>,
    Query(search): Query<TradeSearch>,
) -> Response {
    let merchant = match shop(&state, &ctx, &caller, &id).await {
        Ok(m) => m,
        Err(response) => return response,
    };
    let status = TradeStatus::ALL
        .into_iter()
        .find(|s| s.as_str() == search.status);
    let out_trade_no = Some(search.out_trade_no.trim().to_owned()).filter(|n| !n.is_empty());
    let found = match shop_trades(&state, &caller, &merchant, status, out_trade_no, 100).await {
        Ok(trades) => trades,
        Err(error) => return view::api_error(&ctx, &error),
    };
    let offset = state.engine().settings().day_offset_seconds;
    // Days compare as text: `yyyy-MM-dd` sorts as dates do.
    let day = |t: &Trade| view::time(t.created_at, offset)[..10].to_owned();
    let trades = found
        .iter()
        .filter(|t| search.from.is_empty() || day(t) >= search.from)
        .filter(|t| search.to.is_empty() || day(t) <= search.to)
        .map(|t| line(t, merchant.id, offset))
        .collect();
    let mut statuses = vec![(String::new(), "Any status".to_owned())];
    statuses.extend(TradeStatus::ALL.iter().map(|s| {
        (
            s.as_str().to_owned(),
            crate::trade::status_words(*s).to_owned(),
        )
    }));
    let page = ShopTrades {
        chrome: Chrome::new(&ctx, "merchant", format!("{} · trades", merchant.name)),
        shop: nav(&merchant),
        search,
        statuses,
        trades,
    };
    view::render(&ctx, StatusCode::OK, &page)
}

#[derive(Template)]
#[template(path = "merchant/trade.html")]
struct ShopTrade {
    chrome: Chrome,
    shop: Shop,
    t: TradeLine,
    fee: String,
    left: String,
    refundable: bool,
    can_ship: bool,
    can_answer: bool,
    request: Option<(String, String)>,
    /// Where the seller's steps post.
    steps: String,
    refunds: Vec<(String, String, String, String)>,
    key: String,
    error: Option<String>,
}

async fn trade_page(
    state: &AppState,
    ctx: &Ctx,
    caller: &Caller,
    id: &str,
    trade_id: &str,
    done: Option<&str>,
    error: Option<(StatusCode, String)>,
) -> Response {
    let merchant = match shop(state, ctx, caller, id).await {
        Ok(m) => m,
        Err(response) => return response,
    };
    let Ok(trade_id) = trade_id.parse::<formica_core::Id>() else {
        return view::not_found(ctx);
    };
    let trade = state
        .pool()
        .read(move |sql| formica_store::trade::trade(sql, trade_id))
        .await
        .ok()
        .flatten()
        .filter(|t| t.seller_id == merchant.id);
    let Some(trade) = trade else {
        return view::not_found(ctx);
    };
    let offset = state.engine().settings().day_offset_seconds;
    let left = Money::new(
        trade.amount.amount_minor - trade.refunded.amount_minor,
        trade.amount.currency,
    );
    let page = ShopTrade {
        chrome: Chrome::new(ctx, "merchant", trade.subject.clone()).notice(done),
        fee: trade.fee.map(|f| view::money(&f)).unwrap_or_default(),
        left: view::money(&left),
        // As the core refunds: a paid trade within the refund window, or an escrow trade
        // whose money is still held.
        refundable: left.amount_minor > 0
            && match trade.status {
                TradeStatus::TradeSuccess => trade.paid_at.is_some_and(|paid| {
                    state.now() < paid.saturating_add(state.engine().settings().refund_window_ns)
                }),
                TradeStatus::WaitSellerSend | TradeStatus::WaitBuyerConfirm => true,
                _ => false,
            },
        can_ship: trade.status == TradeStatus::WaitSellerSend,
        can_answer: trade.status == TradeStatus::RefundRequested,
        steps: format!("/merchant/{}/trades/{}/escrow", merchant.id, trade.id),
        request: trade
            .refund_request
            .as_ref()
            .map(|r| (view::money(&r.amount), r.reason.clone())),
        refunds: trade
            .refunds
            .iter()
            .map(|r| {
                (
                    r.out_request_no.clone(),
                    view::money(&r.amount),
                    r.reason.clone(),
                    view::time(r.at, offset),
                )
            })
            .collect(),
        key: view::form_key(),
        t: line(&trade, merchant.id, offset),
        shop: nav(&merchant),
        error: error.as_ref().map(|(_, e)| e.clone()),
    };
    view::render(ctx, error.map_or(StatusCode::OK, |(s, _)| s), &page)
}

/// `GET /merchant/{id}/trades/{trade}`.
pub async fn trade(
    State(state): State<AppState>,
    Signed(ctx, caller): Signed,
    Path((id, trade)): Path<(String, String)>,
    Query(done): Query<Done>,
) -> Response {
    trade_page(
        &state,
        &ctx,
        &caller,
        &id,
        &trade,
        done.done.as_deref(),
        None,
    )
    .await
}

/// The refund form.
#[derive(Debug, Deserialize)]
pub struct RefundForm {
    key: String,
    amount: String,
    #[serde(default)]
    reason: String,
}

/// `POST /merchant/{id}/trades/{trade}/refund`.
pub async fn refund(
    State(state): State<AppState>,
    Path((id, trade)): Path<(String, String)>,
    form: Posted<RefundForm>,
) -> Response {
    let Posted { ctx, value, digest } = form;
    let Some(caller) = ctx.caller() else {
        return crate::session::to_sign_in(&format!("/merchant/{id}/trades/{trade}"));
    };
    let merchant = match shop(&state, &ctx, &caller, &id).await {
        Ok(m) => m,
        Err(response) => return response,
    };
    let body = Body {
        value: formica_api::merchant::RefundInput {
            // The rendering's key: a double submit refunds once.
            out_request_no: format!("R{}", value.key.get(..16).unwrap_or(&value.key)),
            amount: AmountInput {
                amount: value.amount.trim().to_owned(),
                currency: merchant.currency.code().to_owned(),
            },
            reason: value.reason,
        },
        digest,
    };
    let path = Path((id.clone(), trade.clone()));
    match formica_api::merchant::refund(State(state.clone()), caller.clone(), path, body).await {
        Ok(_) => view::done(&format!("/merchant/{id}/trades/{trade}?done=refunded")),
        Err(error) => {
            let said = Some((error.status, view::say(&error)));
            trade_page(&state, &ctx, &caller, &id, &trade, None, said).await
        }
    }
}

/// `POST /merchant/{id}/trades/{trade}/escrow/{step}`: a shop's escrow trade (an app with
/// escrow) shipped, or a buyer's refund request agreed or refused, as a seller does in the
/// wallet.
pub async fn escrow_step(
    State(state): State<AppState>,
    Path((id, trade, step)): Path<(String, String, String)>,
    form: Posted<StepForm>,
) -> Response {
    let Posted { ctx, value, digest } = form;
    let Some(caller) = ctx.caller() else {
        return crate::session::to_sign_in(&format!("/merchant/{id}/trades/{trade}"));
    };
    let merchant = match shop(&state, &ctx, &caller, &id).await {
        Ok(m) => m,
        Err(response) => return response,
    };
    // Only this shop's trades (the API lets the owner act for any shop of theirs), and only
    // a seller's steps.
    let Ok(trade_id) = trade.parse::<formica_core::Id>() else {
        return view::not_found(&ctx);
    };
    let ours = state
        .pool()
        .read(move |sql| formica_store::trade::trade(sql, trade_id))
        .await
        .ok()
        .flatten()
        .is_some_and(|t| t.seller_id == merchant.id);
    if !ours || !matches!(step.as_str(), "ship" | "agree" | "refuse") {
        return view::not_found(&ctx);
    }
    let ran = run_step(&state, &caller, &trade, &step, &value, &digest).await;
    match ran {
        Some((Ok(_), done)) => view::done(&format!("/merchant/{id}/trades/{trade}?done={done}")),
        Some((Err(error), _)) => {
            let said = Some((error.status, view::say(&error)));
            trade_page(&state, &ctx, &caller, &id, &trade, None, said).await
        }
        None => view::not_found(&ctx),
    }
}

#[derive(Template)]
#[template(path = "merchant/qr.html")]
struct QrPage {
    chrome: Chrome,
    shop: Shop,
    counter_url: String,
    counter_qr: String,
    dynamic: Option<(String, String, String)>,
    key: String,
    error: Option<String>,
}

async fn qr_page(
    state: &AppState,
    ctx: &Ctx,
    caller: &Caller,
    id: &str,
    dynamic: Option<(String, String, String)>,
    error: Option<(StatusCode, String)>,
) -> Response {
    let merchant = match shop(state, ctx, caller, id).await {
        Ok(m) => m,
        Err(response) => return response,
    };
    let counter_url = format!("{}/pay/{}", ctx.base_url, merchant.id);
    let page = QrPage {
        chrome: Chrome::new(ctx, "merchant", format!("{} · QR codes", merchant.name)),
        counter_qr: svg::qr(&counter_url),
        counter_url,
        shop: nav(&merchant),
        dynamic,
        key: view::form_key(),
        error: error.as_ref().map(|(_, e)| e.clone()),
    };
    view::render(ctx, error.map_or(StatusCode::OK, |(s, _)| s), &page)
}

/// `?trade=`: the trade whose QR code to show.
#[derive(Debug, Default, Deserialize)]
pub struct QrTrade {
    trade: Option<String>,
}

/// `GET /merchant/{id}/qr`: the counter's code to print, a form for an amount's code, and
/// (with `?trade=`) the code of a trade the form made.
pub async fn qr(
    State(state): State<AppState>,
    Signed(ctx, caller): Signed,
    Path(id): Path<String>,
    Query(shown): Query<QrTrade>,
) -> Response {
    let merchant = match shop(&state, &ctx, &caller, &id).await {
        Ok(m) => m,
        Err(response) => return response,
    };
    let trade = match shown.trade.as_deref().map(str::parse::<formica_core::Id>) {
        Some(Ok(trade_id)) => state
            .pool()
            .read(move |sql| formica_store::trade::trade(sql, trade_id))
            .await
            .ok()
            .flatten()
            .filter(|t| t.seller_id == merchant.id),
        _ => None,
    };
    let dynamic = trade.map(|t| {
        let url = format!("{}/qr/{}", ctx.base_url, t.id);
        let label = match t.status {
            TradeStatus::WaitBuyerPay => view::money(&t.amount),
            status => format!(
                "{} · {}",
                view::money(&t.amount),
                crate::trade::status_words(status)
            ),
        };
        (label, svg::qr(&url), url)
    });
    qr_page(&state, &ctx, &caller, &id, dynamic, None).await
}

/// The dynamic QR form.
#[derive(Debug, Deserialize)]
pub struct QrForm {
    key: String,
    amount: String,
    #[serde(default)]
    subject: String,
}

/// `POST /merchant/{id}/qr`: a trade for the amount, and its QR code.
pub async fn dynamic_qr(
    State(state): State<AppState>,
    Path(id): Path<String>,
    form: Posted<QrForm>,
) -> Response {
    let Posted { ctx, value, digest } = form;
    let Some(caller) = ctx.caller() else {
        return crate::session::to_sign_in(&format!("/merchant/{id}/qr"));
    };
    let merchant = match shop(&state, &ctx, &caller, &id).await {
        Ok(m) => m,
        Err(response) => return response,
    };
    let subject = Some(value.subject.trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| format!("Payment to {}", merchant.name));
    let out_trade_no = format!("Q{}", value.key.get(..16).unwrap_or(&value.key));
    let body = Body {
        value: formica_api::merchant::NewShopTrade {
            out_trade_no: out_trade_no.clone(),
            subject,
            amount: AmountInput {
                amount: value.amount.trim().to_owned(),
                currency: merchant.currency.code().to_owned(),
            },
        },
        digest,
    };
    let created = formica_api::merchant::create_trade(
        State(state.clone()),
        caller.clone(),
        Path(id.clone()),
        body,
    )
    .await;
    match created {
        // Shown by a page of its own, so that a reload does not post again.
        Ok((_, shop_trade)) => view::done(&format!(
            "/merchant/{id}/qr?trade={}",
            shop_trade.0.trade.id
        )),
        // A double submit of the same form: the first one's trade.
        Err(error) if error.code == "duplicate_out_trade_no" => {
            match shop_trades(&state, &caller, &merchant, None, Some(out_trade_no), 1).await {
                Ok(found) if !found.is_empty() => {
                    view::done(&format!("/merchant/{id}/qr?trade={}", found[0].id))
                }
                _ => {
                    let said = Some((error.status, view::say(&error)));
                    qr_page(&state, &ctx, &caller, &id, None, said).await
                }
            }
        }
        Err(error) => {
            let said = Some((error.status, view::say(&error)));
            qr_page(&state, &ctx, &caller, &id, None, said).await
        }
    }
}

#[derive(Template)]
#[template(path = "merchant/settlements.html")]
struct Settlements {
    chrome: Chrome,
    shop: Shop,
    rows: Vec<[String; 8]>,
    today: String,
}

/// `GET /merchant/{id}/settlements`: settlements, and statements to download.
pub async fn settlements(
    State(state): State<AppState>,
    Signed(ctx, caller): Signed,
    Path(id): Path<String>,
) -> Response {
    let merchant = match shop(&state, &ctx, &caller, &id).await {
        Ok(m) => m,
        Err(response) => return response,
    };
    let list =
        match formica_api::merchant::settlements(State(state.clone()), caller, Path(id.clone()))
            .await
        {
            Ok(list) => list.0,
            Err(error) => return view::api_error(&ctx, &error),
        };
    let offset = state.engine().settings().day_offset_seconds;
    let day = |d: i64| formica_api::gateway::time::format_day(d);
    let rows = list
        .iter()
        .map(|s| {
            let s_ = &s.settlement;
            [
                if s_.to_day - s_.from_day > 1 {
                    format!("{} – {}", day(s_.from_day), day(s_.to_day - 1))
                } else {
                    day(s_.from_day)
                },
                view::money(&s_.payments),
                view::money(&s_.refunds),
                view::money(&s_.fees),
                view::money(&s_.transfers),
                view::money(&s_.amount),
                s.status.clone(),
                view::time(s_.created_at, offset),
            ]
        })
        .collect();
    let page = Settlements {
        chrome: Chrome::new(&ctx, "merchant", format!("{} · settlements", merchant.name)),
        shop: nav(&merchant),
        rows,
        today: view::time(state.now(), offset)[..10].to_owned(),
    };
    view::render(&ctx, StatusCode::OK, &page)
}

/// `?date=yyyy-MM-dd|yyyy-MM`.
#[derive(Debug, Deserialize)]
pub struct StatementDate {
    date: String,
}

/// `GET /merchant/{id}/statement.csv?date=`: the day's or month's statement, as a download.
pub async fn statement(
    State(state): State<AppState>,
    Signed(ctx, caller): Signed,
    Path(id): Path<String>,
    Query(date): Query<StatementDate>,
) -> Response {
    let query = formica_api::merchant::StatementQuery {
        date: date.date.clone(),
    };
    match formica_api::merchant::statement(State(state), caller, Path(id.clone()), Query(query))
        .await
    {
        Ok(mut response) => {
            let name = format!("attachment; filename=\"statement-{id}-{}.csv\"", date.date);
            if let Ok(value) = header::HeaderValue::from_str(&name) {
                response
                    .headers_mut()
                    .insert(header::CONTENT_DISPOSITION, value);
            }
            response
        }
        Err(error) => view::api_error(&ctx, &error),
    }
}

#[derive(Template)]
#[template(path = "merchant/apps.html")]
struct Apps {
    chrome: Chrome,
    shop: Shop,
    apps: Vec<AppLine>,
    error: Option<String>,
}

struct AppLine {
    app_id: String,
    name: String,
    escrow: bool,
    sign_type: String,
    has_key: bool,
}

async fn apps_page(
    state: &AppState,
    ctx: &Ctx,
    caller: &Caller,
    id: &str,
    done: Option<&str>,
    error: Option<(StatusCode, String)>,
) -> Response {
    let merchant = match shop(state, ctx, caller, id).await {
        Ok(m) => m,
        Err(response) => return response,
    };
    let apps =
        match formica_api::merchant::apps(State(state.clone()), caller.clone(), Path(id.into()))
            .await
        {
            Ok(apps) => apps.0,
            Err(error) => return view::api_error(ctx, &error),
        };
    let page = Apps {
        chrome: Chrome::new(
            ctx,
            "merchant",
            format!("{} · apps and keys", merchant.name),
        )
        .notice(done),
        shop: nav(&merchant),
        apps: apps
            .iter()
            .map(|a| AppLine {
                app_id: a.app_id.clone(),
                name: a.name.clone(),
                escrow: a.escrow,
                sign_type: a.sign_type.clone(),
                has_key: a.public_key.is_some(),
            })
            .collect(),
        error: error.as_ref().map(|(_, e)| e.clone()),
    };
    view::render(ctx, error.map_or(StatusCode::OK, |(s, _)| s), &page)
}

/// `GET /merchant/{id}/apps`.
pub async fn apps(
    State(state): State<AppState>,
    Signed(ctx, caller): Signed,
    Path(id): Path<String>,
    Query(done): Query<Done>,
) -> Response {
    apps_page(&state, &ctx, &caller, &id, done.done.as_deref(), None).await
}

/// The new-app form.
#[derive(Debug, Deserialize)]
pub struct AppForm {
    name: String,
    #[serde(default)]
    escrow: String,
    #[serde(default)]
    sign_type: String,
    #[serde(default)]
    public_key: String,
}

/// `POST /merchant/{id}/apps`.
pub async fn create_app(
    State(state): State<AppState>,
    Path(id): Path<String>,
    form: Posted<AppForm>,
) -> Response {
    let Posted { ctx, value, digest } = form;
    let Some(caller) = ctx.caller() else {
        return crate::session::to_sign_in(&format!("/merchant/{id}/apps"));
    };
    let key = value.public_key.trim();
    let body = Body {
        value: formica_api::merchant::NewApp {
            name: value.name,
            escrow: value.escrow == "on",
            public_key: (!key.is_empty()).then(|| key.to_owned()),
            sign_type: Some(value.sign_type).filter(|s| !s.is_empty()),
        },
        digest,
    };
    let path = Path(id.clone());
    match formica_api::merchant::create_app(State(state.clone()), caller.clone(), path, body).await
    {
        Ok(_) => view::done(&format!("/merchant/{id}/apps?done=app")),
        Err(error) => {
            let said = Some((error.status, view::say(&error)));
            apps_page(&state, &ctx, &caller, &id, None, said).await
        }
    }
}

/// The public key form.
#[derive(Debug, Deserialize)]
pub struct KeyForm {
    public_key: String,
}

/// `POST /merchant/{id}/apps/{app}/key`: the shop's public key for the app.
pub async fn set_key(
    State(state): State<AppState>,
    Path((id, app)): Path<(String, String)>,
    form: Posted<KeyForm>,
) -> Response {
    let Posted { ctx, value, digest } = form;
    let Some(caller) = ctx.caller() else {
        return crate::session::to_sign_in(&format!("/merchant/{id}/apps"));
    };
    // The app must be this shop's (the API checks it is the caller's).
    if let Err(response) = shop(&state, &ctx, &caller, &id).await {
        return response;
    }
    let body = Body {
        value: formica_api::merchant::PublicKeyInput {
            public_key: value.public_key,
        },
        digest,
    };
    match formica_api::merchant::set_public_key(
        State(state.clone()),
        caller.clone(),
        Path(app),
        body,
    )
    .await
    {
        Ok(_) => view::done(&format!("/merchant/{id}/apps?done=key")),
        Err(error) => {
            let said = Some((error.status, view::say(&error)));
            apps_page(&state, &ctx, &caller, &id, None, said).await
        }
    }
}

/// `GET /merchant/{id}/apps/{app}/platform-key.pem`: the key that verifies what the platform
/// signs for this app.
pub async fn platform_key(
    State(state): State<AppState>,
    Signed(ctx, caller): Signed,
    Path((id, app)): Path<(String, String)>,
) -> Response {
    if let Err(response) = shop(&state, &ctx, &caller, &id).await {
        return response;
    }
    match formica_api::merchant::platform_key(State(state), caller, Path(app.clone())).await {
        Ok(key) => (
            [
                (header::CONTENT_TYPE, "application/x-pem-file".to_owned()),
                (
                    header::CONTENT_DISPOSITION,
                    format!("attachment; filename=\"formica-platform-{app}.pem\""),
                ),
            ],
            key.0.pem,
        )
            .into_response(),
        Err(error) => view::api_error(&ctx, &error),
    }
}

#[derive(Template)]
#[template(path = "merchant/deliveries.html")]
struct Deliveries {
    chrome: Chrome,
    shop: Shop,
    notices: Vec<[String; 6]>,
    hooks: Vec<[String; 6]>,
}

fn outcome(status: Option<i64>, error: Option<&str>) -> String {
    match (status, error) {
        (Some(code), _) => format!("HTTP {code}"),
        (None, Some(error)) => error.to_owned(),
        (None, None) => String::new(),
    }
}

/// `GET /merchant/{id}/deliveries`: notify_url deliveries and the owner's webhook deliveries.
pub async fn deliveries(
    State(state): State<AppState>,
    Signed(ctx, caller): Signed,
    Path(id): Path<String>,
) -> Response {
    let merchant = match shop(&state, &ctx, &caller, &id).await {
        Ok(m) => m,
        Err(response) => return response,
    };
    let offset = state.engine().settings().day_offset_seconds;
    let notices = match formica_api::merchant::notifications(
        State(state.clone()),
        caller.clone(),
        Path(id.clone()),
    )
    .await
    {
        Ok(list) => list.0,
        Err(error) => return view::api_error(&ctx, &error),
    };
    let owner = merchant.owner_id;
    let hooks = state
        .pool()
        .read(move |sql| {
            let mut rows = Vec::new();
            for endpoint in formica_store::webhook::endpoints(sql, owner)? {
                for d in formica_store::webhook::deliveries(sql, endpoint.id, None, 50)? {
                    rows.push((endpoint.url.clone(), d));
                }
            }
            Ok(rows)
        })
        .await
        .unwrap_or_default();
    let page = Deliveries {
        chrome: Chrome::new(&ctx, "merchant", format!("{} · deliveries", merchant.name)),
        shop: nav(&merchant),
        notices: notices
            .iter()
            .map(|n| {
                [
                    view::time(n.created_at, offset),
                    n.url.clone(),
                    n.notify_id.clone(),
                    n.status.clone(),
                    n.attempts.to_string(),
                    outcome(n.last_status, n.last_error.as_deref()),
                ]
            })
            .collect(),
        hooks: hooks
            .iter()
            .map(|(url, d)| {
                [
                    view::time(d.created_at, offset),
                    url.clone(),
                    d.topic.clone(),
                    d.status.clone(),
                    d.attempts.to_string(),
                    outcome(d.last_status, d.last_error.as_deref()),
                ]
            })
            .collect(),
    };
    view::render(&ctx, StatusCode::OK, &page)
}
