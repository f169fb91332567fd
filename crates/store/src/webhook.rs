//! Webhook endpoints and deliveries. The engine's batches write messages to the outbox in the
//! same transaction as the change they announce; the delivery worker fans each message out to
//! its person's endpoints (one delivery per endpoint) and records every attempt here.

use formica_core::Id;

use crate::StoreError;
use crate::sql::{Row, Sql};

/// Where a person wants to be told about their money.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct Endpoint {
    /// Its id.
    pub id: Id,
    /// Whose.
    #[serde(skip)]
    pub user_id: Id,
    /// Where deliveries are POSTed.
    pub url: String,
    /// The HMAC-SHA256 key deliveries are signed with.
    #[serde(skip)]
    pub secret: String,
    /// When it was registered.
    pub created_at: u64,
}

/// One message for one endpoint, and how delivering it went.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct Delivery {
    /// Its id.
    pub id: Id,
    /// The endpoint.
    pub endpoint_id: Id,
    /// What happened (`trade.paid`, ...).
    pub topic: String,
    /// The message body (JSON).
    #[serde(skip)]
    pub payload: String,
    /// `pending`, `delivered` or `failed`.
    pub status: String,
    /// Attempts made.
    pub attempts: i64,
    /// When the next attempt is due (while pending).
    pub next_attempt_at: u64,
    /// The HTTP status of the last attempt, if it got one.
    pub last_status: Option<i64>,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    /// When the message was written.
    pub created_at: u64,
    /// When the endpoint took it.
    pub delivered_at: Option<u64>,
}

/// Registers an endpoint.
pub fn create_endpoint(sql: &mut dyn Sql, endpoint: &Endpoint) -> Result<(), StoreError> {
    sql.execute(
        "INSERT INTO webhook_endpoints (id, user_id, url, secret, created_at) \
         VALUES ($1, $2, $3, $4, $5)",
        &[
            endpoint.id.0.into(),
            endpoint.user_id.0.into(),
            endpoint.url.as_str().into(),
            endpoint.secret.as_str().into(),
            endpoint.created_at.into(),
        ],
    )?;
    Ok(())
}

fn endpoint_from(row: &Row) -> Result<Endpoint, StoreError> {
    Ok(Endpoint {
        id: Id(row.uint(0)?),
        user_id: Id(row.uint(1)?),
        url: row.text(2)?,
        secret: row.text(3)?,
        created_at: row.uint(4)?,
    })
}

/// A person's endpoints, newest first.
pub fn endpoints(sql: &mut dyn Sql, user: Id) -> Result<Vec<Endpoint>, StoreError> {
    sql.query(
        "SELECT id, user_id, url, secret, created_at FROM webhook_endpoints \
         WHERE user_id = $1 ORDER BY id DESC",
        &[user.0.into()],
    )?
    .iter()
    .map(endpoint_from)
    .collect()
}

/// One of a person's endpoints.
pub fn endpoint(sql: &mut dyn Sql, user: Id, id: Id) -> Result<Option<Endpoint>, StoreError> {
    sql.query_opt(
        "SELECT id, user_id, url, secret, created_at FROM webhook_endpoints \
         WHERE user_id = $1 AND id = $2",
        &[user.0.into(), id.0.into()],
    )?
    .as_ref()
    .map(endpoint_from)
    .transpose()
}

const DELIVERY_COLUMNS: &str = "d.id, d.endpoint_id, d.topic, d.payload, d.status, d.attempts, \
    d.next_attempt_at, d.last_status, d.last_error, d.created_at, d.delivered_at";

fn delivery_from(row: &Row) -> Result<Delivery, StoreError> {
    Ok(Delivery {
        id: Id(row.uint(0)?),
        endpoint_id: Id(row.uint(1)?),
        topic: row.text(2)?,
        payload: row.text(3)?,
        status: row.text(4)?,
        attempts: row.int(5)?,
        next_attempt_at: row.uint(6)?,
        last_status: row.opt_uint(7)?.map(|s| s as i64),
        last_error: row.opt_text(8)?,
        created_at: row.uint(9)?,
        delivered_at: row.opt_uint(10)?,
    })
}

/// A page of an endpoint's deliveries, newest first.
pub fn deliveries(
    sql: &mut dyn Sql,
    endpoint: Id,
    before: Option<Id>,
    limit: u32,
) -> Result<Vec<Delivery>, StoreError> {
    let limit = i64::from(limit.clamp(1, crate::trade::PAGE_MAX));
    sql.query(
        &format!(
            "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries d WHERE d.endpoint_id = $1 \
             AND (CAST($2 AS BIGINT) IS NULL OR d.id < $2) ORDER BY d.id DESC LIMIT $3"
        ),
        &[
            endpoint.0.into(),
            before.map(|id| id.0).into(),
            limit.into(),
        ],
    )?
    .iter()
    .map(delivery_from)
    .collect()
}

