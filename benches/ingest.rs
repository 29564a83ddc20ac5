//! Ingest benchmark: Alertmanager and tocsin, one after the other in the same run, take the
//! same pre-serialized `POST /api/v2/alerts` batches (10,000 distinct alerts, 256 a batch)
//! from the same load generator (16 keep-alive connections, each sending its next batch as
//! soon as the last one is answered).
//!
//! Two phases per system: the first pass (every alert new: tocsin opens impacts and
//! incidents and commits them before it answers), then the alerts refreshed in a loop for
//! SECONDS (the steady state of a Prometheus re-sending what fires). Prints alerts/s,
//! request latency p50/p99/max and resident memory, then the ratios tocsin/Alertmanager.
//!
//! Run: `cargo bench --bench ingest` (env SECONDS, default 20, 0 for the first pass alone;
//! ALERTS, default 10000).

mod alertmanager;
mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use alertmanager::Alertmanager;
use common::{env_or, percentile, print_ratio, sorted, EngineDir};
use tokio::time::Instant;

const BATCH: usize = 256;
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
const TOCSIN_CONFIG: &str = r#"
server: { rate_limit: { per_client: 1000000, burst: 1000000 } }
correlation: { by: [service], window: 15m }
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
                    "service": format!("svc-{}", i % 100),
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
            "{name} {what}: {} alerts in {:.2} s = {:.0} alerts/s; request latency p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms; {} errors",
            self.alerts,
            self.seconds,
            self.alerts_per_second(),
            self.p(50.0),
            self.p(99.0),
            self.p(100.0),
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
}

async fn run(
    name: &str,
    url: &str,
    pid_cpu: impl Fn() -> (f64, f64),
    batches: &Arc<Vec<(axum::body::Bytes, usize)>>,
    seconds: u64,
) -> Result {
    let cpu_before = pid_cpu().1;
    let first = load(url, batches, None).await;
    first.print(name, "first pass (new alerts)");
    let refresh = if seconds > 0 {
        // Warm-up: a few seconds of refreshes before the measured ones.
        let _ = load(url, batches, Some(Duration::from_secs(3))).await;
        let refresh = load(url, batches, Some(Duration::from_secs(seconds))).await;
        refresh.print(name, "refresh");
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
    };
    println!(
        "{name}: resident {:.1} MB at the end; {:.2} CPU s over the run",
        result.rss_mb, result.cpu_s
    );
    result
}

#[tokio::main]
async fn main() {
    if !common::invoked_by_cargo_bench("ingest") {
        return;
    }
    let seconds = env_or("SECONDS", 20);
    let alerts = env_or("ALERTS", 10_000) as usize;
    let batches = Arc::new(batches(alerts));
    let phases = match seconds {
        0 => "the first pass alone".to_string(),
        _ => format!("first pass then {seconds} s of refreshes (after 3 s warm-up)"),
    };
    println!(
        "ingest: {alerts} distinct alerts in {} batches of {BATCH}, {CONNECTIONS} connections, {phases}",
        batches.len()
    );

    // PEER=0 runs tocsin alone (for profiling it).
    let am = if env_or("PEER", 1) == 1 {
        Alertmanager::start(AM_CONFIG).await
    } else {
        None
    };
    let am_result = match &am {
        Some(am) => {
            println!("peer: {}", am.version);
            let pid = am.proc.pid();
            Some(
                run(
                    "alertmanager",
                    &am.url,
                    || proc_figures(pid),
                    &batches,
                    seconds,
                )
                .await,
            )
        }
        None => {
            println!("alertmanager: not installed or not ready; tocsin alone");
            None
        }
    };
    drop(am);

    let dir = EngineDir::new(TOCSIN_CONFIG, &[("bench.yaml", TOCSIN_RULES)]);
    let tocsin = dir.start(0);
    if !tocsin.wait_ready().await {
        panic!("tocsin never became ready:\n{}", tocsin.log());
    }
    let pid = tocsin.proc.pid();
    let t = run(
        "tocsin",
        &tocsin.url,
        || proc_figures(pid),
        &batches,
        seconds,
    )
    .await;
    let incidents = reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .get(format!("{}/api/v1/incidents?limit=1000", tocsin.url))
        .send()
        .await
        .ok();
    if let Some(r) = incidents {
        let list: serde_json::Value = r.json().await.unwrap_or_default();
        println!(
            "tocsin: {} open incidents in the store",
            list.as_array().map_or(0, |a| a.len())
        );
    }

    if let Some(a) = am_result {
        print_ratio(
            "first pass alerts/s",
            "alerts/s",
            t.first.alerts_per_second(),
            "alertmanager",
            a.first.alerts_per_second(),
        );
        if let (Some(t), Some(a)) = (&t.refresh, &a.refresh) {
            print_ratio(
                "refresh alerts/s",
                "alerts/s",
                t.alerts_per_second(),
                "alertmanager",
                a.alerts_per_second(),
            );
            print_ratio(
                "refresh p99 latency",
                "ms",
                t.p(99.0),
                "alertmanager",
                a.p(99.0),
            );
        }
        print_ratio(
            "first pass p99 latency",
            "ms",
            t.first.p(99.0),
            "alertmanager",
            a.first.p(99.0),
        );
        print_ratio("resident memory", "MB", t.rss_mb, "alertmanager", a.rss_mb);
        print_ratio("CPU seconds", "s", t.cpu_s, "alertmanager", a.cpu_s);
    }
    drop(tocsin);
}

fn proc_figures(pid: u32) -> (f64, f64) {
    (
        common::process_rss_bytes(pid).unwrap_or(0) as f64,
        common::process_cpu_seconds(pid).unwrap_or(f64::NAN),
    )
}
