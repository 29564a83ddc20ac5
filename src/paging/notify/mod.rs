//! Delivering pages: email and webhooks, retried from the outbox until delivered.
//!
//! The engine writes every page to the outbox before it hands it here, so this worker only
//! ever sends what is durable. At start it loads every page still pending (an engine that
//! crashed left them), then takes new pages as the engine stores them. Each page waits in a
//! due-time queue; up to [`MAX_IN_FLIGHT`] attempts run at once, each bounded by its
//! notifier's timeout, so one hung receiver holds up neither other pages nor the engine.
//! Pages about one incident to one receiver go out one at a time, in the order they were
//! made: a receiver never hears `resolved` before the `triggered` that is still retrying.
//! Every outcome is written back to the outbox, the incident's timeline and `pages_total`;
//! a page given up tells the engine, which goes on to the next escalation level.
//!
//! While the store refuses writes, the engine hands over pages it could not write yet, and
//! the worker sends them like any other. Outcomes it cannot write (the store fails, or the
//! page's row is not written yet) wait in order in [`Worker::deferred`] and are written once
//! the store takes them, so a delivered page is marked delivered and not sent again.

mod case_render;
pub mod email;
pub mod error;
pub mod format;
mod notifiers;
pub mod render;
pub mod report;
pub mod retry;
pub mod templates;
pub mod webhook;

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, watch};
use tokio::task::{JoinError, JoinHandle, JoinSet};
use tracing::Instrument;

use crate::clock::Clock;
use crate::config::Config;
use crate::incident::TimelineEntry;
use crate::metrics::Metrics;
use crate::paging::{Channel, Page};
use crate::store::{Claim, PerChannel, Store, StoreHealth};

/// Outcomes written in one transaction, at most.
const WRITE_BATCH: usize = 1024;
pub use error::NotifyError;
pub use notifiers::Notifiers;
pub use report::{Escalation, GivenUp, LeaderFence};

/// Attempts running at once, across all receivers.
pub const MAX_IN_FLIGHT: usize = 32;
/// Pending pages loaded at start. A backlog this large means delivery has been broken for a
/// long time; the rest go out after the next restart.
const LOAD_LIMIT: i64 = 100_000;
/// At shutdown, attempts already under way get this long to finish and be recorded, so a
/// clean stop rarely leaves a delivered page marked pending (which would be sent again).
const SHUTDOWN_GRACE: Duration = Duration::from_secs(1);
/// Timeline entries written by the worker are by the engine itself.
const ACTOR: &str = "tocsin";
/// Deferred writes are tried again after this, doubling up to [`DEFERRED_MAX`].
const DEFERRED_FIRST: Duration = Duration::from_millis(200);
const DEFERRED_MAX: Duration = Duration::from_secs(5);

/// What the delivery worker is handed. `S` is the engine's compiled setup, which carries the
/// config in force; a reload sends a new one.
pub struct DeliveryParts<S> {
    pub store: Store,
    /// Hears of pages given up.
    pub escalation: Arc<dyn Escalation>,
    pub clock: Clock,
    pub metrics: Arc<Metrics>,
    pub setup: watch::Receiver<Arc<S>>,
    /// Pages just written to the outbox, or going out from memory.
    pub pages: mpsc::UnboundedReceiver<Handed>,
    pub shutdown: watch::Receiver<bool>,
    /// Shared with the engine loop and `/-/ready`.
    pub health: StoreHealth,
    /// Several engines on one store: claim each page before sending it, and only while this
    /// engine's leader fence holds. None for a single engine.
    pub claims: Option<Claims>,
}

/// How a leader among several engines claims pages.
#[derive(Clone)]
pub struct Claims {
    /// This engine's name in the lease and the claims.
    pub holder: String,
    pub fence: Arc<dyn LeaderFence>,
    /// How long the engine's batches claim the pages they write (`Store::fenced`): a page
    /// handed over from a written batch whose attempt ends within that claim goes without
    /// another.
    pub written: PerChannel,
}

/// How long the pages an engine writes are claimed for it: as long as an attempt through
/// their channel can take (as [`Notifiers::attempt_limit`]), and [`CLAIM_MARGIN`].
pub fn page_claims(config: &Config) -> PerChannel {
    let margin = chrono::Duration::from_std(CLAIM_MARGIN).unwrap_or_default();
    let limits = notifiers::attempt_limits(config);
    PerChannel {
        email: limits.email + margin,
        webhooks: limits
            .webhooks
            .into_iter()
            .map(|(name, limit)| (name, limit + margin))
            .collect(),
        otherwise: limits.otherwise + margin,
    }
}

