//! Idempotency keys: a POST that moves money carries `Idempotency-Key`; the core saves the key
//! with its answer in the batch that applies the command, and the writer looks keys up before
//! every batch, so a retry with the same key and the same body gets the saved answer at any age
//! (also while the first request is still queued, or through another API process), and the
//! same key with another body is refused. The edge only reads the header.

use axum::http::HeaderMap;
use formica_core::{Command, Id, IdempotencyKey, Outcome, ProductCommand, ProductRequest, Reply};

use crate::AppState;
use crate::error::ApiError;

/// The header.
pub const HEADER: &str = "Idempotency-Key";

/// Longest key accepted.
pub const KEY_MAX: usize = 255;

/// The key a request carries.
pub fn key(headers: &HeaderMap, required: bool) -> Result<Option<String>, ApiError> {
    match headers.get(HEADER) {
        None if required => Err(ApiError::new(
            "idempotency_key_required",
            "this request moves money: send an Idempotency-Key header",
        )
        .field(HEADER)),
        None => Ok(None),
        Some(value) => {
            let key = value
                .to_str()
                .ok()
                .filter(|k| !k.is_empty() && k.len() <= KEY_MAX);
            key.map(|k| Some(k.to_owned())).ok_or_else(|| {
                ApiError::new(
                    "invalid_field",
                    "an Idempotency-Key is 1 to 255 visible characters",
                )
                .field(HEADER)
            })
        }
    }
}

/// Submits a product command for `owner` under the request's key. The engine's writer
/// honours the key (a retry gets the saved answer, the same key with another request is
/// refused), whichever process and whenever the retry comes; `fingerprint` identifies the
/// request (method, path and body).
pub async fn submit(
    state: &AppState,
    owner: Id,
    key: Option<String>,
    fingerprint: String,
    command: ProductCommand,
) -> Result<Outcome, ApiError> {
    let key = key.map(|key| IdempotencyKey {
        owner,
        key,
        fingerprint,
    });
    run(state, command, key).await
}

async fn run(
    state: &AppState,
    command: ProductCommand,
    idempotency: Option<IdempotencyKey>,
) -> Result<Outcome, ApiError> {
    let reply = state
        .engine()
        .submit(Command::Product(ProductRequest {
            command,
            idempotency,
        }))
        .await?;
    match reply {
        Reply::Product(outcome) => Ok(outcome),
        other => Err(ApiError::internal(&format!("unexpected reply {other:?}"))),
    }
}
