//! The credit score over HTTP: a person reads their score with its reasons; a merchant asks
//! whether a person passes a threshold and learns nothing without the person's consent; the
//! person withdraws consent and the merchant's checks are refused again.

use serde_json::{Value, json};

use crate::app::App;
use crate::gateway::open_shop;
use formica_testkit::Backend;

pub fn credit_score_and_consented_checks(backend: Backend) {
    let app = App::start(backend);
    let shop = open_shop(&app, "bikes@example.com", false);
    let renter = app.person("renter@example.com", "0");

    let score = app.get("/v1/credit/score", &renter.token);
    assert_eq!(score.status, 200, "{score:?}");
    let points = score.body["score"].as_u64().expect("a score");
    assert!((350..=950).contains(&points), "{points}");
    let dimensions = score.body["dimensions"].as_array().expect("dimensions");
    let names: Vec<&str> = dimensions
        .iter()
        .map(|d| d["dimension"].as_str().expect("a name"))
        .collect();
    assert_eq!(
        names,
        ["history", "behaviour", "ability", "identity", "connections"]
    );
    let total: u64 = dimensions
        .iter()
        .map(|d| d["points"].as_u64().expect("points"))
        .sum();
    assert_eq!(points, 350 + total, "the dimensions add up to the score");

    let check = |threshold: u64| {
        app.post(
            &format!("/v1/merchants/{}/credit-checks", shop.merchant_id),
            &shop.owner.token,
            None,
            json!({"person": {"login": "renter@example.com"}, "threshold": threshold}),
        )
    };
    // No consent: the merchant learns nothing, not even that the person exists.
    let refused = check(550);
    assert_eq!(refused.status, 404, "{refused:?}");
    assert_eq!(refused.code(), "consent_not_found");
    let nobody = app.post(
        &format!("/v1/merchants/{}/credit-checks", shop.merchant_id),
        &shop.owner.token,
        None,
        json!({"person": {"login": "nobody@example.com"}, "threshold": 550}),
    );
    assert_eq!((nobody.status, nobody.code()), (404, "consent_not_found"));

    let granted = app.post(
        "/v1/credit/consents",
        &renter.token,
        None,
        json!({"merchant_id": shop.merchant_id}),
    );
    assert_eq!(granted.status, 201, "{granted:?}");
    let passes = check(points);
    assert_eq!(passes.status, 200, "{passes:?}");
    assert_eq!(passes.body["passes"], true);
    assert!(
        passes.body.get("score").is_none(),
        "never the score: {passes:?}"
    );
    assert_eq!(check(points + 1).body["passes"], false);
    let out_of_range = check(951);
    assert_eq!(
        (out_of_range.status, out_of_range.code()),
        (400, "threshold_invalid")
    );

    // The person sees the checks; the merchant sees who consented, never a score.
    let mine = app.get("/v1/credit/consents", &renter.token);
    assert_eq!(mine.body[0]["checks"], 2, "{mine:?}");
    let theirs = app.get(
        &format!("/v1/merchants/{}/consents", shop.merchant_id),
        &shop.owner.token,
    );
    assert_eq!(theirs.body[0]["person_id"], renter.id.as_str());
    assert_eq!(theirs.body[0]["standing"], true);
    assert!(!theirs.body.to_string().contains("score"), "{theirs:?}");

    let withdrawn = app.send(
        "DELETE",
        &format!("/v1/credit/consents/{}", shop.merchant_id),
        Some(&renter.token),
        None,
        None,
    );
    assert_eq!(withdrawn.status, 200, "{withdrawn:?}");
    assert!(withdrawn.body["withdrawn_at"].is_u64(), "{withdrawn:?}");
    assert_eq!(check(350).code(), "consent_not_found");
    // Somebody else's merchant cannot ask at all.
    let stranger = app.person("stranger@example.com", "0");
    let foreign = app.post(
        &format!("/v1/merchants/{}/credit-checks", shop.merchant_id),
        &stranger.token,
        None,
        json!({"person": {"login": "renter@example.com"}, "threshold": 350}),
    );
    assert_eq!(foreign.status, 404);
    app.finish();
}

