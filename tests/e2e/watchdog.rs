//! Watching the watcher: the outbound dead-man's switch (`watchdog:`) pings only while the
//! engine is healthy, the engine loop's pulse shows on /metrics, and on PostgreSQL a leader
//! whose engine loop is wedged lets its lease run out so that a follower takes over and pages.
//!
//! Real binaries, a real webhook receiver and watchdog URL on 127.0.0.1. The wedge is the
//! debug build's `TOCSIN_TEST_WEDGE_FILE`: the engine loop waits for ever once the file
//! exists, while the API and the lease task run on.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use chrono::Utc;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::support::{
    default_rules, eventually, free_port, metric, push_alerts, PgDatabase, TestDir, CATALOG,
};

/// A receiver on 127.0.0.1 that keeps every POST (its path and `Authorization`), answering
/// 500 while `failing` is set.
struct Receiver {
    url: String,
    got: Arc<Mutex<Vec<(String, String)>>>,
    failing: Arc<AtomicBool>,
    task: JoinHandle<()>,
}

impl Receiver {
    async fn start() -> Receiver {
        let got: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
        let failing = Arc::new(AtomicBool::new(false));
        let (keep, fail) = (Arc::clone(&got), Arc::clone(&failing));
        let app = Router::new().route(
            "/{which}",
            post(
                move |axum::extract::Path(which): axum::extract::Path<String>,
                      headers: HeaderMap| {
                    let (keep, fail) = (Arc::clone(&keep), Arc::clone(&fail));
                    async move {
                        let auth = headers
                            .get("authorization")
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or_default()
                            .to_string();
                        keep.lock().unwrap().push((which.clone(), auth));
                        if which == "hook" && fail.load(Ordering::SeqCst) {
                            StatusCode::INTERNAL_SERVER_ERROR
                        } else {
                            StatusCode::OK
                        }
                    }
                },
            ),
        );
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Receiver {
            url,
            got,
            failing,
            task,
        }
    }

    fn count(&self, which: &str) -> usize {
        self.got
            .lock()
            .unwrap()
            .iter()
            .filter(|(w, _)| w == which)
            .count()
    }

