//! End to end in headless Chromium: what people do on the pages, with the balances the pages
//! show checked at each step, and screenshots of the key screens.

use formica_testkit::Backend;
use serde_json::json;

use crate::app::{App, PASSWORD, PIN, Person};
use crate::browser::{self, Browser, Driver};

/// Signs `person` in through the sign-in page.
async fn sign_in(browser: &Browser, person: &Person) {
    browser.goto("/sign-in").await;
    browser.fill("login", &person.login).await;
    browser.fill("password", PASSWORD).await;
    browser.submit("password").await;
    assert_eq!(browser.path().await, "/wallet");
}

pub fn sign_up_top_up_and_pay_a_shop_qr(backend: Backend) {
    if !browser::available() {
        return;
    }
    let app = App::start(backend);
    let owner = app.person("shop@example.com", "0");
    let shop = app.shop(&owner, "Tea House");
    let driver = Driver::start();
    app.runtime.block_on(async {
        let b = Browser::open(&driver, &app, "pay-qr").await;
        // Sign up: straight on to the payment PIN.
        b.goto("/").await;
        b.follow("Create an account").await;
        b.fill("login", "+8613900000001").await;
        b.fill("display_name", "Mei").await;
        b.fill("password", PASSWORD).await;
        b.shot("sign-up").await;
        b.submit("password").await;
        assert!(
            b.path().await.starts_with("/wallet/pin"),
            "{}",
            b.path().await
        );
        b.fill("pin", PIN).await;
        b.fill("password", PASSWORD).await;
        b.submit("pin").await;
        assert_eq!(b.path().await, "/wallet?done=pin");
        assert_eq!(b.text("[data-testid=balance-CNY]").await, "¥0.00");
        // Top up: the wallet asks for a card first.
        b.follow("Top up").await;
        assert_eq!(b.path().await, "/wallet/cards");
        b.fill("bank", "ICBC").await;
        b.fill("number", "6222 0202 0011 2233").await;
        b.fill("holder", "Mei").await;
        b.submit("holder").await;
        b.follow("Top up").await;
        b.fill("amount", "100.00").await;
        b.fill("pin", PIN).await;
        b.shot("top-up").await;
        b.submit("pin").await;
        b.wait_text("/wallet", "[data-testid=balance-CNY]", "¥100.00")
            .await;
        b.shot("wallet").await;
        // The shop shows a QR code for 25.00; the buyer scans it (pastes its link).
        let qr = app.post(
            &format!("/v1/merchants/{shop}/trades"),
            &owner.token,
            None,
            json!({"out_trade_no": "Q1", "subject": "Oolong",
                   "amount": {"amount": "25.00", "currency": "CNY"}}),
        );
        let link = format!("{}{}", app.url, qr["qr_path"].as_str().expect("a path"));
        b.follow("Scan").await;
        b.fill("code", &link).await;
        b.submit("code").await;
        assert!(b.path().await.starts_with("/checkout/"));
        assert_eq!(b.text("[data-testid=checkout-amount]").await, "¥25.00");
        assert!(b.page_text().await.contains("Paying as Mei"));
        b.fill("pin", PIN).await;
        b.shot("checkout").await;
        b.submit("pin").await;
        assert_eq!(b.text("[data-testid=paid-amount]").await, "¥25.00");
        b.shot("paid").await;
        b.goto("/wallet").await;
        assert_eq!(b.text("[data-testid=balance-CNY]").await, "¥75.00");
        // The bill list has both lines, and the month's spending in its chart.
        b.follow("Bills").await;
        let bills = b.page_text().await;
        assert!(
            bills.contains("+¥100.00") && bills.contains("−¥25.00"),
            "{bills}"
        );
        assert!(bills.contains("¥25.00 in all"), "{bills}");
        b.choose("direction", "in").await;
        b.press("Filter").await;
        let only_in = b.page_text().await;
        assert!(only_in.contains("+¥100.00") && !only_in.contains("−¥25.00"));
        b.shot("bills").await;
        // The payment code, as a barcode and a QR code.
        b.goto("/wallet/pay-code").await;
        let code = b.text("[data-testid=payment-code]").await.replace(' ', "");
        assert!(code.len() == 18 && code.starts_with("28"), "{code}");
        b.shot("pay-code").await;
        // Everything else is a search away.
        b.goto("/wallet/services?q=card").await;
        let services = b.page_text().await;
        assert!(services.contains("Bank cards") && !services.contains("Payment PIN"));
        b.close().await;
    });
    app.finish();
}

