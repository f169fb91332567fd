//! Reads of wallets' movements, transfers between people and idempotency keys.

use formica_core::Id;
use formica_core::products::TransferReceipt;
use formica_core::wallet::Movement;

use crate::StoreError;
use crate::products::{MOVEMENT_COLUMNS, RECEIPT_COLUMNS, movement_from, receipt_from};
use crate::sql::Sql;

/// One of a person's top-ups or withdrawals.
pub fn movement(sql: &mut dyn Sql, user: Id, id: Id) -> Result<Option<Movement>, StoreError> {
    sql.query_opt(
        &format!("SELECT {MOVEMENT_COLUMNS} FROM movements WHERE user_id = $1 AND id = $2"),
        &[user.0.into(), id.0.into()],
    )?
    .as_ref()
    .map(movement_from)
    .transpose()
}

/// Top-ups and withdrawals still waiting for the bank, oldest first (to ask the bank again
/// after a restart).
pub fn open_movements(sql: &mut dyn Sql) -> Result<Vec<Movement>, StoreError> {
    sql.query(
        &format!("SELECT {MOVEMENT_COLUMNS} FROM movements WHERE status = 'pending' ORDER BY id"),
        &[],
    )?
    .iter()
    .map(movement_from)
    .collect()
}

/// A page of a person's top-ups and withdrawals, newest first, before the cursor.
pub fn movements(
    sql: &mut dyn Sql,
    user: Id,
    before: Option<Id>,
    limit: u32,
) -> Result<Vec<Movement>, StoreError> {
    let limit = i64::from(limit.clamp(1, crate::trade::PAGE_MAX));
    sql.query(
        &format!(
            "SELECT {MOVEMENT_COLUMNS} FROM movements WHERE user_id = $1 \
             AND (CAST($2 AS BIGINT) IS NULL OR id < $2) ORDER BY id DESC LIMIT $3"
        ),
        &[user.0.into(), before.map(|id| id.0).into(), limit.into()],
    )?
    .iter()
    .map(movement_from)
    .collect()
}

/// A page of the transfers a person sent or received, newest first, before the cursor.
pub fn transfers(
    sql: &mut dyn Sql,
    user: Id,
    before: Option<Id>,
    limit: u32,
) -> Result<Vec<TransferReceipt>, StoreError> {
    let limit = i64::from(limit.clamp(1, crate::trade::PAGE_MAX));
    sql.query(
        &format!(
            "SELECT {RECEIPT_COLUMNS} FROM person_transfers \
             WHERE (from_user_id = $1 OR to_user_id = $1) \
             AND (CAST($2 AS BIGINT) IS NULL OR id < $2) ORDER BY id DESC LIMIT $3"
        ),
        &[user.0.into(), before.map(|id| id.0).into(), limit.into()],
    )?
    .iter()
    .map(receipt_from)
    .collect()
}

/// One transfer the person sent or received.
pub fn transfer(
    sql: &mut dyn Sql,
    user: Id,
    id: Id,
) -> Result<Option<TransferReceipt>, StoreError> {
    sql.query_opt(
        &format!(
            "SELECT {RECEIPT_COLUMNS} FROM person_transfers \
             WHERE id = $1 AND (from_user_id = $2 OR to_user_id = $2)"
        ),
        &[id.0.into(), user.0.into()],
    )?
    .as_ref()
    .map(receipt_from)
    .transpose()
}

/// A saved idempotency key: (fingerprint of the request, the outcome JSON).
pub fn idempotency(
    sql: &mut dyn Sql,
    owner: Id,
    key: &str,
) -> Result<Option<(String, String)>, StoreError> {
    sql.query_opt(
        "SELECT fingerprint, outcome FROM idempotency_keys WHERE owner = $1 AND key = $2",
        &[owner.0.into(), key.into()],
    )?
    .map(|row| Ok((row.text(0)?, row.text(1)?)))
    .transpose()
}

/// A saved idempotency key: (owner, key, fingerprint of the request, the outcome JSON).
pub type SavedKey = (Id, String, String, String);

/// The saved keys among `keys`: one statement on PostgreSQL (the keys as arrays), one
/// prepared look-up per key on SQLite (in process, no round trips).
pub fn saved_keys(sql: &mut dyn Sql, keys: &[(Id, String)]) -> Result<Vec<SavedKey>, StoreError> {
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let row_of = |row: &crate::sql::Row| -> Result<SavedKey, StoreError> {
        Ok((Id(row.uint(0)?), row.text(1)?, row.text(2)?, row.text(3)?))
    };
    if sql.is_postgres() {
        let owners: Vec<String> = keys
            .iter()
            .map(|(owner, _)| (owner.0 as i64).to_string())
            .collect();
        // Arrays travel as text literals parsed by the server: the generic layer binds
        // scalars only.
        let owners = format!("{{{}}}", owners.join(","));
        let names = serde_json::to_string(&keys.iter().map(|(_, k)| k).collect::<Vec<_>>())
            .expect("strings serialize");
        return sql
            .query(
                "SELECT i.owner, i.key, i.fingerprint, i.outcome FROM idempotency_keys i \
                 JOIN UNNEST(CAST(CAST($1 AS text) AS bigint[]), \
                             ARRAY(SELECT jsonb_array_elements_text(CAST(CAST($2 AS text) AS jsonb)))) \
                      AS k(owner, key) ON i.owner = k.owner AND i.key = k.key",
                &[owners.into(), names.into()],
            )?
            .iter()
            .map(row_of)
            .collect();
    }
    let mut saved = Vec::new();
    for (owner, key) in keys {
        if let Some(row) = sql.query_opt(
            "SELECT owner, key, fingerprint, outcome FROM idempotency_keys \
             WHERE owner = $1 AND key = $2",
            &[owner.0.into(), key.as_str().into()],
        )? {
            saved.push(row_of(&row)?);
        }
    }
    Ok(saved)
}
