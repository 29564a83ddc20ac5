//! Pulling alerts from Prometheus and Alertmanager: every `interval`, fetch the alert list,
//! send a firing signal for each alert in it and a resolved one for each alert that left it.
//! A source that cannot be read becomes a `source="tocsin"` signal of its own: the engine is
//! blind there, and the default rules make that an incident rather than a silence.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::time::MissedTickBehavior;

pub use super::pulled::PulledAlert;
use super::sink::{NotTaken, SignalSink};
use super::{alertmanager, prometheus};
use crate::clock::Clock;
use crate::config::PullSource;
use crate::metrics::Metrics;
use crate::signal::{Fingerprint, Signal, SignalState, SourceKind};
use crate::store::Store;

/// Which API a pull source speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PullKind {
    Prometheus,
    Alertmanager,
}

impl PullKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PullKind::Prometheus => "prometheus",
            PullKind::Alertmanager => "alertmanager",
        }
    }

    fn path(self) -> &'static str {
        match self {
            PullKind::Prometheus => prometheus::PATH,
            PullKind::Alertmanager => alertmanager::PATH,
        }
    }

    fn parse(self, body: &[u8]) -> Result<Vec<PulledAlert>, String> {
        match self {
            PullKind::Prometheus => prometheus::parse(body),
            PullKind::Alertmanager => alertmanager::parse(body),
        }
    }
}

/// Why a pull failed; the text becomes the `error` annotation of the blind-spot signal.
#[derive(Debug, thiserror::Error)]
pub enum PullError {
    #[error("cannot connect to {url}: {reason}")]
    Connect { url: String, reason: String },
    #[error("no answer from {url} within {timeout:?}")]
    Timeout { url: String, timeout: Duration },
    #[error("GET {url} failed: {reason}")]
    Request { url: String, reason: String },
    #[error("GET {url} answered {status}, expected 200")]
    Status { url: String, status: u16 },
    #[error("GET {url} did not answer the alert list of {kind}: {reason}")]
    Body {
        url: String,
        kind: &'static str,
        reason: String,
    },
}

/// What a source remembers between pulls: the alerts it last reported firing, and whether
/// it is unreachable. Kept across a reload so an alert that disappears meanwhile resolves.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct PullMemory {
    firing: BTreeMap<Fingerprint, Signal>,
    unreachable: Option<Signal>,
}

impl PullMemory {
    /// A successful pull: every listed alert fires (the refresh keeps it current), every
    /// alert no longer listed resolves, and so does the blind spot.
    pub fn pulled(
        &mut self,
        source: &PullSource,
        alerts: Vec<PulledAlert>,
        now: DateTime<Utc>,
    ) -> Vec<Signal> {
        let mut signals = Vec::with_capacity(alerts.len());
        let mut firing = BTreeMap::new();
        for alert in alerts {
            let mut labels = alert.labels;
            // As Prometheus's external labels: added where the alert has no label of that name.
            for (name, value) in &source.labels {
                labels.entry(name.clone()).or_insert_with(|| value.clone());
            }
            let mut signal = Signal::new(SourceKind::Alert, labels, now);
            signal.annotations = std::sync::Arc::new(alert.annotations.into());
            signal.value = alert.value;
            signal.set_generator_url(alert.generator_url.as_deref());
            firing.insert(signal.fingerprint(), signal.clone());
            signals.push(signal);
        }
        for (fingerprint, mut gone) in std::mem::take(&mut self.firing) {
            if !firing.contains_key(&fingerprint) {
                gone.state = SignalState::Resolved;
                gone.observed_at = now;
                signals.push(gone);
            }
        }
        self.firing = firing;
        if let Some(mut blind) = self.unreachable.take() {
            blind.state = SignalState::Resolved;
            blind.observed_at = now;
            signals.push(blind);
        }
        signals
    }

    /// A failed pull: the blind spot fires (again, with the latest reason); the alerts keep
    /// the state they had, since nobody can say they stopped.
    pub fn failed(
        &mut self,
        kind: PullKind,
        source: &PullSource,
        error: &PullError,
        now: DateTime<Utc>,
    ) -> Vec<Signal> {
        let labels = BTreeMap::from([
            ("alertname".to_string(), "SourceUnreachable".to_string()),
            ("source_name".to_string(), source.name.clone()),
            ("source_kind".to_string(), kind.as_str().to_string()),
        ]);
        let mut signal = Signal::new(SourceKind::Tocsin, labels, now);
        std::sync::Arc::make_mut(&mut signal.annotations).insert("error".into(), error.to_string());
        self.unreachable = Some(signal.clone());
        vec![signal]
    }

    /// What changes of it the store must know: the firing set and the blind spot.
    fn digest(&self) -> (Vec<Fingerprint>, bool) {
        (
            self.firing.keys().copied().collect(),
            self.unreachable.is_some(),
        )
    }

