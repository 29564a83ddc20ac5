//! Signal-to-page benchmark: from the start of an alert's `POST /api/v2/alerts` to the
//! webhook receiver holding the page, for 1,000 alerts that each open an incident of their
//! own. Alertmanager (its route with `group_wait: 0s` and `group_by: ['...']`, so every
//! alert is a group and a notification of its own) and tocsin (a rule without `for:`, a
//! route and a policy whose level 0 notifies a webhook) in each round, with the same
//! sender and the same receiver: an axum server in this process that timestamps each page
//! on the same clock the sender used.
//!
//! tocsin writes every page to its store before it sends it: the batch that makes it goes
//! into the SQLite store's redo log (one write), then the page goes while SQLite commits the
//! batch and the WAL is fsynced (see `store::sqlite::redo_log`, `store::sqlite::writer`);
//! Alertmanager keeps its notification log in memory and snapshots it.
//!
//! After each system's pages, the same number of `GET /-/healthy` at the same pace: the
//! round trip of a request that does nothing, the HTTP stack's own floor (and tail) on the
//! machine, which a page's POST pays on its way in before any of the system's work.
//!
//! ROUNDS rounds (default 5), the two systems taking turns going first, each run on a fresh
//! process and store; then the median and spread over the rounds of each figure, of each
//! system and of the ratio tocsin/Alertmanager. A run with a failed post or a page that
//! never arrived, or whose system does not hold a record per alert sent, ends the benchmark
//! without figures.
//!
//! Run: `cargo bench --bench page_latency` (env ALERTS, default 1000; INTERVAL_MS, the gap
//! between two alerts, default 5; ROUNDS; PEER=0 for tocsin alone).

mod alertmanager;
mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use alertmanager::Alertmanager;
use axum::extract::State;
use axum::routing::post;
use common::{env_or, percentile, print_compared, sorted, EngineDir};
use serde_json::Value;
use tokio::time::Instant;

/// Arrival of the first page of each alert number, per system.
#[derive(Clone, Default)]
struct Arrivals {
    am: Arc<Mutex<HashMap<u64, Instant>>>,
    tocsin: Arc<Mutex<HashMap<u64, Instant>>>,
}

fn note(map: &Mutex<HashMap<u64, Instant>>, n: Option<u64>, at: Instant) {
    if let Some(n) = n {
        map.lock().unwrap().entry(n).or_insert(at);
    }
}

fn label_n(labels: &Value) -> Option<u64> {
    labels.get("n")?.as_str()?.parse().ok()
}

async fn am_hook(State(a): State<Arrivals>, body: axum::body::Bytes) -> &'static str {
    let at = Instant::now();
    if let Ok(payload) = serde_json::from_slice::<Value>(&body) {
        for alert in payload["alerts"].as_array().into_iter().flatten() {
            note(&a.am, label_n(&alert["labels"]), at);
        }
    }
    "ok"
}

async fn tocsin_hook(State(a): State<Arrivals>, body: axum::body::Bytes) -> &'static str {
    let at = Instant::now();
    if let Ok(payload) = serde_json::from_slice::<Value>(&body) {
        if payload["event"] == "triggered" {
            note(&a.tocsin, label_n(&payload["incident"]["labels"]), at);
        }
    }
    "ok"
}

async fn receiver(arrivals: Arrivals) -> u16 {
    let app = axum::Router::new()
        .route("/am", post(am_hook))
        .route("/tocsin", post(tocsin_hook))
        .with_state(arrivals);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    port
}

fn am_config(port: u16) -> String {
    format!(
        r#"
route:
  receiver: hook
  group_by: ['...']
  group_wait: 0s
  group_interval: 5m
  repeat_interval: 4h
receivers:
  - name: hook
    webhook_configs:
      - url: "http://127.0.0.1:{port}/am"
        send_resolved: false
"#
    )
}

/// Correlation by `instance` only, and every alert has an instance of its own: 1,000
/// incidents. Level 0 of the one policy pages the receiver at once.
fn tocsin_config(port: u16) -> String {
    format!(
        r#"
server: {{ rate_limit: {{ per_client: 1000000, burst: 1000000 }} }}
correlation: {{ by: [instance], window: 15m }}
escalation_policies:
  - name: bench
    levels:
      - {{ after: 0s, notify: [ "webhook:receiver" ] }}
routes:
  - {{ match: [ 'alertname="PageBench"' ], policy: bench }}
notifiers:
  webhooks:
    - {{ name: receiver, url: "http://127.0.0.1:{port}/tocsin", timeout: 5s }}
"#
    )
}

