//! Ack links, `/ack/{token}`: the link in every page. A GET only shows what would be
//! acknowledged and a button (mail scanners and link previews fetch links; a GET must never
//! act); the button POSTs, and the incident is acknowledged by the link's recipient. The
//! token is the credential: signed, bound to one incident and one recipient, expiring. A
//! token that fails any of that gets 403 and changes nothing. Tokens are never logged.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::middleware;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use minijinja::context;

use super::auth::{Caller, ClientAddress};
use super::dashboard::render::{self, message, page};
use super::dashboard::view;
use super::error::ApiError;
use super::incidents::perform;
use super::AppState;
use crate::engine::Input;
use crate::incident::{Incident, Status};
use crate::paging::ack_link::{AckClaim, AckLinkError};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/ack/{token}", get(confirm).post(acknowledge))
        .layer(middleware::map_response(render::html_headers))
}

/// The claim of a valid token, or the 403 page (boxed: a response is large).
fn verify(state: &AppState, token: &str) -> Result<AckClaim, Box<Response>> {
    let setup = state.setup();
    let Some(signer) = setup.ack_signer.as_ref() else {
        return Err(Box::new(message(
            StatusCode::NOT_FOUND,
            "Ack links are off",
            "This engine signs no ack links.",
            None,
        )));
    };
    signer.verify(token, state.clock.now()).map_err(|e| {
        tracing::warn!(reason = %e, "ack link refused");
        let text = match e {
            AckLinkError::Expired(at) => format!(
                "This link expired at {}. Acknowledge from the dashboard instead.",
                render::time(at)
            ),
            AckLinkError::Malformed | AckLinkError::BadSignature => {
                "This link is not valid: it was changed or cut short. Use the link exactly as \
                 it came in the page, or acknowledge from the dashboard."
                    .to_string()
            }
        };
        Box::new(message(
            StatusCode::FORBIDDEN,
            "Link not valid",
            &text,
            Some(("/", "Open the dashboard")),
        ))
    })
}

async fn load(state: &AppState, claim: &AckClaim) -> Result<Incident, Response> {
    match state.store.incident(claim.incident_id).await {
        Ok(Some(incident)) => Ok(incident),
        Ok(None) => Err(message(
            StatusCode::NOT_FOUND,
            "No such incident",
            &format!("Incident {} does not exist (any more).", claim.incident_id),
            Some(("/", "Open the dashboard")),
        )),
        Err(e) => {
            let e = ApiError::from(e);
            Err(message(e.status, "Try again", &e.message, None))
        }
    }
}

/// 409: there is nothing left for this link to do.
fn already(incident: &Incident) -> Response {
    let text = match incident.status {
        Status::Resolved => format!(
            "Incident {} is already resolved{}.",
            incident.id,
            incident
                .resolved_by
                .as_deref()
                .map(|by| format!(" by {by}"))
                .unwrap_or_default()
        ),
        _ => format!(
            "Incident {} was already acknowledged by {} at {}.",
            incident.id,
            incident.acknowledged_by.as_deref().unwrap_or("someone"),
            render::opt_time(incident.acknowledged_at).unwrap_or_default()
        ),
    };
    let href = format!("/incidents/{}", incident.id);
    message(
        StatusCode::CONFLICT,
        "Nothing to acknowledge",
        &text,
        Some((&href, "Open the incident")),
    )
}

async fn confirm(State(state): State<AppState>, Path(token): Path<String>) -> Response {
    let claim = match verify(&state, &token) {
        Ok(claim) => claim,
        Err(refused) => return *refused,
    };
    if let Some(case_id) = claim.case_id {
        return confirm_case(&state, &claim, case_id, &token).await;
    }
    let incident = match load(&state, &claim).await {
        Ok(incident) => incident,
        Err(response) => return response,
    };
    if incident.status != Status::Triggered {
        return already(&incident);
    }
    let setup = state.setup();
    page(
        StatusCode::OK,
        "ack.html",
        context! {
            refresh => 0,
            logged_in => false,
            now => render::time(state.clock.now()),
            i => view::card(&setup, &incident, &[], state.clock.now()),
            recipient => view::person(&setup, &claim.recipient),
            expires => chrono::DateTime::from_timestamp(claim.expires, 0).map(render::time),
            action => format!("/ack/{token}"),
        },
    )
}

