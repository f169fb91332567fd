//! `/metrics` in the Prometheus text format: the engine's counters (batches, events, commit
//! time, checkpoints, queue depth) and the HTTP requests served (count and latency histogram
//! per route and status).

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::Ordering;

use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::AppState;

/// Upper bounds of the latency histogram's buckets, in seconds (written as Prometheus reads
/// them) and in nanoseconds.
const BUCKETS: [(&str, u64); 10] = [
    ("0.001", 1_000_000),
    ("0.0025", 2_500_000),
    ("0.005", 5_000_000),
    ("0.01", 10_000_000),
    ("0.025", 25_000_000),
    ("0.05", 50_000_000),
    ("0.1", 100_000_000),
    ("0.25", 250_000_000),
    ("1", 1_000_000_000),
    ("5", 5_000_000_000),
];

/// Requests served, per (method, route, status).
#[derive(Debug, Default)]
pub(crate) struct HttpMetrics(
    Mutex<BTreeMap<(String, String, u16), Series>>,
    /// Requests being handled now (refused ones included until they are answered).
    pub(crate) std::sync::atomic::AtomicU64,
);

#[derive(Debug, Default)]
struct Series {
    count: u64,
    nanos: u64,
    buckets: [u64; BUCKETS.len()],
}

/// Counts each request and its latency under its route template (not its raw path, so that
/// ids do not make a series each).
pub(crate) async fn track(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let started = std::time::Instant::now();
    let method = request.method().to_string();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |path| path.as_str().to_owned());
    let http = &state.inner.http;
    http.1.fetch_add(1, Ordering::Relaxed);
    let response = next.run(request).await;
    http.1.fetch_sub(1, Ordering::Relaxed);
    let nanos = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
    let mut series = state
        .inner
        .http
        .0
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    // The access log names the route's template, never the raw path or its query (which
    // can carry a signed link's token).
    tracing::info!(
        target: "formica::http",
        method = %method,
        route = %route,
        status = response.status().as_u16(),
        micros = nanos / 1_000,
        "request"
    );
    let entry = series
        .entry((method, route, response.status().as_u16()))
        .or_default();
    entry.count += 1;
    entry.nanos = entry.nanos.saturating_add(nanos);
    for (bucket, (_, bound)) in entry.buckets.iter_mut().zip(BUCKETS) {
        if nanos <= bound {
            *bucket += 1;
        }
    }
    response
}

fn render_http(metrics: &HttpMetrics, body: &mut String) {
    let series = metrics
        .0
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let _ = writeln!(
        body,
        "# HELP formica_http_requests_in_flight HTTP requests being handled.\n\
         # TYPE formica_http_requests_in_flight gauge\n\
         formica_http_requests_in_flight {}",
        metrics.1.load(Ordering::Relaxed)
    );
    let _ = writeln!(
        body,
        "# HELP formica_http_requests_total HTTP requests served.\n\
         # TYPE formica_http_requests_total counter"
    );
    for ((method, route, status), s) in series.iter() {
        let _ = writeln!(
            body,
            "formica_http_requests_total{{method=\"{method}\",route=\"{route}\",status=\"{status}\"}} {}",
            s.count
        );
    }
    let _ = writeln!(
        body,
        "# HELP formica_http_request_seconds Time to answer HTTP requests.\n\
         # TYPE formica_http_request_seconds histogram"
    );
    for ((method, route, status), s) in series.iter() {
        let labels = format!("method=\"{method}\",route=\"{route}\",status=\"{status}\"");
        for ((le, _), count) in BUCKETS.iter().zip(s.buckets) {
            let _ = writeln!(
                body,
                "formica_http_request_seconds_bucket{{{labels},le=\"{le}\"}} {count}"
            );
        }
        let _ = writeln!(
            body,
            "formica_http_request_seconds_bucket{{{labels},le=\"+Inf\"}} {}\n\
             formica_http_request_seconds_sum{{{labels}}} {}.{:09}\n\
             formica_http_request_seconds_count{{{labels}}} {}",
            s.count,
            s.nanos / 1_000_000_000,
            s.nanos % 1_000_000_000,
            s.count
        );
    }
}

/// Renders the engine's counters.
pub(crate) async fn render(State(state): State<AppState>) -> impl IntoResponse {
    let stats = state.engine().stats();
    let load = |counter: &std::sync::atomic::AtomicU64| counter.load(Ordering::Relaxed);
    let count = |counter: &std::sync::atomic::AtomicU64| load(counter).to_string();
    // Exact decimal seconds from integer nanoseconds.
    let seconds = |counter: &std::sync::atomic::AtomicU64| {
        let nanos = load(counter);
        format!("{}.{:09}", nanos / 1_000_000_000, nanos % 1_000_000_000)
    };
    let gateway = &state.gateway().stats;
    let series: [(&str, &str, &str, String); 13] = [
        (
            "formica_gateway_requests_total",
            "counter",
            "Open gateway requests answered.",
            count(&gateway.requests),
        ),
        (
            "formica_gateway_seconds_total",
            "counter",
            "Time spent answering open gateway requests.",
            seconds(&gateway.nanos),
        ),
        (
            "formica_gateway_rsa_seconds_total",
            "counter",
            "Of that, time spent verifying and making RSA signatures.",
            seconds(&gateway.rsa_nanos),
        ),
        (
            "formica_engine_batches_total",
            "counter",
            "Batches committed.",
            count(&stats.batches),
        ),
        (
            "formica_engine_events_total",
            "counter",
            "Ledger events committed.",
            count(&stats.events),
        ),
        (
            "formica_engine_failed_batches_total",
            "counter",
            "Batches whose commit failed (their callers got an error).",
            count(&stats.failed_batches),
        ),
        (
            "formica_engine_commit_seconds_total",
            "counter",
            "Time spent committing batches.",
            seconds(&stats.commit_nanos),
        ),
        (
            "formica_engine_largest_batch_events",
            "gauge",
            "The most ledger events one committed batch held.",
            count(&stats.largest_batch_events),
        ),
        (
            "formica_engine_cached_transfers",
            "gauge",
            "Transfers the books hold in memory (open holds, and settled ones until swept).",
            count(&stats.cached_transfers),
        ),
        (
            "formica_engine_checkpoints_total",
            "counter",
            "Balance checkpoints written.",
            count(&stats.checkpoints),
        ),
        (
            "formica_engine_checkpoint_seconds_total",
            "counter",
            "Time spent writing checkpoints.",
            seconds(&stats.checkpoint_nanos),
        ),
        (
            "formica_engine_unsaved_balances",
            "gauge",
            "Accounts whose balances no checkpoint has written yet.",
            count(&stats.unsaved_balances),
        ),
        (
            "formica_engine_queue_depth",
            "gauge",
            "Commands waiting for the writer.",
            count(&stats.queue_depth),
        ),
    ];
    let mut body = String::new();
    for (name, kind, help, value) in series {
        // Writing to a String cannot fail.
        let _ = writeln!(
            body,
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
        );
    }
    render_http(&state.inner.http, &mut body);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body)
}
