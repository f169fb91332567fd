//! The load a crash test kills: payments submitted through the engine from several clients,
//! each acknowledged one printed (`ack ID`) only after the engine answered, which it does only
//! after the batch is durable. Each payment is a linked pair (the payment and its fee), so a
//! half-applied payment would show as one transfer without the other.

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
}

/// Opens the books, sets up the accounts once, then pays until killed.
pub fn run(args: Args) -> anyhow::Result<()> {
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
