//! The gateway's side of the hosted checkout (§7): `alipay.trade.page.pay` / `wap.pay` send the
//! buyer's browser to `/checkout/{trade}` (the page itself is the `web` crate's), and a paid
//! checkout returns to the merchant's `return_url` with parameters signed like a notification.
//! A page flow the gateway refuses is answered with an error page here.

use axum::http::StatusCode;
use axum::response::Response;
use formica_core::Id;
use formica_core::trade::Trade;

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

/// A merchant's trade, as its checkout shows it to whoever has the link (a trade between
/// people is not shown to whoever has its id).
pub async fn trade(state: &AppState, id: &str) -> Option<Trade> {
    let id: Id = id.parse().ok()?;
    state
        .pool()
        .read(move |sql| formica_store::trade::trade(sql, id))
        .await
        .ok()
        .flatten()
        .filter(|trade| trade.app_id.is_some() || !trade.escrow)
}

/// Where a paid checkout sends the browser: the merchant's `return_url` with signed
/// parameters (§7 step 4), or None when the trade has none.
pub async fn return_location(state: &AppState, trade: &Trade) -> Option<String> {
    let keys = match &trade.app_id {
        Some(app_id) => Gateway::app(state, app_id).await.ok().flatten(),
        None => None,
    };
    let (Some(url), Some(keys)) = (&trade.return_url, keys) else {
        return None;
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
    Some(format!("{url}{separator}{query}"))
}
