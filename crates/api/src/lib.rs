//! Formica's HTTP edge: the REST API at `/v1` (JSON, one error shape, idempotency keys,
//! cursor pages, an OpenAPI 3.1 document at `/v1/openapi.json` and a docs page at `/docs`),
//! `/healthz` and Prometheus `/metrics`. Handlers hold no business rule: they authenticate,
//! parse, submit a command to the engine or read the store, and render.

pub mod auth;
pub mod body;
pub mod credit;
pub mod credit_line;
pub mod error;
pub mod fund;
pub mod hold;
// The fuzz targets' properties (`fuzz/`), public for them and the seed tests only.
#[doc(hidden)]
pub mod fuzzing;
pub mod gateway;
pub mod idempotency;
pub mod listen;
pub mod merchant;
mod metrics;
mod openapi;
pub mod page;
pub mod people;
pub mod pool;
mod server;
pub mod trade;
pub mod wallet;
pub mod webhook;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post, put};
use formica_engine::Engine;
use formica_engine::bank::BankChannel;
use formica_store::Location;

pub use crate::error::{ApiError, CODES};
pub use crate::openapi::ApiDoc;
pub use crate::people::normalize_login;
use crate::pool::Pool;
pub use crate::server::{Server, ServerConfig};

/// What every handler can reach.
#[derive(Clone, Debug)]
pub struct AppState {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    engine: Engine,
    pool: Pool,
    bank: Arc<dyn BankChannel>,
    http: metrics::HttpMetrics,
    /// Whether webhook endpoints may be private or loopback addresses (tests, closed
    /// networks); refused by default, so that the platform is not a way into its own network.
    private_webhooks: bool,
    /// The open gateway's key cache and link secret.
    gateway: gateway::Gateway,
    /// Bank movements already sent to the bank by this process.
    sent: std::sync::Mutex<std::collections::HashSet<formica_core::Id>>,
    /// Where people reach the server, if configured.
    public_url: Option<String>,
    /// Requests in flight and how long one may take.
    limits: Limits,
}

/// What the server takes at once: beyond `in_flight` requests it answers 503 `overloaded`
/// at once instead of queueing them (so a rush degrades into quick refusals a client can
/// retry, not into timeouts for everyone), and a request that takes longer than
/// `request_timeout` (a client trickling its body, say) is answered 408 `request_timeout`;
/// beyond `connections` open connections a new one is answered 503 and closed, and a
/// connection whose request head takes longer than `header_timeout` is closed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Requests handled at once.
    pub in_flight: usize,
    /// How long one request may take, its body's arrival included.
    pub request_timeout: std::time::Duration,
    /// Connections open at once (see `listen::serve`).
    pub connections: usize,
    /// How long a client may take to send a request's head (see `listen::serve`).
    pub header_timeout: std::time::Duration,
}

/// Requests handled at once by default.
pub const IN_FLIGHT_DEFAULT: usize = 4096;

/// Connections open at once by default (the process needs as many file descriptors:
/// `ulimit -n`).
pub const CONNECTIONS_DEFAULT: usize = 8192;

impl Default for Limits {
    fn default() -> Self {
        Limits {
            in_flight: IN_FLIGHT_DEFAULT,
            request_timeout: std::time::Duration::from_secs(30),
            connections: CONNECTIONS_DEFAULT,
            header_timeout: std::time::Duration::from_secs(10),
        }
    }
}

impl AppState {
    /// The state of a server whose engine writes the store at `location`, moving money in and
    /// out through `bank`.
    pub fn new(
        engine: Engine,
        location: Location,
        bank: Arc<dyn BankChannel>,
        private_webhooks: bool,
    ) -> Self {
        AppState {
            inner: Arc::new(Inner {
                engine,
                pool: Pool::new(location),
                bank,
                http: metrics::HttpMetrics::default(),
                private_webhooks,
                gateway: gateway::Gateway::default(),
                sent: std::sync::Mutex::default(),
                public_url: None,
                limits: Limits::default(),
            }),
        }
    }

    /// With the address people reach the server at (links in QR codes, statements).
    pub fn with_public_url(self, public_url: Option<String>) -> Self {
        let Ok(mut inner) = Arc::try_unwrap(self.inner) else {
            unreachable!("a new state has one handle");
        };
        inner.public_url = public_url.map(|url| url.trim_end_matches('/').to_owned());
        AppState {
            inner: Arc::new(inner),
        }
    }