async fn acknowledge(
    State(state): State<AppState>,
    Path(token): Path<String>,
    ClientAddress(address): ClientAddress,
) -> Response {
    let claim = match verify(&state, &token) {
        Ok(claim) => claim,
        Err(refused) => return *refused,
    };
    // The link stands for its recipient alone, whoever holds a token.
    let caller = Caller {
        name: Some(claim.recipient.clone()),
        role: crate::api::auth::Role::Responder,
        address,
    };
    if let Some(case_id) = claim.case_id {
        return acknowledge_case(&state, &caller, &claim, case_id).await;
    }
    let id = claim.incident_id;
    let input = Input::Ack {
        incident_id: id,
        by: claim.recipient.clone(),
    };
    match perform(&state, &caller, id, input).await {
        Ok(()) => {
            tracing::info!(incident = id, by = %claim.recipient, "acknowledged through an ack link");
            let href = format!("/incidents/{id}");
            message(
                StatusCode::OK,
                "Acknowledged",
                &format!(
                    "Incident {id} is acknowledged by {}. Escalation has stopped.",
                    view::person(&state.setup(), &claim.recipient)
                ),
                Some((&href, "Open the incident")),
            )
        }
        Err(e) if e.status == StatusCode::CONFLICT => match load(&state, &claim).await {
            Ok(incident) => already(&incident),
            Err(response) => response,
        },
        Err(e) => {
            let title = e.status.canonical_reason().unwrap_or("Error");
            message(
                e.status,
                title,
                &e.message,
                Some(("/", "Open the dashboard")),
            )
        }
    }
}

/// The confirm page of a link in a page about a support case.
async fn confirm_case(state: &AppState, claim: &AckClaim, case_id: i64, token: &str) -> Response {
    let case = match state.store.case(case_id).await {
        Ok(Some(case)) => case,
        Ok(None) => {
            return message(
                StatusCode::NOT_FOUND,
                "No such case",
                &format!("Case {case_id} does not exist (any more)."),
                None,
            )
        }
        Err(e) => {
            let e = ApiError::from(e);
            return message(e.status, "Try again", &e.message, None);
        }
    };
    if !case.is_open() {
        return message(
            StatusCode::CONFLICT,
            "Nothing to acknowledge",
            &format!("Case {case_id} is already resolved."),
            None,
        );
    }
    page(
        StatusCode::OK,
        "case_ack.html",
        context! {
            refresh => 0,
            logged_in => false,
            now => render::time(state.clock.now()),
            c => context! {
                id => case.id,
                sr_severity => case.sr_severity,
                status => case.status.as_str(),
                customer => case.customer,
                service => case.service,
                region => case.region,
                owner => case.owner,
                respond_by => render::time(case.respond_by),
            },
            recipient => view::person(&state.setup(), &claim.recipient),
            expires => chrono::DateTime::from_timestamp(claim.expires, 0).map(render::time),
            action => format!("/ack/{token}"),
        },
    )
}

/// Acknowledge a support case's page as the link's recipient: its escalation stops.
async fn acknowledge_case(
    state: &AppState,
    caller: &Caller,
    claim: &AckClaim,
    case_id: i64,
) -> Response {
    let by = claim.recipient.clone();
    let acked = super::cases::acknowledge(state, caller, case_id, by.clone()).await;
    match acked {
        Ok(_) => {
            tracing::info!(case = case_id, by = %by, "case acknowledged through an ack link");
            message(
                StatusCode::OK,
                "Acknowledged",
                &format!(
                    "Case {case_id}'s page is acknowledged by {}. Escalation has stopped.",
                    view::person(&state.setup(), &by)
                ),
                None,
            )
        }
        Err(e) => {
            let title = match e.status {
                StatusCode::CONFLICT => "Nothing to acknowledge",
                status => status.canonical_reason().unwrap_or("Error"),
            };
            message(e.status, title, &e.message, None)
        }
    }
}
