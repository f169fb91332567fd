//! Who is looking at a page and whether a form is really theirs: the session cookie (the same
//! sessions as the API's bearer tokens, only the token's SHA-256 stored), the CSRF token every
//! form carries (a random value in its own cookie, echoed by the form: another site can make a
//! browser post, but cannot read the cookie to echo it), and the form body's parser.

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use formica_api::AppState;
use formica_api::auth::{self, Caller};
use formica_store::people::User;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

use crate::view;

/// The session cookie: an API session token. Behind TLS its name has the `__Host-` prefix,
/// which browsers keep only for a cookie the host itself set `Secure` on `/` (so that a
/// neighbouring subdomain cannot plant one); plain HTTP on loopback cannot use the prefix.
fn session_cookie_name(secure: bool) -> &'static str {
    if secure {
        "__Host-formica_session"
    } else {
        "formica_session"
    }
}

/// The CSRF cookie's name, likewise.
fn csrf_cookie_name(secure: bool) -> &'static str {
    if secure {
        "__Host-formica_csrf"
    } else {
        "formica_csrf"
    }
}

/// Largest form accepted (a public key is the largest field).
const FORM_MAX_BYTES: usize = 16 * 1024;

/// The request as pages see it: the signed-in person if any, and the form token.
#[derive(Clone, Debug)]
pub struct Ctx {
    /// The signed-in person.
    pub user: Option<User>,
    /// What the sessions table keeps of the cookie's token.
    pub session_hash: Option<String>,
    /// The token this browser's forms carry.
    pub csrf: String,
    /// Whether the CSRF cookie is new (set with the response).
    pub new_csrf: bool,
    /// Whether cookies get the `Secure` attribute (anything but plain HTTP on loopback).
    pub secure: bool,
    /// The path and query asked for (where sign-in returns to).
    pub path: String,
    /// Scheme and host as the browser reached the server (for QR codes).
    pub base_url: String,
}

impl Ctx {
    /// The signed-in caller, as the API's handlers take it.
    pub fn caller(&self) -> Option<Caller> {
        self.user.clone().map(Caller)
    }

    /// Whether the viewer is an operator.
    pub fn operator(&self) -> bool {
        self.user.as_ref().is_some_and(|u| u.role == "operator")
    }

    /// `Set-Cookie` for a session token (or, with None, one that ends the session).
    pub fn session_cookie(&self, token: Option<&str>) -> HeaderValue {
        let name = session_cookie_name(self.secure);
        let secure = if self.secure { "; Secure" } else { "" };
        let value = match token {
            Some(token) => format!(
                "{name}={token}; Path=/; HttpOnly; SameSite=Lax; Max-Age={}{secure}",
                auth::SESSION_NS / 1_000_000_000
            ),
            None => format!("{name}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0{secure}"),
        };
        HeaderValue::from_str(&value).expect("a cookie is ASCII")
    }

    /// `Set-Cookie` for the CSRF token.
    pub fn csrf_cookie(&self) -> HeaderValue {
        self.csrf_cookie_with(&self.csrf)
    }

    /// `Set-Cookie` for a new CSRF token, when a session opens or ends (a token known before
    /// sign-in is no use after it).
    pub fn new_csrf_cookie(&self) -> HeaderValue {
        self.csrf_cookie_with(&auth::new_token())
    }

    fn csrf_cookie_with(&self, token: &str) -> HeaderValue {
        let name = csrf_cookie_name(self.secure);
        let secure = if self.secure { "; Secure" } else { "" };
        HeaderValue::from_str(&format!(
            "{name}={token}; Path=/; HttpOnly; SameSite=Lax{secure}"
        ))
        .expect("a cookie is ASCII")
    }
}

/// The value of cookie `name`.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

