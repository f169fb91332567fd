//! People's credentials, sessions and bank cards: ordinary rows that move no money.

use formica_core::Id;
use formica_core::wallet::Level;

use crate::StoreError;
use crate::sql::{Row, Sql};

/// A person who can sign in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    /// Their id.
    pub id: Id,
    /// Phone number or lower-cased email.
    pub login: String,
    /// The name others see.
    pub display_name: String,
    /// argon2 PHC string of the password.
    pub password_hash: String,
    /// argon2 PHC string of the payment PIN, once set.
    pub pin_hash: Option<String>,
    /// Wrong PINs in a row.
    pub pin_failures: i64,
    /// No PIN is checked before this time (nanoseconds).
    pub pin_locked_until: u64,
    /// Wrong passwords in a row.
    pub signin_failures: i64,
    /// No password is checked before this time.
    pub signin_locked_until: u64,
    /// `person` or `operator`.
    pub role: String,
    /// When they signed up.
    pub created_at: u64,
}

const USER_COLUMNS: &str = "id, login, display_name, password_hash, pin_hash, pin_failures, \
    pin_locked_until, signin_failures, signin_locked_until, role, created_at";

fn user_from(row: &Row) -> Result<User, StoreError> {
    Ok(User {
        id: Id(row.uint(0)?),
        login: row.text(1)?,
        display_name: row.text(2)?,
        password_hash: row.text(3)?,
        pin_hash: row.opt_text(4)?,
        pin_failures: row.int(5)?,
        pin_locked_until: row.uint(6)?,
        signin_failures: row.int(7)?,
        signin_locked_until: row.uint(8)?,
        role: row.text(9)?,
        created_at: row.uint(10)?,
    })
}

/// Adds a person; `Conflict` if the login is taken.
pub fn create_user(sql: &mut dyn Sql, user: &User) -> Result<(), StoreError> {
    sql.execute(
        &format!(
            "INSERT INTO users ({USER_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, \
             $10, $11)"
        ),
        &[
            user.id.0.into(),
            user.login.as_str().into(),
            user.display_name.as_str().into(),
            user.password_hash.as_str().into(),
            user.pin_hash.clone().into(),
            user.pin_failures.into(),
            user.pin_locked_until.into(),
            user.signin_failures.into(),
            user.signin_locked_until.into(),
            user.role.as_str().into(),
            user.created_at.into(),
        ],
    )?;
    Ok(())
}

/// The person with this login.
pub fn user_by_login(sql: &mut dyn Sql, login: &str) -> Result<Option<User>, StoreError> {
    sql.query_opt(
        &format!("SELECT {USER_COLUMNS} FROM users WHERE login = $1"),
        &[login.into()],
    )?
    .as_ref()
    .map(user_from)
    .transpose()
}

/// The person with this id.
pub fn user(sql: &mut dyn Sql, id: Id) -> Result<Option<User>, StoreError> {
    sql.query_opt(
        &format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1"),
        &[id.0.into()],
    )?
    .as_ref()
    .map(user_from)
    .transpose()
}

/// Sets the payment PIN's hash and clears its failures.
pub fn set_pin(sql: &mut dyn Sql, id: Id, pin_hash: &str) -> Result<(), StoreError> {
    sql.execute(
        "UPDATE users SET pin_hash = $1, pin_failures = 0, pin_locked_until = 0 WHERE id = $2",
        &[pin_hash.into(), id.0.into()],
    )?;
    Ok(())
}

/// What is checked and locked after repeated failures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Secret {
    /// The sign-in password.
    Password,
    /// The payment PIN.
    Pin,
}

fn secret_columns(secret: Secret) -> (&'static str, &'static str) {
    match secret {
        Secret::Password => ("signin_failures", "signin_locked_until"),
        Secret::Pin => ("pin_failures", "pin_locked_until"),
    }
}

/// Claims one attempt at a password or PIN before it is checked: counted at once, so that
/// concurrent attempts cannot all see the same count. Refused (false) while the secret is
/// locked at `now`. A count already at `attempts_max` with no lock in force is of attempts
/// claimed and never finished (their requests were cut off: the client hung up, the request
/// timed out, the process died): they may have been guesses, so they lock the secret until
/// `lock_until` as wrong ones do, and this attempt is refused. Left as it was, such a count
/// refused every later attempt and nothing ever cleared it.
pub fn claim_attempt(
    sql: &mut dyn Sql,
    id: Id,
    secret: Secret,
    now: u64,
    attempts_max: i64,
    lock_until: u64,
) -> Result<bool, StoreError> {
    let (failures, locked) = secret_columns(secret);
    // Both assignments read the row as it was before the update, in SQLite and PostgreSQL.
    let row = sql.query_opt(
        &format!(
            "UPDATE users SET \
             {locked} = CASE WHEN {failures} >= $3 THEN $4 ELSE {locked} END, \
             {failures} = CASE WHEN {failures} >= $3 THEN 0 ELSE {failures} + 1 END \
             WHERE id = $1 AND {locked} <= $2 RETURNING {locked}"
        ),
        &[
            id.0.into(),
            now.into(),
            attempts_max.into(),
            lock_until.into(),
        ],
    )?;
    match row {
        Some(row) => Ok(row.uint(0)? <= now),
        None => Ok(false),
    }
}

