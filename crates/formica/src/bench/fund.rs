//! `formica bench fund-accrual`: a day's earnings credited to every holder of a big fund,
//! durably, while people keep paying each other. Holders subscribe on a Monday morning, are
//! confirmed on Tuesday (in chunks, as the engine does at midnight), and Tuesday's income is
//! posted on Wednesday: the time measured is from posting until the store says the day is
//! credited to everyone.
//!
//! The named baseline is the payments themselves: the same wallet transfers, at the same
//! concurrency, measured just before the accrual in the same run; the report gives the rate
//! during the accrual as a ratio of it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use formica_core::fund::{FundCommand, Income};
use formica_core::wallet::WalletCommand;
use formica_core::{
    Command, Currency, Id, Money, Outcome, ProductCommand, ProductRequest, Reply, Settings,
};
use formica_engine::{Clock, Config, Engine, EngineError};
use formica_store::{Location, Store};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::ledger::StoreKind;
use super::payments::place;

/// Options of `formica bench fund-accrual`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// `sqlite` or `postgres`.
    #[arg(long, value_enum, default_value = "sqlite")]
    store: StoreKind,
    /// Holders of the fund.
    #[arg(long, default_value_t = 1_000_000)]
    holders: u64,
    /// Requests in flight at once (setup and payments).
    #[arg(long, default_value_t = 2048)]
    concurrency: usize,
    /// Holders credited per batch (the engine's `accrual_chunk`).
    #[arg(long, default_value_t = formica_core::fund::ACCRUAL_CHUNK)]
    chunk: usize,
    /// Seconds of payments measured before the accrual (the baseline).
    #[arg(long, default_value_t = 5.0)]
    baseline_seconds: f64,
    /// PostgreSQL server URL; each run creates and drops its own database there.
    #[arg(long, env = "DATABASE_URL")]
    database_url: Option<String>,
    /// Print one JSON object as the last line.
    #[arg(long)]
    json: bool,
}

const SECOND: u64 = 1_000_000_000;
const DAY: u64 = 24 * 3600 * SECOND;
/// Monday 2027-01-18 10:00 in the platform's zone (UTC+8): before the cut-off.
const MONDAY_10: u64 = (1_800_000_000 + 66 * 3600) * SECOND;
const MONDAY: i64 = 20_836;

fn product(command: ProductCommand) -> Command {
    Command::Product(ProductRequest {
        command,
        idempotency: None,
    })
}

async fn submit(engine: &Engine, command: ProductCommand) -> anyhow::Result<Outcome> {
    let command = product(command);
    loop {
        match engine.submit(command.clone()).await {
            Err(EngineError::Busy) => tokio::time::sleep(Duration::from_millis(1)).await,
            Ok(Reply::Product(outcome)) => return Ok(outcome),
            other => bail!("{other:?}"),
        }
    }
}

fn yuan(major: u64) -> Money {
    Money::new(major * 100, Currency::CNY)
}

