//! Asynchronous notifications to a merchant's `notify_url` (§6): every status change of a
//! gateway trade is written to the outbox with the change itself; this worker POSTs it as a
//! form, RSA2-signed with the app's platform key, until the merchant answers exactly
//! `success`, on Alipay's schedule (§6.1). The `notify_id` stays the same across retries.

use std::collections::HashMap;
use std::time::Duration;

use formica_core::Outcome;
use formica_core::trade::{Trade, TradeStatus};
use formica_engine::Clock;
use formica_engine::webhooks::{Poller, Senders, agent};
use formica_store::merchant::{self, Notification};
use formica_store::webhook::Attempt;
use formica_store::{Location, Store, StoreError};

use super::sign::{self, PlatformKey, SignType};
use super::time;

/// Waits between deliveries: 8 attempts in about 25 hours, as Alipay documents.
pub const RETRY_AFTER: [Duration; 7] = [
    Duration::from_secs(4 * 60),
    Duration::from_secs(10 * 60),
    Duration::from_secs(10 * 60),
    Duration::from_secs(3600),
    Duration::from_secs(2 * 3600),
    Duration::from_secs(6 * 3600),
    Duration::from_secs(15 * 3600),
];

/// How long one POST may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

const ROUND_MAX: u32 = 100;

/// Notifications sent at once.
const SENDERS: usize = 16;

/// The running worker; stops when dropped.
#[derive(Debug)]
pub struct NotifyWorker {
    _thread: Poller,
}

/// A notification on its way, and the form to send (none if its app or key is gone).
type Job = (Notification, Option<Vec<(String, String)>>);

impl NotifyWorker {
    /// Starts delivering from the store at `location`; the platform's time zone is
    /// `offset_seconds` east of UTC.
    pub fn start(
        location: Location,
        clock: Clock,
        offset_seconds: i64,
    ) -> Result<Self, StoreError> {
        let mut store = Store::open(&location)?;
        // Side by side, so that a merchant whose server hangs holds up no one else.
        let mut senders = Senders::start("formica-notify", SENDERS, clock.clone(), {
            let agent = agent(REQUEST_TIMEOUT);
            move |(notification, params): &Job, now| match params {
                Some(params) => deliver(&agent, notification, params, now),
                None => Attempt::Failed {
                    status: None,
                    error: "the app or its key is gone".to_owned(),
                    retry_at: None,
                },
            }
        });
        let mut keys = HashMap::new();
        Ok(NotifyWorker {
            _thread: Poller::start("formica-notify", move || {
                round(&mut store, &clock, offset_seconds, &mut keys, &mut senders)
            }),
        })
    }
}

/// One round: records what the senders finished, then hands them what is due and not already
/// on its way. The amount of work done.
fn round(
    store: &mut Store,
    clock: &Clock,
    offset: i64,
    keys: &mut HashMap<String, Option<(PlatformKey, SignType)>>,
    senders: &mut Senders<Job>,
) -> Result<usize, StoreError> {
    let finished = senders.finished();
    if !finished.is_empty() {
        store.write_sql(|sql| {
            for (id, at, attempt) in &finished {
                merchant::record_notification(sql, *id, *at, attempt)?;
            }
            Ok(())
        })?;
    }
    let now = clock.now();
    let limit = ROUND_MAX + u32::try_from(senders.in_flight()).unwrap_or(u32::MAX);
    let due = store.read_sql(|sql| merchant::due_notifications(sql, now, limit))?;
    let mut handed = 0;
    for notification in due {
        if senders.busy(notification.id) {
            continue;
        }
        let params = form(store, &notification, offset, keys)?;
        senders.hand(notification.id, (notification, params));
        handed += 1;
    }
    Ok(finished.len() + handed)
}

