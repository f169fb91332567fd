//! The open gateway over real HTTP: signed requests as the SDKs make them, every answer's
//! signature checked with the app's platform key, and every error path answering its
//! documented code with nothing changed. (The unmodified Python SDK drives the same server in
//! `tests/sdk/`.)

use std::sync::{Arc, Mutex};
use std::time::Duration;

use formica_api::gateway::sign::{self, RsaPrivateKey, RsaPublicKey, SignType};
use formica_api::gateway::time;
use formica_testkit::Backend;
use serde_json::{Map, Value, json};

use crate::app::{App, Person, SECOND};

const DAY: u64 = 24 * 3600 * SECOND;

/// The forms a test notify_url received.
type Forms = Arc<Mutex<Vec<Vec<(String, String)>>>>;

/// A merchant with a gateway app: its owner, its key pair, and the platform's public key.
pub struct Shop {
    pub owner: Person,
    pub merchant_id: String,
    pub app_id: String,
    pub key: RsaPrivateKey,
    pub platform: RsaPublicKey,
}

fn test_key() -> RsaPrivateKey {
    static KEY: std::sync::OnceLock<RsaPrivateKey> = std::sync::OnceLock::new();
    KEY.get_or_init(sign::generate_key).clone()
}

fn other_key() -> RsaPrivateKey {
    static KEY: std::sync::OnceLock<RsaPrivateKey> = std::sync::OnceLock::new();
    KEY.get_or_init(sign::generate_key).clone()
}

pub fn open_shop(app: &App, login: &str, escrow: bool) -> Shop {
    let owner = app.person(login, "0");
    let merchant = app.post(
        "/v1/merchants",
        &owner.token,
        None,
        json!({"name": "Tea House", "contact": login, "category": "food", "country": "CN",
               "currency": "CNY", "card_id": owner.card_id}),
    );
    assert_eq!(merchant.status, 201, "{merchant:?}");
    let merchant_id = merchant.body["id"].as_str().expect("an id").to_owned();
    let key = test_key();
    let created = app.post(
        &format!("/v1/merchants/{merchant_id}/apps"),
        &owner.token,
        None,
        json!({"name": "till", "escrow": escrow,
               "public_key": sign::public_key_pem(&key.to_public_key())}),
    );
    assert_eq!(created.status, 201, "{created:?}");
    let app_id = created.body["app_id"]
        .as_str()
        .expect("an app_id")
        .to_owned();
    let platform = app.get(&format!("/v1/apps/{app_id}/platform-key"), &owner.token);
    assert_eq!(platform.status, 200, "{platform:?}");
    let platform = sign::parse_public_key(platform.body["base64"].as_str().expect("base64"))
        .expect("the platform key parses");
    Shop {
        owner,
        merchant_id,
        app_id,
        key,
        platform,
    }
}

/// Common parameters as python-alipay-sdk sends them, timestamped by the server's clock.
fn common(app: &App, shop: &Shop, method: &str, biz: &Value) -> Vec<(String, String)> {
    vec![
        ("app_id".into(), shop.app_id.clone()),
        ("method".into(), method.into()),
        ("charset".into(), "utf-8".into()),
        ("sign_type".into(), "RSA2".into()),
        ("timestamp".into(), time::format(app.clock.now(), 0)),
        ("version".into(), "1.0".into()),
        ("biz_content".into(), biz.to_string()),
    ]
}

fn signed(params: &mut Vec<(String, String)>, key: &RsaPrivateKey) -> String {
    let content = sign::content_to_sign(
        params.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        &["sign"],
    );
    params.push((
        "sign".into(),
        sign::sign(key, SignType::Rsa2, content.as_bytes()),
    ));
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .finish()
}

/// Sends `params` and returns the response object, after checking the envelope's shape and
/// its signature with the platform key exactly as the SDKs cut it (§4.2).
fn exchange(app: &App, shop: &Shop, method: &str, form: &str) -> Map<String, Value> {
    let (status, _, body) = app.post_form("/gateway.do", form);
    assert_eq!(status, 200, "{body}");
    let key = format!("\"{}_response\":", method.replace('.', "_"));
    assert!(body.starts_with(&format!("{{{key}")), "{body}");
    let start = key.len() + 1;
    let end = body.rfind(",\"sign\":\"").expect("a sign");
    let signed_text = &body[start..end];
    let signature = &body[end + 9..body.len() - 2];
    assert!(
        sign::verify(
            &shop.platform,
            SignType::Rsa2,
            signed_text.as_bytes(),
            signature
        ),
        "the response verifies: {body}"
    );
    match serde_json::from_str(signed_text).expect("JSON") {
        Value::Object(map) => map,
        other => panic!("an object: {other}"),
    }
}

/// A query of P1 whose parameters `edit` changes before they are signed.
fn query_edited(
    app: &App,
    shop: &Shop,
    edit: impl FnOnce(&mut Vec<(String, String)>),
) -> Map<String, Value> {
    let mut params = common(
        app,
        shop,
        "alipay.trade.query",
        &json!({"out_trade_no": "P1"}),
    );
    edit(&mut params);
    let form = signed(&mut params, &shop.key);
    exchange(app, shop, "alipay.trade.query", &form)
}

pub fn call(app: &App, shop: &Shop, method: &str, biz: Value) -> Map<String, Value> {
    let mut params = common(app, shop, method, &biz);
    let form = signed(&mut params, &shop.key);
    exchange(app, shop, method, &form)
}

fn sub_code(answer: &Map<String, Value>) -> (&str, &str) {
    (
        answer["code"].as_str().unwrap_or(""),
        answer.get("sub_code").and_then(Value::as_str).unwrap_or(""),
    )
}

fn payment_code(app: &App, buyer: &Person) -> String {
    let code = app.post("/v1/wallet/payment-code", &buyer.token, None, json!({}));
    assert_eq!(code.status, 201, "{code:?}");
    code.body["code"].as_str().expect("a code").to_owned()
}

fn pay(app: &App, shop: &Shop, buyer: &Person, no: &str, amount: &str) -> Map<String, Value> {
    let code = payment_code(app, buyer);
    call(
        app,
        shop,
        "alipay.trade.pay",
        json!({"out_trade_no": no, "scene": "bar_code", "auth_code": code,
               "subject": "tea", "total_amount": amount}),
    )
}

