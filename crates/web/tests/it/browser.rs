//! Headless Chromium, driven through chromedriver (WebDriver), against the real server: the
//! helpers the end-to-end flows use, and screenshots of the key screens at phone and desktop
//! width under `target/screenshots/`.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use formica_api::gateway::sign::{self, SignType};
use rsa::{RsaPrivateKey, RsaPublicKey};
use serde_json::json;

use crate::app::App;

/// Phone and desktop widths of the screenshots.
const PHONE: (u32, u32) = (375, 812);
const DESKTOP: (u32, u32) = (1280, 900);

/// Whether this machine can run the browser tests; without chromedriver they are skipped,
/// unless `FORMICA_REQUIRE_BROWSER=1` (CI) makes that a failure.
pub fn available() -> bool {
    let found = Command::new("chromedriver")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        assert!(
            std::env::var("FORMICA_REQUIRE_BROWSER").as_deref() != Ok("1"),
            "FORMICA_REQUIRE_BROWSER=1 but chromedriver is not installed \
             (apt-get install chromium chromium-driver)"
        );
        eprintln!("skipped: chromedriver is not installed");
    }
    found
}

/// A chromedriver process, killed when dropped (nextest runs each test in its own process).
pub struct Driver {
    child: Child,
    pub url: String,
}

