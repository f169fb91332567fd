//! Test support shared by the crates' tests: fresh stores on either database.
//!
//! PostgreSQL tests read `DATABASE_URL`; without it they say why and pass, unless
//! `FORMICA_REQUIRE_POSTGRES=1` (CI) makes a skip a failure.

use formica_store::{Location, Store, TemporaryDatabase};

/// The two databases Formica runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// The embedded default.
    Sqlite,
    /// The server database, at `DATABASE_URL`.
    Postgres,
}

impl Backend {
    /// Whether this backend can run here. PostgreSQL needs `DATABASE_URL`; without it the test
    /// says why and passes, unless CI demands PostgreSQL.
    pub fn available(self) -> bool {
        match self {
            Backend::Sqlite => true,
            Backend::Postgres => {
                if std::env::var_os("DATABASE_URL").is_some() {
                    return true;
                }
                let required = std::env::var("FORMICA_REQUIRE_POSTGRES").is_ok_and(|v| v == "1");
                assert!(
                    !required,
                    "FORMICA_REQUIRE_POSTGRES=1 but DATABASE_URL is unset: PostgreSQL tests cannot run"
                );
                eprintln!(
                    "skipped: DATABASE_URL is unset (e.g. postgres://postgres@127.0.0.1:5432/postgres); \
                     set it to run the PostgreSQL tests"
                );
                false
            }
        }
    }

    /// An empty place for a store, removed when the returned value drops.
    pub fn fresh(self) -> TestDb {
        match self {
            Backend::Sqlite => {
                let dir = tempfile::TempDir::new().expect("a temporary directory");
                TestDb {
                    location: Location::Sqlite(dir.path().to_path_buf()),
                    place: Place::Sqlite(dir),
                }
            }
            Backend::Postgres => {
                let url = std::env::var("DATABASE_URL").expect("available() checked DATABASE_URL");
                let database = TemporaryDatabase::create(&url, "formica_test")
                    .expect("DATABASE_URL names a reachable PostgreSQL server");
                TestDb {
                    location: Location::Postgres(database.url.clone()),
                    place: Place::Postgres(database),
                }
            }
        }
    }
}

/// A fresh store's location, and what keeps it alive.
#[derive(Debug)]
pub struct TestDb {
    /// Where the store is.
    pub location: Location,
    place: Place,
}

#[derive(Debug)]
enum Place {
    Sqlite(tempfile::TempDir),
    Postgres(TemporaryDatabase),
}

impl TestDb {
    /// Opens the store.
    pub fn open(&self) -> Store {
        Store::open(&self.location).expect("open the store")
    }

    /// Runs SQL behind the store's back (to tamper with it or to fake a future schema).
    pub fn execute(&self, sql: &str) {
        match &self.place {
            Place::Sqlite(dir) => sqlite(dir).execute_batch(sql).expect("execute"),
            Place::Postgres(_) => self.client().batch_execute(sql).expect("execute"),
        }
    }

    /// Runs SQL on the tables checkpoints write: SQLite's balances file, PostgreSQL's
    /// database.
    pub fn execute_on_balances(&self, sql: &str) {
        match &self.place {
            Place::Sqlite(dir) => {
                rusqlite::Connection::open(Location::sqlite_balances_file(dir.path()))
                    .expect("open the balances file")
                    .execute_batch(sql)
                    .expect("execute")
            }
            Place::Postgres(_) => self.client().batch_execute(sql).expect("execute"),
        }
    }

    /// Runs a query that answers one integer.
    pub fn query_i64(&self, sql: &str) -> i64 {
        match &self.place {
            Place::Sqlite(dir) => sqlite(dir)
                .query_row(sql, [], |row| row.get(0))
                .expect("query"),
            Place::Postgres(_) => self.client().query_one(sql, &[]).expect("query").get(0),
        }
    }

    /// A PostgreSQL client on the test database.
    pub fn client(&self) -> postgres::Client {
        match &self.place {
            Place::Postgres(database) => {
                postgres::Client::connect(&database.url, postgres::NoTls).expect("connect")
            }
            Place::Sqlite(_) => panic!("a SQL client for PostgreSQL only"),
        }
    }
}

fn sqlite(dir: &tempfile::TempDir) -> rusqlite::Connection {
    rusqlite::Connection::open(Location::sqlite_file(dir.path())).expect("open the SQLite file")
}
