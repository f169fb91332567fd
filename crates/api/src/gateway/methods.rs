//! The gateway's business methods (§9): each turns a verified request into a product command
//! or a read, and the outcome into the fields Alipay's SDKs expect (amounts as 2-decimal
//! strings, times as `yyyy-MM-dd HH:mm:ss` in the platform's zone).

use formica_core::merchant::{CodeUse, MerchantCommand, RefundReceipt};
use formica_core::trade::{NewTrade, Trade, TradeCommand, TradeStatus};
use formica_core::{
    Command, CommandError, Currency, Id, IdempotencyKey, Money, Outcome, ProductCommand,
    ProductRequest, Refusal, Reply,
};
use formica_engine::EngineError;
use serde_json::{Map, Value, json};

use super::{Answer, GatewayError, Request};
use crate::AppState;

/// Longest out_trade_no / out_request_no / out_biz_no (§8.3).
const NUMBER_MAX: usize = 64;

/// Amounts the gateway takes: 0.01 to 100,000,000 (§1.4).
const AMOUNT_MAX_MINOR: u64 = 100_000_000 * 100;

/// How long a till's trade waits for payment unless the request says (§8.1).
const TILL_PAY_TIMEOUT_NS: u64 = 2 * 3600 * 1_000_000_000;

/// How long other gateway trades wait.
const ONLINE_PAY_TIMEOUT_NS: u64 = 15 * 24 * 3600 * 1_000_000_000;

pub(super) async fn run(state: &AppState, request: Request) -> Result<Answer, GatewayError> {
    let object = match request.method.as_str() {
        "alipay.trade.precreate" => precreate(state, &request).await?,
        "alipay.trade.pay" => pay(state, &request).await?,
        "alipay.trade.create" => create(state, &request).await?,
        "alipay.trade.query" => query(state, &request).await?,
        "alipay.trade.refund" => refund(state, &request).await?,
        "alipay.trade.fastpay.refund.query" => refund_query(state, &request).await?,
        "alipay.trade.close" => close(state, &request).await?,
        "alipay.trade.cancel" => cancel(state, &request).await?,
        "alipay.trade.page.pay" | "alipay.trade.wap.pay" => {
            let trade = open_trade(state, &request, ONLINE_PAY_TIMEOUT_NS).await?;
            // The checkout is a page of its own, which the buyer can reload.
            let location = format!("/checkout/{}", trade.id);
            let redirect = (
                axum::http::StatusCode::SEE_OTHER,
                [(axum::http::header::LOCATION, location)],
            );
            return Ok(Answer::Page(axum::response::IntoResponse::into_response(
                redirect,
            )));
        }
        "alipay.fund.trans.uni.transfer" => transfer(state, &request).await?,
        "alipay.fund.auth.order.freeze" => super::fund_auth::freeze(state, &request).await?,
        "alipay.fund.auth.order.app.freeze" => {
            return super::fund_auth::app_freeze(state, &request).await;
        }
        "alipay.fund.auth.order.unfreeze" => super::fund_auth::unfreeze(state, &request).await?,
        "alipay.fund.auth.operation.cancel" => super::fund_auth::cancel(state, &request).await?,
        "alipay.fund.auth.operation.detail.query" => {
            super::fund_auth::detail_query(state, &request).await?
        }
        "alipay.data.dataservice.bill.downloadurl.query" => {
            super::bill::download_url(state, &request)?
        }
        other => {
            return Err(GatewayError::new(
                "40002",
                "isv.invalid-method",
                format!("unknown method {other}"),
            ));
        }
    };
    Ok(Answer::Json(object))
}

/// `code` 10000 and these fields.
pub(super) fn success(fields: Map<String, Value>) -> Map<String, Value> {
    let mut object = Map::new();
    object.insert("code".into(), "10000".into());
    object.insert("msg".into(), "Success".into());
    object.extend(fields);
    object
}

