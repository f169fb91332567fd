//! The credit rows: each person's record (facts and last score), the consents merchants
//! check under, the daily run's cursor, deposit holds and the debts they leave, credit lines
//! and their statements. Written by the engine's batches, loaded back for the core, and read
//! for a person's credit pages and a merchant's consents.

use formica_core::credit::{Consent, Credit, CreditRun};
use formica_core::credit_line::{CreditLine, CreditPolicy, Statement};
use formica_core::deposit::{Debt, Hold, HoldStatus};
use formica_core::products::ProductEffects;
use formica_core::{Id, ProductsLoaded};

use crate::StoreError;
use crate::sql::{Column, Row, Sql, Value};

fn corrupt(what: &str, error: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{what}: {error}"))
}

const CONSENT_COLUMNS: &str =
    "person_id, merchant_id, granted_at, withdrawn_at, checks, last_checked_at";

/// Writes a batch's credit rows.
pub(crate) fn write(sql: &mut dyn Sql, effects: &ProductEffects) -> Result<(), StoreError> {
    use Column::{Int, Text};
    let credit: Vec<Vec<Value>> = effects
        .credit
        .iter()
        .map(|credit| {
            vec![
                credit.person_id.0.into(),
                i64::from(credit.total()).into(),
                serde_json::to_string(credit)
                    .expect("a credit record serializes")
                    .into(),
            ]
        })
        .collect();
    sql.execute_many(
        "INSERT INTO credit (person_id, score, state) {rows} \
         ON CONFLICT (person_id) DO UPDATE SET score = excluded.score, state = excluded.state",
        &[Int, Int, Text],
        &credit,
    )?;
    let optional = |at: Option<u64>| at.map_or(Value::Null, Value::from);
    let consents: Vec<Vec<Value>> = effects
        .consents
        .iter()
        .map(|c| {
            vec![
                c.person_id.0.into(),
                c.merchant_id.0.into(),
                c.granted_at.into(),
                optional(c.withdrawn_at),
                c.checks.into(),
                optional(c.last_checked_at),
            ]
        })
        .collect();
    sql.execute_many(
        &format!(
            "INSERT INTO credit_consents ({CONSENT_COLUMNS}) {{rows}} \
             ON CONFLICT (person_id, merchant_id) DO UPDATE SET granted_at = excluded.granted_at, \
             withdrawn_at = excluded.withdrawn_at, checks = excluded.checks, \
             last_checked_at = excluded.last_checked_at"
        ),
        &[Int, Int, Int, Int, Int, Int],
        &consents,
    )?;
    if let Some(run) = &effects.credit_run {
        put_single(sql, "credit_run", run)?;
    }
    if let Some(policy) = &effects.credit_policy {
        put_single(sql, "credit_policy", policy)?;
    }
    Ok(())
}

/// Writes the one row of a table that holds a single JSON state (`id` 1).
fn put_single(
    sql: &mut dyn Sql,
    table: &str,
    state: &impl serde::Serialize,
) -> Result<(), StoreError> {
    let state = serde_json::to_string(state).expect("a state serializes");
    sql.execute(
        &format!(
            "INSERT INTO {table} (id, state) VALUES (1, $1) \
             ON CONFLICT (id) DO UPDATE SET state = excluded.state"
        ),
        &[state.into()],
    )?;
    Ok(())
}

fn credit_from(row: &Row) -> Result<Credit, StoreError> {
    serde_json::from_str(&row.text(0)?).map_err(|e| corrupt("credit", e))
}

fn consent_from(row: &Row) -> Result<Consent, StoreError> {
    Ok(Consent {
        person_id: Id(row.uint(0)?),
        merchant_id: Id(row.uint(1)?),
        granted_at: row.uint(2)?,
        withdrawn_at: row.opt_uint(3)?,
        checks: row.uint(4)?,
        last_checked_at: row.opt_uint(5)?,
    })
}

/// Every credit record and consent, and the daily run.
pub(crate) fn load(sql: &mut dyn Sql, loaded: &mut ProductsLoaded) -> Result<(), StoreError> {
    loaded.credit = sql
        .query("SELECT state FROM credit ORDER BY person_id", &[])?
        .iter()
        .map(credit_from)
        .collect::<Result<_, _>>()?;
    loaded.consents = sql
        .query(
            &format!(
                "SELECT {CONSENT_COLUMNS} FROM credit_consents ORDER BY person_id, merchant_id"
            ),
            &[],
        )?
        .iter()
        .map(consent_from)
        .collect::<Result<_, _>>()?;
    loaded.credit_run = match sql.query_opt("SELECT state FROM credit_run WHERE id = 1", &[])? {
        Some(row) => serde_json::from_str(&row.text(0)?).map_err(|e| corrupt("credit run", e))?,
        None => CreditRun::default(),
    };
    loaded.credit_policy = credit_policy(sql)?;
    Ok(())
}

