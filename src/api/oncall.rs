//! /api/v1/oncall: who is on call in every schedule, now or `?at=` an RFC 3339 time.

use axum::extract::{Query, State};
use axum::middleware;
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::auth::{need, require_token, Need};
use super::error::ApiError;
use super::AppState;
use crate::paging::Paging;

pub fn router(state: AppState) -> Router<AppState> {
    Router::new()
        .route("/api/v1/oncall", get(oncall))
        .route_layer(middleware::from_fn_with_state(state, require_token))
}

/// One schedule's pager holder. A schedule nobody holds (not started yet, no participants)
/// is listed with nulls: "nobody is on call" is what an engineer needs to see.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct OnCallEntry {
    pub schedule: String,
    pub responder: Option<String>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
}

pub fn on_call(paging: &Paging, at: DateTime<Utc>) -> Vec<OnCallEntry> {
    paging
        .rotations
        .iter()
        .map(|rotation| match rotation.on_call(at) {
            Some(who) => OnCallEntry {
                schedule: who.schedule,
                responder: Some(who.responder),
                since: Some(who.since),
                until: who.until,
            },
            None => OnCallEntry {
                schedule: rotation.name.clone(),
                responder: None,
                since: None,
                until: None,
            },
        })
        .collect()
}

#[derive(Deserialize)]
struct OnCallQuery {
    at: Option<String>,
}

async fn oncall(
    _: Need<need::Viewer>,
    State(state): State<AppState>,
    Query(q): Query<OnCallQuery>,
) -> Result<Json<Vec<OnCallEntry>>, ApiError> {
    let at = match q.at.as_deref() {
        None | Some("") => state.clock.now(),
        Some(text) => DateTime::parse_from_rfc3339(text)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|e| {
                ApiError::bad_request(format!("invalid at {text:?}: {e}; expected RFC 3339"))
            })?,
    };
    Ok(Json(on_call(
        &super::overrides::live_paging(&state).await?,
        at,
    )))
}
