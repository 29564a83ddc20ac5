//! The dashboard for on-call engineers: `GET /` (open incidents by severity, triage queues,
//! who is on call) and `/incidents/{id}` (fields, impacts, timeline, and buttons that
//! acknowledge, resolve, note and set severity). Server-rendered, refreshing itself, no
//! front-end build step. Actions post HTML forms to non-API routes and redirect back.

pub mod render;
pub mod session;
pub mod view;

use std::collections::HashMap;

use axum::extract::rejection::FormRejection;
use axum::extract::{FromRequest, Path, Query, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use minijinja::context;
use serde::Deserialize;

use super::auth::{ClientAddress, Role};
use super::error::ApiError;
use super::incidents::{check_note, check_severity, parse_id, perform, who};
use super::oncall::on_call;
use super::queues::queue_names;
use super::AppState;
use crate::engine::Input;
use crate::incident::{Incident, Status};
use crate::store::IncidentFilter;
use render::{message, page};

/// Seconds between the pages' own reloads.
pub const REFRESH_SECONDS: u32 = 15;
/// Open incidents shown at most (the API lists more).
const MAX_OPEN: i64 = 500;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(index))
        .route("/incidents/{id}", get(incident_page))
        .route("/incidents/{id}/ack", post(ack))
        .route("/incidents/{id}/resolve", post(resolve))
        .route("/incidents/{id}/notes", post(note))
        .route("/incidents/{id}/severity", post(severity))
        .route("/login", get(login_page).post(login))
        .route("/logout", post(logout))
        .route("/static/dashboard.css", get(css))
        .route("/static/dashboard.js", get(js))
        .layer(middleware::map_response(render::html_headers))
}

/// An API error on a page: the same status, in words, with a way back.
fn error_page(e: ApiError, back: &str) -> Response {
    let title = e.status.canonical_reason().unwrap_or("Error");
    message(e.status, title, &e.message, Some((back, "Back")))
}

async fn css() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=300"),
        ],
        render::CSS,
    )
}

async fn js() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=300"),
        ],
        render::JS,
    )
}

/// Pages of many incidents at once, read once each.
async fn pages_by_incident(
    state: &AppState,
    incidents: &[&Incident],
) -> Result<HashMap<i64, Vec<crate::store::OutboxEntry>>, ApiError> {
    let mut out = HashMap::new();
    for incident in incidents {
        if let std::collections::hash_map::Entry::Vacant(slot) = out.entry(incident.id) {
            slot.insert(state.store.pages_of(incident.id).await?);
        }
    }
    Ok(out)
}

async fn index(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Some(login) = session::login_needed(&state, &headers, "/") {
        return login;
    }
    overview(&state, &headers)
        .await
        .unwrap_or_else(|e| error_page(e, "/"))
}

async fn overview(state: &AppState, headers: &HeaderMap) -> Result<Response, ApiError> {
    let setup = state.setup();
    let now = state.clock.now();
    let open = state
        .store
        .list_incidents(&IncidentFilter {
            open: true,
            limit: Some(MAX_OPEN),
            ..IncidentFilter::default()
        })
        .await?;
    let mut queues = Vec::new();
    for name in queue_names(&setup) {
        let waiting = state.store.queue(&name).await?;
        queues.push((name, waiting));
    }
    let everything: Vec<&Incident> = open
        .iter()
        .chain(queues.iter().flat_map(|(_, q)| q.iter()))
        .collect();
    let pages = pages_by_incident(state, &everything).await?;
    let card = |i: &Incident| view::card(&setup, i, &pages[&i.id], now);

    // Sev 0 first; within a severity, what nobody has acknowledged yet first, then newest.
    let groups: Vec<minijinja::Value> = (0u8..=4)
        .map(|severity| {
            let mut members: Vec<&Incident> =
                open.iter().filter(|i| i.severity == severity).collect();
            members.sort_by_key(|i| {
                (
                    i.status != Status::Triggered,
                    std::cmp::Reverse(i.opened_at),
                )
            });
            context! {
                severity => severity,
                label => view::SEVERITY_NAMES[severity as usize],
                incidents => members.into_iter().map(card).collect::<Vec<_>>(),
            }
        })
        .collect();
    let queues: Vec<minijinja::Value> = queues
        .iter()
        .map(|(name, waiting)| {
            context! { name => name, incidents => waiting.iter().map(card).collect::<Vec<_>>() }
        })
        .collect();
    let oncall: Vec<minijinja::Value> = on_call(&setup.paging, now)
        .into_iter()
        .map(|entry| {
            context! {
                schedule => entry.schedule,
                responder => entry.responder.as_deref().map(|r| view::person(&setup, r)),
                since => render::opt_time(entry.since),
                until => render::opt_time(entry.until),
            }
        })
        .collect();
    Ok(page(
        StatusCode::OK,
        "index.html",
        context! {
            now => render::time(now),
            refresh => REFRESH_SECONDS,
            logged_in => !state.tokens().is_empty() && session::cookie(headers, session::SESSION_COOKIE).is_some(),
            open_count => open.len(),
            role => state.role_text(),
            groups => groups,
            queues => queues,
            oncall => oncall,
        },
    ))
}