/// Opens a wallet with `major` yuan in it (also the fund crash load's setup).
pub(crate) async fn funded(engine: &Engine, person: Id, major: u64) -> anyhow::Result<()> {
    submit(
        engine,
        ProductCommand::Wallet(WalletCommand::OpenWallet {
            user_id: person,
            currency: Currency::CNY,
        }),
    )
    .await?;
    let Outcome::Movement(movement) = submit(
        engine,
        ProductCommand::Wallet(WalletCommand::StartTopUp {
            user_id: person,
            amount: yuan(major),
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
    Ok(())
}

/// The fund as the store has it (what is durable).
fn stored_fund(reader: &mut Store, fund: Id) -> anyhow::Result<formica_core::fund::Fund> {
    reader
        .read_sql(|sql| formica_store::fund::fund(sql, fund))?
        .context("the fund is stored")
}

/// Wallet transfers between random holders until `stop`; the number made.
async fn pay_until(
    engine: &Engine,
    holders: u64,
    concurrency: usize,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<u64> {
    let made = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::with_capacity(concurrency);
    for task in 0..concurrency as u64 {
        let (engine, stop, made) = (engine.clone(), Arc::clone(&stop), Arc::clone(&made));
        tasks.push(tokio::spawn(async move {
            let mut rng = SmallRng::seed_from_u64(task);
            while !stop.load(Ordering::Relaxed) {
                let payer = rng.random_range(2..holders + 2);
                let payee = rng.random_range(2..holders + 2);
                if payer == payee {
                    continue;
                }
                let outcome = submit(
                    &engine,
                    ProductCommand::Wallet(WalletCommand::Transfer {
                        from_user_id: Id(payer),
                        to_user_id: Id(payee),
                        amount: Money::new(rng.random_range(1..100), Currency::CNY),
                        note: String::new(),
                    }),
                )
                .await?;
                ensure!(
                    matches!(outcome, Outcome::Transfer(_)),
                    "a payment: {outcome:?}"
                );
                made.fetch_add(1, Ordering::Relaxed);
            }
            anyhow::Ok(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    Ok(made.load(Ordering::Relaxed))
}

/// Runs the benchmark and prints its report.
pub fn run(args: Args) -> anyhow::Result<()> {
    ensure!(args.holders >= 2, "--holders must be at least 2");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(bench(args))
}

async fn bench(args: Args) -> anyhow::Result<()> {
    let place = tokio::task::block_in_place(|| place(args.store, args.database_url.as_deref()))?;
    let location: Location = place.location.clone();
    let clock = Clock::manual(MONDAY_10);
    let config = Config {
        clock: clock.clone(),
        settings: Settings {
            unverified_daily_major: u64::MAX / 1_000,
            accrual_chunk: args.chunk.max(1),
            ..Settings::default()
        },
        ..Config::default()
    };
    let opened = location.clone();
    let engine =
        tokio::task::spawn_blocking(move || Engine::start(Store::open(&opened)?, config)).await??;
    let manager = Id(1);
    funded(&engine, manager, 10_000_000).await?;
    let Outcome::Fund(fund) = submit(
        &engine,
        ProductCommand::Fund(FundCommand::Create {
            name: "Pocket".to_owned(),
            currency: Currency::CNY,
            manager_id: manager,
            cutoff_second: formica_core::fund::CUTOFF_DEFAULT,
            instant_limit: yuan(10_000),
        }),
    )
    .await?
    else {
        bail!("a fund");
    };
    // Every holder: a wallet with 1,100.00, of which 1,000.00 into the fund.
    let setup = super::progress(args.holders, "holders");
    let next = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..args.concurrency {
        let (engine, next, setup) = (engine.clone(), Arc::clone(&next), setup.clone());
        let (holders, fund_id) = (args.holders, fund.id);
        tasks.push(tokio::spawn(async move {
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= holders {
                    return anyhow::Ok(());
                }
                let holder = Id(n + 2);
                funded(&engine, holder, 1_100).await?;
                submit(
                    &engine,
                    ProductCommand::Fund(FundCommand::Subscribe {
                        fund_id,
                        holder_id: holder,
                        amount: yuan(1_000),
                    }),
                )
                .await?;
                setup.inc(1);
            }
        }));
    }
    for task in tasks {
        task.await??;
    }
    setup.finish_and_clear();
    let mut reader = tokio::task::block_in_place(|| Store::open_reader(&location))?;
    // Tuesday: confirmed (in chunks). Monday's income credits nobody (not confirmed then).
    clock.advance(DAY);
    engine.tick().await?;
    let income = Income::parse("1.0700").expect("an income");
    for (day, label) in [(MONDAY, "Monday")] {
        submit(
            &engine,
            ProductCommand::Fund(FundCommand::PostIncome {
                fund_id: fund.id,
                day,
                income,
            }),
        )
        .await
        .with_context(|| format!("{label}'s income"))?;
    }
    loop {
        let stored = tokio::task::block_in_place(|| stored_fund(&mut reader, fund.id))?;
        let pending = tokio::task::block_in_place(|| {
            reader.read_sql(|sql| formica_store::fund::report(sql, fund.id))
        })?
        .1;
        if stored.accrued_through == MONDAY && pending == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The baseline: payments alone, once the confirmations' balances are checkpointed (a
    // million of them: writing them would slow the baseline, not the accrual).
    while engine.stats().unsaved_balances.load(Ordering::Relaxed) > 0 {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let stop = Arc::new(AtomicBool::new(false));
    let paying = {
        let (engine, stop) = (engine.clone(), Arc::clone(&stop));
        let (holders, concurrency) = (args.holders, args.concurrency);
        tokio::spawn(async move { pay_until(&engine, holders, concurrency, stop).await })
    };
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs_f64(args.baseline_seconds)).await;
    stop.store(true, Ordering::Relaxed);
    let baseline_payments = paying.await??;
    let baseline_rate = baseline_payments as f64 / started.elapsed().as_secs_f64();
    // Wednesday: Tuesday's income, with payments running.
    clock.advance(DAY);
    let stop = Arc::new(AtomicBool::new(false));
    let paying = {
        let (engine, stop) = (engine.clone(), Arc::clone(&stop));
        let (holders, concurrency) = (args.holders, args.concurrency);
        tokio::spawn(async move { pay_until(&engine, holders, concurrency, stop).await })
    };
    let credit = super::progress(args.holders, "holders credited");
    let started = Instant::now();
    submit(
        &engine,
        ProductCommand::Fund(FundCommand::PostIncome {
            fund_id: fund.id,
            day: MONDAY + 1,
            income,
        }),
    )
    .await
    .context("Tuesday's income")?;
    loop {
        let stored = tokio::task::block_in_place(|| stored_fund(&mut reader, fund.id))?;
        if stored.accrued_through == MONDAY + 1 {
            break;
        }
        if let Some(after) = stored.accrual.and_then(|a| a.after) {
            credit.set_position(after.0.saturating_sub(1));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let accrual_seconds = started.elapsed().as_secs_f64();
    credit.finish_and_clear();
    stop.store(true, Ordering::Relaxed);
    let during_payments = paying.await??;
    let during_rate = during_payments as f64 / started.elapsed().as_secs_f64();
    // Every holder got 1,000.00 × 1.07 / 10,000 = 0.107 → 0.10, and the books agree.
    let stored = tokio::task::block_in_place(|| stored_fund(&mut reader, fund.id))?;
    let (holders, pending) = tokio::task::block_in_place(|| {
        reader.read_sql(|sql| formica_store::fund::report(sql, fund.id))
    })?;
    ensure!(
        holders == args.holders && pending == 0,
        "every holder holds"
    );
    let issuer =
        tokio::task::block_in_place(|| reader.account(formica_core::fund::issuer_account(&fund)))?
            .context("the fund's issuer account")?;
    let units = issuer.debits_posted - issuer.credits_posted;
    ensure!(
        units == u128::from(args.holders) * 100_010,
        "every holder earned 0.10 once: {units}"
    );
    drop(reader);
    tokio::task::spawn_blocking(move || {
        engine.shutdown();
        let balance = Store::open(&place.location)?.trial_balance()?;
        ensure!(balance.holds(), "the trial balance holds after the run");
        drop(place);
        anyhow::Ok(())
    })
    .await??;
    let store = format!("{:?}", args.store).to_lowercase();
    let ratio = during_rate / baseline_rate;
    println!(
        "fund accrual on {store}: a day's earnings to {} holders, durable, with payments running",
        args.holders
    );
    println!(
        "  {accrual_seconds:.2} s to credit every holder ({:.0} holders/s)",
        args.holders as f64 / accrual_seconds
    );
    println!(
        "  payments: {baseline_rate:.0}/s alone (baseline), {during_rate:.0}/s during the accrual: {ratio:.2}x"
    );
    println!(
        "  7-day yield published after 7 days ({} posted so far); trial balance holds",
        stored.incomes.len()
    );
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "bench": "fund-accrual",
                "store": store,
                "holders": args.holders,
                "chunk": args.chunk,
                "accrual_seconds": (accrual_seconds * 1000.0).round() / 1000.0,
                "baseline": "payments",
                "baseline_per_second": baseline_rate.round(),
                "payments_per_second_during": during_rate.round(),
                "ratio": (ratio * 100.0).round() / 100.0,
            })
        );
    }
    Ok(())
}
