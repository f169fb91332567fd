//! `formica serve`: the engine behind HTTP. A SIGINT or SIGTERM stops taking connections,
//! lets the writer finish what is queued and write its last checkpoint, then exits.

use std::io::Write;
use std::net::SocketAddr;

use formica_api::{AppState, router};
use formica_engine::{Config, Engine};
use formica_store::Store;

use crate::location::StoreArgs;

/// Options of `formica serve`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Address to listen on (port 0 picks a free one; the address is printed).
    #[arg(long, env = "FORMICA_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    #[command(flatten)]
    store: StoreArgs,
}

/// Serves until a shutdown signal.
pub fn run(args: Args) -> anyhow::Result<()> {
    let engine = Engine::start(Store::open(&args.store.location())?, Config::default())?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let served = runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(args.listen).await?;
        say(&format!("listening on http://{}", listener.local_addr()?));
        let app = router(AppState {
            engine: engine.clone(),
        });
        axum::serve(listener, app)
            .with_graceful_shutdown(shutdown_signal())
            .await?;
        anyhow::Ok(())
    });
    // The writer finishes the batch in flight and what is queued, and checkpoints.
    engine.shutdown();
    served?;
    say("stopped");
    Ok(())
}

/// A line for whoever started the server. A closed standard output (the parent went away)
/// is no reason to fail a server that stopped cleanly.
fn say(line: &str) {
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
