//! The engine loop: one task owns the core, takes inputs from a bounded channel, fires timers
//! on the clock, and writes each batch of changes to the store in one transaction (group
//! commit: many inputs, one transaction, one fsync).
//!
//! A batch goes through three steps. It is handed to the store, and the loop goes back to
//! its inputs: the next batch gathers in the core while this one is written (on a SQLite
//! file, by the store's writer thread). Once it is committed (on a SQLite file, a small
//! batch that pages: once it is in the store's redo log, see `store::sqlite::redo_log`), its pages
//! go to delivery and the next batch may be handed over. Once it is on disk, the callers
//! whose inputs made it are answered. At most one batch is handed over and not yet
//! committed.
//!
//! When the store refuses a write, the loop runs from memory: it keeps the unwritten changes
//! in order, hands their pages to delivery at once (each page once), answers the callers
//! that their input was not recorded, marks the store unhealthy (`/-/ready` is 503) and
//! retries with backoff; once a write goes through it writes everything it kept. A write
//! refused because another engine took the lease stops the loop instead.

use std::collections::VecDeque;
use std::sync::Arc;

use std::sync::RwLock;

use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, mpsc, oneshot, watch};

use super::core::{Changes, Core, Input, Reply};
use super::forward::{Forwarder, Handover};
use super::watchdog::{LoopPulse, PulseGuard, HEARTBEAT};
use crate::clock::Clock;
use crate::metrics::Metrics;
use crate::paging::notify::{Escalation, GivenUp, Handed};
use crate::signal::Signal;
use crate::sources::{NotTaken, SignalSink};
use crate::store::{Durable, Store, StoreError, StoreHealth, Submitted};

/// Inputs waiting for the core, at most.
const QUEUE: usize = 4096;
/// Inputs taken from the channel at a time. One: the loop looks at the batch being committed
/// after each input and hands the store the next batch as soon as it is free, so the loop
/// and the writer work at the same time. Taking every queued input first makes them take
/// turns: the loop handles a burst while the writer idles, then the writer writes it while
/// the loop idles (BENCHMARKS.md, "Ingest"). The inputs handled while a batch is committed
/// still go to the store together, in one transaction.
const TURN: usize = 1;

#[derive(Debug, Clone, PartialEq, thiserror::Error, Serialize, Deserialize)]
#[serde(tag = "error", content = "detail", rename_all = "snake_case")]
pub enum EngineError {
    #[error("the engine is shutting down")]
    Stopped,
    /// The core took the input (its effects are in memory and its pages go out) but the store
    /// could not record it: it is written once the store takes writes again.
    #[error(
        "taken but not recorded: the store cannot be written ({0}); it is kept in memory and \
         written once the store recovers (lost if the engine stops first)"
    )]
    Store(String),
    #[error("no engine took the lead within {0:?}; the input is kept and will be applied")]
    NoLeader(std::time::Duration),
    /// This engine does not lead and could not put the input in the store's inbox: nobody
    /// took it.
    #[error(
        "not taken: this engine does not lead and the store is not answering ({0}); \
         send it again"
    )]
    NotTaken(String),
    /// This engine does not lead; it handed the input to the leader, which did not answer.
    #[error(
        "this engine does not lead and the leader did not answer ({0}); it may have applied \
         the input: look before sending it again"
    )]
    Unanswered(String),
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
    /// Hands inputs to the leader over HTTP, when other engines may lead.
    forward: Option<Forwarder>,
    clock: Clock,
}

/// How long an engine that does not lead waits for the leader to apply an input.
const INBOX_WAIT: std::time::Duration = std::time::Duration::from_secs(15);

impl EngineHandle {
    /// A handle with no local engine yet; `inbox` and `forward` when several engines share
    /// the store.
    pub fn new(inbox: Option<Store>, forward: Option<Forwarder>, clock: Clock) -> Self {
        EngineHandle {
            inner: Arc::new(HandleInner {
                local: RwLock::new(None),
                inbox,
                forward,
                clock,
            }),
        }
    }

