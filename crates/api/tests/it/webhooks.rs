//! Webhooks: delivered at least once, signed, retried while the endpoint fails.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode};
use formica_testkit::Backend;
use hmac::{Hmac, Mac};
use serde_json::json;
use sha2::Sha256;

use crate::app::{App, PIN, SECOND};

/// A receiver that fails its first `failures` calls, then takes every call, checking each
/// signature. Returns its URL and the bodies it took.
fn receiver(
    app: &App,
    failures: usize,
    secret: Arc<std::sync::Mutex<String>>,
) -> (String, Arc<std::sync::Mutex<Vec<serde_json::Value>>>) {
    let calls = Arc::new(AtomicUsize::new(0));
    let taken = Arc::new(std::sync::Mutex::new(Vec::new()));
    let kept = Arc::clone(&taken);
    let route = axum::routing::post(move |headers: HeaderMap, body: String| {
        let calls = Arc::clone(&calls);
        let taken = Arc::clone(&kept);
        let secret = Arc::clone(&secret);
        async move {
            if calls.fetch_add(1, Ordering::SeqCst) < failures {
                return StatusCode::INTERNAL_SERVER_ERROR;
            }
            let signature = headers["Formica-Signature"].to_str().expect("ascii");
            let (t, v1) = signature
                .strip_prefix("t=")
                .and_then(|rest| rest.split_once(",v1="))
                .expect("t=...,v1=...");
            let mut mac = Hmac::<Sha256>::new_from_slice(secret.lock().expect("lock").as_bytes())
                .expect("any key");
            mac.update(format!("{t}.{body}").as_bytes());
            if hex::encode(mac.finalize().into_bytes()) != v1 {
                return StatusCode::UNAUTHORIZED;
            }
            taken
                .lock()
                .expect("lock")
                .push(serde_json::from_str(&body).expect("JSON"));
            StatusCode::OK
        }
    });
    let router = axum::Router::new().route("/hook", route);
    let url = format!("http://{}/hook", crate::app::serve_local(router));
    let _ = app;
    (url, taken)
}

pub fn webhook_to_a_failing_endpoint_is_retried_until_it_recovers(backend: Backend) {
    let app = App::start(backend);
    let alice = app.person("alice@example.com", "300.00");
    let bob = app.person("bob@example.com", "0");
    let secret = Arc::new(std::sync::Mutex::new(String::new()));
    let (url, taken) = receiver(&app, 2, Arc::clone(&secret));
    let endpoint = app.post(
        "/v1/webhook-endpoints",
        &bob.token,
        None,
        json!({"url": url}),
    );
    assert_eq!(endpoint.status, 201, "{endpoint:?}");
    *secret.lock().expect("lock") = endpoint.body["secret"]
        .as_str()
        .expect("a secret")
        .to_owned();
    let endpoint_id = endpoint.body["id"].as_str().expect("an id").to_owned();
    let sent = app.post(
        "/v1/transfers",
        &alice.token,
        Some("t"),
        json!({"to": {"user_id": bob.id}, "amount": {"amount": "5.00", "currency": "CNY"},
               "note": "for the hook", "pin": PIN}),
    );
    assert_eq!(sent.status, 201);
    let deliveries = format!("/v1/webhook-endpoints/{endpoint_id}/deliveries");
    let attempts = |app: &App| {
        let page = app.get(&deliveries, &bob.token);
        page.body["data"][0].clone()
    };
    // First attempt fails (500): the delivery waits for its retry.
    let delivery = wait_for(|| {
        let d = attempts(&app);
        (d["attempts"].as_i64() == Some(1)).then_some(d)
    });
    assert_eq!(delivery["status"], "pending");
    assert_eq!(delivery["last_status"], 500);
    // The retries come as the clock passes their time: 10 s, then 20 s.
    app.clock.advance(10 * SECOND);
    wait_for(|| (attempts(&app)["attempts"].as_i64() == Some(2)).then_some(()));
    app.clock.advance(20 * SECOND);
    let delivered = wait_for(|| {
        let d = attempts(&app);
        (d["status"] == "delivered").then_some(d)
    });
    assert_eq!(delivered["attempts"], 3);
    let bodies = taken.lock().expect("lock").clone();
    assert_eq!(bodies.len(), 1);
    assert_eq!(bodies[0]["topic"], "transfer.received");
    assert_eq!(bodies[0]["data"]["note"], "for the hook");
    assert_eq!(bodies[0]["data"]["amount"]["amount"], "5.00");
    app.finish();
}

pub fn a_hanging_endpoint_does_not_hold_up_other_peoples_webhooks(backend: Backend) {
    // Regression: deliveries went one after another, so one person's endpoint that hung held
    // up everyone's webhooks for as long as each request could take.
    let app = App::start(backend);
    let alice = app.person("alice@example.com", "300.00");
    let bob = app.person("bob@example.com", "0");
    let carol = app.person("carol@example.com", "0");
    let released = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let holding = Arc::clone(&released);
    let hanging = axum::routing::post(move || {
        let holding = Arc::clone(&holding);
        async move {
            while !holding.load(Ordering::SeqCst) {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            StatusCode::OK
        }
    });
    let hanging = format!(
        "http://{}/hook",
        crate::app::serve_local(axum::Router::new().route("/hook", hanging))
    );
    let secret = Arc::new(std::sync::Mutex::new(String::new()));
    let (url, taken) = receiver(&app, 0, Arc::clone(&secret));
    let mut bobs = String::new();
    for (person, url) in [(&bob, hanging), (&carol, url)] {
        let endpoint = app.post(
            "/v1/webhook-endpoints",
            &person.token,
            None,
            json!({"url": url}),
        );
        assert_eq!(endpoint.status, 201, "{endpoint:?}");
        if person.id == carol.id {
            *secret.lock().expect("lock") = endpoint.body["secret"]
                .as_str()
                .expect("a secret")
                .to_owned();
        } else {
            bobs = endpoint.body["id"].as_str().expect("an id").to_owned();
        }
    }
    for (n, person) in [&bob, &carol].into_iter().enumerate() {
        let sent = app.post(
            "/v1/transfers",
            &alice.token,
            Some(&format!("t{n}")),
            json!({"to": {"user_id": person.id}, "amount": {"amount": "1.00", "currency": "CNY"},
                   "pin": PIN}),
        );
        assert_eq!(sent.status, 201, "{sent:?}");
    }
    // Carol hears while Bob's endpoint still holds its request: his first attempt has not
    // even ended (one after another, hers would wait for his to time out).
    wait_for(|| (!taken.lock().expect("lock").is_empty()).then_some(()));
    let bobs = app.get(
        &format!("/v1/webhook-endpoints/{bobs}/deliveries"),
        &bob.token,
    );
    assert_eq!(bobs.body["data"][0]["attempts"], 0, "{bobs:?}");
    released.store(true, Ordering::SeqCst);
    app.finish();
}

fn wait_for<T>(mut check: impl FnMut() -> Option<T>) -> T {
    for _ in 0..1000 {
        if let Some(found) = check() {
            return found;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("never happened");
}