/// The credit line's rules: as an operator set them, or the defaults.
pub fn credit_policy(sql: &mut dyn Sql) -> Result<CreditPolicy, StoreError> {
    match sql.query_opt("SELECT state FROM credit_policy WHERE id = 1", &[])? {
        Some(row) => serde_json::from_str(&row.text(0)?).map_err(|e| corrupt("credit policy", e)),
        None => Ok(CreditPolicy::default()),
    }
}

/// A person's credit record.
pub fn credit(sql: &mut dyn Sql, person: Id) -> Result<Option<Credit>, StoreError> {
    sql.query_opt(
        "SELECT state FROM credit WHERE person_id = $1",
        &[person.0.into()],
    )?
    .as_ref()
    .map(credit_from)
    .transpose()
}

/// A person's consents, standing and withdrawn, by merchant.
pub fn consents_of_person(sql: &mut dyn Sql, person: Id) -> Result<Vec<Consent>, StoreError> {
    consents_where(sql, "person_id = $1 ORDER BY merchant_id", person)
}

/// The consents given to a merchant, standing and withdrawn, by person.
pub fn consents_to_merchant(sql: &mut dyn Sql, merchant: Id) -> Result<Vec<Consent>, StoreError> {
    consents_where(sql, "merchant_id = $1 ORDER BY person_id", merchant)
}

fn consents_where(sql: &mut dyn Sql, clause: &str, id: Id) -> Result<Vec<Consent>, StoreError> {
    sql.query(
        &format!("SELECT {CONSENT_COLUMNS} FROM credit_consents WHERE {clause}"),
        &[id.0.into()],
    )?
    .iter()
    .map(consent_from)
    .collect()
}

/// Writes a batch's holds and debts.
pub(crate) fn write_holds(sql: &mut dyn Sql, effects: &ProductEffects) -> Result<(), StoreError> {
    use Column::{Int, Text};
    let holds: Vec<Vec<Value>> = effects
        .holds
        .iter()
        .map(|hold| {
            vec![
                hold.id.0.into(),
                hold.merchant_id.0.into(),
                hold.person_id.0.into(),
                hold.out_order_no.as_str().into(),
                status_name(hold.status).into(),
                serde_json::to_string(hold)
                    .expect("a hold serializes")
                    .into(),
            ]
        })
        .collect();
    sql.execute_many(
        "INSERT INTO holds (id, merchant_id, person_id, out_order_no, status, state) {rows} \
         ON CONFLICT (id) DO UPDATE SET status = excluded.status, state = excluded.state",
        &[Int, Int, Int, Text, Text, Text],
        &holds,
    )?;
    let debts: Vec<Vec<Value>> = effects
        .debts
        .iter()
        .map(|debt| {
            vec![
                debt.id.0.into(),
                debt.person_id.0.into(),
                i64::from(debt.repaid_at.is_none()).into(),
                serde_json::to_string(debt)
                    .expect("a debt serializes")
                    .into(),
            ]
        })
        .collect();
    sql.execute_many(
        "INSERT INTO debts (id, person_id, open, state) {rows} \
         ON CONFLICT (id) DO UPDATE SET open = excluded.open, state = excluded.state",
        &[Int, Int, Int, Text],
        &debts,
    )
}

fn status_name(status: HoldStatus) -> &'static str {
    match status {
        HoldStatus::Requested => "REQUESTED",
        HoldStatus::Waived => "WAIVED",
        HoldStatus::Frozen => "FROZEN",
        HoldStatus::Closed => "CLOSED",
    }
}

fn hold_from(row: &Row) -> Result<Hold, StoreError> {
    serde_json::from_str(&row.text(0)?).map_err(|e| corrupt("hold", e))
}

fn debt_from(row: &Row) -> Result<Debt, StoreError> {
    serde_json::from_str(&row.text(0)?).map_err(|e| corrupt("debt", e))
}

/// The open holds and debts.
pub(crate) fn load_holds(sql: &mut dyn Sql, loaded: &mut ProductsLoaded) -> Result<(), StoreError> {
    loaded.open_holds = sql
        .query(
            "SELECT state FROM holds WHERE status <> 'CLOSED' ORDER BY id",
            &[],
        )?
        .iter()
        .map(hold_from)
        .collect::<Result<_, _>>()?;
    loaded.open_debts = sql
        .query("SELECT state FROM debts WHERE open = 1 ORDER BY id", &[])?
        .iter()
        .map(debt_from)
        .collect::<Result<_, _>>()?;
    Ok(())
}

/// One hold, open or closed.
pub fn hold(sql: &mut dyn Sql, id: Id) -> Result<Option<Hold>, StoreError> {
    sql.query_opt("SELECT state FROM holds WHERE id = $1", &[id.0.into()])?
        .as_ref()
        .map(hold_from)
        .transpose()
}

/// A merchant's newest hold with this order number (a closed hold's number may be reused).
pub fn hold_by_number(
    sql: &mut dyn Sql,
    merchant: Id,
    out_order_no: &str,
) -> Result<Option<Hold>, StoreError> {
    sql.query_opt(
        "SELECT state FROM holds WHERE merchant_id = $1 AND out_order_no = $2 \
         ORDER BY id DESC LIMIT 1",
        &[merchant.0.into(), out_order_no.into()],
    )?
    .as_ref()
    .map(hold_from)
    .transpose()
}

