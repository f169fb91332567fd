//! The products' rows as a batch writes them and as `load()` reads the open ones back. Written
//! once for both databases through `sql::Sql`.

use formica_core::merchant::{DayTotals, Merchant};
use formica_core::products::{IdempotencyRow, OutboxRow, ProductEffects, TransferReceipt};
use formica_core::trade::{RefundRequest, Trade, TradeRefund, TradeStatus};
use formica_core::wallet::{Level, Movement, MovementKind, MovementStatus, Person, Spending};
use formica_core::{Currency, Id, Money, ProductsLoaded};

use crate::StoreError;
use crate::sql::{Column, Row, Sql, Value};

/// Writes a batch's product rows (inside the batch's transaction): one statement per table
/// however many rows the batch made.
pub(crate) fn write(sql: &mut dyn Sql, effects: &ProductEffects) -> Result<(), StoreError> {
    use Column::{Int, Text};
    if effects.is_empty() {
        // A batch of plain books commands (the benchmarks') writes nothing more. An id handed
        // out by a refused command and not kept is never seen anywhere, so losing it is fine.
        return Ok(());
    }
    sql.execute("UPDATE books SET id_last = $1", &[effects.id_last.into()])?;
    let people: Vec<Vec<Value>> = effects
        .people
        .iter()
        .map(|(id, person)| vec![id.0.into(), person.level.as_str().into()])
        .collect();
    sql.execute_many(
        "INSERT INTO people (user_id, level) {rows} \
         ON CONFLICT (user_id) DO UPDATE SET level = excluded.level",
        &[Int, Text],
        &people,
    )?;
    let spending: Vec<Vec<Value>> = effects
        .spenders
        .iter()
        .flat_map(|(id, person)| {
            person.spending.iter().map(|s| {
                vec![
                    id.0.into(),
                    s.currency.code().into(),
                    s.day.into(),
                    s.spent_minor.into(),
                ]
            })
        })
        .collect();
    sql.execute_many(
        "INSERT INTO spending (user_id, currency, day, spent_minor) {rows} \
         ON CONFLICT (user_id, currency) DO UPDATE \
         SET day = excluded.day, spent_minor = excluded.spent_minor",
        &[Int, Text, Int, Int],
        &spending,
    )?;
    let trades: Vec<Vec<Value>> = effects.trades.iter().map(trade_params).collect();
    sql.execute_many(UPSERT_TRADE, &TRADE_TYPES, &trades)?;
    let merchants: Vec<Vec<Value>> = effects.merchants.iter().map(merchant_params).collect();
    sql.execute_many(UPSERT_MERCHANT, &MERCHANT_TYPES, &merchants)?;
    let settlements: Vec<Vec<Value>> = effects
        .settlements
        .iter()
        .map(|s| {
            vec![
                s.id.0.into(),
                s.merchant_id.0.into(),
                s.from_day.into(),
                s.to_day.into(),
                s.payments.amount_minor.into(),
                s.refunds.amount_minor.into(),
                s.fees.amount_minor.into(),
                s.transfers.amount_minor.into(),
                s.amount.amount_minor.into(),
                s.amount.currency.code().into(),
                s.movement_id.0.into(),
                s.created_at.into(),
            ]
        })
        .collect();
    let codes: Vec<Vec<Value>> = effects
        .codes_used
        .iter()
        .map(|(code, _)| vec![code.as_str().into()])
        .collect();
    sql.execute_many(
        "DELETE FROM payment_codes WHERE code IN ({rows})",
        &[Text],
        &codes,
    )?;
    let used: Vec<Vec<Value>> = effects
        .codes_used
        .iter()
        .map(|(code, expires_at)| vec![code.as_str().into(), (*expires_at).into()])
        .collect();
    sql.execute_many(
        "INSERT INTO payment_codes_used (code, expires_at) {rows} \
         ON CONFLICT (code) DO UPDATE SET expires_at = excluded.expires_at",
        &[Text, Int],
        &used,
    )?;
    if let Some(oldest) = effects.codes_used.iter().map(|(_, at)| *at).min() {
        // A code lives a minute, so one that expired an hour before this batch's codes is
        // long past: the table keeps only the recent ones.
        sql.execute(
            "DELETE FROM payment_codes_used WHERE expires_at <= $1",
            &[oldest.saturating_sub(3600 * 1_000_000_000).into()],
        )?;
    }
    sql.execute_many(
        &format!("INSERT INTO settlements ({SETTLEMENT_COLUMNS}) {{rows}}"),
        &[Int, Int, Int, Int, Int, Int, Int, Int, Int, Text, Int, Int],
        &settlements,
    )?;
    let movements: Vec<Vec<Value>> = effects.movements.iter().map(movement_params).collect();
    sql.execute_many(UPSERT_MOVEMENT, &MOVEMENT_TYPES, &movements)?;
    let receipts: Vec<Vec<Value>> = effects
        .transfers
        .iter()
        .map(|receipt| {
            vec![
                receipt.id.0.into(),
                receipt.from_user_id.0.into(),
                receipt.to_user_id.0.into(),
                receipt.amount.amount_minor.into(),
                receipt.amount.currency.code().into(),
                receipt.note.as_str().into(),
                receipt.created_at.into(),
            ]
        })
        .collect();
    sql.execute_many(
        &format!("INSERT INTO person_transfers ({RECEIPT_COLUMNS}) {{rows}}"),
        &[Int, Int, Int, Int, Text, Text, Int],
        &receipts,
    )?;
    let outbox: Vec<Vec<Value>> = effects
        .outbox
        .iter()
        .map(
            |OutboxRow {
                 user_id,
                 topic,
                 payload,
                 timestamp,
             }| {
                vec![
                    (*timestamp).into(),
                    topic.as_str().into(),
                    payload.as_str().into(),
                    user_id.0.into(),
                ]
            },
        )
        .collect();
    sql.execute_many(
        "INSERT INTO outbox (timestamp, topic, payload, user_id) {rows}",
        &[Int, Text, Text, Int],
        &outbox,
    )?;
    let keys: Vec<Vec<Value>> = effects
        .idempotency
        .iter()
        .map(
            |IdempotencyRow {
                 key,
                 outcome,
                 timestamp,
             }| {
                vec![
                    key.owner.0.into(),
                    key.key.as_str().into(),
                    key.fingerprint.as_str().into(),
                    outcome.as_str().into(),
                    (*timestamp).into(),
                ]
            },
        )
        .collect();
    // The edge lets one request per key through at a time and looks the key up first; should
    // two still meet, the first answer stands and the batch is not failed for it.
    sql.execute_many(
        "INSERT INTO idempotency_keys (owner, key, fingerprint, outcome, created_at) {rows} \
         ON CONFLICT (owner, key) DO NOTHING",
        &[Int, Text, Text, Text, Int],
        &keys,
    )?;
    crate::fund::write(sql, effects)?;
    crate::credit::write(sql, effects)?;
    crate::credit::write_holds(sql, effects)?;
    crate::credit::write_lines(sql, effects)?;
    Ok(())
}

