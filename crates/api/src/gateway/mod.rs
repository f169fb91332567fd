//! The Alipay-compatible open gateway, `/gateway.do`: a shop integrated with Alipay's SDKs
//! changes its gateway URL and keys and runs on Formica. The protocol, byte for byte, is in
//! `shared/reference/alipay-gateway.md`; section numbers below refer to it.
//!
//! One request: parameters from the query and the form body (§1.1), the common parameters
//! checked in the documented order (§2.4), the RSA2 signature verified against the app's
//! public key (§2), then the method runs and its answer goes back in the signed
//! `<method>_response` envelope (§4), always as HTTP 200. The page flows (`page.pay`,
//! `wap.pay`) answer with the hosted checkout page instead (§7).

pub mod bill;
pub mod checkout;
pub mod fund_auth;
pub(crate) mod methods;
pub mod notify;
pub mod sign;
pub mod time;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, Uri, header};
use axum::response::{Html, IntoResponse, Response};
use formica_store::merchant::App;
use serde_json::{Map, Value};

use crate::AppState;
use sign::{RsaPublicKey, SignType};

/// How far a request's timestamp may be from the server's clock, either way. The SDKs send
/// local time with no zone (§1.3), so the window spans every zone; replays are stopped by
/// out_trade_no / out_request_no / out_biz_no idempotency, not by this.
pub const TIMESTAMP_WINDOW_SECONDS: i64 = 24 * 3600;

/// An app's keys, parsed once.
#[derive(Debug)]
pub struct AppKeys {
    /// The app.
    pub app: App,
    /// The platform's private key for it.
    pub platform: sign::PlatformKey,
    /// The merchant's public key, once uploaded.
    pub merchant: Option<RsaPublicKey>,
    /// The merchant's currency: every trade of the app is in it.
    pub currency: formica_core::Currency,
}

/// Counters of the gateway's work, for `/metrics` and `formica bench gateway`.
#[derive(Debug, Default)]
pub struct GatewayStats {
    /// Requests answered.
    pub requests: AtomicU64,
    /// Time spent answering them, in nanoseconds.
    pub nanos: AtomicU64,
    /// Of that, time spent verifying requests' and signing answers' RSA signatures.
    pub rsa_nanos: AtomicU64,
}

impl GatewayStats {
    fn add_rsa(&self, since: Instant) {
        self.rsa_nanos
            .fetch_add(nanos_since(since), Ordering::Relaxed);
    }
}

