//! The Prometheus admin plane: /metrics, /-/healthy, /-/ready, /-/reload.

use std::sync::atomic::Ordering;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::Router;
use tokio::sync::oneshot;

use super::error::ApiError;
use super::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/-/healthy", get(healthy))
        .route("/-/ready", get(ready))
        .route("/-/reload", post(reload))
}

async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(),
    )
}

async fn healthy() -> &'static str {
    "tocsin is healthy.\n"
}

async fn ready(State(state): State<AppState>) -> impl IntoResponse {
    if state.ready.load(Ordering::Acquire) {
        (StatusCode::OK, "tocsin is ready.\n")
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "tocsin is not ready: the store or the rules are not loaded yet.\n",
        )
    }
}

async fn reload(State(state): State<AppState>) -> Result<&'static str, ApiError> {
    let (tx, rx) = oneshot::channel();
    state
        .reload
        .send(tx)
        .await
        .map_err(|_| ApiError::internal("the engine is shutting down"))?;
    match rx.await {
        Ok(Ok(())) => Ok("config reloaded\n"),
        Ok(Err(why)) => Err(ApiError::internal(format!(
            "reload refused, old config still running: {why}"
        ))),
        Err(_) => Err(ApiError::internal("the engine is shutting down")),
    }
}