pub fn deposit_holds_waived_frozen_charged_and_a_debt_repaid(backend: Backend) {
    let app = App::start(backend);
    let operator = app.operator();
    let shop = open_shop(&app, "cars@example.com", false);
    let renter = app.person("driver@example.com", "100.00");
    let money = |yuan: &str| json!({"amount": yuan, "currency": "CNY"});
    let ask = |no: &str, yuan: &str, threshold: u64| {
        let asked = app.post(
            &format!("/v1/merchants/{}/holds", shop.merchant_id),
            &shop.owner.token,
            None,
            json!({"person": {"login": "driver@example.com"}, "out_order_no": no,
                   "title": "a car for the weekend", "amount": money(yuan),
                   "threshold": threshold}),
        );
        assert_eq!(asked.status, 201, "{asked:?}");
        assert_eq!(asked.body["status"], "REQUESTED");
        asked.body["id"].as_str().expect("an id").to_owned()
    };
    let authorize = |hold: &str, key: &str| {
        app.post(
            &format!("/v1/holds/{hold}/authorize"),
            &renter.token,
            Some(key),
            json!({"pin": crate::app::PIN}),
        )
    };
    let score = app.get("/v1/credit/score", &renter.token).body["score"]
        .as_u64()
        .expect("a score");

    // Above the renter's score: frozen, then charged in part; the rest comes back.
    let frozen = ask("R-1", "80.00", score + 1);
    let answer = authorize(&frozen, "a1");
    assert_eq!(answer.body["status"], "FROZEN", "{answer:?}");
    assert_eq!(app.balance(&renter).0, "20.00");
    let charged = app.post(
        &format!("/v1/holds/{frozen}/charge"),
        &shop.owner.token,
        Some("c1"),
        json!({"amount": money("30.00")}),
    );
    assert_eq!(charged.body["status"], "CLOSED", "{charged:?}");
    assert_eq!(app.balance(&renter).0, "70.00");
    // Charging a closed hold again is refused.
    let again = app.post(
        &format!("/v1/holds/{frozen}/charge"),
        &shop.owner.token,
        Some("c2"),
        json!({"amount": money("1.00")}),
    );
    assert_eq!((again.status, again.code()), (409, "hold_status_invalid"));

    // At the renter's score: waived, nothing held; charged beyond the wallet, a debt.
    let waived = ask("R-2", "500.00", score);
    assert_eq!(authorize(&waived, "a2").body["status"], "WAIVED");
    assert_eq!(app.balance(&renter).0, "70.00");
    let charge = |key: &str| {
        app.post(
            &format!("/v1/holds/{waived}/charge"),
            &shop.owner.token,
            Some(key),
            json!({"amount": money("200.00")}),
        )
    };
    let unfunded = charge("c3");
    assert_eq!(
        (unfunded.status, unfunded.code()),
        (422, "credit_funding_insufficient")
    );
    let funded = app.post(
        "/v1/credit/funding",
        &operator.token,
        Some("f1"),
        json!({"amount": money("1000.00")}),
    );
    assert_eq!(funded.body["available"]["amount"], "1000.00", "{funded:?}");
    let charged = charge("c4");
    let debt = charged.body["debt_id"]
        .as_str()
        .unwrap_or_else(|| panic!("a debt: {charged:?}"))
        .to_owned();
    assert_eq!(app.balance(&renter).0, "0.00");
    let debts = app.get("/v1/debts", &renter.token);
    assert_eq!(debts.body[0]["amount"]["amount"], "130.00", "{debts:?}");

    app.top_up(&renter, "200.00", &renter.card_id);
    let repaid = app.post(
        &format!("/v1/debts/{debt}/repay"),
        &renter.token,
        Some("r1"),
        json!({"amount": money("130.00"), "pin": crate::app::PIN}),
    );
    assert_eq!(repaid.status, 200, "{repaid:?}");
    assert!(repaid.body["repaid_at"].is_u64(), "{repaid:?}");
    let history = app.get("/v1/credit/score", &renter.token);
    assert!(
        history.body["reasons"]
            .as_array()
            .expect("reasons")
            .iter()
            .any(|r| r["text"] == "1 bill repaid on time"),
        "{history:?}"
    );
    let mine = app.get("/v1/holds", &renter.token);
    assert_eq!(mine.body.as_array().map(Vec::len), Some(2));
    app.finish();
}

