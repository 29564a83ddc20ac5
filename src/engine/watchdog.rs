//! Watching the watcher: whether the engine loop turns, systemd's watchdog (`WATCHDOG=1`),
//! and the outbound dead-man's switch (`watchdog:` in the config) that pings a URL only
//! while the engine is healthy, so that something outside pages when tocsin cannot.
//!
//! The engine loop turns at least every [`HEARTBEAT`] even when idle, and marks each turn
//! in a [`LoopPulse`]. A loop that has not turned for [`STALLED_AFTER`] is wedged: the
//! leader stops renewing its lease (`leadership::run_lease`), systemd's watchdog is no
//! longer fed, and the outbound watchdog stops.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::leadership::RealInstant;
use super::Setup;
use crate::metrics::Metrics;
use crate::store::StoreHealth;

/// The engine loop turns at least this often, with nothing else to do.
pub const HEARTBEAT: Duration = Duration::from_millis(250);

/// A loop that has not turned for this long is wedged.
pub const STALLED_AFTER: Duration = Duration::from_secs(2);

/// When the engine loop of this process last turned; shared by the loop and its watchers.
/// Counted in real time, as the lease it gates is.
#[derive(Debug)]
pub struct LoopPulse {
    origin: RealInstant,
    /// Milliseconds after `origin`; negative while no engine loop runs in this process.
    last_turn_ms: AtomicI64,
}

impl LoopPulse {
    pub fn new() -> Arc<LoopPulse> {
        Arc::new(LoopPulse {
            origin: RealInstant::now(),
            last_turn_ms: AtomicI64::new(-1),
        })
    }

    /// The loop came round.
    pub fn turned(&self) {
        let now = RealInstant::now().saturating_duration_since(self.origin);
        self.last_turn_ms
            .store(now.as_millis() as i64, Ordering::Release);
    }

    /// No engine loop runs in this process any more (a follower, or stopped).
    pub fn stopped(&self) {
        self.last_turn_ms.store(-1, Ordering::Release);
    }

    /// How long since the loop last turned; None while no loop runs.
    pub fn since_last_turn(&self) -> Option<Duration> {
        let at = self.last_turn_ms.load(Ordering::Acquire);
        (at >= 0).then(|| {
            let now = RealInstant::now().saturating_duration_since(self.origin);
            now.saturating_sub(Duration::from_millis(at as u64))
        })
    }

    /// The loop turns, or none runs here (nothing to be wedged).
    pub fn is_turning(&self) -> bool {
        loop_turning(self.since_last_turn())
    }
}

/// Marks the pulse stopped when the engine loop ends, aborted included.
pub struct PulseGuard(pub Arc<LoopPulse>);

impl Drop for PulseGuard {
    fn drop(&mut self) {
        self.0.stopped();
    }
}

/// Whether a loop last seen turning `since` ago (None: no loop runs) counts as turning.
pub fn loop_turning(since: Option<Duration>) -> bool {
    since.is_none_or(|since| since <= STALLED_AFTER)
}

/// Why the engine is not healthy, for the log; None when it is.
pub fn unhealthy_because(
    store_problem: Option<String>,
    since_last_turn: Option<Duration>,
    failing_channels: &[String],
) -> Option<String> {
    if let Some(problem) = store_problem {
        return Some(format!("the store cannot be written: {problem}"));
    }
    if !loop_turning(since_last_turn) {
        let since = since_last_turn.unwrap_or_default();
        return Some(format!(
            "the engine loop has not turned for {:.1}s",
            since.as_secs_f64()
        ));
    }
    if !failing_channels.is_empty() {
        return Some(format!(
            "pages are failing on {}",
            failing_channels.join(", ")
        ));
    }
    None
}

/// Page outcomes of one channel so far: (delivered, retried or given up).
pub type Outcomes = (u64, u64);

