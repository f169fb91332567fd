//! A real server for the tests: the engine on a fresh SQLite or PostgreSQL store, the routes
//! on a real TCP port, a manual clock the tests move, and an HTTP client.

use std::time::Duration;

use formica_api::{Server, ServerConfig};
use formica_engine::{Clock, Config};
use formica_testkit::{Backend, TestDb};
use serde_json::{Value, json};

/// The manual clock's start: 2027-01-15 12:00 UTC.
pub const START: u64 = 1_800_000_000_000_000_000;
pub const SECOND: u64 = 1_000_000_000;
pub const DAY: u64 = 24 * 3600 * SECOND;

/// A running server and a client for it.
pub struct App {
    pub url: String,
    pub clock: Clock,
    server: Option<Server>,
    runtime: tokio::runtime::Runtime,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    pub db: TestDb,
    agent: ureq::Agent,
    limits: formica_api::Limits,
}

/// An answer: status and JSON body (Null when empty).
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub body: Value,
}

impl Answer {
    /// The error code of an error answer.
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }
}

/// A signed-in person.
#[derive(Clone, Debug)]
pub struct Person {
    pub id: String,
    pub token: String,
    pub card_id: String,
}

pub const PIN: &str = "246810";

impl App {
    pub fn start(backend: Backend) -> App {
        App::start_limited(backend, formica_api::Limits::default())
    }

    /// A server with these limits on requests in flight and their time.
    pub fn start_limited(backend: Backend, limits: formica_api::Limits) -> App {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a runtime");
        let mut app = App {
            url: String::new(),
            clock: Clock::manual(START),
            server: None,
            runtime,
            stop: None,
            db: backend.fresh(),
            agent: ureq::Agent::config_builder()
                .http_status_as_error(false)
                .timeout_global(Some(Duration::from_secs(30)))
                .build()
                .into(),
            limits,
        };
        app.start_server();
        app
    }

    /// Stops the server (finishing its queue) and starts a new one on the same books, as a
    /// restart would; the clock stays where it is.
    pub fn restart(&mut self) {
        self.stop_server();
        self.start_server();
    }

    fn start_server(&mut self) {
        let config = ServerConfig {
            location: self.db.location.clone(),
            engine: Config {
                clock: self.clock.clone(),
                ..Config::default()
            },
            bank_delay: Duration::ZERO,
            private_webhooks: true,
            public_url: None,
            limits: self.limits,
        };
        let server = self
            .runtime
            .block_on(Server::start(config))
            .expect("the server starts");
        let listener = self
            .runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("a port");
        self.url = format!("http://{}", listener.local_addr().expect("an address"));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let routes = server.router();
        let limits = server.limits();
        self.runtime.spawn(async move {
            formica_api::listen::serve(listener, routes, limits, async {
                let _ = stopped.await;
            })
            .await
            .expect("serves");
        });
        self.server = Some(server);
        self.stop = Some(stop);
    }

    pub fn server(&self) -> &Server {
        self.server.as_ref().expect("running")
    }

    /// Sends a request; `key` is the Idempotency-Key.
    pub fn send(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        key: Option<&str>,
        body: Option<&str>,
    ) -> Answer {
        let url = format!("{}{path}", self.url);
        let request = axum::http::Request::builder().method(method).uri(url);
        let request = match token {
            Some(token) => request.header("Authorization", format!("Bearer {token}")),
            None => request,
        };
        let request = match key {
            Some(key) => request.header("Idempotency-Key", key),
            None => request,
        };
        let response = match body {
            Some(body) => self.agent.run(
                request
                    .header("Content-Type", "application/json")
                    .body(body.to_owned())
                    .expect("a request"),
            ),
            None => self.agent.run(request.body(()).expect("a request")),
        }
        .expect("the server answers");
        let status = response.status().as_u16();
        let text = response
            .into_body()
            .read_to_string()
            .expect("a readable body");
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        Answer { status, body }
    }

    /// Announces a body of `bytes` and sends only its start, as a client pushing a huge body
    /// would: the server must answer without reading it all.
    pub fn send_oversized(&self, path: &str, token: &str, bytes: usize) -> Answer {
        use std::io::{Read, Write};
        let address = self.url.strip_prefix("http://").expect("an http URL");
        let mut stream = std::net::TcpStream::connect(address).expect("connects");
        write!(
            stream,
            "POST {path} HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {token}\r\n\
             Idempotency-Key: oversized\r\nContent-Type: application/json\r\n\
             Content-Length: {bytes}\r\nConnection: close\r\n\r\n{{\"note\": \""
        )
        .expect("writes");
        let _ = stream.write_all(&vec![b'x'; 64 * 1024]);
        let mut response = Vec::new();
        let _ = stream.read_to_end(&mut response);
        let text = String::from_utf8_lossy(&response);
        let status = text
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .expect("a status line");
        let body = text.split("\r\n\r\n").nth(1).unwrap_or("");
        Answer {
            status,
            body: serde_json::from_str(body).unwrap_or(Value::Null),
        }
    }

    /// POSTs a form body and returns the status, the Location header and the raw text.
    pub fn post_form(&self, path: &str, form: &str) -> (u16, Option<String>, String) {
        let request = axum::http::Request::builder()
            .method("POST")
            .uri(format!("{}{path}", self.url))
            .header(
                "Content-Type",
                "application/x-www-form-urlencoded;charset=utf-8",
            )
            .body(form.to_owned())
            .expect("a request");
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .build()
            .into();
        let response = agent.run(request).expect("the server answers");
        let status = response.status().as_u16();
        let location = response
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let text = response.into_body().read_to_string().expect("a body");
        (status, location, text)
    }