pub(super) fn fields(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

/// A biz_content field as text: a string as it is, a number as its literal.
pub(super) fn text_field(request: &Request, name: &str) -> Option<String> {
    match request.biz.get(name)? {
        Value::String(text) if !text.is_empty() => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        _ => None,
    }
}

pub(super) fn required(request: &Request, name: &str) -> Result<String, GatewayError> {
    text_field(request, name)
        .ok_or_else(|| GatewayError::invalid(format!("biz_content is missing {name}")))
}

/// An amount field, exact: a JSON string or number read as a decimal, never as a float.
/// A number's literal comes back from serde_json's shortest round-trip form, which is the
/// literal itself for every amount with at most 17 significant digits.
pub(crate) fn amount(
    request: &Request,
    name: &str,
    currency: Currency,
) -> Result<Money, GatewayError> {
    let text = required(request, name)?;
    let money =
        Money::parse(&text, currency).map_err(|e| GatewayError::invalid(format!("{name}: {e}")))?;
    if money.amount_minor == 0 || money.amount_minor > AMOUNT_MAX_MINOR {
        return Err(GatewayError::invalid(format!(
            "{name} must be from 0.01 to 100000000"
        )));
    }
    Ok(money)
}

/// A merchant's number: letters, digits, `_` and `-`, at most 64.
pub(super) fn number(request: &Request, name: &str) -> Result<Option<String>, GatewayError> {
    let Some(value) = text_field(request, name) else {
        return Ok(None);
    };
    let fine = value.len() <= NUMBER_MAX
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if !fine {
        return Err(GatewayError::invalid(format!(
            "{name} must be at most 64 letters, digits, _ or -"
        )));
    }
    Ok(Some(value))
}

pub(crate) fn required_number(request: &Request, name: &str) -> Result<String, GatewayError> {
    number(request, name)?
        .ok_or_else(|| GatewayError::invalid(format!("biz_content is missing {name}")))
}

pub(crate) fn subject(request: &Request) -> Result<String, GatewayError> {
    let subject = required(request, "subject")?;
    if subject.len() > 256 {
        return Err(GatewayError::invalid("subject is longer than 256 bytes"));
    }
    Ok(subject)
}

/// `timeout_express` (`90m`, `2h`, `3d`, `1c` = until midnight) or `time_expire`, as the
/// moment the unpaid trade closes, for a request made at `now` under `settings`.
pub(crate) fn pay_by(
    now: u64,
    settings: &formica_core::Settings,
    request: &Request,
    default_ns: u64,
) -> Result<u64, GatewayError> {
    let offset = settings.day_offset_seconds;
    if let Some(expire) = text_field(request, "time_expire") {
        let seconds = super::time::parse(&expire)
            .ok_or_else(|| GatewayError::invalid("time_expire must be yyyy-MM-dd HH:mm:ss"))?;
        let at = u64::try_from(seconds - offset)
            .unwrap_or(0)
            .saturating_mul(1_000_000_000);
        if at <= now || at > now.saturating_add(ONLINE_PAY_TIMEOUT_NS) {
            return Err(GatewayError::invalid(
                "time_expire must be in the next 15 days",
            ));
        }
        return Ok(at);
    }
    let Some(express) = text_field(request, "timeout_express") else {
        return Ok(now.saturating_add(default_ns));
    };
    let invalid = || GatewayError::invalid("timeout_express must be like 90m, 2h, 15d or 1c");
    // The unit is the last character, which need not be one byte; the count is digits only
    // and may be large, so the span is computed with checked arithmetic.
    let unit = express.chars().last().ok_or_else(invalid)?;
    let count = &express[..express.len() - unit.len_utf8()];
    if count.is_empty() || !count.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid());
    }
    let count: u64 = count.parse().map_err(|_| invalid())?;
    let minute = 60 * 1_000_000_000u64;
    let span = match unit {
        'm' => count.checked_mul(minute),
        'h' => count.checked_mul(60 * minute),
        'd' => count.checked_mul(24 * 60 * minute),
        'c' if count == 1 => {
            let tomorrow = settings.day(now) + 1;
            let midnight = u64::try_from(tomorrow * 86_400 - offset).unwrap_or(0) * 1_000_000_000;
            Some(midnight.saturating_sub(now))
        }
        _ => None,
    }
    .ok_or_else(invalid)?;
    if span < minute || span > 15 * 24 * 60 * minute {
        return Err(invalid());
    }
    Ok(now.saturating_add(span))
}

fn new_trade(
    state: &AppState,
    request: &Request,
    default_timeout: u64,
) -> Result<NewTrade, GatewayError> {
    let keys = &request.keys;
    Ok(NewTrade {
        seller_id: keys.app.merchant_id,
        buyer_id: None,
        out_trade_no: required_number(request, "out_trade_no")?,
        subject: subject(request)?,
        amount: amount(request, "total_amount", keys.currency)?,
        escrow: keys.app.escrow,
        app_id: Some(keys.app.app_id.clone()),
        notify_url: request
            .param("notify_url")
            .map(|url| crate::webhook::callback_url(state, url))
            .transpose()
            .map_err(|why| GatewayError::invalid(format!("notify_url: {why}")))?,
        return_url: request
            .param("return_url")
            .map(|url| {
                // The buyer's browser goes there: a web address, never `javascript:`.
                let web = (url.starts_with("http://") || url.starts_with("https://"))
                    && url.len() <= 2048;
                web.then(|| url.to_owned())
                    .ok_or_else(|| GatewayError::invalid("return_url must be an http(s) URL"))
            })
            .transpose()?,
        passback_params: text_field(request, "passback_params"),
        pay_by: Some(pay_by(
            state.now(),
            state.engine().settings(),
            request,
            default_timeout,
        )?),
    })
}

/// What the engine said, as a refusal the method maps, or a gateway error.
pub(super) enum Failed {
    Refused(Refusal),
    Gateway(GatewayError),
}

