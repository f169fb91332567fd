//! A database of its own on a PostgreSQL server, for benchmarks and tests: created with a
//! unique name, dropped (connections and all) when the value goes away.

use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::StoreError;

/// A PostgreSQL database that lives as long as this value.
#[derive(Debug)]
pub struct TemporaryDatabase {
    server_url: String,
    name: String,
    /// Connection URL of the new database.
    pub url: String,
}

impl TemporaryDatabase {
    /// Creates `PREFIX_<random>` on the server `server_url` names.
    pub fn create(server_url: &str, prefix: &str) -> Result<Self, StoreError> {
        let name = format!("{prefix}_{:016x}", unique_u64());
        let mut client = ::postgres::Client::connect(server_url, ::postgres::NoTls)?;
        client.batch_execute(&format!("CREATE DATABASE {name}"))?;
        Ok(TemporaryDatabase {
            server_url: server_url.to_owned(),
            url: with_database(server_url, &name),
            name,
        })
    }

    /// The database's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for TemporaryDatabase {
    fn drop(&mut self) {
        // No panic here: this may run while a failed test unwinds, and a leftover database is
        // only litter.
        let dropped = ::postgres::Client::connect(&self.server_url, ::postgres::NoTls).and_then(
            |mut client| {
                client.batch_execute(&format!(
                    "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                    self.name
                ))
            },
        );
        if let Err(error) = dropped {
            eprintln!(
                "could not drop the temporary database {}: {error}",
                self.name
            );
        }
    }
}

/// `url` with its database name replaced by `name` (URLs only, not key=value strings).
pub fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, format!("?{query}")),
        None => (url, String::new()),
    };
    let authority = base.find("://").map_or(0, |at| at + 3);
    let server = match base[authority..].find('/') {
        Some(slash) => &base[..authority + slash],
        None => base,
    };
    format!("{server}/{name}{query}")
}

/// Different on every call, in every process.
fn unique_u64() -> u64 {
    static CALLS: AtomicU64 = AtomicU64::new(0);
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(CALLS.fetch_add(1, Ordering::Relaxed));
    hasher.write_u32(std::process::id());
    hasher.finish()
}
