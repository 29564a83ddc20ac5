//! The Prometheus admin plane: /metrics, /-/healthy, /-/ready, /-/reload.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use tokio::sync::oneshot;

use super::auth::{need, Need};
use super::error::{ApiError, KeepBody};
use super::AppState;
use crate::metrics::Metrics;

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/metrics",
            get(|State(state): State<AppState>| async move {
                // `tocsin_ready`: what /-/ready would answer now.
                let ready = readiness(&state).await.is_ok();
                state.metrics.ready.set(i64::from(ready));
                super::queues::refresh_oldest_ages(&state).await;
                exposition(&state.metrics)
            }),
        )
        .route("/-/healthy", get(healthy))
        .route("/-/ready", get(ready))
        .route("/-/reload", post(reload))
}

/// What the server answers while the store opens and the rules load: the process is alive
/// and its metrics are readable, but it is not ready and has no API yet.
pub fn starting_router(metrics: Arc<Metrics>) -> Router {
    let routes = Router::new()
        .route("/metrics", get(move || async move { exposition(&metrics) }))
        .route("/-/healthy", get(healthy))
        .route("/-/ready", get(|| async { not_ready() }))
        .fallback(|| async {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "tocsin is starting: the store is not open or the rules are not loaded yet",
            )
        });
    super::error::with_json_errors(routes)
}

fn exposition(metrics: &Metrics) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        metrics.render(),
    )
}

async fn healthy() -> &'static str {
    "tocsin is healthy.\n"
}

/// Plain text, as Prometheus's own `/-/ready`: probes read the status code.
fn not_ready() -> Response {
    let mut response = (
        StatusCode::SERVICE_UNAVAILABLE,
        "tocsin is not ready: the store or the rules are not loaded yet.\n",
    )
        .into_response();
    response.extensions_mut().insert(KeepBody);
    response
}

async fn ready(State(state): State<AppState>) -> Response {
    match readiness(&state).await {
        Ok(text) => (StatusCode::OK, text).into_response(),
        Err(None) => not_ready(),
        Err(Some(problem)) => {
            let mut response = (
                StatusCode::SERVICE_UNAVAILABLE,
                format!("tocsin is not ready: {problem}\n"),
            )
                .into_response();
            response.extensions_mut().insert(KeepBody);
            response
        }
    }
}

/// What `/-/ready` answers: Ok with its text, or why not (None: still starting).
async fn readiness(state: &AppState) -> Result<String, Option<String>> {
    if !state.ready.load(Ordering::Acquire) {
        return Err(None);
    }
    // The store's health is what the leader's writes found. An engine that does not lead
    // (PostgreSQL) writes nothing of its own, pages nothing and serves through the store:
    // when the store does not answer, it can neither take the lead nor pass an input on,
    // so it is not ready.
    let leading = state.role.borrow().leader;
    let problem = if leading {
        state.store_health.problem()
    } else {
        unreachable_store(state).await
    };
    match problem {
        // Followers serve the API and the dashboard too, so they are ready; the answer
        // says which engine pages.
        None => Ok(format!(
            "tocsin is ready: {} ({}).\n",
            state.role_text(),
            state.engine_id
        )),
        // Still paging from memory, but what it does is not durable: not ready.
        Some(problem) => Err(Some(problem)),
    }
}

/// How long `/-/ready` waits for the store of an engine that does not lead.
const STORE_CHECK: std::time::Duration = std::time::Duration::from_secs(2);

/// Why the store does not answer this engine, or None when it does.
async fn unreachable_store(state: &AppState) -> Option<String> {
    let why = match tokio::time::timeout(STORE_CHECK, state.store.lease_remaining_ms()).await {
        Ok(Ok(_)) => return None,
        Ok(Err(e)) => e.to_string(),
        Err(_) => format!("no answer within {STORE_CHECK:?}"),
    };
    Some(format!(
        "the store is not answering ({why}): this engine cannot take the lead or pass inputs \
         on, and pages nothing"
    ))
}

/// Answers once the reload is done: 200, or 500 naming every error (file:line:column).
/// Needs the admin role; a reload reads the tokens file again. Recorded in the audit log,
/// refused or not.
async fn reload(
    Need(caller, _): Need<need::Admin>,
    State(state): State<AppState>,
) -> Result<&'static str, ApiError> {
    let actor = caller.by("");
    let outcome = reload_now(&state).await;
    let detail = match &outcome {
        Ok(_) => "reloaded".to_string(),
        Err(e) => super::audit::short(&e.message),
    };
    super::audit::record(&state, &caller, &actor, "reload", "config", &detail).await?;
    outcome
}

async fn reload_now(state: &AppState) -> Result<&'static str, ApiError> {
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
