//! Timers benchmark: 100,000 open incidents, each with an escalation level pending, held by
//! the real `tocsin` binary. Prints its resident memory with all of them pending, then how
//! late their pages arrive when they fall due.
//!
//! How: alerts with distinct `service` labels are pushed through `POST /api/v2/alerts` at
//! `RATE` a second (one incident each). The only escalation level is `after: D`, with D
//! longer than the whole push, so every incident is open with its page pending once the push
//! is done; RSS is read then. The pages then fall due at the pace the incidents were opened
//! (spread over the same window) and go to a webhook receiver in this process.
//!
//! Lateness = arrival at the receiver − due time (`opened_at` in the payload + D): it holds
//! the timer firing, the page's store write (outbox, SQLite, fsync), the delivery worker
//! and the HTTP POST to 127.0.0.1.
//!
//! Run: `cargo bench --bench timers` (env INCIDENTS, RATE to change the load).

mod common;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use chrono::{DateTime, Utc};
use common::{env_or, percentile, sorted, EngineDir};
use serde_json::{json, Value};

/// What the receiver saw: lateness of each page (ms) and the incidents paged.
#[derive(Default)]
struct Seen {
    lateness_ms: Vec<f64>,
    incidents: HashSet<i64>,
    unexpected: u64,
}

struct Receiver {
    seen: Mutex<Seen>,
    after: chrono::Duration,
}

async fn hook(State(r): State<Arc<Receiver>>, body: axum::body::Bytes) -> &'static str {
    let arrived = Utc::now();
    let page: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let opened = page["incident"]["opened_at"]
        .as_str()
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok());
    let id = page["incident"]["id"].as_i64();
    let mut seen = r.seen.lock().unwrap();
    match (opened, id, page["event"].as_str()) {
        (Some(opened), Some(id), Some("triggered")) => {
            let due = opened.with_timezone(&Utc) + r.after;
            let late = (arrived - due).num_microseconds().unwrap_or(i64::MAX) as f64 / 1000.0;
            seen.lateness_ms.push(late);
            seen.incidents.insert(id);
        }
        _ => seen.unexpected += 1,
    }
    "ok"
}

async fn start_receiver(after: chrono::Duration) -> (Arc<Receiver>, u16) {
    let receiver = Arc::new(Receiver {
        seen: Mutex::new(Seen::default()),
        after,
    });
    let app = axum::Router::new()
        .route("/hook", axum::routing::post(hook))
        .with_state(Arc::clone(&receiver));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (receiver, port)
}

/// Sum of a metric's samples in a Prometheus text exposition.
fn metric_sum(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| {
            l.starts_with(name) && matches!(l.as_bytes().get(name.len()), Some(b' ' | b'{'))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// VmHWM: the highest resident memory of process `pid` so far, in bytes.
fn peak_rss_bytes(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            let line = s.lines().find(|l| l.starts_with("VmHWM:"))?.to_string();
            line.split_whitespace().nth(1)?.parse::<u64>().ok()
        })
        .map_or(0, |kb| kb * 1024)
}

const MB: f64 = 1024.0 * 1024.0;

