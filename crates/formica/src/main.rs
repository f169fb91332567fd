//! The `formica` command: benchmarks today; serve, demo and admin as the layers arrive.

mod bench;

use clap::{Parser, Subcommand};

/// jemalloc, configured for transparent huge pages in `.cargo/config.toml`.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Formica: a self-hosted payment platform.
#[derive(Debug, Parser)]
#[command(name = "formica", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Measure Formica's speed with workloads that are code, not folklore.
    Bench {
        #[command(subcommand)]
        workload: bench::Workload,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Bench { workload } => bench::run(workload),
    }
}