fn nanos_since(since: Instant) -> u64 {
    u64::try_from(since.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// What the gateway keeps between requests.
#[derive(Debug)]
pub struct Gateway {
    /// Work done.
    pub stats: GatewayStats,
    apps: Mutex<std::collections::HashMap<String, Arc<AppKeys>>>,
    /// Signs bill download links, which must work without a session.
    pub(crate) link_secret: [u8; 32],
}

impl Default for Gateway {
    fn default() -> Self {
        let mut link_secret = [0u8; 32];
        rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut link_secret);
        Gateway {
            stats: GatewayStats::default(),
            apps: Mutex::default(),
            link_secret,
        }
    }
}

impl Gateway {
    /// The app's keys, from the cache or the store.
    pub(crate) async fn app(
        state: &AppState,
        app_id: &str,
    ) -> Result<Option<Arc<AppKeys>>, crate::ApiError> {
        if let Some(keys) = state.gateway().apps.lock().expect("app cache").get(app_id) {
            return Ok(Some(Arc::clone(keys)));
        }
        let id = app_id.to_owned();
        let Some((app, merchant)) = state
            .pool()
            .read(move |sql| {
                let Some(app) = formica_store::merchant::app(sql, &id)? else {
                    return Ok(None);
                };
                let merchant = formica_store::merchant::merchant(sql, app.merchant_id)?;
                Ok(merchant.map(|m| (app, m)))
            })
            .await?
        else {
            return Ok(None);
        };
        let platform = sign::parse_private_key(&app.platform_private_key)
            .and_then(|key| sign::PlatformKey::new(&key))
            .map_err(|e| crate::ApiError::internal(&e))?;
        let merchant_row = merchant;
        let merchant = app
            .public_key
            .as_deref()
            .and_then(|k| sign::parse_public_key(k).ok());
        let keys = Arc::new(AppKeys {
            app,
            platform,
            merchant,
            currency: merchant_row.currency,
        });
        state
            .gateway()
            .apps
            .lock()
            .expect("app cache")
            .insert(app_id.to_owned(), Arc::clone(&keys));
        Ok(Some(keys))
    }

    /// Forgets an app's cached keys (its public key changed).
    pub(crate) fn forget(&self, app_id: &str) {
        self.apps.lock().expect("app cache").remove(app_id);
    }
}

/// A refused gateway request: a documented code and sub_code (§5).
#[derive(Clone, Debug, PartialEq)]
pub struct GatewayError {
    /// `40001`, `40002`, `40004`, ...
    pub code: &'static str,
    /// The sub_code merchants branch on.
    pub sub_code: String,
    /// What went wrong, for people.
    pub sub_msg: String,
    /// Fields some errors carry (a refund's `refund_fee`).
    pub extra: Map<String, Value>,
}

impl GatewayError {
    /// An error with this code and sub code.
    pub fn new(code: &'static str, sub_code: &str, sub_msg: impl Into<String>) -> Self {
        GatewayError {
            code,
            sub_code: sub_code.to_owned(),
            sub_msg: sub_msg.into(),
            extra: Map::new(),
        }
    }

    /// A business refusal (40004).
    pub fn business(sub_code: &str, sub_msg: impl Into<String>) -> Self {
        GatewayError::new("40004", sub_code, sub_msg)
    }

    /// A malformed parameter (40002 isv.invalid-parameter).
    pub fn invalid(sub_msg: impl Into<String>) -> Self {
        GatewayError::new("40002", "isv.invalid-parameter", sub_msg)
    }

    /// A missing common parameter (40001).
    fn missing(name: &str) -> Self {
        let sub_code = match name {
            "app_id" => "isv.missing-app-id",
            "method" => "isv.missing-method",
            "sign" => "isv.missing-signature",
            "sign_type" => "isv.missing-signature-type",
            "timestamp" => "isv.missing-timestamp",
            "version" => "isv.missing-version",
            _ => "isv.missing-parameter",
        };
        GatewayError::new("40001", sub_code, format!("missing {name}"))
    }

    /// With a field added.
    pub fn with(mut self, name: &str, value: impl Into<Value>) -> Self {
        self.extra.insert(name.to_owned(), value.into());
        self
    }

    fn object(&self) -> Map<String, Value> {
        let mut object = Map::new();
        object.insert("code".into(), self.code.into());
        object.insert("msg".into(), message(self.code).into());
        object.insert("sub_code".into(), self.sub_code.clone().into());
        object.insert("sub_msg".into(), self.sub_msg.clone().into());
        object.extend(self.extra.clone());
        object
    }
}

/// The English `msg` of each code.
fn message(code: &str) -> &'static str {
    match code {
        "10000" => "Success",
        "10003" => "Order success pay inprocess",
        "20000" => "Service Currently Unavailable",
        "20001" => "Insufficient Token Permissions",
        "40001" => "Missing Required Arguments",
        "40002" => "Invalid Arguments",
        "40003" => "Insufficient Conditions",
        "40005" => "Call Limited",
        "40006" => "Insufficient Permissions",
        _ => "Business Failed",
    }
}

/// A verified request: who sent it and what it asks.
#[derive(Debug)]
pub struct Request {
    /// The app.
    pub keys: Arc<AppKeys>,
    /// The method.
    pub method: String,
    /// The common parameters and any others, decoded.
    pub params: BTreeMap<String, String>,
    /// `biz_content`, parsed.
    pub biz: Map<String, Value>,
    /// Where the platform answers from (for QR and download links).
    pub base_url: String,
}

impl Request {
    /// A common parameter.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    /// The merchant the app belongs to.
    pub fn merchant(&self) -> formica_core::Id {
        self.keys.app.merchant_id
    }
}

/// The methods the gateway knows.
pub const METHODS: &[&str] = &[
    "alipay.trade.precreate",
    "alipay.trade.pay",
    "alipay.trade.create",
    "alipay.trade.query",
    "alipay.trade.refund",
    "alipay.trade.fastpay.refund.query",
    "alipay.trade.close",
    "alipay.trade.cancel",
    "alipay.trade.page.pay",
    "alipay.trade.wap.pay",
    "alipay.fund.trans.uni.transfer",
    "alipay.fund.auth.order.freeze",
    "alipay.fund.auth.order.app.freeze",
    "alipay.fund.auth.order.unfreeze",
    "alipay.fund.auth.operation.cancel",
    "alipay.fund.auth.operation.detail.query",
    "alipay.data.dataservice.bill.downloadurl.query",
];

