//! Merchants (the engine writes them), their gateway apps and keys, settlements, one-time
//! payment codes, and the gateway's notifications to merchants' notify_url.

use formica_core::merchant::{Merchant, Settlement};
use formica_core::trade::Trade;
use formica_core::{Id, Money};

use crate::StoreError;
use crate::products::{
    MERCHANT_COLUMNS, SETTLEMENT_COLUMNS, TRADE_COLUMNS, currency, merchant_from, trade_from,
};
use crate::sql::{Row, Sql, Value};

/// The merchant with this id.
pub fn merchant(sql: &mut dyn Sql, id: Id) -> Result<Option<Merchant>, StoreError> {
    sql.query_opt(
        &format!("SELECT {MERCHANT_COLUMNS} FROM merchants WHERE id = $1"),
        &[id.0.into()],
    )?
    .as_ref()
    .map(merchant_from)
    .transpose()
}

/// The names of these merchants (those that exist), in one query.
pub fn names(
    sql: &mut dyn Sql,
    ids: &[Id],
) -> Result<std::collections::HashMap<Id, String>, StoreError> {
    let mut ids = ids.to_vec();
    ids.sort_unstable();
    ids.dedup();
    if ids.is_empty() {
        return Ok(std::collections::HashMap::new());
    }
    let placeholders: Vec<String> = (1..=ids.len()).map(|n| format!("${n}")).collect();
    let params: Vec<Value> = ids.iter().map(|id| id.0.into()).collect();
    sql.query(
        &format!(
            "SELECT id, name FROM merchants WHERE id IN ({})",
            placeholders.join(", ")
        ),
        &params,
    )?
    .iter()
    .map(|row| Ok((Id(row.uint(0)?), row.text(1)?)))
    .collect()
}

/// The merchants a person runs, oldest first.
pub fn merchants_of(sql: &mut dyn Sql, owner: Id) -> Result<Vec<Merchant>, StoreError> {
    sql.query(
        &format!("SELECT {MERCHANT_COLUMNS} FROM merchants WHERE owner_id = $1 ORDER BY id"),
        &[owner.0.into()],
    )?
    .iter()
    .map(merchant_from)
    .collect()
}

/// A merchant's gateway application: its id, the merchant's public key and the platform's
/// key pair for it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct App {
    /// The app_id the SDKs send.
    pub app_id: String,
    /// Whose.
    pub merchant_id: Id,
    /// A name for the merchant's own use.
    pub name: String,
    /// The merchant's RSA public key (bare base64 SPKI), once uploaded.
    pub public_key: Option<String>,
    /// The platform's private key for this app (PKCS#8 PEM): never leaves the server.
    #[serde(skip)]
    pub platform_private_key: String,
    /// The platform's public key (bare base64 SPKI), for the merchant's SDK.
    pub platform_public_key: String,
    /// Whether the app's trades wait in escrow for the buyer's confirmation.
    pub escrow: bool,
    /// `RSA2` or `RSA`: how the platform signs the app's notifications and returns (answers
    /// follow each request's own `sign_type`).
    pub sign_type: String,
    /// When it was created.
    pub created_at: u64,
}

const APP_COLUMNS: &str = "app_id, merchant_id, name, public_key, platform_private_key, \
    platform_public_key, escrow, created_at, sign_type";

fn app_from(row: &Row) -> Result<App, StoreError> {
    Ok(App {
        app_id: row.text(0)?,
        merchant_id: Id(row.uint(1)?),
        name: row.text(2)?,
        public_key: row.opt_text(3)?,
        platform_private_key: row.text(4)?,
        platform_public_key: row.text(5)?,
        escrow: row.int(6)? != 0,
        created_at: row.uint(7)?,
        sign_type: row.text(8)?,
    })
}

/// Saves a new app.
pub fn create_app(sql: &mut dyn Sql, app: &App) -> Result<(), StoreError> {
    sql.execute(
        &format!("INSERT INTO apps ({APP_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"),
        &[
            app.app_id.as_str().into(),
            app.merchant_id.0.into(),
            app.name.as_str().into(),
            app.public_key.clone().into(),
            app.platform_private_key.as_str().into(),
            app.platform_public_key.as_str().into(),
            i64::from(app.escrow).into(),
            app.created_at.into(),
            app.sign_type.as_str().into(),
        ],
    )?;
    Ok(())
}

/// The app with this app_id.
pub fn app(sql: &mut dyn Sql, app_id: &str) -> Result<Option<App>, StoreError> {
    sql.query_opt(
        &format!("SELECT {APP_COLUMNS} FROM apps WHERE app_id = $1"),
        &[app_id.into()],
    )?
    .as_ref()
    .map(app_from)
    .transpose()
}

/// A merchant's apps, oldest first.
pub fn apps(sql: &mut dyn Sql, merchant: Id) -> Result<Vec<App>, StoreError> {
    sql.query(
        &format!("SELECT {APP_COLUMNS} FROM apps WHERE merchant_id = $1 ORDER BY created_at"),
        &[merchant.0.into()],
    )?
    .iter()
    .map(app_from)
    .collect()
}

