//! End-to-end tests of the sources: real Prometheus and Alertmanager processes, probes
//! against servers started here, and the ingest API, all on 127.0.0.1 with bounded waits.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::support;
use crate::support::sources as sources_support;
use crate::support::sources::{
    closed_port, incidents, metric, pong_server, services, tls_server, wait_incident,
    wait_resolved, Peer,
};
use crate::support::{free_port, TestDir, TestEngine, CATALOG};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use tocsin::config::{Config, ProbeConfig};
use tocsin::signal::ProbeResult;
use tocsin::sources::probe::Prober;

const WAIT: Duration = Duration::from_secs(20);

/// A Prometheus rule that fires at its first evaluation.
const PROMETHEUS_RULES: &str = r#"
groups:
  - name: storage
    rules:
      - alert: StorageErrors
        expr: vector(1) > 0
        for: 0s
        labels: { severity: critical, service: storage, region: china-east }
        annotations: { summary: "storage errors in china-east" }
"#;

fn prometheus_config(alertmanager: Option<&str>) -> String {
    let mut config =
        "global: { evaluation_interval: 1s, scrape_interval: 1m }\nrule_files: [ rules.yml ]\n"
            .to_string();
    if let Some(target) = alertmanager {
        config.push_str(&format!(
            "alerting:\n  alertmanagers:\n    - api_version: v2\n      static_configs: [ {{ targets: [ \"{target}\" ] }} ]\n"
        ));
    }
    config
}

fn engine_dir(sections: &str) -> TestDir {
    TestDir::new(
        &format!("{CATALOG}\nincidents: {{ resolve_after: 1s }}\n{sections}"),
        &[("default.yaml", &support::default_rules())],
    )
}

/// The incident a critical storage alert in china-east gives: Sev 2 (below SLA, one
/// service, one region), the two customers subscribed there.
fn assert_storage_incident(incident: &Value) {
    assert_eq!(incident["severity"], 2, "{incident:#}");
    assert_eq!(incident["services"], json!(["storage"]), "{incident:#}");
    assert_eq!(incident["regions"], json!(["china-east"]), "{incident:#}");
    assert_eq!(
        incident["customers"],
        json!(["contoso", "fabrikam"]),
        "{incident:#}"
    );
    assert_eq!(
        incident["title"], "storage errors in china-east",
        "{incident:#}"
    );
}

fn is_storage(incident: &Value) -> bool {
    services(incident) == ["storage"]
}

// ----- Prometheus -----------------------------------------------------------------------

#[tokio::test]
async fn a_firing_prometheus_alert_is_pulled_from_api_v1_alerts_into_an_incident() {
    let mut prometheus = Peer::prometheus(
        &prometheus_config(None),
        Some(PROMETHEUS_RULES),
        free_port(),
    );
    prometheus.wait_ready().await;
    let dir = engine_dir(&format!(
        "sources:\n  prometheus: [ {{ name: prom, url: \"{}\", interval: 1s, timeout: 900ms }} ]\n",
        prometheus.url
    ));
    let engine = TestEngine::start(&dir).await;
    let incident = wait_incident(&engine, WAIT, "for the pulled alert", is_storage).await;
    assert_storage_incident(&incident);
    assert_eq!(
        metric(&engine, "tocsin_source_up{source=\"prom\"}").await,
        Some(1.0)
    );
    engine.stop().await;
}

#[tokio::test]
async fn prometheus_pushes_its_alert_to_api_v2_alerts_with_tocsin_as_its_alertmanager() {
    let dir = engine_dir("");
    let engine = TestEngine::start(&dir).await;
    let target = engine.url.trim_start_matches("http://").to_string();
    let mut prometheus = Peer::prometheus(
        &prometheus_config(Some(&target)),
        Some(PROMETHEUS_RULES),
        free_port(),
    );
    prometheus.wait_ready().await;
    let found = support::eventually(WAIT, || async {
        incidents(&engine).await.into_iter().find(is_storage)
    })
    .await;
    let Some(incident) = found else {
        panic!("Prometheus pushed nothing; its log:\n{}", prometheus.log());
    };
    assert_storage_incident(&incident);
    engine.stop().await;
}

