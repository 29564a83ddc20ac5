//! Leadership through the database: a lease row that one engine holds and renews.
//!
//! Time is the database's own clock (`clock_timestamp()`), so engines with skewed clocks still
//! agree on when a lease has run out. Each change of holder increments `term`, a fencing
//! token: writes of the core check it, so an engine that lost the lease cannot write.
//!
//! The lease is held under an engine id (`holder`) by one process (`instance`, drawn at
//! each start). Only that process renews it; another process under the same id gets it
//! once it runs out, or through [`Store::reclaim_lease`] once it has seen that nobody
//! renews it, and each such change increments the term too.

use sqlx::Row;
use tokio::sync::watch;

use super::postgres::inbox_signals;
use super::{LeaderUrl, Result, Store};

const LEASE: &str = "engine";

/// The lease row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaseRow {
    pub holder: String,
    pub instance: String,
    pub term: i64,
    /// Milliseconds since the epoch, by the database's clock; each renewal moves it on.
    pub expires_at: i64,
    /// Until it runs out, by the database's clock (negative: run out).
    pub remaining_ms: i64,
}

impl Store {
    /// Tell the other engines that the leader of `leader.term` serves at `leader.url`
    /// (PostgreSQL's `NOTIFY`; nothing on a store of one engine).
    pub async fn announce_leader(&self, leader: &LeaderUrl) -> Result<()> {
        if self.inbox_signals.is_some() {
            sqlx::query("SELECT pg_notify($1, $2)")
                .bind(inbox_signals::LEADER)
                .bind(leader.payload())
                .execute(&self.pool)
                .await?;
        }
        Ok(())
    }

    /// The latest leader heard of (PostgreSQL; `None` on a store of one engine).
    pub fn leader_urls(&self) -> Option<watch::Receiver<Option<LeaderUrl>>> {
        self.inbox_signals.as_ref().map(|s| s.leader())
    }

    /// Changes when another engine asks where the leader serves (PostgreSQL; `None` on a
    /// store of one engine).
    pub fn leader_wanted(&self) -> Option<watch::Receiver<u64>> {
        self.inbox_signals.as_ref().map(|s| s.leader_wanted())
    }

    /// Take the lease if it is free or this process's (`holder` and `instance`), for
    /// `lease_ms`; returns the term we hold, or None when another process holds a lease that
    /// has not run out.
    pub async fn acquire_or_renew(
        &self,
        holder: &str,
        instance: &str,
        lease_ms: i64,
    ) -> Result<Option<i64>> {
        let now = self.backend.now_ms();
        let sql = format!(
            "INSERT INTO leader_lease (name, holder, instance, term, expires_at) \
             VALUES ($1, $2, $3, 1, {now} + $4) \
             ON CONFLICT (name) DO UPDATE SET \
               term = CASE WHEN leader_lease.holder = excluded.holder \
                             AND leader_lease.instance = excluded.instance \
                           THEN leader_lease.term ELSE leader_lease.term + 1 END, \
               holder = excluded.holder, \
               instance = excluded.instance, \
               expires_at = excluded.expires_at \
             WHERE (leader_lease.holder = excluded.holder \
                    AND leader_lease.instance = excluded.instance) \
                OR leader_lease.expires_at < {now} \
             RETURNING term"
        );
        let row = sqlx::query(&sql)
            .bind(LEASE)
            .bind(holder)
            .bind(instance)
            .bind(lease_ms)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| r.try_get::<i64, _>("term")).transpose()?)
    }

    /// Take over the lease held under our own `holder` id by another process that was seen
    /// not to renew it: only if it still runs out at `expires_at` (it was not renewed since).
    /// Returns the new term, or None when it was renewed or changed hands meanwhile.
    pub async fn reclaim_lease(
        &self,
        holder: &str,
        instance: &str,
        expires_at: i64,
        lease_ms: i64,
    ) -> Result<Option<i64>> {
        let sql = format!(
            "UPDATE leader_lease SET instance = $1, term = term + 1, expires_at = {} + $2 \
             WHERE name = $3 AND holder = $4 AND expires_at = $5 RETURNING term",
            self.backend.now_ms()
        );
        let row = sqlx::query(&sql)
            .bind(instance)
            .bind(lease_ms)
            .bind(LEASE)
            .bind(holder)
            .bind(expires_at)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| r.try_get::<i64, _>("term")).transpose()?)
    }

    /// Give the lease up at once (a clean shutdown), so another engine need not wait for it
    /// to run out.
    pub async fn release_lease(&self, holder: &str, instance: &str) -> Result<()> {
        sqlx::query(
            "UPDATE leader_lease SET expires_at = 0 \
             WHERE name = $1 AND holder = $2 AND instance = $3",
        )
        .bind(LEASE)
        .bind(holder)
        .bind(instance)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The lease as it stands, run out or not.
    pub async fn lease_row(&self) -> Result<Option<LeaseRow>> {
        let sql = format!(
            "SELECT holder, instance, term, expires_at, expires_at - {} AS remaining \
             FROM leader_lease WHERE name = $1",
            self.backend.now_ms()
        );
        let row = sqlx::query(&sql)
            .bind(LEASE)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| {
            Ok(LeaseRow {
                holder: r.try_get("holder")?,
                instance: r.try_get("instance")?,
                term: r.try_get("term")?,
                expires_at: r.try_get("expires_at")?,
                remaining_ms: r.try_get("remaining")?,
            })
        })
        .transpose()
    }

    /// How long, by the database's clock, until the current lease runs out (None: no lease).
    pub async fn lease_remaining_ms(&self) -> Result<Option<i64>> {
        let sql = format!(
            "SELECT expires_at - {} AS remaining FROM leader_lease WHERE name = $1",
            self.backend.now_ms()
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
            self.backend.now_ms()
        );
        let row = sqlx::query(&sql)
            .bind(LEASE)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| Ok((r.try_get("holder")?, r.try_get("term")?)))
            .transpose()
    }
}