pub(super) async fn submit(
    state: &AppState,
    command: ProductCommand,
    idempotency: Option<IdempotencyKey>,
) -> Result<Outcome, Failed> {
    let reply = state
        .engine()
        .submit(Command::Product(ProductRequest {
            command,
            idempotency,
        }))
        .await;
    match reply {
        Ok(Reply::Product(outcome)) => Ok(outcome),
        Ok(other) => Err(Failed::Gateway(system(&format!(
            "unexpected reply {other:?}"
        )))),
        Err(EngineError::Rejected(CommandError::Refused(refusal))) => Err(Failed::Refused(refusal)),
        Err(EngineError::Rejected(CommandError::IdempotencyKeyReused)) => {
            Err(Failed::Gateway(GatewayError::business(
                "INVALID_PARAMETER",
                "this out_biz_no was used for a different transfer",
            )))
        }
        Err(EngineError::Busy) => Err(Failed::Gateway(GatewayError::business(
            "ACQ.SYSTEM_ERROR",
            "the platform is busy; query, then retry",
        ))),
        Err(other) => Err(Failed::Gateway(system(&other))),
    }
}

pub(super) fn system(error: &dyn std::fmt::Debug) -> GatewayError {
    tracing::error!(?error, "gateway request failed");
    GatewayError::new(
        "20000",
        "isp.unknow-error",
        "the platform failed; query, then retry",
    )
}

pub(super) fn store_error(error: crate::ApiError) -> GatewayError {
    system(&error)
}

/// The usual map of a trade refusal to an `ACQ.*` sub code.
pub(super) fn trade_refusal(refusal: Refusal) -> GatewayError {
    let (code, message) = match &refusal {
        Refusal::InsufficientFunds | Refusal::WalletNotFound { .. } => {
            ("ACQ.BUYER_BALANCE_NOT_ENOUGH", refusal.to_string())
        }
        Refusal::DailyLimitExceeded { .. } => (
            "ACQ.BUYER_PAYMENT_AMOUNT_DAY_LIMIT_ERROR",
            refusal.to_string(),
        ),
        Refusal::BuyerIsSeller => ("ACQ.BUYER_SELLER_EQUAL", refusal.to_string()),
        Refusal::NotTheBuyer => ("ACQ.TRADE_BUYER_NOT_MATCH", refusal.to_string()),
        Refusal::DuplicateOutTradeNo => ("ACQ.CONTEXT_INCONSISTENT", refusal.to_string()),
        Refusal::TradeNotFound => ("ACQ.TRADE_NOT_EXIST", "no such trade".to_owned()),
        Refusal::TradeStatusInvalid {
            status: TradeStatus::TradeFinished,
        } => ("ACQ.TRADE_HAS_FINISHED", refusal.to_string()),
        Refusal::TradeStatusInvalid { .. } => ("ACQ.TRADE_STATUS_ERROR", refusal.to_string()),
        Refusal::MerchantBalanceTooLow => ("ACQ.SELLER_BALANCE_NOT_ENOUGH", refusal.to_string()),
        Refusal::DiscordantRepeat => ("ACQ.DISCORDANT_REPEAT_REQUEST", refusal.to_string()),
        Refusal::RefundTooLarge { .. } => ("ACQ.REASON_TRADE_REFUND_FEE_ERR", refusal.to_string()),
        Refusal::AmountTooLarge => ("ACQ.TOTAL_FEE_EXCEED", refusal.to_string()),
        Refusal::CancelTooLate => ("ACQ.TRADE_CANCEL_TIME_OUT", refusal.to_string()),
        Refusal::PaymentCodeUsed => return code_invalid(),
        Refusal::RefundedAlready => ("ACQ.REASON_TRADE_REFUND_FEE_ERR", refusal.to_string()),
        _ => ("ACQ.INVALID_PARAMETER", refusal.to_string()),
    };
    GatewayError::business(code, message)
}

fn refused(failed: Failed) -> GatewayError {
    match failed {
        Failed::Refused(refusal) => trade_refusal(refusal),
        Failed::Gateway(error) => error,
    }
}

/// The trade the request names: `trade_no` wins over `out_trade_no` (§8.3).
async fn find_trade(state: &AppState, request: &Request) -> Result<Trade, GatewayError> {
    let merchant = request.merchant();
    let trade_no = text_field(request, "trade_no");
    let out_trade_no = number(request, "out_trade_no")?;
    let trade = match (trade_no, out_trade_no) {
        (Some(trade_no), _) => {
            let Ok(id) = trade_no.parse::<Id>() else {
                return Err(not_exist());
            };
            state
                .pool()
                .read(move |sql| formica_store::trade::trade(sql, id))
                .await
                .map_err(store_error)?
        }
        (None, Some(number)) => state
            .pool()
            .read(move |sql| formica_store::trade::by_out_trade_no(sql, merchant, &number))
            .await
            .map_err(store_error)?,
        (None, None) => {
            return Err(GatewayError::invalid(
                "give out_trade_no or trade_no in biz_content",
            ));
        }
    };
    trade
        .filter(|t| t.seller_id == merchant)
        .ok_or_else(not_exist)
}

