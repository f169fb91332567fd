//! Access control over every route, driven by the OpenAPI document so that a new route cannot
//! slip past: each route that needs a caller refuses an anonymous one (and a forged token),
//! and no route that names an object answers a second person with the first one's object.

use std::collections::BTreeSet;

use formica_testkit::Backend;
use serde_json::{Value, json};

use super::app::{App, PIN};
use super::gateway::open_shop;

/// The routes anyone may call: signing up and signing in.
const PUBLIC: &[(&str, &str)] = &[("post", "/v1/users"), ("post", "/v1/sessions")];

/// (method, path) of every operation in the document, and whether it names a security
/// requirement.
fn operations(app: &App) -> Vec<(String, String, bool)> {
    let (status, text) = app.get_text("/v1/openapi.json");
    assert_eq!(status, 200);
    let document: Value = serde_json::from_str(&text).expect("the document is JSON");
    let mut found = Vec::new();
    for (path, item) in document["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("an item") {
            let secured = operation["security"]
                .as_array()
                .is_some_and(|s| !s.is_empty());
            found.push((method.clone(), path.clone(), secured));
        }
    }
    assert!(found.len() > 40, "the document lists the routes: {found:?}");
    found
}

/// `{name}` segments replaced by `value`.
fn filled(path: &str, value: impl Fn(&str) -> String) -> String {
    path.split('/')
        .map(
            |segment| match segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                Some(name) => value(name),
                None => segment.to_owned(),
            },
        )
        .collect::<Vec<_>>()
        .join("/")
}

pub fn every_route_that_needs_a_caller_refuses_an_anonymous_one(backend: Backend) {
    let app = App::start(backend);
    let alice = app.person("alice@example.com", "100.00");
    let operations = operations(&app);
    let public: BTreeSet<(String, String)> = operations
        .iter()
        .filter(|(_, _, secured)| !secured)
        .map(|(method, path, _)| (method.clone(), path.clone()))
        .collect();
    let expected: BTreeSet<(String, String)> = PUBLIC
        .iter()
        .map(|(m, p)| ((*m).to_owned(), (*p).to_owned()))
        .collect();
    assert_eq!(
        public, expected,
        "only signing up and in are open to anyone; a new route says who may call it"
    );
    for (method, path, secured) in &operations {
        if !secured {
            continue;
        }
        // Real ids where a route names a person, so that only the missing caller is wrong.
        let path = filled(path, |_| alice.id.clone());
        let body = (method != "get" && method != "delete").then_some("{}");
        for token in [None, Some("not-a-token"), Some("")] {
            let answer = app.send(&method.to_uppercase(), &path, token, Some("k"), body);
            assert_eq!(
                answer.status, 401,
                "{method} {path} with token {token:?}: {answer:?}"
            );
            assert_eq!(
                answer.code(),
                "unauthenticated",
                "{method} {path}: {answer:?}"
            );
        }
    }
    assert_eq!(app.available(&alice), "100.00");
    app.finish();
}

