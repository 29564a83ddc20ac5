//! Cluster benchmark: three tocsin engines on one PostgreSQL beside Alertmanager.
//!
//! It starts a throwaway PostgreSQL of its own (`scripts/throwaway-postgres.sh`, stopped at
//! the end, a failed run included), and in each round, each tocsin run on a fresh database
//! with three fresh engines (`e1`, `e2`, `e3`, lease LEASE; the first started leads):
//!
//! - **ingest**: the ingest benchmark's new-alert pass (ALERTS distinct alerts in batches of
//!   256, CONNECTIONS keep-alive connections, 100 services), tocsin's batches sent
//!   round-robin to the three engines (the followers hand them to the leader, over HTTP or
//!   with INBOX=1 through the store's inbox, and answer once the leader has committed
//!   them), Alertmanager's to its one process. alerts/s of each, and the ratio.
//! - **signal to page**: the page benchmark's alerts (each its own incident, one POST every
//!   INTERVAL_MS, PAGES of them), tocsin's posted round-robin to the three engines, to a
//!   webhook receiver in this process. p50 and p99 of each, and the ratio.
//! - **the commit's floor** (with signal to page): the same count of bare transactions
//!   (`BEGIN`, one small `INSERT`, `COMMIT`) at the same pace on one connection to the same
//!   PostgreSQL, nothing else running: what any engine that stores a page before sending it
//!   waits at least. p50 and p99, and the p99 against Alertmanager's page p99.
//! - **takeover** (tocsin alone): a steady load of new alerts (one every 50 ms, each its own
//!   incident whose level 0 pages the receiver), a refused or failed post tried again on the
//!   next engine; KILLS times, the current leader (its `/-/ready` says so) is SIGKILLed, and
//!   the time from the kill to the receiver getting the first page of an alert posted after
//!   it is one sample; the killed engine is restarted before the next kill. The receiver
//!   dedupes on `X-Tocsin-Delivery`: an alert answered 2xx that never pages (lost), or
//!   whose page arrives under two delivery ids (doubled), ends the benchmark without figures.
//!
//! The two systems take turns going first in ingest and signal to page; then the median and
//! spread over the rounds of each figure. A failed request, a missing page or a store that
//! does not hold what was sent also ends the benchmark without figures.
//!
//! Run: `cargo bench --bench cluster` (env LEASE, seconds, default 4; ALERTS, default 100000;
//! CONNECTIONS, default 16; PAGES, default 1000; INTERVAL_MS, default 5; KILLS, default 20;
//! ROUNDS, default 3; PEER=0 for tocsin alone; ALERTS=0, PAGES=0 or KILLS=0 leaves that part
//! out; INBOX=1 for the followers' inputs through the store's inbox: `server.advertise_url:
//! none`; EVERY_ENGINE=1 sends each of tocsin's ingest batches to all three engines, as
//! Prometheus does to each target it lists).

mod alertmanager;
mod common;
mod pg;

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use alertmanager::Alertmanager;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::post;
use common::{env_or, listed, p50_p99_max, percentile, print_compared, sorted, Spread};
use pg::{Cluster, Postgres, ENGINES};
use serde_json::Value;
use tokio::time::Instant;

const BENCH: &str = "cluster";
const BATCH: usize = 256;
const SERVICES: usize = 100;
/// Keep-alive connections of the ingest pass (env CONNECTIONS).
fn connections() -> usize {
    env_or("CONNECTIONS", 16).max(1) as usize
}
/// The takeover load: one new alert this often.
const LOAD_EVERY: Duration = Duration::from_millis(50);

/// What the receiver got: first arrival per alert number, per system and phase, and the
/// delivery ids of each alert's triggered page in the takeover phase.
/// When an alert's triggered page first arrived, and every delivery id it came under.
type Triggered = (Instant, BTreeSet<String>);

#[derive(Clone, Default)]
struct Arrivals {
    am: Arc<Mutex<HashMap<u64, Instant>>>,
    tocsin: Arc<Mutex<HashMap<u64, Instant>>>,
    takeover: Arc<Mutex<HashMap<u64, Triggered>>>,
}

