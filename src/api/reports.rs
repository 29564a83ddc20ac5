//! `GET /api/v1/reports/sr?from=&to=` (viewer): the support report of a time range, counted
//! by `incident::report` from the cases, incidents and pages the store holds for it.
//!
//! Cases and incidents count in the range they were opened in, pages in the range they
//! were made in. The range defaults to the 7 days before now, and is at most 366 days.

use std::collections::BTreeMap;

use axum::extract::{Query, State};
use axum::middleware;
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, NaiveDate, Utc};

use super::auth::{need, require_token, Need};
use super::error::ApiError;
use super::AppState;
use crate::incident::report::{self, CaseFacts, IncidentFacts, PageFacts, SrReport};
use crate::paging::page::{at_night, CASE_RULE};
use crate::store::IncidentFilter;

const DEFAULT_DAYS: i64 = 7;
const MAX_DAYS: i64 = 366;

pub fn router(state: AppState) -> Router<AppState> {
    Router::new()
        .route("/api/v1/reports/sr", get(sr))
        .route_layer(middleware::from_fn_with_state(state, require_token))
}

/// A time of the query: RFC 3339, or a date (its midnight, UTC).
fn parse_time(name: &str, text: &str) -> Result<DateTime<Utc>, ApiError> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    if let Ok(day) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return Ok(day.and_time(chrono::NaiveTime::MIN).and_utc());
    }
    Err(ApiError::bad_request(format!(
        "invalid {name} {text:?}: expected an RFC 3339 time (e.g. 2026-03-08T09:00:00Z) or a \
         date (2026-03-08, midnight UTC)"
    )))
}

/// The range the query asks for, checked.
pub fn range(
    query: &BTreeMap<String, String>,
    now: DateTime<Utc>,
) -> Result<(DateTime<Utc>, DateTime<Utc>), ApiError> {
    for key in query.keys() {
        if key != "from" && key != "to" {
            return Err(ApiError::bad_request(format!(
                "unknown parameter {key:?}: expected from or to"
            )));
        }
    }
    let given = |name: &str| query.get(name).filter(|v| !v.is_empty());
    let to = match given("to") {
        Some(t) => parse_time("to", t)?,
        None => now,
    };
    let from = match given("from") {
        Some(t) => parse_time("from", t)?,
        None => to - chrono::Duration::days(DEFAULT_DAYS),
    };
    if from >= to {
        return Err(ApiError::bad_request(format!(
            "from ({}) must be before to ({})",
            from.to_rfc3339(),
            to.to_rfc3339()
        )));
    }
    if to - from > chrono::Duration::days(MAX_DAYS) {
        return Err(ApiError::bad_request(format!(
            "the range from {} to {} is over {MAX_DAYS} days: ask for a shorter one",
            from.to_rfc3339(),
            to.to_rfc3339()
        )));
    }
    Ok((from, to))
}

async fn sr(
    Need(..): Need<need::Viewer>,
    State(state): State<AppState>,
    Query(query): Query<BTreeMap<String, String>>,
) -> Result<Json<SrReport>, ApiError> {
    let now = state.clock.now();
    let (from, to) = range(&query, now)?;
    let store = &state.store;
    let mut cases = Vec::new();
    for case in store.cases_opened_between(from, to).await? {
        let timeline = store.case_timeline(case.id).await?;
        cases.push(CaseFacts::of(&case, &timeline));
    }
    let filter = IncidentFilter {
        from: Some(from),
        to: Some(to),
        limit: Some(1_000_000),
        ..Default::default()
    };
    let incidents: Vec<IncidentFacts> = store
        .list_incidents(&filter)
        .await?
        .iter()
        .filter(|i| i.merged_into.is_none())
        .map(IncidentFacts::of)
        .collect();
    let setup = state.setup();
    let mut rules: BTreeMap<i64, String> = BTreeMap::new();
    let mut pages = Vec::new();
    for page in store.pages_between(from, to).await? {
        if !page.event.calls_to_act() {
            continue;
        }
        let rule = match page.case_id {
            Some(_) => CASE_RULE.to_string(),
            None => match rules.get(&page.incident_id) {
                Some(rule) => rule.clone(),
                None => {
                    let rule = store
                        .impacts_of(page.incident_id)
                        .await?
                        .first()
                        .map_or_else(|| "-".to_string(), |i| i.rule.to_string());
                    rules.insert(page.incident_id, rule.clone());
                    rule
                }
            },
        };
        let zone = setup.paging.zone_for(&page.recipient.id, &[]);
        pages.push(PageFacts {
            rule,
            responder: page.recipient.id.clone(),
            at_night: at_night(page.created_at, zone),
        });
    }
    Ok(Json(report::build(
        from, to, now, &cases, &incidents, &pages,
    )))
}
