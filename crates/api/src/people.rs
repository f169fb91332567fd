//! People: sign up, sign in and out, the payment PIN, and (for operators) identity checks.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use formica_core::wallet::{Level, WalletCommand};
use formica_core::{Currency, Id, ProductCommand};
use formica_store::people::{self, Secret, User};
use serde::{Deserialize, Serialize};

use crate::AppState;
use crate::auth::{self, Caller};
use crate::body::Body;
use crate::error::{ApiError, ErrorBody};

/// A person as the API shows them.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct UserView {
    /// Their id.
    pub id: Id,
    /// Phone number or email.
    pub login: String,
    /// The name others see.
    pub display_name: String,
    /// `person` or `operator`.
    pub role: String,
    /// Identity level: sets the daily outgoing limit.
    pub level: Level,
    /// Whether a payment PIN is set.
    pub pin_set: bool,
    /// When they signed up (nanoseconds since the epoch).
    pub created_at: u64,
}

fn view(user: &User, level: Level) -> UserView {
    UserView {
        id: user.id,
        login: user.login.clone(),
        display_name: user.display_name.clone(),
        role: user.role.clone(),
        level,
        pin_set: user.pin_hash.is_some(),
        created_at: user.created_at,
    }
}

/// Sign-up details.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignUp {
    /// A phone number (digits, optionally a leading +) or an email address.
    pub login: String,
    /// At least 8 characters.
    pub password: String,
    /// The name others see (defaults to the login).
    pub display_name: Option<String>,
}

/// Checks and normalizes a login: a phone number or a lower-cased email address.
pub fn normalize_login(login: &str) -> Result<String, ApiError> {
    let login = login.trim();
    let phone = login.strip_prefix('+').unwrap_or(login);
    let is_phone = (6..=20).contains(&phone.len()) && phone.bytes().all(|b| b.is_ascii_digit());
    let is_email = login.len() <= 254
        && login
            .split_once('@')
            .is_some_and(|(user, domain)| !user.is_empty() && domain.contains('.'))
        && !login.contains(char::is_whitespace);
    if is_phone || is_email {
        Ok(login.to_lowercase())
    } else {
        Err(ApiError::new("invalid_field", "a phone number or an email address").field("login"))
    }
}

/// Creates a person in SQL and opens their wallet through the engine. Used by sign-up and
/// by the demo.
pub async fn create_person(
    state: &AppState,
    login: &str,
    password: &str,
    display_name: Option<String>,
    role: &str,
) -> Result<User, ApiError> {
    let login = normalize_login(login)?;
    if !(8..=128).contains(&password.chars().count()) {
        return Err(ApiError::new("invalid_field", "8 to 128 characters").field("password"));
    }
    let display_name = display_name.unwrap_or_else(|| login.clone());
    if display_name.is_empty() || display_name.len() > 64 {
        return Err(ApiError::new("invalid_field", "1 to 64 characters").field("display_name"));
    }
    let user = User {
        id: new_id(state.now()),
        login,
        display_name,
        password_hash: auth::hash_secret(password.to_owned()).await?,
        pin_hash: None,
        pin_failures: 0,
        pin_locked_until: 0,
        signin_failures: 0,
        signin_locked_until: 0,
        role: role.to_owned(),
        created_at: state.now(),
    };
    let row = user.clone();
    let created = state
        .pool()
        .with_store(
            move |store| match store.write_sql(|sql| people::create_user(sql, &row)) {
                Ok(()) => Ok(true),
                Err(formica_store::StoreError::Conflict(_)) => Ok(false),
                Err(error) => Err(error),
            },
        )
        .await?;
    if !created {
        return Err(ApiError::new("login_taken", "this login is taken").field("login"));
    }
    open_wallet(state, user.id).await?;
    Ok(user)
}

/// Opens the person's CNY wallet (and the person, in the core). Opening is idempotent, so a
/// sign-in repairs a sign-up that crashed between its two steps.
async fn open_wallet(state: &AppState, user: Id) -> Result<(), ApiError> {
    let command = ProductCommand::Wallet(WalletCommand::OpenWallet {
        user_id: user,
        currency: Currency::CNY,
    });
    crate::idempotency::submit(state, user, None, String::new(), command).await?;
    Ok(())
}

/// An id for rows made outside the engine: the millisecond, then 20 random bits (a collision
/// is a unique-key error, not a silent overwrite).
pub fn new_id(now: u64) -> Id {
    let mut random = [0u8; 4];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut random);
    Id(((now / 1_000_000) << 20) | u64::from(u32::from_le_bytes(random) & 0xF_FFFF))
}

/// Sign up.
#[utoipa::path(post, path = "/v1/users", tag = "people", request_body = SignUp,
    responses((status = 201, body = UserView), (status = 400, body = ErrorBody),
        (status = 409, body = ErrorBody)))]