#[tokio::test]
async fn an_unreachable_source_is_a_monitoring_blind_incident_until_it_answers() {
    let port = free_port();
    let dir = engine_dir(&format!(
        "sources:\n  prometheus: [ {{ name: prom, url: \"http://127.0.0.1:{port}\", interval: 1s, timeout: 500ms }} ]\n"
    ));
    let engine = TestEngine::start(&dir).await;
    let blind = wait_incident(&engine, WAIT, "for the blind spot", |i| {
        services(i) == ["monitoring"]
    })
    .await;
    assert_eq!(blind["severity"], 2, "{blind:#}");
    let title = blind["title"].as_str().unwrap();
    assert!(
        title.starts_with("tocsin cannot reach prom: cannot connect to"),
        "{title}"
    );
    assert!(
        title.contains(&format!("127.0.0.1:{port}/api/v1/alerts")),
        "{title}"
    );
    assert_eq!(
        metric(&engine, "tocsin_source_up{source=\"prom\"}").await,
        Some(0.0)
    );

    // Prometheus comes up on that port: the next pull resolves the blind spot.
    let mut prometheus = Peer::prometheus("global: { evaluation_interval: 1s }\n", None, port);
    prometheus.wait_ready().await;
    wait_resolved(&engine, &blind["id"], WAIT).await;
    assert_eq!(
        metric(&engine, "tocsin_source_up{source=\"prom\"}").await,
        Some(1.0)
    );
    engine.stop().await;
}

#[tokio::test]
async fn a_reload_starts_and_stops_pull_sources() {
    let dir = engine_dir("");
    let engine = TestEngine::start(&dir).await;
    let port = closed_port();
    let config = std::fs::read_to_string(dir.config_path()).unwrap();
    dir.write(
        "config.yaml",
        &format!(
            "{config}\nsources:\n  alertmanager: [ {{ name: am, url: \"http://127.0.0.1:{port}\", interval: 1s, timeout: 500ms }} ]\n"
        ),
    );
    let (status, body) = engine.post("/-/reload", &json!({})).await;
    assert_eq!(status, 200, "{body}");
    let blind = wait_incident(&engine, WAIT, "for the added source", |i| {
        i["title"]
            .as_str()
            .is_some_and(|t| t.starts_with("tocsin cannot reach am"))
    })
    .await;

    assert_eq!(
        metric(&engine, "tocsin_source_up{source=\"am\"}").await,
        Some(0.0)
    );

    // Removing the source resolves what it reported, its blind spot included.
    dir.write("config.yaml", &config);
    let (status, body) = engine.post("/-/reload", &json!({})).await;
    assert_eq!(status, 200, "{body}");
    wait_resolved(&engine, &blind["id"], WAIT).await;
    assert_eq!(
        metric(&engine, "tocsin_source_up{source=\"am\"}").await,
        None
    );
    engine.stop().await;
}

// ----- Alertmanager ---------------------------------------------------------------------

fn alertmanager_config(webhook: Option<&str>) -> String {
    let receiver = match webhook {
        Some(url) => format!(
            "  - name: tocsin\n    webhook_configs: [ {{ url: \"{url}\", send_resolved: true }} ]\n"
        ),
        None => "  - name: tocsin\n".to_string(),
    };
    format!(
        "route: {{ receiver: tocsin, group_by: [alertname], group_wait: 1s, group_interval: 1s, repeat_interval: 1h }}\nreceivers:\n{receiver}"
    )
}

/// Post one alert to Alertmanager's own API; `ends_at` in the past resolves it.
async fn alert_alertmanager(alertmanager: &Peer, ends_at: Option<DateTime<Utc>>) {
    let mut alert = json!({
        "labels": { "alertname": "DiskFull", "severity": "critical",
                    "service": "storage", "region": "china-east" },
        "annotations": { "summary": "storage errors in china-east" },
    });
    if let Some(end) = ends_at {
        alert["endsAt"] = json!(end.to_rfc3339());
    }
    let response = sources_support::client()
        .post(format!("{}/api/v2/alerts", alertmanager.url))
        .json(&json!([alert]))
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "{response:?}");
}

#[tokio::test]
async fn alertmanager_webhook_notifications_open_and_resolve_an_incident() {
    let dir = engine_dir("");
    let engine = TestEngine::start(&dir).await;
    let mut alertmanager = Peer::alertmanager(
        &alertmanager_config(Some(&format!("{}/api/v1/alertmanager", engine.url))),
        free_port(),
    );
    alertmanager.wait_ready().await;
    alert_alertmanager(&alertmanager, None).await;
    let incident = wait_incident(&engine, WAIT, "from the webhook", is_storage).await;
    assert_storage_incident(&incident);

    alert_alertmanager(
        &alertmanager,
        Some(Utc::now() - chrono::Duration::seconds(1)),
    )
    .await;
    let resolved = wait_resolved(&engine, &incident["id"], WAIT).await;
    let impacts = resolved["impacts"].as_array().unwrap();
    assert!(!impacts.is_empty());
    assert!(
        impacts.iter().all(|i| !i["cleared_at"].is_null()),
        "{resolved:#}"
    );
    engine.stop().await;
}