pub fn escrow_purchase_through_to_confirmed_receipt(backend: Backend) {
    if !browser::available() {
        return;
    }
    let app = App::start(backend);
    let seller = app.person("+8613800000001", "0");
    let buyer = app.person("+8613800000002", "200.00");
    let driver = Driver::start();
    app.runtime.block_on(async {
        let sells = Browser::open(&driver, &app, "escrow-seller").await;
        let buys = Browser::open(&driver, &app, "escrow-buyer").await;
        sign_in(&sells, &seller).await;
        sign_in(&buys, &buyer).await;
        sells.goto("/wallet/trades/new").await;
        sells.fill("subject", "Film camera").await;
        sells.fill("amount", "120.00").await;
        sells.fill("buyer", &buyer.login).await;
        sells.submit("buyer").await;
        let trade = sells.path().await;
        let trade = trade
            .strip_prefix("/wallet/trades/")
            .and_then(|t| t.split('?').next())
            .expect("the trade's page")
            .to_owned();
        // The buyer finds it in their trades and pays: the money is held, not the seller's.
        buys.goto("/wallet/trades?role=buyer").await;
        buys.follow("Film camera").await;
        buys.fill("pay-pin", PIN).await;
        buys.shot("pay").await;
        buys.submit("pay-pin").await;
        assert_eq!(
            buys.text("[data-testid=trade-status]").await,
            "Paid, waiting for the seller to ship"
        );
        buys.goto("/wallet").await;
        assert_eq!(buys.text("[data-testid=balance-CNY]").await, "¥80.00");
        assert!(buys.page_text().await.contains("Held ¥120.00"));
        // The seller ships.
        sells.goto(&format!("/wallet/trades/{trade}")).await;
        sells.fill("tracking", "SF1234567").await;
        sells.submit("tracking").await;
        sells.goto("/wallet").await;
        assert_eq!(sells.text("[data-testid=balance-CNY]").await, "¥0.00");
        assert!(sells.page_text().await.contains("On its way in ¥120.00"));
        // The buyer confirms receipt: the seller is paid.
        buys.goto(&format!("/wallet/trades/{trade}")).await;
        assert!(buys.page_text().await.contains("SF1234567"));
        buys.fill("confirm-pin", PIN).await;
        buys.shot("confirm").await;
        buys.submit("confirm-pin").await;
        assert_eq!(buys.text("[data-testid=trade-status]").await, "Finished");
        buys.shot("finished").await;
        sells.goto("/wallet").await;
        assert_eq!(sells.text("[data-testid=balance-CNY]").await, "¥120.00");
        sells.shot("wallet").await;
        buys.goto("/wallet").await;
        assert_eq!(buys.text("[data-testid=balance-CNY]").await, "¥80.00");
        sells.close().await;
        buys.close().await;
    });
    assert_eq!(app.available(&seller), "120.00");
    app.finish();
}

pub fn refund_from_the_merchant_console(backend: Backend) {
    if !browser::available() {
        return;
    }
    let app = App::start(backend);
    let owner = app.person("shop@example.com", "0");
    let shop = app.shop(&owner, "Tea House");
    let buyer = app.person("+8613800000002", "100.00");
    let qr = app.post(
        &format!("/v1/merchants/{shop}/trades"),
        &owner.token,
        None,
        json!({"out_trade_no": "ORDER-77", "subject": "Puer cake",
               "amount": {"amount": "60.00", "currency": "CNY"}}),
    );
    let trade = qr["trade"]["id"].as_str().expect("an id").to_owned();
    let driver = Driver::start();
    app.runtime.block_on(async {
        // The buyer pays at the checkout.
        let buys = Browser::open(&driver, &app, "refund-buyer").await;
        sign_in(&buys, &buyer).await;
        buys.goto(&format!("/qr/{trade}")).await;
        buys.fill("pin", PIN).await;
        buys.submit("pin").await;
        buys.goto("/wallet").await;
        assert_eq!(buys.text("[data-testid=balance-CNY]").await, "¥40.00");
        // The shop finds it by its number and refunds part of it.
        let console = Browser::open(&driver, &app, "refund-console").await;
        sign_in(&console, &owner).await;
        console.goto("/merchant").await;
        console.follow("Tea House").await;
        assert_eq!(console.text("[data-testid=shop-balance]").await, "¥59.64");
        console.shot("shop").await;
        console.follow("Trades").await;
        console.fill("out_trade_no", "ORDER-77").await;
        console.submit("out_trade_no").await;
        console.shot("trades").await;
        console.follow("ORDER-77").await;
        console.fill("amount", "20.00").await;
        console.fill("reason", "one cake was broken").await;
        console.shot("refund").await;
        console.submit("reason").await;
        assert!(console.page_text().await.contains("Refunded."));
        assert_eq!(console.text("[data-testid=refunded]").await, "¥20.00");
        // The fee comes back in proportion: 0.36 × 20/60 = 0.12.
        console.goto(&format!("/merchant/{shop}")).await;
        assert_eq!(console.text("[data-testid=shop-balance]").await, "¥39.76");
        // More than is left is refused, and nothing moves.
        console
            .goto(&format!("/merchant/{shop}/trades/{trade}"))
            .await;
        console.fill("amount", "50.00").await;
        console.submit("amount").await;
        let alert = console.text("[role=alert]").await;
        assert!(alert.contains("larger than"), "{alert}");
        buys.goto("/wallet").await;
        assert_eq!(buys.text("[data-testid=balance-CNY]").await, "¥60.00");
        buys.shot("refunded").await;
        // The QR codes page: the counter's code and one for an amount.
        console.goto(&format!("/merchant/{shop}/qr")).await;
        console.fill("amount", "8.80").await;
        console.submit("amount").await;
        assert!(console.page_text().await.contains("¥8.80"));
        console.shot("qr").await;
        console.goto(&format!("/merchant/{shop}/apps")).await;
        console.fill("app-name", "web shop").await;
        console.submit("app-name").await;
        assert!(console.page_text().await.contains("App created"));
        console.shot("apps").await;
        console.close().await;
        buys.close().await;
    });
    assert_eq!(app.available(&buyer), "60.00");
    app.finish();
}