/// Pages the engine hands to delivery.
pub struct Handed {
    pub pages: Vec<Page>,
    /// In the store (and claimed for this engine, among several): false for pages that go
    /// out from memory while the store refuses their batch.
    pub written: bool,
}

/// A claim lasts as long as the attempt can (its channel's timeout) and this margin more: an
/// engine that dies while sending frees the page then, and the page goes out again under the
/// same delivery id. A claim held longer would hold every later page of its lane too.
const CLAIM_MARGIN: Duration = Duration::from_secs(2);

/// What an attempt task came back with.
enum Outcome {
    Sent(Result<(), NotifyError>),
    /// Not this engine's to send now: another engine holds it until then (None: it is done).
    Skipped(Option<DateTime<Utc>>),
}

/// Start the delivery worker.
pub fn spawn<S>(parts: DeliveryParts<S>) -> JoinHandle<()>
where
    S: AsRef<Config> + Send + Sync + 'static,
{
    tokio::spawn(run(parts).instrument(tracing::info_span!("delivery")))
}

/// A page the worker is responsible for until it is delivered or given up.
struct Tracked {
    page: Arc<Page>,
    /// The webhook body, serialized once: every attempt sends the same bytes.
    body: Arc<[u8]>,
    /// Attempts made so far (across restarts: the outbox keeps the count).
    attempts: u32,
    /// No attempt before this (its backoff).
    not_before: DateTime<Utc>,
    /// Claimed for this engine until then by the batch that wrote the page (see
    /// `Claims::written`); cleared once an attempt is made.
    written_claim: Option<DateTime<Utc>>,
}

/// Pages about one incident to one receiver: (incident, channel, address).
type Lane = (i64, Channel, String);

fn lane(page: &Page) -> Lane {
    (
        page.incident_id,
        page.recipient.channel,
        page.recipient.address.clone(),
    )
}

/// An attempt's result: the page and what happened.
type Attempt = (i64, Outcome);
/// A finished attempt task, as `JoinSet::join_next_with_id` hands it back.
type Joined = Result<(tokio::task::Id, Attempt), JoinError>;

/// What woke the worker.
enum Event {
    Stop,
    Finished(Joined),
    Pages(Option<Handed>),
    Reload(bool),
    Due,
    Flush,
}

/// A write of the worker's to the store: outcomes wait in [`Worker::deferred`] and are
/// written together (see [`Worker::write`]).
type Write = crate::store::DeliveryWrite;

struct Worker {
    claims: Option<Claims>,
    store: Store,
    escalation: Arc<dyn Escalation>,
    clock: Clock,
    metrics: Arc<Metrics>,
    client: reqwest::Client,
    notifiers: Arc<Notifiers>,
    tracked: HashMap<i64, Tracked>,
    /// The tracked pages of each lane, oldest first; only the oldest is attempted.
    lanes: HashMap<Lane, BTreeSet<i64>>,
    /// (next attempt, page id) of the oldest tracked page of each lane, unless in flight.
    due: BTreeSet<(DateTime<Utc>, i64)>,
    in_flight: JoinSet<Attempt>,
    /// Which page each attempt task is for, to record an attempt whose task panicked.
    task_pages: HashMap<tokio::task::Id, i64>,
    /// The highest page id loaded at start. The engine writes pages in id order, so a page
    /// arriving on the channel with an id at or below it was already in the outbox when the
    /// worker loaded it: it is tracked, or already delivered, and must not be sent again.
    loaded_up_to: i64,
    health: StoreHealth,
    /// Writes the store did not take yet, oldest first; written in this order.
    deferred: VecDeque<Write>,
    /// The next try of the deferred writes, and the wait after that.
    flush_at: tokio::time::Instant,
    flush_delay: Duration,
}

