//! /api/v1/incidents: list, show, ack, resolve, set severity, add a note (and, in
//! `declare`, incidents by hand).

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::middleware;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use super::auth::{need, require_token, Caller, Need};
use super::error::{json_object, reply_error, ApiError};
use super::AppState;
use crate::engine::Input;
use crate::incident::{Impact, IncidentView, Status, TimelineEntry};
use crate::store::IncidentFilter;

pub fn router(state: AppState) -> Router<AppState> {
    Router::new()
        .route("/api/v1/incidents", get(list).post(super::declare::declare))
        .route("/api/v1/incidents/{id}", get(show))
        .route("/api/v1/incidents/{id}/ack", post(ack))
        .route("/api/v1/incidents/{id}/resolve", post(resolve))
        .route("/api/v1/incidents/{id}/severity", post(severity))
        .route("/api/v1/incidents/{id}/notes", post(note))
        .route("/api/v1/incidents/{id}/tsg", post(super::tsg::report))
        .route(
            "/api/v1/incidents/{id}/escalate",
            post(super::declare::escalate),
        )
        .route(
            "/api/v1/incidents/{id}/responders",
            post(super::declare::add_responder),
        )
        .route(
            "/api/v1/incidents/{id}/assign",
            post(super::declare::assign),
        )
        .route_layer(middleware::from_fn_with_state(state, require_token))
}

/// The parameters `GET /api/v1/incidents` takes.
const LIST_PARAMETERS: [&str; 10] = [
    "cursor", "limit", "q", "status", "severity", "service", "region", "customer", "from", "to",
];

/// A page of the list.
#[derive(Serialize)]
pub struct IncidentPage {
    pub incidents: Vec<IncidentView>,
    /// The `cursor` of the next page; `null` on the last.
    pub next: Option<String>,
}

