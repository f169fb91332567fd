//! Reads of escrow trades (the engine writes them).

use formica_core::Id;
use formica_core::trade::{Trade, TradeStatus};

use crate::StoreError;
use crate::products::{TRADE_COLUMNS, trade_from};
use crate::sql::Sql;

/// Largest page of a list.
pub const PAGE_MAX: u32 = 100;

/// Which of a person's trades to list.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Role {
    /// Where they buy or sell.
    #[default]
    Any,
    /// Where they buy.
    Buyer,
    /// Where they sell.
    Seller,
}

/// A page of trades, newest first.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TradeQuery {
    /// Whose trades; `None` lists every trade (operators).
    pub user: Option<Id>,
    /// As buyer, seller or either.
    pub role: Role,
    /// Only in this status.
    pub status: Option<TradeStatus>,
    /// Only this out_trade_no.
    pub out_trade_no: Option<String>,
    /// Only trades with ids below this (the cursor: the last id of the previous page).
    pub before: Option<Id>,
    /// Page size, 1 to `PAGE_MAX`.
    pub limit: u32,
}

/// The trade with this id, whoever's it is (callers check who may see it).
pub fn trade(sql: &mut dyn Sql, id: Id) -> Result<Option<Trade>, StoreError> {
    sql.query_opt(
        &format!("SELECT {TRADE_COLUMNS} FROM trades WHERE id = $1"),
        &[id.0.into()],
    )?
    .as_ref()
    .map(trade_from)
    .transpose()
}

/// The trades with these ids (those that exist), in id order.
pub fn trades_by_id(sql: &mut dyn Sql, ids: &[Id]) -> Result<Vec<Trade>, StoreError> {
    let mut trades = Vec::with_capacity(ids.len());
    // In slices, so that a batch naming thousands stays within any statement's parameters.
    for chunk in ids.chunks(500) {
        let placeholders: Vec<String> = (1..=chunk.len()).map(|n| format!("${n}")).collect();
        let params: Vec<_> = chunk.iter().map(|id| id.0.into()).collect();
        let rows = sql.query(
            &format!(
                "SELECT {TRADE_COLUMNS} FROM trades WHERE id IN ({}) ORDER BY id",
                placeholders.join(", ")
            ),
            &params,
        )?;
        for row in &rows {
            trades.push(trade_from(row)?);
        }
    }
    Ok(trades)
}

/// Which of these (seller, out_trade_no) pairs a trade holds.
pub fn numbers_taken(
    sql: &mut dyn Sql,
    numbers: &[(Id, String)],
) -> Result<Vec<(Id, String)>, StoreError> {
    let mut taken = Vec::new();
    for chunk in numbers.chunks(200) {
        let mut params = Vec::with_capacity(chunk.len() * 2);
        let mut terms = Vec::with_capacity(chunk.len());
        for (n, (seller, number)) in chunk.iter().enumerate() {
            terms.push(format!(
                "(seller_id = ${} AND out_trade_no = ${})",
                2 * n + 1,
                2 * n + 2
            ));
            params.push(seller.0.into());
            params.push(number.as_str().into());
        }
        let rows = sql.query(
            &format!(
                "SELECT seller_id, out_trade_no FROM trades WHERE {}",
                terms.join(" OR ")
            ),
            &params,
        )?;
        for row in &rows {
            taken.push((Id(row.uint(0)?), row.text(1)?));
        }
    }
    Ok(taken)
}

/// The seller's trade with this out_trade_no.
pub fn by_out_trade_no(
    sql: &mut dyn Sql,
    seller: Id,
    out_trade_no: &str,
) -> Result<Option<Trade>, StoreError> {
    sql.query_opt(
        &format!("SELECT {TRADE_COLUMNS} FROM trades WHERE seller_id = $1 AND out_trade_no = $2"),
        &[seller.0.into(), out_trade_no.into()],
    )?
    .as_ref()
    .map(trade_from)
    .transpose()
}

/// A page of trades.
pub fn trades(sql: &mut dyn Sql, query: &TradeQuery) -> Result<Vec<Trade>, StoreError> {
    let user = query.user.map(|id| id.0);
    let party = match query.role {
        Role::Any => "(CAST($1 AS BIGINT) IS NULL OR seller_id = $1 OR buyer_id = $1)",
        Role::Buyer => "(CAST($1 AS BIGINT) IS NULL OR buyer_id = $1)",
        Role::Seller => "(CAST($1 AS BIGINT) IS NULL OR seller_id = $1)",
    };
    let limit = i64::from(query.limit.clamp(1, PAGE_MAX));
    sql.query(
        &format!(
            "SELECT {TRADE_COLUMNS} FROM trades WHERE {party} \
             AND (CAST($2 AS TEXT) IS NULL OR status = $2) \
             AND (CAST($3 AS TEXT) IS NULL OR out_trade_no = $3) \
             AND (CAST($4 AS BIGINT) IS NULL OR id < $4) ORDER BY id DESC LIMIT $5"
        ),
        &[
            user.into(),
            query.status.map(TradeStatus::as_str).into(),
            query.out_trade_no.as_deref().into(),
            query.before.map(|id| id.0).into(),
            limit.into(),
        ],
    )?
    .iter()
    .map(trade_from)
    .collect()
}