#[tokio::test]
async fn alerts_pulled_from_alertmanager_open_and_resolve_an_incident() {
    let mut alertmanager = Peer::alertmanager(&alertmanager_config(None), free_port());
    alertmanager.wait_ready().await;
    let dir = engine_dir(&format!(
        "sources:\n  alertmanager: [ {{ name: am, url: \"{}\", interval: 1s, timeout: 900ms }} ]\n",
        alertmanager.url
    ));
    let engine = TestEngine::start(&dir).await;
    alert_alertmanager(&alertmanager, None).await;
    let incident = wait_incident(&engine, WAIT, "from the pull", is_storage).await;
    assert_storage_incident(&incident);

    // Resolved in Alertmanager, the alert leaves its active list: one resolved signal.
    alert_alertmanager(
        &alertmanager,
        Some(Utc::now() - chrono::Duration::seconds(1)),
    )
    .await;
    wait_resolved(&engine, &incident["id"], WAIT).await;
    engine.stop().await;
}

// ----- Probes, measured directly ----------------------------------------------------------

fn prober(yaml: &str) -> Prober {
    let probe: ProbeConfig = serde_yaml::from_str(yaml).unwrap();
    Prober::new(&probe, &Config::default())
}

async fn probe_once(yaml: &str) -> ProbeResult {
    prober(yaml).run(Utc::now()).await
}

/// The endpoints the probes measure, and how many connections it accepted.
async fn web_server() -> (std::net::SocketAddr, Arc<AtomicUsize>) {
    use axum::serve::ListenerExt;
    let app = Router::new()
        .route(
            "/health",
            get(|| async { Json(json!({ "status": "ok", "version": "1.2" })) }),
        )
        .route(
            "/degraded",
            get(|| async { Json(json!({ "status": "degraded" })) }),
        )
        .route("/text", get(|| async { "all good" }))
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(3)).await;
                "late"
            }),
        )
        .route(
            "/broken",
            get(|| async { (StatusCode::SERVICE_UNAVAILABLE, "down") }),
        )
        .route(
            "/login",
            post(|headers: HeaderMap, body: String| async move {
                let header_ok = headers.get("x-probe").is_some_and(|v| v == "yes");
                if header_ok && body == "ping" {
                    (StatusCode::CREATED, "welcome")
                } else {
                    (StatusCode::BAD_REQUEST, "who are you")
                }
            }),
        );
    let connections = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&connections);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let listener = listener.tap_io(move |_| {
        counter.fetch_add(1, Ordering::SeqCst);
    });
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (addr, connections)
}

#[tokio::test]
async fn an_http_probe_of_an_endpoint_that_is_up_measures_it_on_fresh_connections() {
    let (addr, connections) = web_server().await;
    let probe = prober(&format!(
        "{{ name: up, kind: http, url: 'http://{addr}/health', timeout: 2s, interval: 5s }}"
    ));
    for _ in 0..3 {
        let result = probe.run(Utc::now()).await;
        assert!(result.success, "{result:?}");
        assert_eq!(result.status_code, Some(200));
        assert_eq!(
            result.body,
            Some(json!({ "status": "ok", "version": "1.2" }))
        );
        assert!(
            result.latency_ms > 0.0 && result.latency_ms < 2000.0,
            "{result:?}"
        );
        assert_eq!(result.cert_expiry_days, None);
        assert_eq!(result.error, None);
    }
    assert_eq!(
        connections.load(Ordering::SeqCst),
        3,
        "one connection per probe"
    );

    let text = probe_once(&format!(
        "{{ name: t, kind: http, url: 'http://{addr}/text' }}"
    ))
    .await;
    assert_eq!(text.body, Some(json!("all good")));
}

#[tokio::test]
async fn an_http_probe_sends_its_method_headers_and_body_and_checks_the_status() {
    let (addr, _) = web_server().await;
    let login = |extra: &str| {
        format!(
            "{{ name: login, kind: http, url: 'http://{addr}/login', method: POST, body: ping, {extra} }}"
        )
    };
    let result = probe_once(&login("headers: { X-Probe: 'yes' }")).await;
    assert!(result.success, "{result:?}");
    assert_eq!(result.status_code, Some(201));
    let result = probe_once(&login("headers: { X-Probe: 'no' }")).await;
    assert!(!result.success);
    assert_eq!(result.status_code, Some(400));

    let broken = probe_once(&format!(
        "{{ name: b, kind: http, url: 'http://{addr}/broken' }}"
    ))
    .await;
    assert!(!broken.success);
    assert_eq!(broken.status_code, Some(503));
    assert_eq!(broken.error.as_deref(), Some("status 503, expected 2xx"));
    assert_eq!(broken.body, Some(json!("down")));
    let expected = probe_once(&format!(
        "{{ name: b, kind: http, url: 'http://{addr}/broken', expect_status: [503] }}"
    ))
    .await;
    assert!(expected.success, "{expected:?}");
}