/// People and every open trade and movement.
pub(crate) fn load(sql: &mut dyn Sql) -> Result<ProductsLoaded, StoreError> {
    let id_last = sql
        .query_opt("SELECT id_last FROM books", &[])?
        .map(|row| row.uint(0))
        .transpose()?
        .unwrap_or(0);
    let mut people: Vec<(Id, Person)> = Vec::new();
    for row in sql.query("SELECT user_id, level FROM people ORDER BY user_id", &[])? {
        people.push((
            Id(row.uint(0)?),
            Person {
                level: level(&row.text(1)?)?,
                spending: Vec::new(),
            },
        ));
    }
    let spending = sql.query(
        "SELECT user_id, currency, day, spent_minor FROM spending ORDER BY user_id, currency",
        &[],
    )?;
    for row in spending {
        let user = Id(row.uint(0)?);
        let index = people
            .binary_search_by_key(&user, |(id, _)| *id)
            .map_err(|_| StoreError::Corrupt(format!("spending of unknown person {user}")))?;
        people[index].1.spending.push(Spending {
            currency: currency(&row.text(1)?)?,
            day: row.int(2)?,
            spent_minor: row.uint(3)?,
        });
    }
    let open_trades = sql
        .query(
            &format!(
                // Paid merchant trades stay in the store: the writer recalls them when named.
                "SELECT {TRADE_COLUMNS} FROM trades \
                 WHERE status NOT IN ('TRADE_FINISHED', 'TRADE_CLOSED', 'TRADE_SUCCESS') \
                 ORDER BY id"
            ),
            &[],
        )?
        .iter()
        .map(trade_from)
        .collect::<Result<_, _>>()?;
    let open_movements = sql
        .query(
            &format!(
                "SELECT {MOVEMENT_COLUMNS} FROM movements WHERE status = 'pending' ORDER BY id"
            ),
            &[],
        )?
        .iter()
        .map(movement_from)
        .collect::<Result<_, _>>()?;
    let merchants = sql
        .query(
            &format!("SELECT {MERCHANT_COLUMNS}, days FROM merchants ORDER BY id"),
            &[],
        )?
        .iter()
        .map(|row| {
            let mut merchant = merchant_from(row)?;
            merchant.days = serde_json::from_str::<Vec<DayTotals>>(&row.text(10)?)
                .map_err(|e| StoreError::Corrupt(format!("merchant days: {e}")))?;
            Ok(merchant)
        })
        .collect::<Result<_, StoreError>>()?;
    let mut loaded = ProductsLoaded {
        id_last,
        people,
        open_trades,
        open_movements,
        merchants,
        ..ProductsLoaded::default()
    };
    crate::fund::load(sql, &mut loaded)?;
    crate::credit::load(sql, &mut loaded)?;
    crate::credit::load_holds(sql, &mut loaded)?;
    crate::credit::load_lines(sql, &mut loaded)?;
    // Used codes not expired at the books' clock (the writer's memory keeps the same).
    let clock = sql
        .query_opt("SELECT timestamp FROM books", &[])?
        .map(|row| row.uint(0))
        .transpose()?
        .unwrap_or(0);
    loaded.codes_used = sql
        .query(
            "SELECT code, expires_at FROM payment_codes_used WHERE expires_at > $1 ORDER BY code",
            &[clock.into()],
        )?
        .iter()
        .map(|row| Ok((row.text(0)?, row.uint(1)?)))
        .collect::<Result<_, StoreError>>()?;
    Ok(loaded)
}

