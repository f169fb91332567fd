//! The pocket-money fund's rows: written by the engine's batches (funds, holdings,
//! subscriptions, redemptions, incomes, holidays), loaded back for the core, and read for
//! statements and reports. A holder's units and daily earnings are the books' (their units
//! account and its `FUND_EARNINGS` transfers), not rows here.

use formica_core::fund::{Fund, Holding, Income, Redemption, Subscription};
use formica_core::products::ProductEffects;
use formica_core::{Id, Money, ProductsLoaded};

use crate::StoreError;
use crate::products::currency;
use crate::sql::{Column, Row, Sql, Value};

fn corrupt(what: &str, error: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{what}: {error}"))
}

/// Writes a batch's fund rows.
pub(crate) fn write(sql: &mut dyn Sql, effects: &ProductEffects) -> Result<(), StoreError> {
    use Column::{Int, Text};
    let funds: Vec<Vec<Value>> = effects
        .funds
        .iter()
        .map(|fund| {
            vec![
                fund.id.0.into(),
                fund.name.as_str().into(),
                fund.currency.code().into(),
                serde_json::to_string(fund)
                    .expect("a fund serializes")
                    .into(),
            ]
        })
        .collect();
    sql.execute_many(
        "INSERT INTO funds (id, name, currency, state) {rows} \
         ON CONFLICT (id) DO UPDATE SET name = excluded.name, state = excluded.state",
        &[Int, Text, Text, Text],
        &funds,
    )?;
    let holdings: Vec<Vec<Value>> = effects.holdings.iter().map(holding_params).collect();
    sql.execute_many(
        &format!(
            "INSERT INTO fund_holdings ({HOLDING_COLUMNS}) {{rows}} \
             ON CONFLICT (fund_id, holder_id) DO UPDATE SET pending = excluded.pending, \
             recent = excluded.recent, instant_day = excluded.instant_day, \
             instant_used = excluded.instant_used"
        ),
        &[Int, Int, Int, Text, Int, Int],
        &holdings,
    )?;
    let subscriptions: Vec<Vec<Value>> = effects
        .subscriptions
        .iter()
        .map(|s| {
            vec![
                s.id.0.into(),
                s.fund_id.0.into(),
                s.holder_id.0.into(),
                s.amount.amount_minor.into(),
                s.amount.currency.code().into(),
                s.confirm_day.into(),
                i64::from(s.confirmed).into(),
                s.created_at.into(),
                s.units_transfer.to_string().into(),
            ]
        })
        .collect();
    sql.execute_many(
        &format!(
            "INSERT INTO fund_subscriptions ({SUBSCRIPTION_COLUMNS}) {{rows}} \
             ON CONFLICT (id) DO UPDATE SET confirmed = excluded.confirmed, \
             confirm_day = excluded.confirm_day"
        ),
        &[Int, Int, Int, Int, Text, Int, Int, Int, Text],
        &subscriptions,
    )?;
    let redemptions: Vec<Vec<Value>> = effects
        .redemptions
        .iter()
        .map(|r| {
            vec![
                r.id.0.into(),
                r.fund_id.0.into(),
                r.holder_id.0.into(),
                r.amount.amount_minor.into(),
                r.amount.currency.code().into(),
                i64::from(r.instant).into(),
                r.pay_day.into(),
                i64::from(r.paid).into(),
                r.created_at.into(),
                r.money_transfer.to_string().into(),
            ]
        })
        .collect();
    sql.execute_many(
        &format!(
            "INSERT INTO fund_redemptions ({REDEMPTION_COLUMNS}) {{rows}} \
             ON CONFLICT (id) DO UPDATE SET paid = excluded.paid, pay_day = excluded.pay_day"
        ),
        &[Int, Int, Int, Int, Text, Int, Int, Int, Int, Text],
        &redemptions,
    )?;
    let incomes: Vec<Vec<Value>> = effects
        .incomes
        .iter()
        .map(|(fund, day, income)| vec![fund.0.into(), (*day).into(), income.to_string().into()])
        .collect();
    sql.execute_many(
        "INSERT INTO fund_incomes (fund_id, day, income) {rows}",
        &[Int, Int, Text],
        &incomes,
    )?;
    if let Some(days) = &effects.holidays {
        sql.execute("DELETE FROM holidays", &[])?;
        let rows: Vec<Vec<Value>> = days.iter().map(|d| vec![(*d).into()]).collect();
        sql.execute_many("INSERT INTO holidays (day) {rows}", &[Int], &rows)?;
    }
    Ok(())
}

