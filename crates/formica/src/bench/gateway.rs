//! `formica bench gateway`: tills paying at `/gateway.do` over real HTTP. A server runs in
//! this process on a fresh store; `--merchants` shops each have a gateway app; buyers each
//! have funded wallets and one-time payment codes. Every payment is an `alipay.trade.pay`
//! request signed with RSA2 exactly as an SDK signs it, verified by the server, answered in
//! the signed envelope, and the answer's signature checked by the client.
//!
//! Requests are signed before the clock starts, so that on a small machine the clients'
//! signing does not take the cores the server is measured on; the signing time per request is
//! reported apart. `--hot 100` sends every payment to one shop (the Double-11 shape); with
//! `--baseline spread` the same payments spread evenly over all the shops run in the same
//! process afterwards, and the ratio is printed (target: at least 1.0).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use formica_api::gateway::sign::{self, RsaPrivateKey, SignType};
use formica_api::{Server, ServerConfig};
use formica_core::merchant::{MerchantCommand, MerchantProfile};
use formica_core::wallet::WalletCommand;
use formica_core::{Command, Currency, Id, Money, Outcome, ProductCommand, ProductRequest, Reply};
use formica_engine::{Config, Engine};
use formica_store::merchant::App;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::ledger::StoreKind;
use super::payments::place;

/// What to compare against in the same run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Baseline {
    /// The same payments spread evenly over all the merchants.
    Spread,
}

/// Options of `formica bench gateway`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// `sqlite` or `postgres`.
    #[arg(long, value_enum, default_value = "sqlite")]
    store: StoreKind,
    /// Merchants, each with a gateway app.
    #[arg(long, default_value_t = 1000)]
    merchants: u64,
    /// Payments to make.
    #[arg(long, default_value_t = 20_000)]
    payments: u64,
    /// Percentage of payments to the first merchant; the rest spread evenly.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=100))]
    hot: u8,
    /// Buyers (each pays with several codes).
    #[arg(long, default_value_t = 2000)]
    buyers: u64,
    /// Tills sending requests at once (one HTTP connection each).
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// PostgreSQL server URL; each run creates and drops its own database there.
    #[arg(long, env = "DATABASE_URL")]
    database_url: Option<String>,
    /// Run this baseline in the same run and print the ratio.
    #[arg(long, value_enum)]
    baseline: Option<Baseline>,
    /// Seed of the random workload.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Print one JSON object as the last line.
    #[arg(long)]
    json: bool,
}

/// One run's figures.
#[derive(Debug)]
struct Run {
    seconds: f64,
    latencies_us: Vec<u64>,
    /// Server RSA time (verifying requests, signing answers) per payment, in microseconds.
    rsa_us: f64,
    /// That time as a share of the CPU time this process used during the run (server and
    /// tills), when the system says (Linux).
    rsa_share: Option<f64>,
    /// Client signing time per request, in microseconds (before the clock started).
    sign_us: f64,
}

impl Run {
    fn per_second(&self, payments: u64) -> f64 {
        payments as f64 / self.seconds
    }

    fn percentile(&self, p: f64) -> f64 {
        let mut sorted = self.latencies_us.clone();
        sorted.sort_unstable();
        super::percentile_ms(&sorted, p)
    }
}