async fn incident_page(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let here = format!("/incidents/{id}");
    if let Some(login) = session::login_needed(&state, &headers, &here) {
        return login;
    }
    incident_detail(&state, &id, &headers)
        .await
        .unwrap_or_else(|e| error_page(e, "/"))
}

async fn incident_detail(
    state: &AppState,
    id: &str,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    let id = parse_id(id)?;
    let incident = state
        .store
        .incident(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no incident {id}")))?;
    let setup = state.setup();
    let now = state.clock.now();
    let pages = state.store.pages_of(id).await?;
    let impacts = state.store.impacts_of(id).await?;
    let entries = state.store.timeline_of(id).await?;
    let labels: Vec<(String, String)> = incident
        .labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Ok(page(
        StatusCode::OK,
        "incident.html",
        context! {
            now => render::time(now),
            refresh => REFRESH_SECONDS,
            logged_in => !state.tokens().is_empty() && session::cookie(headers, session::SESSION_COOKIE).is_some(),
            i => view::card(&setup, &incident, &pages, now),
            labels => labels,
            resolved_at => render::opt_time(incident.resolved_at),
            resolved_by => incident.resolved_by.clone(),
            acknowledged_at => render::opt_time(incident.acknowledged_at),
            sr_severity => incident.sr_severity.clone(),
            merged_into => incident.merged_into,
            impacts => impacts.iter().map(view::impact_row).collect::<Vec<_>>(),
            timeline => view::timeline(&setup, &entries, &pages),
            can_ack => incident.status == Status::Triggered,
            can_resolve => incident.is_open(),
            by => session::caller(state, headers, String::new())
                .and_then(|c| c.name)
                .unwrap_or_else(|| session::remembered_by(headers)),
        },
    ))
}

/// A posted form, refused in the API's words ("field \"by\" is given twice") rather than
/// axum's ("Failed to deserialize form body: duplicate field `by`").
struct FormBody<T>(T);

impl<T: serde::de::DeserializeOwned, S: Send + Sync> FromRequest<S> for FormBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        match Form::<T>::from_request(request, state).await {
            Ok(Form(form)) => Ok(FormBody(form)),
            Err(FormRejection::InvalidFormContentType(e)) => Err(ApiError::new(
                e.status(),
                "a form is sent as application/x-www-form-urlencoded",
            )),
            Err(FormRejection::FailedToDeserializeForm(e)) => {
                Err(form_error(e.status(), &e.body_text()))
            }
            Err(FormRejection::FailedToDeserializeFormBody(e)) => {
                Err(form_error(e.status(), &e.body_text()))
            }
            Err(other) => Err(ApiError::new(other.status(), other.body_text())),
        }
    }
}

/// axum's "Failed to deserialize form body: <serde's message>", as the API says it.
fn form_error(status: StatusCode, text: &str) -> ApiError {
    let serde = text.split_once(": ").map_or(text, |(_, rest)| rest);
    ApiError::new(
        status,
        format!(
            "invalid form: {}",
            crate::decode::describe(".", serde, "the form")
        ),
    )
}

#[derive(Deserialize)]
struct ByForm {
    #[serde(default)]
    by: String,
}

#[derive(Deserialize)]
struct ResolveForm {
    #[serde(default)]
    by: String,
    #[serde(default)]
    note: String,
}

#[derive(Deserialize)]
struct NoteForm {
    #[serde(default)]
    by: String,
    #[serde(default)]
    text: String,
}

#[derive(Deserialize)]
struct SeverityForm {
    #[serde(default)]
    by: String,
    /// 0–4, or "unpin".
    #[serde(default)]
    severity: String,
    #[serde(default)]
    reason: String,
}

