//! Request bodies: read whole before routing, JSON parsed strictly (unknown fields refused),
//! every failure answered in the API's error shape, and a digest of the exact bytes for
//! idempotency keys.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

use crate::error::ApiError;

/// Largest request body accepted (a payment request is a few hundred bytes).
pub const BODY_MAX_BYTES: usize = 64 * 1024;

/// Reads a request's whole body before it is routed, when its length is given and within
/// `BODY_MAX_BYTES`. A request refused before its handler reads the body (no caller, an
/// unknown id) would otherwise leave it unread, and hyper then closes the keep-alive
/// connection after the answer without saying so: a client that sends its next request on
/// that connection, as clients that pool connections do, gets no answer at all. Bodies of
/// unknown length or over the limit go on as they came, for the extractors to refuse.
pub async fn read_first(request: Request, next: Next) -> Response {
    let length = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<usize>().ok());
    if !length.is_some_and(|length| (1..=BODY_MAX_BYTES).contains(&length)) {
        return next.run(request).await;
    }
    let (parts, body) = request.into_parts();
    match axum::body::to_bytes(body, BODY_MAX_BYTES).await {
        Ok(bytes) => {
            let request = Request::from_parts(parts, axum::body::Body::from(bytes));
            next.run(request).await
        }
        // The connection broke or the body ended early: nobody may be left to read this.
        Err(_) => ApiError::new("malformed_json", "the body could not be read").into_response(),
    }
}

/// A JSON body, with the digest of its bytes.
#[derive(Debug)]
pub struct Body<T> {
    /// The parsed body.
    pub value: T,
    /// SHA-256 of the body's bytes, hex.
    pub digest: String,
}

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let json = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .is_none_or(|value| value.starts_with("application/json"));
        if !json {
            return Err(ApiError::new(
                "unsupported_media_type",
                "send JSON with Content-Type: application/json",
            ));
        }
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(|rejection| {
                if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::new(
                        "body_too_large",
                        format!("the body is larger than {BODY_MAX_BYTES} bytes"),
                    )
                } else {
                    ApiError::new("malformed_json", rejection.body_text())
                }
            })?;
        let value = parse(&bytes)?;
        Ok(Body {
            value,
            digest: hex::encode(Sha256::digest(&bytes)),
        })
    }
}

/// Parses JSON, naming the field at fault.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let deserializer = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(deserializer).map_err(|error| {
        let path = error.path().to_string();
        let inner = error.into_inner();
        let message = inner.to_string();
        if inner.is_syntax() || inner.is_eof() {
            return ApiError::new("malformed_json", message);
        }
        if let Some(name) = between_backticks(&message, "unknown field `") {
            // The path already ends at the unknown field.
            let field = if path == "." { name } else { path };
            return ApiError::new("unknown_field", message).field(field);
        }
        if let Some(name) = between_backticks(&message, "missing field `") {
            let field = if path == "." {
                name
            } else {
                format!("{path}.{name}")
            };
            return ApiError::new("missing_field", message).field(field);
        }
        ApiError::new("invalid_field", message).field(path)
    })
}

fn between_backticks(message: &str, prefix: &str) -> Option<String> {
    let rest = message.strip_prefix(prefix)?;
    rest.split('`').next().map(str::to_owned)
}

/// Answers a request whose body the handler did not read to its end (refused before it:
/// 401 to an anonymous POST, 503 when overloaded) with `Connection: close`. The server closes
/// such a connection after the answer anyway, since the unread rest of the body is in the
/// way of the next request; saying so keeps the client from sending its next request on a
/// connection about to close, which it would see fail with no answer.
pub(crate) async fn close_if_unread(
    request: Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::body::HttpBody;
    if request.body().is_end_stream() {
        return next.run(request).await;
    }
    let read = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&read);
    let request = request.map(|inner| axum::body::Body::new(Tracked { inner, read: flag }));
    let mut response = next.run(request).await;
    if !read.load(Ordering::Relaxed) {
        response.headers_mut().insert(
            header::CONNECTION,
            axum::http::HeaderValue::from_static("close"),
        );
    }
    response
}

/// A request body that notes when it has been read to its end.
struct Tracked {
    inner: axum::body::Body,
    read: Arc<AtomicBool>,
}

impl axum::body::HttpBody for Tracked {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        if matches!(polled, Poll::Ready(None)) || this.inner.is_end_stream() {
            this.read.store(true, Ordering::Relaxed);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}
