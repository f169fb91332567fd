//! `formica bench ledger`: random transfers between funded wallets, spread uniformly or all
//! crediting one hot merchant account (the Double-11 shape).
//!
//! The clock covers only the books applying batches: building each batch's random transfers
//! happens outside it, as it would in the clients of a real deployment.

use std::time::{Duration, Instant};

use anyhow::{bail, ensure};
use formica_ledger::{Account, AccountFlags, Ledger, NANOS_PER_SECOND, Transfer};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// The ledger of the benchmark's accounts (ISO 4217 numeric code of CNY).
const CNY: u32 = 156;
const WALLET: u16 = 1;
const MERCHANT: u16 = 2;
const BANK: u16 = 9;
const PAYMENT: u16 = 1;
/// Enough in every wallet that no payment of the run is refused.
const WALLET_FUNDING: u128 = 1 << 80;

/// Where the books live during the run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum StoreKind {
    /// In memory only: the ledger's own speed, without durability.
    Memory,
}

/// Options of `formica bench ledger`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Where the books live.
    #[arg(long, value_enum, default_value = "memory")]
    store: StoreKind,
    /// Number of wallets (the first one is the hot merchant).
    #[arg(long, default_value_t = 100_000)]
    accounts: u64,
    /// Number of transfers to apply.
    #[arg(long, default_value_t = 10_000_000)]
    transfers: u64,
    /// Percentage of transfers that credit the one hot merchant account.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=100))]
    hot: u8,
    /// Transfers per batch.
    #[arg(long, default_value_t = 8190)]
    batch: usize,
    /// Seed of the random workload, for repeatable runs.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Print one JSON object as the last line.
    #[arg(long)]
    json: bool,
}

/// Runs the benchmark and prints its report.
pub fn run(args: Args) -> anyhow::Result<()> {
    ensure!(args.accounts >= 2, "--accounts must be at least 2");
    ensure!(
        (1..=formica_ledger::BATCH_EVENTS_MAX).contains(&args.batch),
        "--batch must be between 1 and {}",
        formica_ledger::BATCH_EVENTS_MAX
    );
    // Sized for the run at start, as a server sizes its books when it starts.
    let allocating = Instant::now();
    let capacity = usize::try_from(args.transfers + args.accounts)?;
    let mut ledger = Ledger::with_capacity(usize::try_from(args.accounts + 1)?, capacity);
    let allocated = allocating.elapsed();
    let mut clock = NANOS_PER_SECOND;
    let bank = u128::from(args.accounts) + 1;
    fund_wallets(&mut ledger, &mut clock, args.accounts, bank)?;

    let mut rng = SmallRng::seed_from_u64(args.seed);
    let mut batch = Vec::with_capacity(args.batch);
    let mut results = Vec::with_capacity(args.batch);
    let mut next_id = u128::from(u64::MAX);
    let mut applying = Duration::ZERO;
    let mut refused = 0u64;
    let bar = super::progress(args.transfers, "transfers");
    let started = Instant::now();
    let mut done = 0u64;
    while done < args.transfers {
        let count = (args.transfers - done).min(args.batch as u64);
        batch.clear();
        for _ in 0..count {
            next_id += 1;
            batch.push(payment(&mut rng, next_id, args.accounts, args.hot));
        }
        clock += 1_000_000;
        let applied = Instant::now();
        ledger.apply_transfers(clock, &batch, &mut results);
        applying += applied.elapsed();
        refused += results.iter().filter(|r| !r.is_ok()).count() as u64;
        done += count;
        bar.inc(count);
    }
    bar.finish_and_clear();
    let wall = started.elapsed();
    ledger.verify()?;
    if refused > 0 {
        bail!("{refused} transfers were refused: the workload is meant to be all valid");
    }

    let seconds = applying.as_secs_f64();
    let per_second = args.transfers as f64 / seconds;
    println!(
        "ledger, store {:?}: {} transfers between {} accounts, {}% hot, batches of {}",
        args.store, args.transfers, args.accounts, args.hot, args.batch
    );
    println!(
        "  applied in {seconds:.3} s: {:.2} million transfers/s on one core",
        per_second / 1e6,
    );
    println!(
        "  {:.3} s wall with workload generation; {:.3} s to allocate the books before the run",
        wall.as_secs_f64(),
        allocated.as_secs_f64()
    );
    if args.json {
        let report = serde_json::json!({
            "bench": "ledger",
            "store": "memory",
            "accounts": args.accounts,
            "hot": args.hot,
            "batch": args.batch,
            "transfers": args.transfers,
            "seconds": seconds,
            "wall_seconds": wall.as_secs_f64(),
            "allocate_seconds": allocated.as_secs_f64(),
            "transfers_per_second": per_second.round(),
        });
        println!("{report}");
    }
    Ok(())
}

/// Creates the wallets and the bank, and funds every wallet from the bank.
fn fund_wallets(
    ledger: &mut Ledger,
    clock: &mut u64,
    accounts: u64,
    bank: u128,
) -> anyhow::Result<()> {
    let mut creating = vec![Account::new(bank, CNY, BANK)];
    creating.push(Account::new(1, CNY, MERCHANT));
    for id in 2..=u128::from(accounts) {
        creating.push(
            Account::new(id, CNY, WALLET).with_flags(AccountFlags::DEBITS_MUST_NOT_EXCEED_CREDITS),
        );
    }
    let funding: Vec<Transfer> = (2..=u128::from(accounts))
        .map(|id| Transfer::new(id, bank, id, WALLET_FUNDING, CNY, BANK))
        .collect();
    for chunk in creating.chunks(formica_ledger::BATCH_EVENTS_MAX) {
        *clock += 1;
        ensure!(
            ledger
                .create_accounts(*clock, chunk)
                .iter()
                .all(|r| r.is_ok()),
            "accounts created"
        );
    }
    for chunk in funding.chunks(formica_ledger::BATCH_EVENTS_MAX) {
        *clock += 1;
        ensure!(
            ledger
                .create_transfers(*clock, chunk)
                .iter()
                .all(|r| r.is_ok()),
            "wallets funded"
        );
    }
    Ok(())
}

/// One payment from a random wallet to the hot merchant (with probability `hot`%) or to
/// another random account.
fn payment(rng: &mut SmallRng, id: u128, accounts: u64, hot: u8) -> Transfer {
    let debit = rng.random_range(2..=accounts);
    let credit = if rng.random_range(0..100u8) < hot {
        1
    } else {
        let other = rng.random_range(1..accounts);
        if other >= debit { other + 1 } else { other }
    };
    let amount = rng.random_range(1..=100_000u128);
    Transfer::new(id, debit.into(), credit.into(), amount, CNY, PAYMENT)
}
