//! Calendar feeds of on-call shifts: `/api/v1/schedules/{name}.ics` and
//! `/api/v1/responders/{id}.ics`, 90 days ahead, overrides applied. Calendar apps cannot
//! send a bearer token: with auth on, a feed takes a token or the signature of its link
//! (`…/feed-link`, `tocsin oncall feed-link`), signed with the ack-link key.

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use super::auth::{find_token, require_token, Role};
use super::error::ApiError;
use super::AppState;
use crate::paging::ics::{self, Shift};

/// How far ahead a feed reaches.
const AHEAD_DAYS: i64 = 90;

pub fn router(state: AppState) -> Router<AppState> {
    let links = Router::new()
        .route("/api/v1/schedules/{name}/feed-link", get(schedule_link))
        .route("/api/v1/responders/{id}/feed-link", get(responder_link))
        .route_layer(middleware::from_fn_with_state(state, require_token));
    Router::new()
        .route("/api/v1/schedules/{file}", get(schedule_feed))
        .route("/api/v1/responders/{file}", get(responder_feed))
        .merge(links)
}

#[derive(Deserialize)]
struct FeedQuery {
    sig: Option<String>,
}

/// With auth on: a valid bearer token, or the feed's signature.
fn allowed(
    state: &AppState,
    headers: &HeaderMap,
    feed: &str,
    sig: Option<&str>,
) -> Result<(), ApiError> {
    let tokens = state.tokens();
    if tokens.is_empty() {
        return Ok(());
    }
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let viewer = bearer
        .and_then(|t| find_token(&tokens, t))
        .is_some_and(|t| t.role.grants(Role::Viewer));
    if viewer {
        return Ok(());
    }
    let signed = match (sig, &state.setup().ack_signer) {
        (Some(sig), Some(signer)) => signer.verify_feed(feed, sig),
        _ => false,
    };
    if signed {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "a calendar feed needs a bearer token or its signed link (tocsin oncall feed-link)",
        ))
    }
}

fn calendar(text: String) -> Response {
    (
        [(header::CONTENT_TYPE, "text/calendar; charset=utf-8")],
        text,
    )
        .into_response()
}

fn strip_ics(file: &str) -> Result<&str, ApiError> {
    file.strip_suffix(".ics")
        .filter(|n| !n.is_empty())
        .ok_or_else(|| ApiError::not_found("no such path"))
}

async fn schedule_feed(
    State(state): State<AppState>,
    Path(file): Path<String>,
    Query(q): Query<FeedQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let name = strip_ics(&file)?;
    allowed(
        &state,
        &headers,
        &format!("schedules/{name}"),
        q.sig.as_deref(),
    )?;
    let paging = super::overrides::live_paging(&state).await?;
    let rotation = paging
        .rotation(name)
        .ok_or_else(|| ApiError::not_found(format!("no schedule {name:?} in the config")))?;
    let now = state.clock.now();
    let to = now + chrono::Duration::days(AHEAD_DAYS);
    let shifts: Vec<Shift> = rotation
        .shifts_between(now, to)
        .into_iter()
        .map(|on_call| Shift {
            tz: rotation.tz,
            on_call,
        })
        .collect();
    Ok(calendar(ics::render(name, &shifts, now, to, now)))
}

async fn responder_feed(
    State(state): State<AppState>,
    Path(file): Path<String>,
    Query(q): Query<FeedQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let id = strip_ics(&file)?;
    allowed(
        &state,
        &headers,
        &format!("responders/{id}"),
        q.sig.as_deref(),
    )?;
    let paging = super::overrides::live_paging(&state).await?;
    if !paging.responders.contains_key(id) {
        return Err(ApiError::not_found(format!(
            "no responder {id:?} in the config"
        )));
    }
    let now = state.clock.now();
    let to = now + chrono::Duration::days(AHEAD_DAYS);
    let mut shifts: Vec<Shift> = paging
        .rotations
        .iter()
        .flat_map(|r| {
            r.shifts_between(now, to)
                .into_iter()
                .filter(|s| s.responder == id)
                .map(|on_call| Shift { tz: r.tz, on_call })
        })
        .collect();
    shifts.sort_by_key(|s| s.on_call.since);
    Ok(calendar(ics::render(id, &shifts, now, to, now)))
}

fn link(state: &AppState, kind: &str, name: &str) -> Result<Json<Value>, ApiError> {
    let setup = state.setup();
    let feed = format!("{kind}/{name}");
    let url = format!("{}/api/v1/{feed}.ics", setup.external_url);
    Ok(Json(match &setup.ack_signer {
        Some(signer) if !state.tokens().is_empty() => {
            json!({ "url": format!("{url}?sig={}", signer.sign_feed(&feed)) })
        }
        _ => json!({ "url": url }),
    }))
}

async fn schedule_link(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    if state.setup().paging.rotation(&name).is_none() {
        return Err(ApiError::not_found(format!(
            "no schedule {name:?} in the config"
        )));
    }
    link(&state, "schedules", &name)
}

async fn responder_link(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    if !state.setup().paging.responders.contains_key(&id) {
        return Err(ApiError::not_found(format!(
            "no responder {id:?} in the config"
        )));
    }
    link(&state, "responders", &id)
}