/// Sets (or replaces) the merchant's public key of an app.
pub fn set_app_key(sql: &mut dyn Sql, app_id: &str, public_key: &str) -> Result<(), StoreError> {
    sql.execute(
        "UPDATE apps SET public_key = $1 WHERE app_id = $2",
        &[public_key.into(), app_id.into()],
    )?;
    Ok(())
}

/// A settlement with where its bank payout stands.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct SettlementView {
    /// The settlement.
    #[serde(flatten)]
    pub settlement: Settlement,
    /// `pending`, `succeeded` or `failed` (the money is paid out again with the next day's).
    pub status: String,
}

/// A merchant's settlements, newest first.
pub fn settlements(
    sql: &mut dyn Sql,
    merchant: Id,
    limit: u32,
) -> Result<Vec<SettlementView>, StoreError> {
    let columns = SETTLEMENT_COLUMNS
        .split(", ")
        .map(|c| format!("s.{}", c.trim()))
        .collect::<Vec<_>>()
        .join(", ");
    sql.query(
        &format!(
            "SELECT {columns}, m.status FROM settlements s JOIN movements m \
             ON m.id = s.movement_id WHERE s.merchant_id = $1 ORDER BY s.id DESC LIMIT $2"
        ),
        &[
            merchant.0.into(),
            i64::from(limit.clamp(1, crate::trade::PAGE_MAX)).into(),
        ],
    )?
    .iter()
    .map(|row| {
        let currency = currency(&row.text(9)?)?;
        let money =
            |index| -> Result<Money, StoreError> { Ok(Money::new(row.uint(index)?, currency)) };
        Ok(SettlementView {
            settlement: Settlement {
                id: Id(row.uint(0)?),
                merchant_id: Id(row.uint(1)?),
                from_day: row.int(2)?,
                to_day: row.int(3)?,
                payments: money(4)?,
                refunds: money(5)?,
                fees: money(6)?,
                transfers: money(7)?,
                amount: money(8)?,
                movement_id: Id(row.uint(10)?),
                created_at: row.uint(11)?,
            },
            status: row.text(12)?,
        })
    })
    .collect()
}

/// The merchant's trades paid before `to`, that were paid or changed (refunded) since `from`:
/// everything a statement of [from, to) needs. A trade changes when it is paid, so
/// `updated_at >= from` covers both, and the `(seller_id, updated_at)` index bounds the read
/// to the days asked for, not the merchant's whole history.
pub fn trades_touched(
    sql: &mut dyn Sql,
    merchant: Id,
    from: u64,
    to: u64,
) -> Result<Vec<Trade>, StoreError> {
    sql.query(
        &format!(
            "SELECT {TRADE_COLUMNS} FROM trades WHERE seller_id = $1 AND updated_at >= $2 \
             AND paid_at < $3 ORDER BY paid_at, id"
        ),
        &[merchant.0.into(), from.into(), to.into()],
    )?
    .iter()
    .map(trade_from)
    .collect()
}

/// Up to `limit` paid merchant trades paid before `before` (their refund window is over):
/// (merchant, trade), for the sweep that finishes them.
pub fn due_to_finish(
    sql: &mut dyn Sql,
    before: u64,
    limit: u32,
) -> Result<Vec<(Id, Id)>, StoreError> {
    sql.query(
        "SELECT seller_id, id FROM trades WHERE status = 'TRADE_SUCCESS' AND paid_at < $1 \
         ORDER BY paid_at LIMIT $2",
        &[before.into(), i64::from(limit).into()],
    )?
    .iter()
    .map(|row| Ok((Id(row.uint(0)?), Id(row.uint(1)?))))
    .collect()
}

/// Issues a one-time payment code for `user`, valid until `expires_at`. The person's earlier
/// codes stop working (the wallet shows one code at a time).
pub fn issue_payment_code(
    sql: &mut dyn Sql,
    user: Id,
    code: &str,
    expires_at: u64,
) -> Result<(), StoreError> {
    sql.execute(
        "DELETE FROM payment_codes WHERE user_id = $1",
        &[user.0.into()],
    )?;
    sql.execute(
        "INSERT INTO payment_codes (code, user_id, expires_at) VALUES ($1, $2, $3)",
        &[code.into(), user.0.into(), expires_at.into()],
    )?;
    Ok(())
}

/// Adds many payment codes at once, leaving each person's earlier codes valid (for tools that
/// issue codes in bulk, such as `formica bench gateway`; a wallet uses `issue_payment_code`).
pub fn add_payment_codes(sql: &mut dyn Sql, codes: &[(String, Id, u64)]) -> Result<(), StoreError> {
    use crate::sql::{Column, Value};
    let rows: Vec<Vec<Value>> = codes
        .iter()
        .map(|(code, user, expires_at)| {
            vec![code.as_str().into(), user.0.into(), (*expires_at).into()]
        })
        .collect();
    sql.execute_many(
        "INSERT INTO payment_codes (code, user_id, expires_at) {rows}",
        &[Column::Text, Column::Int, Column::Int],
        &rows,
    )
}

