//! End-to-end tests of the sources: real Prometheus and Alertmanager processes that tocsin
//! pulls from or that push to it (here), probes against servers started here
//! (`sources_probes.rs`), and the ingest API (`sources_ingest.rs`), all on 127.0.0.1 with
//! bounded waits.

use std::time::Duration;

use crate::support;
use crate::support::sources as sources_support;
use crate::support::sources::{
    closed_port, incidents, metric, services, wait_incident, wait_resolved, Peer,
};
use crate::support::{free_port, TestDir, TestEngine, CATALOG};
use chrono::{DateTime, Utc};
use serde_json::{json, Value};

#[path = "sources_ingest.rs"]
mod ingest;
#[path = "sources_probes.rs"]
mod probes;

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