    /// Whether `presented` is the key other engines hand inputs over with.
    pub fn accepts_forward_key(&self, presented: &str) -> bool {
        self.inner
            .forward
            .as_ref()
            .is_some_and(|f| f.accepts(presented))
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
                // The loop stopped under us (leadership lost): hand it to the next leader.
                Err(mpsc::error::SendError(request)) => {
                    return self.via_leader(request.input).await
                }
            }
        }
        self.via_leader(input).await
    }

    /// An input handed over by another engine: applied here if this engine leads, and
    /// answered once stored; `None` if it does not lead.
    pub async fn send_here(&self, input: Input) -> Option<Result<Reply, EngineError>> {
        let tx = self.local()?;
        let (reply, rx) = oneshot::channel();
        let request = Request {
            input,
            reply: Some(reply),
            inbox_id: None,
        };
        tx.send(request).await.ok()?;
        Some(rx.await.unwrap_or(Err(EngineError::Stopped)))
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
            None => self.via_leader(input).await.map(|_| ()),
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

    /// An input for the leader, another engine: over HTTP if it can be, else through the
    /// store's inbox.
    async fn via_leader(&self, input: Input) -> Result<Reply, EngineError> {
        if matches!(input, Input::Reload(_)) {
            // Nothing runs here to reload; the next term starts from the current config.
            return Ok(Reply::Done);
        }
        if let Some(forward) = &self.inner.forward {
            if let Handover::Answered(answer) = forward.hand(&input, INBOX_WAIT).await {
                return answer;
            }
            forward.count_inbox();
        }
        self.via_inbox(input).await
    }

    async fn via_inbox(&self, input: Input) -> Result<Reply, EngineError> {
        let Some(store) = &self.inner.inbox else {
            return Err(EngineError::Stopped);
        };
        let json =
            serde_json::to_string(&input).map_err(|e| EngineError::NotTaken(e.to_string()))?;
        // Listening before the input is put, so that its notification cannot come first.
        let mut done = store.inbox_done_signal();
        let id = store
            .inbox_put(&json, self.inner.clock.now())
            .await
            .map_err(|e| EngineError::NotTaken(e.to_string()))?;
        let deadline = tokio::time::Instant::now() + INBOX_WAIT;
        let mut delay = std::time::Duration::from_millis(5);
        let mut logged = false;
        loop {
            match store.inbox_reply(id).await {
                Ok(Some(reply)) => {
                    return serde_json::from_str(&reply)
                        .map_err(|e| EngineError::Store(e.to_string()))
                }
                Ok(None) => {}
                Err(e) if !std::mem::replace(&mut logged, true) => {
                    tracing::warn!(error = %e, "cannot read the inbox; retrying")
                }
                Err(e) => tracing::debug!(error = %e, "cannot read the inbox"),
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(EngineError::NoLeader(INBOX_WAIT));
            }
            let polled = tokio::time::Instant::now() + delay;
            match &mut done {
                // Woken by the leader's commit of this input (or by a poll's time).
                Some(done) => loop {
                    tokio::select! {
                        _ = tokio::time::sleep_until(polled) => break,
                        payload = done.recv() => match payload {
                            Ok(ids) if !crate::store::done_names(&ids, id) => {}
                            Err(broadcast::error::RecvError::Closed) => {
                                tokio::time::sleep_until(polled).await;
                                break;
                            }
                            // Its id, or notifications missed (lagging): look.
                            _ => break,
                        },
                    }
                },
                None => tokio::time::sleep_until(polled).await,
            }
            delay = (delay * 2).min(std::time::Duration::from_millis(50));
        }
    }
}

/// The delivery worker reports pages it gave up on as inputs, like any other.
impl Escalation for EngineHandle {
    fn given_up(&self, page: GivenUp) -> BoxFuture<'_, bool> {
        Box::pin(async move {
            let input = Input::DeliveryFailed {
                incident_id: page.incident_id,
                level: page.level,
                recipient: page.recipient,
                reason: page.reason,
                event: Some(page.event),
            };
            match self.send(input).await {
                // Recorded; or taken in memory, to be written when the store recovers.
                Ok(Reply::Done) | Err(EngineError::Store(_)) => true,
                // The incident is no longer open, the engine is stopping, or no engine
                // leads: the worker records it.
                Ok(_)
                | Err(EngineError::Stopped)
                | Err(EngineError::NoLeader(_))
                | Err(EngineError::NotTaken(_))
                | Err(EngineError::Unanswered(_)) => false,
            }
        })
    }
}

