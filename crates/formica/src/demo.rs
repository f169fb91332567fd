//! `formica demo`: the server with a small world to try it on: people with money, a shop,
//! trades in several states, an operator. The world is made through the REST API itself the
//! first time the data directory is used; later runs keep what is there.

use std::path::Path;

use anyhow::Context;
use formica_api::Server;
use formica_api::gateway::sign;
use serde_json::{Value, json};

use crate::client::Client;
use crate::location::StoreArgs;
use crate::serve::{Args, Rules, say, serve};

/// Options of `formica demo`.
#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Address to listen on.
    #[arg(long, env = "FORMICA_LISTEN", default_value = "127.0.0.1:8080")]
    listen: std::net::SocketAddr,
    /// Directory of the demo's SQLite database (or pass --database-url).
    #[arg(
        long,
        env = "FORMICA_DATA_DIR",
        default_value = "formica-demo",
        conflicts_with = "database_url"
    )]
    data_dir: std::path::PathBuf,
    /// PostgreSQL URL instead of SQLite.
    #[arg(long, env = "FORMICA_DATABASE_URL")]
    database_url: Option<String>,
}

/// The demo's people: (login, password, display name, yuan to top up).
const PEOPLE: [(&str, &str, &str, &str); 3] = [
    ("+8613800000001", "demo-password", "Alice", "5000.00"),
    ("bob@formica.demo", "demo-password", "Bob", "1000.00"),
    ("shop@formica.demo", "demo-password", "Teahouse", "0"),
];

/// Every demo person's payment PIN.
const PIN: &str = "123456";

const OPERATOR: (&str, &str) = ("ops@formica.demo", "operator-password");

/// Serves the demo.
pub fn run(args: DemoArgs) -> anyhow::Result<()> {
    let sandbox = args.data_dir.join("sandbox");
    let args = Args {
        listen: args.listen,
        public_url: None,
        max_in_flight: formica_api::IN_FLIGHT_DEFAULT as u64,
        request_timeout_seconds: 30,
        max_connections: formica_api::CONNECTIONS_DEFAULT as u64,
        header_timeout_seconds: 10,
        store: StoreArgs {
            data_dir: Some(args.data_dir),
            database_url: args.database_url,
        },
        rules: Rules {
            pay_timeout_minutes: 24 * 60,
            confirm_timeout_days: 10,
            unverified_daily_limit: 5_000,
            verified_daily_limit: 200_000,
            bank_delay_ms: 200,
            webhooks_allow_private: true,
            settle_delay_days: 1,
            refund_window_days: 90,
            transfer_cache_slack: formica_core::products::TRANSFER_CACHE_SLACK as u64,
        },
    };
    serve(args, move |server, url| seed(server, url, &sandbox))
}

/// Makes the demo world unless it exists, then prints how to use it.
fn seed(server: &Server, url: &str, sandbox: &Path) -> anyhow::Result<()> {
    let client = Client::new(url);
    let exists = client
        .send(
            "POST",
            "/v1/sessions",
            None,
            None,
            &json!({"login": PEOPLE[0].0, "password": PEOPLE[0].1}),
        )?
        .status
        == 201;
    if !exists {
        make_world(server, &client, sandbox).context("seeding the demo world")?;
    }
    write_sandbox(sandbox, url)?;
    say(&format!("Formica demo at {url}"));
    say(&format!(
        "  pages:         {url}/  (wallet; shops at {url}/merchant, operators at {url}/operator)"
    ));
    say(&format!(
        "  API docs:      {url}/docs  (OpenAPI: {url}/v1/openapi.json)"
    ));
    say(&format!(
        "  health:        {url}/healthz   metrics: {url}/metrics"
    ));
    say("  people (password, payment PIN 123456):");
    for (login, password, name, _) in PEOPLE {
        say(&format!("    {name:<9} {login:<20} {password}"));
    }
    say(&format!("  operator:      {}  {}", OPERATOR.0, OPERATOR.1));
    say(&format!(
        "  gateway:       {url}/gateway.do  (app, keys and buyers: {})",
        sandbox.join("sandbox.json").display()
    ));
    say(&format!(
        "  try: curl -s -X POST {url}/v1/sessions -H 'Content-Type: application/json' \
         -d '{{\"login\": \"{}\", \"password\": \"{}\"}}'",
        PEOPLE[0].0, PEOPLE[0].1
    ));
    Ok(())
}

