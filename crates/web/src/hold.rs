//! Deposit pages: in the wallet, the deposits shops asked for (authorise with the PIN) and
//! what is owed (repay); in the merchant console, holding a deposit, charging and releasing.

use askama::Template;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use formica_api::AppState;
use formica_api::auth::Caller;
use formica_api::body::Body;
use formica_api::hold::{Authorization, HoldCharge, NewHold, Repayment};
use formica_api::wallet::{AmountInput, PersonRef};
use formica_core::Money;
use formica_core::deposit::{Debt, Hold, HoldStatus};
use serde::Deserialize;

use crate::merchant::{Shop, nav, shop};
use crate::session::{Ctx, Posted, Signed, keyed};
use crate::view::{self, Chrome};

/// Where a hold stands, in words.
fn state_of(hold: &Hold) -> String {
    match hold.status {
        HoldStatus::Requested => "waiting for authorisation".to_owned(),
        HoldStatus::Waived => format!("waived by credit: nothing held{}", given_back(hold)),
        HoldStatus::Frozen => format!("held in the wallet{}", given_back(hold)),
        HoldStatus::Closed => match hold.close_reason.as_deref() {
            Some("charged") => format!("charged {}", view::money(&hold.charged)),
            Some("unfrozen") => "released".to_owned(),
            _ => "not authorised in time".to_owned(),
        },
    }
}

/// ", 50.00 given back" when part of an open deposit went back early.
fn given_back(hold: &Hold) -> String {
    hold.unfrozen
        .map(|part| format!(", {} given back", view::money(&part)))
        .unwrap_or_default()
}

struct HoldLine {
    id: String,
    title: String,
    shop: String,
    amount: String,
    state: String,
    requested: bool,
    threshold: Option<u16>,
}

struct DebtLine {
    id: String,
    title: String,
    outstanding: String,
    outstanding_plain: String,
    due: String,
    overdue: bool,
}

#[derive(Template)]
#[template(path = "wallet/holds.html")]
struct WalletHolds {
    chrome: Chrome,
    key: String,
    score: u16,
    holds: Vec<HoldLine>,
    debts: Vec<DebtLine>,
    error: Option<String>,
}

async fn wallet_page(
    state: &AppState,
    ctx: &Ctx,
    caller: &Caller,
    error: Option<(StatusCode, String)>,
) -> Response {
    let person = caller.0.id;
    let read = state
        .pool()
        .read(move |sql| {
            let holds = formica_store::credit::holds_of_person(sql, person, 100)?;
            let debts = formica_store::credit::debts_of_person(sql, person)?;
            let ids: Vec<_> = holds.iter().map(|h| h.merchant_id).collect();
            let names = formica_store::merchant::names(sql, &ids)?;
            let score = formica_store::credit::credit(sql, person)?.map_or(0, |c| c.total());
            Ok((holds, debts, names, score))
        })
        .await;
    let (holds, debts, names, score) = match read {
        Ok(found) => found,
        Err(error) => return view::failure(&error),
    };
    let offset = state.engine().settings().day_offset_seconds;
    let title_of = |debt: &Debt| {
        holds
            .iter()
            .find(|h| h.id == debt.hold_id)
            .map_or_else(|| "a deposit".to_owned(), |h| h.title.clone())
    };
    let debts = debts
        .iter()
        .filter(|d| d.repaid_at.is_none())
        .map(|d| {
            let outstanding = Money::new(d.outstanding(), d.amount.currency);
            DebtLine {
                id: d.id.to_string(),
                title: title_of(d),
                outstanding: view::money(&outstanding),
                outstanding_plain: outstanding.decimal(),
                due: view::time(d.due_at, offset),
                overdue: d.overdue,
            }
        })
        .collect();
    let holds = holds
        .iter()
        .map(|h| HoldLine {
            id: h.id.to_string(),
            title: h.title.clone(),
            shop: names
                .get(&h.merchant_id)
                .cloned()
                .unwrap_or_else(|| h.merchant_id.to_string()),
            amount: view::money(&h.amount),
            state: state_of(h),
            requested: h.status == HoldStatus::Requested,
            threshold: h.threshold,
        })
        .collect();
    let status = error.as_ref().map_or(StatusCode::OK, |(s, _)| *s);
    let page = WalletHolds {
        chrome: Chrome::new(ctx, "wallet", "Deposits"),
        key: view::form_key(),
        score,
        holds,
        debts,
        error: error.map(|(_, e)| e),
    };
    view::render(ctx, status, &page)
}

