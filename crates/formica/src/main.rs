//! The `formica` command: serve, demo, benchmarks and administration.

mod admin;
mod bench;
mod child;
mod client;
mod config;
mod crash_load;
mod crash_loop;
mod demo;
mod location;
mod serve;
mod sim;
mod traffic;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

/// jemalloc, configured for transparent huge pages in `.cargo/config.toml`.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Formica: a self-hosted payment platform.
#[derive(Debug, Parser)]
#[command(name = "formica", version, about)]
struct Cli {
    /// A TOML file of `serve`/`demo` options (`listen = "0.0.0.0:8080"`); the command line and
    /// the environment win over it.
    #[arg(long, global = true, env = "FORMICA_CONFIG")]
    config: Option<std::path::PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the REST API (SQLite in ./formica-data unless told otherwise).
    Serve(serve::Args),
    /// Serve with a demo world: people with money, a shop, trades in every state.
    Demo(demo::DemoArgs),
    /// Measure Formica's speed with workloads that are code, not folklore.
    Bench {
        #[command(subcommand)]
        workload: bench::Workload,
    },
    /// Operate on a Formica database.
    Admin {
        #[command(subcommand)]
        task: admin::Task,
    },
    /// Simulate the engine under faults and crashes, deterministically from a seed, and
    /// check after every step that nothing was lost, invented or answered twice.
    Sim(sim::Args),
    /// Drive the engine with payments and print each acknowledged one (for crash tests).
    #[command(hide = true)]
    CrashLoad(crash_load::Args),
    /// Kill `formica serve` with SIGKILL under HTTP load, again and again, and check after
    /// each restart that nothing acknowledged was lost or applied twice.
    CrashLoop(crash_loop::Args),
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("FORMICA_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args: Vec<String> = std::env::args().collect();
    let mut command = Cli::command();
    if let Some(file) = config::path(&args) {
        command = config::apply(command, &file)?;
    }
    let cli = Cli::from_arg_matches(&command.get_matches_from(args))?;
    match cli.command {
        Command::Serve(args) => serve::run(args),
        Command::Demo(args) => demo::run(args),
        Command::Bench { workload } => bench::run(workload),
        Command::Admin { task } => admin::run(task),
        Command::Sim(args) => sim::run(args),
        Command::CrashLoad(args) => crash_load::run(args),
        Command::CrashLoop(args) => crash_loop::run(args),
    }
}
