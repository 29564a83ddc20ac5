//! Ingest benchmark: Alertmanager and tocsin, one after the other in each round, take the
//! same pre-serialized `POST /api/v2/alerts` batches (10,000 distinct alerts, 256 a batch)
//! from the same load generator (16 keep-alive connections, each sending its next batch as
//! soon as the last one is answered).
//!
//! Two phases per system: the first pass (every alert new: tocsin opens impacts and
//! incidents and commits them before it answers), then the alerts refreshed in a loop for
//! SECONDS (the steady state of a Prometheus re-sending what fires). Prints alerts/s,
//! request latency p50/p99/max and resident memory of each run.
//!
//! ROUNDS rounds (default 3), the two systems taking turns going first, each run on a fresh
//! process and store; then the median and spread of each figure over the rounds, of each
//! system and of the ratio tocsin/Alertmanager. A run in which a request failed, or whose
//! system does not hold what was sent (Alertmanager every distinct alert, tocsin an
//! incident per service and a signal per alert answered), ends the benchmark without
//! figures.
//!
//! Run: `cargo bench --bench ingest` (env SECONDS, default 20, 0 for the first pass alone;
//! ALERTS, default 10000; ROUNDS, default 3; PEER=0 for tocsin alone).

mod alertmanager;
mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use alertmanager::Alertmanager;
use common::{env_or, percentile, print_compared, sorted, EngineDir};
use tokio::time::Instant;

const BATCH: usize = 256;
/// Distinct `service` labels among the alerts: one incident each.
const SERVICES: usize = 100;
const CONNECTIONS: usize = 16;

/// Alertmanager: one route, a receiver with nothing to notify (the benchmark is ingest).
const AM_CONFIG: &str = r#"
route:
  receiver: "null"
  group_by: [service]
receivers:
  - name: "null"
"#;

/// tocsin: a rule every benchmark alert matches (with a CEL condition, as real rules
/// have), so each new alert becomes a signal, an impact and part of an incident; no route,
/// so incidents are recorded, not paged (as Alertmanager's null receiver). SQLite store.
/// An incident per service, as Alertmanager's group per service: no regional incident (it
/// takes more services in one region than the bench has).
const TOCSIN_CONFIG: &str = r#"
server: { rate_limit: { per_client: 1000000, burst: 1000000 } }
correlation: { by: [service], window: 15m }
classification: { multi_services: 101 }
"#;

const TOCSIN_RULES: &str = r#"
groups:
  - name: bench
    rules:
      - name: BenchAlert
        match: [ 'source="alert"', 'alertname=~"Bench.*"' ]
        when: "labels.severity == 'critical'"
        impact: { kind: outage, sla_breach: true }
        summary: "{{ labels.alertname }} in {{ labels.service }} {{ labels.region }}"
"#;

/// The batches: `alerts` distinct alerts (100 services, 4 regions, an instance each),
/// firing until a few minutes after the run.
fn batches(alerts: usize) -> Vec<(axum::body::Bytes, usize)> {
    let now = chrono::Utc::now();
    let starts = now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let ends =
        (now + chrono::Duration::minutes(10)).to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let items: Vec<serde_json::Value> = (0..alerts)
        .map(|i| {
            serde_json::json!({
                "labels": {
                    "alertname": format!("Bench{}", i % 5),
                    "service": format!("svc-{}", i % SERVICES),
                    "region": format!("region-{}", i % 4),
                    "instance": format!("10.0.{}.{}:9100", i / 250, i % 250),
                    "severity": "critical",
                },
                "annotations": { "summary": format!("bench alert {i}") },
                "startsAt": starts,
                "endsAt": ends,
            })
        })
        .collect();
    items
        .chunks(BATCH)
        .map(|chunk| {
            (
                axum::body::Bytes::from(serde_json::to_vec(chunk).unwrap()),
                chunk.len(),
            )
        })
        .collect()
}

struct Phase {
    alerts: usize,
    seconds: f64,
    latencies_ms: Vec<f64>,
    errors: usize,
}

impl Phase {
    fn alerts_per_second(&self) -> f64 {
        self.alerts as f64 / self.seconds
    }
    fn p(&self, q: f64) -> f64 {
        percentile(&sorted(&self.latencies_ms), q)
    }
    fn print(&self, name: &str, what: &str) {
        println!(
            "{name} {what}: {} alerts in {:.2} s = {:.0} alerts/s; request latency {}; {} errors",
            self.alerts,
            self.seconds,
            self.alerts_per_second(),
            common::p50_p99_max(&self.latencies_ms),
            self.errors
        );
    }
}