async fn run<S>(parts: DeliveryParts<S>)
where
    S: AsRef<Config> + Send + Sync + 'static,
{
    let DeliveryParts {
        store,
        escalation,
        clock,
        metrics,
        mut setup,
        mut pages,
        mut shutdown,
        claims,
        health,
    } = parts;
    let client = webhook::client();
    // Clone the Arc out of the watch so reading secret files does not hold its lock.
    let current = Arc::clone(&setup.borrow_and_update());
    let notifiers = Arc::new(Notifiers::new((*current).as_ref(), client.clone()));
    let mut worker = Worker {
        claims,
        store,
        escalation,
        clock,
        metrics,
        client,
        notifiers,
        tracked: HashMap::new(),
        lanes: HashMap::new(),
        due: BTreeSet::new(),
        in_flight: JoinSet::new(),
        task_pages: HashMap::new(),
        loaded_up_to: 0,
        health,
        deferred: VecDeque::new(),
        flush_at: tokio::time::Instant::now(),
        flush_delay: DEFERRED_FIRST,
    };
    if !worker.load(&mut shutdown).await {
        return;
    }
    let mut pages_open = true;
    let mut setup_open = true;
    loop {
        worker.start_due();
        let wake = if worker.in_flight.len() < MAX_IN_FLIGHT {
            worker.due.first().map(|(at, _)| *at)
        } else {
            None
        };
        let event = tokio::select! {
            biased;
            _ = shutdown.wait_for(|stop| *stop) => Event::Stop,
            Some(done) = worker.in_flight.join_next_with_id() => Event::Finished(done),
            batch = pages.recv(), if pages_open => Event::Pages(batch),
            changed = setup.changed(), if setup_open => Event::Reload(changed.is_ok()),
            _ = worker.clock.sleep_until(wake), if wake.is_some() => Event::Due,
            _ = tokio::time::sleep_until(worker.flush_at), if !worker.deferred.is_empty() => Event::Flush,
        };
        match event {
            Event::Stop => break,
            Event::Finished(done) => worker.finished(done).await,
            Event::Pages(Some(batch)) => worker.intake(batch),
            // The engine loop has stopped; shutdown follows.
            Event::Pages(None) => pages_open = false,
            Event::Reload(true) => {
                let current = Arc::clone(&setup.borrow_and_update());
                worker.notifiers =
                    Arc::new(Notifiers::new((*current).as_ref(), worker.client.clone()));
                tracing::info!("notifiers rebuilt from the reloaded config");
            }
            Event::Reload(false) => setup_open = false,
            Event::Due => {}
            Event::Flush => worker.flush().await,
        }
    }
    worker.stop().await;
}

impl Worker {
    /// Load every pending page from the outbox; false when shut down first.
    async fn load(&mut self, shutdown: &mut watch::Receiver<bool>) -> bool {
        let mut delay = Duration::from_millis(100);
        loop {
            match self.store.pending_pages(LOAD_LIMIT).await {
                Ok(entries) => {
                    if entries.len() as i64 >= LOAD_LIMIT {
                        tracing::error!(
                            limit = LOAD_LIMIT,
                            "more pages pending than loaded at once; the rest go out after a restart"
                        );
                    }
                    if !entries.is_empty() {
                        tracing::info!(
                            pages = entries.len(),
                            "pending pages loaded from the outbox"
                        );
                    }
                    for entry in entries {
                        self.loaded_up_to = self.loaded_up_to.max(entry.page.id);
                        self.track(entry.page, entry.attempts, entry.next_attempt_at);
                    }
                    return true;
                }
                Err(e) => {
                    self.metrics.store_errors_total.inc();
                    tracing::error!(error = %e, "cannot load pending pages; will retry");
                    tokio::select! {
                        _ = shutdown.wait_for(|stop| *stop) => return false,
                        _ = tokio::time::sleep(delay) => {}
                    }
                    delay = (delay * 2).min(Duration::from_secs(30));
                }
            }
        }
    }

    fn track(&mut self, page: Page, attempts: u32, not_before: DateTime<Utc>) {
        if self.tracked.contains_key(&page.id) {
            return;
        }
        // Pages come in id order (the outbox's, then the engine's), so a new page is the
        // newest of its lane: it waits behind the others, or leads an empty lane.
        let ids = self.lanes.entry(lane(&page)).or_default();
        debug_assert!(ids.last().is_none_or(|last| *last < page.id));
        if ids.is_empty() {
            self.due.insert((not_before, page.id));
        }
        ids.insert(page.id);
        // Serializing plain data (string keys, no maps of non-strings) cannot fail.
        let body: Arc<[u8]> = serde_json::to_vec(&page.payload)
            .expect("a page payload serializes")
            .into();
        self.tracked.insert(
            page.id,
            Tracked {
                page: Arc::new(page),
                body,
                attempts,
                not_before,
                written_claim: None,
            },
        );
    }

