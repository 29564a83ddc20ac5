//! /api/v1/responders/{id}/test: a test page over each of a responder's channels, sent
//! at once (not through the outbox: the answer reports each delivery).

use axum::extract::{Path, State};
use axum::middleware;
use axum::routing::post;
use axum::{Json, Router};
use serde::Serialize;

use super::auth::{need, require_token, Need};
use super::error::ApiError;
use super::AppState;
use crate::paging::notify::{webhook, Notifiers};
use crate::paging::{notice, Page};

pub fn router(state: AppState) -> Router<AppState> {
    Router::new()
        .route("/api/v1/responders/{id}/test", post(test_page))
        .route_layer(middleware::from_fn_with_state(state, require_token))
}

/// How one test page went.
#[derive(Debug, Serialize)]
pub struct Delivery {
    pub channel: &'static str,
    pub address: String,
    pub ok: bool,
    pub error: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct TestReport {
    pub responder: String,
    pub deliveries: Vec<Delivery>,
}

async fn test_page(
    Need(..): Need<need::Responder>,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<TestReport>, ApiError> {
    let setup = state.setup();
    let recipients = setup
        .paging
        .channels_of(&id)
        .ok_or_else(|| ApiError::not_found(format!("no responder {id:?} in the config")))?;
    if recipients.is_empty() {
        return Err(ApiError::unprocessable(format!(
            "responder {id:?} has no channel (email or webhook) to test"
        )));
    }
    let notifiers = Notifiers::new(&setup.config, webhook::client());
    let now = state.clock.now();
    let mut deliveries = Vec::new();
    for recipient in recipients {
        let payload = notice::test_page(&id, &setup.external_url, now);
        let body = serde_json::to_vec(&payload)
            .map_err(|e| ApiError::internal(format!("cannot write the test page: {e}")))?;
        let page = Page {
            case_id: Default::default(),
            id: 0,
            delivery_id: uuid::Uuid::new_v4().to_string(),
            incident_id: 0,
            event: payload.event,
            recipient: recipient.clone(),
            level: None,
            payload,
            created_at: now,
        };
        let result = notifiers.send(&page, &body, now).await;
        deliveries.push(Delivery {
            channel: recipient.channel.as_str(),
            address: recipient.address,
            ok: result.is_ok(),
            error: result.err().map(|e| e.to_string()),
        });
    }
    Ok(Json(TestReport {
        responder: id,
        deliveries,
    }))
}