/// The channels whose pages fail: a channel fails once an attempt failed with no delivery
/// since the last look, and recovers at its next delivery. `before` and `now` are the
/// outcome counts of each channel at the last look and now.
pub fn failing_channels(
    before: &BTreeMap<String, Outcomes>,
    now: &BTreeMap<String, Outcomes>,
    failing: &[String],
) -> Vec<String> {
    now.iter()
        .filter(|(channel, (delivered, failed))| {
            let (was_delivered, was_failed) = before.get(*channel).copied().unwrap_or_default();
            if *delivered > was_delivered {
                return false;
            }
            *failed > was_failed || failing.contains(channel)
        })
        .map(|(channel, _)| channel.clone())
        .collect()
}

/// Page outcomes by channel, from `tocsin_pages_total`.
fn outcomes(metrics: &Metrics) -> BTreeMap<String, Outcomes> {
    use prometheus::core::Collector;
    let mut by_channel: BTreeMap<String, Outcomes> = BTreeMap::new();
    for family in metrics.pages_total.collect() {
        for m in family.get_metric() {
            let label = |name: &str| {
                m.get_label()
                    .iter()
                    .find(|l| l.name() == name)
                    .map(|l| l.value().to_string())
                    .unwrap_or_default()
            };
            let count = m.get_counter().get_value() as u64;
            let entry = by_channel.entry(label("channel")).or_default();
            match label("outcome").as_str() {
                "delivered" => entry.0 += count,
                _ => entry.1 += count,
            }
        }
    }
    by_channel
}

/// Feed systemd's watchdog (`WATCHDOG=1`) at half its interval while the engine loop turns,
/// when systemd asks for it (`WatchdogSec=` sets `WATCHDOG_USEC`).
pub async fn feed_systemd(pulse: Arc<LoopPulse>, mut shutdown: watch::Receiver<bool>) {
    let Some(interval) = sd_notify::watchdog_enabled() else {
        return;
    };
    let mut tick = tokio::time::interval(interval / 2);
    let mut logged = false;
    loop {
        tokio::select! {
            _ = shutdown.wait_for(|stop| *stop) => return,
            _ = tick.tick() => {}
        }
        if pulse.is_turning() {
            logged = false;
            if let Err(e) = sd_notify::notify(&[sd_notify::NotifyState::Watchdog]) {
                tracing::warn!(error = %e, "cannot notify systemd's watchdog");
            }
        } else if !std::mem::replace(&mut logged, true) {
            tracing::error!("the engine loop is not turning: systemd's watchdog is not fed");
        }
    }
}

/// Tell systemd (when it started this process with `NOTIFY_SOCKET`) that the engine is
/// ready, or stopping.
pub fn notify_systemd(state: sd_notify::NotifyState) {
    if std::env::var_os("NOTIFY_SOCKET").is_none() {
        return;
    }
    if let Err(e) = sd_notify::notify(&[state]) {
        tracing::warn!(error = %e, "cannot notify systemd");
    }
}

/// What the outbound watchdog looks at.
pub struct WatchdogParts {
    pub setup: watch::Receiver<Arc<Setup>>,
    pub pulse: Arc<LoopPulse>,
    pub health: StoreHealth,
    pub metrics: Arc<Metrics>,
    pub shutdown: watch::Receiver<bool>,
}

