//! /api/v1/schedules/{name}/overrides: on-call overrides made at run time. The leader
//! applies them (pages reach the override's responder from its start); every engine reads
//! them from the store.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::middleware;
use axum::routing::{delete, get};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::auth::{need, require_token, Caller, Need};
use super::error::{json_object, reply_error, ApiError};
use super::AppState;
use crate::engine::{Input, Reply};
use crate::paging::{Paging, ScheduleOverride};

pub fn router(state: AppState) -> Router<AppState> {
    Router::new()
        .route("/api/v1/schedules/{name}/overrides", get(list).post(create))
        .route("/api/v1/schedules/{name}/overrides/{id}", delete(remove))
        .route_layer(middleware::from_fn_with_state(state, require_token))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    responder: String,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    #[serde(default)]
    created_by: Option<String>,
}

/// The config's paging with the overrides in the store: who is on call as the leader sees it.
pub async fn live_paging(state: &AppState) -> Result<Paging, ApiError> {
    let overrides = state.store.overrides(None).await?;
    Ok(state.setup().paging.with_live(&[], &overrides))
}

pub(crate) fn known_schedule(state: &AppState, name: &str) -> Result<(), ApiError> {
    match state.setup().paging.rotation(name) {
        Some(_) => Ok(()),
        None => Err(ApiError::not_found(format!(
            "no schedule {name:?} in the config"
        ))),
    }
}

async fn create(
    Need(caller, _): Need<need::Admin>,
    State(state): State<AppState>,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<(StatusCode, Json<ScheduleOverride>), ApiError> {
    known_schedule(&state, &name)?;
    let body: CreateBody = json_object(&body)?;
    let said = body.created_by.unwrap_or_default();
    let made = add(
        &state,
        &caller,
        name,
        body.responder,
        body.start,
        body.end,
        &said,
    )
    .await?;
    Ok((StatusCode::CREATED, Json(made)))
}

/// Put `responder` on call in `schedule` from `start` to `end` for `caller` (who may: the
/// admin role), and record it in the audit log. `said` is who a nameless caller says acts.
pub(crate) async fn add(
    state: &AppState,
    caller: &Caller,
    schedule: String,
    responder: String,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    said: &str,
) -> Result<ScheduleOverride, ApiError> {
    known_schedule(state, &schedule)?;
    let now = state.clock.now();
    if !state.setup().paging.responders.contains_key(&responder) {
        return Err(ApiError::unprocessable(format!(
            "`responder` {responder:?} is not a configured responder"
        )));
    }
    if end <= start {
        return Err(ApiError::unprocessable(
            "`end` must be after `start` (RFC 3339 times)",
        ));
    }
    if end <= now {
        return Err(ApiError::unprocessable("`end` is in the past"));
    }
    let created_by = caller.by(said);
    if created_by.len() > 256 {
        return Err(ApiError::unprocessable(
            "`created_by` is at most 256 characters",
        ));
    }
    let made = ScheduleOverride {
        id: uuid::Uuid::new_v4().to_string(),
        schedule,
        responder,
        start,
        end,
        created_by,
        created_at: now,
    };
    reply_error(state.engine.send(Input::PutOverride(made.clone())).await?)?;
    let detail = format!(
        "{} on call in {} from {} to {}",
        made.responder,
        made.schedule,
        made.start.to_rfc3339(),
        made.end.to_rfc3339()
    );
    let target = format!("override {}", made.id);
    super::audit::record(
        state,
        caller,
        &made.created_by,
        "override_create",
        &target,
        &detail,
    )
    .await?;
    Ok(made)
}

async fn list(
    Need(..): Need<need::Viewer>,
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Vec<ScheduleOverride>>, ApiError> {
    known_schedule(&state, &name)?;
    Ok(Json(state.store.overrides(Some(&name)).await?))
}

async fn remove(
    Need(caller, _): Need<need::Admin>,
    State(state): State<AppState>,
    Path((name, id)): Path<(String, String)>,
) -> Result<Json<ScheduleOverride>, ApiError> {
    Ok(Json(delete_one(&state, &caller, &name, &id).await?))
}

/// Delete override `id` of `schedule` for `caller`, and record it in the audit log.
pub(crate) async fn delete_one(
    state: &AppState,
    caller: &Caller,
    name: &str,
    id: &str,
) -> Result<ScheduleOverride, ApiError> {
    let found = state
        .store
        .schedule_override(id)
        .await?
        .filter(|o| o.schedule == name)
        .ok_or_else(|| ApiError::not_found(format!("no override {id} of schedule {name:?}")))?;
    match state
        .engine
        .send(Input::DeleteOverride { id: id.to_string() })
        .await?
    {
        Reply::NotFound(m) => return Err(ApiError::not_found(m)),
        reply => reply_error(reply).map(drop)?,
    }
    let detail = format!(
        "{} on call in {} from {} to {}",
        found.responder,
        found.schedule,
        found.start.to_rfc3339(),
        found.end.to_rfc3339()
    );
    let actor = caller.by(&found.created_by);
    let target = format!("override {id}");
    super::audit::record(state, caller, &actor, "override_remove", &target, &detail).await?;
    Ok(found)
}