fn not_exist() -> GatewayError {
    GatewayError::business("ACQ.TRADE_NOT_EXIST", "no such trade")
}

/// The trade status the SDKs know (§8.1): escrow's inner states are paid, as far as the
/// merchant's code is concerned, and are shown in `escrow_status` (§10).
pub(crate) fn gateway_status(trade: &Trade) -> &'static str {
    match trade.status {
        TradeStatus::WaitBuyerPay => "WAIT_BUYER_PAY",
        TradeStatus::TradeFinished => "TRADE_FINISHED",
        TradeStatus::TradeClosed => "TRADE_CLOSED",
        _ => "TRADE_SUCCESS",
    }
}

/// A login as Alipay shows it to merchants: `138****0001`, `a***@example.com`.
pub(crate) fn mask_login(login: &str) -> String {
    if let Some((name, domain)) = login.split_once('@') {
        let first: String = name.chars().take(1).collect();
        return format!("{first}***@{domain}");
    }
    let digits = login.trim_start_matches("+86").trim_start_matches('+');
    if digits.len() < 8 {
        return "***".to_owned();
    }
    format!("{}****{}", &digits[..3], &digits[digits.len() - 4..])
}

pub(crate) async fn buyer_login(state: &AppState, trade: &Trade) -> Option<String> {
    masked_login(state, trade.buyer_id?).await
}

/// A person's login, masked (`mask_login`), if they are there to read.
pub(crate) async fn masked_login(state: &AppState, person: Id) -> Option<String> {
    state
        .pool()
        .read(move |sql| formica_store::people::user(sql, person))
        .await
        .ok()
        .flatten()
        .map(|user| mask_login(&user.login))
}

/// The fields that describe a trade, as query, pay and notifications show them.
pub(crate) fn trade_fields(
    trade: &Trade,
    buyer_logon_id: Option<&str>,
    offset: i64,
) -> Map<String, Value> {
    let zero = Money::new(0, trade.amount.currency).decimal();
    let paid = trade.paid_at.is_some();
    let amount = trade.amount.decimal();
    let paid_amount = if paid { amount.clone() } else { zero.clone() };
    let mut map = fields(json!({
        "trade_no": trade.id.to_string(),
        "out_trade_no": trade.out_trade_no,
        "trade_status": gateway_status(trade),
        "total_amount": amount,
        "receipt_amount": paid_amount,
        "buyer_pay_amount": paid_amount,
        "invoice_amount": paid_amount,
        "point_amount": zero,
        "subject": trade.subject,
        "trans_currency": trade.amount.currency.code(),
        "settle_currency": trade.amount.currency.code(),
    }));
    if let Some(buyer) = trade.buyer_id {
        map.insert("buyer_user_id".into(), buyer.to_string().into());
    }
    if let Some(login) = buyer_logon_id {
        map.insert("buyer_logon_id".into(), login.into());
    }
    if let Some(at) = trade.paid_at {
        map.insert(
            "send_pay_date".into(),
            super::time::format(at, offset).into(),
        );
        map.insert(
            "fund_bill_list".into(),
            json!([{"fund_channel": "ALIPAYACCOUNT", "amount": trade.amount.decimal()}]),
        );
    }
    if trade.refunded.amount_minor > 0 {
        map.insert("refund_fee".into(), trade.refunded.decimal().into());
    }
    if trade.escrow && paid {
        map.insert("escrow_status".into(), trade.status.as_str().into());
    }
    map
}

pub(super) fn offset(state: &AppState) -> i64 {
    state.engine().settings().day_offset_seconds
}

/// Whether an existing trade is the one this request describes (§8.3).
fn same_content(trade: &Trade, new: &NewTrade) -> bool {
    trade.amount == new.amount && trade.subject == new.subject
}

/// The trade with this out_trade_no if the same request made it before, or a new unpaid one.
async fn open_trade(
    state: &AppState,
    request: &Request,
    default_timeout: u64,
) -> Result<Trade, GatewayError> {
    let mut new = new_trade(state, request, default_timeout)?;
    if let Some(buyer) = named_buyer(state, request).await? {
        new.buyer_id = Some(buyer);
    }
    if let Some(existing) = existing(state, request, &new).await? {
        return match existing.status {
            TradeStatus::WaitBuyerPay => Ok(existing),
            TradeStatus::TradeClosed => Err(GatewayError::business(
                "ACQ.TRADE_HAS_CLOSE",
                "the trade is closed",
            )),
            _ => Err(GatewayError::business(
                "ACQ.TRADE_HAS_SUCCESS",
                "the trade is paid",
            )),
        };
    }
    match submit(
        state,
        ProductCommand::Merchant(MerchantCommand::CreateTrade(Box::new(new))),
        None,
    )
    .await
    {
        Ok(Outcome::Trade(trade)) => Ok(trade),
        Ok(other) => Err(system(&other)),
        Err(Failed::Refused(Refusal::DuplicateOutTradeNo)) => {
            // Another request with this number won the race: answer as for a retry.
            Box::pin(open_trade(state, request, default_timeout)).await
        }
        Err(failed) => Err(refused(failed)),
    }
}

