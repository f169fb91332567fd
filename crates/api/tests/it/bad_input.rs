//! Bad input: each gets its error code, and nothing changes.

use formica_testkit::Backend;
use serde_json::json;

use crate::app::{App, PIN};

pub fn bad_input_gets_its_code_and_changes_nothing(backend: Backend) {
    let app = App::start(backend);
    let alice = app.person("alice@example.com", "300.00");
    let bob = app.person("bob@example.com", "0");
    let transfer = |amount: serde_json::Value| {
        json!({"to": {"user_id": bob.id}, "amount": amount, "pin": PIN}).to_string()
    };
    let cny = |text: &str| json!({"amount": text, "currency": "CNY"});
    let cases: Vec<(&str, String, &str, Option<&str>)> = vec![
        (
            "negative",
            transfer(cny("-1.00")),
            "invalid_amount",
            Some("amount"),
        ),
        (
            "zero",
            transfer(cny("0.00")),
            "amount_not_positive",
            Some("amount"),
        ),
        (
            "fractional cent",
            transfer(cny("1.001")),
            "amount_too_precise",
            Some("amount"),
        ),
        (
            "overflowing",
            transfer(cny("99999999999999999999")),
            "amount_too_large",
            Some("amount"),
        ),
        (
            "float",
            transfer(json!({"amount": 1.5, "currency": "CNY"})),
            "invalid_field",
            Some("amount.amount"),
        ),
        (
            "unknown currency",
            transfer(json!({"amount": "1.00", "currency": "XXX"})),
            "unknown_currency",
            Some("currency"),
        ),
        (
            "a currency without a wallet",
            transfer(json!({"amount": "1.00", "currency": "USD"})),
            "wallet_not_found",
            None,
        ),
        (
            "more than held",
            transfer(cny("300.01")),
            "insufficient_funds",
            None,
        ),
        (
            "wrong PIN",
            json!({"to": {"user_id": bob.id}, "amount": cny("1.00"), "pin": "111111"}).to_string(),
            "pin_incorrect",
            Some("pin"),
        ),
        (
            "to oneself",
            json!({"to": {"user_id": alice.id}, "amount": cny("1.00"), "pin": PIN}).to_string(),
            "same_person",
            None,
        ),
        (
            "to nobody",
            json!({"to": {"login": "nobody@example.com"}, "amount": cny("1.00"), "pin": PIN})
                .to_string(),
            "payee_not_found",
            Some("to"),
        ),
        (
            "malformed JSON",
            "{\"to\": ".to_owned(),
            "malformed_json",
            None,
        ),
        (
            "unknown field",
            json!({"to": {"user_id": bob.id}, "amount": cny("1.00"), "pin": PIN, "tip": 1})
                .to_string(),
            "unknown_field",
            Some("tip"),
        ),
        (
            "missing field",
            json!({"to": {"user_id": bob.id}, "pin": PIN}).to_string(),
            "missing_field",
            Some("amount"),
        ),
    ];
    for (index, (name, body, code, field)) in cases.into_iter().enumerate() {
        let key = format!("bad-{index}");
        let answer = app.send(
            "POST",
            "/v1/transfers",
            Some(&alice.token),
            Some(&key),
            Some(&body),
        );
        assert_eq!(answer.code(), code, "{name}: {answer:?}");
        assert!(answer.status >= 400, "{name}");
        if let Some(field) = field {
            assert_eq!(answer.body["error"]["field"], field, "{name}");
        }
        assert_eq!(app.available(&alice), "300.00", "{name} changed nothing");
        assert_eq!(app.available(&bob), "0.00", "{name} changed nothing");
    }
    let oversized = app.send_oversized("/v1/transfers", &alice.token, 10 * 1024 * 1024);
    assert_eq!(oversized.code(), "body_too_large", "{oversized:?}");
    assert_eq!(oversized.status, 413);
    let no_key = app.post(
        "/v1/transfers",
        &alice.token,
        None,
        json!({"to": {"user_id": bob.id}, "amount": cny("1.00"), "pin": PIN}),
    );
    assert_eq!(no_key.code(), "idempotency_key_required");
    let first = app.post(
        "/v1/transfers",
        &alice.token,
        Some("reused"),
        json!({"to": {"user_id": bob.id}, "amount": cny("1.00"), "pin": PIN}),
    );
    assert_eq!(first.status, 201);
    let reused = app.post(
        "/v1/transfers",
        &alice.token,
        Some("reused"),
        json!({"to": {"user_id": bob.id}, "amount": cny("2.00"), "pin": PIN}),
    );
    assert_eq!(reused.status, 409);
    assert_eq!(reused.code(), "idempotency_key_reused");
    assert_eq!(app.available(&bob), "1.00");
    let anonymous = app.send("GET", "/v1/wallet", None, None, None);
    assert_eq!(anonymous.code(), "unauthenticated");
    let forged = app.send("GET", "/v1/wallet", Some("not-a-token"), None, None);
    assert_eq!(forged.code(), "unauthenticated");
    app.finish();
}
