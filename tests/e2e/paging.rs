//! Paging end to end: who is paged when (on tokio's paused clock, asserting on the outbox
//! and the timeline), and delivery to real receivers (aiosmtpd, an HTTP server, `.eml` files)
//! with real time and short backoffs.

use std::time::Duration;

use crate::support;
use crate::support::paging as paging_support;
use crate::support::paging::{
    alert, count, cri, delivery_config, header, open_incident, parts, storage_down, timeline, utc,
    wait_count, wait_written, Answer, FrozenEngine, Receiver, Smtpd,
};
use crate::support::{eventually, TestDir, TestEngine, CATALOG};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use tocsin::engine::{Clock, Input};
use tocsin::store::{OutboxStatus, Store};

// ===== who is paged when, on a paused clock ================================================

/// Responders reached by email (written to `.eml` files, so delivery needs no network and
/// never retries), a policy per kind of incident, and routes like those of the example in
/// docs/configuration.md.
const PAGING: &str = r#"
server: { external_url: "http://tocsin.test" }
responders:
  - { id: alice, email: alice@example.com }
  - { id: bob, email: bob@example.com }
  - { id: carol, email: carol@example.com }
  - { id: dave, email: dave@example.com }
  - { id: erin, email: erin@example.com }
time_windows:
  - { name: business-hours, timezone: Asia/Shanghai, start: "0 0 9 * * Mon-Fri", duration: 9h }
  - { name: maintenance, timezone: UTC, start: "0 0 2 * * Sun", duration: 2h }
escalation_policies:
  - name: standard
    repeat: 1
    ack_timeout: 30m
    levels:
      - { after: 0s, notify: [ "responder:alice" ] }
      - { after: 15m, notify: [ "responder:bob" ] }
  - name: major
    levels:
      - { after: 0s, notify: [ "responder:carol" ] }
      - { after: 5m, notify: [ "responder:dave" ] }
  - name: customer
    levels:
      - { after: 0s, notify: [ "responder:erin" ] }
      - { after: 3h, notify: [ "responder:dave" ] }
routes:
  - { match: [ 'sr_severity="A"' ], policy: customer }
  - { match: [ 'severity=~"0|1"' ], policy: major }
  - { match: [ 'severity="2"' ], policy: standard }
  - { match: [ 'severity="3"' ], policy: standard, active_during: [business-hours] }
  - { match: [ 'severity="4"' ], queue: storage-triage }
silences:
  - { match: [ 'service="batch"' ], window: maintenance, comment: "batch runs in maintenance" }
notifiers:
  email: { from: tocsin@example.com, file: { dir: outbox } }
  retry: { initial_backoff: 1h, max_backoff: 1h, max_age: 7d }
"#;

fn paged_config() -> String {
    format!("{CATALOG}{PAGING}")
}

/// Monday 2026-03-02, 11:00 in Shanghai: inside business hours.
const MONDAY_MORNING: &str = "2026-03-02T03:00:00Z";

fn page(event: &str, who: &str, level: usize, minute: i64) -> (String, String, Option<usize>, i64) {
    (event.to_string(), who.to_string(), Some(level), minute)
}

