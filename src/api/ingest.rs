//! The HTTP ingest endpoints (decoded by `sources::push` and `sources::cri`): Alertmanager-compatible push, the Alertmanager webhook
//! receiver, customer-reported incidents and heartbeats. All behind the API token when
//! `server.auth.tokens_file` is set.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{post, MethodRouter};
use axum::{Json, Router};
use chrono::SecondsFormat;
use serde_json::json;

use super::auth::{need, require_token, Need};
use super::error::ApiError;
use super::ratelimit::{self, RateLimiter};
use super::AppState;
use crate::engine::{Input, Reply};
use crate::sources::cri::{self, CriError};
use crate::sources::push::{self, BodyError, Decoded, Problem};

pub fn router(state: AppState) -> Router<AppState> {
    let limiter = std::sync::Arc::new(RateLimiter::new());
    Router::new()
        .route("/api/v2/alerts", post_only(post(push_alerts)))
        .route("/api/v1/alertmanager", post_only(post(webhook)))
        .route("/api/v1/cri", post_only(post(customer_report)))
        .route("/api/v1/heartbeats/{name}", post_only(post(heartbeat)))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            require_token,
        ))
        // Outermost: a client over its limit costs no token check, and guessing tokens
        // is rate-limited too.
        .route_layer(axum::middleware::from_fn_with_state(
            (state, limiter),
            ratelimit::limit,
        ))
}

/// Other methods get a 405, in JSON like every other error of the API
/// (`api::error::json_errors` lists the methods of its `Allow` header).
fn post_only(route: MethodRouter<AppState>) -> MethodRouter<AppState> {
    route.fallback(|| async { StatusCode::METHOD_NOT_ALLOWED })
}

async fn push_alerts(
    _: Need<need::Ingest>,
    State(state): State<AppState>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let now = state.clock.now();
    let resolve_timeout = state.setup().config.sources.resolve_timeout.chrono();
    let decoded = push::decode_alerts(&body, now, resolve_timeout).map_err(body_error)?;
    accept(&state, decoded).await
}

async fn webhook(
    _: Need<need::Ingest>,
    State(state): State<AppState>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let decoded = push::decode_webhook(&body, state.clock.now()).map_err(body_error)?;
    accept(&state, decoded).await
}

fn body_error(e: BodyError) -> ApiError {
    ApiError::bad_request(e.to_string())
}

/// Keep the good alerts of a batch, then answer: 200 when all were taken; else 400 (or 422
/// when every rejection is about values, not shape) naming each rejected item.
async fn accept(state: &AppState, decoded: Decoded) -> Result<Response, ApiError> {
    let Decoded { signals, rejected } = decoded;
    let accepted = signals.len();
    if !signals.is_empty() {
        state.engine.send(Input::Signals(signals)).await?;
    }
    if rejected.is_empty() {
        return Ok((
            StatusCode::OK,
            Json(json!({ "status": "success", "accepted": accepted })),
        )
            .into_response());
    }
    let status = if rejected.iter().all(|r| r.problem == Problem::Value) {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::BAD_REQUEST
    };
    let summary: Vec<String> = rejected
        .iter()
        .map(|r| format!("alert {}: {}", r.index, r.reason))
        .collect();
    let items: Vec<_> = rejected
        .iter()
        .map(|r| json!({ "index": r.index, "error": r.reason }))
        .collect();
    let body = json!({
        "error": format!(
            "{} of {} alerts rejected ({}); the other {accepted} were accepted",
            rejected.len(),
            rejected.len() + accepted,
            summary.join("; ")
        ),
        "accepted": accepted,
        "rejected": items,
    });
    Ok((status, Json(body)).into_response())
}

async fn customer_report(
    _: Need<need::Ingest>,
    State(state): State<AppState>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let report = match cri::parse(&body) {
        Ok(report) => report,
        Err(e) => return Ok(cri_rejection(e)),
    };
    let setup = state.setup();
    let signal = report.into_signal(state.clock.now(), &setup.config.sr_response);
    let Some(cri) = signal.cri.clone() else {
        return Err(ApiError::internal("a customer report lost its details"));
    };
    // The report makes a support case too, linked to the incident it opens or joins.
    let input = Input::Case(crate::engine::CaseInput::Cri {
        signal: Box::new(signal),
    });
    let (incident_id, case_id) = match super::error::reply_error(state.engine.send(input).await?)? {
        Reply::Case(case) => (case.incident_id, Some(case.id)),
        _ => (None, None),
    };
    let body = json!({
        "incident_id": incident_id,
        "case_id": case_id,
        "id": cri.id,
        "received_at": cri.received_at.to_rfc3339_opts(SecondsFormat::Secs, true),
        "respond_by": cri.respond_by.to_rfc3339_opts(SecondsFormat::Secs, true),
    });
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

/// 400 for a body that is not a report; 422 naming every field to fix.
pub(crate) fn cri_rejection(error: CriError) -> Response {
    match error {
        CriError::Body(message) => ApiError::bad_request(message).into_response(),
        CriError::Fields(fields) => {
            let names: Vec<&str> = fields.keys().map(String::as_str).collect();
            let body = json!({
                "error": format!("invalid fields: {}", names.join(", ")),
                "fields": fields,
            });
            (StatusCode::UNPROCESSABLE_ENTITY, Json(body)).into_response()
        }
    }
}

async fn heartbeat(
    _: Need<need::Ingest>,
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    match state.engine.send(Input::Heartbeat(name.clone())).await? {
        Reply::NotFound(message) => Err(ApiError::not_found(message)),
        _ => Ok(Json(json!({
            "heartbeat": name,
            "received_at": state.clock.now().to_rfc3339_opts(SecondsFormat::Secs, true),
        }))),
    }
}
