//! Fund authorisation over the gateway (`products.md` §9): a counter freezes a deposit with
//! the person's payment code (`alipay.fund.auth.order.freeze`), or a rental app sends the
//! person to approve it online (`app.freeze`); the person's credit score may waive it. The
//! merchant charges it with `alipay.trade.pay` and an `auth_no`, gives back all or part of it
//! (`alipay.fund.auth.order.unfreeze`) or cancels it (`alipay.fund.auth.operation.cancel`),
//! and reads it (`alipay.fund.auth.operation.detail.query`). Each is a deposit hold of the core.
//!
//! Where Formica differs from Alipay: a charge always releases the rest of the deposit in the
//! same step (as `auth_confirm_mode` `COMPLETE`), so an unfreeze of the rest after it answers
//! success without moving anything; the merchant's score threshold rides in `extra_param` as
//! `creditThreshold` (Formica has no registry of credit services for `serviceId` to name);
//! each kind of operation has one id per authorisation (its partial unfreezes share one); the
//! charge's `trade_no` is the charge's operation id, not a trade that `alipay.trade.query` finds.

use formica_core::deposit::{Hold, HoldCommand, HoldStatus, NewFreeze};
use formica_core::merchant::CodeUse;
use formica_core::{Id, Money, Outcome, ProductCommand, Refusal};
use serde_json::{Map, Value, json};

use super::methods::{
    Failed, amount, fields, find_code, masked_login, number, offset, required, required_number,
    store_error, submit, success, system, text_field, trade_refusal,
};
use super::{Answer, GatewayError, Request};
use crate::AppState;

/// An authorisation's operations. Each hold has at most one of each, so an operation's id is
/// the hold's id followed by two digits for the kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Operation {
    Freeze = 1,
    Pay = 2,
    Unfreeze = 3,
}

impl Operation {
    fn id(self, hold: &Hold) -> String {
        format!("{}{:02}", hold.id, self as u8)
    }

    fn name(self) -> &'static str {
        match self {
            Operation::Freeze => "FREEZE",
            Operation::Pay => "PAY",
            Operation::Unfreeze => "UNFREEZE",
        }
    }

    /// The operation an id names on this hold, if the hold had it.
    fn parse(id: &str, hold: &Hold) -> Option<Operation> {
        [Operation::Freeze, Operation::Pay, Operation::Unfreeze]
            .into_iter()
            .find(|op| op.id(hold) == id && op.happened(hold))
    }

    fn happened(self, hold: &Hold) -> bool {
        let authorised = hold.credit_amount.amount_minor + hold.fund_amount.amount_minor > 0;
        match self {
            Operation::Freeze => authorised,
            Operation::Pay => hold.charged.amount_minor > 0,
            Operation::Unfreeze => authorised && given_back(hold).amount_minor > 0,
        }
    }

    /// How much the operation moved.
    fn amount(self, hold: &Hold) -> Money {
        match self {
            Operation::Freeze => hold.amount,
            Operation::Pay => hold.charged,
            Operation::Unfreeze => given_back(hold),
        }
    }
}

/// The id of a hold's freeze operation, as notifications name it.
pub(crate) fn freeze_operation(hold: &Hold) -> String {
    Operation::Freeze.id(hold)
}

/// What the authorisation gave back in all: what was unfrozen while it was open, and once it
/// closed (charged or unfrozen) everything not charged.
fn given_back(hold: &Hold) -> Money {
    let minor = if closed_with_money(hold) {
        hold.amount.amount_minor - hold.charged.amount_minor
    } else {
        hold.unfrozen.map_or(0, |m| m.amount_minor)
    };
    Money::new(minor, hold.amount.currency)
}

/// What went back when it closed: the rest less the charge.
fn released_at_close(hold: &Hold) -> Money {
    let minor = if closed_with_money(hold) {
        hold.rest() - hold.charged.amount_minor
    } else {
        0
    };
    Money::new(minor, hold.amount.currency)
}

/// Whether it closed after being authorised (charged or unfrozen), not by expiring.
fn closed_with_money(hold: &Hold) -> bool {
    hold.status == HoldStatus::Closed
        && matches!(hold.close_reason.as_deref(), Some("charged" | "unfrozen"))
}