fn label_n(labels: &Value) -> Option<u64> {
    labels.get("n")?.as_str()?.parse().ok()
}

async fn am_hook(State(a): State<Arrivals>, body: axum::body::Bytes) -> &'static str {
    let at = Instant::now();
    if let Ok(payload) = serde_json::from_slice::<Value>(&body) {
        for alert in payload["alerts"].as_array().into_iter().flatten() {
            if let Some(n) = label_n(&alert["labels"]) {
                a.am.lock().unwrap().entry(n).or_insert(at);
            }
        }
    }
    "ok"
}

async fn tocsin_hook(
    State(a): State<Arrivals>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> &'static str {
    let at = Instant::now();
    let Ok(payload) = serde_json::from_slice::<Value>(&body) else {
        return "ok";
    };
    if payload["event"] != "triggered" {
        return "ok";
    }
    let Some(n) = label_n(&payload["incident"]["labels"]) else {
        return "ok";
    };
    a.tocsin.lock().unwrap().entry(n).or_insert(at);
    let delivery = headers
        .get("x-tocsin-delivery")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    a.takeover
        .lock()
        .unwrap()
        .entry(n)
        .or_insert_with(|| (at, BTreeSet::new()))
        .1
        .insert(delivery);
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

/// Alertmanager for ingest: one route, a receiver with nothing to notify.
const AM_INGEST: &str = r#"
route:
  receiver: "null"
  group_by: [service]
receivers:
  - name: "null"
"#;

/// Every engine: correlation by `instance`; `PageBench` alerts page the receiver at once,
/// the ingest benchmark's `Bench*` alerts are recorded, not paged.
fn tocsin_config(port: u16) -> String {
    format!(
        r#"
{}
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
"#,
        server()
    )
}

/// Every engine's `server:`: no rate limit; with INBOX=1, no engine says where it serves,
/// so the followers' inputs go through the store's inbox.
fn server() -> String {
    let advertise = match std::env::var("INBOX").as_deref() {
        Ok("1") => ", advertise_url: none",
        _ => "",
    };
    format!("server: {{ rate_limit: {{ per_client: 1000000, burst: 1000000 }}{advertise} }}")
}

/// Ingest correlates by service, as the ingest benchmark does.
/// An incident per service, as Alertmanager's group per service: no regional incident (it
/// takes more services in one region than the bench has).
fn tocsin_ingest_config() -> String {
    format!(
        "{}\ncorrelation: {{ by: [service], window: 15m }}\nclassification: {{ multi_services: 101 }}\n",
        server()
    )
}

const TOCSIN_RULES: &str = r#"
groups:
  - name: bench
    rules:
      - name: PageBench
        match: [ 'source="alert"', 'alertname="PageBench"' ]
        impact: { kind: outage, sla_breach: true }
      - name: BenchAlert
        match: [ 'source="alert"', 'alertname=~"Bench.*"' ]
        when: "labels.severity == 'critical'"
        impact: { kind: outage, sla_breach: true }
        summary: "{{ labels.alertname }} in {{ labels.service }} {{ labels.region }}"
"#;

fn http(timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(timeout)
        .build()
        .unwrap()
}

// ---------------------------------------------------------------- ingest

/// The ingest benchmark's alerts: 100 services, 4 regions, an instance each.
fn batches(alerts: usize) -> Vec<(axum::body::Bytes, usize)> {
    let ends = (chrono::Utc::now() + chrono::Duration::minutes(10))
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let items: Vec<Value> = (0..alerts)
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
                "endsAt": ends,
            })
        })
        .collect();
    items
        .chunks(BATCH)
        .map(|chunk| (serde_json::to_vec(chunk).unwrap().into(), chunk.len()))
        .collect()
}