/// The server reads a request's body before it answers, so a request refused before its
/// handler needs the body (here for want of a caller) leaves its keep-alive connection
/// usable. It used to answer at once and leave the body unread; hyper then closed the
/// connection after the answer, without `Connection: close`, whenever the body had not yet
/// arrived, and a client that pooled the connection got no answer to its next request (the
/// test above failed so, "Peer disconnected", in about one full run of the suite in two).
/// A client that asks before sending its body (`Expect: 100-continue`, as curl does for large
/// bodies) makes that case certain: it sends the body only once asked for it.
pub fn a_request_refused_before_its_body_is_read_leaves_the_connection_usable(backend: Backend) {
    use std::io::{BufRead, Read, Write};
    let app = App::start(backend);
    let address = app.url.strip_prefix("http://").expect("an http URL");
    let mut stream = std::net::TcpStream::connect(address).expect("connects");
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(20)))
        .expect("a read timeout");
    let body = json!({"pin": PIN, "password": "correct horse"}).to_string();
    let head = format!(
        "PUT /v1/me/pin HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\n\
         Expect: 100-continue\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).expect("writes");
    // Nothing follows an answer until the next request, so the reader never reads past one.
    let mut reader = std::io::BufReader::new(stream.try_clone().expect("a second handle"));
    let mut answer = || {
        let mut status_line = String::new();
        reader.read_line(&mut status_line).expect("reads");
        let mut length = 0;
        loop {
            let mut header = String::new();
            reader.read_line(&mut header).expect("reads");
            let header = header.trim_end().to_ascii_lowercase();
            if header.is_empty() {
                break;
            }
            if let Some(value) = header.strip_prefix("content-length:") {
                length = value.trim().parse().expect("a length");
            }
        }
        let mut rest = vec![0; length];
        reader.read_exact(&mut rest).expect("reads the body");
        status_line
    };
    let asked = answer();
    assert!(
        asked.starts_with("HTTP/1.1 100"),
        "the server asks for the body before it answers: {asked:?}"
    );
    stream.write_all(body.as_bytes()).expect("writes the body");
    let refused = answer();
    assert!(refused.starts_with("HTTP/1.1 401"), "{refused:?}");
    let next = format!("GET /healthz HTTP/1.1\r\nHost: {address}\r\n\r\n");
    stream.write_all(next.as_bytes()).expect("writes");
    let answered = answer();
    assert!(answered.starts_with("HTTP/1.1 200"), "{answered:?}");
    app.finish();
}

/// What a second person sends to a route naming the first one's object: a body that would be
/// accepted from the owner, so that only the ownership check can refuse it.
struct Attempt {
    method: &'static str,
    path: &'static str,
    body: Value,
    /// `None`: refused (403 or 404). `Some(why)`: the route acts on the caller's own data or
    /// on what is public, so it may answer 2xx, but never with the first person's data.
    own: Option<&'static str>,
}

fn attempt(method: &'static str, path: &'static str, body: Value) -> Attempt {
    Attempt {
        method,
        path,
        body,
        own: None,
    }
}

