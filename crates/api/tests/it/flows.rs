//! The flows a person goes through, end to end.

use formica_testkit::Backend;
use serde_json::json;

use crate::app::{App, PIN, SECOND};

const DAY: u64 = 24 * 3600 * SECOND;

pub fn sign_up_top_up_and_transfer_to_a_friend(backend: Backend) {
    let app = App::start(backend);
    let alice = app.person("+8613800000001", "1000.00");
    let bob = app.person("bob@example.com", "0");
    assert_eq!(app.available(&alice), "1000.00");
    let sent = app.post(
        "/v1/transfers",
        &alice.token,
        Some("lunch-1"),
        json!({"to": {"login": "bob@example.com"}, "amount": {"amount": "88.8", "currency": "CNY"},
               "note": "lunch", "pin": PIN}),
    );
    assert_eq!(sent.status, 201, "{sent:?}");
    assert_eq!(
        sent.body["amount"],
        json!({"amount": "88.80", "currency": "CNY"})
    );
    assert_eq!(sent.body["note"], "lunch");
    assert_eq!(app.available(&alice), "911.20");
    assert_eq!(app.available(&bob), "88.80");
    let listed = app.get("/v1/transfers", &bob.token);
    assert_eq!(listed.body["data"][0]["from_user_id"], alice.id.as_str());
    let entries = app.get("/v1/wallet/entries", &alice.token);
    let kinds: Vec<&str> = entries.body["data"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| e["kind"].as_str().expect("a kind"))
        .collect();
    assert_eq!(kinds, ["transfer", "top_up"]);
    app.finish();
}

/// A seller, a buyer with 500.00, and a trade of 120.00 the buyer has paid.
fn paid_trade(app: &App) -> (crate::app::Person, crate::app::Person, String) {
    let seller = app.person("seller@shop.test", "0");
    let buyer = app.person("buyer@example.com", "500.00");
    let created = app.post(
        "/v1/trades",
        &seller.token,
        None,
        json!({"out_trade_no": "T-1", "subject": "a blue teapot",
               "amount": {"amount": "120.00", "currency": "CNY"}}),
    );
    assert_eq!(created.status, 201, "{created:?}");
    assert_eq!(created.body["status"], "WAIT_BUYER_PAY");
    let id = created.body["id"].as_str().expect("an id").to_owned();
    let paid = app.post(
        &format!("/v1/trades/{id}/pay"),
        &buyer.token,
        Some("pay-T-1"),
        json!({"pin": PIN}),
    );
    assert_eq!(paid.status, 200, "{paid:?}");
    assert_eq!(paid.body["status"], "WAIT_SELLER_SEND");
    assert_eq!(
        app.balance(&buyer),
        ("380.00".into(), "120.00".into(), "0.00".into())
    );
    assert_eq!(
        app.balance(&seller),
        ("0.00".into(), "0.00".into(), "120.00".into()),
        "the seller sees the money coming but cannot spend it"
    );
    (seller, buyer, id)
}

fn ship(app: &App, seller: &crate::app::Person, id: &str) {
    let shipped = app.post(
        &format!("/v1/trades/{id}/ship"),
        &seller.token,
        None,
        json!({"tracking": "SF1234567890"}),
    );
    assert_eq!(shipped.status, 200, "{shipped:?}");
    assert_eq!(shipped.body["status"], "WAIT_BUYER_CONFIRM");
}