/// Every batch, 16 connections, batch `n` to `urls[n % urls.len()]`, or with `to_every` to
/// each of `urls` at once (as Prometheus sends to each Alertmanager it lists); (alerts
/// answered 2xx by each engine they went to, what each failed request got, seconds).
async fn ingest(
    urls: &[String],
    batches: &Arc<Vec<(axum::body::Bytes, usize)>>,
    to_every: bool,
) -> (usize, Vec<String>, f64) {
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..connections() {
        let client = reqwest::Client::builder()
            .no_proxy()
            .http1_only()
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap();
        let (urls, batches, next) = (urls.to_vec(), batches.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let (mut alerts, mut errors) = (0, Vec::new());
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                let Some((body, count)) = batches.get(n) else {
                    break;
                };
                let targets = if to_every {
                    urls.clone()
                } else {
                    vec![urls[n % urls.len()].clone()]
                };
                let answers = futures::future::join_all(targets.iter().map(|url| {
                    client
                        .post(format!("{url}/api/v2/alerts"))
                        .header("content-type", "application/json")
                        .body(body.clone())
                        .send()
                }))
                .await;
                let mut taken = true;
                for (url, answer) in targets.iter().zip(answers) {
                    match answer {
                        Ok(r) if r.status().is_success() => {}
                        Ok(r) => {
                            let status = r.status();
                            let text = r.text().await.unwrap_or_default();
                            errors.push(format!("{url}: {status} {text}"));
                            taken = false;
                        }
                        Err(e) => {
                            errors.push(format!("{url}: {e}"));
                            taken = false;
                        }
                    }
                }
                if taken {
                    alerts += count;
                }
            }
            (alerts, errors)
        }));
    }
    let (mut alerts, mut errors) = (0, Vec::new());
    for t in tasks {
        let (a, e) = t.await.unwrap();
        alerts += a;
        errors.extend(e);
    }
    (alerts, errors, start.elapsed().as_secs_f64())
}

fn require_ingest(name: &str, taken: usize, errors: &[String], sent: usize) {
    if !errors.is_empty() || taken != sent {
        common::invalid_run(
            BENCH,
            format!(
                "{name} ingest: {} requests failed ({}), {taken} of {sent} alerts taken",
                errors.len(),
                errors.first().map(String::as_str).unwrap_or("")
            ),
        );
    }
}

async fn tocsin_ingest(
    pg: &Postgres,
    lease: u64,
    batches: &Arc<Vec<(axum::body::Bytes, usize)>>,
    sent: usize,
) -> f64 {
    let store = pg.database().await;
    let cluster = Cluster::start(
        &store,
        lease,
        &tocsin_ingest_config(),
        &[("bench.yaml", TOCSIN_RULES)],
    )
    .await;
    let every = std::env::var("EVERY_ENGINE").as_deref() == Ok("1");
    let (taken, errors, seconds) = ingest(&cluster.urls(), batches, every).await;
    if !errors.is_empty() {
        eprintln!("{}", cluster.logs());
    }
    require_ingest("tocsin", taken, &errors, sent);
    let open = listed(&format!(
        "{}/api/v1/incidents?status=open&limit=10000",
        cluster.url(0)
    ))
    .await;
    let services = sent.min(SERVICES);
    if open != Some(services) {
        common::invalid_run(
            BENCH,
            format!("tocsin stored {open:?} open incidents, not one per service ({services})"),
        );
    }
    let rate = taken as f64 / seconds;
    println!("tocsin (3 engines) ingest: {taken} new alerts in {seconds:.2} s = {rate:.0} alerts/s; {services} incidents stored");
    drop(cluster);
    pg.drop_database(&store).await;
    rate
}

async fn am_ingest(batches: &Arc<Vec<(axum::body::Bytes, usize)>>, sent: usize) -> f64 {
    let am = Alertmanager::start(AM_INGEST)
        .await
        .expect("alertmanager starts");
    let (taken, errors, seconds) = ingest(std::slice::from_ref(&am.url), batches, false).await;
    require_ingest("alertmanager", taken, &errors, sent);
    let held = listed(&format!("{}/api/v2/alerts", am.url)).await;
    if held != Some(sent) {
        common::invalid_run(
            BENCH,
            format!("alertmanager holds {held:?} of the {sent} alerts"),
        );
    }
    let rate = taken as f64 / seconds;
    println!("alertmanager ingest: {taken} new alerts in {seconds:.2} s = {rate:.0} alerts/s");
    rate
}