/// Runs the benchmark and prints its report.
pub fn run(args: Args) -> anyhow::Result<()> {
    ensure!(args.merchants >= 1, "--merchants must be at least 1");
    ensure!(args.buyers >= 1, "--buyers must be at least 1");
    ensure!(args.concurrency >= 1, "--concurrency must be at least 1");
    let store = format!("{:?}", args.store).to_lowercase();
    println!(
        "gateway on {store}: {} alipay.trade.pay over HTTP, {} merchants, {}% to one, {} tills",
        args.payments, args.merchants, args.hot, args.concurrency
    );
    let measured = one_run(&args, args.hot)?;
    print_run("", &measured, args.payments);
    let per_second = measured.per_second(args.payments);
    let mut report = serde_json::json!({
        "bench": "gateway",
        "store": store,
        "merchants": args.merchants,
        "hot": args.hot,
        "payments": args.payments,
        "concurrency": args.concurrency,
        "seconds": measured.seconds,
        "payments_per_second": per_second.round(),
        "p50_ms": measured.percentile(0.5),
        "p99_ms": measured.percentile(0.99),
        "server_rsa_us_per_payment": measured.rsa_us.round(),
        "server_rsa_share_of_cpu": measured.rsa_share.map(|s| (s * 1000.0).round() / 1000.0),
        "client_sign_us": measured.sign_us.round(),
    });
    if let Some(Baseline::Spread) = args.baseline {
        let spread = one_run(&args, 0)?;
        print_run("baseline spread (0% to one): ", &spread, args.payments);
        let ratio = per_second / spread.per_second(args.payments);
        println!("  ratio {}%-to-one / spread: {ratio:.2}x", args.hot);
        report["baseline"] = "spread".into();
        report["baseline_per_second"] = spread.per_second(args.payments).round().into();
        report["ratio"] = ((ratio * 100.0).round() / 100.0).into();
    }
    if args.json {
        println!("{report}");
    }
    Ok(())
}

fn print_run(label: &str, run: &Run, payments: u64) {
    let share = run.rsa_share.map_or_else(String::new, |s| {
        format!(" ({:.0}% of the CPU used)", s * 100.0)
    });
    println!(
        "  {label}{:.3} s: {:.0} payments/s, p50 {:.1} ms, p99 {:.1} ms; server RSA {:.0} us \
         per payment{share}; client signing {:.0} us/request (before the clock)",
        run.seconds,
        run.per_second(payments),
        run.percentile(0.5),
        run.percentile(0.99),
        run.rsa_us,
        run.sign_us
    );
}

fn one_run(args: &Args, hot: u8) -> anyhow::Result<Run> {
    let place = place(args.store, args.database_url.as_deref())?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let config = ServerConfig {
        location: place.location.clone(),
        engine: Config {
            settings: formica_core::Settings {
                // A rush, not a limit test: nobody reaches a daily limit.
                unverified_daily_major: u64::MAX / 1_000,
                ..formica_core::Settings::default()
            },
            ..Config::default()
        },
        bank_delay: Duration::ZERO,
        private_webhooks: false,
        public_url: None,
        limits: Default::default(),
    };
    let server = runtime.block_on(Server::start(config))?;
    let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
    let url = format!("http://{}/gateway.do", listener.local_addr()?);
    let routes = server.router();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = runtime.spawn(async move {
        axum::serve(listener, routes)
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await
    });

    let key = sign::generate_key();
    let platform = sign::generate_key();
    let (apps, buyers) = runtime.block_on(setup(&server, args, &key, &platform))?;
    let codes = runtime.block_on(issue_codes(&server, args, &buyers))?;
    let client_key = sign::PlatformKey::new(&key)?;
    let mut rng = SmallRng::seed_from_u64(args.seed);
    let signing = Instant::now();
    let requests: Vec<String> = codes
        .iter()
        .enumerate()
        .map(|(n, code)| {
            let app = if rng.random_range(0..100) < hot {
                &apps[0]
            } else {
                &apps[rng.random_range(0..apps.len())]
            };
            let amount = rng.random_range(1..10_000u64);
            signed_pay(
                app,
                &client_key,
                &format!("B{n}"),
                code,
                &format!("{}.{:02}", amount / 100, amount % 100),
            )
        })
        .collect();
    let sign_us = signing.elapsed().as_secs_f64() * 1e6 / requests.len().max(1) as f64;

    let stats = &server.state.gateway().stats;
    let rsa_before = stats.rsa_nanos.load(Ordering::Relaxed);
    let cpu_before = cpu_seconds();
    let platform_public = platform.to_public_key();
    let next = AtomicUsize::new(0);
    let started = Instant::now();
    let latencies = std::thread::scope(|scope| {
        let clients: Vec<_> = (0..args.concurrency)
            .map(|_| scope.spawn(|| till(&url, &requests, &next, &platform_public)))
            .collect();
        super::latencies_of(clients)
    })?;
    let seconds = started.elapsed().as_secs_f64();
    let rsa = stats.rsa_nanos.load(Ordering::Relaxed) - rsa_before;
    let cpu = cpu_seconds()
        .zip(cpu_before)
        .map(|(after, before)| after - before);
    // The routes hold the server's state: they stop first, so that its database connections
    // close here rather than on a runtime thread.
    let _ = stop.send(());
    runtime.block_on(serving)??;
    server.shutdown();
    drop(runtime);
    let balance = formica_store::Store::open(&place.location)?.trial_balance()?;
    ensure!(balance.holds(), "the trial balance holds after the run");
    Ok(Run {
        seconds,
        latencies_us: latencies,
        rsa_us: rsa as f64 / 1e3 / args.payments.max(1) as f64,
        rsa_share: cpu.filter(|c| *c > 0.0).map(|c| rsa as f64 / 1e9 / c),
        sign_us,
    })
}