#[tokio::test]
async fn an_http_probe_of_a_closed_port_fails_with_connection_refused() {
    let port = closed_port();
    let result = probe_once(&format!(
        "{{ name: down, kind: http, url: 'http://127.0.0.1:{port}/health', timeout: 2s }}"
    ))
    .await;
    assert!(!result.success);
    assert_eq!(result.status_code, None);
    let error = result.error.unwrap();
    assert!(
        error.starts_with(&format!("cannot connect to 127.0.0.1:{port}")),
        "{error}"
    );
    assert!(error.to_lowercase().contains("refused"), "{error}");
}

#[tokio::test]
async fn an_http_probe_of_a_slow_endpoint_times_out() {
    let (addr, _) = web_server().await;
    let result = probe_once(&format!(
        "{{ name: slow, kind: http, url: 'http://{addr}/slow', timeout: 500ms, interval: 5s }}"
    ))
    .await;
    assert!(!result.success);
    assert_eq!(
        result.error.as_deref(),
        Some("no complete answer within 500ms")
    );
    assert!((500.0..1500.0).contains(&result.latency_ms), "{result:?}");
}

#[tokio::test]
async fn an_https_probe_reports_the_days_left_on_a_self_signed_certificate() {
    let addr = tls_server(10).await;
    let result = probe_once(&format!(
        "{{ name: tls, kind: http, url: 'https://{addr}/', tls: {{ verify: false }} }}"
    ))
    .await;
    assert!(result.success, "{result:?}");
    assert_eq!(result.status_code, Some(200));
    let days = result.cert_expiry_days.unwrap();
    assert!((9.0..=10.0).contains(&days), "{days}");

    // Verified against the Mozilla roots, the same certificate is refused.
    let result = probe_once(&format!(
        "{{ name: tls, kind: http, url: 'https://{addr}/' }}"
    ))
    .await;
    assert!(!result.success);
    let error = result.error.unwrap();
    assert!(
        error.starts_with("TLS handshake with 127.0.0.1 failed"),
        "{error}"
    );
    assert!(error.contains("certificate"), "{error}");
}

#[tokio::test]
async fn a_tcp_probe_connects_sends_and_expects() {
    let addr = pong_server().await;
    let ping = |expect: &str| {
        format!("{{ name: redis, kind: tcp, url: 'tcp://{addr}', send: \"PING\\r\\n\", expect: {expect}, timeout: 2s }}")
    };
    let result = probe_once(&ping("PONG")).await;
    assert!(result.success, "{result:?}");
    assert_eq!(result.body, Some(json!("+PONG\r\n")));
    let result = probe_once(&ping("NOPE")).await;
    assert!(!result.success);
    assert_eq!(
        result.error.unwrap(),
        format!("{addr} closed the connection without sending \"NOPE\"")
    );
    let connect = probe_once(&format!("{{ name: c, kind: tcp, url: 'tcp://{addr}' }}")).await;
    assert!(connect.success, "{connect:?}");
    let refused = probe_once(&format!(
        "{{ name: c, kind: tcp, url: 'tcp://127.0.0.1:{}' }}",
        closed_port()
    ))
    .await;
    assert!(!refused.success);
    assert!(refused.error.unwrap().to_lowercase().contains("refused"));
}

// ----- Probes, through the engine ---------------------------------------------------------

const BODY_RULES: &str = r#"
groups:
  - name: health-documents
    rules:
      - name: HealthNotOk
        match: [ 'source="probe"', 'probe=~"web-up|web-degraded"' ]
        when: "probe.body.status != 'ok'"
        impact: { kind: degradation, business_impact: high }
        summary: "{{ labels.probe }} says it is not ok"
"#;

