//! Leadership through the database: a lease row that one engine holds and renews.
//!
//! Time is the database's own clock (`clock_timestamp()`), so engines with skewed clocks still
//! agree on when a lease has run out. Each change of holder increments `term`, a fencing
//! token: writes of the core check it, so an engine that lost the lease cannot write.

use sqlx::Row;

use super::{Backend, Result, Store};

const LEASE: &str = "engine";

/// Milliseconds now, by the database's clock.
pub(super) fn db_now(backend: Backend) -> &'static str {
    match backend {
        Backend::Postgres => "(EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::BIGINT",
        Backend::Sqlite => "CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)",
    }
}

impl Store {
    /// Take the lease if it is free or ours, for `lease_ms`; returns the term we hold, or
    /// None when another engine holds a lease that has not run out.
    pub async fn acquire_or_renew(&self, holder: &str, lease_ms: i64) -> Result<Option<i64>> {
        let now = db_now(self.backend);
        let sql = format!(
            "INSERT INTO leader_lease (name, holder, term, expires_at) VALUES ($1, $2, 1, {now} + $3) \
             ON CONFLICT (name) DO UPDATE SET \
               term = CASE WHEN leader_lease.holder = excluded.holder THEN leader_lease.term \
                           ELSE leader_lease.term + 1 END, \
               holder = excluded.holder, \
               expires_at = excluded.expires_at \
             WHERE leader_lease.holder = excluded.holder OR leader_lease.expires_at < {now} \
             RETURNING term"
        );
        let row = sqlx::query(&sql)
            .bind(LEASE)
            .bind(holder)
            .bind(lease_ms)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| r.try_get::<i64, _>("term")).transpose()?)
    }

    /// Give the lease up at once (a clean shutdown), so another engine need not wait for it
    /// to run out.
    pub async fn release_lease(&self, holder: &str) -> Result<()> {
        sqlx::query("UPDATE leader_lease SET expires_at = 0 WHERE name = $1 AND holder = $2")
            .bind(LEASE)
            .bind(holder)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// How long, by the database's clock, until the current lease runs out (None: no lease).
    pub async fn lease_remaining_ms(&self) -> Result<Option<i64>> {
        let sql = format!(
            "SELECT expires_at - {} AS remaining FROM leader_lease WHERE name = $1",
            db_now(self.backend)
        );
        let row = sqlx::query(&sql)
            .bind(LEASE)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| r.try_get::<i64, _>("remaining")).transpose()?)
    }

    /// Who holds the lease now, if anyone: (holder, term).
    pub async fn lease_holder(&self) -> Result<Option<(String, i64)>> {
        let sql = format!(
            "SELECT holder, term FROM leader_lease WHERE name = $1 AND expires_at >= {}",
            db_now(self.backend)
        );
        let row = sqlx::query(&sql)
            .bind(LEASE)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| Ok((r.try_get("holder")?, r.try_get("term")?)))
            .transpose()
    }
}