/// 16 connections send `batches` round-robin: once each (`duration` None) or in a loop
/// until `duration` is over. Each connection is a client of its own with one keep-alive
/// connection, so there are exactly 16.
async fn load(
    url: &str,
    batches: &Arc<Vec<(axum::body::Bytes, usize)>>,
    duration: Option<Duration>,
) -> Phase {
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..CONNECTIONS {
        let client = reqwest::Client::builder()
            .no_proxy()
            .http1_only()
            .pool_max_idle_per_host(1)
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        let url = format!("{url}/api/v2/alerts");
        let batches = batches.clone();
        let next = next.clone();
        let stop = stop.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let (mut alerts, mut errors) = (0usize, 0usize);
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if (duration.is_none() && n >= batches.len()) || stop.load(Ordering::Relaxed) {
                    break;
                }
                let body = batches[n % batches.len()].0.clone();
                let sent = Instant::now();
                let answer = client
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await;
                let ok = match answer {
                    Ok(r) => {
                        let ok = r.status().is_success();
                        let _ = r.bytes().await;
                        ok
                    }
                    Err(_) => false,
                };
                latencies.push(sent.elapsed().as_secs_f64() * 1000.0);
                if ok {
                    alerts += batches[n % batches.len()].1;
                } else {
                    errors += 1;
                }
            }
            (latencies, alerts, errors)
        }));
    }
    if let Some(d) = duration {
        tokio::time::sleep(d).await;
        stop.store(true, Ordering::Relaxed);
    }
    let mut phase = Phase {
        alerts: 0,
        seconds: 0.0,
        latencies_ms: Vec::new(),
        errors: 0,
    };
    for t in tasks {
        let (latencies, alerts, errors) = t.await.unwrap();
        phase.latencies_ms.extend(latencies);
        phase.alerts += alerts;
        phase.errors += errors;
    }
    phase.seconds = start.elapsed().as_secs_f64();
    phase
}

struct Result {
    first: Phase,
    /// None with SECONDS=0 (the first pass alone, for profiling it).
    refresh: Option<Phase>,
    rss_mb: f64,
    cpu_s: f64,
    /// Alerts answered 2xx over the whole run (warm-up included).
    accepted: usize,
}

/// A phase in which a request failed, or fewer alerts were taken than were sent, measures
/// something else than ingest: the run ends without figures.
fn require_clean(name: &str, what: &str, phase: &Phase, sent: Option<usize>) {
    if phase.errors > 0 {
        common::invalid_run(
            "ingest",
            format!(
                "{name} {what}: {} of {} requests failed",
                phase.errors,
                phase.latencies_ms.len()
            ),
        );
    }
    if let Some(sent) = sent {
        if phase.alerts != sent {
            common::invalid_run(
                "ingest",
                format!(
                    "{name} {what}: {} alerts taken of {sent} sent",
                    phase.alerts
                ),
            );
        }
    }
}