/// Newest first, over the whole history; filters and a cursor (see `api::cursor`).
async fn list(
    Need(..): Need<need::Viewer>,
    State(state): State<AppState>,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Result<Json<IncidentPage>, ApiError> {
    let mut q = std::collections::HashMap::new();
    for (name, value) in pairs {
        if !LIST_PARAMETERS.contains(&name.as_str()) {
            return Err(ApiError::bad_request(format!(
                "unknown parameter {name:?}: expected one of {}",
                LIST_PARAMETERS.join(", ")
            )));
        }
        if q.insert(name.clone(), value).is_some() {
            return Err(ApiError::bad_request(format!(
                "parameter {name:?} is given twice: expected it once"
            )));
        }
    }
    let text = |name: &str| q.get(name).map(String::as_str).filter(|v| !v.is_empty());
    let status = match text("status") {
        None | Some("open") => None,
        Some(s) => Some(Status::parse(s).ok_or_else(|| {
            ApiError::bad_request(format!(
                "invalid status {s:?}: expected triggered, acknowledged, resolved or open"
            ))
        })?),
    };
    let severity = match text("severity") {
        None => None,
        Some(s) => Some(s.parse::<u8>().ok().filter(|n| *n <= 4).ok_or_else(|| {
            ApiError::bad_request(format!("invalid severity {s:?}: expected 0 to 4"))
        })?),
    };
    let time = |name: &str| -> Result<Option<chrono::DateTime<chrono::Utc>>, ApiError> {
        text(name)
            .map(|t| {
                chrono::DateTime::parse_from_rfc3339(t)
                    .map(|t| t.with_timezone(&chrono::Utc))
                    .map_err(|_| {
                        ApiError::bad_request(format!(
                            "invalid {name} {t:?}: expected an RFC 3339 time, e.g. \
                             2026-03-08T09:00:00Z"
                        ))
                    })
            })
            .transpose()
    };
    let limit = super::cursor::limit(text("limit"))?;
    let filter = IncidentFilter {
        status,
        open: text("status") == Some("open"),
        severity,
        limit: Some(limit + 1),
        before: super::cursor::cursor(text("cursor"))?,
        text: text("q").map(str::to_string),
        service: text("service").map(str::to_string),
        region: text("region").map(str::to_string),
        customer: text("customer").map(str::to_string),
        from: time("from")?,
        to: time("to")?,
    };
    let external = state.setup().external_url.clone();
    let incidents = state.store.list_incidents(&filter).await?;
    let (incidents, next) = super::cursor::page(incidents, limit, |i| i.id);
    Ok(Json(IncidentPage {
        incidents: incidents
            .iter()
            .map(|i| IncidentView::new(i, &external))
            .collect(),
        next,
    }))
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
    Need(..): Need<need::Viewer>,
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
    #[serde(default)]
    by: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ResolveBody {
    #[serde(default)]
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
    #[serde(default)]
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
    #[serde(default)]
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

/// Who acts: a named token's name (the body's `by` is ignored); else the body's `by`, which
/// must then name someone.
pub(crate) fn who(caller: &Caller, said: &str) -> Result<String, ApiError> {
    if let Some(name) = &caller.name {
        return Ok(name.clone());
    }
    check_by(said)?;
    Ok(said.to_string())
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

/// Hand a person's action to the engine, and record it in the audit log once done. An
/// incident that exists but is resolved is a 409 (the core forgets resolved incidents, so
/// it answers "not open"); one that never existed a 404.
pub(crate) async fn perform(
    state: &AppState,
    caller: &Caller,
    id: i64,
    input: Input,
) -> Result<(), ApiError> {
    let described = super::audit::describe(&input)
        .map(|(action, actor, detail)| (action, actor.to_string(), detail));
    let target = format!("incident {id}");
    let reply = match state.engine.send(input).await {
        // Taken in memory, written once the store recovers: so is its audit entry.
        Err(e @ crate::engine::EngineError::Store(_)) => {
            if let Some((action, actor, detail)) = &described {
                super::audit::record_once_writable(state, caller, actor, action, &target, detail);
            }
            return Err(e.into());
        }
        reply => reply?,
    };
    match reply {
        crate::engine::Reply::NotFound(_) => {
            return Err(match state.store.incident(id).await? {
                Some(_) => {
                    ApiError::new(StatusCode::CONFLICT, format!("incident {id} is resolved"))
                }
                None => ApiError::not_found(format!("no incident {id}")),
            })
        }
        reply => reply_error(reply).map(drop)?,
    }
    if let Some((action, actor, detail)) = described {
        super::audit::record(state, caller, &actor, action, &target, &detail).await?;
    }
    Ok(())
}

pub(super) async fn act(
    state: &AppState,
    caller: &Caller,
    id: i64,
    input: Input,
) -> Result<Json<IncidentView>, ApiError> {
    perform(state, caller, id, input).await?;
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
    Need(caller, _): Need<need::Responder>,
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<IncidentView>, ApiError> {
    let id = parse_id(&id)?;
    let body: AckBody = json_object(&body)?;
    let by = who(&caller, &body.by)?;
    act(
        &state,
        &caller,
        id,
        Input::Ack {
            incident_id: id,
            by,
        },
    )
    .await
}

async fn resolve(
    Need(caller, _): Need<need::Responder>,
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<IncidentView>, ApiError> {
    let id = parse_id(&id)?;
    let body: ResolveBody = json_object(&body)?;
    let by = who(&caller, &body.by)?;
    act(
        &state,
        &caller,
        id,
        Input::Resolve {
            incident_id: id,
            by,
            note: body.note,
        },
    )
    .await
}

async fn severity(
    Need(caller, _): Need<need::Admin>,
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<IncidentView>, ApiError> {
    let id = parse_id(&id)?;
    let body: SeverityBody = json_object(&body)?;
    let by = who(&caller, &body.by)?;
    let severity = check_severity(body.severity)?;
    act(
        &state,
        &caller,
        id,
        Input::SetSeverity {
            incident_id: id,
            severity,
            by,
            reason: body.reason,
        },
    )
    .await
}

/// 201 with the timeline entry the note became.
async fn note(
    Need(caller, _): Need<need::Responder>,
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<(StatusCode, Json<TimelineEntry>), ApiError> {
    let id = parse_id(&id)?;
    let body: NoteBody = json_object(&body)?;
    let by = who(&caller, &body.by)?;
    check_note(&body.text)?;
    let input = Input::Note {
        incident_id: id,
        by: by.clone(),
        text: body.text.clone(),
    };
    perform(&state, &caller, id, input).await?;
    // The engine answers once the entry is stored, so it is there to read back.
    let entry = state
        .store
        .timeline_of(id)
        .await?
        .into_iter()
        .rev()
        .find(|e| e.kind == "note" && e.actor == by && e.message == body.text)
        .ok_or_else(|| ApiError::internal("the note was taken but cannot be read back"))?;
    Ok((StatusCode::CREATED, Json(entry)))
}