/// Turns up to `limit` outbox messages into one delivery per endpoint of their person (a
/// person without endpoints gets none), marking the messages handed on. The number handled.
pub fn fan_out(sql: &mut dyn Sql, now: u64, limit: u32) -> Result<usize, StoreError> {
    let messages = sql.query(
        "SELECT id, topic, payload, user_id, timestamp FROM outbox \
         WHERE delivered_at IS NULL ORDER BY id LIMIT $1",
        &[i64::from(limit).into()],
    )?;
    for message in &messages {
        let id = message.int(0)?;
        if message.text(1)? == formica_core::trade::NOTIFY_TOPIC {
            // A gateway notification goes to the trade's notify_url, not to webhooks.
            let payload = message.text(2)?;
            let url = serde_json::from_str::<serde_json::Value>(&payload)
                .ok()
                .and_then(|v| v.get("notify_url")?.as_str().map(str::to_owned));
            if let Some(url) = url {
                let merchant = Id(message.opt_uint(3)?.unwrap_or(0));
                let created_at = message.uint(4)?;
                crate::merchant::queue_notification(
                    sql, id, merchant, &url, &payload, created_at, now,
                )?;
            }
            sql.execute(
                "UPDATE outbox SET delivered_at = $1 WHERE id = $2",
                &[now.into(), id.into()],
            )?;
            continue;
        }
        sql.execute(
            "INSERT INTO webhook_deliveries (endpoint_id, outbox_id, user_id, topic, payload, \
             status, attempts, next_attempt_at, created_at) \
             SELECT e.id, o.id, o.user_id, o.topic, o.payload, 'pending', 0, $1, o.timestamp \
             FROM outbox o JOIN webhook_endpoints e ON e.user_id = o.user_id \
             WHERE o.id = $2 ON CONFLICT (outbox_id, endpoint_id) DO NOTHING",
            &[now.into(), id.into()],
        )?;
        sql.execute(
            "UPDATE outbox SET delivered_at = $1 WHERE id = $2",
            &[now.into(), id.into()],
        )?;
    }
    Ok(messages.len())
}

/// A delivery due now, with where it goes and the key it is signed with.
#[derive(Clone, Debug)]
pub struct DueDelivery {
    /// The delivery.
    pub delivery: Delivery,
    /// The endpoint's URL.
    pub url: String,
    /// The endpoint's secret.
    pub secret: String,
}

/// Up to `limit` pending deliveries whose next attempt is due, oldest first.
pub fn due(sql: &mut dyn Sql, now: u64, limit: u32) -> Result<Vec<DueDelivery>, StoreError> {
    sql.query(
        &format!(
            "SELECT {DELIVERY_COLUMNS}, e.url, e.secret FROM webhook_deliveries d \
             JOIN webhook_endpoints e ON e.id = d.endpoint_id \
             WHERE d.status = 'pending' AND d.next_attempt_at <= $1 \
             ORDER BY d.next_attempt_at, d.id LIMIT $2"
        ),
        &[now.into(), i64::from(limit).into()],
    )?
    .iter()
    .map(|row| {
        Ok(DueDelivery {
            delivery: delivery_from(row)?,
            url: row.text(11)?,
            secret: row.text(12)?,
        })
    })
    .collect()
}

/// How one attempt went.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Attempt {
    /// The endpoint answered 2xx.
    Delivered {
        /// Its status.
        status: u16,
    },
    /// It did not; try again at `retry_at`, or give up (`None`).
    Failed {
        /// The status, if the endpoint answered at all.
        status: Option<u16>,
        /// What went wrong.
        error: String,
        /// When to try again.
        retry_at: Option<u64>,
    },
}

/// Records an attempt.
pub fn record_attempt(
    sql: &mut dyn Sql,
    id: Id,
    now: u64,
    attempt: &Attempt,
) -> Result<(), StoreError> {
    record_in(sql, "webhook_deliveries", id.0 as i64, now, attempt)
}

/// Records an attempt of a delivery in `table` (webhook or notify deliveries, which keep
/// their attempts alike).
pub(crate) fn record_in(
    sql: &mut dyn Sql,
    table: &str,
    id: i64,
    now: u64,
    attempt: &Attempt,
) -> Result<(), StoreError> {
    match attempt {
        Attempt::Delivered { status } => sql.execute(
            &format!(
                "UPDATE {table} SET status = 'delivered', attempts = attempts + 1, \
                 last_status = $1, last_error = NULL, delivered_at = $2 WHERE id = $3"
            ),
            &[i64::from(*status).into(), now.into(), id.into()],
        )?,
        Attempt::Failed {
            status,
            error,
            retry_at,
        } => sql.execute(
            &format!(
                "UPDATE {table} SET status = $1, attempts = attempts + 1, \
                 last_status = $2, last_error = $3, next_attempt_at = $4 WHERE id = $5"
            ),
            &[
                if retry_at.is_some() {
                    "pending"
                } else {
                    "failed"
                }
                .into(),
                status.map(i64::from).into(),
                error.as_str().into(),
                retry_at.unwrap_or(now).into(),
                id.into(),
            ],
        )?,
    };
    Ok(())
}
