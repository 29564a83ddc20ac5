//! The HTTP interface: the JSON API, ingest endpoints, ack links, the dashboard, and the
//! Prometheus admin plane (/metrics, /-/healthy, /-/ready, /-/reload).

pub mod ack;
pub mod admin;
pub mod alertmanager;
pub mod audit;
pub mod auth;
mod backup;
pub mod cases;
pub mod cursor;
pub mod dashboard;
mod declare;
pub mod error;
pub mod feeds;
mod forward;
pub mod incidents;
pub mod ingest;
pub mod oncall;
pub mod overrides;
mod oversized;
pub mod queues;
pub mod ratelimit;
pub mod reports;
pub mod responders;
pub mod serve;
pub mod silences;
pub mod status;
mod tsg;
pub mod whoami;

use std::convert::Infallible;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use axum::extract::Request;
use axum::middleware;
use axum::response::Response;
use axum::Router;
use tokio::sync::{mpsc, watch};
use tower::ServiceExt;

use crate::clock::Clock;
use crate::engine::{EngineHandle, Setup};
use crate::metrics::Metrics;
use crate::store::Store;

/// Largest request body accepted (docs/api.md: 413 above 1 MiB).
pub const MAX_BODY: usize = 1 << 20;

pub use crate::engine::reload::ReloadRequest;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub engine: EngineHandle,
    pub store: Store,
    pub metrics: Arc<Metrics>,
    /// The config in force; replaced whole on reload.
    pub setup: watch::Receiver<Arc<Setup>>,
    pub ready: Arc<AtomicBool>,
    /// Whether the store takes writes; `/-/ready` is 503 while it does not.
    pub store_health: crate::store::StoreHealth,
    pub clock: Clock,
    pub reload: mpsc::Sender<ReloadRequest>,
    /// Whether this engine leads (several engines on PostgreSQL), and at which term.
    pub role: watch::Receiver<crate::engine::leadership::Leadership>,
    /// This engine's name in the leader lease.
    pub engine_id: Arc<str>,
    /// When this engine started serving (Alertmanager's `uptime`).
    pub started_at: chrono::DateTime<chrono::Utc>,
    /// The last reload, when it was refused (the dashboard's banner).
    pub last_refusal: crate::engine::reload::LastRefusal,
}

impl AppState {
    /// This engine's role in words: `leader`, `leader (term 3)` or `follower`.
    pub fn role_text(&self) -> String {
        let role = *self.role.borrow();
        match (role.leader, role.term) {
            (true, 0) => "leader".to_string(),
            (true, term) => format!("leader (term {term})"),
            (false, _) => "follower".to_string(),
        }
    }

    /// Bearer tokens accepted on /api/* (empty: no auth), as of the last reload.
    pub fn tokens(&self) -> Arc<Vec<auth::ApiToken>> {
        Arc::clone(&self.setup.borrow().api_tokens)
    }

    pub fn setup(&self) -> Arc<Setup> {
        self.setup.borrow().clone()
    }
}

/// Every route of the server.
pub fn router(state: AppState) -> Router {
    let routes = Router::new()
        .merge(admin::router())
        .merge(incidents::router(state.clone()))
        .merge(queues::router(state.clone()))
        .merge(reports::router(state.clone()))
        .merge(backup::router(state.clone()))
        .merge(audit::router(state.clone()))
        .merge(cases::router(state.clone()))
        .merge(oncall::router(state.clone()))
        .merge(silences::router(state.clone()))
        .merge(overrides::router(state.clone()))
        .merge(responders::router(state.clone()))
        .merge(whoami::router(state.clone()))
        .merge(feeds::router(state.clone()))
        .merge(alertmanager::router(state.clone()))
        .merge(ingest::router(state.clone()))
        .merge(ack::router())
        .merge(status::router(state.clone()))
        .merge(dashboard::router())
        .fallback(error::not_found)
        .layer(tower_http::limit::RequestBodyLimitLayer::new(MAX_BODY))
        .layer(middleware::from_fn(oversized::drain_oversized))
        // After the limit: a handed-over input may be larger than the request it came in.
        .merge(forward::router())
        .with_state(state);
    // Outermost, so it also sees the limit layer's 413 and axum's own 405s.
    error::with_json_errors(routes)
}

/// Serves a stand-in router (the admin plane saying "not ready") until the real one is
/// installed, so the port answers from the first moment: `/-/ready` is 503 while the store
/// opens and the rules load, instead of refusing connections.
#[derive(Clone)]
pub struct Gate {
    installed: Arc<OnceLock<Router>>,
    starting: Router,
}

impl Gate {
    pub fn new(starting: Router) -> Self {
        Gate {
            installed: Arc::new(OnceLock::new()),
            starting,
        }
    }

    /// Serve `router` from now on (once; later calls are ignored).
    pub fn open(&self, router: Router) {
        let _ = self.installed.set(router);
    }

    /// The router to hand to `axum::serve`.
    pub fn into_router(self) -> Router {
        Router::new().fallback_service(self)
    }
}

impl tower::Service<Request> for Gate {
    type Response = Response;
    type Error = Infallible;
    type Future = tower::util::Oneshot<Router, Request>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let router = self.installed.get().unwrap_or(&self.starting).clone();
        router.oneshot(request)
    }
}