async fn run(
    name: &str,
    url: &str,
    pid_cpu: impl Fn() -> (f64, f64),
    batches: &Arc<Vec<(axum::body::Bytes, usize)>>,
    seconds: u64,
) -> Result {
    let cpu_before = pid_cpu().1;
    let sent: usize = batches.iter().map(|b| b.1).sum();
    let first = load(url, batches, None).await;
    require_clean(name, "first pass", &first, Some(sent));
    first.print(name, "first pass (new alerts)");
    let mut accepted = first.alerts;
    let refresh = if seconds > 0 {
        // Warm-up: a few seconds of refreshes before the measured ones.
        let warm = load(url, batches, Some(Duration::from_secs(3))).await;
        require_clean(name, "warm-up", &warm, None);
        let refresh = load(url, batches, Some(Duration::from_secs(seconds))).await;
        require_clean(name, "refresh", &refresh, None);
        refresh.print(name, "refresh");
        accepted += warm.alerts + refresh.alerts;
        Some(refresh)
    } else {
        None
    };
    let (rss, cpu) = pid_cpu();
    let result = Result {
        first,
        refresh,
        rss_mb: rss / 1048576.0,
        cpu_s: cpu - cpu_before,
        accepted,
    };
    println!(
        "{name}: resident {:.1} MB at the end; {:.2} CPU s over the run",
        result.rss_mb, result.cpu_s
    );
    result
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

/// One run of Alertmanager on a fresh storage folder; None when it is not installed. It
/// must hold every distinct alert sent, or the run ends without figures.
async fn alertmanager_run(
    batches: &Arc<Vec<(axum::body::Bytes, usize)>>,
    alerts: usize,
    seconds: u64,
) -> Option<Result> {
    let am = Alertmanager::start(AM_CONFIG).await?;
    let pid = am.proc.pid();
    let result = run(
        "alertmanager",
        &am.url,
        || proc_figures(pid),
        batches,
        seconds,
    )
    .await;
    let held = common::listed(&format!("{}/api/v2/alerts", am.url)).await;
    if held != Some(alerts) {
        common::invalid_run(
            "ingest",
            format!("alertmanager holds {held:?} alerts, not the {alerts} distinct ones sent"),
        );
    }
    Some(result)
}

/// One run of tocsin on a fresh store. Every alert answered must have reached the engine
/// (`tocsin_signals_total`), and the first pass must have opened one incident per service
/// (correlation by service): otherwise the run ends without figures.
async fn tocsin_run(
    batches: &Arc<Vec<(axum::body::Bytes, usize)>>,
    alerts: usize,
    seconds: u64,
) -> Result {
    let dir = EngineDir::new(TOCSIN_CONFIG, &[("bench.yaml", TOCSIN_RULES)]);
    let tocsin = dir.start(0);
    if !tocsin.wait_ready().await {
        panic!("tocsin never became ready:\n{}", tocsin.log());
    }
    let pid = tocsin.proc.pid();
    let result = run(
        "tocsin",
        &tocsin.url,
        || proc_figures(pid),
        batches,
        seconds,
    )
    .await;
    let incidents = common::listed(&format!(
        "{}/api/v1/incidents?status=open&limit=10000",
        tocsin.url
    ))
    .await;
    let services = alerts.min(SERVICES);
    if incidents != Some(services) {
        common::invalid_run(
            "ingest",
            format!("tocsin stored {incidents:?} open incidents, not one per service ({services})"),
        );
    }
    let http = http();
    let metrics = match http.get(format!("{}/metrics", tocsin.url)).send().await {
        Ok(r) => r.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    };
    let signals = metrics.lines().find_map(|l| {
        l.strip_prefix("tocsin_signals_total{source=\"alert\"} ")
            .and_then(|v| v.trim().parse::<f64>().ok())
    });
    if signals != Some(result.accepted as f64) {
        common::invalid_run(
            "ingest",
            format!(
                "tocsin counted {signals:?} alert signals, not the {} it answered for",
                result.accepted
            ),
        );
    }
    println!("tocsin: {services} open incidents in the store, one per service");
    result
}

#[tokio::main]
async fn main() {
    if !common::invoked_by_cargo_bench("ingest") {
        return;
    }
    let seconds = env_or("SECONDS", 20);
    let alerts = env_or("ALERTS", 10_000) as usize;
    let rounds = common::rounds(3);
    let batches = Arc::new(batches(alerts));
    let phases = match seconds {
        0 => "the first pass alone".to_string(),
        _ => format!("first pass then {seconds} s of refreshes (after 3 s warm-up)"),
    };
    println!(
        "ingest: {alerts} distinct alerts in {} batches of {BATCH}, {CONNECTIONS} connections, {phases}; {}, the two systems taking turns going first",
        batches.len(),
        common::rounds_of(rounds)
    );
    // PEER=0 runs tocsin alone (for profiling it).
    let peer = env_or("PEER", 1) == 1 && common::installed(alertmanager::PROGRAM);
    if peer {
        println!("peer: {}", alertmanager::version());
    } else {
        println!("alertmanager: not run (PEER=0 or not installed); tocsin alone");
    }

    let (mut t, mut a) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        common::announce_round(round, rounds, peer.then_some("alertmanager"));
        let peer_first = peer && !common::tocsin_first(round);
        if peer_first {
            a.push(
                alertmanager_run(&batches, alerts, seconds)
                    .await
                    .expect("alertmanager starts"),
            );
        }
        t.push(tocsin_run(&batches, alerts, seconds).await);
        if peer && !peer_first {
            a.push(
                alertmanager_run(&batches, alerts, seconds)
                    .await
                    .expect("alertmanager starts"),
            );
        }
    }

    let figure = |results: &[Result], f: &dyn Fn(&Result) -> Option<f64>| -> Vec<f64> {
        results.iter().filter_map(f).collect()
    };
    let compare = |label: &str, unit: &str, f: &dyn Fn(&Result) -> Option<f64>| {
        print_compared(label, unit, &figure(&t, f), "alertmanager", &figure(&a, f));
    };
    println!("--- over {}", common::rounds_of(rounds));
    compare("first pass alerts/s", "alerts/s", &|r| {
        Some(r.first.alerts_per_second())
    });
    compare("first pass p99 latency", "ms", &|r| Some(r.first.p(99.0)));
    if seconds > 0 {
        compare("refresh alerts/s", "alerts/s", &|r| {
            r.refresh.as_ref().map(Phase::alerts_per_second)
        });
        compare("refresh p99 latency", "ms", &|r| {
            r.refresh.as_ref().map(|p| p.p(99.0))
        });
    }
    compare("resident memory", "MB", &|r| Some(r.rss_mb));
    compare("CPU seconds", "s", &|r| Some(r.cpu_s));
}
fn proc_figures(pid: u32) -> (f64, f64) {
    (
        common::process_rss_bytes(pid).unwrap_or(0) as f64,
        common::process_cpu_seconds(pid).unwrap_or(f64::NAN),
    )
}
