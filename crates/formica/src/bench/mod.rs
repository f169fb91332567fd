//! `formica bench`: each workload is one module. Results print as a human summary, and with
//! `--json` the last line of standard output is one JSON object.

mod durable;
pub(crate) mod fund;
mod gateway;
mod ledger;
mod memory;
mod naive;
mod payments;
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
}

/// Runs one workload.
pub fn run(workload: Workload) -> anyhow::Result<()> {
    match workload {
        Workload::Ledger(args) => ledger::run(args),
        Workload::Payments(args) => payments::run(args),
        Workload::Gateway(args) => gateway::run(args),
        Workload::FundAccrual(args) => fund::run(args),
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