#[tokio::test(start_paused = true)]
async fn level_0_at_once_level_1_after_its_delay_then_the_levels_repeat() {
    let start = utc(MONDAY_MORNING);
    let e = FrozenEngine::start(&paged_config(), start).await;
    let id = e
        .signal(alert(
            "critical",
            "storage",
            "china-east",
            "storage down",
            start,
        ))
        .await;
    let incident = e
        .engine
        .running
        .state
        .store
        .incident(id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(incident.severity, 2);
    assert_eq!(
        e.page_list(id).await,
        vec![page("triggered", "alice", 0, 0)]
    );

    e.advance_minutes(14).await;
    assert_eq!(
        e.page_list(id).await.len(),
        1,
        "level 1 is not due before 15m"
    );
    e.advance_minutes(1).await;
    assert_eq!(
        e.page_list(id).await,
        vec![
            page("triggered", "alice", 0, 0),
            page("escalated", "bob", 1, 15)
        ]
    );
    // repeat: 1 runs the levels once more (after the longest delay), then stops.
    e.advance_minutes(105).await;
    assert_eq!(
        e.page_list(id).await,
        vec![
            page("triggered", "alice", 0, 0),
            page("escalated", "bob", 1, 15),
            page("escalated", "alice", 0, 30),
            page("escalated", "bob", 1, 45),
        ]
    );
    let pages = e.pages(id).await;
    assert!(pages
        .iter()
        .all(|p| p.page.payload.escalation.policy.as_deref() == Some("standard")));
    e.stop().await;
}

#[tokio::test(start_paused = true)]
async fn an_ack_stops_escalation_until_ack_timeout_lapses_it_and_resolve_tells_everyone() {
    let start = utc(MONDAY_MORNING);
    let e = FrozenEngine::start(&paged_config(), start).await;
    let id = e
        .signal(alert(
            "critical",
            "storage",
            "china-east",
            "storage down",
            start,
        ))
        .await;
    e.advance_minutes(5).await;
    e.send(Input::Ack {
        incident_id: id,
        by: "alice".into(),
    })
    .await;
    // Bob's level (due at 15m) is not paged while the ack holds (30m, until 35m).
    e.advance_minutes(29).await;
    assert_eq!(
        e.page_list(id).await,
        vec![
            page("triggered", "alice", 0, 0),
            page("acknowledged", "alice", 0, 5)
        ]
    );
    // At 35m the ack lapses: the last level is paged again, and escalation goes on.
    e.advance_minutes(1).await;
    let incident = e
        .engine
        .running
        .state
        .store
        .incident(id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(incident.status.as_str(), "triggered");
    assert!(e
        .timeline_kinds(id)
        .await
        .contains(&"ack_lapsed".to_string()));
    e.advance_minutes(15).await;
    e.advance_minutes(5).await;
    e.send(Input::Resolve {
        incident_id: id,
        by: "bob".into(),
        note: Some("fixed".into()),
    })
    .await;
    assert_eq!(
        e.page_list(id).await,
        vec![
            page("triggered", "alice", 0, 0),
            page("acknowledged", "alice", 0, 5),
            page("escalated", "alice", 0, 35),
            page("escalated", "bob", 1, 50),
            page("resolved", "alice", 1, 55),
            page("resolved", "bob", 1, 55),
        ]
    );
    // Resolved: nothing more, ever.
    e.advance_minutes(60).await;
    assert_eq!(e.page_list(id).await.len(), 6);
    e.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_severity_rise_reroutes_and_starts_the_new_policy_at_level_0() {
    let start = utc(MONDAY_MORNING);
    let e = FrozenEngine::start(&paged_config(), start).await;
    let id = e
        .signal(alert(
            "critical",
            "storage",
            "china-east",
            "storage down",
            start,
        ))
        .await;
    e.advance_minutes(5).await;
    // A second region: two customers in two regions with an outage is Sev 1.
    let same = e
        .signal(alert(
            "critical",
            "storage",
            "china-north",
            "storage down north",
            start,
        ))
        .await;
    assert_eq!(same, id, "the impact joins the incident");
    let incident = e
        .engine
        .running
        .state
        .store
        .incident(id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(incident.severity, 1);
    e.advance_minutes(25).await;
    e.send(Input::Resolve {
        incident_id: id,
        by: "carol".into(),
        note: None,
    })
    .await;
    assert_eq!(
        e.page_list(id).await,
        vec![
            page("triggered", "alice", 0, 0),
            // The major policy from its first level; the standard policy's level 1 (bob at
            // 15m) never comes. Alice, paged already and not on the major policy's first
            // level, hears of the impact that joined.
            page("severity_raised", "carol", 0, 5),
            page("impact_added", "alice", 0, 5),
            page("escalated", "dave", 1, 10),
            page("resolved", "alice", 1, 30),
            page("resolved", "carol", 1, 30),
            page("resolved", "dave", 1, 30),
        ]
    );
    let policies: Vec<Option<String>> = e
        .pages(id)
        .await
        .iter()
        .map(|p| p.page.payload.escalation.policy.clone())
        .collect();
    assert_eq!(policies[0].as_deref(), Some("standard"));
    assert_eq!(policies[1].as_deref(), Some("major"));
    e.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_sev3_incident_opened_at_night_pages_when_business_hours_begin() {
    // Monday 22:00 in Shanghai; business hours open Tuesday 09:00 (01:00Z).
    let start = utc("2026-03-02T14:00:00Z");
    let e = FrozenEngine::start(&paged_config(), start).await;
    let id = e
        .signal(alert(
            "warning",
            "storage",
            "china-east",
            "storage slow",
            start,
        ))
        .await;
    let incident = e
        .engine
        .running
        .state
        .store
        .incident(id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(incident.severity, 3);
    assert!(e.timeline_kinds(id).await.contains(&"paused".to_string()));
    e.advance_to(utc("2026-03-03T00:59:00Z")).await;
    assert_eq!(e.page_list(id).await, vec![], "nobody is paged at night");
    e.advance_to(utc("2026-03-03T01:00:00Z")).await;
    assert_eq!(
        e.page_list(id).await,
        vec![page("triggered", "alice", 0, 660)]
    );
    // The escalation's clock runs from the opening of the window.
    e.advance_to(utc("2026-03-03T01:15:00Z")).await;
    assert_eq!(
        e.page_list(id).await,
        vec![
            page("triggered", "alice", 0, 660),
            page("escalated", "bob", 1, 675)
        ]
    );
    e.stop().await;
}

#[tokio::test(start_paused = true)]
async fn sev4_incidents_page_nobody_and_wait_in_their_queue_oldest_first() {
    let start = utc(MONDAY_MORNING);
    let e = FrozenEngine::start(&paged_config(), start).await;
    let first = e
        .signal(alert(
            "info",
            "storage",
            "china-east",
            "storage log noise",
            start,
        ))
        .await;
    e.advance_minutes(1).await;
    let second = e
        .signal(alert(
            "info",
            "sqldb",
            "china-north",
            "sqldb log noise",
            start,
        ))
        .await;
    assert_ne!(first, second);
    e.advance_minutes(120).await;
    for id in [first, second] {
        let incident = e
            .engine
            .running
            .state
            .store
            .incident(id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(incident.severity, 4);
        assert_eq!(e.page_list(id).await, vec![], "Sev 4 pages nobody");
        assert!(e.timeline_kinds(id).await.contains(&"queued".to_string()));
    }
    let queue: Vec<i64> = e
        .engine
        .running
        .state
        .store
        .queue("storage-triage")
        .await
        .unwrap()
        .iter()
        .map(|i| i.id)
        .collect();
    assert_eq!(queue, vec![first, second]);
    let metrics = e.engine.running.metrics.render();
    assert!(
        metrics.contains("tocsin_triage_queue_length{queue=\"storage-triage\"} 2"),
        "{metrics}"
    );
    e.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_cri_not_acknowledged_by_respond_by_pages_the_current_and_next_level() {
    let start = utc(MONDAY_MORNING);
    let e = FrozenEngine::start(&paged_config(), start).await;
    let respond_by = start + chrono::Duration::hours(2);
    let id = e.signal(cri("contoso", "A", start, respond_by)).await;
    e.advance_minutes(119).await;
    assert_eq!(e.page_list(id).await, vec![page("triggered", "erin", 0, 0)]);
    let breaches = "tocsin_sr_response_breaches_total{sr_severity=\"A\"} 1";
    assert!(!e.engine.running.metrics.render().contains(breaches));
    e.advance_minutes(1).await;
    assert_eq!(
        e.page_list(id).await,
        vec![
            page("triggered", "erin", 0, 0),
            page("response_breached", "erin", 0, 120),
            page("response_breached", "dave", 1, 120),
        ]
    );
    assert!(e
        .timeline_kinds(id)
        .await
        .contains(&"response_breached".to_string()));
    // Once, not at every tick; and the escalation itself goes on at its own time.
    e.advance_minutes(60).await;
    assert_eq!(
        e.page_list(id).await[3..],
        [page("escalated", "dave", 1, 180)]
    );
    let metrics = e.engine.running.metrics.render();
    assert!(metrics.contains(breaches), "{metrics}");
    e.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_silence_records_but_does_not_page_inside_its_window() {
    // Sunday 02:30 UTC, inside the maintenance window (02:00-04:00).
    let start = utc("2026-03-01T02:30:00Z");
    let e = FrozenEngine::start(&paged_config(), start).await;
    let silenced = e
        .signal(alert(
            "critical",
            "batch",
            "local",
            "batch job failing",
            start,
        ))
        .await;
    // Shares neither service nor region with the batch incident, so it is another one.
    let other = e
        .signal(alert(
            "critical",
            "storage",
            "china-north",
            "storage down",
            start,
        ))
        .await;
    assert_ne!(silenced, other);
    assert_eq!(
        e.page_list(other).await,
        vec![page("triggered", "alice", 0, 0)]
    );
    assert_eq!(e.page_list(silenced).await, vec![]);
    assert!(e
        .timeline_kinds(silenced)
        .await
        .contains(&"silenced".to_string()));
    e.advance_to(utc("2026-03-01T03:59:00Z")).await;
    assert_eq!(
        e.page_list(silenced).await,
        vec![],
        "silent inside the window"
    );
    // The window closes at 04:00: the incident is still open, so paging starts.
    e.advance_to(utc("2026-03-01T04:00:00Z")).await;
    assert_eq!(
        e.page_list(silenced).await,
        vec![page("triggered", "alice", 0, 90)]
    );
    e.stop().await;
}

// ===== delivery to real receivers, in real time ============================================

const FILE_EMAIL: &str = "{ from: tocsin@example.com, file: { dir: outbox } }";

fn hmac_hex(key: &[u8], body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

#[tokio::test]
async fn a_real_smtp_server_receives_the_page_with_subject_parts_and_ack_link() {
    let scratch = tempfile::tempdir().unwrap();
    let smtpd = Smtpd::start(scratch.path()).await;
    let email = format!(
        "{{ from: tocsin@example.com, smtp: {{ host: 127.0.0.1, port: {}, tls: none, timeout: 5s }} }}",
        smtpd.port
    );
    let config = delivery_config("responder:alice", "responder:alice", &email, "[]");
    let dir = TestDir::new(&config, &[("default.yaml", &support::default_rules())]);
    let engine = TestEngine::start(&dir).await;
    let id = open_incident(&engine).await;
    wait_count(&engine, "email", "delivered", 1).await;
    wait_written(&engine, id, "delivered", 1).await;

    let messages = smtpd.messages();
    assert_eq!(messages.len(), 1, "{messages:?}");
    let message = &messages[0];
    let stored = &engine.running.state.store.pages_of(id).await.unwrap()[0];
    assert_eq!(stored.status, OutboxStatus::Delivered);
    // aiosmtpd's Mailbox handler records the envelope recipient.
    assert_eq!(
        header(message, "X-RcptTo").as_deref(),
        Some("alice@example.com")
    );
    assert_eq!(header(message, "To").as_deref(), Some("alice@example.com"));
    assert_eq!(
        header(message, "From").as_deref(),
        Some("tocsin@example.com")
    );
    assert_eq!(
        header(message, "Subject").as_deref(),
        Some("[Sev 2] storage down in china-east")
    );
    assert_eq!(
        header(message, "X-Tocsin-Delivery").as_deref(),
        Some(stored.page.delivery_id.as_str())
    );
    let ack_url = stored.page.payload.ack_url.clone().expect("an ack link");
    assert!(ack_url.starts_with("http://tocsin.test/ack/"), "{ack_url}");
    let parts = parts(message);
    let kinds: Vec<&str> = parts.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(kinds.len(), 2, "{kinds:?}");
    assert!(kinds[0].starts_with("text/plain"), "{kinds:?}");
    assert!(kinds[1].starts_with("text/html"), "{kinds:?}");
    for (kind, text) in &parts {
        for needle in [
            ack_url.as_str(),
            "storage",
            "china-east",
            "contoso, fabrikam",
            &format!("http://tocsin.test/incidents/{id}"),
        ] {
            assert!(text.contains(needle), "{kind} lacks {needle}:\n{text}");
        }
    }
    let delivered: Vec<String> = timeline(&engine, id)
        .await
        .into_iter()
        .filter(|e| e.kind == "delivered")
        .map(|e| e.message)
        .collect();
    assert_eq!(
        delivered,
        vec!["triggered delivered to alice by email after 1 attempt"]
    );
    engine.stop().await;
}

#[tokio::test]
async fn starttls_against_a_server_without_it_fails_clearly_and_is_retried() {
    let scratch = tempfile::tempdir().unwrap();
    let smtpd = Smtpd::start(scratch.path()).await;
    let email = format!(
        "{{ from: tocsin@example.com, smtp: {{ host: 127.0.0.1, port: {}, tls: starttls, timeout: 5s }} }}",
        smtpd.port
    );
    let config = delivery_config("responder:alice", "responder:alice", &email, "[]");
    let dir = TestDir::new(&config, &[("default.yaml", &support::default_rules())]);
    let engine = TestEngine::start(&dir).await;
    let id = open_incident(&engine).await;
    wait_count(&engine, "email", "retry", 3).await;
    wait_written(&engine, id, "delivery_attempt", 3).await;

    let stored = &engine.running.state.store.pages_of(id).await.unwrap()[0];
    assert_eq!(
        stored.status,
        OutboxStatus::Pending,
        "still to be delivered"
    );
    assert!(stored.attempts >= 3, "attempts {}", stored.attempts);
    let error = stored.last_error.clone().unwrap_or_default();
    assert!(error.contains("does not offer STARTTLS"), "{error}");
    assert!(error.contains("alice@example.com"), "{error}");
    let attempts: Vec<String> = timeline(&engine, id)
        .await
        .into_iter()
        .filter(|e| e.kind == "delivery_attempt")
        .map(|e| e.message)
        .collect();
    assert!(attempts.len() >= 3, "{attempts:?}");
    assert!(
        attempts.iter().all(|m| m.contains("STARTTLS")),
        "{attempts:?}"
    );
    assert_eq!(count(&engine, "email", "failed"), 0);
    assert_eq!(count(&engine, "email", "delivered"), 0);
    // Nothing was sent in plain text.
    assert!(smtpd.messages().is_empty());
    engine.stop().await;
}

#[tokio::test]
async fn a_webhook_failing_three_times_gets_one_delivery_id_four_times_and_valid_signatures() {
    let receiver = Receiver::start(vec![Answer::Status(500); 3], Answer::Status(200)).await;
    let webhooks = format!(
        "[ {{ name: hook, url: \"{}\", secret_file: secrets/hook, timeout: 5s, headers: {{ X-Team: storage }} }} ]",
        receiver.url
    );
    let config = delivery_config("webhook:hook", "responder:alice", FILE_EMAIL, &webhooks);
    let dir = TestDir::new(&config, &[("default.yaml", &support::default_rules())]);
    // The key is the file's content without its trailing newline.
    dir.write("secrets/hook", "s3cret\n");
    let engine = TestEngine::start(&dir).await;
    let id = open_incident(&engine).await;
    wait_count(&engine, "webhook", "delivered", 1).await;
    wait_written(&engine, id, "delivered", 1).await;

    let stored = &engine.running.state.store.pages_of(id).await.unwrap()[0];
    assert_eq!(stored.status, OutboxStatus::Delivered);
    assert_eq!(stored.attempts, 4);
    let got = receiver.received();
    assert_eq!(got.len(), 4);
    for request in &got {
        assert_eq!(
            request.header("x-tocsin-delivery").as_deref(),
            Some(stored.page.delivery_id.as_str())
        );
        assert_eq!(request.body, got[0].body, "the same bytes on every attempt");
        assert_eq!(
            request.header("x-tocsin-signature"),
            Some(hmac_hex(b"s3cret", &request.body))
        );
        assert_eq!(
            request.header("x-tocsin-event").as_deref(),
            Some("triggered")
        );
        assert_eq!(
            request.header("content-type").as_deref(),
            Some("application/json")
        );
        assert_eq!(request.header("x-team").as_deref(), Some("storage"));
    }
    let body: serde_json::Value = serde_json::from_slice(&got[0].body).unwrap();
    assert_eq!(body["version"], "1");
    assert_eq!(body["event"], "triggered");
    assert_eq!(body["incident"]["id"], id);
    assert_eq!(body["incident"]["severity"], 2);
    assert_eq!(body["incident"]["title"], "storage down in china-east");
    assert_eq!(body["escalation"]["policy"], "storage");
    assert_eq!(body["escalation"]["level"], 0);
    assert_eq!(body["recipient"], "webhook:hook");
    assert!(body["ack_url"]
        .as_str()
        .unwrap()
        .starts_with("http://tocsin.test/ack/"));

    let entries = timeline(&engine, id).await;
    let kinds = |kind: &str| -> Vec<String> {
        entries
            .iter()
            .filter(|e| e.kind == kind)
            .map(|e| e.message.clone())
            .collect()
    };
    assert_eq!(
        kinds("delivered"),
        vec!["triggered delivered to webhook:hook by webhook after 4 attempts"]
    );
    let attempts = kinds("delivery_attempt");
    assert_eq!(attempts.len(), 3, "{attempts:?}");
    assert!(
        attempts.iter().all(|m| m.contains("HTTP 500")),
        "{attempts:?}"
    );
    assert!(
        entries.iter().all(|e| !e.message.contains("s3cret")),
        "the secret never reaches the timeline"
    );
    assert_eq!(count(&engine, "webhook", "retry"), 3);
    assert_eq!(count(&engine, "webhook", "delivered"), 1);
    let metrics = engine.running.metrics.render();
    assert!(
        metrics.contains("tocsin_page_delivery_seconds_count{channel=\"webhook\"} 1"),
        "{metrics}"
    );
    engine.stop().await;
}

#[tokio::test]
async fn a_429_with_retry_after_waits_at_least_that_long() {
    let receiver = Receiver::start(
        vec![Answer::StatusWith(429, vec![("retry-after", "1")])],
        Answer::Status(200),
    )
    .await;
    let webhooks = format!(
        "[ {{ name: hook, url: \"{}\", timeout: 5s }} ]",
        receiver.url
    );
    let config = delivery_config("webhook:hook", "responder:alice", FILE_EMAIL, &webhooks);
    let dir = TestDir::new(&config, &[("default.yaml", &support::default_rules())]);
    let engine = TestEngine::start(&dir).await;
    let id = open_incident(&engine).await;
    wait_count(&engine, "webhook", "delivered", 1).await;

    let got = receiver.received();
    assert_eq!(got.len(), 2);
    let gap = got[1].at - got[0].at;
    // The backoff alone would be 100ms.
    assert!(gap >= Duration::from_secs(1), "retried after {gap:?}");
    assert!(
        got[0].header("x-tocsin-signature").is_none(),
        "no secret, no signature"
    );
    let attempts: Vec<String> = timeline(&engine, id)
        .await
        .into_iter()
        .filter(|e| e.kind == "delivery_attempt")
        .map(|e| e.message)
        .collect();
    assert_eq!(attempts.len(), 1);
    assert!(attempts[0].contains("HTTP 429"), "{attempts:?}");
    engine.stop().await;
}

#[tokio::test]
async fn a_receiver_hears_of_an_incident_in_order_even_while_a_page_is_retried() {
    // The triggered page meets a 503 and waits a second; the incident is resolved meanwhile.
    let receiver = Receiver::start(
        vec![Answer::StatusWith(503, vec![("retry-after", "1")])],
        Answer::Status(200),
    )
    .await;
    let webhooks = format!(
        "[ {{ name: hook, url: \"{}\", timeout: 5s }} ]",
        receiver.url
    );
    let config = delivery_config("webhook:hook", "responder:alice", FILE_EMAIL, &webhooks);
    let dir = TestDir::new(&config, &[("default.yaml", &support::default_rules())]);
    let engine = TestEngine::start(&dir).await;
    let id = open_incident(&engine).await;
    engine
        .running
        .engine()
        .send(Input::Resolve {
            incident_id: id,
            by: "alice".into(),
            note: None,
        })
        .await
        .unwrap();
    wait_count(&engine, "webhook", "delivered", 2).await;

    let got = receiver.received();
    let events: Vec<String> = got
        .iter()
        .map(|r| r.header("x-tocsin-event").unwrap())
        .collect();
    assert_eq!(events, vec!["triggered", "triggered", "resolved"]);
    let ids: Vec<String> = got
        .iter()
        .map(|r| r.header("x-tocsin-delivery").unwrap())
        .collect();
    assert_eq!(ids[0], ids[1]);
    assert_ne!(ids[1], ids[2], "each page has its own delivery id");
    engine.stop().await;
}

/// A webhook secret file that is missing is refused at start and on a reload, naming the
/// file: pages are never sent unsigned, and never wait on a secret the engine lacks. The
/// secret in force meanwhile signs them.
#[tokio::test]
async fn a_missing_webhook_secret_is_refused_at_start_and_on_reload_and_the_old_one_signs() {
    let receiver = Receiver::start(vec![], Answer::Status(200)).await;
    let webhooks = format!(
        "[ {{ name: hook, url: \"{}\", secret_file: secrets/hook, timeout: 5s }} ]",
        receiver.url
    );
    let config = delivery_config("webhook:hook", "responder:alice", FILE_EMAIL, &webhooks);
    let dir = TestDir::new(&config, &[("default.yaml", &support::default_rules())]);
    let refused = tocsin::app::start(tocsin::app::Options {
        config_path: dir.config_path(),
        clock: Clock::System,
        listen: Some("127.0.0.1:0".into()),
    })
    .await
    .err()
    .expect("no start without the webhook secret")
    .to_string();
    assert!(
        refused.contains("config.yaml:")
            && refused.contains("webhook secret file \"secrets/hook\"")
            && refused.contains("does not exist"),
        "{refused}"
    );

    dir.write("secrets/hook", "0ld-key\n");
    let engine = TestEngine::start(&dir).await;
    open_incident(&engine).await;
    wait_count(&engine, "webhook", "delivered", 1).await;
    let got = receiver.received();
    assert_eq!(got.len(), 1);
    assert_eq!(
        got[0].header("x-tocsin-signature"),
        Some(hmac_hex(b"0ld-key", &got[0].body))
    );
    // Gone while the engine runs: the reload is refused and the key in force stays.
    std::fs::remove_file(dir.path().join("secrets/hook")).unwrap();
    let (status, answer) = engine.post("/-/reload", &serde_json::json!({})).await;
    assert_eq!(status, 500, "{answer}");
    let error = answer["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("secrets/hook") && error.contains("does not exist"),
        "{answer}"
    );
    assert_eq!(
        engine.running.metrics.config_last_reload_successful.get(),
        0
    );
    engine.stop().await;
}

#[tokio::test]
async fn a_400_is_final_and_the_next_level_is_paged_at_once() {
    let receiver = Receiver::start(vec![], Answer::Status(400)).await;
    let webhooks = format!(
        "[ {{ name: hook, url: \"{}\", timeout: 5s }} ]",
        receiver.url
    );
    let config = delivery_config("webhook:hook", "responder:alice", FILE_EMAIL, &webhooks);
    let dir = TestDir::new(&config, &[("default.yaml", &support::default_rules())]);
    let engine = TestEngine::start(&dir).await;
    let id = open_incident(&engine).await;
    wait_count(&engine, "webhook", "failed", 1).await;
    // Level 1 is due an hour later, but the lost page moves escalation on now.
    wait_count(&engine, "email", "delivered", 1).await;
    wait_written(&engine, id, "delivered", 1).await;

    let pages = engine.running.state.store.pages_of(id).await.unwrap();
    assert_eq!(pages.len(), 2);
    assert_eq!(pages[0].status, OutboxStatus::Failed);
    assert_eq!(pages[0].attempts, 1, "a 400 is not retried");
    assert!(
        pages[0]
            .last_error
            .as_deref()
            .unwrap_or_default()
            .contains("400"),
        "{:?}",
        pages[0].last_error
    );
    assert_eq!(pages[1].page.event.as_str(), "escalated");
    assert_eq!(pages[1].page.recipient.id, "alice");
    assert_eq!(pages[1].page.level, Some(1));
    assert!(pages[1].page.created_at - pages[0].page.created_at < chrono::Duration::seconds(30));
    assert_eq!(pages[1].status, OutboxStatus::Delivered);
    let eml = dir
        .path()
        .join("outbox")
        .join(format!("{}.eml", pages[1].page.delivery_id));
    assert!(eml.exists(), "{} was written", eml.display());

    let failed: Vec<String> = timeline(&engine, id)
        .await
        .into_iter()
        .filter(|e| e.kind == "delivery_failed")
        .map(|e| e.message)
        .collect();
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert!(
        failed[0].contains("webhook:hook") && failed[0].contains("HTTP 400"),
        "{failed:?}"
    );
    // Still exactly one request: final means final.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(receiver.received().len(), 1);
    engine.stop().await;
}

#[tokio::test]
async fn the_default_config_writes_eml_files() {
    // config/tocsin.yaml and rules/default.yaml as shipped, in a folder of their own (their
    // relative paths then point inside it).
    let root = tempfile::tempdir().unwrap();
    let manifest = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    std::fs::create_dir_all(root.path().join("config")).unwrap();
    std::fs::create_dir_all(root.path().join("rules")).unwrap();
    std::fs::copy(
        manifest.join("config/tocsin.yaml"),
        root.path().join("config/tocsin.yaml"),
    )
    .unwrap();
    std::fs::copy(
        manifest.join("rules/default.yaml"),
        root.path().join("rules/default.yaml"),
    )
    .unwrap();
    let options = tocsin::app::Options {
        config_path: root.path().join("config/tocsin.yaml"),
        // Monday 11:00 in Shanghai: alice is on call in the default schedule.
        clock: Clock::tokio_at(utc(MONDAY_MORNING)),
        listen: Some("127.0.0.1:0".into()),
    };
    let running = tocsin::app::start(options).await.expect("engine starts");
    let reply = running
        .engine()
        .send(Input::Signals(vec![storage_down()]))
        .await
        .unwrap();
    let id = paging_support::incidents_of(reply)[0];
    let delivered = eventually(Duration::from_secs(20), || async {
        (running
            .metrics
            .pages_total
            .with_label_values(&["email", "delivered"])
            .get()
            >= 1)
            .then_some(())
    })
    .await;
    assert!(delivered.is_some(), "the page was not written");

    let stored = &running.state.store.pages_of(id).await.unwrap()[0];
    assert_eq!(stored.page.recipient.id, "alice");
    let outbox = root.path().join("data/outbox");
    let files: Vec<_> = std::fs::read_dir(&outbox)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(files, vec![format!("{}.eml", stored.page.delivery_id)]);
    let message = std::fs::read_to_string(outbox.join(&files[0])).unwrap();
    assert_eq!(
        header(&message, "From").as_deref(),
        Some("tocsin@example.com")
    );
    assert_eq!(header(&message, "To").as_deref(), Some("alice@example.com"));
    assert_eq!(
        header(&message, "Subject").as_deref(),
        Some("[Sev 2] storage down in china-east")
    );
    assert_eq!(
        header(&message, "X-Tocsin-Event").as_deref(),
        Some("triggered")
    );
    assert!(header(&message, "Date").is_some());
    assert!(header(&message, "Message-ID")
        .unwrap()
        .contains(&stored.page.delivery_id));
    let ack_url = stored.page.payload.ack_url.clone().unwrap();
    let parts = parts(&message);
    assert_eq!(parts.len(), 2);
    assert!(parts.iter().all(|(_, text)| text.contains(&ack_url)));
    running.stop().await;
}

#[tokio::test]
async fn pages_pending_at_start_are_delivered_once_after_a_restart() {
    // The first attempt hangs; the engine stops while it is under way.
    let receiver = Receiver::start(vec![Answer::Hang], Answer::Status(200)).await;
    let webhooks = format!(
        "[ {{ name: hook, url: \"{}\", timeout: 30s }} ]",
        receiver.url
    );
    let config = delivery_config("webhook:hook", "responder:alice", FILE_EMAIL, &webhooks);
    let dir = TestDir::new(&config, &[("default.yaml", &support::default_rules())]);
    let engine = TestEngine::start(&dir).await;
    let id = open_incident(&engine).await;
    let started = eventually(Duration::from_secs(20), || async {
        (!receiver.received().is_empty()).then_some(())
    })
    .await;
    assert!(started.is_some(), "the first attempt was made");
    let stopping = tokio::time::Instant::now();
    tokio::time::timeout(Duration::from_secs(10), engine.stop())
        .await
        .expect("a hung receiver does not hold up shutdown");
    assert!(stopping.elapsed() < Duration::from_secs(5));

    // Stopped: the page is still pending in the outbox.
    let store = Store::open(&dir.store_url()).await.unwrap();
    let pending = store.pages_of(id).await.unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].status, OutboxStatus::Pending);
    store.close().await;

    let engine = TestEngine::start(&dir).await;
    wait_count(&engine, "webhook", "delivered", 1).await;
    wait_written(&engine, id, "delivered", 1).await;
    let pages = engine.running.state.store.pages_of(id).await.unwrap();
    assert_eq!(pages.len(), 1, "level 0 is not paged again by the restart");
    assert_eq!(pages[0].status, OutboxStatus::Delivered);
    let got = receiver.received();
    assert_eq!(got.len(), 2);
    for request in &got {
        assert_eq!(
            request.header("x-tocsin-delivery").as_deref(),
            Some(pending[0].page.delivery_id.as_str())
        );
    }
    let delivered = timeline(&engine, id)
        .await
        .into_iter()
        .filter(|e| e.kind == "delivered")
        .count();
    assert_eq!(delivered, 1);
    engine.stop().await;
}