const HOLDING_COLUMNS: &str = "fund_id, holder_id, pending, recent, instant_day, instant_used";

const SUBSCRIPTION_COLUMNS: &str = "id, fund_id, holder_id, amount_minor, currency, \
    confirm_day, confirmed, created_at, units_transfer";

const REDEMPTION_COLUMNS: &str = "id, fund_id, holder_id, amount_minor, currency, instant, \
    pay_day, paid, created_at, money_transfer";

fn holding_params(h: &Holding) -> Vec<Value> {
    vec![
        h.fund_id.0.into(),
        h.holder_id.0.into(),
        h.pending.into(),
        serde_json::to_string(&h.recent)
            .expect("pairs serialize")
            .into(),
        h.instant_day.into(),
        h.instant_used.into(),
    ]
}

/// A holding as stored: its units (the books') are zero here.
fn holding_from(row: &Row) -> Result<Holding, StoreError> {
    Ok(Holding {
        fund_id: Id(row.uint(0)?),
        holder_id: Id(row.uint(1)?),
        units: 0,
        pending: row.uint(2)?,
        recent: serde_json::from_str(&row.text(3)?).map_err(|e| corrupt("holding", e))?,
        instant_day: row.int(4)?,
        instant_used: row.uint(5)?,
    })
}

fn transfer_id(text: &str) -> Result<u128, StoreError> {
    text.parse().map_err(|e| corrupt("transfer id", e))
}

fn subscription_from(row: &Row) -> Result<Subscription, StoreError> {
    Ok(Subscription {
        id: Id(row.uint(0)?),
        fund_id: Id(row.uint(1)?),
        holder_id: Id(row.uint(2)?),
        amount: Money::new(row.uint(3)?, currency(&row.text(4)?)?),
        confirm_day: row.int(5)?,
        confirmed: row.int(6)? != 0,
        created_at: row.uint(7)?,
        units_transfer: transfer_id(&row.text(8)?)?,
    })
}

fn redemption_from(row: &Row) -> Result<Redemption, StoreError> {
    Ok(Redemption {
        id: Id(row.uint(0)?),
        fund_id: Id(row.uint(1)?),
        holder_id: Id(row.uint(2)?),
        amount: Money::new(row.uint(3)?, currency(&row.text(4)?)?),
        instant: row.int(5)? != 0,
        pay_day: row.int(6)?,
        paid: row.int(7)? != 0,
        created_at: row.uint(8)?,
        money_transfer: transfer_id(&row.text(9)?)?,
    })
}

fn fund_from(row: &Row) -> Result<Fund, StoreError> {
    serde_json::from_str(&row.text(0)?).map_err(|e| corrupt("fund", e))
}

/// Every fund and holding, the open subscriptions and redemptions, and the holidays.
pub(crate) fn load(sql: &mut dyn Sql, loaded: &mut ProductsLoaded) -> Result<(), StoreError> {
    loaded.funds = sql
        .query("SELECT state FROM funds ORDER BY id", &[])?
        .iter()
        .map(fund_from)
        .collect::<Result<_, _>>()?;
    loaded.holdings = sql
        .query(
            &format!("SELECT {HOLDING_COLUMNS} FROM fund_holdings ORDER BY fund_id, holder_id"),
            &[],
        )?
        .iter()
        .map(holding_from)
        .collect::<Result<_, _>>()?;
    loaded.open_subscriptions = sql
        .query(
            &format!(
                "SELECT {SUBSCRIPTION_COLUMNS} FROM fund_subscriptions WHERE confirmed = 0 \
                 ORDER BY id"
            ),
            &[],
        )?
        .iter()
        .map(subscription_from)
        .collect::<Result<_, _>>()?;
    loaded.open_redemptions = sql
        .query(
            &format!(
                "SELECT {REDEMPTION_COLUMNS} FROM fund_redemptions WHERE paid = 0 ORDER BY id"
            ),
            &[],
        )?
        .iter()
        .map(redemption_from)
        .collect::<Result<_, _>>()?;
    loaded.holidays = sql
        .query("SELECT day FROM holidays ORDER BY day", &[])?
        .iter()
        .map(|row| row.int(0))
        .collect::<Result<_, _>>()?;
    Ok(())
}

/// Every fund.
pub fn funds(sql: &mut dyn Sql) -> Result<Vec<Fund>, StoreError> {
    sql.query("SELECT state FROM funds ORDER BY id", &[])?
        .iter()
        .map(fund_from)
        .collect()
}

