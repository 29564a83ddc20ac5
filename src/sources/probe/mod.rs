//! Probes: http and tcp checks run at a fixed rate, each at a stable offset inside its
//! interval, at most `probing.max_in_flight` at once, each on a fresh connection. Every run
//! becomes a `source="probe"` signal labelled with the probe's labels and `probe: <name>`.

pub mod http;
pub mod schedule;
pub mod tcp;
pub mod tls;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, watch, Semaphore};
use tokio::task::JoinSet;

use self::http::HttpProbe;
use self::schedule::Schedule;
use self::tcp::TcpProbe;
use super::sink::{NotTaken, SignalSink};
use crate::clock::Clock;
use crate::config::{Config, ProbeConfig, ProbeKind};
use crate::metrics::Metrics;
use crate::signal::{LabelSet, Labels, ProbeResult, Signal, SignalState, SourceKind};

/// The most of a body (or tcp answer) a probe keeps: enough for any health document, small
/// enough that a thousand probes cannot fill memory with a misbehaving endpoint's output.
pub const BODY_CAP: usize = 64 * 1024;

/// Results waiting for the engine, at most; a slow engine slows the probes, not memory.
const REPORT_QUEUE: usize = 4096;

/// A probe whose config cannot be turned into a check (a header that is not valid HTTP, an
/// unreadable `ca_file`). It still runs: every run fails with this reason, so the problem
/// shows as an incident rather than as a probe that silently never runs.
#[derive(Clone, Debug, thiserror::Error)]
#[error("probe {probe:?}: {reason}")]
pub struct ProbeSetupError {
    pub probe: String,
    pub reason: String,
}

/// One probe, ready to run.
pub struct Prober {
    pub name: String,
    pub interval: Duration,
    /// Built once and shared by every run's signal (and what the engine keeps of it).
    labels: Labels,
    annotations: Labels,
    check: Check,
}

enum Check {
    Http(Box<HttpProbe>),
    Tcp(TcpProbe),
    Broken(ProbeSetupError),
}

impl Prober {
    pub fn new(probe: &ProbeConfig, config: &Config) -> Self {
        let check = match probe.kind {
            ProbeKind::Http => HttpProbe::new(probe, config).map(|p| Check::Http(Box::new(p))),
            ProbeKind::Tcp => TcpProbe::new(probe).map(Check::Tcp),
        };
        let check = check.unwrap_or_else(|e| {
            tracing::error!(probe = %probe.name, error = %e, "probe cannot run as configured");
            Check::Broken(e)
        });
        let mut labels = probe.labels.clone();
        labels.insert("probe".into(), probe.name.clone());
        Prober {
            name: probe.name.clone(),
            interval: probe.interval.std(),
            labels: Arc::new(LabelSet::from(labels)),
            annotations: Labels::default(),
            check,
        }
    }

    /// Run the check once (bounded by the probe's timeout); `now` is when it starts.
    pub async fn run(&self, now: DateTime<Utc>) -> ProbeResult {
        match &self.check {
            Check::Http(probe) => probe.run(now).await,
            Check::Tcp(probe) => probe.run().await,
            Check::Broken(e) => ProbeResult {
                error: Some(e.reason.clone()),
                ..ProbeResult::default()
            },
        }
    }

    /// The signal of one run.
    pub fn signal(&self, result: ProbeResult, at: DateTime<Utc>) -> Signal {
        Signal {
            source: SourceKind::Probe,
            labels: Arc::clone(&self.labels),
            annotations: Arc::clone(&self.annotations),
            value: None,
            state: SignalState::Firing,
            probe: Some(Box::new(result)),
            cri: None,
            expires_at: None,
            observed_at: at,
        }
    }
}

/// One run's signal, and how late the run started against its schedule.
pub struct ProbeReport {
    pub signal: Signal,
    pub schedule_lag: Duration,
}

/// What the probe stage is handed.
pub struct ProbeContext {
    pub clock: Clock,
    pub metrics: Arc<Metrics>,
    pub max_in_flight: usize,
}

/// Run every probe until `stop` turns true, sending each run's report to `reports`.
pub async fn run_probes(
    probers: Vec<Prober>,
    context: ProbeContext,
    reports: mpsc::Sender<ProbeReport>,
    stop: watch::Receiver<bool>,
) {
    on_own_thread(probe_loops(probers, context, reports, stop)).await;
}

