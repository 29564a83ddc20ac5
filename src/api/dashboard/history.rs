//! `/history`: every incident, resolved ones too, searched by text, service, region,
//! customer, severity, status and opening time, newest first and paged with the API's cursor
//! (`api::cursor`, as `GET /api/v1/incidents`).

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use chrono::{DateTime, NaiveDateTime, Utc};
use minijinja::context;
use serde::{Deserialize, Serialize};

use super::super::cursor;
use super::super::error::ApiError;
use super::super::AppState;
use super::render::{opt_time, page, time};
use super::{chrome, error_page, session};
use crate::incident::{Incident, Status};
use crate::store::IncidentFilter;

/// Incidents a page of the history shows.
const PAGE_SIZE: i64 = 25;

/// The search as the form sends it; every field may be empty.
#[derive(Deserialize, Serialize, Default, Clone)]
pub(super) struct Search {
    #[serde(default)]
    q: String,
    #[serde(default)]
    service: String,
    #[serde(default)]
    region: String,
    #[serde(default)]
    customer: String,
    #[serde(default)]
    severity: String,
    /// `resolved` (the default), `all`, `open`, `triggered` or `acknowledged`.
    #[serde(default)]
    status: String,
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
    #[serde(default)]
    cursor: String,
}

/// A time of the form: RFC 3339, or a `datetime-local` value without a zone (read as UTC:
/// the page's script turns the viewer's local time into RFC 3339 before sending).
pub(super) fn form_time(name: &str, text: &str) -> Result<Option<DateTime<Utc>>, ApiError> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(Some(t.with_timezone(&Utc)));
    }
    ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S"]
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(text, f).ok())
        .map(|t| Some(t.and_utc()))
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "invalid {name} {text:?}: expected a time such as 2026-03-08T09:00:00Z"
            ))
        })
}

fn some(text: &str) -> Option<String> {
    Some(text.trim().to_string()).filter(|t| !t.is_empty())
}

impl Search {
    /// The store's filter for this search, or what is wrong with it.
    fn filter(&self) -> Result<IncidentFilter, ApiError> {
        let (status, open) = match self.status.trim() {
            "" | "resolved" => (Some(Status::Resolved), false),
            "all" => (None, false),
            "open" => (None, true),
            s => (
                Some(Status::parse(s).ok_or_else(|| {
                    ApiError::bad_request(format!(
                        "invalid status {s:?}: expected resolved, all, open, triggered or \
                         acknowledged"
                    ))
                })?),
                false,
            ),
        };
        let severity = match self.severity.trim() {
            "" => None,
            s => Some(s.parse::<u8>().ok().filter(|n| *n <= 4).ok_or_else(|| {
                ApiError::bad_request(format!("invalid severity {s:?}: expected 0 to 4"))
            })?),
        };
        Ok(IncidentFilter {
            status,
            open,
            severity,
            limit: Some(PAGE_SIZE + 1),
            before: cursor::cursor(Some(self.cursor.trim()))?,
            text: some(&self.q),
            service: some(&self.service),
            region: some(&self.region),
            customer: some(&self.customer),
            from: form_time("from", &self.from)?,
            to: form_time("to", &self.to)?,
        })
    }

    /// The query string of this search at `cursor` (none: the first page).
    fn query(&self, cursor: Option<&str>) -> String {
        let mut pairs = vec![
            ("q", self.q.as_str()),
            ("service", &self.service),
            ("region", &self.region),
            ("customer", &self.customer),
            ("severity", &self.severity),
            ("status", &self.status),
            ("from", &self.from),
            ("to", &self.to),
        ];
        if let Some(c) = cursor {
            pairs.push(("cursor", c));
        }
        pairs
            .into_iter()
            .filter(|(_, v)| !v.trim().is_empty())
            .map(|(k, v)| format!("{k}={}", session::encode(v.trim())))
            .collect::<Vec<_>>()
            .join("&")
    }
}

/// One incident of the history.
#[derive(Serialize)]
struct Row {
    id: i64,
    title: String,
    severity: u8,
    status: &'static str,
    services: Vec<String>,
    regions: Vec<String>,
    customers: Vec<String>,
    opened_at: String,
    resolved_at: Option<String>,
    resolved_by: Option<String>,
}

fn row(i: &Incident) -> Row {
    Row {
        id: i.id,
        title: i.title.to_string(),
        severity: i.severity,
        status: i.status.as_str(),
        services: i.services.iter().cloned().collect(),
        regions: i.regions.iter().cloned().collect(),
        customers: i.customers.iter().cloned().collect(),
        opened_at: time(i.opened_at),
        resolved_at: opt_time(i.resolved_at),
        resolved_by: i.resolved_by.clone(),
    }
}

pub(super) async fn history(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(search): Query<Search>,
) -> Response {
    let here = format!("/history?{}", search.query(Some(&search.cursor)));
    if let Some(login) = session::login_needed(&state, &headers, &here) {
        return login;
    }
    let found = async {
        let filter = search.filter()?;
        let incidents = state.store.list_incidents(&filter).await?;
        Ok::<_, ApiError>(cursor::page(incidents, PAGE_SIZE, |i| i.id))
    }
    .await;
    let (incidents, next) = match found {
        Ok(found) => found,
        Err(e) => return error_page(e, "/history"),
    };
    let setup = state.setup();
    let catalog = &setup.config.catalog;
    let services: Vec<&str> = catalog.services.iter().map(|s| s.name.as_str()).collect();
    let customers: Vec<&str> = catalog.customers.iter().map(|c| c.id.as_str()).collect();
    page(
        StatusCode::OK,
        "history.html",
        context! {
            chrome => chrome(&state, &headers, &here, 0),
            search => search.clone(),
            rows => incidents.iter().map(row).collect::<Vec<_>>(),
            older => next.map(|n| format!("/history?{}", search.query(Some(&n)))),
            newest => (!search.cursor.trim().is_empty())
                .then(|| format!("/history?{}", search.query(None))),
            services => services,
            customers => customers,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_times_read_rfc3339_or_a_local_field_as_utc() {
        let t = form_time("from", "2026-03-08T09:00:00+01:00")
            .unwrap()
            .unwrap();
        assert_eq!(t.to_rfc3339(), "2026-03-08T08:00:00+00:00");
        let t = form_time("from", "2026-03-08T09:00").unwrap().unwrap();
        assert_eq!(t.to_rfc3339(), "2026-03-08T09:00:00+00:00");
        assert_eq!(form_time("to", " ").unwrap(), None);
        assert_eq!(
            form_time("to", "yesterday").unwrap_err().message,
            "invalid to \"yesterday\": expected a time such as 2026-03-08T09:00:00Z"
        );
    }

    #[test]
    fn a_search_keeps_its_fields_across_pages() {
        let search = Search {
            q: "disk full".into(),
            severity: "2".into(),
            status: "all".into(),
            ..Search::default()
        };
        assert_eq!(
            search.query(Some("41")),
            "q=disk%20full&severity=2&status=all&cursor=41"
        );
        let filter = search.filter().unwrap();
        assert_eq!((filter.status, filter.open), (None, false));
        assert_eq!(filter.severity, Some(2));
        assert_eq!(filter.limit, Some(PAGE_SIZE + 1));
        // Resolved incidents by default.
        let filter = Search::default().filter().unwrap();
        assert_eq!(filter.status, Some(Status::Resolved));
        assert!(Search {
            severity: "9".into(),
            ..Search::default()
        }
        .filter()
        .is_err());
    }
}
