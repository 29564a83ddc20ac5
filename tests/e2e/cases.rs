//! Support cases (service requests) through the HTTP API and the CLI: routed by
//! `case_routes:` to support, their initial-response deadline and update cadence on the
//! engine's clock, escalation to a CRI linked both ways, updates emailed to the customer
//! over real SMTP, and a restart that keeps cases and their timers.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use crate::support::paging::{header, parts, utc, FrozenEngine, Smtpd};
use crate::support::{eventually, run_tocsin, TestDir, TestEngine, CATALOG};

/// Monday 03:00 UTC (11:00 in Shanghai).
pub(crate) const START: &str = "2026-03-02T03:00:00Z";

/// Support's policy pages erin, then dave; engineering's (for the incidents) carol.
fn config(extra: &str) -> String {
    format!(
        r#"{CATALOG}
server: {{ external_url: "http://tocsin.test" }}
responders:
  - {{ id: alice, email: alice@example.com }}
  - {{ id: carol, email: carol@example.com }}
  - {{ id: dave, email: dave@example.com }}
  - {{ id: erin, email: erin@example.com }}
escalation_policies:
  - name: support
    levels:
      - {{ after: 0s, notify: [ "responder:erin" ] }}
      - {{ after: 1h, notify: [ "responder:dave" ] }}
  - name: engineering
    levels:
      - {{ after: 0s, notify: [ "responder:carol" ] }}
routes:
  - {{ match: [ 'severity=~"0|1|2|3"' ], policy: engineering }}
case_routes:
  - {{ match: [ 'sr_severity=~"A|B|C"' ], policy: support }}
{extra}"#
    )
}

fn frozen_config() -> String {
    config(
        "notifiers:\n  email: { from: tocsin@example.com, file: { dir: outbox } }\n  \
         retry: { initial_backoff: 1h, max_backoff: 1h, max_age: 7d }\n",
    )
}

pub(crate) fn case_body(sr: &str) -> Value {
    json!({
        "customer": "contoso", "service": "storage", "region": "china-east",
        "sr_severity": sr, "summary": "uploads fail with 503 since 10:40",
        "contact": { "name": "Dana", "email": "dana@contoso.example.com", "phone": "+86 21 5555 0100" },
        "by": "sam"
    })
}

fn time(v: &Value) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(v.as_str().expect("a time"))
        .unwrap()
        .with_timezone(&Utc)
}

/// (event, recipient, minutes after `start`) of each page about case `id`.
pub(crate) async fn case_pages(e: &FrozenEngine, id: i64) -> Vec<(String, String, i64)> {
    e.engine
        .running
        .state
        .store
        .pages_of_case(id)
        .await
        .unwrap()
        .into_iter()
        .map(|p| {
            (
                p.page.event.as_str().to_string(),
                p.page.recipient.id.clone(),
                (p.page.created_at - e.start).num_minutes(),
            )
        })
        .collect()
}

pub(crate) fn page(event: &str, who: &str, minute: i64) -> (String, String, i64) {
    (event.to_string(), who.to_string(), minute)
}

