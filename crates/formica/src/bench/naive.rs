//! The baseline: a ledger the way most teams first build one on PostgreSQL. Every transfer is
//! its own transaction (insert the transfer, debit with a balance check, credit), committed
//! durably, from many concurrent clients; a hot account serializes them on its row lock.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use anyhow::{Context, ensure};
use postgres::{Client, NoTls};
use rand::SeedableRng;
use rand::rngs::SmallRng;

use super::ledger::{Args, Measured};
use formica_store::TemporaryDatabase;

const SCHEMA: &str = "
    CREATE TABLE naive_accounts (id bigint PRIMARY KEY, balance bigint NOT NULL);
    CREATE TABLE naive_transfers (
        id bigint PRIMARY KEY, debit bigint NOT NULL, credit bigint NOT NULL,
        amount bigint NOT NULL, created_at timestamptz NOT NULL DEFAULT now()
    );";

/// Runs `--baseline-transfers` payments of the same shape, one transaction each.
pub fn run(args: &Args) -> anyhow::Result<Measured> {
    let database = TemporaryDatabase::create(args.database_url()?, "formica_naive")?;
    let mut setup = Client::connect(&database.url, NoTls)?;
    setup.batch_execute(SCHEMA)?;
    setup.execute(
        "INSERT INTO naive_accounts SELECT id, CASE WHEN id = 1 THEN 0 ELSE 10000000000000 END \
         FROM generate_series(1, $1::bigint) AS id",
        &[&i64::try_from(args.accounts)?],
    )?;
    let shape = args.shape();
    let next = AtomicU64::new(0);
    let bar = super::progress(args.baseline_transfers, "baseline transfers");
    let started = Instant::now();
    let latencies = std::thread::scope(|scope| {
        let clients: Vec<_> = (0..args.clients as u64)
            .map(|client| {
                let (next, bar, url) = (&next, &bar, &database.url);
                scope.spawn(move || -> anyhow::Result<Vec<u64>> {
                    let mut connection = Client::connect(url, NoTls)?;
                    let mut rng =
                        SmallRng::seed_from_u64(args.seed.wrapping_mul(1_000).wrapping_add(client));
                    let mut latencies = Vec::new();
                    loop {
                        let n = next.fetch_add(1, Ordering::Relaxed);
                        if n >= args.baseline_transfers {
                            return Ok(latencies);
                        }
                        let payment = shape.payment(&mut rng, u128::from(n) + 1);
                        let submitted = Instant::now();
                        transfer(
                            &mut connection,
                            i64::try_from(payment.id)?,
                            i64::try_from(payment.debit_account_id)?,
                            i64::try_from(payment.credit_account_id)?,
                            i64::try_from(payment.amount)?,
                        )?;
                        latencies.push(u64::try_from(submitted.elapsed().as_micros())?);
                        bar.inc(1);
                    }
                })
            })
            .collect();
        super::latencies_of(clients)
    })?;
    let seconds = started.elapsed().as_secs_f64();
    bar.finish_and_clear();
    let total: i64 = setup
        .query_one("SELECT sum(balance)::bigint FROM naive_accounts", &[])?
        .get(0);
    let funded = i64::try_from(args.accounts - 1)? * 10_000_000_000_000;
    ensure!(
        total == funded,
        "the baseline kept its money: {total} != {funded}"
    );
    Ok(Measured {
        seconds,
        latencies_micros: latencies,
        notes: Vec::new(),
    })
}

/// One transfer, one transaction, retried when PostgreSQL reports a deadlock.
fn transfer(
    client: &mut Client,
    id: i64,
    debit: i64,
    credit: i64,
    amount: i64,
) -> anyhow::Result<()> {
    loop {
        let mut tx = client.transaction()?;
        let attempt = (|| -> Result<u64, postgres::Error> {
            tx.execute(
                "INSERT INTO naive_transfers (id, debit, credit, amount) VALUES ($1, $2, $3, $4)",
                &[&id, &debit, &credit, &amount],
            )?;
            let debited = tx.execute(
                "UPDATE naive_accounts SET balance = balance - $2 WHERE id = $1 AND balance >= $2",
                &[&debit, &amount],
            )?;
            tx.execute(
                "UPDATE naive_accounts SET balance = balance + $2 WHERE id = $1",
                &[&credit, &amount],
            )?;
            Ok(debited)
        })();
        match attempt {
            Ok(1) => return tx.commit().context("commit"),
            Ok(_) => anyhow::bail!("the baseline's wallet {debit} ran out of money"),
            Err(error)
                if error.code() == Some(&postgres::error::SqlState::T_R_DEADLOCK_DETECTED) =>
            {
                drop(tx);
            }
            Err(error) => return Err(error.into()),
        }
    }
}