const TOCSIN_RULES: &str = r#"
groups:
  - name: bench
    rules:
      - name: PageBench
        match: [ 'source="alert"', 'alertname="PageBench"' ]
        impact: { kind: outage, sla_breach: true }
"#;

/// One alert per body, numbered `n`, firing for ten minutes.
fn body(n: u64) -> axum::body::Bytes {
    let now = chrono::Utc::now();
    let ends =
        (now + chrono::Duration::minutes(10)).to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let alert = serde_json::json!([{
        "labels": {
            "alertname": "PageBench",
            "instance": format!("host-{n}:9100"),
            "service": format!("svc-{n}"),
            "severity": "critical",
            "n": n.to_string(),
        },
        "annotations": { "summary": format!("page bench alert {n}") },
        "endsAt": ends,
    }]);
    axum::body::Bytes::from(serde_json::to_vec(&alert).unwrap())
}

struct Figures {
    latencies_ms: Vec<f64>,
    missing: usize,
    post_errors: usize,
}

impl Figures {
    fn p(&self, q: f64) -> f64 {
        percentile(&sorted(&self.latencies_ms), q)
    }
    fn print(&self, name: &str) {
        println!(
            "{name}: {} pages, {} missing, {} failed posts; signal to page {}",
            self.latencies_ms.len(),
            self.missing,
            self.post_errors,
            common::p50_p99_max(&self.latencies_ms)
        );
    }
}

/// Send the alerts one every `interval` (each POST on its own task, so a slow answer does
/// not delay the next alert), then wait (at most 15 s) for every page.
async fn run(
    url: &str,
    bodies: &[axum::body::Bytes],
    interval: Duration,
    arrivals: &Mutex<HashMap<u64, Instant>>,
) -> Figures {
    arrivals.lock().unwrap().clear();
    let client = sender();
    let url = format!("{url}/api/v2/alerts");
    let mut sent = Vec::with_capacity(bodies.len());
    let mut posts = Vec::with_capacity(bodies.len());
    let mut tick = pace(interval);
    for body in bodies {
        tick.tick().await;
        let request = client
            .post(&url)
            .header("content-type", "application/json")
            .body(body.clone());
        sent.push(Instant::now());
        posts.push(tokio::spawn(async move {
            matches!(request.send().await, Ok(r) if r.status().is_success())
        }));
    }
    let mut post_errors = 0;
    for p in posts {
        if !p.await.unwrap_or(false) {
            post_errors += 1;
        }
    }
    let deadline = Instant::now() + Duration::from_secs(15);
    while arrivals.lock().unwrap().len() < bodies.len() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let got = arrivals.lock().unwrap().clone();
    let latencies_ms: Vec<f64> = sent
        .iter()
        .enumerate()
        .filter_map(|(n, at)| {
            got.get(&(n as u64))
                .map(|arrived| arrived.duration_since(*at).as_secs_f64() * 1000.0)
        })
        .collect();
    Figures {
        missing: bodies.len() - latencies_ms.len(),
        latencies_ms,
        post_errors,
    }
}

/// The client both the alerts and the floor's requests go out on.
fn sender() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// One tick every `interval`; a late tick delays the next rather than bunching them up.
fn pace(interval: Duration) -> tokio::time::Interval {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick
}

/// The HTTP floor under a page: `GET /-/healthy` (a handler that does nothing) sent the way
/// the alerts are, one every `interval`, timed from send to the answer's last byte. Both
/// systems answer it without touching their state, so what it shows is the server's HTTP
/// stack waking up on this machine after each idle gap, which every page pays on its way
/// in (see BENCHMARKS.md, "Signal to page").
async fn floor(url: &str, requests: usize, interval: Duration) -> Vec<f64> {
    let client = sender();
    let url = format!("{url}/-/healthy");
    let mut tick = pace(interval);
    let mut round_trips = Vec::with_capacity(requests);
    for _ in 0..requests {
        tick.tick().await;
        let sent = Instant::now();
        if let Ok(answer) = client.get(&url).send().await {
            if answer.status().is_success() && answer.bytes().await.is_ok() {
                round_trips.push(sent.elapsed().as_secs_f64() * 1000.0);
            }
        }
    }
    round_trips
}

fn print_floor(name: &str, round_trips: &[f64]) {
    let sorted = sorted(round_trips);
    println!(
        "{name}: GET /-/healthy round trip ({} answered) p50 {:.2} ms, p99 {:.2} ms",
        round_trips.len(),
        percentile(&sorted, 50.0),
        percentile(&sorted, 99.0)
    );
}