pub fn no_route_answers_a_second_person_with_the_first_ones_objects(backend: Backend) {
    let app = App::start(backend);
    let operator = app.operator();
    // Alice: a shop with an app and a trade, an escrow purchase, a top-up, a transfer and a
    // webhook endpoint; and a fund whose manager (a fund company's account, shown in its
    // public report) is not Mallory.
    let shop = open_shop(&app, "alice@example.com", false);
    let alice = shop.owner.clone();
    let movement = app.top_up(&alice, "300.00", &alice.card_id)["id"]
        .as_str()
        .expect("a movement")
        .to_owned();
    let seller = app.person("seller@example.com", "0");
    let mallory = app.person("mallory@example.com", "300.00");
    app.person("fundco@example.com", "0");
    let money = |yuan: &str| json!({"amount": yuan, "currency": "CNY"});
    let escrow = app.post(
        "/v1/trades",
        &seller.token,
        None,
        json!({"out_trade_no": "T-1", "subject": "a lamp", "amount": money("50.00"),
               "buyer": {"user_id": alice.id}}),
    );
    let escrow = escrow.body["id"].as_str().expect("a trade").to_owned();
    let paid = app.post(
        &format!("/v1/trades/{escrow}/pay"),
        &alice.token,
        Some("pay"),
        json!({"pin": PIN}),
    );
    assert_eq!(paid.status, 200, "{paid:?}");
    let transfer = app.post(
        "/v1/transfers",
        &alice.token,
        Some("t"),
        json!({"to": {"login": "seller@example.com"}, "amount": money("10.00"), "pin": PIN}),
    );
    assert_eq!(transfer.status, 201, "{transfer:?}");
    let transfer = transfer.body["id"].as_str().expect("a transfer").to_owned();
    let counter = app.post(
        &format!("/v1/merchants/{}/trades", shop.merchant_id),
        &alice.token,
        None,
        json!({"out_trade_no": "C-1", "amount": money("8.00"), "subject": "tea"}),
    );
    assert_eq!(counter.status, 201, "{counter:?}");
    let counter = counter.body["trade"]["id"]
        .as_str()
        .expect("a trade")
        .to_owned();
    let endpoint = app.post(
        "/v1/webhook-endpoints",
        &alice.token,
        None,
        json!({"url": "http://127.0.0.1:9/hook"}),
    );
    let endpoint = endpoint.body["id"]
        .as_str()
        .expect("an endpoint")
        .to_owned();
    let fund = app.post(
        "/v1/funds",
        &operator.token,
        None,
        json!({"name": "Pocket", "currency": "CNY", "manager": {"login": "fundco@example.com"}}),
    );
    let fund = fund.body["id"].as_str().expect("a fund").to_owned();
    let consent = app.post(
        "/v1/credit/consents",
        &alice.token,
        None,
        json!({"merchant_id": shop.merchant_id}),
    );
    assert_eq!(consent.status, 201, "{consent:?}");
    // A deposit Alice's shop held of Alice herself, waived, charged beyond her wallet: a hold
    // and a debt of hers.
    let funding = app.post(
        "/v1/credit/funding",
        &operator.token,
        Some("fund"),
        json!({"amount": money("10000.00")}),
    );
    assert_eq!(funding.status, 201, "{funding:?}");
    let hold = app.post(
        &format!("/v1/merchants/{}/holds", shop.merchant_id),
        &alice.token,
        None,
        json!({"person": {"user_id": alice.id}, "out_order_no": "H-1", "title": "a bike",
               "amount": money("5000.00"), "threshold": 350}),
    );
    assert_eq!(hold.status, 201, "{hold:?}");
    let hold = hold.body["id"].as_str().expect("a hold").to_owned();
    let waived = app.post(
        &format!("/v1/holds/{hold}/authorize"),
        &alice.token,
        Some("auth"),
        json!({"pin": PIN}),
    );
    assert_eq!(waived.body["status"], "WAIVED", "{waived:?}");
    let charged = app.post(
        &format!("/v1/holds/{hold}/charge"),
        &alice.token,
        Some("charge"),
        json!({"amount": money("5000.00")}),
    );
    let debt = charged.body["debt_id"]
        .as_str()
        .unwrap_or_else(|| panic!("a debt: {charged:?}"))
        .to_owned();
    let before = (app.balance(&alice), app.balance(&mallory));

    let pin = json!({"pin": PIN});
    let attempts = [
        attempt(
            "put",
            "/v1/apps/{app_id}/public-key",
            json!({"public_key": "x"}),
        ),
        attempt("get", "/v1/apps/{app_id}/platform-key", Value::Null),
        attempt("delete", "/v1/credit/consents/{merchant_id}", Value::Null),
        attempt(
            "post",
            "/v1/merchants/{id}/credit-checks",
            json!({"person": {"login": "alice@example.com"}, "threshold": 350}),
        ),
        attempt("get", "/v1/merchants/{id}/consents", Value::Null),
        attempt("get", "/v1/merchants/{id}/holds", Value::Null),
        attempt(
            "post",
            "/v1/merchants/{id}/holds",
            json!({"person": {"login": "mallory@example.com"}, "out_order_no": "H-2",
                   "title": "mine", "amount": money("1.00")}),
        ),
        attempt("get", "/v1/holds/{id}", Value::Null),
        attempt("post", "/v1/holds/{id}/authorize", pin.clone()),
        attempt(
            "post",
            "/v1/holds/{id}/charge",
            json!({"amount": money("1.00")}),
        ),
        attempt("post", "/v1/holds/{id}/unfreeze", Value::Null),
        attempt(
            "post",
            "/v1/debts/{id}/repay",
            json!({"amount": money("1.00"), "pin": PIN}),
        ),
        Attempt {
            own: Some("a fund's report is public, as a fund's size is"),
            ..attempt("get", "/v1/funds/{id}", Value::Null)
        },
        Attempt {
            own: Some("the caller's own holding"),
            ..attempt("get", "/v1/funds/{id}/holding", Value::Null)
        },
        attempt(
            "post",
            "/v1/funds/{id}/incomes",
            json!({"day": "2027-01-15", "income": "1.0000"}),
        ),
        Attempt {
            own: Some("the caller redeems their own units (and has none)"),
            ..attempt(
                "post",
                "/v1/funds/{id}/redemptions",
                json!({"amount": money("1.00"), "instant": true, "pin": PIN}),
            )
        },
        Attempt {
            own: Some("the caller buys with their own money"),
            ..attempt(
                "post",
                "/v1/funds/{id}/subscriptions",
                json!({"amount": money("1.00"), "pin": PIN}),
            )
        },
        attempt("get", "/v1/merchants/{id}", Value::Null),
        attempt("get", "/v1/merchants/{id}/apps", Value::Null),
        attempt(
            "post",
            "/v1/merchants/{id}/apps",
            json!({"name": "mine", "escrow": false}),
        ),
        attempt("get", "/v1/merchants/{id}/notifications", Value::Null),
        attempt("get", "/v1/merchants/{id}/settlements", Value::Null),
        attempt(
            "get",
            "/v1/merchants/{id}/statement?date=2027-01-15",
            Value::Null,
        ),
        attempt("get", "/v1/merchants/{id}/trades", Value::Null),
        attempt(
            "post",
            "/v1/merchants/{id}/trades",
            json!({"out_trade_no": "M-1", "amount": money("1.00"), "subject": "mine"}),
        ),
        attempt(
            "post",
            "/v1/merchants/{id}/trades/{trade}/refunds",
            json!({"amount": money("1.00"), "out_request_no": "R-1"}),
        ),
        attempt("put", "/v1/merchants/{id}/fee-rate", json!({"fee_ppm": 0})),
        attempt("get", "/v1/movements/{id}", Value::Null),
        attempt("get", "/v1/trades/{id}", Value::Null),
        attempt("post", "/v1/trades/{id}/close", json!({})),
        attempt("post", "/v1/trades/{id}/confirm", pin.clone()),
        attempt(
            "post",
            "/v1/trades/{id}/decision",
            json!({"decision": "refund"}),
        ),
        attempt("post", "/v1/trades/{id}/pay", pin.clone()),
        attempt(
            "post",
            "/v1/trades/{id}/refund-request",
            json!({"amount": money("50.00"), "reason": "mine now"}),
        ),
        attempt("post", "/v1/trades/{id}/refund-request/agree", json!({})),
        attempt("post", "/v1/trades/{id}/refund-request/refuse", json!({})),
        attempt("post", "/v1/trades/{id}/ship", json!({"tracking": "SF1"})),
        attempt("get", "/v1/transfers/{id}", Value::Null),
        attempt(
            "post",
            "/v1/users/{id}/verification",
            json!({"level": "verified"}),
        ),
        attempt("get", "/v1/webhook-endpoints/{id}/deliveries", Value::Null),
    ];
    // Every route naming an object is in the table.
    let named: BTreeSet<(String, String)> = operations(&app)
        .into_iter()
        .filter(|(_, path, _)| path.contains('{'))
        .map(|(method, path, _)| (method, path))
        .collect();
    let tried: BTreeSet<(String, String)> = attempts
        .iter()
        .map(|a| {
            let path = a.path.split('?').next().unwrap_or(a.path);
            (a.method.to_owned(), path.to_owned())
        })
        .collect();
    assert_eq!(
        tried, named,
        "every route that names an object is tried with another person's"
    );
    for a in &attempts {
        let id = |name: &str| -> String {
            match (name, a.path) {
                ("app_id", _) => shop.app_id.clone(),
                ("trade", _) => counter.clone(),
                (_, p) if p.starts_with("/v1/funds") => fund.clone(),
                (_, p) if p.starts_with("/v1/credit") => shop.merchant_id.clone(),
                (_, p) if p.starts_with("/v1/holds") => hold.clone(),
                (_, p) if p.starts_with("/v1/debts") => debt.clone(),
                (_, p) if p.starts_with("/v1/merchants") => shop.merchant_id.clone(),
                (_, p) if p.starts_with("/v1/movements") => movement.clone(),
                (_, p) if p.starts_with("/v1/trades") => escrow.clone(),
                (_, p) if p.starts_with("/v1/transfers") => transfer.clone(),
                (_, p) if p.starts_with("/v1/users") => alice.id.clone(),
                (_, p) if p.starts_with("/v1/webhook-endpoints") => endpoint.clone(),
                _ => panic!("no id of alice's for {name} in {}", a.path),
            }
        };
        let path = filled(a.path, id);
        let body = (!a.body.is_null()).then(|| a.body.to_string());
        let key = format!("mallory-{}-{path}", a.method);
        let answer = app.send(
            &a.method.to_uppercase(),
            &path,
            Some(&mallory.token),
            Some(&key),
            body.as_deref(),
        );
        let text = answer.body.to_string();
        // Nothing of Alice's in any answer: not her id, login, card, trade or endpoint.
        for secret in [
            &alice.id,
            &alice.card_id,
            &escrow,
            &counter,
            &transfer,
            &endpoint,
            &movement,
            &hold,
            &debt,
        ] {
            assert!(
                !text.contains(secret.as_str()),
                "{} {path} shows alice's {secret}: {text}",
                a.method
            );
        }
        assert!(
            !text.contains("alice@example.com") && !text.contains("a lamp"),
            "{} {path}: {text}",
            a.method
        );
        match a.own {
            None => assert!(
                matches!(answer.status, 403 | 404),
                "{} {path} answered another person's object: {answer:?}",
                a.method
            ),
            Some(why) => assert!(
                answer.status < 500,
                "{} {path} ({why}): {answer:?}",
                a.method
            ),
        }
    }
    // Only Mallory's own subscription moved money: 1.00 of hers into the fund.
    assert_eq!(app.balance(&alice), before.0);
    assert_eq!(app.available(&mallory), "299.00");
    assert_eq!(before.1.0, "300.00");
    app.finish();
}