/// Whether the method answers with a page for a browser rather than JSON for a program.
fn is_page_flow(method: &str) -> bool {
    matches!(
        method,
        "alipay.trade.page.pay" | "alipay.trade.wap.pay" | "alipay.fund.auth.order.app.freeze"
    )
}

/// `GET|POST /gateway.do`.
pub async fn handle(
    State(state): State<AppState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let started = Instant::now();
    let response = answer(&state, &method, &uri, &headers, &body).await;
    let stats = &state.gateway().stats;
    stats.requests.fetch_add(1, Ordering::Relaxed);
    stats
        .nanos
        .fetch_add(nanos_since(started), Ordering::Relaxed);
    response
}

async fn answer(
    state: &AppState,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &Bytes,
) -> Response {
    let form_body = *method == Method::POST
        && headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_none_or(|v| {
                v.to_ascii_lowercase()
                    .starts_with("application/x-www-form-urlencoded")
            });
    let params = parse_params(uri.query(), form_body.then_some(&body[..]));
    let method_name = match &params {
        Ok(params) => params.get("method").cloned(),
        Err(_) => None,
    };
    let sign_type = params
        .as_ref()
        .ok()
        .and_then(|p| p.get("sign_type"))
        .and_then(|t| SignType::parse(t))
        .unwrap_or(SignType::Rsa2);
    let app_id = params.as_ref().ok().and_then(|p| p.get("app_id")).cloned();
    let keys = match &app_id {
        Some(id) => Gateway::app(state, id).await.ok().flatten(),
        None => None,
    };
    let page = method_name.as_deref().is_some_and(is_page_flow);
    let base_url = state.base_url(headers);
    let result = match params {
        Err(error) => Err(error),
        Ok(params) => match verify(state, params, keys.clone(), &base_url) {
            Err(error) => Err(error),
            Ok(request) => methods::run(state, request).await,
        },
    };
    match result {
        Ok(Answer::Page(response)) => response,
        Ok(Answer::Json(object)) => respond(
            state,
            method_name.as_deref(),
            object,
            keys.as_deref(),
            sign_type,
        ),
        Err(error) if page => checkout::error_page(&error),
        Err(error) => respond(
            state,
            method_name.as_deref(),
            error.object(),
            keys.as_deref(),
            sign_type,
        ),
    }
}

/// What a method answers.
pub enum Answer {
    /// The response object, to go in the signed envelope.
    Json(Map<String, Value>),
    /// A page for the buyer's browser.
    Page(Response),
}

impl std::fmt::Debug for Answer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Answer::Json(object) => f.debug_tuple("Json").field(object).finish(),
            Answer::Page(_) => f.write_str("Page"),
        }
    }
}

/// The signed JSON envelope, HTTP 200 whatever it says (§1.1, §4).
fn respond(
    state: &AppState,
    method: Option<&str>,
    object: Map<String, Value>,
    keys: Option<&AppKeys>,
    sign_type: SignType,
) -> Response {
    let signer = keys.map(|k| (&k.platform, sign_type));
    let signing = Instant::now();
    let body = sign::envelope(method, &Value::Object(object), signer);
    state.gateway().stats.add_rsa(signing);
    (
        [(header::CONTENT_TYPE, "application/json;charset=utf-8")],
        body,
    )
        .into_response()
}

/// Where this server is reached, as the client reached it (behind a TLS proxy,
/// `X-Forwarded-Proto: https`).
pub fn base_url(headers: &HeaderMap) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("localhost");
    let scheme = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .filter(|p| *p == "https")
        .unwrap_or("http");
    format!("{scheme}://{host}")
}

/// The query and form body as one map; a name given twice is refused (§1.1).
pub fn parse_params(
    query: Option<&str>,
    body: Option<&[u8]>,
) -> Result<BTreeMap<String, String>, GatewayError> {
    let mut params = BTreeMap::new();
    let parts = query
        .map(|q| form_urlencoded::parse(q.as_bytes()))
        .into_iter()
        .chain(body.map(form_urlencoded::parse));
    for part in parts {
        for (name, value) in part {
            if params.insert(name.to_string(), value.to_string()).is_some() {
                return Err(GatewayError::invalid(format!(
                    "the parameter {name} is given more than once"
                )));
            }
        }
    }
    Ok(params)
}

/// The checks of §2.4, in order, at the server's time.
fn verify(
    state: &AppState,
    params: BTreeMap<String, String>,
    keys: Option<Arc<AppKeys>>,
    base_url: &str,
) -> Result<Request, GatewayError> {
    let now = i64::try_from(state.now() / 1_000_000_000).unwrap_or(i64::MAX);
    check(params, keys, now, &state.gateway().stats, base_url)
}

