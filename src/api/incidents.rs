//! /api/v1/incidents: list, show, ack, resolve, set severity.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::middleware;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use super::auth::require_token;
use super::error::{json_body, reply_error, ApiError};
use super::AppState;
use crate::engine::Input;
use crate::incident::{Impact, IncidentView, Status, TimelineEntry};
use crate::store::IncidentFilter;

pub fn router(state: AppState) -> Router<AppState> {
    Router::new()
        .route("/api/v1/incidents", get(list))
        .route("/api/v1/incidents/{id}", get(show))
        .route("/api/v1/incidents/{id}/ack", post(ack))
        .route("/api/v1/incidents/{id}/resolve", post(resolve))
        .route("/api/v1/incidents/{id}/severity", post(severity))
        .route_layer(middleware::from_fn_with_state(state, require_token))
}

#[derive(Deserialize)]
struct ListQuery {
    status: Option<String>,
    severity: Option<String>,
    limit: Option<String>,
}

async fn list(
    State(state): State<AppState>,
    Query(q): Query<ListQuery>,
) -> Result<Json<Vec<IncidentView>>, ApiError> {
    let status = match q.status.as_deref() {
        None | Some("") => None,
        Some("open") => None,
        Some(s) => Some(Status::parse(s).ok_or_else(|| {
            ApiError::bad_request(format!(
                "invalid status {s:?}: expected triggered, acknowledged, resolved or open"
            ))
        })?),
    };
    let severity = match q.severity.as_deref() {
        None | Some("") => None,
        Some(s) => Some(s.parse::<u8>().ok().filter(|n| *n <= 4).ok_or_else(|| {
            ApiError::bad_request(format!("invalid severity {s:?}: expected 0 to 4"))
        })?),
    };
    let limit = match q.limit.as_deref() {
        None | Some("") => 100,
        Some(s) => s
            .parse::<i64>()
            .ok()
            .filter(|n| (1..=10_000).contains(n))
            .ok_or_else(|| {
                ApiError::bad_request(format!("invalid limit {s:?}: expected 1 to 10000"))
            })?,
    };
    let filter = IncidentFilter {
        status,
        open: q.status.as_deref() == Some("open"),
        severity,
        limit: Some(limit),
    };
    let external = state.setup().external_url.clone();
    let incidents = state.store.list_incidents(&filter).await?;
    Ok(Json(
        incidents
            .iter()
            .map(|i| IncidentView::new(i, &external))
            .collect(),
    ))
}

#[derive(Serialize)]
pub struct IncidentDetail {
    #[serde(flatten)]
    pub incident: IncidentView,
    pub impacts: Vec<Impact>,
    pub timeline: Vec<TimelineEntry>,
}

fn parse_id(id: &str) -> Result<i64, ApiError> {
    id.parse::<i64>()
        .map_err(|_| ApiError::not_found(format!("no incident {id:?}: ids are numbers")))
}

async fn show(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<IncidentDetail>, ApiError> {
    let id = parse_id(&id)?;
    let incident = state
        .store
        .incident(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no incident {id}")))?;
    let external = state.setup().external_url.clone();
    Ok(Json(IncidentDetail {
        incident: IncidentView::new(&incident, &external),
        impacts: state.store.impacts_of(id).await?,
        timeline: state.store.timeline_of(id).await?,
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AckBody {
    by: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ResolveBody {
    by: String,
    #[serde(default)]
    note: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SeverityBody {
    severity: Option<u8>,
    by: String,
    #[serde(default)]
    reason: Option<String>,
}

fn check_by(by: &str) -> Result<(), ApiError> {
    if by.trim().is_empty() || by.len() > 256 {
        return Err(ApiError::unprocessable(
            "`by` must name who acts (1 to 256 characters)",
        ));
    }
    Ok(())
}

/// An action on an incident that exists but is resolved is a 409; one that does not exist a 404.
async fn act(state: &AppState, id: i64, input: Input) -> Result<Json<IncidentView>, ApiError> {
    match state.engine.send(input).await? {
        crate::engine::Reply::NotFound(_) => {
            return Err(match state.store.incident(id).await? {
                Some(_) => {
                    ApiError::new(StatusCode::CONFLICT, format!("incident {id} is resolved"))
                }
                None => ApiError::not_found(format!("no incident {id}")),
            })
        }
        reply => {
            reply_error(reply)?;
        }
    }
    let incident = state
        .store
        .incident(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no incident {id}")))?;
    Ok(Json(IncidentView::new(
        &incident,
        &state.setup().external_url,
    )))
}

async fn ack(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<IncidentView>, ApiError> {
    let id = parse_id(&id)?;
    let body: AckBody = json_body(&body)?;
    check_by(&body.by)?;
    act(
        &state,
        id,
        Input::Ack {
            incident_id: id,
            by: body.by,
        },
    )
    .await
}

async fn resolve(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<IncidentView>, ApiError> {
    let id = parse_id(&id)?;
    let body: ResolveBody = json_body(&body)?;
    check_by(&body.by)?;
    act(
        &state,
        id,
        Input::Resolve {
            incident_id: id,
            by: body.by,
            note: body.note,
        },
    )
    .await
}

async fn severity(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<IncidentView>, ApiError> {
    let id = parse_id(&id)?;
    let body: SeverityBody = json_body(&body)?;
    check_by(&body.by)?;
    if body.severity.is_some_and(|s| s > 4) {
        return Err(ApiError::unprocessable(
            "severity must be 0 to 4, or null to unpin",
        ));
    }
    act(
        &state,
        id,
        Input::SetSeverity {
            incident_id: id,
            severity: body.severity,
            by: body.by,
            reason: body.reason,
        },
    )
    .await
}