/// The common path of every dashboard action: who may (the role `needed`), what it is, then
/// back to the page. A named token acts under its name, whatever the form's `by` says.
async fn act(
    state: &AppState,
    headers: &HeaderMap,
    address: String,
    id: &str,
    by: &str,
    needed: Role,
    make: impl FnOnce(i64, String) -> Result<Input, ApiError>,
) -> Response {
    let back = format!("/incidents/{id}");
    let Some(caller) = session::caller(state, headers, address) else {
        return session::login_needed(state, headers, &back)
            .unwrap_or_else(|| Redirect::to("/login").into_response());
    };
    if !session::same_origin(headers) {
        return session::forbidden_cross_site();
    }
    let by = by.trim().to_string();
    let result = async {
        caller.need(needed)?;
        let id = parse_id(id)?;
        let by = who(&caller, &by)?;
        let input = make(id, by)?;
        perform(state, &caller, id, input).await
    }
    .await;
    match result {
        Ok(()) => {
            let mut response = Redirect::to(&back).into_response();
            if caller.name.is_none() {
                if let Some(cookie) = session::by_cookie(&by) {
                    response.headers_mut().append(header::SET_COOKIE, cookie);
                }
            }
            response
        }
        Err(e) => error_page(e, &back),
    }
}

async fn ack(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    ClientAddress(address): ClientAddress,
    FormBody(form): FormBody<ByForm>,
) -> Response {
    act(
        &state,
        &headers,
        address,
        &id,
        &form.by,
        Role::Responder,
        |incident_id, by| Ok(Input::Ack { incident_id, by }),
    )
    .await
}

async fn resolve(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    ClientAddress(address): ClientAddress,
    FormBody(form): FormBody<ResolveForm>,
) -> Response {
    let note = Some(form.note.trim().to_string()).filter(|n| !n.is_empty());
    act(
        &state,
        &headers,
        address,
        &id,
        &form.by,
        Role::Responder,
        |incident_id, by| {
            Ok(Input::Resolve {
                incident_id,
                by,
                note,
            })
        },
    )
    .await
}

async fn note(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    ClientAddress(address): ClientAddress,
    FormBody(form): FormBody<NoteForm>,
) -> Response {
    act(
        &state,
        &headers,
        address,
        &id,
        &form.by,
        Role::Responder,
        |incident_id, by| {
            check_note(&form.text)?;
            Ok(Input::Note {
                incident_id,
                by,
                text: form.text,
            })
        },
    )
    .await
}

async fn severity(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    ClientAddress(address): ClientAddress,
    FormBody(form): FormBody<SeverityForm>,
) -> Response {
    act(
        &state,
        &headers,
        address,
        &id,
        &form.by,
        Role::Admin,
        |incident_id, by| {
            let severity = match form.severity.trim() {
                "unpin" => None,
                text => check_severity(Some(text.parse::<i64>().map_err(|_| {
                    ApiError::unprocessable(format!("severity {text:?} is not 0 to 4 or \"unpin\""))
                })?))?,
            };
            let reason = Some(form.reason.trim().to_string()).filter(|r| !r.is_empty());
            Ok(Input::SetSeverity {
                incident_id,
                severity,
                by,
                reason,
            })
        },
    )
    .await
}

#[derive(Deserialize)]
struct LoginQuery {
    #[serde(default)]
    next: String,
}

#[derive(Deserialize)]
struct LoginForm {
    #[serde(default)]
    token: String,
    #[serde(default)]
    next: String,
}

fn login_form(status: StatusCode, next: &str, error: Option<&str>) -> Response {
    page(
        status,
        "login.html",
        context! { next => session::safe_next(next), error => error, refresh => 0, logged_in => false, now => "" },
    )
}

async fn login_page(State(state): State<AppState>, Query(q): Query<LoginQuery>) -> Response {
    if state.tokens().is_empty() {
        return Redirect::to(session::safe_next(&q.next)).into_response();
    }
    login_form(StatusCode::OK, &q.next, None)
}

async fn login(
    State(state): State<AppState>,
    headers: HeaderMap,
    FormBody(form): FormBody<LoginForm>,
) -> Response {
    if state.tokens().is_empty() {
        return Redirect::to(session::safe_next(&form.next)).into_response();
    }
    if !session::same_origin(&headers) {
        return session::forbidden_cross_site();
    }
    match session::login_cookie(&state, form.token.trim()) {
        Some(cookie) => {
            let mut response = Redirect::to(session::safe_next(&form.next)).into_response();
            response.headers_mut().append(header::SET_COOKIE, cookie);
            response
        }
        None => {
            tracing::warn!("dashboard sign-in with a token that is not accepted");
            login_form(
                StatusCode::UNAUTHORIZED,
                &form.next,
                Some("That token is not accepted."),
            )
        }
    }
}

async fn logout() -> Response {
    let mut response = Redirect::to("/login").into_response();
    response
        .headers_mut()
        .append(header::SET_COOKIE, session::logout_cookie());
    response
}
