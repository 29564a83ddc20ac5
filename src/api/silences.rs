//! /api/v1/silences: silences made at run time. Made, expired and listed here (and through
//! Alertmanager's API, `alertmanager.rs`); the leader applies them, every engine reads them.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::auth::{need, require_token, Caller, Need, Role};
use super::error::{json_object, reply_error, ApiError};
use super::AppState;
use crate::config::{Duration, Matcher};
use crate::engine::{Input, Reply};
use crate::paging::{silence, Silence};
use crate::store::IncidentFilter;

pub fn router(state: AppState) -> Router<AppState> {
    Router::new()
        .route("/api/v1/silences", get(list).post(create))
        .route("/api/v1/silences/{id}", get(show).delete(expire))
        .route_layer(middleware::from_fn_with_state(state, require_token))
}

/// A silence as the API shows it: what is stored, and its state now.
#[derive(Clone, Debug, Serialize)]
pub struct SilenceView {
    #[serde(flatten)]
    pub silence: Silence,
    pub state: &'static str,
}

impl SilenceView {
    pub fn new(silence: Silence, now: DateTime<Utc>) -> Self {
        SilenceView {
            state: silence.state(now).as_str(),
            silence,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    matchers: Vec<Matcher>,
    #[serde(default)]
    starts_at: Option<DateTime<Utc>>,
    #[serde(default)]
    ends_at: Option<DateTime<Utc>>,
    #[serde(default)]
    duration: Option<Duration>,
    created_by: String,
    comment: String,
}

#[derive(Deserialize)]
struct CreateQuery {
    dry_run: Option<String>,
}

#[derive(Deserialize)]
struct ListQuery {
    state: Option<String>,
}

/// A silence as asked for, checked: the one to make (its id new).
pub(crate) fn build(
    matchers: Vec<Matcher>,
    starts_at: Option<DateTime<Utc>>,
    ends_at: DateTime<Utc>,
    created_by: String,
    comment: String,
    now: DateTime<Utc>,
) -> Result<Silence, ApiError> {
    if created_by.trim().is_empty() || created_by.len() > 256 {
        return Err(ApiError::unprocessable(
            "`created_by` must name who makes the silence (1 to 256 characters)",
        ));
    }
    if comment.trim().is_empty() || comment.len() > super::incidents::MAX_NOTE {
        return Err(ApiError::unprocessable(
            "`comment` must say why (1 byte to 64 KiB)",
        ));
    }
    let starts_at = starts_at.unwrap_or(now);
    silence::check(&matchers, starts_at, ends_at, now).map_err(ApiError::unprocessable)?;
    Ok(Silence {
        id: uuid::Uuid::new_v4().to_string(),
        matchers,
        starts_at,
        ends_at,
        created_by,
        comment,
        updated_at: now,
    })
}

/// The open incidents `silence` would hold (whatever its times), by id.
pub(crate) async fn would_hold(state: &AppState, silence: &Silence) -> Result<Vec<i64>, ApiError> {
    let filter = IncidentFilter {
        open: true,
        limit: Some(100_000),
        ..IncidentFilter::default()
    };
    let mut out = Vec::new();
    for incident in state.store.list_incidents(&filter).await? {
        let impacts = state.store.impacts_of(incident.id).await?;
        if silence.matches_all(&silence::targets(&incident, &impacts)) {
            out.push(incident.id);
        }
    }
    out.sort_unstable();
    Ok(out)
}

/// Hand a new silence to the engine; answers once it is stored.
pub(crate) async fn put(state: &AppState, silence: Silence) -> Result<(), ApiError> {
    reply_error(state.engine.send(Input::PutSilence(silence)).await?).map(drop)
}

/// Expire silence `id` now: 404 when there is none, 409 when it has ended already.
/// Expire silence `id` for `caller`: a silence of another person's needs the admin role.
pub(crate) async fn expire_now(
    state: &AppState,
    caller: &Caller,
    id: &str,
) -> Result<Silence, ApiError> {
    let found = state
        .store
        .silence(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no silence {id}")))?;
    if caller.name.as_deref() != Some(found.created_by.as_str()) {
        caller.need(Role::Admin).map_err(|_| {
            ApiError::new(
                StatusCode::FORBIDDEN,
                format!(
                    "silence {id} was made by {:?}: expiring another's silence needs the admin role",
                    found.created_by
                ),
            )
        })?;
    }
    if found.state(state.clock.now()) == silence::SilenceState::Expired {
        return Err(already_expired(id));
    }
    match state
        .engine
        .send(Input::ExpireSilence { id: id.to_string() })
        .await?
    {
        Reply::NotFound(_) => return Err(already_expired(id)),
        reply => reply_error(reply).map(drop)?,
    }
    let expired = state
        .store
        .silence(id)
        .await?
        .ok_or_else(|| ApiError::internal("the silence was expired but cannot be read back"))?;
    let actor = caller.by(&found.created_by);
    let detail = format!("made by {}: {}", found.created_by, found.comment);
    let target = format!("silence {id}");
    super::audit::record(state, caller, &actor, "silence_expire", &target, &detail).await?;
    Ok(expired)
}

/// Record a silence made through the API in the audit log.
pub(crate) async fn audit_made(
    state: &AppState,
    caller: &Caller,
    silence: &Silence,
) -> Result<(), ApiError> {
    let matchers: Vec<String> = silence.matchers.iter().map(|m| m.to_string()).collect();
    let detail = format!(
        "{{{}}} until {}: {}",
        matchers.join(", "),
        silence.ends_at.to_rfc3339(),
        silence.comment
    );
    let target = format!("silence {}", silence.id);
    super::audit::record(
        state,
        caller,
        &silence.created_by,
        "silence_create",
        &target,
        &detail,
    )
    .await?;
    Ok(())
}

fn already_expired(id: &str) -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        format!("silence {id} has already ended"),
    )
}

async fn create(
    Need(caller, _): Need<need::Responder>,
    State(state): State<AppState>,
    Query(q): Query<CreateQuery>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let dry_run = match q.dry_run.as_deref() {
        None | Some("false") => false,
        Some("true") | Some("") => true,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "invalid dry_run {other:?}: expected true or false"
            )))
        }
    };
    let body: CreateBody = json_object(&body)?;
    let now = state.clock.now();
    let starts = body.starts_at.unwrap_or(now);
    let ends_at = match (body.ends_at, body.duration) {
        (Some(end), None) => end,
        (None, Some(d)) => starts + d.chrono(),
        (Some(_), Some(_)) => {
            return Err(ApiError::unprocessable(
                "give `ends_at` or `duration`, not both",
            ))
        }
        (None, None) => {
            return Err(ApiError::unprocessable(
                "give `ends_at` (RFC 3339) or `duration` (e.g. \"2h\")",
            ))
        }
    };
    let silence = build(
        body.matchers,
        body.starts_at,
        ends_at,
        caller.by(&body.created_by),
        body.comment,
        now,
    )?;
    if dry_run {
        let incidents = would_hold(&state, &silence).await?;
        return Ok(Json(serde_json::json!({ "incidents": incidents })).into_response());
    }
    put(&state, silence.clone()).await?;
    audit_made(&state, &caller, &silence).await?;
    Ok((StatusCode::CREATED, Json(SilenceView::new(silence, now))).into_response())
}