/// An amount split into its credit (waived) and fund (frozen) parts, as the hold was.
fn split(hold: &Hold, money: Money) -> (Money, Money) {
    let zero = Money::new(0, money.currency);
    if hold.credit_amount.amount_minor > 0 {
        (money, zero)
    } else {
        (zero, money)
    }
}

fn not_exist() -> GatewayError {
    GatewayError::business("AUTH_ORDER_NOT_EXIST", "no such fund authorisation")
}

/// A hold refusal as the sub code a merchant's code can act on.
fn refused(failed: Failed) -> GatewayError {
    let refusal = match failed {
        Failed::Refused(refusal) => refusal,
        Failed::Gateway(error) => return error,
    };
    let (code, message) = match &refusal {
        Refusal::HoldNotFound => return not_exist(),
        Refusal::HoldStatusInvalid { .. } => ("ORDER_STATUS_INVALID", refusal.to_string()),
        Refusal::ChargeTooLarge { .. } => ("PAY_AMOUNT_EXCEED_AUTH_AMOUNT", refusal.to_string()),
        Refusal::DuplicateOutTradeNo => (
            "ORDER_ALREADY_EXIST",
            "an open authorisation has this out_order_no".to_owned(),
        ),
        Refusal::CreditFundingInsufficient => ("CREDIT_FUNDING_NOT_ENOUGH", refusal.to_string()),
        Refusal::PayeeNotFound => ("PAYER_NOT_EXIST", "no such person".to_owned()),
        _ => return trade_refusal(refusal),
    };
    GatewayError::business(code, message)
}

/// The hold `auth_no` names (or, failing it, `out_order_no`), if it is this merchant's.
async fn find_hold(state: &AppState, request: &Request) -> Result<Hold, GatewayError> {
    let merchant = request.merchant();
    let hold = match (
        text_field(request, "auth_no"),
        number(request, "out_order_no")?,
    ) {
        (Some(auth_no), _) => {
            let Ok(id) = auth_no.parse::<u64>() else {
                return Err(not_exist());
            };
            state
                .pool()
                .read(move |sql| formica_store::credit::hold(sql, Id(id)))
                .await
        }
        (None, Some(number)) => {
            state
                .pool()
                .read(move |sql| formica_store::credit::hold_by_number(sql, merchant, &number))
                .await
        }
        (None, None) => {
            return Err(GatewayError::invalid(
                "biz_content needs auth_no or out_order_no",
            ));
        }
    };
    hold.map_err(store_error)?
        .filter(|h| h.merchant_id == merchant)
        .ok_or_else(not_exist)
}

/// The score at or above which the deposit is waived: `extra_param`'s `creditThreshold`.
fn threshold(request: &Request) -> Result<Option<u16>, GatewayError> {
    let invalid = || GatewayError::invalid("extra_param must be a JSON object");
    let extra = match request.biz.get("extra_param") {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(text)) if text.is_empty() => return Ok(None),
        Some(Value::String(text)) => serde_json::from_str::<Value>(text).map_err(|_| invalid())?,
        Some(other) => other.clone(),
    };
    let Value::Object(extra) = extra else {
        return Err(invalid());
    };
    let bad = || GatewayError::invalid("creditThreshold must be a score from 350 to 950");
    let score = match extra.get("creditThreshold") {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Number(n)) => n.as_u64(),
        Some(Value::String(s)) => s.parse().ok(),
        Some(_) => None,
    };
    let score = score.and_then(|s| u16::try_from(s).ok()).ok_or_else(bad)?;
    if !(formica_core::credit::SCORE_MIN..=formica_core::credit::SCORE_MAX).contains(&score) {
        return Err(bad());
    }
    Ok(Some(score))
}

/// What a freeze asks for, read from a verified request: the same at a counter and online.
#[derive(Clone, Debug)]
pub struct FreezeOrder {
    /// The merchant.
    pub merchant_id: Id,
    /// The merchant's order number.
    pub out_order_no: String,
    /// The merchant's number for this freeze.
    pub out_request_no: String,
    /// What it is for.
    pub title: String,
    /// The deposit.
    pub amount: Money,
    /// Waived at or above this score.
    pub threshold: Option<u16>,
    /// The app, and the `notify_url` it hears of the authorisation at.
    pub notify: Option<(String, String)>,
}

