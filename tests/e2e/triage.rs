//! Component triage queues: `queue: component` sends a Sev 4 incident to the triage queue of
//! the service it hits; queues are worked FIFO through the API and the CLI, and /metrics
//! says how long each queue is and how long its oldest entry has waited.

use serde_json::json;

use crate::support::paging::{alert, utc, FrozenEngine};
use crate::support::{run_tocsin, CATALOG};

fn config() -> String {
    // storage and sqldb share a queue they name; blob gets the default `blob-triage`.
    let catalog = CATALOG
        .replace(
            "{ name: storage, sla: 99.9, regions: [china-east, china-north] }",
            "{ name: storage, regions: [china-east], triage_queue: data-oncall }\n    \
             - { name: blob, regions: [china-east] }",
        )
        .replace(
            "{ name: sqldb, regions: [china-east, china-north] }",
            "{ name: sqldb, regions: [china-east], triage_queue: data-oncall }",
        );
    format!(
        r#"{catalog}
correlation: {{ by: [service], window: 15m }}
responders:
  - {{ id: alice, email: alice@example.com }}
escalation_policies:
  - name: standard
    levels:
      - {{ after: 0s, notify: [ "responder:alice" ] }}
routes:
  - {{ match: [ 'severity=~"0|1|2|3"' ], policy: standard }}
  - {{ match: [ 'severity="4"' ], queue: component }}
notifiers:
  email: {{ from: tocsin@example.com, file: {{ dir: outbox }} }}
"#
    )
}

fn ids(list: &serde_json::Value) -> Vec<i64> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_i64().unwrap())
        .collect()
}

fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
}

