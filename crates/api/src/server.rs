//! A whole Formica server put together: the engine over the store, the simulated bank, the
//! webhook worker and the HTTP routes. `formica serve`, `formica demo` and the API tests all
//! start it the same way.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use formica_engine::bank::{BankRequest, SimulatedBank};
use formica_engine::webhooks::WebhookWorker;
use formica_engine::{Config, Engine};
use formica_store::{Location, Store, StoreError};

use crate::{AppState, router};

/// How a server runs.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// Where the books are.
    pub location: Location,
    /// The engine's settings (clock, batch bounds, product rules).
    pub engine: Config,
    /// How long the simulated bank takes to answer.
    pub bank_delay: Duration,
    /// Whether webhook endpoints may be private or loopback addresses.
    pub private_webhooks: bool,
}

/// A running server (the HTTP listener is the caller's).
#[derive(Debug)]
pub struct Server {
    /// What the handlers share.
    pub state: AppState,
    webhooks: WebhookWorker,
}

impl Server {
    /// Starts the engine and the workers. Call inside a tokio runtime (the simulated bank
    /// answers on it). Bank movements still waiting from a previous run are sent again.
    pub async fn start(config: ServerConfig) -> Result<Server, StoreError> {
        let clock = config.engine.clock.clone();
        let location = config.location.clone();
        // The stores' clients block (PostgreSQL's runs a runtime of its own): off the async
        // threads.
        let (engine, webhooks) = tokio::task::spawn_blocking(move || {
            let store = Store::open(&location)?;
            let engine = Engine::start(store, config.engine)?;
            let webhooks = WebhookWorker::start(location, clock)?;
            Ok::<_, StoreError>((engine, webhooks))
        })
        .await
        .expect("starting the engine does not panic")?;
        let bank = Arc::new(SimulatedBank::new(
            engine.clone(),
            config.bank_delay,
            tokio::runtime::Handle::current(),
        ));
        let state = AppState::new(engine, config.location, bank, config.private_webhooks);
        let server = Server { state, webhooks };
        server.resend_open_movements().await;
        Ok(server)
    }

    /// The routes.
    pub fn router(&self) -> Router {
        router(self.state.clone())
    }

    /// The engine.
    pub fn engine(&self) -> &Engine {
        self.state.engine()
    }

    /// Stops the workers and the engine: the batch in flight and the queue are finished and
    /// the last checkpoint written.
    pub fn shutdown(self) {
        let Server { state, webhooks } = self;
        drop(webhooks);
        let engine = state.engine().clone();
        drop(state);
        engine.shutdown();
    }

    async fn resend_open_movements(&self) {
        let open = self
            .state
            .pool()
            .read(|sql| {
                let movements = formica_store::wallet::open_movements(sql)?;
                let mut requests = Vec::with_capacity(movements.len());
                for movement in movements {
                    let card =
                        formica_store::people::card(sql, movement.user_id, movement.card_id)?;
                    requests.push(BankRequest {
                        movement_id: movement.id,
                        kind: movement.kind,
                        amount: movement.amount,
                        card_last4: card.map(|c| c.last4).unwrap_or_default(),
                    });
                }
                Ok(requests)
            })
            .await;
        match open {
            Ok(requests) => {
                for request in requests {
                    self.state.bank().send(request);
                }
            }
            Err(error) => tracing::warn!(?error, "open bank movements not sent again"),
        }
    }
}
