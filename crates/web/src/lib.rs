//! Formica's pages, rendered on the server: the wallet (phone-sized), the hosted checkout, the
//! merchant console and the operator console. Templates (askama) are compiled into the binary
//! with the stylesheet and the one small script; every action is a plain form with a CSRF
//! token, and the session is an HttpOnly cookie. Pages hold no business rule: each action
//! calls the REST API's handler for the same thing (or submits the same command), so the two
//! doors into Formica cannot drift apart.

mod checkout;
mod credit;
mod credit_line;
mod form;
pub mod fund;
mod hold;
mod merchant;
mod operator;
pub mod session;
mod svg;
mod trade;
pub mod view;
mod wallet;

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use formica_api::AppState;

pub use crate::wallet::scanned_path;

/// The pages' routes, to merge with the API's (`formica_api::Server::router_with`).
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(wallet::start))
        .route("/sign-in", get(wallet::sign_in_page).post(wallet::sign_in))
        .route("/sign-up", get(wallet::sign_up_page).post(wallet::sign_up))
        .route("/sign-out", post(wallet::sign_out))
        .route("/wallet", get(wallet::home))
        .route("/wallet/services", get(wallet::all_services))
        .route("/wallet/pin", get(wallet::pin_page).post(wallet::set_pin))
        .route(
            "/wallet/cards",
            get(wallet::cards_page).post(wallet::add_card),
        )
        .route(
            "/wallet/top-up",
            get(wallet::top_up_page).post(wallet::top_up),
        )
        .route(
            "/wallet/withdraw",
            get(wallet::withdraw_page).post(wallet::withdraw),
        )
        .route(
            "/wallet/transfer",
            get(wallet::transfer_page).post(wallet::transfer),
        )
        .route("/wallet/scan", get(wallet::scan_page).post(wallet::scan))
        .route("/wallet/pay-code", get(wallet::pay_code))
        .route("/wallet/bills", get(wallet::bills))
        .route("/wallet/trades", get(trade::list))
        .route(
            "/wallet/trades/new",
            get(trade::sell_page).post(trade::sell),
        )
        .route("/wallet/trades/{id}", get(trade::show))
        .route("/wallet/trades/{id}/{step}", post(trade::step))
        .route("/wallet/credit", get(credit::show))
        .route("/wallet/credit/consents", post(credit::allow))
        .route(
            "/wallet/credit/consents/{merchant}/withdraw",
            post(credit::stop),
        )
        .route(
            "/wallet/credit-line",
            get(credit_line::show).post(credit_line::open),
        )
        .route("/wallet/credit-line/repay", post(credit_line::repay))
        .route(
            "/wallet/credit-line/instalments",
            post(credit_line::instalments),
        )
        .route("/wallet/holds", get(hold::wallet))
        .route("/wallet/holds/{id}/authorize", post(hold::authorize))
        .route("/wallet/debts/{id}/repay", post(hold::repay))
        .route(
            "/merchant/{id}/holds",
            get(hold::shop_holds).post(hold::ask),
        )
        .route("/merchant/{id}/holds/{hold}/charge", post(hold::charge))
        .route("/merchant/{id}/holds/{hold}/unfreeze", post(hold::release))
        .route("/wallet/funds", get(fund::list))
        .route("/wallet/funds/{id}", get(fund::show))
        .route("/wallet/funds/{id}/{action}", post(fund::move_money))
        .route("/qr/{id}", get(checkout::show))
        .route("/checkout/{id}", get(checkout::show).post(checkout::pay))
        .route(
            "/pay/{merchant}",
            get(checkout::counter).post(checkout::counter_pay),
        )
        .route("/merchant", get(merchant::list))
        .route(
            "/merchant/new",
            get(merchant::open_page).post(merchant::open),
        )
        .route("/merchant/{id}", get(merchant::home))
        .route("/merchant/{id}/trades", get(merchant::trades))
        .route("/merchant/{id}/trades/{trade}", get(merchant::trade))
        .route(
            "/merchant/{id}/trades/{trade}/refund",
            post(merchant::refund),
        )
        .route(
            "/merchant/{id}/trades/{trade}/escrow/{step}",
            post(merchant::escrow_step),
        )
        .route(
            "/merchant/{id}/qr",
            get(merchant::qr).post(merchant::dynamic_qr),
        )
        .route("/merchant/{id}/settlements", get(merchant::settlements))
        .route("/merchant/{id}/statement.csv", get(merchant::statement))
        .route(
            "/merchant/{id}/apps",
            get(merchant::apps).post(merchant::create_app),
        )
        .route("/merchant/{id}/apps/{app}/key", post(merchant::set_key))
        .route(
            "/merchant/{id}/apps/{app}/platform-key.pem",
            get(merchant::platform_key),
        )
        .route("/merchant/{id}/deliveries", get(merchant::deliveries))
        .route("/operator", get(operator::health))
        .route("/operator/disputes", get(operator::disputes))
        .route("/operator/disputes/{id}", post(operator::decide))
        .route("/operator/lookup", get(operator::lookup))
        .route("/operator/people/{id}/level", post(operator::set_level))
        .route("/operator/trial-balance", get(operator::trial_balance))
        .route(
            "/operator/funds",
            get(fund::operator_funds).post(fund::create),
        )
        .route("/operator/credit", get(credit::operator))
        .route("/operator/credit/funding", post(credit::add_funding))
        .route("/operator/credit/policy", post(credit::set_policy))
        .route(
            "/deposit-authorization",
            get(hold::approval).post(hold::approve),
        )
        .route("/operator/holidays", post(fund::set_holidays))
        .route("/operator/funds/{id}", get(fund::operator_fund))
        .route("/operator/funds/{id}/incomes", post(fund::post_income))
        .route("/static/formica.css", get(stylesheet))
        .route("/static/formica.js", get(script))
}

/// Compiled in: the binary is the whole deployment.
const STYLESHEET: &str = include_str!("../static/formica.css");
const SCRIPT: &str = include_str!("../static/formica.js");

fn asset(content_type: &'static str, body: &'static str) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=3600"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

async fn stylesheet() -> Response {
    asset("text/css; charset=utf-8", STYLESHEET)
}

async fn script() -> Response {
    asset("text/javascript; charset=utf-8", SCRIPT)
}
