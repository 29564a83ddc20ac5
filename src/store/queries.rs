//! Reads for the API, the dashboard and `tocsin test`.

use std::fmt::Write;

use sqlx::Row;

use super::statements::{push_rows, Val};
use chrono::{DateTime, Utc};

use super::{from_ms, json_column, Result, Store, OPEN_STATUS};
use crate::incident::{Impact, Incident, Status, TimelineEntry};

#[derive(Clone, Debug, Default)]
pub struct IncidentFilter {
    pub status: Option<Status>,
    /// Only incidents that are not resolved.
    pub open: bool,
    pub severity: Option<u8>,
    /// At most this many (100 when unset).
    pub limit: Option<i64>,
    /// Only ids below this (the cursor of a page).
    pub before: Option<i64>,
    /// Text in the title, a label's value or a note (ASCII case ignored).
    pub text: Option<String>,
    pub service: Option<String>,
    pub region: Option<String>,
    pub customer: Option<String>,
    /// Opened at or after.
    pub from: Option<DateTime<Utc>>,
    /// Opened before.
    pub to: Option<DateTime<Utc>>,
}

impl IncidentFilter {
    /// What SQL cannot judge of a row: names and text (in the JSON of `data`).
    fn keeps(&self, incident: &Incident, note_matches: bool) -> bool {
        let named = |wanted: &Option<String>, names: &crate::incident::NameSet| {
            wanted.as_deref().is_none_or(|w| names.contains(w))
        };
        named(&self.service, &incident.services)
            && named(&self.region, &incident.regions)
            && named(&self.customer, &incident.customers)
            && self.text.as_deref().is_none_or(|text| {
                let text = text.to_ascii_lowercase();
                let has = |s: &str| s.to_ascii_lowercase().contains(&text);
                note_matches || has(&incident.title) || incident.labels.iter().any(|(_, v)| has(v))
            })
    }
}

/// Rows read at a time while filtering the incident list.
const LIST_CHUNK: i64 = 500;

impl Store {
    /// Incidents newest first (below `before`), those the filter keeps, up to its limit.
    /// Status, severity, times and the cursor are judged by SQL, which reads the rows in id
    /// order from the primary key or the status index (no sort); names and text on the
    /// decoded rows, read in chunks until the page is full or the history ends.
    pub async fn list_incidents(&self, filter: &IncidentFilter) -> Result<Vec<Incident>> {
        let limit = filter.limit.unwrap_or(100).max(1) as usize;
        let mut sql = String::from("SELECT id, data FROM incidents WHERE id < $1");
        let mut n = 1;
        let mut next = || {
            n += 1;
            n
        };
        if filter.status.is_some() {
            sql.push_str(&format!(" AND status = ${}", next()));
        }
        if filter.open {
            sql.push_str(&format!(" AND {OPEN_STATUS}"));
        }
        if filter.severity.is_some() {
            sql.push_str(&format!(" AND severity = ${}", next()));
        }
        if filter.from.is_some() {
            sql.push_str(&format!(" AND opened_at >= ${}", next()));
        }
        if filter.to.is_some() {
            sql.push_str(&format!(" AND opened_at < ${}", next()));
        }
        sql.push_str(&format!(" ORDER BY id DESC LIMIT ${}", next()));
        // Filters SQL cannot judge read whole chunks; without them, the page is the query.
        let judged_here = filter.text.is_some()
            || filter.service.is_some()
            || filter.region.is_some()
            || filter.customer.is_some();
        let chunk = if judged_here {
            LIST_CHUNK
        } else {
            limit as i64
        };
        let mut out = Vec::new();
        let mut below = filter.before.unwrap_or(i64::MAX);
        loop {
            let mut query = sqlx::query(&sql).bind(below);
            if let Some(status) = filter.status {
                query = query.bind(status.as_str());
            }
            if let Some(severity) = filter.severity {
                query = query.bind(i32::from(severity));
            }
            if let Some(from) = filter.from {
                query = query.bind(super::ms(from));
            }
            if let Some(to) = filter.to {
                query = query.bind(super::ms(to));
            }
            let rows = query.bind(chunk).fetch_all(&self.pool).await?;
            let mut incidents = Vec::with_capacity(rows.len());
            for row in &rows {
                below = row.try_get("id")?;
                incidents.push(json_column::<Incident>(row, "data")?);
            }
            // Whether a note holds the text is asked of the incidents only a note could let
            // through, by their ids (the timeline's index on the incident).
            let noted = match filter.text.as_deref() {
                Some(text) => {
                    let ids: Vec<i64> = incidents
                        .iter()
                        .filter(|i| !filter.keeps(i, false) && filter.keeps(i, true))
                        .map(|i| i.id)
                        .collect();
                    self.notes_with(&ids, text).await?
                }
                None => Vec::new(),
            };
            for incident in incidents {
                let note_matches = noted.binary_search(&incident.id).is_ok();
                if filter.keeps(&incident, note_matches) {
                    out.push(incident);
                    if out.len() == limit {
                        return Ok(out);
                    }
                }
            }
            if (rows.len() as i64) < chunk {
                return Ok(out);
            }
        }
    }

    /// Of the incidents `ids`, those with a note that holds `text` (ASCII case ignored),
    /// sorted.
    async fn notes_with(&self, ids: &[i64], text: &str) -> Result<Vec<i64>> {
        let escaped = text
            .to_ascii_lowercase()
            .replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_");
        let pattern = format!("%{escaped}%");
        let mut noted = Vec::new();
        for chunk in ids.chunks(IDS_PER_QUERY) {
            // Numbers only, written by us: no placeholder per id.
            let sql = format!(
                "SELECT DISTINCT incident_id FROM timeline WHERE incident_id IN ({}) \
                 AND kind = 'note' AND LOWER(message) LIKE $1 ESCAPE '\\'",
                join_ids(chunk)
            );
            for row in sqlx::query(&sql)
                .bind(&pattern)
                .fetch_all(&self.pool)
                .await?
            {
                noted.push(row.try_get::<i64, _>("incident_id")?);
            }
        }
        noted.sort_unstable();
        Ok(noted)
    }

