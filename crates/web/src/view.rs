//! What every page shares: the frame around it (title, the signed-in person, the form token,
//! which console it belongs to), rendering with the security headers, the message page for
//! errors, and how money, times and the API's errors are put into words.

use askama::Template;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use formica_api::ApiError;
use formica_core::Money;

use crate::session::Ctx;

/// The part of every page around its content.
#[derive(Clone, Debug)]
pub struct Chrome {
    /// The page's title.
    pub title: String,
    /// The form token.
    pub csrf: String,
    /// The signed-in person's name.
    pub user: Option<String>,
    /// Whether they are an operator (the console link).
    pub operator: bool,
    /// `wallet`, `merchant`, `operator` or `checkout`: which navigation to show.
    pub area: &'static str,
    /// A short message about what was just done.
    pub notice: Option<String>,
}

impl Chrome {
    /// The frame of a page in `area`.
    pub fn new(ctx: &Ctx, area: &'static str, title: impl Into<String>) -> Chrome {
        Chrome {
            title: title.into(),
            csrf: ctx.csrf.clone(),
            user: ctx.user.as_ref().map(|u| u.display_name.clone()),
            operator: ctx.operator(),
            area,
            notice: None,
        }
    }

    /// With the notice a redirect's `?done=` names.
    pub fn notice(mut self, done: Option<&str>) -> Chrome {
        self.notice = done.and_then(notice).map(str::to_owned);
        self
    }
}

/// The messages a redirect can ask for (fixed, so a link cannot put words on the page).
fn notice(done: &str) -> Option<&'static str> {
    Some(match done {
        "signed-up" => "Welcome to Formica. Set a payment PIN to start paying.",
        "pin" => "Your payment PIN is set.",
        "card" => "Card linked.",
        "top-up" => "Top-up sent to your bank. The money arrives when the bank answers.",
        "withdrawal" => "Withdrawal sent. The money is held until the bank pays it out.",
        "transfer" => "Sent.",
        "paid" => "Paid.",
        "confirmed" => "Receipt confirmed: the seller is paid.",
        "refund-asked" => "Refund requested: the seller has 3 days to answer.",
        "shipped" => "Marked as shipped.",
        "answered" => "Your answer is recorded.",
        "closed" => "The trade is closed.",
        "offered" => "Trade offered: send the buyer its link.",
        "refunded" => "Refunded.",
        "shop" => "Your shop is open.",
        "app" => "App created: upload its public key to start signing requests.",
        "key" => "Public key saved.",
        "decided" => "Decision recorded and money moved.",
        "verified" => "Identity level set.",
        "bought" => "Bought: the units earn from their confirmation day.",
        "sold" => "Sold.",
        "fund" => "Fund defined.",
        "holidays" => "Holiday calendar saved.",
        "income" => "Income posted: the holders are being credited.",
        _ => return None,
    })
}

/// A page as a response: HTML, never cached, never framed, scripts and styles only from this
/// server, and the CSRF cookie when this browser has none yet.
pub fn render(ctx: &Ctx, status: StatusCode, page: &impl Template) -> Response {
    let html = match page.render() {
        Ok(html) => html,
        Err(error) => {
            tracing::error!(%error, "a page did not render");
            return (StatusCode::INTERNAL_SERVER_ERROR, "the page did not render").into_response();
        }
    };
    let mut response = (status, html).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; \
             frame-ancestors 'none'",
        ),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    if ctx.new_csrf {
        headers.append(header::SET_COOKIE, ctx.csrf_cookie());
    }
    response
}

/// A page with a heading and one paragraph.
#[derive(Template)]
#[template(path = "message.html")]
struct Message<'a> {
    chrome: Chrome,
    heading: &'a str,
    text: &'a str,
}

/// A message page: errors, refusals, not found.
pub fn message(ctx: &Ctx, status: StatusCode, heading: &str, text: &str) -> Response {
    let page = Message {
        chrome: Chrome::new(ctx, "wallet", heading),
        heading,
        text,
    };
    render(ctx, status, &page)
}

/// The not-found page (also for what exists but is someone else's).
pub fn not_found(ctx: &Ctx) -> Response {
    message(
        ctx,
        StatusCode::NOT_FOUND,
        "Not found",
        "There is nothing here, or it is not yours to see.",
    )
}

/// A failure of the platform itself, before a page could be made.
pub fn failure(error: &dyn std::fmt::Debug) -> Response {
    tracing::error!(?error, "a page failed");
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        "Something went wrong on our side; nothing was changed. Try again.",
    )
        .into_response()
}

