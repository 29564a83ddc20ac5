//! TSG actions: when an incident opens, tocsin calls its TSG's action webhook (a real HTTP
//! receiver here, the body signed as pages are); the action reports back through the API.
//! A Sev 4 joins its component's triage queue only when the action fails or times out (on
//! the paused clock, across a restart too); one that succeeds resolves without a queue.

use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use tocsin::signal::SignalState;

use crate::support::paging::{alert, utc, Answer, FrozenEngine, Receiver};
use crate::support::{TestDir, CATALOG};

const SECRET: &str = "tsg-s3cret";

fn config(receiver: &str) -> String {
    let catalog = CATALOG
        .replace(
            "{ name: storage, sla: 99.9, regions: [china-east, china-north] }",
            "{ name: storage, regions: [china-east], tsg: { url: \"https://wiki.example.com/tsg/storage\", \
             action: { webhook: restart-storage, timeout: 10m } } }",
        )
        .replace(
            "{ name: sqldb, regions: [china-east, china-north] }",
            "{ name: sqldb, regions: [china-east], tsg: { url: \"https://wiki.example.com/tsg/sqldb\", \
             action: { webhook: restart-storage, timeout: 10m } } }",
        );
    format!(
        r#"{catalog}
correlation: {{ by: [service], window: 15m }}
incidents: {{ resolve_after: 5m }}
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
  webhooks:
    - {{ name: restart-storage, url: "{receiver}", secret_file: secrets/restart, timeout: 5s }}
"#
    )
}

async fn start(receiver: &Receiver, at: &str) -> FrozenEngine {
    let dir = TestDir::new(
        &config(&receiver.url),
        &[("default.yaml", &crate::support::default_rules())],
    );
    dir.write("secrets/restart", &format!("{SECRET}\n"));
    FrozenEngine::start_in(dir, utc(at)).await
}

fn signed(key: &[u8], body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

fn ids(list: &Value) -> Vec<i64> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_i64().unwrap())
        .collect()
}