pub(crate) async fn case_kinds(engine: &TestEngine, id: i64) -> Vec<String> {
    let (status, case) = engine.get(&format!("/api/v1/cases/{id}")).await;
    assert_eq!(status, 200, "{case}");
    case["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(start_paused = true)]
async fn a_case_pages_support_and_breaches_its_deadline_once() {
    let start = utc(START);
    let e = FrozenEngine::start(&frozen_config(), start).await;
    let (status, case) = e.engine.post("/api/v1/cases", &case_body("A")).await;
    assert_eq!(status, 201, "{case}");
    let id = case["id"].as_i64().unwrap();
    assert_eq!(
        case["owner"], "sam",
        "the opener owns it until someone takes it"
    );
    assert_eq!(case["status"], "open");
    assert_eq!(case["policy"], "support");
    assert_eq!(
        time(&case["respond_by"]) - start,
        chrono::Duration::hours(2)
    );
    assert_eq!(case["contact"]["email"], "dana@contoso.example.com");
    e.barrier().await;
    assert_eq!(
        case_pages(&e, id).await,
        [page("triggered", "erin", 0)],
        "support is paged, not engineering"
    );

    // Acknowledging the page stops its escalation (dave's level, an hour on), not the
    // response deadline.
    e.advance_minutes(10).await;
    let (status, acked) = e
        .engine
        .post(&format!("/api/v1/cases/{id}/ack"), &json!({ "by": "erin" }))
        .await;
    assert_eq!(status, 200, "{acked}");
    assert_eq!(acked["acknowledged_by"], "erin");
    e.advance_minutes(109).await;
    assert_eq!(case_pages(&e, id).await.len(), 1);
    e.advance_minutes(1).await;
    assert_eq!(
        case_pages(&e, id).await,
        [
            page("triggered", "erin", 0),
            page("response_breached", "erin", 120),
            page("response_breached", "dave", 120),
        ]
    );
    // A deadline breaches once; a late response is still recorded, as late.
    e.advance_minutes(180).await;
    assert_eq!(case_pages(&e, id).await.len(), 3);
    let (status, case) = e
        .engine
        .post(
            &format!("/api/v1/cases/{id}/respond"),
            &json!({ "by": "sam", "text": "looking at it" }),
        )
        .await;
    assert_eq!(status, 200, "{case}");
    assert_eq!(case["response_breached"], true);
    let kinds = case_kinds(&e.engine, id).await;
    assert_eq!(
        kinds,
        [
            "opened",
            "paged",
            "acknowledged",
            "response_breached",
            "paged",
            "responded"
        ]
    );
    let metrics = e.engine.running.metrics.render();
    assert!(
        metrics.contains("tocsin_sr_response_breaches_total{sr_severity=\"A\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("tocsin_cases_opened_total{sr_severity=\"A\"} 1"),
        "{metrics}"
    );
    e.stop().await;
}

#[tokio::test(start_paused = true)]
async fn an_sr_a_case_needs_hourly_updates_and_a_second_miss_escalates() {
    let start = utc(START);
    let e = FrozenEngine::start(&frozen_config(), start).await;
    let (_, case) = e.engine.post("/api/v1/cases", &case_body("A")).await;
    let id = case["id"].as_i64().unwrap();
    let (status, case) = e
        .engine
        .post(
            &format!("/api/v1/cases/{id}/take"),
            &json!({ "by": "alice" }),
        )
        .await;
    assert_eq!(status, 200, "{case}");
    assert_eq!(case["owner"], "alice");
    // An update before the first response is refused: the response comes first.
    let (status, body) = e
        .engine
        .post(
            &format!("/api/v1/cases/{id}/updates"),
            &json!({ "by": "alice", "text": "still looking" }),
        )
        .await;
    assert_eq!(status, 409, "{body}");
    e.advance_minutes(30).await;
    let (status, case) = e
        .engine
        .post(
            &format!("/api/v1/cases/{id}/respond"),
            &json!({ "by": "alice", "text": "we see the 503s; investigating" }),
        )
        .await;
    assert_eq!(status, 200, "{case}");
    assert_eq!(
        time(&case["deadline_met_at"]),
        start + chrono::Duration::minutes(30)
    );
    let (status, _) = e
        .engine
        .post(
            &format!("/api/v1/cases/{id}/respond"),
            &json!({ "by": "alice", "text": "again" }),
        )
        .await;
    assert_eq!(status, 409, "one first response");

    // An hour without an update pages the owner; a second hour escalates by the policy.
    e.advance_minutes(59).await;
    assert_eq!(case_pages(&e, id).await, [page("triggered", "erin", 0)]);
    e.advance_minutes(1).await;
    assert_eq!(
        case_pages(&e, id).await[1..],
        [page("engagement_due", "alice", 90)]
    );
    e.advance_minutes(60).await;
    assert_eq!(
        case_pages(&e, id).await[2..],
        [
            page("engagement_missed", "erin", 150),
            page("engagement_missed", "dave", 150),
        ]
    );
    // An update starts the cadence again.
    let (status, _) = e
        .engine
        .post(
            &format!("/api/v1/cases/{id}/updates"),
            &json!({ "by": "alice", "text": "mitigation under way" }),
        )
        .await;
    assert_eq!(status, 201);
    e.advance_minutes(59).await;
    assert_eq!(case_pages(&e, id).await.len(), 4);
    e.advance_minutes(1).await;
    assert_eq!(
        case_pages(&e, id).await[4..],
        [page("engagement_due", "alice", 210)]
    );
    // SR A is worked until resolved: the customer cannot exit it; resolving ends it.
    let (status, body) = e
        .engine
        .post(
            &format!("/api/v1/cases/{id}/customer-exit"),
            &json!({ "by": "alice" }),
        )
        .await;
    assert_eq!(status, 409, "{body}");
    let (status, case) = e
        .engine
        .post(
            &format!("/api/v1/cases/{id}/resolve"),
            &json!({ "by": "alice", "note": "fixed by the storage team" }),
        )
        .await;
    assert_eq!(status, 200, "{case}");
    assert_eq!(case["status"], "resolved");
    e.advance_minutes(180).await;
    assert_eq!(
        case_pages(&e, id).await.len(),
        5,
        "a resolved case pages no one"
    );
    let (status, _) = e
        .engine
        .post(&format!("/api/v1/cases/{id}/take"), &json!({ "by": "x" }))
        .await;
    assert_eq!(status, 409, "a resolved case takes no action");
    e.stop().await;
}

#[tokio::test(start_paused = true)]
async fn sr_b_stops_when_the_customer_exits_and_sr_c_needs_only_its_response() {
    let start = utc(START);
    let e = FrozenEngine::start(&frozen_config(), start).await;
    let (_, b) = e.engine.post("/api/v1/cases", &case_body("B")).await;
    let b = b["id"].as_i64().unwrap();
    let (_, c) = e.engine.post("/api/v1/cases", &case_body("C")).await;
    let c = c["id"].as_i64().unwrap();
    assert_eq!(
        time(&e.engine.get(&format!("/api/v1/cases/{c}")).await.1["respond_by"]) - start,
        chrono::Duration::hours(8)
    );
    for id in [b, c] {
        let (status, _) = e
            .engine
            .post(
                &format!("/api/v1/cases/{id}/respond"),
                &json!({ "by": "sam", "text": "on it" }),
            )
            .await;
        assert_eq!(status, 200);
    }
    let (status, body) = e
        .engine
        .post(
            &format!("/api/v1/cases/{c}/customer-exit"),
            &json!({ "by": "sam" }),
        )
        .await;
    assert_eq!(status, 409, "{body}");
    e.advance_minutes(240).await;
    assert_eq!(
        case_pages(&e, b).await[1..],
        [page("engagement_due", "erin", 240)]
    );
    let (status, case) = e
        .engine
        .post(
            &format!("/api/v1/cases/{b}/customer-exit"),
            &json!({ "by": "sam", "note": "Dana asked us to stop; she will reopen" }),
        )
        .await;
    assert_eq!(status, 200, "{case}");
    e.advance_minutes(600).await;
    assert_eq!(
        case_pages(&e, b).await.len(),
        2,
        "no cadence after the exit"
    );
    assert_eq!(
        case_pages(&e, c).await.len(),
        1,
        "SR C: its first response only"
    );
    assert!(case_kinds(&e.engine, b)
        .await
        .contains(&"customer_exit".to_string()));
    e.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_cri_makes_a_linked_case_and_an_ack_meets_the_deadline_once() {
    let start = utc(START);
    let e = FrozenEngine::start(&frozen_config(), start).await;
    let mut report = case_body("A");
    report.as_object_mut().unwrap().remove("by");
    let (status, body) = e.engine.post("/api/v1/cri", &report).await;
    assert_eq!(status, 201, "{body}");
    let incident = body["incident_id"].as_i64().unwrap();
    let case = body["case_id"].as_i64().unwrap();
    assert_eq!(
        time(&body["respond_by"]) - start,
        chrono::Duration::hours(2)
    );
    let (_, shown) = e.engine.get(&format!("/api/v1/cases/{case}")).await;
    assert_eq!(shown["incident"]["id"], incident);
    assert_eq!(shown["incident"]["status"], "triggered");
    let (_, shown) = e.engine.get(&format!("/api/v1/incidents/{incident}")).await;
    assert_eq!(shown["cases"][0]["id"], case, "{shown}");
    assert_eq!(shown["cases"][0]["status"], "open");

    e.advance_minutes(20).await;
    let (status, _) = e
        .engine
        .post(
            &format!("/api/v1/incidents/{incident}/ack"),
            &json!({ "by": "carol" }),
        )
        .await;
    assert_eq!(status, 200);
    let (_, shown) = e.engine.get(&format!("/api/v1/cases/{case}")).await;
    assert_eq!(
        time(&shown["deadline_met_at"]),
        start + chrono::Duration::minutes(20)
    );
    assert_eq!(shown["incident"]["status"], "acknowledged");
    e.advance_minutes(180).await;
    let incident_pages = e.page_list(incident).await;
    assert!(
        incident_pages.iter().all(|p| p.0 != "response_breached"),
        "{incident_pages:?}"
    );
    assert!(case_pages(&e, case)
        .await
        .iter()
        .all(|p| p.0 != "response_breached"));

    // Another customer's CRI, not acknowledged: its deadline breaches once, on the incident.
    let mut other = report.clone();
    other["customer"] = json!("northwind");
    other["service"] = json!("sqldb");
    other["region"] = json!("china-north");
    let (_, body) = e.engine.post("/api/v1/cri", &other).await;
    let (incident2, case2) = (
        body["incident_id"].as_i64().unwrap(),
        body["case_id"].as_i64().unwrap(),
    );
    assert_ne!(incident2, incident);
    e.advance_minutes(121).await;
    let breaches = e
        .page_list(incident2)
        .await
        .into_iter()
        .filter(|p| p.0 == "response_breached")
        .count();
    let case_breaches = case_pages(&e, case2)
        .await
        .into_iter()
        .filter(|p| p.0 == "response_breached")
        .count();
    assert_eq!((breaches, case_breaches), (1, 0));
    e.stop().await;
}

#[tokio::test(start_paused = true)]
async fn an_escalated_case_opens_an_incident_and_they_link_both_ways() {
    let start = utc(START);
    let e = FrozenEngine::start(&frozen_config(), start).await;
    let (_, case) = e.engine.post("/api/v1/cases", &case_body("A")).await;
    let id = case["id"].as_i64().unwrap();
    let (status, body) = e
        .engine
        .post(
            &format!("/api/v1/cases/{id}/escalate"),
            &json!({ "by": "sam", "kind": "meltdown" }),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    let (status, case) = e
        .engine
        .post(
            &format!("/api/v1/cases/{id}/escalate"),
            &json!({ "by": "sam", "kind": "outage" }),
        )
        .await;
    assert_eq!(status, 200, "{case}");
    let incident = case["incident_id"].as_i64().expect("linked");
    assert_eq!(case["incident"]["id"], incident);
    let (_, shown) = e.engine.get(&format!("/api/v1/incidents/{incident}")).await;
    assert_eq!(shown["cases"][0]["id"], id);
    assert!(shown["customers"]
        .as_array()
        .unwrap()
        .contains(&json!("contoso")));
    let kinds: Vec<&str> = shown["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["kind"].as_str().unwrap())
        .collect();
    assert!(kinds.contains(&"case_linked"), "{kinds:?}");
    e.barrier().await;
    assert!(
        e.page_list(incident).await.iter().any(|p| p.1 == "carol"),
        "the CRI pages engineering"
    );
    let (status, _) = e
        .engine
        .post(
            &format!("/api/v1/cases/{id}/escalate"),
            &json!({ "by": "sam" }),
        )
        .await;
    assert_eq!(status, 409, "escalated once");

    // The deadline stays the case's: it breaches once, on the case.
    e.advance_minutes(121).await;
    let breached = |pages: Vec<(String, String, Option<usize>, i64)>| {
        pages.iter().filter(|p| p.0 == "response_breached").count()
    };
    assert_eq!(breached(e.page_list(incident).await), 0);
    assert_eq!(
        case_pages(&e, id)
            .await
            .iter()
            .filter(|p| p.0 == "response_breached")
            .count(),
        2,
        "levels 0 and 1 of the support policy, once"
    );

    // Resolving the incident leaves the case open: only a person resolves a case.
    let (status, _) = e
        .engine
        .post(
            &format!("/api/v1/incidents/{incident}/resolve"),
            &json!({ "by": "carol" }),
        )
        .await;
    assert_eq!(status, 200);
    let (_, shown) = e.engine.get(&format!("/api/v1/cases/{id}")).await;
    assert_eq!(shown["status"], "open");
    assert_eq!(shown["incident"]["status"], "resolved");
    assert!(case_kinds(&e.engine, id)
        .await
        .ends_with(&["incident_resolved".to_string()]));
    let (status, _) = e
        .engine
        .post(
            &format!("/api/v1/cases/{id}/resolve"),
            &json!({ "by": "sam" }),
        )
        .await;
    assert_eq!(status, 200);
    let (_, open) = e.engine.get("/api/v1/cases?status=open").await;
    assert_eq!(open, json!([]));
    let (_, all) = e.engine.get("/api/v1/cases").await;
    assert_eq!(all[0]["status"], "resolved");
    let (status, _) = e.engine.get("/api/v1/cases/999").await;
    assert_eq!(status, 404);
    e.stop().await;
}

#[tokio::test]
async fn bad_cases_are_refused_naming_each_field() {
    let dir = TestDir::new(
        &frozen_config(),
        &[("default.yaml", &crate::support::default_rules())],
    );
    let engine = TestEngine::start(&dir).await;
    let (status, body) = engine
        .post(
            "/api/v1/cases",
            &json!({ "customer": "contoso", "sr_severity": "D", "summary": "x" }),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    let fields: Vec<&String> = body["fields"].as_object().unwrap().keys().collect();
    assert_eq!(
        fields,
        ["by", "contact", "region", "service", "sr_severity"]
    );
    let (status, body) = engine.post("/api/v1/cases", &json!(["sam"])).await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = engine.get("/api/v1/cases?status=closed").await;
    assert_eq!(status, 400, "{body}");
    engine.stop().await;
}

/// A case update with `notify_customer` reaches the customer's case owner over SMTP with
/// the update and the case id only; support's pages go to the webhook and email as usual.
#[tokio::test]
async fn an_update_with_notify_customer_emails_the_case_owner() {
    let scratch = tempfile::tempdir().unwrap();
    let smtpd = Smtpd::start(scratch.path()).await;
    let extra = format!(
        "notifiers:\n  email: {{ from: support@example.com, smtp: {{ host: 127.0.0.1, port: {}, \
         tls: none, timeout: 5s }} }}\n  retry: {{ initial_backoff: 100ms, max_backoff: 200ms, \
         max_age: 1h }}\n",
        smtpd.port
    );
    let dir = TestDir::new(
        &config(&extra),
        &[("default.yaml", &crate::support::default_rules())],
    );
    let engine = TestEngine::start(&dir).await;
    let (_, case) = engine.post("/api/v1/cases", &case_body("B")).await;
    let id = case["id"].as_i64().unwrap();
    engine
        .post(
            &format!("/api/v1/cases/{id}/respond"),
            &json!({ "by": "sam", "text": "first look" }),
        )
        .await;
    let (status, _) = engine
        .post(
            &format!("/api/v1/cases/{id}/updates"),
            &json!({ "by": "sam", "text": "internal: suspect the new LB build" }),
        )
        .await;
    assert_eq!(status, 201);
    let (status, _) = engine
        .post(
            &format!("/api/v1/cases/{id}/updates"),
            &json!({ "by": "sam", "text": "Uploads work again since 11:20.", "notify_customer": true }),
        )
        .await;
    assert_eq!(status, 201);
    let to_dana = eventually(Duration::from_secs(20), || async {
        smtpd
            .messages()
            .into_iter()
            .find(|m| header(m, "X-RcptTo").as_deref() == Some("dana@contoso.example.com"))
    })
    .await
    .expect("the customer's case owner gets the update");
    assert_eq!(
        header(&to_dana, "Subject").as_deref(),
        Some(format!("[Case #{id}] Update on your service request").as_str())
    );
    let text: String = parts(&to_dana).into_iter().map(|(_, body)| body).collect();
    assert!(text.contains("Uploads work again since 11:20."), "{text}");
    assert!(text.contains(&format!("case #{id}")), "{text}");
    for internal in [
        "suspect the new LB build",
        "uploads fail with 503",
        "sam",
        "erin",
    ] {
        assert!(
            !text.contains(internal),
            "{internal:?} reached the customer: {text}"
        );
    }
    // Support's own page went to erin.
    let to_erin = eventually(Duration::from_secs(20), || async {
        smtpd
            .messages()
            .into_iter()
            .find(|m| header(m, "X-RcptTo").as_deref() == Some("erin@example.com"))
    })
    .await
    .expect("support is paged");
    assert_eq!(
        header(&to_erin, "Subject").as_deref(),
        Some(format!("[SR B] Case #{id} contoso storage china-east").as_str())
    );
    assert_eq!(
        smtpd.messages().len(),
        2,
        "an update without notify_customer is not sent"
    );
    let kinds = case_kinds(&engine, id).await;
    assert!(
        kinds.contains(&"customer_notified".to_string()),
        "{kinds:?}"
    );
    engine.stop().await;
}

/// Cases and their timers outlive the engine: a deadline that passed while it was down
/// breaches when it starts again.
#[tokio::test]
async fn cases_and_their_deadlines_survive_a_restart() {
    let extra = "sr_response: { A: 2s }\nnotifiers:\n  email: { from: tocsin@example.com, \
                 file: { dir: outbox } }\n";
    let dir = TestDir::new(
        &config(extra),
        &[("default.yaml", &crate::support::default_rules())],
    );
    let engine = TestEngine::start(&dir).await;
    let (_, case) = engine.post("/api/v1/cases", &case_body("A")).await;
    let id = case["id"].as_i64().unwrap();
    let (_, other) = engine.post("/api/v1/cases", &case_body("C")).await;
    let other = other["id"].as_i64().unwrap();
    engine.stop().await;
    // Down past the deadline.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let engine = TestEngine::start(&dir).await;
    let breached = eventually(Duration::from_secs(10), || async {
        case_kinds(&engine, id)
            .await
            .contains(&"response_breached".to_string())
            .then_some(())
    })
    .await;
    assert!(breached.is_some(), "{:?}", case_kinds(&engine, id).await);
    let (_, shown) = engine.get(&format!("/api/v1/cases/{other}")).await;
    assert_eq!(shown["owner"], "sam");
    assert_eq!(shown["response_breached"], false);
    let (_, new) = engine.post("/api/v1/cases", &case_body("B")).await;
    assert_eq!(new["id"], other + 1, "ids go on after a restart");
    engine.stop().await;
}

/// `tocsin cases` is a client of the same API.
#[tokio::test]
async fn the_cli_opens_takes_and_lists_cases() {
    let dir = TestDir::new(
        &frozen_config(),
        &[("default.yaml", &crate::support::default_rules())],
    );
    let engine = TestEngine::start(&dir).await;
    let url = engine.url.clone();
    let (code, out, err) = run_tocsin(
        dir.path(),
        &[
            "cases",
            "open",
            "--url",
            &url,
            "--customer",
            "contoso",
            "--service",
            "storage",
            "--region",
            "china-east",
            "--sr-severity",
            "B",
            "--summary",
            "slow uploads",
            "--contact-name",
            "Dana",
            "--contact-email",
            "dana@contoso.example.com",
            "--by",
            "sam",
        ],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    assert!(
        out.starts_with("case 1 opened: SR B open, owner sam"),
        "{out}"
    );
    let (code, out, err) = run_tocsin(
        dir.path(),
        &["cases", "take", "1", "--url", &url, "--by", "alice"],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("owner alice"), "{out}");
    let (code, out, err) = run_tocsin(
        dir.path(),
        &["cases", "ack", "1", "--url", &url, "--by", "alice"],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("case 1 acknowledged"), "{out}");
    let (code, out, _) = run_tocsin(dir.path(), &["cases", "list", "--url", &url]).await;
    assert_eq!(code, 0);
    assert!(out.lines().nth(1).unwrap().contains("contoso"), "{out}");
    let (code, _, err) = run_tocsin(
        dir.path(),
        &["cases", "exit", "7", "--url", &url, "--by", "alice"],
    )
    .await;
    assert_eq!(code, 1);
    assert!(err.contains("404"), "{err}");
    // Every step is in the audit log, by whoever took it; the refused one is not.
    let (code, out, err) = run_tocsin(
        dir.path(),
        &["audit", "list", "--url", &url, "--output", "json"],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    let log: Value = serde_json::from_str(&out).unwrap();
    let mut steps: Vec<(String, String, String)> = log["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let field = |k: &str| e[k].as_str().unwrap_or_default().to_string();
            (field("action"), field("actor"), field("target"))
        })
        .collect();
    steps.reverse();
    let step = |action: &str, actor: &str| (action.into(), actor.into(), "case 1".into());
    assert_eq!(
        steps,
        [
            step("case_open", "sam"),
            step("case_take", "alice"),
            step("case_ack", "alice")
        ],
        "{out}"
    );
    engine.stop().await;
}
