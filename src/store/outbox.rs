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

    /// Claim a pending page for `holder` until `until`, skipping it if another engine has it
    /// locked or claimed (PostgreSQL: `FOR UPDATE SKIP LOCKED`). A page keeps its delivery id
    /// whoever sends it, so a receiver that dedupes sees it once across a takeover.
    pub async fn claim_page(
        &self,
        id: i64,
        holder: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Claim> {
        let mut tx = self.pool.begin().await?;
        let lock = self.backend.row_lock(false);
        let row = sqlx::query(&format!(
            "SELECT status, claimed_by, claimed_until FROM outbox WHERE id = $1 {lock}"
        ))
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            // Locked by another engine this very moment (or gone): look again shortly.
            tx.rollback().await?;
            return Ok(Claim::HeldUntil(now + chrono::Duration::seconds(1)));
        };
        let status: String = row.try_get("status")?;
        if status != OutboxStatus::Pending.as_str() {
            tx.rollback().await?;
            return Ok(Claim::Done);
        }
        let by: Option<String> = row.try_get("claimed_by")?;
        let claimed_until: Option<i64> = row.try_get("claimed_until")?;
        if let (Some(by), Some(until_ms)) = (by, claimed_until) {
            if by != holder && until_ms > ms(now) {
                tx.rollback().await?;
                return Ok(Claim::HeldUntil(from_ms(until_ms)));
            }
        }
        sqlx::query("UPDATE outbox SET claimed_by = $1, claimed_until = $2 WHERE id = $3")
            .bind(holder)
            .bind(ms(until))
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Claim::Claimed)
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