pub fn dispute_decided_in_the_operator_console(backend: Backend) {
    if !browser::available() {
        return;
    }
    let app = App::start(backend);
    let seller = app.person("+8613800000001", "0");
    let buyer = app.person("+8613800000002", "100.00");
    let operator = app.operator("ops@example.com");
    let trade = app.post(
        "/v1/trades",
        &seller.token,
        Some("offer"),
        json!({"out_trade_no": "T1", "subject": "Bicycle",
               "amount": {"amount": "80.00", "currency": "CNY"},
               "buyer": {"login": buyer.login}}),
    );
    let id = trade["id"].as_str().expect("an id").to_owned();
    app.post(
        &format!("/v1/trades/{id}/pay"),
        &buyer.token,
        Some("pay"),
        json!({"pin": PIN}),
    );
    app.post(
        &format!("/v1/trades/{id}/refund-request"),
        &buyer.token,
        None,
        json!({"amount": {"amount": "80.00", "currency": "CNY"}, "reason": "it is broken"}),
    );
    app.post(
        &format!("/v1/trades/{id}/refund-request/refuse"),
        &seller.token,
        Some("refuse"),
        json!({}),
    );
    let driver = Driver::start();
    app.runtime.block_on(async {
        // The buyer sees where the dispute stands.
        let buys = Browser::open(&driver, &app, "dispute-buyer").await;
        sign_in(&buys, &buyer).await;
        buys.goto(&format!("/wallet/trades/{id}")).await;
        assert_eq!(
            buys.text("[data-testid=trade-status]").await,
            "In dispute: the platform decides"
        );
        buys.shot("dispute").await;
        let ops = Browser::open(&driver, &app, "dispute-operator").await;
        sign_in(&ops, &operator).await;
        ops.follow("Operator").await;
        ops.shot("health").await;
        ops.follow("Disputes").await;
        assert!(ops.page_text().await.contains("it is broken"));
        ops.choose(&format!("decision-{id}"), "split").await;
        ops.fill(&format!("split-{id}"), "30.00").await;
        ops.shot("disputes").await;
        ops.submit(&format!("split-{id}")).await;
        assert!(ops.page_text().await.contains("Decision recorded"));
        assert!(ops.page_text().await.contains("No open disputes."));
        ops.follow("Trial balance").await;
        assert!(
            ops.text("[data-testid=trial-balance]")
                .await
                .starts_with("The books balance")
        );
        ops.shot("trial-balance").await;
        ops.follow("Look up").await;
        ops.fill("q", &buyer.login).await;
        ops.submit("q").await;
        assert!(ops.page_text().await.contains("¥50.00"));
        buys.goto("/wallet").await;
        assert_eq!(buys.text("[data-testid=balance-CNY]").await, "¥50.00");
        ops.close().await;
        buys.close().await;
    });
    assert_eq!(app.available(&seller), "50.00");
    app.finish();
}

