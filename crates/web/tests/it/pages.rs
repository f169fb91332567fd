//! What the pages refuse and protect, checked with a plain form client over real HTTP: the
//! operator console, CSRF tokens, other people's trades and shops; and the hosted checkout's
//! signed return, which needs no browser to prove.

use formica_testkit::Backend;
use serde_json::json;

use crate::app::{App, PIN, Visitor};

pub fn an_operator_page_is_refused_to_a_person(backend: Backend) {
    let app = App::start(backend);
    app.person("+8613800000001", "0");
    let mut anonymous = Visitor::new(&app);
    let page = anonymous.get("/operator/disputes");
    assert_eq!(page.status, 303);
    assert_eq!(
        page.location.as_deref(),
        Some("/sign-in?next=%2Foperator%2Fdisputes")
    );
    let mut person = Visitor::new(&app);
    person.sign_in("+8613800000001");
    for path in [
        "/operator",
        "/operator/disputes",
        "/operator/lookup?q=x",
        "/operator/trial-balance",
    ] {
        let page = person.get(path);
        assert_eq!(page.status, 403, "{path}");
        assert!(page.body.contains("Operators only"), "{path}");
    }
    // Nor can a person post a decision.
    let csrf = person.get("/wallet").csrf();
    let posted = person.post(
        "/operator/disputes/1",
        &[("csrf", &csrf), ("key", "k"), ("decision", "refund")],
    );
    assert_eq!(posted.status, 403);
    let operator = app.operator("ops@example.com");
    let mut ops = Visitor::new(&app);
    ops.sign_in(&operator.login);
    let page = ops.get("/operator/trial-balance");
    assert_eq!(page.status, 200);
    assert!(page.body.contains("The books balance"), "{}", page.body);
    app.finish();
}

pub fn a_form_without_its_csrf_token_is_refused_and_changes_nothing(backend: Backend) {
    let app = App::start(backend);
    let alice = app.person("+8613800000001", "100.00");
    app.person("+8613800000002", "0");
    let mut browser = Visitor::new(&app);
    browser.sign_in(&alice.login);
    let csrf = browser.get("/wallet/transfer").csrf();
    let transfer = |csrf: Option<&str>| {
        let mut fields = vec![
            ("key", "transfer-1"),
            ("to", "+8613800000002"),
            ("amount", "10.00"),
            ("currency", "CNY"),
            ("pin", PIN),
        ];
        if let Some(csrf) = csrf {
            fields.push(("csrf", csrf));
        }
        fields
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect::<Vec<_>>()
    };
    for token in [None, Some("0".repeat(64))] {
        let fields = transfer(token.as_deref());
        let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (&**k, &**v)).collect();
        let refused = browser.post("/wallet/transfer", &fields);
        assert_eq!(refused.status, 403, "{}", refused.body);
        assert!(refused.body.contains("This form has expired"));
        assert_eq!(app.available(&alice), "100.00");
    }
    // Another site's form cannot send this browser's cookie's token: a visitor with no cookie
    // posting a token it made up is refused too.
    let mut stranger = Visitor::new(&app);
    let refused = stranger.post(
        "/sign-in",
        &[("csrf", &csrf), ("login", &alice.login), ("password", "x")],
    );
    assert_eq!(refused.status, 403);
    // With its token the same form works.
    let fields = transfer(Some(&csrf));
    let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (&**k, &**v)).collect();
    let sent = browser.post("/wallet/transfer", &fields);
    assert_eq!(sent.status, 303, "{}", sent.body);
    assert_eq!(app.available(&alice), "90.00");
    // A double submit of the same rendering (same idempotency key) sends once.
    let again = browser.post("/wallet/transfer", &fields);
    assert_eq!(again.status, 303, "{}", again.body);
    assert_eq!(app.available(&alice), "90.00");
    app.finish();
}

