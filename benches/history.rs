//! History benchmark: a year of history in a SQLite store, 1,000,000 resolved incidents and
//! 10,000,000 timeline rows (with an impact, its link, the paging state and the delivered
//! pages of each incident), and what it costs the engine:
//!
//! - **start**: spawning the `tocsin` binary to `/-/ready` answering 200, RUNS starts;
//! - **reads**: `GET /api/v1/incidents` (the newest page, the newest resolved page, and the
//!   deepest today's list reaches) and `GET /api/v1/incidents/{id}` of incidents spread over
//!   the whole history, REQUESTS each (or as many as a minute takes), one at a time: p50
//!   and p99;
//! - **page latency during a prune**: the page benchmark's alerts (each its own incident,
//!   one POST every INTERVAL_MS, PAGES a round) to a webhook receiver in this process, with
//!   the default `store.retention` (400d: the history stays, the pruner finds nothing) and
//!   with `retention: 1d`, which makes every history incident prunable; that run starts
//!   once the pruner has removed its first rows and checks that it removed more during the
//!   run. ROUNDS rounds, the two taking turns going first; each pruning run goes on where
//!   the one before left off, so the store is built once.
//!
//! The store is built in this process: one incident goes through the engine's own code
//! (`Core` takes an alert, the incident is paged, acknowledged, noted and resolved, and
//! `Store::apply` writes it as the engine loop would), then its rows are the template of
//! every history incident, copied with bulk SQL (rusqlite, one transaction) with the ids,
//! titles and times of each, so that every row is one the engine reads back. Incidents open
//! one after the other from 367 days ago to 2 days ago, each resolved 30 minutes after it
//! opened; the template's timeline rows are filled up with notes to TIMELINE / INCIDENTS
//! rows an incident. The build writes without syncing; its files are synced to disk before
//! the first measurement, so that their writeback does not land in the runs.
//!
//! With `STORE=postgres` the store is a database on a throwaway PostgreSQL of the
//! benchmark's own (`scripts/throwaway-postgres.sh`, as the cluster benchmark's), built with
//! the same rows (`history_pg`).
//!
//! Run: `cargo bench --bench history` (env INCIDENTS, default 1000000; TIMELINE, default 10
//! an incident; RUNS, default 5; REQUESTS, default 1000; PAGES, default 1000; INTERVAL_MS,
//! default 5; ROUNDS, default 3; STORE, sqlite or postgres).

mod common;
mod history_pg;
mod pg;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::routing::post;
use chrono::Utc;
use common::{env_or, percentile, sorted, EngineDir, Spread, Tocsin};
use serde_json::Value;
use tocsin::engine::{Core, Input, Reply};
use tocsin::metrics::Metrics;
use tocsin::signal::{Signal, SourceKind};
use tocsin::store::Store;
use tokio::time::Instant;

const BENCH: &str = "history";
const DAY_MS: i64 = 24 * 3600 * 1000;
/// The longest one kind of read is repeated: a read that takes seconds on a large store
/// says what it has to say in a few samples.
const READS_FOR: Duration = Duration::from_secs(60);

/// The engine's config on the store at `store`; `retention` is `store.retention` (None: its
/// default, 400d).
fn config(receiver: u16, retention: Option<&str>, store: &str) -> String {
    let retention = retention
        .map(|r| format!(", retention: {r}"))
        .unwrap_or_default();
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
    - {{ name: receiver, url: "http://127.0.0.1:{receiver}/tocsin", timeout: 5s }}
store: {{ url: "{store}"{retention} }}
rule_files: [ "rules/*.yaml" ]
"#
    )
}

const RULES: &str = r#"
groups:
  - name: bench
    rules:
      - name: PageBench
        match: [ 'source="alert"', 'alertname="PageBench"' ]
        impact: { kind: outage, sla_breach: true }
"#;

// ---------------------------------------------------------------- the store

