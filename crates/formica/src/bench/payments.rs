//! `formica bench payments`: the product path under a rush. Many concurrent callers (as a
//! busy server's connections are) pay people through wallet transfers: each payment is a core
//! command that checks the payer's daily limit, moves the money, records the transfer, writes
//! two webhook messages and saves an idempotency key. `--hot` sends that share of payments to
//! one shop (the Double-11 shape).
//!
//! The named baseline, `--baseline ledger`, runs the same number of single-transfer commands
//! straight on the books through the same engine, store and concurrency in the same run: the
//! ratio is what the products' rules and rows cost on top of the books.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use anyhow::{Context, bail, ensure};
use formica_core::wallet::{WalletCommand, wallet_account};
use formica_core::{
    Command, Currency, Id, IdempotencyKey, Money, Outcome, ProductCommand, ProductRequest, Reply,
    Settings,
};
use formica_engine::{Config, Engine};
use formica_ledger::{Account, Transfer};
use formica_store::{Location, Store, TemporaryDatabase};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::ledger::StoreKind;

/// What to compare against in the same run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Baseline {
    /// The same number of plain transfers, one per command, on the books alone.
    Ledger,
}

/// Options of `formica bench payments`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// `sqlite` or `postgres`.
    #[arg(long, value_enum, default_value = "sqlite")]
    store: StoreKind,
    /// People with wallets (person 1 is the shop).
    #[arg(long, default_value_t = 10_000)]
    people: u64,
    /// Payments to make.
    #[arg(long, default_value_t = 200_000)]
    payments: u64,
    /// Percentage of payments to the one shop.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=100))]
    hot: u8,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 8192)]
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

/// A fresh store for one run, and what keeps it alive.
pub(super) struct Place {
    pub(super) location: Location,
    _sqlite: Option<tempfile::TempDir>,
    _postgres: Option<TemporaryDatabase>,
}

impl Args {
    fn place(&self) -> anyhow::Result<Place> {
        place(self.store, self.database_url.as_deref())
    }
}

/// A fresh SQLite directory or PostgreSQL database for one run.
pub(super) fn place(store: StoreKind, database_url: Option<&str>) -> anyhow::Result<Place> {
    {
        Ok(match store {
            StoreKind::Postgres => {
                let url =
                    database_url.context("PostgreSQL needs --database-url (or DATABASE_URL)")?;
                let database = TemporaryDatabase::create(url, "formica_bench")?;
                Place {
                    location: Location::Postgres(database.url.clone()),
                    _sqlite: None,
                    _postgres: Some(database),
                }
            }
            StoreKind::Sqlite => {
                let dir = tempfile::tempdir()?;
                Place {
                    location: Location::Sqlite(dir.path().to_path_buf()),
                    _sqlite: Some(dir),
                    _postgres: None,
                }
            }
            StoreKind::Memory => bail!("payments run through the engine: sqlite or postgres"),
        })
    }
}

/// Who pays whom: a random payer, and the shop (person 1) for `hot` percent of payments or
/// anyone else otherwise.
#[derive(Clone, Copy, Debug)]
struct Draw {
    people: u64,
    hot: u8,
}

impl Draw {
    fn of(args: &Args) -> Self {
        Draw {
            people: args.people,
            hot: args.hot,
        }
    }

    /// (payer, payee), never the same person.
    fn pair(self, rng: &mut SmallRng) -> (u64, u64) {
        let payer = rng.random_range(1..=self.people);
        if rng.random_range(0..100) < self.hot && payer != 1 {
            return (payer, 1);
        }
        loop {
            let payee = rng.random_range(1..=self.people);
            if payee != payer {
                return (payer, payee);
            }
        }
    }
}