/// Run `work` to its end. On a multi-threaded runtime (the daemon's) it runs on a thread of
/// its own, on a single-threaded runtime: a probe's few awaits (its start, connect, answer)
/// then wake that thread only, where on the shared runtime each would wake a parked worker
/// through a futex and a context switch (BENCHMARKS.md, "Probes beside Prometheus and
/// blackbox_exporter"). On a single-threaded runtime (tests, paused time) it runs in place,
/// on that runtime's clock.
async fn on_own_thread<F>(work: F)
where
    F: std::future::Future<Output = ()> + Send + 'static,
{
    let shared = tokio::runtime::Handle::try_current()
        .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
    if !shared {
        return work.await;
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            tracing::warn!(error = %e, "no runtime of their own for the probes: they share");
            return work.await;
        }
    };
    // The work is handed over once the thread runs, so a failed spawn keeps it here.
    let (hand, take) = std::sync::mpsc::channel::<F>();
    let (done, finished) = tokio::sync::oneshot::channel::<()>();
    let spawned = std::thread::Builder::new()
        .name("tocsin-probes".into())
        .spawn(move || {
            if let Ok(work) = take.recv() {
                runtime.block_on(work);
            }
            drop(done);
        });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "no thread of their own for the probes: they share");
        return work.await;
    }
    if let Err(std::sync::mpsc::SendError(work)) = hand.send(work) {
        return work.await;
    }
    // Ends when the work does (or the thread panicked).
    let _ = finished.await;
}

async fn probe_loops(
    probers: Vec<Prober>,
    context: ProbeContext,
    reports: mpsc::Sender<ProbeReport>,
    mut stop: watch::Receiver<bool>,
) {
    let permits = Arc::new(Semaphore::new(context.max_in_flight.max(1)));
    let context = Arc::new(context);
    let mut tasks = JoinSet::new();
    for prober in probers {
        tasks.spawn(run_one(
            prober,
            Arc::clone(&permits),
            Arc::clone(&context),
            reports.clone(),
        ));
    }
    drop(reports);
    let _ = stop.wait_for(|stop| *stop).await;
    // Dropping the set aborts every probe loop, in-flight runs included.
    tasks.shutdown().await;
}

async fn run_one(
    prober: Prober,
    permits: Arc<Semaphore>,
    context: Arc<ProbeContext>,
    reports: mpsc::Sender<ProbeReport>,
) {
    let mut schedule = Schedule::new(&prober.name, prober.interval, context.clock.now());
    let success = context
        .metrics
        .probe_success
        .with_label_values(&[&prober.name]);
    let duration = context
        .metrics
        .probe_duration_seconds
        .with_label_values(&[&prober.name]);
    loop {
        let due = schedule.next().await;
        let Ok(permit) = permits.acquire().await else {
            return;
        };
        let schedule_lag = tokio::time::Instant::now().saturating_duration_since(due);
        context
            .metrics
            .probe_schedule_lag_seconds
            .observe(schedule_lag.as_secs_f64());
        let result = prober.run(context.clock.now()).await;
        drop(permit);
        success.set(i64::from(result.success));
        duration.set(result.latency_ms / 1000.0);
        if !result.success {
            context.metrics.probe_failures_total.inc();
        }
        if let Some(error) = &result.error {
            tracing::debug!(probe = %prober.name, %error, "probe failed");
        }
        let signal = prober.signal(result, context.clock.now());
        if reports
            .send(ProbeReport {
                signal,
                schedule_lag,
            })
            .await
            .is_err()
        {
            return;
        }
    }
}

/// The probe stage of the daemon: probes, and a forwarder that hands their signals to the
/// engine in batches (one engine round trip, one store transaction, for many results), both
/// on the probes' own thread.
pub async fn run_stage(
    config: Arc<Config>,
    engine: Arc<dyn SignalSink>,
    context: ProbeContext,
    stop: watch::Receiver<bool>,
) {
    let probers: Vec<Prober> = config
        .probes
        .iter()
        .map(|p| Prober::new(p, &config))
        .collect();
    if probers.is_empty() {
        return;
    }
    tracing::info!(probes = probers.len(), "probes started");
    on_own_thread(async move {
        let (tx, rx) = mpsc::channel(REPORT_QUEUE);
        let probes = tokio::spawn(probe_loops(probers, context, tx, stop));
        forward(rx, engine).await;
        let _ = probes.await;
    })
    .await;
}

/// Results are gathered this long before they go to the engine: at a thousand runs a second
/// a batch holds a few dozen instead of one, and the engine (on the shared runtime) is woken,
/// and answers, once per batch rather than once per run.
const FORWARD_WINDOW: Duration = Duration::from_millis(20);

/// The most results in one engine input.
const FORWARD_BATCH: usize = 1024;

