//! Idempotency keys: a POST that moves money carries `Idempotency-Key`; the core saves the key
//! with its answer in the batch that applies the command, so a retry with the same key and the
//! same body gets the saved answer at any age, and the same key with another body is refused.
//! One request per key runs at a time (a second one meanwhile gets `idempotency_key_in_use`).

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use axum::http::HeaderMap;
use formica_core::{
    Command, Id, IdempotencyKey, Outcome, ProductCommand, ProductRequest, Refusal, Reply,
};

use crate::AppState;
use crate::error::ApiError;

/// The header.
pub const HEADER: &str = "Idempotency-Key";

/// Longest key accepted.
pub const KEY_MAX: usize = 255;

/// Keys being served now.
#[derive(Debug, Default)]
pub struct InFlight(Mutex<HashSet<(Id, String)>>);

/// Holds a key while its request runs.
struct Claim {
    in_flight: Arc<InFlight>,
    key: (Id, String),
}

impl Drop for Claim {
    fn drop(&mut self) {
        self.in_flight
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&self.key);
    }
}

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

/// Submits a product command for `owner`, honouring the key: the saved answer for a retry,
/// a conflict for a reused key, the engine's answer otherwise. `fingerprint` identifies the
/// request (method, path and body).
pub async fn submit(
    state: &AppState,
    owner: Id,
    key: Option<String>,
    fingerprint: String,
    command: ProductCommand,
) -> Result<Outcome, ApiError> {
    let Some(key) = key else {
        return run(state, command, None).await;
    };
    let claim_key = (owner, key.clone());
    let inserted = state
        .in_flight()
        .0
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .insert(claim_key.clone());
    if !inserted {
        return Err(ApiError::new(
            "idempotency_key_in_use",
            "a request with this Idempotency-Key is still being served",
        ));
    }
    let claim = Claim {
        in_flight: Arc::clone(state.in_flight()),
        key: claim_key,
    };
    let lookup_key = key.clone();
    let saved = state
        .pool()
        .read(move |sql| formica_store::wallet::idempotency(sql, owner, &lookup_key))
        .await?;
    if let Some((saved_fingerprint, outcome)) = saved {
        if saved_fingerprint != fingerprint {
            return Err(ApiError::new(
                "idempotency_key_reused",
                "this Idempotency-Key was used for a different request",
            )
            .field(HEADER));
        }
        let saved: Result<Outcome, Refusal> =
            serde_json::from_str(&outcome).map_err(|error| ApiError::internal(&error))?;
        return saved.map_err(ApiError::from);
    }
    let key = IdempotencyKey {
        owner,
        key,
        fingerprint,
    };
    // The claim lives until the engine has answered, not until this request does: a client
    // that gives up while its command is queued must not let its retry in before the answer
    // (and its saved key) exists.
    let state = state.clone();
    tokio::spawn(async move {
        let answer = run(&state, command, Some(key)).await;
        drop(claim);
        answer
    })
    .await
    .map_err(|error| ApiError::internal(&error))?
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