pub fn escrow_trade_shipped_and_confirmed(backend: Backend) {
    let app = App::start(backend);
    let (seller, buyer, id) = paid_trade(&app);
    ship(&app, &seller, &id);
    let confirmed = app.post(
        &format!("/v1/trades/{id}/confirm"),
        &buyer.token,
        Some("confirm-T-1"),
        json!({"pin": PIN}),
    );
    assert_eq!(confirmed.status, 200, "{confirmed:?}");
    assert_eq!(confirmed.body["status"], "TRADE_FINISHED");
    assert_eq!(app.balance(&seller).0, "120.00");
    assert_eq!(
        app.balance(&buyer),
        ("380.00".into(), "0.00".into(), "0.00".into())
    );
    let again = app.post(
        &format!("/v1/trades/{id}/confirm"),
        &buyer.token,
        Some("confirm-T-1-again"),
        json!({"pin": PIN}),
    );
    assert_eq!(again.code(), "trade_status_invalid", "{again:?}");
    assert_eq!(app.balance(&seller).0, "120.00", "released once");
    let sold = app.get(
        "/v1/trades?role=seller&status=TRADE_FINISHED",
        &seller.token,
    );
    assert_eq!(sold.body["data"][0]["id"], id.as_str());
    app.finish();
}

pub fn receipt_is_confirmed_automatically_when_the_clock_passes_the_period(backend: Backend) {
    let app = App::start(backend);
    let (seller, buyer, id) = paid_trade(&app);
    ship(&app, &seller, &id);
    app.advance(10 * DAY - SECOND);
    assert_eq!(app.balance(&seller).0, "0.00");
    app.advance(2 * SECOND);
    assert_eq!(app.balance(&seller).0, "120.00");
    let trade = app.get(&format!("/v1/trades/{id}"), &buyer.token);
    assert_eq!(trade.body["status"], "TRADE_FINISHED");
    app.finish();
}

pub fn partial_refund_agreed_returns_that_part_at_once(backend: Backend) {
    let app = App::start(backend);
    let (seller, buyer, id) = paid_trade(&app);
    let asked = app.post(
        &format!("/v1/trades/{id}/refund-request"),
        &buyer.token,
        None,
        json!({"amount": {"amount": "20.00", "currency": "CNY"}, "reason": "chipped lid"}),
    );
    assert_eq!(asked.status, 200, "{asked:?}");
    assert_eq!(asked.body["status"], "REFUND_REQUESTED");
    let agreed = app.post(
        &format!("/v1/trades/{id}/refund-request/agree"),
        &seller.token,
        Some("agree-1"),
        json!({}),
    );
    assert_eq!(agreed.status, 200, "{agreed:?}");
    assert_eq!(agreed.body["status"], "WAIT_SELLER_SEND");
    assert_eq!(agreed.body["refunded"]["amount"], "20.00");
    assert_eq!(
        app.balance(&buyer),
        ("400.00".into(), "100.00".into(), "0.00".into())
    );
    assert_eq!(app.balance(&seller).2, "100.00");
    app.finish();
}

pub fn refused_refund_goes_to_an_operator_who_splits_it(backend: Backend) {
    let app = App::start(backend);
    let (seller, buyer, id) = paid_trade(&app);
    ship(&app, &seller, &id);
    app.post(
        &format!("/v1/trades/{id}/refund-request"),
        &buyer.token,
        None,
        json!({"amount": {"amount": "120.00", "currency": "CNY"}, "reason": "never came"}),
    );
    let refused = app.post(
        &format!("/v1/trades/{id}/refund-request/refuse"),
        &seller.token,
        None,
        json!({}),
    );
    assert_eq!(refused.body["status"], "DISPUTE", "{refused:?}");
    let by_seller = app.post(
        &format!("/v1/trades/{id}/decision"),
        &seller.token,
        Some("decide-1"),
        json!({"decision": "release"}),
    );
    assert_eq!(by_seller.code(), "forbidden");
    let operator = app.operator();
    let queue = app.get("/v1/disputes", &operator.token);
    assert_eq!(queue.body["data"][0]["id"], id.as_str(), "{queue:?}");
    let decided = app.post(
        &format!("/v1/trades/{id}/decision"),
        &operator.token,
        Some("decide-1"),
        json!({"decision": "split", "refund_amount": {"amount": "50.00", "currency": "CNY"}}),
    );
    assert_eq!(decided.status, 200, "{decided:?}");
    assert_eq!(decided.body["status"], "TRADE_FINISHED");
    assert_eq!(
        app.balance(&buyer),
        ("430.00".into(), "0.00".into(), "0.00".into())
    );
    assert_eq!(
        app.balance(&seller),
        ("70.00".into(), "0.00".into(), "0.00".into())
    );
    app.finish();
}

