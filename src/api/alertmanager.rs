//! Alertmanager's silence API (v2), enough for `amtool silence add|query|expire` and
//! `amtool check-config`-free tooling: `/api/v2/silences`, `/api/v2/silence/{id}` and
//! `/api/v2/status`, in the shapes of Alertmanager's OpenAPI document.

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::auth::{need, require_token, Need};
use super::error::{json_object, ApiError, KeepBody};
use super::silences::{build, expire_now, put};
use super::AppState;
use crate::config::matcher::MatchOp;
use crate::config::Matcher;
use crate::paging::Silence;

pub fn router(state: AppState) -> Router<AppState> {
    Router::new()
        .route("/api/v2/silences", get(list).post(create))
        .route("/api/v2/silence/{id}", get(show).delete(expire))
        .route("/api/v2/status", get(status))
        .route_layer(middleware::from_fn_with_state(state, require_token))
}

/// Alertmanager's `matcher`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AmMatcher {
    pub name: String,
    pub value: String,
    pub is_regex: bool,
    #[serde(default = "yes")]
    pub is_equal: bool,
}

fn yes() -> bool {
    true
}

impl AmMatcher {
    pub fn of(m: &Matcher) -> Self {
        let (is_regex, is_equal) = match m.op {
            MatchOp::Equal => (false, true),
            MatchOp::NotEqual => (false, false),
            MatchOp::Regex => (true, true),
            MatchOp::NotRegex => (true, false),
        };
        AmMatcher {
            name: m.name.clone(),
            value: m.value.clone(),
            is_regex,
            is_equal,
        }
    }

    pub fn matcher(&self) -> Result<Matcher, String> {
        let op = match (self.is_regex, self.is_equal) {
            (false, true) => MatchOp::Equal,
            (false, false) => MatchOp::NotEqual,
            (true, true) => MatchOp::Regex,
            (true, false) => MatchOp::NotRegex,
        };
        Matcher::from_parts(&self.name, op, &self.value)
    }
}

/// Alertmanager's `postableSilence`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PostableSilence {
    #[serde(default)]
    id: Option<String>,
    matchers: Vec<AmMatcher>,
    starts_at: DateTime<Utc>,
    ends_at: DateTime<Utc>,
    created_by: String,
    comment: String,
}

fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Alertmanager's `gettableSilence`.
pub fn gettable(silence: &Silence, now: DateTime<Utc>) -> Value {
    json!({
        "id": silence.id,
        "status": { "state": silence.state(now).as_str() },
        "updatedAt": time(silence.updated_at),
        "matchers": silence.matchers.iter().map(AmMatcher::of).collect::<Vec<_>>(),
        "startsAt": time(silence.starts_at),
        "endsAt": time(silence.ends_at),
        "createdBy": silence.created_by,
        "comment": silence.comment,
    })
}

/// `filter` values of the query (each a matcher, Alertmanager's `{a="b"}` braces allowed).
fn filters(query: Option<&str>) -> Result<Vec<Matcher>, ApiError> {
    let mut out = Vec::new();
    for (key, value) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        if key != "filter" {
            continue;
        }
        let text = value.trim().trim_start_matches('{').trim_end_matches('}');
        for part in text.split(',').filter(|p| !p.trim().is_empty()) {
            out.push(
                part.trim()
                    .parse::<Matcher>()
                    .map_err(|e| ApiError::bad_request(format!("invalid filter {value:?}: {e}")))?,
            );
        }
    }
    Ok(out)
}

/// Silences whose matchers include every filter matcher, as Alertmanager lists them.
async fn list(
    Need(..): Need<need::Viewer>,
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
) -> Result<Json<Vec<Value>>, ApiError> {
    let wanted = filters(query.as_deref())?;
    let now = state.clock.now();
    Ok(Json(
        state
            .store
            .silences(None)
            .await?
            .iter()
            .filter(|s| wanted.iter().all(|w| s.matchers.contains(w)))
            .map(|s| gettable(s, now))
            .collect(),
    ))
}

async fn create(
    Need(caller, _): Need<need::Responder>,
    State(state): State<AppState>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let body: PostableSilence = json_object(&body)?;
    let matchers = body
        .matchers
        .iter()
        .map(AmMatcher::matcher)
        .collect::<Result<Vec<_>, _>>()
        .map_err(ApiError::unprocessable)?;
    let now = state.clock.now();
    let mut silence = build(
        matchers,
        Some(body.starts_at.max(now)),
        body.ends_at,
        caller.by(&body.created_by),
        body.comment,
        now,
    )?;
    // An id names the silence to replace (Alertmanager's update): it keeps its id.
    if let Some(id) = body.id.filter(|id| !id.is_empty()) {
        if state.store.silence(&id).await?.is_none() {
            return Err(ApiError::not_found(format!("no silence {id}")));
        }
        silence.id = id;
    }
    let id = silence.id.clone();
    put(&state, silence.clone()).await?;
    super::silences::audit_made(&state, &caller, &silence).await?;
    Ok(Json(json!({ "silenceID": id })))
}

async fn show(
    Need(..): Need<need::Viewer>,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let silence = state
        .store
        .silence(&id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no silence {id}")))?;
    Ok(Json(gettable(&silence, state.clock.now())))
}

/// 200 when expired; as Alertmanager: 404 for an unknown silence, 500 with the reason as
/// a JSON string for one that has ended already (amtool prints it).
async fn expire(
    Need(caller, _): Need<need::Responder>,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Response {
    match expire_now(&state, &caller, &id).await {
        Ok(_) => Json(json!({})).into_response(),
        Err(e) if e.status == StatusCode::CONFLICT => {
            let mut response = (
                StatusCode::INTERNAL_SERVER_ERROR,
                Json(Value::String(e.message)),
            )
                .into_response();
            response.extensions_mut().insert(KeepBody);
            response
        }
        Err(e) => e.into_response(),
    }
}

/// Alertmanager's `alertmanagerStatus`: tocsin stands alone, its cluster always ready.
async fn status(Need(..): Need<need::Viewer>, State(state): State<AppState>) -> Json<Value> {
    Json(json!({
        "cluster": { "name": state.engine_id.to_string(), "status": "ready", "peers": [] },
        "versionInfo": {
            "branch": "",
            "buildDate": "",
            "buildUser": "",
            "goVersion": "",
            "revision": "",
            "version": concat!("tocsin-", env!("CARGO_PKG_VERSION")),
        },
        "config": { "original": "" },
        "uptime": time(state.started_at),
    }))
}