/// Sources hand their signals over as inputs.
impl SignalSink for EngineHandle {
    fn send_signals(&self, signals: Vec<Signal>) -> BoxFuture<'_, Result<(), NotTaken>> {
        Box::pin(async move {
            match self.send(Input::Signals(signals)).await {
                Ok(_) => Ok(()),
                Err(EngineError::Stopped) => Err(NotTaken::Stopped),
                Err(e) => Err(NotTaken::Refused(e.to_string())),
            }
        })
    }
}

/// What the loop needs besides the core.
pub struct LoopParts {
    pub store: Store,
    pub clock: Clock,
    pub metrics: Arc<Metrics>,
    /// New pages, once stored, go here for delivery.
    pub pages: mpsc::UnboundedSender<Handed>,
    pub shutdown: watch::Receiver<bool>,
    /// Set when a write fails, cleared when writes go through again.
    pub health: StoreHealth,
    /// Marked at every turn of the loop (see `engine::watchdog`).
    pub pulse: Arc<LoopPulse>,
}

pub struct EngineReceiver {
    rx: mpsc::Receiver<Request>,
}

type Waiter = (oneshot::Sender<Result<Reply, EngineError>>, Reply);

/// Answer callers: their input is recorded, or `Err` says why not.
fn answer(waiting: &mut Vec<Waiter>, outcome: Result<(), &str>) {
    for (tx, reply) in waiting.drain(..) {
        let _ = tx.send(match outcome {
            Ok(()) => Ok(reply),
            Err(e) => Err(EngineError::Store(e.to_string())),
        });
    }
}

/// A batch of changes the store has not taken yet, and the callers whose inputs made it.
struct Kept {
    /// Shared with the store's writer while it is written (see `Store::submit_shared`).
    changes: Arc<Changes>,
    /// Its pages were already handed to delivery (while the store refused writes).
    handed: bool,
    waiting: Vec<Waiter>,
}

/// The batch the store is committing while the core goes on with the next inputs. At most
/// one batch is handed over and not yet committed: if the store refuses it, it and every
/// later batch are kept and written again in order.
struct Committing {
    kept: Kept,
    commit: BoxFuture<'static, Result<Durable, StoreError>>,
}

/// A committed batch on its way to disk (see `store::Durable`): its callers are answered
/// once it is there. Batches reach the disk in the order they were committed.
struct Syncing {
    waiting: Vec<Waiter>,
    sync: BoxFuture<'static, Result<(), StoreError>>,
}

/// Retry delays of a failing store: from the first to the last.
const RETRY_FIRST: std::time::Duration = std::time::Duration::from_millis(100);
const RETRY_MAX: std::time::Duration = std::time::Duration::from_secs(5);