pub fn unpaid_trade_closes_after_the_timeout_and_cannot_be_paid(backend: Backend) {
    let app = App::start(backend);
    let seller = app.person("seller@shop.test", "0");
    let buyer = app.person("buyer@example.com", "500.00");
    let created = app.post(
        "/v1/trades",
        &seller.token,
        None,
        json!({"out_trade_no": "T-2", "subject": "socks",
               "amount": {"amount": "9.90", "currency": "CNY"}}),
    );
    let id = created.body["id"].as_str().expect("an id").to_owned();
    app.advance(15 * 60 * SECOND + SECOND);
    let trade = app.get(&format!("/v1/trades/{id}"), &seller.token);
    assert_eq!(trade.body["status"], "TRADE_CLOSED");
    let paid = app.post(
        &format!("/v1/trades/{id}/pay"),
        &buyer.token,
        Some("pay-closed"),
        json!({"pin": PIN}),
    );
    assert_eq!(paid.status, 409, "{paid:?}");
    assert_eq!(paid.code(), "trade_status_invalid");
    assert_eq!(app.available(&buyer), "500.00");
    // A closed trade's number stays taken: with a new key it is a duplicate (it once failed
    // the whole batch at the store's unique index), while the creating request's own retry
    // still gets its saved answer.
    let offer = json!({"out_trade_no": "T-2", "subject": "socks again",
                       "amount": {"amount": "9.90", "currency": "CNY"}});
    let again = app.post("/v1/trades", &seller.token, Some("new-key"), offer.clone());
    assert_eq!(again.code(), "duplicate_out_trade_no", "{again:?}");
    let first = json!({"out_trade_no": "T-3", "subject": "gloves",
                       "amount": {"amount": "19.90", "currency": "CNY"}});
    let made = app.post("/v1/trades", &seller.token, Some("gloves"), first.clone());
    assert_eq!(made.status, 201);
    let retried = app.post("/v1/trades", &seller.token, Some("gloves"), first);
    assert_eq!(retried.status, 201);
    assert_eq!(retried.body, made.body);
    app.finish();
}

pub fn withdrawal_succeeds_or_returns_the_money_when_the_bank_fails(backend: Backend) {
    let app = App::start(backend);
    let alice = app.person("alice@example.com", "300.00");
    let withdraw = |card: &str, key: &str| {
        let started = app.post(
            "/v1/withdrawals",
            &alice.token,
            Some(key),
            json!({"card_id": card, "amount": {"amount": "100.00", "currency": "CNY"}, "pin": PIN}),
        );
        assert_eq!(started.status, 202, "{started:?}");
        started.body["id"].as_str().expect("an id").to_owned()
    };
    let paid_out = withdraw(&alice.card_id, "w-1");
    assert_eq!(app.settled(&alice, &paid_out)["status"], "succeeded");
    assert_eq!(
        app.balance(&alice),
        ("200.00".into(), "0.00".into(), "0.00".into())
    );
    let declined_card = app.post(
        "/v1/cards",
        &alice.token,
        None,
        json!({"bank": "Test bank", "number": "4000000000000002", "holder": "Alice"}),
    );
    let declined = withdraw(declined_card.body["id"].as_str().expect("an id"), "w-2");
    let movement = app.settled(&alice, &declined);
    assert_eq!(movement["status"], "failed");
    assert_eq!(movement["failure"], "declined by the bank");
    assert_eq!(
        app.balance(&alice),
        ("200.00".into(), "0.00".into(), "0.00".into())
    );
    let silent_card = app.post(
        "/v1/cards",
        &alice.token,
        None,
        json!({"bank": "Test bank", "number": "4000000000000003", "holder": "Alice"}),
    );
    let silent = withdraw(silent_card.body["id"].as_str().expect("an id"), "w-3");
    assert_eq!(
        app.balance(&alice),
        ("100.00".into(), "100.00".into(), "0.00".into())
    );
    app.advance(DAY + SECOND);
    assert_eq!(app.settled(&alice, &silent)["status"], "failed");
    assert_eq!(
        app.balance(&alice),
        ("200.00".into(), "0.00".into(), "0.00".into())
    );
    app.finish();
}