pub fn hosted_checkout_from_a_page_pay_link_back_to_return_url(backend: Backend) {
    if !browser::available() {
        return;
    }
    let app = App::start(backend);
    let owner = app.person("shop@example.com", "0");
    let shop = app.shop(&owner, "Tea House");
    let (app_id, key, platform) = app.gateway_app(&owner, &shop, false);
    let buyer = app.person("+8613800000009", "100.00");
    // The shop's own site, where the browser comes back.
    let returned = format!("{}/shop-return", app.url);
    let url = browser::page_pay_url(
        &app,
        &app_id,
        &key,
        "WEB-1",
        "39.90",
        "Jasmine tea",
        &returned,
    );
    let driver = Driver::start();
    app.runtime.block_on(async {
        let b = Browser::open(&driver, &app, "hosted-checkout").await;
        b.goto(&url).await;
        assert!(b.path().await.starts_with("/checkout/"));
        assert_eq!(b.text("[data-testid=checkout-amount]").await, "¥39.90");
        assert!(b.page_text().await.contains("Tea House"));
        b.fill("login", &buyer.login).await;
        b.fill("password", PASSWORD).await;
        b.fill("pin", PIN).await;
        b.shot("checkout").await;
        b.submit("pin").await;
        let back = b.url().await;
        browser::assert_signed_return(&back, &format!("{returned}?"), &platform);
        assert!(back.contains("out_trade_no=WEB-1"), "{back}");
        b.close().await;
    });
    assert_eq!(app.available(&buyer), "60.10");
    app.finish();
}

pub fn the_pocket_fund_in_the_wallet_and_the_operator_console(backend: Backend) {
    if !browser::available() {
        return;
    }
    const DAY: u64 = 24 * 3600 * 1_000_000_000;
    let app = App::start(backend);
    let operator = app.operator("ops@example.com");
    let manager = app.person("fund@example.com", "1000.00");
    let alice = app.person("+8613800000001", "30000.00");
    let driver = Driver::start();
    let fund = app.runtime.block_on(async {
        let ops = Browser::open(&driver, &app, "fund-operator").await;
        sign_in(&ops, &operator).await;
        ops.goto("/operator/funds").await;
        ops.fill("fund-name", "Pocket").await;
        ops.fill("manager", &manager.login).await;
        ops.submit("fund-name").await;
        assert!(ops.page_text().await.contains("Fund defined."));
        let fund = ops.path().await;
        let fund = fund
            .strip_prefix("/operator/funds/")
            .and_then(|f| f.split('?').next())
            .expect("the fund's page")
            .to_owned();
        // Alice buys 20,000.00 on Friday evening: confirmed on Tuesday.
        let wallet = Browser::open(&driver, &app, "fund-wallet").await;
        sign_in(&wallet, &alice).await;
        wallet.goto("/wallet/services?q=fund").await;
        wallet.follow("Pocket fund").await;
        wallet.follow("Pocket").await;
        wallet.fill("buy-amount", "20000.00").await;
        wallet.fill("buy-pin", PIN).await;
        wallet.submit("buy-pin").await;
        assert!(wallet.page_text().await.contains("not yet earning"));
        assert_eq!(wallet.text("[data-testid=fund-units]").await, "¥20,000.00");
        ops.close().await;
        wallet.close().await;
        fund
    });
    // A shop, for paying from the fund later.
    let owner = app.person("shop@example.com", "0");
    let shop = app.shop(&owner, "Tea House");
    // A week passes; the operator posts each finished day's income.
    for day in 15..=21 {
        app.advance(DAY);
        let (status, body) = app.api(
            "POST",
            &format!("/v1/funds/{fund}/incomes"),
            Some(&operator.token),
            None,
            Some(json!({"day": format!("2027-01-{day}"), "income": "1.0700"})),
        );
        assert_eq!(status, 201, "{body}");
    }
    app.runtime.block_on(async {
        let ops = Browser::open(&driver, &app, "fund-operator").await;
        sign_in(&ops, &operator).await;
        ops.goto(&format!("/operator/funds/{fund}")).await;
        assert!(
            ops.text("[data-testid=fund-report]")
                .await
                .contains("yes: units outstanding equal the fund's money")
        );
        // The day after the last one posted: Friday the 22nd, not over yet.
        ops.fill("income", "1.07").await;
        ops.submit("income").await;
        assert!(ops.text("[role=alert]").await.contains("once it is over"));
        ops.shot("report").await;
        let wallet = Browser::open(&driver, &app, "fund-wallet").await;
        sign_in(&wallet, &alice).await;
        wallet.goto(&format!("/wallet/funds/{fund}")).await;
        // Tuesday to Thursday earned 2.14 a day (20,000.00 × 1.07 / 10,000), compounding.
        assert_eq!(
            wallet.text("[data-testid=fund-yesterday]").await,
            "+¥2.14 (2027-01-21)"
        );
        assert_eq!(wallet.text("[data-testid=fund-units]").await, "¥20,006.42");
        wallet.shot("holding").await;
        // Past the instant limit: refused, nothing moves.
        wallet.fill("sell-amount", "10000.01").await;
        wallet.fill("sell-pin", PIN).await;
        wallet.submit("sell-pin").await;
        assert!(
            wallet
                .text("[role=alert]")
                .await
                .contains("instant redemption limit")
        );
        wallet.fill("sell-amount", "6.42").await;
        wallet.fill("sell-pin", PIN).await;
        wallet.submit("sell-pin").await;
        assert_eq!(wallet.text("[data-testid=fund-units]").await, "¥20,000.00");
        wallet.goto("/wallet").await;
        assert_eq!(wallet.text("[data-testid=balance-CNY]").await, "¥10,006.42");
        // A shop's QR code paid from the fund at the checkout.
        let qr = app.post(
            &format!("/v1/merchants/{shop}/trades"),
            &owner.token,
            None,
            json!({"out_trade_no": "Q1", "subject": "Oolong",
                   "amount": {"amount": "88.00", "currency": "CNY"}}),
        );
        let trade = qr["trade"]["id"].as_str().expect("an id").to_owned();
        wallet.goto(&format!("/qr/{trade}")).await;
        wallet.choose("source", &fund).await;
        wallet.fill("pin", PIN).await;
        wallet.shot("pay-from-fund").await;
        wallet.submit("pin").await;
        assert_eq!(wallet.text("[data-testid=paid-amount]").await, "¥88.00");
        wallet.goto(&format!("/wallet/funds/{fund}")).await;
        assert_eq!(wallet.text("[data-testid=fund-units]").await, "¥19,912.00");
        wallet.goto("/wallet").await;
        assert_eq!(wallet.text("[data-testid=balance-CNY]").await, "¥10,006.42");
        ops.close().await;
        wallet.close().await;
    });
    assert_eq!(app.available(&manager), "993.58");
    app.finish();
}

