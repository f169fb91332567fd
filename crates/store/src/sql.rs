//! One way to run a statement on either database, so that the products' tables are read and
//! written by SQL written once. Statements use PostgreSQL's `$1` placeholders (numbered in the
//! order they first appear); for SQLite they become `?1`. Values are the four kinds both
//! databases share: NULL, 64-bit integers, text and bytes.
//!
//! The books' hot path (transfers, balances) keeps its own statements per database, tuned for
//! bulk writes; everything else goes through here.

use std::error::Error;

use postgres::types::{IsNull, ToSql, Type, to_sql_checked};

use crate::StoreError;

/// A parameter or a column value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    /// SQL NULL.
    Null,
    /// A 64-bit integer (ids, minor units, nanosecond timestamps keep their bits).
    Int(i64),
    /// Text.
    Text(String),
    /// Bytes (BLOB, bytea, or the uuid columns of the books).
    Bytes(Vec<u8>),
}

impl From<i64> for Value {
    fn from(value: i64) -> Self {
        Value::Int(value)
    }
}

impl From<u64> for Value {
    /// Unsigned values keep their bits in the signed column.
    fn from(value: u64) -> Self {
        Value::Int(value as i64)
    }
}

impl From<&str> for Value {
    fn from(value: &str) -> Self {
        Value::Text(value.to_owned())
    }
}

impl From<String> for Value {
    fn from(value: String) -> Self {
        Value::Text(value)
    }
}

impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(value: Option<T>) -> Self {
        value.map_or(Value::Null, Into::into)
    }
}

/// A row read back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Row(pub Vec<Value>);

impl Row {
    fn at(&self, index: usize) -> Result<&Value, StoreError> {
        self.0
            .get(index)
            .ok_or_else(|| StoreError::Corrupt(format!("no column {index}")))
    }

    /// An integer column.
    pub fn int(&self, index: usize) -> Result<i64, StoreError> {
        match self.at(index)? {
            Value::Int(value) => Ok(*value),
            other => Err(StoreError::Corrupt(format!("column {index}: {other:?}"))),
        }
    }

    /// An integer column holding unsigned bits (ids, timestamps).
    pub fn uint(&self, index: usize) -> Result<u64, StoreError> {
        self.int(index).map(|value| value as u64)
    }

    /// An integer column that may be NULL.
    pub fn opt_uint(&self, index: usize) -> Result<Option<u64>, StoreError> {
        match self.at(index)? {
            Value::Null => Ok(None),
            _ => self.uint(index).map(Some),
        }
    }

    /// A text column.
    pub fn text(&self, index: usize) -> Result<String, StoreError> {
        match self.at(index)? {
            Value::Text(value) => Ok(value.clone()),
            other => Err(StoreError::Corrupt(format!("column {index}: {other:?}"))),
        }
    }

    /// A text column that may be NULL.
    pub fn opt_text(&self, index: usize) -> Result<Option<String>, StoreError> {
        match self.at(index)? {
            Value::Null => Ok(None),
            _ => self.text(index).map(Some),
        }
    }

    /// A bytes column that may be NULL.
    pub fn opt_bytes(&self, index: usize) -> Result<Option<Vec<u8>>, StoreError> {
        match self.at(index)? {
            Value::Null => Ok(None),
            Value::Bytes(bytes) => Ok(Some(bytes.clone())),
            other => Err(StoreError::Corrupt(format!("column {index}: {other:?}"))),
        }
    }
}

/// What a column of a many-rows statement holds (PostgreSQL needs the array's type).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Column {
    /// `bigint` (or SQLite INTEGER).
    Int,
    /// `text`.
    Text,
    /// `uuid` (16 bytes; a BLOB in SQLite).
    Uuid,
}

/// Runs statements inside whatever transaction the caller opened.
pub trait Sql {
    /// Runs `sql` once for all `rows`: `sql` holds `{rows}` where the rows go, for example
    /// `INSERT INTO t (a, b) {rows} ON CONFLICT (a) DO NOTHING`. PostgreSQL sends every row in
    /// one statement (arrays, one per column, through `UNNEST`); SQLite runs one prepared
    /// statement per row, which costs no round trip in process.
    fn execute_many(
        &mut self,
        sql: &str,
        columns: &[Column],
        rows: &[Vec<Value>],
    ) -> Result<(), StoreError>;

    /// Whether this is PostgreSQL (for the few queries written per database).
    fn is_postgres(&self) -> bool;

