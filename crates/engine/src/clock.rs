//! Where batch timestamps come from: the system clock, or a manual one that tests move.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// The engine's clock, in nanoseconds since the Unix epoch.
#[derive(Clone, Debug)]
pub enum Clock {
    /// The machine's clock.
    System,
    /// A clock that only moves when told to (tests, simulations, benchmarks).
    Manual(Arc<AtomicU64>),
}

impl Clock {
    /// A manual clock starting at `nanos`.
    pub fn manual(nanos: u64) -> Clock {
        Clock::Manual(Arc::new(AtomicU64::new(nanos)))
    }

    /// The time now.
    pub fn now(&self) -> u64 {
        match self {
            Clock::System => {
                let since_epoch = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap_or_default();
                u64::try_from(since_epoch.as_nanos()).unwrap_or(u64::MAX)
            }
            Clock::Manual(nanos) => nanos.load(Ordering::SeqCst),
        }
    }

    /// Moves a manual clock forward; the system clock cannot be moved.
    pub fn advance(&self, nanos: u64) {
        match self {
            Clock::System => panic!("the system clock cannot be moved"),
            Clock::Manual(now) => {
                now.fetch_add(nanos, Ordering::SeqCst);
            }
        }
    }

    /// Whether timers must be run by `tick` rather than by waiting for the time to pass.
    pub(crate) fn is_manual(&self) -> bool {
        matches!(self, Clock::Manual(_))
    }
}
