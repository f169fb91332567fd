//! The hosted checkout (§7): where `alipay.trade.page.pay` / `wap.pay` send the buyer's
//! browser and where a precreated QR code (`/qr/{trade}`) opens. The buyer sees the merchant,
//! subject and amount, signs in and pays with the PIN as a plain form, and is sent back to the
//! merchant's `return_url` with parameters signed like a notification.

use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use formica_core::trade::{Trade, TradeCommand, TradeStatus};
use formica_core::{Command, CommandError, Id, Outcome, ProductCommand, ProductRequest, Reply};
use formica_engine::EngineError;
use formica_store::people::Secret;

use super::{Gateway, GatewayError, html, sign};
use crate::AppState;

/// Text made safe for HTML.
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn layout(title: &str, body: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title} · Formica</title><style>\
         body{{font-family:system-ui,sans-serif;max-width:28rem;margin:2rem auto;padding:0 1rem;color:#1d2733}}\
         .amount{{font-size:2.2rem;font-weight:600;margin:.5rem 0}}\
         label{{display:block;margin:.8rem 0 .2rem}}input{{width:100%;padding:.6rem;font-size:1rem;box-sizing:border-box}}\
         button{{margin-top:1.2rem;width:100%;padding:.8rem;font-size:1.1rem;background:#1677ff;color:#fff;border:0;border-radius:.4rem}}\
         .error{{color:#b42318;background:#fef3f2;padding:.6rem;border-radius:.4rem}}\
         .muted{{color:#5b6b7c}}</style></head><body>{body}</body></html>",
        title = escape(title),
    )
}

/// The checkout page of a trade, with an error from the last attempt if there was one.
pub async fn page_for(state: &AppState, trade: &Trade, error: Option<&str>) -> Response {
    let merchant_id = trade.seller_id;
    let merchant = state
        .pool()
        .read(move |sql| formica_store::merchant::merchant(sql, merchant_id))
        .await
        .ok()
        .flatten();
    let seller = merchant.map_or_else(|| "Formica user".to_owned(), |m| m.name);
    let head = format!(
        "<p class=\"muted\">Pay {seller}</p><h1>{subject}</h1><p class=\"amount\">{amount}</p>",
        seller = escape(&seller),
        subject = escape(&trade.subject),
        amount = escape(&trade.amount.to_string()),
    );
    if trade.status != TradeStatus::WaitBuyerPay {
        let said = match trade.status {
            TradeStatus::TradeClosed => "This payment is closed.",
            _ => "This payment is paid.",
        };
        return html(
            StatusCode::OK,
            layout("Checkout", &format!("{head}<p role=\"status\">{said}</p>")),
        );
    }
    let error = error.map_or_else(String::new, |e| {
        format!("<p class=\"error\" role=\"alert\">{}</p>", escape(e))
    });
    let body = format!(
        "{head}{error}<form method=\"post\" action=\"/checkout/{id}\">\
         <label for=\"login\">Phone or email</label>\
         <input id=\"login\" name=\"login\" autocomplete=\"username\" required>\
         <label for=\"password\">Password</label>\
         <input id=\"password\" name=\"password\" type=\"password\" autocomplete=\"current-password\" required>\
         <label for=\"pin\">Payment PIN</label>\
         <input id=\"pin\" name=\"pin\" type=\"password\" inputmode=\"numeric\" autocomplete=\"off\" required>\
         <button type=\"submit\">Pay {amount}</button></form>",
        id = trade.id,
        amount = escape(&trade.amount.to_string()),
    );
    html(StatusCode::OK, layout("Checkout", &body))
}

/// A gateway error shown to a buyer's browser.
pub fn error_page(error: &GatewayError) -> Response {
    let body = format!(
        "<h1>This payment cannot be made</h1><p class=\"error\" role=\"alert\">{}</p>\
         <p class=\"muted\">{} {}</p>",
        escape(&error.sub_msg),
        escape(error.code),
        escape(&error.sub_code),
    );
    html(StatusCode::BAD_REQUEST, layout("Checkout", &body))
}

/// A merchant's gateway trade (a trade between people is not shown to whoever has its id).
async fn trade(state: &AppState, id: &str) -> Option<Trade> {
    let id: Id = id.parse().ok()?;
    state
        .pool()
        .read(move |sql| formica_store::trade::trade(sql, id))
        .await
        .ok()
        .flatten()
        .filter(|trade| trade.app_id.is_some())
}

fn not_found() -> Response {
    html(
        StatusCode::NOT_FOUND,
        layout("Not found", "<h1>No such payment</h1>"),
    )
}

/// `GET /qr/{trade}` and `GET /checkout/{trade}`: the checkout page.
pub async fn show(State(state): State<AppState>, Path(id): Path<String>) -> Response {
    match trade(&state, &id).await {
        Some(trade) => page_for(&state, &trade, None).await,
        None => not_found(),
    }
}

/// The checkout form.
#[derive(Debug, serde::Deserialize)]
pub struct PayForm {
    login: String,
    password: String,
    pin: String,
}

/// `POST /checkout/{trade}`: signs the buyer in, checks the PIN, pays, and sends the browser
/// back to the merchant.
pub async fn pay(
    State(state): State<AppState>,
    Path(id): Path<String>,
    axum::Form(form): axum::Form<PayForm>,
) -> Response {
    let Some(trade) = trade(&state, &id).await else {
        return not_found();
    };
    match pay_as(&state, &trade, &form).await {
        Ok(paid) => back_to_merchant(&state, &paid).await,
        Err(message) => page_for(&state, &trade, Some(&message)).await,
    }
}

async fn pay_as(state: &AppState, trade: &Trade, form: &PayForm) -> Result<Trade, String> {
    let wrong = "Wrong phone, email or password.".to_owned();
    let login = crate::people::normalize_login(&form.login).map_err(|_| wrong.clone())?;
    let user = state
        .pool()
        .read(move |sql| formica_store::people::user_by_login(sql, &login))
        .await
        .map_err(|e| e.message().to_owned())?
        .ok_or_else(|| wrong.clone())?;
    crate::auth::check_secret(state, &user, Secret::Password, &form.password)
        .await
        .map_err(|e| e.message().to_owned())?;
    crate::auth::check_secret(state, &user, Secret::Pin, &form.pin)
        .await
        .map_err(|e| format!("PIN: {}", e.message()))?;
    let command = Command::Product(ProductRequest {
        command: ProductCommand::Trade(TradeCommand::Pay {
            trade_id: trade.id,
            buyer_id: user.id,
        }),
        idempotency: None,
    });
    match state.engine().submit(command).await {
        Ok(Reply::Product(Outcome::Trade(paid))) => Ok(paid),
        Err(EngineError::Rejected(CommandError::Refused(refusal))) => Err(refusal.to_string()),
        Err(EngineError::Busy) => Err("The platform is busy; try again.".to_owned()),
        other => Err(format!("The payment failed: {other:?}")),
    }
}

/// The return to the merchant's `return_url`, with signed parameters (§7 step 4), or a
/// receipt page when the trade has none.
async fn back_to_merchant(state: &AppState, trade: &Trade) -> Response {
    let keys = match &trade.app_id {
        Some(app_id) => Gateway::app(state, app_id).await.ok().flatten(),
        None => None,
    };
    let (Some(url), Some(keys)) = (&trade.return_url, keys) else {
        let body = format!(
            "<h1>Paid</h1><p class=\"amount\">{}</p><p role=\"status\">{} is paid.</p>",
            escape(&trade.amount.to_string()),
            escape(&trade.subject),
        );
        return html(StatusCode::OK, layout("Paid", &body));
    };
    let offset = state.engine().settings().day_offset_seconds;
    let mut params = vec![
        ("charset", "utf-8".to_owned()),
        ("out_trade_no", trade.out_trade_no.clone()),
        ("method", "alipay.trade.page.pay.return".to_owned()),
        ("total_amount", trade.amount.decimal()),
        ("trade_no", trade.id.to_string()),
        ("auth_app_id", keys.app.app_id.clone()),
        ("version", "1.0".to_owned()),
        ("app_id", keys.app.app_id.clone()),
        ("seller_id", trade.seller_id.to_string()),
        ("timestamp", super::time::format(state.now(), offset)),
    ];
    let content = sign::content_to_sign(params.iter().map(|(k, v)| (*k, v.as_str())), &[]);
    let sign_type = sign::SignType::parse(&keys.app.sign_type).unwrap_or(sign::SignType::Rsa2);
    let signature = keys.platform.sign(sign_type, content.as_bytes());
    params.push(("sign", signature));
    params.push(("sign_type", sign_type.as_str().to_owned()));
    let query = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params.iter().map(|(k, v)| (*k, v.as_str())))
        .finish();
    let separator = if url.contains('?') { '&' } else { '?' };
    let location = format!("{url}{separator}{query}");
    (StatusCode::SEE_OTHER, [(header::LOCATION, location)]).into_response()
}
