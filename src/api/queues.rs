//! /api/v1/queues/{name}: a triage queue (Sev 4 routes with `queue:`), oldest first;
//! `POST …/take` hands its oldest unassigned incident to the caller.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::middleware;
use axum::routing::{get, post};
use axum::{Json, Router};

use super::auth::{need, require_token, Need};
use super::error::ApiError;
use super::AppState;
use crate::engine::Setup;
use crate::engine::{Input, Reply};
use crate::incident::IncidentView;

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct TakeBody {
    by: String,
}

/// The oldest unassigned incident of the queue, now the caller's (its `assignee`) and out of
/// every queue; 409 when the queue is empty.
async fn take(
    Need(caller, _): Need<need::Responder>,
    State(state): State<AppState>,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Json<IncidentView>, ApiError> {
    let setup = state.setup();
    if !queue_names(&setup).contains(&name) {
        return Err(ApiError::not_found(format!(
            "no queue {name:?}: no route names it"
        )));
    }
    let body: TakeBody = super::error::json_object(&body)?;
    let by = super::incidents::who(&caller, &body.by)?;
    let input = Input::TakeFromQueue {
        queue: name.clone(),
        by: by.clone(),
    };
    let Reply::Incident(id) = super::error::reply_error(state.engine.send(input).await?)? else {
        return Err(ApiError::internal("the engine did not say which incident"));
    };
    let (target, detail) = (format!("incident {id}"), format!("from queue {name}"));
    super::audit::record(&state, &caller, &by, "take", &target, &detail).await?;
    let incident = state
        .store
        .incident(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no incident {id}")))?;
    Ok(Json(IncidentView::new(&incident, &setup.external_url)))
}

/// Set `tocsin_triage_queue_oldest_age_seconds` from the store, as of `now` (at each scrape).
pub async fn refresh_oldest_ages(state: &AppState) {
    let setup = state.setup();
    let Ok(oldest) = state.store.queue_oldest().await else {
        return;
    };
    let now = state.clock.now();
    for name in queue_names(&setup) {
        let age = oldest
            .iter()
            .find(|(queue, _)| *queue == name)
            .map(|(_, opened)| (now - *opened).num_milliseconds().max(0) as f64 / 1000.0)
            .unwrap_or(0.0);
        state
            .metrics
            .triage_queue_oldest_age_seconds
            .with_label_values(&[&name])
            .set(age);
    }
}

pub fn router(state: AppState) -> Router<AppState> {
    Router::new()
        .route("/api/v1/queues/{name}", get(queue))
        .route("/api/v1/queues/{name}/take", post(take))
        .route_layer(middleware::from_fn_with_state(state, require_token))
}

/// Every queue the routes fill (with `queue: component`, each catalog service's), in
/// route order, without repeats.
pub fn queue_names(setup: &Setup) -> Vec<String> {
    crate::paging::queue::configured(&setup.config)
}

async fn queue(
    _: Need<need::Viewer>,
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Vec<IncidentView>>, ApiError> {
    let setup = state.setup();
    if !queue_names(&setup).contains(&name) {
        return Err(ApiError::not_found(format!(
            "no queue {name:?}: no route names it"
        )));
    }
    let incidents = state.store.queue(&name).await?;
    Ok(Json(
        incidents
            .iter()
            .map(|i| IncidentView::new(i, &setup.external_url))
            .collect(),
    ))
}