    pub async fn incident(&self, id: i64) -> Result<Option<Incident>> {
        let row = sqlx::query("SELECT data FROM incidents WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| json_column(&r, "data")).transpose()
    }

    /// An incident's impacts, in id order: those its links name that are still its own
    /// (a merge moves impacts on, and links them to the incident they went to).
    pub async fn impacts_of(&self, incident_id: i64) -> Result<Vec<Impact>> {
        let rows = sqlx::query("SELECT impact_ids FROM incident_impacts WHERE incident_id = $1")
            .bind(incident_id)
            .fetch_all(&self.pool)
            .await?;
        let mut impacts = self.impacts_by_id(linked_ids(&rows)?).await?;
        impacts.retain(|impact| impact.incident_id == incident_id);
        Ok(impacts)
    }

    /// Impacts by id, in id order (ids with no row are left out).
    pub(super) async fn impacts_by_id(&self, ids: Vec<i64>) -> Result<Vec<Impact>> {
        let mut impacts = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(IDS_PER_QUERY) {
            // Numbers only, written by us: no placeholder per id.
            let sql = format!("SELECT data FROM impacts WHERE id IN ({})", join_ids(chunk));
            for row in sqlx::query(&sql).fetch_all(&self.pool).await? {
                impacts.push(json_column::<Impact>(&row, "data")?);
            }
        }
        impacts.sort_unstable_by_key(|impact| impact.id);
        Ok(impacts)
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

    /// When the oldest open incident of each triage queue opened. An incident in several
    /// queues has the first in the `queue` column and the others in its JSON (`other_queues`):
    /// those few rows are read whole.
    pub async fn queue_oldest(&self) -> Result<Vec<(String, chrono::DateTime<chrono::Utc>)>> {
        let rows = sqlx::query(
            "SELECT queue, MIN(opened_at) AS oldest FROM incidents \
             WHERE queue IS NOT NULL AND status <> 'resolved' GROUP BY queue",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut oldest: std::collections::BTreeMap<String, chrono::DateTime<chrono::Utc>> = rows
            .iter()
            .map(|r| Ok((r.try_get("queue")?, from_ms(r.try_get("oldest")?))))
            .collect::<Result<_>>()?;
        for incident in self.in_several_queues().await? {
            for queue in &incident.other_queues {
                let at = oldest.entry(queue.clone()).or_insert(incident.opened_at);
                *at = (*at).min(incident.opened_at);
            }
        }
        Ok(oldest.into_iter().collect())
    }

    /// Open incidents waiting in more than one triage queue.
    async fn in_several_queues(&self) -> Result<Vec<Incident>> {
        let rows = sqlx::query(
            "SELECT data FROM incidents WHERE queue IS NOT NULL AND status <> 'resolved' \
             AND data LIKE '%\"other_queues\":%'",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| json_column(r, "data")).collect()
    }

    /// Open incidents waiting in a triage queue (as their first queue or another), oldest
    /// first.
    pub async fn queue(&self, name: &str) -> Result<Vec<Incident>> {
        let rows = sqlx::query(
            "SELECT data FROM incidents WHERE queue = $1 AND status <> 'resolved' \
             ORDER BY opened_at, id",
        )
        .bind(name)
        .fetch_all(&self.pool)
        .await?;
        let mut incidents: Vec<Incident> = rows
            .iter()
            .map(|r| json_column(r, "data"))
            .collect::<Result<_>>()?;
        let others = self.in_several_queues().await?;
        incidents.extend(
            others
                .into_iter()
                .filter(|i| i.queue.as_deref() != Some(name) && i.in_queue(name)),
        );
        incidents.sort_by_key(|i| (i.opened_at, i.id));
        Ok(incidents)
    }

    /// Every incident in id order (for `tocsin test` and tools).
    pub async fn all_incidents(&self) -> Result<Vec<Incident>> {
        let rows = sqlx::query("SELECT data FROM incidents ORDER BY id")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|r| json_column(r, "data")).collect()
    }
}

/// How the store finds an incident's impacts: a row per incident and batch that linked
/// impacts to it, their ids as a JSON array, rather than an index on `impacts
/// (incident_id)`, where each new impact would write a page of the index at its incident's
/// place on every commit. Links come a row per incident per batch, as the timeline does.
pub(super) const IMPACT_LINKS_INSERT: &str =
    "INSERT INTO incident_impacts (incident_id, impact_ids) VALUES ";

/// Ids asked for in one `IN (…)`.
const IDS_PER_QUERY: usize = 500;

/// `[1,2,3]`: the ids of one link row.
pub(super) fn id_list(ids: &[i64]) -> String {
    format!("[{}]", join_ids(ids))
}

fn join_ids(ids: &[i64]) -> String {
    let mut text = String::with_capacity(ids.len() * 6);
    for (i, id) in ids.iter().enumerate() {
        if i > 0 {
            text.push(',');
        }
        let _ = write!(text, "{id}");
    }
    text
}

/// The ids of link rows (column `impact_ids`), sorted, each once.
pub(super) fn linked_ids(rows: &[sqlx::any::AnyRow]) -> Result<Vec<i64>> {
    let mut ids = Vec::new();
    for row in rows {
        ids.extend(json_column::<Vec<i64>>(row, "impact_ids")?);
    }
    ids.sort_unstable();
    ids.dedup();
    Ok(ids)
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
