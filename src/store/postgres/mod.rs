//! The PostgreSQL backend: several engines on one database, one of them leading through
//! the lease row (`leader`). The store's portable SQL runs on it as it is; what differs is
//! here: the connection pool, the thread that commits the engine's batches (`committer`),
//! the migrations, and the dialect (`NOW_MS`, row locks in `Backend::row_lock`).

pub(super) mod batch;
pub(super) mod committer;
pub(super) mod inbox_signals;

use sqlx::any::AnyPoolOptions;
use sqlx::AnyPool;

use super::Result;

pub(super) static MIGRATE: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// Milliseconds now, by the database's clock (`clock_timestamp()`, not the transaction's
/// start).
pub(super) const NOW_MS: &str = "(EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::BIGINT";

/// Connect to `url` and migrate.
pub(super) async fn open(url: &str) -> Result<AnyPool> {
    let pool = connect(url).await?;
    MIGRATE.run(&pool).await?;
    Ok(pool)
}

pub(super) async fn connect(url: &str) -> Result<AnyPool> {
    super::connect_pool(url, url, AnyPoolOptions::new().max_connections(8)).await
}