pub async fn sign_up(
    State(state): State<AppState>,
    body: Body<SignUp>,
) -> Result<(StatusCode, Json<UserView>), ApiError> {
    let SignUp {
        login,
        password,
        display_name,
    } = body.value;
    let user = create_person(&state, &login, &password, display_name, "person").await?;
    Ok((StatusCode::CREATED, Json(view(&user, Level::Unverified))))
}

/// Sign-in details.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignIn {
    /// Phone number or email.
    pub login: String,
    /// The password.
    pub password: String,
}

/// A new session.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Session {
    /// Send as `Authorization: Bearer <token>`.
    pub token: String,
    /// When it stops working (nanoseconds since the epoch).
    pub expires_at: u64,
    /// Who signed in.
    pub user: UserView,
}

/// Sign in: a bearer token. Five wrong passwords in a row lock sign-in for 15 minutes.
#[utoipa::path(post, path = "/v1/sessions", tag = "people", request_body = SignIn,
    responses((status = 201, body = Session), (status = 401, body = ErrorBody),
        (status = 429, body = ErrorBody)))]
pub async fn sign_in(
    State(state): State<AppState>,
    body: Body<SignIn>,
) -> Result<(StatusCode, Json<Session>), ApiError> {
    let failed = || ApiError::new("signin_failed", "wrong login or password");
    let login = normalize_login(&body.value.login).map_err(|_| failed())?;
    let user = state
        .pool()
        .read(move |sql| people::user_by_login(sql, &login))
        .await?
        .ok_or_else(failed)?;
    auth::check_secret(&state, &user, Secret::Password, &body.value.password).await?;
    open_wallet(&state, user.id).await?;
    let token = auth::new_token();
    let hash = auth::token_hash(&token);
    let now = state.now();
    let expires_at = now + auth::SESSION_NS;
    let id = user.id;
    state
        .pool()
        .write(move |sql| people::create_session(sql, &hash, id, now, expires_at))
        .await?;
    let level = level_of(&state, id).await?;
    Ok((
        StatusCode::CREATED,
        Json(Session {
            token,
            expires_at,
            user: view(&user, level),
        }),
    ))
}

async fn level_of(state: &AppState, user: Id) -> Result<Level, ApiError> {
    Ok(state
        .pool()
        .read(move |sql| people::level(sql, user))
        .await?
        .unwrap_or_default())
}

/// Sign out: the token stops working.
#[utoipa::path(delete, path = "/v1/sessions/current", tag = "people",
    responses((status = 204), (status = 401, body = ErrorBody)), security(("bearer" = [])))]
pub async fn sign_out(
    State(state): State<AppState>,
    _caller: Caller,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    let token = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .unwrap_or_default();
    let hash = auth::token_hash(token);
    state
        .pool()
        .write(move |sql| people::delete_session(sql, &hash))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The signed-in person.
#[utoipa::path(get, path = "/v1/me", tag = "people",
    responses((status = 200, body = UserView), (status = 401, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn me(
    State(state): State<AppState>,
    Caller(user): Caller,
) -> Result<Json<UserView>, ApiError> {
    let level = level_of(&state, user.id).await?;
    Ok(Json(view(&user, level)))
}

/// A new payment PIN.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetPin {
    /// Six digits.
    pub pin: String,
    /// The account password, to prove it is the owner.
    pub password: String,
}

/// Sets (or changes) the 6-digit payment PIN that moving money requires.
#[utoipa::path(put, path = "/v1/me/pin", tag = "people", request_body = SetPin,
    responses((status = 204), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn set_pin(
    State(state): State<AppState>,
    Caller(user): Caller,
    body: Body<SetPin>,
) -> Result<StatusCode, ApiError> {
    let pin = body.value.pin;
    if pin.len() != 6 || !pin.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ApiError::new("invalid_field", "six digits").field("pin"));
    }
    auth::check_secret(&state, &user, Secret::Password, &body.value.password).await?;
    let hash = auth::hash_secret(pin).await?;
    let id = user.id;
    state
        .pool()
        .write(move |sql| people::set_pin(sql, id, &hash))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// An operator's identity check.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Verification {
    /// The level the person now has.
    pub level: Level,
}

/// Sets a person's identity level (operators only).
#[utoipa::path(post, path = "/v1/users/{id}/verification", tag = "operator",
    request_body = Verification, params(("id" = String, Path, description = "The person")),
    responses((status = 200, body = UserView), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn verify(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: Body<Verification>,
) -> Result<Json<UserView>, ApiError> {
    caller.operator()?;
    let id: Id = id
        .parse()
        .map_err(|_| ApiError::not_found("user_not_found"))?;
    let user = state
        .pool()
        .read(move |sql| people::user(sql, id))
        .await?
        .ok_or_else(|| ApiError::not_found("user_not_found"))?;
    let command = ProductCommand::Wallet(WalletCommand::SetLevel {
        user_id: id,
        level: body.value.level,
    });
    crate::idempotency::submit(&state, caller.0.id, None, String::new(), command).await?;
    Ok(Json(view(&user, body.value.level)))
}
