//! `--data-dir DIR | --database-url URL`: where the books are, for every command that opens
//! them.

use std::path::PathBuf;

use formica_store::Location;

/// Where the books are kept.
#[derive(Clone, Debug, clap::Args)]
pub struct StoreArgs {
    /// Directory of the embedded SQLite database.
    #[arg(long, env = "FORMICA_DATA_DIR", conflicts_with = "database_url")]
    pub data_dir: Option<PathBuf>,
    /// PostgreSQL URL, for example postgres://user@host:5432/formica.
    #[arg(long, env = "FORMICA_DATABASE_URL")]
    pub database_url: Option<String>,
}

impl StoreArgs {
    /// The location, defaulting to `./formica-data`.
    pub fn location(&self) -> Location {
        match (&self.database_url, &self.data_dir) {
            (Some(url), _) => Location::Postgres(url.clone()),
            (None, Some(dir)) => Location::Sqlite(dir.clone()),
            (None, None) => Location::Sqlite(PathBuf::from("formica-data")),
        }
    }
}