/// A run whose posts failed or whose pages did not all arrive measures something else than
/// signal to page; nor does one whose system does not hold an alert (Alertmanager) or an
/// incident (tocsin) per alert sent. Such a run ends the benchmark without figures.
fn require_clean(name: &str, figures: &Figures, stored: Option<usize>, alerts: usize) {
    if figures.post_errors > 0 || figures.missing > 0 {
        common::invalid_run(
            "page_latency",
            format!(
                "{name}: {} of {alerts} posts failed, {} pages never arrived",
                figures.post_errors, figures.missing
            ),
        );
    }
    if stored != Some(alerts) {
        common::invalid_run(
            "page_latency",
            format!("{name} holds {stored:?} of the {alerts} alerts' records"),
        );
    }
}

/// Signal to page and the HTTP floor of one system in one round.
struct RoundFigures {
    pages: Figures,
    floor: Vec<f64>,
}

async fn alertmanager_round(
    port: u16,
    bodies: &[axum::body::Bytes],
    interval: Duration,
    arrivals: &Arrivals,
) -> RoundFigures {
    let am = Alertmanager::start(&am_config(port))
        .await
        .expect("alertmanager starts");
    let pages = run(&am.url, bodies, interval, &arrivals.am).await;
    let stored = common::listed(&format!("{}/api/v2/alerts", am.url)).await;
    require_clean("alertmanager", &pages, stored, bodies.len());
    pages.print("alertmanager");
    let floor = floor(&am.url, bodies.len(), interval).await;
    print_floor("alertmanager", &floor);
    RoundFigures { pages, floor }
}

async fn tocsin_round(
    port: u16,
    bodies: &[axum::body::Bytes],
    interval: Duration,
    arrivals: &Arrivals,
) -> RoundFigures {
    let dir = EngineDir::new(&tocsin_config(port), &[("bench.yaml", TOCSIN_RULES)]);
    let tocsin = dir.start(0);
    if !tocsin.wait_ready().await {
        panic!("tocsin never became ready:\n{}", tocsin.log());
    }
    let pages = run(&tocsin.url, bodies, interval, &arrivals.tocsin).await;
    if pages.missing > 0 {
        eprintln!(
            "tocsin log:\n{}",
            tocsin.log().lines().take(20).collect::<Vec<_>>().join("\n")
        );
    }
    let stored = common::listed(&format!("{}/api/v1/incidents?limit=10000", tocsin.url)).await;
    require_clean("tocsin", &pages, stored, bodies.len());
    pages.print("tocsin (page in the store before it is sent)");
    let floor = floor(&tocsin.url, bodies.len(), interval).await;
    print_floor("tocsin", &floor);
    RoundFigures { pages, floor }
}

#[tokio::main]
async fn main() {
    if !common::invoked_by_cargo_bench("page_latency") {
        return;
    }
    let alerts = env_or("ALERTS", 1000);
    let interval = Duration::from_millis(env_or("INTERVAL_MS", 5));
    let rounds = common::rounds(5);
    let bodies: Vec<_> = (0..alerts).map(body).collect();
    let arrivals = Arrivals::default();
    let port = receiver(arrivals.clone()).await;
    println!(
        "page_latency: {alerts} alerts, one incident each, one POST every {} ms; latency = receiver arrival - POST start; {}, the two systems taking turns going first",
        interval.as_millis(),
        common::rounds_of(rounds)
    );
    let peer = env_or("PEER", 1) == 1 && common::installed(alertmanager::PROGRAM);
    if peer {
        println!(
            "peer: {} (group_wait: 0s, group_by: ['...'])",
            alertmanager::version()
        );
    } else {
        println!("alertmanager: not run (PEER=0 or not installed); tocsin alone");
    }

    let (mut t, mut a) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        common::announce_round(round, rounds, peer.then_some("alertmanager"));
        let peer_first = peer && !common::tocsin_first(round);
        if peer_first {
            a.push(alertmanager_round(port, &bodies, interval, &arrivals).await);
        }
        t.push(tocsin_round(port, &bodies, interval, &arrivals).await);
        if peer && !peer_first {
            a.push(alertmanager_round(port, &bodies, interval, &arrivals).await);
        }
    }

    println!("--- over {}", common::rounds_of(rounds));
    let figure = |runs: &[RoundFigures], f: &dyn Fn(&RoundFigures) -> f64| -> Vec<f64> {
        runs.iter().map(f).collect()
    };
    let compare = |label: &str, f: &dyn Fn(&RoundFigures) -> f64| {
        print_compared(label, "ms", &figure(&t, f), "alertmanager", &figure(&a, f));
    };
    compare("signal to page p50", &|r| r.pages.p(50.0));
    compare("signal to page p99", &|r| r.pages.p(99.0));
    compare("signal to page max", &|r| r.pages.p(100.0));
    compare("HTTP floor p99", &|r| percentile(&sorted(&r.floor), 99.0));
}
