//! The load a crash test kills: payments submitted through the engine from several clients,
//! each acknowledged one printed (`ack ID`) only after the engine answered, which it does only
//! after the batch is durable. Each payment is a linked pair (the payment and its fee), so a
//! half-applied payment would show as one transfer without the other.
//!
//! With `--fund`, the load is the pocket fund's daily earnings instead: day after day, a
//! day's income is posted (`ack income DAY` once durable) and credited to every holder in
//! small chunks (`accrued DAY` once the store says all are credited), so that kills land in
//! the middle of a day's accrual. `--fund --setup` first opens the fund and its holders
//! (`FUND_HOLDERS`, each with 1,000.00 bought on a Monday morning) and exits.

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};

use formica_core::{Command, Reply};
use formica_engine::{Config, Engine};
use formica_ledger::{Account, AccountFlags, Transfer, TransferFlags};
use formica_store::Store;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::location::StoreArgs;

/// Ledger of the crash load (CNY).
pub const LEDGER: u32 = 156;
/// Wallets 2..=WALLETS+1 pay; account 1 is the shop, the last one the platform's fees.
pub const WALLETS: u128 = 50;
/// Fee account.
pub const FEES: u128 = WALLETS + 2;
/// The bank that funds the wallets.
pub const BANK: u128 = WALLETS + 3;

/// Options of the crash load.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    store: StoreArgs,
    /// Seed for the payments.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Concurrent clients.
    #[arg(long, default_value_t = 4)]
    clients: u64,
    /// The fund's daily accrual instead of payments.
    #[arg(long)]
    fund: bool,
    /// With `--fund`: open the fund and its holders, then exit.
    #[arg(long, requires = "fund")]
    setup: bool,
}

/// Holders of the crash fund: people 2..=FUND_HOLDERS+1 (person 1 is its manager).
pub const FUND_HOLDERS: u64 = 400;
/// Holders credited per batch: a day's accrual takes many batches.
pub const FUND_CHUNK: usize = 16;
/// The Monday (days since 1970-01-01, UTC+8) the holders buy, before the cut-off: their
/// units are confirmed on Tuesday and earn from then on.
pub const FUND_MONDAY: i64 = 20_836;
/// Units each holder buys, in fen (1,000.00); at an income of 1.0000 per 10,000 units each
/// then earns exactly 0.10 a day (for the first thousand days).
pub const FUND_UNITS: u64 = 100_000;
/// The daily income posted.
pub const FUND_INCOME: &str = "1.0000";
const SECOND: u64 = 1_000_000_000;
const DAY: u64 = 24 * 3600 * SECOND;
/// Monday 2027-01-18 10:00 in the platform's zone (UTC+8).
const MONDAY_10: u64 = (1_800_000_000 + 66 * 3600) * SECOND;

/// Opens the books, sets up the accounts once, then pays until killed.
pub fn run(args: Args) -> anyhow::Result<()> {
    if args.fund {
        return fund::run(&args.store.location(), args.setup);
    }
    let engine = Engine::start(Store::open(&args.store.location())?, Config::default())?;
    let mut accounts = vec![
        Account::new(1, LEDGER, 2),
        Account::new(FEES, LEDGER, 3),
        Account::new(BANK, LEDGER, 9),
    ];
    let mut funding = Vec::new();
    for id in 2..=WALLETS + 1 {
        accounts.push(
            Account::new(id, LEDGER, 1).with_flags(AccountFlags::DEBITS_MUST_NOT_EXCEED_CREDITS),
        );
        funding.push(Transfer::new(id, BANK, id, 1_000_000_000, LEDGER, 9));
    }
    // Idempotent: a restarted load answers `exists` for these.
    engine.submit_blocking(Command::CreateAccounts(accounts))?;
    engine.submit_blocking(Command::CreateTransfers(funding))?;
    println!("ready");
    // Payment ids continue after every payment a previous run may have made.
    let run_base = u128::from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_nanos() as u64,
    ) << 32;
    let next = AtomicU64::new(0);
    let stdout = std::sync::Mutex::new(std::io::stdout());
    std::thread::scope(|scope| {
        for client in 0..args.clients {
            let (engine, next, stdout) = (engine.clone(), &next, &stdout);
            scope.spawn(move || {
                let mut rng =
                    SmallRng::seed_from_u64(args.seed.wrapping_mul(100).wrapping_add(client));
                loop {
                    let n = u128::from(next.fetch_add(1, Ordering::Relaxed));
                    let payment_id = run_base + 2 * n + 2;
                    let payer = rng.random_range(2..=WALLETS + 1);
                    let amount = rng.random_range(100..10_000u128);
                    let pair = vec![
                        Transfer::new(payment_id, payer, 1, amount, LEDGER, 1)
                            .with_flags(TransferFlags::LINKED),
                        Transfer::new(payment_id + 1, 1, FEES, amount / 100, LEDGER, 2),
                    ];
                    if let Ok(Reply::Transfers(results)) =
                        engine.submit_blocking(Command::CreateTransfers(pair))
                        && results.iter().all(|r| r.is_ok())
                    {
                        let mut out = stdout
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner);
                        let _ = writeln!(out, "ack {payment_id}");
                        let _ = out.flush();
                    }
                }
            });
        }
    });
    Ok(())
}