/// Run the core until shutdown; returns it for inspection (tests).
pub async fn run_loop(mut core: Core, inputs: EngineReceiver, parts: LoopParts) -> Core {
    let LoopParts {
        store,
        clock,
        metrics,
        pages,
        mut shutdown,
        health,
        pulse,
    } = parts;
    let _running = PulseGuard(Arc::clone(&pulse));
    // Turns the loop when nothing else does, so that a quiet loop is told from a wedged one.
    let mut heartbeat = tokio::time::interval(HEARTBEAT);
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut rx = inputs.rx;
    let mut batch: Vec<Request> = Vec::with_capacity(TURN);
    // Handled inputs whose changes are still in the core (not yet taken into a batch).
    let mut waiting: Vec<Waiter> = Vec::new();
    let mut inbox_done: Vec<(i64, String)> = Vec::new();
    // Batches not yet written, in order: the next to hand to the store, and those the store
    // refused (retried with backoff).
    let mut unwritten: Vec<Kept> = Vec::new();
    let mut committing: Option<Committing> = None;
    let mut syncing: VecDeque<Syncing> = VecDeque::new();
    let mut retry_delay = RETRY_FIRST;
    // No write is tried before this while the store is failing: inputs arriving meanwhile
    // are answered at once instead of each waiting for another failed write.
    let mut retry_at = tokio::time::Instant::now();
    let mut failure: Option<String> = None;
    loop {
        // Set once a batch is committed and its pages handed to delivery: the gauges are
        // counted again after that, not on the pages' way (see `Core::refresh_gauges`).
        let mut count_gauges = false;
        pulse.turned();
        metrics
            .engine_loop_last_turn_timestamp_seconds
            .set(clock.now().timestamp_millis() as f64 / 1000.0);
        let wake = core.next_wake();
        tokio::select! {
            biased;
            _ = shutdown.changed() => break,
            committed = async { committing.as_mut().expect("guarded").commit.as_mut().await },
                if committing.is_some() =>
            {
                let Committing { mut kept, .. } = committing.take().expect("guarded");
                match committed {
                    Ok(durable) => {
                        if !kept.handed && !kept.changes.pages.is_empty() {
                            // The writer has let go of the batch by now: no copy.
                            let batch = Arc::try_unwrap(kept.changes)
                                .map_or_else(|shared| shared.pages.clone(), |own| own.pages);
                            let _ = pages.send(Handed {
                                pages: batch,
                                written: true,
                            });
                        }
                        if unwritten.is_empty() {
                            retry_delay = RETRY_FIRST;
                            failure = None;
                            health.write_succeeded();
                        }
                        syncing.push_back(Syncing {
                            waiting: kept.waiting,
                            sync: Box::pin(durable.wait()),
                        });
                        count_gauges = true;
                    }
                    Err(StoreError::Fenced { term }) => {
                        // Another engine leads now: what was not written is its to redo.
                        tracing::error!(term, "deposed: the lease passed on; this engine loop stops");
                        let deposed = Err("this engine no longer leads");
                        answer(&mut kept.waiting, deposed);
                        for kept in &mut unwritten {
                            answer(&mut kept.waiting, deposed);
                        }
                        answer(&mut waiting, deposed);
                        settle(syncing, &metrics, &health).await;
                        return core;
                    }
                    Err(e) => {
                        metrics.store_errors_total.inc();
                        health.write_failed("the engine's changes", &e);
                        failure = Some(e.to_string());
                        retry_at = tokio::time::Instant::now() + retry_delay;
                        retry_delay = (retry_delay * 2).min(RETRY_MAX);
                        unwritten.insert(0, kept);
                    }
                }
            }
            synced = async { syncing.front_mut().expect("guarded").sync.as_mut().await },
                if !syncing.is_empty() =>
            {
                let mut batch = syncing.pop_front().expect("guarded");
                let synced = synced.map_err(|e| sync_failed(&e, &metrics, &health));
                answer(&mut batch.waiting, synced.as_ref().map(|_| ()).map_err(String::as_str));
                if let Err(e) = synced {
                    failure = Some(e);
                }
            }
            received = rx.recv_many(&mut batch, TURN) => {
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
            _ = tokio::time::sleep_until(retry_at),
                if committing.is_none() && !unwritten.is_empty() => {}
            _ = heartbeat.tick() => {
                wedge_for_tests().await;
                continue;
            }
        }
        // While a batch is committing, the next gathers in the core and goes to the store in
        // one once it is.
        if committing.is_none() {
            // Every batch taken before is committed or kept: take the next one (while the
            // last is still on its way to disk, which it reaches first).
            let mut changes = core.take_changes();
            changes.inbox = std::mem::take(&mut inbox_done);
            if changes.is_empty() {
                // An input that changed nothing gets its answer whatever the store does, once
                // what it found in the core (the changes before it) is on disk.
                match syncing.back_mut() {
                    Some(last) => last.waiting.append(&mut waiting),
                    None => answer(&mut waiting, Ok(())),
                }
            } else {
                unwritten.push(Kept {
                    changes: Arc::new(changes),
                    handed: false,
                    waiting: std::mem::take(&mut waiting),
                });
            }
            if !unwritten.is_empty() && tokio::time::Instant::now() >= retry_at {
                let kept = unwritten.remove(0);
                // A batch refused before it reached the store is refused like one that did.
                let submitted = store
                    .submit_shared(&kept.changes)
                    .await
                    .unwrap_or_else(|e| Submitted::ready(Err(e)));
                committing = Some(Committing {
                    kept,
                    commit: Box::pin(submitted.committed()),
                });
            } else if let Some(e) = failure.as_deref().filter(|_| !unwritten.is_empty()) {
                // The store refuses writes: keep paging from memory. Pages it has not taken go
                // out now, once each; they are written later with the rest of their batch and
                // not handed over again. Their callers hear that the input was not recorded.
                core.refresh_gauges();
                for kept in &mut unwritten {
                    if !kept.handed {
                        let _ = pages.send(Handed {
                            pages: kept.changes.pages.clone(),
                            written: false,
                        });
                        kept.handed = true;
                    }
                    answer(&mut kept.waiting, Err(e));
                }
            }
        }
        // After the batch's pages are on their way; its inputs are answered in a later turn.
        if count_gauges || (committing.is_none() && unwritten.is_empty()) {
            if count_gauges {
                // Let delivery take the pages first if it shares this thread.
                tokio::task::yield_now().await;
            }
            core.refresh_gauges();
        }
    }
    // The batch being committed when the loop stopped: its pages are in the outbox once it
    // is (delivery picks them up on the next start); if refused it is written again below,
    // in its place before the others.
    if let Some(Committing { kept, commit }) = committing.take() {
        match commit.await {
            Ok(durable) => syncing.push_back(Syncing {
                waiting: kept.waiting,
                sync: Box::pin(durable.wait()),
            }),
            Err(_) => unwritten.insert(0, kept),
        }
    }
    settle(syncing, &metrics, &health).await;
    // Write what is left before stopping, the services' availability of the last minute too.
    core.store_availability();
    let mut changes = core.take_changes();
    changes.inbox = std::mem::take(&mut inbox_done);
    if !changes.is_empty() || !waiting.is_empty() {
        unwritten.push(Kept {
            changes: Arc::new(changes),
            handed: false,
            waiting,
        });
    }
    // In order, stopping at the first failure: a later batch without the earlier ones would
    // leave the store inconsistent (pages of incidents it never heard of).
    let mut failed: Option<String> = None;
    let batches = unwritten.len();
    for (i, kept) in unwritten.iter_mut().enumerate() {
        if let Some(e) = &failed {
            answer(&mut kept.waiting, Err(e));
            continue;
        }
        match store.apply(&kept.changes).await {
            Ok(()) => answer(&mut kept.waiting, Ok(())),
            Err(e) => {
                metrics.store_errors_total.inc();
                tracing::error!(
                    error = %e,
                    batches = batches - i,
                    "the store cannot be written at shutdown; what the engine kept in memory is lost"
                );
                let e = e.to_string();
                answer(&mut kept.waiting, Err(&e));
                failed = Some(e);
            }
        }
    }
    core
}

/// Tests only (debug builds): once the file `TOCSIN_TEST_WEDGE_FILE` names exists, the loop
/// waits for ever, as a loop stuck on a call that never returns does, while the rest of the
/// process (the API, the lease task) runs on. Release builds have no such hook.
async fn wedge_for_tests() {
    #[cfg(debug_assertions)]
    if std::env::var_os("TOCSIN_TEST_WEDGE_FILE").is_some_and(|f| std::path::Path::new(&f).exists())
    {
        tracing::warn!("TOCSIN_TEST_WEDGE_FILE exists: the engine loop wedges (a test)");
        std::future::pending::<()>().await;
    }
}

/// Wait for committed batches to reach the disk and answer their callers.
async fn settle(syncing: VecDeque<Syncing>, metrics: &Metrics, health: &StoreHealth) {
    for mut batch in syncing {
        let synced = batch
            .sync
            .await
            .map_err(|e| sync_failed(&e, metrics, health));
        answer(
            &mut batch.waiting,
            synced.as_ref().map(|_| ()).map_err(String::as_str),
        );
    }
}

/// Committed, but the disk refused the fsync: SQLite's copy may not survive a power cut.
/// Nothing to write again; the inputs hear of it, so their sources send them again, and the
/// health check says so until a write goes through.
fn sync_failed(e: &StoreError, metrics: &Metrics, health: &StoreHealth) -> String {
    metrics.store_errors_total.inc();
    health.write_failed("the engine's changes", e);
    e.to_string()
}