pub fn the_credit_score_and_the_shops_that_may_check_it(backend: Backend) {
    if !browser::available() {
        return;
    }
    let app = App::start(backend);
    let renter = app.person("renter@example.com", "2000.00");
    let owner = app.person("bikes@example.com", "0");
    let shop = app.shop(&owner, "Bikes");
    let check = |threshold: u16| {
        app.api(
            "POST",
            &format!("/v1/merchants/{shop}/credit-checks"),
            Some(&owner.token),
            None,
            Some(json!({"person": {"login": "renter@example.com"}, "threshold": threshold})),
        )
    };
    assert_eq!(check(500).0, 404, "no consent yet");
    // Money received counts from the next daily run.
    app.advance(24 * 3600 * 1_000_000_000);
    let driver = Driver::start();
    app.runtime.block_on(async {
        let wallet = Browser::open(&driver, &app, "credit").await;
        sign_in(&wallet, &renter).await;
        wallet.goto("/wallet/services?q=deposit").await;
        wallet.follow("Credit score").await;
        let score: u16 = wallet
            .text("[data-testid=credit-score]")
            .await
            .parse()
            .expect("a number");
        assert!((350..=950).contains(&score), "{score}");
        // 2,000.00 received and held: the means dimension explains itself.
        assert!(
            wallet
                .text("[data-testid=credit-reasons]")
                .await
                .contains("2000 CNY received into the wallet"),
            "{}",
            wallet.page_text().await
        );
        wallet.fill("merchant", &shop).await;
        wallet.submit("merchant").await;
        assert!(
            wallet
                .text("[data-testid=credit-consents]")
                .await
                .contains("Bikes")
        );
        wallet.shot("score").await;
        wallet.close().await;
    });
    let (status, body) = check(500);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["passes"], true);
    app.runtime.block_on(async {
        let wallet = Browser::open(&driver, &app, "credit").await;
        sign_in(&wallet, &renter).await;
        wallet.goto("/wallet/credit").await;
        assert!(
            wallet
                .text("[data-testid=credit-consents]")
                .await
                .contains("1 check")
        );
        wallet.press("Stop").await;
        assert!(
            wallet
                .text("[data-testid=credit-consents]")
                .await
                .contains("stopped")
        );
        wallet.close().await;
    });
    assert_eq!(check(350).0, 404, "consent withdrawn");
    app.finish();
}