#[tokio::test]
async fn probes_become_incidents_and_metrics() {
    let (web, _) = web_server().await;
    let tls = tls_server(5).await;
    let pong = pong_server().await;
    let down = closed_port();
    let every = "interval: 1s, timeout: 500ms";
    let config = format!(
        r#"{CATALOG}
incidents: {{ resolve_after: 1s }}
probing: {{ max_in_flight: 2 }}
probes:
  - {{ name: web-up, kind: http, url: "http://{web}/health", {every}, labels: {{ service: web, region: r1 }} }}
  - {{ name: web-down, kind: http, url: "http://127.0.0.1:{down}/health", {every}, labels: {{ service: api, region: r2 }} }}
  - {{ name: web-degraded, kind: http, url: "http://{web}/degraded", {every}, labels: {{ service: search, region: r3 }} }}
  - {{ name: web-tls, kind: http, url: "https://{tls}/", tls: {{ verify: false }}, {every}, labels: {{ service: portal, region: r4 }} }}
  - {{ name: cache, kind: tcp, url: "tcp://{pong}", send: "PING\r\n", expect: PONG, {every}, labels: {{ service: cache, region: r5 }} }}
"#
    );
    let dir = TestDir::new(
        &config,
        &[
            ("default.yaml", &support::default_rules()),
            ("body.yaml", BODY_RULES),
        ],
    );
    let engine = TestEngine::start(&dir).await;
    let down = wait_incident(&engine, WAIT, "for the refused probe", |i| {
        services(i) == ["api"]
    })
    .await;
    assert_eq!(down["title"], "api probe web-down failing in r2");
    assert_eq!(down["severity"], 2, "outage below SLA: {down:#}");
    let degraded = wait_incident(&engine, WAIT, "for the JSON body", |i| {
        services(i) == ["search"]
    })
    .await;
    assert_eq!(degraded["title"], "web-degraded says it is not ok");
    let expiring = wait_incident(&engine, WAIT, "for the certificate", |i| {
        services(i) == ["portal"]
    })
    .await;
    assert_eq!(
        expiring["title"],
        "certificate of web-tls expires within 14 days"
    );
    assert_eq!(
        expiring["severity"], 3,
        "high business impact: {expiring:#}"
    );

    let all = incidents(&engine).await;
    assert_eq!(all.len(), 3, "healthy probes open nothing: {all:#?}");
    let sample = |name: &str, probe: &str| format!("tocsin_{name}{{probe=\"{probe}\"}}");
    for (probe, up) in [
        ("web-up", 1.0),
        ("web-down", 0.0),
        ("web-degraded", 1.0),
        ("web-tls", 1.0),
        ("cache", 1.0),
    ] {
        assert_eq!(
            metric(&engine, &sample("probe_success", probe)).await,
            Some(up),
            "{probe}"
        );
    }
    let duration = metric(&engine, &sample("probe_duration_seconds", "web-up"))
        .await
        .unwrap();
    assert!(duration > 0.0 && duration < 0.5, "{duration}");
    let lags = metric(&engine, "tocsin_probe_schedule_lag_seconds_count")
        .await
        .unwrap();
    // web-down failed three times, one interval apart: every other probe ran at least twice.
    assert!(lags >= 11.0, "{lags} runs");
    // Only web-down fails, every run: its three so far at least, and fewer than all runs.
    let failures = metric(&engine, "tocsin_probe_failures_total")
        .await
        .unwrap();
    assert!(
        failures >= 3.0 && failures < lags,
        "{failures} of {lags} runs failed"
    );
    engine.stop().await;
}

// ----- Ingest API ---------------------------------------------------------------------------

async fn post_raw(engine: &TestEngine, path: &str, body: &[u8]) -> (u16, Value) {
    let response = engine
        .http
        .post(format!("{}{path}", engine.url))
        .header("content-type", "application/json")
        .body(body.to_vec())
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text:?}"));
    (status, body)
}

fn alert(name: &str, service: &str, region: &str) -> Value {
    json!({
        "labels": { "alertname": name, "severity": "critical", "service": service, "region": region },
        "annotations": { "summary": format!("{name} in {region}") },
        "generatorURL": "http://prometheus/graph",
    })
}

#[tokio::test]
async fn a_pushed_batch_keeps_its_good_alerts_and_names_the_bad_one() {
    let dir = engine_dir("");
    let engine = TestEngine::start(&dir).await;
    let batch = json!([
        alert("DiskFull", "storage", "china-east"),
        { "labels": "not a map" },
        alert("QueueStuck", "sqldb", "china-north"),
    ]);
    let (status, body) = engine.post("/api/v2/alerts", &batch).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["accepted"], 2, "{body}");
    assert_eq!(body["rejected"].as_array().unwrap().len(), 1, "{body}");
    assert_eq!(body["rejected"][0]["index"], 1, "{body}");
    assert!(
        body["rejected"][0]["error"]
            .as_str()
            .unwrap()
            .contains("labels"),
        "{body}"
    );
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("alert 1: field \"labels\": expected an object"),
        "{body}"
    );
    let titles: Vec<Value> = incidents(&engine)
        .await
        .iter()
        .map(|i| i["title"].clone())
        .collect();
    assert_eq!(
        titles,
        [
            json!("QueueStuck in china-north"),
            json!("DiskFull in china-east")
        ]
    );

    let (status, body) = engine
        .post(
            "/api/v2/alerts",
            &json!([alert("DiskFull", "storage", "china-east")]),
        )
        .await;
    assert_eq!((status, &body["accepted"]), (200, &json!(1)), "{body}");
    engine.stop().await;
}

