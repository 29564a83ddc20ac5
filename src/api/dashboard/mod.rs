//! The dashboard for on-call engineers: `GET /` (open incidents by severity, with Ack from
//! the list; triage queues; who is on call), `/incidents/{id}` (fields, impacts, the
//! timeline with each page's delivery, and buttons that acknowledge, resolve, note, set
//! severity and silence), `/history` (every incident, searched and paged), `/queues`,
//! `/silences`, `/overrides` and `/audit`. Server-rendered, refreshing itself, no front-end
//! build step; times are turned into the viewer's time zone by `static/dashboard.js`.
//! Actions post HTML forms to non-API routes, act as the API does, and redirect back.

mod actions;
mod history;
mod operate;
pub mod render;
pub mod session;
pub mod timeline;
pub mod view;

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use minijinja::context;
use serde::{Deserialize, Serialize};

use super::auth::Role;
use super::error::ApiError;
use super::incidents::parse_id;
use super::oncall::on_call;
use super::queues::queue_names;
use super::AppState;
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
        .route("/incidents/{id}/ack", post(actions::ack))
        .route("/incidents/{id}/resolve", post(actions::resolve))
        .route("/incidents/{id}/notes", post(actions::note))
        .route("/incidents/{id}/severity", post(actions::severity))
        .route("/history", get(history::history))
        .route("/queues", get(operate::queues))
        .route("/queues/{name}/take", post(operate::take))
        .route(
            "/silences",
            get(operate::silences).post(operate::create_silence),
        )
        .route("/silences/new", get(operate::new_silence))
        .route("/silences/{id}/expire", post(operate::expire_silence))
        .route("/overrides", get(operate::overrides))
        .route("/overrides/{schedule}", post(operate::add_override))
        .route(
            "/overrides/{schedule}/{id}/delete",
            post(operate::delete_override),
        )
        .route("/audit", get(operate::audit))
        .route("/name", get(name_page).post(set_name))
        .route("/login", get(login_page).post(login))
        .route("/logout", post(logout))
        .route("/static/dashboard.css", get(css))
        .route("/static/dashboard.js", get(js))
        .layer(middleware::map_response(render::html_headers))
}

/// What every page's frame shows: where it is, who looks and what they may do, and a
/// refused reload.
#[derive(Serialize)]
pub struct Chrome {
    pub now: String,
    /// Seconds between the page's own reloads (0: never).
    pub refresh: u32,
    /// This page's path, to come back to after giving a name or signing in.
    pub here: String,
    /// `here`, percent-encoded for a query string.
    pub here_encoded: String,
    /// Signed in with a session cookie (a Sign out button).
    pub signed_in: bool,
    /// Who acts from this browser: the token's name, else the name it gave once.
    pub name: Option<String>,
    /// The name is the token's (it cannot be changed here).
    pub name_from_token: bool,
    /// The caller's role: viewer, responder or admin.
    pub role: &'static str,
    pub can_respond: bool,
    pub is_admin: bool,
    /// This engine: leader or follower.
    pub engine: String,
    pub refused: Option<RefusedBanner>,
}

#[derive(Serialize)]
pub struct RefusedBanner {
    pub at: String,
    pub error: String,
}

/// The frame of a page at `here` for this request.
pub(super) fn chrome(state: &AppState, headers: &HeaderMap, here: &str, refresh: u32) -> Chrome {
    let caller = session::caller(state, headers, String::new());
    let token_name = caller.as_ref().and_then(|c| c.name.clone());
    let role = caller.as_ref().map_or(Role::Viewer, |c| c.role);
    let remembered = session::remembered_by(headers);
    let refused = state.last_refusal.borrow().as_ref().map(|r| RefusedBanner {
        at: render::time(r.at),
        error: r.error.clone(),
    });
    Chrome {
        now: render::time(state.clock.now()),
        refresh,
        here: here.to_string(),
        here_encoded: session::encode(here),
        signed_in: !state.tokens().is_empty()
            && session::cookie(headers, session::SESSION_COOKIE).is_some(),
        name_from_token: token_name.is_some(),
        name: token_name.or_else(|| Some(remembered).filter(|n| !n.trim().is_empty())),
        role: role.as_str(),
        can_respond: role.grants(Role::Responder),
        is_admin: role.grants(Role::Admin),
        engine: state.role_text(),
        refused,
    }
}

