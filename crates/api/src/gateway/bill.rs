//! Statements: `alipay.data.dataservice.bill.downloadurl.query` (§9.11) answers with a
//! short-lived link, signed by the server, to a CSV of a day's (or month's) payments, refunds
//! and fees. The link needs no session, so that the SDK user can fetch it with any client.

use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use formica_core::{Id, Money};
use hmac::{Hmac, Mac};
use serde_json::{Map, Value, json};
use sha2::Sha256;

use super::{GatewayError, Request, time};
use crate::AppState;

/// How long a download link works.
pub const LINK_TTL_NS: u64 = 5 * 60 * 1_000_000_000;

fn link_signature(secret: &[u8], merchant: Id, from: i64, to: i64, expires: u64) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key");
    mac.update(format!("{merchant}:{from}:{to}:{expires}").as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

pub(super) fn download_url(
    state: &AppState,
    request: &Request,
) -> Result<Map<String, Value>, GatewayError> {
    let bill_type = request
        .biz
        .get("bill_type")
        .and_then(Value::as_str)
        .ok_or_else(|| GatewayError::invalid("biz_content is missing bill_type"))?;
    if bill_type != "trade" && bill_type != "signcustomer" {
        return Err(GatewayError::invalid(
            "bill_type must be trade or signcustomer",
        ));
    }
    let bill_date = request
        .biz
        .get("bill_date")
        .and_then(Value::as_str)
        .ok_or_else(|| GatewayError::invalid("biz_content is missing bill_date"))?;
    let (from, to) = match time::parse_day(bill_date) {
        Some(day) => (day, day + 1),
        None => time::parse_month(bill_date)
            .ok_or_else(|| GatewayError::invalid("bill_date must be yyyy-MM-dd or yyyy-MM"))?,
    };
    // A day's bill exists once the day is over (Alipay: T-1).
    let today = state.engine().settings().day(state.now());
    if to > today {
        return Err(GatewayError::business(
            "isp.bill_not_exist",
            "the bill of a day is ready the next day",
        ));
    }
    let merchant = request.merchant();
    let expires = state.now() + LINK_TTL_NS;
    let sig = link_signature(&state.gateway().link_secret, merchant, from, to, expires);
    let url = format!(
        "{}/bills/{merchant}/{from}/{to}?expires={expires}&sig={sig}",
        request.base_url
    );
    let mut object = Map::new();
    object.insert("code".into(), "10000".into());
    object.insert("msg".into(), "Success".into());
    object.extend(match json!({ "bill_download_url": url }) {
        Value::Object(map) => map,
        _ => Map::new(),
    });
    Ok(object)
}

/// A link's query.
#[derive(Debug, serde::Deserialize)]
pub struct Link {
    expires: u64,
    sig: String,
}

/// `GET /bills/{merchant}/{from}/{to}`: the statement as CSV, if the link is genuine and fresh.
pub async fn download(
    State(state): State<AppState>,
    Path((merchant, from, to)): Path<(u64, i64, i64)>,
    Query(link): Query<Link>,
) -> Response {
    let merchant = Id(merchant);
    let expected = link_signature(
        &state.gateway().link_secret,
        merchant,
        from,
        to,
        link.expires,
    );
    let genuine = expected.len() == link.sig.len()
        && expected
            .bytes()
            .zip(link.sig.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0;
    if !genuine || link.expires < state.now() || to - from > 31 {
        return (
            StatusCode::FORBIDDEN,
            "this link is not valid or has expired\n",
        )
            .into_response();
    }
    match statement(&state, merchant, from, to).await {
        Ok(csv) => {
            let name = format!(
                "attachment; filename=\"formica-{merchant}-{}.csv\"",
                time::format_day(from)
            );
            (
                [
                    (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
                    (header::CONTENT_DISPOSITION, name),
                ],
                csv,
            )
                .into_response()
        }
        Err(error) => error.into_response(),
    }
}

fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_owned()
    }
}

/// The CSV of the merchant's business days [from, to): a line per payment and per refund,
/// then totals (`net` = payments - refunds - fees, what the days add to the balance).
pub async fn statement(
    state: &AppState,
    merchant: Id,
    from: i64,
    to: i64,
) -> Result<String, crate::ApiError> {
    let settings = state.engine().settings();
    let offset = settings.day_offset_seconds;
    let start = |day: i64| u64::try_from(day * 86_400 - offset).unwrap_or(0) * 1_000_000_000;
    let (from_ns, to_ns) = (start(from), start(to));
    let trades = state
        .pool()
        .read(move |sql| formica_store::merchant::trades_touched(sql, merchant, from_ns, to_ns))
        .await?;
    let mut csv = String::from(
        "type,time,trade_no,out_trade_no,out_request_no,subject,amount,fee,currency\n",
    );
    let (mut paid, mut refunded, mut fees) = (0i128, 0i128, 0i128);
    let mut currency = None;
    for trade in &trades {
        currency = Some(trade.amount.currency);
        let decimal = |minor: i128| {
            let money = Money::new(
                u64::try_from(minor.abs()).unwrap_or(0),
                trade.amount.currency,
            );
            if minor < 0 {
                format!("-{}", money.decimal())
            } else {
                money.decimal()
            }
        };
        if let Some(at) = trade.paid_at.filter(|at| (from_ns..to_ns).contains(at)) {
            let fee = trade.fee.map_or(0, |f| i128::from(f.amount_minor));
            paid += i128::from(trade.amount.amount_minor);
            fees += fee;
            csv.push_str(&format!(
                "payment,{},{},{},,{},{},{},{}\n",
                time::format(at, offset),
                trade.id,
                csv_field(&trade.out_trade_no),
                csv_field(&trade.subject),
                decimal(i128::from(trade.amount.amount_minor)),
                decimal(fee),
                trade.amount.currency.code(),
            ));
        }
        for refund in trade
            .refunds
            .iter()
            .filter(|r| (from_ns..to_ns).contains(&r.at))
        {
            refunded += i128::from(refund.amount.amount_minor);
            fees -= i128::from(refund.fee_back.amount_minor);
            csv.push_str(&format!(
                "refund,{},{},{},{},{},{},{},{}\n",
                time::format(refund.at, offset),
                trade.id,
                csv_field(&trade.out_trade_no),
                csv_field(&refund.out_request_no),
                csv_field(&trade.subject),
                decimal(-i128::from(refund.amount.amount_minor)),
                decimal(-i128::from(refund.fee_back.amount_minor)),
                trade.amount.currency.code(),
            ));
        }
    }
    let currency = currency.unwrap_or(formica_core::Currency::CNY);
    let total = |minor: i128| {
        let money = Money::new(u64::try_from(minor.abs()).unwrap_or(0), currency);
        if minor < 0 {
            format!("-{}", money.decimal())
        } else {
            money.decimal()
        }
    };
    csv.push_str(&format!(
        "# from {} to {} (exclusive)\n# payments,{}\n# refunds,{}\n# fees,{}\n# net,{}\n",
        time::format_day(from),
        time::format_day(to),
        total(paid),
        total(refunded),
        total(fees),
        total(paid - refunded - fees),
    ));
    Ok(csv)
}