pub fn another_persons_trade_or_shop_shows_not_found(backend: Backend) {
    let app = App::start(backend);
    let seller = app.person("+8613800000001", "0");
    let buyer = app.person("+8613800000002", "100.00");
    app.person("+8613800000003", "0");
    let trade = app.post(
        "/v1/trades",
        &seller.token,
        Some("offer"),
        json!({"out_trade_no": "T1", "subject": "lamp",
               "amount": {"amount": "30.00", "currency": "CNY"},
               "buyer": {"login": buyer.login}}),
    );
    let trade_id = trade["id"].as_str().expect("an id").to_owned();
    let shop = app.shop(&seller, "Lamps");
    let mut buyer_page = Visitor::new(&app);
    buyer_page.sign_in(&buyer.login);
    assert_eq!(
        buyer_page.get(&format!("/wallet/trades/{trade_id}")).status,
        200
    );
    let mut other = Visitor::new(&app);
    other.sign_in("+8613800000003");
    for path in [
        format!("/wallet/trades/{trade_id}"),
        format!("/merchant/{shop}"),
        format!("/merchant/{shop}/trades"),
        format!("/merchant/{shop}/trades/{trade_id}"),
        format!("/merchant/{shop}/statement.csv?date=2027-01-15"),
        "/wallet/trades/not-a-number".to_owned(),
    ] {
        let page = other.get(&path);
        assert_eq!(page.status, 404, "{path}: {}", page.body);
        assert!(page.body.contains("Not found"), "{path}");
    }
    // Nor can they act on it.
    let csrf = other.get("/wallet").csrf();
    let paid = other.post(
        &format!("/wallet/trades/{trade_id}/pay"),
        &[("csrf", &csrf), ("key", "k1"), ("pin", PIN)],
    );
    assert_eq!(paid.status, 404, "{}", paid.body);
    assert_eq!(app.available(&buyer), "100.00");
    app.finish();
}

pub fn pages_carry_their_protections(backend: Backend) {
    let app = App::start(backend);
    app.person("+8613800000001", "0");
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .build()
        .into();
    let page = agent
        .get(format!("{}/sign-in", app.url))
        .call()
        .expect("answers");
    let headers = page.headers();
    let csp = headers["content-security-policy"].to_str().expect("ASCII");
    assert!(csp.contains("frame-ancestors 'none'") && csp.contains("default-src 'self'"));
    assert_eq!(headers["cache-control"], "no-store");
    let cookie = headers["set-cookie"].to_str().expect("ASCII");
    assert!(
        cookie.starts_with("formica_csrf=") && cookie.contains("HttpOnly"),
        "{cookie}"
    );
    let mut visitor = Visitor::new(&app);
    let csrf = visitor.get("/sign-in").csrf();
    let signed = agent
        .post(format!("{}/sign-in", app.url))
        .header("Cookie", format!("formica_csrf={csrf}"))
        .content_type("application/x-www-form-urlencoded")
        .send(format!(
            "csrf={csrf}&login=%2B8613800000001&password=correct+horse"
        ))
        .expect("answers");
    assert_eq!(signed.status(), 303);
    let session = signed.headers()["set-cookie"].to_str().expect("ASCII");
    assert!(
        session.starts_with("formica_session=")
            && session.contains("HttpOnly")
            && session.contains("SameSite=Lax"),
        "{session}"
    );
    // Over plain HTTP on loopback only; anywhere else the cookies need TLS, and their names
    // the `__Host-` prefix.
    assert!(!session.contains("Secure"), "{session}");
    let behind_tls = agent
        .get(format!("{}/sign-in", app.url))
        .header("X-Forwarded-Proto", "https")
        .call()
        .expect("answers");
    let cookie = behind_tls.headers()["set-cookie"].to_str().expect("ASCII");
    assert!(
        cookie.starts_with("__Host-formica_csrf=") && cookie.contains("; Secure"),
        "{cookie}"
    );
    let css = agent
        .get(format!("{}/static/formica.css", app.url))
        .call()
        .expect("answers");
    assert_eq!(css.status(), 200);
    assert!(
        css.headers()["content-type"]
            .to_str()
            .expect("ASCII")
            .starts_with("text/css")
    );
    app.finish();
}

pub fn hosted_checkout_pays_and_returns_to_the_shop_signed(backend: Backend) {
    let app = App::start(backend);
    let owner = app.person("shop@example.com", "0");
    let shop = app.shop(&owner, "Tea House");
    let (app_id, key, platform) = app.gateway_app(&owner, &shop, false);
    let buyer = app.person("+8613800000009", "100.00");
    let url = crate::browser::page_pay_url(
        &app,
        &app_id,
        &key,
        "W1",
        "15.00",
        "<b>cake</b>",
        "https://shop.example/done?x=1",
    );
    let mut browser = Visitor::new(&app);
    let redirect = browser.get(&url);
    assert_eq!(redirect.status, 303);
    let checkout = redirect.location.expect("to the checkout");
    let page = browser.get(&checkout);
    assert_eq!(page.status, 200);
    assert!(
        !page.body.contains("<b>cake")
            && page.body.contains("&#60;b&#62;cake&#60;/b&#62;")
            && page.body.contains("¥15.00")
            && page.body.contains("Tea House"),
        "{}",
        page.body
    );
    let csrf = page.csrf();
    // A wrong PIN shows the page again with the reason; nothing is paid.
    let again = browser.post(
        &checkout,
        &[
            ("csrf", &csrf),
            ("key", "c1"),
            ("login", &buyer.login),
            ("password", crate::app::PASSWORD),
            ("pin", "000000"),
        ],
    );
    assert_eq!(again.status, 422);
    assert!(again.body.contains("role=\"alert\""), "{}", again.body);
    assert_eq!(app.available(&buyer), "100.00");
    let paid = browser.post(
        &checkout,
        &[
            ("csrf", &csrf),
            ("key", "c2"),
            ("login", &buyer.login),
            ("password", crate::app::PASSWORD),
            ("pin", PIN),
        ],
    );
    assert_eq!(paid.status, 303, "{}", paid.body);
    let location = paid.location.expect("back to the shop");
    crate::browser::assert_signed_return(&location, "https://shop.example/done?x=1&", &platform);
    assert_eq!(app.available(&buyer), "85.00");
    // Paid: the page takes no second payment, and shows what was paid only to the buyer
    // (trade ids can be guessed).
    let page = browser.get(&checkout);
    assert!(
        page.body.contains("This payment is no longer open.") && !page.body.contains("cake"),
        "{}",
        page.body
    );
    browser.sign_in(&buyer.login);
    let page = browser.get(&checkout);
    assert!(page.body.contains("This payment is paid."), "{}", page.body);
    app.finish();
}