/// A merchant's holds, newest first (at most `limit`).
pub fn holds_of_merchant(
    sql: &mut dyn Sql,
    merchant: Id,
    limit: u32,
) -> Result<Vec<Hold>, StoreError> {
    sql.query(
        "SELECT state FROM holds WHERE merchant_id = $1 ORDER BY id DESC LIMIT $2",
        &[merchant.0.into(), i64::from(limit).into()],
    )?
    .iter()
    .map(hold_from)
    .collect()
}

/// A person's holds, newest first (at most `limit`).
pub fn holds_of_person(sql: &mut dyn Sql, person: Id, limit: u32) -> Result<Vec<Hold>, StoreError> {
    sql.query(
        "SELECT state FROM holds WHERE person_id = $1 ORDER BY id DESC LIMIT $2",
        &[person.0.into(), i64::from(limit).into()],
    )?
    .iter()
    .map(hold_from)
    .collect()
}

/// A person's debts, open and repaid, newest first.
pub fn debts_of_person(sql: &mut dyn Sql, person: Id) -> Result<Vec<Debt>, StoreError> {
    sql.query(
        "SELECT state FROM debts WHERE person_id = $1 ORDER BY id DESC",
        &[person.0.into()],
    )?
    .iter()
    .map(debt_from)
    .collect()
}

/// Debts past their due day and not yet repaid, oldest first.
pub fn overdue_debts(sql: &mut dyn Sql) -> Result<Vec<Debt>, StoreError> {
    let open = sql
        .query("SELECT state FROM debts WHERE open = 1 ORDER BY id", &[])?
        .iter()
        .map(debt_from)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(open.into_iter().filter(|d| d.overdue).collect())
}

/// Writes a batch's credit lines and their current statements.
pub(crate) fn write_lines(sql: &mut dyn Sql, effects: &ProductEffects) -> Result<(), StoreError> {
    use Column::{Int, Text};
    let lines: Vec<Vec<Value>> = effects
        .credit_lines
        .iter()
        .map(|line| {
            vec![
                line.person_id.0.into(),
                i64::from(line.overdue).into(),
                serde_json::to_string(line)
                    .expect("a credit line serializes")
                    .into(),
            ]
        })
        .collect();
    sql.execute_many(
        "INSERT INTO credit_lines (person_id, overdue, state) {rows} \
         ON CONFLICT (person_id) DO UPDATE SET overdue = excluded.overdue, state = excluded.state",
        &[Int, Int, Text],
        &lines,
    )?;
    let statements: Vec<Vec<Value>> = effects
        .credit_lines
        .iter()
        .filter_map(|line| line.statement.as_ref())
        .map(|statement| {
            vec![
                statement.id.0.into(),
                statement.person_id.0.into(),
                serde_json::to_string(statement)
                    .expect("a statement serializes")
                    .into(),
            ]
        })
        .collect();
    sql.execute_many(
        "INSERT INTO credit_statements (id, person_id, state) {rows} \
         ON CONFLICT (id) DO UPDATE SET state = excluded.state",
        &[Int, Int, Text],
        &statements,
    )
}

fn line_from(row: &Row) -> Result<CreditLine, StoreError> {
    serde_json::from_str(&row.text(0)?).map_err(|e| corrupt("credit line", e))
}

/// Every credit line.
pub(crate) fn load_lines(sql: &mut dyn Sql, loaded: &mut ProductsLoaded) -> Result<(), StoreError> {
    loaded.credit_lines = sql
        .query("SELECT state FROM credit_lines ORDER BY person_id", &[])?
        .iter()
        .map(line_from)
        .collect::<Result<_, _>>()?;
    Ok(())
}

/// A person's credit line.
pub fn credit_line(sql: &mut dyn Sql, person: Id) -> Result<Option<CreditLine>, StoreError> {
    sql.query_opt(
        "SELECT state FROM credit_lines WHERE person_id = $1",
        &[person.0.into()],
    )?
    .as_ref()
    .map(line_from)
    .transpose()
}

/// A person's statements, newest first (at most `limit`).
pub fn statements(sql: &mut dyn Sql, person: Id, limit: u32) -> Result<Vec<Statement>, StoreError> {
    sql.query(
        "SELECT state FROM credit_statements WHERE person_id = $1 ORDER BY id DESC LIMIT $2",
        &[person.0.into(), i64::from(limit).into()],
    )?
    .iter()
    .map(|row| serde_json::from_str(&row.text(0)?).map_err(|e| corrupt("statement", e)))
    .collect()
}

/// Credit lines whose statement's minimum was not paid by its due day.
pub fn overdue_lines(sql: &mut dyn Sql) -> Result<Vec<CreditLine>, StoreError> {
    sql.query(
        "SELECT state FROM credit_lines WHERE overdue = 1 ORDER BY person_id",
        &[],
    )?
    .iter()
    .map(line_from)
    .collect()
}
