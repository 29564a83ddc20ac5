//! The inbox: inputs taken by an engine that does not lead, for the leader to apply.
//!
//! An input is a row; the leader marks it done, with the core's reply, in the same transaction
//! as the input's effects. The engine that took it waits for that reply.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use sqlx::Row;
use tokio::sync::{broadcast, watch};

use super::postgres::inbox_signals;
use super::{ms, Result, Store};

/// Whether the payload of an inputs-done notification may name the input `id`.
pub fn done_names(payload: &str, id: i64) -> bool {
    inbox_signals::names(payload, id)
}

impl Store {
    /// Store an input (JSON) for the leader; returns its id.
    pub async fn inbox_put(&self, input: &str, now: DateTime<Utc>) -> Result<i64> {
        let row = sqlx::query("INSERT INTO inbox (input, created_at) VALUES ($1, $2) RETURNING id")
            .bind(input)
            .bind(ms(now))
            .fetch_one(&self.pool)
            .await?;
        if self.inbox_signals.is_some() {
            // Committed above: the leader's reader, woken, finds the row.
            sqlx::query(&format!("NOTIFY {}", inbox_signals::PUT))
                .execute(&self.pool)
                .await?;
        }
        Ok(row.try_get("id")?)
    }

    /// Changes when an input may have been put in the inbox (PostgreSQL; `None`: poll).
    pub fn inbox_put_signal(&self) -> Option<watch::Receiver<u64>> {
        self.inbox_signals.as_ref().map(|s| s.put())
    }

    /// The payloads of inputs-done notifications from now on (see [`done_names`];
    /// PostgreSQL; `None`: poll).
    pub fn inbox_done_signal(&self) -> Option<broadcast::Receiver<Arc<str>>> {
        self.inbox_signals.as_ref().map(|s| s.done())
    }

    /// The leader's reply (JSON) once it has applied the input.
    pub async fn inbox_reply(&self, id: i64) -> Result<Option<String>> {
        let row = sqlx::query("SELECT reply FROM inbox WHERE id = $1 AND processed_at IS NOT NULL")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row
            .map(|r| r.try_get::<Option<String>, _>("reply"))
            .transpose()?
            .flatten())
    }

    /// Inputs not yet applied with an id above `after`, oldest first.
    pub async fn inbox_pending(&self, after: i64, limit: i64) -> Result<Vec<(i64, String)>> {
        let rows = sqlx::query(
            "SELECT id, input FROM inbox WHERE processed_at IS NULL AND id > $1 ORDER BY id LIMIT $2",
        )
        .bind(after)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("id")?, r.try_get("input")?)))
            .collect()
    }

    /// Inputs not yet applied with an id from `first` to `last`, oldest first.
    pub async fn inbox_pending_between(
        &self,
        first: i64,
        last: i64,
        limit: i64,
    ) -> Result<Vec<(i64, String)>> {
        let rows = sqlx::query(
            "SELECT id, input FROM inbox WHERE processed_at IS NULL AND id >= $1 AND id <= $2 \
             ORDER BY id LIMIT $3",
        )
        .bind(first)
        .bind(last)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("id")?, r.try_get("input")?)))
            .collect()
    }

    /// Answer an input without applying it (one the leader cannot read).
    pub async fn inbox_answer(&self, id: i64, reply: &str, now: DateTime<Utc>) -> Result<()> {
        sqlx::query(
            "UPDATE inbox SET processed_at = $1, reply = $2 WHERE id = $3 AND processed_at IS NULL",
        )
        .bind(ms(now))
        .bind(reply)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Forget inputs applied long ago (their senders have had their answer).
    pub async fn inbox_prune(&self, before: DateTime<Utc>) -> Result<u64> {
        let done =
            sqlx::query("DELETE FROM inbox WHERE processed_at IS NOT NULL AND processed_at < $1")
                .bind(ms(before))
                .execute(&self.pool)
                .await?;
        Ok(done.rows_affected())
    }
}
