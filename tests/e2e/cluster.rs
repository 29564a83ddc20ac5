//! Several engines on one PostgreSQL: one pages, all serve, none loses or doubles a page.
//!
//! Real binaries, a real PostgreSQL (`TOCSIN_TEST_PG_URL`, a database per test), a real webhook
//! receiver that keeps every request with its `X-Tocsin-Delivery`.
//!
//! Here the leader is killed, or a second engine comes under its `engine_id`; in
//! `cluster_database.rs` the database goes away, in `cluster_followers.rs` work goes
//! through a follower, and in `cluster_forward.rs` a follower hands its inputs to the leader
//! over HTTP.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::support;
use crate::support::{
    eventually, free_port, list_incidents, push_alerts, run_tocsin, EngineProcess, PgDatabase,
    TestDir, CATALOG,
};
use axum::http::HeaderMap;
use axum::routing::post;
use axum::Router;
use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

#[path = "cluster_database.rs"]
mod database;
#[path = "cluster_followers.rs"]
mod followers;
#[path = "cluster_forward.rs"]
mod forward;

/// The lease in these tests; renewed every fifth of it.
const LEASE_SECS: u64 = 3;
/// Level 1 of the policy is paged this long after level 0.
const LEVEL_GAP_SECS: i64 = 8;

#[derive(Clone, Debug)]
struct Got {
    delivery: String,
    event: String,
    level: Option<u64>,
    incident: i64,
    at: DateTime<Utc>,
    ack_url: Option<String>,
}

/// A webhook receiver on 127.0.0.1 that answers 200 and keeps every request.
struct Receiver {
    url: String,
    got: Arc<Mutex<Vec<Got>>>,
    task: JoinHandle<()>,
}

impl Receiver {
    async fn start() -> Receiver {
        let got: Arc<Mutex<Vec<Got>>> = Arc::default();
        let keep = Arc::clone(&got);
        let app = Router::new().route(
            "/hook",
            post(move |headers: HeaderMap, body: String| {
                let keep = Arc::clone(&keep);
                async move {
                    let payload: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
                    keep.lock().unwrap().push(Got {
                        delivery: headers
                            .get("x-tocsin-delivery")
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or_default()
                            .to_string(),
                        event: payload["event"].as_str().unwrap_or_default().to_string(),
                        level: payload["escalation"]["level"].as_u64(),
                        incident: payload["incident"]["id"].as_i64().unwrap_or(-1),
                        at: Utc::now(),
                        ack_url: payload["ack_url"].as_str().map(str::to_string),
                    });
                    "ok"
                }
            }),
        );
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Receiver { url, got, task }
    }

    fn got(&self) -> Vec<Got> {
        self.got.lock().unwrap().clone()
    }

    /// The pages of an incident as a receiver that dedupes on `X-Tocsin-Delivery` sees them.
    fn deduped(&self, incident: i64) -> Vec<Got> {
        let mut seen = BTreeSet::new();
        self.got()
            .into_iter()
            .filter(|g| g.incident == incident && seen.insert(g.delivery.clone()))
            .collect()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A TCP proxy to PostgreSQL whose connections the test can cut, as a network failure would.
struct Proxy {
    /// The database's URL with this proxy's address in place of the server's.
    url: String,
    cut: Arc<AtomicBool>,
    links: Arc<Mutex<Vec<JoinHandle<()>>>>,
    task: JoinHandle<()>,
}

impl Proxy {
    /// A proxy to the server of the database at `url`.
    async fn start(url: &str) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let mut proxied = reqwest::Url::parse(url).expect("a database URL");
        let upstream = format!(
            "{}:{}",
            proxied.host_str().expect("a database host"),
            proxied.port().unwrap_or(5432)
        );
        proxied.set_host(Some("127.0.0.1")).unwrap();
        proxied.set_port(Some(port)).unwrap();
        let cut = Arc::new(AtomicBool::new(false));
        let links: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let (cut2, links2) = (Arc::clone(&cut), Arc::clone(&links));
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    return;
                };
                if cut2.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                let upstream = upstream.clone();
                let link = tokio::spawn(async move {
                    if let Ok(mut server) = TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
                links2.lock().unwrap().push(link);
            }
        });
        Proxy {
            url: proxied.to_string(),
            cut,
            links,
            task,
        }
    }

    /// Drop every connection and refuse new ones.
    fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        for link in self.links.lock().unwrap().drain(..) {
            link.abort();
        }
    }

    fn heal(&self) {
        self.cut.store(false, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
        self.cut();
    }
}

fn config(store_url: &str, receiver: &str) -> String {
    config_with(store_url, receiver, &format!("lease: {LEASE_SECS}s"))
}

