//! The outbox: pages written before they are sent, marked as they are delivered.

use chrono::{DateTime, Utc};
use sqlx::Row;

use super::queries::{timeline_rows, TIMELINE_INSERT};
use super::statements::{push_rows, Statement, Val};
use super::{from_ms, json_column, ms, Result, Store};
use crate::incident::TimelineEntry;
use crate::paging::Page;

/// What the delivery worker records about an attempt, written by
/// [`Store::record_deliveries`].
#[derive(Debug)]
pub enum DeliveryWrite {
    Delivered {
        page: i64,
        attempts: u32,
        at: DateTime<Utc>,
    },
    Retry {
        page: i64,
        attempts: u32,
        next: DateTime<Utc>,
        error: String,
    },
    Failed {
        page: i64,
        attempts: u32,
        error: String,
    },
    Timeline(TimelineEntry),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutboxStatus {
    Pending,
    Delivered,
    Failed,
}

impl OutboxStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            OutboxStatus::Pending => "pending",
            OutboxStatus::Delivered => "delivered",
            OutboxStatus::Failed => "failed",
        }
    }

    fn parse(text: &str) -> OutboxStatus {
        match text {
            "delivered" => OutboxStatus::Delivered,
            "failed" => OutboxStatus::Failed,
            _ => OutboxStatus::Pending,
        }
    }
}

/// A stored page and its delivery state.
#[derive(Clone, Debug, PartialEq)]
pub struct OutboxEntry {
    pub page: Page,
    pub status: OutboxStatus,
    pub attempts: u32,
    pub next_attempt_at: DateTime<Utc>,
    pub delivered_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
}

fn entry(row: &sqlx::any::AnyRow) -> Result<OutboxEntry> {
    let status: String = row.try_get("status")?;
    let attempts: i32 = row.try_get("attempts")?;
    let delivered_at: Option<i64> = row.try_get("delivered_at")?;
    Ok(OutboxEntry {
        page: json_column(row, "data")?,
        status: OutboxStatus::parse(&status),
        attempts: attempts.max(0) as u32,
        next_attempt_at: from_ms(row.try_get("next_attempt_at")?),
        delivered_at: delivered_at.map(from_ms),
        last_error: row.try_get("last_error")?,
    })
}

const COLUMNS: &str = "data, status, attempts, next_attempt_at, delivered_at, last_error";

impl Store {
    /// Write delivery outcomes in order, in one transaction: one commit for every attempt
    /// that finished meanwhile, instead of two per page, which capped delivery near 500
    /// pages a second. Stops before the first outcome whose page row is not in the outbox
    /// yet (the engine has not caught up; see `mark_delivered`) and answers how many were
    /// written.
    pub async fn record_deliveries(&self, writes: &[DeliveryWrite]) -> Result<usize> {
        let mut statements = Vec::with_capacity(writes.len());
        for write in writes {
            statements.push(delivery_statement(write)?);
        }
        self.write_statements(statements).await
    }

