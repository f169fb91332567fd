//! Who is calling: passwords and payment PINs hashed with argon2, bearer session tokens (only
//! their SHA-256 is stored), and the lockouts after repeated wrong passwords or PINs.

use argon2::password_hash::{PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Argon2, PasswordHash};
use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use formica_store::people::{self, Secret, User};
use sha2::{Digest, Sha256};

use crate::AppState;
use crate::error::ApiError;

/// Wrong passwords or PINs in a row before a lockout.
pub const ATTEMPTS_MAX: i64 = 5;

/// How long a lockout lasts.
pub const LOCKOUT_NS: u64 = 15 * 60 * 1_000_000_000;

/// How long a session lasts.
pub const SESSION_NS: u64 = 30 * 24 * 3600 * 1_000_000_000;

/// The signed-in caller.
#[derive(Clone, Debug)]
pub struct Caller(pub User);

impl Caller {
    /// Refuses a caller who is not an operator.
    pub fn operator(&self) -> Result<(), ApiError> {
        if self.0.role == "operator" {
            Ok(())
        } else {
            Err(ApiError::new("forbidden", "operators only"))
        }
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let unauthenticated = || {
            ApiError::new(
                "unauthenticated",
                "sign in: send Authorization: Bearer <token>",
            )
        };
        let token = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "))
            .ok_or_else(unauthenticated)?;
        let hash = token_hash(token);
        let now = state.now();
        let user = state
            .pool()
            .read(move |sql| people::session_user(sql, &hash, now))
            .await?;
        user.map(Caller).ok_or_else(unauthenticated)
    }
}

/// A new session token: 32 random bytes, hex.
pub fn new_token() -> String {
    let mut bytes = [0u8; 32];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut bytes);
    hex::encode(bytes)
}

/// What the sessions table keeps of a token.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// An argon2id hash of a password or PIN (PHC string), computed off the async threads.
pub async fn hash_secret(secret: String) -> Result<String, ApiError> {
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::generate(&mut rand_core::OsRng);
        Argon2::default()
            .hash_password(secret.as_bytes(), &salt)
            .map(|hash| hash.to_string())
            .map_err(|error| ApiError::internal(&error))
    })
    .await
    .map_err(|error| ApiError::internal(&error))?
}

async fn verify_secret(secret: String, hash: String) -> Result<bool, ApiError> {
    tokio::task::spawn_blocking(move || {
        let parsed = PasswordHash::new(&hash).map_err(|error| ApiError::internal(&error))?;
        Ok(Argon2::default()
            .verify_password(secret.as_bytes(), &parsed)
            .is_ok())
    })
    .await
    .map_err(|error| ApiError::internal(&error))?
}

/// Checks a password or PIN against its hash. Each attempt is counted before it is checked
/// (so concurrent guesses cannot share one count), and `ATTEMPTS_MAX` wrong ones in a row lock
/// the secret for `LOCKOUT_NS`.
pub async fn check_secret(
    state: &AppState,
    user: &User,
    secret: Secret,
    given: &str,
) -> Result<(), ApiError> {
    let now = state.now();
    let (hash, locked_until) = match secret {
        Secret::Password => (Some(user.password_hash.clone()), user.signin_locked_until),
        Secret::Pin => (user.pin_hash.clone(), user.pin_locked_until),
    };
    let (locked, wrong) = match secret {
        Secret::Password => ("signin_locked", "signin_failed"),
        Secret::Pin => ("pin_locked", "pin_incorrect"),
    };
    let locked_error = || ApiError::new(locked, "too many wrong attempts; try again later");
    if now < locked_until {
        return Err(locked_error());
    }
    let hash =
        hash.ok_or_else(|| ApiError::new("pin_not_set", "set a payment PIN first").field("pin"))?;
    let id = user.id;
    let lock_until = now + LOCKOUT_NS;
    let claimed = state
        .pool()
        .write(move |sql| people::claim_attempt(sql, id, secret, now, ATTEMPTS_MAX, lock_until))
        .await?;
    if !claimed {
        return Err(locked_error());
    }
    let ok = verify_secret(given.to_owned(), hash).await?;
    let (failures, locked_until) = state
        .pool()
        .write(move |sql| people::finish_attempt(sql, id, secret, ok, ATTEMPTS_MAX, lock_until))
        .await?;
    if ok {
        return Ok(());
    }
    if locked_until > now {
        return Err(ApiError::new(
            locked,
            "too many wrong attempts; locked for 15 minutes",
        ));
    }
    let left = (ATTEMPTS_MAX - failures).max(0);
    let error = ApiError::new(wrong, format!("wrong; {left} attempts left"));
    Err(match secret {
        Secret::Pin => error.field("pin"),
        Secret::Password => error,
    })
}