async fn list(
    Need(..): Need<need::Viewer>,
    State(state): State<AppState>,
    Query(q): Query<ListQuery>,
) -> Result<Json<Vec<SilenceView>>, ApiError> {
    let wanted = match q.state.as_deref() {
        None | Some("") => None,
        Some(s @ ("active" | "pending" | "expired")) => Some(s.to_string()),
        Some(s) => {
            return Err(ApiError::bad_request(format!(
                "invalid state {s:?}: expected active, pending or expired"
            )))
        }
    };
    let now = state.clock.now();
    Ok(Json(
        state
            .store
            .silences(None)
            .await?
            .into_iter()
            .map(|s| SilenceView::new(s, now))
            .filter(|v| wanted.as_deref().is_none_or(|w| w == v.state))
            .collect(),
    ))
}

async fn show(
    Need(..): Need<need::Viewer>,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<SilenceView>, ApiError> {
    let silence = state
        .store
        .silence(&id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no silence {id}")))?;
    Ok(Json(SilenceView::new(silence, state.clock.now())))
}

async fn expire(
    Need(caller, _): Need<need::Responder>,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<SilenceView>, ApiError> {
    let silence = expire_now(&state, &caller, &id).await?;
    Ok(Json(SilenceView::new(silence, state.clock.now())))
}