fn is_token(value: &str) -> bool {
    value.len() == 64 && value.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Plain HTTP to a loopback name (a developer's machine, the tests) is the one place cookies
/// go without `Secure`; everywhere else the server is expected behind TLS.
fn secure(headers: &HeaderMap) -> bool {
    if headers
        .get("x-forwarded-proto")
        .is_some_and(|proto| proto == "https")
    {
        return true;
    }
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let name = match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    };
    !matches!(name, "localhost" | "127.0.0.1" | "[::1]")
}

impl FromRequestParts<AppState> for Ctx {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let headers = &parts.headers;
        let secure = secure(headers);
        let session_hash = cookie(headers, session_cookie_name(secure))
            .filter(|t| is_token(t))
            .map(auth::token_hash);
        let user = match &session_hash {
            Some(hash) => {
                let (hash, now) = (hash.clone(), state.now());
                state
                    .pool()
                    .read(move |sql| formica_store::people::session_user(sql, &hash, now))
                    .await
                    .map_err(|error| view::failure(&error))?
            }
            None => None,
        };
        let (csrf, new_csrf) =
            match cookie(headers, csrf_cookie_name(secure)).filter(|t| is_token(t)) {
                Some(token) => (token.to_owned(), false),
                None => (auth::new_token(), true),
            };
        Ok(Ctx {
            user,
            session_hash,
            csrf,
            new_csrf,
            secure,
            path: parts
                .uri
                .path_and_query()
                .map_or_else(|| "/".to_owned(), |p| p.as_str().to_owned()),
            base_url: state.base_url(headers),
        })
    }
}

/// A signed-in person's request; anyone else is sent to sign in and brought back.
#[derive(Clone, Debug)]
pub struct Signed(pub Ctx, pub Caller);

impl FromRequestParts<AppState> for Signed {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let ctx = Ctx::from_request_parts(parts, state).await?;
        match ctx.caller() {
            Some(caller) => Ok(Signed(ctx, caller)),
            None => Err(to_sign_in(&ctx.path)),
        }
    }
}

/// The redirect to the sign-in page, returning to `path`.
pub fn to_sign_in(path: &str) -> Response {
    let next: String = form_urlencoded::byte_serialize(path.as_bytes()).collect();
    Redirect::to(&format!("/sign-in?next={next}")).into_response()
}

/// An operator's request; a person who is not one is refused.
#[derive(Clone, Debug)]
pub struct Operator(pub Ctx, pub Caller);

impl FromRequestParts<AppState> for Operator {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let Signed(ctx, caller) = Signed::from_request_parts(parts, state).await?;
        if caller.operator().is_err() {
            return Err(view::message(
                &ctx,
                StatusCode::FORBIDDEN,
                "Operators only",
                "This page is for the platform's operators.",
            ));
        }
        Ok(Operator(ctx, caller))
    }
}

/// A posted form whose CSRF token matched: its fields, and a digest of its bytes (a form
/// that moves money also carries an idempotency key, so a double submit pays once).
#[derive(Debug)]
pub struct Posted<T> {
    /// The request.
    pub ctx: Ctx,
    /// The fields.
    pub value: T,
    /// SHA-256 of the body, hex.
    pub digest: String,
}

impl<T: DeserializeOwned> FromRequest<AppState> for Posted<T> {
    type Rejection = Response;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Response> {
        let (mut parts, body) = request.into_parts();
        let ctx = Ctx::from_request_parts(&mut parts, state).await?;
        let bytes = axum::body::to_bytes(body, FORM_MAX_BYTES)
            .await
            .map_err(|_| {
                view::message(
                    &ctx,
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "Too much",
                    "The form sent more than this page takes.",
                )
            })?;
        let sent = form_urlencoded::parse(&bytes)
            .find(|(name, _)| name == "csrf")
            .map(|(_, value)| value.into_owned());
        let matches = !ctx.new_csrf
            && sent.is_some_and(|sent| {
                Sha256::digest(sent.as_bytes()) == Sha256::digest(ctx.csrf.as_bytes())
            });
        if !matches {
            return Err(view::message(
                &ctx,
                StatusCode::FORBIDDEN,
                "This form has expired",
                "The form was not sent from a Formica page in this browser. Go back, reload \
                 the page and try again.",
            ));
        }
        let value = serde_urlencoded::from_bytes(&bytes).map_err(|error| {
            view::message(
                &ctx,
                StatusCode::BAD_REQUEST,
                "This form is incomplete",
                &error.to_string(),
            )
        })?;
        Ok(Posted {
            ctx,
            value,
            digest: hex::encode(Sha256::digest(&bytes)),
        })
    }
}

/// A form's idempotency key, checked as the API checks the header (1 to 255 visible
/// characters).
pub fn form_key(key: &str) -> Result<String, formica_api::ApiError> {
    formica_api::idempotency::key(&keyed(key), true).map(Option::unwrap_or_default)
}

/// Headers carrying a form's idempotency key, for the API's handlers.
pub fn keyed(key: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    if let Ok(value) = HeaderValue::from_str(key) {
        headers.insert(formica_api::idempotency::HEADER, value);
    }
    headers
}
