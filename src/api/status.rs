//! A customer's status page, `/status/{token}`: the customer's open incidents (those that
//! hit it directly or through its subscriptions) and its support cases, for the customer to
//! read, on a phone too. The token is the credential: the customer's id signed with the
//! ack-link key (`AckSigner::sign_status`); `tocsin status-link CUSTOMER`
//! (`GET /api/v1/customers/{id}/status-link`) makes it.
//!
//! The page shows facts, never words written by others: no incident title or summary, no
//! case summary or internal update; of an incident only the services and regions of the
//! impacts that hit this customer; of a case the updates sent to the customer
//! (`notify_customer: true`). `Accept: application/json` gives the same as JSON. A token
//! that is not good, or names a customer not in the catalog, is a 404 that says nothing more.

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::Serialize;

use super::auth::{need, require_token, Need};
use super::dashboard::render::{self, message};
use super::error::ApiError;
use super::AppState;
use crate::incident::case::{Case, CaseEntry};
use crate::incident::{Impact, Incident};
use crate::store::IncidentFilter;

/// The newest cases a status page lists.
const CASES_SHOWN: i64 = 50;

pub fn router(state: AppState) -> Router<AppState> {
    let links = Router::new()
        .route("/api/v1/customers/{id}/status-link", get(link))
        .route_layer(middleware::from_fn_with_state(state, require_token));
    Router::new()
        .route(
            "/status/{token}",
            get(status_page).layer(middleware::map_response(render::html_headers)),
        )
        .merge(links)
}

/// What a customer sees.
#[derive(Serialize)]
pub struct CustomerStatus {
    pub customer: String,
    pub name: Option<String>,
    pub as_of: DateTime<Utc>,
    pub incidents: Vec<CustomerIncident>,
    pub cases: Vec<CustomerCase>,
}

/// An open incident as its customer sees it: only what concerns that customer.
#[derive(Serialize)]
pub struct CustomerIncident {
    pub id: i64,
    /// The services and regions of the impacts that hit this customer.
    pub services: Vec<String>,
    pub regions: Vec<String>,
    pub severity: u8,
    pub status: crate::incident::Status,
    pub opened_at: DateTime<Utc>,
    pub acknowledged_at: Option<DateTime<Utc>>,
    /// This customer's cases linked to it.
    pub cases: Vec<i64>,
}

/// A case as its customer sees it.
#[derive(Serialize)]
pub struct CustomerCase {
    pub id: i64,
    pub service: String,
    pub region: String,
    pub sr_severity: String,
    pub status: crate::incident::case::CaseStatus,
    pub opened_at: DateTime<Utc>,
    /// The first-response deadline.
    pub respond_by: DateTime<Utc>,
    pub responded_at: Option<DateTime<Utc>>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub incident_id: Option<i64>,
    /// The updates sent to the customer, oldest first.
    pub updates: Vec<CustomerUpdate>,
}

#[derive(Serialize)]
pub struct CustomerUpdate {
    pub at: DateTime<Utc>,
    pub text: String,
}

/// The incident as `customer` sees it; `impacts` are the incident's.
pub fn incident_status(
    customer: &str,
    incident: &Incident,
    impacts: &[Impact],
    cases: &[Case],
) -> CustomerIncident {
    let mine: Vec<&Impact> = impacts
        .iter()
        .filter(|i| i.customers.contains(customer))
        .collect();
    let mut services: Vec<String> = mine.iter().filter_map(|i| i.service.clone()).collect();
    let mut regions: Vec<String> = mine.iter().filter_map(|i| i.region.clone()).collect();
    services.sort();
    services.dedup();
    regions.sort();
    regions.dedup();
    CustomerIncident {
        id: incident.id,
        services,
        regions,
        severity: incident.severity,
        status: incident.status,
        opened_at: incident.opened_at,
        acknowledged_at: incident.acknowledged_at,
        cases: cases
            .iter()
            .filter(|c| c.customer == customer && c.incident_id == Some(incident.id))
            .map(|c| c.id)
            .collect(),
    }
}

/// The case as its customer sees it; `timeline` is the case's.
pub fn case_status(case: &Case, timeline: &[CaseEntry]) -> CustomerCase {
    CustomerCase {
        id: case.id,
        service: case.service.clone(),
        region: case.region.clone(),
        sr_severity: case.sr_severity.clone(),
        status: case.status,
        opened_at: case.opened_at,
        respond_by: case.respond_by,
        responded_at: case.responded_at,
        resolved_at: case.resolved_at,
        incident_id: case.incident_id,
        updates: timeline
            .iter()
            .filter(|e| e.kind == "update" && e.data["notify_customer"] == true)
            .map(|e| CustomerUpdate {
                at: e.at,
                text: e.message.clone(),
            })
            .collect(),
    }
}

