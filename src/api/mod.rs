//! The HTTP interface: the JSON API, ingest endpoints, ack links, the dashboard, and the
//! Prometheus admin plane (/metrics, /-/healthy, /-/ready, /-/reload).

pub mod admin;
pub mod auth;
pub mod error;
pub mod incidents;

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use axum::Router;
use tokio::sync::{mpsc, oneshot, watch};

use crate::engine::{Clock, EngineHandle, Setup};
use crate::metrics::Metrics;
use crate::store::Store;

/// Largest request body accepted (DESIGN.md: 413 above 1 MiB).
pub const MAX_BODY: usize = 1 << 20;

/// A reload request; answered once the reload is done.
pub type ReloadRequest = oneshot::Sender<Result<(), String>>;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub engine: EngineHandle,
    pub store: Store,
    pub metrics: Arc<Metrics>,
    /// The config in force; replaced whole on reload.
    pub setup: watch::Receiver<Arc<Setup>>,
    pub ready: Arc<AtomicBool>,
    pub clock: Clock,
    pub reload: mpsc::Sender<ReloadRequest>,
    /// Bearer tokens accepted on /api/* (empty: no auth).
    pub tokens: Arc<Vec<String>>,
}

impl AppState {
    pub fn setup(&self) -> Arc<Setup> {
        self.setup.borrow().clone()
    }
}

/// Every route of the server.
pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(admin::router())
        .merge(incidents::router(state.clone()))
        .merge(crate::sources::ingest::router(state.clone()))
        .fallback(error::not_found)
        .layer(tower_http::limit::RequestBodyLimitLayer::new(MAX_BODY))
        .with_state(state)
}