/// The notification's parameters, signed.
fn form(
    store: &mut Store,
    notification: &Notification,
    offset: i64,
    keys: &mut HashMap<String, Option<(PlatformKey, SignType)>>,
) -> Result<Option<Vec<(String, String)>>, StoreError> {
    let outcome = serde_json::from_str::<Outcome>(&notification.payload);
    let app_id = match &outcome {
        Ok(Outcome::Trade(trade)) => trade.app_id.clone(),
        Ok(Outcome::Hold(hold)) => hold.app_id.clone(),
        _ => None,
    };
    let Some(app_id) = app_id else {
        return Ok(None);
    };
    if !keys.contains_key(&app_id) {
        let app = store.read_sql(|sql| merchant::app(sql, &app_id))?;
        let key = app.and_then(|a| {
            let key = sign::parse_private_key(&a.platform_private_key)
                .and_then(|key| sign::PlatformKey::new(&key))
                .ok()?;
            Some((key, SignType::parse(&a.sign_type)?))
        });
        keys.insert(app_id.clone(), key);
    }
    let Some((key, sign_type)) = keys.get(&app_id).and_then(Option::as_ref) else {
        return Ok(None);
    };
    let person = match &outcome {
        Ok(Outcome::Trade(trade)) => trade.buyer_id,
        Ok(Outcome::Hold(hold)) => Some(hold.person_id),
        _ => None,
    };
    let login = match person {
        Some(person) => store
            .read_sql(|sql| formica_store::people::user(sql, person))?
            .map(|u| super::methods::mask_login(&u.login)),
        None => None,
    };
    // Made at the change, so a retry is the same notification, signature and all.
    let (id, at) = (&notification.notify_id, notification.created_at);
    let params = match &outcome {
        Ok(Outcome::Trade(trade)) => params(trade, &app_id, id, login, at, offset),
        Ok(Outcome::Hold(hold)) => freeze_params(hold, &app_id, id, login, at, offset),
        _ => return Ok(None),
    };
    Ok(Some(signed(params, key, *sign_type)))
}

/// A notification's parameters signed as §6.4 says: `sign_type` joins them, the signature
/// covers every other parameter (not `sign_type`, unlike a request), and `sign` comes last.
pub fn signed(
    mut params: Vec<(String, String)>,
    key: &PlatformKey,
    sign_type: SignType,
) -> Vec<(String, String)> {
    params.push(("sign_type".into(), sign_type.as_str().into()));
    let content = sign::content_to_sign(
        params.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        &["sign", "sign_type"],
    );
    params.push(("sign".into(), key.sign(sign_type, content.as_bytes())));
    params
}

/// The body POSTed to the merchant: the parameters form-encoded (UTF-8, as the
/// `Content-Type` says).
pub fn form_body(params: &[(String, String)]) -> String {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .finish()
}

/// The fields of §6.3 for a trade as it stood; never an empty value (§6.3, §12.2).
pub fn params(
    trade: &Trade,
    app_id: &str,
    notify_id: &str,
    buyer_logon_id: Option<String>,
    made_at: u64,
    offset: i64,
) -> Vec<(String, String)> {
    let mut params: Vec<(String, String)> = Vec::new();
    let mut add = |name: &str, value: String| {
        if !value.is_empty() {
            params.push((name.to_owned(), value));
        }
    };
    let paid = trade.paid_at.is_some();
    let amount = trade.amount.decimal();
    let zero = formica_core::Money::new(0, trade.amount.currency).decimal();
    add("notify_time", time::format(made_at, offset));
    add("notify_type", "trade_status_sync".into());
    add("notify_id", notify_id.into());
    add("app_id", app_id.into());
    add("auth_app_id", app_id.into());
    add("charset", "utf-8".into());
    add("version", "1.0".into());
    add("trade_no", trade.id.to_string());
    add("out_trade_no", trade.out_trade_no.clone());
    add("seller_id", trade.seller_id.to_string());
    add("trade_status", super::methods::gateway_status(trade).into());
    add("total_amount", amount.clone());
    let paid_amount = if paid { amount.clone() } else { zero.clone() };
    add("receipt_amount", paid_amount.clone());
    add("invoice_amount", paid_amount.clone());
    add("buyer_pay_amount", paid_amount);
    add("point_amount", zero);
    add("subject", trade.subject.clone());
    add("gmt_create", time::format(trade.created_at, offset));
    if let Some(buyer) = trade.buyer_id {
        add("buyer_id", buyer.to_string());
    }
    if let Some(login) = buyer_logon_id {
        add("buyer_logon_id", login);
    }
    if let Some(at) = trade.paid_at {
        add("gmt_payment", time::format(at, offset));
        add(
            "fund_bill_list",
            serde_json::json!([{"amount": amount, "fundChannel": "ALIPAYACCOUNT"}]).to_string(),
        );
    }
    if let Some(refund) = trade.refunds.last() {
        add("refund_fee", trade.refunded.decimal());
        add("gmt_refund", time::format(refund.at, offset));
        add("out_biz_no", refund.out_request_no.clone());
    }
    if trade.status == TradeStatus::TradeClosed {
        add("gmt_close", time::format(trade.updated_at, offset));
    }
    if trade.escrow && paid {
        add("escrow_status", trade.status.as_str().into());
    }
    if let Some(passback) = &trade.passback_params {
        add("passback_params", passback.clone());
    }
    params
}