/// A shop asks a customer for a deposit on its console.
async fn ask_deposit(console: &Browser, shop: &str, no: &str, deposit: &str, threshold: &str) {
    console.goto(&format!("/merchant/{shop}/holds")).await;
    console.fill("person", "rider@example.com").await;
    console.fill("order", no).await;
    console.fill("title", "a bike for the day").await;
    console.fill("deposit", deposit).await;
    console.fill("threshold", threshold).await;
    console.submit("threshold").await;
}

pub fn a_deposit_held_charged_and_a_debt_repaid_on_the_pages(backend: Backend) {
    if !browser::available() {
        return;
    }
    let app = App::start(backend);
    let operator = app.operator("ops@example.com");
    let renter = app.person("rider@example.com", "500.00");
    let owner = app.person("bikes@example.com", "0");
    let shop = app.shop(&owner, "Bikes");
    let holds = || {
        let (_, body) = app.api(
            "GET",
            &format!("/v1/merchants/{shop}/holds"),
            Some(&owner.token),
            None,
            None,
        );
        body.as_array().cloned().unwrap_or_default()
    };
    let driver = Driver::start();
    let (ops, console, wallet) = app.runtime.block_on(async {
        // The operator sets the platform's money aside for credit.
        let ops = Browser::open(&driver, &app, "deposit-operator").await;
        sign_in(&ops, &operator).await;
        ops.goto("/operator/credit").await;
        ops.fill("funding", "10000.00").await;
        ops.submit("funding").await;
        assert!(
            ops.text("[data-testid=credit-funding]")
                .await
                .contains("¥10,000.00")
        );
        assert!(
            ops.text("[data-testid=line-policy]")
                .await
                .contains("12: 8.8%")
        );
        // The line's rules: a mistyped plan is explained and changes nothing; then saved.
        ops.fill("instalments", "3:25, six:45").await;
        ops.submit("instalments").await;
        assert!(
            ops.text("[role=alert]")
                .await
                .contains("an instalment's periods must be a whole number")
        );
        assert!(
            ops.text("[data-testid=line-policy]")
                .await
                .contains("12: 8.8%")
        );
        ops.fill("instalments", "3:25, 6:45, 12:90").await;
        ops.fill("minimum_per_mille", "120").await;
        ops.submit("instalments").await;
        let rules = ops.text("[data-testid=line-policy]").await;
        assert!(rules.contains("12: 9%"), "{rules}");
        assert!(rules.contains("12% of the statement"), "{rules}");
        let console = Browser::open(&driver, &app, "deposit-shop").await;
        sign_in(&console, &owner).await;
        let wallet = Browser::open(&driver, &app, "deposit-wallet").await;
        sign_in(&wallet, &renter).await;
        // A mark the rider's score does not reach: the deposit is held in the wallet.
        ask_deposit(&console, &shop, "B-1", "300.00", "900").await;
        let first = holds()[0]["id"].as_str().expect("a hold").to_owned();
        wallet.goto("/wallet/services?q=deposit").await;
        wallet.follow("Deposits").await;
        wallet.fill(&format!("hold-pin-{first}"), PIN).await;
        wallet.submit(&format!("hold-pin-{first}")).await;
        assert!(
            wallet
                .text("[data-testid=holds]")
                .await
                .contains("held in the wallet")
        );
        assert_eq!(app.available(&renter), "200.00");
        console.goto(&format!("/merchant/{shop}/holds")).await;
        console.fill(&format!("charge-{first}"), "20.00").await;
        console.submit(&format!("charge-{first}")).await;
        assert!(
            console
                .text("[data-testid=shop-holds]")
                .await
                .contains("charged ¥20.00")
        );
        assert_eq!(app.available(&renter), "480.00");
        // Any score passes 350: waived, nothing held; charged beyond the wallet, a debt.
        ask_deposit(&console, &shop, "B-2", "600.00", "350").await;
        let second = holds()[0]["id"].as_str().expect("a hold").to_owned();
        wallet.goto("/wallet/holds").await;
        wallet.fill(&format!("hold-pin-{second}"), PIN).await;
        wallet.submit(&format!("hold-pin-{second}")).await;
        assert!(
            wallet
                .text("[data-testid=holds]")
                .await
                .contains("waived by credit")
        );
        assert_eq!(app.available(&renter), "480.00");
        console.goto(&format!("/merchant/{shop}/holds")).await;
        console.fill(&format!("charge-{second}"), "600.00").await;
        console.submit(&format!("charge-{second}")).await;
        console.shot("holds").await;
        // The wallet paid its 480.00; the platform paid 120.00, which the rider owes.
        assert_eq!(app.available(&renter), "0.00");
        wallet.goto("/wallet/holds").await;
        assert!(wallet.text("[data-testid=debts]").await.contains("¥120.00"));
        wallet.shot("holds").await;
        (ops, console, wallet)
    });
    // A week and a day later, the debt is overdue on the operator's list.
    app.advance(8 * 24 * 3600 * 1_000_000_000);
    app.runtime.block_on(async {
        ops.goto("/operator/credit").await;
        assert!(ops.text("[data-testid=overdue]").await.contains("¥120.00"));
        ops.shot("credit").await;
        let (status, body) = app.api(
            "POST",
            "/v1/top-ups",
            Some(&renter.token),
            Some("top-up"),
            Some(json!({"card_id": renter.card_id, "pin": PIN,
                        "amount": {"amount": "200.00", "currency": "CNY"}})),
        );
        assert_eq!(status, 202, "{body}");
        app.wait_for(|| app.available(&renter) == "200.00");
        let debt = wallet.page_text().await.contains("What you owe");
        assert!(debt);
        let (_, debts) = app.api("GET", "/v1/debts", Some(&renter.token), None, None);
        let debt = debts[0]["id"].as_str().expect("a debt").to_owned();
        wallet.fill(&format!("repay-pin-{debt}"), PIN).await;
        wallet.submit(&format!("repay-pin-{debt}")).await;
        assert!(!wallet.page_text().await.contains("What you owe"));
        assert_eq!(app.available(&renter), "80.00");
        ops.goto("/operator/credit").await;
        assert!(ops.page_text().await.contains("Nobody is overdue"));
        ops.close().await;
        console.close().await;
        wallet.close().await;
    });
    app.finish();
}