/// The existing trade with the request's out_trade_no, if its content matches; a different
/// content is `ACQ.CONTEXT_INCONSISTENT`.
async fn existing(
    state: &AppState,
    request: &Request,
    new: &NewTrade,
) -> Result<Option<Trade>, GatewayError> {
    let merchant = request.merchant();
    let number = new.out_trade_no.clone();
    let found = state
        .pool()
        .read(move |sql| formica_store::trade::by_out_trade_no(sql, merchant, &number))
        .await
        .map_err(store_error)?;
    match found {
        Some(trade) if !same_content(&trade, new) => Err(GatewayError::business(
            "ACQ.CONTEXT_INCONSISTENT",
            "a trade with this out_trade_no exists with other content",
        )),
        other => Ok(other),
    }
}

/// `buyer_id` (a user id) or `buyer_logon_id` (a login) from biz_content.
async fn named_buyer(state: &AppState, request: &Request) -> Result<Option<Id>, GatewayError> {
    if let Some(id) = text_field(request, "buyer_id") {
        let id: Id = id
            .parse()
            .map_err(|_| GatewayError::invalid("buyer_id is not a Formica user id"))?;
        return Ok(Some(id));
    }
    let Some(login) = text_field(request, "buyer_logon_id") else {
        return Ok(None);
    };
    let user = user_by_login(state, &login).await?;
    user.map(|u| Some(u.id)).ok_or_else(|| {
        GatewayError::business("ACQ.TRADE_BUYER_NOT_MATCH", "no buyer with this login")
    })
}

async fn user_by_login(
    state: &AppState,
    login: &str,
) -> Result<Option<formica_store::people::User>, GatewayError> {
    let Ok(login) = crate::people::normalize_login(login) else {
        return Ok(None);
    };
    state
        .pool()
        .read(move |sql| formica_store::people::user_by_login(sql, &login))
        .await
        .map_err(store_error)
}

async fn precreate(
    state: &AppState,
    request: &Request,
) -> Result<Map<String, Value>, GatewayError> {
    let trade = open_trade(state, request, TILL_PAY_TIMEOUT_NS).await?;
    Ok(success(fields(json!({
        "out_trade_no": trade.out_trade_no,
        "qr_code": format!("{}/qr/{}", request.base_url, trade.id),
    }))))
}

async fn create(state: &AppState, request: &Request) -> Result<Map<String, Value>, GatewayError> {
    let trade = open_trade(state, request, ONLINE_PAY_TIMEOUT_NS).await?;
    Ok(success(fields(json!({
        "out_trade_no": trade.out_trade_no,
        "trade_no": trade.id.to_string(),
    }))))
}

async fn pay(state: &AppState, request: &Request) -> Result<Map<String, Value>, GatewayError> {
    if text_field(request, "auth_no").is_some() {
        // Charging a fund authorisation, not scanning a code.
        return super::fund_auth::pay(state, request).await;
    }
    let scene = required(request, "scene")?;
    if scene != "bar_code" && scene != "wave_code" {
        return Err(GatewayError::invalid("scene must be bar_code or wave_code"));
    }
    let auth_code = required(request, "auth_code")?;
    let new = new_trade(state, request, TILL_PAY_TIMEOUT_NS)?;
    let (out_trade_no, content) = (new.out_trade_no.clone(), (new.amount, new.subject.clone()));
    let before = existing(state, request, &new).await?;
    let paid = match before {
        Some(trade) if trade.paid_at.is_some() && trade.status != TradeStatus::TradeClosed => {
            // The till retried a payment that went through: the same answer.
            trade
        }
        Some(trade) if trade.status == TradeStatus::TradeClosed => {
            return Err(GatewayError::business(
                "ACQ.TRADE_HAS_CLOSE",
                "the trade is closed",
            ));
        }
        Some(trade) if trade.status == TradeStatus::TradeFinished => {
            return Err(GatewayError::business(
                "ACQ.TRADE_HAS_SUCCESS",
                "the trade is paid",
            ));
        }
        unpaid => {
            let (buyer, code) = find_code(state, &auth_code).await?;
            let command = ProductCommand::Merchant(match unpaid {
                Some(trade) => MerchantCommand::PayWithCode {
                    merchant_id: request.merchant(),
                    trade_id: trade.id,
                    buyer_id: buyer,
                    code,
                },
                None => MerchantCommand::Charge {
                    trade: Box::new(new),
                    buyer_id: buyer,
                    code: Some(code),
                },
            });
            let submitted = submit(state, command, None).await;
            // A retry that raced its first try (the till timed out while it was queued): if
            // the first one paid, this is the same payment.
            let raced = matches!(
                submitted,
                Err(Failed::Refused(
                    Refusal::DuplicateOutTradeNo
                        | Refusal::PaymentCodeUsed
                        | Refusal::TradeStatusInvalid { .. }
                ))
            );
            let first = if raced {
                paid_already(state, request, &out_trade_no, &content).await
            } else {
                None
            };
            match (submitted, first) {
                (_, Some(paid)) => paid,
                (Ok(Outcome::Trade(trade)), None) => trade,
                (Ok(other), None) => return Err(system(&other)),
                (Err(failed), None) => {
                    return Err(refused(failed)
                        .with("buyer_pay_amount", "0.00")
                        .with("invoice_amount", "0.00")
                        .with("point_amount", "0.00")
                        .with("receipt_amount", "0.00"));
                }
            }
        }
    };
    let login = buyer_login(state, &paid).await;
    let mut answer = trade_fields(&paid, login.as_deref(), offset(state));
    answer.remove("trade_status");
    answer.remove("subject");
    if let Some(at) = paid.paid_at {
        answer.insert(
            "gmt_payment".into(),
            super::time::format(at, offset(state)).into(),
        );
    }
    answer.remove("send_pay_date");
    Ok(success(answer))
}