    fn auths(&self, which: &str) -> Vec<String> {
        self.got
            .lock()
            .unwrap()
            .iter()
            .filter(|(w, _)| w == which)
            .map(|(_, a)| a.clone())
            .collect()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The real binary with `TOCSIN_TEST_WEDGE_FILE` set to `wedge`.
struct Engine {
    child: Child,
    url: String,
    log: PathBuf,
}

impl Engine {
    fn spawn(config: &Path, wedge: &Path) -> Engine {
        let port = free_port();
        let log = config.with_file_name(format!("engine-{port}.log"));
        let child = Command::new(env!("CARGO_BIN_EXE_tocsin"))
            .args(["run", "--config"])
            .arg(config)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .env("TOCSIN_LOG", "info")
            .env("TOCSIN_TEST_WEDGE_FILE", wedge)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("spawn tocsin");
        Engine {
            child,
            url: format!("http://127.0.0.1:{port}"),
            log,
        }
    }

    async fn wait_ready(&self, http: &reqwest::Client) {
        let ready = eventually(Duration::from_secs(20), || async {
            let response = http
                .get(format!("{}/-/ready", self.url))
                .send()
                .await
                .ok()?;
            (response.status() == 200).then_some(())
        })
        .await;
        assert!(
            ready.is_some(),
            "engine not ready; log:\n{}",
            self.log_text()
        );
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    async fn metrics(&self, http: &reqwest::Client) -> String {
        match http.get(format!("{}/metrics", self.url)).send().await {
            Ok(response) => response.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        }
    }

    async fn ready_text(&self, http: &reqwest::Client) -> String {
        match http.get(format!("{}/-/ready", self.url)).send().await {
            Ok(response) => response.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        }
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

fn config(receiver: &str, store: &str, watchdog: &str) -> String {
    format!(
        r#"{CATALOG}
{store}
rule_files: [ "rules/*.yaml" ]
responders:
  - {{ id: oncall, webhook: hook }}
escalation_policies:
  - name: main
    levels:
      - {{ after: 0s, notify: [ "responder:oncall" ] }}
routes:
  - {{ match: [], policy: main }}
notifiers:
  webhooks: [ {{ name: hook, url: "{receiver}/hook", timeout: 2s }} ]
  retry: {{ initial_backoff: 200ms, max_backoff: 500ms, max_age: 1h }}
{watchdog}
"#
    )
}

async fn push(http: &reqwest::Client, url: &str, service: &str, region: &str) {
    let ends = (Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
    let body = json!([{ "labels": { "alertname": "Down", "severity": "critical", "service": service, "region": region }, "endsAt": ends }]);
    push_alerts(http, url, body).await;
}

/// Pings counted over `wait`.
async fn pings_during(receiver: &Receiver, wait: Duration) -> usize {
    let before = receiver.count("ping");
    tokio::time::sleep(wait).await;
    receiver.count("ping") - before
}

/// The watchdog pings every `every` with its secret while the engine is healthy; it stops
/// while pages fail and starts again once one is delivered; it stops when the engine loop
/// wedges, as `tocsin_engine_loop_last_turn_timestamp_seconds` stops moving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_watchdog_pings_only_while_the_engine_is_healthy() {
    let receiver = Receiver::start().await;
    let watchdog = format!(
        "watchdog: {{ url: \"{}/ping\", every: 1s, secret_file: secrets/watchdog }}",
        receiver.url
    );
    let dir = TestDir::new(
        &config(&receiver.url, "", &watchdog),
        &[("default.yaml", &default_rules())],
    );
    dir.write("secrets/watchdog", "s3cret\n");
    let wedge = dir.path().join("wedge");
    let engine = Engine::spawn(&dir.config_path(), &wedge);
    let http = http();
    engine.wait_ready(&http).await;

    // Healthy: a ping a second, with the secret as a bearer token.
    let pinged = pings_during(&receiver, Duration::from_millis(3500)).await;
    assert!((2..=5).contains(&pinged), "{pinged} pings in 3.5s");
    assert!(receiver.auths("ping").iter().all(|a| a == "Bearer s3cret"));
    let exposition = engine.metrics(&http).await;
    let turned = metric(
        &exposition,
        "tocsin_engine_loop_last_turn_timestamp_seconds",
    )
    .expect("the loop's last turn on /metrics");
    let now = Utc::now().timestamp_millis() as f64 / 1000.0;
    assert!(
        (now - 2.0..=now + 1.0).contains(&turned),
        "{turned} at {now}"
    );

    // Pages fail: the pings stop.
    receiver.failing.store(true, Ordering::SeqCst);
    push(&http, &engine.url, "storage", "china-east").await;
    eventually(Duration::from_secs(10), || async {
        (receiver.count("hook") >= 2).then_some(())
    })
    .await
    .expect("the page is tried and retried");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        pings_during(&receiver, Duration::from_secs(3)).await,
        0,
        "no ping while pages fail; log:\n{}",
        engine.log_text()
    );
    assert!(engine.log_text().contains("pages are failing on webhook"));

    // The page goes through: the pings start again, and the channel's last success shows.
    receiver.failing.store(false, Ordering::SeqCst);
    eventually(Duration::from_secs(10), || async {
        (pings_during(&receiver, Duration::from_millis(500)).await > 0).then_some(())
    })
    .await
    .expect("pings again once a page is delivered");
    let exposition = engine.metrics(&http).await;
    let delivered = metric(
        &exposition,
        "tocsin_notifier_last_success_timestamp_seconds{channel=\"webhook\"}",
    )
    .expect("the webhook's last success on /metrics");
    let now = Utc::now().timestamp_millis() as f64 / 1000.0;
    assert!(
        (now - 15.0..=now + 1.0).contains(&delivered),
        "{delivered} at {now}"
    );

    // The engine loop wedges: the pings stop, its last turn stays where it was, and the
    // process still answers.
    std::fs::write(&wedge, "").unwrap();
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(
        pings_during(&receiver, Duration::from_secs(3)).await,
        0,
        "no ping while the loop is wedged; log:\n{}",
        engine.log_text()
    );
    let exposition = engine.metrics(&http).await;
    let turned = metric(
        &exposition,
        "tocsin_engine_loop_last_turn_timestamp_seconds",
    )
    .unwrap();
    let now = Utc::now().timestamp_millis() as f64 / 1000.0;
    assert!(now - turned > 5.0, "last turn {turned} at {now}");
    assert!(engine
        .log_text()
        .contains("the engine loop has not turned for"));
}

/// Two engines on one PostgreSQL: the leader's engine loop wedges while its process (the
/// API, the lease task) runs on. It stops renewing the lease, so the other engine takes over
/// within a few seconds and pages an alert pushed after the wedge.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_whose_engine_loop_is_wedged_loses_the_lease_and_a_follower_pages() {
    let db = PgDatabase::create().await;
    let receiver = Receiver::start().await;
    let store = format!("store: {{ url: \"{}\", lease: 3s }}", db.url);
    let dirs: Vec<TestDir> = (0..2)
        .map(|_| {
            TestDir::new(
                &config(&receiver.url, &store, ""),
                &[("default.yaml", &default_rules())],
            )
        })
        .collect();
    let http = http();
    let wedge = dirs[0].path().join("wedge");
    let first = Engine::spawn(&dirs[0].config_path(), &wedge);
    first.wait_ready(&http).await;
    let second = Engine::spawn(&dirs[1].config_path(), &dirs[1].path().join("never"));
    second.wait_ready(&http).await;
    assert!(first.ready_text(&http).await.contains(": leader"));
    assert!(second.ready_text(&http).await.contains(": follower"));

    std::fs::write(&wedge, "").unwrap();
    let wedged_at = tokio::time::Instant::now();
    let took_over = eventually(Duration::from_secs(15), || async {
        second
            .ready_text(&http)
            .await
            .contains(": leader")
            .then(|| wedged_at.elapsed())
    })
    .await;
    let took_over = took_over.unwrap_or_else(|| {
        panic!(
            "the follower did not take over; wedged leader's log:\n{}",
            first.log_text()
        )
    });
    // Noticed after 2s without a turn, then the 3s lease runs out; a renewal's slack.
    assert!(
        took_over < Duration::from_secs(8),
        "took over after {took_over:?}"
    );
    assert!(first
        .log_text()
        .contains("the engine loop is not turning: not renewing the leader lease"));
    let metrics = first.metrics(&http).await;
    assert_eq!(metric(&metrics, "tocsin_leader"), Some(0.0));

    // The new leader pages what comes in, pushed to either engine.
    push(&http, &first.url, "storage", "china-east").await;
    eventually(Duration::from_secs(15), || async {
        (receiver.count("hook") >= 1).then_some(())
    })
    .await
    .unwrap_or_else(|| panic!("no page; new leader's log:\n{}", second.log_text()));
    let incidents: Value = http
        .get(format!("{}/api/v1/incidents", second.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        incidents["incidents"].as_array().map(Vec::len),
        Some(1),
        "{incidents}"
    );
    drop((first, second));
    db.drop_db().await;
}

/// `tocsin check` names each bad watchdog key with what to write instead.
#[tokio::test]
async fn check_refuses_a_bad_watchdog() {
    let dir = TestDir::new(
        "watchdog: { url: \"ftp://example.com/ping\", every: 100ms, secret_file: secrets/none }\n",
        &[],
    );
    let (code, out, err) = crate::support::run_tocsin(
        dir.path(),
        &["check", "--config", dir.config_path().to_str().unwrap()],
    )
    .await;
    assert_eq!(code, 1, "{out}{err}");
    let all = format!("{out}{err}");
    for expected in [
        "invalid watchdog url \"ftp://example.com/ping\": expected an http(s) URL",
        "watchdog every 100ms is too short: at least 1s",
        "watchdog secret file",
    ] {
        assert!(all.contains(expected), "{expected:?} not in:\n{all}");
    }
    assert!(all.contains("config.yaml:1:"), "{all}");
}