/// One till: sends requests until none are left, checking each answer's signature and
/// success; the latency of each in microseconds.
fn till(
    url: &str,
    requests: &[String],
    next: &AtomicUsize,
    platform: &sign::RsaPublicKey,
) -> anyhow::Result<Vec<u64>> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .into();
    let mut latencies = Vec::new();
    loop {
        let n = next.fetch_add(1, Ordering::Relaxed);
        let Some(form) = requests.get(n) else {
            return Ok(latencies);
        };
        let sent = Instant::now();
        let body = agent
            .post(url)
            .content_type("application/x-www-form-urlencoded;charset=utf-8")
            .send(form.as_str())?
            .into_body()
            .read_to_string()?;
        latencies.push(u64::try_from(sent.elapsed().as_micros()).unwrap_or(u64::MAX));
        let key = "{\"alipay_trade_pay_response\":";
        let end = body.rfind(",\"sign\":\"").context("a signed answer")?;
        let object = body.get(key.len()..end).context("an envelope")?;
        let signature = body.get(end + 9..body.len() - 2).context("a sign")?;
        ensure!(
            sign::verify(platform, SignType::Rsa2, object.as_bytes(), signature),
            "the answer's signature verifies"
        );
        ensure!(
            object.contains("\"code\":\"10000\""),
            "payment {n} failed: {object}"
        );
    }
}

/// An `alipay.trade.pay` request as python-alipay-sdk signs it.
fn signed_pay(app: &App, key: &sign::PlatformKey, no: &str, code: &str, amount: &str) -> String {
    let biz = serde_json::json!({
        "out_trade_no": no, "scene": "bar_code", "auth_code": code,
        "subject": "bench", "total_amount": amount,
    })
    .to_string();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(0));
    let mut params = vec![
        ("app_id", app.app_id.clone()),
        ("method", "alipay.trade.pay".to_owned()),
        ("charset", "utf-8".to_owned()),
        ("sign_type", "RSA2".to_owned()),
        ("timestamp", formica_api::gateway::time::format(now, 0)),
        ("version", "1.0".to_owned()),
        ("biz_content", biz),
    ];
    let content = sign::content_to_sign(params.iter().map(|(k, v)| (*k, v.as_str())), &["sign"]);
    params.push(("sign", key.sign(SignType::Rsa2, content.as_bytes())));
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params.iter().map(|(k, v)| (*k, v.as_str())))
        .finish()
}

fn product(command: ProductCommand) -> Command {
    Command::Product(ProductRequest {
        command,
        idempotency: None,
    })
}

async fn submit(engine: &Engine, command: ProductCommand) -> anyhow::Result<Outcome> {
    match engine.submit(product(command)).await? {
        Reply::Product(outcome) => Ok(outcome),
        other => bail!("unexpected reply {other:?}"),
    }
}

