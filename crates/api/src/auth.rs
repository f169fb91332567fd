//! Who is calling: passwords and payment PINs hashed with argon2, bearer session tokens (only
//! their SHA-256 is stored), and the lockouts after repeated wrong passwords or PINs.

use argon2::password_hash::{Output, ParamsString, Salt, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, PasswordHash, Version};
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

/// Argon2 works in 19 MiB of memory per check. Allocated per check, the allocator kept each
/// thread's last 19 MiB resident, so the server's memory followed how many checks had ever
/// run at once (a soak saw it creep up with the machine's load). Checks run at most one per
/// core at a time, each in a buffer from a pool made as needed and kept: the memory is
/// fixed, and waiting for a core costs nothing more than sharing one.
struct Hashing {
    permits: tokio::sync::Semaphore,
    buffers: std::sync::Mutex<Vec<Vec<Block>>>,
}

fn hashing() -> &'static Hashing {
    static HASHING: std::sync::OnceLock<Hashing> = std::sync::OnceLock::new();
    HASHING.get_or_init(|| Hashing {
        permits: tokio::sync::Semaphore::new(
            std::thread::available_parallelism().map_or(2, std::num::NonZero::get),
        ),
        buffers: std::sync::Mutex::new(Vec::new()),
    })
}

/// Runs `work` off the async threads with a pooled argon2 buffer of the default size.
async fn with_blocks<T: Send + 'static>(
    work: impl FnOnce(&mut Vec<Block>) -> T + Send + 'static,
) -> Result<T, ApiError> {
    let hashing = hashing();
    let _permit = hashing
        .permits
        .acquire()
        .await
        .map_err(|error| ApiError::internal(&error))?;
    tokio::task::spawn_blocking(move || {
        let pool = || hashing.buffers.lock().unwrap_or_else(|e| e.into_inner());
        let taken = pool().pop();
        let mut blocks =
            taken.unwrap_or_else(|| vec![Block::default(); Params::default().block_count()]);
        let done = work(&mut blocks);
        pool().push(blocks);
        done
    })
    .await
    .map_err(|error| ApiError::internal(&error))
}

/// The PHC hash of `secret` with `params`, computed in `blocks` (grown if the params ask
/// for more than they hold): what `Argon2::hash_password` does, without allocating.
fn hash_in<'a>(
    (algorithm, version, params): (Algorithm, Version, Params),
    secret: &[u8],
    salt: Salt<'a>,
    blocks: &mut Vec<Block>,
) -> argon2::password_hash::Result<PasswordHash<'a>> {
    let mut salt_bytes = [0u8; 64];
    let salt_bytes = salt.decode_b64(&mut salt_bytes)?;
    if blocks.len() < params.block_count() {
        blocks.resize(params.block_count(), Block::default());
    }
    let argon = Argon2::new(algorithm, version, params.clone());
    let length = params.output_len().unwrap_or(Params::DEFAULT_OUTPUT_LEN);
    let output = Output::init_with(length, |out| {
        argon
            .hash_password_into_with_memory(secret, salt_bytes, out, &mut blocks[..])
            .map_err(Into::into)
    })?;
    Ok(PasswordHash {
        algorithm: algorithm.ident(),
        version: Some(version.into()),
        params: ParamsString::try_from(&params)?,
        salt: Some(salt),
        hash: Some(output),
    })
}

/// An argon2id hash of a password or PIN (PHC string), computed off the async threads.
pub async fn hash_secret(secret: String) -> Result<String, ApiError> {
    with_blocks(move |blocks| {
        let salt = SaltString::generate(&mut rand_core::OsRng);
        let default = (Algorithm::default(), Version::default(), Params::default());
        hash_in(default, secret.as_bytes(), salt.as_salt(), blocks)
            .map(|hash| hash.to_string())
            .map_err(|error| ApiError::internal(&error))
    })
    .await?
}

async fn verify_secret(secret: String, hash: String) -> Result<bool, ApiError> {
    with_blocks(move |blocks| {
        let parsed = PasswordHash::new(&hash).map_err(|error| ApiError::internal(&error))?;
        let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else {
            return Err(ApiError::internal(&"a stored hash without salt or output"));
        };
        let how = (|| {
            let version = parsed
                .version
                .map_or(Ok(Version::default()), Version::try_from)?;
            Ok::<_, argon2::password_hash::Error>((
                Algorithm::try_from(parsed.algorithm)?,
                version,
                Params::try_from(&parsed)?,
            ))
        })()
        .map_err(|error| ApiError::internal(&error))?;
        let computed =
            hash_in(how, secret.as_bytes(), salt, blocks).map_err(|e| ApiError::internal(&e))?;
        // `Output` compares in constant time.
        Ok(computed.hash == Some(expected))
    })
    .await?
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

#[cfg(test)]
mod tests {
    use super::*;
    use argon2::password_hash::PasswordHasher;

    fn run<T>(future: impl std::future::Future<Output = T>) -> T {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime")
            .block_on(future)
    }

    #[test]
    fn pooled_hashes_are_the_crates_own_and_a_wrong_secret_fails() {
        run(async {
            let ours = hash_secret("135790".to_owned()).await.expect("hashed");
            assert!(
                ours.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
                "{ours}"
            );
            assert!(
                verify_secret("135790".into(), ours.clone())
                    .await
                    .expect("checked")
            );
            assert!(!verify_secret("135791".into(), ours).await.expect("checked"));
            // A hash the crate made the usual way checks the same.
            let salt = SaltString::generate(&mut rand_core::OsRng);
            let theirs = Argon2::default()
                .hash_password(b"correct horse", &salt)
                .expect("hashed")
                .to_string();
            assert!(
                verify_secret("correct horse".into(), theirs.clone())
                    .await
                    .expect("ok")
            );
            assert!(
                !verify_secret("wrong horse".into(), theirs)
                    .await
                    .expect("ok")
            );
            // Other parameters than the pool's buffer holds still check.
            let small = Argon2::new(
                Algorithm::Argon2id,
                Version::V0x13,
                Params::new(64, 1, 1, None).expect("params"),
            )
            .hash_password(b"pin", &salt)
            .expect("hashed")
            .to_string();
            assert!(verify_secret("pin".into(), small).await.expect("checked"));
        });
        let permits = std::thread::available_parallelism().map_or(2, std::num::NonZero::get);
        let kept = hashing().buffers.lock().expect("the pool").len();
        assert!((1..=permits).contains(&kept), "{kept} buffers kept");
    }
}