#[tokio::test]
async fn bodies_that_are_not_what_an_endpoint_takes_are_400() {
    let dir = engine_dir("");
    let engine = TestEngine::start(&dir).await;
    for (path, body) in [
        ("/api/v2/alerts", &b"not json"[..]),
        ("/api/v2/alerts", b"[\"\xff\xfe\"]"),
        ("/api/v2/alerts", b"{\"labels\": {}}"),
        ("/api/v1/alertmanager", b"[]"),
        (
            "/api/v1/alertmanager",
            b"{\"version\": \"3\", \"alerts\": []}",
        ),
        ("/api/v1/cri", b"nope"),
        ("/api/v1/cri", b"{\"customer\": 42}"),
    ] {
        let (status, answer) = post_raw(&engine, path, body).await;
        assert_eq!(
            status,
            400,
            "{path} {:?}: {answer}",
            String::from_utf8_lossy(body)
        );
        assert!(answer["error"].is_string(), "{answer}");
    }
    let (status, answer) = engine.get("/api/v2/alerts").await;
    assert_eq!(status, 405, "{answer}");
    assert!(answer["error"].is_string(), "{answer}");
    assert!(incidents(&engine).await.is_empty());
    engine.stop().await;
}

#[tokio::test]
async fn an_alert_with_more_than_256_labels_is_422() {
    let dir = engine_dir("");
    let engine = TestEngine::start(&dir).await;
    let mut labels = serde_json::Map::new();
    for i in 0..257 {
        labels.insert(format!("label_{i}"), json!("x"));
    }
    labels.insert("severity".into(), json!("critical"));
    let (status, body) = engine
        .post("/api/v2/alerts", &json!([{ "labels": labels }]))
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["accepted"], 0);
    assert!(
        body["rejected"][0]["error"]
            .as_str()
            .unwrap()
            .contains("258 labels, at most 256"),
        "{body}"
    );
    assert!(incidents(&engine).await.is_empty());
    engine.stop().await;
}

#[tokio::test]
async fn a_pushed_alert_fires_until_its_lease_ends() {
    let dir = engine_dir("sources: { resolve_timeout: 2s }\n");
    let engine = TestEngine::start(&dir).await;
    let mut leased = alert("DiskFull", "storage", "china-east");
    leased["endsAt"] = json!((Utc::now() + chrono::Duration::seconds(2)).to_rfc3339());
    let default_lease = alert("QueueStuck", "sqldb", "china-north");
    let mut long = alert("CpuHot", "compute", "china-west");
    long["endsAt"] = json!((Utc::now() + chrono::Duration::minutes(10)).to_rfc3339());
    let (status, body) = engine
        .post("/api/v2/alerts", &json!([leased, default_lease, long]))
        .await;
    assert_eq!(status, 200, "{body}");
    let open = incidents(&engine).await;
    assert_eq!(open.len(), 3, "{open:#?}");
    assert!(open.iter().all(|i| i["status"] == "triggered"), "{open:#?}");

    // An alert pushed again with `endsAt` in the past resolves at once, long before its lease.
    let cpu = open.iter().find(|i| services(i) == ["compute"]).unwrap();
    long["endsAt"] = json!((Utc::now() - chrono::Duration::seconds(1)).to_rfc3339());
    let (status, _) = engine.post("/api/v2/alerts", &json!([long])).await;
    assert_eq!(status, 200);
    wait_resolved(&engine, &cpu["id"], Duration::from_secs(5)).await;
    // The others resolve when their leases (2 s given, 2 s resolve_timeout) run out.
    for incident in open.iter().filter(|i| services(i) != ["compute"]) {
        wait_resolved(&engine, &incident["id"], Duration::from_secs(10)).await;
    }
    engine.stop().await;
}

fn report() -> Value {
    json!({
        "customer": "contoso", "service": "storage", "region": "china-east",
        "sr_severity": "A", "summary": "uploads fail with 500",
        "contact": { "name": "Dana Lee", "email": "dana@contoso.com", "phone": "+86 21 5555 0100" }
    })
}

fn time(value: &Value) -> DateTime<Utc> {
    value.as_str().unwrap().parse().unwrap()
}

