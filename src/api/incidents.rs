//! /api/v1/incidents: list, show, ack, resolve, set severity, add a note.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::middleware;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use super::auth::require_token;
use super::error::{json_object, reply_error, ApiError};
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
        .route("/api/v1/incidents/{id}/notes", post(note))
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
    /// Support cases linked to the incident (its CRIs' cases), with their status.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cases: Vec<serde_json::Value>,
}

pub(crate) fn parse_id(id: &str) -> Result<i64, ApiError> {
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
        cases: state
            .store
            .cases_of_incident(id)
            .await?
            .iter()
            .map(|c| {
                serde_json::json!({
                    "id": c.id, "status": c.status, "sr_severity": c.sr_severity,
                    "customer": c.customer, "owner": c.owner,
                    "url": format!("{external}/api/v1/cases/{}", c.id),
                })
            })
            .collect(),
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
    /// Absent is a 400 (the field is required); `null` unpins.
    #[serde(deserialize_with = "present")]
    severity: Option<i64>,
    by: String,
    #[serde(default)]
    reason: Option<String>,
}

/// Makes an `Option` field required while still accepting `null` (serde treats a missing
/// `Option` as `None` otherwise, and a forgotten `severity` would silently unpin). Anything
/// else is refused saying what the field takes.
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    use serde::de::{Error, Unexpected};
    use serde_json::Value;
    let value = Value::deserialize(d)?;
    let unexpected = match &value {
        Value::Null => return Ok(None),
        Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => return Ok(Some(i)),
            (None, Some(u), _) => Unexpected::Unsigned(u),
            (_, _, f) => Unexpected::Float(f.unwrap_or(f64::NAN)),
        },
        Value::Bool(b) => Unexpected::Bool(*b),
        Value::String(s) => Unexpected::Str(s),
        Value::Array(_) => Unexpected::Seq,
        Value::Object(_) => Unexpected::Map,
    };
    Err(D::Error::invalid_type(
        unexpected,
        &"an integer from 0 (worst) to 4, or null to unpin",
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NoteBody {
    by: String,
    text: String,
}

/// Longest note text (as docs/api.md bounds a CRI summary).
pub(crate) const MAX_NOTE: usize = 64 * 1024;

pub(crate) fn check_by(by: &str) -> Result<(), ApiError> {
    if by.trim().is_empty() || by.len() > 256 {
        return Err(ApiError::unprocessable(
            "`by` must name who acts (1 to 256 characters)",
        ));
    }
    Ok(())
}

pub(crate) fn check_note(text: &str) -> Result<(), ApiError> {
    if text.trim().is_empty() || text.len() > MAX_NOTE {
        return Err(ApiError::unprocessable(
            "`text` must say something (1 byte to 64 KiB)",
        ));
    }
    Ok(())
}

pub(crate) fn check_severity(severity: Option<i64>) -> Result<Option<u8>, ApiError> {
    match severity {
        None => Ok(None),
        Some(s @ 0..=4) => Ok(Some(s as u8)),
        Some(s) => Err(ApiError::unprocessable(format!(
            "severity {s} is out of range: 0 (worst) to 4, or null to unpin"
        ))),
    }
}

/// Hand a person's action to the engine. An incident that exists but is resolved is a 409
/// (the core forgets resolved incidents, so it answers "not open"); one that never existed a 404.
pub(crate) async fn perform(state: &AppState, id: i64, input: Input) -> Result<(), ApiError> {
    match state.engine.send(input).await? {
        crate::engine::Reply::NotFound(_) => Err(match state.store.incident(id).await? {
            Some(_) => ApiError::new(StatusCode::CONFLICT, format!("incident {id} is resolved")),
            None => ApiError::not_found(format!("no incident {id}")),
        }),
        reply => reply_error(reply).map(drop),
    }
}

async fn act(state: &AppState, id: i64, input: Input) -> Result<Json<IncidentView>, ApiError> {
    perform(state, id, input).await?;
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
    let body: AckBody = json_object(&body)?;
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
    let body: ResolveBody = json_object(&body)?;
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
    let body: SeverityBody = json_object(&body)?;
    check_by(&body.by)?;
    let severity = check_severity(body.severity)?;
    act(
        &state,
        id,
        Input::SetSeverity {
            incident_id: id,
            severity,
            by: body.by,
            reason: body.reason,
        },
    )
    .await
}

/// 201 with the timeline entry the note became.
async fn note(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<(StatusCode, Json<TimelineEntry>), ApiError> {
    let id = parse_id(&id)?;
    let body: NoteBody = json_object(&body)?;
    check_by(&body.by)?;
    check_note(&body.text)?;
    let input = Input::Note {
        incident_id: id,
        by: body.by.clone(),
        text: body.text.clone(),
    };
    perform(&state, id, input).await?;
    // The engine answers once the entry is stored, so it is there to read back.
    let entry = state
        .store
        .timeline_of(id)
        .await?
        .into_iter()
        .rev()
        .find(|e| e.kind == "note" && e.actor == body.by && e.message == body.text)
        .ok_or_else(|| ApiError::internal("the note was taken but cannot be read back"))?;
    Ok((StatusCode::CREATED, Json(entry)))
}