// ---------------------------------------------------------------- signal to page

/// One `PageBench` alert, numbered `n`, firing for ten minutes: an incident of its own.
fn page_body(n: u64) -> axum::body::Bytes {
    let ends = (chrono::Utc::now() + chrono::Duration::minutes(10))
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let alert = serde_json::json!([{
        "labels": {
            "alertname": "PageBench",
            "instance": format!("host-{n}:9100"),
            "service": format!("svc-{n}"),
            "severity": "critical",
            "n": n.to_string(),
        },
        "annotations": { "summary": format!("cluster bench alert {n}") },
        "endsAt": ends,
    }]);
    serde_json::to_vec(&alert).unwrap().into()
}

/// Send `count` alerts one every `interval`, alert `n` to `urls[n % urls.len()]` (each POST
/// on its own task), wait (at most 15 s) for their pages; the latencies in ms. A failed post
/// or a page that never came ends the benchmark.
async fn pages(
    name: &str,
    urls: &[String],
    count: u64,
    interval: Duration,
    arrivals: &Mutex<HashMap<u64, Instant>>,
) -> Vec<f64> {
    arrivals.lock().unwrap().clear();
    let client = http(Duration::from_secs(10));
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let (mut sent, mut posts) = (Vec::new(), Vec::new());
    for n in 0..count {
        let body = page_body(n);
        tick.tick().await;
        let request = client
            .post(format!("{}/api/v2/alerts", urls[n as usize % urls.len()]))
            .header("content-type", "application/json")
            .body(body);
        sent.push(Instant::now());
        posts.push(tokio::spawn(async move {
            match request.send().await {
                Ok(r) if r.status().is_success() => true,
                Ok(r) => {
                    let status = r.status();
                    eprintln!(
                        "post answered {status}: {}",
                        r.text().await.unwrap_or_default()
                    );
                    false
                }
                Err(e) => {
                    eprintln!("post failed: {e:?}");
                    false
                }
            }
        }));
    }
    let mut failed = 0;
    for p in posts {
        if !p.await.unwrap_or(false) {
            failed += 1;
        }
    }
    let deadline = Instant::now() + Duration::from_secs(15);
    while arrivals.lock().unwrap().len() < count as usize && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let got = arrivals.lock().unwrap().clone();
    let latencies: Vec<f64> = sent
        .iter()
        .enumerate()
        .filter_map(|(n, at)| {
            got.get(&(n as u64))
                .map(|a| a.duration_since(*at).as_secs_f64() * 1000.0)
        })
        .collect();
    let missing = count as usize - latencies.len();
    if failed > 0 || missing > 0 {
        common::invalid_run(BENCH, format!("{name} signal to page: {failed} of {count} posts failed, {missing} pages never arrived"));
    }
    println!(
        "{name} signal to page: {count} pages; {}",
        p50_p99_max(&latencies)
    );
    if urls.len() > 1 {
        // Alert n went to engine n % 3; the first engine leads (it started first).
        for (what, leader) in [
            ("posted to the leader", true),
            ("posted to a follower", false),
        ] {
            let part: Vec<f64> = latencies
                .iter()
                .enumerate()
                .filter(|(n, _)| (n % urls.len() == 0) == leader)
                .map(|(_, ms)| *ms)
                .collect();
            let s = sorted(&part);
            println!(
                "  {what}: p50 {:.2} ms, p99 {:.2} ms",
                percentile(&s, 50.0),
                percentile(&s, 99.0)
            );
        }
    }
    latencies
}

async fn tocsin_pages(
    pg: &Postgres,
    lease: u64,
    port: u16,
    count: u64,
    interval: Duration,
    arrivals: &Arrivals,
) -> Vec<f64> {
    let store = pg.database().await;
    let cluster = Cluster::start(
        &store,
        lease,
        &tocsin_config(port),
        &[("bench.yaml", TOCSIN_RULES)],
    )
    .await;
    let latencies = pages(
        "tocsin (3 engines, PostgreSQL)",
        &cluster.urls(),
        count,
        interval,
        &arrivals.tocsin,
    )
    .await;
    let stored = listed(&format!("{}/api/v1/incidents?limit=10000", cluster.url(0))).await;
    if stored != Some(count as usize) {
        common::invalid_run(
            BENCH,
            format!("tocsin holds {stored:?} incidents of the {count} alerts sent"),
        );
    }
    latencies
}