/// The fields of a fund authorisation's freeze notification (`notify_type`
/// `fund_auth_freeze`), as the freeze's answer and the operation query name them.
pub fn freeze_params(
    hold: &formica_core::deposit::Hold,
    app_id: &str,
    notify_id: &str,
    payer_logon_id: Option<String>,
    made_at: u64,
    offset: i64,
) -> Vec<(String, String)> {
    let mut params: Vec<(String, String)> = Vec::new();
    let mut add = |name: &str, value: String| {
        if !value.is_empty() {
            params.push((name.to_owned(), value));
        }
    };
    add("notify_time", time::format(made_at, offset));
    add("notify_type", "fund_auth_freeze".into());
    add("notify_id", notify_id.into());
    add("app_id", app_id.into());
    add("charset", "utf-8".into());
    add("version", "1.0".into());
    add("auth_no", hold.id.to_string());
    add("out_order_no", hold.out_order_no.clone());
    add("operation_id", super::fund_auth::freeze_operation(hold));
    add(
        "out_request_no",
        hold.out_request_no.clone().unwrap_or_default(),
    );
    add("operation_type", "FREEZE".into());
    add("amount", hold.amount.decimal());
    add("status", "SUCCESS".into());
    add("total_freeze_amount", hold.amount.decimal());
    add("rest_amount", hold.amount.decimal());
    add("credit_amount", hold.credit_amount.decimal());
    add("fund_amount", hold.fund_amount.decimal());
    if hold.credit_amount.amount_minor > 0 {
        add("pre_auth_type", "CREDIT_AUTH".into());
    }
    add("payer_user_id", hold.person_id.to_string());
    if let Some(login) = payer_logon_id {
        add("payer_logon_id", login);
    }
    add("gmt_create", time::format(hold.created_at, offset));
    add("gmt_trans", time::format(hold.updated_at, offset));
    add("trans_currency", hold.amount.currency.code().into());
    params
}

fn deliver(
    agent: &ureq::Agent,
    notification: &Notification,
    params: &[(String, String)],
    now: u64,
) -> Attempt {
    let body = form_body(params);
    let sent = agent
        .post(&notification.url)
        .header(
            "Content-Type",
            "application/x-www-form-urlencoded; charset=utf-8",
        )
        .send(body.as_str());
    let (status, error) = match sent {
        Ok(mut response) => {
            let status = response.status().as_u16();
            let text = response.body_mut().read_to_string().unwrap_or_default();
            // Delivered only on exactly `success` (surrounding whitespace forgiven).
            if response.status().is_success() && text.trim() == "success" {
                return Attempt::Delivered { status };
            }
            (
                Some(status),
                format!("the merchant answered {status} without `success`"),
            )
        }
        Err(error) => (None, error.to_string()),
    };
    let attempts = usize::try_from(notification.attempts).unwrap_or(usize::MAX);
    Attempt::Failed {
        status,
        error,
        retry_at: RETRY_AFTER
            .get(attempts)
            .map(|wait| now.saturating_add(u64::try_from(wait.as_nanos()).unwrap_or(u64::MAX))),
    }
}