/// Runs the benchmark and prints its report.
pub fn run(args: Args) -> anyhow::Result<()> {
    ensure!(args.people >= 2, "--people must be at least 2");
    ensure!(args.concurrency >= 1, "--concurrency must be at least 1");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let products = runtime.block_on(products(&args))?;
    let store = format!("{:?}", args.store).to_lowercase();
    println!(
        "payments on {store}: {} wallet transfers between {} people, {}% to one shop, {} in flight",
        args.payments, args.people, args.hot, args.concurrency
    );
    println!(
        "  {:.3} s: {:.0} payments/s, {} batches",
        products.seconds,
        args.payments as f64 / products.seconds,
        products.batches
    );
    println!("  trial balance holds");
    let per_second = args.payments as f64 / products.seconds;
    let mut report = serde_json::json!({
        "bench": "payments",
        "store": store,
        "people": args.people,
        "hot": args.hot,
        "payments": args.payments,
        "concurrency": args.concurrency,
        "seconds": products.seconds,
        "payments_per_second": per_second.round(),
    });
    if let Some(Baseline::Ledger) = args.baseline {
        let ledger = runtime.block_on(ledger(&args))?;
        let baseline_per_second = args.payments as f64 / ledger.seconds;
        let ratio = per_second / baseline_per_second;
        println!(
            "  baseline ledger (the same transfers as plain books commands): {baseline_per_second:.0} transfers/s"
        );
        println!("  ratio payments/baseline: {ratio:.2}x");
        report["baseline"] = "ledger".into();
        report["baseline_per_second"] = baseline_per_second.round().into();
        report["ratio"] = ((ratio * 100.0).round() / 100.0).into();
    }
    if args.json {
        println!("{report}");
    }
    Ok(())
}

struct Timed {
    seconds: f64,
    batches: u64,
}

fn engine_config() -> Config {
    Config {
        settings: Settings {
            // A rush, not a limit test: nobody reaches a daily limit.
            unverified_daily_major: u64::MAX / 1_000,
            ..Settings::default()
        },
        ..Config::default()
    }
}

/// Submits `count` commands made by `make` with `concurrency` in flight; checks each reply.
async fn rush(
    engine: &Engine,
    count: u64,
    concurrency: usize,
    seed: u64,
    make: impl Fn(&mut SmallRng, u64) -> Command + Send + Sync + 'static,
    check: fn(&Reply) -> bool,
) -> anyhow::Result<Timed> {
    let make = Arc::new(make);
    let next = Arc::new(AtomicU64::new(0));
    let batches_before = engine.stats().batches.load(Ordering::Relaxed);
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(concurrency);
    for task in 0..concurrency as u64 {
        let (engine, make, next) = (engine.clone(), Arc::clone(&make), Arc::clone(&next));
        tasks.push(tokio::spawn(async move {
            let mut rng = SmallRng::seed_from_u64(seed.wrapping_mul(1_000_003).wrapping_add(task));
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= count {
                    return anyhow::Ok(());
                }
                let command = make(&mut rng, n);
                let reply = loop {
                    match engine.submit(command.clone()).await {
                        Err(formica_engine::EngineError::Busy) => {
                            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
                        }
                        other => break other?,
                    }
                };
                ensure!(check(&reply), "payment {n} answered {reply:?}");
            }
        }));
    }
    for task in tasks {
        task.await??;
    }
    Ok(Timed {
        seconds: started.elapsed().as_secs_f64(),
        batches: engine.stats().batches.load(Ordering::Relaxed) - batches_before,
    })
}

fn product(command: WalletCommand, idempotency: Option<IdempotencyKey>) -> Command {
    Command::Product(ProductRequest {
        command: ProductCommand::Wallet(command),
        idempotency,
    })
}