/// A request whose headers and first body bytes are sent, the rest held back: it holds its
/// place in the server until the body is finished or the server gives up on it.
struct Trickle {
    stream: std::net::TcpStream,
    rest: String,
}

impl Trickle {
    fn start(app: &App, path: &str, token: &str, key: &str, body: &Value) -> Trickle {
        use std::io::Write;
        let body = body.to_string();
        let (head, rest) = body.split_at(body.len() / 2);
        let address = app.url.strip_prefix("http://").expect("an http URL");
        let mut stream = std::net::TcpStream::connect(address).expect("connects");
        stream
            .set_read_timeout(Some(std::time::Duration::from_secs(20)))
            .expect("a read timeout");
        write!(
            stream,
            "POST {path} HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {token}\r\n\
             Idempotency-Key: {key}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{head}",
            body.len()
        )
        .expect("writes");
        stream.flush().expect("flushes");
        Trickle {
            stream,
            rest: rest.to_owned(),
        }
    }

    /// Sends the rest of the body (if `finish`) and reads the answer's status.
    fn answer(mut self, finish: bool) -> u16 {
        use std::io::{Read, Write};
        if finish {
            self.stream
                .write_all(self.rest.as_bytes())
                .expect("writes the rest");
        }
        let mut response = Vec::new();
        let _ = self.stream.read_to_end(&mut response);
        String::from_utf8_lossy(&response)
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .expect("a status line")
    }
}