async fn am_pages(port: u16, count: u64, interval: Duration, arrivals: &Arrivals) -> Vec<f64> {
    let am = Alertmanager::start(&am_config(port))
        .await
        .expect("alertmanager starts");
    let latencies = pages(
        "alertmanager",
        std::slice::from_ref(&am.url),
        count,
        interval,
        &arrivals.am,
    )
    .await;
    let held = listed(&format!("{}/api/v2/alerts", am.url)).await;
    if held != Some(count as usize) {
        common::invalid_run(
            BENCH,
            format!("alertmanager holds {held:?} of the {count} alerts"),
        );
    }
    latencies
}

/// `count` bare transactions, one every `interval`, on one connection to a fresh database:
/// a small row inserted and committed (fsynced), as a page's row is before it is sent.
async fn commit_floor(pg: &Postgres, count: u64, interval: Duration) -> Vec<f64> {
    use sqlx::Connection;
    let url = pg.database().await;
    let mut conn = sqlx::PgConnection::connect(&url)
        .await
        .expect("connect to the throwaway PostgreSQL");
    sqlx::query("CREATE TABLE pages (id bigserial PRIMARY KEY, data jsonb NOT NULL)")
        .execute(&mut conn)
        .await
        .expect("create the floor's table");
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut latencies = Vec::new();
    for n in 0..count {
        tick.tick().await;
        let started = Instant::now();
        let mut tx = conn.begin().await.expect("begin");
        sqlx::query("INSERT INTO pages (data) VALUES ($1::jsonb)")
            .bind(format!(r#"{{"incident": {n}, "to": "webhook:receiver"}}"#))
            .execute(&mut *tx)
            .await
            .expect("insert");
        tx.commit().await.expect("commit");
        latencies.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    conn.close().await.ok();
    println!(
        "the commit's floor (PostgreSQL alone, one connection): {count} transactions; {}",
        p50_p99_max(&latencies)
    );
    latencies
}

// ---------------------------------------------------------------- takeover

/// When each takeover alert's first post started, and when it was answered 2xx (if it was).
#[derive(Default)]
struct Posted {
    started: HashMap<u64, Instant>,
    answered: BTreeSet<u64>,
}

/// Post a new alert every [`LOAD_EVERY`] until `stop`, alert `n` first to engine `n % 3`,
/// a refused or failed post tried again on the next engine (for at most 60 s).
fn steady_load(
    urls: Vec<String>,
    posted: Arc<Mutex<Posted>>,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let client = http(Duration::from_secs(10));
        let mut tick = tokio::time::interval(LOAD_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut posts = Vec::new();
        let mut n = 0u64;
        while !stop.load(Ordering::Relaxed) {
            tick.tick().await;
            posted.lock().unwrap().started.insert(n, Instant::now());
            let (client, urls, posted) = (client.clone(), urls.clone(), posted.clone());
            posts.push(tokio::spawn(async move {
                let body = page_body(n);
                let deadline = Instant::now() + Duration::from_secs(60);
                let mut engine = n as usize;
                while Instant::now() < deadline {
                    let answer = client
                        .post(format!("{}/api/v2/alerts", urls[engine % urls.len()]))
                        .header("content-type", "application/json")
                        .body(body.clone())
                        .send()
                        .await;
                    if matches!(answer, Ok(ref r) if r.status().is_success()) {
                        posted.lock().unwrap().answered.insert(n);
                        return;
                    }
                    engine += 1;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }));
            n += 1;
        }
        for p in posts {
            let _ = p.await;
        }
    })
}

/// KILLS takeovers under load; the kill-to-first-page times in ms.
async fn takeover(
    pg: &Postgres,
    lease: u64,
    port: u16,
    kills: u64,
    arrivals: &Arrivals,
) -> Vec<f64> {
    arrivals.takeover.lock().unwrap().clear();
    let store = pg.database().await;
    let mut cluster = Cluster::start(
        &store,
        lease,
        &tocsin_config(port),
        &[("bench.yaml", TOCSIN_RULES)],
    )
    .await;
    let client = http(Duration::from_secs(2));
    let posted: Arc<Mutex<Posted>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let load = steady_load(cluster.urls(), posted.clone(), stop.clone());
    let wait_leader = Duration::from_secs(3 * lease + 10);
    let mut samples = Vec::new();
    for k in 0..kills {
        // Steady state first: one leader, the load paging through it.
        tokio::time::sleep(Duration::from_secs(1)).await;
        let Some(leader) = cluster.wait_leader(&client, wait_leader).await else {
            common::invalid_run(
                BENCH,
                format!("takeover {}: no single leader\n{}", k + 1, cluster.logs()),
            );
        };
        let killed = Instant::now();
        cluster.kill(leader);
        // The first page of an alert whose first post started after the kill.
        let deadline = killed + Duration::from_secs(lease + 30);
        let first = loop {
            let first = {
                let started = &posted.lock().unwrap().started;
                arrivals
                    .takeover
                    .lock()
                    .unwrap()
                    .iter()
                    .filter(|(n, _)| started.get(n).is_some_and(|s| *s >= killed))
                    .map(|(_, (at, _))| *at)
                    .min()
            };
            if let Some(at) = first {
                break at;
            }
            if Instant::now() > deadline {
                common::invalid_run(
                    BENCH,
                    format!(
                        "takeover {}: no page within {} s of killing e{}\n{}",
                        k + 1,
                        lease + 30,
                        leader + 1,
                        cluster.logs()
                    ),
                );
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        };
        let ms = first.duration_since(killed).as_secs_f64() * 1000.0;
        println!(
            "takeover {}: killed e{}, first page of a new alert {ms:.0} ms later",
            k + 1,
            leader + 1
        );
        samples.push(ms);
        cluster.restart(leader).await;
    }
    stop.store(true, Ordering::Relaxed);
    let _ = load.await;
    // Every alert answered 2xx pages once, under one delivery id.
    let answered = posted.lock().unwrap().answered.clone();
    let deadline = Instant::now() + Duration::from_secs(lease + 30);
    loop {
        let all = {
            let got = arrivals.takeover.lock().unwrap();
            answered.iter().all(|n| got.contains_key(n))
        };
        if all || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let got = arrivals.takeover.lock().unwrap().clone();
    let lost: Vec<u64> = answered
        .iter()
        .copied()
        .filter(|n| !got.contains_key(n))
        .collect();
    let doubled: Vec<u64> = got
        .iter()
        .filter(|(_, (_, ids))| ids.len() > 1)
        .map(|(n, _)| *n)
        .collect();
    println!(
        "takeover: {} alerts posted, {} answered 2xx, {} paged; {} lost, {} paged under two delivery ids",
        posted.lock().unwrap().started.len(),
        answered.len(),
        got.len(),
        lost.len(),
        doubled.len()
    );
    if !lost.is_empty() || !doubled.is_empty() {
        common::invalid_run(BENCH, format!("takeover: alerts answered 2xx that never paged: {lost:?}; paged twice: {doubled:?}\n{}", cluster.logs()));
    }
    samples
}

#[tokio::main]
async fn main() {
    if !common::invoked_by_cargo_bench(BENCH) {
        return;
    }
    let lease = env_or("LEASE", 4).max(1);
    let alerts = env_or("ALERTS", 100_000) as usize;
    let page_count = env_or("PAGES", 1000);
    let interval = Duration::from_millis(env_or("INTERVAL_MS", 5));
    let kills = env_or("KILLS", 20);
    let rounds = common::rounds(3);
    let batches = Arc::new(batches(alerts));
    let arrivals = Arrivals::default();
    let port = receiver(arrivals.clone()).await;
    let pg = Postgres::start();
    println!(
        "cluster: {ENGINES} engines on PostgreSQL (lease {lease} s); ingest of {alerts} new alerts in batches of {BATCH}, {} connections; {page_count} pages one POST every {} ms; {kills} leader kills under load; {}",
        connections(),
        interval.as_millis(),
        common::rounds_of(rounds)
    );
    let peer = env_or("PEER", 1) == 1 && common::installed(alertmanager::PROGRAM);
    if peer {
        println!(
            "peer: {} (one process, gossip off)",
            alertmanager::version()
        );
    } else {
        println!("alertmanager: not run (PEER=0 or not installed); tocsin alone");
    }

    let (mut t_ingest, mut a_ingest) = (Vec::new(), Vec::new());
    let (mut t_pages, mut a_pages) = (Vec::new(), Vec::new());
    let mut takeovers = Vec::new();
    let mut floors = Vec::new();
    for round in 0..rounds {
        common::announce_round(round, rounds, peer.then_some("alertmanager"));
        let peer_first = peer && !common::tocsin_first(round);
        if alerts > 0 {
            if peer_first {
                a_ingest.push(am_ingest(&batches, alerts).await);
            }
            t_ingest.push(tocsin_ingest(&pg, lease, &batches, alerts).await);
            if peer && !peer_first {
                a_ingest.push(am_ingest(&batches, alerts).await);
            }
        }
        if page_count > 0 {
            if peer_first {
                a_pages.push(am_pages(port, page_count, interval, &arrivals).await);
            }
            t_pages.push(tocsin_pages(&pg, lease, port, page_count, interval, &arrivals).await);
            if peer && !peer_first {
                a_pages.push(am_pages(port, page_count, interval, &arrivals).await);
            }
            floors.push(commit_floor(&pg, page_count, interval).await);
        }
        if kills > 0 {
            takeovers.push(takeover(&pg, lease, port, kills, &arrivals).await);
        }
    }

    println!("--- over {}", common::rounds_of(rounds));
    if alerts > 0 {
        print_compared(
            "ingest, new alerts/s",
            "",
            &t_ingest,
            "alertmanager",
            &a_ingest,
        );
        println!("  target: tocsin/alertmanager at least 1");
    }
    let p = |runs: &[Vec<f64>], q: f64| -> Vec<f64> {
        runs.iter().map(|r| percentile(&sorted(r), q)).collect()
    };
    if page_count > 0 {
        print_compared(
            "signal to page p50",
            "ms",
            &p(&t_pages, 50.0),
            "alertmanager",
            &p(&a_pages, 50.0),
        );
        print_compared(
            "signal to page p99",
            "ms",
            &p(&t_pages, 99.0),
            "alertmanager",
            &p(&a_pages, 99.0),
        );
        println!("  target: p99 tocsin/alertmanager at most 1.5");
        let floor = Spread::of(&p(&floors, 99.0));
        print!(
            "the commit's floor, p99 over {}: {}",
            common::rounds_of(floors.len()),
            floor.show(3, "ms")
        );
        if peer {
            let ratios: Vec<f64> = p(&floors, 99.0)
                .iter()
                .zip(p(&a_pages, 99.0))
                .map(|(f, a)| f / a)
                .collect();
            print!(
                "; against alertmanager's page p99 {}",
                Spread::of(&ratios).show(2, "")
            );
        }
        println!();
    }
    if kills > 0 {
        print_compared(
            "takeover, kill to first page p50",
            "ms",
            &p(&takeovers, 50.0),
            "",
            &[],
        );
        print_compared(
            "takeover, kill to first page p99",
            "ms",
            &p(&takeovers, 99.0),
            "",
            &[],
        );
        let all = sorted(&takeovers.concat());
        println!(
            "takeover over all {} kills: p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms; target p99 at most lease + 1 s = {} ms; no page lost or doubled",
            all.len(),
            percentile(&all, 50.0),
            percentile(&all, 99.0),
            percentile(&all, 100.0),
            (lease + 1) * 1000
        );
    }
}
