//! `POST /-/cluster/input`: inputs another engine on the store took, handed to this engine
//! while it leads (`engine::forward`). Engines prove themselves with the store's key, not
//! with an API token: the engine that took the input checked its caller's role already.
//! 401 for a wrong key, 400 for an input this engine cannot read, 503 when it does not lead;
//! the other engine then puts the input in the store's inbox. Otherwise 200 with the core's
//! reply, or the error that kept it from being stored.

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::{Json, Router};

use super::auth::bearer;
use super::error::ApiError;
use super::AppState;
use crate::engine::forward::{Answer, PATH};
use crate::engine::Input;

/// Largest handed-over input: an ingest request's body is at most [`super::MAX_BODY`], and
/// its input is a little larger than that body.
const MAX_INPUT: usize = 4 * super::MAX_BODY;

pub fn router() -> Router<AppState> {
    Router::new()
        .route(PATH, post(take))
        .layer(DefaultBodyLimit::max(MAX_INPUT))
}

async fn take(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Answer>, ApiError> {
    if !state
        .engine
        .accepts_forward_key(bearer(&headers).unwrap_or(""))
    {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "not an engine of this store: missing or wrong key",
        ));
    }
    let input: Input = serde_json::from_slice(&body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("this engine cannot read the input: {e}"),
        )
    })?;
    match state.engine.send_here(input).await {
        Some(result) => Ok(Json(Answer::from(result))),
        None => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "this engine does not lead",
        )),
    }
}