pub fn an_idempotent_retry_returns_the_saved_answer_and_moves_money_once(backend: Backend) {
    let app = App::start(backend);
    let alice = app.person("alice@example.com", "300.00");
    let bob = app.person("bob@example.com", "0");
    let body = json!({"to": {"user_id": bob.id}, "amount": {"amount": "10.00", "currency": "CNY"},
                      "pin": PIN});
    let first = app.post("/v1/transfers", &alice.token, Some("k-1"), body.clone());
    let retry = app.post("/v1/transfers", &alice.token, Some("k-1"), body.clone());
    assert_eq!(first.status, 201);
    assert_eq!(retry.status, 201);
    assert_eq!(first.body, retry.body, "the retry gets the saved answer");
    assert_eq!(app.available(&bob), "10.00", "and moves nothing");
    let refused = app.post(
        "/v1/transfers",
        &alice.token,
        Some("k-2"),
        json!({"to": {"user_id": bob.id}, "amount": {"amount": "9999.00", "currency": "CNY"},
               "pin": PIN}),
    );
    assert_eq!(refused.code(), "daily_limit_exceeded", "{refused:?}");
    let refused_again = app.post(
        "/v1/transfers",
        &alice.token,
        Some("k-2"),
        json!({"to": {"user_id": bob.id}, "amount": {"amount": "9999.00", "currency": "CNY"},
               "pin": PIN}),
    );
    assert_eq!(refused_again.status, refused.status);
    assert_eq!(refused_again.body, refused.body, "a refusal is saved too");
    app.finish();
}

pub fn five_wrong_pins_lock_the_pin(backend: Backend) {
    let app = App::start(backend);
    let alice = app.person("alice@example.com", "300.00");
    let bob = app.person("bob@example.com", "0");
    let send = |pin: &str, key: &str| {
        app.post(
            "/v1/transfers",
            &alice.token,
            Some(key),
            json!({"to": {"user_id": bob.id}, "amount": {"amount": "1.00", "currency": "CNY"},
                   "pin": pin}),
        )
    };
    for attempt in 1..=4 {
        let wrong = send("000000", &format!("wrong-{attempt}"));
        assert_eq!(wrong.code(), "pin_incorrect", "{wrong:?}");
    }
    assert_eq!(send("000000", "wrong-5").code(), "pin_locked");
    assert_eq!(send(PIN, "right-while-locked").code(), "pin_locked");
    assert_eq!(app.available(&bob), "0.00");
    app.advance(15 * 60 * SECOND + SECOND);
    assert_eq!(send(PIN, "right-after").status, 201);
    app.finish();
}

pub fn open_trades_and_their_timers_survive_a_restart(backend: Backend) {
    let mut app = App::start(backend);
    let (seller, buyer, id) = paid_trade(&app);
    let unpaid = app.post(
        "/v1/trades",
        &seller.token,
        None,
        json!({"out_trade_no": "T-3", "subject": "a kettle",
               "amount": {"amount": "30.00", "currency": "CNY"}}),
    );
    let unpaid = unpaid.body["id"].as_str().expect("an id").to_owned();
    ship(&app, &seller, &id);
    app.restart();
    // Sessions, balances, the escrow hold and both trades' timers are all still there.
    assert_eq!(
        app.balance(&buyer),
        ("380.00".into(), "120.00".into(), "0.00".into())
    );
    let duplicate = app.post(
        "/v1/trades",
        &seller.token,
        None,
        json!({"out_trade_no": "T-3", "subject": "again",
               "amount": {"amount": "1.00", "currency": "CNY"}}),
    );
    assert_eq!(duplicate.code(), "duplicate_out_trade_no");
    app.advance(10 * DAY + SECOND);
    assert_eq!(
        app.balance(&seller).0,
        "120.00",
        "confirmed by its timer after the restart"
    );
    let closed = app.get(&format!("/v1/trades/{unpaid}"), &seller.token);
    assert_eq!(closed.body["status"], "TRADE_CLOSED");
    app.restart();
    let again = app.post(
        &format!("/v1/trades/{id}/confirm"),
        &buyer.token,
        Some("after-restart"),
        json!({"pin": PIN}),
    );
    assert_eq!(again.code(), "trade_status_invalid");
    assert_eq!(app.balance(&seller).0, "120.00");
    app.finish();
}