/// Merchants with apps (sharing one merchant key and one platform key: generating thousands
/// of RSA keys would take the setup minutes), and funded buyers.
async fn setup(
    server: &Server,
    args: &Args,
    key: &RsaPrivateKey,
    platform: &RsaPrivateKey,
) -> anyhow::Result<(Vec<App>, Vec<Id>)> {
    let engine = server.engine();
    let owner = Id(1);
    submit(
        engine,
        ProductCommand::Wallet(WalletCommand::OpenWallet {
            user_id: owner,
            currency: Currency::CNY,
        }),
    )
    .await?;
    let public_key = sign::public_key_base64(&key.to_public_key());
    let platform_private_key = sign::private_key_pkcs8_pem(platform);
    let platform_public_key = sign::public_key_base64(&platform.to_public_key());
    let mut apps = Vec::new();
    for n in 0..args.merchants {
        let Outcome::Merchant(merchant) = submit(
            engine,
            ProductCommand::Merchant(MerchantCommand::Open(Box::new(MerchantProfile {
                owner_id: owner,
                name: format!("shop {n}"),
                contact: "bench".into(),
                category: "bench".into(),
                country: "CN".into(),
                currency: Currency::CNY,
                card_id: Id(1),
            }))),
        )
        .await?
        else {
            bail!("opening a merchant answers the merchant");
        };
        apps.push(App {
            app_id: format!("2021{n:012}"),
            merchant_id: merchant.id,
            name: "bench".into(),
            public_key: Some(public_key.clone()),
            platform_private_key: platform_private_key.clone(),
            platform_public_key: platform_public_key.clone(),
            escrow: false,
            sign_type: "RSA2".into(),
            created_at: 0,
        });
    }
    let stored = apps.clone();
    server
        .state
        .pool()
        .write(move |sql| {
            for app in &stored {
                formica_store::merchant::create_app(sql, app)?;
            }
            Ok(())
        })
        .await
        .map_err(|e| anyhow::anyhow!("{}", e.message()))?;
    let mut buyers = Vec::new();
    for n in 0..args.buyers {
        let buyer = Id(1_000 + n);
        submit(
            engine,
            ProductCommand::Wallet(WalletCommand::OpenWallet {
                user_id: buyer,
                currency: Currency::CNY,
            }),
        )
        .await?;
        let Outcome::Movement(movement) = submit(
            engine,
            ProductCommand::Wallet(WalletCommand::StartTopUp {
                user_id: buyer,
                amount: Money::new(100_000_000, Currency::CNY),
                card_id: Id(1),
            }),
        )
        .await?
        else {
            bail!("a top-up answers a movement");
        };
        submit(
            engine,
            ProductCommand::Wallet(WalletCommand::SettleMovement {
                movement_id: movement.id,
                succeeded: true,
                failure: None,
            }),
        )
        .await?;
        buyers.push(buyer);
    }
    Ok((apps, buyers))
}

/// One fresh payment code per payment, the buyers taking turns.
async fn issue_codes(server: &Server, args: &Args, buyers: &[Id]) -> anyhow::Result<Vec<String>> {
    let expires_at = server.state.now() + 3600 * 1_000_000_000;
    let codes: Vec<(String, Id, u64)> = (0..args.payments)
        .map(|n| {
            let buyer = buyers[usize::try_from(n).unwrap_or(0) % buyers.len()];
            (formica_api::merchant::new_payment_code(), buyer, expires_at)
        })
        .collect();
    let stored = codes.clone();
    server
        .state
        .pool()
        .write(move |sql| {
            for chunk in stored.chunks(10_000) {
                formica_store::merchant::add_payment_codes(sql, chunk)?;
            }
            Ok(())
        })
        .await
        .map_err(|e| anyhow::anyhow!("{}", e.message()))?;
    Ok(codes.into_iter().map(|(code, _, _)| code).collect())
}

/// CPU time (user and system) this process has used, in seconds, where `/proc` tells it.
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which may hold spaces) start at the state, field 3.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    // Linux reports in USER_HZ, 100 on every mainstream architecture.
    Some(ticks / 100.0)
}
