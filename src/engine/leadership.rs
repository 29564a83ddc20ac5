//! Leadership among several engines on one PostgreSQL: exactly one evaluates rules, runs
//! timers, probes, pulls and pages — the holder of the lease row (see `store::leader`).
//!
//! The leader renews every `renew`; a renewal that succeeds extends its *fence* to the time
//! the renewal was sent plus the lease, less a margin. The database counts the same lease from
//! a later instant (when it ran the update), so the fence always runs out before another
//! engine can take the lease: a leader that cannot renew stops paging first.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

/// The one place real time is read directly (clippy.toml bans it elsewhere).
#[allow(clippy::disallowed_types)]
pub type RealInstant = std::time::Instant;

use super::watchdog::LoopPulse;
use crate::metrics::Metrics;
use crate::store::Store;

/// Until when this engine may act as the leader.
///
/// Counted in real time, not on tokio's clock: the lease it mirrors is counted by the
/// database's clock, which a paused test runtime does not pause.
#[derive(Debug)]
pub struct Fence {
    origin: RealInstant,
    /// The wall clock at `origin`, in Unix milliseconds: to publish the fence's times.
    origin_unix_ms: i64,
    /// Milliseconds after `origin`; negative: not valid.
    valid_until_ms: AtomicI64,
    /// When this engine stops (or stopped) starting pages, in milliseconds after `origin`:
    /// the end of the last fence granted, or when it was revoked if that came first.
    /// Negative: never valid.
    stops_at_ms: AtomicI64,
}

impl Fence {
    pub fn new() -> Arc<Fence> {
        let unix = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        Arc::new(Fence {
            origin: RealInstant::now(),
            origin_unix_ms: unix.as_millis() as i64,
            valid_until_ms: AtomicI64::new(-1),
            stops_at_ms: AtomicI64::new(-1),
        })
    }

    /// A fence that never runs out (one engine on SQLite leads for good).
    pub fn forever() -> Arc<Fence> {
        let fence = Fence::new();
        fence.valid_until_ms.store(i64::MAX, Ordering::Release);
        fence.stops_at_ms.store(i64::MAX, Ordering::Release);
        fence
    }

    fn ms_since_origin(&self, at: RealInstant) -> i64 {
        at.saturating_duration_since(self.origin).as_millis() as i64
    }

    /// Valid for `lasting` from `since` (when the renewal that grants it was sent).
    pub fn extend(&self, since: RealInstant, lasting: Duration) {
        let until = self.ms_since_origin(since + lasting);
        self.valid_until_ms.store(until, Ordering::Release);
        self.stops_at_ms.store(until, Ordering::Release);
    }

    pub fn revoke(&self) {
        self.valid_until_ms.store(-1, Ordering::Release);
        let now = self.ms_since_origin(RealInstant::now());
        let _ = self
            .stops_at_ms
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |at| {
                (at > now).then_some(now)
            });
    }

    /// `at` on the wall clock, in Unix seconds.
    pub fn unix_seconds(&self, at: RealInstant) -> f64 {
        (self.origin_unix_ms + self.ms_since_origin(at)) as f64 / 1000.0
    }

    /// When this engine stops (or stopped) starting pages as the leader, in Unix seconds:
    /// the end of its last fence, or when it was revoked. None if it never led, or leads for
    /// good.
    pub fn stops_at_unix_seconds(&self) -> Option<f64> {
        let at = self.stops_at_ms.load(Ordering::Acquire);
        (at >= 0 && at != i64::MAX).then(|| (self.origin_unix_ms + at) as f64 / 1000.0)
    }

    pub fn is_valid(&self) -> bool {
        let until = self.valid_until_ms.load(Ordering::Acquire);
        until >= 0 && self.ms_since_origin(RealInstant::now()) < until
    }

    /// How long until the fence runs out, if it is valid and not forever.
    pub fn remaining(&self) -> Option<Duration> {
        let until = self.valid_until_ms.load(Ordering::Acquire);
        if until < 0 || until == i64::MAX {
            return None;
        }
        let left = until - self.ms_since_origin(RealInstant::now());
        Some(Duration::from_millis(left.max(0) as u64))
    }
}

/// Publish the fence's end (`tocsin_leader_fence_end_timestamp_seconds`); call after every
/// Delivery starts a page only while the fence holds.
impl crate::paging::notify::LeaderFence for Fence {
    fn is_valid(&self) -> bool {
        Fence::is_valid(self)
    }
}

