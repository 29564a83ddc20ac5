//! A person's resolve never hides an outage that goes on: the real `tocsin` binary, a real
//! webhook receiver for the pages, alerts pushed to `POST /api/v2/alerts` and an HTTP probe
//! of a server started here, all on 127.0.0.1 with bounded waits.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::support;
use crate::support::paging::{Answer, Receiver};
use crate::support::{
    eventually, free_port, get_json, list_incidents, post_json, push_alerts, EngineProcess,
    TestDir, CATALOG,
};
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use chrono::{DateTime, Utc};
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(20);

/// Every incident paged to `receiver` (a webhook responder), level 0 at once.
fn config(receiver: &str, more: &str) -> String {
    format!(
        r#"{CATALOG}
incidents: {{ resolve_after: 1s }}
responders:
  - {{ id: oncall, webhook: hook }}
escalation_policies:
  - name: main
    levels:
      - {{ after: 0s, notify: [ "responder:oncall" ] }}
routes:
  - {{ match: [], policy: main }}
notifiers:
  webhooks: [ {{ name: hook, url: "{receiver}", timeout: 2s }} ]
  retry: {{ initial_backoff: 200ms, max_backoff: 1s, max_age: 1h }}
{more}"#
    )
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

/// The (event, incident) of every page the receiver got, in order.
fn pages(receiver: &Receiver) -> Vec<(String, i64)> {
    receiver
        .received()
        .iter()
        .map(|r| {
            let page: Value = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
            (
                page["event"].as_str().unwrap_or_default().to_string(),
                page["incident"]["id"].as_i64().unwrap_or(-1),
            )
        })
        .collect()
}

async fn wait_page(receiver: &Receiver, event: &str, incident: i64) {
    let got = eventually(WAIT, || async {
        pages(receiver)
            .contains(&(event.to_string(), incident))
            .then_some(())
    })
    .await;
    assert!(
        got.is_some(),
        "no {event} page for incident {incident}; pages: {:?}",
        pages(receiver)
    );
}

/// Wait for the `n`th incident (from 1, oldest first).
async fn wait_incident_count(http: &reqwest::Client, url: &str, n: usize) -> Value {
    let found = eventually(WAIT, || async {
        list_incidents(http, url).await.into_iter().nth(n - 1)
    })
    .await;
    found.unwrap_or_else(|| {
        panic!("no incident {n} within {WAIT:?}");
    })
}

async fn detail(http: &reqwest::Client, url: &str, id: i64) -> Value {
    let (status, incident) = get_json(http, &format!("{url}/api/v1/incidents/{id}")).await;
    assert_eq!(status, 200, "{incident}");
    incident
}

/// Resolve incident `id` through the API as carol.
async fn resolve(http: &reqwest::Client, url: &str, id: i64) -> Value {
    let (status, resolved) = post_json(
        http,
        &format!("{url}/api/v1/incidents/{id}/resolve"),
        &json!({ "by": "carol", "note": "restarted the frontends" }),
    )
    .await;
    assert_eq!(status, 200, "{resolved}");
    assert_eq!(resolved["status"], "resolved");
    resolved
}

fn time(value: &Value) -> DateTime<Utc> {
    value
        .as_str()
        .unwrap_or_else(|| panic!("not a time: {value}"))
        .parse()
        .unwrap()
}

/// The incident's only impact, and its `resolved` timeline entry.
fn impact_and_resolve_entry(incident: &Value) -> (Value, Value) {
    let impacts = incident["impacts"].as_array().unwrap();
    assert_eq!(impacts.len(), 1, "{incident:#}");
    let entry = incident["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["kind"] == "resolved")
        .unwrap_or_else(|| panic!("no resolved entry: {incident:#}"))
        .clone();
    (impacts[0].clone(), entry)
}

/// Incident `id` was resolved while its one impact still fired: the impact is not cleared,
/// says so, and the resolve's timeline entry names it.
fn assert_resolved_while_firing(incident: &Value) {
    assert_eq!(incident["status"], "resolved", "{incident:#}");
    let (impact, entry) = impact_and_resolve_entry(incident);
    assert_eq!(impact["cleared_at"], Value::Null, "{impact:#}");
    assert_eq!(impact["firing_at_resolve"], true, "{impact:#}");
    let message = entry["message"].as_str().unwrap();
    assert!(
        message
            .starts_with("resolved by carol: restarted the frontends; still firing at resolve: ")
            && message.contains(&format!(
                "{} (impact {})",
                impact["summary"].as_str().unwrap(),
                impact["id"]
            )),
        "{message}"
    );
    assert_eq!(entry["data"]["still_firing"], json!([impact["id"]]));
}

/// The impacts table of the incident's dashboard page.
async fn dashboard_impacts(http: &reqwest::Client, url: &str, id: i64) -> String {
    let (status, html) = get_json(http, &format!("{url}/incidents/{id}")).await;
    assert_eq!(status, 200, "{html}");
    let html = html.as_str().unwrap();
    let start = html
        .find("<table id=\"impacts\">")
        .expect("an impacts table");
    let end = start + html[start..].find("</table>").expect("the table's end");
    html[start..end].to_string()
}

fn storage_down(ends_at: DateTime<Utc>) -> Value {
    json!([{
        "labels": { "alertname": "StorageDown", "severity": "critical", "service": "storage", "region": "china-east" },
        "annotations": { "summary": "storage down in china-east" },
        "endsAt": ends_at.to_rfc3339(),
    }])
}

/// Push, page, resolve while the alert still fires, push again: a new incident, paged; the
/// same after a SIGKILL between the resolve and the next push. Once the alert resolves, the
/// impacts of the incidents resolved while it fired clear too.
#[tokio::test]
async fn an_alert_still_firing_at_resolve_opens_a_new_incident_at_its_next_push() {
    let receiver = Receiver::start(vec![], Answer::Status(200)).await;
    let dir = TestDir::new(
        &config(&receiver.url, ""),
        &[("default.yaml", &support::default_rules())],
    );
    let http = http();
    let port = free_port();
    let mut engine = EngineProcess::spawn(&dir, port);
    engine.wait_ready().await;
    let url = engine.url.clone();
    let firing = storage_down(Utc::now() + chrono::Duration::hours(1));

    push_alerts(&http, &url, firing.clone()).await;
    let first = wait_incident_count(&http, &url, 1).await["id"]
        .as_i64()
        .unwrap();
    wait_page(&receiver, "triggered", first).await;
    resolve(&http, &url, first).await;
    wait_page(&receiver, "resolved", first).await;
    assert_resolved_while_firing(&detail(&http, &url, first).await);
    let impacts = dashboard_impacts(&http, &url, first).await;
    assert!(
        impacts.contains("<td>still firing at resolve</td>")
            && impacts.contains("class=\"active\""),
        "{impacts}"
    );
    assert_eq!(list_incidents(&http, &url).await.len(), 1);

    // The same alert, pushed again as Prometheus does at each evaluation.
    push_alerts(&http, &url, firing.clone()).await;
    let second = wait_incident_count(&http, &url, 2).await;
    let second_id = second["id"].as_i64().unwrap();
    assert_eq!(second["status"], "triggered", "{second:#}");
    assert_eq!(second["title"], "storage down in china-east");
    wait_page(&receiver, "triggered", second_id).await;
    assert_resolved_while_firing(&detail(&http, &url, first).await);

    // Resolved again, then the engine is killed before the next push.
    resolve(&http, &url, second_id).await;
    engine.kill();
    let mut engine = EngineProcess::spawn(&dir, port);
    engine.wait_ready().await;
    assert_resolved_while_firing(&detail(&http, &url, second_id).await);
    push_alerts(&http, &url, firing).await;
    let third = wait_incident_count(&http, &url, 3).await;
    let third_id = third["id"].as_i64().unwrap();
    assert_eq!(third["status"], "triggered", "{third:#}");
    wait_page(&receiver, "triggered", third_id).await;
    assert_eq!(list_incidents(&http, &url).await.len(), 3);

    // The alert resolves: every impact it kept uncleared clears now, after its resolve.
    let cleared_from = Utc::now();
    push_alerts(
        &http,
        &url,
        storage_down(Utc::now() - chrono::Duration::seconds(1)),
    )
    .await;
    for id in [first, second_id] {
        let incident = eventually(WAIT, || async {
            let incident = detail(&http, &url, id).await;
            (!incident["impacts"][0]["cleared_at"].is_null()).then_some(incident)
        })
        .await
        .unwrap_or_else(|| panic!("the impact of incident {id} never cleared"));
        let (impact, _) = impact_and_resolve_entry(&incident);
        assert_eq!(impact["firing_at_resolve"], true, "{impact:#}");
        assert!(time(&impact["cleared_at"]) >= cleared_from, "{impact:#}");
        assert!(
            time(&impact["cleared_at"]) > time(&incident["resolved_at"]),
            "{incident:#}"
        );
        assert!(
            incident["timeline"]
                .as_array()
                .unwrap()
                .iter()
                .any(|t| t["kind"] == "impact_cleared"),
            "{incident:#}"
        );
    }
    let impacts = dashboard_impacts(&http, &url, first).await;
    assert!(
        impacts.contains(" (after the resolve)</td>")
            && !impacts.contains("still firing")
            && impacts.contains("class=\"cleared\""),
        "{impacts}"
    );
    // The third incident resolves on its own once its impact is clear for resolve_after.
    let resolved = eventually(WAIT, || async {
        let incident = detail(&http, &url, third_id).await;
        (incident["status"] == "resolved").then_some(incident)
    })
    .await
    .expect("the third incident resolves on its own");
    let (impact, entry) = impact_and_resolve_entry(&resolved);
    assert_eq!(impact.get("firing_at_resolve"), None, "{impact:#}");
    assert_eq!(entry["data"].get("still_firing"), None, "{entry:#}");
    wait_page(&receiver, "resolved", third_id).await;
    assert_eq!(
        list_incidents(&http, &url).await.len(),
        3,
        "nothing more opened"
    );
}

/// An HTTP server on 127.0.0.1 whose `/health` answers 503 until `healthy` is set, and
/// keeps the time of every request.
async fn health_server() -> (String, Arc<AtomicBool>, Arc<Mutex<Vec<DateTime<Utc>>>>) {
    let healthy = Arc::new(AtomicBool::new(false));
    let requests: Arc<Mutex<Vec<DateTime<Utc>>>> = Arc::default();
    let (state, log) = (Arc::clone(&healthy), Arc::clone(&requests));
    let app = Router::new().route(
        "/health",
        get(move || {
            let (state, log) = (Arc::clone(&state), Arc::clone(&log));
            async move {
                log.lock().unwrap().push(Utc::now());
                if state.load(Ordering::SeqCst) {
                    (StatusCode::OK, "ok")
                } else {
                    (StatusCode::SERVICE_UNAVAILABLE, "down")
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{addr}/health"), healthy, requests)
}

/// A failing HTTP probe opens an incident after three failures (the default rule); resolved
/// while it still fails, its next failed run opens a new one and pages, not three runs
/// later. Once the endpoint is healthy again, both impacts clear.
#[tokio::test]
async fn a_probe_still_failing_at_resolve_opens_a_new_incident_at_its_next_run() {
    let receiver = Receiver::start(vec![], Answer::Status(200)).await;
    let (target, healthy, requests) = health_server().await;
    let probes = format!(
        "probes:\n  - {{ name: web, kind: http, url: \"{target}\", interval: 1s, timeout: 500ms, \
         labels: {{ service: storage, region: china-east }} }}\n"
    );
    let dir = TestDir::new(
        &config(&receiver.url, &probes),
        &[("default.yaml", &support::default_rules())],
    );
    let http = http();
    let mut engine = EngineProcess::spawn(&dir, free_port());
    engine.wait_ready().await;
    let url = engine.url.clone();

    let first = wait_incident_count(&http, &url, 1).await["id"]
        .as_i64()
        .unwrap();
    wait_page(&receiver, "triggered", first).await;
    let resolved = resolve(&http, &url, first).await;
    let resolved_at = time(&resolved["resolved_at"]);
    assert_resolved_while_firing(&detail(&http, &url, first).await);

    let second = wait_incident_count(&http, &url, 2).await;
    let second_id = second["id"].as_i64().unwrap();
    assert_eq!(second["status"], "triggered", "{second:#}");
    assert_eq!(second["title"], "storage probe web failing in china-east");
    wait_page(&receiver, "triggered", second_id).await;
    // Opened by the first failed run after the resolve (which may have begun just before
    // it, or be followed by another while the engine is busy), not by a third: the rule's
    // failures: 3 is not counted again.
    let opened_at = time(&second["opened_at"]);
    let runs_between = requests
        .lock()
        .unwrap()
        .iter()
        .filter(|at| **at > resolved_at && **at <= opened_at)
        .count();
    assert!(
        runs_between < 3,
        "{runs_between} probe runs between the resolve at {resolved_at} and the new incident at {opened_at}"
    );
    assert_resolved_while_firing(&detail(&http, &url, first).await);

    // Healthy again: two good runs (successes: 2) clear both impacts.
    healthy.store(true, Ordering::SeqCst);
    let cleared = eventually(WAIT, || async {
        let incident = detail(&http, &url, first).await;
        (!incident["impacts"][0]["cleared_at"].is_null()).then_some(incident)
    })
    .await
    .expect("the impact resolved while failing clears once the probe succeeds");
    let (impact, _) = impact_and_resolve_entry(&cleared);
    assert!(time(&impact["cleared_at"]) > resolved_at, "{impact:#}");
    let second = eventually(WAIT, || async {
        let incident = detail(&http, &url, second_id).await;
        (incident["status"] == "resolved").then_some(incident)
    })
    .await
    .expect("the new incident resolves on its own once the probe succeeds");
    assert!(!second["impacts"][0]["cleared_at"].is_null(), "{second:#}");
    assert_eq!(list_incidents(&http, &url).await.len(), 2);
}

/// Rewrite the store at `url` as the last version without `resolved_firing` left it after a
/// resolve while firing: the rule state only `suppressed`, the impact cleared at the resolve.
async fn as_an_earlier_version_left_it(url: &str, resolved_at: &str) {
    use sqlx::Row;
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(url).await.unwrap();
    for (table, key, value) in [
        ("rule_states", "resolved_firing", None),
        (
            "impacts",
            "firing_at_resolve",
            Some(("cleared_at", resolved_at)),
        ),
    ] {
        let rows = sqlx::query(&format!("SELECT id, data FROM {table}"))
            .fetch_all(&pool)
            .await
            .unwrap();
        for row in rows {
            let id: i64 = row.try_get("id").unwrap();
            let text: String = row.try_get("data").unwrap();
            let mut data: Value = serde_json::from_str(&text).unwrap();
            let object = data.as_object_mut().unwrap();
            assert!(
                object.remove(key).is_some(),
                "{table} {id}: no {key} in {text}"
            );
            if let Some((field, to)) = value {
                object.insert(field.into(), json!(to));
            }
            sqlx::query(&format!("UPDATE {table} SET data = $1 WHERE id = $2"))
                .bind(data.to_string())
                .bind(id)
                .execute(&pool)
                .await
                .unwrap();
        }
    }
    pool.close().await;
}

/// A store the earlier version left right after a resolve while the alert fired (its rule
/// state suppressed, which that version kept until the alert stopped) loads, and the next
/// push of the alert opens a new incident and pages.
#[tokio::test]
async fn a_store_an_earlier_version_left_suppressed_loads_and_the_next_push_opens_anew() {
    let receiver = Receiver::start(vec![], Answer::Status(200)).await;
    let dir = TestDir::new(
        &config(&receiver.url, ""),
        &[("default.yaml", &support::default_rules())],
    );
    let http = http();
    let port = free_port();
    let mut engine = EngineProcess::spawn(&dir, port);
    engine.wait_ready().await;
    let url = engine.url.clone();
    let firing = storage_down(Utc::now() + chrono::Duration::hours(1));
    push_alerts(&http, &url, firing.clone()).await;
    let first = wait_incident_count(&http, &url, 1).await["id"]
        .as_i64()
        .unwrap();
    let resolved = resolve(&http, &url, first).await;
    engine.kill();
    as_an_earlier_version_left_it(&dir.store_url(), resolved["resolved_at"].as_str().unwrap())
        .await;

    let mut engine = EngineProcess::spawn(&dir, port);
    engine.wait_ready().await;
    let old = detail(&http, &url, first).await;
    assert_eq!(old["status"], "resolved");
    assert_eq!(old["impacts"][0]["cleared_at"], resolved["resolved_at"]);
    push_alerts(&http, &url, firing).await;
    let second = wait_incident_count(&http, &url, 2).await;
    assert_eq!(second["status"], "triggered", "{second:#}");
    wait_page(&receiver, "triggered", second["id"].as_i64().unwrap()).await;
}