/// The trade columns, in the order `trade_params` writes and `trade_from` reads them.
pub(crate) const TRADE_COLUMNS: &str = "id, seller_id, buyer_id, out_trade_no, subject, \
    amount_minor, currency, status, refunded_minor, tracking, refund_amount_minor, \
    refund_reason, refund_requested_at, refund_resume, refund_paused_ns, close_reason, \
    deadline, created_at, paid_at, updated_at, hold, escrow, app_id, fee_minor, refunds, \
    notify_url, return_url, passback_params, credit";

/// The type of each of `TRADE_COLUMNS`.
const TRADE_TYPES: [Column; 29] = {
    use Column::{Int, Text, Uuid};
    [
        Int, Int, Int, Text, Text, Int, Text, Text, Int, Text, Int, Text, Int, Text, Int, Text,
        Int, Int, Int, Int, Uuid, Int, Text, Int, Text, Text, Text, Text, Text,
    ]
};

const UPSERT_TRADE: &str = "INSERT INTO trades (id, seller_id, buyer_id, out_trade_no, \
    subject, amount_minor, currency, status, refunded_minor, tracking, refund_amount_minor, \
    refund_reason, refund_requested_at, refund_resume, refund_paused_ns, close_reason, \
    deadline, created_at, paid_at, updated_at, hold, escrow, app_id, fee_minor, refunds, \
    notify_url, return_url, passback_params, credit) {rows} \
    ON CONFLICT (id) DO UPDATE SET buyer_id = excluded.buyer_id, status = excluded.status, \
    refunded_minor = excluded.refunded_minor, tracking = excluded.tracking, \
    refund_amount_minor = excluded.refund_amount_minor, refund_reason = excluded.refund_reason, \
    refund_requested_at = excluded.refund_requested_at, refund_resume = excluded.refund_resume, \
    refund_paused_ns = excluded.refund_paused_ns, close_reason = excluded.close_reason, \
    deadline = excluded.deadline, paid_at = excluded.paid_at, updated_at = excluded.updated_at, \
    hold = excluded.hold, fee_minor = excluded.fee_minor, refunds = excluded.refunds, \
    credit = excluded.credit";