/// With more of `store:` than its url (`lease: 10s, engine_id: a`).
fn config_with(store_url: &str, receiver: &str, store: &str) -> String {
    format!(
        r#"{CATALOG}
store: {{ url: "{store_url}", {store} }}
rule_files: [ "rules/*.yaml" ]
responders:
  - {{ id: oncall, webhook: hook }}
escalation_policies:
  - name: main
    levels:
      - {{ after: 0s, notify: [ "responder:oncall" ] }}
      - {{ after: {LEVEL_GAP_SECS}s, notify: [ "responder:oncall" ] }}
      - {{ after: 1h, notify: [ "responder:oncall" ] }}
routes:
  - {{ match: [], policy: main }}
notifiers:
  webhooks: [ {{ name: hook, url: "{receiver}/hook", timeout: 2s }} ]
  retry: {{ initial_backoff: 200ms, max_backoff: 1s, max_age: 1h }}
"#
    )
}

/// Two engines on one database, each in a folder of its own, paging `receiver` (its base
/// URL): the first started leads.
struct Pair {
    _dirs: Vec<TestDir>,
    ports: [u16; 2],
    leader: EngineProcess,
    /// Kept running until the pair is dropped.
    _follower: EngineProcess,
}

impl Pair {
    async fn start(store_url: &str, receiver: &str) -> Pair {
        Pair::start_with(store_url, receiver, "").await
    }