/// Three slow payments fill a server that takes three requests at once: the next request is
/// refused with 503 at once, not queued; once they finish, the server answers again, and the
/// slow payments themselves went through.
pub fn the_server_sheds_load_beyond_its_limit_and_recovers(backend: Backend) {
    let limits = formica_api::Limits {
        in_flight: 3,
        ..formica_api::Limits::default()
    };
    let app = App::start_limited(backend, limits);
    let alice = app.person("alice@example.com", "100.00");
    app.person("bob@example.com", "0");
    let pay = json!({"to": {"login": "bob@example.com"},
                     "amount": {"amount": "1.00", "currency": "CNY"}, "pin": PIN});
    let slow: Vec<Trickle> = (0..3)
        .map(|n| {
            Trickle::start(
                &app,
                "/v1/transfers",
                &alice.token,
                &format!("slow-{n}"),
                &pay,
            )
        })
        .collect();
    // Once the server holds the three (it reads their headers at once), a fourth is refused.
    for _ in 0..2000 {
        if app.server().state.requests_in_flight() == 3 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    assert_eq!(app.server().state.requests_in_flight(), 3);
    let shed = app.get("/v1/wallet", &alice.token);
    assert_eq!(shed.status, 503, "{shed:?}");
    assert_eq!(shed.code(), "overloaded", "{shed:?}");
    for trickle in slow {
        assert_eq!(trickle.answer(true), 201);
    }
    assert_eq!(app.get("/v1/wallet", &alice.token).status, 200);
    assert_eq!(app.available(&alice), "97.00");
    app.finish();
}

/// A client that stops sending its body half way is answered 408 once the request timeout
/// passes, its payment is not made, and its place is free again.
pub fn a_client_too_slow_to_send_its_body_is_timed_out(backend: Backend) {
    let limits = formica_api::Limits {
        in_flight: 1,
        request_timeout: std::time::Duration::from_millis(500),
        ..formica_api::Limits::default()
    };
    let app = App::start_limited(backend, limits);
    let alice = app.person("alice@example.com", "100.00");
    app.person("bob@example.com", "0");
    let pay = json!({"to": {"login": "bob@example.com"},
                     "amount": {"amount": "1.00", "currency": "CNY"}, "pin": PIN});
    let stalled = Trickle::start(&app, "/v1/transfers", &alice.token, "stalled", &pay);
    assert_eq!(stalled.answer(false), 408);
    assert_eq!(app.available(&alice), "100.00");
    let paid = app.post("/v1/transfers", &alice.token, Some("after"), pay);
    assert_eq!(paid.status, 201, "{paid:?}");
    app.finish();
}

/// Guessing a password is rate limited: five wrong ones in a row lock signing in for 15
/// minutes, the right password included, and an unknown login is answered exactly as a
/// wrong password (so sign-in does not tell which logins exist).
pub fn wrong_passwords_lock_signing_in_for_a_while(backend: Backend) {
    let app = App::start(backend);
    app.person("alice@example.com", "0");
    let sign_in = |login: &str, password: &str| {
        app.send(
            "POST",
            "/v1/sessions",
            None,
            None,
            Some(&json!({"login": login, "password": password}).to_string()),
        )
    };
    let unknown = sign_in("nobody@example.com", "whatever-it-is");
    let wrong = sign_in("alice@example.com", "not her password");
    assert_eq!((unknown.status, wrong.status), (401, 401), "{wrong:?}");
    assert_eq!(unknown.code(), "signin_failed");
    assert_eq!(wrong.code(), "signin_failed");
    for _ in 0..4 {
        sign_in("alice@example.com", "not her password");
    }
    let locked = sign_in("alice@example.com", "correct horse");
    assert_eq!(locked.status, 429, "{locked:?}");
    assert_eq!(locked.code(), "signin_locked");
    app.advance(16 * 60 * super::app::SECOND);
    assert_eq!(sign_in("alice@example.com", "correct horse").status, 201);
    app.finish();
}

/// A raw connection to the app's server.
fn connect(app: &App) -> std::net::TcpStream {
    let address = app.url.trim_start_matches("http://");
    let stream = std::net::TcpStream::connect(address).expect("connects");
    // A bound on a test that would otherwise hang, not a measurement.
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(60)))
        .expect("a read timeout");
    stream
}

