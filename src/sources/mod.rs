//! Sources: probes, pulled Prometheus and Alertmanager alerts, pushes, CRIs, heartbeats.

use std::sync::Arc;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::engine::{Clock, EngineHandle, Setup};
use crate::metrics::Metrics;

/// What the sources are handed.
pub struct SourceParts {
    pub engine: EngineHandle,
    pub clock: Clock,
    pub metrics: Arc<Metrics>,
    /// The config in force; sources restart on a reload.
    pub setup: watch::Receiver<Arc<Setup>>,
    pub shutdown: watch::Receiver<bool>,
}

/// Start every configured source.
pub fn spawn(parts: SourceParts) -> JoinHandle<()> {
    let mut shutdown = parts.shutdown;
    tokio::spawn(async move {
        let _ = shutdown.wait_for(|stop| *stop).await;
    })
}