#[tokio::test]
async fn a_customer_report_opens_an_incident_due_by_its_sr_deadline() {
    let dir = engine_dir("");
    let engine = TestEngine::start(&dir).await;
    let (status, body) = engine.post("/api/v1/cri", &report()).await;
    assert_eq!(status, 201, "{body}");
    let respond_by = time(&body["respond_by"]);
    assert_eq!(
        respond_by - time(&body["received_at"]),
        chrono::Duration::hours(2)
    );
    assert!(
        (respond_by - Utc::now() - chrono::Duration::hours(2))
            .num_seconds()
            .abs()
            <= 5
    );
    let (status, incident) = engine
        .get(&format!("/api/v1/incidents/{}", body["incident_id"]))
        .await;
    assert_eq!(status, 200, "{incident}");
    assert_eq!(incident["severity"], 2, "SR A breaches SLA: {incident:#}");
    assert_eq!(incident["customers"], json!(["contoso"]));
    assert_eq!(incident["title"], "uploads fail with 500");
    let stored = time(&incident["respond_by"]);
    assert_eq!(stored.timestamp(), respond_by.timestamp());
    engine.stop().await;
}

#[tokio::test]
async fn a_customer_report_with_bad_fields_is_422_naming_every_one() {
    let dir = engine_dir("");
    let engine = TestEngine::start(&dir).await;
    let bad = json!({
        "service": "storage", "region": " ", "sr_severity": "P1",
        "summary": "x".repeat(64 * 1024 + 1), "kind": "meltdown",
        "contact": { "name": "", "email": "dana-at-contoso" }
    });
    let (status, body) = engine.post("/api/v1/cri", &bad).await;
    assert_eq!(status, 422, "{body}");
    let fields: Vec<&String> = body["fields"].as_object().unwrap().keys().collect();
    assert_eq!(
        fields,
        [
            "contact.email",
            "contact.name",
            "customer",
            "kind",
            "region",
            "sr_severity",
            "summary"
        ]
    );
    assert!(
        body["error"].as_str().unwrap().contains("contact.email"),
        "{body}"
    );

    let mut no_contact = report();
    no_contact.as_object_mut().unwrap().remove("contact");
    let (status, body) = engine.post("/api/v1/cri", &no_contact).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(
        body["fields"]
            .as_object()
            .unwrap()
            .keys()
            .collect::<Vec<_>>(),
        ["contact"]
    );
    assert!(incidents(&engine).await.is_empty());
    engine.stop().await;
}

#[tokio::test]
async fn heartbeats_are_taken_by_name() {
    let dir =
        engine_dir("heartbeats: [ { name: backup, every: 1h, labels: { service: backup } } ]\n");
    let engine = TestEngine::start(&dir).await;
    let (status, body) = engine.post("/api/v1/heartbeats/backup", &json!({})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["heartbeat"], "backup");
    let (status, body) = engine.post("/api/v1/heartbeats/nightly", &json!({})).await;
    assert_eq!(status, 404, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("nightly"),
        "{body}"
    );
    engine.stop().await;
}

#[tokio::test]
async fn a_missed_heartbeat_is_an_incident_until_the_next_ping() {
    let dir = engine_dir(
        "heartbeats: [ { name: backup, every: 2s, labels: { service: backup, region: china-east } } ]\n",
    );
    let engine = TestEngine::start(&dir).await;
    let missed = wait_incident(
        &engine,
        Duration::from_secs(10),
        "for the missed heartbeat",
        |i| services(i) == ["backup"],
    )
    .await;
    assert_eq!(missed["status"], "triggered");
    let (status, _) = engine.post("/api/v1/heartbeats/backup", &json!({})).await;
    assert_eq!(status, 200);
    wait_resolved(&engine, &missed["id"], Duration::from_secs(10)).await;
    engine.stop().await;
}

#[tokio::test]
async fn ingest_endpoints_need_the_token_when_auth_is_on() {
    let dir = engine_dir(
        "server: { auth: { tokens_file: secrets/api-tokens } }\nheartbeats: [ { name: backup, every: 1h } ]\n",
    );
    dir.write("secrets/api-tokens", "s3cret-token\n");
    let engine = TestEngine::start(&dir).await;
    let requests = [
        (
            "/api/v2/alerts",
            json!([alert("DiskFull", "storage", "china-east")]),
            200,
        ),
        (
            "/api/v1/alertmanager",
            json!({ "version": "4", "alerts": [] }),
            200,
        ),
        ("/api/v1/cri", report(), 201),
        ("/api/v1/heartbeats/backup", json!({}), 200),
    ];
    for (path, body, ok) in requests {
        let (status, answer) = engine.post(path, &body).await;
        assert_eq!(status, 401, "{path}: {answer}");
        assert!(answer["error"].is_string(), "{answer}");
        let response = engine
            .http
            .post(format!("{}{path}", engine.url))
            .bearer_auth("wrong-token")
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401, "{path}");
        let response = engine
            .http
            .post(format!("{}{path}", engine.url))
            .bearer_auth("s3cret-token")
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), ok, "{path}");
    }
    engine.stop().await;
}