pub fn a_credit_line_opened_used_at_checkout_and_repaid_on_the_pages(backend: Backend) {
    if !browser::available() {
        return;
    }
    const DAY: u64 = 24 * 3600 * 1_000_000_000;
    let app = App::start(backend);
    let operator = app.operator("ops@example.com");
    let buyer = app.person("buyer@example.com", "20000.00");
    let owner = app.person("tea@example.com", "0");
    let shop = app.shop(&owner, "Tea House");
    let (status, body) = app.api(
        "POST",
        "/v1/credit/funding",
        Some(&operator.token),
        Some("fund"),
        Some(json!({"amount": {"amount": "10000.00", "currency": "CNY"}})),
    );
    assert_eq!(status, 201, "{body}");
    let (_, me) = app.api("GET", "/v1/me", Some(&buyer.token), None, None);
    let buyer_id = me["id"].as_str().expect("an id").to_owned();
    let (status, body) = app.api(
        "POST",
        &format!("/v1/users/{buyer_id}/verification"),
        Some(&operator.token),
        None,
        Some(json!({"level": "verified"})),
    );
    assert_eq!(status, 200, "{body}");
    // The balance counts from the next daily run.
    app.advance(DAY);
    let driver = Driver::start();
    let wallet = app.runtime.block_on(async {
        let wallet = Browser::open(&driver, &app, "credit-line").await;
        sign_in(&wallet, &buyer).await;
        wallet.goto("/wallet/services?q=huabei").await;
        wallet.follow("Credit line").await;
        let offer = wallet.text("[data-testid=line-offer]").await;
        wallet.shot("offer").await;
        wallet.choose("due-day", "9").await;
        wallet.press("Open my credit line").await;
        assert_eq!(wallet.text("[data-testid=line-available]").await, offer);
        // A shop's QR code paid from the line at the checkout: the wallet pays nothing.
        let qr = app.post(
            &format!("/v1/merchants/{shop}/trades"),
            &owner.token,
            None,
            json!({"out_trade_no": "H1", "subject": "Pu'er",
                   "amount": {"amount": "120.00", "currency": "CNY"}}),
        );
        let trade = qr["trade"]["id"].as_str().expect("an id").to_owned();
        wallet.goto(&format!("/qr/{trade}")).await;
        wallet.choose("source", "credit").await;
        wallet.fill("pin", PIN).await;
        wallet.submit("pin").await;
        assert_eq!(wallet.text("[data-testid=paid-amount]").await, "¥120.00");
        assert_eq!(app.available(&buyer), "20000.00");
        wallet
    });
    // Past the 1st: the statement.
    let (_, line) = app.api("GET", "/v1/credit/line", Some(&buyer.token), None, None);
    let (_, _, day) = formica_core::credit_line::civil(
        i64::try_from(line["opened_at"].as_u64().expect("a time") / 1_000_000_000).expect("a day")
            / 86_400,
    );
    // The 2nd to the 5th of next month: before the due day.
    app.advance((33 - u64::from(day)) * DAY);
    app.runtime.block_on(async {
        wallet.goto("/wallet/credit-line").await;
        let statement = wallet.text("[data-testid=statement]").await;
        assert!(statement.contains("¥120.00"), "{statement}");
        assert!(
            statement.contains("¥12.00"),
            "a minimum of 10%: {statement}"
        );
        wallet.shot("statement").await;
        wallet.fill("line-pin", PIN).await;
        wallet.submit("line-pin").await;
        assert!(
            wallet
                .text("[data-testid=statements]")
                .await
                .contains("repaid"),
            "{}",
            wallet.page_text().await
        );
        wallet.close().await;
    });
    assert_eq!(app.available(&buyer), "19880.00");
    app.finish();
}

