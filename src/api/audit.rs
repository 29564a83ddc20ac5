//! The audit log: `GET /api/v1/audit` (viewer), and [`record`], which every action calls
//! once it is done. The chain itself (HMACs, appends, verification) is `store::audit`.
//!
//! A new endpoint that changes something records it with [`record`], naming the action,
//! its target and a short detail; the actor and address come from its [`Caller`].

use axum::extract::{Query, State};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use super::auth::{need, require_token, Caller, Need};
use super::cursor;
use super::error::ApiError;
use super::AppState;
use crate::engine::Input;
use crate::store::{AuditEntry, NewAuditEntry};

pub fn router(state: AppState) -> Router<AppState> {
    Router::new()
        .route("/api/v1/audit", get(list))
        .route_layer(axum::middleware::from_fn_with_state(state, require_token))
}

/// Record that `actor` (the caller's name, or the `by` a nameless caller gave) did
/// `action` on `target`, with a short `detail`, from the caller's address. When the store
/// does not take the entry, it is kept and written once it does (see [`keep`]), and the
/// caller hears 503.
pub async fn record(
    state: &AppState,
    caller: &Caller,
    actor: &str,
    action: &str,
    target: &str,
    detail: &str,
) -> Result<AuditEntry, ApiError> {
    let setup = state.setup();
    let key = setup
        .audit_key
        .as_ref()
        .ok_or_else(|| ApiError::internal("the audit key is not loaded"))?;
    let entry = new_entry(state, caller, actor, action, target, detail);
    state
        .store
        .append_audit(key, entry.clone())
        .await
        .map_err(|e| {
            tracing::error!(error = %e, action, target, "the audit entry could not be written yet");
            keep(state, entry);
            ApiError::new(
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "{action} of {target} was done, but the store is not answering: its audit \
                     entry is written once the store takes writes again"
                ),
            )
        })
}

/// Record an action the engine took but could not write (the store refuses writes: the
/// action holds in memory and is written once the store recovers, and its caller hears 503).
/// Its audit entry, stamped now, follows it: it is written once the store takes writes
/// again; like the action, it is lost if the engine stops first.
pub fn record_once_writable(
    state: &AppState,
    caller: &Caller,
    actor: &str,
    action: &str,
    target: &str,
    detail: &str,
) {
    keep(
        state,
        new_entry(state, caller, actor, action, target, detail),
    );
}

fn new_entry(
    state: &AppState,
    caller: &Caller,
    actor: &str,
    action: &str,
    target: &str,
    detail: &str,
) -> NewAuditEntry {
    NewAuditEntry {
        at: state.clock.now(),
        actor: actor.to_string(),
        action: action.to_string(),
        target: target.to_string(),
        detail: detail.to_string(),
        address: caller.address.clone(),
    }
}

/// First wait before writing a kept entry again, and the longest.
const RETRY_FIRST: std::time::Duration = std::time::Duration::from_millis(250);
const RETRY_MOST: std::time::Duration = std::time::Duration::from_secs(5);
/// Tries before a kept entry is given up: a day at the longest wait.
const RETRY_TRIES: u32 = 17_280;

/// Write `entry` in the background once the store takes writes again (after the engine's
/// own writes: it tries while the store is reported healthy), retrying with backoff.
fn keep(state: &AppState, entry: NewAuditEntry) {
    let state = state.clone();
    tokio::spawn(async move {
        let mut wait = RETRY_FIRST;
        for _ in 0..RETRY_TRIES {
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(RETRY_MOST);
            if state.store_health.is_failing() {
                continue;
            }
            let setup = state.setup();
            let Some(key) = setup.audit_key.as_ref() else {
                break;
            };
            match state.store.append_audit(key, entry.clone()).await {
                Ok(written) => {
                    tracing::info!(
                        id = written.id,
                        action = %entry.action,
                        target = %entry.target,
                        "a kept audit entry is written"
                    );
                    return;
                }
                Err(e) => tracing::debug!(error = %e, "a kept audit entry is not written yet"),
            }
        }
        tracing::error!(
            action = %entry.action,
            target = %entry.target,
            actor = %entry.actor,
            "a kept audit entry could not be written and is given up"
        );
    });
}

/// The audit words of a person's action on an incident: (action, actor, detail).
pub fn describe(input: &Input) -> Option<(&'static str, &str, String)> {
    Some(match input {
        Input::Ack { by, .. } => ("ack", by, String::new()),
        Input::Resolve { by, note, .. } => ("resolve", by, note.clone().unwrap_or_default()),
        Input::SetSeverity {
            severity,
            by,
            reason,
            ..
        } => {
            let what = match severity {
                Some(s) => format!("pinned to Sev {s}"),
                None => "unpinned".to_string(),
            };
            let detail = match reason {
                Some(reason) => format!("{what}: {reason}"),
                None => what,
            };
            ("severity", by, detail)
        }
        Input::Note { by, text, .. } => ("note", by, short(text)),
        Input::Escalate { by, .. } => ("escalate", by, String::new()),
        Input::AddResponder { by, responder, .. } => ("add_responder", by, responder.clone()),
        Input::Assign { by, responder, .. } => ("assign", by, format!("to {responder}")),
        Input::TsgReport {
            by, outcome, note, ..
        } => {
            let detail = match note {
                Some(note) => format!("{}: {}", outcome.as_str(), short(note)),
                None => outcome.as_str().to_string(),
            };
            ("tsg_report", by, detail)
        }
        _ => return None,
    })
}

/// At most 200 characters of `text`, for a detail.
pub fn short(text: &str) -> String {
    match text.char_indices().nth(200) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_string(),
    }
}

#[derive(Deserialize)]
struct ListQuery {
    cursor: Option<String>,
    limit: Option<String>,
}

#[derive(Serialize)]
struct AuditPage {
    entries: Vec<AuditEntry>,
    next: Option<String>,
}

async fn list(
    Need(..): Need<need::Viewer>,
    State(state): State<AppState>,
    Query(q): Query<ListQuery>,
) -> Result<Json<AuditPage>, ApiError> {
    let limit = cursor::limit(q.limit.as_deref())?;
    let before = cursor::cursor(q.cursor.as_deref())?;
    let entries = state.store.audit_entries(before, limit + 1).await?;
    let (entries, next) = cursor::page(entries, limit, |e| e.id);
    Ok(Json(AuditPage { entries, next }))
}
