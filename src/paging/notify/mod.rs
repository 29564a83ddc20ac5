//! Delivering pages: email and webhooks, retried from the outbox until delivered.

use std::sync::Arc;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::engine::{Clock, EngineHandle, Setup};
use crate::metrics::Metrics;
use crate::paging::Page;
use crate::store::Store;

/// What the delivery worker is handed.
pub struct DeliveryParts {
    pub store: Store,
    pub engine: EngineHandle,
    pub clock: Clock,
    pub metrics: Arc<Metrics>,
    pub setup: watch::Receiver<Arc<Setup>>,
    /// Pages just written to the outbox.
    pub pages: mpsc::UnboundedReceiver<Vec<Page>>,
    pub shutdown: watch::Receiver<bool>,
}

/// Start the delivery worker.
pub fn spawn(parts: DeliveryParts) -> JoinHandle<()> {
    let mut shutdown = parts.shutdown;
    let _pages = parts.pages;
    tokio::spawn(async move {
        let _ = shutdown.wait_for(|stop| *stop).await;
    })
}