fn order(state: &AppState, request: &Request) -> Result<FreezeOrder, GatewayError> {
    let out_order_no = required_number(request, "out_order_no")?;
    let out_request_no = required_number(request, "out_request_no")?;
    let title = required(request, "order_title")?;
    if title.len() > 100 {
        return Err(GatewayError::invalid(
            "order_title is longer than 100 bytes",
        ));
    }
    let notify = request
        .param("notify_url")
        .map(|url| crate::webhook::callback_url(state, url))
        .transpose()
        .map_err(|why| GatewayError::invalid(format!("notify_url: {why}")))?
        .map(|url| (request.keys.app.app_id.clone(), url));
    Ok(FreezeOrder {
        merchant_id: request.merchant(),
        out_order_no,
        out_request_no,
        title,
        amount: amount(request, "amount", request.keys.currency)?,
        threshold: threshold(request)?,
        notify,
    })
}

/// The hold this order already made (a retry, or a page reloaded), if there is one.
async fn made(state: &AppState, order: &FreezeOrder) -> Result<Option<Hold>, GatewayError> {
    let (merchant, number) = (order.merchant_id, order.out_order_no.clone());
    let newest = state
        .pool()
        .read(move |sql| formica_store::credit::hold_by_number(sql, merchant, &number))
        .await
        .map_err(store_error)?;
    Ok(newest.filter(|hold| {
        hold.out_request_no.as_deref() == Some(order.out_request_no.as_str())
            && hold.amount == order.amount
    }))
}

/// Holds the deposit for `person`, who authorised it with their payment code or PIN.
async fn freeze_for(
    state: &AppState,
    order: &FreezeOrder,
    person: Id,
    code: Option<CodeUse>,
) -> Result<Hold, GatewayError> {
    let command = ProductCommand::Hold(HoldCommand::Freeze(Box::new(NewFreeze {
        merchant_id: order.merchant_id,
        person_id: person,
        code,
        out_order_no: order.out_order_no.clone(),
        out_request_no: order.out_request_no.clone(),
        title: order.title.clone(),
        amount: order.amount,
        threshold: order.threshold,
        notify: order.notify.clone(),
    })));
    match submit(state, command, None).await {
        Ok(Outcome::Hold(hold)) => Ok(hold),
        Ok(other) => Err(system(&other)),
        Err(failed) => {
            // A retry that raced its first try: if the first one froze, this is it.
            let raced = matches!(
                failed,
                Failed::Refused(Refusal::DuplicateOutTradeNo | Refusal::PaymentCodeUsed)
            );
            match (raced, made(state, order).await) {
                (true, Ok(Some(hold))) => Ok(hold),
                _ => Err(refused(failed)),
            }
        }
    }
}

/// `alipay.fund.auth.order.freeze`: the person's payment code authorises the deposit at once.
pub(super) async fn freeze(
    state: &AppState,
    request: &Request,
) -> Result<Map<String, Value>, GatewayError> {
    let auth_code = required(request, "auth_code")?;
    if let Some(kind) = text_field(request, "auth_code_type")
        && kind != "bar_code"
        && kind != "BAR_CODE"
    {
        return Err(GatewayError::invalid("auth_code_type must be bar_code"));
    }
    let order = order(state, request)?;
    if let Some(hold) = made(state, &order).await? {
        // The counter retried a freeze that went through: the same answer.
        return Ok(freeze_answer(state, &hold).await);
    }
    let (person, code) = find_code(state, &auth_code).await?;
    let hold = freeze_for(state, &order, person, Some(code)).await?;
    Ok(freeze_answer(state, &hold).await)
}

/// Where the person approves an online freeze: the platform's page, given the request's signed
/// parameters, which it verifies again (so no one can change the amount on the way).
pub const APPROVAL_PAGE: &str = "/deposit-authorization";

/// `alipay.fund.auth.order.app.freeze`: Alipay's app takes the signed order string to the
/// person; here the person's browser goes to the approval page with it.
pub(super) async fn app_freeze(
    state: &AppState,
    request: &Request,
) -> Result<Answer, GatewayError> {
    order(state, request)?;
    let query = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(request.params.iter())
        .finish();
    let redirect = (
        axum::http::StatusCode::SEE_OTHER,
        [(
            axum::http::header::LOCATION,
            format!("{APPROVAL_PAGE}?{query}"),
        )],
    );
    Ok(Answer::Page(axum::response::IntoResponse::into_response(
        redirect,
    )))
}