/// The merchant's paid trade with this number and content, if there is one.
async fn paid_already(
    state: &AppState,
    request: &Request,
    out_trade_no: &str,
    (amount, subject): &(Money, String),
) -> Option<Trade> {
    let (merchant, number) = (request.merchant(), out_trade_no.to_owned());
    let trade = state
        .pool()
        .read(move |sql| formica_store::trade::by_out_trade_no(sql, merchant, &number))
        .await
        .ok()??;
    (trade.paid_at.is_some() && trade.amount == *amount && trade.subject == *subject)
        .then_some(trade)
}

fn code_invalid() -> GatewayError {
    GatewayError::business(
        "ACQ.PAYMENT_AUTH_CODE_INVALID",
        "the payment code is invalid, expired or used; ask the buyer to refresh it",
    )
}

/// The owner of an issued, unexpired payment code, and the code for the payment to use up;
/// or `ACQ.PAYMENT_AUTH_CODE_INVALID`.
pub(super) async fn find_code(state: &AppState, code: &str) -> Result<(Id, CodeUse), GatewayError> {
    if !crate::merchant::looks_like_payment_code(code) {
        return Err(code_invalid());
    }
    let (digits, now) = (code.to_owned(), state.now());
    let (buyer, expires_at) = state
        .pool()
        .read(move |sql| formica_store::merchant::payment_code(sql, &digits, now))
        .await
        .map_err(store_error)?
        .ok_or_else(code_invalid)?;
    Ok((
        buyer,
        CodeUse {
            code: code.to_owned(),
            expires_at,
        },
    ))
}

async fn query(state: &AppState, request: &Request) -> Result<Map<String, Value>, GatewayError> {
    let trade = find_trade(state, request).await?;
    let login = buyer_login(state, &trade).await;
    Ok(success(trade_fields(
        &trade,
        login.as_deref(),
        offset(state),
    )))
}

async fn refund(state: &AppState, request: &Request) -> Result<Map<String, Value>, GatewayError> {
    let trade = find_trade(state, request).await?;
    let currency = trade.amount.currency;
    let refund_amount = amount(request, "refund_amount", currency)?;
    let given = number(request, "out_request_no")?;
    // Without an out_request_no the refund is the whole trade, identified by its number.
    let out_request_no = given.clone().unwrap_or_else(|| trade.out_trade_no.clone());
    let refund_fee = |t: &Trade| t.refunded.decimal();
    if given.is_none()
        && refund_amount != trade.amount
        && !trade
            .refunds
            .iter()
            .any(|r| r.out_request_no == out_request_no)
    {
        return Err(GatewayError::business(
            "ACQ.REFUND_AMT_NOT_EQUAL_TOTAL",
            "a partial refund needs an out_request_no",
        )
        .with("refund_fee", refund_fee(&trade))
        .with("send_back_fee", "0.00"));
    }
    let login = buyer_login(state, &trade).await;
    let answer = |receipt: &RefundReceipt| {
        let mut map = fields(json!({
            "trade_no": receipt.trade.id.to_string(),
            "out_trade_no": receipt.trade.out_trade_no,
            "fund_change": if receipt.fund_change { "Y" } else { "N" },
            "refund_fee": receipt.trade.refunded.decimal(),
            "send_back_fee": if receipt.fund_change {
                receipt.refund.amount.decimal()
            } else {
                Money::new(0, currency).decimal()
            },
            "gmt_refund_pay": super::time::format(receipt.refund.at, offset(state)),
        }));
        if let Some(buyer) = receipt.trade.buyer_id {
            map.insert("buyer_user_id".into(), buyer.to_string().into());
        }
        if let Some(login) = &login {
            map.insert("buyer_logon_id".into(), login.as_str().into());
        }
        success(map)
    };
    // A refund of a trade that is over: only a retry of a refund that was made is answered.
    let ended = |trade: Trade| {
        if let Some(done) = trade
            .refunds
            .iter()
            .find(|r| r.out_request_no == out_request_no)
        {
            if done.amount != refund_amount {
                return Err(trade_refusal(Refusal::DiscordantRepeat));
            }
            return Ok(answer(&RefundReceipt {
                refund: done.clone(),
                trade,
                fund_change: false,
            }));
        }
        let (code, message) = if trade.status == TradeStatus::TradeFinished {
            ("ACQ.TRADE_HAS_FINISHED", "the trade is finished")
        } else {
            ("ACQ.TRADE_STATUS_ERROR", "the trade is closed")
        };
        Err(GatewayError::business(code, message)
            .with("refund_fee", refund_fee(&trade))
            .with("send_back_fee", "0.00"))
    };
    if trade.status.is_final() {
        return ended(trade);
    }
    let command = MerchantCommand::Refund {
        merchant_id: request.merchant(),
        trade_id: trade.id,
        out_request_no: out_request_no.clone(),
        amount: refund_amount,
        reason: text_field(request, "refund_reason").unwrap_or_default(),
    };
    match submit(state, ProductCommand::Merchant(command), None).await {
        Ok(Outcome::Refund(receipt)) => Ok(answer(&receipt)),
        Ok(other) => Err(system(&other)),
        // The trade ended while this waited (a full refund, perhaps this one's first try).
        Err(Failed::Refused(Refusal::TradeNotFound)) => ended(find_trade(state, request).await?),
        Err(failed) => Err(refused(failed)
            .with("refund_fee", refund_fee(&trade))
            .with("send_back_fee", "0.00")),
    }
}

