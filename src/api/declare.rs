//! Incidents by hand: declare (`POST /api/v1/incidents`), escalate now, add a responder and
//! assign (`POST /api/v1/incidents/{id}/escalate|responders|assign`). Each needs the
//! responder role and is recorded in the audit log.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;

use super::auth::{need, Need};
use super::error::{json_object, reply_error, ApiError};
use super::incidents::{check_severity, parse_id, perform, who};
use super::AppState;
use crate::engine::{Input, Reply};
use crate::incident::lifecycle::Declaration;
use crate::incident::IncidentView;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DeclareBody {
    title: String,
    #[serde(default)]
    severity: Option<i64>,
    #[serde(default)]
    services: Vec<String>,
    #[serde(default)]
    regions: Vec<String>,
    #[serde(default)]
    customers: Vec<String>,
    #[serde(default)]
    description: String,
    #[serde(default)]
    by: String,
}

/// Longest title and name.
const MAX_TITLE: usize = 256;
const MAX_NAME: usize = 128;

fn check_names(field: &str, names: &[String]) -> Result<(), ApiError> {
    for name in names {
        if name.trim().is_empty() || name.len() > MAX_NAME || name.contains(char::is_whitespace) {
            return Err(ApiError::unprocessable(format!(
                "`{field}` holds {name:?}: expected names of 1 to {MAX_NAME} characters without \
                 spaces"
            )));
        }
    }
    Ok(())
}

/// 201 with the incident, routed and paged like any other.
pub(super) async fn declare(
    Need(caller, _): Need<need::Responder>,
    State(state): State<AppState>,
    body: Bytes,
) -> Result<(StatusCode, Json<IncidentView>), ApiError> {
    let body: DeclareBody = json_object(&body)?;
    let by = who(&caller, &body.by)?;
    let title = body.title.trim().to_string();
    if title.is_empty() || title.len() > MAX_TITLE {
        return Err(ApiError::unprocessable(format!(
            "`title` must say what is wrong (1 to {MAX_TITLE} characters)"
        )));
    }
    let severity = match body.severity {
        None => None,
        given => check_severity(given)?,
    };
    if body.services.is_empty() && body.regions.is_empty() {
        return Err(ApiError::unprocessable(
            "`services` or `regions` must name what is hit (at least one of them)",
        ));
    }
    check_names("services", &body.services)?;
    check_names("regions", &body.regions)?;
    check_names("customers", &body.customers)?;
    if body.description.len() > super::incidents::MAX_NOTE {
        return Err(ApiError::unprocessable(
            "`description` is too long (at most 64 KiB)",
        ));
    }
    let declaration = Declaration {
        title,
        severity,
        services: body.services,
        regions: body.regions,
        customers: body.customers,
        description: body.description,
        by: by.clone(),
    };
    let detail = format!(
        "{}{}",
        super::audit::short(&declaration.title),
        severity
            .map(|s| format!(" (Sev {s}, pinned)"))
            .unwrap_or_default()
    );
    let id = match reply_error(state.engine.send(Input::Declare(declaration)).await?)? {
        Reply::Declared(id) => id,
        other => {
            return Err(ApiError::internal(format!(
                "the engine answered {other:?} to a declaration"
            )))
        }
    };
    let target = format!("incident {id}");
    super::audit::record(&state, &caller, &by, "declare", &target, &detail).await?;
    let incident =
        state.store.incident(id).await?.ok_or_else(|| {
            ApiError::internal("the incident was declared but cannot be read back")
        })?;
    Ok((
        StatusCode::CREATED,
        Json(IncidentView::new(&incident, &state.setup().external_url)),
    ))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ByBody {
    #[serde(default)]
    by: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ResponderBody {
    responder: String,
    #[serde(default)]
    by: String,
}

/// A configured responder's id, or a 422 naming those there are.
fn check_responder(state: &AppState, responder: &str) -> Result<String, ApiError> {
    let setup = state.setup();
    if setup.paging.responders.contains_key(responder) {
        return Ok(responder.to_string());
    }
    let mut known: Vec<&str> = setup.paging.responders.keys().map(String::as_str).collect();
    known.sort_unstable();
    Err(ApiError::unprocessable(format!(
        "`responder` {responder:?} is not configured: expected one of {}",
        if known.is_empty() {
            "the responders of the config (it has none)".to_string()
        } else {
            known.join(", ")
        }
    )))
}

async fn answer(state: &AppState, id: i64) -> Result<Json<IncidentView>, ApiError> {
    let incident = state
        .store
        .incident(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no incident {id}")))?;
    Ok(Json(IncidentView::new(
        &incident,
        &state.setup().external_url,
    )))
}

/// The next level is paged at once; 409 when no level is left.
pub(super) async fn escalate(
    Need(caller, _): Need<need::Responder>,
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<IncidentView>, ApiError> {
    let id = parse_id(&id)?;
    // An empty body is `{}`: there may be nothing to say.
    let body: ByBody = if body.iter().all(u8::is_ascii_whitespace) {
        ByBody::default()
    } else {
        json_object(&body)?
    };
    let by = who(&caller, &body.by)?;
    perform(
        &state,
        &caller,
        id,
        Input::Escalate {
            incident_id: id,
            by,
        },
    )
    .await?;
    answer(&state, id).await
}

/// The responder is paged at once and follows the incident.
pub(super) async fn add_responder(
    Need(caller, _): Need<need::Responder>,
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<IncidentView>, ApiError> {
    let id = parse_id(&id)?;
    let body: ResponderBody = json_object(&body)?;
    let by = who(&caller, &body.by)?;
    let responder = check_responder(&state, &body.responder)?;
    let input = Input::AddResponder {
        incident_id: id,
        responder,
        by,
    };
    perform(&state, &caller, id, input).await?;
    answer(&state, id).await
}

/// The responder becomes the assignee and is paged (event `assigned`).
pub(super) async fn assign(
    Need(caller, _): Need<need::Responder>,
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<IncidentView>, ApiError> {
    let id = parse_id(&id)?;
    let body: ResponderBody = json_object(&body)?;
    let by = who(&caller, &body.by)?;
    let responder = check_responder(&state, &body.responder)?;
    let input = Input::Assign {
        incident_id: id,
        responder,
        by,
    };
    perform(&state, &caller, id, input).await?;
    answer(&state, id).await
}