fn trade_params(trade: &Trade) -> Vec<Value> {
    let request = trade.refund_request.as_ref();
    vec![
        trade.id.0.into(),
        trade.seller_id.0.into(),
        trade.buyer_id.map(|id| id.0).into(),
        trade.out_trade_no.as_str().into(),
        trade.subject.as_str().into(),
        trade.amount.amount_minor.into(),
        trade.amount.currency.code().into(),
        trade.status.as_str().into(),
        trade.refunded.amount_minor.into(),
        trade.tracking.clone().into(),
        request.map(|r| r.amount.amount_minor).into(),
        request.map(|r| r.reason.clone()).into(),
        request.map(|r| r.requested_at).into(),
        request.map(|r| r.resume.as_str()).into(),
        request.and_then(|r| r.paused_ns).into(),
        trade.close_reason.clone().into(),
        trade.deadline.into(),
        trade.created_at.into(),
        trade.paid_at.into(),
        trade.updated_at.into(),
        hold(trade.hold),
        i64::from(trade.escrow).into(),
        trade.app_id.clone().into(),
        trade.fee.map(|f| f.amount_minor).into(),
        (!trade.refunds.is_empty())
            .then(|| serde_json::to_string(&trade.refunds).expect("refunds serialize"))
            .into(),
        trade.notify_url.clone().into(),
        trade.return_url.clone().into(),
        trade.passback_params.clone().into(),
        trade
            .credit
            .as_ref()
            .map(|c| serde_json::to_string(c).expect("a trade's credit serializes"))
            .into(),
    ]
}

/// A trade read back from `TRADE_COLUMNS`.
pub(crate) fn trade_from(row: &Row) -> Result<Trade, StoreError> {
    let currency = currency(&row.text(6)?)?;
    let refund_request = match row.opt_uint(10)? {
        None => None,
        Some(amount) => Some(RefundRequest {
            amount: Money::new(amount, currency),
            reason: row.opt_text(11)?.unwrap_or_default(),
            requested_at: row.opt_uint(12)?.unwrap_or(0),
            resume: status(&row.opt_text(13)?.unwrap_or_default())?,
            paused_ns: row.opt_uint(14)?,
        }),
    };
    Ok(Trade {
        id: Id(row.uint(0)?),
        seller_id: Id(row.uint(1)?),
        buyer_id: row.opt_uint(2)?.map(Id),
        out_trade_no: row.text(3)?,
        subject: row.text(4)?,
        amount: Money::new(row.uint(5)?, currency),
        status: status(&row.text(7)?)?,
        refunded: Money::new(row.uint(8)?, currency),
        tracking: row.opt_text(9)?,
        refund_request,
        close_reason: row.opt_text(15)?,
        deadline: row.opt_uint(16)?,
        created_at: row.uint(17)?,
        paid_at: row.opt_uint(18)?,
        updated_at: row.uint(19)?,
        hold: hold_back(row.opt_bytes(20)?)?,
        escrow: row.int(21)? != 0,
        app_id: row.opt_text(22)?,
        fee: row.opt_uint(23)?.map(|fee| Money::new(fee, currency)),
        refunds: match row.opt_text(24)? {
            None => Vec::new(),
            Some(json) => serde_json::from_str::<Vec<TradeRefund>>(&json)
                .map_err(|e| StoreError::Corrupt(format!("trade refunds: {e}")))?,
        },
        notify_url: row.opt_text(25)?,
        return_url: row.opt_text(26)?,
        passback_params: row.opt_text(27)?,
        credit: match row.opt_text(28)? {
            None => None,
            Some(json) => Some(
                serde_json::from_str(&json)
                    .map_err(|e| StoreError::Corrupt(format!("trade credit: {e}")))?,
            ),
        },
    })
}

