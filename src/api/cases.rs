//! /api/v1/cases: support cases (service requests) from the first response to their close.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use super::auth::{need, require_token, Caller, Need};
use super::error::{json_object, reply_error, ApiError};
use super::incidents::{check_by, check_note};
use super::AppState;
use crate::engine::{CaseInput, Input, Reply};
use crate::incident::case::{Case, CaseEntry};
use crate::incident::Status;

pub fn router(state: AppState) -> Router<AppState> {
    Router::new()
        .route("/api/v1/cases", get(list).post(open))
        .route("/api/v1/cases/{id}", get(show))
        .route("/api/v1/cases/{id}/take", post(take))
        .route("/api/v1/cases/{id}/ack", post(ack))
        .route("/api/v1/cases/{id}/respond", post(respond))
        .route("/api/v1/cases/{id}/updates", post(update))
        .route("/api/v1/cases/{id}/customer-exit", post(customer_exit))
        .route("/api/v1/cases/{id}/resolve", post(resolve))
        .route("/api/v1/cases/{id}/escalate", post(escalate))
        .route_layer(middleware::from_fn_with_state(state, require_token))
}

/// A case as the API shows it: the case, and its incident's status when it has one.
#[derive(Serialize)]
pub struct CaseView {
    #[serde(flatten)]
    pub case: Case,
    pub url: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub incident: Option<IncidentLink>,
}

#[derive(Serialize)]
pub struct IncidentLink {
    pub id: i64,
    pub status: Status,
    pub severity: u8,
    pub url: String,
}

#[derive(Serialize)]
struct CaseDetail {
    #[serde(flatten)]
    view: CaseView,
    timeline: Vec<CaseEntry>,
}

async fn view(state: &AppState, case: Case) -> Result<CaseView, ApiError> {
    let external = state.setup().external_url.clone();
    let incident = match case.incident_id {
        None => None,
        Some(id) => state.store.incident(id).await?.map(|i| IncidentLink {
            id: i.id,
            status: i.status,
            severity: i.severity,
            url: format!("{external}/incidents/{}", i.id),
        }),
    };
    Ok(CaseView {
        url: format!("{external}/api/v1/cases/{}", case.id),
        case,
        incident,
    })
}

fn parse_id(id: &str) -> Result<i64, ApiError> {
    id.parse::<i64>()
        .map_err(|_| ApiError::not_found(format!("no case {id:?}: ids are numbers")))
}

/// 201 with the case.
async fn open(
    Need(caller, _): Need<need::Responder>,
    State(state): State<AppState>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let mut case = match crate::sources::case::parse(&body) {
        Ok(case) => case,
        Err(e) => return Ok(super::ingest::cri_rejection(e)),
    };
    case.by = caller.by(&case.by);
    let case = perform(&state, &caller, None, CaseInput::Open { case }).await?;
    Ok((StatusCode::CREATED, Json(view(&state, case).await?)).into_response())
}

#[derive(Deserialize)]
struct ListQuery {
    status: Option<String>,
    customer: Option<String>,
    limit: Option<String>,
}

async fn list(
    Need(..): Need<need::Viewer>,
    State(state): State<AppState>,
    Query(q): Query<ListQuery>,
) -> Result<Json<Vec<CaseView>>, ApiError> {
    let open = match q.status.as_deref() {
        None | Some("") | Some("all") => false,
        Some("open") => true,
        Some(s) => {
            return Err(ApiError::bad_request(format!(
                "invalid status {s:?}: expected open or all"
            )))
        }
    };
    let limit = match q.limit.as_deref() {
        None | Some("") => 100,
        Some(s) => s
            .parse::<i64>()
            .ok()
            .filter(|n| (1..=10_000).contains(n))
            .ok_or_else(|| {
                ApiError::bad_request(format!("invalid limit {s:?}: expected 1 to 10000"))
            })?,
    };
    let customer = q.customer.as_deref().filter(|c| !c.is_empty());
    let cases = state.store.list_cases(open, customer, limit).await?;
    let mut out = Vec::with_capacity(cases.len());
    for case in cases {
        out.push(view(&state, case).await?);
    }
    Ok(Json(out))
}