/// An online freeze the person is asked to approve, verified again from its signed
/// parameters (`query`): what it asks, and the hold if it was already approved.
pub async fn offer(
    state: &AppState,
    query: &str,
    base_url: &str,
) -> Result<(FreezeOrder, Option<Hold>), GatewayError> {
    let params = super::parse_params(Some(query), None)?;
    let keys = match params.get("app_id") {
        Some(app_id) => super::Gateway::app(state, app_id)
            .await
            .map_err(store_error)?,
        None => None,
    };
    let request = super::verify(state, params, keys, base_url)?;
    if request.method != "alipay.fund.auth.order.app.freeze" {
        return Err(GatewayError::invalid(
            "this page approves alipay.fund.auth.order.app.freeze",
        ));
    }
    let order = order(state, &request)?;
    let hold = made(state, &order).await?;
    Ok((order, hold))
}

/// The person approves an online freeze (the caller checked their PIN): waived or frozen.
pub async fn approve(
    state: &AppState,
    order: &FreezeOrder,
    person: Id,
) -> Result<Hold, GatewayError> {
    if let Some(hold) = made(state, order).await? {
        return Ok(hold);
    }
    freeze_for(state, order, person, None).await
}

async fn freeze_answer(state: &AppState, hold: &Hold) -> Map<String, Value> {
    let offset = offset(state);
    let mut answer = fields(json!({
        "auth_no": hold.id.to_string(),
        "out_order_no": hold.out_order_no,
        "operation_id": Operation::Freeze.id(hold),
        "out_request_no": hold.out_request_no.clone().unwrap_or_default(),
        "amount": hold.amount.decimal(),
        "status": "SUCCESS",
        "payer_user_id": hold.person_id.to_string(),
        "gmt_trans": super::time::format(hold.created_at, offset),
        "trans_currency": hold.amount.currency.code(),
        "credit_amount": hold.credit_amount.decimal(),
        "fund_amount": hold.fund_amount.decimal(),
    }));
    if hold.credit_amount.amount_minor > 0 {
        answer.insert("pre_auth_type".into(), "CREDIT_AUTH".into());
    }
    if let Some(login) = masked_login(state, hold.person_id).await {
        answer.insert("payer_logon_id".into(), login.into());
    }
    success(answer)
}

/// `alipay.trade.pay` with an `auth_no`: the merchant charges the deposit (part or all); the
/// rest goes back in the same step. A waived deposit is paid from the wallet, and what the
/// wallet lacks the platform pays and the person owes.
pub(super) async fn pay(
    state: &AppState,
    request: &Request,
) -> Result<Map<String, Value>, GatewayError> {
    let out_trade_no = required_number(request, "out_trade_no")?;
    super::methods::subject(request)?;
    let money = amount(request, "total_amount", request.keys.currency)?;
    if let Some(mode) = text_field(request, "auth_confirm_mode")
        && mode != "COMPLETE"
        && mode != "NOT_COMPLETE"
    {
        return Err(GatewayError::invalid(
            "auth_confirm_mode must be COMPLETE or NOT_COMPLETE",
        ));
    }
    let hold = find_hold(state, request).await?;
    let charged = if hold.status == HoldStatus::Closed
        && hold.charge_no.as_deref() == Some(out_trade_no.as_str())
        && hold.charged == money
    {
        // A retry of the charge that went through: the same answer.
        hold
    } else if hold.status == HoldStatus::Closed {
        // Closed holds leave the writer's memory; say why here rather than "not found".
        return Err(GatewayError::business(
            "ORDER_STATUS_INVALID",
            format!(
                "the authorisation is closed ({})",
                hold.close_reason.as_deref().unwrap_or("closed")
            ),
        ));
    } else {
        let command = ProductCommand::Hold(HoldCommand::Charge {
            hold_id: hold.id,
            merchant_id: request.merchant(),
            amount: money,
            out_trade_no: Some(out_trade_no.clone()),
        });
        match submit(state, command, None).await {
            Ok(Outcome::Hold(hold)) => hold,
            Ok(other) => return Err(system(&other)),
            Err(failed) => return Err(refused(failed)),
        }
    };
    let offset = offset(state);
    let paid = charged.charged.decimal();
    let (credit, _) = split(&charged, charged.charged);
    let channel = if credit.amount_minor > 0 {
        "CREDIT_AUTH"
    } else {
        "ALIPAYACCOUNT"
    };
    let mut answer = fields(json!({
        "trade_no": Operation::Pay.id(&charged),
        "out_trade_no": out_trade_no,
        "auth_no": charged.id.to_string(),
        "total_amount": paid,
        "receipt_amount": paid,
        "buyer_pay_amount": paid,
        "invoice_amount": paid,
        "point_amount": Money::new(0, money.currency).decimal(),
        "buyer_user_id": charged.person_id.to_string(),
        "gmt_payment": super::time::format(charged.updated_at, offset),
        "fund_bill_list": [{"fund_channel": channel, "amount": paid}],
        "trans_currency": money.currency.code(),
    }));
    if credit.amount_minor > 0 {
        answer.insert("auth_trade_pay_mode".into(), "CREDIT_PREAUTH_PAY".into());
    }
    if let Some(login) = masked_login(state, charged.person_id).await {
        answer.insert("buyer_logon_id".into(), login.into());
    }
    Ok(success(answer))
}