pub fn verification_raises_the_daily_limit_and_survives_a_restart(backend: Backend) {
    let mut app = App::start(backend);
    let alice = app.person("alice@example.com", "9000.00");
    let bob = app.person("bob@example.com", "0");
    let send = |app: &App, key: &str| {
        app.post(
            "/v1/transfers",
            &alice.token,
            Some(key),
            json!({"to": {"user_id": bob.id}, "amount": {"amount": "6000.00", "currency": "CNY"},
                   "pin": PIN}),
        )
    };
    assert_eq!(send(&app, "big-1").code(), "daily_limit_exceeded");
    let by_alice = app.post(
        &format!("/v1/users/{}/verification", alice.id),
        &alice.token,
        None,
        json!({"level": "verified"}),
    );
    assert_eq!(
        by_alice.code(),
        "forbidden",
        "people cannot verify themselves"
    );
    let operator = app.operator();
    let verified = app.post(
        &format!("/v1/users/{}/verification", alice.id),
        &operator.token,
        None,
        json!({"level": "verified"}),
    );
    assert_eq!(verified.status, 200, "{verified:?}");
    assert_eq!(verified.body["level"], "verified");
    app.restart();
    let me = app.get("/v1/me", &alice.token);
    assert_eq!(me.body["level"], "verified");
    assert_eq!(send(&app, "big-2").status, 201);
    assert_eq!(app.available(&bob), "6000.00");
    app.finish();
}

pub fn concurrent_wrong_pins_are_all_counted(backend: Backend) {
    // Regression (issue 4 review): attempts read the failure count before checking, so guesses
    // sent at once all saw zero failures and none locked the PIN.
    let app = App::start(backend);
    let alice = app.person("alice@example.com", "300.00");
    let bob = app.person("bob@example.com", "0");
    let codes: Vec<String> = std::thread::scope(|scope| {
        let guesses: Vec<_> = (0..12)
            .map(|n| {
                let (app, alice, bob) = (&app, &alice, &bob);
                scope.spawn(move || {
                    app.post(
                        "/v1/transfers",
                        &alice.token,
                        Some(&format!("guess-{n}")),
                        json!({"to": {"user_id": bob.id},
                               "amount": {"amount": "1.00", "currency": "CNY"},
                               "pin": format!("{:06}", 100_000 + n)}),
                    )
                    .code()
                    .to_owned()
                })
            })
            .collect();
        guesses
            .into_iter()
            .map(|g| g.join().expect("answers"))
            .collect()
    });
    let checked = codes.iter().filter(|c| *c == "pin_incorrect").count();
    assert!(
        checked <= 4,
        "at most four guesses are checked before the lock: {codes:?}"
    );
    assert!(
        codes
            .iter()
            .all(|c| c == "pin_incorrect" || c == "pin_locked"),
        "{codes:?}"
    );
    let after = app.post(
        "/v1/transfers",
        &alice.token,
        Some("right"),
        json!({"to": {"user_id": bob.id}, "amount": {"amount": "1.00", "currency": "CNY"},
               "pin": PIN}),
    );
    assert_eq!(after.code(), "pin_locked", "{after:?}");
    app.finish();
}
