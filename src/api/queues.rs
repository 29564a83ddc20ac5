//! /api/v1/queues/{name}: a triage queue (Sev 4 routes with `queue:`), oldest first.

use axum::extract::{Path, State};
use axum::middleware;
use axum::routing::get;
use axum::{Json, Router};

use super::auth::{need, require_token, Need};
use super::error::ApiError;
use super::AppState;
use crate::engine::Setup;
use crate::incident::IncidentView;

pub fn router(state: AppState) -> Router<AppState> {
    Router::new()
        .route("/api/v1/queues/{name}", get(queue))
        .route_layer(middleware::from_fn_with_state(state, require_token))
}

/// Every queue some route names, in route order, without repeats.
pub fn queue_names(setup: &Setup) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for queue in setup.config.routes.iter().filter_map(|r| r.queue.as_ref()) {
        if !names.contains(queue) {
            names.push(queue.clone());
        }
    }
    names
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