async fn refund_query(
    state: &AppState,
    request: &Request,
) -> Result<Map<String, Value>, GatewayError> {
    let out_request_no = required_number(request, "out_request_no")?;
    let trade = find_trade(state, request).await?;
    let Some(refund) = trade
        .refunds
        .iter()
        .find(|r| r.out_request_no == out_request_no)
    else {
        // 10000 without refund fields: the query ran and no such refund succeeded (§9.6).
        return Ok(success(fields(json!({
            "trade_no": trade.id.to_string(),
            "out_trade_no": trade.out_trade_no,
        }))));
    };
    Ok(success(fields(json!({
        "trade_no": trade.id.to_string(),
        "out_trade_no": trade.out_trade_no,
        "out_request_no": refund.out_request_no,
        "total_amount": trade.amount.decimal(),
        "refund_amount": refund.amount.decimal(),
        "refund_reason": refund.reason,
        "refund_status": "REFUND_SUCCESS",
        "gmt_refund_pay": super::time::format(refund.at, offset(state)),
        "send_back_fee": refund.amount.decimal(),
    }))))
}

async fn close(state: &AppState, request: &Request) -> Result<Map<String, Value>, GatewayError> {
    let trade = find_trade(state, request).await?;
    if trade.status != TradeStatus::WaitBuyerPay {
        return Err(GatewayError::business(
            "ACQ.TRADE_STATUS_ERROR",
            format!(
                "the trade is {}, not waiting for payment",
                gateway_status(&trade)
            ),
        ));
    }
    let command = TradeCommand::Close {
        trade_id: trade.id,
        seller_id: request.merchant(),
    };
    match submit(state, ProductCommand::Trade(command), None).await {
        Ok(Outcome::Trade(trade)) => Ok(success(fields(json!({
            "trade_no": trade.id.to_string(),
            "out_trade_no": trade.out_trade_no,
        })))),
        Ok(other) => Err(system(&other)),
        Err(failed) => Err(refused(failed)),
    }
}