    /// The source was removed from the config: whatever it said fires no more.
    pub fn forget(self, now: DateTime<Utc>) -> Vec<Signal> {
        self.firing
            .into_values()
            .chain(self.unreachable)
            .map(|mut signal| {
                signal.state = SignalState::Resolved;
                signal.observed_at = now;
                signal
            })
            .collect()
    }
}

/// What a pull loop is handed.
#[derive(Clone)]
pub struct PullContext {
    pub engine: Arc<dyn SignalSink>,
    pub clock: Clock,
    pub metrics: Arc<Metrics>,
    /// Where each source's memory outlives the engine (None in unit tests).
    pub store: Option<Store>,
}

/// The key of a source's memory in the store.
pub fn memory_key(kind: PullKind, name: &str) -> String {
    format!("{}:{name}", kind.as_str())
}

/// The memory a source left in the store, if any.
pub async fn stored_memory(store: &Store, key: &str) -> Option<PullMemory> {
    match store.source_state(key).await {
        Ok(Some(text)) => match serde_json::from_str(&text) {
            Ok(memory) => Some(memory),
            Err(e) => {
                tracing::warn!(source = key, error = %e, "stored pull memory unreadable; starting afresh");
                None
            }
        },
        Ok(None) => None,
        Err(e) => {
            tracing::warn!(source = key, error = %e, "cannot read the stored pull memory");
            None
        }
    }
}

async fn save_memory(store: &Store, key: &str, memory: &PullMemory) {
    let saved = match serde_json::to_string(memory) {
        Ok(text) => store
            .save_source_state(key, &text)
            .await
            .map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    if let Err(e) = saved {
        tracing::warn!(source = key, error = %e, "cannot store the pull memory");
    }
}

/// Pull one source until `stop` turns true; returns its memory for the next config.
pub async fn run(
    kind: PullKind,
    source: PullSource,
    mut memory: PullMemory,
    context: PullContext,
    mut stop: watch::Receiver<bool>,
) -> PullMemory {
    let url = format!("{}{}", source.url.trim_end_matches('/'), kind.path());
    // Errors carry the URL into logs and the blind-spot annotation: never its credentials.
    let shown = redacted(&url);
    // Like Prometheus, ignore HTTP_PROXY and friends: the sources are usually next door.
    let client = match reqwest::Client::builder()
        .timeout(source.timeout.std())
        .no_proxy()
        .build()
    {
        Ok(client) => client,
        Err(e) => {
            tracing::error!(source = %source.name, error = %e, "cannot build an HTTP client");
            return memory;
        }
    };
    let key = memory_key(kind, &source.name);
    // A fresh start (not a reload) takes up what the last engine to pull it remembered.
    if memory.firing.is_empty() && memory.unreachable.is_none() {
        if let Some(store) = &context.store {
            if let Some(stored) = stored_memory(store, &key).await {
                memory = stored;
            }
        }
    }
    let up = context.metrics.source_up.with_label_values(&[&source.name]);
    let mut ticks = tokio::time::interval(source.interval.std());
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        let fetched = tokio::select! {
            _ = stop.wait_for(|stop| *stop) => return memory,
            fetched = async {
                ticks.tick().await;
                fetch(&client, kind, &url, &shown, source.timeout.std()).await
            } => fetched,
        };
        let now = context.clock.now();
        let before = memory.digest();
        let signals = match fetched {
            Ok(alerts) => {
                up.set(1);
                memory.pulled(&source, alerts, now)
            }
            Err(e) => {
                up.set(0);
                tracing::warn!(source = %source.name, error = %e, "pull failed");
                memory.failed(kind, &source, &e, now)
            }
        };
        if signals.is_empty() {
            continue;
        }
        match context.engine.send_signals(signals).await {
            Ok(()) => {
                // Stored once the engine has the signals, so a restart resolves what left.
                if memory.digest() != before {
                    if let Some(store) = &context.store {
                        save_memory(store, &key, &memory).await;
                    }
                }
            }
            Err(NotTaken::Stopped) => return memory,
            Err(e) => {
                tracing::warn!(source = %source.name, error = %e, "pulled alerts not recorded")
            }
        }
    }
}

/// GET `url`; errors name it as `shown`.
async fn fetch(
    client: &reqwest::Client,
    kind: PullKind,
    url: &str,
    shown: &str,
    timeout: Duration,
) -> Result<Vec<PulledAlert>, PullError> {
    let failed = |e: reqwest::Error| {
        if e.is_timeout() {
            PullError::Timeout {
                url: shown.to_string(),
                timeout,
            }
        } else if e.is_connect() {
            PullError::Connect {
                url: shown.to_string(),
                reason: root_cause(&e),
            }
        } else {
            PullError::Request {
                url: shown.to_string(),
                reason: root_cause(&e),
            }
        }
    };
    let response = client.get(url).send().await.map_err(failed)?;
    let status = response.status();
    if !status.is_success() {
        return Err(PullError::Status {
            url: shown.to_string(),
            status: status.as_u16(),
        });
    }
    let body = response.bytes().await.map_err(failed)?;
    kind.parse(&body).map_err(|reason| PullError::Body {
        url: shown.to_string(),
        kind: kind.as_str(),
        reason,
    })
}

