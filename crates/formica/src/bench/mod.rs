//! `formica bench`: each workload is one module. Results print as a human summary, and with
//! `--json` the last line of standard output is one JSON object.

mod durable;
pub(crate) mod fund;
mod gateway;
mod ledger;
mod memory;
mod naive;
mod payments;
mod soak;
mod workload;

use clap::Subcommand;
use indicatif::{ProgressBar, ProgressStyle};

/// The benchmark workloads.
#[derive(Debug, Subcommand)]
pub enum Workload {
    /// Transfers between accounts, uniform or all into one hot merchant account.
    Ledger(ledger::Args),
    /// Wallet transfers through the products, under many concurrent callers.
    Payments(payments::Args),
    /// alipay.trade.pay over HTTP at the open gateway, signed as the SDKs sign.
    Gateway(gateway::Args),
    /// A day's fund earnings credited to every holder while payments run.
    FundAccrual(fund::Args),
    /// Mixed API traffic at a fixed rate for minutes or hours against `formica serve`,
    /// watching its latency and its memory.
    Soak(soak::Args),
}

/// Runs one workload.
pub fn run(workload: Workload) -> anyhow::Result<()> {
    match workload {
        Workload::Ledger(args) => ledger::run(args),
        Workload::Payments(args) => payments::run(args),
        Workload::Gateway(args) => gateway::run(args),
        Workload::FundAccrual(args) => fund::run(args),
        Workload::Soak(args) => soak::run(args),
    }
}

/// A progress bar on standard error (indicatif hides it when that is not a terminal).
fn progress(total: u64, unit: &str) -> ProgressBar {
    let bar = ProgressBar::new(total);
    let template = format!(
        "{{elapsed_precise}} [{{bar:40}}] {{human_pos}}/{{human_len}} {unit} ({{per_sec}})"
    );
    bar.set_style(
        ProgressStyle::with_template(&template)
            .expect("the template is valid")
            .progress_chars("=> "),
    );
    bar
}

/// Waits for every client thread and gathers their request latencies (microseconds).
fn latencies_of(
    clients: Vec<std::thread::ScopedJoinHandle<'_, anyhow::Result<Vec<u64>>>>,
) -> anyhow::Result<Vec<u64>> {
    let mut all = Vec::new();
    for client in clients {
        all.extend(client.join().expect("a client thread does not panic")?);
    }
    Ok(all)
}

/// The `quantile` (0 to 1) of sorted latencies in microseconds, in milliseconds (0 if none).
fn percentile_ms(sorted_us: &[u64], quantile: f64) -> f64 {
    let Some(last) = sorted_us.len().checked_sub(1) else {
        return 0.0;
    };
    let index = ((last as f64) * quantile).round() as usize;
    sorted_us[index] as f64 / 1000.0
}
