//! The pocket-money fund over REST: an operator defines it, a person subscribes and redeems
//! with the PIN, the operator and the fund's manager post daily incomes (each day once, in
//! order, once it is over), earnings arrive as new units, and the report reconciles.

use formica_testkit::Backend;
use serde_json::json;

use crate::app::{App, DAY, PIN};

pub fn fund_subscribe_earn_and_redeem(backend: Backend) {
    let app = App::start(backend);
    let operator = app.operator();
    let manager = app.person("fund@example.com", "1000.00");
    let alice = app.person("+8613800000001", "20000.00");
    let made = app.post(
        "/v1/funds",
        &operator.token,
        None,
        json!({"name": "Pocket", "currency": "CNY", "manager": {"login": "fund@example.com"}}),
    );
    assert_eq!(made.status, 201, "{made:?}");
    assert_eq!(made.body["instant_limit"]["amount"], "10000.00");
    let fund = made.body["id"].as_str().expect("an id").to_owned();
    // Only operators define funds.
    let refused = app.post(
        "/v1/funds",
        &alice.token,
        None,
        json!({"name": "Mine", "currency": "CNY", "manager": {"login": "fund@example.com"}}),
    );
    assert_eq!(refused.status, 403, "{refused:?}");
    // Friday 20:00 is after the cut-off: Monday's trade, confirmed Tuesday 2027-01-19.
    let path = format!("/v1/funds/{fund}/subscriptions");
    let body = json!({"amount": {"amount": "10000.00", "currency": "CNY"}, "pin": PIN});
    let bought = app.post(&path, &alice.token, Some("buy-1"), body.clone());
    assert_eq!(bought.status, 201, "{bought:?}");
    assert_eq!(bought.body["confirm_day"], 20_837);
    // A retry with the same key buys once.
    let again = app.post(&path, &alice.token, Some("buy-1"), body);
    assert_eq!(again.body["id"], bought.body["id"]);
    assert_eq!(app.available(&alice), "10000.00");
    let redeem = format!("/v1/funds/{fund}/redemptions");
    let early = app.post(
        &redeem,
        &alice.token,
        Some("early"),
        json!({"amount": {"amount": "1.00", "currency": "CNY"}, "pin": PIN}),
    );
    assert_eq!(
        (early.status, early.code()),
        (422, "units_insufficient"),
        "{early:?}"
    );
    // Tuesday 20:00: confirmed.
    app.advance(4 * DAY);
    let holding = app.get(&format!("/v1/funds/{fund}/holding"), &alice.token);
    assert_eq!(holding.body["units"]["amount"], "10000.00", "{holding:?}");
    assert_eq!(holding.body["pending"]["amount"], "0.00");
    let incomes = format!("/v1/funds/{fund}/incomes");
    for day in ["2027-01-15", "2027-01-16", "2027-01-17", "2027-01-18"] {
        let posted = app.post(
            &incomes,
            &operator.token,
            None,
            json!({"day": day, "income": "0.9312"}),
        );
        assert_eq!(posted.status, 201, "{day}: {posted:?}");
    }
    // Tuesday is not over yet.
    let early = app.post(
        &incomes,
        &operator.token,
        None,
        json!({"day": "2027-01-19", "income": "0.9312"}),
    );
    assert_eq!(
        (early.status, early.code()),
        (409, "income_day_invalid"),
        "{early:?}"
    );
    app.advance(DAY);
    // The fund's manager may post too; anyone else may not.
    let stranger = app.post(
        &incomes,
        &alice.token,
        None,
        json!({"day": "2027-01-19", "income": "0.9312"}),
    );
    assert_eq!(stranger.status, 403, "{stranger:?}");
    let posted = app.post(
        &incomes,
        &manager.token,
        None,
        json!({"day": "2027-01-19", "income": "0.9312"}),
    );
    assert_eq!(posted.status, 201, "{posted:?}");
    // Posted once: again is refused.
    let twice = app.post(
        &incomes,
        &operator.token,
        None,
        json!({"day": "2027-01-19", "income": "0.9312"}),
    );
    assert_eq!((twice.status, twice.code()), (409, "income_day_invalid"));
    let holding = app.get(&format!("/v1/funds/{fund}/holding"), &alice.token);
    assert_eq!(holding.body["units"]["amount"], "10000.93", "{holding:?}");
    assert_eq!(holding.body["last_earned"][0], "2027-01-19");
    assert_eq!(holding.body["last_earned"][1]["amount"], "0.93");
    assert_eq!(holding.body["earnings"][0]["amount"]["amount"], "0.93");
    assert_eq!(app.available(&manager), "999.07");
    // The instant limit: 10,000.00 a day.
    let over = app.post(
        &redeem,
        &alice.token,
        Some("over"),
        json!({"amount": {"amount": "10000.01", "currency": "CNY"}, "pin": PIN}),
    );
    assert_eq!(
        (over.status, over.code()),
        (422, "instant_limit_exceeded"),
        "{over:?}"
    );
    assert_eq!(app.available(&alice), "10000.00");
    let out = app.post(
        &redeem,
        &alice.token,
        Some("out"),
        json!({"amount": {"amount": "5000.00", "currency": "CNY"}, "pin": PIN}),
    );
    assert_eq!(out.status, 201, "{out:?}");
    assert_eq!(app.available(&alice), "15000.00");
    let slow = app.post(
        &redeem,
        &alice.token,
        Some("slow"),
        json!({"amount": {"amount": "1000.00", "currency": "CNY"}, "instant": false, "pin": PIN}),
    );
    assert_eq!(slow.status, 201, "{slow:?}");
    assert_eq!(slow.body["paid"], false);
    // Wednesday 20:00 is after the cut-off: Thursday's trade, paid on Friday.
    assert_eq!(slow.body["pay_day"], 20_840);
    assert_eq!(app.available(&alice), "15000.00");
    let report = app.get(&format!("/v1/funds/{fund}"), &alice.token);
    assert_eq!(report.body["reconciled"], true, "{report:?}");
    assert_eq!(report.body["holders"], 1);
    assert_eq!(report.body["units_outstanding"]["amount"], "4000.93");
    assert_eq!(report.body["incomes"][0]["day"], "2027-01-19");
    app.advance(DAY);
    assert_eq!(app.available(&alice), "15000.00");
    app.advance(DAY);
    assert_eq!(app.available(&alice), "16000.00");
    // A trade paid straight from the fund: exactly its amount is redeemed and paid on.
    let seller = app.person("+8613800000002", "0");
    let offer = app.post(
        "/v1/trades",
        &seller.token,
        Some("offer"),
        json!({"out_trade_no": "F1", "subject": "kettle",
               "amount": {"amount": "500.00", "currency": "CNY"}}),
    );
    let trade = offer.body["id"].as_str().expect("an id").to_owned();
    let paid = app.post(
        &format!("/v1/trades/{trade}/pay"),
        &alice.token,
        Some("from-fund"),
        json!({"pin": PIN, "fund_id": fund}),
    );
    assert_eq!(paid.status, 200, "{paid:?}");
    assert_eq!(paid.body["status"], "WAIT_SELLER_SEND");
    assert_eq!(
        app.available(&alice),
        "16000.00",
        "the wallet only passes it on"
    );
    let holding = app.get(&format!("/v1/funds/{fund}/holding"), &alice.token);
    assert_eq!(holding.body["units"]["amount"], "3500.93", "{holding:?}");
    let report = app.get(&format!("/v1/funds/{fund}"), &alice.token);
    assert_eq!(report.body["reconciled"], true, "{report:?}");
    // The holiday calendar is the operator's.
    let set = app.send(
        "PUT",
        "/v1/holidays",
        Some(&operator.token),
        None,
        Some(&json!({"days": ["2027-02-11", "2027-02-10"]}).to_string()),
    );
    assert_eq!(set.status, 200, "{set:?}");
    assert_eq!(set.body["days"], json!(["2027-02-10", "2027-02-11"]));
    let refused = app.send(
        "PUT",
        "/v1/holidays",
        Some(&alice.token),
        None,
        Some(&json!({"days": []}).to_string()),
    );
    assert_eq!(refused.status, 403);
    app.finish();
}