fn wait_for<T>(mut found: impl FnMut() -> Option<T>) -> T {
    for _ in 0..1000 {
        if let Some(value) = found() {
            return value;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("never happened");
}

pub fn gateway_till_payments_refunds_and_queries(backend: Backend) {
    let app = App::start(backend);
    let shop = open_shop(&app, "shop@example.com", false);
    let buyer = app.person("buyer@example.com", "500.00");

    // A QR code for the counter: the trade exists, unpaid, until the buyer pays it.
    let qr = call(
        &app,
        &shop,
        "alipay.trade.precreate",
        json!({"out_trade_no": "Q1", "total_amount": 12.5, "subject": "tea {for two"}),
    );
    assert_eq!(sub_code(&qr), ("10000", ""));
    let qr_code = qr["qr_code"].as_str().expect("a qr_code");
    assert!(qr_code.contains("/qr/"), "{qr_code}");
    let again = call(
        &app,
        &shop,
        "alipay.trade.precreate",
        json!({"out_trade_no": "Q1", "total_amount": "12.50", "subject": "tea {for two"}),
    );
    assert_eq!(
        again["qr_code"], qr["qr_code"],
        "the same request, the same QR"
    );
    let queried = call(
        &app,
        &shop,
        "alipay.trade.query",
        json!({"out_trade_no": "Q1"}),
    );
    assert_eq!(queried["trade_status"], "WAIT_BUYER_PAY");
    assert_eq!(queried["total_amount"], "12.50");
    // The QR code opens the trade's checkout (a page of the web crate, tested there).
    assert!(
        qr_code.ends_with(&format!(
            "/qr/{}",
            queried["trade_no"].as_str().expect("a trade_no")
        )),
        "{qr_code}"
    );

    // The till scans the buyer's payment code.
    let paid = pay(&app, &shop, &buyer, "P1", "88.88");
    assert_eq!(sub_code(&paid), ("10000", ""), "{paid:?}");
    assert_eq!(paid["total_amount"], "88.88");
    assert_eq!(paid["buyer_logon_id"], "b***@example.com");
    assert_eq!(paid["fund_bill_list"][0]["fund_channel"], "ALIPAYACCOUNT");
    assert_eq!(app.available(&buyer), "411.12");
    let trade_no = paid["trade_no"].as_str().expect("a trade_no").to_owned();
    let queried = call(
        &app,
        &shop,
        "alipay.trade.query",
        json!({"trade_no": trade_no}),
    );
    assert_eq!(queried["trade_status"], "TRADE_SUCCESS");
    assert_eq!(queried["out_trade_no"], "P1");

    // Partial refunds, each once per out_request_no.
    let refund = |no: &str, amount: &str| {
        call(
            &app,
            &shop,
            "alipay.trade.refund",
            json!({"out_trade_no": "P1", "refund_amount": amount, "out_request_no": no}),
        )
    };
    let first = refund("R1", "10.00");
    assert_eq!(
        (first["fund_change"].as_str(), first["refund_fee"].as_str()),
        (Some("Y"), Some("10.00"))
    );
    let repeat = refund("R1", "10.00");
    assert_eq!(
        (
            repeat["fund_change"].as_str(),
            repeat["refund_fee"].as_str()
        ),
        (Some("N"), Some("10.00"))
    );
    let second = refund("R2", "8.88");
    assert_eq!(second["refund_fee"], "18.88");
    assert_eq!(app.available(&buyer), "430.00");
    let found = call(
        &app,
        &shop,
        "alipay.trade.fastpay.refund.query",
        json!({"out_trade_no": "P1", "out_request_no": "R2"}),
    );
    assert_eq!(found["refund_amount"], "8.88");
    assert_eq!(found["total_amount"], "88.88");
    let none = call(
        &app,
        &shop,
        "alipay.trade.fastpay.refund.query",
        json!({"out_trade_no": "P1", "out_request_no": "R9"}),
    );
    assert_eq!(sub_code(&none), ("10000", ""));
    assert!(none.get("refund_amount").is_none());

    // The merchant's console lists the same trades.
    let listed = app.get(
        &format!("/v1/merchants/{}/trades?out_trade_no=P1", shop.merchant_id),
        &shop.owner.token,
    );
    assert_eq!(listed.body["data"][0]["id"], trade_no.as_str());
    assert_eq!(listed.body["data"][0]["refunded"]["amount"], "18.88");
    let stranger = app.get(
        &format!("/v1/merchants/{}/trades", shop.merchant_id),
        &buyer.token,
    );
    assert_eq!(stranger.status, 404);

    // Close an unpaid trade; cancel a paid one (a full refund within the day).
    let closed = call(
        &app,
        &shop,
        "alipay.trade.close",
        json!({"out_trade_no": "Q1"}),
    );
    assert_eq!(sub_code(&closed), ("10000", ""));
    let queried = call(
        &app,
        &shop,
        "alipay.trade.query",
        json!({"out_trade_no": "Q1"}),
    );
    assert_eq!(queried["trade_status"], "TRADE_CLOSED");
    pay(&app, &shop, &buyer, "P2", "20.00");
    let cancelled = call(
        &app,
        &shop,
        "alipay.trade.cancel",
        json!({"out_trade_no": "P2"}),
    );
    assert_eq!(
        (
            cancelled["action"].as_str(),
            cancelled["retry_flag"].as_str()
        ),
        (Some("refund"), Some("N"))
    );
    let twice = call(
        &app,
        &shop,
        "alipay.trade.cancel",
        json!({"out_trade_no": "P2"}),
    );
    assert_eq!(twice["action"], "refund");
    assert_eq!(app.available(&buyer), "430.00");

    // Pay a person from the merchant's balance: once per out_biz_no.
    let friend = app.person("friend@example.com", "0");
    let transfer = |amount: &str| {
        call(
            &app,
            &shop,
            "alipay.fund.trans.uni.transfer",
            json!({"out_biz_no": "B1", "trans_amount": amount, "product_code": "TRANS_ACCOUNT_NO_PWD",
                   "payee_info": {"identity": "friend@example.com", "identity_type": "ALIPAY_LOGON_ID"}}),
        )
    };
    let sent = transfer("5.00");
    assert_eq!(sent["status"], "SUCCESS");
    let resent = transfer("5.00");
    assert_eq!(resent["order_id"], sent["order_id"]);
    assert_eq!(app.available(&friend), "5.00");
    assert_eq!(sub_code(&transfer("6.00")), ("40004", "INVALID_PARAMETER"));
    let too_much = call(
        &app,
        &shop,
        "alipay.fund.trans.uni.transfer",
        json!({"out_biz_no": "B2", "trans_amount": "1000.00", "product_code": "TRANS_ACCOUNT_NO_PWD",
               "payee_info": {"identity": friend.id, "identity_type": "ALIPAY_USER_ID"}}),
    );
    assert_eq!(sub_code(&too_much), ("40004", "PAYER_BALANCE_NOT_ENOUGH"));

    // Yesterday's statement: two payments, three refunds, the fees less what went back.
    app.advance(DAY);
    let today = (app.clock.now() / SECOND) as i64 + 8 * 3600;
    let yesterday = time::format_day(today / 86_400 - 1);
    let bill = call(
        &app,
        &shop,
        "alipay.data.dataservice.bill.downloadurl.query",
        json!({"bill_type": "trade", "bill_date": yesterday}),
    );
    let url = bill["bill_download_url"].as_str().expect("a url");
    let (status, csv) = app.get_text(url);
    assert_eq!(status, 200, "{csv}");
    assert!(csv.contains("payment,") && csv.contains(",R2,"), "{csv}");
    // 88.88 + 20.00 paid; 10.00 + 8.88 + 20.00 refunded; fees 0.53 + 0.12 less 0.06 + 0.05 + 0.12.
    assert!(csv.contains("# payments,108.88\n"), "{csv}");
    assert!(csv.contains("# refunds,38.88\n"), "{csv}");
    assert!(csv.contains("# fees,0.42\n"), "{csv}");
    let (forged, _) = app.get_text(&url.replace("sig=", "sig=0"));
    assert_eq!(forged, 403);

    // After the refund window (90 days) a sweep finishes paid trades: no more refunds.
    app.advance(91 * DAY);
    wait_for(|| {
        let q = call(
            &app,
            &shop,
            "alipay.trade.query",
            json!({"out_trade_no": "P1"}),
        );
        (q["trade_status"] == "TRADE_FINISHED").then_some(())
    });
    let late = refund("R9", "1.00");
    assert_eq!(sub_code(&late), ("40004", "ACQ.TRADE_HAS_FINISHED"));
    app.finish();
}

pub fn gateway_errors_answer_their_codes_and_change_nothing(backend: Backend) {
    let app = App::start(backend);
    let shop = open_shop(&app, "shop@example.com", false);
    let buyer = app.person("buyer@example.com", "100.00");
    let paid = pay(&app, &shop, &buyer, "P1", "30.00");
    assert_eq!(sub_code(&paid), ("10000", ""));
    let trades_before = app.get("/v1/trades", &buyer.token).body["data"].clone();
    let balance_before = app.available(&buyer);

    // Signed with another key.
    let mut params = common(
        &app,
        &shop,
        "alipay.trade.query",
        &json!({"out_trade_no": "P1"}),
    );
    let form = signed(&mut params, &other_key());
    let answer = exchange(&app, &shop, "alipay.trade.query", &form);
    assert_eq!(sub_code(&answer), ("40002", "isv.invalid-signature"));
    assert!(answer["sub_msg"].as_str().unwrap_or("").contains("app_id="));

    // A parameter changed after signing.
    let mut params = common(
        &app,
        &shop,
        "alipay.trade.refund",
        &json!({"out_trade_no": "P1", "refund_amount": "1.00", "out_request_no": "X"}),
    );
    let form = signed(&mut params, &shop.key).replace("1.00", "9.00");
    let answer = exchange(&app, &shop, "alipay.trade.refund", &form);
    assert_eq!(sub_code(&answer), ("40002", "isv.invalid-signature"));

    // Unknown app: nothing to sign with, so the answer is unsigned.
    let mut params = common(
        &app,
        &shop,
        "alipay.trade.query",
        &json!({"out_trade_no": "P1"}),
    );
    params[0].1 = "2021999999999999".into();
    let form = signed(&mut params, &shop.key);
    let (status, _, body) = app.post_form("/gateway.do", &form);
    assert_eq!(status, 200);
    let body: Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(
        body["alipay_trade_query_response"]["sub_code"],
        "isv.invalid-app-id"
    );

    // A timestamp two days old, a malformed one, and a missing one.
    let old = time::format(app.clock.now() - 2 * DAY, 0);
    let answer = query_edited(&app, &shop, |p| p[4].1 = old);
    assert_eq!(sub_code(&answer), ("40002", "isv.invalid-timestamp"));
    let answer = query_edited(&app, &shop, |p| p[4].1 = "2026/01/01 00:00:00".into());
    assert_eq!(sub_code(&answer), ("40002", "isv.invalid-timestamp"));
    let answer = query_edited(&app, &shop, |p| {
        p.remove(4);
    });
    assert_eq!(sub_code(&answer), ("40001", "isv.missing-timestamp"));

    // A notify_url that is not a web address, and a return_url that is a script.
    for (name, url) in [
        ("notify_url", "file:///etc/passwd"),
        ("return_url", "javascript:alert(1)"),
    ] {
        let biz = json!({"out_trade_no": "Q9", "subject": "x", "total_amount": "1.00"});
        let mut params = common(&app, &shop, "alipay.trade.precreate", &biz);
        params.push((name.into(), url.into()));
        let form = signed(&mut params, &shop.key);
        let answer = exchange(&app, &shop, "alipay.trade.precreate", &form);
        assert_eq!(
            sub_code(&answer),
            ("40002", "isv.invalid-parameter"),
            "{name}"
        );
    }

    // Unknown method: the answer is still keyed and signed by it.
    let answer = call(&app, &shop, "alipay.trade.nonsense", json!({}));
    assert_eq!(sub_code(&answer), ("40002", "isv.invalid-method"));

    // A missing biz_content field.
    let answer = call(
        &app,
        &shop,
        "alipay.trade.precreate",
        json!({"out_trade_no": "Q1", "subject": "x"}),
    );
    assert_eq!(sub_code(&answer), ("40002", "isv.invalid-parameter"));
    assert!(
        answer["sub_msg"]
            .as_str()
            .unwrap_or("")
            .contains("total_amount")
    );
    // Three decimals, and a float that is not a price.
    for amount in [json!("1.005"), json!(0.001), json!("-1"), json!("1e3")] {
        let answer = call(
            &app,
            &shop,
            "alipay.trade.precreate",
            json!({"out_trade_no": "Q1", "subject": "x", "total_amount": amount}),
        );
        assert_eq!(
            sub_code(&answer),
            ("40002", "isv.invalid-parameter"),
            "{amount}"
        );
    }

    // Refund above what was paid, with and without out_request_no.
    let answer = call(
        &app,
        &shop,
        "alipay.trade.refund",
        json!({"out_trade_no": "P1", "refund_amount": "30.01", "out_request_no": "R1"}),
    );
    assert_eq!(
        sub_code(&answer),
        ("40004", "ACQ.REASON_TRADE_REFUND_FEE_ERR")
    );
    assert_eq!(answer["refund_fee"], "0.00");
    let answer = call(
        &app,
        &shop,
        "alipay.trade.refund",
        json!({"out_trade_no": "P1", "refund_amount": "10.00"}),
    );
    assert_eq!(
        sub_code(&answer),
        ("40004", "ACQ.REFUND_AMT_NOT_EQUAL_TOTAL")
    );

    // The same out_trade_no with another amount.
    let answer = pay(&app, &shop, &buyer, "P1", "31.00");
    assert_eq!(sub_code(&answer), ("40004", "ACQ.CONTEXT_INCONSISTENT"));
    // The same request again: the first answer, nothing paid twice.
    let retry = pay(&app, &shop, &buyer, "P1", "30.00");
    assert_eq!(retry["trade_no"], paid["trade_no"]);

    // A payment code used twice, and one that was never issued.
    let code = payment_code(&app, &buyer);
    let pay_with = |no: &str, code: &str| {
        call(
            &app,
            &shop,
            "alipay.trade.pay",
            json!({"out_trade_no": no, "scene": "bar_code", "auth_code": code,
                   "subject": "tea", "total_amount": "1.00"}),
        )
    };
    assert_eq!(sub_code(&pay_with("P2", &code)), ("10000", ""));
    assert_eq!(
        sub_code(&pay_with("P3", &code)),
        ("40004", "ACQ.PAYMENT_AUTH_CODE_INVALID")
    );
    assert_eq!(
        sub_code(&pay_with("P4", "281234567890123456")),
        ("40004", "ACQ.PAYMENT_AUTH_CODE_INVALID")
    );
    // A code older than a minute.
    let stale = payment_code(&app, &buyer);
    app.clock.advance(61 * SECOND);
    assert_eq!(
        sub_code(&pay_with("P5", &stale)),
        ("40004", "ACQ.PAYMENT_AUTH_CODE_INVALID")
    );
    // More than the buyer has: nothing charged, and the trade does not exist.
    let poor = pay(&app, &shop, &buyer, "P6", "500.00");
    assert_eq!(sub_code(&poor), ("40004", "ACQ.BUYER_BALANCE_NOT_ENOUGH"));
    assert_eq!(poor["buyer_pay_amount"], "0.00");
    let missing = call(
        &app,
        &shop,
        "alipay.trade.query",
        json!({"out_trade_no": "P6"}),
    );
    assert_eq!(sub_code(&missing), ("40004", "ACQ.TRADE_NOT_EXIST"));
    // Cancelling a number that was never paid (after letting anything queued be written).
    let never = call(
        &app,
        &shop,
        "alipay.trade.cancel",
        json!({"out_trade_no": "NEVER"}),
    );
    assert_eq!(sub_code(&never), ("40004", "ACQ.TRADE_NOT_EXIST"));
    // Someone else's trade is not found.
    let other = open_shop(&app, "other@example.com", false);
    let theirs = call(
        &app,
        &other,
        "alipay.trade.query",
        json!({"trade_no": paid["trade_no"]}),
    );
    assert_eq!(sub_code(&theirs), ("40004", "ACQ.TRADE_NOT_EXIST"));

    // Only P1 (30.00) and P2 (1.00) were ever paid.
    assert_eq!(balance_before, "70.00");
    assert_eq!(app.available(&buyer), "69.00");
    let trades_after = app.get("/v1/trades", &buyer.token).body["data"].clone();
    assert_eq!(
        trades_after.as_array().map(Vec::len),
        trades_before.as_array().map(|t| t.len() + 1)
    );
    app.finish();
}

pub fn a_day_of_trading_settles_payments_less_refunds_and_fees(backend: Backend) {
    let app = App::start(backend);
    let shop = open_shop(&app, "shop@example.com", false);
    let buyers: Vec<Person> = (0..3)
        .map(|n| app.person(&format!("buyer{n}@example.com"), "1000.00"))
        .collect();
    let mut paid = 0u64;
    for n in 0..9u64 {
        let amount = 10_00 + n * 3_33;
        let answer = pay(
            &app,
            &shop,
            &buyers[(n % 3) as usize],
            &format!("T{n}"),
            &format!("{}.{:02}", amount / 100, amount % 100),
        );
        assert_eq!(sub_code(&answer), ("10000", ""));
        paid += amount;
        app.clock.advance(60 * SECOND);
    }
    let mut refunded = 0u64;
    for (n, amount) in [(1u64, "3.33"), (4, "5.00"), (4, "1.00")] {
        let answer = call(
            &app,
            &shop,
            "alipay.trade.refund",
            json!({"out_trade_no": format!("T{n}"), "refund_amount": amount,
                   "out_request_no": format!("R{n}-{}", amount.replace('.', ""))}),
        );
        assert_eq!(answer["fund_change"], "Y", "{answer:?}");
        refunded += (amount.replace('.', "").parse::<u64>()).expect("minor");
    }
    // Fees: 0.6% of each payment, rounded; returned in proportion on refunds.
    let statement = |date: &str| {
        app.send(
            "GET",
            &format!("/v1/merchants/{}/statement?date={date}", shop.merchant_id),
            Some(&shop.owner.token),
            None,
            None,
        )
    };
    app.advance(DAY);
    let today = (app.clock.now() / SECOND) as i64 + 8 * 3600;
    let yesterday = time::format_day(today / 86_400 - 1);
    let csv = statement(&yesterday).body;
    let csv = csv.as_str().expect("CSV text");
    let line = |name: &str| {
        csv.lines()
            .find_map(|l| l.strip_prefix(&format!("# {name},")))
            .expect("a total")
            .replace('.', "")
            .parse::<i64>()
            .expect("minor")
    };
    assert_eq!(line("payments"), paid as i64);
    assert_eq!(line("refunds"), refunded as i64);
    let net = line("net");
    assert_eq!(net, paid as i64 - refunded as i64 - line("fees"));
    // The settlement job paid the day's net out through the bank.
    let settlement = wait_for(|| {
        let list = app.get(
            &format!("/v1/merchants/{}/settlements", shop.merchant_id),
            &shop.owner.token,
        );
        let first = list.body[0].clone();
        (first["status"] == "succeeded").then_some(first)
    });
    let amount = settlement["amount"]["amount"]
        .as_str()
        .expect("an amount")
        .replace('.', "");
    assert_eq!(amount.parse::<i64>().expect("minor"), net);
    assert_eq!(
        settlement["fees"]["amount"]
            .as_str()
            .map(|f| f.replace('.', "").parse::<i64>().ok()),
        Some(Some(line("fees")))
    );
    app.finish();
}

pub fn notifications_reach_notify_url_signed_until_it_answers_success(backend: Backend) {
    let app = App::start(backend);
    let shop = open_shop(&app, "shop@example.com", false);
    let buyer = app.person("buyer@example.com", "100.00");
    let taken: Forms = Arc::default();
    let url = notify_receiver(1, Arc::clone(&taken));
    let mut params = common(
        &app,
        &shop,
        "alipay.trade.pay",
        &json!({"out_trade_no": "N1", "scene": "bar_code", "auth_code": payment_code(&app, &buyer),
                "subject": "tea", "total_amount": "20.00", "passback_params": "a=b&c"}),
    );
    params.push(("notify_url".into(), url));
    let form = signed(&mut params, &shop.key);
    let paid = exchange(&app, &shop, "alipay.trade.pay", &form);
    assert_eq!(sub_code(&paid), ("10000", ""));
    // The first delivery is answered `fail`; the retry comes four minutes later.
    let log = || {
        app.get(
            &format!("/v1/merchants/{}/notifications", shop.merchant_id),
            &shop.owner.token,
        )
        .body
    };
    let first = wait_for(|| {
        let l = log();
        (l[0]["attempts"] == 1).then_some(l[0].clone())
    });
    assert_eq!(first["status"], "pending");
    app.clock.advance(4 * 60 * SECOND);
    let delivered = wait_for(|| {
        let l = log();
        (l[0]["status"] == "delivered").then_some(l[0].clone())
    });
    assert_eq!(delivered["attempts"], 2);
    let calls = taken.lock().expect("lock").clone();
    assert_eq!(calls.len(), 2);
    assert_eq!(
        calls[0], calls[1],
        "a retry is the same notification, notify_id included"
    );
    let params: std::collections::BTreeMap<_, _> = calls[1].iter().cloned().collect();
    assert_eq!(params["trade_status"], "TRADE_SUCCESS");
    assert_eq!(params["out_trade_no"], "N1");
    assert_eq!(params["total_amount"], "20.00");
    assert_eq!(params["passback_params"], "a=b&c");
    assert!(params.values().all(|v| !v.is_empty()));
    assert_notification_signed(&shop, &params);
    app.finish();
}

pub fn a_slow_notify_url_does_not_hold_up_other_merchants(backend: Backend) {
    // Regression: the worker sent notifications one after another, so a merchant whose
    // server hung held up everyone's for as long as each request could take.
    let app = App::start(backend);
    let slow_shop = open_shop(&app, "slow@example.com", false);
    let shop = open_shop(&app, "shop@example.com", false);
    let buyer = app.person("buyer@example.com", "100.00");
    let released = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let holding = Arc::clone(&released);
    let slow = axum::routing::post(move || {
        let holding = Arc::clone(&holding);
        async move {
            while !holding.load(std::sync::atomic::Ordering::SeqCst) {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            "success"
        }
    });
    let slow_url = format!(
        "http://{}/notify",
        crate::app::serve_local(axum::Router::new().route("/notify", slow))
    );
    let taken: Forms = Arc::default();
    let url = notify_receiver(0, Arc::clone(&taken));
    for (shop, url, no) in [(&slow_shop, slow_url, "S1"), (&shop, url, "F1")] {
        let biz = json!({"out_trade_no": no, "scene": "bar_code",
                         "auth_code": payment_code(&app, &buyer), "subject": "tea",
                         "total_amount": "1.00"});
        let mut params = common(&app, shop, "alipay.trade.pay", &biz);
        params.push(("notify_url".into(), url));
        let form = signed(&mut params, &shop.key);
        assert_eq!(
            sub_code(&exchange(&app, shop, "alipay.trade.pay", &form)),
            ("10000", "")
        );
    }
    // The fast merchant hears while the slow one's server still holds its request.
    wait_for(|| (!taken.lock().expect("lock").is_empty()).then_some(()));
    let log = |shop: &Shop| {
        app.get(
            &format!("/v1/merchants/{}/notifications", shop.merchant_id),
            &shop.owner.token,
        )
        .body
    };
    // The slow one's first attempt has not even ended.
    assert_eq!(log(&slow_shop)[0]["attempts"], 0);
    released.store(true, std::sync::atomic::Ordering::SeqCst);
    wait_for(|| (log(&slow_shop)[0]["status"] == "delivered").then_some(()));
    assert_eq!(log(&shop)[0]["status"], "delivered");
    app.finish();
}

pub fn a_legacy_rsa_app_is_answered_and_notified_in_sha1(backend: Backend) {
    let app = App::start(backend);
    let shop = open_shop(&app, "shop@example.com", false);
    let buyer = app.person("buyer@example.com", "100.00");
    let legacy = app.post(
        &format!("/v1/merchants/{}/apps", shop.merchant_id),
        &shop.owner.token,
        None,
        json!({"name": "old till", "sign_type": "RSA",
               "public_key": sign::public_key_base64(&shop.key.to_public_key())}),
    );
    assert_eq!(legacy.status, 201, "{legacy:?}");
    let platform =
        sign::parse_public_key(legacy.body["platform_public_key"].as_str().expect("a key"))
            .expect("parses");
    let shop = Shop {
        app_id: legacy.body["app_id"]
            .as_str()
            .expect("an app_id")
            .to_owned(),
        platform,
        ..shop
    };
    let taken: Forms = Arc::default();
    let url = notify_receiver(0, Arc::clone(&taken));
    let biz = json!({"out_trade_no": "L1", "scene": "bar_code", "auth_code": payment_code(&app, &buyer),
                     "subject": "tea", "total_amount": "3.00"});
    let mut params = common(&app, &shop, "alipay.trade.pay", &biz);
    params[3].1 = "RSA".into();
    params.push(("notify_url".into(), url));
    let content = sign::content_to_sign(
        params.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        &["sign"],
    );
    params.push((
        "sign".into(),
        sign::sign(&shop.key, SignType::Rsa, content.as_bytes()),
    ));
    let form = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .finish();
    let (status, _, body) = app.post_form("/gateway.do", &form);
    assert_eq!(status, 200);
    let start = "{\"alipay_trade_pay_response\":".len();
    let end = body.rfind(",\"sign\":\"").expect("signed");
    assert!(body[start..end].contains("\"code\":\"10000\""), "{body}");
    assert!(sign::verify(
        &shop.platform,
        SignType::Rsa,
        &body.as_bytes()[start..end],
        &body[end + 9..body.len() - 2]
    ));
    let notice = wait_for(|| taken.lock().expect("lock").first().cloned());
    let notice: std::collections::BTreeMap<_, _> = notice.into_iter().collect();
    assert_eq!(notice["sign_type"], "RSA");
    let content = sign::content_to_sign(
        notice.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        &["sign", "sign_type"],
    );
    assert!(sign::verify(
        &shop.platform,
        SignType::Rsa,
        content.as_bytes(),
        &notice["sign"]
    ));
    app.finish();
}

pub fn merchant_endpoints_refuse_bad_input_and_change_nothing(backend: Backend) {
    let app = App::start(backend);
    let shop = open_shop(&app, "shop@example.com", false);
    let other = app.person("other@example.com", "0");
    let good = json!({"name": "Tea", "contact": "t@example.com", "category": "food",
                      "country": "CN", "currency": "CNY", "card_id": other.card_id});
    let with = |field: &str, value: Value| {
        let mut body = good.clone();
        body[field] = value;
        app.post("/v1/merchants", &other.token, None, body)
    };
    for (field, value, status, code) in [
        ("country", json!("China"), 400, "invalid_field"),
        ("currency", json!("XYZ"), 400, "unknown_currency"),
        ("name", json!(""), 400, "invalid_field"),
        // Someone else's card.
        ("card_id", json!(shop.owner.card_id), 404, "card_not_found"),
    ] {
        let answer = with(field, value);
        assert_eq!(
            (answer.status, answer.code()),
            (status, code),
            "{field}: {answer:?}"
        );
    }
    assert_eq!(app.get("/v1/merchants", &other.token).body, json!([]));

    let apps = format!("/v1/merchants/{}/apps", shop.merchant_id);
    let short = sign::public_key_pem(
        &rsa::RsaPrivateKey::new(&mut rand_core::OsRng, 1024)
            .expect("a small key")
            .to_public_key(),
    );
    for (body, code) in [
        (
            json!({"name": "a", "public_key": "not a key"}),
            "invalid_key",
        ),
        (json!({"name": "a", "public_key": short}), "invalid_key"),
        (json!({"name": "a", "sign_type": "MD5"}), "invalid_field"),
    ] {
        let answer = app.post(&apps, &shop.owner.token, None, body);
        assert_eq!((answer.status, answer.code()), (400, code), "{answer:?}");
    }
    assert_eq!(
        app.get(&apps, &shop.owner.token)
            .body
            .as_array()
            .map(Vec::len),
        Some(1)
    );
    // Another person's merchant is not found; the fee rate is the operator's.
    let theirs = app.get(&apps, &other.token);
    assert_eq!((theirs.status, theirs.code()), (404, "merchant_not_found"));
    let fee = format!("/v1/merchants/{}/fee-rate", shop.merchant_id);
    let answer = app.send(
        "PUT",
        &fee,
        Some(&shop.owner.token),
        None,
        Some(r#"{"fee_ppm": 0}"#),
    );
    assert_eq!(answer.status, 403, "{answer:?}");
    let operator = app.operator();
    let answer = app.send(
        "PUT",
        &fee,
        Some(&operator.token),
        None,
        Some(r#"{"fee_ppm": 100001}"#),
    );
    assert_eq!((answer.status, answer.code()), (400, "fee_rate_too_high"));
    let merchant = app.get(
        &format!("/v1/merchants/{}", shop.merchant_id),
        &shop.owner.token,
    );
    assert_eq!(merchant.body["fee_ppm"], 6000);
    let statement = app.get(
        &format!(
            "/v1/merchants/{}/statement?date=2026-13-01",
            shop.merchant_id
        ),
        &shop.owner.token,
    );
    assert_eq!((statement.status, statement.code()), (400, "invalid_field"));
    app.finish();
}

/// A notification's signature verifies with the app's platform key (§6.4: over every
/// parameter but `sign` and `sign_type`).
fn assert_notification_signed(shop: &Shop, params: &std::collections::BTreeMap<String, String>) {
    let content = sign::content_to_sign(
        params.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        &["sign", "sign_type"],
    );
    assert!(sign::verify(
        &shop.platform,
        SignType::Rsa2,
        content.as_bytes(),
        &params["sign"]
    ));
}

/// A notify_url that answers `fail` to its first `failures` calls and `success` after,
/// keeping each call's form.
fn notify_receiver(failures: usize, taken: Forms) -> String {
    let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let route = axum::routing::post(move |body: String| {
        let calls = Arc::clone(&calls);
        let taken = Arc::clone(&taken);
        async move {
            let form: Vec<(String, String)> = form_urlencoded::parse(body.as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect();
            taken.lock().expect("lock").push(form);
            if calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst) < failures {
                "fail"
            } else {
                "success\n"
            }
        }
    });
    let router = axum::Router::new().route("/notify", route);
    format!("http://{}/notify", crate::app::serve_local(router))
}

pub fn page_pay_sends_the_browser_to_the_hosted_checkout(backend: Backend) {
    let app = App::start(backend);
    let shop = open_shop(&app, "shop@example.com", false);
    let biz = json!({"out_trade_no": "W1", "total_amount": "15.00", "subject": "cake",
                     "product_code": "FAST_INSTANT_TRADE_PAY"});
    let mut params = common(&app, &shop, "alipay.trade.page.pay", &biz);
    params.push(("return_url".into(), "https://shop.example/done?x=1".into()));
    let form = signed(&mut params, &shop.key);
    // The page itself is the web crate's (its tests pay through it); the gateway opens the
    // trade and redirects.
    let (status, location, _) = app.post_form("/gateway.do", &form);
    assert_eq!(status, 303);
    let location = location.expect("a redirect");
    let trade_no = location.strip_prefix("/checkout/").expect("the checkout");
    let query = exchange(
        &app,
        &shop,
        "alipay.trade.query",
        &signed(
            &mut common(
                &app,
                &shop,
                "alipay.trade.query",
                &json!({"out_trade_no": "W1"}),
            ),
            &shop.key,
        ),
    );
    assert_eq!(query["trade_no"], trade_no);
    assert_eq!(query["trade_status"], "WAIT_BUYER_PAY");
    // A page flow refused shows an error page, not JSON.
    let mut params = common(
        &app,
        &shop,
        "alipay.trade.page.pay",
        &json!({"out_trade_no": "W1", "total_amount": "16.00", "subject": "cake"}),
    );
    let (status, page) = app.get_text(&format!("/gateway.do?{}", signed(&mut params, &shop.key)));
    assert_eq!(status, 400);
    assert!(page.contains("ACQ.CONTEXT_INCONSISTENT"), "{page}");
    app.finish();
}

pub fn a_shop_refunds_over_rest_once_per_refund_number(backend: Backend) {
    let app = App::start(backend);
    let shop = open_shop(&app, "shop@example.com", false);
    let buyer = app.person("b@example.com", "100.00");
    let paid = pay(&app, &shop, &buyer, "P1", "40.00");
    let trade = paid["trade_no"].as_str().expect("a trade_no").to_owned();
    let path = format!("/v1/merchants/{}/trades/{trade}/refunds", shop.merchant_id);
    let full = json!({"out_request_no": "R1", "amount": {"amount": "40.00", "currency": "CNY"},
                      "reason": "out of stock"});
    let first = app.post(&path, &shop.owner.token, None, full.clone());
    assert_eq!(first.status, 201, "{first:?}");
    assert_eq!(first.body["fund_change"], true);
    assert_eq!(first.body["trade"]["status"], "TRADE_CLOSED");
    assert_eq!(app.available(&buyer), "100.00");
    // The trade is over, yet a repeat of its refund gets the first answer and moves nothing.
    let again = app.post(&path, &shop.owner.token, None, full);
    assert_eq!(again.status, 200, "{again:?}");
    assert_eq!(again.body["fund_change"], false);
    assert_eq!(again.body["refund"]["amount"]["amount"], "40.00");
    let other = app.post(
        &path,
        &shop.owner.token,
        None,
        json!({"out_request_no": "R1", "amount": {"amount": "10.00", "currency": "CNY"}}),
    );
    assert_eq!(
        (other.status, other.code()),
        (409, "discordant_repeat"),
        "{other:?}"
    );
    // Another person cannot refund the shop's trades.
    let stranger = app.person("s@example.com", "0");
    let refused = app.post(
        &path,
        &stranger.token,
        None,
        json!({"out_request_no": "R2", "amount": {"amount": "1.00", "currency": "CNY"}}),
    );
    assert_eq!(refused.status, 404, "{refused:?}");
    assert_eq!(app.available(&buyer), "100.00");
    app.finish();
}

/// A counter freezes deposits with the renter's payment code: one above the renter's score
/// is frozen, charged in part with `alipay.trade.pay` and the rest unfrozen; one at the score
/// is waived and cancelled; every answer in the fields Alipay's SDKs read, and refusals change
/// nothing.
pub fn fund_authorisations_freeze_charge_unfreeze_and_cancel_deposits(backend: Backend) {
    let app = App::start(backend);
    let shop = open_shop(&app, "bikes@example.com", false);
    let other = open_shop(&app, "scooters@example.com", false);
    let renter = app.person("rider@example.com", "100.00");
    let score = app.get("/v1/credit/score", &renter.token).body["score"]
        .as_u64()
        .expect("a score");
    let freeze = |code: &str, no: &str, request: &str, amount: &str, threshold: u64| {
        call(
            &app,
            &shop,
            "alipay.fund.auth.order.freeze",
            json!({"auth_code": code, "auth_code_type": "bar_code", "out_order_no": no,
                   "out_request_no": request, "order_title": "a bike for the day",
                   "amount": amount, "product_code": "PRE_AUTH",
                   "extra_param": json!({"category": "RENT_BIKE",
                                         "creditThreshold": threshold}).to_string()}),
        )
    };

    // Above the renter's score: frozen.
    let code = payment_code(&app, &renter);
    let frozen = freeze(&code, "D1", "D1-a", "60.00", score + 1);
    assert_eq!(sub_code(&frozen), ("10000", ""), "{frozen:?}");
    assert_eq!(
        (
            &frozen["status"],
            &frozen["fund_amount"],
            &frozen["credit_amount"]
        ),
        (&json!("SUCCESS"), &json!("60.00"), &json!("0.00"))
    );
    assert_eq!(frozen["payer_logon_id"], "r***@example.com");
    assert_eq!(app.balance(&renter).0, "40.00");
    let auth_no = frozen["auth_no"].as_str().expect("an auth_no").to_owned();
    // The counter retries: the same authorisation, nothing frozen twice.
    let again = freeze(&code, "D1", "D1-a", "60.00", score + 1);
    assert_eq!(again["auth_no"], auth_no.as_str(), "{again:?}");
    assert_eq!(app.balance(&renter).0, "40.00");
    // The code is used up.
    let reused = freeze(&code, "D9", "D9-a", "1.00", score + 1);
    assert_eq!(
        sub_code(&reused),
        ("40004", "ACQ.PAYMENT_AUTH_CODE_INVALID")
    );

    let detail = |biz: Value| call(&app, &shop, "alipay.fund.auth.operation.detail.query", biz);
    let open = detail(json!({"auth_no": auth_no, "out_request_no": "D1-a"}));
    assert_eq!(
        (
            &open["order_status"],
            &open["operation_type"],
            &open["rest_amount"],
            &open["rest_fund_amount"]
        ),
        (
            &json!("AUTHORIZED"),
            &json!("FREEZE"),
            &json!("60.00"),
            &json!("60.00")
        ),
        "{open:?}"
    );
    // Another shop does not see it.
    let theirs = call(
        &app,
        &other,
        "alipay.fund.auth.operation.detail.query",
        json!({"auth_no": auth_no}),
    );
    assert_eq!(sub_code(&theirs), ("40004", "AUTH_ORDER_NOT_EXIST"));
    let unfreeze = |amount: &str| {
        call(
            &app,
            &shop,
            "alipay.fund.auth.order.unfreeze",
            json!({"auth_no": auth_no, "out_request_no": format!("U-{}", amount.replace('.', "")),
                   "amount": amount, "remark": "bike returned"}),
        )
    };
    // Part of it back early; more than is left is refused.
    assert_eq!(
        sub_code(&unfreeze("60.01")),
        ("40004", "UNFREEZE_AMOUNT_EXCEED_REST_AMOUNT")
    );
    let part = unfreeze("10.00");
    assert_eq!(
        (sub_code(&part), &part["amount"], &part["fund_amount"]),
        (("10000", ""), &json!("10.00"), &json!("10.00")),
        "{part:?}"
    );
    assert_eq!(app.balance(&renter).0, "50.00");
    let left = detail(json!({"auth_no": auth_no}));
    assert_eq!(
        (&left["rest_amount"], &left["total_unfreeze_amount"]),
        (&json!("50.00"), &json!("10.00"))
    );

    // The rental cost 25.00: charged from the deposit, the rest back at once.
    let charge = |amount: &str| {
        call(
            &app,
            &shop,
            "alipay.trade.pay",
            json!({"out_trade_no": "RENT-1", "auth_no": auth_no, "product_code": "PRE_AUTH",
                   "subject": "a day's rental", "total_amount": amount,
                   "auth_confirm_mode": "COMPLETE"}),
        )
    };
    assert_eq!(
        sub_code(&charge("50.01")),
        ("40004", "PAY_AMOUNT_EXCEED_AUTH_AMOUNT")
    );
    let paid = charge("25.00");
    assert_eq!(sub_code(&paid), ("10000", ""), "{paid:?}");
    assert_eq!(
        (
            &paid["total_amount"],
            &paid["out_trade_no"],
            &paid["buyer_logon_id"]
        ),
        (
            &json!("25.00"),
            &json!("RENT-1"),
            &json!("r***@example.com")
        )
    );
    assert_eq!(app.balance(&renter).0, "75.00");
    assert_eq!(charge("25.00")["trade_no"], paid["trade_no"], "a retry");
    // Another charge of the same deposit (its own out_trade_no): refused, not a retry.
    let second = call(
        &app,
        &shop,
        "alipay.trade.pay",
        json!({"out_trade_no": "RENT-2", "auth_no": auth_no, "product_code": "PRE_AUTH",
               "subject": "a day's rental", "total_amount": "25.00"}),
    );
    assert_eq!(sub_code(&second), ("40004", "ORDER_STATUS_INVALID"));
    assert_eq!(app.balance(&renter).0, "75.00");
    // Unfreezing the rest after the charge: already back, so success and nothing moves.
    let rest = unfreeze("25.00");
    assert_eq!(sub_code(&rest), ("10000", ""), "{rest:?}");
    assert_eq!(
        sub_code(&unfreeze("25.01")),
        ("40004", "UNFREEZE_AMOUNT_EXCEED_REST_AMOUNT")
    );
    assert_eq!(app.balance(&renter).0, "75.00");
    let pay_op = detail(json!({"auth_no": auth_no, "operation_id": paid["trade_no"]}));
    assert_eq!(
        (
            &pay_op["order_status"],
            &pay_op["operation_type"],
            &pay_op["amount"],
            &pay_op["total_pay_fund_amount"]
        ),
        (
            &json!("FINISH"),
            &json!("PAY"),
            &json!("25.00"),
            &json!("25.00")
        ),
        "{pay_op:?}"
    );

    // At the renter's score: waived, nothing held; cancelled, nothing to move.
    let waived = freeze(&payment_code(&app, &renter), "D2", "D2-a", "99.00", score);
    assert_eq!(
        (
            &waived["credit_amount"],
            &waived["fund_amount"],
            &waived["pre_auth_type"]
        ),
        (&json!("99.00"), &json!("0.00"), &json!("CREDIT_AUTH")),
        "{waived:?}"
    );
    assert_eq!(app.balance(&renter).0, "75.00");
    let cancel = |no: &str| {
        call(
            &app,
            &shop,
            "alipay.fund.auth.operation.cancel",
            json!({"out_order_no": no, "out_request_no": format!("{no}-a"),
                   "remark": "changed their mind"}),
        )
    };
    let cancelled = cancel("D2");
    assert_eq!(
        (sub_code(&cancelled), &cancelled["action"]),
        (("10000", ""), &json!("close")),
        "{cancelled:?}"
    );
    // A frozen one cancelled: the money comes back; a charged one cannot be cancelled.
    freeze(&payment_code(&app, &renter), "D3", "D3-a", "70.00", 950);
    assert_eq!(app.balance(&renter).0, "5.00");
    assert_eq!(cancel("D3")["action"], "unfreeze");
    assert_eq!(app.balance(&renter).0, "75.00");
    assert_eq!(sub_code(&cancel("D1")), ("40004", "ORDER_ALREADY_PAID"));

    // Refused before anything moves: more than the wallet, a bad threshold, no auth_no.
    let broke = freeze(&payment_code(&app, &renter), "D4", "D4-a", "500.00", 950);
    assert_eq!(sub_code(&broke), ("40004", "ACQ.BUYER_BALANCE_NOT_ENOUGH"));
    let bad = freeze(&payment_code(&app, &renter), "D5", "D5-a", "5.00", 10);
    assert_eq!(sub_code(&bad), ("40002", "isv.invalid-parameter"));
    let missing = call(
        &app,
        &shop,
        "alipay.fund.auth.order.unfreeze",
        json!({"out_request_no": "U9", "amount": "1.00"}),
    );
    assert_eq!(sub_code(&missing), ("40002", "isv.invalid-parameter"));
    assert_eq!(app.balance(&renter).0, "75.00");
    app.finish();
}

/// An online freeze sends the person's browser to the platform's approval page with the
/// request as signed (the page is the web crate's, whose tests approve through it); a freeze
/// given a `notify_url` notifies the shop, signed, that the person authorised it.
pub fn freezes_send_the_person_to_approve_and_notify_the_shop(backend: Backend) {
    let app = App::start(backend);
    let shop = open_shop(&app, "bikes@example.com", false);
    let renter = app.person("rider@example.com", "100.00");
    let biz = json!({"out_order_no": "A1", "out_request_no": "A1-a", "amount": "99.00",
                     "order_title": "a bike", "product_code": "PRE_AUTH_ONLINE",
                     "extra_param": "{\"category\":\"RENT_BIKE\",\"creditThreshold\":600}"});
    let mut params = common(&app, &shop, "alipay.fund.auth.order.app.freeze", &biz);
    let (status, location, _) = app.post_form("/gateway.do", &signed(&mut params, &shop.key));
    assert_eq!(status, 303);
    let location = location.expect("a redirect");
    let query = location
        .strip_prefix("/deposit-authorization?")
        .unwrap_or_else(|| panic!("the approval page: {location}"));
    let sent: std::collections::BTreeMap<String, String> = form_urlencoded::parse(query.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let asked: std::collections::BTreeMap<String, String> = params.into_iter().collect();
    assert_eq!(sent, asked, "the request as the shop signed it");
    // Refused before the person sees anything: an error page, nothing held.
    let mut params = common(
        &app,
        &shop,
        "alipay.fund.auth.order.app.freeze",
        &json!({"out_order_no": "A2", "out_request_no": "A2-a", "amount": "0.00",
                "order_title": "a bike"}),
    );
    let (status, page) = app.get_text(&format!("/gateway.do?{}", signed(&mut params, &shop.key)));
    assert_eq!(status, 400, "{page}");
    assert!(page.contains("isv.invalid-parameter"), "{page}");

    // At a counter, with a notify_url: the shop hears of it.
    let taken: Forms = Arc::default();
    let url = notify_receiver(0, Arc::clone(&taken));
    let mut params = common(
        &app,
        &shop,
        "alipay.fund.auth.order.freeze",
        &json!({"auth_code": payment_code(&app, &renter), "auth_code_type": "bar_code",
                "out_order_no": "C1", "out_request_no": "C1-a", "order_title": "a bike",
                "amount": "30.00", "product_code": "PRE_AUTH"}),
    );
    params.push(("notify_url".into(), url));
    let frozen = exchange(
        &app,
        &shop,
        "alipay.fund.auth.order.freeze",
        &signed(&mut params, &shop.key),
    );
    assert_eq!(sub_code(&frozen), ("10000", ""), "{frozen:?}");
    let calls = wait_for(|| {
        let calls = taken.lock().expect("lock").clone();
        (!calls.is_empty()).then_some(calls)
    });
    let params: std::collections::BTreeMap<_, _> = calls[0].iter().cloned().collect();
    assert_eq!(params["notify_type"], "fund_auth_freeze");
    assert_eq!(
        params["auth_no"],
        frozen["auth_no"].as_str().expect("auth_no")
    );
    assert_eq!(
        params["operation_id"],
        frozen["operation_id"].as_str().expect("an id")
    );
    assert_eq!(
        (params["amount"].as_str(), params["fund_amount"].as_str()),
        ("30.00", "30.00")
    );
    assert_notification_signed(&shop, &params);
    app.finish();
}