    /// Runs a statement; the number of rows it changed.
    fn execute(&mut self, sql: &str, params: &[Value]) -> Result<u64, StoreError>;
    /// Runs a query; its rows.
    fn query(&mut self, sql: &str, params: &[Value]) -> Result<Vec<Row>, StoreError>;

    /// The first row of a query, if any.
    fn query_opt(&mut self, sql: &str, params: &[Value]) -> Result<Option<Row>, StoreError> {
        Ok(self.query(sql, params)?.into_iter().next())
    }
}

/// SQLite: `$n` placeholders become `?n`.
pub(crate) struct SqliteSql<'a>(pub(crate) &'a rusqlite::Connection);

fn sqlite_placeholders(sql: &str) -> String {
    sql.replace('$', "?")
}

impl rusqlite::ToSql for Value {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::{ToSqlOutput, ValueRef};
        Ok(ToSqlOutput::Borrowed(match self {
            Value::Null => ValueRef::Null,
            Value::Int(value) => ValueRef::Integer(*value),
            Value::Text(text) => ValueRef::Text(text.as_bytes()),
            Value::Bytes(bytes) => ValueRef::Blob(bytes),
        }))
    }
}

impl Sql for SqliteSql<'_> {
    fn is_postgres(&self) -> bool {
        false
    }

    fn execute_many(
        &mut self,
        sql: &str,
        columns: &[Column],
        rows: &[Vec<Value>],
    ) -> Result<(), StoreError> {
        if rows.is_empty() {
            return Ok(());
        }
        let placeholders: Vec<String> = (1..=columns.len()).map(|n| format!("?{n}")).collect();
        let single = sql.replace("{rows}", &format!("VALUES ({})", placeholders.join(", ")));
        let mut statement = self.0.prepare_cached(&single)?;
        for row in rows {
            statement.execute(rusqlite::params_from_iter(row))?;
        }
        Ok(())
    }

    fn execute(&mut self, sql: &str, params: &[Value]) -> Result<u64, StoreError> {
        let mut statement = self.0.prepare_cached(&sqlite_placeholders(sql))?;
        match statement.execute(rusqlite::params_from_iter(params)) {
            Ok(changed) => Ok(changed as u64),
            Err(rusqlite::Error::SqliteFailure(error, message))
                if error.code == rusqlite::ErrorCode::ConstraintViolation =>
            {
                Err(StoreError::Conflict(message.unwrap_or_default()))
            }
            Err(error) => Err(error.into()),
        }
    }

    fn query(&mut self, sql: &str, params: &[Value]) -> Result<Vec<Row>, StoreError> {
        use rusqlite::types::ValueRef;
        let mut statement = self.0.prepare_cached(&sqlite_placeholders(sql))?;
        let columns = statement.column_count();
        let mut rows = statement.query(rusqlite::params_from_iter(params))?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            let mut values = Vec::with_capacity(columns);
            for index in 0..columns {
                values.push(match row.get_ref(index)? {
                    ValueRef::Null => Value::Null,
                    ValueRef::Integer(value) => Value::Int(value),
                    ValueRef::Real(value) => {
                        return Err(StoreError::Corrupt(format!("a float column: {value}")));
                    }
                    ValueRef::Text(text) => Value::Text(
                        String::from_utf8(text.to_vec())
                            .map_err(|_| StoreError::Corrupt("text is not UTF-8".into()))?,
                    ),
                    ValueRef::Blob(bytes) => Value::Bytes(bytes.to_vec()),
                });
            }
            out.push(Row(values));
        }
        Ok(out)
    }
}

/// PostgreSQL, on a client or inside a transaction.
pub(crate) struct PostgresSql<'a, C: postgres::GenericClient>(pub(crate) &'a mut C);

