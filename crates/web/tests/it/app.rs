//! A real server for the page tests: the engine on a fresh SQLite or PostgreSQL store, the API
//! and the pages on a real TCP port, a manual clock, and helpers that set the world up through
//! the REST API (the pages under test are then driven by a browser or a form client).

use std::time::Duration;

use formica_api::gateway::sign;
use formica_api::{Server, ServerConfig};
use formica_engine::{Clock, Config};
use formica_testkit::{Backend, TestDb};
use rsa::{RsaPrivateKey, RsaPublicKey};
use serde_json::{Value, json};

/// The manual clock's start: 2027-01-15 12:00 UTC.
pub const START: u64 = 1_800_000_000_000_000_000;

pub const PASSWORD: &str = "correct horse";
pub const PIN: &str = "246810";

/// A running server.
pub struct App {
    pub url: String,
    pub clock: Clock,
    server: Option<Server>,
    pub runtime: tokio::runtime::Runtime,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    db: TestDb,
    agent: ureq::Agent,
}

/// A person with a session token.
#[derive(Clone, Debug)]
pub struct Person {
    pub login: String,
    pub token: String,
    pub card_id: String,
}

impl App {
    pub fn start(backend: Backend) -> App {
        App::start_with(backend, None)
    }

    /// With `--public-url`.
    pub fn start_with(backend: Backend, public_url: Option<&str>) -> App {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a runtime");
        let db = backend.fresh();
        let clock = Clock::manual(START);
        let config = ServerConfig {
            location: db.location.clone(),
            engine: Config {
                clock: clock.clone(),
                ..Config::default()
            },
            bank_delay: Duration::ZERO,
            private_webhooks: true,
            public_url: public_url.map(str::to_owned),
            limits: Default::default(),
        };
        let server = runtime
            .block_on(Server::start(config))
            .expect("the server starts");
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("a port");
        let url = format!("http://{}", listener.local_addr().expect("an address"));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let routes = server.router_with(formica_web::router());
        runtime.spawn(async move {
            axum::serve(listener, routes)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await
                .expect("serves");
        });
        App {
            url,
            clock,
            server: Some(server),
            runtime,
            stop: Some(stop),
            db,
            agent: ureq::Agent::config_builder()
                .http_status_as_error(false)
                .max_redirects(0)
                .timeout_global(Some(Duration::from_secs(30)))
                .build()
                .into(),
        }
    }

    pub fn server(&self) -> &Server {
        self.server.as_ref().expect("running")
    }

    /// A JSON request to the API.
    pub fn api(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        key: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut request = axum::http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.url));
        if let Some(token) = token {
            request = request.header("Authorization", format!("Bearer {token}"));
        }
        if let Some(key) = key {
            request = request.header("Idempotency-Key", key);
        }
        let response = match body {
            Some(body) => self.agent.run(
                request
                    .header("Content-Type", "application/json")
                    .body(body.to_string())
                    .expect("a request"),
            ),
            None => self.agent.run(request.body(()).expect("a request")),
        }
        .expect("the server answers");
        let status = response.status().as_u16();
        let text = response.into_body().read_to_string().expect("a body");
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// A POST that must succeed, returning its body.
    pub fn post(&self, path: &str, token: &str, key: Option<&str>, body: Value) -> Value {
        let (status, answer) = self.api("POST", path, Some(token), key, Some(body));
        assert!((200..300).contains(&status), "{path}: {status} {answer}");
        answer
    }

    /// Signs in through the API.
    pub fn sign_in(&self, login: &str, password: &str) -> Person {
        let (status, session) = self.api(
            "POST",
            "/v1/sessions",
            None,
            None,
            Some(json!({"login": login, "password": password})),
        );
        assert_eq!(status, 201, "{session}");
        Person {
            login: login.to_owned(),
            token: session["token"].as_str().expect("a token").to_owned(),
            card_id: String::new(),
        }
    }

    /// Signs up, sets the PIN, links a card and tops up `yuan` (if not "0").
    pub fn person(&self, login: &str, yuan: &str) -> Person {
        let (status, body) = self.api(
            "POST",
            "/v1/users",
            None,
            None,
            Some(json!({"login": login, "password": PASSWORD})),
        );
        assert_eq!(status, 201, "{body}");
        let person = self.sign_in(login, PASSWORD);
        let (status, body) = self.api(
            "PUT",
            "/v1/me/pin",
            Some(&person.token),
            None,
            Some(json!({"pin": PIN, "password": PASSWORD})),
        );
        assert_eq!(status, 204, "{body}");
        let card = self.post(
            "/v1/cards",
            &person.token,
            None,
            json!({"bank": "ICBC", "number": "6222020200112233", "holder": login}),
        );
        let person = Person {
            card_id: card["id"].as_str().expect("an id").to_owned(),
            ..person
        };
        if yuan != "0" {
            self.post(
                "/v1/top-ups",
                &person.token,
                Some(&format!("top-up-{login}")),
                json!({"card_id": person.card_id, "amount": {"amount": yuan, "currency": "CNY"},
                       "pin": PIN}),
            );
            self.wait_for(|| self.available(&person) == yuan);
        }
        person
    }

    /// An operator, signed in.
    pub fn operator(&self, login: &str) -> Person {
        let state = self.server().state.clone();
        self.runtime
            .block_on(formica_api::create_operator(&state, login, PASSWORD))
            .expect("an operator");
        self.sign_in(login, PASSWORD)
    }

    /// Opens a shop for `owner` and returns its id.
    pub fn shop(&self, owner: &Person, name: &str) -> String {
        let merchant = self.post(
            "/v1/merchants",
            &owner.token,
            None,
            json!({"name": name, "contact": owner.login, "category": "tea", "country": "CN",
                   "currency": "CNY", "card_id": owner.card_id}),
        );
        merchant["id"].as_str().expect("an id").to_owned()
    }

    /// A gateway app of `shop` with a new key: its app_id, the shop's private key and the
    /// platform's public key.
    pub fn gateway_app(
        &self,
        owner: &Person,
        shop: &str,
        escrow: bool,
    ) -> (String, RsaPrivateKey, RsaPublicKey) {
        let key = sign::generate_key();
        let created = self.post(
            &format!("/v1/merchants/{shop}/apps"),
            &owner.token,
            None,
            json!({"name": "web", "escrow": escrow,
                   "public_key": sign::public_key_pem(&key.to_public_key())}),
        );
        let app_id = created["app_id"].as_str().expect("an app").to_owned();
        let (_, platform) = self.api(
            "GET",
            &format!("/v1/apps/{app_id}/platform-key"),
            Some(&owner.token),
            None,
            None,
        );
        let platform = sign::parse_public_key(platform["base64"].as_str().expect("a key"))
            .expect("the key parses");
        (app_id, key, platform)
    }

    /// What a person can spend, in CNY, as the API says it.
    pub fn available(&self, person: &Person) -> String {
        let (_, wallet) = self.api("GET", "/v1/wallet", Some(&person.token), None, None);
        wallet["balances"]
            .as_array()
            .and_then(|b| b.iter().find(|b| b["currency"] == "CNY"))
            .map_or_else(
                || "0.00".to_owned(),
                |b| b["available"]["amount"].as_str().unwrap_or("").to_owned(),
            )
    }

    /// Moves the clock and runs the engine's timers.
    pub fn advance(&self, nanos: u64) {
        self.clock.advance(nanos);
        self.runtime
            .block_on(self.server().engine().tick())
            .expect("the timers run");
    }

    /// Waits (up to 10 s) until `done` holds: for the simulated bank's answers.
    pub fn wait_for(&self, done: impl Fn() -> bool) {
        for _ in 0..200 {
            if done() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("waited 10 s in vain");
    }

    /// Stops the server and checks the stored books.
    pub fn finish(mut self) {
        self.stop_server();
        let balance = self.db.open().trial_balance().expect("the trial balance");
        assert!(balance.holds(), "the trial balance holds: {balance:?}");
    }

    fn stop_server(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            server.shutdown();
        }
    }
}