    /// GETs a path without a session and returns the status and raw text.
    pub fn get_text(&self, path_or_url: &str) -> (u16, String) {
        let url = if path_or_url.starts_with("http") {
            path_or_url.to_owned()
        } else {
            format!("{}{path_or_url}", self.url)
        };
        let response = self.agent.get(&url).call().expect("the server answers");
        let status = response.status().as_u16();
        (
            status,
            response.into_body().read_to_string().expect("a body"),
        )
    }

    pub fn get(&self, path: &str, token: &str) -> Answer {
        self.send("GET", path, Some(token), None, None)
    }

    pub fn post(&self, path: &str, token: &str, key: Option<&str>, body: Value) -> Answer {
        self.send("POST", path, Some(token), key, Some(&body.to_string()))
    }

    /// Signs up, signs in, sets the PIN, links a card, and tops up `yuan` (if any).
    pub fn person(&self, login: &str, yuan: &str) -> Person {
        let signed_up = self.send(
            "POST",
            "/v1/users",
            None,
            None,
            Some(&json!({"login": login, "password": "correct horse"}).to_string()),
        );
        assert_eq!(signed_up.status, 201, "{signed_up:?}");
        let person = self.sign_in(login, "correct horse");
        let pin = self.send(
            "PUT",
            "/v1/me/pin",
            Some(&person.token),
            None,
            Some(&json!({"pin": PIN, "password": "correct horse"}).to_string()),
        );
        assert_eq!(pin.status, 204, "{pin:?}");
        let card = self.post(
            "/v1/cards",
            &person.token,
            None,
            json!({"bank": "ICBC", "number": "6222020200112233", "holder": login}),
        );
        assert_eq!(card.status, 201, "{card:?}");
        let person = Person {
            card_id: card.body["id"].as_str().expect("an id").to_owned(),
            ..person
        };
        if yuan != "0" {
            self.top_up(&person, yuan, &person.card_id.clone());
        }
        person
    }

    pub fn sign_in(&self, login: &str, password: &str) -> Person {
        let session = self.send(
            "POST",
            "/v1/sessions",
            None,
            None,
            Some(&json!({"login": login, "password": password}).to_string()),
        );
        assert_eq!(session.status, 201, "{session:?}");
        Person {
            id: session.body["user"]["id"]
                .as_str()
                .expect("an id")
                .to_owned(),
            token: session.body["token"].as_str().expect("a token").to_owned(),
            card_id: String::new(),
        }
    }

    /// Tops up and waits for the simulated bank to answer.
    pub fn top_up(&self, person: &Person, yuan: &str, card_id: &str) -> Value {
        let started = self.post(
            "/v1/top-ups",
            &person.token,
            Some(&format!("top-up-{yuan}-{card_id}-{}", self.clock.now())),
            json!({"card_id": card_id, "amount": {"amount": yuan, "currency": "CNY"}, "pin": PIN}),
        );
        assert_eq!(started.status, 202, "{started:?}");
        let id = started.body["id"].as_str().expect("an id").to_owned();
        self.settled(person, &id)
    }

    /// Waits until the bank has answered a movement (the simulated bank answers at once, on
    /// another task), and returns it.
    pub fn settled(&self, person: &Person, movement_id: &str) -> Value {
        for _ in 0..500 {
            let movement = self.get(&format!("/v1/movements/{movement_id}"), &person.token);
            assert_eq!(movement.status, 200, "{movement:?}");
            if movement.body["status"] != "pending" {
                return movement.body;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("movement {movement_id} was never settled");
    }

    /// (available, held, incoming) of the person's CNY wallet, as decimal strings.
    pub fn balance(&self, person: &Person) -> (String, String, String) {
        let wallet = self.get("/v1/wallet", &person.token);
        assert_eq!(wallet.status, 200, "{wallet:?}");
        let cny = wallet.body["balances"]
            .as_array()
            .expect("balances")
            .iter()
            .find(|b| b["currency"] == "CNY")
            .cloned()
            .expect("a CNY wallet");
        let amount = |field: &str| cny[field]["amount"].as_str().expect("an amount").to_owned();
        (amount("available"), amount("held"), amount("incoming"))
    }

    pub fn available(&self, person: &Person) -> String {
        self.balance(person).0
    }

    /// Moves the clock and runs the engine's timers.
    pub fn advance(&self, nanos: u64) {
        self.clock.advance(nanos);
        self.runtime
            .block_on(self.server().engine().tick())
            .expect("the timers run");
    }

    /// An operator, signed in.
    pub fn operator(&self) -> Person {
        self.runtime
            .block_on(formica_api::create_operator(
                &self.server().state,
                "ops@formica.test",
                "operator password",
            ))
            .expect("an operator");
        self.sign_in("ops@formica.test", "operator password")
    }

    /// Stops the server and checks the books: what `formica admin trial-balance` checks.
    pub fn finish(mut self) {
        self.stop_server();
        let balance = self
            .db
            .open()
            .trial_balance()
            .expect("the trial balance runs");
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

/// Serves `router` on a port of its own, on a thread of its own; its address.
pub fn serve_local(router: axum::Router) -> std::net::SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a port");
    listener.set_nonblocking(true).expect("non-blocking");
    let address = listener.local_addr().expect("an address");
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
            axum::serve(listener, router).await.expect("serves");
        });
    });
    address
}