/// The fund's daily accrual as the crash load.
mod fund {
    use std::time::Duration;

    use anyhow::{Context, bail};
    use formica_core::fund::{Fund, FundCommand, Income};
    use formica_core::{
        Command, Currency, Id, Money, Outcome, ProductCommand, ProductRequest, Reply, Settings,
    };
    use formica_engine::{Clock, Config, Engine};
    use formica_store::{Location, Store};

    use super::{
        DAY, FUND_CHUNK, FUND_HOLDERS, FUND_INCOME, FUND_MONDAY, FUND_UNITS, MONDAY_10, SECOND,
    };

    fn submit(engine: &Engine, command: ProductCommand) -> anyhow::Result<Outcome> {
        let command = Command::Product(ProductRequest {
            command,
            idempotency: None,
        });
        match engine.submit_blocking(command)? {
            Reply::Product(outcome) => Ok(outcome),
            other => bail!("a product command answered {other:?}"),
        }
    }

    fn engine(location: &Location, now: u64) -> anyhow::Result<(Engine, Clock)> {
        let clock = Clock::manual(now);
        let config = Config {
            clock: clock.clone(),
            settings: Settings {
                accrual_chunk: FUND_CHUNK,
                ..Settings::default()
            },
            ..Config::default()
        };
        Ok((Engine::start(Store::open(location)?, config)?, clock))
    }

    /// The crash fund as the store has it.
    fn stored(reader: &mut Store) -> anyhow::Result<Option<Fund>> {
        Ok(reader
            .read_sql(formica_store::fund::funds)?
            .into_iter()
            .next())
    }

    pub(super) fn run(location: &Location, setup: bool) -> anyhow::Result<()> {
        if setup {
            return open(location);
        }
        let mut reader = Store::open_reader(location)?;
        let fund = stored(&mut reader)?.context("run `crash-load --fund --setup` first")?;
        // The last day posted (its accrual maybe half done): the clock stands in the next.
        let mut posted = fund
            .accrual
            .as_ref()
            .map_or(fund.accrued_through, |a| a.day);
        let next = u64::try_from(posted + 1 - FUND_MONDAY).context("a day after the setup")?;
        // 01:00 of the day after the last posted.
        let (engine, clock) = engine(location, MONDAY_10 - 9 * 3600 * SECOND + next * DAY)?;
        let income = Income::parse(FUND_INCOME).context("the income")?;
        println!("ready");
        loop {
            // The engine resumes a half-done accrual by itself; wait until it is stored.
            while stored(&mut reader)?.is_none_or(|f| f.accrued_through < posted) {
                std::thread::sleep(Duration::from_millis(2));
            }
            println!("accrued {posted}");
            clock.advance(DAY);
            let day = posted + 1;
            submit(
                &engine,
                ProductCommand::Fund(FundCommand::PostIncome {
                    fund_id: fund.id,
                    day,
                    income,
                }),
            )?;
            println!("ack income {day}");
            posted = day;
        }
    }

    /// The manager, the fund and its holders, each holder's money bought into it.
    fn open(location: &Location) -> anyhow::Result<()> {
        let (engine, _clock) = engine(location, MONDAY_10)?;
        let cny = |minor| Money::new(minor, Currency::CNY);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let funded = |person: Id, major: u64| {
            runtime.block_on(crate::bench::fund::funded(&engine, person, major))
        };
        funded(Id(1), 1_000_000)?;
        let Outcome::Fund(fund) = submit(
            &engine,
            ProductCommand::Fund(FundCommand::Create {
                name: "Crash".to_owned(),
                currency: Currency::CNY,
                manager_id: Id(1),
                cutoff_second: formica_core::fund::CUTOFF_DEFAULT,
                instant_limit: cny(1_000_000),
            }),
        )?
        else {
            bail!("a fund");
        };
        for holder in (2..FUND_HOLDERS + 2).map(Id) {
            funded(holder, FUND_UNITS / 100)?;
            let outcome = submit(
                &engine,
                ProductCommand::Fund(FundCommand::Subscribe {
                    fund_id: fund.id,
                    holder_id: holder,
                    amount: cny(FUND_UNITS),
                }),
            )?;
            if !matches!(outcome, Outcome::Subscription(_)) {
                bail!("a subscription: {outcome:?}");
            }
        }
        engine.shutdown();
        Ok(())
    }
}