impl Driver {
    pub fn start() -> Driver {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let child = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        // Made before waiting, so that a driver that never answers is killed all the same.
        let driver = Driver {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        for _ in 0..100 {
            if ureq::get(format!("{}/status", driver.url)).call().is_ok() {
                return driver;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("chromedriver did not answer");
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One browser (its own profile: its own cookies).
pub struct Browser {
    client: Client,
    base: String,
    test: String,
}

fn screenshots() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target"),
        PathBuf::from,
    );
    let dir = target.join("screenshots");
    std::fs::create_dir_all(&dir).expect("the screenshots directory");
    dir
}

impl Browser {
    pub async fn open(driver: &Driver, app: &App, test: &str) -> Browser {
        // Two TLS backends are in the build (the browser client's and ureq's): name one.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".to_owned(),
            json!({
                "binary": std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".to_owned()),
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--hide-scrollbars",
                         format!("--window-size={},{}", PHONE.0, PHONE.1)],
            }),
        );
        let client = ClientBuilder::rustls()
            .expect("TLS roots")
            .capabilities(caps)
            .connect(&driver.url)
            .await
            .expect("a browser session");
        Browser {
            client,
            base: app.url.clone(),
            test: test.to_owned(),
        }
    }

    pub async fn goto(&self, path: &str) {
        let url = if path.starts_with("http") {
            path.to_owned()
        } else {
            format!("{}{path}", self.base)
        };
        self.client.goto(&url).await.expect("navigates");
    }

    /// Types into the field with this id (cleared first).
    pub async fn fill(&self, id: &str, text: &str) {
        let field = self
            .client
            .find(Locator::Id(id))
            .await
            .unwrap_or_else(|e| panic!("field {id}: {e}"));
        field.clear().await.expect("clears");
        field.send_keys(text).await.expect("types");
    }

    /// Chooses an option of the select with this id.
    pub async fn choose(&self, id: &str, value: &str) {
        let select = self.client.find(Locator::Id(id)).await.expect("a select");
        select.select_by_value(value).await.expect("chooses");
    }

    /// Submits the form holding the field with this id, and waits for the next page.
    pub async fn submit(&self, id: &str) {
        let button = self
            .client
            .find(Locator::XPath(&format!(
                "//*[@id='{id}']/ancestor::form//button[@type='submit']"
            )))
            .await
            .unwrap_or_else(|e| panic!("the form of {id}: {e}"));
        self.click_and_wait(&button).await;
    }

    /// Clicks the button with this text and waits for the next page.
    pub async fn press(&self, text: &str) {
        let button = self
            .client
            .find(Locator::XPath(&format!(
                "//button[normalize-space(.)='{text}']"
            )))
            .await
            .unwrap_or_else(|e| panic!("button {text}: {e}"));
        self.click_and_wait(&button).await;
    }

    /// Follows the link with this text.
    pub async fn follow(&self, text: &str) {
        let link = self
            .client
            .find(Locator::XPath(&format!(
                "//a[normalize-space(.)='{text}' or .//span[normalize-space(.)='{text}']]"
            )))
            .await
            .unwrap_or_else(|e| panic!("link {text}: {e}"));
        self.click_and_wait(&link).await;
    }

    /// Clicks and waits until the next page has replaced this one and finished loading.
    async fn click_and_wait(&self, element: &fantoccini::elements::Element) {
        let old = self
            .client
            .find(Locator::Css("html"))
            .await
            .expect("a page");
        element.click().await.expect("clicks");
        for _ in 0..200 {
            if old.tag_name().await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        for _ in 0..200 {
            let state = self
                .client
                .execute("return document.readyState;", vec![])
                .await;
            if state.is_ok_and(|s| s == "complete") {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the next page did not load");
    }

    /// The text of the first element matching `css`.
    pub async fn text(&self, css: &str) -> String {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("{css}: {e}"))
            .text()
            .await
            .expect("text")
    }

    /// The page's visible text.
    pub async fn page_text(&self) -> String {
        self.text("body").await
    }

    /// Reloads until the element matching `css` reads `expected` (money arriving from the
    /// simulated bank).
    pub async fn wait_text(&self, path: &str, css: &str, expected: &str) {
        for _ in 0..100 {
            self.goto(path).await;
            if self.text(css).await == expected {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("{css} on {path} never read {expected}");
    }

    pub async fn url(&self) -> String {
        self.client.current_url().await.expect("a URL").to_string()
    }

    pub async fn path(&self) -> String {
        let url = self.client.current_url().await.expect("a URL");
        match url.query() {
            Some(query) => format!("{}?{query}", url.path()),
            None => url.path().to_owned(),
        }
    }

    /// Saves the screen at phone and at desktop width, and checks that the page fits the
    /// phone's width (no sideways scrolling).
    pub async fn shot(&self, screen: &str) {
        let dir = screenshots();
        for (name, (width, height)) in [("phone", PHONE), ("desktop", DESKTOP)] {
            self.client
                .set_window_size(width, height)
                .await
                .expect("resizes");
            if name == "phone" {
                let overflow = self
                    .client
                    .execute(
                        "return document.documentElement.scrollWidth - window.innerWidth;",
                        vec![],
                    )
                    .await
                    .expect("measures");
                assert!(
                    overflow.as_i64().unwrap_or(0) <= 0,
                    "{screen} is wider than a phone by {overflow}px"
                );
            }
            let png = self.client.screenshot().await.expect("a screenshot");
            std::fs::write(dir.join(format!("{}-{screen}-{name}.png", self.test)), png)
                .expect("saves");
        }
        self.client
            .set_window_size(PHONE.0, PHONE.1)
            .await
            .expect("resizes");
    }

    pub async fn close(self) {
        let _ = self.client.close().await;
    }
}

/// A signed `alipay.trade.page.pay` link, as a shop's SDK builds it.
pub fn page_pay_url(
    app: &App,
    app_id: &str,
    key: &RsaPrivateKey,
    out_trade_no: &str,
    amount: &str,
    subject: &str,
    return_url: &str,
) -> String {
    let biz = json!({"out_trade_no": out_trade_no, "total_amount": amount, "subject": subject,
                     "product_code": "FAST_INSTANT_TRADE_PAY"});
    gateway_url(
        app,
        (app_id, key),
        "alipay.trade.page.pay",
        &biz,
        &[("return_url", return_url)],
    )
}

/// A signed gateway link for `method`, as a shop's SDK builds it (`sdkExecute`).
pub fn gateway_url(
    app: &App,
    (app_id, key): (&str, &RsaPrivateKey),
    method: &str,
    biz: &serde_json::Value,
    extra: &[(&str, &str)],
) -> String {
    let mut params: Vec<(String, String)> = vec![
        ("app_id".into(), app_id.into()),
        ("method".into(), method.into()),
        ("charset".into(), "utf-8".into()),
        ("sign_type".into(), "RSA2".into()),
        (
            "timestamp".into(),
            formica_api::gateway::time::format(app.clock.now(), 0),
        ),
        ("version".into(), "1.0".into()),
        ("biz_content".into(), biz.to_string()),
    ];
    params.extend(
        extra
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    let content = sign::content_to_sign(
        params.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        &["sign"],
    );
    params.push((
        "sign".into(),
        sign::sign(key, SignType::Rsa2, content.as_bytes()),
    ));
    let query = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .finish();
    format!("{}/gateway.do?{query}", app.url)
}

/// Checks that `location` is the shop's return URL with parameters the platform signed.
pub fn assert_signed_return(location: &str, prefix: &str, platform: &RsaPublicKey) {
    assert!(location.starts_with(prefix), "{location}");
    let query = location.split_once('?').expect("a query").1;
    let params: std::collections::BTreeMap<String, String> =
        form_urlencoded::parse(query.as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
    assert_eq!(params["method"], "alipay.trade.page.pay.return");
    let shops_own: Vec<&str> = prefix
        .split_once('?')
        .map(|(_, q)| q.split('&').filter_map(|p| p.split('=').next()).collect())
        .unwrap_or_default();
    let content = sign::content_to_sign(
        params
            .iter()
            .filter(|(k, _)| !shops_own.contains(&k.as_str()))
            .map(|(k, v)| (k.as_str(), v.as_str())),
        &["sign", "sign_type"],
    );
    assert!(
        sign::verify(
            platform,
            SignType::Rsa2,
            content.as_bytes(),
            &params["sign"]
        ),
        "the return is signed by the platform"
    );
}