/// A page for an API error that has no form to go back to.
pub fn api_error(ctx: &Ctx, error: &ApiError) -> Response {
    if error.status == StatusCode::NOT_FOUND {
        return not_found(ctx);
    }
    if error.status.is_server_error() {
        return failure(&error.message());
    }
    message(ctx, error.status, "That did not work", &say(error))
}

/// An API error in words for a person: the field it is about, then the reason.
pub fn say(error: &ApiError) -> String {
    let field = error.field.as_deref().map(|field| match field {
        "pin" => "Payment PIN",
        "password" => "Password",
        "login" => "Phone or email",
        "to" => "Payee",
        "card_id" => "Card",
        "note" => "Note",
        "display_name" => "Name",
        "number" => "Card number",
        "public_key" => "Public key",
        "out_request_no" => "Refund number",
        field if field.starts_with("amount") || field.starts_with("refund_amount") => "Amount",
        _ => "",
    });
    let mut message = error.message().to_owned();
    if let Some(first) = message.get(..1) {
        message = first.to_uppercase() + &message[1..];
    }
    if !message.ends_with('.') {
        message.push('.');
    }
    match field {
        Some(field) if !field.is_empty() => format!("{field}: {message}"),
        _ => message,
    }
}

/// `303 See Other` to `path`, after a form did what it asked.
pub fn done(path: &str) -> Response {
    Redirect::to(path).into_response()
}

/// A rate in per mille as a percentage: 25 is `2.5%`, 100 is `10%`.
pub fn per_mille(rate: u64) -> String {
    percent(rate, 1)
}

/// A rate in parts per 10,000 as a percentage: 5 is `0.05%`.
pub fn per_10k(rate: u64) -> String {
    percent(rate, 2)
}

/// `rate` in units of a percent's `decimals`-th decimal place, trailing zeros dropped.
fn percent(rate: u64, decimals: u32) -> String {
    let scale = 10u64.pow(decimals);
    let fraction = format!("{:0width$}", rate % scale, width = decimals as usize);
    let fraction = fraction.trim_end_matches('0');
    if fraction.is_empty() {
        format!("{}%", rate / scale)
    } else {
        format!("{}.{fraction}%", rate / scale)
    }
}

/// Money with its currency's symbol and exact decimals: `¥1,234.50`.
pub fn money(money: &Money) -> String {
    let decimal = money.decimal();
    let (whole, fraction) = decimal.split_once('.').unwrap_or((&decimal, ""));
    let digits = whole.len();
    let mut grouped = String::with_capacity(digits + digits / 3);
    for (i, digit) in whole.chars().enumerate() {
        if i > 0 && (digits - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(digit);
    }
    let symbol = money.currency.symbol();
    if fraction.is_empty() {
        format!("{symbol}{grouped}")
    } else {
        format!("{symbol}{grouped}.{fraction}")
    }
}

/// A time in the platform's day (its offset from UTC), to the minute.
pub fn time(at: u64, offset_seconds: i64) -> String {
    let full = formica_api::gateway::time::format(at, offset_seconds);
    full.get(..16).unwrap_or(&full).to_owned()
}

/// A fresh idempotency key for a form that moves money.
pub fn form_key() -> String {
    formica_api::auth::new_token()
}

#[cfg(test)]
mod tests {
    use super::*;
    use formica_core::Currency;

    #[test]
    fn money_has_its_symbol_groups_and_exact_decimals() {
        let cny = Currency::from_code("CNY").expect("CNY");
        assert_eq!(money(&Money::new(123_450, cny)), "¥1,234.50");
        assert_eq!(money(&Money::new(5, cny)), "¥0.05");
        assert_eq!(money(&Money::new(100_000_000, cny)), "¥1,000,000.00");
        if let Some(jpy) = Currency::from_code("JPY") {
            assert_eq!(
                money(&Money::new(1_000, jpy)),
                format!("{}1,000", jpy.symbol())
            );
        }
    }

    #[test]
    fn rates_read_as_percentages() {
        assert_eq!(per_mille(25), "2.5%");
        assert_eq!(per_mille(100), "10%");
        assert_eq!(per_mille(88), "8.8%");
        assert_eq!(per_10k(5), "0.05%");
        assert_eq!(per_10k(10), "0.1%");
        assert_eq!(per_10k(0), "0%");
    }
}