async fn cancel(state: &AppState, request: &Request) -> Result<Map<String, Value>, GatewayError> {
    let trade = match find_trade(state, request).await {
        // The payment this cancel undoes may still be queued (the till gave up waiting for
        // it): the writer's tick answers once everything queued before it is written, so the
        // second look sees that payment if there is one.
        Err(error) if error.sub_code == "ACQ.TRADE_NOT_EXIST" => {
            if state.engine().tick().await.is_err() {
                // The queue is full: what is queued cannot be waited for. Tell the till to
                // ask again rather than that nothing was paid.
                return Err(GatewayError::business(
                    "ACQ.SYSTEM_ERROR",
                    "the platform is busy; cancel again",
                )
                .with("retry_flag", "Y"));
            }
            find_trade(state, request).await?
        }
        found => found?,
    };
    let answer = |trade: &Trade| {
        let action = if trade.paid_at.is_some() {
            "refund"
        } else {
            "close"
        };
        let mut map = fields(json!({
            "trade_no": trade.id.to_string(),
            "out_trade_no": trade.out_trade_no,
            "retry_flag": "N",
            "action": action,
        }));
        if let Some(refund) = trade.refunds.last() {
            map.insert(
                "gmt_refund_pay".into(),
                super::time::format(refund.at, offset(state)).into(),
            );
        }
        success(map)
    };
    match trade.status {
        // Cancelling twice answers as the first time did.
        TradeStatus::TradeClosed if trade.close_reason.as_deref() == Some("cancelled") => {
            return Ok(answer(&trade));
        }
        TradeStatus::TradeClosed if trade.paid_at.is_none() => return Ok(answer(&trade)),
        TradeStatus::TradeFinished => {
            return Err(GatewayError::business(
                "ACQ.TRADE_HAS_FINISHED",
                "the trade is finished",
            ));
        }
        TradeStatus::TradeClosed => {
            return Err(GatewayError::business(
                "ACQ.REASON_TRADE_REFUND_FEE_ERR",
                "the trade was refunded",
            ));
        }
        _ => {}
    }
    let command = MerchantCommand::Cancel {
        merchant_id: request.merchant(),
        trade_id: trade.id,
    };
    match submit(state, ProductCommand::Merchant(command), None).await {
        Ok(Outcome::Trade(trade)) => Ok(answer(&trade)),
        Ok(other) => Err(system(&other)),
        // Another cancel closed it while this one waited: the same answer.
        Err(Failed::Refused(Refusal::TradeNotFound)) => {
            let trade = find_trade(state, request).await?;
            if trade.close_reason.as_deref() == Some("cancelled") {
                Ok(answer(&trade))
            } else {
                Err(not_exist())
            }
        }
        Err(failed) => Err(refused(failed)),
    }
}

async fn transfer(state: &AppState, request: &Request) -> Result<Map<String, Value>, GatewayError> {
    let out_biz_no = required_number(request, "out_biz_no")?;
    let trans_amount = amount(request, "trans_amount", request.keys.currency)?;
    let payee = match request.biz.get("payee_info") {
        Some(Value::Object(payee)) => payee.clone(),
        _ => return Err(GatewayError::invalid("biz_content is missing payee_info")),
    };
    let get = |name: &str| payee.get(name).and_then(Value::as_str).map(str::to_owned);
    let identity =
        get("identity").ok_or_else(|| GatewayError::invalid("payee_info is missing identity"))?;
    let identity_type = get("identity_type")
        .ok_or_else(|| GatewayError::invalid("payee_info is missing identity_type"))?;
    let payee_missing = || GatewayError::business("PAYEE_NOT_EXIST", "no such payee");
    let user = match identity_type.as_str() {
        "ALIPAY_USER_ID" => {
            let id: Id = identity.parse().map_err(|_| payee_missing())?;
            state
                .pool()
                .read(move |sql| formica_store::people::user(sql, id))
                .await
                .map_err(store_error)?
        }
        "ALIPAY_LOGON_ID" => user_by_login(state, &identity).await?,
        _ => {
            return Err(GatewayError::invalid(
                "identity_type must be ALIPAY_USER_ID or ALIPAY_LOGON_ID",
            ));
        }
    }
    .ok_or_else(payee_missing)?;
    if let Some(name) = get("name")
        && name != user.display_name
    {
        return Err(GatewayError::business(
            "PAYEE_USER_INFO_ERROR",
            "the payee's name does not match the account",
        ));
    }
    let merchant = request.merchant();
    // out_biz_no is the merchant's idempotency key: a retry returns the first result and
    // pays nothing (§9.10).
    let key = IdempotencyKey {
        owner: merchant,
        key: format!("out_biz_no:{out_biz_no}"),
        fingerprint: format!("{}:{}", user.id, trans_amount.amount_minor),
    };
    let command = MerchantCommand::Payout {
        merchant_id: merchant,
        to_user_id: user.id,
        amount: trans_amount,
        note: text_field(request, "remark")
            .or_else(|| text_field(request, "order_title"))
            .unwrap_or_default(),
    };
    match submit(state, ProductCommand::Merchant(command), Some(key)).await {
        Ok(Outcome::Transfer(receipt)) => Ok(success(fields(json!({
            "out_biz_no": out_biz_no,
            "order_id": receipt.id.to_string(),
            "pay_fund_order_id": receipt.id.to_string(),
            "status": "SUCCESS",
            "trans_date": super::time::format(receipt.created_at, offset(state)),
        })))),
        Ok(other) => Err(system(&other)),
        Err(Failed::Refused(refusal)) => Err(match refusal {
            Refusal::InsufficientFunds | Refusal::MerchantBalanceTooLow => {
                GatewayError::business("PAYER_BALANCE_NOT_ENOUGH", refusal.to_string())
            }
            Refusal::PayeeNotFound | Refusal::WalletNotFound { .. } => payee_missing(),
            Refusal::SamePerson => {
                GatewayError::business("PAYER_PAYEE_CANNOT_SAME", refusal.to_string())
            }
            other => GatewayError::business("INVALID_PARAMETER", other.to_string()),
        }),
        Err(Failed::Gateway(error)) => Err(error),
    }
}