async fn products(args: &Args) -> anyhow::Result<Timed> {
    let place = tokio::task::block_in_place(|| args.place())?;
    let location = place.location.clone();
    let engine = tokio::task::spawn_blocking(move || {
        Engine::start(Store::open(&location)?, engine_config())
    })
    .await??;
    let person = |n: u64| Id(n);
    let yuan = |major: u64| Money::new(major * 100, Currency::CNY);
    for n in 1..=args.people {
        engine
            .submit(product(
                WalletCommand::OpenWallet {
                    user_id: person(n),
                    currency: Currency::CNY,
                },
                None,
            ))
            .await?;
        let Reply::Product(Outcome::Movement(movement)) = engine
            .submit(product(
                WalletCommand::StartTopUp {
                    user_id: person(n),
                    amount: yuan(1_000_000),
                    card_id: Id(1),
                },
                None,
            ))
            .await?
        else {
            bail!("a top-up answers a movement");
        };
        engine
            .submit(product(
                WalletCommand::SettleMovement {
                    movement_id: movement.id,
                    succeeded: true,
                    failure: None,
                },
                None,
            ))
            .await?;
    }
    let draw = Draw::of(args);
    let timed = rush(
        &engine,
        args.payments,
        args.concurrency,
        args.seed,
        move |rng, n| {
            let (payer, payee) = draw.pair(rng);
            product(
                WalletCommand::Transfer {
                    from_user_id: person(payer),
                    to_user_id: person(payee),
                    amount: Money::new(rng.random_range(1..10_000), Currency::CNY),
                    note: "bench".to_owned(),
                },
                Some(IdempotencyKey {
                    owner: person(payer),
                    key: format!("bench-{n}"),
                    fingerprint: String::new(),
                }),
            )
        },
        |reply| matches!(reply, Reply::Product(Outcome::Transfer(_))),
    )
    .await?;
    finish(engine, place).await?;
    Ok(timed)
}

async fn ledger(args: &Args) -> anyhow::Result<Timed> {
    let place = tokio::task::block_in_place(|| args.place())?;
    let location = place.location.clone();
    let engine = tokio::task::spawn_blocking(move || {
        Engine::start(Store::open(&location)?, engine_config())
    })
    .await??;
    let account = |n: u64| wallet_account(Id(n), Currency::CNY);
    let bank = 1u128 << 100;
    let mut accounts = vec![Account::new(bank, Currency::CNY.ledger(), 9)];
    accounts.extend((1..=args.people).map(|n| {
        Account::new(account(n), Currency::CNY.ledger(), 1)
            .with_flags(formica_ledger::AccountFlags::DEBITS_MUST_NOT_EXCEED_CREDITS)
    }));
    for chunk in accounts.chunks(formica_core::COMMAND_EVENTS_MAX) {
        engine
            .submit(Command::CreateAccounts(chunk.to_vec()))
            .await?;
    }
    let funding: Vec<Transfer> = (1..=args.people)
        .map(|n| {
            Transfer::new(
                u128::from(n),
                bank,
                account(n),
                100_000_000,
                Currency::CNY.ledger(),
                1,
            )
        })
        .collect();
    for chunk in funding.chunks(formica_core::COMMAND_EVENTS_MAX) {
        engine
            .submit(Command::CreateTransfers(chunk.to_vec()))
            .await?;
    }
    let draw = Draw::of(args);
    let timed = rush(
        &engine,
        args.payments,
        args.concurrency,
        args.seed,
        move |rng, n| {
            let (payer, payee) = draw.pair(rng);
            Command::CreateTransfers(vec![Transfer::new(
                (1u128 << 64) + u128::from(n),
                account(payer),
                account(payee),
                rng.random_range(1..10_000),
                Currency::CNY.ledger(),
                3,
            )])
        },
        |reply| matches!(reply, Reply::Transfers(results) if results.iter().all(|r| r.is_ok())),
    )
    .await?;
    finish(engine, place).await?;
    Ok(timed)
}

/// Stops the engine and checks the trial balance of what it wrote.
async fn finish(engine: Engine, place: Place) -> anyhow::Result<()> {
    tokio::task::spawn_blocking(move || {
        engine.shutdown();
        let balance = Store::open(&place.location)?.trial_balance()?;
        ensure!(balance.holds(), "the trial balance holds after the run");
        drop(place);
        anyhow::Ok(())
    })
    .await?
}