#[tokio::test(start_paused = true)]
async fn sev4_incidents_wait_in_their_components_queue_and_are_taken_oldest_first() {
    let start = utc("2026-03-02T03:00:00Z");
    let e = FrozenEngine::start(&config(), start).await;
    let noise = |service: &str, region: &str| {
        alert(
            "info",
            service,
            region,
            &format!("{service} log noise"),
            e.clock.now(),
        )
    };
    let first = e.signal(noise("storage", "china-east")).await;
    e.advance_minutes(1).await;
    let other = e.signal(noise("blob", "china-east")).await;
    e.advance_minutes(1).await;
    let second = e.signal(noise("sqldb", "china-east")).await;
    e.advance_minutes(1).await;

    let (status, queue) = e.engine.get("/api/v1/queues/data-oncall").await;
    assert_eq!(status, 200, "{queue}");
    assert_eq!(ids(&queue), [first, second]);
    let (_, queue) = e.engine.get("/api/v1/queues/blob-triage").await;
    assert_eq!(ids(&queue), [other]);
    let metrics = e
        .engine
        .http
        .get(format!("{}/metrics", e.engine.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let length = "tocsin_triage_queue_length{queue=\"data-oncall\"}";
    let age = "tocsin_triage_queue_oldest_age_seconds{queue=\"data-oncall\"}";
    assert_eq!(metric(&metrics, length), Some(2.0), "{metrics}");
    assert_eq!(metric(&metrics, age), Some(180.0), "{metrics}");
    assert_eq!(
        metric(
            &metrics,
            "tocsin_triage_queue_oldest_age_seconds{queue=\"tocsin-triage\"}"
        ),
        None,
        "no such service in this catalog"
    );

    // FIFO: the oldest goes to whoever takes it, and leaves the queue.
    let (status, taken) = e
        .engine
        .post("/api/v1/queues/data-oncall/take", &json!({ "by": "alice" }))
        .await;
    assert_eq!(status, 200, "{taken}");
    assert_eq!(taken["id"], first);
    assert_eq!(taken["assignee"], "alice");
    assert!(taken.get("queue").is_none(), "{taken}");
    assert!(e.timeline_kinds(first).await.contains(&"taken".to_string()));
    // It stays out of the queue when its alert fires again.
    assert_eq!(e.signal(noise("storage", "china-east")).await, first);
    let (_, queue) = e.engine.get("/api/v1/queues/data-oncall").await;
    assert_eq!(ids(&queue), [second]);

    // The CLI takes the next one.
    let dir = e.engine.running.state.setup().config.base_dir();
    let (code, out, err) = run_tocsin(
        &dir,
        &[
            "queue",
            "take",
            "data-oncall",
            "--url",
            &e.engine.url,
            "--by",
            "bob",
        ],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    assert!(
        out.starts_with(&format!("incident {second}: Sev 4")) && out.contains("assigned to bob"),
        "{out}"
    );
    // A take is a change: it is in the audit log, by whoever took it.
    let (_, audit) = e.engine.get("/api/v1/audit").await;
    let target = format!("incident {second}");
    assert!(
        audit["entries"]
            .as_array()
            .unwrap()
            .iter()
            .any(|entry| entry["action"] == "take"
                && entry["target"] == target.as_str()
                && entry["actor"] == "bob"
                && entry["detail"] == "from queue data-oncall"),
        "{audit}"
    );
    let (status, body) = e
        .engine
        .post("/api/v1/queues/data-oncall/take", &json!({ "by": "alice" }))
        .await;
    assert_eq!(status, 409, "an empty queue: {body}");
    let (status, _) = e
        .engine
        .post("/api/v1/queues/nope/take", &json!({ "by": "alice" }))
        .await;
    assert_eq!(status, 404);
    e.barrier().await;
    let metrics = e.engine.running.metrics.render();
    assert!(metrics.contains(&format!("{length} 0")), "{metrics}");
    e.stop().await;
}

/// A Sev 3 of a service whose TSG says `escalate: immediately` pages on a Saturday night;
/// the incident carries its TSG link and says why it paged.
#[tokio::test(start_paused = true)]
async fn a_tsg_that_escalates_immediately_pages_a_sev3_at_night() {
    let catalog = CATALOG.replace(
        "{ name: storage, sla: 99.9, regions: [china-east, china-north] }",
        "{ name: storage, regions: [china-east], tsg: { url: \"https://wiki.example.com/tsg/storage\", \
         escalate: immediately } }",
    );
    let config = format!(
        r#"{catalog}
correlation: {{ by: [service], window: 15m }}
responders:
  - {{ id: alice, email: alice@example.com }}
time_windows:
  - {{ name: business-hours, timezone: Asia/Shanghai, start: "0 0 9 * * Mon-Fri", duration: 9h }}
escalation_policies:
  - name: standard
    levels:
      - {{ after: 0s, notify: [ "responder:alice" ] }}
routes:
  - {{ match: [ 'severity="3"' ], policy: standard, active_during: [business-hours] }}
notifiers:
  email: {{ from: tocsin@example.com, file: {{ dir: outbox }} }}
"#
    );
    // Saturday 22:00 in Shanghai.
    let start = utc("2026-01-10T14:00:00Z");
    let e = FrozenEngine::start(&config, start).await;
    let slow = |service: &str| alert("warning", service, "china-east", "slow", e.clock.now());
    let storage = e.signal(slow("storage")).await;
    let sqldb = e.signal(slow("sqldb")).await;
    e.advance_minutes(1).await;
    assert_eq!(
        e.page_list(storage).await,
        [("triggered".to_string(), "alice".to_string(), Some(0), 0)]
    );
    assert_eq!(
        e.page_list(sqldb).await,
        [],
        "no TSG: waits for business hours"
    );
    let (_, shown) = e.engine.get(&format!("/api/v1/incidents/{storage}")).await;
    assert_eq!(shown["severity"], 3);
    assert_eq!(shown["tsg"], "https://wiki.example.com/tsg/storage");
    assert!(e
        .timeline_kinds(storage)
        .await
        .contains(&"tsg_escalates_immediately".to_string()));
    let payload = &e.pages(storage).await[0].page.payload;
    assert_eq!(
        payload.incident.tsg.as_deref(),
        Some("https://wiki.example.com/tsg/storage"),
        "the page carries the TSG link"
    );
    e.stop().await;
}

/// `queue: component` puts an incident in the queue of each service it hits; /metrics
/// counts it in each, and a take removes it from all of them.
#[tokio::test(start_paused = true)]
async fn an_incident_of_two_components_waits_in_both_queues_until_taken_from_one() {
    let config = config().replace(
        "correlation: { by: [service], window: 15m }",
        "correlation: { by: [region], window: 15m }",
    );
    let start = utc("2026-03-02T03:00:00Z");
    let e = FrozenEngine::start(&config, start).await;
    let noise = |service: &str| alert("info", service, "china-east", "noise", e.clock.now());
    let id = e.signal(noise("storage")).await;
    e.advance_minutes(1).await;
    assert_eq!(
        e.signal(noise("blob")).await,
        id,
        "one incident, two services"
    );
    e.advance_minutes(1).await;

    let (_, shown) = e.engine.get(&format!("/api/v1/incidents/{id}")).await;
    assert_eq!(
        shown["queues"],
        json!(["blob-triage", "data-oncall"]),
        "{shown}"
    );
    for queue in ["blob-triage", "data-oncall"] {
        let (_, listed) = e.engine.get(&format!("/api/v1/queues/{queue}")).await;
        assert_eq!(ids(&listed), [id], "{queue}");
    }
    let metrics = e
        .engine
        .http
        .get(format!("{}/metrics", e.engine.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for queue in ["blob-triage", "data-oncall"] {
        let length = format!("tocsin_triage_queue_length{{queue=\"{queue}\"}}");
        let age = format!("tocsin_triage_queue_oldest_age_seconds{{queue=\"{queue}\"}}");
        assert_eq!(metric(&metrics, &length), Some(1.0), "{metrics}");
        assert_eq!(metric(&metrics, &age), Some(120.0), "{metrics}");
    }

    let (status, taken) = e
        .engine
        .post("/api/v1/queues/data-oncall/take", &json!({ "by": "alice" }))
        .await;
    assert_eq!(status, 200, "{taken}");
    assert_eq!(taken["id"], id);
    assert!(taken.get("queues").is_none(), "{taken}");
    for queue in ["blob-triage", "data-oncall"] {
        let (_, listed) = e.engine.get(&format!("/api/v1/queues/{queue}")).await;
        assert_eq!(ids(&listed), Vec::<i64>::new(), "{queue}");
    }
    let (status, _) = e
        .engine
        .post("/api/v1/queues/blob-triage/take", &json!({ "by": "bob" }))
        .await;
    assert_eq!(status, 409, "gone from the other queue too");
    e.barrier().await;
    let metrics = e.engine.running.metrics.render();
    assert!(
        metrics.contains("tocsin_triage_queue_length{queue=\"blob-triage\"} 0"),
        "{metrics}"
    );
    e.stop().await;
}
