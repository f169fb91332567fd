//! The books alone, in memory, on one core: no durability, no queue.

use std::time::{Duration, Instant};

use anyhow::{bail, ensure};
use formica_ledger::{Ledger, NANOS_PER_SECOND};
use rand::SeedableRng;
use rand::rngs::SmallRng;

use super::ledger::{Args, Measured};
use super::workload::FIRST_PAYMENT_ID;

/// Applies the workload to an in-memory ledger, timing only the books' work.
pub fn run(args: &Args) -> anyhow::Result<Measured> {
    let shape = args.shape();
    // Sized for the run at start, as a server sizes its books when it starts.
    let allocating = Instant::now();
    let capacity = usize::try_from(args.transfers + args.accounts)?;
    let mut ledger = Ledger::with_capacity(usize::try_from(args.accounts + 1)?, capacity);
    let allocated = allocating.elapsed();
    let mut clock = NANOS_PER_SECOND;
    for chunk in shape.accounts().chunks(formica_ledger::BATCH_EVENTS_MAX) {
        clock += 1;
        let results = ledger.create_accounts(clock, chunk);
        ensure!(results.iter().all(|r| r.is_ok()), "accounts created");
    }
    for chunk in shape.funding().chunks(formica_ledger::BATCH_EVENTS_MAX) {
        clock += 1;
        let results = ledger.create_transfers(clock, chunk);
        ensure!(results.iter().all(|r| r.is_ok()), "wallets funded");
    }

    let mut rng = SmallRng::seed_from_u64(args.seed);
    let mut batch = Vec::with_capacity(args.batch);
    let mut results = Vec::with_capacity(args.batch);
    let mut next_id = FIRST_PAYMENT_ID;
    let mut applying = Duration::ZERO;
    let mut refused = 0u64;
    let bar = super::progress(args.transfers, "transfers");
    let mut done = 0u64;
    while done < args.transfers {
        let count = (args.transfers - done).min(args.batch as u64);
        batch.clear();
        for _ in 0..count {
            next_id += 1;
            batch.push(shape.payment(&mut rng, next_id));
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
    ledger.verify()?;
    if refused > 0 {
        bail!("{refused} transfers were refused: the workload is meant to be all valid");
    }
    Ok(Measured {
        seconds: applying.as_secs_f64(),
        latencies_micros: Vec::new(),
        notes: vec![format!(
            "{:.3} s to allocate the books before the run (outside the timing)",
            allocated.as_secs_f64()
        )],
    })
}