/// A rental app's online deposit (`alipay.fund.auth.order.app.freeze`): the signed link takes
/// the renter to the platform's page (through signing in), a wrong PIN holds nothing, the PIN
/// approves it (held: the score is short of the mark), and opening the link again shows the
/// deposit as it stands instead of holding it twice.
pub fn an_online_deposit_approved_on_the_platforms_page(backend: Backend) {
    if !browser::available() {
        return;
    }
    let app = App::start(backend);
    let owner = app.person("bikes@example.com", "0");
    let shop = app.shop(&owner, "City Bikes");
    let (app_id, key, _) = app.gateway_app(&owner, &shop, false);
    let renter = app.person("+8613800000012", "200.00");
    let biz = json!({"out_order_no": "R-1", "out_request_no": "R-1-a", "amount": "150.00",
                     "order_title": "an e-bike for the day", "product_code": "PRE_AUTH_ONLINE",
                     "extra_param": "{\"category\":\"RENT_BIKE\",\"creditThreshold\":900}"});
    let url = browser::gateway_url(
        &app,
        (&app_id, &key),
        "alipay.fund.auth.order.app.freeze",
        &biz,
        &[],
    );
    let driver = Driver::start();
    let wallet = app.runtime.block_on(async {
        let wallet = Browser::open(&driver, &app, "deposit-online").await;
        wallet.goto(&url).await;
        let path = wallet.path().await;
        assert!(
            path.starts_with("/sign-in?next="),
            "signing in first: {path}"
        );
        wallet.fill("login", &renter.login).await;
        wallet.fill("password", PASSWORD).await;
        wallet.submit("password").await;
        let path = wallet.path().await;
        assert!(path.starts_with("/deposit-authorization?"), "{path}");
        // The page verifies the shop's signature itself: a request changed on the way is
        // refused, and nothing can be approved from it.
        wallet.goto(&path.replace("150.00", "1.00")).await;
        let refused = wallet.text("[role=alert]").await;
        assert!(refused.contains("signature does not verify"), "{refused}");
        wallet.goto(&path).await;
        let asked = wallet.text("[data-testid=deposit-request]").await;
        assert!(
            asked.contains("City Bikes") && asked.contains("¥150.00") && asked.contains("900"),
            "{asked}"
        );
        wallet.fill("approve-pin", "000000").await;
        wallet.submit("approve-pin").await;
        assert!(!wallet.text("[role=alert]").await.is_empty());
        wallet
    });
    assert_eq!(
        app.available(&renter),
        "200.00",
        "a wrong PIN holds nothing"
    );
    app.runtime.block_on(async {
        wallet.fill("approve-pin", PIN).await;
        wallet.submit("approve-pin").await;
        assert!(
            wallet
                .text("[data-testid=deposit-done]")
                .await
                .contains("held in the wallet")
        );
    });
    assert_eq!(app.available(&renter), "50.00");
    app.runtime.block_on(async {
        wallet.goto(&url).await;
        assert!(
            wallet
                .text("[data-testid=deposit-done]")
                .await
                .contains("held in the wallet")
        );
        wallet.goto("/wallet/holds").await;
        assert!(
            wallet
                .text("[data-testid=holds]")
                .await
                .contains("an e-bike for the day")
        );
        wallet.close().await;
    });
    assert_eq!(app.available(&renter), "50.00", "held once");
    app.finish();
}