#[tokio::test(start_paused = true)]
async fn a_tsg_action_is_called_signed_and_its_success_keeps_the_incident_out_of_the_queue() {
    let receiver = Receiver::start(vec![], Answer::Status(200)).await;
    let e = start(&receiver, "2026-03-02T03:00:00Z").await;
    let noise = alert("info", "storage", "china-east", "index lag", e.clock.now());
    let id = e.signal(noise.clone()).await;
    e.settle().await;

    // The action's webhook got the incident, its impacts, the TSG and where to report.
    let got = receiver.received();
    assert_eq!(got.len(), 1, "one call");
    let call = &got[0];
    assert_eq!(
        call.header("x-tocsin-signature"),
        Some(signed(SECRET.as_bytes(), &call.body)),
        "signed as pages are"
    );
    assert_eq!(call.header("x-tocsin-event").as_deref(), Some("tsg_action"));
    let body: Value = serde_json::from_slice(&call.body).unwrap();
    assert_eq!(body["event"], "tsg_action");
    assert_eq!(body["incident"]["id"], id);
    assert_eq!(body["incident"]["severity"], 4);
    assert_eq!(body["context"]["impacts"][0]["summary"], "index lag");
    let external = e.engine.running.state.setup().external_url.clone();
    let report = format!("/api/v1/incidents/{id}/tsg");
    assert_eq!(
        body["tsg_action"]["url"],
        "https://wiki.example.com/tsg/storage"
    );
    assert_eq!(body["tsg_action"]["from"], "service storage");
    assert_eq!(
        body["tsg_action"]["report_url"],
        format!("{external}{report}")
    );
    assert_eq!(body["tsg_action"]["deadline"], "2026-03-02T03:10:00Z");

    // While the action runs, the incident waits in no queue.
    e.advance_minutes(2).await;
    let (_, queue) = e.engine.get("/api/v1/queues/storage-triage").await;
    assert_eq!(ids(&queue), Vec::<i64>::new());
    let (_, shown) = e.engine.get(&format!("/api/v1/incidents/{id}")).await;
    assert_eq!(shown["tsg"], "https://wiki.example.com/tsg/storage");
    assert_eq!(shown["tsg_action"]["outcome"], Value::Null, "{shown}");

    // Bad reports are refused, naming what was expected.
    let (status, error) = e.engine.post(&report, &json!({ "status": "done" })).await;
    assert_eq!(status, 422, "{error}");
    assert!(
        error.to_string().contains("expected succeeded or failed"),
        "{error}"
    );
    let (status, _) = e
        .engine
        .post("/api/v1/incidents/999/tsg", &json!({ "status": "failed" }))
        .await;
    assert_eq!(status, 404);

    let (status, shown) = e
        .engine
        .post(
            &report,
            &json!({ "status": "succeeded", "note": "restarted the indexer", "by": "restart-bot" }),
        )
        .await;
    assert_eq!(status, 200, "{shown}");
    assert_eq!(shown["tsg_action"]["outcome"], "succeeded");
    assert_eq!(shown["tsg_action"]["note"], "restarted the indexer");
    assert_eq!(shown["tsg_action"]["reported_by"], "restart-bot");
    let (status, again) = e.engine.post(&report, &json!({ "status": "failed" })).await;
    assert_eq!(status, 409, "the outcome is final: {again}");
    let page = e
        .engine
        .http
        .get(format!("{}/incidents/{id}", e.engine.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        // minijinja escapes `/` in HTML; a browser reads the same link.
        page.contains(
            "id=\"tsg-link\" href=\"https:&#x2f;&#x2f;wiki.example.com&#x2f;tsg&#x2f;storage\""
        ) && page.contains("(action succeeded)"),
        "the dashboard shows the TSG and its action: {page}"
    );

    // The impact clears: it resolves, never having joined a queue, and no one was paged.
    let mut cleared = alert("info", "storage", "china-east", "index lag", e.clock.now());
    cleared.state = SignalState::Resolved;
    e.send(tocsin::engine::Input::Signals(vec![cleared])).await;
    e.advance_minutes(6).await;
    let (_, shown) = e.engine.get(&format!("/api/v1/incidents/{id}")).await;
    assert_eq!(shown["status"], "resolved", "{shown}");
    let kinds = e.timeline_kinds(id).await;
    for kind in [
        "tsg_action_called",
        "tsg_action_waiting",
        "tsg_action_succeeded",
        "resolved",
    ] {
        assert!(kinds.contains(&kind.to_string()), "{kind} in {kinds:?}");
    }
    assert!(!kinds.contains(&"queued".to_string()), "{kinds:?}");
    assert_eq!(
        e.page_list(id).await,
        [(
            "tsg_action".to_string(),
            "webhook:restart-storage".to_string(),
            None,
            0
        )],
        "the action's call is the only page"
    );
    let audit = e
        .engine
        .running
        .state
        .store
        .audit_entries(None, 10)
        .await
        .unwrap();
    assert!(
        audit.iter().any(|a| a.action == "tsg_report"
            && a.actor == "restart-bot"
            && a.target == format!("incident {id}")
            && a.detail == "succeeded: restarted the indexer"),
        "{audit:?}"
    );
    e.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_failed_action_queues_at_once_and_a_silent_one_at_its_deadline_after_a_restart() {
    let receiver = Receiver::start(vec![], Answer::Status(200)).await;
    let e = start(&receiver, "2026-03-02T03:00:00Z").await;
    let storage = e
        .signal(alert(
            "info",
            "storage",
            "china-east",
            "index lag",
            e.clock.now(),
        ))
        .await;
    let sqldb = e
        .signal(alert(
            "info",
            "sqldb",
            "china-east",
            "vacuum slow",
            e.clock.now(),
        ))
        .await;
    e.advance_minutes(3).await;
    assert_eq!(
        receiver.received().len(),
        2,
        "each incident's action is called"
    );

    let (status, shown) = e
        .engine
        .post(
            &format!("/api/v1/incidents/{storage}/tsg"),
            &json!({ "status": "failed", "note": "indexer would not restart" }),
        )
        .await;
    assert_eq!(status, 200, "{shown}");
    assert_eq!(shown["queue"], "storage-triage");
    let (_, queue) = e.engine.get("/api/v1/queues/storage-triage").await;
    assert_eq!(ids(&queue), [storage]);
    let (_, queue) = e.engine.get("/api/v1/queues/sqldb-triage").await;
    assert_eq!(ids(&queue), Vec::<i64>::new(), "sqldb's action still runs");

    // The engine restarts while sqldb's action runs: its deadline still counts.
    let e = e.restart().await;
    e.advance_minutes(6).await;
    let (_, queue) = e.engine.get("/api/v1/queues/sqldb-triage").await;
    assert_eq!(ids(&queue), Vec::<i64>::new(), "9 minutes: not yet");
    e.advance_minutes(1).await;
    let (_, queue) = e.engine.get("/api/v1/queues/sqldb-triage").await;
    assert_eq!(ids(&queue), [sqldb], "timed out at 10 minutes");
    let (_, shown) = e.engine.get(&format!("/api/v1/incidents/{sqldb}")).await;
    assert_eq!(shown["tsg_action"]["outcome"], "timed_out", "{shown}");
    let kinds = e.timeline_kinds(sqldb).await;
    let at = |kind: &str| kinds.iter().position(|k| k == kind);
    assert!(
        at("tsg_action_timed_out").is_some() && at("tsg_action_timed_out") < at("queued"),
        "{kinds:?}"
    );
    let kinds = e.timeline_kinds(storage).await;
    assert!(
        kinds.contains(&"tsg_action_failed".to_string()),
        "{kinds:?}"
    );
    let (status, late) = e
        .engine
        .post(
            &format!("/api/v1/incidents/{sqldb}/tsg"),
            &json!({ "status": "succeeded" }),
        )
        .await;
    assert_eq!(status, 409, "too late: {late}");
    assert!(late.to_string().contains("timed_out"), "{late}");
    e.stop().await;
}

#[tokio::test(start_paused = true)]
async fn an_action_whose_webhook_refuses_the_call_fails_and_queues_at_once() {
    // 400 is final: the call is given up without retries.
    let receiver = Receiver::start(vec![], Answer::Status(400)).await;
    let e = start(&receiver, "2026-03-02T03:00:00Z").await;
    let id = e
        .signal(alert(
            "info",
            "storage",
            "china-east",
            "index lag",
            e.clock.now(),
        ))
        .await;
    e.settle().await;
    // The worker reports the lost call to the engine after it counts the attempt.
    for _ in 0..10_000 {
        if e.timeline_kinds(id)
            .await
            .contains(&"tsg_action_failed".to_string())
        {
            break;
        }
        e.barrier().await;
        tokio::task::yield_now().await;
    }
    assert_eq!(receiver.received().len(), 1);
    let (_, shown) = e.engine.get(&format!("/api/v1/incidents/{id}")).await;
    assert_eq!(shown["tsg_action"]["outcome"], "failed", "{shown}");
    assert_eq!(
        shown["tsg_action"]["note"],
        "its webhook could not be called"
    );
    assert_eq!(
        shown["queue"], "storage-triage",
        "queued before the deadline"
    );
    let kinds = e.timeline_kinds(id).await;
    for kind in ["delivery_failed", "tsg_action_failed", "queued"] {
        assert!(kinds.contains(&kind.to_string()), "{kind} in {kinds:?}");
    }
    e.stop().await;
}

/// A rule's TSG wins over its service's: the incident, its pages and their runbook links
/// carry the rule's, and the service's action is not called.
#[tokio::test(start_paused = true)]
async fn a_rules_tsg_wins_over_its_services_in_the_incident_and_its_pages() {
    let receiver = Receiver::start(vec![], Answer::Status(200)).await;
    let rule = "\
groups:
  - name: storage
    rules:
      - name: StorageDown
        match: [ 'source=\"alert\"' ]
        impact: { kind: outage, sla_breach: true }
        tsg: { url: \"https://wiki.example.com/tsg/storage-down\" }
";
    let dir = TestDir::new(&config(&receiver.url), &[("storage.yaml", rule)]);
    dir.write("secrets/restart", &format!("{SECRET}\n"));
    let e = FrozenEngine::start_in(dir, utc("2026-03-02T03:00:00Z")).await;
    let id = e
        .signal(alert(
            "critical",
            "storage",
            "china-east",
            "down",
            e.clock.now(),
        ))
        .await;
    e.settle().await;
    let (_, shown) = e.engine.get(&format!("/api/v1/incidents/{id}")).await;
    assert_eq!(shown["severity"], 2);
    assert_eq!(shown["tsg"], "https://wiki.example.com/tsg/storage-down");
    assert!(shown.get("tsg_action").is_none(), "{shown}");
    let pages = e.pages(id).await;
    assert_eq!(pages.len(), 1, "alice is paged; no action is called");
    assert!(receiver.received().is_empty());
    let payload = &pages[0].page.payload;
    assert_eq!(
        payload.incident.tsg.as_deref(),
        Some("https://wiki.example.com/tsg/storage-down")
    );
    let context = payload.context.as_ref().unwrap();
    assert_eq!(
        (
            context.runbooks[0].title.as_str(),
            context.runbooks[0].url.as_str()
        ),
        ("TSG", "https://wiki.example.com/tsg/storage-down")
    );
    e.stop().await;
}