/// The URL without a password, for messages.
fn redacted(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("xxxxx"));
            parsed.to_string()
        }
        _ => url.to_string(),
    }
}

/// The innermost cause ("Connection refused (os error 111)"), not reqwest's outer wrapper.
fn root_cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = error;
    while let Some(inner) = cause.source() {
        cause = inner;
    }
    cause.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source() -> PullSource {
        serde_yaml::from_str("{ name: prom, url: 'http://127.0.0.1:9090', labels: { env: prod, service: fallback } }")
            .unwrap()
    }

    fn alert(name: &str) -> PulledAlert {
        PulledAlert {
            labels: BTreeMap::from([
                ("alertname".to_string(), name.to_string()),
                ("service".to_string(), "storage".to_string()),
            ]),
            annotations: BTreeMap::from([("summary".to_string(), format!("{name} fires"))]),
            value: Some(1.0),
            generator_url: None,
        }
    }

    fn states(signals: &[Signal]) -> Vec<(String, SignalState)> {
        signals
            .iter()
            .map(|s| {
                let name = s.label("alertname").unwrap_or_default().to_string();
                (name, s.state)
            })
            .collect()
    }

    #[test]
    fn listed_alerts_fire_with_the_source_labels_and_gone_ones_resolve_once() {
        let now = Utc::now();
        let mut memory = PullMemory::default();
        let first = memory.pulled(&source(), vec![alert("A"), alert("B")], now);
        assert_eq!(
            states(&first),
            [
                ("A".into(), SignalState::Firing),
                ("B".into(), SignalState::Firing)
            ]
        );
        assert_eq!(first[0].source, SourceKind::Alert);
        assert_eq!(first[0].label("env"), Some("prod"));
        assert_eq!(
            first[0].label("service"),
            Some("storage"),
            "the alert's own label wins"
        );
        assert_eq!(&first[0].annotations["summary"], "A fires");
        assert_eq!(first[0].value, Some(1.0));
        assert_eq!(first[0].expires_at, None, "pulled alerts carry no lease");

        let second = memory.pulled(&source(), vec![alert("B")], now);
        assert_eq!(
            states(&second),
            [
                ("B".into(), SignalState::Firing),
                ("A".into(), SignalState::Resolved)
            ]
        );
        assert_eq!(second[1].fingerprint(), first[0].fingerprint());
        let third = memory.pulled(&source(), vec![alert("B")], now);
        assert_eq!(states(&third), [("B".into(), SignalState::Firing)]);
    }

    #[test]
    fn an_unreachable_source_fires_its_own_signal_and_keeps_its_alerts() {
        let now = Utc::now();
        let mut memory = PullMemory::default();
        memory.pulled(&source(), vec![alert("A")], now);
        let error = PullError::Connect {
            url: "http://127.0.0.1:9090/api/v1/alerts".into(),
            reason: "Connection refused (os error 111)".into(),
        };
        let blind = memory.failed(PullKind::Prometheus, &source(), &error, now);
        assert_eq!(
            blind.len(),
            1,
            "no alert resolves while the source is unreachable"
        );
        assert_eq!(blind[0].source, SourceKind::Tocsin);
        assert_eq!(blind[0].label("alertname"), Some("SourceUnreachable"));
        assert_eq!(blind[0].label("source_name"), Some("prom"));
        assert_eq!(blind[0].label("source_kind"), Some("prometheus"));
        assert!(blind[0].annotations["error"].contains("Connection refused"));

        let back = memory.pulled(&source(), vec![], now);
        assert_eq!(
            states(&back),
            [
                ("A".into(), SignalState::Resolved),
                ("SourceUnreachable".into(), SignalState::Resolved)
            ]
        );
        assert_eq!(back[1].fingerprint(), blind[0].fingerprint());
        assert!(memory.pulled(&source(), vec![], now).is_empty());
    }

    #[test]
    fn a_password_in_a_source_url_is_never_shown() {
        let shown = redacted("http://tocsin:s3cret@prom:9090/api/v1/alerts");
        assert_eq!(shown, "http://tocsin:xxxxx@prom:9090/api/v1/alerts");
        assert_eq!(redacted("http://prom:9090/x"), "http://prom:9090/x");
    }

    #[test]
    fn a_removed_source_resolves_everything_it_said() {
        let now = Utc::now();
        let mut memory = PullMemory::default();
        memory.pulled(&source(), vec![alert("A")], now);
        let error = PullError::Status {
            url: "u".into(),
            status: 503,
        };
        memory.failed(PullKind::Alertmanager, &source(), &error, now);
        let gone = memory.forget(now);
        assert_eq!(gone.len(), 2);
        assert!(gone.iter().all(|s| s.state == SignalState::Resolved));
    }
}