#[tokio::test]
async fn probes_in_flight_never_exceed_max_in_flight() {
    use tocsin::sources::probe::{run_probes, ProbeContext};
    // A server that holds every connection open without answering, counting how many it
    // holds at once. At each accept it first drops the connections whose peer has closed:
    // a probe that timed out closed its socket before the next probe could connect, but on
    // a busy machine its FIN may not be seen yet (once, on the PostgreSQL pass of the
    // suite, a bare `try_read` still said "would block" and counted two). A probe in flight
    // holds its connection for its whole 400 ms timeout, so a connection that closes within
    // 100 ms was not one. (Counting closes in a task per connection raced with the next
    // accept too.)
    async fn closes_within(tcp: &tokio::net::TcpStream, wait: Duration) -> bool {
        let closed = async {
            loop {
                if tcp.readable().await.is_err() {
                    return;
                }
                match tcp.try_read(&mut [0u8; 64]) {
                    Ok(0) => return,
                    Err(e) if e.kind() != std::io::ErrorKind::WouldBlock => return,
                    _ => {}
                }
            }
        };
        tokio::time::timeout(wait, closed).await.is_ok()
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let most = Arc::new(AtomicUsize::new(0));
    let most_in = Arc::clone(&most);
    tokio::spawn(async move {
        let mut held: Vec<tokio::net::TcpStream> = Vec::new();
        while let Ok((tcp, _)) = listener.accept().await {
            let mut open = Vec::new();
            for t in held.drain(..) {
                if !closes_within(&t, Duration::from_millis(100)).await {
                    open.push(t);
                }
            }
            held = open;
            held.push(tcp);
            most_in.fetch_max(held.len(), Ordering::SeqCst);
        }
    });
    let probers = (0..4)
        .map(|i| {
            prober(&format!(
                "{{ name: hold-{i}, kind: tcp, url: 'tcp://{addr}', expect: never, interval: 1s, timeout: 400ms }}"
            ))
        })
        .collect();
    let context = ProbeContext {
        clock: tocsin::engine::Clock::System,
        metrics: Arc::new(tocsin::metrics::Metrics::new()),
        max_in_flight: 1,
    };
    let (tx, mut rx) = tokio::sync::mpsc::channel(64);
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let running = tokio::spawn(run_probes(probers, context, tx, stopped));
    let mut reports = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(3), async {
        while let Some(report) = rx.recv().await {
            reports.push(report);
        }
    })
    .await;
    stop.send(true).unwrap();
    running.await.unwrap();
    assert_eq!(
        most.load(Ordering::SeqCst),
        1,
        "one probe in flight at a time"
    );
    // Four 400 ms runs per second through one permit cannot all start on time.
    assert!(reports.len() >= 5, "{} runs", reports.len());
    let late = reports.iter().map(|r| r.schedule_lag).max().unwrap();
    assert!(late >= Duration::from_millis(300), "largest lag {late:?}");
    for report in &reports {
        let result = report.signal.probe.as_ref().unwrap();
        assert_eq!(
            result.error.as_deref(),
            Some("no complete answer within 400ms")
        );
    }
}

/// The pulled alert stops firing while tocsin is down: the restarted engine still knows what
/// the source last reported (kept in the store), so the alert resolves.
#[tokio::test]
async fn an_alert_that_left_its_source_while_tocsin_was_down_resolves_after_the_restart() {
    let port = free_port();
    let mut prometheus = Peer::prometheus(&prometheus_config(None), Some(PROMETHEUS_RULES), port);
    prometheus.wait_ready().await;
    let dir = engine_dir(&format!(
        "sources:\n  prometheus: [ {{ name: prom, url: \"http://127.0.0.1:{port}\", interval: 1s, timeout: 900ms }} ]\n"
    ));
    let engine = TestEngine::start(&dir).await;
    let incident = wait_incident(&engine, WAIT, "for the pulled alert", is_storage).await;
    engine.stop().await;

    // The same Prometheus comes back without the rule: the alert is gone from its list.
    drop(prometheus);
    let mut prometheus = Peer::prometheus(&prometheus_config(None), Some("groups: []\n"), port);
    prometheus.wait_ready().await;
    let engine = TestEngine::start(&dir).await;
    let resolved = wait_resolved(&engine, &incident["id"], WAIT).await;
    assert_eq!(resolved["status"], "resolved", "{resolved:#}");
    engine.stop().await;
}
