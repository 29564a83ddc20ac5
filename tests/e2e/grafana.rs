//! `contrib/grafana/tocsin.json`: every PromQL query of the dashboard returns data from a
//! real Prometheus that scrapes a real tocsin under a short scripted load (alerts of several
//! severities paged by webhook, an ack, a resolve, a customer report that breaches its
//! response time, a probe).

use std::time::Duration;

use axum::routing::post;
use axum::Router;
use serde_json::{json, Value};
use tokio::net::TcpListener;

use crate::support::peers::Prometheus;
use crate::support::{
    eventually, free_port, list_incidents, push_alerts, EngineProcess, TestDir, CATALOG,
};

/// Every `expr` of the dashboard's panels.
fn queries() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/contrib/grafana/tocsin.json"
    ))
    .unwrap();
    let dashboard: Value = serde_json::from_str(&text).expect("the dashboard is JSON");
    let mut queries = Vec::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().expect("targets") {
            queries.push((
                panel["title"].as_str().unwrap().to_string(),
                target["expr"].as_str().unwrap().to_string(),
            ));
        }
    }
    queries
}

/// Grafana's variables as a dashboard on this Prometheus would fill them in (a range of the
/// last ten minutes).
fn as_grafana_sends(expr: &str) -> String {
    expr.replace("$__rate_interval", "5m")
        .replace("$__range", "10m")
        .replace("$job", "tocsin")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_query_of_the_grafana_dashboard_returns_data() {
    let hook = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook_url = format!("http://{}/hook", hook.local_addr().unwrap());
    let hook_task = tokio::spawn(async move {
        let app = Router::new().route("/hook", post(|| async { "ok" }));
        let _ = axum::serve(hook, app).await;
    });
    let port = free_port();
    let config = format!(
        r#"{CATALOG}
probes:
  - {{ name: self, kind: http, url: "http://127.0.0.1:{port}/-/healthy", interval: 1s, timeout: 500ms, labels: {{ service: sqldb, region: china-north }} }}
sr_response: {{ A: 2s, B: 4h, C: 8h }}
responders:
  - {{ id: oncall, webhook: hook }}
escalation_policies:
  - name: main
    levels:
      - {{ after: 0s, notify: [ "responder:oncall" ] }}
routes:
  - {{ match: [], policy: main }}
notifiers:
  webhooks: [ {{ name: hook, url: "{hook_url}", timeout: 2s }} ]
"#
    );
    let dir = TestDir::new(
        &config,
        &[("default.yaml", &crate::support::default_rules())],
    );
    let mut engine = EngineProcess::spawn(&dir, port);
    engine.wait_ready().await;
    let prometheus = Prometheus::scraping(dir.path(), &format!("127.0.0.1:{port}")).await;
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let url = engine.url.clone();
    // Scraped before the load, so that counters are seen to grow.
    eventually(Duration::from_secs(30), || async {
        let up = prometheus.query("up{job=\"tocsin\"} == 1").await;
        (!up.is_empty()).then_some(())
    })
    .await
    .expect("Prometheus scrapes tocsin");

    // The load: alerts of two severities and a customer report, paged (correlated into
    // incidents by the default rules); the first incident acknowledged, the last resolved,
    // the customer report's incident left unacknowledged past its 2s response time first.
    for (service, region, severity) in [
        ("storage", "china-east", "critical"),
        ("sqldb", "china-east", "warning"),
        ("storage", "china-north", "critical"),
    ] {
        let body = json!([{ "labels": { "alertname": "Down", "severity": severity, "service": service, "region": region } }]);
        push_alerts(&http, &url, body).await;
    }
    let cri = json!({ "customer": "contoso", "service": "storage", "region": "china-east",
        "sr_severity": "A", "summary": "cannot write", "kind": "outage",
        "contact": { "name": "Pat", "email": "pat@example.com" } });
    let answer = http
        .post(format!("{url}/api/v1/cri"))
        .json(&cri)
        .send()
        .await
        .unwrap();
    assert!(answer.status().is_success(), "{}", answer.status());
    tokio::time::sleep(Duration::from_secs(3)).await;
    let ids: Vec<i64> = list_incidents(&http, &url)
        .await
        .iter()
        .filter_map(|i| i["id"].as_i64())
        .collect();
    assert!(!ids.is_empty(), "no incident");
    for (id, action) in [(ids[0], "ack"), (ids[ids.len() - 1], "resolve")] {
        let answer = http
            .post(format!("{url}/api/v1/incidents/{id}/{action}"))
            .json(&json!({ "by": "alice" }))
            .send()
            .await
            .unwrap();
        assert!(
            answer.status().is_success(),
            "{action} {id}: {}",
            answer.status()
        );
    }

    // Every query returns at least one series with a number (not NaN), within a minute
    // of scrapes every second.
    let mut missing = Vec::new();
    for (title, expr) in queries() {
        let promql = as_grafana_sends(&expr);
        let data = eventually(Duration::from_secs(60), || async {
            let result = prometheus.query(&promql).await;
            result.iter().any(|(_, v)| v.is_finite()).then_some(result)
        })
        .await;
        if data.is_none() {
            missing.push(format!("{title}: {promql}"));
        }
    }
    hook_task.abort();
    assert!(
        missing.is_empty(),
        "queries without data:\n{}\nPrometheus log:\n{}",
        missing.join("\n"),
        prometheus.process.logs()
    );
    assert!(queries().len() >= 15);
    let _ = &mut engine;
}
