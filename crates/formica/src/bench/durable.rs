//! The books through the engine onto a database: concurrent clients submit payments, the
//! single writer batches them, commits each batch durably, and only then answers.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use anyhow::{Context, bail, ensure};
use formica_core::{COMMAND_EVENTS_MAX, Command, Reply};
use formica_engine::{Config, Engine};
use formica_store::{Location, Store};
use rand::SeedableRng;
use rand::rngs::SmallRng;

use super::ledger::{Args, Measured, StoreKind};
use super::workload::FIRST_PAYMENT_ID;
use formica_store::TemporaryDatabase;

/// Runs the workload through the engine and checks the trial balance afterwards.
pub fn run(args: &Args) -> anyhow::Result<Measured> {
    let mut _temporary = None;
    let mut _database = None;
    let location = match args.store {
        StoreKind::Postgres => {
            let database = TemporaryDatabase::create(args.database_url()?, "formica_bench")?;
            let location = Location::Postgres(database.url.clone());
            _database = Some(database);
            location
        }
        _ => match &args.data_dir {
            Some(dir) => Location::Sqlite(dir.clone()),
            None => {
                let dir = tempfile::tempdir().context("a temporary data directory")?;
                let location = Location::Sqlite(dir.path().to_path_buf());
                _temporary = Some(dir);
                location
            }
        },
    };
    let shape = args.shape();
    let config = Config {
        batch_events_max: args.batch,
        ..Config::default()
    };
    let engine = Engine::start(Store::open(&location)?, config)?;
    for chunk in shape.accounts().chunks(COMMAND_EVENTS_MAX) {
        let reply = engine.submit_blocking(Command::CreateAccounts(chunk.to_vec()))?;
        ensure!(
            matches!(reply, Reply::Accounts(r) if r.iter().all(|r| r.is_ok())),
            "accounts created"
        );
    }
    for chunk in shape.funding().chunks(COMMAND_EVENTS_MAX) {
        let reply = engine.submit_blocking(Command::CreateTransfers(chunk.to_vec()))?;
        ensure!(
            matches!(reply, Reply::Transfers(r) if r.iter().all(|r| r.is_ok())),
            "wallets funded"
        );
    }
    let batches_before = engine.stats().batches.load(Ordering::Relaxed);
    let commit_nanos_before = engine.stats().commit_nanos.load(Ordering::Relaxed);
    let checkpoints_before = engine.stats().checkpoints.load(Ordering::Relaxed);
    let checkpoint_nanos_before = engine.stats().checkpoint_nanos.load(Ordering::Relaxed);

    // Each client keeps one request in flight, sized so that the clients together have two
    // batches in flight: one committing while the next one queues (as a busy server's many
    // callers do), so that a batch never waits for clients to come back.
    let per_request = (2 * args.batch / args.clients).clamp(1, COMMAND_EVENTS_MAX) as u64;
    let next = AtomicU64::new(0);
    let bar = super::progress(args.transfers, "transfers");
    let started = Instant::now();
    let latencies = std::thread::scope(|scope| {
        let clients: Vec<_> = (0..args.clients as u64)
            .map(|client| {
                let (engine, next, bar) = (engine.clone(), &next, &bar);
                scope.spawn(move || -> anyhow::Result<Vec<u64>> {
                    let mut rng =
                        SmallRng::seed_from_u64(args.seed.wrapping_mul(1_000).wrapping_add(client));
                    let mut latencies = Vec::new();
                    loop {
                        let first = next.fetch_add(per_request, Ordering::Relaxed);
                        if first >= args.transfers {
                            return Ok(latencies);
                        }
                        let count = per_request.min(args.transfers - first);
                        let payments = (first..first + count)
                            .map(|n| shape.payment(&mut rng, FIRST_PAYMENT_ID + u128::from(n) + 1))
                            .collect();
                        let submitted = Instant::now();
                        let reply = engine.submit_blocking(Command::CreateTransfers(payments))?;
                        latencies.push(u64::try_from(submitted.elapsed().as_micros())?);
                        let Reply::Transfers(results) = reply else {
                            bail!("transfers answered with {reply:?}");
                        };
                        ensure!(results.iter().all(|r| r.is_ok()), "every payment applied");
                        bar.inc(count);
                    }
                })
            })
            .collect();
        super::latencies_of(clients)
    })?;
    let seconds = started.elapsed().as_secs_f64();
    bar.finish_and_clear();
    let batches = engine.stats().batches.load(Ordering::Relaxed) - batches_before;
    let checkpoints = engine.stats().checkpoints.load(Ordering::Relaxed) - checkpoints_before;
    let checkpoint_nanos =
        engine.stats().checkpoint_nanos.load(Ordering::Relaxed) - checkpoint_nanos_before;
    let commit_nanos = engine.stats().commit_nanos.load(Ordering::Relaxed) - commit_nanos_before;
    engine.shutdown();

    let balance = Store::open(&location)?.trial_balance()?;
    ensure!(balance.holds(), "the trial balance holds after the run");
    Ok(Measured {
        seconds,
        latencies_micros: latencies,
        notes: vec![
            format!(
                "{batches} batches, {:.0} transfers each on average, {:.2} ms per commit",
                args.transfers as f64 / batches.max(1) as f64,
                commit_nanos as f64 / batches.max(1) as f64 / 1e6
            ),
            format!(
                "{checkpoints} balance checkpoints, {:.1} ms each on average",
                checkpoint_nanos as f64 / checkpoints.max(1) as f64 / 1e6
            ),
            "trial balance holds".to_owned(),
        ],
    })
}