/// change of the fence.
pub fn publish_fence(fence: &Fence, metrics: &Metrics) {
    if let Some(at) = fence.stops_at_unix_seconds() {
        metrics.leader_fence_end_timestamp_seconds.set(at);
    }
}

/// A lease request sent at `sent` won a new term: publish when the term began
/// (`tocsin_leader_term_start_timestamp_seconds`): when the request was sent, as the term
/// cannot have begun before.
pub fn publish_term_start(fence: &Fence, metrics: &Metrics, sent: RealInstant) {
    metrics
        .leader_term_start_timestamp_seconds
        .set(fence.unix_seconds(sent));
}

/// This engine's role, as the supervisor acts on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Leadership {
    pub leader: bool,
    /// The lease's term while leading (the fencing token); 0 for a single SQLite engine.
    pub term: i64,
}

impl Leadership {
    pub const FOLLOWER: Leadership = Leadership {
        leader: false,
        term: 0,
    };
}

/// Lease timing.
#[derive(Clone, Copy, Debug)]
pub struct LeaseTiming {
    pub lease: Duration,
    pub renew: Duration,
    /// Taken off the fence, against scheduling delays.
    pub margin: Duration,
}

impl LeaseTiming {
    pub fn from_lease(lease: Duration) -> Self {
        LeaseTiming {
            lease,
            renew: lease / 5,
            margin: lease / 5,
        }
    }
}

/// A name for this engine in the lease: its host and the address it serves on. Two engines
/// cannot serve on one host and address at once, and an engine restarted in place (after a
/// crash, by systemd) is the same holder, so it takes its lease back as soon as it has seen
/// that nobody renews it, instead of waiting for it to run out (`claim_engine_id`).
pub fn default_engine_id(addr: std::net::SocketAddr) -> String {
    let host = crate::store::host_name().unwrap_or_else(|| "tocsin".into());
    format!("{host}@{addr}")
}

/// The engine id is another running engine's: it holds the lease under it and renews it.
#[derive(Debug, thiserror::Error)]
#[error(
    "engine id {holder:?} is in use: another running engine holds the leader lease under it \
     and renewed it while this one waited; give each engine its own store.engine_id (or \
     leave it unset: host@listen-address)"
)]
pub struct EngineIdInUse {
    pub holder: String,
}

/// Before this process first asks for the lease: when it is held under this engine's own id
/// by another process, tell a live one (it renews the lease within a renewal) from one that
/// is gone (a crash, a SIGKILL: nobody renews it). A live one is refused; a gone one's lease
/// is taken back at once instead of waiting for it to run out. A store it cannot read is not
/// a refusal: the lease task goes on from there.
pub async fn claim_engine_id(
    store: &Store,
    holder: &str,
    instance: &str,
    timing: LeaseTiming,
) -> Result<(), EngineIdInUse> {
    let look = || async {
        tokio::time::timeout(timing.renew, store.lease_row())
            .await
            .ok()
            .and_then(Result::ok)
            .flatten()
    };
    let Some(first) = look().await else {
        return Ok(());
    };
    let ours_elsewhere = |row: &crate::store::LeaseRow| {
        row.holder == holder && row.instance != instance && row.remaining_ms > 0
    };
    if !ours_elsewhere(&first) {
        return Ok(());
    }
    if instance_gone(&first.instance) {
        tracing::info!(
            engine = %holder,
            "the process that held the lease under this engine's id is gone; taking it back"
        );
        return reclaim(store, holder, instance, first.expires_at, timing).await;
    }
    tracing::info!(
        engine = %holder,
        "the leader lease is held under this engine's id by another process; waiting a \
         renewal to see whether it still runs"
    );
    // A live holder renews every `renew`; half as much again covers a slow renewal.
    let watch_until = Instant::now() + timing.renew + timing.renew / 2;
    let step = (timing.renew / 8).max(Duration::from_millis(20));
    while Instant::now() < watch_until {
        tokio::time::sleep(step).await;
        match look().await {
            Some(row) if !ours_elsewhere(&row) => return Ok(()),
            Some(row) if row.expires_at != first.expires_at => {
                return Err(EngineIdInUse {
                    holder: holder.to_string(),
                })
            }
            _ => {}
        }
    }
    reclaim(store, holder, instance, first.expires_at, timing).await
}