    /// With `server:` keys (`advertise_url: none`) in both engines' config.
    async fn start_with(store_url: &str, receiver: &str, server: &str) -> Pair {
        let rules = support::default_rules();
        let mut text = config(store_url, receiver);
        if !server.is_empty() {
            text.push_str(&format!("server: {{ {server} }}\n"));
        }
        let dirs: Vec<TestDir> = (0..2)
            .map(|_| TestDir::new(&text, &[("default.yaml", &rules)]))
            .collect();
        let ports = [free_port(), free_port()];
        let mut leader = EngineProcess::spawn(&dirs[0], ports[0]);
        leader.wait_ready().await;
        let mut follower = EngineProcess::spawn(&dirs[1], ports[1]);
        follower.wait_ready().await;
        Pair {
            _dirs: dirs,
            ports,
            leader,
            _follower: follower,
        }
    }
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

async fn role(http: &reqwest::Client, url: &str) -> Option<String> {
    let text = http
        .get(format!("{url}/-/ready"))
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    if text.contains(": leader") {
        Some("leader".into())
    } else if text.contains(": follower") {
        Some("follower".into())
    } else {
        None
    }
}

async fn push(http: &reqwest::Client, url: &str, service: &str, region: &str) {
    let ends = (Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
    let body = json!([{ "labels": { "alertname": "Down", "severity": "critical", "service": service, "region": region }, "endsAt": ends }]);
    push_alerts(http, url, body).await;
}

/// Three engines on one database: SIGKILL the leader during an escalation; another takes over
/// within the lease time, the next level is paged once at its time, nothing is lost, and
/// pushes and acks to any engine land.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_leader_is_replaced_and_the_escalation_goes_on_once() {
    let db = PgDatabase::create().await;
    let receiver = Receiver::start().await;
    let rules = support::default_rules();
    let dirs: Vec<TestDir> = (0..3)
        .map(|_| TestDir::new(&config(&db.url, &receiver.url), &[("default.yaml", &rules)]))
        .collect();
    let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let http = http();
    let mut engines: Vec<Option<EngineProcess>> = Vec::new();
    for (dir, port) in dirs.iter().zip(&ports) {
        let mut engine = EngineProcess::spawn(dir, *port);
        engine.wait_ready().await;
        engines.push(Some(engine));
    }
    let url = |i: usize| format!("http://127.0.0.1:{}", ports[i]);
    assert_eq!(
        role(&http, &url(0)).await.as_deref(),
        Some("leader"),
        "the first engine up leads"
    );
    assert_eq!(role(&http, &url(1)).await.as_deref(), Some("follower"));
    assert_eq!(role(&http, &url(2)).await.as_deref(), Some("follower"));

    // A push to a follower lands: the leader opens the incident and pages level 0.
    push(&http, &url(1), "storage", "china-east").await;
    let seen_by_other = list_incidents(&http, &url(2)).await;
    assert_eq!(seen_by_other.len(), 1, "{seen_by_other:?}");
    let incident = seen_by_other[0]["id"].as_i64().unwrap();
    let level0 = eventually(Duration::from_secs(10), || async {
        receiver
            .deduped(incident)
            .into_iter()
            .find(|g| g.level == Some(0))
    })
    .await
    .expect("level 0 paged");
    assert_eq!(level0.event, "triggered");

    // Kill the leader between level 0 and level 1.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let killed_at = Utc::now();
    engines[0].as_mut().unwrap().kill();
    let takeover = eventually(Duration::from_secs(LEASE_SECS * 3), || async {
        for i in [1, 2] {
            if role(&http, &url(i)).await.as_deref() == Some("leader") {
                return Some((i, Utc::now()));
            }
        }
        None
    })
    .await
    .expect("another engine takes over");
    let (leader, took_over_at) = takeover;
    let took = (took_over_at - killed_at).num_milliseconds();
    println!("takeover after SIGKILL of the leader: {took} ms (lease {LEASE_SECS} s)");
    // The lease runs out at most LEASE after the last renewal, which came before the kill;
    // a little is added for polling /-/ready.
    assert!(
        took <= (LEASE_SECS as i64 * 1000) + 750,
        "takeover took {took} ms"
    );
    let follower = if leader == 1 { 2 } else { 1 };

    // Level 1 at its time, once, from the new leader.
    let due = level0.at + chrono::Duration::seconds(LEVEL_GAP_SECS);
    let level1 = eventually(Duration::from_secs(20), || async {
        receiver
            .deduped(incident)
            .into_iter()
            .find(|g| g.level == Some(1))
    })
    .await
    .expect("level 1 paged after the takeover");
    assert_eq!(level1.event, "escalated");
    let late = (level1.at - due).num_milliseconds();
    println!("level 1 paged {late} ms after its due time");
    assert!(
        (-300..=2500).contains(&late),
        "level 1 at {} for due {due}",
        level1.at
    );

    // An ack through the follower lands, and everyone paged hears of it.
    let response = http
        .post(format!("{}/api/v1/incidents/{incident}/ack", url(follower)))
        .json(&json!({ "by": "alice" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let acked: Value = response.json().await.unwrap();
    assert_eq!(acked["status"], "acknowledged");
    assert_eq!(acked["acknowledged_by"], "alice");
    eventually(Duration::from_secs(10), || async {
        receiver
            .deduped(incident)
            .into_iter()
            .find(|g| g.event == "acknowledged")
    })
    .await
    .expect("the ack is paged");

    // Pushes to either remaining engine land.
    push(&http, &url(leader), "sqldb", "china-north").await;
    push(&http, &url(follower), "compute", "china-west").await;
    let all = list_incidents(&http, &url(follower)).await;
    let services: BTreeSet<String> = all
        .iter()
        .map(|i| i["services"][0].as_str().unwrap().to_string())
        .collect();
    assert_eq!(all.len(), 3, "{all:?}");
    assert_eq!(
        services,
        ["compute", "sqldb", "storage"]
            .iter()
            .map(|s| s.to_string())
            .collect()
    );

    // No page lost, none doubled: each (event, level) of the incident reached the deduping
    // receiver under exactly one delivery id, and every stored page was delivered.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut by_kind: BTreeMap<(String, Option<u64>), BTreeSet<String>> = BTreeMap::new();
    for g in receiver
        .got()
        .into_iter()
        .filter(|g| g.incident == incident)
    {
        by_kind
            .entry((g.event.clone(), g.level))
            .or_default()
            .insert(g.delivery.clone());
    }
    for ((event, level), ids) in &by_kind {
        assert_eq!(
            ids.len(),
            1,
            "{event} level {level:?} went out as {} different pages",
            ids.len()
        );
    }
    let levels: Vec<Option<u64>> = receiver
        .deduped(incident)
        .iter()
        .filter(|g| g.event != "acknowledged")
        .map(|g| g.level)
        .collect();
    assert_eq!(
        levels,
        vec![Some(0), Some(1)],
        "no level skipped, none repeated"
    );
    let store = tocsin::store::Store::open(&db.url).await.unwrap();
    let pages = store.pages_of(incident).await.unwrap();
    assert!(!pages.is_empty());
    for p in &pages {
        assert_eq!(
            p.status,
            tocsin::store::OutboxStatus::Delivered,
            "page {} {:?}",
            p.page.id,
            p.page.event
        );
    }
    store.close().await;
    drop(engines);
    db.drop_db().await;
}

/// Two engines given the same `engine_id` (one shared config): the second is refused while
/// the first holds and renews the lease under it, and the first leads on. Killed, the first
/// is replaced under the same id at once: its successor sees that nobody renews the lease
/// and takes it back, with a new term, well before it would run out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_live_engine_under_one_engine_id_is_refused_and_a_killed_one_is_replaced() {
    let db = PgDatabase::create().await;
    let receiver = Receiver::start().await;
    let rules = support::default_rules();
    // A 10 s lease, renewed every 2 s: a restart takes the lease back after watching it for
    // 3 s, at least 5 s before it could run out.
    let shared = config_with(&db.url, &receiver.url, "lease: 10s, engine_id: tocsin-a");
    let dirs: Vec<TestDir> = (0..2)
        .map(|_| TestDir::new(&shared, &[("default.yaml", &rules)]))
        .collect();
    let http = http();
    let mut first = EngineProcess::spawn(&dirs[0], free_port());
    first.wait_ready().await;
    let ready = |url: String| {
        let http = http.clone();
        async move {
            let r = http.get(format!("{url}/-/ready")).send().await.ok()?;
            r.text().await.ok()
        }
    };
    let said = ready(first.url.clone()).await.unwrap_or_default();
    assert!(said.contains("leader (term 1)"), "{said}");

    let (code, stdout, stderr) = run_tocsin(
        dirs[1].path(),
        &["run", "--config", "config.yaml", "--listen", "127.0.0.1:0"],
    )
    .await;
    assert_eq!(code, 1, "stdout:\n{stdout}\nstderr:\n{stderr}");
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.contains(" INFO ")).collect();
    assert_eq!(lines.len(), 1, "one line:\n{stderr}");
    assert!(
        lines[0].contains("engine id \"tocsin-a\" is in use") && lines[0].contains("renewed"),
        "{stderr}"
    );
    // The first leads on and pages.
    let said = ready(first.url.clone()).await.unwrap_or_default();
    assert!(said.contains("leader (term 1)"), "{said}");
    push(&http, &first.url, "storage", "china-east").await;
    eventually(Duration::from_secs(10), || async {
        receiver.got().into_iter().find(|g| g.event == "triggered")
    })
    .await
    .expect("the first engine pages");

    first.kill();
    let mut second = EngineProcess::spawn(&dirs[1], free_port());
    second.wait_ready().await;
    let led = eventually(Duration::from_secs(20), || async {
        let said = ready(second.url.clone()).await?;
        said.contains("leader (term 2)").then_some(())
    })
    .await;
    let log = std::fs::read_to_string(&second.log).unwrap_or_default();
    assert!(led.is_some(), "the restarted engine leads:\n{log}");
    assert!(
        log.contains("took back the lease nobody renewed"),
        "taken back, not waited out:\n{log}"
    );
    drop(second);
    db.drop_db().await;
}

/// A page in flight when its leader dies goes out from the next leader soon after the
/// takeover, under its same delivery id: its claim lasts the webhook's timeout (2 s) and a
/// margin, not a fixed minute that would hold every later page of its lane too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_in_flight_when_its_leader_dies_goes_out_from_the_next_leader() {
    use crate::support::paging::{Answer, Receiver as ScriptedReceiver};
    let db = PgDatabase::create().await;
    // The first attempt never gets an answer: the leader dies while it waits.
    let receiver = ScriptedReceiver::start(vec![Answer::Hang], Answer::Status(200)).await;
    let base = receiver.url.trim_end_matches("/hook").to_string();
    let mut engines = Pair::start(&db.url, &base).await;
    let ports = engines.ports;
    let url = |i: usize| format!("http://127.0.0.1:{}", ports[i]);
    let http = http();
    assert_eq!(role(&http, &url(0)).await.as_deref(), Some("leader"));

    push(&http, &url(0), "storage", "china-east").await;
    let first = eventually(Duration::from_secs(10), || async {
        receiver.received().first().cloned()
    })
    .await
    .expect("the leader starts the first page");
    let delivery = first.header("x-tocsin-delivery").unwrap();
    engines.leader.kill();
    let killed = tokio::time::Instant::now();
    let again = eventually(Duration::from_secs(30), || async {
        receiver
            .received()
            .into_iter()
            .skip(1)
            .find(|r| r.header("x-tocsin-delivery").as_deref() == Some(&delivery))
    })
    .await
    .expect("the next leader sends the page again");
    let after = again.at - killed;
    println!(
        "the page in flight went again {} ms after the kill",
        after.as_millis()
    );
    // The lease (3 s) passes on, then the claim (2 s + 2 s from the first attempt) runs out.
    assert!(
        after < Duration::from_secs(LEASE_SECS + 8),
        "the page waited {after:?} after the kill"
    );
    assert_eq!(role(&http, &url(1)).await.as_deref(), Some("leader"));
    drop(engines);
    db.drop_db().await;
}