/// `GET /wallet/holds`.
pub async fn wallet(State(state): State<AppState>, Signed(ctx, caller): Signed) -> Response {
    wallet_page(&state, &ctx, &caller, None).await
}

/// The PIN form.
#[derive(Debug, Deserialize)]
pub struct PinForm {
    key: String,
    pin: String,
}

/// `POST /wallet/holds/{id}/authorize`.
pub async fn authorize(
    State(state): State<AppState>,
    Path(id): Path<String>,
    form: Posted<PinForm>,
) -> Response {
    let Posted { ctx, value, digest } = form;
    let Some(caller) = ctx.caller() else {
        return crate::session::to_sign_in("/wallet/holds");
    };
    let body = Body {
        value: Authorization { pin: value.pin },
        digest,
    };
    let done = formica_api::hold::authorize(
        State(state.clone()),
        caller.clone(),
        Path(id),
        keyed(&value.key),
        body,
    )
    .await;
    match done {
        Ok(_) => view::done("/wallet/holds"),
        Err(error) => {
            let said = (error.status, view::say(&error));
            wallet_page(&state, &ctx, &caller, Some(said)).await
        }
    }
}

/// The repay form.
#[derive(Debug, Deserialize)]
pub struct RepayForm {
    key: String,
    amount: String,
    pin: String,
}

/// `POST /wallet/debts/{id}/repay`.
pub async fn repay(
    State(state): State<AppState>,
    Path(id): Path<String>,
    form: Posted<RepayForm>,
) -> Response {
    let Posted { ctx, value, digest } = form;
    let Some(caller) = ctx.caller() else {
        return crate::session::to_sign_in("/wallet/holds");
    };
    let body = Body {
        value: Repayment {
            amount: AmountInput {
                amount: value.amount.trim().to_owned(),
                currency: formica_core::credit::CREDIT_CURRENCY.code().to_owned(),
            },
            pin: value.pin,
        },
        digest,
    };
    let done = formica_api::hold::repay(
        State(state.clone()),
        caller.clone(),
        Path(id),
        keyed(&value.key),
        body,
    )
    .await;
    match done {
        Ok(_) => view::done("/wallet/holds"),
        Err(error) => {
            let said = (error.status, view::say(&error));
            wallet_page(&state, &ctx, &caller, Some(said)).await
        }
    }
}

struct ShopHold {
    id: String,
    number: String,
    title: String,
    amount: String,
    state: String,
    charged: String,
    open: bool,
}

#[derive(Template)]
#[template(path = "merchant/holds.html")]
struct ShopHolds {
    chrome: Chrome,
    shop: Shop,
    key: String,
    holds: Vec<ShopHold>,
    error: Option<String>,
}

async fn shop_page(
    state: &AppState,
    ctx: &Ctx,
    caller: &Caller,
    id: &str,
    error: Option<(StatusCode, String)>,
) -> Response {
    let merchant = match shop(state, ctx, caller, id).await {
        Ok(m) => m,
        Err(response) => return response,
    };
    let holds = match formica_api::hold::merchant_holds(
        State(state.clone()),
        caller.clone(),
        Path(id.to_owned()),
    )
    .await
    {
        Ok(list) => list.0,
        Err(error) => return view::api_error(ctx, &error),
    };
    let status = error.as_ref().map_or(StatusCode::OK, |(s, _)| *s);
    let page = ShopHolds {
        chrome: Chrome::new(ctx, "merchant", format!("{} · deposits", merchant.name)),
        shop: nav(&merchant),
        key: view::form_key(),
        holds: holds
            .iter()
            .map(|h| ShopHold {
                id: h.id.to_string(),
                number: h.out_order_no.clone(),
                title: h.title.clone(),
                amount: view::money(&h.amount),
                state: state_of(h),
                charged: view::money(&h.charged),
                open: matches!(h.status, HoldStatus::Waived | HoldStatus::Frozen),
            })
            .collect(),
        error: error.map(|(_, e)| e),
    };
    view::render(ctx, status, &page)
}