    /// Pages not yet delivered nor given up, oldest first.
    pub async fn pending_pages(&self, limit: i64) -> Result<Vec<OutboxEntry>> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM outbox WHERE status = 'pending' ORDER BY id LIMIT $1"
        ))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(entry).collect()
    }

    /// Every page of an incident, in the order they were created.
    pub async fn pages_of(&self, incident_id: i64) -> Result<Vec<OutboxEntry>> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM outbox WHERE incident_id = $1 ORDER BY id"
        ))
        .bind(incident_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(entry).collect()
    }

    /// The pages about a support case, oldest first.
    pub async fn pages_of_case(&self, case_id: i64) -> Result<Vec<OutboxEntry>> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM outbox WHERE incident_id = 0 ORDER BY id"
        ))
        .fetch_all(&self.pool)
        .await?;
        let mut pages = Vec::new();
        for row in &rows {
            let entry = entry(row)?;
            if entry.page.case_id == Some(case_id) {
                pages.push(entry);
            }
        }
        Ok(pages)
    }

    /// Pages made in `from..to`, oldest first (for the pager load of `reports/sr`).
    pub async fn pages_between(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> Result<Vec<Page>> {
        let rows = sqlx::query(
            "SELECT data FROM outbox WHERE created_at >= $1 AND created_at < $2 ORDER BY id",
        )
        .bind(ms(from))
        .bind(ms(to))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| json_column(r, "data")).collect()
    }

    pub async fn page(&self, id: i64) -> Result<Option<OutboxEntry>> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM outbox WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(entry).transpose()
    }

    /// The `mark_*` calls record one outcome (see [`Store::record_deliveries`]) and answer
    /// whether the page's row was there to mark: a page the engine handed over while the
    /// store refused writes has no row until the engine catches up.
    pub async fn mark_delivered(&self, id: i64, attempts: u32, at: DateTime<Utc>) -> Result<bool> {
        self.mark(DeliveryWrite::Delivered {
            page: id,
            attempts,
            at,
        })
        .await
    }

    pub async fn mark_retry(
        &self,
        id: i64,
        attempts: u32,
        next_attempt_at: DateTime<Utc>,
        error: &str,
    ) -> Result<bool> {
        self.mark(DeliveryWrite::Retry {
            page: id,
            attempts,
            next: next_attempt_at,
            error: error.to_string(),
        })
        .await
    }

    pub async fn mark_failed(&self, id: i64, attempts: u32, error: &str) -> Result<bool> {
        self.mark(DeliveryWrite::Failed {
            page: id,
            attempts,
            error: error.to_string(),
        })
        .await
    }

    async fn mark(&self, write: DeliveryWrite) -> Result<bool> {
        Ok(self.record_deliveries(std::slice::from_ref(&write)).await? == 1)
    }
}

/// Whether this engine may send a page now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Claim {
    /// Claimed for us until the given time: send it.
    Claimed,
    /// Another engine holds it until then (it may be sending it now).
    HeldUntil(DateTime<Utc>),
    /// Delivered or given up already.
    Done,
}

