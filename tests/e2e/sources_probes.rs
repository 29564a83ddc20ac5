//! Probes: HTTP, HTTPS and TCP probes measured directly against servers started here, and
//! probes run by the engine, which become incidents and metrics and never have more in
//! flight than `max_in_flight`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::support;
use crate::support::sources::{
    closed_port, incidents, metric, pong_server, services, tls_server, wait_incident,
};
use crate::support::{TestDir, TestEngine, CATALOG};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::Utc;
use serde_json::json;
use tocsin::config::{Config, ProbeConfig};
use tocsin::signal::ProbeResult;
use tocsin::sources::probe::Prober;

use super::WAIT;

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