fn make_world(server: &Server, client: &Client, sandbox: &Path) -> anyhow::Result<()> {
    tokio::runtime::Handle::current()
        .block_on(formica_api::create_operator(
            &server.state,
            OPERATOR.0,
            OPERATOR.1,
        ))
        .map_err(|error| anyhow::anyhow!("operator: {}", error.message))?;
    let mut tokens = Vec::new();
    for (login, password, name, yuan) in PEOPLE {
        let person = client.sign_up(login, password, name, PIN)?;
        let card = Value::String(person.card_id);
        let token = person.token;
        if yuan != "0" {
            let movement = client.expect(
                202,
                "POST",
                "/v1/top-ups",
                Some(&token),
                Some(&format!("demo-top-up-{login}")),
                json!({"card_id": card, "amount": {"amount": yuan, "currency": "CNY"}, "pin": PIN}),
            )?;
            client.wait_settled(&token, movement["id"].as_str().context("an id")?)?;
        }
        tokens.push((token, card));
    }
    let (alice, bob, shop) = (&tokens[0].0, &tokens[1].0, &tokens[2].0);
    let merchant_id = open_sandbox_merchant(client, shop, &tokens[2].1, sandbox)?;
    client.expect(
        201,
        "POST",
        "/v1/transfers",
        Some(alice),
        Some("demo-transfer"),
        json!({"to": {"login": PEOPLE[1].0}, "amount": {"amount": "52.00", "currency": "CNY"},
               "note": "hotpot on Friday", "pin": PIN}),
    )?;
    let trade = |no: &str, subject: &str, yuan: &str| -> anyhow::Result<String> {
        let created = client.expect(201, "POST", "/v1/trades", Some(shop), None,
            json!({"out_trade_no": no, "subject": subject, "amount": {"amount": yuan, "currency": "CNY"}}))?;
        Ok(created["id"].as_str().context("an id")?.to_owned())
    };
    let pay = |buyer: &str, id: &str| {
        client.expect(
            200,
            "POST",
            &format!("/v1/trades/{id}/pay"),
            Some(buyer),
            Some(&format!("demo-pay-{id}")),
            json!({"pin": PIN}),
        )
    };
    let ship = |id: &str| {
        client.expect(
            200,
            "POST",
            &format!("/v1/trades/{id}/ship"),
            Some(shop),
            None,
            json!({"tracking": "SF Express 7712 0045 8812"}),
        )
    };
    // Paid, waiting for the shop to ship.
    let waiting = trade("T-1001", "Longjing green tea, 250 g", "168.00")?;
    pay(alice, &waiting)?;
    // Shipped, waiting for Alice to confirm receipt.
    let shipped = trade("T-1002", "Yixing clay teapot", "398.00")?;
    pay(alice, &shipped)?;
    ship(&shipped)?;
    // Finished: the shop has been paid.
    let finished = trade("T-1003", "Tea cups, set of six", "88.80")?;
    pay(bob, &finished)?;
    ship(&finished)?;
    client.expect(
        200,
        "POST",
        &format!("/v1/trades/{finished}/confirm"),
        Some(bob),
        Some("demo-confirm"),
        json!({"pin": PIN}),
    )?;
    // Offered, not paid yet (a payment link anyone signed in can pay).
    trade("T-1004", "Pu'er tea cake, 357 g", "256.00")?;
    // In dispute, for the operator to decide.
    let disputed = trade("T-1005", "Bamboo tea tray", "120.00")?;
    pay(bob, &disputed)?;
    ship(&disputed)?;
    client.expect(
        200,
        "POST",
        &format!("/v1/trades/{disputed}/refund-request"),
        Some(bob),
        None,
        json!({"amount": {"amount": "120.00", "currency": "CNY"}, "reason": "arrived cracked"}),
    )?;
    client.expect(
        200,
        "POST",
        &format!("/v1/trades/{disputed}/refund-request/refuse"),
        Some(shop),
        None,
        json!({}),
    )?;
    // Credit: the platform sets money aside to lend, and the shop asks Alice for a deposit
    // (waived at a score of 550) that waits for her on /wallet/holds.
    let signed = client.expect(
        201,
        "POST",
        "/v1/sessions",
        None,
        None,
        json!({"login": OPERATOR.0, "password": OPERATOR.1}),
    )?;
    let operator = signed["token"].as_str().context("a token")?;
    client.expect(
        201,
        "POST",
        "/v1/credit/funding",
        Some(operator),
        Some("demo-credit-funding"),
        json!({"amount": {"amount": "100000.00", "currency": "CNY"}}),
    )?;
    client.expect(
        201,
        "POST",
        &format!("/v1/merchants/{merchant_id}/holds"),
        Some(shop),
        None,
        json!({"person": {"login": PEOPLE[0].0}, "out_order_no": "D-2001",
               "title": "Tea set, rented for the weekend",
               "amount": {"amount": "500.00", "currency": "CNY"}, "threshold": 550}),
    )?;
    Ok(())
}