impl ToSql for Value {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut bytes::BytesMut,
    ) -> Result<IsNull, Box<dyn Error + Sync + Send>> {
        match self {
            Value::Null => Ok(IsNull::Yes),
            Value::Int(value) if *ty == Type::INT4 => i32::try_from(*value)?.to_sql(ty, out),
            Value::Int(value) if *ty == Type::INT2 => i16::try_from(*value)?.to_sql(ty, out),
            Value::Int(value) => value.to_sql(ty, out),
            Value::Text(text) => text.to_sql(ty, out),
            Value::Bytes(bytes) if *ty == Type::UUID => {
                uuid::Uuid::from_slice(bytes)?.to_sql(ty, out)
            }
            Value::Bytes(bytes) => bytes.to_sql(ty, out),
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

impl<C: postgres::GenericClient> Sql for PostgresSql<'_, C> {
    fn is_postgres(&self) -> bool {
        true
    }

    fn execute_many(
        &mut self,
        sql: &str,
        columns: &[Column],
        rows: &[Vec<Value>],
    ) -> Result<(), StoreError> {
        if rows.is_empty() {
            return Ok(());
        }
        let arrays: Vec<String> = columns
            .iter()
            .enumerate()
            .map(|(index, column)| {
                let ty = match column {
                    Column::Int => "bigint",
                    Column::Text => "text",
                    Column::Uuid => "uuid",
                };
                format!("${}::{ty}[]", index + 1)
            })
            .collect();
        let sql = sql.replace(
            "{rows}",
            &format!("SELECT * FROM UNNEST({})", arrays.join(", ")),
        );
        let mut params: Vec<Box<dyn ToSql + Sync>> = Vec::with_capacity(columns.len());
        for (index, column) in columns.iter().enumerate() {
            let values = rows.iter().map(|row| &row[index]);
            let param: Box<dyn ToSql + Sync> = match column {
                Column::Int => Box::new(
                    values
                        .map(|v| match v {
                            Value::Int(i) => Ok(Some(*i)),
                            Value::Null => Ok(None),
                            other => Err(StoreError::Corrupt(format!("not an integer: {other:?}"))),
                        })
                        .collect::<Result<Vec<Option<i64>>, _>>()?,
                ),
                Column::Text => Box::new(
                    values
                        .map(|v| match v {
                            Value::Text(t) => Ok(Some(t.clone())),
                            Value::Null => Ok(None),
                            other => Err(StoreError::Corrupt(format!("not text: {other:?}"))),
                        })
                        .collect::<Result<Vec<Option<String>>, _>>()?,
                ),
                Column::Uuid => Box::new(
                    values
                        .map(|v| match v {
                            Value::Bytes(b) => uuid::Uuid::from_slice(b)
                                .map(Some)
                                .map_err(|_| StoreError::Corrupt("a uuid of 16 bytes".into())),
                            Value::Null => Ok(None),
                            other => Err(StoreError::Corrupt(format!("not bytes: {other:?}"))),
                        })
                        .collect::<Result<Vec<Option<uuid::Uuid>>, _>>()?,
                ),
            };
            params.push(param);
        }
        let params: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| p.as_ref() as _).collect();
        self.0.execute(&sql, &params)?;
        Ok(())
    }

    fn execute(&mut self, sql: &str, params: &[Value]) -> Result<u64, StoreError> {
        let params: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| p as _).collect();
        match self.0.execute(sql, &params) {
            Ok(changed) => Ok(changed),
            Err(error) if error.code() == Some(&postgres::error::SqlState::UNIQUE_VIOLATION) => {
                Err(StoreError::Conflict(error.to_string()))
            }
            Err(error) => Err(error.into()),
        }
    }

    fn query(&mut self, sql: &str, params: &[Value]) -> Result<Vec<Row>, StoreError> {
        let params: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| p as _).collect();
        let rows = self.0.query(sql, &params)?;
        rows.iter().map(postgres_row).collect()
    }
}

fn postgres_row(row: &postgres::Row) -> Result<Row, StoreError> {
    let mut values = Vec::with_capacity(row.len());
    for (index, column) in row.columns().iter().enumerate() {
        let ty = column.type_();
        let value = if *ty == Type::INT8 {
            row.try_get::<_, Option<i64>>(index)?.map(Value::Int)
        } else if *ty == Type::INT4 {
            row.try_get::<_, Option<i32>>(index)?
                .map(|v| Value::Int(v.into()))
        } else if *ty == Type::INT2 {
            row.try_get::<_, Option<i16>>(index)?
                .map(|v| Value::Int(v.into()))
        } else if *ty == Type::BOOL {
            row.try_get::<_, Option<bool>>(index)?
                .map(|v| Value::Int(v.into()))
        } else if *ty == Type::BYTEA {
            row.try_get::<_, Option<Vec<u8>>>(index)?.map(Value::Bytes)
        } else if *ty == Type::UUID {
            row.try_get::<_, Option<uuid::Uuid>>(index)?
                .map(|v| Value::Bytes(v.as_bytes().to_vec()))
        } else {
            row.try_get::<_, Option<String>>(index)?.map(Value::Text)
        };
        values.push(value.unwrap_or(Value::Null));
    }
    Ok(Row(values))
}

#[cfg(test)]
mod tests {
    #[test]
    fn placeholders_become_sqlite_numbered_parameters() {
        assert_eq!(
            super::sqlite_placeholders("SELECT $1 WHERE a = $2 OR b = $1"),
            "SELECT ?1 WHERE a = ?2 OR b = ?1"
        );
    }
}