/// One fund.
pub fn fund(sql: &mut dyn Sql, id: Id) -> Result<Option<Fund>, StoreError> {
    sql.query_opt("SELECT state FROM funds WHERE id = $1", &[id.0.into()])?
        .as_ref()
        .map(fund_from)
        .transpose()
}

/// A person's holding of a fund.
pub fn holding(sql: &mut dyn Sql, fund: Id, holder: Id) -> Result<Option<Holding>, StoreError> {
    sql.query_opt(
        &format!(
            "SELECT {HOLDING_COLUMNS} FROM fund_holdings WHERE fund_id = $1 AND holder_id = $2"
        ),
        &[fund.0.into(), holder.0.into()],
    )?
    .as_ref()
    .map(holding_from)
    .transpose()
}

/// A person's holdings of every fund.
pub fn holdings_of(sql: &mut dyn Sql, holder: Id) -> Result<Vec<Holding>, StoreError> {
    sql.query(
        &format!(
            "SELECT {HOLDING_COLUMNS} FROM fund_holdings WHERE holder_id = $1 ORDER BY fund_id"
        ),
        &[holder.0.into()],
    )?
    .iter()
    .map(holding_from)
    .collect()
}

/// What a holder put in and took out of a fund: (subscribed, redeemed), in minor units. Their
/// units less this net is what they earned in all.
pub fn net_in(sql: &mut dyn Sql, fund: Id, holder: Id) -> Result<(u64, u64), StoreError> {
    let sum = |sql: &mut dyn Sql, table: &str| -> Result<u64, StoreError> {
        sql.query_opt(
            &format!(
                "SELECT CAST(COALESCE(SUM(amount_minor), 0) AS BIGINT) FROM {table} \
                 WHERE fund_id = $1 AND holder_id = $2"
            ),
            &[fund.0.into(), holder.0.into()],
        )?
        .map_or(Ok(0), |row| row.uint(0))
    };
    Ok((
        sum(sql, "fund_subscriptions")?,
        sum(sql, "fund_redemptions")?,
    ))
}

/// A fund's daily incomes, newest first.
pub fn incomes(sql: &mut dyn Sql, fund: Id, limit: u32) -> Result<Vec<(i64, Income)>, StoreError> {
    sql.query(
        "SELECT day, income FROM fund_incomes WHERE fund_id = $1 ORDER BY day DESC LIMIT $2",
        &[fund.0.into(), i64::from(limit).into()],
    )?
    .iter()
    .map(|row| {
        let income = Income::parse(&row.text(1)?).map_err(|e| corrupt("income", e))?;
        Ok((row.int(0)?, income))
    })
    .collect()
}

/// A fund's report: people who ever held it, and units pending confirmation.
pub fn report(sql: &mut dyn Sql, fund: Id) -> Result<(u64, u64), StoreError> {
    let row = sql
        .query_opt(
            // PostgreSQL sums bigints as numeric: back to bigint.
            "SELECT COUNT(*), CAST(COALESCE(SUM(pending), 0) AS BIGINT) \
             FROM fund_holdings WHERE fund_id = $1",
            &[fund.0.into()],
        )?
        .ok_or_else(|| StoreError::Corrupt("no report row".into()))?;
    Ok((row.uint(0)?, row.uint(1)?))
}

/// The holiday calendar.
pub fn holidays(sql: &mut dyn Sql) -> Result<Vec<i64>, StoreError> {
    sql.query("SELECT day FROM holidays ORDER BY day", &[])?
        .iter()
        .map(|row| row.int(0))
        .collect()
}

/// A person's subscriptions and redemptions of a fund, newest first.
pub fn activity(
    sql: &mut dyn Sql,
    fund: Id,
    holder: Id,
    limit: u32,
) -> Result<(Vec<Subscription>, Vec<Redemption>), StoreError> {
    let params = [fund.0.into(), holder.0.into(), i64::from(limit).into()];
    let subscriptions = sql
        .query(
            &format!(
                "SELECT {SUBSCRIPTION_COLUMNS} FROM fund_subscriptions \
                 WHERE fund_id = $1 AND holder_id = $2 ORDER BY id DESC LIMIT $3"
            ),
            &params,
        )?
        .iter()
        .map(subscription_from)
        .collect::<Result<_, _>>()?;
    let redemptions = sql
        .query(
            &format!(
                "SELECT {REDEMPTION_COLUMNS} FROM fund_redemptions \
                 WHERE fund_id = $1 AND holder_id = $2 ORDER BY id DESC LIMIT $3"
            ),
            &params,
        )?
        .iter()
        .map(redemption_from)
        .collect::<Result<_, _>>()?;
    Ok((subscriptions, redemptions))
}
