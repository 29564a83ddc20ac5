//! The ingest API: pushed alert batches and the leases they fire for, bodies refused with
//! 400 or 422, customer reports due by their SR deadline, heartbeats, and the token the
//! ingest endpoints need when auth is on.

use std::time::Duration;

use crate::support::sources::{incidents, services, wait_incident, wait_resolved};
use crate::support::TestEngine;
use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::engine_dir;

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
