//! The bank channel: how money comes in from bank cards and goes out to them. A top-up or
//! withdrawal is a movement the core holds open; the channel is asked to move the money and
//! answers later, and its answer settles the movement through the engine like any command.
//!
//! Formica ships a simulated bank so that the flows run end to end without a real one. It
//! answers after a configurable delay, and test cards tell it what to do (as card networks'
//! test numbers do): a card ending in `0002` is declined, one ending in `0003` never answers
//! (the movement fails at the bank timeout), any other succeeds.

use std::time::Duration;

use formica_core::wallet::{MovementKind, WalletCommand};
use formica_core::{Command, CommandError, Id, Money, ProductCommand, ProductRequest, Refusal};

use crate::{Engine, EngineError};

/// Last four digits of a test card the simulated bank declines.
pub const DECLINED_CARD_LAST4: &str = "0002";

/// Last four digits of a test card the simulated bank never answers for.
pub const SILENT_CARD_LAST4: &str = "0003";

/// What the bank is asked to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BankRequest {
    /// The movement waiting for the answer.
    pub movement_id: Id,
    /// In or out.
    pub kind: MovementKind,
    /// How much.
    pub amount: Money,
    /// The card's last four digits.
    pub card_last4: String,
}

/// A bank Formica can move money through. `send` must not block: the answer comes later, by
/// `settle`.
pub trait BankChannel: Send + Sync + std::fmt::Debug {
    /// Asks the bank to move the money.
    fn send(&self, request: BankRequest);
}

/// Settles a movement with the bank's answer (`None`: the money moved). Retries while the
/// engine is busy; a movement already settled (it timed out first) is no error.
pub async fn settle(engine: &Engine, movement_id: Id, failure: Option<String>) {
    let command = Command::Product(ProductRequest {
        command: ProductCommand::Wallet(WalletCommand::SettleMovement {
            movement_id,
            succeeded: failure.is_none(),
            failure,
        }),
        idempotency: None,
    });
    let mut backoff = Duration::from_millis(10);
    loop {
        match engine.submit(command.clone()).await {
            Ok(_)
            | Err(EngineError::Rejected(CommandError::Refused(Refusal::MovementNotFound))) => {
                return;
            }
            Err(EngineError::Stopped) => return,
            Err(error) => {
                tracing::warn!(%error, %movement_id, "bank answer not applied yet; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// The built-in simulated bank.
#[derive(Debug)]
pub struct SimulatedBank {
    engine: Engine,
    delay: Duration,
    runtime: tokio::runtime::Handle,
}

impl SimulatedBank {
    /// A bank that answers after `delay`, on `runtime`.
    pub fn new(engine: Engine, delay: Duration, runtime: tokio::runtime::Handle) -> Self {
        SimulatedBank {
            engine,
            delay,
            runtime,
        }
    }
}

impl BankChannel for SimulatedBank {
    fn send(&self, request: BankRequest) {
        let failure = match request.card_last4.as_str() {
            SILENT_CARD_LAST4 => return,
            DECLINED_CARD_LAST4 => Some("declined by the bank".to_owned()),
            _ => None,
        };
        let engine = self.engine.clone();
        let delay = self.delay;
        self.runtime.spawn(async move {
            tokio::time::sleep(delay).await;
            settle(&engine, request.movement_id, failure).await;
        });
    }
}