#[tokio::main]
async fn main() {
    if !common::invoked_by_cargo_bench("timers") {
        return;
    }
    let incidents = env_or("INCIDENTS", 100_000);
    // 500 a second: what the engine took on this machine beside other work (the push must
    // end before the first page falls due).
    let rate = env_or("RATE", 500).max(100);
    let push_seconds = incidents.div_ceil(rate);
    // Every incident is opened (and RSS read) before the first page falls due.
    let after_s = push_seconds * 3 / 2 + 20;
    let after = chrono::Duration::seconds(after_s as i64);
    let (receiver, hook_port) = start_receiver(after).await;

    let config = format!(
        r#"
server: {{ rate_limit: {{ per_client: 1000000, burst: 1000000 }} }}
correlation: {{ by: [service], window: 15m }}
escalation_policies:
  - name: bench
    levels:
      - {{ after: {after_s}s, notify: [ "webhook:bench" ] }}
routes:
  - {{ match: [], policy: bench }}
notifiers:
  webhooks:
    - {{ name: bench, url: "http://127.0.0.1:{hook_port}/hook", timeout: 10s }}
"#
    );
    let rules = r#"
groups:
  - name: bench
    rules:
      - name: BenchAlert
        match: [ 'source="alert"' ]
        impact: { kind: outage, sla_breach: true }
"#;
    let dir = EngineDir::new(&config, &[("bench.yaml", rules)]);
    let engine = dir.start(0);
    assert!(
        engine.wait_ready().await,
        "engine not ready: {}",
        engine.log()
    );
    let rss_idle = engine.proc.rss_bytes();
    let http = reqwest::Client::builder().no_proxy().build().unwrap();

    // Push: RATE alerts a second, in 100 posts a second.
    let per_post = (rate / 100).max(1);
    let ends_at = (Utc::now() + chrono::Duration::hours(2)).to_rfc3339();
    let push_started = tokio::time::Instant::now();
    let mut ticker = tokio::time::interval(Duration::from_millis(10));
    let mut next = 0u64;
    let mut refused = 0u64;
    while next < incidents {
        ticker.tick().await;
        let batch: Vec<Value> = (next..(next + per_post).min(incidents))
            .map(|i| {
                json!({
                    "labels": { "alertname": "Bench", "service": format!("svc-{i}"), "severity": "critical" },
                    "annotations": { "summary": format!("bench incident {i}") },
                    "endsAt": ends_at,
                })
            })
            .collect();
        next += batch.len() as u64;
        let response = http
            .post(format!("{}/api/v2/alerts", engine.url))
            .json(&batch)
            .send()
            .await;
        if !response.is_ok_and(|r| r.status().is_success()) {
            refused += batch.len() as u64;
        }
    }
    let push_wall = push_started.elapsed().as_secs_f64();
    let metrics = http
        .get(format!("{}/metrics", engine.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let open = metric_sum(&metrics, "tocsin_incidents_open");
    // A moment for the last batch's allocations to settle, then the figure with all pending.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_pending = engine.proc.rss_bytes();
    let paged_early = receiver.seen.lock().unwrap().incidents.len();
    let cpu_push = engine.proc.cpu_seconds();

    // The pages fall due over the push window, D after their incidents opened.
    let deadline = push_started + Duration::from_secs(after_s + push_seconds * 2 + 60);
    loop {
        let got = receiver.seen.lock().unwrap().incidents.len() as u64;
        if got >= incidents || tokio::time::Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let rss_end = engine.proc.rss_bytes();
    let rss_peak = peak_rss_bytes(engine.proc.pid());
    let cpu_total = engine.proc.cpu_seconds();
    let seen = receiver.seen.lock().unwrap();
    let late = sorted(&seen.lateness_ms);

    println!(
        "timers: {incidents} incidents pushed at {rate}/s, one escalation level after {after_s}s each, webhook to 127.0.0.1"
    );
    println!(
        "push: {push_wall:.1} s, {refused} alerts refused; open incidents after the push: {open:.0}; paged before the push ended: {paged_early}"
    );
    println!(
        "rss: idle {:.1} MB, all {} pending {:.1} MB, after the pages {:.1} MB, peak {:.1} MB",
        rss_idle as f64 / MB,
        incidents,
        rss_pending as f64 / MB,
        rss_end as f64 / MB,
        rss_peak as f64 / MB
    );
    println!(
        "pages: {} received of {} ({} duplicates, {} unexpected)",
        seen.incidents.len(),
        incidents,
        seen.lateness_ms.len() - seen.incidents.len(),
        seen.unexpected
    );
    println!(
        "lateness (arrival - due; timer + outbox write + delivery): p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms, min {:.3} ms",
        percentile(&late, 50.0),
        percentile(&late, 99.0),
        late.last().copied().unwrap_or(f64::NAN),
        late.first().copied().unwrap_or(f64::NAN)
    );
    println!(
        "engine cpu: {cpu_push:.1} s through the push, {cpu_total:.1} s in all; targets: rss < 200 MB, p99 < 50 ms"
    );
}