    /// A page is done with (delivered or given up): the next of its lane may go.
    fn forget(&mut self, page: &Page) {
        self.tracked.remove(&page.id);
        let key = lane(page);
        let Some(ids) = self.lanes.get_mut(&key) else {
            return;
        };
        ids.remove(&page.id);
        match ids.first() {
            None => {
                self.lanes.remove(&key);
            }
            Some(next) => {
                if let Some(t) = self.tracked.get(next) {
                    self.due.insert((t.not_before, *next));
                }
            }
        }
    }

    /// New pages from the engine, already in the outbox: due at once.
    fn intake(&mut self, handed: Handed) {
        for page in handed.pages {
            if page.id <= self.loaded_up_to || self.tracked.contains_key(&page.id) {
                continue;
            }
            let not_before = page.created_at;
            let written_claim = self
                .claims
                .as_ref()
                .filter(|_| handed.written)
                .map(|claims| page.created_at + claims.written.of(&page));
            let id = page.id;
            self.track(page, 0, not_before);
            if let Some(tracked) = self.tracked.get_mut(&id) {
                tracked.written_claim = written_claim;
            }
        }
    }

    /// Start every attempt that is due, up to the in-flight bound.
    fn start_due(&mut self) {
        let now = self.clock.now();
        while self.in_flight.len() < MAX_IN_FLIGHT {
            let Some(&(at, id)) = self.due.first() else {
                break;
            };
            if at > now {
                break;
            }
            self.due.pop_first();
            let Some(tracked) = self.tracked.get_mut(&id) else {
                continue;
            };
            let limit = self.notifiers.attempt_limit(&tracked.page);
            let claimed = tracked.written_claim.take().is_some_and(|until| {
                now + chrono::Duration::from_std(limit).unwrap_or(chrono::Duration::MAX) <= until
            });
            let notifiers = Arc::clone(&self.notifiers);
            let page = Arc::clone(&tracked.page);
            let body = Arc::clone(&tracked.body);
            let span = tracing::info_span!(
                "attempt",
                incident = page.incident_id,
                page = page.id,
                recipient = %page.recipient.id,
                channel = page.recipient.channel.as_str(),
            );
            let claims = self.claims.clone();
            let store = self.store.clone();
            let claim_until = now
                + chrono::Duration::from_std(limit + CLAIM_MARGIN)
                    .unwrap_or(chrono::Duration::seconds(60));
            let handle = self.in_flight.spawn(
                async move {
                    if let Some(claims) = claims {
                        // A leader whose fence ran out must not start a page: the lease may
                        // pass on at any moment.
                        if !claims.fence.is_valid() {
                            return (
                                page.id,
                                Outcome::Skipped(Some(now + chrono::Duration::seconds(1))),
                            );
                        }
                        // Claimed when written, for longer than this attempt can take.
                        let claim = if claimed {
                            Ok(Claim::Claimed)
                        } else {
                            store
                                .claim_page(page.id, &claims.holder, now, claim_until)
                                .await
                        };
                        match claim {
                            Ok(Claim::Claimed) => {}
                            Ok(Claim::HeldUntil(until)) => {
                                return (page.id, Outcome::Skipped(Some(until)))
                            }
                            Ok(Claim::Done) => return (page.id, Outcome::Skipped(None)),
                            Err(e) => {
                                tracing::warn!(error = %e, "cannot claim a page; will try again");
                                return (
                                    page.id,
                                    Outcome::Skipped(Some(now + chrono::Duration::seconds(1))),
                                );
                            }
                        }
                    }
                    let result = notifiers.send(&page, &body, now).await;
                    (page.id, Outcome::Sent(result))
                }
                .instrument(span),
            );
            self.task_pages.insert(handle.id(), id);
        }
    }

    async fn finished(&mut self, done: Joined) {
        match done {
            Ok((task, (page_id, Outcome::Sent(result)))) => {
                self.task_pages.remove(&task);
                self.record(page_id, result).await;
            }
            Ok((task, (page_id, Outcome::Skipped(until)))) => {
                self.task_pages.remove(&task);
                self.skipped(page_id, until);
            }
            Err(e) => {
                let Some(page_id) = self.task_pages.remove(&e.id()) else {
                    return;
                };
                let recipient = self
                    .tracked
                    .get(&page_id)
                    .map(|t| t.page.recipient.id.clone())
                    .unwrap_or_default();
                let error = NotifyError::Internal {
                    recipient,
                    reason: e.to_string(),
                };
                self.record(page_id, Err(error)).await;
            }
        }
    }

