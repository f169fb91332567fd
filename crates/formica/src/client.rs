//! A small blocking client of the REST API, for the commands that work through it as any
//! other client would: seeding the demo, the crash loop and the soak. An error status is an
//! answer, not an error: only a request that got no answer (the server is gone, the
//! connection broke, the time ran out) is an `Err`, which is what the crash loop needs to
//! tell an acknowledged request from one whose fate is unknown.

use std::time::Duration;

use anyhow::{Context, bail};
use formica_core::Id;
use serde_json::{Value, json};

/// How long one request may take: the server's own limit (30 s by default) plus a margin.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(40);

/// An answer: its status and its JSON body (Null when it has none).
#[derive(Clone, Debug, PartialEq)]
pub struct Answer {
    pub status: u16,
    pub body: Value,
}

impl Answer {
    /// Whether the server did what was asked (2xx).
    pub fn succeeded(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// A person signed up through the API: signed in, with a payment PIN and a linked card.
#[derive(Clone, Debug)]
pub struct SignedUp {
    pub id: Id,
    pub token: String,
    pub card_id: String,
}

/// A client of the server at one URL.
#[derive(Clone, Debug)]
pub struct Client {
    url: String,
    agent: ureq::Agent,
}

impl Client {
    pub fn new(url: &str) -> Self {
        Client {
            url: url.to_owned(),
            agent: ureq::Agent::config_builder()
                .http_status_as_error(false)
                .timeout_global(Some(REQUEST_TIMEOUT))
                .build()
                .into(),
        }
    }

    /// Sends one request: `body` as JSON unless it is Null, `token` as the bearer, `key` as
    /// the Idempotency-Key.
    pub fn send(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        key: Option<&str>,
        body: &Value,
    ) -> anyhow::Result<Answer> {
        let mut request = axum::http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.url));
        if let Some(token) = token {
            request = request.header("Authorization", format!("Bearer {token}"));
        }
        if let Some(key) = key {
            request = request.header("Idempotency-Key", key);
        }
        let body = if body.is_null() {
            String::new()
        } else {
            request = request.header("Content-Type", "application/json");
            body.to_string()
        };
        let response = self.agent.run(request.body(body)?)?;
        let status = response.status().as_u16();
        let text = response.into_body().read_to_string()?;
        Ok(Answer {
            status,
            body: serde_json::from_str(&text).unwrap_or(Value::Null),
        })
    }

    /// A page as text (the Prometheus metrics, for one).
    pub fn text(&self, path: &str) -> anyhow::Result<String> {
        let request = axum::http::Request::builder()
            .method("GET")
            .uri(format!("{}{path}", self.url))
            .body(String::new())?;
        Ok(self.agent.run(request)?.into_body().read_to_string()?)
    }

    /// Sends one request and returns its body if it answered `status`.
    pub fn expect(
        &self,
        status: u16,
        method: &str,
        path: &str,
        token: Option<&str>,
        key: Option<&str>,
        body: Value,
    ) -> anyhow::Result<Value> {
        let answer = self.send(method, path, token, key, &body)?;
        if answer.status != status {
            bail!(
                "{method} {path}: expected {status}, got {}: {}",
                answer.status,
                answer.body
            );
        }
        Ok(answer.body)
    }

    /// Signs a person up (`name` is shown to others and printed on their card), signs them
    /// in, sets their payment PIN and links a card the simulated bank always pays from.
    pub fn sign_up(
        &self,
        login: &str,
        password: &str,
        name: &str,
        pin: &str,
    ) -> anyhow::Result<SignedUp> {
        let credentials = json!({"login": login, "password": password});
        let mut details = credentials.clone();
        details["display_name"] = name.into();
        self.expect(201, "POST", "/v1/users", None, None, details)?;
        let session = self.expect(201, "POST", "/v1/sessions", None, None, credentials)?;
        let token = session["token"].as_str().context("a token")?.to_owned();
        let id = session["user"]["id"]
            .as_str()
            .and_then(|id| id.parse().ok())
            .context("an id")?;
        self.expect(
            204,
            "PUT",
            "/v1/me/pin",
            Some(&token),
            None,
            json!({"pin": pin, "password": password}),
        )?;
        let card = self.expect(
            201,
            "POST",
            "/v1/cards",
            Some(&token),
            None,
            json!({"bank": "China Merchants Bank", "number": "6225880012345678", "holder": name}),
        )?;
        let card_id = card["id"].as_str().context("a card id")?.to_owned();
        Ok(SignedUp { id, token, card_id })
    }

    /// Waits until the bank has answered a top-up or withdrawal and it succeeded.
    pub fn wait_settled(&self, token: &str, movement: &str) -> anyhow::Result<()> {
        for _ in 0..600 {
            let body = self.expect(
                200,
                "GET",
                &format!("/v1/movements/{movement}"),
                Some(token),
                None,
                Value::Null,
            )?;
            match body["status"].as_str() {
                Some("succeeded") => return Ok(()),
                Some("pending") => std::thread::sleep(Duration::from_millis(50)),
                _ => bail!("movement {movement} did not succeed: {body}"),
            }
        }
        bail!("movement {movement} was not settled in 30 seconds")
    }

    /// Every item of a list, following `next_cursor` page by page (`path` has no query
    /// string, or ends in one that takes more parameters).
    pub fn all_pages(&self, path: &str, token: &str) -> anyhow::Result<Vec<Value>> {
        let separator = if path.contains('?') { '&' } else { '?' };
        let mut items = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let page = match &cursor {
                None => format!("{path}{separator}limit=100"),
                Some(cursor) => format!("{path}{separator}limit=100&cursor={cursor}"),
            };
            let body = self.expect(200, "GET", &page, Some(token), None, Value::Null)?;
            let Some(data) = body["data"].as_array() else {
                bail!("GET {page}: not a page: {body}");
            };
            items.extend(data.iter().cloned());
            match body["next_cursor"].as_str() {
                Some(next) => cursor = Some(next.to_owned()),
                None => return Ok(items),
            }
        }
    }
}
