//! `formica serve`: the REST API over the engine. A SIGINT or SIGTERM stops taking
//! connections, lets the writer finish what is queued and write its last checkpoint, then
//! exits.

use std::io::Write;
use std::net::SocketAddr;
use std::time::Duration;

use formica_api::{Server, ServerConfig};
use formica_core::Settings;
use formica_engine::Config;

use crate::location::StoreArgs;

/// Options of `formica serve` (each also an environment variable).
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Address to listen on (port 0 picks a free one; the address is printed).
    #[arg(long, env = "FORMICA_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// The address people and shops reach the server at (`https://pay.example.com`), used in
    /// QR codes and links; by default each request's Host.
    #[arg(long, env = "FORMICA_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Requests handled at once; more are answered 503 `overloaded` at once.
    #[arg(long, env = "FORMICA_MAX_IN_FLIGHT", default_value_t = formica_api::IN_FLIGHT_DEFAULT as u64,
        value_parser = clap::value_parser!(u64).range(1..))]
    pub max_in_flight: u64,
    /// Seconds a request may take, its body's arrival included; then 408 `request_timeout`.
    #[arg(long, env = "FORMICA_REQUEST_TIMEOUT_SECONDS", default_value_t = 30,
        value_parser = clap::value_parser!(u64).range(1..))]
    pub request_timeout_seconds: u64,
    /// Connections open at once; one more is answered 503 `overloaded` and closed.
    #[arg(long, env = "FORMICA_MAX_CONNECTIONS", default_value_t = formica_api::CONNECTIONS_DEFAULT as u64,
        value_parser = clap::value_parser!(u64).range(1..))]
    pub max_connections: u64,
    /// Seconds a client may take to send a request's head before its connection is closed.
    #[arg(long, env = "FORMICA_HEADER_TIMEOUT_SECONDS", default_value_t = 10,
        value_parser = clap::value_parser!(u64).range(1..))]
    pub header_timeout_seconds: u64,
    #[command(flatten)]
    pub store: StoreArgs,
    #[command(flatten)]
    pub rules: Rules,
}

/// The product rules an operator may change.
#[derive(Clone, Debug, clap::Args)]
pub struct Rules {
    /// Minutes an unpaid trade waits for payment before it closes.
    #[arg(long, env = "FORMICA_PAY_TIMEOUT_MINUTES", default_value_t = 15)]
    pub pay_timeout_minutes: u64,
    /// Days after shipping until receipt is confirmed on the buyer's behalf.
    #[arg(long, env = "FORMICA_CONFIRM_TIMEOUT_DAYS", default_value_t = 10)]
    pub confirm_timeout_days: u64,
    /// Daily outgoing limit of unverified people, in major units of each currency.
    #[arg(long, env = "FORMICA_UNVERIFIED_DAILY_LIMIT", default_value_t = 5_000)]
    pub unverified_daily_limit: u64,
    /// Daily outgoing limit of verified people, in major units of each currency.
    #[arg(long, env = "FORMICA_VERIFIED_DAILY_LIMIT", default_value_t = 200_000)]
    pub verified_daily_limit: u64,
    /// Milliseconds the simulated bank takes to answer a top-up or withdrawal.
    #[arg(long, env = "FORMICA_BANK_DELAY_MS", default_value_t = 1_000)]
    pub bank_delay_ms: u64,
    /// Let webhook endpoints be loopback or private addresses (a closed network, tests).
    #[arg(long, env = "FORMICA_WEBHOOKS_ALLOW_PRIVATE")]
    pub webhooks_allow_private: bool,
    /// Days after which a merchant's takings are paid out to its card (1 = T+1).
    #[arg(long, env = "FORMICA_SETTLE_DELAY_DAYS", default_value_t = 1,
        value_parser = clap::value_parser!(u32).range(1..=30))]
    pub settle_delay_days: u32,
    /// Days a paid merchant trade can be refunded before it is finished.
    #[arg(long, env = "FORMICA_REFUND_WINDOW_DAYS", default_value_t = 90)]
    pub refund_window_days: u64,
    /// Settled transfers the writer keeps in memory (beyond twice the open ones) before it
    /// sweeps them out; the store has them all. Bounds the writer's memory.
    #[arg(long, env = "FORMICA_TRANSFER_CACHE_SLACK",
        default_value_t = formica_core::products::TRANSFER_CACHE_SLACK as u64,
        value_parser = clap::value_parser!(u64).range(1..=(1 << 30)))]
    pub transfer_cache_slack: u64,
}

impl Rules {
    /// The engine's configuration with these rules.
    pub fn engine_config(&self) -> Config {
        const MINUTE: u64 = 60_000_000_000;
        Config {
            settings: Settings {
                pay_timeout_ns: self.pay_timeout_minutes.saturating_mul(MINUTE),
                confirm_timeout_ns: self.confirm_timeout_days.saturating_mul(24 * 60 * MINUTE),
                unverified_daily_major: self.unverified_daily_limit,
                verified_daily_major: self.verified_daily_limit,
                settle_delay_days: self.settle_delay_days,
                refund_window_ns: self.refund_window_days.saturating_mul(24 * 60 * MINUTE),
                transfer_cache_slack: usize::try_from(self.transfer_cache_slack)
                    .unwrap_or(usize::MAX),
                ..Settings::default()
            },
            ..Config::default()
        }
    }
}

/// Serves until a shutdown signal.
pub fn run(args: Args) -> anyhow::Result<()> {
    serve(args, |_, _| Ok(()))
}

/// Something to do once the server answers and before it is announced (the demo seeds its
/// world here, through the API at the URL given). Runs on a blocking thread.
pub trait Prepare: FnOnce(&Server, &str) -> anyhow::Result<()> {}

impl<F: FnOnce(&Server, &str) -> anyhow::Result<()>> Prepare for F {}

/// Starts the server, runs `prepare`, prints the address, serves until a signal.
pub fn serve(args: Args, prepare: impl Prepare) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let server = runtime.block_on(Server::start(ServerConfig {
        location: args.store.location(),
        engine: args.rules.engine_config(),
        bank_delay: Duration::from_millis(args.rules.bank_delay_ms),
        private_webhooks: args.rules.webhooks_allow_private,
        public_url: args.public_url.clone(),
        limits: formica_api::Limits {
            in_flight: usize::try_from(args.max_in_flight).unwrap_or(usize::MAX),
            request_timeout: Duration::from_secs(args.request_timeout_seconds),
            connections: usize::try_from(args.max_connections).unwrap_or(usize::MAX),
            header_timeout: Duration::from_secs(args.header_timeout_seconds),
        },
    }))?;
    let served = runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(args.listen).await?;
        let url = format!("http://{}", listener.local_addr()?);
        let serving = tokio::spawn(formica_api::listen::serve(
            listener,
            server.router_with(formica_web::router()),
            server.limits(),
            shutdown_signal(),
        ));
        tokio::task::block_in_place(|| prepare(&server, &url))?;
        say(&format!("listening on {url}"));
        serving.await??;
        anyhow::Ok(())
    });
    // The writer finishes the batch in flight and what is queued, and checkpoints.
    server.shutdown();
    served?;
    say("stopped");
    Ok(())
}

/// A line for whoever started the server. A closed standard output (the parent went away)
/// is no reason to fail a server that stopped cleanly.
pub fn say(line: &str) {
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "{line}");
    let _ = stdout.flush();
}

async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        () = interrupt => {}
        () = terminate => {}
    }
}