    /// Another engine has the page (or it is done): no attempt is counted.
    fn skipped(&mut self, page_id: i64, until: Option<DateTime<Utc>>) {
        match (
            until,
            self.tracked.get(&page_id).map(|t| Arc::clone(&t.page)),
        ) {
            (Some(until), Some(_)) => {
                self.due.insert((until, page_id));
                if let Some(t) = self.tracked.get_mut(&page_id) {
                    t.not_before = until;
                }
            }
            (None, Some(page)) => self.forget(&page),
            (_, None) => {}
        }
    }

    /// Write an attempt's outcome to the outbox, the timeline and the metrics.
    async fn record(&mut self, page_id: i64, result: Result<(), NotifyError>) {
        let now = self.clock.now();
        let Some(tracked) = self.tracked.get_mut(&page_id) else {
            return;
        };
        tracked.attempts += 1;
        let attempts = tracked.attempts;
        let page = Arc::clone(&tracked.page);
        let channel = page.recipient.channel.as_str();
        let retry = self.notifiers.retry.clone();
        let data = serde_json::json!({
            "page": page.id,
            "delivery_id": page.delivery_id,
            "event": page.event,
            "recipient": page.recipient.id,
            "channel": channel,
            "address": page.recipient.address,
            "level": page.level,
            "attempts": attempts,
        });
        match result {
            Ok(()) => {
                self.forget(&page);
                tracing::info!(
                    incident = page.incident_id,
                    page = page.id,
                    recipient = %page.recipient.id,
                    channel,
                    attempts,
                    "page delivered"
                );
                self.write(Write::Delivered {
                    page: page_id,
                    attempts,
                    at: now,
                })
                .await;
                let plural = if attempts == 1 { "" } else { "s" };
                let message = format!(
                    "{} delivered to {} by {channel} after {attempts} attempt{plural}",
                    page.event, page.recipient.id
                );
                self.timeline(&page, now, "delivered", message, data).await;
                // Counted once recorded: a scrape never shows a delivery the store lacks.
                let seconds = (now - page.created_at).num_milliseconds().max(0) as f64 / 1000.0;
                self.metrics
                    .page_delivery_seconds
                    .with_label_values(&[channel])
                    .observe(seconds);
                self.count(channel, "delivered");
                self.metrics
                    .notifier_last_success_timestamp_seconds
                    .with_label_values(&[channel])
                    .set(now.timestamp_millis() as f64 / 1000.0);
            }
            Err(error) if error.is_retryable() && !retry::expired(&retry, page.created_at, now) => {
                let next = retry::next_attempt(
                    &retry,
                    attempts,
                    error.retry_after(),
                    page.created_at,
                    now,
                    retry::jitter(),
                );
                self.due.insert((next, page_id));
                if let Some(t) = self.tracked.get_mut(&page_id) {
                    t.not_before = next;
                }
                tracing::warn!(
                    incident = page.incident_id,
                    page = page.id,
                    attempts,
                    next_attempt = %next.to_rfc3339(),
                    error = %error,
                    "page delivery failed; will retry"
                );
                let reason = error.to_string();
                self.write(Write::Retry {
                    page: page_id,
                    attempts,
                    next,
                    error: reason.clone(),
                })
                .await;
                let wait = (next - now).num_milliseconds().max(0) as f64 / 1000.0;
                let message = format!(
                    "{} to {} by {channel}: attempt {attempts} failed: {reason}; next attempt in {wait:.1}s",
                    page.event, page.recipient.id
                );
                let mut data = data;
                data["error"] = reason.into();
                data["next_attempt_at"] = next.to_rfc3339().into();
                self.timeline(&page, now, "delivery_attempt", message, data)
                    .await;
                self.count(channel, "retry");
            }
            Err(error) => {
                self.forget(&page);
                let reason = if error.is_retryable() {
                    format!(
                        "still undelivered after {attempts} attempts and {} (retry.max_age): {error}",
                        retry.max_age
                    )
                } else {
                    format!("attempt {attempts}: {error}")
                };
                tracing::error!(
                    incident = page.incident_id,
                    page = page.id,
                    attempts,
                    error = %reason,
                    "page given up"
                );
                self.write(Write::Failed {
                    page: page_id,
                    attempts,
                    error: reason.clone(),
                })
                .await;
                self.give_up(&page, reason, data).await;
                self.count(channel, "failed");
            }
        }
    }

