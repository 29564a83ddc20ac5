//! The engine loop: one task owns the core, takes inputs from a bounded channel, fires timers
//! on the clock, and writes each batch of changes to the store in one transaction before it
//! answers the callers and hands new pages to delivery (group commit: many inputs, one fsync).

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot, watch};

use super::clock::Clock;
use super::core::{Core, Input, Reply};
use crate::metrics::Metrics;
use crate::paging::Page;
use crate::store::Store;

/// Inputs waiting for the core, at most.
const QUEUE: usize = 4096;
/// Inputs taken per batch (one transaction).
const BATCH: usize = 1024;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EngineError {
    #[error("the engine is shutting down")]
    Stopped,
    #[error("the store could not record it: {0}")]
    Store(String),
}

struct Request {
    input: Input,
    reply: Option<oneshot::Sender<Result<Reply, EngineError>>>,
}

/// Talks to the engine loop; cheap to clone.
#[derive(Clone)]
pub struct EngineHandle {
    tx: mpsc::Sender<Request>,
}

impl EngineHandle {
    /// Hand an input to the core and wait until its effects are stored.
    pub async fn send(&self, input: Input) -> Result<Reply, EngineError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Request {
                input,
                reply: Some(reply),
            })
            .await
            .map_err(|_| EngineError::Stopped)?;
        rx.await.map_err(|_| EngineError::Stopped)?
    }

    /// Hand an input over without waiting for it to be stored.
    pub async fn submit(&self, input: Input) -> Result<(), EngineError> {
        self.tx
            .send(Request { input, reply: None })
            .await
            .map_err(|_| EngineError::Stopped)
    }
}

/// What the loop needs besides the core.
pub struct LoopParts {
    pub store: Store,
    pub clock: Clock,
    pub metrics: Arc<Metrics>,
    /// New pages, once stored, go here for delivery.
    pub pages: mpsc::UnboundedSender<Vec<Page>>,
    pub shutdown: watch::Receiver<bool>,
}

/// A handle and the receiving end for [`run_loop`].
pub fn channel() -> (EngineHandle, EngineReceiver) {
    let (tx, rx) = mpsc::channel(QUEUE);
    (EngineHandle { tx }, EngineReceiver { rx })
}

pub struct EngineReceiver {
    rx: mpsc::Receiver<Request>,
}

/// Run the core until shutdown; returns it for inspection (tests).
pub async fn run_loop(mut core: Core, inputs: EngineReceiver, parts: LoopParts) -> Core {
    let LoopParts {
        store,
        clock,
        metrics,
        pages,
        mut shutdown,
    } = parts;
    let mut rx = inputs.rx;
    let mut batch: Vec<Request> = Vec::with_capacity(BATCH);
    let mut waiting: Vec<(oneshot::Sender<Result<Reply, EngineError>>, Reply)> = Vec::new();
    // Changes not yet written (the store failed): kept in order and retried.
    let mut unwritten: Vec<super::core::Changes> = Vec::new();
    let mut retry_delay = std::time::Duration::from_millis(100);
    loop {
        let wake = core.next_wake();
        tokio::select! {
            biased;
            _ = shutdown.changed() => break,
            received = rx.recv_many(&mut batch, BATCH) => {
                if received == 0 {
                    break;
                }
                let now = clock.now();
                core.tick(now);
                for request in batch.drain(..) {
                    let reply = core.handle(request.input, now);
                    if let Some(tx) = request.reply {
                        waiting.push((tx, reply));
                    }
                }
            }
            _ = clock.sleep_until(wake) => core.tick(clock.now()),
            _ = tokio::time::sleep(retry_delay), if !unwritten.is_empty() => {}
        }
        let changes = core.take_changes();
        if !changes.is_empty() {
            unwritten.push(changes);
        }
        let mut written_pages = Vec::new();
        let mut failure = None;
        while let Some(changes) = unwritten.first() {
            match store.apply(changes).await {
                Ok(()) => {
                    let changes = unwritten.remove(0);
                    written_pages.extend(changes.pages);
                    retry_delay = std::time::Duration::from_millis(100);
                }
                Err(e) => {
                    metrics.store_errors_total.inc();
                    tracing::error!(error = %e, pending = unwritten.len(), "store write failed; will retry");
                    failure = Some(e.to_string());
                    retry_delay = (retry_delay * 2).min(std::time::Duration::from_secs(5));
                    break;
                }
            }
        }
        if !written_pages.is_empty() {
            let _ = pages.send(written_pages);
        }
        for (tx, reply) in waiting.drain(..) {
            let answer = match &failure {
                None => Ok(reply),
                Some(e) => Err(EngineError::Store(e.clone())),
            };
            let _ = tx.send(answer);
        }
    }
    // Write what is left before stopping.
    let changes = core.take_changes();
    if !changes.is_empty() {
        unwritten.push(changes);
    }
    for changes in &unwritten {
        if let Err(e) = store.apply(changes).await {
            tracing::error!(error = %e, "store write failed at shutdown");
        }
    }
    core
}