async fn show(
    Need(..): Need<need::Viewer>,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let id = parse_id(&id)?;
    let case = state
        .store
        .case(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no case {id}")))?;
    let detail = CaseDetail {
        view: view(&state, case).await?,
        timeline: state.store.case_timeline(id).await?,
    };
    Ok(Json(serde_json::to_value(detail).map_err(|e| {
        ApiError::internal(format!("cannot show case {id}: {e}"))
    })?))
}

/// The audit log's words for a case action: its action name, who, and what they wrote.
fn describe(input: &CaseInput) -> (&'static str, String, String) {
    match input {
        CaseInput::Open { case } => (
            "case_open",
            case.by.clone(),
            format!(
                "SR {} for {} on {} in {}",
                case.sr_severity, case.customer, case.service, case.region
            ),
        ),
        CaseInput::Cri { .. } => ("case_open", "cri".to_string(), String::new()),
        CaseInput::Take { by, .. } => ("case_take", by.clone(), String::new()),
        CaseInput::Ack { by, .. } => ("case_ack", by.clone(), String::new()),
        CaseInput::Respond { by, text, .. } => ("case_respond", by.clone(), text.clone()),
        CaseInput::Update {
            by,
            text,
            notify_customer,
            ..
        } => (
            "case_update",
            by.clone(),
            if *notify_customer {
                format!("(sent to the customer) {text}")
            } else {
                text.clone()
            },
        ),
        CaseInput::CustomerExit { by, note, .. } => (
            "case_customer_exit",
            by.clone(),
            note.clone().unwrap_or_default(),
        ),
        CaseInput::Resolve { by, note, .. } => {
            ("case_resolve", by.clone(), note.clone().unwrap_or_default())
        }
        CaseInput::Escalate { by, kind, .. } => (
            "case_escalate",
            by.clone(),
            kind.clone()
                .map(|k| format!("as a {k} CRI"))
                .unwrap_or_default(),
        ),
    }
}

/// Hand a person's action on a case to the engine and record it in the audit log once done
/// (an action taken in memory during store trouble is recorded once the store recovers).
async fn perform(
    state: &AppState,
    caller: &Caller,
    id: Option<i64>,
    input: CaseInput,
) -> Result<Case, ApiError> {
    let (action, actor, detail) = describe(&input);
    let result = send(state, id, input).await;
    let target = |case: Option<i64>| match case {
        Some(case) => format!("case {case}"),
        None => "case".to_string(),
    };
    match &result {
        Ok(case) => {
            super::audit::record(
                state,
                caller,
                &actor,
                action,
                &target(Some(case.id)),
                &detail,
            )
            .await?;
        }
        Err(e) if e.status == StatusCode::SERVICE_UNAVAILABLE => {
            super::audit::record_once_writable(state, caller, &actor, action, &target(id), &detail);
        }
        Err(_) => {}
    }
    result
}

/// Hand an action to the engine; a case that exists but is resolved is a 409, one that never
/// existed a 404.
async fn send(state: &AppState, id: Option<i64>, input: CaseInput) -> Result<Case, ApiError> {
    match state.engine.send(Input::Case(input)).await? {
        Reply::NotFound(message) => match id {
            Some(id) if state.store.case(id).await?.is_some() => Err(ApiError::new(
                StatusCode::CONFLICT,
                format!("case {id} is resolved"),
            )),
            Some(id) => Err(ApiError::not_found(format!("no case {id}"))),
            None => Err(ApiError::not_found(message)),
        },
        reply => match reply_error(reply)? {
            Reply::Case(case) => Ok(*case),
            _ => Err(ApiError::internal(
                "the engine did not answer with the case",
            )),
        },
    }
}

async fn act(
    state: &AppState,
    caller: &Caller,
    id: i64,
    input: CaseInput,
) -> Result<Json<CaseView>, ApiError> {
    let case = perform(state, caller, Some(id), input).await?;
    Ok(Json(view(state, case).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ByBody {
    by: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TextBody {
    by: String,
    text: String,
    #[serde(default)]
    notify_customer: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NoteBody {
    by: String,
    #[serde(default)]
    note: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EscalateBody {
    by: String,
    #[serde(default)]
    kind: Option<String>,
}

async fn take(
    Need(caller, _): Need<need::Responder>,
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<CaseView>, ApiError> {
    let id = parse_id(&id)?;
    let body: ByBody = json_object(&body)?;
    let by = caller.by(&body.by);
    check_by(&by)?;
    act(&state, &caller, id, CaseInput::Take { id, by }).await
}

/// Acknowledge case `id`'s page as `by` (the API and ack links): its escalation stops.
/// Recorded in the audit log.
pub(crate) async fn acknowledge(
    state: &AppState,
    caller: &super::auth::Caller,
    id: i64,
    by: String,
) -> Result<Case, ApiError> {
    perform(state, caller, Some(id), CaseInput::Ack { id, by }).await
}

async fn ack(
    Need(caller, _): Need<need::Responder>,
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<CaseView>, ApiError> {
    let id = parse_id(&id)?;
    let body: ByBody = json_object(&body)?;
    let by = caller.by(&body.by);
    check_by(&by)?;
    let case = acknowledge(&state, &caller, id, by).await?;
    Ok(Json(view(&state, case).await?))
}

async fn respond(
    Need(caller, _): Need<need::Responder>,
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<CaseView>, ApiError> {
    let id = parse_id(&id)?;
    let body: TextBody = json_object(&body)?;
    let by = caller.by(&body.by);
    check_by(&by)?;
    check_note(&body.text)?;
    if body.notify_customer {
        return Err(ApiError::unprocessable(
            "`notify_customer` goes with an update (POST …/updates), not the first response",
        ));
    }
    let input = CaseInput::Respond {
        id,
        by,
        text: body.text,
    };
    act(&state, &caller, id, input).await
}

/// 201 with the case after the update.
async fn update(
    Need(caller, _): Need<need::Responder>,
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<(StatusCode, Json<CaseView>), ApiError> {
    let id = parse_id(&id)?;
    let body: TextBody = json_object(&body)?;
    let by = caller.by(&body.by);
    check_by(&by)?;
    check_note(&body.text)?;
    let input = CaseInput::Update {
        id,
        by,
        text: body.text,
        notify_customer: body.notify_customer,
    };
    Ok((StatusCode::CREATED, act(&state, &caller, id, input).await?))
}

async fn customer_exit(
    Need(caller, _): Need<need::Responder>,
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<CaseView>, ApiError> {
    let id = parse_id(&id)?;
    let body: NoteBody = json_object(&body)?;
    let by = caller.by(&body.by);
    check_by(&by)?;
    let input = CaseInput::CustomerExit {
        id,
        by,
        note: body.note,
    };
    act(&state, &caller, id, input).await
}

async fn resolve(
    Need(caller, _): Need<need::Responder>,
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<CaseView>, ApiError> {
    let id = parse_id(&id)?;
    let body: NoteBody = json_object(&body)?;
    let by = caller.by(&body.by);
    check_by(&by)?;
    let input = CaseInput::Resolve {
        id,
        by,
        note: body.note,
    };
    act(&state, &caller, id, input).await
}

async fn escalate(
    Need(caller, _): Need<need::Responder>,
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<CaseView>, ApiError> {
    let id = parse_id(&id)?;
    let body: EscalateBody = json_object(&body)?;
    let by = caller.by(&body.by);
    check_by(&by)?;
    if let Some(kind) = &body.kind {
        if !crate::sources::cri::KINDS.contains(&kind.as_str()) {
            return Err(ApiError::unprocessable(format!(
                "{kind:?} is not a kind: expected one of {}",
                crate::sources::cri::KINDS.join(", ")
            )));
        }
    }
    let input = CaseInput::Escalate {
        id,
        by,
        kind: body.kind,
    };
    act(&state, &caller, id, input).await
}