/// `alipay.fund.auth.order.unfreeze`: the whole open deposit goes back; after a charge, the
/// rest already went back and the answer says so.
pub(super) async fn unfreeze(
    state: &AppState,
    request: &Request,
) -> Result<Map<String, Value>, GatewayError> {
    if text_field(request, "auth_no").is_none() {
        return Err(GatewayError::invalid("biz_content is missing auth_no"));
    }
    let out_request_no = required_number(request, "out_request_no")?;
    let money = amount(request, "amount", request.keys.currency)?;
    let hold = find_hold(state, request).await?;
    let hold = match hold.status {
        HoldStatus::Closed => {
            // After a charge the rest went back with it: unfreezing it again is answered as
            // done, moving nothing.
            let back = released_at_close(&hold);
            if money.amount_minor > back.amount_minor {
                return Err(GatewayError::business(
                    "UNFREEZE_AMOUNT_EXCEED_REST_AMOUNT",
                    format!(
                        "the authorisation is closed; {} went back when it closed",
                        back.decimal()
                    ),
                ));
            }
            hold
        }
        _ if money.amount_minor > hold.rest() => {
            return Err(GatewayError::business(
                "UNFREEZE_AMOUNT_EXCEED_REST_AMOUNT",
                format!(
                    "{} of the deposit is left",
                    Money::new(hold.rest(), money.currency).decimal()
                ),
            ));
        }
        _ => unfreeze_hold(state, request, &hold, Some(money)).await?,
    };
    let (credit, fund) = split(&hold, money);
    Ok(success(fields(json!({
        "auth_no": hold.id.to_string(),
        "out_order_no": hold.out_order_no,
        "operation_id": Operation::Unfreeze.id(&hold),
        "out_request_no": out_request_no,
        "amount": money.decimal(),
        "status": "SUCCESS",
        "gmt_trans": super::time::format(hold.updated_at, offset(state)),
        "credit_amount": credit.decimal(),
        "fund_amount": fund.decimal(),
    }))))
}

async fn unfreeze_hold(
    state: &AppState,
    request: &Request,
    hold: &Hold,
    amount: Option<Money>,
) -> Result<Hold, GatewayError> {
    let command = ProductCommand::Hold(HoldCommand::Unfreeze {
        hold_id: hold.id,
        merchant_id: request.merchant(),
        amount,
    });
    match submit(state, command, None).await {
        Ok(Outcome::Hold(hold)) => Ok(hold),
        Ok(other) => Err(system(&other)),
        Err(failed) => Err(refused(failed)),
    }
}

/// `alipay.fund.auth.operation.cancel`: an authorisation not charged is given back whole.
pub(super) async fn cancel(
    state: &AppState,
    request: &Request,
) -> Result<Map<String, Value>, GatewayError> {
    let hold = find_hold(state, request).await?;
    let operation = text_field(request, "operation_id");
    let out_request_no = number(request, "out_request_no")?;
    if operation.is_none() && out_request_no.is_none() {
        return Err(GatewayError::invalid(
            "biz_content needs operation_id or out_request_no",
        ));
    }
    let frozen = hold.fund_amount.amount_minor > 0;
    let hold = match (hold.status, hold.close_reason.as_deref()) {
        (HoldStatus::Closed, Some("unfrozen")) => hold,
        (HoldStatus::Closed, Some("charged")) => {
            return Err(GatewayError::business(
                "ORDER_ALREADY_PAID",
                "the authorisation was charged; it cannot be cancelled",
            ));
        }
        (HoldStatus::Closed, _) => {
            return Err(GatewayError::business(
                "ORDER_ALREADY_CLOSED",
                "the authorisation closed unauthorised",
            ));
        }
        _ => unfreeze_hold(state, request, &hold, None).await?,
    };
    let mut answer = fields(json!({
        "auth_no": hold.id.to_string(),
        "out_order_no": hold.out_order_no,
        "operation_id": operation.unwrap_or_else(|| Operation::Freeze.id(&hold)),
        // Frozen money moved back; a waived deposit had nothing to move.
        "action": if frozen { "unfreeze" } else { "close" },
    }));
    if let Some(number) = out_request_no {
        answer.insert("out_request_no".into(), number.into());
    }
    Ok(success(answer))
}