pub fn credit_and_hold_endpoints_refuse_bad_input_and_change_nothing(backend: Backend) {
    let app = App::start(backend);
    let operator = app.operator();
    let shop = open_shop(&app, "vans@example.com", false);
    let renter = app.person("renter@example.com", "100.00");
    let money = |yuan: &str, currency: &str| json!({"amount": yuan, "currency": currency});
    let refused = |answer: crate::app::Answer, status: u16, code: &str| {
        assert_eq!((answer.status, answer.code()), (status, code), "{answer:?}");
    };
    // Consents.
    let grant =
        |body: serde_json::Value| app.post("/v1/credit/consents", &renter.token, None, body);
    refused(
        grant(json!({"merchant_id": "999"})),
        404,
        "merchant_not_found",
    );
    refused(grant(json!({})), 400, "missing_field");
    refused(
        grant(json!({"merchant_id": shop.merchant_id, "extra": 1})),
        400,
        "unknown_field",
    );
    let withdraw = |id: &str| {
        app.send(
            "DELETE",
            &format!("/v1/credit/consents/{id}"),
            Some(&renter.token),
            None,
            None,
        )
    };
    refused(withdraw("not-a-number"), 404, "consent_not_found");
    refused(withdraw(&shop.merchant_id), 404, "consent_not_found");
    assert_eq!(
        app.get("/v1/credit/consents", &renter.token).body,
        json!([])
    );
    // Credit checks.
    let check = |body: serde_json::Value| {
        app.post(
            &format!("/v1/merchants/{}/credit-checks", shop.merchant_id),
            &shop.owner.token,
            None,
            body,
        )
    };
    refused(
        check(json!({"person": {"login": "renter@example.com"}, "threshold": 349})),
        400,
        "threshold_invalid",
    );
    refused(
        check(json!({"person": {}, "threshold": 600})),
        404,
        "consent_not_found",
    );

    // Holds.
    let holds = format!("/v1/merchants/{}/holds", shop.merchant_id);
    let ask = |body: serde_json::Value| app.post(&holds, &shop.owner.token, None, body);
    let good = || {
        json!({"person": {"login": "renter@example.com"}, "out_order_no": "V-1",
               "title": "a van", "amount": money("50.00", "CNY"), "threshold": 600})
    };
    let with = |name: &str, value: serde_json::Value| {
        let mut body = good();
        body[name] = value;
        body
    };
    refused(
        ask(with("amount", money("0", "CNY"))),
        400,
        "amount_not_positive",
    );
    refused(
        ask(with("amount", money("1.001", "CNY"))),
        400,
        "amount_too_precise",
    );
    refused(
        ask(with("amount", money("1.00", "USD"))),
        400,
        "currency_mismatch",
    );
    refused(ask(with("threshold", json!(951))), 400, "threshold_invalid");
    refused(ask(with("out_order_no", json!(""))), 400, "invalid_field");
    refused(
        ask(with("person", json!({"login": "nobody@example.com"}))),
        404,
        "payee_not_found",
    );
    refused(ask(with("extra", json!(1))), 400, "unknown_field");
    assert_eq!(
        app.get(&holds, &shop.owner.token).body,
        json!([]),
        "nothing held"
    );
    let hold = ask(good());
    assert_eq!(hold.status, 201, "{hold:?}");
    refused(ask(good()), 409, "duplicate_out_trade_no");
    let hold = hold.body["id"].as_str().expect("an id").to_owned();
    let authorize = |key: Option<&str>, pin: &str| {
        app.post(
            &format!("/v1/holds/{hold}/authorize"),
            &renter.token,
            key,
            json!({"pin": pin}),
        )
    };
    refused(
        authorize(None, crate::app::PIN),
        400,
        "idempotency_key_required",
    );
    refused(authorize(Some("wrong-pin"), "000000"), 403, "pin_incorrect");
    // Not the person's to authorise: the shop's owner is refused as a stranger.
    let by_shop = app.post(
        &format!("/v1/holds/{hold}/authorize"),
        &shop.owner.token,
        Some("shop"),
        json!({"pin": crate::app::PIN}),
    );
    refused(by_shop, 404, "hold_not_found");
    assert_eq!(app.balance(&renter).0, "100.00", "nothing frozen");
    let frozen = authorize(Some("ok"), crate::app::PIN);
    assert_eq!(frozen.body["status"], "FROZEN", "{frozen:?}");
    let charge = |key: &str, body: serde_json::Value| {
        app.post(
            &format!("/v1/holds/{hold}/charge"),
            &shop.owner.token,
            Some(key),
            body,
        )
    };
    refused(
        charge("too-much", json!({"amount": money("50.01", "CNY")})),
        422,
        "charge_too_large",
    );
    refused(
        charge("usd", json!({"amount": money("1.00", "USD")})),
        400,
        "currency_mismatch",
    );
    assert_eq!(
        app.balance(&renter).1,
        "50.00",
        "still frozen, nothing charged"
    );
    let unfreeze = || {
        app.post(
            &format!("/v1/holds/{hold}/unfreeze"),
            &shop.owner.token,
            None,
            serde_json::Value::Null,
        )
    };
    assert_eq!(unfreeze().body["status"], "CLOSED");
    refused(unfreeze(), 409, "hold_status_invalid");
    assert_eq!(app.balance(&renter).0, "100.00");

    // Debts and funding.
    let repay = |id: &str| {
        app.post(
            &format!("/v1/debts/{id}/repay"),
            &renter.token,
            Some(&format!("repay-{id}")),
            json!({"amount": money("1.00", "CNY"), "pin": crate::app::PIN}),
        )
    };
    refused(repay("12345"), 404, "debt_not_found");
    refused(repay("x"), 404, "debt_not_found");
    let fund = |token: &str, key: &str, body: serde_json::Value| {
        app.post("/v1/credit/funding", token, Some(key), body)
    };
    refused(
        fund(&renter.token, "f1", json!({"amount": money("1.00", "CNY")})),
        403,
        "forbidden",
    );
    refused(
        fund(&operator.token, "f2", json!({"amount": money("0", "CNY")})),
        400,
        "amount_not_positive",
    );
    let funding = app.get("/v1/credit/funding", &operator.token);
    assert_eq!(funding.body["available"]["amount"], "0.00", "{funding:?}");
    assert_eq!(app.balance(&renter).0, "100.00");
    app.finish();
}