pub fn fund_endpoints_refuse_bad_input_and_change_nothing(backend: Backend) {
    let app = App::start(backend);
    let operator = app.operator();
    app.person("fund@example.com", "100.00");
    let alice = app.person("+8613800000001", "100.00");
    let create = |body: serde_json::Value| app.post("/v1/funds", &operator.token, None, body);
    for (body, code, field) in [
        (
            json!({"name": "P", "currency": "XXX", "manager": {"login": "fund@example.com"}}),
            "unknown_currency",
            "currency",
        ),
        (
            json!({"name": "P", "currency": "CNY", "manager": {"login": "fund@example.com"},
                   "cutoff": "25:00"}),
            "invalid_field",
            "cutoff",
        ),
        (
            json!({"name": "", "currency": "CNY", "manager": {"login": "fund@example.com"}}),
            "invalid_field",
            "name",
        ),
        (
            json!({"name": "P", "currency": "CNY", "manager": {"login": "nobody@example.com"}}),
            "payee_not_found",
            "manager",
        ),
        (
            json!({"name": "P", "currency": "CNY", "manager": {"login": "fund@example.com"},
                   "instant_limit": "1.001"}),
            "amount_too_precise",
            "instant_limit",
        ),
    ] {
        let refused = create(body);
        assert_eq!(
            (refused.code(), refused.body["error"]["field"].as_str()),
            (code, Some(field)),
            "{refused:?}"
        );
    }
    let funds = app.get("/v1/funds", &operator.token);
    assert_eq!(funds.body, json!([]), "nothing was made");
    let made = create(
        json!({"name": "Pocket", "currency": "CNY", "manager": {"login": "fund@example.com"}}),
    );
    let fund = made.body["id"].as_str().expect("an id").to_owned();
    let incomes = format!("/v1/funds/{fund}/incomes");
    for (body, field) in [
        (json!({"day": "2027-13-01", "income": "1"}), "day"),
        (json!({"day": "2027-01-14", "income": "0.12345"}), "income"),
        (json!({"day": "2027-01-14", "income": "-1"}), "income"),
    ] {
        let refused = app.post(&incomes, &operator.token, None, body);
        assert_eq!(
            (refused.code(), refused.body["error"]["field"].as_str()),
            ("invalid_field", Some(field)),
            "{refused:?}"
        );
    }
    let path = format!("/v1/funds/{fund}/subscriptions");
    for (body, code) in [
        (
            json!({"amount": {"amount": "0", "currency": "CNY"}, "pin": PIN}),
            "amount_not_positive",
        ),
        (
            json!({"amount": {"amount": "1.00", "currency": "USD"}, "pin": PIN}),
            "currency_mismatch",
        ),
        (
            json!({"amount": {"amount": "1.00", "currency": "CNY"}, "pin": PIN, "instant": true}),
            "invalid_field",
        ),
        (
            json!({"amount": {"amount": "1.00", "currency": "CNY"}, "pin": PIN, "extra": 1}),
            "unknown_field",
        ),
    ] {
        let refused = app.post(&path, &alice.token, Some(&format!("{body}")), body);
        assert_eq!(refused.code(), code, "{refused:?}");
    }
    let missing = app.post(
        "/v1/funds/123/subscriptions",
        &alice.token,
        Some("missing"),
        json!({"amount": {"amount": "1.00", "currency": "CNY"}, "pin": PIN}),
    );
    assert_eq!((missing.status, missing.code()), (404, "fund_not_found"));
    let holidays = app.send(
        "PUT",
        "/v1/holidays",
        Some(&operator.token),
        None,
        Some(&json!({"days": ["2027-02-30"]}).to_string()),
    );
    assert_eq!(holidays.code(), "invalid_field", "{holidays:?}");
    assert_eq!(app.available(&alice), "100.00");
    let holding = app.get(&format!("/v1/funds/{fund}/holding"), &alice.token);
    assert_eq!(holding.body["units"]["amount"], "0.00");
    app.finish();
}