/// `GET /merchant/{id}/holds`.
pub async fn shop_holds(
    State(state): State<AppState>,
    Signed(ctx, caller): Signed,
    Path(id): Path<String>,
) -> Response {
    shop_page(&state, &ctx, &caller, &id, None).await
}

/// The hold form.
#[derive(Debug, Deserialize)]
pub struct HoldForm {
    person: String,
    out_order_no: String,
    title: String,
    amount: String,
    #[serde(default)]
    threshold: String,
}

/// `POST /merchant/{id}/holds`: asks a customer to authorise a deposit.
pub async fn ask(
    State(state): State<AppState>,
    Path(id): Path<String>,
    form: Posted<HoldForm>,
) -> Response {
    let Posted { ctx, value, digest } = form;
    let Some(caller) = ctx.caller() else {
        return crate::session::to_sign_in(&format!("/merchant/{id}/holds"));
    };
    let threshold = match value.threshold.trim() {
        "" => None,
        text => match text.parse::<u16>() {
            Ok(t) => Some(t),
            Err(_) => {
                let said = (
                    StatusCode::BAD_REQUEST,
                    "Waive at: a score from 350 to 950.".to_owned(),
                );
                return shop_page(&state, &ctx, &caller, &id, Some(said)).await;
            }
        },
    };
    let merchant = match shop(&state, &ctx, &caller, &id).await {
        Ok(m) => m,
        Err(response) => return response,
    };
    let body = Body {
        value: NewHold {
            person: PersonRef {
                user_id: None,
                login: Some(value.person),
            },
            out_order_no: value.out_order_no,
            title: value.title,
            amount: AmountInput {
                amount: value.amount.trim().to_owned(),
                currency: merchant.currency.code().to_owned(),
            },
            threshold,
        },
        digest,
    };
    let done = formica_api::hold::request(
        State(state.clone()),
        caller.clone(),
        Path(id.clone()),
        HeaderMap::new(),
        body,
    )
    .await;
    match done {
        Ok(_) => view::done(&format!("/merchant/{id}/holds")),
        Err(error) => {
            let said = (error.status, view::say(&error));
            shop_page(&state, &ctx, &caller, &id, Some(said)).await
        }
    }
}

/// The charge form.
#[derive(Debug, Deserialize)]
pub struct ChargeForm {
    key: String,
    amount: String,
}

/// `POST /merchant/{id}/holds/{hold}/charge`.
pub async fn charge(
    State(state): State<AppState>,
    Path((id, hold)): Path<(String, String)>,
    form: Posted<ChargeForm>,
) -> Response {
    let Posted { ctx, value, digest } = form;
    let Some(caller) = ctx.caller() else {
        return crate::session::to_sign_in(&format!("/merchant/{id}/holds"));
    };
    let merchant = match shop(&state, &ctx, &caller, &id).await {
        Ok(m) => m,
        Err(response) => return response,
    };
    let body = Body {
        value: HoldCharge {
            amount: AmountInput {
                amount: value.amount.trim().to_owned(),
                currency: merchant.currency.code().to_owned(),
            },
        },
        digest,
    };
    let done = formica_api::hold::charge(
        State(state.clone()),
        caller.clone(),
        Path(hold),
        keyed(&value.key),
        body,
    )
    .await;
    match done {
        Ok(_) => view::done(&format!("/merchant/{id}/holds")),
        Err(error) => {
            let said = (error.status, view::say(&error));
            shop_page(&state, &ctx, &caller, &id, Some(said)).await
        }
    }
}

/// The release form (nothing but the form token).
#[derive(Debug, Deserialize)]
pub struct ReleaseForm {}

/// `POST /merchant/{id}/holds/{hold}/unfreeze`.
pub async fn release(
    State(state): State<AppState>,
    Path((id, hold)): Path<(String, String)>,
    form: Posted<ReleaseForm>,
) -> Response {
    let ctx = form.ctx;
    let Some(caller) = ctx.caller() else {
        return crate::session::to_sign_in(&format!("/merchant/{id}/holds"));
    };
    let done = formica_api::hold::unfreeze(
        State(state.clone()),
        caller.clone(),
        Path(hold),
        HeaderMap::new(),
    )
    .await;
    match done {
        Ok(_) => view::done(&format!("/merchant/{id}/holds")),
        Err(error) => {
            let said = (error.status, view::say(&error));
            shop_page(&state, &ctx, &caller, &id, Some(said)).await
        }
    }
}

