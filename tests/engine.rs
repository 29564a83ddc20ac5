//! End-to-end: the engine core behind the real runtime, store and API.

mod support;

use std::collections::BTreeMap;

use support::{TestDir, TestEngine, CATALOG};
use tocsin::engine::Input;
use tocsin::signal::{Signal, SourceKind};

fn alert(labels: &[(&str, &str)]) -> Signal {
    let labels: BTreeMap<String, String> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Signal::new(SourceKind::Alert, labels, chrono::Utc::now())
}

#[tokio::test]
async fn an_alert_becomes_a_stored_incident_that_survives_a_restart() {
    let dir = TestDir::new(CATALOG, &[("default.yaml", &support::default_rules())]);
    let engine = TestEngine::start(&dir).await;
    let (status, _) = engine.get("/-/ready").await;
    assert_eq!(status, 200);
    engine
        .running
        .engine()
        .send(Input::Signals(vec![alert(&[
            ("alertname", "StorageDown"),
            ("severity", "critical"),
            ("service", "storage"),
            ("region", "china-east"),
        ])]))
        .await
        .unwrap();
    let (status, list) = engine.get("/api/v1/incidents").await;
    assert_eq!(status, 200);
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    assert_eq!(list[0]["severity"], 2);
    assert_eq!(list[0]["status"], "triggered");
    assert_eq!(list[0]["customer_count"], 2);
    engine.stop().await;

    let engine = TestEngine::start(&dir).await;
    let (_, list) = engine.get("/api/v1/incidents?status=triggered").await;
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    let (status, acked) = engine
        .post(
            "/api/v1/incidents/1/ack",
            &serde_json::json!({ "by": "alice" }),
        )
        .await;
    assert_eq!(status, 200, "{acked}");
    assert_eq!(acked["acknowledged_by"], "alice");
    let (status, again) = engine
        .post(
            "/api/v1/incidents/1/ack",
            &serde_json::json!({ "by": "bob" }),
        )
        .await;
    assert_eq!(status, 409, "{again}");
    engine.stop().await;
}

#[tokio::test]
async fn a_reload_reads_the_api_tokens_again() {
    let config = format!("{CATALOG}\nserver: {{ auth: {{ tokens_file: secrets/tokens }} }}\n");
    let dir = TestDir::new(&config, &[("default.yaml", &support::default_rules())]);
    dir.write("secrets/tokens", "first-token\n");
    let engine = TestEngine::start(&dir).await;
    let list = |token: &'static str| {
        let request = engine
            .http
            .get(format!("{}/api/v1/incidents", engine.url))
            .bearer_auth(token);
        async move { request.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(list("first-token").await, 200);
    assert_eq!(list("second-token").await, 401);
    dir.write("secrets/tokens", "# rotated\nsecond-token\n");
    let (status, body) = engine.post("/-/reload", &serde_json::json!({})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(list("second-token").await, 200);
    assert_eq!(
        list("first-token").await,
        401,
        "the old token no longer works"
    );
    engine.stop().await;
}