/// The customer a token names, if it is good and the customer is in the catalog.
fn customer_of(state: &AppState, token: &str) -> Option<(String, Option<String>)> {
    let setup = state.setup();
    let customer = setup.ack_signer.as_ref()?.verify_status(token)?;
    let def = setup
        .config
        .catalog
        .customers
        .iter()
        .find(|c| c.id == customer)?;
    Some((customer, def.name.clone()))
}

async fn gather(
    state: &AppState,
    customer: String,
    name: Option<String>,
) -> Result<CustomerStatus, ApiError> {
    let cases = state
        .store
        .list_cases(false, Some(&customer), CASES_SHOWN)
        .await?;
    let filter = IncidentFilter {
        open: true,
        customer: Some(customer.clone()),
        limit: Some(1_000),
        ..Default::default()
    };
    let mut incidents = Vec::new();
    for incident in state.store.list_incidents(&filter).await? {
        let impacts = state.store.impacts_of(incident.id).await?;
        incidents.push(incident_status(&customer, &incident, &impacts, &cases));
    }
    let mut shown = Vec::with_capacity(cases.len());
    for case in &cases {
        let timeline = state.store.case_timeline(case.id).await?;
        shown.push(case_status(case, &timeline));
    }
    Ok(CustomerStatus {
        customer,
        name,
        as_of: state.clock.now(),
        incidents,
        cases: shown,
    })
}

fn wants_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/json"))
}

fn not_found(json: bool) -> Response {
    if json {
        return ApiError::not_found("no such status page").into_response();
    }
    message(
        StatusCode::NOT_FOUND,
        "No such status page",
        "This link is not valid (any more). Ask your support contact for a new one.",
        None,
    )
}

async fn status_page(
    State(state): State<AppState>,
    Path(token): Path<String>,
    headers: HeaderMap,
) -> Response {
    let json = wants_json(&headers);
    let Some((customer, name)) = customer_of(&state, &token) else {
        tracing::warn!("status link refused");
        return not_found(json);
    };
    let status = match gather(&state, customer, name).await {
        Ok(status) => status,
        Err(e) if json => return e.into_response(),
        Err(e) => {
            tracing::error!(error = %e.message, "a status page failed");
            return message(
                e.status,
                "Try again",
                "The status is not available now.",
                None,
            );
        }
    };
    let mut response = if json {
        Json(&status).into_response()
    } else {
        render::page(StatusCode::OK, "status.html", html_context(&status))
    };
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::HeaderName::from_static("x-robots-tag"),
        HeaderValue::from_static("noindex"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

fn html_context(status: &CustomerStatus) -> minijinja::Value {
    let t = render::time;
    let incidents: Vec<_> = status
        .incidents
        .iter()
        .map(|i| {
            minijinja::context! {
                id => i.id,
                services => i.services.join(", "),
                regions => i.regions.join(", "),
                severity => i.severity,
                status => i.status.as_str(),
                opened_at => t(i.opened_at),
                acknowledged_at => render::opt_time(i.acknowledged_at),
                cases => i.cases.iter().map(|c| format!("#{c}")).collect::<Vec<_>>().join(", "),
            }
        })
        .collect();
    let cases: Vec<_> = status
        .cases
        .iter()
        .map(|c| {
            minijinja::context! {
                id => c.id,
                service => c.service,
                region => c.region,
                sr_severity => c.sr_severity,
                status => c.status.as_str(),
                opened_at => t(c.opened_at),
                respond_by => t(c.respond_by),
                responded_at => render::opt_time(c.responded_at),
                resolved_at => render::opt_time(c.resolved_at),
                incident_id => c.incident_id,
                updates => c.updates.iter().map(|u| minijinja::context! {
                    at => t(u.at), text => u.text,
                }).collect::<Vec<_>>(),
            }
        })
        .collect();
    minijinja::context! {
        customer => status.name.clone().unwrap_or_else(|| status.customer.clone()),
        as_of => t(status.as_of),
        incidents => incidents,
        cases => cases,
    }
}

/// `{url}`: the customer's status link.
async fn link(
    Need(..): Need<need::Responder>,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let setup = state.setup();
    if !setup.config.catalog.customers.iter().any(|c| c.id == id) {
        return Err(ApiError::not_found(format!(
            "no customer {id:?} in the catalog"
        )));
    }
    let signer = setup.ack_signer.as_ref().ok_or_else(|| {
        ApiError::new(
            StatusCode::CONFLICT,
            "this engine has no ack-link key to sign status links with",
        )
    })?;
    let url = format!("{}/status/{}", setup.external_url, signer.sign_status(&id));
    Ok(Json(serde_json::json!({ "customer": id, "url": url })))
}