/// Take back the lease held under `holder` at `expires_at`, which nobody renews.
async fn reclaim(
    store: &Store,
    holder: &str,
    instance: &str,
    expires_at: i64,
    timing: LeaseTiming,
) -> Result<(), EngineIdInUse> {
    let lease_ms = timing.lease.as_millis() as i64;
    match store
        .reclaim_lease(holder, instance, expires_at, lease_ms)
        .await
    {
        Ok(Some(term)) => {
            tracing::info!(term, engine = %holder, "took back the lease nobody renewed");
            Ok(())
        }
        // Renewed at the last moment, or changed hands: look once more.
        Ok(None) => match store.lease_row().await {
            Ok(Some(row))
                if row.holder == holder && row.instance != instance && row.remaining_ms > 0 =>
            {
                Err(EngineIdInUse {
                    holder: holder.to_string(),
                })
            }
            _ => Ok(()),
        },
        Err(_) => Ok(()),
    }
}

/// A new process's instance in the lease row: `host/pid/random`, so that an engine restarted
/// on the same host can tell that the process holding the lease under its id is gone.
pub fn new_instance() -> String {
    let host = crate::store::host_name().unwrap_or_default();
    format!(
        "{host}/{}/{}",
        std::process::id(),
        uuid::Uuid::new_v4().simple()
    )
}

