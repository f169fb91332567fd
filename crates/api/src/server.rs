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
    /// The address people and shops reach the server at (`https://pay.example.com`), for the
    /// links in QR codes and statements; None takes it from each request's `Host`.
    pub public_url: Option<String>,
    /// Requests in flight and how long one may take.
    pub limits: crate::Limits,
}

/// A running server (the HTTP listener is the caller's).
#[derive(Debug)]
pub struct Server {
    /// What the handlers share.
    pub state: AppState,
    webhooks: WebhookWorker,
    notify: crate::gateway::notify::NotifyWorker,
    bank_loop: tokio::task::JoinHandle<()>,
    finish_loop: tokio::task::JoinHandle<()>,
}

/// How often open bank movements made by timers (settlements) are looked for.
const BANK_POLL: Duration = Duration::from_secs(1);

impl Server {
    /// Starts the engine and the workers. Call inside a tokio runtime (the simulated bank
    /// answers on it). Bank movements still waiting from a previous run are sent again.
    pub async fn start(config: ServerConfig) -> Result<Server, StoreError> {
        let clock = config.engine.clock.clone();
        let location = config.location.clone();
        // The stores' clients block (PostgreSQL's runs a runtime of its own): off the async
        // threads.
        let offset = config.engine.settings.day_offset_seconds;
        let (engine, webhooks, notify) = tokio::task::spawn_blocking(move || {
            let store = Store::open(&location)?;
            let engine = Engine::start(store, config.engine)?;
            let webhooks = WebhookWorker::start(location.clone(), clock.clone())?;
            let notify = crate::gateway::notify::NotifyWorker::start(location, clock, offset)?;
            Ok::<_, StoreError>((engine, webhooks, notify))
        })
        .await
        .expect("starting the engine does not panic")?;
        let bank = Arc::new(SimulatedBank::new(
            engine.clone(),
            config.bank_delay,
            tokio::runtime::Handle::current(),
        ));
        let state = AppState::new(engine, config.location, bank, config.private_webhooks)
            .with_public_url(config.public_url)
            .with_limits(config.limits);
        send_open_movements(&state).await;
        // Settlements are made by the core's timers, not by a request: this loop sends them
        // (and anything else open) to the bank.
        let looping = state.clone();
        let bank_loop = tokio::spawn(async move {
            loop {
                tokio::time::sleep(BANK_POLL).await;
                send_open_movements(&looping).await;
            }
        });
        let sweeping = state.clone();
        let finish_loop = tokio::spawn(async move {
            loop {
                tokio::time::sleep(BANK_POLL).await;
                finish_refundable_trades(&sweeping).await;
            }
        });
        Ok(Server {
            state,
            webhooks,
            notify,
            bank_loop,
            finish_loop,
        })
    }

    /// The limits it runs with (`listen::serve` takes the connection limits from here).
    pub fn limits(&self) -> crate::Limits {
        self.state.limits()
    }

    /// The API's routes.
    pub fn router(&self) -> Router {
        router(self.state.clone())
    }

    /// The API's routes with `pages` beside them.
    pub fn router_with(&self, pages: Router<AppState>) -> Router {
        crate::router_with(self.state.clone(), pages)
    }

    /// The engine.
    pub fn engine(&self) -> &Engine {
        self.state.engine()
    }

    /// Stops the workers and the engine: the batch in flight and the queue are finished and
    /// the last checkpoint written.
    pub fn shutdown(self) {
        let Server {
            state,
            webhooks,
            notify,
            bank_loop,
            finish_loop,
        } = self;
        bank_loop.abort();
        finish_loop.abort();
        drop(webhooks);
        drop(notify);
        let engine = state.engine().clone();
        drop(state);
        engine.shutdown();
    }
}

/// Paid merchant trades finished per sweep.
const FINISH_MAX: u32 = 500;

/// Finishes paid merchant trades whose refund window is over (they live in the store, not in
/// the writer's memory, so a sweep finds them rather than a timer).
async fn finish_refundable_trades(state: &AppState) {
    let window = state.engine().settings().refund_window_ns;
    let Some(before) = state.now().checked_sub(window) else {
        return;
    };
    let due = state
        .pool()
        .read(move |sql| formica_store::merchant::due_to_finish(sql, before, FINISH_MAX))
        .await;
    let due = match due {
        Ok(due) => due,
        Err(error) => {
            tracing::warn!(?error, "finishing paid trades: not read");
            return;
        }
    };
    // Submitted together, so that they share batches rather than wait for one each.
    let mut finishing = tokio::task::JoinSet::new();
    for (merchant_id, trade_id) in due {
        let state = state.clone();
        finishing.spawn(async move {
            let command = formica_core::ProductCommand::Merchant(
                formica_core::merchant::MerchantCommand::Finish {
                    merchant_id,
                    trade_id,
                },
            );
            // A trade refunded in full meanwhile is no longer due: its refusal is no error.
            let _ =
                crate::idempotency::submit(&state, merchant_id, None, String::new(), command).await;
        });
    }
    while finishing.join_next().await.is_some() {}
}

/// Sends every open bank movement this process has not sent yet.
async fn send_open_movements(state: &AppState) {
    let open = state
        .pool()
        .read(|sql| {
            let movements = formica_store::wallet::open_movements(sql)?;
            let mut requests = Vec::with_capacity(movements.len());
            for movement in movements {
                // A merchant's settlement card belongs to the person who runs it.
                let last4 = formica_store::merchant::card_last4(sql, movement.card_id)?;
                requests.push(BankRequest {
                    movement_id: movement.id,
                    kind: movement.kind,
                    amount: movement.amount,
                    card_last4: last4.unwrap_or_default(),
                });
            }
            Ok(requests)
        })
        .await;
    match open {
        Ok(requests) => {
            let ids = requests.iter().map(|r| r.movement_id).collect();
            state.keep_sent(&ids);
            for request in requests {
                state.send_to_bank(request);
            }
        }
        Err(error) => tracing::warn!(?error, "open bank movements not sent"),
    }
}