async fn forward(mut rx: mpsc::Receiver<ProbeReport>, engine: Arc<dyn SignalSink>) {
    let mut batch = Vec::with_capacity(FORWARD_BATCH);
    while rx.recv_many(&mut batch, FORWARD_BATCH).await > 0 {
        // The first result opens the window; whatever else arrives in it goes along.
        let deadline = tokio::time::Instant::now() + FORWARD_WINDOW;
        let mut open = true;
        while open && batch.len() < FORWARD_BATCH {
            let room = FORWARD_BATCH - batch.len();
            match tokio::time::timeout_at(deadline, rx.recv_many(&mut batch, room)).await {
                Ok(0) | Err(_) => open = false,
                Ok(_) => {}
            }
        }
        let signals = batch.drain(..).map(|r| r.signal).collect();
        if let Err(e) = engine.send_signals(signals).await {
            tracing::warn!(error = %e, "probe results not recorded");
            if e == NotTaken::Stopped {
                break;
            }
        }
    }
}

/// Milliseconds since `started`, on tokio's clock.
fn elapsed_ms(started: tokio::time::Instant) -> f64 {
    started.elapsed().as_secs_f64() * 1000.0
}

/// What a probe read back, capped at [`BODY_CAP`].
#[derive(Default)]
struct Answer {
    bytes: Vec<u8>,
    truncated: bool,
}

impl Answer {
    /// Keep what fits; false once the cap is reached.
    fn push(&mut self, data: &[u8]) -> bool {
        let room = BODY_CAP - self.bytes.len();
        if data.len() >= room {
            self.bytes.extend_from_slice(&data[..room]);
            self.truncated = data.len() > room;
            return false;
        }
        self.bytes.extend_from_slice(data);
        true
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes).into_owned()
    }

    /// The body for rules: parsed when it is JSON (by its content type, or by its look when
    /// the server does not say), else the text. A truncated body is never parsed.
    fn into_value(self, content_type: &str) -> serde_json::Value {
        let says_json = content_type.contains("json");
        let looks_json = content_type.is_empty() || content_type.starts_with("text/plain");
        let first = self.bytes.iter().find(|b| !b.is_ascii_whitespace());
        let may_be_json = says_json || (looks_json && matches!(first, Some(b'{' | b'[')));
        if may_be_json && !self.truncated {
            if let Ok(value) = serde_json::from_slice(&self.bytes) {
                return value;
            }
        }
        serde_json::Value::String(self.text())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn answer(bytes: &[u8]) -> Answer {
        let mut a = Answer::default();
        a.push(bytes);
        a
    }

    #[test]
    fn a_json_body_is_parsed_and_anything_else_kept_as_text() {
        let doc = br#"{"status": "ok", "checks": 3}"#;
        assert_eq!(
            answer(doc).into_value("application/json"),
            json!({"status": "ok", "checks": 3})
        );
        assert_eq!(
            answer(doc).into_value("application/health+json; charset=utf-8"),
            json!({"status": "ok", "checks": 3})
        );
        // Many health endpoints send JSON as text/plain or with no type at all.
        assert_eq!(
            answer(doc).into_value(""),
            json!({"status": "ok", "checks": 3})
        );
        assert_eq!(answer(b"ok").into_value("text/plain"), json!("ok"));
        assert_eq!(answer(b"42").into_value("text/plain"), json!("42"));
        assert_eq!(
            answer(b"{oops").into_value("application/json"),
            json!("{oops")
        );
        assert_eq!(
            answer(doc).into_value("text/html"),
            json!(r#"{"status": "ok", "checks": 3}"#)
        );
    }

    #[test]
    fn the_body_is_capped() {
        let mut a = Answer::default();
        assert!(a.push(&vec![b'x'; BODY_CAP - 1]));
        assert!(!a.push(b"yz"));
        assert_eq!(a.bytes.len(), BODY_CAP);
        assert!(a.truncated);
        let big = format!("[{}]", "1,".repeat(BODY_CAP)); // valid JSON, but cut
        let mut a = Answer::default();
        a.push(big.as_bytes());
        assert!(a.into_value("application/json").is_string());
    }

    #[tokio::test]
    async fn a_probe_that_cannot_be_built_still_runs_and_says_why() {
        let probe: ProbeConfig = serde_yaml::from_str(
            "{ name: api, kind: http, url: 'https://h/', tls: { ca_file: missing.pem }, labels: { service: storage } }",
        )
        .unwrap();
        let prober = Prober::new(&probe, &Config::default());
        let result = prober.run(Utc::now()).await;
        assert!(!result.success);
        assert!(
            result.error.as_deref().unwrap().contains("missing.pem"),
            "{result:?}"
        );
        let signal = prober.signal(result, Utc::now());
        assert_eq!(signal.source, SourceKind::Probe);
        assert_eq!(signal.label("probe"), Some("api"));
        assert_eq!(signal.label("service"), Some("storage"));
    }
}
