//! The engine loop: one task owns the core, takes inputs from a bounded channel, fires timers
//! on the clock, and writes each batch of changes to the store in one transaction before it
//! answers the callers and hands new pages to delivery (group commit: many inputs, one fsync).

use std::sync::Arc;

use std::sync::RwLock;

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
    #[error("no engine took the lead within {0:?}; the input is kept and will be applied")]
    NoLeader(std::time::Duration),
}

struct Request {
    input: Input,
    reply: Option<oneshot::Sender<Result<Reply, EngineError>>>,
    /// Set for an input taken from the store's inbox: its reply is written back there.
    inbox_id: Option<i64>,
}

/// Talks to the engine; cheap to clone. On the leader an input goes straight to the local
/// engine loop; on an engine that does not lead (several engines on PostgreSQL) it goes to
/// the store's inbox and the reply comes back from the leader.
#[derive(Clone)]
pub struct EngineHandle {
    inner: Arc<HandleInner>,
}

struct HandleInner {
    local: RwLock<Option<mpsc::Sender<Request>>>,
    /// The shared store, when other engines may lead.
    inbox: Option<Store>,
    clock: Clock,
}

/// How long an engine that does not lead waits for the leader to apply an input.
const INBOX_WAIT: std::time::Duration = std::time::Duration::from_secs(15);

impl EngineHandle {
    /// A handle with no local engine yet; `inbox` when several engines share the store.
    pub fn new(inbox: Option<Store>, clock: Clock) -> Self {
        EngineHandle {
            inner: Arc::new(HandleInner {
                local: RwLock::new(None),
                inbox,
                clock,
            }),
        }
    }

    fn local(&self) -> Option<mpsc::Sender<Request>> {
        self.inner.local.read().expect("handle lock").clone()
    }

    /// A fresh local engine loop: inputs go to it from now on.
    pub fn attach(&self) -> EngineReceiver {
        let (tx, rx) = mpsc::channel(QUEUE);
        *self.inner.local.write().expect("handle lock") = Some(tx);
        EngineReceiver { rx }
    }

    /// The local loop stops (leadership lost, or shutdown): inputs go to the inbox again.
    pub fn detach(&self) {
        *self.inner.local.write().expect("handle lock") = None;
    }

    /// Is an engine loop running in this process?
    pub fn is_local(&self) -> bool {
        self.local().is_some()
    }

    /// Hand an input to the core and wait until its effects are stored.
    pub async fn send(&self, input: Input) -> Result<Reply, EngineError> {
        if let Some(tx) = self.local() {
            let (reply, rx) = oneshot::channel();
            let request = Request {
                input,
                reply: Some(reply),
                inbox_id: None,
            };
            match tx.send(request).await {
                Ok(()) => return rx.await.map_err(|_| EngineError::Stopped)?,
                // The loop stopped under us (leadership lost): try the inbox.
                Err(mpsc::error::SendError(request)) => return self.via_inbox(request.input).await,
            }
        }
        self.via_inbox(input).await
    }

    /// Hand an input over without waiting for it to be stored.
    pub async fn submit(&self, input: Input) -> Result<(), EngineError> {
        match self.local() {
            Some(tx) => tx
                .send(Request {
                    input,
                    reply: None,
                    inbox_id: None,
                })
                .await
                .map_err(|_| EngineError::Stopped),
            None => self.via_inbox(input).await.map(|_| ()),
        }
    }

    /// An input taken from the inbox, for the local loop (the leader's inbox reader).
    pub(crate) async fn submit_inbox(&self, id: i64, input: Input) -> Result<(), EngineError> {
        let tx = self.local().ok_or(EngineError::Stopped)?;
        tx.send(Request {
            input,
            reply: None,
            inbox_id: Some(id),
        })
        .await
        .map_err(|_| EngineError::Stopped)
    }

    async fn via_inbox(&self, input: Input) -> Result<Reply, EngineError> {
        if matches!(input, Input::Reload(_)) {
            // Nothing runs here to reload; the next term starts from the current config.
            return Ok(Reply::Done);
        }
        let Some(store) = &self.inner.inbox else {
            return Err(EngineError::Stopped);
        };
        let json = serde_json::to_string(&input).map_err(|e| EngineError::Store(e.to_string()))?;
        let id = store
            .inbox_put(&json, self.inner.clock.now())
            .await
            .map_err(|e| EngineError::Store(e.to_string()))?;
        let deadline = tokio::time::Instant::now() + INBOX_WAIT;
        let mut delay = std::time::Duration::from_millis(5);
        loop {
            match store.inbox_reply(id).await {
                Ok(Some(reply)) => {
                    return serde_json::from_str(&reply)
                        .map_err(|e| EngineError::Store(e.to_string()))
                }
                Ok(None) => {}
                Err(e) => tracing::warn!(error = %e, "cannot read the inbox; retrying"),
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(EngineError::NoLeader(INBOX_WAIT));
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(std::time::Duration::from_millis(50));
        }
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
    let mut inbox_done: Vec<(i64, String)> = Vec::new();
    let mut fenced = false;
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
                    if let Some(id) = request.inbox_id {
                        let json = serde_json::to_string(&reply).unwrap_or_else(|_| "null".into());
                        inbox_done.push((id, json));
                    }
                    if let Some(tx) = request.reply {
                        waiting.push((tx, reply));
                    }
                }
            }
            _ = clock.sleep_until(wake) => core.tick(clock.now()),
            _ = tokio::time::sleep(retry_delay), if !unwritten.is_empty() => {}
        }
        let mut changes = core.take_changes();
        changes.inbox = std::mem::take(&mut inbox_done);
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
                Err(crate::store::StoreError::Fenced { term }) => {
                    // Another engine leads now: what was not written is its to redo.
                    tracing::error!(term, "deposed: the lease passed on; this engine loop stops");
                    fenced = true;
                    failure = Some("this engine no longer leads".to_string());
                    break;
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
        if fenced {
            return core;
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
