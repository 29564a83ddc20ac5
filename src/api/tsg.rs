//! `POST /api/v1/incidents/{id}/tsg`: an incident's TSG action reports how its mitigation
//! went (`{status: succeeded | failed, note, by}`). The action calls with a responder's
//! token, as a person who mitigated by hand would.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::Json;
use serde::Deserialize;

use super::auth::{need, Need};
use super::error::{json_object, ApiError};
use super::incidents::{act, parse_id, who};
use super::AppState;
use crate::engine::Input;
use crate::incident::{IncidentView, TsgOutcome};

/// Who reports when neither the token nor the body names anyone.
const ACTION: &str = "tsg-action";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReportBody {
    status: String,
    #[serde(default)]
    note: Option<String>,
    #[serde(default)]
    by: String,
}

pub(super) async fn report(
    Need(caller, _): Need<need::Responder>,
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<IncidentView>, ApiError> {
    let id = parse_id(&id)?;
    let body: ReportBody = json_object(&body)?;
    let outcome = TsgOutcome::parse_report(&body.status).ok_or_else(|| {
        ApiError::unprocessable(format!(
            "`status` is {:?}: expected succeeded or failed",
            body.status
        ))
    })?;
    if let Some(note) = &body.note {
        super::incidents::check_note(note)
            .map_err(|_| ApiError::unprocessable("`note` must be 1 byte to 64 KiB of text"))?;
    }
    let said = if body.by.is_empty() { ACTION } else { &body.by };
    let by = who(&caller, said)?;
    let input = Input::TsgReport {
        incident_id: id,
        outcome,
        note: body.note,
        by,
    };
    act(&state, &caller, id, input).await
}