/// Records how a claimed attempt went: a success clears the count; a failure stays counted,
/// and the count reaching `attempts_max` locks the secret until `lock_until` (and starts
/// counting again). Answers the count and the lock as they now stand.
pub fn finish_attempt(
    sql: &mut dyn Sql,
    id: Id,
    secret: Secret,
    ok: bool,
    attempts_max: i64,
    lock_until: u64,
) -> Result<(i64, u64), StoreError> {
    let (failures, locked) = secret_columns(secret);
    let row = if ok {
        sql.query_opt(
            &format!(
                "UPDATE users SET {failures} = 0 WHERE id = $1 RETURNING {failures}, {locked}"
            ),
            &[id.0.into()],
        )?
    } else {
        sql.query_opt(
            &format!(
                "UPDATE users SET \
                 {locked} = CASE WHEN {failures} >= $1 THEN $2 ELSE {locked} END, \
                 {failures} = CASE WHEN {failures} >= $1 THEN 0 ELSE {failures} END \
                 WHERE id = $3 RETURNING {failures}, {locked}"
            ),
            &[attempts_max.into(), lock_until.into(), id.0.into()],
        )?
    };
    let row = row.ok_or_else(|| StoreError::Corrupt(format!("user {id} vanished")))?;
    Ok((row.int(0)?, row.uint(1)?))
}

/// A person's identity level as the core last wrote it.
pub fn level(sql: &mut dyn Sql, id: Id) -> Result<Option<Level>, StoreError> {
    sql.query_opt(
        "SELECT level FROM people WHERE user_id = $1",
        &[id.0.into()],
    )?
    .map(|row| {
        let name = row.text(0)?;
        Level::parse(&name).ok_or_else(|| StoreError::Corrupt(format!("level {name:?}")))
    })
    .transpose()
}

/// Opens a session: the token's hash, never the token.
pub fn create_session(
    sql: &mut dyn Sql,
    token_hash: &str,
    user: Id,
    now: u64,
    expires_at: u64,
) -> Result<(), StoreError> {
    sql.execute(
        "INSERT INTO sessions (token_hash, user_id, created_at, expires_at) \
         VALUES ($1, $2, $3, $4)",
        &[
            token_hash.into(),
            user.0.into(),
            now.into(),
            expires_at.into(),
        ],
    )?;
    Ok(())
}

/// The person a live session belongs to.
pub fn session_user(
    sql: &mut dyn Sql,
    token_hash: &str,
    now: u64,
) -> Result<Option<User>, StoreError> {
    let columns = crate::prefixed(USER_COLUMNS, "u.");
    sql.query_opt(
        &format!(
            "SELECT {columns} FROM sessions s JOIN users u ON u.id = s.user_id \
             WHERE s.token_hash = $1 AND s.expires_at > $2"
        ),
        &[token_hash.into(), now.into()],
    )?
    .as_ref()
    .map(user_from)
    .transpose()
}

/// Ends a session.
pub fn delete_session(sql: &mut dyn Sql, token_hash: &str) -> Result<(), StoreError> {
    sql.execute(
        "DELETE FROM sessions WHERE token_hash = $1",
        &[token_hash.into()],
    )?;
    Ok(())
}

/// A linked bank card (only its last four digits are kept).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct BankCard {
    /// Its id.
    pub id: Id,
    /// Whose.
    #[serde(skip)]
    pub user_id: Id,
    /// The bank's name.
    pub bank: String,
    /// Last four digits of the card number.
    pub last4: String,
    /// The holder's name as on the card.
    pub holder: String,
    /// When it was linked.
    pub created_at: u64,
}

/// Links a card.
pub fn add_card(sql: &mut dyn Sql, card: &BankCard) -> Result<(), StoreError> {
    sql.execute(
        "INSERT INTO bank_cards (id, user_id, bank, last4, holder, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
        &[
            card.id.0.into(),
            card.user_id.0.into(),
            card.bank.as_str().into(),
            card.last4.as_str().into(),
            card.holder.as_str().into(),
            card.created_at.into(),
        ],
    )?;
    Ok(())
}

fn card_from(row: &Row) -> Result<BankCard, StoreError> {
    Ok(BankCard {
        id: Id(row.uint(0)?),
        user_id: Id(row.uint(1)?),
        bank: row.text(2)?,
        last4: row.text(3)?,
        holder: row.text(4)?,
        created_at: row.uint(5)?,
    })
}

/// A person's cards, newest first.
pub fn cards(sql: &mut dyn Sql, user: Id) -> Result<Vec<BankCard>, StoreError> {
    sql.query(
        "SELECT id, user_id, bank, last4, holder, created_at FROM bank_cards \
         WHERE user_id = $1 ORDER BY id DESC",
        &[user.0.into()],
    )?
    .iter()
    .map(card_from)
    .collect()
}

/// One of a person's cards (another person's card is not found).
pub fn card(sql: &mut dyn Sql, user: Id, id: Id) -> Result<Option<BankCard>, StoreError> {
    sql.query_opt(
        "SELECT id, user_id, bank, last4, holder, created_at FROM bank_cards \
         WHERE user_id = $1 AND id = $2",
        &[user.0.into(), id.0.into()],
    )?
    .as_ref()
    .map(card_from)
    .transpose()
}