/// A shop's online deposit request (`alipay.fund.auth.order.app.freeze`), for the person to
/// approve with their PIN.
#[derive(Template)]
#[template(path = "wallet/deposit_authorization.html")]
struct Approval {
    chrome: Chrome,
    /// The request's signed parameters, sent back with the PIN and verified again.
    request: String,
    shop: String,
    title: String,
    amount: String,
    threshold: Option<u16>,
    score: u16,
    /// Approved already: where the deposit stands.
    done: Option<String>,
    error: Option<String>,
}

async fn approval_page(
    state: &AppState,
    ctx: &Ctx,
    caller: &Caller,
    request: &str,
    error: Option<(StatusCode, String)>,
) -> Response {
    let (order, hold) =
        match formica_api::gateway::fund_auth::offer(state, request, &ctx.base_url).await {
            Ok(found) => found,
            Err(error) => return formica_api::gateway::checkout::error_page(&error),
        };
    let (person, merchant) = (caller.0.id, order.merchant_id);
    let read = state
        .pool()
        .read(move |sql| {
            let shop = formica_store::merchant::merchant(sql, merchant)?;
            let score = formica_store::credit::credit(sql, person)?.map_or(0, |c| c.total());
            Ok((shop, score))
        })
        .await;
    let (shop, score) = match read {
        Ok(found) => found,
        Err(error) => return view::failure(&error),
    };
    // Someone else's approval is theirs; this person sees the request, not its outcome.
    let done = hold.filter(|h| h.person_id == person).map(|h| state_of(&h));
    let page = Approval {
        chrome: Chrome::new(ctx, "wallet", "Approve a deposit"),
        request: request.to_owned(),
        shop: shop.map_or_else(|| "A shop".to_owned(), |s| s.name),
        title: order.title,
        amount: view::money(&order.amount),
        threshold: order.threshold,
        score,
        done,
        error: error.as_ref().map(|(_, e)| e.clone()),
    };
    view::render(ctx, error.map_or(StatusCode::OK, |(s, _)| s), &page)
}

/// `GET /deposit-authorization?{the signed request}`: where `app.freeze` sends the person.
pub async fn approval(
    State(state): State<AppState>,
    Signed(ctx, caller): Signed,
    axum::extract::RawQuery(query): axum::extract::RawQuery,
) -> Response {
    approval_page(&state, &ctx, &caller, &query.unwrap_or_default(), None).await
}

/// The approval form: the request again, and the PIN.
#[derive(Debug, Deserialize)]
pub struct ApprovalForm {
    request: String,
    pin: String,
}

/// `POST /deposit-authorization`: the person approves with their PIN; waived or frozen.
pub async fn approve(State(state): State<AppState>, form: Posted<ApprovalForm>) -> Response {
    let Posted { ctx, value, .. } = form;
    let path = format!(
        "{}?{}",
        formica_api::gateway::fund_auth::APPROVAL_PAGE,
        value.request
    );
    let Some(caller) = ctx.caller() else {
        return crate::session::to_sign_in(&path);
    };
    let approved = async {
        let (order, _) =
            formica_api::gateway::fund_auth::offer(&state, &value.request, &ctx.base_url)
                .await
                .map_err(|e| (StatusCode::BAD_REQUEST, e.sub_msg))?;
        formica_api::wallet::check_pin(&state, &caller, &value.pin)
            .await
            .map_err(|e| (e.status, view::say(&e)))?;
        formica_api::gateway::fund_auth::approve(&state, &order, caller.0.id)
            .await
            .map_err(|e| (StatusCode::UNPROCESSABLE_ENTITY, e.sub_msg))
    };
    match approved.await {
        // The page again, now saying where the deposit stands.
        Ok(_) => view::done(&path),
        Err(said) => approval_page(&state, &ctx, &caller, &value.request, Some(said)).await,
    }
}