/// A person earns a credit line from their score, pays an escrow trade from it (the wallet
/// pays nothing), repays part, and every refusal answers its code and changes nothing.
pub fn a_credit_line_pays_a_trade_and_is_repaid(backend: Backend) {
    const DAY: u64 = 24 * 3600 * 1_000_000_000;
    let app = App::start(backend);
    let operator = app.operator();
    let money = |yuan: &str| json!({"amount": yuan, "currency": "CNY"});
    let funded = app.post(
        "/v1/credit/funding",
        &operator.token,
        Some("fund-lines"),
        json!({"amount": money("10000.00")}),
    );
    assert_eq!(funded.status, 201, "{funded:?}");
    let buyer = app.person("borrower@example.com", "20000.00");
    let seller = app.person("potter@example.com", "0");
    let verified = app.post(
        &format!("/v1/users/{}/verification", buyer.id),
        &operator.token,
        None,
        json!({"level": "verified"}),
    );
    assert_eq!(verified.status, 200, "{verified:?}");
    let open = |person: &crate::app::Person, due_day: u64| {
        app.post(
            "/v1/credit/line",
            &person.token,
            None,
            json!({"due_day": due_day}),
        )
    };
    // A new unverified person's score (about 515) earns no line.
    let poor = open(&seller, 10);
    assert_eq!(
        (poor.status, poor.code()),
        (422, "credit_line_not_eligible")
    );
    // The daily run counts the balance.
    app.advance(DAY);
    let score = app.get("/v1/credit/score", &buyer.token).body["score"]
        .as_u64()
        .expect("a score");
    assert!(score >= 600, "{score}");
    assert_eq!(open(&buyer, 11).code(), "due_day_invalid");
    let opened = open(&buyer, 10);
    assert_eq!(opened.status, 201, "{opened:?}");
    let limit = opened.body["limit"]["amount"]
        .as_str()
        .expect("a limit")
        .to_owned();
    assert_eq!(opened.body["available"]["amount"], limit.as_str());
    assert_eq!(open(&buyer, 9).code(), "credit_line_exists");
    let nobody = app.get("/v1/credit/line", &seller.token);
    assert_eq!(
        (nobody.status, nobody.code()),
        (404, "credit_line_not_found")
    );

    let created = app.post(
        "/v1/trades",
        &seller.token,
        None,
        json!({"out_trade_no": "L-1", "subject": "a vase", "amount": money("50.00")}),
    );
    assert_eq!(created.status, 201, "{created:?}");
    let trade = created.body["id"].as_str().expect("an id").to_owned();
    let pay = |key: &str, body: serde_json::Value| {
        app.post(
            &format!("/v1/trades/{trade}/pay"),
            &buyer.token,
            Some(key),
            body,
        )
    };
    let both = pay(
        "pay-both",
        json!({"pin": crate::app::PIN, "credit_line": true, "fund_id": "1"}),
    );
    assert_eq!((both.status, both.code()), (400, "invalid_field"));
    let paid = pay(
        "pay-line",
        json!({"pin": crate::app::PIN, "credit_line": true}),
    );
    assert_eq!(paid.status, 200, "{paid:?}");
    assert_eq!(paid.body["status"], "WAIT_SELLER_SEND");
    assert!(paid.body["credit"].is_object(), "{paid:?}");
    assert_eq!(app.available(&buyer), "20000.00", "the wallet paid nothing");
    let line = app.get("/v1/credit/line", &buyer.token);
    assert_eq!(line.body["escrowed"]["amount"], "50.00", "{line:?}");
    assert_eq!(line.body["used"]["amount"], "50.00");

    let repay = |key: &str, yuan: &str| {
        app.post(
            "/v1/credit/line/repay",
            &buyer.token,
            Some(key),
            json!({"amount": money(yuan), "pin": crate::app::PIN}),
        )
    };
    let too_much = repay("repay-too-much", "50.01");
    assert_eq!((too_much.status, too_much.code()), (422, "repay_too_large"));
    let repaid = repay("repay-1", "10.00");
    assert_eq!(repaid.status, 200, "{repaid:?}");
    assert_eq!(repaid.body["owed"]["amount"], "40.00");
    assert_eq!(app.available(&buyer), "19990.00");
    let instalments = app.post(
        "/v1/credit/line/instalments",
        &buyer.token,
        Some("in-3"),
        json!({"periods": 3, "pin": crate::app::PIN}),
    );
    assert_eq!(
        (instalments.status, instalments.code()),
        (422, "instalments_invalid"),
        "no statement yet"
    );
    let statements = app.get("/v1/credit/line/statements", &buyer.token);
    assert_eq!(statements.body, json!([]));
    let overdue = app.get("/v1/credit/lines/overdue", &operator.token);
    assert_eq!((overdue.status, overdue.body.clone()), (200, json!([])));
    assert_eq!(
        app.get("/v1/credit/lines/overdue", &buyer.token).code(),
        "forbidden"
    );
    app.finish();
}