/// Everything the server sends until it closes the connection.
fn read_to_close(stream: &mut std::net::TcpStream) -> String {
    use std::io::Read;
    let mut answer = Vec::new();
    match stream.read_to_end(&mut answer) {
        Ok(_) => {}
        Err(error) if error.kind() == std::io::ErrorKind::ConnectionReset => {}
        Err(error) => panic!("the server kept the connection open: {error}"),
    }
    String::from_utf8_lossy(&answer).into_owned()
}

/// A slow-loris client sends half a request head and waits: the server closes the
/// connection once the header timeout passes (answering 408 or not at all), and others are
/// served meanwhile and afterwards.
#[test]
fn a_client_too_slow_to_send_its_headers_is_disconnected() {
    use std::io::Write;
    let limits = formica_api::Limits {
        header_timeout: std::time::Duration::from_millis(500),
        ..formica_api::Limits::default()
    };
    let app = App::start_limited(Backend::Sqlite, limits);
    let mut loris = connect(&app);
    loris
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: formica\r\nX-Slow: ")
        .expect("writes");
    assert_eq!(
        app.send("GET", "/healthz", None, None, None).status,
        200,
        "others are served"
    );
    let answer = read_to_close(&mut loris);
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
        "{answer}"
    );
    assert_eq!(app.send("GET", "/healthz", None, None, None).status, 200);
    app.finish();
}