/// The checks of §2.4, in order, at `now_seconds` (Unix time): a request this passes is
/// complete, signed by the app's key, recent, for a known method, with a JSON object for
/// `biz_content`. Apart from `stats`, it reads nothing but its arguments, so the fuzz
/// targets run it on hostile forms.
pub fn check(
    params: BTreeMap<String, String>,
    keys: Option<Arc<AppKeys>>,
    now_seconds: i64,
    stats: &GatewayStats,
    base_url: &str,
) -> Result<Request, GatewayError> {
    let get = |name: &str| {
        params
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    };
    for name in [
        "app_id",
        "method",
        "sign_type",
        "sign",
        "timestamp",
        "version",
    ] {
        if get(name).is_none() {
            return Err(GatewayError::missing(name));
        }
    }
    let keys = keys.ok_or_else(|| {
        GatewayError::new("40002", "isv.invalid-app-id", "no app with this app_id")
    })?;
    let Some(merchant_key) = &keys.merchant else {
        return Err(GatewayError::new(
            "40003",
            "isv.missing-signature-config",
            "the app has no public key: upload one first",
        ));
    };
    let sign_type = SignType::parse(get("sign_type").unwrap_or_default()).ok_or_else(|| {
        GatewayError::new("40002", "isv.invalid-signature-type", "use RSA2 or RSA")
    })?;
    if get("charset").is_some_and(|c| !c.eq_ignore_ascii_case("utf-8")) {
        return Err(GatewayError::new(
            "40002",
            "isv.invalid-charset",
            "only utf-8 is supported",
        ));
    }
    if get("format").is_some_and(|f| !f.eq_ignore_ascii_case("json")) {
        return Err(GatewayError::new(
            "40002",
            "isv.invalid-format",
            "only JSON is supported",
        ));
    }
    if get("version") != Some("1.0") {
        return Err(GatewayError::invalid("version must be 1.0"));
    }
    if get("encrypt_type").is_some() {
        return Err(GatewayError::new(
            "40002",
            "isv.invalid-encrypt-type",
            "encrypted biz_content is not supported",
        ));
    }
    let content = sign::content_to_sign(
        params.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        &["sign"],
    );
    let verifying = Instant::now();
    let verified = sign::verify(
        merchant_key,
        sign_type,
        content.as_bytes(),
        get("sign").unwrap_or_default(),
    );
    stats.add_rsa(verifying);
    if !verified {
        // Alipay shows the string it verified, which is what an integrator needs to debug.
        return Err(GatewayError::new(
            "40002",
            "isv.invalid-signature",
            format!("the signature does not verify; the string verified was: {content}"),
        ));
    }
    let timestamp = time::parse(get("timestamp").unwrap_or_default()).ok_or_else(|| {
        GatewayError::new(
            "40002",
            "isv.invalid-timestamp",
            "timestamp must be yyyy-MM-dd HH:mm:ss",
        )
    })?;
    if timestamp.abs_diff(now_seconds) > TIMESTAMP_WINDOW_SECONDS.unsigned_abs() {
        return Err(GatewayError::new(
            "40002",
            "isv.invalid-timestamp",
            "the timestamp is too far from the platform's time",
        ));
    }
    let method = get("method").unwrap_or_default().to_owned();
    if !METHODS.contains(&method.as_str()) {
        return Err(GatewayError::new(
            "40002",
            "isv.invalid-method",
            format!("unknown method {method}"),
        ));
    }
    if get("app_auth_token").is_some() {
        return Err(GatewayError::new(
            "20001",
            "aop.invalid-app-auth-token",
            "acting for another merchant is not supported",
        ));
    }
    let biz = match get("biz_content") {
        None => Map::new(),
        Some(text) => match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(map)) => map,
            _ => return Err(GatewayError::invalid("biz_content is not a JSON object")),
        },
    };
    Ok(Request {
        keys,
        method,
        params,
        biz,
        base_url: base_url.to_owned(),
    })
}

/// A page with this status and HTML, which no other site may frame (it takes passwords and
/// PINs) or fill with scripts of its own.
pub(crate) fn html(status: axum::http::StatusCode, body: String) -> Response {
    (
        status,
        [
            (
                header::CONTENT_SECURITY_POLICY,
                // No `form-action`: browsers apply it to the redirect back to the
                // merchant's return_url too.
                "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'",
            ),
            (header::X_FRAME_OPTIONS, "DENY"),
            (header::REFERRER_POLICY, "no-referrer"),
        ],
        Html(body),
    )
        .into_response()
}
