//! `GET /api/v1/whoami`: the name and role of the token in use, so a client (the CLI's
//! `--by`, the dashboard) acts under the signed-in name without asking for it.

use axum::middleware;
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;

use super::auth::{need, require_token, Need};
use super::AppState;

pub fn router(state: AppState) -> Router<AppState> {
    Router::new()
        .route("/api/v1/whoami", get(whoami))
        .route_layer(middleware::from_fn_with_state(state, require_token))
}

/// The caller as the engine sees it: `name` is null for a nameless token (and with auth
/// off), whose actions go under the `by` they give.
#[derive(Serialize)]
struct Me {
    name: Option<String>,
    role: String,
}

async fn whoami(Need(caller, _): Need<need::Viewer>) -> Json<Me> {
    Json(Me {
        name: caller.name,
        role: caller.role.to_string(),
    })
}
