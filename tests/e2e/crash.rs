//! Crash safety: SIGKILL the real engine binary and start it again.

use std::time::Duration;

use crate::support;
use crate::support::{free_port, list_incidents, push_alerts, EngineProcess, TestDir, CATALOG};
use chrono::{DateTime, Utc};
use serde_json::{json, Value};

const RULES: &str = r#"
groups:
  - name: crash
    rules:
      - name: StorageDown
        match: [ 'source="alert"', 'alertname="StorageDown"' ]
        impact: { kind: outage, sla_breach: true }
      - name: SqlSlow
        match: [ 'source="alert"', 'alertname="SqlSlow"' ]
        for: 4s
        impact: { kind: latency, business_impact: high }
"#;

fn alert(name: &str, service: &str, region: &str) -> Value {
    let ends = (Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
    json!({ "labels": { "alertname": name, "service": service, "region": region }, "endsAt": ends })
}

fn opened_at(incident: &Value) -> DateTime<Utc> {
    incident["opened_at"].as_str().unwrap().parse().unwrap()
}

/// SIGKILL with an open incident and a pending `for:` timer; the restarted engine has the
/// same incident open and the timer fires when it was due (here: while the engine was up
/// again, and in the second case: it fell due while the engine was down, so at once).
#[tokio::test]
async fn open_incidents_and_pending_for_timers_survive_sigkill() {
    let dir = TestDir::new(CATALOG, &[("crash.yaml", RULES)]);
    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let port = free_port();

    // Restarted before the timer is due: it fires at its own time.
    let mut engine = EngineProcess::spawn(&dir, port);
    engine.wait_ready().await;
    push_alerts(
        &http,
        &engine.url,
        json!([alert("StorageDown", "storage", "china-east")]),
    )
    .await;
    let pending_since = Utc::now();
    push_alerts(
        &http,
        &engine.url,
        json!([alert("SqlSlow", "sqldb", "china-north")]),
    )
    .await;
    let before = list_incidents(&http, &engine.url).await;
    assert_eq!(before.len(), 1, "{before:?}");
    tokio::time::sleep(Duration::from_millis(1000)).await;
    engine.kill();

    let mut engine = EngineProcess::spawn(&dir, port);
    engine.wait_ready().await;
    let after = list_incidents(&http, &engine.url).await;
    assert_eq!(after.len(), 1, "the open incident is back: {after:?}");
    assert_eq!(after[0]["id"], before[0]["id"]);
    assert_eq!(after[0]["status"], "triggered");
    let second = support::eventually(Duration::from_secs(10), || async {
        list_incidents(&http, &engine.url).await.into_iter().nth(1)
    })
    .await
    .expect("the pending for: timer fired after the restart");
    let fired = opened_at(&second);
    let due = pending_since + chrono::Duration::seconds(4);
    assert!(
        fired >= due - chrono::Duration::milliseconds(200),
        "fired {fired} before due {due}"
    );
    assert!(
        fired <= due + chrono::Duration::milliseconds(1500),
        "fired {fired}, due {due}"
    );
    assert_eq!(second["services"], json!(["sqldb"]));
    drop(engine);

    // Killed and kept down past the due time: the timer fires at once on restart, once.
    let mut engine = EngineProcess::spawn(&dir, port);
    engine.wait_ready().await;
    push_alerts(
        &http,
        &engine.url,
        json!([alert("SqlSlow", "cache", "china-west")]),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    engine.kill();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let restarted_at = Utc::now();
    let mut engine = EngineProcess::spawn(&dir, port);
    engine.wait_ready().await;
    let third = support::eventually(Duration::from_secs(5), || async {
        list_incidents(&http, &engine.url).await.into_iter().nth(2)
    })
    .await
    .expect("the timer that fell due while the engine was down fired");
    assert!(opened_at(&third) >= restarted_at, "fired at restart");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        list_incidents(&http, &engine.url).await.len(),
        3,
        "fired once"
    );
}