/// With two connections allowed and two held open, a third is answered 503 `overloaded`
/// and closed; once the two leave, the server takes connections again.
#[test]
fn connections_beyond_the_limit_are_refused_and_the_server_recovers() {
    let limits = formica_api::Limits {
        connections: 2,
        ..formica_api::Limits::default()
    };
    let app = App::start_limited(Backend::Sqlite, limits);
    let held: Vec<_> = (0..2).map(|_| connect(&app)).collect();
    // The server takes connections in order: the two are counted before the third.
    let mut third = connect(&app);
    let answer = read_to_close(&mut third);
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("\"code\":\"overloaded\""), "{answer}");
    let body = answer.split("\r\n\r\n").nth(1).expect("a body");
    let error: serde_json::Value = serde_json::from_str(body).expect("JSON");
    assert_eq!(error["error"]["code"], "overloaded");
    drop(held);
    // The server notices the two are gone as it reads their end; then it serves again.
    let mut status = 0;
    for _ in 0..200 {
        status = app.send("GET", "/healthz", None, None, None).status;
        if status == 200 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert_eq!(status, 200);
    app.finish();
}

/// A request refused before its body was read (401 to an anonymous POST whose chunked body,
/// of no announced length, is still on its way: bodies of a given length are read first) is
/// answered `Connection: close`: the server closes that connection after the answer, and a
/// client told so does not send its next request into it.
#[test]
fn a_refusal_before_the_body_is_read_says_the_connection_closes() {
    use std::io::Write;
    let app = App::start(Backend::Sqlite);
    let mut client = connect(&app);
    client
        .write_all(
            b"POST /v1/transfers HTTP/1.1\r\nHost: formica\r\ncontent-type: application/json\r\n\
              transfer-encoding: chunked\r\n\r\n",
        )
        .expect("writes the head");
    let answer = read_to_close(&mut client).to_ascii_lowercase();
    assert!(answer.starts_with("http/1.1 401"), "{answer}");
    assert!(answer.contains("\r\nconnection: close\r\n"), "{answer}");
    app.finish();
}

/// An attempt is counted when it starts and settled when its check ends; one cut off between
/// (the client hung up during the check, the request timed out, the server died) stays
/// counted. Five such attempts lock signing in for 15 minutes, as five wrong passwords do,
/// and not forever: a count left at the limit used to refuse every later attempt, the right
/// password included, with nothing to clear it (five sign-ins with a wrong password, each
/// hung up a few milliseconds after it was sent, did it to anyone whose login was known).
pub fn attempts_cut_off_before_their_check_lock_signing_in_for_a_while_not_forever(
    backend: Backend,
) {
    let app = App::start(backend);
    app.person("alice@example.com", "0");
    // What five sign-ins cut off after their count leave behind.
    app.db
        .execute("UPDATE users SET signin_failures = 5 WHERE login = 'alice@example.com'");
    let sign_in = || {
        app.send(
            "POST",
            "/v1/sessions",
            None,
            None,
            Some(&json!({"login": "alice@example.com", "password": "correct horse"}).to_string()),
        )
    };
    assert_eq!(sign_in().code(), "signin_locked");
    app.advance(16 * 60 * super::app::SECOND);
    let after = sign_in();
    assert_eq!(after.status, 201, "the lock ends: {after:?}");
    app.finish();
}