impl Drop for App {
    fn drop(&mut self) {
        self.stop_server();
    }
}

/// A browser without a browser: a form client that keeps cookies, for the tests of what the
/// server refuses.
pub struct Visitor<'a> {
    app: &'a App,
    cookies: Vec<(String, String)>,
    agent: ureq::Agent,
}

/// A page as the visitor got it.
#[derive(Debug)]
pub struct Got {
    pub status: u16,
    pub location: Option<String>,
    pub body: String,
}

impl Got {
    /// The CSRF token of the page's forms.
    pub fn csrf(&self) -> String {
        self.body
            .split("name=\"csrf\" value=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .expect("a form with a token")
            .to_owned()
    }
}

impl<'a> Visitor<'a> {
    pub fn new(app: &'a App) -> Visitor<'a> {
        Visitor {
            app,
            cookies: Vec::new(),
            agent: ureq::Agent::config_builder()
                .http_status_as_error(false)
                .max_redirects(0)
                .build()
                .into(),
        }
    }

    fn send(&mut self, method: &str, path: &str, form: Option<&str>) -> Got {
        let url = if path.starts_with("http") {
            path.to_owned()
        } else {
            format!("{}{path}", self.app.url)
        };
        let cookie = self
            .cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ");
        let request = axum::http::Request::builder()
            .method(method)
            .uri(url)
            .header("Cookie", cookie);
        let response = match form {
            Some(form) => self.agent.run(
                request
                    .header("Content-Type", "application/x-www-form-urlencoded")
                    .body(form.to_owned())
                    .expect("a request"),
            ),
            None => self.agent.run(request.body(()).expect("a request")),
        }
        .expect("the server answers");
        for set in response.headers().get_all("set-cookie") {
            let set = set.to_str().expect("ASCII");
            let pair = set.split(';').next().unwrap_or("");
            if let Some((name, value)) = pair.split_once('=') {
                self.cookies.retain(|(k, _)| k != name);
                if !value.is_empty() {
                    self.cookies.push((name.to_owned(), value.to_owned()));
                }
            }
        }
        let status = response.status().as_u16();
        let location = response
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = response.into_body().read_to_string().expect("a body");
        Got {
            status,
            location,
            body,
        }
    }

    pub fn get(&mut self, path: &str) -> Got {
        self.send("GET", path, None)
    }

    pub fn post(&mut self, path: &str, fields: &[(&str, &str)]) -> Got {
        let form = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(fields)
            .finish();
        self.send("POST", path, Some(&form))
    }

    /// Signs in through the sign-in page.
    pub fn sign_in(&mut self, login: &str) {
        let page = self.get("/sign-in");
        let csrf = page.csrf();
        let done = self.post(
            "/sign-in",
            &[("csrf", &csrf), ("login", login), ("password", PASSWORD)],
        );
        assert_eq!(done.status, 303, "{}", done.body);
    }
}
