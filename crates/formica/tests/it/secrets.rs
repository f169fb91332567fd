//! Secrets stay secret: a full run of `formica serve` with its most verbose log, driven
//! through sign-up, sign-in, wrong passwords and PINs, a PIN set and used for a top-up and a
//! transfer, a session ended, and a shop's app with its keys; then neither the log nor any
//! answer holds a password, a PIN or the platform's private key, and the log holds no
//! session token.

use std::io::Read;
use std::process::{Command, Stdio};

use serde_json::{Value, json};

const PASSWORD: &str = "wren-harbour-7Q";
const WRONG_PASSWORD: &str = "otter-lantern-3Z";
const PIN: &str = "975318";
const WRONG_PIN: &str = "864207";

struct Client {
    url: String,
    agent: ureq::Agent,
    /// Every answer's body, to be searched at the end.
    answers: std::cell::RefCell<Vec<String>>,
}

impl Client {
    fn send(&self, method: &str, path: &str, token: Option<&str>, body: Option<Value>) -> Value {
        let request = request_to(method, &format!("{}{path}", self.url), token);
        let response = match body {
            Some(body) => self.agent.run(
                request
                    .header("Content-Type", "application/json")
                    .header(
                        "Idempotency-Key",
                        format!("{method}-{path}-{}", self.count()),
                    )
                    .body(body.to_string())
                    .expect("a request"),
            ),
            None => self.agent.run(request.body(()).expect("a request")),
        }
        .expect("the server answers");
        let text = response
            .into_body()
            .read_to_string()
            .expect("a readable body");
        self.answers.borrow_mut().push(text.clone());
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }

    fn count(&self) -> usize {
        self.answers.borrow().len()
    }
}

fn request_to(method: &str, url: &str, token: Option<&str>) -> ureq::http::request::Builder {
    let request = ureq::http::Request::builder().method(method).uri(url);
    match token {
        Some(token) => request.header("Authorization", format!("Bearer {token}")),
        None => request,
    }
}

#[test]
fn no_password_pin_token_or_private_key_reaches_the_log_or_an_answer() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut child = Command::new(env!("CARGO_BIN_EXE_formica"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--bank-delay-ms",
            "0",
            "--data-dir",
        ])
        .arg(dir.path())
        .env("FORMICA_LOG", "trace")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("formica starts");
    let mut stderr = child.stderr.take().expect("piped");
    let log = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let mut stdout = std::io::BufReader::new(child.stdout.take().expect("piped"));
    let mut line = String::new();
    std::io::BufRead::read_line(&mut stdout, &mut line).expect("reads");
    let client = Client {
        url: line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("the first line names the address: {line:?}"))
            .to_owned(),
        agent: ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into(),
        answers: Default::default(),
    };
    let mut tokens = Vec::new();
    for login in ["alice@example.com", "bob@example.com"] {
        client.send(
            "POST",
            "/v1/users",
            None,
            Some(json!({"login": login, "password": PASSWORD})),
        );
        let wrong = client.send(
            "POST",
            "/v1/sessions",
            None,
            Some(json!({"login": login, "password": WRONG_PASSWORD})),
        );
        assert_eq!(wrong["error"]["code"], "signin_failed", "{wrong}");
        let session = client.send(
            "POST",
            "/v1/sessions",
            None,
            Some(json!({"login": login, "password": PASSWORD})),
        );
        let token = session["token"].as_str().expect("a token").to_owned();
        client.send(
            "PUT",
            "/v1/me/pin",
            Some(&token),
            Some(json!({"pin": PIN, "password": PASSWORD})),
        );
        tokens.push(token);
    }
    let alice = &tokens[0];
    let card = client.send(
        "POST",
        "/v1/cards",
        Some(alice),
        Some(json!({"bank": "ICBC", "number": "6222020200112233", "holder": "Alice"})),
    );
    let card = card["id"].as_str().expect("a card").to_owned();
    let money = |yuan: &str| json!({"amount": yuan, "currency": "CNY"});
    let refused = client.send(
        "POST",
        "/v1/top-ups",
        Some(alice),
        Some(json!({"card_id": card, "amount": money("100.00"), "pin": WRONG_PIN})),
    );
    assert_eq!(refused["error"]["code"], "pin_incorrect", "{refused}");
    let top_up = client.send(
        "POST",
        "/v1/top-ups",
        Some(alice),
        Some(json!({"card_id": card, "amount": money("100.00"), "pin": PIN})),
    );
    let movement = top_up["id"].as_str().expect("a movement").to_owned();
    for _ in 0..500 {
        let now = client.send(
            "GET",
            &format!("/v1/movements/{movement}"),
            Some(alice),
            None,
        );
        if now["status"] != "pending" {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let paid = client.send(
        "POST",
        "/v1/transfers",
        Some(alice),
        Some(json!({"to": {"login": "bob@example.com"}, "amount": money("10.00"), "pin": PIN})),
    );
    assert!(paid["id"].is_string(), "{paid}");
    // A shop's app: the platform's key pair is made for it; only the public half leaves.
    let shop = client.send(
        "POST",
        "/v1/merchants",
        Some(alice),
        Some(
            json!({"name": "Tea House", "contact": "alice@example.com", "category": "food",
                    "country": "CN", "currency": "CNY", "card_id": card}),
        ),
    );
    let shop = shop["id"].as_str().expect("a shop").to_owned();
    let app = client.send(
        "POST",
        &format!("/v1/merchants/{shop}/apps"),
        Some(alice),
        Some(json!({"name": "till", "escrow": false})),
    );
    let app = app["app_id"].as_str().expect("an app").to_owned();
    client.send(
        "GET",
        &format!("/v1/apps/{app}/platform-key"),
        Some(alice),
        None,
    );
    client.send("DELETE", "/v1/sessions/current", Some(&tokens[1]), None);
    crate::serve::terminate(&child);
    assert!(child.wait().expect("exits").success());
    let log = log.join().expect("the log reader");
    // Every request is in the access log.
    assert!(
        log.matches("request").count() >= client.count(),
        "the run logged every request:\n{log}"
    );
    let answers = client.answers.borrow().join("\n");
    for (what, secret) in [
        ("a password", PASSWORD),
        ("a wrong password", WRONG_PASSWORD),
        ("a PIN", PIN),
        ("a wrong PIN", WRONG_PIN),
        ("a private key", "PRIVATE KEY"),
    ] {
        assert!(!log.contains(secret), "the log holds {what}");
        assert!(!answers.contains(secret), "an answer holds {what}");
    }
    for token in &tokens {
        assert!(
            !log.contains(token.as_str()),
            "the log holds a session token"
        );
    }
}