/// `alipay.fund.auth.operation.detail.query`: the authorisation's totals and one operation.
pub(super) async fn detail_query(
    state: &AppState,
    request: &Request,
) -> Result<Map<String, Value>, GatewayError> {
    let hold = find_hold(state, request).await?;
    let operation = match (
        text_field(request, "operation_id"),
        number(request, "out_request_no")?,
    ) {
        (Some(id), _) => Operation::parse(&id, &hold),
        (None, Some(number)) => (hold.out_request_no.as_deref() == Some(number.as_str())
            && Operation::Freeze.happened(&hold))
        .then_some(Operation::Freeze),
        (None, None) => Some(Operation::Freeze).filter(|op| op.happened(&hold)),
    }
    .ok_or_else(|| {
        GatewayError::business(
            "AUTH_OPERATION_NOT_EXIST",
            "no such operation on this authorisation",
        )
    })?;
    let currency = hold.amount.currency;
    let zero = Money::new(0, currency);
    let open = matches!(hold.status, HoldStatus::Waived | HoldStatus::Frozen);
    let rest = if open {
        Money::new(hold.rest(), currency)
    } else {
        zero
    };
    let (rest_credit, rest_fund) = split(&hold, rest);
    let (paid_credit, paid_fund) = split(&hold, hold.charged);
    let moved = operation.amount(&hold);
    let (credit, fund) = split(&hold, moved);
    let order_status = match (hold.status, hold.close_reason.as_deref()) {
        (HoldStatus::Requested, _) => "INIT",
        (HoldStatus::Waived | HoldStatus::Frozen, _) => "AUTHORIZED",
        (_, Some("charged" | "unfrozen")) => "FINISH",
        _ => "CLOSED",
    };
    let offset = offset(state);
    let at = if operation == Operation::Freeze {
        hold.created_at
    } else {
        hold.updated_at
    };
    let mut answer = fields(json!({
        "auth_no": hold.id.to_string(),
        "out_order_no": hold.out_order_no,
        "order_status": order_status,
        "order_title": hold.title,
        "total_freeze_amount": hold.amount.decimal(),
        "rest_amount": rest.decimal(),
        "total_pay_amount": hold.charged.decimal(),
        "total_unfreeze_amount": given_back(&hold).decimal(),
        "total_freeze_credit_amount": hold.credit_amount.decimal(),
        "total_freeze_fund_amount": hold.fund_amount.decimal(),
        "rest_credit_amount": rest_credit.decimal(),
        "rest_fund_amount": rest_fund.decimal(),
        "total_pay_credit_amount": paid_credit.decimal(),
        "total_pay_fund_amount": paid_fund.decimal(),
        "payer_user_id": hold.person_id.to_string(),
        "operation_id": operation.id(&hold),
        "operation_type": operation.name(),
        "amount": moved.decimal(),
        "credit_amount": credit.decimal(),
        "fund_amount": fund.decimal(),
        "status": "SUCCESS",
        "gmt_create": super::time::format(hold.created_at, offset),
        "gmt_trans": super::time::format(at, offset),
        "trans_currency": currency.code(),
    }));
    if operation == Operation::Freeze
        && let Some(number) = &hold.out_request_no
    {
        answer.insert("out_request_no".into(), number.clone().into());
    }
    if hold.credit_amount.amount_minor > 0 {
        answer.insert("pre_auth_type".into(), "CREDIT_AUTH".into());
    }
    if let Some(login) = masked_login(state, hold.person_id).await {
        answer.insert("payer_logon_id".into(), login.into());
    }
    Ok(success(answer))
}
