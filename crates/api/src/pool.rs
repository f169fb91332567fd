//! Connections for the edge's reads and plain writes (credentials, sessions, cards, webhooks),
//! run off the async threads. Money never moves here: it moves through the engine.

use std::sync::{Arc, Mutex};

use formica_store::sql::Sql;
use formica_store::{Location, Store, StoreError};

use crate::error::ApiError;

/// Connections open at once: more callers wait for one (a PostgreSQL server takes about 100
/// by default, and the engine and the webhook worker need theirs).
const CONNECTIONS_MAX: usize = 32;

/// A pool of store connections.
#[derive(Clone, Debug)]
pub struct Pool {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    location: Location,
    idle: Mutex<Vec<Store>>,
    /// One permit per connection in use.
    permits: Arc<tokio::sync::Semaphore>,
}

impl Pool {
    /// A pool of connections to the store at `location`.
    pub fn new(location: Location) -> Self {
        Pool {
            inner: Arc::new(Inner {
                location,
                idle: Mutex::new(Vec::new()),
                permits: Arc::new(tokio::sync::Semaphore::new(CONNECTIONS_MAX)),
            }),
        }
    }

    /// Runs `work` in one read transaction.
    pub async fn read<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut dyn Sql) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, ApiError> {
        self.with_store(move |store| store.read_sql(work)).await
    }

    /// Runs `work` in one write transaction.
    pub async fn write<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut dyn Sql) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, ApiError> {
        self.with_store(move |store| store.write_sql(work)).await
    }

    /// Runs `work` on a connection, on a blocking thread.
    pub async fn with_store<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Store) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, ApiError> {
        let inner = Arc::clone(&self.inner);
        let permit = Arc::clone(&inner.permits)
            .acquire_owned()
            .await
            .expect("the pool's semaphore is never closed");
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let taken = inner
                .idle
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .pop();
            let mut store = match taken {
                Some(store) => store,
                None => Store::open_reader(&inner.location)?,
            };
            let result = work(&mut store);
            // A connection that failed may be broken; a new one replaces it.
            if result.is_ok() || matches!(result, Err(StoreError::Conflict(_))) {
                let mut idle = inner
                    .idle
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                idle.push(store);
            }
            result
        })
        .await
        .map_err(|error| ApiError::internal(&error))?
        .map_err(ApiError::from)
    }
}