pub fn a_shop_ships_its_escrow_trades_and_reshows_its_qr_codes(backend: Backend) {
    let app = App::start(backend);
    let owner = app.person("shop@example.com", "0");
    let shop = app.shop(&owner, "Tea House");
    let (app_id, key, _) = app.gateway_app(&owner, &shop, true);
    let buyer = app.person("+8613800000009", "100.00");
    let url = crate::browser::page_pay_url(
        &app,
        &app_id,
        &key,
        "E1",
        "30.00",
        "teapot",
        "https://shop.example/done",
    );
    let mut buying = Visitor::new(&app);
    buying.sign_in(&buyer.login);
    let checkout = buying.get(&url).location.expect("to the checkout");
    let trade = checkout.trim_start_matches("/checkout/").to_owned();
    let csrf = buying.get(&checkout).csrf();
    let paid = buying.post(&checkout, &[("csrf", &csrf), ("key", "e1"), ("pin", PIN)]);
    assert_eq!(paid.status, 303, "{}", paid.body);
    // The money is held; the shop ships from its console.
    let mut console = Visitor::new(&app);
    console.sign_in(&owner.login);
    let page = console.get(&format!("/merchant/{shop}/trades/{trade}"));
    assert!(page.body.contains("Mark as shipped"), "{}", page.body);
    let ship = format!("/merchant/{shop}/trades/{trade}/escrow/ship");
    // Nobody else can.
    let mut stranger = Visitor::new(&app);
    stranger.sign_in(&buyer.login);
    let csrf = stranger.get("/wallet").csrf();
    let refused = stranger.post(&ship, &[("csrf", &csrf), ("key", "s0"), ("tracking", "X")]);
    assert_eq!(refused.status, 404);
    let csrf = page.csrf();
    let shipped = console.post(
        &ship,
        &[("csrf", &csrf), ("key", "s1"), ("tracking", "SF1")],
    );
    assert_eq!(shipped.status, 303, "{}", shipped.body);
    let page = console.get(&format!("/merchant/{shop}/trades/{trade}"));
    assert!(
        page.body.contains("data-code=\"WAIT_BUYER_CONFIRM\""),
        "{}",
        page.body
    );
    // A QR code for an amount is shown by a page of its own: posting the same form twice
    // shows the first one's trade, not an error.
    let csrf = console.get(&format!("/merchant/{shop}/qr")).csrf();
    let form = [
        ("csrf", csrf.as_str()),
        ("key", "q-form-1"),
        ("amount", "8.80"),
    ];
    let first = console.post(&format!("/merchant/{shop}/qr"), &form);
    let again = console.post(&format!("/merchant/{shop}/qr"), &form);
    assert_eq!((first.status, again.status), (303, 303), "{}", again.body);
    assert_eq!(first.location, again.location);
    let shown = console.get(&first.location.expect("the QR page"));
    assert!(shown.body.contains("¥8.80") && shown.body.contains("/qr/"));
    assert_eq!(app.available(&buyer), "70.00");
    app.finish();
}

pub fn qr_codes_carry_the_configured_public_url(backend: Backend) {
    let app = App::start_with(backend, Some("https://pay.example.com/"));
    let owner = app.person("shop@example.com", "0");
    let shop = app.shop(&owner, "Tea House");
    let mut console = Visitor::new(&app);
    console.sign_in(&owner.login);
    let page = console.get(&format!("/merchant/{shop}/qr"));
    assert!(
        page.body
            .contains(&format!(">https://pay.example.com/pay/{shop}<")),
        "{}",
        page.body
    );
    app.finish();
}