/// An API error on a page: the same status, in words, with a way back.
pub(super) fn error_page(e: ApiError, back: &str) -> Response {
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
pub(super) async fn pages_by_incident(
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

/// Why each incident is at its severity, in its timeline's words.
pub(super) async fn reasons(
    state: &AppState,
    incidents: &[&Incident],
) -> Result<HashMap<i64, String>, ApiError> {
    let mut out = HashMap::new();
    for incident in incidents {
        if out.contains_key(&incident.id) {
            continue;
        }
        let entries = state.store.timeline_of(incident.id).await?;
        if let Some(reason) = timeline::severity_reason(&entries, incident.severity) {
            out.insert(incident.id, reason);
        }
    }
    Ok(out)
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
    let open_refs: Vec<&Incident> = open.iter().collect();
    let reasons = reasons(state, &open_refs).await?;
    let card = |i: &Incident| {
        let mut card = view::card(&setup, i, &pages[&i.id], now);
        card.reason = reasons.get(&i.id).cloned();
        card
    };

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
    let paging = super::overrides::live_paging(state).await?;
    let oncall: Vec<minijinja::Value> = on_call(&paging, now)
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
            chrome => chrome(state, headers, "/", REFRESH_SECONDS),
            open_count => open.len(),
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
    let mut card = view::card(&setup, &incident, &pages, now);
    card.reason = timeline::severity_reason(&entries, incident.severity);
    Ok(page(
        StatusCode::OK,
        "incident.html",
        context! {
            chrome => chrome(state, headers, &format!("/incidents/{id}"), REFRESH_SECONDS),
            i => card,
            labels => labels,
            resolved_at => render::opt_time(incident.resolved_at),
            resolved_by => incident.resolved_by.clone(),
            acknowledged_at => render::opt_time(incident.acknowledged_at),
            sr_severity => incident.sr_severity.clone(),
            merged_into => incident.merged_into,
            impacts => impacts.iter().map(view::impact_row).collect::<Vec<_>>(),
            timeline => timeline::timeline(&setup, &entries, &pages),
            can_ack => incident.status == Status::Triggered,
            can_resolve => incident.is_open(),
        },
    ))
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
        context! { next => session::safe_next(next), error => error },
    )
}

#[derive(Deserialize)]
struct NameForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    next: String,
}

/// The form that asks this browser's name, once.
async fn name_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<LoginQuery>,
) -> Response {
    let next = session::safe_next(&q.next).to_string();
    if let Some(login) = session::login_needed(&state, &headers, &format!("/name?next={next}")) {
        return login;
    }
    page(
        StatusCode::OK,
        "name.html",
        context! {
            chrome => chrome(&state, &headers, &next, 0),
            next => next,
            current => session::remembered_by(&headers),
        },
    )
}

/// Remember the name this browser acts under (a cookie); a signed-in named token's name
/// always wins over it.
async fn set_name(
    State(state): State<AppState>,
    headers: HeaderMap,
    actions::FormBody(form): actions::FormBody<NameForm>,
) -> Response {
    let next = session::safe_next(&form.next).to_string();
    if let Err(response) = actions::acting_caller(&state, &headers, String::new(), &next) {
        return *response;
    }
    let name = form.name.trim();
    if let Err(e) = super::incidents::check_by(name) {
        let e = ApiError::new(e.status, "your name is 1 to 256 characters");
        return error_page(e, &format!("/name?next={}", session::encode(&next)));
    }
    let mut response = Redirect::to(&next).into_response();
    if let Some(cookie) = session::by_cookie(name) {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    response
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
    actions::FormBody(form): actions::FormBody<LoginForm>,
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
