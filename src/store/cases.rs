//! Support cases and their timelines: written with the engine's batches, read for the API
//! and for a restart.

use sqlx::Row;

use super::statements::{push_rows, Statement, Val};
use super::{from_ms, json_column, ms, Result, Store};
use crate::incident::case::{Case, CaseEntry};

const CASES_UPSERT: &str =
    "INSERT INTO cases (id, status, customer, incident_id, opened_at, data) VALUES ";
const CASES_CONFLICT: &str = " ON CONFLICT (id) DO UPDATE SET status = excluded.status, \
     incident_id = excluded.incident_id, data = excluded.data";
const CASE_TIMELINE_INSERT: &str =
    "INSERT INTO case_timeline (case_id, at, kind, actor, message, data) VALUES ";

/// The statements that write `cases` and `timeline` (part of a batch's transaction).
pub(super) fn plan(out: &mut Vec<Statement>, cases: &[Case], timeline: &[CaseEntry]) -> Result<()> {
    let mut rows = Vec::with_capacity(cases.len());
    for case in cases {
        rows.push(vec![
            Val::I64(case.id),
            Val::Str(case.status.as_str().to_string()),
            Val::Str(case.customer.clone()),
            Val::I64(case.incident_id.unwrap_or(0)),
            Val::I64(ms(case.opened_at)),
            Val::Str(serde_json::to_string(case)?),
        ]);
    }
    push_rows(out, CASES_UPSERT, CASES_CONFLICT, rows);
    let mut rows = Vec::with_capacity(timeline.len());
    for entry in timeline {
        rows.push(vec![
            Val::I64(entry.case_id),
            Val::I64(ms(entry.at)),
            Val::Str(entry.kind.clone()),
            Val::Str(entry.actor.clone()),
            Val::Str(entry.message.clone()),
            Val::Str(serde_json::to_string(&entry.data)?),
        ]);
    }
    push_rows(out, CASE_TIMELINE_INSERT, "", rows);
    Ok(())
}

impl Store {
    /// Open cases (for a restart).
    pub(super) async fn open_cases(&self) -> Result<Vec<Case>> {
        let rows = sqlx::query("SELECT data FROM cases WHERE status = 'open' ORDER BY id")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|r| json_column(r, "data")).collect()
    }

    pub(super) async fn next_case_id(&self) -> Result<i64> {
        let row = sqlx::query("SELECT COALESCE(MAX(id), 0) AS id FROM cases")
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get::<i64, _>("id")? + 1)
    }

    /// Cases, newest first: open ones only with `open`, of one customer with `customer`.
    pub async fn list_cases(
        &self,
        open: bool,
        customer: Option<&str>,
        limit: i64,
    ) -> Result<Vec<Case>> {
        let mut sql = String::from("SELECT data FROM cases WHERE 1 = 1");
        if open {
            sql.push_str(" AND status = 'open'");
        }
        if customer.is_some() {
            sql.push_str(" AND customer = $1");
        }
        sql.push_str(&format!(
            " ORDER BY id DESC LIMIT {}",
            limit.clamp(1, 10_000)
        ));
        let mut query = sqlx::query(&sql);
        if let Some(customer) = customer {
            query = query.bind(customer.to_string());
        }
        let rows = query.fetch_all(&self.pool).await?;
        rows.iter().map(|r| json_column(r, "data")).collect()
    }

    /// Cases opened in `from..to`, oldest first.
    pub async fn cases_opened_between(
        &self,
        from: chrono::DateTime<chrono::Utc>,
        to: chrono::DateTime<chrono::Utc>,
    ) -> Result<Vec<Case>> {
        let rows = sqlx::query(
            "SELECT data FROM cases WHERE opened_at >= $1 AND opened_at < $2 ORDER BY id",
        )
        .bind(ms(from))
        .bind(ms(to))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| json_column(r, "data")).collect()
    }

    pub async fn case(&self, id: i64) -> Result<Option<Case>> {
        let row = sqlx::query("SELECT data FROM cases WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| json_column(&r, "data")).transpose()
    }

    /// The cases linked to an incident.
    pub async fn cases_of_incident(&self, incident_id: i64) -> Result<Vec<Case>> {
        let rows = sqlx::query("SELECT data FROM cases WHERE incident_id = $1 ORDER BY id")
            .bind(incident_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|r| json_column(r, "data")).collect()
    }

    pub async fn case_timeline(&self, case_id: i64) -> Result<Vec<CaseEntry>> {
        let rows = sqlx::query(
            "SELECT case_id, at, kind, actor, message, data FROM case_timeline \
             WHERE case_id = $1 ORDER BY id",
        )
        .bind(case_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(CaseEntry {
                    case_id: r.try_get("case_id")?,
                    at: from_ms(r.try_get("at")?),
                    kind: r.try_get("kind")?,
                    actor: r.try_get("actor")?,
                    message: r.try_get("message")?,
                    data: json_column(r, "data")?,
                })
            })
            .collect()
    }
}
