//! `formica bench ledger`: random payments between funded wallets, spread uniformly or all
//! crediting one hot merchant account (the Double-11 shape), on the books alone (`memory`) or
//! through the engine onto a database (`sqlite`, `postgres`), optionally against the way most
//! teams build a ledger on PostgreSQL (`--baseline naive-postgres`) in the same run.

use std::path::PathBuf;

use anyhow::ensure;

use super::workload::Shape;

/// Where the books live during the run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum StoreKind {
    /// In memory only: the books' own speed, on one core, without durability.
    Memory,
    /// The engine onto the embedded SQLite store, durable.
    Sqlite,
    /// The engine onto PostgreSQL (`--database-url`), durable.
    Postgres,
}

/// What to compare against in the same run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Baseline {
    /// One SQL transaction per transfer on PostgreSQL: insert the transfer, update both
    /// balances with a balance check; many concurrent clients.
    NaivePostgres,
}

/// Options of `formica bench ledger`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Where the books live.
    #[arg(long, value_enum, default_value = "memory")]
    pub store: StoreKind,
    /// Number of wallets (the first one is the hot merchant).
    #[arg(long, default_value_t = 100_000)]
    pub accounts: u64,
    /// Number of transfers to apply.
    #[arg(long, default_value_t = 10_000_000)]
    pub transfers: u64,
    /// Percentage of transfers that credit the one hot merchant account.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=100))]
    pub hot: u8,
    /// Most transfers per batch (one durable commit).
    #[arg(long, default_value_t = 8190)]
    pub batch: usize,
    /// Concurrent clients submitting to the engine (durable stores and the baseline).
    #[arg(long, default_value_t = 8)]
    pub clients: usize,
    /// PostgreSQL server URL (for `--store postgres` and the baseline); each run creates and
    /// drops its own database there.
    #[arg(long, env = "DATABASE_URL")]
    pub database_url: Option<String>,
    /// Directory for the SQLite database (a fresh temporary one by default).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Run this baseline on the same workload and print the ratio.
    #[arg(long, value_enum)]
    pub baseline: Option<Baseline>,
    /// Transfers the baseline applies (it is slow; its rate is what is compared).
    #[arg(long, default_value_t = 20_000)]
    pub baseline_transfers: u64,
    /// Seed of the random workload, for repeatable runs.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Print one JSON object as the last line.
    #[arg(long)]
    pub json: bool,
}

impl Args {
    pub fn shape(&self) -> Shape {
        Shape {
            accounts: self.accounts,
            hot: self.hot,
        }
    }

    pub fn database_url(&self) -> anyhow::Result<&str> {
        self.database_url
            .as_deref()
            .ok_or_else(|| anyhow::anyhow!("PostgreSQL needs --database-url (or DATABASE_URL)"))
    }
}

/// What one run measured.
#[derive(Debug, Default)]
pub struct Measured {
    /// Seconds the timed part took.
    pub seconds: f64,
    /// Per request, from submit to reply, in microseconds (empty when there are no requests).
    pub latencies_micros: Vec<u64>,
    /// Lines to print after the figures.
    pub notes: Vec<String>,
}

impl Measured {
    /// The `quantile` (0 to 1) of the request latencies, in milliseconds.
    pub fn latency_ms(&mut self, quantile: f64) -> Option<f64> {
        if self.latencies_micros.is_empty() {
            return None;
        }
        self.latencies_micros.sort_unstable();
        Some(super::percentile_ms(&self.latencies_micros, quantile))
    }
}

/// Runs the benchmark and prints its report.
pub fn run(args: Args) -> anyhow::Result<()> {
    ensure!(args.accounts >= 2, "--accounts must be at least 2");
    ensure!(args.transfers >= 1, "--transfers must be at least 1");
    ensure!(args.clients >= 1, "--clients must be at least 1");
    ensure!(
        (1..=formica_ledger::BATCH_EVENTS_MAX).contains(&args.batch),
        "--batch must be between 1 and {}",
        formica_ledger::BATCH_EVENTS_MAX
    );
    let mut measured = match args.store {
        StoreKind::Memory => super::memory::run(&args)?,
        StoreKind::Sqlite | StoreKind::Postgres => super::durable::run(&args)?,
    };
    let per_second = args.transfers as f64 / measured.seconds;
    let store = format!("{:?}", args.store).to_lowercase();
    println!(
        "ledger on {store}: {} transfers between {} accounts, {}% hot, batches of up to {}",
        args.transfers, args.accounts, args.hot, args.batch
    );
    let scope = if args.store == StoreKind::Memory {
        "on one core".to_owned()
    } else {
        format!("durable, {} clients", args.clients)
    };
    println!(
        "  {:.3} s: {:.0} transfers/s ({scope})",
        measured.seconds, per_second
    );
    let p50 = measured.latency_ms(0.50);
    let p99 = measured.latency_ms(0.99);
    if let (Some(p50), Some(p99)) = (p50, p99) {
        println!("  commit latency per request: p50 {p50:.2} ms, p99 {p99:.2} ms");
    }
    for note in &measured.notes {
        println!("  {note}");
    }
    let mut report = serde_json::json!({
        "bench": "ledger",
        "store": store,
        "accounts": args.accounts,
        "hot": args.hot,
        "batch": args.batch,
        "transfers": args.transfers,
        "seconds": measured.seconds,
        "transfers_per_second": per_second.round(),
    });
    if let (Some(p50), Some(p99)) = (p50, p99) {
        report["clients"] = args.clients.into();
        report["p50_commit_ms"] = p50.into();
        report["p99_commit_ms"] = p99.into();
    }
    if let Some(Baseline::NaivePostgres) = args.baseline {
        let baseline = super::naive::run(&args)?;
        let baseline_per_second = args.baseline_transfers as f64 / baseline.seconds;
        let ratio = per_second / baseline_per_second;
        println!(
            "  baseline naive-postgres ({} transfers, one transaction each, {} clients): {:.0} transfers/s",
            args.baseline_transfers, args.clients, baseline_per_second
        );
        println!("  ratio formica/baseline: {ratio:.1}x");
        report["baseline"] = "naive-postgres".into();
        report["baseline_transfers"] = args.baseline_transfers.into();
        report["baseline_transfers_per_second"] = baseline_per_second.round().into();
        report["ratio"] = ((ratio * 10.0).round() / 10.0).into();
    }
    if args.json {
        println!("{report}");
    }
    Ok(())
}
