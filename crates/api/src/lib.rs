//! Formica's HTTP edge. Today: `/healthz` and Prometheus `/metrics`; the REST API (`/v1`) and
//! the Alipay-compatible gateway (`/gateway.do`) come with the products.

mod metrics;

use axum::Router;
use axum::routing::get;
use formica_engine::Engine;

/// What every handler can reach.
#[derive(Clone, Debug)]
pub struct AppState {
    /// The books' single writer.
    pub engine: Engine,
}

/// The server's routes.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics::render))
        .with_state(state)
}

/// Alive and serving: the writer answers between batches.
async fn healthz() -> &'static str {
    "ok\n"
}