    /// HTTP requests being handled now.
    pub fn requests_in_flight(&self) -> u64 {
        self.inner.http.1.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The limits the server runs with.
    pub fn limits(&self) -> Limits {
        self.inner.limits
    }

    /// With these limits on requests in flight and their time.
    pub fn with_limits(self, limits: Limits) -> Self {
        let Ok(mut inner) = Arc::try_unwrap(self.inner) else {
            unreachable!("a new state has one handle");
        };
        inner.limits = limits;
        AppState {
            inner: Arc::new(inner),
        }
    }

    /// The address a caller reached the server at: the configured public URL, else the
    /// request's `Host` (and `X-Forwarded-Proto: https` behind a TLS proxy).
    pub fn base_url(&self, headers: &axum::http::HeaderMap) -> String {
        match &self.inner.public_url {
            Some(url) => url.clone(),
            None => gateway::base_url(headers),
        }
    }

    /// The books' single writer.
    pub fn engine(&self) -> &Engine {
        &self.inner.engine
    }

    /// Connections for reads and plain writes.
    pub fn pool(&self) -> &Pool {
        &self.inner.pool
    }

    /// The bank channel.
    pub fn bank(&self) -> &dyn BankChannel {
        self.inner.bank.as_ref()
    }

    /// The engine's time (a manual clock in tests), in nanoseconds.
    pub fn now(&self) -> u64 {
        self.inner.engine.clock().now()
    }

    /// The open gateway's shared state.
    pub fn gateway(&self) -> &gateway::Gateway {
        &self.inner.gateway
    }

    /// Sends a movement to the bank unless this process already did (requests are
    /// idempotent by movement id, but need not be repeated).
    pub fn send_to_bank(&self, request: formica_engine::bank::BankRequest) {
        let fresh = self
            .inner
            .sent
            .lock()
            .expect("sent set")
            .insert(request.movement_id);
        if fresh {
            self.bank().send(request);
        }
    }

    /// Forgets movements that are no longer open.
    pub(crate) fn keep_sent(&self, open: &std::collections::HashSet<formica_core::Id>) {
        self.inner
            .sent
            .lock()
            .expect("sent set")
            .retain(|id| open.contains(id));
    }

    fn private_webhooks(&self) -> bool {
        self.inner.private_webhooks
    }
}

/// Creates an operator (an account that decides disputes and checks identities): for
/// `formica demo`, `formica admin`, and tests.
pub async fn create_operator(
    state: &AppState,
    login: &str,
    password: &str,
) -> Result<formica_core::Id, ApiError> {
    let user = people::create_person(state, login, password, None, "operator").await?;
    Ok(user.id)
}

/// The server's routes.
pub fn router(state: AppState) -> Router {
    router_with(state, Router::new())
}

/// The server's routes with `pages` (the `web` crate's) beside them, behind the same request
/// metrics.
pub fn router_with(state: AppState, pages: Router<AppState>) -> Router {
    let limits = state.inner.limits;
    let v1 = Router::new()
        .route("/users", post(people::sign_up))
        .route("/users/{id}/verification", post(people::verify))
        .route("/sessions", post(people::sign_in))
        .route("/sessions/current", axum::routing::delete(people::sign_out))
        .route("/me", get(people::me))
        .route("/me/pin", put(people::set_pin))
        .route("/wallet", get(wallet::balances))
        .route("/wallet/entries", get(wallet::entries))
        .route("/cards", post(wallet::add_card).get(wallet::cards))
        .route("/top-ups", post(wallet::top_up))
        .route("/withdrawals", post(wallet::withdraw))
        .route("/movements", get(wallet::movements))
        .route("/movements/{id}", get(wallet::movement))
        .route("/transfers", post(wallet::transfer).get(wallet::transfers))
        .route("/transfers/{id}", get(wallet::transfer_one))
        .route("/trades", post(trade::create).get(trade::list))
        .route("/trades/{id}", get(trade::get_one))
        .route("/trades/{id}/pay", post(trade::pay))
        .route("/trades/{id}/ship", post(trade::ship))
        .route("/trades/{id}/confirm", post(trade::confirm))
        .route("/trades/{id}/close", post(trade::close))
        .route("/trades/{id}/refund-request", post(trade::request_refund))
        .route(
            "/trades/{id}/refund-request/agree",
            post(trade::agree_refund),
        )
        .route(
            "/trades/{id}/refund-request/refuse",
            post(trade::refuse_refund),
        )
        .route("/trades/{id}/decision", post(trade::decide))
        .route("/disputes", get(trade::disputes))
        .route(
            "/webhook-endpoints",
            post(webhook::create).get(webhook::list),
        )
        .route(
            "/webhook-endpoints/{id}/deliveries",
            get(webhook::deliveries),
        )
        .route("/wallet/payment-code", post(merchant::payment_code))
        .route("/merchants", post(merchant::create).get(merchant::list))
        .route("/merchants/{id}", get(merchant::get_one))
        .route(
            "/merchants/{id}/apps",
            post(merchant::create_app).get(merchant::apps),
        )
        .route(
            "/merchants/{id}/trades",
            get(merchant::trades).post(merchant::create_trade),
        )
        .route(
            "/merchants/{id}/trades/{trade}/refunds",
            post(merchant::refund),
        )
        .route("/merchants/{id}/settlements", get(merchant::settlements))
        .route(
            "/merchants/{id}/notifications",
            get(merchant::notifications),
        )
        .route("/merchants/{id}/statement", get(merchant::statement))
        .route("/merchants/{id}/fee-rate", put(merchant::set_fee_rate))
        .route("/apps/{app_id}/public-key", put(merchant::set_public_key))
        .route("/apps/{app_id}/platform-key", get(merchant::platform_key))
        .route("/funds", post(fund::create).get(fund::list))
        .route("/funds/{id}", get(fund::report))
        .route("/funds/{id}/subscriptions", post(fund::subscribe))
        .route("/funds/{id}/redemptions", post(fund::redeem))
        .route("/funds/{id}/holding", get(fund::holding))
        .route("/funds/{id}/incomes", post(fund::post_income))
        .route("/holidays", put(fund::set_holidays).get(fund::holidays))
        .route("/credit/score", get(credit::score))
        .route(
            "/credit/consents",
            get(credit::consents).post(credit::grant),
        )
        .route(
            "/credit/consents/{merchant_id}",
            axum::routing::delete(credit::withdraw),
        )
        .route("/merchants/{id}/credit-checks", post(credit::check))
        .route("/merchants/{id}/consents", get(credit::merchant_consents))
        .route(
            "/merchants/{id}/holds",
            post(hold::request).get(hold::merchant_holds),
        )
        .route("/holds", get(hold::mine))
        .route("/holds/{id}", get(hold::get_one))
        .route("/holds/{id}/authorize", post(hold::authorize))
        .route("/holds/{id}/charge", post(hold::charge))
        .route("/holds/{id}/unfreeze", post(hold::unfreeze))
        .route("/debts", get(hold::debts))
        .route("/debts/{id}/repay", post(hold::repay))
        .route(
            "/credit/funding",
            post(hold::add_funding).get(hold::funding),
        )
        .route("/debts/overdue", get(hold::overdue))
        .route(
            "/credit/line",
            post(credit_line::open).get(credit_line::get_line),
        )
        .route("/credit/line/statements", get(credit_line::statements))
        .route("/credit/line/repay", post(credit_line::repay))
        .route("/credit/line/instalments", post(credit_line::instalments))
        .route("/credit/lines/overdue", get(credit_line::overdue))
        .route(
            "/credit/policy",
            get(credit_line::policy).put(credit_line::set_policy),
        )
        .route("/openapi.json", get(openapi::document))
        .fallback(not_found);
    Router::new()
        .nest("/v1", v1)
        .route("/docs", get(openapi::docs_page))
        .route("/gateway.do", get(gateway::handle).post(gateway::handle))
        .route(
            "/bills/{merchant}/{from}/{to}",
            get(gateway::bill::download),
        )
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics::render))
        .merge(pages)
        .layer(DefaultBodyLimit::max(body::BODY_MAX_BYTES))
        // Inside the time limit, so that a body that trickles in is still answered 408.
        .layer(axum::middleware::from_fn(body::read_first))
        // Inside the metrics, so that refusals are counted too.
        .layer(
            tower::ServiceBuilder::new()
                .layer(axum::error_handling::HandleErrorLayer::new(refused))
                .load_shed()
                // One count for the whole server (`Router::layer` wraps each route).
                .layer(tower::limit::GlobalConcurrencyLimitLayer::new(
                    limits.in_flight,
                ))
                .timeout(limits.request_timeout),
        )
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            metrics::track,
        ))
        .layer(axum::middleware::from_fn(body::close_if_unread))
        .with_state(state)
}

/// The answer to a request the limits refused: too many in flight, or too slow.
async fn refused(error: tower::BoxError) -> ApiError {
    if error.is::<tower::load_shed::error::Overloaded>() {
        ApiError::new(
            "overloaded",
            "too many requests at once: try again in a moment",
        )
    } else if error.is::<tower::timeout::error::Elapsed>() {
        ApiError::new("request_timeout", "the request took too long")
    } else {
        ApiError::new("internal", "the request could not be served")
    }
}

/// Alive and serving: the writer answers between batches.
async fn healthz() -> &'static str {
    "ok\n"
}

async fn not_found() -> ApiError {
    ApiError::new("not_found", "no such resource")
}