/// Whose a payment code is and until when, if it is issued and unexpired at `now`. (The
/// writer makes it pay once; the batch that pays with it deletes it.)
pub fn payment_code(
    sql: &mut dyn Sql,
    code: &str,
    now: u64,
) -> Result<Option<(Id, u64)>, StoreError> {
    let row = sql.query_opt(
        "SELECT user_id, expires_at FROM payment_codes WHERE code = $1",
        &[code.into()],
    )?;
    match row {
        Some(row) if row.uint(1)? > now => Ok(Some((Id(row.uint(0)?), row.uint(1)?))),
        _ => Ok(None),
    }
}

/// A notification to a merchant's notify_url, and how delivering it went.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct Notification {
    /// Its id.
    pub id: i64,
    /// The merchant.
    pub merchant_id: Id,
    /// Where it goes.
    pub url: String,
    /// The trade as it stood (JSON).
    #[serde(skip)]
    pub payload: String,
    /// The notify_id, the same on every retry.
    pub notify_id: String,
    /// `pending`, `delivered` or `failed`.
    pub status: String,
    /// Attempts made.
    pub attempts: i64,
    /// When the next attempt is due.
    pub next_attempt_at: u64,
    /// The HTTP status of the last attempt.
    pub last_status: Option<i64>,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    /// When the change happened.
    pub created_at: u64,
    /// When the merchant answered `success`.
    pub delivered_at: Option<u64>,
}

const NOTIFICATION_COLUMNS: &str = "id, merchant_id, url, payload, notify_id, status, attempts, \
    next_attempt_at, last_status, last_error, created_at, delivered_at";

fn notification_from(row: &Row) -> Result<Notification, StoreError> {
    Ok(Notification {
        id: row.int(0)?,
        merchant_id: Id(row.uint(1)?),
        url: row.text(2)?,
        payload: row.text(3)?,
        notify_id: row.text(4)?,
        status: row.text(5)?,
        attempts: row.int(6)?,
        next_attempt_at: row.uint(7)?,
        last_status: row.opt_uint(8)?.map(|s| s as i64),
        last_error: row.opt_text(9)?,
        created_at: row.uint(10)?,
        delivered_at: row.opt_uint(11)?,
    })
}

/// Queues a notification for an outbox message (once per message).
pub(crate) fn queue_notification(
    sql: &mut dyn Sql,
    outbox_id: i64,
    merchant: Id,
    url: &str,
    payload: &str,
    created_at: u64,
    now: u64,
) -> Result<(), StoreError> {
    sql.execute(
        "INSERT INTO notify_deliveries (outbox_id, merchant_id, url, payload, notify_id, status, \
         attempts, next_attempt_at, created_at) VALUES ($1, $2, $3, $4, $5, 'pending', 0, $6, $7) \
         ON CONFLICT (outbox_id) DO NOTHING",
        &[
            outbox_id.into(),
            merchant.0.into(),
            url.into(),
            payload.into(),
            format!("{merchant}{outbox_id:012}").into(),
            now.into(),
            created_at.into(),
        ],
    )?;
    Ok(())
}

/// Up to `limit` notifications due at `now`, oldest first.
pub fn due_notifications(
    sql: &mut dyn Sql,
    now: u64,
    limit: u32,
) -> Result<Vec<Notification>, StoreError> {
    sql.query(
        &format!(
            "SELECT {NOTIFICATION_COLUMNS} FROM notify_deliveries WHERE status = 'pending' \
             AND next_attempt_at <= $1 ORDER BY next_attempt_at, id LIMIT $2"
        ),
        &[now.into(), i64::from(limit).into()],
    )?
    .iter()
    .map(notification_from)
    .collect()
}

/// A page of a merchant's notifications, newest first.
pub fn notifications(
    sql: &mut dyn Sql,
    merchant: Id,
    limit: u32,
) -> Result<Vec<Notification>, StoreError> {
    sql.query(
        &format!(
            "SELECT {NOTIFICATION_COLUMNS} FROM notify_deliveries WHERE merchant_id = $1 \
             ORDER BY id DESC LIMIT $2"
        ),
        &[
            merchant.0.into(),
            i64::from(limit.clamp(1, crate::trade::PAGE_MAX)).into(),
        ],
    )?
    .iter()
    .map(notification_from)
    .collect()
}

/// Records a notification attempt.
pub fn record_notification(
    sql: &mut dyn Sql,
    id: i64,
    now: u64,
    attempt: &crate::webhook::Attempt,
) -> Result<(), StoreError> {
    crate::webhook::record_in(sql, "notify_deliveries", id, now, attempt)
}

/// A bank card by id alone (a merchant's settlement card belongs to the merchant's owner).
pub fn card_last4(sql: &mut dyn Sql, card: Id) -> Result<Option<String>, StoreError> {
    sql.query_opt(
        "SELECT last4 FROM bank_cards WHERE id = $1",
        &[card.0.into()],
    )?
    .map(|row| row.text(0))
    .transpose()
}