/// Whether `instance` (see [`new_instance`]) is a process of this host that no longer runs.
/// Instances of other hosts, and those written before instances named their process, are
/// not known to be gone.
fn instance_gone(instance: &str) -> bool {
    let mut parts = instance.splitn(3, '/');
    let (Some(host), Some(pid), Some(_)) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    let Ok(pid) = pid.parse::<u32>() else {
        return false;
    };
    host == crate::store::host_name().unwrap_or_default()
        && pid != std::process::id()
        && !std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// Take and renew the lease until shutdown; publish the role on `role`.
#[allow(clippy::too_many_arguments)]
pub async fn run_lease(
    store: Store,
    holder: String,
    instance: String,
    timing: LeaseTiming,
    fence: Arc<Fence>,
    role: watch::Sender<Leadership>,
    metrics: Arc<Metrics>,
    pulse: Arc<LoopPulse>,
    mut shutdown: watch::Receiver<bool>,
    mut services_stopped: watch::Receiver<bool>,
) {
    let lease_ms = timing.lease.as_millis() as i64;
    let mut logged_error = false;
    let mut logged_wedged = false;
    loop {
        let sent = Instant::now();
        let sent_real = RealInstant::now();
        if !pulse.is_turning() {
            // A wedged leader lets its lease run out, so that another engine takes over and
            // pages: its own fence runs out first and it stops starting pages. Nor does it
            // take the lease again while its wedged loop is still being stopped.
            if !std::mem::replace(&mut logged_wedged, true) {
                tracing::error!(
                    engine = %holder,
                    stalled = ?pulse.since_last_turn().unwrap_or_default(),
                    "the engine loop is not turning: not renewing the leader lease"
                );
            }
            let fence_left = fence.remaining();
            tokio::select! {
                _ = shutdown.wait_for(|stop| *stop) => break,
                _ = tokio::time::sleep_until(sent + timing.renew) => {}
                _ = sleep_opt(fence_left) => {}
            }
            if role.borrow().leader && !fence.is_valid() {
                tracing::error!(engine = %holder, "the leader lease ran out while the engine loop was wedged; stepped down");
                fence.revoke();
                publish_fence(&fence, &metrics);
                step_down(&role, &metrics);
            }
            continue;
        }
        logged_wedged = false;
        let attempt = tokio::time::timeout(
            timing.renew,
            store.acquire_or_renew(&holder, &instance, lease_ms),
        )
        .await;
        let current = *role.borrow();
        match attempt {
            Ok(Ok(Some(term))) => {
                logged_error = false;
                fence.extend(sent_real, timing.lease - timing.margin);
                publish_fence(&fence, &metrics);
                if !current.leader || current.term != term {
                    publish_term_start(&fence, &metrics, sent_real);
                    tracing::info!(term, engine = %holder, "this engine now leads");
                    metrics.leader.set(1);
                    role.send_replace(Leadership { leader: true, term });
                }
            }
            Ok(Ok(None)) => {
                logged_error = false;
                fence.revoke();
                publish_fence(&fence, &metrics);
                if current.leader {
                    tracing::warn!(engine = %holder, "the lease passed to another engine; stepping down");
                    step_down(&role, &metrics);
                }
                // Try again the moment the holder's lease runs out, not a renewal later:
                // a takeover then happens within the lease time of the leader's last renewal.
                if let Ok(Ok(Some(left))) =
                    tokio::time::timeout(timing.renew, store.lease_remaining_ms()).await
                {
                    let wait = Duration::from_millis(
                        left.clamp(0, timing.renew.as_millis() as i64) as u64 + 5,
                    );
                    tokio::select! {
                        _ = shutdown.wait_for(|stop| *stop) => break,
                        _ = tokio::time::sleep(wait) => {}
                    }
                    continue;
                }
            }
            Ok(Err(e)) => {
                if !logged_error {
                    tracing::error!(error = %e, "cannot renew the leader lease");
                    logged_error = true;
                }
            }
            Err(_) => {
                if !logged_error {
                    tracing::error!(timeout = ?timing.renew, "renewing the leader lease timed out");
                    logged_error = true;
                }
            }
        }
        // Sleep until the next renewal, but step down the moment the fence runs out.
        let renew_at = sent + timing.renew;
        let fence_left = fence.remaining();
        tokio::select! {
            _ = shutdown.wait_for(|stop| *stop) => break,
            _ = tokio::time::sleep_until(renew_at) => {}
            _ = sleep_opt(fence_left), if role.borrow().leader => {}
        }
        if role.borrow().leader && !fence.is_valid() {
            tracing::error!(engine = %holder, "the leader lease could not be renewed in time; stopped paging");
            step_down(&role, &metrics);
        }
    }
    // A clean stop gives the lease up, so another engine need not wait for it to run out;
    // once the leader's services wrote what they kept (the fenced store refuses a write of a
    // lease given up), or the lease would have run out anyway.
    if role.borrow().leader {
        let _ =
            tokio::time::timeout(timing.lease, services_stopped.wait_for(|stopped| *stopped)).await;
        fence.revoke();
        publish_fence(&fence, &metrics);
        step_down(&role, &metrics);
        if let Err(e) = store.release_lease(&holder, &instance).await {
            tracing::warn!(error = %e, "could not release the leader lease");
        }
    }
}

fn step_down(role: &watch::Sender<Leadership>, metrics: &Metrics) {
    metrics.leader.set(0);
    role.send_replace(Leadership::FOLLOWER);
}

async fn sleep_opt(wait: Option<Duration>) {
    match wait {
        Some(wait) => tokio::time::sleep(wait).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_instance_is_gone_only_when_its_process_on_this_host_has_ended() {
        let host = crate::store::host_name().unwrap_or_default();
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let ended = child.id();
        child.wait().unwrap();
        assert!(instance_gone(&format!("{host}/{ended}/abc")));
        assert!(!instance_gone(&new_instance()), "this process runs");
        assert!(!instance_gone(&format!("{host}-elsewhere/{ended}/abc")));
        assert!(
            !instance_gone("0123456789abcdef"),
            "an earlier version's instance"
        );
    }

    #[test]
    fn fence_runs_out() {
        let fence = Fence::new();
        assert!(!fence.is_valid());
        fence.extend(RealInstant::now(), Duration::from_secs(8));
        assert!(fence.is_valid());
        assert!(fence.remaining().unwrap() > Duration::from_secs(7));
        fence.extend(
            RealInstant::now() - Duration::from_secs(9),
            Duration::from_secs(8),
        );
        assert!(!fence.is_valid());
        assert_eq!(fence.remaining(), Some(Duration::ZERO));
        fence.revoke();
        assert!(!fence.is_valid());
        assert!(Fence::forever().is_valid());
        assert_eq!(Fence::forever().remaining(), None);
        assert_eq!(Fence::forever().stops_at_unix_seconds(), None);
        assert_eq!(Fence::new().stops_at_unix_seconds(), None);
    }

    #[test]
    fn the_fence_says_when_the_engine_stops_starting_pages() {
        let fence = Fence::new();
        let now = fence.unix_seconds(RealInstant::now());
        fence.extend(RealInstant::now(), Duration::from_secs(8));
        let end = fence.stops_at_unix_seconds().unwrap();
        assert!((now + 7.9..now + 8.5).contains(&end), "{end} for {now}");
        // Revoked before its end: it stopped then.
        fence.revoke();
        let revoked = fence.stops_at_unix_seconds().unwrap();
        assert!((now..now + 1.0).contains(&revoked), "{revoked} for {now}");
        // Revoked after an end that passed: it stopped at the end (counted from the fence's
        // start at the earliest).
        fence.extend(
            RealInstant::now() - Duration::from_secs(9),
            Duration::from_secs(8),
        );
        let ran_out = fence.stops_at_unix_seconds().unwrap();
        fence.revoke();
        assert_eq!(fence.stops_at_unix_seconds(), Some(ran_out));
        assert!(ran_out <= now, "{ran_out} for {now}");
    }
}