/// The merchant columns, in the order `merchant_from` reads them (`days` is written too).
pub(crate) const MERCHANT_COLUMNS: &str = "id, owner_id, name, contact, category, country, \
    currency, card_id, fee_ppm, created_at";

const MERCHANT_TYPES: [Column; 11] = {
    use Column::{Int, Text};
    [Int, Int, Text, Text, Text, Text, Text, Int, Int, Int, Text]
};

const UPSERT_MERCHANT: &str = "INSERT INTO merchants (id, owner_id, name, contact, category, \
    country, currency, card_id, fee_ppm, created_at, days) {rows} \
    ON CONFLICT (id) DO UPDATE SET fee_ppm = excluded.fee_ppm, card_id = excluded.card_id, \
    days = excluded.days";

fn merchant_params(merchant: &Merchant) -> Vec<Value> {
    vec![
        merchant.id.0.into(),
        merchant.owner_id.0.into(),
        merchant.name.as_str().into(),
        merchant.contact.as_str().into(),
        merchant.category.as_str().into(),
        merchant.country.as_str().into(),
        merchant.currency.code().into(),
        merchant.card_id.0.into(),
        i64::from(merchant.fee_ppm).into(),
        merchant.created_at.into(),
        serde_json::to_string(&merchant.days)
            .expect("days serialize")
            .into(),
    ]
}

/// A merchant read back from `MERCHANT_COLUMNS` (without its days).
pub(crate) fn merchant_from(row: &Row) -> Result<Merchant, StoreError> {
    Ok(Merchant {
        id: Id(row.uint(0)?),
        owner_id: Id(row.uint(1)?),
        name: row.text(2)?,
        contact: row.text(3)?,
        category: row.text(4)?,
        country: row.text(5)?,
        currency: currency(&row.text(6)?)?,
        card_id: Id(row.uint(7)?),
        fee_ppm: u32::try_from(row.uint(8)?).unwrap_or(u32::MAX),
        created_at: row.uint(9)?,
        days: Vec::new(),
    })
}

/// The settlement columns.
pub(crate) const SETTLEMENT_COLUMNS: &str = "id, merchant_id, from_day, to_day, payments_minor, \
    refunds_minor, fees_minor, transfers_minor, amount_minor, currency, movement_id, created_at";

/// The movement columns, in the order `movement_params` writes and `movement_from` reads them.
pub(crate) const MOVEMENT_COLUMNS: &str = "id, user_id, kind, amount_minor, currency, card_id, \
    status, failure, created_at, settled_at, deadline, hold";

/// The type of each of `MOVEMENT_COLUMNS`.
const MOVEMENT_TYPES: [Column; 12] = {
    use Column::{Int, Text, Uuid};
    [
        Int, Int, Text, Int, Text, Int, Text, Text, Int, Int, Int, Uuid,
    ]
};

const UPSERT_MOVEMENT: &str = "INSERT INTO movements (id, user_id, kind, amount_minor, \
    currency, card_id, status, failure, created_at, settled_at, deadline, hold) {rows} \
    ON CONFLICT (id) DO UPDATE SET status = excluded.status, failure = excluded.failure, \
    settled_at = excluded.settled_at";