/// One incident through the engine's code: opened by an alert, paged, acknowledged, noted,
/// resolved; written by `Store::apply`. Its id.
async fn template(dir: &EngineDir, url: &str) -> i64 {
    let cfg = tocsin::config::load(&dir.path().join("config.yaml")).expect("config");
    let store = Store::open(url).await.expect("store");
    let ack_keys = tocsin::engine::secrets::AckKeys::new(store.clone());
    let setup = tocsin::engine::Setup::build(cfg, &ack_keys)
        .await
        .expect("setup");
    let now = Utc::now();
    let mut core = Core::new(setup, Arc::new(Metrics::new()), now);
    let labels: BTreeMap<String, String> = [
        ("alertname", "PageBench"),
        ("instance", "history-0:9100"),
        ("service", "checkout"),
        ("severity", "critical"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let mut signal = Signal::new(SourceKind::Alert, labels, now);
    Arc::make_mut(&mut signal.annotations).insert("summary".into(), "checkout answers 5xx".into());
    let id = match core.handle(Input::Signals(vec![signal]), now) {
        Reply::Signals(joined) => joined.into_iter().flatten().next().expect("an incident"),
        other => panic!("signals: {other:?}"),
    };
    let by = || "alice".to_string();
    core.handle(
        Input::Ack {
            incident_id: id,
            by: by(),
        },
        now,
    );
    let text = "rolled back the deploy; error rate back to normal".to_string();
    core.handle(
        Input::Note {
            incident_id: id,
            by: by(),
            text,
        },
        now,
    );
    let note = Some("fixed by the rollback".to_string());
    core.handle(
        Input::Resolve {
            incident_id: id,
            by: by(),
            note,
        },
        now,
    );
    store.apply(&core.take_changes()).await.expect("write");
    store.close().await;
    id
}

/// `ms` (a SQL expression) as the RFC 3339 text the engine writes.
fn rfc3339(ms: &str) -> String {
    format!("strftime('%Y-%m-%dT%H:%M:%fZ', ({ms}) / 1000.0, 'unixepoch')")
}

/// Copy the template incident `t` into `incidents` incidents numbered on from it (with `per` timeline rows
/// each) and remove the template's own rows; one transaction. The database's rows then.
fn build(
    db: &std::path::Path,
    t: i64,
    incidents: i64,
    per: i64,
    (first, step): (i64, i64),
) -> rusqlite::Result<(i64, i64)> {
    let mut conn = rusqlite::Connection::open(db)?;
    // No WAL while building: the rows of one transaction of several GB would all go
    // through it first.
    conn.pragma_update(None, "journal_mode", "DELETE")?;
    conn.pragma_update(None, "synchronous", "OFF")?;
    conn.pragma_update(None, "cache_size", -262_144)?;
    let tx = conn.transaction()?;
    // s(i, o): incident i (numbered on from the template's), opened at o (ms).
    let seq = format!(
        "WITH RECURSIVE seq(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM seq WHERE n < {incidents}) \
         SELECT n + {t} AS i, {first} + (n - 1) * {step} AS o FROM seq"
    );
    let (opened, acked, resolved) = (rfc3339("o"), rfc3339("o + 60000"), rfc3339("o + 1800000"));
    tx.execute_batch(&format!(
        "CREATE TEMP TABLE s AS {seq};
         INSERT INTO incidents (id, status, severity, queue, opened_at, data)
           SELECT s.i, t.status, t.severity, NULL, s.o,
             json_replace(t.data, '$.id', s.i, '$.title', 'checkout answers 5xx (' || s.i || ')',
               '$.opened_at', {opened}, '$.acknowledged_at', {acked}, '$.resolved_at', {resolved})
           FROM s, (SELECT * FROM incidents WHERE id = {t}) t;
         INSERT INTO impacts (id, incident_id, data)
           SELECT s.i, s.i, json_replace(t.data, '$.id', s.i, '$.incident_id', s.i,
               '$.started_at', {opened}, '$.cleared_at', {resolved})
           FROM s, (SELECT * FROM impacts WHERE incident_id = {t} LIMIT 1) t;
         INSERT INTO incident_impacts (incident_id, impact_ids) SELECT i, '[' || i || ']' FROM s;
         INSERT INTO paging (incident_id, data)
           SELECT s.i, t.data FROM s, (SELECT * FROM paging WHERE incident_id = {t}) t;"
    ))?;
    // The template's pages, numbered on: incident i's k-th page is (i - 1) * pages + k.
    let pages: i64 = tx.query_row(
        &format!("SELECT COUNT(*) FROM outbox WHERE incident_id = {t}"),
        [],
        |r| r.get(0),
    )?;
    tx.execute_batch(&format!(
        "CREATE TEMP TABLE p AS SELECT ROW_NUMBER() OVER (ORDER BY id) AS k, * FROM outbox
           WHERE incident_id = {t};
         INSERT INTO outbox (id, delivery_id, incident_id, channel, status, attempts,
             next_attempt_at, created_at, delivered_at, last_error, data)
           SELECT (s.i - 1) * {pages} + p.k, 'history-' || s.i || '-' || p.k, s.i, p.channel,
             'delivered', 1, s.o + p.k * 1000, s.o + p.k * 1000, s.o + p.k * 1000 + 50, NULL,
             json_replace(p.data, '$.id', (s.i - 1) * {pages} + p.k,
               '$.delivery_id', 'history-' || s.i || '-' || p.k, '$.incident_id', s.i,
               '$.payload.incident.id', s.i)
           FROM s, p ORDER BY s.i, p.k;"
    ))?;
    // The timeline: the template's rows but its last (the resolution), notes up to `per`,
    // then the resolution; three minutes apart.
    tx.execute_batch(&format!(
        "CREATE TEMP TABLE r AS SELECT ROW_NUMBER() OVER (ORDER BY id) AS k, kind, actor,
           message, data FROM timeline WHERE incident_id = {t};"
    ))?;
    let rows: i64 = tx.query_row("SELECT COUNT(*) FROM r", [], |r| r.get(0))?;
    let note: i64 = tx.query_row(
        "SELECT COALESCE(MAX(k), 1) FROM r WHERE kind = 'note'",
        [],
        |r| r.get(0),
    )?;
    tx.execute_batch(&format!(
        "CREATE TEMP TABLE e (k INTEGER PRIMARY KEY, kind, actor, message, data);
         INSERT INTO e SELECT k, kind, actor, message, data FROM r WHERE k < {rows};
         WITH RECURSIVE f(k) AS (SELECT {rows} WHERE {rows} < {per} UNION ALL SELECT k + 1 FROM f WHERE k < {per} - 1)
           INSERT INTO e SELECT f.k, r.kind, r.actor, 'checked the dashboards (' || f.k || ')', r.data
           FROM f, r WHERE r.k = {note};
         INSERT INTO e SELECT MAX({per}, {rows}), kind, actor, message, data FROM r WHERE k = {rows};
         INSERT INTO timeline (incident_id, at, kind, actor, message, data)
           SELECT s.i, s.o + e.k * 180000, e.kind, e.actor, e.message, e.data
           FROM s, e ORDER BY s.i, e.k;"
    ))?;
    // The template's own rows (it opened now: the pruner's walk would stop at it), and the
    // state of its alert.
    for table in [
        "timeline",
        "outbox",
        "impacts",
        "incident_impacts",
        "paging",
    ] {
        tx.execute(&format!("DELETE FROM {table} WHERE incident_id = {t}"), [])?;
    }
    tx.execute(&format!("DELETE FROM incidents WHERE id = {t}"), [])?;
    tx.execute_batch("DELETE FROM rule_states; DELETE FROM leases;")?;
    tx.commit()?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    let count = |sql: &str| conn.query_row(sql, [], |r| r.get::<_, i64>(0));
    Ok((
        count("SELECT COUNT(*) FROM incidents")?,
        count("SELECT COUNT(*) FROM timeline")?,
    ))
}

// ---------------------------------------------------------------- start and reads

/// Spawn the engine and time it to the first 200 from `/-/ready` (polled every 2 ms).
async fn time_to_ready(dir: &EngineDir) -> f64 {
    let http = client();
    let started = Instant::now();
    let engine = dir.start(0);
    let url = format!("{}/-/ready", engine.url);
    let deadline = started + Duration::from_secs(60);
    loop {
        if let Ok(r) = http.get(&url).send().await {
            if r.status().is_success() {
                break;
            }
        }
        if Instant::now() > deadline {
            common::invalid_run(BENCH, format!("not ready within 60 s:\n{}", engine.log()));
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    started.elapsed().as_secs_f64() * 1000.0
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// The list requests measured: (what, query, how many incidents it must answer). Today's
/// list (`?limit=N`, newest first, at most 10,000) reaches no deeper than its limit; with
/// cursor paging this becomes the first page and a page deep in history.
fn list_requests(incidents: i64) -> Vec<(&'static str, String, usize)> {
    let deepest = incidents.min(10_000) as usize;
    vec![
        ("list, newest 100", "limit=100".into(), 100),
        (
            "list, newest 100 resolved",
            "status=resolved&limit=100".into(),
            100,
        ),
        ("list, 10,000 newest", format!("limit={deepest}"), deepest),
        (
            "list, a page of 100 half-way through the history (cursor)",
            format!("cursor={}&limit=100", incidents / 2),
            100,
        ),
        (
            "list, resolved in one service, half-way through (cursor)",
            format!(
                "cursor={}&status=resolved&service=checkout&limit=100",
                incidents / 2
            ),
            100,
        ),
        (
            "search by text, half-way through (cursor)",
            format!("cursor={}&q=5xx&limit=100", incidents / 2),
            100,
        ),
    ]
}

/// How many incidents a list answer holds.
fn listed(body: &Value) -> Option<usize> {
    body["incidents"].as_array().map(Vec::len)
}

/// `requests` GETs of `path` (from `paths`, in turn), one at a time, or as many as fit in
/// [`READS_FOR`]; each answer must be 200 and pass `check`. The round trips in ms.
async fn timed_gets(
    url: &str,
    paths: &[String],
    requests: usize,
    check: impl Fn(&Value) -> bool,
) -> Vec<f64> {
    let http = client();
    let mut ms = Vec::with_capacity(requests);
    let until = Instant::now() + READS_FOR;
    for n in 0..requests {
        if Instant::now() > until {
            break;
        }
        let path = &paths[n % paths.len()];
        let sent = Instant::now();
        let answer = http.get(format!("{url}{path}")).send().await;
        let body = match answer {
            Ok(r) if r.status().is_success() => r.json::<Value>().await.ok(),
            _ => None,
        };
        ms.push(sent.elapsed().as_secs_f64() * 1000.0);
        if !body.as_ref().is_some_and(&check) {
            common::invalid_run(BENCH, format!("GET {path} did not answer what it should"));
        }
    }
    ms
}

fn show_ms(what: &str, ms: &[f64]) {
    let s = sorted(ms);
    println!(
        "{what}: {} requests, p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms; target p99 < 100 ms",
        ms.len(),
        percentile(&s, 50.0),
        percentile(&s, 99.0),
        percentile(&s, 100.0)
    );
}

async fn reads(engine: &Tocsin, first_id: i64, incidents: i64, requests: usize) {
    for (what, query, expect) in list_requests(incidents) {
        // The deepest list is large: a tenth of the requests.
        let count = if expect > 100 {
            (requests / 10).max(10)
        } else {
            requests
        };
        let paths = [format!("/api/v1/incidents?{query}")];
        let ms = timed_gets(&engine.url, &paths, count, |b| listed(b) == Some(expect)).await;
        show_ms(&format!("GET /api/v1/incidents?{query} ({what})"), &ms);
    }
    // Incidents spread over the whole history, in a scattered order.
    let paths: Vec<String> = (0..requests as i64)
        .map(|n| first_id + (n * 7919 + 13) % incidents)
        .map(|id| format!("/api/v1/incidents/{id}"))
        .collect();
    let ms = timed_gets(&engine.url, &paths, requests, |b| {
        b["timeline"].as_array().is_some_and(|t| !t.is_empty())
            && b["impacts"].as_array().is_some_and(|i| i.len() == 1)
    })
    .await;
    show_ms(
        "GET /api/v1/incidents/{id} (show, with impacts and timeline)",
        &ms,
    );
}

// ---------------------------------------------------------------- pages during a prune

#[derive(Clone, Default)]
struct Arrivals(Arc<Mutex<HashMap<u64, Instant>>>);

async fn hook(State(a): State<Arrivals>, body: axum::body::Bytes) -> &'static str {
    let at = Instant::now();
    if let Ok(payload) = serde_json::from_slice::<Value>(&body) {
        let n = payload["incident"]["labels"]["n"]
            .as_str()
            .and_then(|n| n.parse().ok());
        if let (Some(n), true) = (n, payload["event"] == "triggered") {
            a.0.lock().unwrap().entry(n).or_insert(at);
        }
    }
    "ok"
}

async fn receiver(arrivals: Arrivals) -> u16 {
    let app = axum::Router::new()
        .route("/tocsin", post(hook))
        .with_state(arrivals);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    port
}

fn page_body(n: u64) -> axum::body::Bytes {
    let ends = (Utc::now() + chrono::Duration::minutes(10))
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let alert = serde_json::json!([{
        "labels": {
            "alertname": "PageBench",
            "instance": format!("host-{n}:9100"),
            "service": format!("svc-{n}"),
            "severity": "critical",
            "n": n.to_string(),
        },
        "annotations": { "summary": format!("history bench alert {n}") },
        "endsAt": ends,
    }]);
    serde_json::to_vec(&alert).unwrap().into()
}

/// Alerts `ns` one every `interval` (each POST on its own task); their signal-to-page
/// latencies in ms. A failed post or a page that never came ends the benchmark.
async fn pages(
    url: &str,
    ns: std::ops::Range<u64>,
    interval: Duration,
    arrivals: &Arrivals,
) -> Vec<f64> {
    let http = client();
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let (mut sent, mut posts) = (Vec::new(), Vec::new());
    for n in ns.clone() {
        let request = http
            .post(format!("{url}/api/v2/alerts"))
            .header("content-type", "application/json")
            .body(page_body(n));
        tick.tick().await;
        sent.push((n, Instant::now()));
        posts.push(tokio::spawn(async move {
            matches!(request.send().await, Ok(r) if r.status().is_success())
        }));
    }
    let mut failed = 0;
    for p in posts {
        if !p.await.unwrap_or(false) {
            failed += 1;
        }
    }
    let deadline = Instant::now() + Duration::from_secs(15);
    let all = |got: &HashMap<u64, Instant>| ns.clone().all(|n| got.contains_key(&n));
    while !all(&arrivals.0.lock().unwrap()) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let got = arrivals.0.lock().unwrap().clone();
    let latencies: Vec<f64> = sent
        .iter()
        .filter_map(|(n, at)| {
            got.get(n)
                .map(|a| a.duration_since(*at).as_secs_f64() * 1000.0)
        })
        .collect();
    let missing = sent.len() - latencies.len();
    if failed > 0 || missing > 0 {
        common::invalid_run(
            BENCH,
            format!(
                "{failed} of {} posts failed, {missing} pages never arrived",
                sent.len()
            ),
        );
    }
    latencies
}

/// `tocsin_store_pruned_rows_total` of the engine at `url`.
async fn pruned_rows(url: &str) -> f64 {
    let text = match client().get(format!("{url}/metrics")).send().await {
        Ok(r) => r.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    };
    text.lines()
        .find_map(|l| l.strip_prefix("tocsin_store_pruned_rows_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

/// One run of signal to page on the history store: quiet (default retention) or while the
/// pruner removes history (`retention: 1d`, the run starting once it has removed rows).
async fn page_run(
    dir: &EngineDir,
    store: &str,
    port: u16,
    prune: bool,
    ns: std::ops::Range<u64>,
    interval: Duration,
    arrivals: &Arrivals,
) -> Vec<f64> {
    let retention = prune.then_some("1d");
    std::fs::write(
        dir.path().join("config.yaml"),
        config(port, retention, store),
    )
    .unwrap();
    let engine = dir.start(0);
    if !engine.wait_ready().await {
        common::invalid_run(
            BENCH,
            format!("the engine never became ready:\n{}", engine.log()),
        );
    }
    let mut before = 0.0;
    if prune {
        // The pruner's first walk starts a minute after the engine (src/engine/retention.rs).
        let deadline = Instant::now() + Duration::from_secs(120);
        while before == 0.0 {
            if Instant::now() > deadline {
                common::invalid_run(
                    BENCH,
                    format!("the pruner removed nothing in 120 s:\n{}", engine.log()),
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            before = pruned_rows(&engine.url).await;
        }
    }
    let latencies = pages(&engine.url, ns, interval, arrivals).await;
    let what = if prune { "during a prune" } else { "quiet" };
    print!(
        "signal to page, {what}: {} pages, {}",
        latencies.len(),
        common::p50_p99_max(&latencies)
    );
    if prune {
        let during = pruned_rows(&engine.url).await - before;
        tokio::time::sleep(Duration::from_secs(1)).await;
        let still = pruned_rows(&engine.url).await - before > during;
        println!(
            "; the pruner removed {during:.0} rows during the run{}",
            if still {
                " and was still removing"
            } else {
                " and had finished"
            }
        );
        if during == 0.0 {
            common::invalid_run(BENCH, "the pruner removed nothing while the pages went");
        }
    } else {
        println!();
    }
    latencies
}

#[tokio::main]
async fn main() {
    if !common::invoked_by_cargo_bench(BENCH) {
        return;
    }
    let incidents = env_or("INCIDENTS", 1_000_000).max(1) as i64;
    let timeline = env_or("TIMELINE", 10 * incidents as u64) as i64;
    let runs = env_or("RUNS", 5).max(1);
    let requests = env_or("REQUESTS", 1000).max(1) as usize;
    let page_count = env_or("PAGES", 1000);
    let interval = Duration::from_millis(env_or("INTERVAL_MS", 5));
    let rounds = common::rounds(3);
    let arrivals = Arrivals::default();
    let port = receiver(arrivals.clone()).await;

    let postgres = match std::env::var("STORE").as_deref() {
        Ok("postgres") => Some(pg::Postgres::start()),
        Ok("sqlite") | Err(_) => None,
        Ok(other) => {
            common::invalid_run(BENCH, format!("STORE={other}: expected sqlite or postgres"))
        }
    };
    let store = match &postgres {
        Some(pg) => pg.database().await,
        None => "sqlite://data/tocsin.db".to_string(),
    };
    let dir = EngineDir::new(&config(port, None, &store), &[("bench.yaml", RULES)]);
    let building = Instant::now();
    let db = dir.path().join("data/tocsin.db");
    let template_url = match &postgres {
        Some(_) => store.clone(),
        None => format!("sqlite://{}", db.display()),
    };
    let t = template(&dir, &template_url).await;
    let per = (timeline / incidents).max(1);
    // Opened one after the other from 367 days ago to 2 days ago.
    let last = Utc::now().timestamp_millis() - 2 * DAY_MS;
    let first = last - 365 * DAY_MS;
    let step = (last - first) / incidents.max(1);
    let built = match &postgres {
        Some(_) => history_pg::build(&store, t, incidents, per, first, step)
            .await
            .map_err(|e| e.to_string()),
        None => build(&db, t, incidents, per, (first, step)).map_err(|e| e.to_string()),
    };
    let (stored, rows) =
        built.unwrap_or_else(|e| common::invalid_run(BENCH, format!("building the store: {e}")));
    if stored != incidents {
        common::invalid_run(
            BENCH,
            format!("the store holds {stored} incidents, not {incidents}"),
        );
    }
    let size = match &postgres {
        Some(_) => "PostgreSQL".to_string(),
        None => {
            let bytes = std::fs::metadata(&db).map(|m| m.len()).unwrap_or(0);
            format!("{:.0} MB SQLite", bytes as f64 / 1048576.0)
        }
    };
    let built_in = building.elapsed().as_secs_f64();
    // The build writes without syncing: its gigabytes go to disk now, not under the runs.
    let flushing = Instant::now();
    // SAFETY: sync(2) takes no arguments and cannot fail.
    unsafe { libc::sync() };
    println!(
        "history: {stored} resolved incidents over a year, {rows} timeline rows, an impact and its pages each ({size}, built in {built_in:.1} s, synced to disk in {:.1} s)",
        flushing.elapsed().as_secs_f64()
    );

    let mut ready = Vec::new();
    for _ in 0..runs {
        ready.push(time_to_ready(&dir).await);
    }
    let s = sorted(&ready);
    println!(
        "spawn to /-/ready: {runs} starts, p50 {:.1} ms, max {:.1} ms ({:?}); target < 1000 ms",
        percentile(&s, 50.0),
        percentile(&s, 100.0),
        ready.iter().map(|v| v.round()).collect::<Vec<_>>()
    );

    {
        let engine = dir.start(0);
        if !engine.wait_ready().await {
            common::invalid_run(
                BENCH,
                format!("the engine never became ready:\n{}", engine.log()),
            );
        }
        reads(&engine, t + 1, incidents, requests).await;
    }

    println!(
        "signal to page: {page_count} alerts a run, one POST every {} ms; quiet (retention 400d) and during a prune (retention 1d), taking turns going first; {}",
        interval.as_millis(),
        common::rounds_of(rounds)
    );
    let (mut quiet, mut pruning) = (Vec::new(), Vec::new());
    let mut next = 0u64;
    for round in 0..rounds {
        println!("--- round {} of {rounds}", round + 1);
        for prune in [!common::tocsin_first(round), common::tocsin_first(round)] {
            let ns = next..next + page_count;
            next += page_count;
            let latencies = page_run(&dir, &store, port, prune, ns, interval, &arrivals).await;
            if prune { &mut pruning } else { &mut quiet }.push(latencies);
        }
    }
    println!("--- over {}", common::rounds_of(rounds));
    let p = |runs: &[Vec<f64>], q: f64| -> Vec<f64> {
        runs.iter().map(|r| percentile(&sorted(r), q)).collect()
    };
    for (q, name) in [(50.0, "p50"), (99.0, "p99")] {
        let (during, still) = (p(&pruning, q), p(&quiet, q));
        let ratios: Vec<f64> = during.iter().zip(&still).map(|(d, s)| d / s).collect();
        println!(
            "signal to page {name}: during a prune {}; quiet {}; during/quiet {}",
            Spread::of(&during).show(3, "ms"),
            Spread::of(&still).show(3, "ms"),
            Spread::of(&ratios).show(2, "")
        );
    }
    println!("  target: p99 during a prune / quiet p99 at most 2");
}
