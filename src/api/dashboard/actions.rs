//! The dashboard's actions on an incident: forms posted to non-API routes (ack, resolve,
//! note, severity), which act as the API does and redirect back. Who acts is the signed-in
//! token's name, else the name this browser gave once (see `session::acting_name`).

use axum::extract::rejection::FormRejection;
use axum::extract::{FromRequest, Path, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use serde::Deserialize;

use super::super::auth::{Caller, ClientAddress, Role};
use super::super::error::ApiError;
use super::super::incidents::{check_note, check_severity, parse_id, perform, who};
use super::super::AppState;
use super::{error_page, session};
use crate::engine::Input;

/// A posted form, refused in the API's words ("field \"by\" is given twice") rather than
/// axum's ("Failed to deserialize form body: duplicate field `by`").
pub(super) struct FormBody<T>(pub T);

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
pub(super) struct ByForm {
    #[serde(default)]
    by: String,
    /// Where to go back to (the list acks and comes back to the list).
    #[serde(default)]
    next: String,
}

#[derive(Deserialize)]
pub(super) struct ResolveForm {
    #[serde(default)]
    by: String,
    #[serde(default)]
    note: String,
}

#[derive(Deserialize)]
pub(super) struct NoteForm {
    #[serde(default)]
    by: String,
    #[serde(default)]
    text: String,
}

#[derive(Deserialize)]
pub(super) struct SeverityForm {
    #[serde(default)]
    by: String,
    /// 0–4, or "unpin".
    #[serde(default)]
    severity: String,
    #[serde(default)]
    reason: String,
}

/// Who acts for this request, as [`who`] says it for the API: the token's name, else the
/// form's `by`, else the name this browser remembers. A clear refusal when none is known.
pub(super) fn actor(caller: &Caller, headers: &HeaderMap, said: &str) -> Result<String, ApiError> {
    let said = said.trim();
    let said = if said.is_empty() {
        session::remembered_by(headers)
    } else {
        said.to_string()
    };
    if caller.name.is_none() && said.trim().is_empty() {
        return Err(ApiError::unprocessable(
            "the dashboard does not know your name yet: give it once at the top of the page \
             (this browser remembers it)",
        ));
    }
    who(caller, &said)
}

/// Who may act, checked the dashboard's way: the caller (or the way to sign in), and no
/// form from another site.
pub(super) fn acting_caller(
    state: &AppState,
    headers: &HeaderMap,
    address: String,
    back: &str,
) -> Result<Caller, Box<Response>> {
    let Some(caller) = session::caller(state, headers, address) else {
        return Err(Box::new(
            session::login_needed(state, headers, back)
                .unwrap_or_else(|| Redirect::to("/login").into_response()),
        ));
    };
    if !session::same_origin(headers) {
        return Err(Box::new(session::forbidden_cross_site()));
    }
    Ok(caller)
}

/// The common path of every dashboard action: who may (the role `needed`), what it is, then
/// back to the page (or to `next`, a path of this site). A named token acts under its name,
/// whatever the form's `by` says.
#[allow(clippy::too_many_arguments)]
async fn act(
    state: &AppState,
    headers: &HeaderMap,
    address: String,
    id: &str,
    by: &str,
    next: &str,
    needed: Role,
    make: impl FnOnce(i64, String) -> Result<Input, ApiError>,
) -> Response {
    let back = format!("/incidents/{id}");
    let caller = match acting_caller(state, headers, address, &back) {
        Ok(caller) => caller,
        Err(response) => return *response,
    };
    let result = async {
        caller.need(needed)?;
        let id = parse_id(id)?;
        let by = actor(&caller, headers, by)?;
        let input = make(id, by.clone())?;
        perform(state, &caller, id, input).await?;
        Ok::<_, ApiError>(by)
    }
    .await;
    match result {
        Ok(by) => {
            let to = if next.is_empty() {
                back.as_str()
            } else {
                session::safe_next(next)
            };
            let mut response = Redirect::to(to).into_response();
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

pub(super) async fn ack(
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
        &form.next,
        Role::Responder,
        |incident_id, by| Ok(Input::Ack { incident_id, by }),
    )
    .await
}

pub(super) async fn resolve(
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
        "",
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

pub(super) async fn note(
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
        "",
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

pub(super) async fn severity(
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
        "",
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
