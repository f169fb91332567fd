//! `/metrics` in the Prometheus text format: the engine's counters (batches, events, commit
//! time, checkpoints, queue depth).

use std::fmt::Write;
use std::sync::atomic::Ordering;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;

use crate::AppState;

/// Renders the engine's counters.
pub(crate) async fn render(State(state): State<AppState>) -> impl IntoResponse {
    let stats = state.engine.stats();
    let load = |counter: &std::sync::atomic::AtomicU64| counter.load(Ordering::Relaxed);
    let count = |counter: &std::sync::atomic::AtomicU64| load(counter).to_string();
    // Exact decimal seconds from integer nanoseconds.
    let seconds = |counter: &std::sync::atomic::AtomicU64| {
        let nanos = load(counter);
        format!("{}.{:09}", nanos / 1_000_000_000, nanos % 1_000_000_000)
    };
    let series: [(&str, &str, &str, String); 8] = [
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
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body)
}