/// Everyone signed in reads the credit line's rules; only an operator changes them, within
/// their bounds; a refused change leaves them as they were.
pub fn operators_set_the_credit_policy_within_its_bounds(backend: Backend) {
    let app = App::start(backend);
    let operator = app.operator();
    let person = app.person("reader@example.com", "1.00");
    let read = |token: &str| {
        let policy = app.get("/v1/credit/policy", token);
        assert_eq!(policy.status, 200, "{policy:?}");
        policy.body
    };
    let put = |token: &str, body: Value| {
        app.send(
            "PUT",
            "/v1/credit/policy",
            Some(token),
            None,
            Some(&body.to_string()),
        )
    };
    let defaults = read(&person.token);
    assert_eq!(defaults["line_score_min"], 600, "{defaults:?}");
    assert_eq!(defaults["line_base"]["amount"], "500.00");
    assert_eq!(defaults["instalments"][3]["fee_per_mille"], 88);

    let mut changed = defaults.clone();
    changed["line_per_point"]["amount"] = json!("200.00");
    changed["minimum_per_mille"] = json!(150);
    changed["instalments"] = json!([{"periods": 6, "fee_per_mille": 30}]);
    let forbidden = put(&person.token, changed.clone());
    assert_eq!((forbidden.status, forbidden.code()), (403, "forbidden"));

    let mut bad = changed.clone();
    bad["daily_interest_per_10k"] = json!(50);
    let refused = put(&operator.token, bad);
    assert_eq!(
        (refused.status, refused.code()),
        (400, "credit_policy_invalid"),
        "{refused:?}"
    );
    let mut unknown = changed.clone();
    unknown["surprise"] = json!(1);
    assert_eq!(put(&operator.token, unknown).status, 400);
    assert_eq!(read(&person.token), defaults, "nothing changed");

    let set = put(&operator.token, changed.clone());
    assert_eq!(set.status, 200, "{set:?}");
    assert_eq!(set.body, changed);
    assert_eq!(read(&person.token), changed);
    app.finish();
}
