//! Reads of the silences and on-call overrides made at run time (the leader writes them
//! with its batches; every engine reads them here).

use super::{json_column, ms, Result, Store};
use crate::paging::{ScheduleOverride, Silence};

impl Store {
    /// Silences in the order made; with `ended_after`, only those ending after it.
    pub async fn silences(
        &self,
        ended_after: Option<chrono::DateTime<chrono::Utc>>,
    ) -> Result<Vec<Silence>> {
        let rows = match ended_after {
            Some(t) => {
                sqlx::query("SELECT data FROM silences WHERE ends_at > $1 ORDER BY starts_at, id")
                    .bind(ms(t))
                    .fetch_all(&self.pool)
                    .await?
            }
            None => {
                sqlx::query("SELECT data FROM silences ORDER BY starts_at, id")
                    .fetch_all(&self.pool)
                    .await?
            }
        };
        rows.iter().map(|r| json_column(r, "data")).collect()
    }

    pub async fn silence(&self, id: &str) -> Result<Option<Silence>> {
        let row = sqlx::query("SELECT data FROM silences WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| json_column(&r, "data")).transpose()
    }

    /// Overrides (of one schedule, or all), by start.
    pub async fn overrides(&self, schedule: Option<&str>) -> Result<Vec<ScheduleOverride>> {
        let rows = match schedule {
            Some(name) => {
                sqlx::query(
                    "SELECT data FROM schedule_overrides WHERE schedule = $1 \
                     ORDER BY starts_at, id",
                )
                .bind(name)
                .fetch_all(&self.pool)
                .await?
            }
            None => {
                sqlx::query("SELECT data FROM schedule_overrides ORDER BY starts_at, id")
                    .fetch_all(&self.pool)
                    .await?
            }
        };
        rows.iter().map(|r| json_column(r, "data")).collect()
    }

    pub async fn schedule_override(&self, id: &str) -> Result<Option<ScheduleOverride>> {
        let row = sqlx::query("SELECT data FROM schedule_overrides WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| json_column(&r, "data")).transpose()
    }
}