impl Store {
    /// Give up every claim `holder` has on pages still pending (a clean stop).
    pub async fn release_claims(&self, holder: &str) -> Result<u64> {
        let done = sqlx::query(
            "UPDATE outbox SET claimed_by = NULL, claimed_until = NULL \
             WHERE claimed_by = $1 AND status = 'pending'",
        )
        .bind(holder)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    /// Claim a pending page for `holder` until `until`, unless another engine's claim on it
    /// still runs. One statement, committed on its own: the claim costs one round trip. A
    /// page keeps its delivery id whoever sends it, so a receiver that dedupes sees it once
    /// across a takeover.
    pub async fn claim_page(
        &self,
        id: i64,
        holder: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Claim> {
        let claimed = sqlx::query(
            "UPDATE outbox SET claimed_by = $1, claimed_until = $2 \
             WHERE id = $3 AND status = 'pending' \
             AND (claimed_by IS NULL OR claimed_by = $4 OR claimed_until <= $5)",
        )
        .bind(holder)
        .bind(ms(until))
        .bind(id)
        .bind(holder)
        .bind(ms(now))
        .execute(&self.pool)
        .await?
        .rows_affected();
        if claimed > 0 {
            return Ok(Claim::Claimed);
        }
        // Not claimed: why (delivered or given up, or another engine's claim runs).
        let row = sqlx::query("SELECT status, claimed_until FROM outbox WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        let Some(row) = row else {
            // Not written yet (paged from memory while the store refused it): look again.
            return Ok(Claim::HeldUntil(now + chrono::Duration::seconds(1)));
        };
        let status: String = row.try_get("status")?;
        if status != OutboxStatus::Pending.as_str() {
            return Ok(Claim::Done);
        }
        let claimed_until: Option<i64> = row.try_get("claimed_until")?;
        Ok(Claim::HeldUntil(match claimed_until {
            Some(until_ms) if until_ms > ms(now) => from_ms(until_ms),
            // Changed between the two statements: look again shortly.
            _ => now + chrono::Duration::seconds(1),
        }))
    }
}

/// The one statement that records `write`.
fn delivery_statement(write: &DeliveryWrite) -> Result<Statement> {
    Ok(match write {
        DeliveryWrite::Delivered { page, attempts, at } => Statement::needing_row(
            "UPDATE outbox SET status = 'delivered', attempts = $1, delivered_at = $2, \
             last_error = NULL WHERE id = $3",
            vec![attempts_val(*attempts), Val::I64(ms(*at)), Val::I64(*page)],
        ),
        DeliveryWrite::Retry {
            page,
            attempts,
            next,
            error,
        } => Statement::needing_row(
            "UPDATE outbox SET attempts = $1, next_attempt_at = $2, last_error = $3 \
             WHERE id = $4",
            vec![
                attempts_val(*attempts),
                Val::I64(ms(*next)),
                Val::Str(error.clone()),
                Val::I64(*page),
            ],
        ),
        DeliveryWrite::Failed {
            page,
            attempts,
            error,
        } => Statement::needing_row(
            "UPDATE outbox SET status = 'failed', attempts = $1, last_error = $2 WHERE id = $3",
            vec![
                attempts_val(*attempts),
                Val::Str(error.clone()),
                Val::I64(*page),
            ],
        ),
        DeliveryWrite::Timeline(entry) => {
            let mut statements = Vec::with_capacity(1);
            push_rows(
                &mut statements,
                TIMELINE_INSERT,
                "",
                timeline_rows(std::slice::from_ref(entry))?,
            );
            statements.pop().expect("one row is one statement")
        }
    })
}

fn attempts_val(attempts: u32) -> Val {
    Val::I32(i32::try_from(attempts).unwrap_or(i32::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One engine at a time holds a page: another waits for the claim to run out, the holder
    /// claims it again for a retry, and a delivered page is nobody's to send.
    #[tokio::test]
    async fn a_page_is_claimed_by_one_engine_at_a_time_until_its_claim_runs_out() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("tocsin.db").display());
        let store = Store::open(&url).await.unwrap();
        sqlx::query(
            "INSERT INTO outbox (id, delivery_id, incident_id, channel, status, attempts, \
             next_attempt_at, created_at, data) VALUES (1, 'd1', 1, 'webhook', 'pending', 0, 0, 0, '{}')",
        )
        .execute(&store.pool)
        .await
        .unwrap();
        let t0 = DateTime::from_timestamp(1_000_000, 0).unwrap();
        let at = |s: i64| t0 + chrono::Duration::seconds(s);
        assert_eq!(
            store.claim_page(1, "e1", at(0), at(7)).await.unwrap(),
            Claim::Claimed
        );
        assert_eq!(
            store.claim_page(1, "e2", at(1), at(8)).await.unwrap(),
            Claim::HeldUntil(at(7))
        );
        assert_eq!(
            store.claim_page(1, "e1", at(2), at(9)).await.unwrap(),
            Claim::Claimed
        );
        assert_eq!(
            store.claim_page(1, "e2", at(9), at(16)).await.unwrap(),
            Claim::Claimed
        );
        assert_eq!(
            store.claim_page(2, "e1", at(10), at(17)).await.unwrap(),
            Claim::HeldUntil(at(11)),
            "a page not written yet is looked at again"
        );
        sqlx::query("UPDATE outbox SET status = 'delivered' WHERE id = 1")
            .execute(&store.pool)
            .await
            .unwrap();
        assert_eq!(
            store.claim_page(1, "e1", at(20), at(27)).await.unwrap(),
            Claim::Done
        );
        store.close().await;
    }
}