    /// Tell the engine a page is lost, so escalation goes on to the next level (the engine
    /// records `delivery_failed`). An incident that is no longer open escalates no further:
    /// the engine says so, and the worker records it itself.
    async fn give_up(&mut self, page: &Page, reason: String, mut data: serde_json::Value) {
        let recipient = format!(
            "{} ({} {})",
            page.recipient.id,
            page.recipient.channel.as_str(),
            page.recipient.address
        );
        let given_up = GivenUp {
            incident_id: page.incident_id,
            level: page.level,
            recipient: recipient.clone(),
            reason: reason.clone(),
            event: page.event,
        };
        if self.escalation.given_up(given_up).await {
            return;
        }
        let message = format!("page to {recipient} given up: {reason}");
        data["error"] = reason.into();
        let now = self.clock.now();
        self.timeline(page, now, "delivery_failed", message, data)
            .await;
    }

    async fn timeline(
        &mut self,
        page: &Page,
        at: DateTime<Utc>,
        kind: &str,
        message: String,
        data: serde_json::Value,
    ) {
        let entry = TimelineEntry {
            incident_id: page.incident_id,
            at,
            kind: kind.to_string(),
            actor: ACTOR.to_string(),
            message,
            data,
        };
        self.write(Write::Timeline(entry)).await;
    }

    fn count(&self, channel: &str, outcome: &str) {
        self.metrics
            .pages_total
            .with_label_values(&[channel, outcome])
            .inc();
    }

    /// Queue a write; the loop writes what is queued at its next idle turn, in one
    /// transaction with every outcome that finished meanwhile (group commit, as the engine
    /// loop does), so outcomes cost no commit each and never hold up the next attempts. A
    /// write that waits behind failed or row-less ones keeps its place and their backoff.
    async fn write(&mut self, write: Write) {
        if self.deferred.is_empty() {
            self.flush_at = tokio::time::Instant::now();
        }
        self.deferred.push_back(write);
    }

    /// Write what waits, in order, until the store refuses one or a page's row is missing.
    async fn flush(&mut self) {
        let mut wrote = false;
        while !self.deferred.is_empty() {
            let n = self.deferred.len().min(WRITE_BATCH);
            match self
                .store
                .record_deliveries(&self.deferred.make_contiguous()[..n])
                .await
            {
                Ok(done) => {
                    self.deferred.drain(..done);
                    wrote |= done > 0;
                    if done < n {
                        // The page's row is not in the outbox yet: wait for the engine.
                        break;
                    }
                }
                Err(e) => {
                    let front = self.deferred.front().expect("a write waits");
                    self.store_failed(front, &e);
                    break;
                }
            }
        }
        if self.deferred.is_empty() {
            self.flush_delay = DEFERRED_FIRST;
            if wrote {
                self.health.write_succeeded();
            }
        } else {
            if wrote {
                self.flush_delay = DEFERRED_FIRST;
            } else {
                self.flush_delay = (self.flush_delay * 2).min(DEFERRED_MAX);
            }
            self.flush_at = tokio::time::Instant::now() + self.flush_delay;
        }
    }

    fn store_failed(&self, write: &Write, error: &crate::store::StoreError) {
        self.metrics.store_errors_total.inc();
        let what = match write {
            Write::Delivered { .. } => "a delivered page",
            Write::Retry { .. } => "a page retry",
            Write::Failed { .. } => "a page given up",
            Write::Timeline(_) => "a delivery timeline entry",
        };
        self.health.write_failed(what, error);
    }

    /// Record attempts that finish within the grace period, abandon the rest: their pages
    /// stay pending in the outbox and go out after the next start.
    async fn stop(mut self) {
        let deadline = tokio::time::Instant::now() + SHUTDOWN_GRACE;
        while !self.in_flight.is_empty() {
            match tokio::time::timeout_at(deadline, self.in_flight.join_next_with_id()).await {
                Ok(Some(done)) => self.finished(done).await,
                Ok(None) | Err(_) => break,
            }
        }
        if !self.in_flight.is_empty() {
            tracing::info!(
                attempts = self.in_flight.len(),
                "attempts abandoned at shutdown; their pages stay pending"
            );
        }
        self.in_flight.shutdown().await;
        if !self.deferred.is_empty() {
            self.flush().await;
        }
        if !self.deferred.is_empty() {
            tracing::error!(
                writes = self.deferred.len(),
                "delivery outcomes not written at shutdown (the store refused them); their \
                 pages may be sent again after the restart, with the same X-Tocsin-Delivery"
            );
        }
        // Hand our claims back, so the next leader need not wait for them to run out.
        if let Some(claims) = &self.claims {
            if let Err(e) = self.store.release_claims(&claims.holder).await {
                tracing::warn!(error = %e, "could not release page claims");
            }
        }
    }
}
