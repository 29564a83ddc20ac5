//! Reads for the API, the dashboard and `tocsin test`.

use sqlx::Row;

use super::state::{push_rows, Val};
use super::{from_ms, json_column, Result, Store};
use crate::incident::{Impact, Incident, Status, TimelineEntry};

#[derive(Clone, Debug, Default)]
pub struct IncidentFilter {
    pub status: Option<Status>,
    /// Only incidents that are not resolved.
    pub open: bool,
    pub severity: Option<u8>,
    pub limit: Option<i64>,
}

impl Store {
    /// Incidents, newest first.
    pub async fn list_incidents(&self, filter: &IncidentFilter) -> Result<Vec<Incident>> {
        let mut sql = String::from("SELECT data FROM incidents WHERE 1 = 1");
        let mut n = 0;
        let mut next = || {
            n += 1;
            n
        };
        if filter.status.is_some() {
            sql.push_str(&format!(" AND status = ${}", next()));
        }
        if filter.open {
            sql.push_str(" AND status <> 'resolved'");
        }
        if filter.severity.is_some() {
            sql.push_str(&format!(" AND severity = ${}", next()));
        }
        sql.push_str(&format!(" ORDER BY id DESC LIMIT ${}", next()));
        let mut query = sqlx::query(&sql);
        if let Some(status) = filter.status {
            query = query.bind(status.as_str());
        }
        if let Some(severity) = filter.severity {
            query = query.bind(i32::from(severity));
        }
        query = query.bind(filter.limit.unwrap_or(100));
        let rows = query.fetch_all(&self.pool).await?;
        rows.iter().map(|r| json_column(r, "data")).collect()
    }

    pub async fn incident(&self, id: i64) -> Result<Option<Incident>> {
        let row = sqlx::query("SELECT data FROM incidents WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| json_column(&r, "data")).transpose()
    }

    pub async fn impacts_of(&self, incident_id: i64) -> Result<Vec<Impact>> {
        let rows = sqlx::query("SELECT data FROM impacts WHERE incident_id = $1 ORDER BY id")
            .bind(incident_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|r| json_column(r, "data")).collect()
    }

    pub async fn timeline_of(&self, incident_id: i64) -> Result<Vec<TimelineEntry>> {
        let rows = sqlx::query(
            "SELECT incident_id, at, kind, actor, message, data FROM timeline \
             WHERE incident_id = $1 ORDER BY id",
        )
        .bind(incident_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(TimelineEntry {
                    incident_id: r.try_get("incident_id")?,
                    at: from_ms(r.try_get("at")?),
                    kind: r.try_get("kind")?,
                    actor: r.try_get("actor")?,
                    message: r.try_get("message")?,
                    data: json_column(r, "data")?,
                })
            })
            .collect()
    }

    /// Add timeline entries from outside the core (page deliveries).
    pub async fn add_timeline(&self, entries: &[TimelineEntry]) -> Result<()> {
        let mut statements = Vec::new();
        push_rows(
            &mut statements,
            TIMELINE_INSERT,
            "",
            timeline_rows(entries)?,
        );
        self.write_statements(statements).await.map(|_| ())
    }

    /// Open incidents waiting in a triage queue, oldest first.
    pub async fn queue(&self, name: &str) -> Result<Vec<Incident>> {
        let rows = sqlx::query(
            "SELECT data FROM incidents WHERE queue = $1 AND status <> 'resolved' \
             ORDER BY opened_at, id",
        )
        .bind(name)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| json_column(r, "data")).collect()
    }

    /// Every incident in id order (for `tocsin test` and tools).
    pub async fn all_incidents(&self) -> Result<Vec<Incident>> {
        let rows = sqlx::query("SELECT data FROM incidents ORDER BY id")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|r| json_column(r, "data")).collect()
    }
}

/// Timeline rows go in this order: the timeline's ids follow the rows' order.
pub(super) const TIMELINE_INSERT: &str =
    "INSERT INTO timeline (incident_id, at, kind, actor, message, data) VALUES ";

pub(super) fn timeline_rows(entries: &[TimelineEntry]) -> Result<Vec<Vec<Val>>> {
    entries
        .iter()
        .map(|entry| {
            Ok(vec![
                Val::I64(entry.incident_id),
                Val::I64(super::ms(entry.at)),
                Val::Str(entry.kind.as_str().to_string()),
                Val::Str(entry.actor.clone()),
                Val::Str(entry.message.clone()),
                Val::Str(serde_json::to_string(&entry.data)?),
            ])
        })
        .collect()
}
