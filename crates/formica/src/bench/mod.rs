//! `formica bench`: each workload is one module. Results print as a human summary, and with
//! `--json` the last line of standard output is one JSON object.

mod durable;
mod ledger;
mod memory;
mod naive;
mod workload;

use clap::Subcommand;
use indicatif::{ProgressBar, ProgressStyle};

/// The benchmark workloads.
#[derive(Debug, Subcommand)]
pub enum Workload {
    /// Transfers between accounts, uniform or all into one hot merchant account.
    Ledger(ledger::Args),
}

/// Runs one workload.
pub fn run(workload: Workload) -> anyhow::Result<()> {
    match workload {
        Workload::Ledger(args) => ledger::run(args),
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

/// A database of its own on a PostgreSQL server, dropped when the run ends.
struct FreshDatabase {
    /// Connection URL of the new database.
    url: String,
    server_url: String,
    name: String,
}

impl FreshDatabase {
    fn create(server_url: &str, prefix: &str) -> anyhow::Result<Self> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .subsec_nanos();
        let name = format!("{prefix}_{}_{nanos}", std::process::id());
        let mut server = postgres::Client::connect(server_url, postgres::NoTls)?;
        server.batch_execute(&format!("CREATE DATABASE {name}"))?;
        Ok(FreshDatabase {
            url: with_database(server_url, &name),
            server_url: server_url.to_owned(),
            name,
        })
    }
}

impl Drop for FreshDatabase {
    fn drop(&mut self) {
        let dropped =
            postgres::Client::connect(&self.server_url, postgres::NoTls).and_then(|mut server| {
                server.batch_execute(&format!(
                    "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                    self.name
                ))
            });
        if let Err(error) = dropped {
            eprintln!(
                "could not drop the benchmark database {}: {error}",
                self.name
            );
        }
    }
}

/// The same PostgreSQL URL naming another database.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, format!("?{query}")),
        None => (url, String::new()),
    };
    let authority_start = base.find("://").map_or(0, |at| at + 3);
    let server = match base[authority_start..].find('/') {
        Some(slash) => &base[..authority_start + slash],
        None => base,
    };
    format!("{server}/{name}{query}")
}