/// The demo shop's merchant and gateway app, with an app key pair written to `sandbox` in
/// the PEM forms the SDKs load.
fn open_sandbox_merchant(
    client: &Client,
    owner: &str,
    card: &Value,
    sandbox: &Path,
) -> anyhow::Result<String> {
    let merchant = client.expect(
        201,
        "POST",
        "/v1/merchants",
        Some(owner),
        None,
        json!({"name": "Teahouse", "contact": PEOPLE[2].0, "category": "tea", "country": "CN",
               "currency": "CNY", "card_id": card}),
    )?;
    let merchant_id = merchant["id"].as_str().context("a merchant id")?;
    let key = sign::generate_key();
    let app = client.expect(
        201,
        "POST",
        &format!("/v1/merchants/{merchant_id}/apps"),
        Some(owner),
        None,
        json!({"name": "sandbox", "public_key": sign::public_key_pem(&key.to_public_key())}),
    )?;
    let app_id = app["app_id"].as_str().context("an app_id")?;
    let platform = client.expect(
        200,
        "GET",
        &format!("/v1/apps/{app_id}/platform-key"),
        Some(owner),
        None,
        Value::Null,
    )?;
    std::fs::create_dir_all(sandbox)?;
    std::fs::write(sandbox.join(APP_KEY), sign::private_key_pkcs1_pem(&key))?;
    std::fs::write(
        sandbox.join(APP_KEY_PKCS8),
        sign::private_key_pkcs8_pem(&key),
    )?;
    std::fs::write(
        sandbox.join(PLATFORM_KEY),
        platform["pem"].as_str().context("a PEM")?,
    )?;
    std::fs::write(
        sandbox.join("app.json"),
        json!({"app_id": app_id, "merchant_id": merchant_id}).to_string(),
    )?;
    Ok(merchant_id.to_owned())
}

/// The app's private key, PKCS#1 PEM (python-alipay-sdk, alipay-sdk-python, Node).
const APP_KEY: &str = "app_private_key.pem";
/// The same key as PKCS#8 PEM (Java takes its base64 body).
const APP_KEY_PKCS8: &str = "app_private_key_pkcs8.pem";
/// The platform's public key, SPKI PEM ("alipay public key" in the SDKs).
const PLATFORM_KEY: &str = "platform_public_key.pem";

/// Writes `sandbox.json` for a server at `url`: everything an SDK needs to talk to it.
fn write_sandbox(sandbox: &Path, url: &str) -> anyhow::Result<()> {
    let app: Value = match std::fs::read_to_string(sandbox.join("app.json")) {
        Ok(text) => serde_json::from_str(&text)?,
        // A world made before sandboxes existed has no app.
        Err(_) => return Ok(()),
    };
    let path = |name: &str| -> anyhow::Result<String> {
        Ok(std::fs::canonicalize(sandbox.join(name))?
            .to_string_lossy()
            .into_owned())
    };
    let buyers: Vec<Value> = PEOPLE[..2]
        .iter()
        .map(|(login, password, name, yuan)| {
            json!({"login": login, "password": password, "pin": PIN, "name": name,
                   "funded": {"amount": yuan, "currency": "CNY"}})
        })
        .collect();
    let sandbox_json = json!({
        "gateway_url": format!("{url}/gateway.do"),
        "app_id": app["app_id"],
        "merchant_id": app["merchant_id"],
        "sign_type": "RSA2",
        "app_private_key_path": path(APP_KEY)?,
        "app_private_key_pkcs8_path": path(APP_KEY_PKCS8)?,
        "alipay_public_key_path": path(PLATFORM_KEY)?,
        "merchant_login": {"login": PEOPLE[2].0, "password": PEOPLE[2].1},
        "buyers": buyers,
        "payment_code": "formica admin payment-code --data-dir DIR --user LOGIN",
    });
    std::fs::write(
        sandbox.join("sandbox.json"),
        serde_json::to_string_pretty(&sandbox_json)?,
    )?;
    Ok(())
}