fn movement_params(movement: &Movement) -> Vec<Value> {
    vec![
        movement.id.0.into(),
        movement.user_id.0.into(),
        movement_kind_name(movement.kind).into(),
        movement.amount.amount_minor.into(),
        movement.amount.currency.code().into(),
        movement.card_id.0.into(),
        movement_status_name(movement.status).into(),
        movement.failure.clone().into(),
        movement.created_at.into(),
        movement.settled_at.into(),
        movement.deadline.into(),
        hold(movement.hold),
    ]
}

/// A movement read back from `MOVEMENT_COLUMNS`.
pub(crate) fn movement_from(row: &Row) -> Result<Movement, StoreError> {
    let kind = match row.text(2)?.as_str() {
        "top_up" => MovementKind::TopUp,
        "withdrawal" => MovementKind::Withdrawal,
        other => return Err(StoreError::Corrupt(format!("movement kind {other:?}"))),
    };
    let status = match row.text(6)?.as_str() {
        "pending" => MovementStatus::Pending,
        "succeeded" => MovementStatus::Succeeded,
        "failed" => MovementStatus::Failed,
        other => return Err(StoreError::Corrupt(format!("movement status {other:?}"))),
    };
    Ok(Movement {
        id: Id(row.uint(0)?),
        user_id: Id(row.uint(1)?),
        kind,
        amount: Money::new(row.uint(3)?, currency(&row.text(4)?)?),
        card_id: Id(row.uint(5)?),
        status,
        failure: row.opt_text(7)?,
        created_at: row.uint(8)?,
        settled_at: row.opt_uint(9)?,
        deadline: row.uint(10)?,
        hold: hold_back(row.opt_bytes(11)?)?,
    })
}

/// The columns of a person-to-person transfer, as `receipt_from` reads them.
pub(crate) const RECEIPT_COLUMNS: &str =
    "id, from_user_id, to_user_id, amount_minor, currency, note, created_at";

/// A transfer between people read back from `RECEIPT_COLUMNS`.
pub(crate) fn receipt_from(row: &Row) -> Result<TransferReceipt, StoreError> {
    Ok(TransferReceipt {
        id: Id(row.uint(0)?),
        from_user_id: Id(row.uint(1)?),
        to_user_id: Id(row.uint(2)?),
        amount: Money::new(row.uint(3)?, currency(&row.text(4)?)?),
        note: row.text(5)?,
        created_at: row.uint(6)?,
    })
}

fn movement_kind_name(kind: MovementKind) -> &'static str {
    match kind {
        MovementKind::TopUp => "top_up",
        MovementKind::Withdrawal => "withdrawal",
    }
}

fn movement_status_name(status: MovementStatus) -> &'static str {
    match status {
        MovementStatus::Pending => "pending",
        MovementStatus::Succeeded => "succeeded",
        MovementStatus::Failed => "failed",
    }
}

/// A pending transfer id as the 16 big-endian bytes the books keep ids in.
fn hold(id: Option<u128>) -> Value {
    id.map_or(Value::Null, |id| Value::Bytes(id.to_be_bytes().to_vec()))
}

fn hold_back(bytes: Option<Vec<u8>>) -> Result<Option<u128>, StoreError> {
    bytes
        .map(|bytes| {
            <[u8; 16]>::try_from(bytes.as_slice())
                .map(u128::from_be_bytes)
                .map_err(|_| StoreError::Corrupt("a hold id is not 16 bytes".into()))
        })
        .transpose()
}

pub(crate) fn currency(code: &str) -> Result<Currency, StoreError> {
    Currency::from_code(code).ok_or_else(|| StoreError::Corrupt(format!("currency {code:?}")))
}

fn status(name: &str) -> Result<TradeStatus, StoreError> {
    TradeStatus::parse(name).ok_or_else(|| StoreError::Corrupt(format!("trade status {name:?}")))
}

fn level(name: &str) -> Result<Level, StoreError> {
    Level::parse(name).ok_or_else(|| StoreError::Corrupt(format!("level {name:?}")))
}
