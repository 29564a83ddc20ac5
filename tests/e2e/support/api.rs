//! Helpers for the interface tests (tests/e2e/api.rs, tests/e2e/dashboard.rs): the config
//! they run, signals, raw HTTP, and the real peers (Prometheus, chromedriver + headless
//! Chromium).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use serde_json::Value;
use tocsin::engine::Input;
use tocsin::signal::{Signal, SourceKind};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::{TestDir, TestEngine, CATALOG};

/// The ack-link key the tests' engines use.
pub const ACK_KEY: &str = "test-ack-key";
/// The API token of engines started with auth.
pub const TOKEN: &str = "s3cret-token";

/// Responders, an on-call schedule that started long ago (alice first, bob from the second
/// week), one policy paging it, Sev 0–3 paged and Sev 4 to the `triage` queue.
pub const PAGING: &str = r#"
responders:
  - { id: alice, name: Alice, email: alice@example.com }
  - { id: bob, email: bob@example.com }
schedules:
  - name: primary
    timezone: UTC
    handoff: "0 0 9 * * Mon"
    start: 2020-01-06T09:00:00Z
    participants: [alice, bob]
escalation_policies:
  - name: default
    levels:
      - { after: 0s, notify: [ "schedule:primary" ] }
notifiers:
  email:
    from: tocsin@example.com
    file: { dir: data/outbox }
"#;

pub const ROUTES: &str = r#"
routes:
  - { match: [ 'severity=~"0|1|2|3"' ], policy: default }
  - { match: [ 'severity="4"' ], queue: triage }
"#;

/// The whole config.yaml: `server` (ack key file, optional auth), catalog, paging, `routes`.
pub fn config_yaml(auth: bool, routes: &str) -> String {
    let auth = if auth {
        "\n  auth: { tokens_file: secrets/api-tokens }"
    } else {
        ""
    };
    format!("server:\n  ack_secret_file: secrets/ack-key{auth}\n{CATALOG}{PAGING}{routes}")
}

/// A test folder with the default rules, the ack key and (with `auth`) the tokens file.
pub fn test_dir(auth: bool) -> TestDir {
    let dir = TestDir::new(
        &config_yaml(auth, ROUTES),
        &[("default.yaml", &crate::support::default_rules())],
    );
    dir.write("secrets/ack-key", &format!("{ACK_KEY}\n"));
    dir.write("secrets/api-tokens", &format!("# on-call\n{TOKEN}\n"));
    dir
}

pub async fn engine(auth: bool) -> (TestDir, TestEngine) {
    let dir = test_dir(auth);
    let engine = TestEngine::start(&dir).await;
    (dir, engine)
}

pub fn alert(labels: &[(&str, &str)]) -> Signal {
    let labels: BTreeMap<String, String> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Signal::new(SourceKind::Alert, labels, chrono::Utc::now())
}

/// Send signals through the engine's handle; returns the incident ids they joined.
pub async fn send(engine: &TestEngine, signals: Vec<Signal>) -> Vec<i64> {
    match engine
        .running
        .engine()
        .send(Input::Signals(signals))
        .await
        .expect("engine takes signals")
    {
        tocsin::engine::Reply::Signals(ids) => ids.into_iter().flatten().collect(),
        other => panic!("unexpected reply {other:?}"),
    }
}

/// Sev 2: storage is down in china-east (contoso and fabrikam hit, one region).
pub fn storage_east() -> Signal {
    alert(&[
        ("alertname", "StorageDown"),
        ("severity", "critical"),
        ("service", "storage"),
        ("region", "china-east"),
    ])
}

/// With [`storage_east`], a Sev 1: two customers, two regions, SLA breached.
pub fn storage_north() -> Signal {
    alert(&[
        ("alertname", "StorageDown"),
        ("severity", "critical"),
        ("service", "storage"),
        ("region", "china-north"),
    ])
}

/// A Sev 4 (low business impact) that waits in the `triage` queue. No region, so it joins
/// no incident of another service (correlation is by service or region).
pub fn minor(service: &str, name: &str) -> Signal {
    alert(&[
        ("alertname", name),
        ("severity", "info"),
        ("service", service),
    ])
}

/// Open a Sev 1 incident (two critical storage alerts in two regions); returns its id.
pub async fn open_sev1(engine: &TestEngine) -> i64 {
    let ids = send(engine, vec![storage_east(), storage_north()]).await;
    assert_eq!(ids.first(), ids.last(), "one incident: {ids:?}");
    let id = ids[0];
    let (_, incident) = engine.get(&format!("/api/v1/incidents/{id}")).await;
    assert_eq!(incident["severity"], 1, "{incident}");
    id
}

/// A value of one series from /metrics text: `name{labels}` exactly as exposed, or `name`.
#[allow(unused_imports)] // not every test binary that includes this module reads metrics
pub use crate::support::metric;

pub async fn metrics_text(http: &reqwest::Client, base: &str) -> String {
    http.get(format!("{base}/metrics"))
        .send()
        .await
        .expect("GET /metrics")
        .text()
        .await
        .unwrap()
}

/// An HTTP/1.1 exchange written by hand, for what reqwest will not send (invalid UTF-8 is
/// fine there, but chunked bodies are not) and for bodies the server refuses before reading:
/// the body is written while the answer is read, so an early 413 is seen, not a reset.
pub async fn raw_request(
    addr: SocketAddr,
    head: &str,
    body: Vec<Vec<u8>>,
) -> (u16, String, String) {
    let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let (mut reader, mut writer) = stream.into_split();
    let head = head.to_string();
    let write = tokio::spawn(async move {
        if writer.write_all(head.as_bytes()).await.is_err() {
            return;
        }
        for chunk in body {
            if writer.write_all(&chunk).await.is_err() {
                return;
            }
        }
        let _ = writer.flush().await;
        // Keep our side open until the answer is read, as HTTP clients do: dropping the
        // write half sends FIN, and the server (hyper, no half-close) then drops the request
        // it is still reading.
        std::future::pending::<()>().await;
    });
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(30), async {
        let mut buf = [0u8; 8192];
        loop {
            match reader.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => answer.extend_from_slice(&buf[..n]),
            }
            if complete(&answer) {
                break;
            }
        }
    })
    .await;
    assert!(read.is_ok(), "no complete answer within 30 s");
    write.abort();
    let text = String::from_utf8_lossy(&answer).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"));
    (status, head.to_string(), body.to_string())
}

/// Has a whole response with a Content-Length body arrived?
fn complete(answer: &[u8]) -> bool {
    let text = String::from_utf8_lossy(answer);
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        return false;
    };
    head.lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse::<usize>().ok())
                .flatten()
        })
        .is_some_and(|len| body.len() >= len)
}

/// The `error` of a JSON error answer, asserting it is one.
pub fn error_of(body: &Value) -> String {
    body.get("error")
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("not a JSON error: {body}"))
        .to_string()
}

/// A client that follows no redirects (the dashboard answers 303s) and keeps no cookies.
pub fn plain_http() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// The ids of a list of incidents (a queue, or a page of `GET /api/v1/incidents`: its
/// `incidents`), in its order.
pub fn ids(list: &Value) -> Vec<i64> {
    let list = list.get("incidents").unwrap_or(list);
    list.as_array()
        .unwrap_or_else(|| panic!("not a list: {list}"))
        .iter()
        .map(|i| i["id"].as_i64().unwrap())
        .collect()
}
