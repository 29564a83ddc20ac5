//! Restart benchmark: a store holding 10,000 open incidents (each with its impact, rule
//! state and a pending escalation) and 100,000 timeline rows; the time from spawning the
//! `tocsin` binary on it to `/-/ready` answering 200, over several starts.
//!
//! The store is built by the engine's own code, in this process: the core takes one pushed
//! alert per incident and then notes on each incident, and the store writes its changes in
//! batches, as the engine loop would. So the rows are exactly what a running engine writes.
//!
//! Run: `cargo bench --bench restart` (env INCIDENTS, TIMELINE, RUNS).

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use common::{env_or, percentile, sorted, EngineDir};
use tocsin::engine::{Core, Input, Reply};
use tocsin::metrics::Metrics;
use tocsin::signal::{Signal, SourceKind};
use tocsin::store::Store;

/// Build the store through the core: `incidents` alerts, then notes until the timeline
/// holds `timeline` rows. Returns (incidents, timeline rows) as counted in the store.
async fn seed(dir: &EngineDir, incidents: u64, timeline: u64) -> (i64, i64) {
    let config = tocsin::config::load(&dir.path().join("config.yaml")).expect("config");
    let url = format!("sqlite://{}/data/tocsin.db", dir.path().display());
    let store = Store::open(&url).await.expect("store");
    let ack_keys = tocsin::engine::secrets::AckKeys::new(store.clone());
    let setup = tocsin::engine::Setup::build(config, &ack_keys)
        .await
        .expect("setup");
    let mut core = Core::new(setup, Arc::new(Metrics::new()), Utc::now());
    let mut ids = Vec::with_capacity(incidents as usize);
    for chunk in (0..incidents).collect::<Vec<_>>().chunks(1000) {
        let now = Utc::now();
        let signals = chunk
            .iter()
            .map(|i| {
                let labels: BTreeMap<String, String> = [
                    ("alertname", "Bench".to_string()),
                    ("service", format!("svc-{i}")),
                    ("severity", "critical".to_string()),
                ]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect::<std::collections::BTreeMap<_, _>>();
                let mut signal = Signal::new(SourceKind::Alert, labels, now);
                std::sync::Arc::make_mut(&mut signal.annotations)
                    .insert("summary".into(), format!("bench incident {i}"));
                signal
            })
            .collect();
        match core.handle(Input::Signals(signals), now) {
            Reply::Signals(joined) => ids.extend(joined.into_iter().flatten()),
            other => panic!("signals: {other:?}"),
        }
        store.apply(&core.take_changes()).await.expect("write");
    }
    let count = |sql: &'static str| {
        let store = store.clone();
        async move {
            let row: (i64,) = sqlx::query_as(sql)
                .fetch_one(store.pool())
                .await
                .expect("count");
            row.0
        }
    };
    let mut rows = count("SELECT COUNT(*) FROM timeline").await;
    let mut n = 0usize;
    while (rows as u64) < timeline && !ids.is_empty() {
        let now = Utc::now();
        let todo = (timeline - rows as u64).min(5000) as usize;
        for _ in 0..todo {
            let id = ids[n % ids.len()];
            n += 1;
            core.handle(
                Input::Note {
                    incident_id: id,
                    by: "bench".into(),
                    text: format!("note {n}: checked the dashboards, still failing"),
                },
                now,
            );
        }
        store.apply(&core.take_changes()).await.expect("write");
        rows = count("SELECT COUNT(*) FROM timeline").await;
    }
    let open = count("SELECT COUNT(*) FROM incidents WHERE status <> 'resolved'").await;
    store.close().await;
    (open, rows)
}

/// Spawn the engine and time it to the first 200 from `/-/ready` (polled every 2 ms).
async fn time_to_ready(dir: &EngineDir) -> f64 {
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let started = tokio::time::Instant::now();
    let engine = dir.start(0);
    let url = format!("{}/-/ready", engine.url);
    let deadline = started + Duration::from_secs(60);
    loop {
        if let Ok(r) = http.get(&url).send().await {
            if r.status().is_success() {
                break;
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not ready within 60 s: {}",
            engine.log()
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    started.elapsed().as_secs_f64() * 1000.0
    // The engine is stopped (SIGTERM) when dropped here.
}

#[tokio::main]
async fn main() {
    if !common::invoked_by_cargo_bench("restart") {
        return;
    }
    let incidents = env_or("INCIDENTS", 10_000);
    let timeline = env_or("TIMELINE", 100_000);
    let runs = env_or("RUNS", 5).max(1);
    let config = r#"
server: { rate_limit: { per_client: 1000000, burst: 1000000 } }
correlation: { by: [service], window: 15m }
escalation_policies:
  - name: bench
    levels:
      - { after: 2h, notify: [ "webhook:bench" ] }
routes:
  - { match: [], policy: bench }
notifiers:
  webhooks:
    - { name: bench, url: "http://127.0.0.1:9/hook", timeout: 10s }
"#;
    let rules = r#"
groups:
  - name: bench
    rules:
      - name: BenchAlert
        match: [ 'source="alert"' ]
        impact: { kind: outage, sla_breach: true }
"#;
    // The same config on an empty store: what starting costs before any state.
    let empty = EngineDir::new(config, &[("bench.yaml", rules)]);
    let mut empty_ms = Vec::new();
    for _ in 0..runs {
        empty_ms.push(time_to_ready(&empty).await);
    }

    let dir = EngineDir::new(config, &[("bench.yaml", rules)]);
    let seeding = tokio::time::Instant::now();
    let (open, rows) = seed(&dir, incidents, timeline).await;
    let seed_s = seeding.elapsed().as_secs_f64();
    let db_bytes = std::fs::metadata(dir.path().join("data/tocsin.db"))
        .map(|m| m.len())
        .unwrap_or(0);
    let mut full_ms = Vec::new();
    for _ in 0..runs {
        full_ms.push(time_to_ready(&dir).await);
    }

    let empty_ms = sorted(&empty_ms);
    let full_ms = sorted(&full_ms);
    println!(
        "restart: store with {open} open incidents and {rows} timeline rows ({:.1} MB SQLite, built in {seed_s:.1} s), {runs} starts each",
        db_bytes as f64 / 1024.0 / 1024.0
    );
    println!(
        "spawn to /-/ready, empty store: p50 {:.1} ms, max {:.1} ms ({:?})",
        percentile(&empty_ms, 50.0),
        empty_ms.last().unwrap(),
        empty_ms.iter().map(|v| v.round()).collect::<Vec<_>>()
    );
    println!(
        "spawn to /-/ready, full store:  p50 {:.1} ms, max {:.1} ms ({:?}); target < 1000 ms",
        percentile(&full_ms, 50.0),
        full_ms.last().unwrap(),
        full_ms.iter().map(|v| v.round()).collect::<Vec<_>>()
    );
}