/// The outbound dead-man's switch: every `watchdog.every`, while the engine is healthy, a
/// POST to `watchdog.url`. Follows reloads; does nothing while the config has no watchdog.
pub async fn run_outbound(parts: WatchdogParts) {
    let WatchdogParts {
        mut setup,
        pulse,
        health,
        metrics,
        mut shutdown,
    } = parts;
    let http = match reqwest::Client::builder().build() {
        Ok(http) => http,
        Err(e) => {
            tracing::error!(error = %e, "watchdog: cannot build an HTTP client");
            return;
        }
    };
    let mut before = outcomes(&metrics);
    let mut failing: Vec<String> = Vec::new();
    let mut last_problem: Option<String> = None;
    loop {
        let config = setup.borrow().config.watchdog.clone();
        let wait = config
            .as_ref()
            .map_or(Duration::from_secs(3600), |c| c.every.std());
        tokio::select! {
            _ = shutdown.wait_for(|stop| *stop) => return,
            _ = setup.changed() => continue,
            _ = tokio::time::sleep(wait) => {}
        }
        let Some(config) = config else { continue };
        let now = outcomes(&metrics);
        failing = failing_channels(&before, &now, &failing);
        before = now;
        let problem = unhealthy_because(health.problem(), pulse.since_last_turn(), &failing);
        if problem != last_problem {
            match &problem {
                Some(why) => tracing::error!(reason = %why, "watchdog: not healthy; not pinging"),
                None => tracing::info!("watchdog: healthy again; pinging"),
            }
            last_problem.clone_from(&problem);
        }
        if problem.is_some() {
            continue;
        }
        let mut request = http
            .post(&config.url)
            .timeout(config.every.std().min(Duration::from_secs(10)))
            .header("content-type", "application/json")
            .body(r#"{"status":"healthy"}"#);
        if let Some(file) = &config.secret_file {
            let path = setup.borrow().config.resolve_path(file);
            match crate::config::secrets::read_secret(&path) {
                Ok(secret) => {
                    request = request.bearer_auth(String::from_utf8_lossy(&secret));
                }
                Err(e) => {
                    tracing::error!(error = %e, "watchdog: cannot read its secret; not pinging");
                    continue;
                }
            }
        }
        match request.send().await {
            Ok(answer) if answer.status().is_success() => {}
            Ok(answer) => {
                tracing::warn!(
                    status = answer.status().as_u16(),
                    "watchdog: the URL refused the ping"
                )
            }
            Err(e) => tracing::warn!(error = %e, "watchdog: cannot reach the URL"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(items: &[(&str, u64, u64)]) -> BTreeMap<String, Outcomes> {
        items
            .iter()
            .map(|(c, d, f)| (c.to_string(), (*d, *f)))
            .collect()
    }

    #[test]
    fn a_channel_fails_until_its_next_delivery() {
        let start = counts(&[("webhook", 3, 0), ("email", 1, 0)]);
        assert!(failing_channels(&start, &start, &[]).is_empty());
        let retried = counts(&[("webhook", 3, 2), ("email", 2, 0)]);
        let failing = failing_channels(&start, &retried, &[]);
        assert_eq!(failing, vec!["webhook".to_string()]);
        // No attempt since: still failing.
        assert_eq!(failing_channels(&retried, &retried, &failing), failing);
        // Delivered since, even with more failures: recovered.
        let delivered = counts(&[("webhook", 4, 5), ("email", 2, 0)]);
        assert!(failing_channels(&retried, &delivered, &failing).is_empty());
        // A channel seen first with failures fails.
        let new = counts(&[("webhook", 4, 5), ("email", 2, 0), ("chat", 0, 1)]);
        assert_eq!(
            failing_channels(&delivered, &new, &[]),
            vec!["chat".to_string()]
        );
    }

    #[test]
    fn the_engine_is_healthy_only_with_a_writable_store_a_turning_loop_and_pages_going_out() {
        let fine = Some(Duration::from_millis(300));
        assert_eq!(unhealthy_because(None, fine, &[]), None);
        assert_eq!(unhealthy_because(None, None, &[]), None, "a follower");
        let store = unhealthy_because(Some("disk full".into()), fine, &[]).unwrap();
        assert!(store.contains("disk full"), "{store}");
        let stalled = unhealthy_because(None, Some(STALLED_AFTER * 2), &[]).unwrap();
        assert!(stalled.contains("has not turned for 4.0s"), "{stalled}");
        let pages = unhealthy_because(None, fine, &["webhook".into()]).unwrap();
        assert!(pages.contains("failing on webhook"), "{pages}");
    }

    #[test]
    fn the_pulse_says_how_long_since_the_loop_turned() {
        let pulse = LoopPulse::new();
        assert_eq!(pulse.since_last_turn(), None);
        assert!(pulse.is_turning());
        pulse.turned();
        assert!(pulse.since_last_turn().unwrap() < STALLED_AFTER);
        assert!(pulse.is_turning());
        drop(PulseGuard(Arc::clone(&pulse)));
        assert_eq!(pulse.since_last_turn(), None);
    }
}
