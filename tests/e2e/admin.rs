//! /metrics and the admin plane (healthy, ready) of the real engine on 127.0.0.1 with SQLite
//! in a temporary folder, and a real Prometheus scraping it.

use std::time::Duration;

use crate::support::api::*;
use crate::support::{eventually, free_port, EngineProcess, TestEngine};
use serde_json::{json, Value};

#[tokio::test]
async fn metrics_expose_every_design_metric() {
    let (_dir, engine) = engine(false).await;
    open_sev1(&engine).await;
    let response = engine
        .http
        .get(format!("{}/metrics", engine.url))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain; version=0.0.4"));
    let text = response.text().await.unwrap();
    // probe_success and probe_duration_seconds are per-probe gauges the probe runner sets
    // after a probe's first run (a 0 before would read as a failing probe); this engine has
    // no probes configured.
    for name in [
        "incidents_open",
        "incidents_total",
        "incident_severity_changes_total",
        "pages_total",
        "page_delivery_seconds",
        "escalations_total",
        "time_to_acknowledge_seconds",
        "time_to_resolve_seconds",
        "signals_total",
        "rule_evaluation_failures_total",
        "sr_response_breaches_total",
        "triage_queue_length",
        "probe_schedule_lag_seconds",
        "config_last_reload_successful",
        "config_last_reload_success_timestamp_seconds",
        "leader",
    ] {
        assert!(
            text.contains(&format!("# TYPE tocsin_{name} ")),
            "tocsin_{name} missing"
        );
    }
    for name in [
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "process_open_fds",
    ] {
        assert!(text.contains(&format!("# TYPE {name} ")), "{name} missing");
    }
    for (series, value) in [
        ("tocsin_incidents_open{severity=\"1\"}", 1.0),
        ("tocsin_incidents_open{severity=\"0\"}", 0.0),
        ("tocsin_incidents_open{severity=\"2\"}", 0.0),
        ("tocsin_incidents_total{severity=\"2\"}", 1.0),
        ("tocsin_signals_total{source=\"alert\"}", 2.0),
        ("tocsin_leader", 1.0),
        ("tocsin_config_last_reload_successful", 1.0),
        (
            "tocsin_pages_total{channel=\"email\",outcome=\"failed\"}",
            0.0,
        ),
        // Paged at Sev 2, then re-routed from level 0 when it rose to Sev 1.
        ("tocsin_escalations_total{policy=\"default\"}", 2.0),
        ("tocsin_triage_queue_length{queue=\"triage\"}", 0.0),
    ] {
        assert_eq!(metric(&text, series), Some(value), "{series}");
    }
    assert!(metric(&text, "tocsin_config_last_reload_success_timestamp_seconds").unwrap() > 1.7e9);
    engine.stop().await;
}

#[tokio::test]
async fn open_incident_gauges_are_right_after_a_restart() {
    let dir = test_dir(false);
    let engine = TestEngine::start(&dir).await;
    open_sev1(&engine).await;
    send(&engine, vec![minor("sqldb", "ReplicaLag")]).await;
    engine.stop().await;

    let engine = TestEngine::start(&dir).await;
    let text = metrics_text(&engine.http, &engine.url).await;
    assert_eq!(
        metric(&text, "tocsin_incidents_open{severity=\"1\"}"),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        metric(&text, "tocsin_incidents_open{severity=\"4\"}"),
        Some(1.0)
    );
    assert_eq!(
        metric(&text, "tocsin_incidents_open{severity=\"2\"}"),
        Some(0.0)
    );
    assert_eq!(
        metric(&text, "tocsin_triage_queue_length{queue=\"triage\"}"),
        Some(1.0)
    );
    assert_eq!(metric(&text, "tocsin_leader"), Some(1.0));
    engine.stop().await;
}

#[tokio::test]
async fn healthy_and_ready_answer_once_started() {
    let (_dir, engine) = engine(false).await;
    let (status, body) = engine.get("/-/healthy").await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = engine.get("/-/ready").await;
    assert_eq!(status, 200, "{body}");
    engine.stop().await;
}

#[tokio::test]
async fn ready_is_503_while_the_store_is_not_open() {
    // A "PostgreSQL" that accepts connections and never answers: the store cannot open.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let db_port = silent.local_addr().unwrap().port();
    let dir = test_dir(false);
    dir.write(
        "config.yaml",
        &format!(
            "{}\nstore: {{ url: \"postgres://tocsin@127.0.0.1:{db_port}/tocsin\" }}\nrule_files: [ \"rules/*.yaml\" ]\n",
            config_yaml(false, ROUTES)
        ),
    );
    let engine = EngineProcess::spawn(&dir, free_port());
    let http = plain_http();
    let url = engine.url.clone();
    let ready = eventually(Duration::from_secs(30), || async {
        let r = http.get(format!("{url}/-/ready")).send().await.ok()?;
        Some(r.status().as_u16())
    })
    .await;
    assert_eq!(
        ready,
        Some(503),
        "log:\n{}",
        std::fs::read_to_string(&engine.log).unwrap_or_default()
    );
    let healthy = http.get(format!("{url}/-/healthy")).send().await.unwrap();
    assert_eq!(healthy.status(), 200);
    let metrics = http.get(format!("{url}/metrics")).send().await.unwrap();
    assert_eq!(metrics.status(), 200);
    let api = http
        .get(format!("{url}/api/v1/incidents"))
        .send()
        .await
        .unwrap();
    assert_eq!(api.status(), 503);
    let body: Value = api.json().await.unwrap();
    assert!(error_of(&body).contains("starting"));
    let wrong = http.post(format!("{url}/-/healthy")).send().await.unwrap();
    assert_eq!(wrong.status(), 405);
    error_of(&wrong.json().await.unwrap());
    drop(silent);
}

#[tokio::test]
async fn prometheus_scrapes_incidents_open_during_a_sev1() {
    let (dir, engine) = engine(false).await;
    let target = engine.running.addr.to_string();
    let prometheus = crate::support::peers::Prometheus::scraping(dir.path(), &target).await;
    let query = "tocsin_incidents_open{severity=\"1\"}";
    let value_is = |want: f64| {
        let prometheus = &prometheus;
        async move {
            eventually(Duration::from_secs(60), || async {
                let result = prometheus.query(query).await;
                (result.len() == 1 && result[0].1 == want).then_some(result)
            })
            .await
        }
    };
    let before = value_is(0.0).await;
    assert!(
        before.is_some(),
        "Prometheus never scraped tocsin:\n{}",
        prometheus.process.logs()
    );

    let id = open_sev1(&engine).await;
    let during = value_is(1.0)
        .await
        .expect("tocsin_incidents_open{severity=\"1\"} = 1 through Prometheus");
    assert_eq!(during[0].0["job"], "tocsin");
    assert_eq!(during[0].0["instance"], target.as_str());

    engine
        .post(
            &format!("/api/v1/incidents/{id}/resolve"),
            &json!({ "by": "alice" }),
        )
        .await;
    assert!(value_is(0.0).await.is_some(), "back to 0 once resolved");
    drop(prometheus);
    engine.stop().await;
}
